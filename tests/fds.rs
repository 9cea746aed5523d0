//! File descriptors: 1,000 authentications in one process leak none, and every
//! descriptor the module holds while it works is close-on-exec (a login that spawns a
//! shell must not hand it the store).

use std::cell::Cell;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use zeroize::Zeroizing;

use pam_mfa::authenticate::{authenticate, Conversation, ConversationError, Outcome, Request};
use pam_mfa::clock::Clock;
use pam_mfa::otp::hotp::{format_code, hotp};
use pam_mfa::otp::totp::time_step;
use pam_mfa::otp::{Algorithm, Digits};

const KEY: &[u8] = b"12345678901234567890";
const KEY_BASE32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn open_fds() -> Vec<i32> {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// A clock that, each time the module reads it (with the store directory and the state
/// file open and locked), checks that every descriptor it did not inherit is
/// close-on-exec.
struct CheckingClock<'a> {
    now: Cell<u64>,
    inherited: &'a [i32],
    checked: Cell<usize>,
}

impl Clock for CheckingClock<'_> {
    fn now(&self) -> u64 {
        for fd in open_fds() {
            if self.inherited.contains(&fd) {
                continue;
            }
            // /proc/self/fdinfo/N shows the open flags in octal; O_CLOEXEC is 02000000.
            let Ok(info) = fs::read_to_string(format!("/proc/self/fdinfo/{fd}")) else {
                continue; // the read_dir handle itself, closed meanwhile
            };
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                .unwrap_or_else(|| panic!("no flags for fd {fd}: {info}"));
            assert!(
                flags & 0o2000000 != 0,
                "fd {fd} is not close-on-exec ({info})"
            );
            self.checked.set(self.checked.get() + 1);
        }
        self.now.get()
    }
}

struct Answer(String);

impl Conversation for Answer {
    fn ask_hidden(
        &mut self,
        _prompt: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        Ok(Some(Zeroizing::new(self.0.as_bytes().to_vec())))
    }
    fn info(&mut self, _text: &str) -> Result<(), ConversationError> {
        Ok(())
    }
    fn authtok(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        Ok(None)
    }
    fn set_authtok(&mut self, _value: &[u8]) -> Result<(), ConversationError> {
        Ok(())
    }
}

fn setup(dir: &Path, user: &str) -> Vec<String> {
    let store = dir.join("store");
    fs::create_dir(&store).unwrap();
    fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).unwrap();
    let record = store.join(format!("{user}.toml"));
    fs::write(&record, format!("secret = \"{KEY_BASE32}\"\n")).unwrap();
    fs::set_permissions(&record, fs::Permissions::from_mode(0o600)).unwrap();
    let policy = dir.join("policy.toml");
    fs::write(
        &policy,
        format!(
            "store_dir = \"{}\"\ndefault_mode = \"required\"\nfail_delay_ms = 0\n",
            store.display()
        ),
    )
    .unwrap();
    vec![
        format!("config={}", policy.display()),
        format!("log_socket={}", dir.join("log.sock").display()),
    ]
}

#[test]
fn a_thousand_authentications_leak_no_descriptor_and_all_are_close_on_exec() {
    let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name;
    let dir = tempfile::tempdir().unwrap();
    let args = setup(dir.path(), &user);
    let request = Request {
        user: Some(user),
        service: "fd-test".into(),
        rhost: String::new(),
        args,
        silent: false,
    };
    let before = open_fds();
    let clock = CheckingClock {
        now: Cell::new(1_800_000_000),
        inherited: &before,
        checked: Cell::new(0),
    };
    for round in 0..1000u64 {
        // A new step each round, so each code is fresh; every tenth answer is wrong (and
        // the successes in between keep the failure count from locking the account).
        let now = 1_800_000_000 + round * 30;
        clock.now.set(now);
        let code = hotp(KEY, time_step(now, 30), Algorithm::Sha1, Digits::SIX);
        let typed = if round % 10 == 9 {
            (code + 1) % 1_000_000
        } else {
            code
        };
        let outcome = authenticate(
            &request,
            &mut Answer(format_code(typed, Digits::SIX)),
            &clock,
        );
        match (round % 10 == 9, &outcome) {
            (false, Outcome::Success(_)) | (true, Outcome::Denied(_)) => {}
            (_, other) => panic!("round {round}: {other:?}"),
        }
    }
    let after = open_fds();
    assert_eq!(
        before.len(),
        after.len(),
        "descriptors before {before:?}, after {after:?}"
    );
    assert!(
        clock.checked.get() >= 2000,
        "only {} descriptors were checked",
        clock.checked.get()
    );
}

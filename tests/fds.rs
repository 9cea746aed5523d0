//! File descriptors: 1,000 authentications in one process leak none, and every
//! descriptor the module holds while it works is close-on-exec (a login that spawns a
//! shell must not hand it the store).

mod inproc;

use std::cell::Cell;
use std::fs;

use inproc::{Place, Scripted, KEY, KEY_BASE32};
use pam_mfa::authenticate::{authenticate, Outcome};
use pam_mfa::clock::Clock;
use pam_mfa::otp::hotp::{format_code, hotp};
use pam_mfa::otp::totp::time_step;
use pam_mfa::otp::{Algorithm, Digits};

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

#[test]
fn a_thousand_authentications_leak_no_descriptor_and_all_are_close_on_exec() {
    let place = Place::new("default_mode = \"required\"\n");
    place.enroll(KEY_BASE32);
    let request = place.request(None);
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
            &mut Scripted::answering(&format_code(typed, Digits::SIX)),
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

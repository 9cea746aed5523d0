//! Issue 18's hardening, through the real libpam (pamdrive, nss_wrapper accounts, codes from
//! oathtool): what an attack review found, each with the behaviour that closes it.

mod common;
mod smallfs;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use common::{
    cli_path, recovery_codes, sandbox, shell_quote, Pam, Sandbox, Totp, Transaction, OTHER_SECRET,
    SECRET,
};

/// alice is enrolled, bob is required without a secret, carol may enroll at login; the
/// failure delay is 9 s, so that libpam's scaled delay (0.5 to 1.5 times the request) is
/// clear of the default 2 s and of none at all. pamdrive's delay function does not sleep.
const SLOW_FAILURES: &str = r#"
store_dir = "{store}"
default_mode = "required"
fail_delay_ms = 9000

[[rule]]
name = "newcomers"
users = ["carol"]
mode = "required"
self_enroll = true
"#;

const COMBINED_STACK: &str = "auth required {module} config={config} log_socket={log} combined\n";

fn slow_failures() -> Sandbox {
    sandbox()
        .user("alice", 1000)
        .user("bob", 1001)
        .user("carol", 1002)
        .policy(SLOW_FAILURES)
        .enroll("alice", SECRET)
        .service("combined", COMBINED_STACK)
}

fn assert_policy_delay(run: &Transaction, what: &str) {
    assert_eq!(run.delays.len(), 1, "{what}: {run:?}");
    assert!(
        (4_500_000..=13_500_000).contains(&run.delays[0]),
        "{what}: the policy's 9 s delay was not requested: {run:?}"
    );
}

/// Unknown, not enrolled, enrolling and enrolled with a wrong code: every failure after a
/// prompt asks libpam for the same delay, so how long it takes tells nobody who is enrolled.
#[test]
fn every_path_that_prompts_requests_the_same_failure_delay() {
    let sb = slow_failures();
    let wrong = Totp::new(SECRET).wrong_code();
    let run = sb.login("alice").answer(&wrong).run();
    run.expect(Pam::AuthErr);
    assert_policy_delay(&run, "enrolled, wrong code");
    let run = sb.login("bob").answer(&wrong).run();
    run.expect(Pam::AuthErr).expect_prompted();
    assert_policy_delay(&run, "required, not enrolled");
    let run = sb.login("nobody-here").answer(&wrong).run();
    run.expect(Pam::UserUnknown).expect_prompted();
    assert_policy_delay(&run, "unknown account");
    let run = sb.login("carol").answer(&wrong).run();
    run.expect(Pam::AuthErr);
    assert_policy_delay(&run, "enrollment at login, wrong first code");
}

#[test]
fn the_combined_prompt_requests_the_same_failure_delay_for_everyone() {
    let sb = slow_failures();
    let typed = format!("password{}", Totp::new(SECRET).wrong_code());
    for (user, expected) in [
        ("alice", Pam::AuthErr),
        ("bob", Pam::AuthErr),
        ("nobody-here", Pam::UserUnknown),
    ] {
        let run = sb.login(user).service("combined").answer(&typed).run();
        run.expect(expected);
        assert_policy_delay(&run, user);
    }
}

// --- 2. enrollment at login: never through combined, wrong first codes counted -------------

/// A stranger at a `combined` prompt has typed no checked password: carol, who may enroll at
/// login, is refused without being shown any secret.
#[test]
fn a_combined_stack_never_shows_a_new_secret() {
    let sb = slow_failures();
    let run = sb
        .login("carol")
        .service("combined")
        .answer("wrong-password123456")
        .run();
    run.expect(Pam::AuthErr);
    assert!(run.infos().is_empty(), "no QR code, no URI: {run:?}");
    assert!(!run.output.stdout.contains("otpauth://"), "{run:?}");
    let line = sb.audit_line();
    line.expect("carol", "required", "newcomers", "deny");
    assert!(line.get("reason").contains("combined"), "{line:#?}");
    assert!(!sb.record_path("carol").exists());
}

/// A user who scanned the URI shown and mistyped: a code valid for no step within two of now.
const CLUMSY_PHONE: &str = r#"secret=$(printf '%s\n' "$LAST_INFO" | sed -n 's|^otpauth://totp/.*[?&]secret=\([A-Z2-7]*\).*$|\1|p' | tail -n 1)
[ -n "$secret" ] || { echo "phone: no otpauth URI in: $LAST_INFO" >&2; exit 1; }
near=$(oathtool --totp -b -w 4 -N 'now - 60 sec' "$secret")
code=000000
while printf '%s\n' "$near" | grep -qx "$code"; do
    code=$(printf '%06d' $(( (10#$code + 111111) % 1000000 )))
done
echo "$code""#;

/// Wrong first codes of an enrollment at login count like wrong codes: a mistyped code
/// does not throw the secret away (three tries, one QR code), each try is counted, and
/// after max_failures the account is locked and no new secret is shown until the lock ends.
#[test]
fn wrong_first_codes_of_an_enrollment_at_login_lock_the_account() {
    let sb = sandbox().user("carol", 1002).policy(
        "store_dir = \"{store}\"\ndefault_mode = \"required\"\nmax_failures = 3\n\
         lockout_seconds = 600\nfail_delay_ms = 0\n[[rule]]\nname = \"newcomers\"\n\
         users = [\"carol\"]\nmode = \"required\"\nself_enroll = true\n",
    );
    let run = sb.login("carol").answer_cmd(CLUMSY_PHONE).run();
    run.expect(Pam::AuthErr);
    assert_eq!(
        run.infos().len(),
        1,
        "one QR code for all three tries: {run:?}"
    );
    assert_eq!(run.prompts().len(), 3, "three tries: {run:?}");
    let errors: Vec<&str> = run
        .messages
        .iter()
        .filter(|m| m.style == "error")
        .map(|m| m.text.as_str())
        .collect();
    assert!(errors[0].contains("2 tries left"), "{errors:?}");
    assert!(errors[1].contains("1 try left"), "{errors:?}");
    assert!(errors[2].contains("locked"), "the third locks: {errors:?}");
    let run = sb.login("carol").answer_cmd(CLUMSY_PHONE).run();
    assert_eq!(run.rc(), Pam::Other(11), "PAM_MAXTRIES: {run:?}");
    assert!(
        run.infos().is_empty(),
        "no new secret while locked: {run:?}"
    );
    assert!(!sb.record_path("carol").exists());
}

#[test]
fn policy_check_refuses_self_enroll_behind_a_combined_stack() {
    let sb = slow_failures();
    let pam_dir = sb.path("pam.d").display().to_string();
    let run = sb
        .pam_mfa(&["policy", "check", "--pam-dir", &pam_dir])
        .run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout
            .contains("error: rule \"newcomers\": self_enroll")
            && run.stdout.contains("pam.d/combined:1"),
        "{run:?}"
    );
    // The same policy with no combined stack checks.
    fs::remove_file(sb.path("pam.d/combined")).unwrap();
    let run = sb
        .pam_mfa(&["policy", "check", "--pam-dir", &pam_dir])
        .run();
    assert_eq!(run.code, Some(0), "{run:?}");
}

// --- 3. revocation reaches a login in flight -----------------------------------------------

/// An answer command for pamdrive: runs `admin` (the admin's command, while the login waits
/// at its prompt), then types alice's current code from the old secret.
fn admin_then_code(sb: &Sandbox, admin: &str) -> String {
    format!(
        "{cli} {admin} --config {policy} >&2 && oathtool --totp -b {SECRET}",
        cli = shell_quote(&cli_path().display().to_string()),
        policy = shell_quote(&sb.policy_path().display().to_string()),
    )
}

#[test]
fn a_secret_removed_or_replaced_during_the_prompt_lets_no_login_through() {
    for what in ["remove", "enroll --force"] {
        let sb = sandbox()
            .user("alice", 1000)
            .policy("store_dir = \"{store}\"\ndefault_mode = \"required\"\n")
            .enroll("alice", SECRET);
        let new_secret = sb.path("new.secret");
        fs::write(&new_secret, format!("{OTHER_SECRET}\n")).unwrap();
        let admin = match what {
            "remove" => "remove alice --yes".to_string(),
            _ => format!(
                "enroll alice --force --secret-stdin --no-confirm < {}",
                shell_quote(&new_secret.display().to_string())
            ),
        };
        common::avoid_step_boundary(30);
        let run = sb
            .login("alice")
            .answer_cmd(&admin_then_code(&sb, &admin))
            .run();
        run.expect(Pam::AuthErr);
        let line = sb.audit_lines().pop().expect("an audit line");
        assert_eq!(
            line.get("reason"),
            "the secret was removed or replaced while the code was typed",
            "{what}: {run:?} {line:#?}"
        );
    }
}

// --- 9. recovery codes on a full disk --------------------------------------------------------

/// Recovery codes are the documented way back in, root's included, when the disk is full:
/// burning one needs no new space.
#[test]
fn a_recovery_code_works_on_a_full_disk_and_only_once() {
    let sb = sandbox().user("alice", 1000);
    let mount = sb.path("tmpfs");
    let Some(unmount) = smallfs::mount(&mount, "256k") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root and must run this test"
        );
        return;
    };
    let store = mount.join("store");
    fs::create_dir(&store).unwrap();
    fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).unwrap();
    let sb = sb.policy(&format!(
        "store_dir = \"{}\"\ndefault_mode = \"required\"\n",
        store.display()
    ));
    // Declared after the sandbox, so dropped first: its directory can then be removed.
    let _unmount = unmount;
    let enrolled = sb
        .pam_mfa(&[
            "enroll",
            "alice",
            "--secret-stdin",
            "--no-confirm",
            "--qr",
            "none",
        ])
        .stdin(&format!("{SECRET}\n"))
        .run();
    assert_eq!(enrolled.code, Some(0), "{enrolled:?}");
    let codes = recovery_codes(&enrolled.stdout);
    assert_eq!(codes.len(), 10, "{enrolled:?}");

    smallfs::fill(&mount.join("filler"));
    let run = sb.login("alice").answer(&codes[0]).run();
    run.expect(Pam::Success);
    assert_eq!(sb.audit_line().get("reason"), "recovery code used; 9 left");
    // Burned: the same code again is refused, and the next one works, still on a full disk.
    sb.login("alice")
        .answer(&codes[0])
        .run()
        .expect(Pam::AuthErr);
    sb.audit_lines();
    sb.login("alice")
        .answer(&codes[1])
        .run()
        .expect(Pam::Success);
    assert_eq!(sb.audit_line().get("reason"), "recovery code used; 8 left");
}

// --- 13. no core dump holds a secret ---------------------------------------------------------

/// SIGQUIT to `pam-mfa enroll` while it waits for the first code, with core dumps allowed
/// (RLIMIT_CORE unlimited, in a directory of its own): the process dies without a core.
#[test]
fn the_admin_command_dumps_no_core_while_it_holds_a_new_secret() {
    let sb = sandbox()
        .user("alice", 1000)
        .policy("store_dir = \"{store}\"\ndefault_mode = \"required\"\n");
    let cwd = sb.path("cwd");
    fs::create_dir(&cwd).unwrap();
    let enroll = sb.pam_mfa(&["enroll", "alice", "--qr", "none"]).command();
    let mut command = Command::new("prlimit");
    command
        .arg("--core=unlimited")
        .arg("--")
        .arg(enroll.get_program())
        .args(enroll.get_args())
        .env_clear()
        .envs(
            enroll
                .get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .current_dir(&cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("spawn pam-mfa enroll");
    let _stdin = child.stdin.take();
    let mut uri = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains("otpauth://") {
            uri = line;
            break;
        }
    }
    assert!(!uri.is_empty(), "enroll showed no URI");
    // The new secret is in memory now, waiting for its first code.
    let killed = Command::new("kill")
        .args(["-QUIT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(3), "killed by SIGQUIT: {status:?}");
    assert!(!status.core_dumped(), "a core was dumped: {status:?}");
    let left: Vec<_> = fs::read_dir(&cwd).unwrap().collect();
    assert!(left.is_empty(), "no core file: {left:?}");
}

/// The module makes a dumpable host non-dumpable while it runs (the conversation sees 0),
/// and puts the flag back before it returns.
#[test]
fn the_module_is_non_dumpable_while_it_runs_and_restores_the_host() {
    let sb = slow_failures();
    let run = sb
        .login("alice")
        .report_dumpable()
        .answer(&Totp::new(SECRET).wrong_code())
        .run();
    run.expect(Pam::AuthErr);
    assert_eq!(
        run.dumpable,
        [0, 1],
        "during the prompt, after the call: {run:?}"
    );
}

// --- 5. a code accepted under a clock far ahead ----------------------------------------------

/// libfaketime, preloaded after nss_wrapper (pamdrive loads no pam_wrapper): the
/// module's clock, and only in pamdrive's process, runs `offset` ahead.
fn clock_ahead<'a>(login: common::Login<'a>, offset: &str) -> common::Login<'a> {
    login
        .env(
            "LD_PRELOAD",
            "libnss_wrapper.so /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        )
        .env("FAKETIME", offset)
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
}

/// A day of 30-second steps.
const DAY_OF_STEPS: i64 = 2880;

/// The host's clock ran a day ahead while alice logged in: her code of that (future) step
/// was accepted. Back at the right time every code of hers reads as used, until
/// `pam-mfa unlock` pulls the last used step back to now; and a new secret
/// (`enroll --force`) starts a new ledger instead of inheriting the future step.
#[test]
fn a_code_accepted_under_a_clock_far_ahead_blocks_the_account_only_until_unlock() {
    for recovery in ["unlock", "enroll --force"] {
        let sb = sandbox()
            .user("alice", 1000)
            .policy("store_dir = \"{store}\"\ndefault_mode = \"required\"\n")
            .enroll_with_cli("alice", SECRET);
        let totp = Totp::new(SECRET);
        common::avoid_step_boundary(30);
        clock_ahead(sb.login("alice"), "+1d")
            .answer(&totp.code_in_steps(DAY_OF_STEPS))
            .run()
            .expect(Pam::Success);
        sb.audit_lines();

        // Back to now: stuck. The module refuses before checking any code, names the
        // cause in its audit line, and counts nothing (alice guessed nothing).
        for _ in 0..4 {
            common::avoid_step_boundary(30);
            sb.login("alice")
                .answer(&totp.code())
                .run()
                .expect(Pam::AuthErr);
            let line = sb.audit_line();
            line.expect("alice", "required", "default", "deny");
            assert!(
                line.get("reason").starts_with(
                    "the last used time step lies 2880 steps (clock about +86400 s) ahead"
                ) && line.get("reason").contains("pam-mfa unlock"),
                "{line:#?}"
            );
        }
        let status = sb.pam_mfa(&["status", "alice"]).run();
        assert!(
            !status.stdout.contains("locked"),
            "nothing counted: {status:?}"
        );

        match recovery {
            "unlock" => {
                let run = sb.pam_mfa(&["unlock", "alice", "--yes"]).run();
                assert_eq!(run.code, Some(0), "{run:?}");
                assert!(
                    run.stdout
                        .contains("lay 2880 steps (about 24 h) in the future")
                        && run.stdout.contains("pulled back to the current step"),
                    "unlock says what it did: {run:?}"
                );
                // The current step counts as used; the authenticator's next code works.
                common::avoid_step_boundary(30);
                sb.login("alice")
                    .answer(&totp.code_in_steps(1))
                    .run()
                    .expect(Pam::Success);
            }
            _ => {
                let run = sb
                    .pam_mfa(&[
                        "enroll",
                        "alice",
                        "--force",
                        "--secret-stdin",
                        "--no-confirm",
                    ])
                    .stdin(&format!("{OTHER_SECRET}\n"))
                    .run();
                assert_eq!(run.code, Some(0), "{run:?}");
                common::avoid_step_boundary(30);
                sb.login("alice")
                    .answer(&Totp::new(OTHER_SECRET).code())
                    .run()
                    .expect(Pam::Success);
            }
        }
    }
}

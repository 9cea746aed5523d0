//! What a helpdesk is asked about, through the real libpam and the admin command: a phone
//! whose clock is off (the offset recorded and shown, near misses logged), a locked second
//! factor (told at the prompt, shown by status), and a mistyped first code at enrollment.

mod common;

use std::process::Command;

use serde_json::Value;

use common::{
    avoid_step_boundary, cli_path, office_locking_after, shell_quote, Finished, Pam, Sandbox, Totp,
    Transaction, SECRET,
};

fn status_json(sb: &Sandbox, user: &str) -> Value {
    let run = sb.pam_mfa(&["status", "--json", user]).run();
    assert_eq!(run.code, Some(0), "{run:?}");
    let all: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run:?}"));
    all[0].clone()
}

// --- clock skew ------------------------------------------------------------------------------

/// A code from one step ahead is accepted (the window is one step), and the state records
/// how far the device's clock was off: status shows it.
#[test]
fn the_clock_offset_of_an_accepted_code_shows_in_status() {
    let sb = office_locking_after(5).enroll("alice", SECRET);
    let totp = Totp::new(SECRET);
    avoid_step_boundary(30);
    sb.login("alice")
        .answer(&totp.code_in_steps(1))
        .run()
        .expect(Pam::Success);
    assert_eq!(status_json(&sb, "alice")["clock_offset_seconds"], 30);
    let table = sb.pam_mfa(&["status", "alice"]).run();
    assert!(table.stdout.contains("clock about +30 s"), "{table:?}");

    // The current step's code, after the next one's, is a replay: the offset stays.
    sb.login("alice")
        .answer(&totp.code())
        .run()
        .expect(Pam::AuthErr);
    assert_eq!(status_json(&sb, "alice")["clock_offset_seconds"], 30);
}

/// A code a few steps outside the window is refused like any wrong code, the user is told
/// nothing more, and the audit line names it a near miss with the clock's offset. It is not
/// used up: the right code works afterwards.
#[test]
fn a_code_a_few_steps_out_is_refused_and_logged_as_a_near_miss() {
    let sb = office_locking_after(5).enroll("alice", SECRET);
    let totp = Totp::new(SECRET);
    for (steps, clock) in [(3, "clock about +90 s"), (-4, "clock about -120 s")] {
        avoid_step_boundary(30);
        let login = sb.login("alice").answer(&totp.code_in_steps(steps)).run();
        login.expect_prompted().expect(Pam::AuthErr);
        assert_eq!(login.messages.len(), 1, "only the prompt: {login:?}");
        let line = sb.audit_line();
        line.expect("alice", "required", "privileged", "deny");
        let reason = line.get("reason");
        assert!(reason.starts_with("wrong code; near miss"), "{line:#?}");
        assert!(reason.contains(clock), "{line:#?}");
    }
    sb.login("alice")
        .answer(&totp.wrong_code())
        .run()
        .expect(Pam::AuthErr);
    assert_eq!(sb.audit_line().get("reason"), "wrong code");

    avoid_step_boundary(30);
    sb.login("alice")
        .answer(&totp.code())
        .run()
        .expect(Pam::Success);
}

// --- a locked second factor ------------------------------------------------------------------

/// libpam's PAM_MAXTRIES, which `Pam` has no name for.
const PAM_MAXTRIES: Pam = Pam::Other(11);

/// A POSIX time zone, so that no zoneinfo file is needed: local time is UTC minus 5:30.
const TZ: &str = "ABC+05:30";

fn errors(login: &Transaction) -> Vec<&str> {
    login
        .messages
        .iter()
        .filter(|m| m.style == "error")
        .map(|m| m.text.as_str())
        .collect()
}

/// `date` (coreutils) formats the Unix time `secs` in `tz`: the test's own clock reading.
fn date(secs: u64, tz: &str, format: &str) -> String {
    let out = Command::new("date")
        .env("TZ", tz)
        .arg("-d")
        .arg(format!("@{secs}"))
        .arg(format!("+{format}"))
        .output()
        .expect("run date");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Wrong codes are counted ("2 of 3" in status); the one that locks says so at once, and
/// the next login is refused without a prompt, with a PAM_ERROR_MSG that gives the end of
/// the lock in the process's local time and says an admin can unlock it. The audit line
/// gives the end in ISO 8601.
#[test]
fn a_locked_account_is_told_until_when_in_local_time_and_that_an_admin_can_unlock_it() {
    let sb = office_locking_after(3).enroll("alice", SECRET);
    let totp = Totp::new(SECRET);
    let wrong = totp.wrong_code();
    for _ in 0..2 {
        let login = sb.login("alice").answer(&wrong).env("TZ", TZ).run();
        login.expect(Pam::AuthErr);
        assert!(errors(&login).is_empty(), "{login:?}");
    }
    let status = status_json(&sb, "alice");
    assert_eq!(status["failures"], 2, "{status:#}");
    assert_eq!(status["max_failures"], 3, "{status:#}");
    let table = sb.pam_mfa(&["status", "alice"]).run();
    assert!(table.stdout.contains("failures: 2 of 3"), "{table:?}");

    let locking = sb.login("alice").answer(&wrong).env("TZ", TZ).run();
    locking.expect(Pam::AuthErr);
    let until = status_json(&sb, "alice")["locked_until"]
        .as_u64()
        .expect("locked");
    let local = date(until, TZ, "%Y-%m-%d %H:%M:%S -05:30");
    let told = errors(&locking);
    assert_eq!(told.len(), 1, "{locking:?}");
    assert!(
        told[0].contains(&format!("locked until {local}")),
        "{locking:?}"
    );
    sb.audit_lines();

    let login = sb.login("alice").answer(&totp.code()).env("TZ", TZ).run();
    login.expect_not_prompted().expect(PAM_MAXTRIES);
    let told = errors(&login);
    assert_eq!(told.len(), 1, "{login:?}");
    assert!(
        told[0].contains(&format!("locked until {local}")),
        "{login:?}"
    );
    assert!(
        told[0].contains("An administrator can unlock it"),
        "{login:?}"
    );
    let line = sb.audit_line();
    line.expect("alice", "required", "privileged", "deny");
    assert_eq!(
        line.get("reason"),
        format!(
            "locked after too many wrong codes until {}",
            date(until, "UTC", "%Y-%m-%dT%H:%M:%SZ")
        )
    );

    // PAM_SILENT: refused all the same, and told nothing.
    let silent = sb.login("alice").silent().answer(&totp.code()).run();
    silent.expect(PAM_MAXTRIES);
    assert!(silent.messages.is_empty(), "{silent:?}");
}

/// With `combined` the module runs before any password is checked: a locked account is
/// refused without a word, so a stranger learns nothing from a message.
#[test]
fn a_locked_account_is_told_nothing_where_no_password_was_checked() {
    let sb = office_locking_after(3).enroll("alice", SECRET).service(
        "combined",
        "auth requisite {module} combined config={config} log_socket={log}\nauth required pam_permit.so\n",
    );
    let totp = Totp::new(SECRET);
    for _ in 0..3 {
        sb.login("alice")
            .answer(&totp.wrong_code())
            .run()
            .expect(Pam::AuthErr);
    }
    let login = sb
        .login("alice")
        .service("combined")
        .answer(&format!("any password{}", totp.code()))
        .run();
    login.expect(PAM_MAXTRIES);
    assert!(errors(&login).is_empty(), "{login:?}");
    assert!(login.infos().is_empty(), "{login:?}");
}

// --- the first code at enrollment --------------------------------------------------------------

/// `pam-mfa enroll alice --secret-stdin` at a terminal: util-linux's `script` gives it a
/// pseudo-terminal, fed with the secret and then `answers`, one line each.
fn enroll_at_a_terminal(sb: &Sandbox, answers: &[&str]) -> Finished {
    let mut command = vec![
        cli_path().display().to_string(),
        "enroll".into(),
        "alice".into(),
        "--secret-stdin".into(),
        "--qr".into(),
        "none".into(),
        "--config".into(),
        sb.policy_path().display().to_string(),
    ];
    command = command.iter().map(|w| shell_quote(w)).collect();
    let mut input = format!("{SECRET}\n");
    for answer in answers {
        input.push_str(answer);
        input.push('\n');
    }
    sb.shell(&format!(
        "printf %s {} | script -qec {} /dev/null",
        shell_quote(&input),
        shell_quote(&command.join(" "))
    ))
}

/// At a terminal two mistyped first codes (one of them no code at all) are asked again,
/// and the third, right one enrolls. It is used up: the login that follows in the same
/// step is refused as a replay, a deliberate choice (a code is good once).
#[test]
fn enrollment_at_a_terminal_allows_three_tries_and_uses_up_the_code_that_confirms() {
    let sb = office_locking_after(5);
    let totp = Totp::new(SECRET);
    avoid_step_boundary(30);
    let code = totp.code();
    let run = enroll_at_a_terminal(&sb, &[&totp.wrong_code(), "12345", &code]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("try again (2 left)"), "{run:?}");
    assert!(run.stdout.contains("try again (1 left)"), "{run:?}");
    assert!(run.stdout.contains("used up"), "{run:?}");
    assert!(sb.record_path("alice").is_file(), "{run:?}");

    sb.login("alice").answer(&code).run().expect(Pam::AuthErr);
    assert_eq!(sb.audit_line().get("reason"), "code already used");
}

/// Three wrong codes at a terminal save nothing; a script piping the code in gets one try.
#[test]
fn enrollment_gives_up_after_three_tries_and_a_script_gets_one() {
    let sb = office_locking_after(5);
    let totp = Totp::new(SECRET);
    let wrong = totp.wrong_code();
    let run = enroll_at_a_terminal(&sb, &[&wrong, &wrong, &wrong, &totp.code()]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.contains("after 3 tries; nothing was saved"),
        "{run:?}"
    );
    assert!(!sb.record_path("alice").exists(), "{run:?}");

    avoid_step_boundary(30);
    let piped = sb
        .pam_mfa(&["enroll", "alice", "--secret-stdin", "--qr", "none"])
        .stdin(&format!("{SECRET}\n{wrong}\n{}\n", totp.code()))
        .run();
    assert_eq!(piped.code, Some(1), "{piped:?}");
    assert!(!piped.stderr.contains("try again"), "{piped:?}");
    assert!(!sb.record_path("alice").exists(), "{piped:?}");
}

//! What a helpdesk is asked about, through the real libpam and the admin command: a phone
//! whose clock is off (the offset recorded and shown, near misses logged), a locked second
//! factor (told at the prompt, shown by status), and a mistyped first code at enrollment.

mod common;

use serde_json::Value;

use common::{avoid_step_boundary, sandbox, Pam, Sandbox, Totp, SECRET};

/// alice (1000, in wheel) must give a code, bob (1001) may; `max_failures` wrong codes
/// lock, and libpam is asked for no delay.
fn office(max_failures: u32) -> Sandbox {
    sandbox()
        .user("alice", 1000)
        .user("bob", 1001)
        .group("wheel", 10, &["alice"])
        .policy(&format!(
            r#"
store_dir = "{{store}}"
default_mode = "optional"
max_failures = {max_failures}
fail_delay_ms = 0

[[rule]]
name = "privileged"
groups = ["wheel"]
mode = "required"
"#
        ))
}

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
    let sb = office(5).enroll("alice", SECRET);
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
    let sb = office(5).enroll("alice", SECRET);
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

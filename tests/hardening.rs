//! Issue 18's hardening, through the real libpam (pamdrive, nss_wrapper accounts, codes from
//! oathtool): what an attack review found, each with the behaviour that closes it.

mod common;

use common::{sandbox, Pam, Sandbox, Totp, Transaction, SECRET};

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

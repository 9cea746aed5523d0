//! The conversation paths of the module under valgrind, through the real libpam: every
//! message the module sends (prompts, informational lines, the combined prompt, enrollment
//! at login with its several messages), also with an application that sets a new PAM_CONV
//! from inside its conversation function, which makes libpam free the struct it held.
//! valgrind's memcheck fails the run (`--error-exitcode`) on any invalid read or write.

mod common;

use common::{sandbox, Pam, Sandbox, Totp, Transaction, SECRET};

/// memcheck, failing on any error in the module or libpam; leaks are not errors here (a
/// process about to exit, and the applications' own allocations).
const VALGRIND: [&str; 5] = [
    "--quiet",
    "--error-exitcode=99",
    "--errors-for-leak-kinds=none",
    "--leak-check=no",
    "--trace-children=no",
];

const SELF_ENROLL: &str = r#"
store_dir = "{store}"
default_mode = "optional"

[[rule]]
name = "operators"
users = ["alice"]
mode = "required"
self_enroll = true
"#;

fn checked(login: common::Login<'_>) -> Transaction {
    login.run_under("valgrind", &VALGRIND).run()
}

fn assert_no_errors(run: &Transaction) {
    assert!(
        !run.output.stderr.contains("Invalid read") && !run.output.stderr.contains("Invalid write"),
        "{run:?}"
    );
}

/// Enrollment at login shows the QR code, then asks for the first code: two conversation
/// calls, with PAM_CONV replaced after each. (The answer is no code, so that no recovery
/// codes are hashed: Argon2 under valgrind takes minutes.)
#[test]
fn enrollment_at_login_survives_an_application_that_swaps_its_conversation() {
    let sb = sandbox().user("alice", 1000).policy(SELF_ENROLL);
    let run = checked(sb.login("alice").swap_conv().answer("not-a-code"));
    run.expect(Pam::AuthErr);
    assert_eq!(run.infos().len(), 1, "the QR code: {run:?}");
    assert_eq!(run.prompts().len(), 1, "the first code: {run:?}");
    assert_no_errors(&run);
}

fn enrolled() -> Sandbox {
    sandbox()
        .user("alice", 1000)
        .user("bob", 1001)
        .user("carol", 1002)
        .policy(
            "store_dir = \"{store}\"\ndefault_mode = \"required\"\n\
             [[rule]]\nname = \"newcomers\"\nusers = [\"bob\"]\nmode = \"required\"\n\
             enroll_by = 2099-01-01\n",
        )
        .enroll("alice", SECRET)
        .enroll("carol", SECRET)
}

#[test]
fn every_prompt_path_is_clean_under_valgrind_with_a_swapped_conversation() {
    let sb = enrolled();
    let totp = Totp::new(SECRET);
    common::avoid_step_boundary(30);
    // alice's application keeps its conversation, carol's swaps it at every call.
    for (enrolled, swap) in [("alice", false), ("carol", true)] {
        let login = |user: &str| {
            let login = sb.login(user);
            if swap {
                login.swap_conv()
            } else {
                login
            }
        };
        // A right code, then the same code replayed, in two rounds of one process.
        let run = checked(login(enrolled).repeat(2).answer(&totp.code()));
        assert_eq!(run.rounds, [Pam::Success, Pam::AuthErr], "{run:?}");
        assert_no_errors(&run);
        // NULL and empty answers, a failing conversation.
        for answer in ["@null", "@empty", "@convfail"] {
            let run = checked(login(enrolled).answer(answer));
            assert_ne!(run.rc(), Pam::Success, "{run:?}");
            assert_no_errors(&run);
        }
        // An unknown account gets the prompt too.
        let run = checked(login("nobody-here").answer("123456"));
        run.expect(Pam::UserUnknown);
        assert_no_errors(&run);
        // bob is required but in his enrollment grace: an informational line.
        let run = checked(login("bob"));
        run.expect_ignored();
        assert_eq!(run.infos().len(), 1, "{run:?}");
        assert_no_errors(&run);
    }
}

#[test]
fn the_combined_prompt_is_clean_under_valgrind_with_a_swapped_conversation() {
    let sb = enrolled().service(
        "combined",
        "auth required {module} config={config} log_socket={log} combined\n",
    );
    let totp = Totp::new(SECRET);
    common::avoid_step_boundary(30);
    let run = checked(
        sb.login("alice")
            .service("combined")
            .swap_conv()
            .answer(&format!("password{}", totp.code())),
    );
    run.expect(Pam::Success);
    assert_no_errors(&run);
}

//! The `combined` option: password and code typed as one secret. The module splits off
//! the code (the record's number of digits) and hands the rest on as PAM_AUTHTOK; the
//! next module, pam_exec with expose_authtok, checks that it got exactly the password.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{avoid_step_boundary, sandbox, Pam, Sandbox, Totp, SECRET};

const SERVICE: &str = "combined";

/// alice (required, enrolled) has password "correct horse"; bob (optional, not enrolled)
/// has "bob-pw-42".
fn office() -> Sandbox {
    let sb = sandbox()
        .user("alice", 1000)
        .user("bob", 1001)
        .group("wheel", 10, &["alice"])
        .policy(
            "store_dir = \"{store}\"\ndefault_mode = \"optional\"\nfail_delay_ms = 0\n\
             [[rule]]\nname = \"privileged\"\ngroups = [\"wheel\"]\nmode = \"required\"\n",
        )
        .enroll("alice", SECRET);
    let checker = sb.path("check-password.sh");
    fs::write(
        &checker,
        "#!/bin/sh\n# pam_exec hands the PAM_AUTHTOK on standard input.\nIFS= read -r given\n\
         case \"$PAM_USER:$given\" in\n  'alice:correct horse'|'bob:bob-pw-42') exit 0 ;;\nesac\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(&checker, fs::Permissions::from_mode(0o755)).unwrap();
    let stack = format!(
        "auth requisite {{module}} combined config={{config}} log_socket={{log}}\n\
         auth required pam_exec.so expose_authtok quiet {}\n",
        checker.display()
    );
    sb.service(SERVICE, &stack)
}

fn signs_in(sb: &Sandbox, user: &str, typed: &str) -> bool {
    let run = sb.pamtester(SERVICE, user, &format!("{typed}\n"));
    run.code == Some(0)
}

#[test]
fn password_and_code_in_one_prompt_signs_in() {
    let sb = office();
    let code = Totp::new(SECRET).code();
    assert!(signs_in(&sb, "alice", &format!("correct horse{code}")));
    let line = sb.audit_lines().pop().expect("an audit line");
    assert_eq!(line.get("outcome"), "success");
}

#[test]
fn the_code_part_is_checked_and_the_password_part_handed_on() {
    let sb = office();
    let totp = Totp::new(SECRET);
    // Right password, wrong code: the module refuses (requisite: the password is not tried).
    assert!(!signs_in(
        &sb,
        "alice",
        &format!("correct horse{}", totp.wrong_code())
    ));
    // Wrong password, right code: the code passes, the next module refuses the password.
    assert!(!signs_in(
        &sb,
        "alice",
        &format!("wrong horse{}", totp.code_in_steps(1))
    ));
    // Too short to hold a code.
    assert!(!signs_in(&sb, "alice", "12345"));
}

#[test]
fn an_account_without_a_code_hands_on_the_whole_secret() {
    let sb = office();
    assert!(signs_in(&sb, "bob", "bob-pw-42"));
    // Nothing is split off for bob: six more digits make a wrong password.
    assert!(!signs_in(&sb, "bob", "bob-pw-42123456"));
}

/// The code is checked before the password, so wrong codes there are counted apart: someone
/// who does not know the password can shut this way in for the account, not its other logins.
#[test]
fn wrong_codes_before_the_password_lock_only_the_combined_way_in() {
    let sb = office();
    let totp = Totp::new(SECRET);
    for _ in 0..5 {
        assert!(!signs_in(
            &sb,
            "alice",
            &format!("not the password{}", totp.wrong_code())
        ));
    }
    avoid_step_boundary(30);
    // Locked: even the right password and code are refused here...
    assert!(!signs_in(
        &sb,
        "alice",
        &format!("correct horse{}", totp.code())
    ));
    let line = sb.audit_lines().pop().expect("an audit line");
    assert!(line.get("reason").contains("locked"), "{line:#?}");
    let status = sb.pam_mfa(&["status", "alice"]).run();
    assert!(
        status
            .stdout
            .contains("combined: codes typed with the password are refused until"),
        "{status:?}"
    );
    // ...and the account's own prompt, which was never locked, still opens; the code that
    // was refused above was not used up.
    sb.login("alice")
        .answer(&totp.code())
        .run()
        .expect_prompted()
        .expect(Pam::Success);

    // Locked again, then unlocked by the admin.
    for _ in 0..5 {
        assert!(!signs_in(
            &sb,
            "alice",
            &format!("not the password{}", totp.wrong_code())
        ));
    }
    let unlock = sb.pam_mfa(&["unlock", "alice", "--yes"]).run();
    assert_eq!(unlock.code, Some(0), "{unlock:?}");
    assert!(signs_in(
        &sb,
        "alice",
        &format!("correct horse{}", totp.code_in_steps(1))
    ));
}

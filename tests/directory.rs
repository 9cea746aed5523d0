//! Accounts as directories (LDAP, SSSD, Active Directory) give them, through the real
//! libpam and the admin command with nss_wrapper: group ids without a name, groups that
//! share one gid, a second passwd name for one uid, and groups the policy names that NSS
//! does not know.

mod common;

use common::{avoid_step_boundary, sandbox, Pam, Sandbox, Totp, SECRET};

/// A required rule on the group `admins`; everyone else optional.
const ADMINS_REQUIRED: &str = r#"
store_dir = "{store}"
default_mode = "optional"
fail_delay_ms = 0

[[rule]]
name = "admins"
groups = ["admins"]
mode = "required"
"#;

/// carol's primary gid 4242 is in no group file, as a directory's gidNumber often is.
fn nameless_primary_gid() -> Sandbox {
    sandbox()
        .user_with_gid("carol", 1003, 4242)
        .user("dave", 1004)
        .group("admins", 20, &["dave"])
        .policy(ADMINS_REQUIRED)
}

#[test]
fn a_primary_gid_without_a_name_is_no_error() {
    let sb = nameless_primary_gid();

    // Optional and unenrolled: ignored, as the default says.
    sb.login("carol")
        .run()
        .expect_not_prompted()
        .expect_ignored();
    sb.audit_line()
        .expect("carol", "optional", "default", "ignore");

    // She enrolls through the CLI, then is asked and let in with the right code.
    let sb = sb.enroll_with_cli("carol", SECRET);
    sb.login("carol")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect_prompted()
        .expect(Pam::Success);
    sb.audit_line()
        .expect("carol", "optional", "default", "success");

    for args in [
        &["status", "carol"][..],
        &["policy", "explain", "carol"],
        &["policy", "explain", "carol", "--json"],
    ] {
        let run = sb.pam_mfa(args).run();
        assert_eq!(run.code, Some(0), "{args:?}: {run:?}");
    }
    let json = sb
        .pam_mfa(&["policy", "explain", "carol", "--json"])
        .run()
        .stdout;
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["gids"], serde_json::json!([4242]), "{json}");
    assert_eq!(value["mode"], "optional", "{json}");
}

#[test]
fn a_nameless_gid_does_not_hide_a_group_rule() {
    // dave's primary group is nameless; admins (by its member list) still brings its rule.
    let sb = sandbox()
        .user_with_gid("dave", 1004, 4242)
        .group("admins", 20, &["dave"])
        .policy(ADMINS_REQUIRED)
        .enroll("dave", SECRET);
    sb.login("dave")
        .answer(&Totp::new(SECRET).wrong_code())
        .run()
        .expect_prompted()
        .expect(Pam::AuthErr);
    sb.audit_line().expect("dave", "required", "admins", "deny");

    // A primary gid that the policy's group has: a member by gid, as the kernel sees it.
    let sb = sandbox()
        .user_with_gid("erin", 1005, 20)
        .group("admins", 20, &[])
        .policy(ADMINS_REQUIRED);
    sb.login("erin")
        .answer("123456")
        .run()
        .expect_prompted()
        .expect(Pam::AuthErr);
    sb.audit_line().expect("erin", "required", "admins", "deny");
}

/// `wheel:x:10:carol` and `admins:x:10:dave`: NSS names gid 10 "wheel", but it is one group
/// to the kernel. A rule on admins must reach dave (and carol: the same gid).
#[test]
fn groups_that_share_a_gid_are_one_group() {
    let sb = sandbox()
        .user("carol", 1002)
        .user("dave", 1003)
        .user("frank", 1006)
        .group("wheel", 10, &["carol"])
        .group("admins", 10, &["dave"])
        .policy(ADMINS_REQUIRED);
    for user in ["dave", "carol"] {
        sb.login(user)
            .answer("123456")
            .run()
            .expect_prompted()
            .expect(Pam::AuthErr);
        sb.audit_line().expect(user, "required", "admins", "deny");
    }
    sb.login("frank")
        .run()
        .expect_not_prompted()
        .expect_ignored();
    sb.audit_line()
        .expect("frank", "optional", "default", "ignore");

    let explained = sb.pam_mfa(&["policy", "explain", "dave"]).run();
    assert!(
        explained
            .stdout
            .contains("rule 'admins' matches through group 'admins' (gid 10)"),
        "{explained:?}"
    );
    let json = sb
        .pam_mfa(&["policy", "explain", "dave", "--json"])
        .run()
        .stdout;
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        value["via"],
        serde_json::json!({ "kind": "group", "group": "admins", "gid": 10 }),
        "{json}"
    );
    assert_eq!(
        value["groups"],
        serde_json::json!([{ "name": "admins", "gid": 10 }]),
        "{json}"
    );

    let check = sb.pam_mfa(&["policy", "check"]).run();
    assert_eq!(check.code, Some(0), "{check:?}");
    let policy = sb.policy_path();
    let expected = format!(
        "{}:6: warning: rule \"admins\": group \"admins\" shares gid 10 with \"wheel\": one group",
        policy.display()
    );
    assert!(
        check.stdout.lines().any(|l| l.starts_with(&expected)),
        "{check:?}"
    );
    let strict = sb.pam_mfa(&["policy", "check", "--strict"]).run();
    assert_eq!(strict.code, Some(1), "{strict:?}");
}

#[test]
fn a_policy_group_nss_does_not_know_matches_nobody_and_is_reported() {
    let sb = sandbox()
        .user("alice", 1000)
        .group("wheel", 10, &["alice"])
        .policy(
            r#"
store_dir = "{store}"
default_mode = "optional"

[[rule]]
name = "typo"
groups = ["whee1", "wheel"]
mode = "required"
"#,
        )
        .service(
            "debug",
            "auth required {module} debug config={config} log_socket={log}\n",
        );
    // The known group still counts.
    sb.login("alice")
        .service("debug")
        .answer("123456")
        .run()
        .expect(Pam::AuthErr);
    let lines = sb.audit_lines();
    let debug = lines
        .iter()
        .find(|l| l.raw.contains("debug: "))
        .unwrap_or_else(|| panic!("no debug line: {lines:#?}"));
    assert!(debug.raw.contains("unknown_groups=whee1 "), "{debug:?}");
    assert!(debug.raw.contains("groups=wheel(10) "), "{debug:?}");

    let check = sb.pam_mfa(&["policy", "check"]).run();
    assert_eq!(check.code, Some(0), "{check:?}");
    // At the groups key's line, not the [[rule]] header's.
    let expected = format!(
        "{}:7: warning: rule \"typo\": group \"whee1\" is not known to NSS: it matches nobody",
        sb.policy_path().display()
    );
    assert!(check.stdout.lines().any(|l| l == expected), "{check:?}");
    let strict = sb.pam_mfa(&["policy", "check", "--strict"]).run();
    assert_eq!(strict.code, Some(1), "{strict:?}");
    assert!(strict.stdout.contains(&expected), "{strict:?}");

    let explained = sb.pam_mfa(&["policy", "explain", "alice"]).run();
    assert!(
        explained
            .stdout
            .contains("group \"whee1\" is not known to NSS and matches nobody"),
        "{explained:?}"
    );
}

/// alice2 has alice's uid: to the kernel, the same account. A rule naming alice names it.
#[test]
fn a_second_passwd_name_of_a_uid_is_named_by_the_first() {
    let sb = sandbox()
        .user("alice", 1000)
        .user_with_gid("alice2", 1000, 1000)
        .user("bob", 1001)
        .policy(
            r#"
store_dir = "{store}"
default_mode = "exempt"
fail_delay_ms = 0

[[rule]]
name = "alice"
users = ["alice"]
mode = "required"
"#,
        )
        .enroll("alice2", SECRET);
    sb.login("alice2")
        .answer(&Totp::new(SECRET).wrong_code())
        .run()
        .expect_prompted()
        .expect(Pam::AuthErr);
    sb.audit_line()
        .expect("alice2", "required", "alice", "deny");
    sb.login("alice2")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect(Pam::Success);
    sb.audit_line()
        .expect("alice2", "required", "alice", "success");
    sb.login("bob").run().expect_not_prompted().expect_ignored();
    sb.audit_line().expect("bob", "exempt", "default", "ignore");

    let explained = sb.pam_mfa(&["policy", "explain", "alice2"]).run();
    assert!(
        explained
            .stdout
            .contains("rule 'alice' matches through user 'alice' (same uid 1000)"),
        "{explained:?}"
    );
}

/// Names as SSSD and Active Directory give them (an `@`, a space, longer than 32 bytes) go
/// through the module and every admin command like any other name.
#[test]
fn directory_style_names_are_accounts_like_any_other() {
    let longest = format!("{}@corp.example.com", "f".repeat(220 - 17));
    for name in [
        "firstname.lastname@corp.example.com",
        "john smith",
        longest.as_str(),
    ] {
        let sb = sandbox()
            .user_with_gid(name, 1500, 100)
            .group("users", 100, &[])
            .policy(&format!(
                "store_dir = \"{{store}}\"\ndefault_mode = \"exempt\"\nfail_delay_ms = 0\nmax_failures = 2\n\n[[rule]]\nname = \"named\"\nusers = [{name:?}]\nmode = \"required\"\n"
            ));
        // The audit line's user field turns a space into `?`.
        let logged = name.replace(' ', "?");
        sb.login(name)
            .answer("123456")
            .run()
            .expect_prompted()
            .expect(Pam::AuthErr);
        sb.audit_line().expect(&logged, "required", "named", "deny");

        let sb = sb.enroll_with_cli(name, SECRET);
        assert!(sb.record_path(name).exists(), "{name}");
        avoid_step_boundary(30);
        let totp = Totp::new(SECRET);
        sb.login(name)
            .answer(&totp.code())
            .run()
            .expect(Pam::Success);
        sb.audit_line()
            .expect(&logged, "required", "named", "success");

        // Locked by two wrong codes, then unlocked by name.
        for _ in 0..2 {
            sb.login(name)
                .answer(&totp.wrong_code())
                .run()
                .expect(Pam::AuthErr);
        }
        sb.audit_lines();
        let status = sb.pam_mfa(&["status", name, "--json"]).run();
        assert_eq!(status.code, Some(0), "{name}: {status:?}");
        let rows: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
        assert_eq!(rows[0]["user"], name, "{status:?}");
        assert!(rows[0]["locked_until"].is_u64(), "{status:?}");
        let unlock = sb.pam_mfa(&["unlock", name, "--yes"]).run();
        assert_eq!(unlock.code, Some(0), "{name}: {unlock:?}");
        sb.login(name)
            .answer(&totp.code_in_steps(1))
            .run()
            .expect(Pam::Success);
        sb.audit_lines();

        let recovery = sb.pam_mfa(&["recovery", name, "--yes"]).run();
        assert_eq!(recovery.code, Some(0), "{name}: {recovery:?}");
        let uri = format!(
            "otpauth://totp/Example:x?secret={}&issuer=Example\n",
            common::OTHER_SECRET
        );
        let import = sb
            .pam_mfa(&["import", "uri", "--user", name, "--force"])
            .stdin(&uri)
            .run();
        assert_eq!(import.code, Some(0), "{name}: {import:?}");
        let explain = sb.pam_mfa(&["policy", "explain", name]).run();
        assert_eq!(explain.code, Some(0), "{name}: {explain:?}");
        assert!(explain.stdout.contains("enrolled:  yes"), "{explain:?}");

        let remove = sb.pam_mfa(&["remove", name, "--yes"]).run();
        assert_eq!(remove.code, Some(0), "{name}: {remove:?}");
        assert!(!sb.record_path(name).exists(), "{name}");
        let leftovers: Vec<_> = std::fs::read_dir(sb.store()).unwrap().collect();
        assert!(leftovers.is_empty(), "{name}: {leftovers:?}");
    }
}

/// A name the store cannot hold is refused by the admin command with the reason, and by the
/// module as an unknown account (the same prompt, then a refusal).
#[test]
fn a_name_too_long_for_the_store_is_refused_with_the_reason() {
    let name = format!("{}@corp.example.com", "f".repeat(221 - 17));
    let sb = sandbox().user_with_gid(&name, 1500, 100);
    let run = sb
        .pam_mfa(&["enroll", &name, "--secret-stdin", "--no-confirm"])
        .stdin(&format!("{SECRET}\n"))
        .run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("it is 221 bytes long; the store's file names hold at most 220"),
        "{run:?}"
    );
    sb.login(&name)
        .answer("123456")
        .run()
        .expect_prompted()
        .expect(Pam::UserUnknown);
}

/// Active Directory's groups through SSSD have spaces and a domain: the policy names them
/// as NSS does.
#[test]
fn a_directory_group_with_a_space_is_a_policy_group() {
    let group = "domain admins@corp.example.com";
    let sb = sandbox()
        .user("dave", 1004)
        .user("frank", 1006)
        .group(group, 30, &["dave"])
        .policy(&format!(
            "store_dir = \"{{store}}\"\ndefault_mode = \"optional\"\n\n[[rule]]\nname = \"admins\"\ngroups = [{group:?}]\nmode = \"required\"\n"
        ));
    sb.login("dave")
        .answer("123456")
        .run()
        .expect_prompted()
        .expect(Pam::AuthErr);
    sb.audit_line().expect("dave", "required", "admins", "deny");
    sb.login("frank")
        .run()
        .expect_not_prompted()
        .expect_ignored();
    sb.audit_lines();
    let check = sb.pam_mfa(&["policy", "check", "--strict"]).run();
    assert_eq!(check.code, Some(0), "{check:?}");
}

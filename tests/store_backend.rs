//! The policy's `[store]` table through the built module and the admin command: a policy
//! that names the PostgreSQL backend is never served from the file store in its place
//! (the module hands it on without a prompt; every subcommand opens the database, and
//! fails when it cannot, never falling back to the files), and `pam-mfa policy check`
//! checks the files it names. The fleet store at work is in tests/fleet.rs.

mod common;

use std::fs;

use common::{sandbox, write_file, Pam, Sandbox, Totp, SECRET};

/// alice must give a code and is enrolled in the file store; the policy names PostgreSQL.
fn fleet_policy(extra: &str) -> Sandbox {
    sandbox()
        .user("alice", 1000)
        .user("bob", 1001)
        .group("wheel", 10, &["alice"])
        .policy(&fleet_text(extra))
        .enroll("alice", SECRET)
}

/// The policy: `extra` starts at line 8, inside `[store]`.
fn fleet_text(extra: &str) -> String {
    format!(
        r#"store_dir = "{{store}}"
default_mode = "optional"
fail_delay_ms = 0

[store]
backend = "postgresql"
connection = "host=localhost dbname=pam_mfa user=pam_mfa_module"
{extra}
[[rule]]
name = "privileged"
groups = ["wheel"]
mode = "required"
"#
    )
}

const FILES: &str = r#"ca_file = "/etc/pam-mfa/db-ca.pem"
password_file = "/etc/pam-mfa/db.pass"
secret_key_file = "/etc/pam-mfa/store.key"
"#;

/// A valid code in the file store must not let an account in when the policy names the
/// fleet's store: the module opens only the file backend, so it asks nothing and hands the
/// login to the helper, which opens the database (here its password file is missing, so it
/// fails closed). The helper runs without nss_wrapper: daemon is an account every Debian has.
#[test]
fn the_module_never_serves_a_postgresql_policy_from_the_file_store() {
    let Some((_dir, helper)) = common::installed_helper() else {
        eprintln!("skipped: a setuid helper needs root to install");
        return;
    };
    let sb = fleet_policy(FILES)
        .user("daemon", 1)
        .enroll("daemon", SECRET)
        .service(
            common::SERVICE,
            &format!(
                "auth required {{module}} config={{config}} log_socket={{log}} helper={}\n",
                helper.display()
            ),
        );
    let code = Totp::new(SECRET).code();
    sb.login("daemon")
        .answer(&code)
        .run()
        .expect(Pam::AuthinfoUnavail)
        .expect_not_prompted();
    let line = sb.audit_line();
    assert!(
        line.get("reason")
            .contains("/etc/pam-mfa/db.pass: cannot open"),
        "{}",
        line.raw
    );
    // Nothing was written to the file store either.
    assert!(!sb.store().join("daemon.state").exists());
}

/// Every subcommand opens its store through one function, which names the backend the
/// policy asks for and never falls back to the files: here the password file does
/// not exist, and every subcommand fails on it, in one line.
#[test]
fn every_subcommand_opens_the_postgresql_backend_never_the_files() {
    let sb = fleet_policy(FILES);
    let record = fs::read(sb.record_path("alice")).unwrap();
    for args in [
        &["status"][..],
        &["status", "alice"],
        &["unlock", "alice", "-y"],
        &["remove", "alice", "-y"],
        &["recovery", "alice", "-y"],
        &["enroll", "bob", "--no-confirm", "--qr", "none"],
        &["policy", "explain", "alice"],
    ] {
        let run = sb.pam_mfa(args).run();
        assert_ne!(run.code, Some(0), "{args:?}: {run:?}");
        assert!(
            run.stderr.contains("/etc/pam-mfa/db.pass: cannot open"),
            "{args:?}: {run:?}"
        );
        assert_eq!(run.stderr.trim().lines().count(), 1, "{args:?}: {run:?}");
    }
    assert_eq!(fs::read(sb.record_path("alice")).unwrap(), record);
    assert!(!sb.record_path("bob").exists());
}

/// `pam-mfa policy check` checks each file `[store]` names as the policy's own path is
/// checked, at its key's line, and a file holding a secret must be 0600; it never prints
/// what a file holds.
#[test]
fn policy_check_checks_the_files_of_the_store() {
    let sb = fleet_policy(FILES);
    let place = |name: &str| sb.path(name);
    let files = format!(
        "ca_file = \"{}\"\npassword_file = \"{}\"\nsecret_key_file = \"{}\"\n",
        place("db-ca.pem").display(),
        place("db.pass").display(),
        place("store.key").display()
    );
    let sb = sb.policy(&fleet_text(&files));
    let place = |name: &str| sb.path(name);
    write_file(&place("db-ca.pem"), "-----BEGIN CERTIFICATE-----\n", 0o644);
    write_file(&place("db.pass"), "hunter2-in-the-file\n", 0o640);
    let run = sb.pam_mfa(&["policy", "check"]).run();
    assert_eq!(run.code, Some(1), "{run:?}");
    let policy = sb.policy_path().display().to_string();
    assert!(
        run.stdout.contains(&format!(
            "{policy}:9: error: password_file: {} has mode 0640; it holds a secret and must be 0600",
            place("db.pass").display()
        )),
        "{run:?}"
    );
    assert!(
        run.stdout.contains(&format!(
            "{policy}:10: error: secret_key_file: {}: does not exist",
            place("store.key").display()
        )),
        "{run:?}"
    );
    assert!(!run.stdout.contains("ca_file"), "{run:?}");
    assert!(!run.stdout.contains("hunter2"), "{run:?}");

    write_file(&place("db.pass"), "hunter2-in-the-file\n", 0o600);
    write_file(&place("store.key"), &"k".repeat(32), 0o600);
    fs::set_permissions(
        place("db-ca.pem"),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let run = sb.pam_mfa(&["policy", "check"]).run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "{policy}:8: error: ca_file: {} has mode 0666; it must not be writable by group or others",
            place("db-ca.pem").display()
        )),
        "{run:?}"
    );
}

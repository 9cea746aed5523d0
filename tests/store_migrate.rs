//! `pam-mfa store migrate --from DIR`: two hosts' file stores brought into one store (the
//! policy's), then used through the module: the higher step wins, a recovery code used on
//! either host stays used, an account whose secret differs between the hosts is refused
//! and reported while the rest are migrated, and a second run changes nothing.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{
    avoid_step_boundary, recovery_codes, sandbox, Pam, Sandbox, Totp, OTHER_SECRET, SECRET,
};

/// A policy whose store is `dir` ({store}: the sandbox's own).
fn policy_at(sb: Sandbox, dir: &str) -> Sandbox {
    sb.policy(&format!(
        "store_dir = \"{dir}\"\ndefault_mode = \"optional\"\nfail_delay_ms = 0\n"
    ))
}

fn host_dir(sb: &Sandbox, name: &str) -> PathBuf {
    let dir = sb.path(name);
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// Enrolls `user` with `secret` through the CLI; its recovery codes.
fn enroll(sb: &Sandbox, user: &str, secret: &str) -> Vec<String> {
    let run = sb
        .pam_mfa(&["enroll", user, "--secret-stdin", "--no-confirm"])
        .stdin(&format!("{secret}\n"))
        .run();
    assert_eq!(run.code, Some(0), "{run:?}");
    let codes = recovery_codes(&run.stdout);
    assert_eq!(codes.len(), 10, "{run:?}");
    codes
}

/// Every file of a directory and its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                fs::read(entry.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn two_hosts_migrate_into_one_store_and_their_ledgers_hold_there() {
    let sb = sandbox()
        .user("alice", 1000)
        .user("bob", 1001)
        .user("carol", 1002);
    let a = host_dir(&sb, "host-a");
    let b = host_dir(&sb, "host-b");
    let (a_text, b_text) = (a.display().to_string(), b.display().to_string());

    // Host A: alice and carol. Host B starts as a copy of A (the same codes), then gets
    // bob, and carol with another secret.
    let sb = policy_at(sb, &a_text);
    let codes = enroll(&sb, "alice", SECRET);
    enroll(&sb, "carol", SECRET);
    for (name, bytes) in contents(&a) {
        fs::write(b.join(&name), bytes).unwrap();
        fs::set_permissions(b.join(&name), fs::Permissions::from_mode(0o600)).unwrap();
    }
    let sb = policy_at(sb, &b_text);
    enroll(&sb, "bob", OTHER_SECRET);
    let run = sb
        .pam_mfa(&[
            "enroll",
            "carol",
            "--secret-stdin",
            "--no-confirm",
            "--force",
        ])
        .stdin(&format!("{OTHER_SECRET}\n"))
        .run();
    assert_eq!(run.code, Some(0), "{run:?}");

    // alice uses a TOTP code and a recovery code on A, another recovery code on B.
    avoid_step_boundary(30);
    let code = Totp::new(SECRET).code();
    let sb = policy_at(sb, &a_text);
    sb.login("alice").answer(&code).run().expect(Pam::Success);
    sb.login("alice")
        .answer(&codes[0])
        .run()
        .expect(Pam::Success);
    let sb = policy_at(sb, &b_text);
    sb.login("alice")
        .answer(&codes[1])
        .run()
        .expect(Pam::Success);

    // Into the sandbox's own (empty) store: A, then B.
    let sb = policy_at(sb, "{store}");
    let run = sb.pam_mfa(&["store", "migrate", "--from", &a_text]).run();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("alice: added from"), "{run:?}");
    assert!(run.stdout.contains("carol: added from"), "{run:?}");
    assert!(
        run.stdout
            .contains("2 added, 0 merged, 0 unchanged, 0 refused, 0 failed"),
        "{run:?}"
    );
    let carol = fs::read(sb.record_path("carol")).unwrap();

    let run = sb.pam_mfa(&["store", "migrate", "--from", &b_text]).run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("alice: merged from"), "{run:?}");
    assert!(run.stdout.contains("bob: added from"), "{run:?}");
    assert!(
        run.stderr.contains("carol: refused: the secret in"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("1 added, 1 merged, 0 unchanged, 1 refused, 0 failed"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("1 account(s) not migrated; the others were"),
        "{run:?}"
    );
    assert_eq!(fs::read(sb.record_path("carol")).unwrap(), carol);

    // A second run of both changes nothing, and says so.
    let before = contents(&sb.store());
    let run = sb
        .pam_mfa(&["store", "migrate", "--from", &a_text, "--from", &b_text])
        .run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout
            .contains("0 added, 0 merged, 4 unchanged, 1 refused, 0 failed"),
        "{run:?}"
    );
    assert_eq!(contents(&sb.store()), before);

    // The step used on A is used here; so are the recovery codes used on A and on B.
    sb.login("alice").answer(&code).run().expect(Pam::AuthErr);
    sb.login("alice")
        .answer(&codes[0])
        .run()
        .expect(Pam::AuthErr);
    sb.login("alice")
        .answer(&codes[1])
        .run()
        .expect(Pam::AuthErr);
    sb.login("alice")
        .answer(&codes[2])
        .run()
        .expect(Pam::Success);
    sb.login("bob")
        .answer(&Totp::new(OTHER_SECRET).code())
        .run()
        .expect(Pam::Success);
}

#[test]
fn a_source_that_is_not_a_safe_store_is_refused_before_anything_is_written() {
    let sb = sandbox().user("alice", 1000);
    let a = host_dir(&sb, "host-a");
    let sb = policy_at(sb, &a.display().to_string());
    enroll(&sb, "alice", SECRET);
    let loose = sb.path("loose");
    fs::create_dir(&loose).unwrap();
    fs::set_permissions(&loose, fs::Permissions::from_mode(0o755)).unwrap();
    let sb = policy_at(sb, "{store}");
    let run = sb
        .pam_mfa(&[
            "store",
            "migrate",
            "--from",
            &a.display().to_string(),
            "--from",
            &loose.display().to_string(),
        ])
        .run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.starts_with("pam-mfa: --from: "), "{run:?}");
    assert!(run.stderr.contains("has mode 0755"), "{run:?}");
    assert!(contents(&sb.store()).is_empty());
}

//! `pam-mfa-user` on a fleet: self-service through the real setuid helper against the
//! private PostgreSQL (tests/pg/start.sh), on "host A", and its effect seen through the
//! real libpam on "host B" (a second policy file naming the same database).
//!
//! The helper clears its environment and serves the account of its caller's real uid, so
//! the account is root's (the tests run as root, who may name the hosts' policies).

mod common;

use std::path::{Path, PathBuf};

use common::me::user_cli;
use common::pg::{cluster, own_cluster, Cluster, Db, Role};
use common::*;
use tempfile::TempDir;

/// A policy of the fleet for `role`: five wrong codes lock for ten minutes.
fn policy(pg: &Cluster, db: &Db, role: Role) -> String {
    format!(
        "store_dir = \"{{store}}\"\ndefault_mode = \"optional\"\nfail_delay_ms = 0\n\
         max_failures = 5\nlockout_seconds = 600\n\n{}",
        db.store_table(pg, role)
    )
}

/// A host of the fleet: its policy names the module role, its stack relays to `helper`.
fn host(pg: &Cluster, db: &Db, helper: &Path) -> Sandbox {
    sandbox().policy(&policy(pg, db, Role::Module)).service(
        SERVICE,
        &format!(
            "auth required {{module}} config={{config}} log_socket={{log}} helper={}\n",
            helper.display()
        ),
    )
}

/// root enrolled from the admin host, and two hosts on the same database.
struct Fleet {
    pg: &'static Cluster,
    db: Db,
    a: Sandbox,
    b: Sandbox,
    helper: (TempDir, PathBuf),
    /// The recovery codes the admin's enrollment gave.
    codes: Vec<String>,
}

fn fleet() -> Fleet {
    let pg = cluster();
    let db = pg.database();
    let helper = installed_helper().expect("the fleet tests run as root (as CI does)");
    let codes = enroll_root(pg, &db);
    Fleet {
        a: host(pg, &db, &helper.1),
        b: host(pg, &db, &helper.1),
        pg,
        db,
        helper,
        codes,
    }
}

/// Enrolls root with SECRET through the admin host's `pam-mfa enroll`; its recovery codes.
fn enroll_root(pg: &Cluster, db: &Db) -> Vec<String> {
    let admin = sandbox().policy(&policy(pg, db, Role::Admin));
    let run = admin
        .pam_mfa(&["enroll", "root", "--secret-stdin", "--no-confirm"])
        .stdin(&format!("{SECRET}\n"))
        .run();
    assert_eq!(run.code, Some(0), "{run:?}");
    let codes = recovery_codes(&run.stdout);
    assert_eq!(codes.len(), 10, "{run:?}");
    codes
}

const MAXTRIES: Pam = Pam::Other(11);

fn reasons(host: &Sandbox) -> Vec<String> {
    host.audit_lines()
        .iter()
        .map(|l| l.get("reason").to_owned())
        .collect()
}

#[test]
fn status_shows_my_fleet_record() {
    let f = fleet();
    avoid_step_boundary(30);
    f.b.login("root")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect(Pam::Success);
    let run = user_cli(&f.a, &f.helper.1, "status", &[], None);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for expected in [
        "account: root",
        "kind: totp SHA1, 6 digits, every 30 s",
        "recovery codes left: 10",
        "second factor: not locked",
    ] {
        assert!(run.stdout.contains(expected), "{expected}: {}", run.stdout);
    }
    // The login on host B is the fleet's, so host A shows it.
    assert!(
        !run.stdout.contains("last successful login: never"),
        "{}",
        run.stdout
    );
    // Nothing went to host A's files.
    assert_eq!(std::fs::read_dir(f.a.store()).unwrap().count(), 0);
}

#[test]
fn a_secret_rotated_on_host_a_replaces_the_old_one_on_host_b() {
    let f = fleet();
    let before = f.pg.psql(
        &f.db.name,
        "SELECT key_id || ' ' || encode(nonce, 'hex') FROM accounts",
    );
    avoid_step_boundary(30);
    let code = Totp::new(SECRET).code();
    let run = user_cli(
        &f.a,
        &f.helper.1,
        "rotate",
        &[&code],
        Some(&|uri: &str| Totp::new(&uri_secret(uri)).code()),
    );
    assert_eq!(run.code, Some(0), "{} {}", run.stdout, run.stderr);
    let uri = run
        .stdout
        .lines()
        .find(|l| l.starts_with("otpauth://"))
        .expect("the new secret's link");
    let new_secret = uri_secret(uri);
    assert_ne!(new_secret, SECRET);
    assert_eq!(recovery_codes(&run.stdout).len(), 10);
    let lines = reasons(&f.a);
    assert!(
        lines.iter().any(|r| r == "valid code")
            && lines
                .iter()
                .any(|r| r.starts_with("self-service: new secret")),
        "{lines:?}"
    );

    // Sealed like any other: under the same key, a new nonce, never in clear.
    let after = f.pg.psql(
        &f.db.name,
        "SELECT key_id || ' ' || encode(nonce, 'hex') FROM accounts",
    );
    assert_eq!(before.split(' ').next(), after.split(' ').next());
    assert_ne!(before, after);
    let dump = f.pg.dump(&f.db.name);
    assert!(
        !dump.contains(&new_secret),
        "the new secret is in the dump in clear"
    );

    // Host B: the old secret's next code is wrong, the new secret's works; the old
    // recovery codes went with the old secret.
    let old = Totp::new(SECRET).code_in_steps(1);
    f.b.login("root").answer(&old).run().expect(Pam::AuthErr);
    f.b.login("root")
        .answer(&f.codes[0])
        .run()
        .expect(Pam::AuthErr);
    let new = Totp::new(&new_secret).code_in_steps(1);
    f.b.login("root").answer(&new).run().expect(Pam::Success);
}

#[test]
fn new_recovery_codes_end_the_old_ones_on_every_host_and_the_proof_is_used_up() {
    let f = fleet();
    avoid_step_boundary(30);
    let code = Totp::new(SECRET).code();
    let run = user_cli(&f.a, &f.helper.1, "recovery", &[&code], None);
    assert_eq!(run.code, Some(0), "{} {}", run.stdout, run.stderr);
    let codes = recovery_codes(&run.stdout);
    assert_eq!(codes.len(), 10, "{}", run.stdout);
    assert!(
        reasons(&f.a)
            .iter()
            .any(|r| r.starts_with("self-service: 10 new recovery codes")),
        "the change is an audit line"
    );
    // The code that proved it is used up for the whole fleet.
    f.b.login("root").answer(&code).run().expect(Pam::AuthErr);
    let line = f.b.audit_line();
    assert_eq!(line.get("reason"), "code already used", "{}", line.raw);
    // An old recovery code is refused on host B, a new one accepted.
    f.b.login("root")
        .answer(&f.codes[0])
        .run()
        .expect(Pam::AuthErr);
    f.b.login("root")
        .answer(&codes[0])
        .run()
        .expect(Pam::Success);
    assert_eq!(
        f.pg.psql(
            &f.db.name,
            "SELECT count(*) FROM recovery WHERE account = 'root' AND NOT used"
        )
        .trim(),
        "9"
    );
}

#[test]
fn a_wrong_proof_on_host_a_counts_toward_the_lockout_on_host_b() {
    let f = fleet();
    let wrong = Totp::new(SECRET).wrong_code();
    let run = user_cli(&f.a, &f.helper.1, "rotate", &[&wrong], None);
    assert_eq!(run.code, Some(1), "{} {}", run.stdout, run.stderr);
    assert!(!run.stdout.contains("otpauth://"), "{}", run.stdout);
    assert_eq!(
        f.pg.psql(
            &f.db.name,
            "SELECT failures FROM state WHERE account = 'root'"
        )
        .trim(),
        "1"
    );
    // Four more on host B make five: locked for both hosts.
    for _ in 0..4 {
        f.b.login("root").answer(&wrong).run().expect(Pam::AuthErr);
    }
    let code = Totp::new(SECRET).code();
    f.b.login("root")
        .answer(&code)
        .run()
        .expect(MAXTRIES)
        .expect_not_prompted();
    // And self-service on host A says so, changing nothing.
    let locked = user_cli(&f.a, &f.helper.1, "recovery", &[&code], None);
    assert_eq!(locked.code, Some(1), "{}", locked.stdout);
    assert!(locked.stderr.contains("locked"), "{}", locked.stderr);
    let status = user_cli(&f.a, &f.helper.1, "status", &[], None);
    assert!(
        status.stdout.contains("second factor: locked until"),
        "{}",
        status.stdout
    );
}

#[test]
fn with_the_database_stopped_self_service_is_refused() {
    let own = own_cluster();
    let pg = &own.cluster;
    let db = pg.database();
    let helper = installed_helper().expect("the fleet tests run as root (as CI does)");
    enroll_root(pg, &db);
    let a = host(pg, &db, &helper.1);
    pg.stop();
    let code = Totp::new(SECRET).code();
    for (action, answers) in [("status", vec![]), ("rotate", vec![code.as_str()])] {
        let run = user_cli(&a, &helper.1, action, &answers, None);
        assert_eq!(run.code, Some(1), "{action}: {}", run.stdout);
        assert!(!run.stdout.contains("otpauth://"), "{}", run.stdout);
        assert!(
            run.stderr
                .contains("Your second factor's store cannot be used: fleet store (connect)"),
            "{action}: {}",
            run.stderr
        );
        let line = a.audit_line();
        assert_eq!(line.get("outcome"), "error", "{}", line.raw);
        assert!(!line.raw.contains(&code), "{}", line.raw);
    }
}

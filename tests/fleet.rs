//! A fleet: hosts whose policies name one PostgreSQL store (tests/pg/start.sh), and an
//! admin host whose policy names the same store with the admin role. The admin command
//! works on it through the store interface; logins go through the real libpam: the module
//! hands them to the helper pam-mfa-check, which opens the database.
//!
//! The helper clears its environment, so no nss_wrapper there: the fleet's accounts are
//! ones every Debian has (daemon: required by a rule, bin: exempt, nobody: optional).

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::pg::{cluster, own_cluster, Cluster, Db, Role};
use common::*;
use tempfile::TempDir;

/// The policy of a host of the fleet (or of the admin host, with `Role::Admin`): daemon
/// must give a code, bin is exempt, everyone else is optional.
fn policy(pg: &Cluster, db: &Db, role: Role) -> String {
    format!(
        "store_dir = \"{{store}}\"\ndefault_mode = \"optional\"\nfail_delay_ms = 0\n\
         max_failures = 5\nlockout_seconds = 600\n\n{}\n\
         [[rule]]\nname = \"ops\"\nusers = [\"daemon\"]\nmode = \"required\"\n\n\
         [[rule]]\nname = \"batch\"\nusers = [\"bin\"]\nmode = \"exempt\"\n",
        db.store_table(pg, role)
    )
}

/// The admin host: a sandbox with the fleet's accounts, its policy naming the admin role.
fn admin_host(pg: &Cluster, db: &Db) -> Sandbox {
    sandbox()
        .user("daemon", 1)
        .user("bin", 2)
        .user("nobody", 65534)
        .policy(&policy(pg, db, Role::Admin))
}

/// A host of the fleet: the fleet's accounts, its policy naming the module role, and a
/// stack whose module relays to `helper`.
fn host(pg: &Cluster, db: &Db, helper: &Path) -> Sandbox {
    host_with_policy(&policy(pg, db, Role::Module), helper)
}

fn host_with_policy(policy: &str, helper: &Path) -> Sandbox {
    admin_host_accounts().policy(policy).service(
        SERVICE,
        &format!(
            "auth required {{module}} config={{config}} log_socket={{log}} helper={}\n",
            helper.display()
        ),
    )
}

fn admin_host_accounts() -> Sandbox {
    sandbox()
        .user("daemon", 1)
        .user("bin", 2)
        .user("nobody", 65534)
}

/// The built helper, installed as the package does (root's, setuid); the fleet's logins
/// need root here (the cluster runs as postgres, the store's files are root's).
fn helper() -> (TempDir, PathBuf) {
    installed_helper().expect("the fleet tests run as root (cargo test as root, as CI does)")
}

/// Two hosts sharing the store, daemon enrolled through the admin host's `pam-mfa enroll`.
struct Fleet {
    pg: &'static Cluster,
    db: Db,
    a: Sandbox,
    b: Sandbox,
    _helper: (TempDir, PathBuf),
}

fn fleet() -> Fleet {
    let pg = cluster();
    let db = pg.database();
    let helper = helper();
    admin_host(pg, &db).enroll_with_cli("daemon", SECRET);
    Fleet {
        a: host(pg, &db, &helper.1),
        b: host(pg, &db, &helper.1),
        pg,
        db,
        _helper: helper,
    }
}

const MAXTRIES: Pam = Pam::Other(11);

#[test]
fn enrolled_on_the_admin_host_a_code_used_on_host_a_is_refused_on_host_b() {
    let f = fleet();
    avoid_step_boundary(30);
    let code = Totp::new(SECRET).code();
    f.a.login("daemon")
        .answer(&code)
        .run()
        .expect(Pam::Success)
        .expect_prompted();
    f.a.audit_line()
        .expect("daemon", "required", "ops", "success");
    f.b.login("daemon")
        .answer(&code)
        .run()
        .expect(Pam::AuthErr)
        .expect_prompted();
    let line = f.b.audit_line();
    line.expect("daemon", "required", "ops", "deny");
    assert_eq!(line.get("reason"), "code already used", "{}", line.raw);
    // The other host's next step works.
    let next = Totp::new(SECRET).code_in_steps(1);
    f.b.login("daemon").answer(&next).run().expect(Pam::Success);
}

/// The connections made to the fleet's database so far (the server logs each one).
fn connections(f: &Fleet) -> usize {
    let log = format!("{}/server/server.log", f.pg.var("PAM_MFA_PG_DIR"));
    let database = format!("database={} ", f.db.name);
    std::fs::read_to_string(&log)
        .unwrap_or_else(|e| panic!("{log}: {e}"))
        .lines()
        .filter(|l| l.contains("connection authorized") && l.contains(&database))
        .count()
}

/// A login connects twice: its first look (record and state, one connection) before the
/// prompt, its decision after it. Each connect, TLS handshake and certificate login is
/// most of a fleet login's cost.
#[test]
fn a_login_connects_once_before_the_prompt_and_once_for_its_decision() {
    let f = fleet();
    avoid_step_boundary(30);
    let before = connections(&f);
    f.a.login("daemon")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect(Pam::Success);
    assert_eq!(connections(&f) - before, 2);
}

#[test]
fn wrong_codes_on_both_hosts_add_up_to_one_lockout() {
    let f = fleet();
    let wrong = wrong_code();
    for host in [&f.a, &f.b, &f.a, &f.b] {
        host.login("daemon")
            .answer(&wrong)
            .run()
            .expect(Pam::AuthErr);
    }
    // The fifth wrong code, on B, locks the account for both.
    f.b.login("daemon")
        .answer(&wrong)
        .run()
        .expect(Pam::AuthErr);
    let code = Totp::new(SECRET).code();
    f.a.login("daemon")
        .answer(&code)
        .run()
        .expect(MAXTRIES)
        .expect_not_prompted();
    f.b.login("daemon")
        .answer(&code)
        .run()
        .expect(MAXTRIES)
        .expect_not_prompted();
    let until: u64 =
        f.pg.psql(
            &f.db.name,
            "SELECT locked_until FROM state WHERE account = 'daemon'",
        )
        .trim()
        .parse()
        .unwrap();
    assert!(until > 0);
}

/// A six-digit code that is not daemon's now, nor one step either side.
fn wrong_code() -> String {
    let totp = Totp::new(SECRET);
    let near = [
        totp.code_in_steps(-1),
        totp.code(),
        totp.code_in_steps(1),
        totp.code_in_steps(2),
    ];
    (0..10u32)
        .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

#[test]
fn sixteen_parallel_logins_on_two_hosts_with_one_code_let_exactly_one_in() {
    let f = Arc::new(fleet());
    let mut last_step = 0;
    for round in 0..3 {
        // A step not used yet, within the window (one step each way).
        avoid_step_boundary(30);
        let now_step = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 30) as i64;
        let step = (last_step + 1).max(now_step - 1);
        assert!(
            step <= now_step + 1,
            "round {round}: no unused step in the window"
        );
        last_step = step;
        let code = Totp::new(SECRET).code_in_steps(step - now_step);
        let barrier = Arc::new(Barrier::new(16));
        let logins: Vec<_> = (0..16)
            .map(|i| {
                let f = f.clone();
                let barrier = barrier.clone();
                let code = code.clone();
                std::thread::spawn(move || {
                    let host = if i % 2 == 0 { &f.a } else { &f.b };
                    barrier.wait();
                    host.login("daemon").answer(&code).run().rc()
                })
            })
            .collect();
        let codes: Vec<Pam> = logins.into_iter().map(|l| l.join().unwrap()).collect();
        let winners = codes.iter().filter(|c| **c == Pam::Success).count();
        assert_eq!(winners, 1, "round {round}: {codes:?}");
        assert!(
            codes
                .iter()
                .all(|c| matches!(*c, Pam::Success | Pam::AuthErr | MAXTRIES)),
            "round {round}: {codes:?}"
        );
        // The 15 replays counted as wrong codes: clear them for the next round.
        let run = admin_host(f.pg, &f.db)
            .pam_mfa(&["unlock", "daemon", "-y"])
            .run();
        assert_eq!(run.code, Some(0), "{run:?}");
    }
}

#[test]
fn with_the_database_down_required_and_optional_are_refused_and_exempt_ignored() {
    let own = own_cluster();
    let pg = &own.cluster;
    let db = pg.database();
    let helper = helper();
    admin_host(pg, &db).enroll_with_cli("daemon", SECRET);
    let host = host(pg, &db, &helper.1);
    pg.stop();
    let code = Totp::new(SECRET).code();
    for user in ["daemon", "nobody"] {
        host.login(user)
            .answer(&code)
            .run()
            .expect(Pam::AuthinfoUnavail)
            .expect_not_prompted();
        let line = host.audit_line();
        assert_eq!(line.get("outcome"), "error", "{}", line.raw);
        assert!(
            line.get("reason").contains("fleet store (connect)"),
            "{}",
            line.raw
        );
        assert!(!line.raw.contains(&code), "{}", line.raw);
    }
    host.login("bin")
        .run()
        .expect_ignored()
        .expect_not_prompted();
    host.audit_line().expect("bin", "exempt", "batch", "ignore");
}

#[test]
fn a_server_that_never_answers_is_refused_within_timeout_seconds() {
    let pg = cluster();
    let db = pg.database();
    let helper = helper();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let text = policy(pg, &db, Role::Module)
        .replace(&format!("port={}", db.port), &format!("port={port}"))
        .replace("timeout_seconds = 3", "timeout_seconds = 1");
    let host = host_with_policy(&text, &helper.1);
    let started = Instant::now();
    host.login("daemon")
        .answer("123456")
        .run()
        .expect(Pam::AuthinfoUnavail);
    // Loosely: a behaviour, not a speed target (the run itself has a 20 s limit).
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let line = host.audit_line();
    assert!(
        line.get("reason").contains("timeout_seconds (1 s)"),
        "{}",
        line.raw
    );
    drop(silent);
}

#[test]
fn a_server_under_another_ca_or_another_name_is_refused() {
    let pg = cluster();
    let db = pg.database();
    let helper = helper();
    admin_host(pg, &db).enroll_with_cli("daemon", SECRET);
    let base = policy(pg, &db, Role::Module);
    let other_ca = base.replace(pg.var("PAM_MFA_PG_CA"), pg.var("PAM_MFA_PG_OTHER_CA"));
    let other_name = base.replace("host=localhost", "host=db.example.org");
    for (text, why) in [
        (other_ca, "UnknownIssuer"),
        (other_name, "not valid for name"),
    ] {
        let host = host_with_policy(&text, &helper.1);
        let code = Totp::new(SECRET).code();
        host.login("daemon")
            .answer(&code)
            .run()
            .expect(Pam::AuthinfoUnavail);
        let line = host.audit_line();
        assert!(line.get("reason").contains(why), "{}", line.raw);
    }
}

#[test]
fn a_sealed_secret_copied_onto_another_row_is_refused_at_login() {
    let pg = cluster();
    let db = pg.database();
    let helper = helper();
    let admin = admin_host(pg, &db)
        .enroll_with_cli("root", SECRET)
        .enroll_with_cli("daemon", OTHER_SECRET);
    let _ = admin;
    // Whoever can write the database moves root's sealed secret onto daemon's row.
    pg.psql(
        &db.name,
        "UPDATE accounts SET (key_id, nonce, sealed) = \
         (SELECT key_id, nonce, sealed FROM accounts WHERE account = 'root') \
         WHERE account = 'daemon'",
    );
    let host = host(pg, &db, &helper.1);
    let code = Totp::new(SECRET).code();
    host.login("daemon")
        .answer(&code)
        .run()
        .expect(Pam::AuthinfoUnavail);
    let line = host.audit_line();
    assert!(
        line.get("reason")
            .contains("does not open for this account"),
        "{}",
        line.raw
    );
    // root's own row still works.
    host.login("root").answer(&code).run().expect(Pam::Success);
}

#[test]
fn store_init_creates_the_schema_once_and_upgrades_idempotently() {
    let pg = cluster();
    let db = pg.empty_database();
    let admin = admin_host(pg, &db);
    let run = admin.pam_mfa(&["store", "init"]).run();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("schema created"), "{run:?}");
    let run = admin.pam_mfa(&["store", "init"]).run();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("schema was version 2, is 2"), "{run:?}");
    assert_eq!(
        pg.psql(&db.name, "SELECT version FROM pam_mfa_schema")
            .trim(),
        "2"
    );
    // A store of version 1 (no self-service functions) is refused until upgraded.
    pg.psql(
        &db.name,
        "UPDATE pam_mfa_schema SET version = 1; \
         DROP FUNCTION pam_mfa_self_rotate; DROP FUNCTION pam_mfa_self_recovery",
    );
    let run = admin.pam_mfa(&["status", "daemon"]).run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout
            .contains("schema version 1, this pam-mfa reads 2"),
        "{run:?}"
    );
    let run = admin.pam_mfa(&["store", "init"]).run();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("schema was version 1, is 2"), "{run:?}");
    assert_eq!(
        pg.psql(
            &db.name,
            "SELECT count(*) FROM pg_proc WHERE proname LIKE 'pam_mfa_self_%'"
        )
        .trim(),
        "2"
    );
    // The module's role got a login's rights and no more.
    let grants = pg.psql(
        &db.name,
        "SELECT table_name || ':' || string_agg(privilege_type, ',' ORDER BY privilege_type) \
         FROM information_schema.role_table_grants WHERE grantee = 'pam_mfa_module' \
         GROUP BY table_name ORDER BY table_name",
    );
    assert_eq!(
        grants.lines().collect::<Vec<_>>(),
        [
            "accounts:SELECT",
            "pam_mfa_schema:SELECT",
            "recovery:SELECT",
            "state:INSERT,SELECT,UPDATE"
        ],
        "{grants}"
    );
    let columns = pg.psql(
        &db.name,
        "SELECT column_name FROM information_schema.column_privileges \
         WHERE grantee = 'pam_mfa_module' AND table_name = 'recovery' AND privilege_type = 'UPDATE'",
    );
    assert_eq!(columns.trim(), "used");
}

#[test]
fn a_host_policy_cannot_run_store_init_and_a_file_policy_has_no_fleet_store() {
    let pg = cluster();
    let db = pg.empty_database();
    let host = admin_host(pg, &db).policy(&policy(pg, &db, Role::Module));
    let run = host.pam_mfa(&["store", "init"]).run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("permission denied"), "{run:?}");
    let files = sandbox();
    let run = files.pam_mfa(&["store", "init"]).run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("file backend"), "{run:?}");
}

#[test]
fn every_subcommand_works_on_the_fleet_store() {
    let pg = cluster();
    let db = pg.database();
    let admin = admin_host(pg, &db).enroll_with_cli("daemon", SECRET);
    let run = admin.pam_mfa(&["status", "daemon"]).run();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains("daemon           required  ops              totp SHA1"),
        "{run:?}"
    );
    assert_eq!(
        pg.psql(&db.name, "SELECT account || ' ' || kind FROM accounts")
            .trim(),
        "daemon totp"
    );

    // Recovery codes: a new set replaces the old.
    let run = admin.pam_mfa(&["recovery", "daemon", "-y"]).run();
    assert_eq!(run.code, Some(0), "{run:?}");
    let count = |sql: &str| pg.psql(&db.name, sql).trim().parse::<u32>().unwrap();
    assert_eq!(count("SELECT count(*) FROM recovery WHERE NOT used"), 10);

    // Unlock clears a lock the database holds.
    pg.psql(
        &db.name,
        "UPDATE state SET locked_until = extract(epoch FROM now())::bigint + 600 WHERE account = 'daemon'",
    );
    let run = admin.pam_mfa(&["status", "daemon"]).run();
    assert!(!run.stdout.contains("totp SHA1    -"), "{run:?}");
    let run = admin.pam_mfa(&["unlock", "daemon", "-y"]).run();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        count("SELECT locked_until FROM state WHERE account = 'daemon'"),
        0
    );

    // Import an otpauth URI for another account.
    let run = admin
        .pam_mfa(&["import", "uri", "--user", "nobody"])
        .stdin(&format!(
            "otpauth://totp/x:nobody?secret={OTHER_SECRET}&issuer=x\n"
        ))
        .run();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(count("SELECT count(*) FROM accounts"), 2);

    // Remove takes the record, state and codes.
    let run = admin.pam_mfa(&["remove", "daemon", "-y"]).run();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        count("SELECT count(*) FROM accounts WHERE account = 'daemon'"),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM recovery WHERE account = 'daemon'"),
        0
    );
    // Nothing went to the admin host's files.
    assert_eq!(std::fs::read_dir(admin.store()).unwrap().count(), 0);
}

#[test]
fn a_host_role_may_not_enroll() {
    let pg = cluster();
    let db = pg.database();
    let host = admin_host(pg, &db).policy(&policy(pg, &db, Role::Module));
    let run = host
        .pam_mfa(&["enroll", "daemon", "--secret-stdin", "--no-confirm"])
        .stdin(&format!("{SECRET}\n"))
        .run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("permission denied"), "{run:?}");
}

#[test]
fn store_rekey_reseals_under_a_new_key_file() {
    let pg = cluster();
    let db = pg.database();
    let admin = admin_host(pg, &db).enroll_with_cli("daemon", SECRET);
    let new_key = admin.path("new.key");
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_pam-mfa"))
        .args(["store", "new-key"])
        .arg(&new_key)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    assert_eq!(std::fs::metadata(&new_key).unwrap().len(), 32);
    let before = pg.psql(&db.name, "SELECT key_id FROM accounts");
    let run = admin
        .pam_mfa(&["store", "rekey", "--new-key", new_key.to_str().unwrap()])
        .run();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("1 secrets re-sealed"), "{run:?}");
    let after = pg.psql(&db.name, "SELECT key_id FROM accounts");
    assert_ne!(before, after);
    // Under the old key the row no longer opens: status says why, and fails.
    let run = admin.pam_mfa(&["status", "daemon"]).run();
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("sealed under key"), "{run:?}");
}

#[test]
fn store_migrate_brings_hosts_file_stores_into_the_fleet_store() {
    let pg = cluster();
    let db = pg.database();
    let helper = helper();
    // Two hosts with stores of their own: daemon on both with one secret, used on the
    // first; nobody with a different secret on each.
    let one = admin_host_accounts()
        .policy("store_dir = \"{store}\"\ndefault_mode = \"optional\"\nfail_delay_ms = 0\n");
    let two = admin_host_accounts()
        .policy("store_dir = \"{store}\"\ndefault_mode = \"optional\"\nfail_delay_ms = 0\n");
    let one = one
        .enroll_with_cli("daemon", SECRET)
        .enroll_with_cli("nobody", SECRET);
    let two = two
        .enroll_with_cli("daemon", SECRET)
        .enroll_with_cli("nobody", OTHER_SECRET);
    avoid_step_boundary(30);
    let code = Totp::new(SECRET).code();
    one.login("daemon").answer(&code).run().expect(Pam::Success);

    let admin = admin_host(pg, &db);
    let run = admin
        .pam_mfa(&[
            "store",
            "migrate",
            "--from",
            one.store().to_str().unwrap(),
            "--from",
            two.store().to_str().unwrap(),
        ])
        .run();
    // nobody's two secrets differ: refused and reported, the rest migrated.
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("nobody"), "{run:?}");
    assert_eq!(
        pg.psql(&db.name, "SELECT account FROM accounts ORDER BY account")
            .trim(),
        "daemon\nnobody"
    );
    // The step used on the first host stays used on every host of the fleet.
    let fleet_host = host(pg, &db, &helper.1);
    fleet_host
        .login("daemon")
        .answer(&code)
        .run()
        .expect(Pam::AuthErr);
    let next = Totp::new(SECRET).code_in_steps(1);
    fleet_host
        .login("daemon")
        .answer(&next)
        .run()
        .expect(Pam::Success);
}

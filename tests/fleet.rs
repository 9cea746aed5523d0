//! A fleet: hosts whose policies name one PostgreSQL store (tests/pg/start.sh), and an
//! admin host whose policy names the same store with the admin role. The admin command
//! works on it through the store interface; logins go through the real libpam.

mod common;

use common::pg::{cluster, Cluster, Db, Role};
use common::*;

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
    assert!(run.stdout.contains("schema was version 1, is 1"), "{run:?}");
    assert_eq!(
        pg.psql(&db.name, "SELECT version FROM pam_mfa_schema")
            .trim(),
        "1"
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

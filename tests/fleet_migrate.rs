//! `pam-mfa store migrate` into a fleet store that hosts already use (tests/pg/start.sh):
//! each account is merged in one atomic step, so a login on another host while the
//! migrate runs is never undone; another secret is refused in one line naming both.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::pg::{cluster, Cluster, Db, Role};
use common::*;

/// A policy of the fleet for `role`: daemon must give a code.
fn policy(pg: &Cluster, db: &Db, role: Role) -> String {
    format!(
        "store_dir = \"{{store}}\"\ndefault_mode = \"optional\"\nfail_delay_ms = 0\n\
         max_failures = 5\nlockout_seconds = 600\n\n{}\n\
         [[rule]]\nname = \"ops\"\nusers = [\"daemon\"]\nmode = \"required\"\n",
        db.store_table(pg, role)
    )
}

/// The helper clears its environment: the accounts are ones every Debian has.
fn accounts() -> Sandbox {
    sandbox().user("daemon", 1)
}

fn admin_host(pg: &Cluster, db: &Db) -> Sandbox {
    accounts().policy(&policy(pg, db, Role::Admin))
}

/// A host already on the fleet store: its module relays to `helper`.
fn host(pg: &Cluster, db: &Db, helper: &Path) -> Sandbox {
    accounts().policy(&policy(pg, db, Role::Module)).service(
        SERVICE,
        &format!(
            "auth required {{module}} config={{config}} log_socket={{log}} helper={}\n",
            helper.display()
        ),
    )
}

/// A host with a file store of its own.
fn file_host() -> Sandbox {
    accounts().policy("store_dir = \"{store}\"\ndefault_mode = \"optional\"\nfail_delay_ms = 0\n")
}

#[test]
fn store_migrate_never_undoes_a_login_on_another_host_while_it_runs() {
    let pg = cluster();
    let db = pg.database();
    let helper = installed_helper().expect("the fleet tests run as root (as CI does)");
    let admin = admin_host(pg, &db);
    let run = admin
        .pam_mfa(&["enroll", "daemon", "--secret-stdin", "--no-confirm"])
        .stdin(&format!("{SECRET}\n"))
        .run();
    assert_eq!(run.code, Some(0), "{run:?}");
    let fleet_codes = recovery_codes(&run.stdout);
    let b = host(pg, &db, &helper.1);
    // A host's own store, with the same secret.
    let one = file_host().enroll_with_cli("daemon", SECRET);

    // Three steps in the window: the fleet used the first, the host the second (so the
    // migrate has something to write), and host B will use the third while it runs.
    avoid_step_boundary(30);
    let now_step = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30;
    let totp = Totp::new(SECRET);
    let (earlier, now, later) = (totp.code_in_steps(-1), totp.code(), totp.code_in_steps(1));
    b.login("daemon")
        .answer(&earlier)
        .run()
        .expect(Pam::Success);
    one.login("daemon").answer(&now).run().expect(Pam::Success);

    // Made deterministic: the test holds daemon's account row, so the migrate starts,
    // reads, and waits for that row before it may write (today's code and an atomic
    // merge both lock it first); host B's logins need no lock on it.
    let mut hold = pg.session(&db.name);
    let mut held = hold.stdin.take().unwrap();
    writeln!(
        held,
        "BEGIN;\nSELECT 'held' FROM accounts WHERE account = 'daemon' FOR NO KEY UPDATE;"
    )
    .unwrap();
    let mut said = String::new();
    BufReader::new(hold.stdout.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    assert_eq!(said.trim(), "held");
    let migrate = admin
        .pam_mfa(&["store", "migrate", "--from", one.store().to_str().unwrap()])
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND wait_event_type = 'Lock'",
        db.name
    );
    let mut polls = 0;
    while pg.psql(&db.name, &waiting).trim() != "1" {
        polls += 1;
        assert!(polls < 600, "the migrate never waited for the held row");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Meanwhile on host B: the later step, a fleet recovery code, then a wrong code.
    b.login("daemon").answer(&later).run().expect(Pam::Success);
    b.login("daemon")
        .answer(&fleet_codes[0])
        .run()
        .expect(Pam::Success);
    b.login("daemon")
        .answer(&Totp::new(SECRET).wrong_code())
        .run()
        .expect(Pam::AuthErr);

    writeln!(held, "COMMIT;").unwrap();
    drop(held);
    assert!(hold.wait().unwrap().success());
    let migrated = migrate.wait_with_output().unwrap();
    assert!(migrated.status.success(), "{migrated:?}");
    let stdout = String::from_utf8_lossy(&migrated.stdout);
    // Read after host B's logins: the fleet is ahead of the host already.
    assert!(stdout.contains("daemon: unchanged"), "{stdout}");

    // Nothing host B did is undone: the highest step, its failure, its used code.
    let state = pg.psql(
        &db.name,
        "SELECT last_step || ' ' || failures FROM state WHERE account = 'daemon'",
    );
    let (step, failures) = state.trim().split_once(' ').unwrap();
    assert_eq!(
        step,
        (now_step + 1).to_string(),
        "the highest step is host B's"
    );
    assert_eq!(failures, "1", "host B's wrong code was forgotten");
    assert_eq!(
        pg.psql(
            &db.name,
            "SELECT count(*) FROM recovery WHERE account = 'daemon' AND used"
        )
        .trim(),
        "1",
        "the recovery code used on host B came back"
    );
    b.login("daemon")
        .answer(&fleet_codes[0])
        .run()
        .expect(Pam::AuthErr);
    b.login("daemon").answer(&later).run().expect(Pam::AuthErr);
}

#[test]
fn store_migrate_refuses_another_secret_naming_the_account_and_both_stores() {
    let pg = cluster();
    let db = pg.database();
    let admin = admin_host(pg, &db).enroll_with_cli("daemon", SECRET);
    let one = file_host().enroll_with_cli("daemon", OTHER_SECRET);
    let before = pg.psql(&db.name, "SELECT nonce FROM accounts");
    let from = one.store();
    let run = admin
        .pam_mfa(&["store", "migrate", "--from", from.to_str().unwrap()])
        .run();
    assert_eq!(run.code, Some(1), "{run:?}");
    let refusals: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("daemon"))
        .collect();
    assert_eq!(refusals.len(), 1, "{run:?}");
    let line = refusals[0];
    assert!(
        line.starts_with("pam-mfa: daemon: refused: the secret in ")
            && line.contains(from.to_str().unwrap())
            && line.contains(&format!(
                "the fleet store (host=localhost hostaddr=127.0.0.1 port={} dbname={}",
                db.port, db.name
            )),
        "{line}"
    );
    assert_eq!(pg.psql(&db.name, "SELECT nonce FROM accounts"), before);
}

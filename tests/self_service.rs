//! `pam-mfa-user` through the setuid helper: a user's own status, a new secret and new
//! recovery codes, and their refusals.
//!
//! The tests run as root, so the account served is root's (the caller's own), and root may
//! name the sandbox's policy and log socket (a caller without root may not: checked here
//! by running the helper as uid 65534, and as real users in tests/e2e/deb.sh).

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::me::{user_cli, Watchdog};
use common::*;
use pam_mfa::authenticate::Status;
use pam_mfa::helper::me::{Action, MeRequest};
use pam_mfa::helper::wire::{unhex, ToCaller, ToHelper};

const POLICY: &str = "store_dir = \"{store}\"\ndefault_mode = \"optional\"\nfail_delay_ms = 0\n";

fn setup() -> Option<(tempfile::TempDir, PathBuf, Sandbox)> {
    let Some((dir, helper)) = installed_helper() else {
        eprintln!("skipped: a setuid helper needs root to install");
        return None;
    };
    let sb = sandbox().policy(POLICY).enroll("root", SECRET);
    Some((dir, helper, sb))
}

fn failures(sb: &Sandbox) -> String {
    let status = sb.pam_mfa(&["status", "--json", "root"]).run();
    let line = status
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("\"failures\""))
        .unwrap_or_default()
        .trim()
        .to_owned();
    line
}

#[test]
fn status_shows_my_own_enrollment() {
    let Some((_dir, helper, sb)) = setup() else {
        return;
    };
    let run = user_cli(&sb, &helper, "status", &[], None);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for expected in [
        "account: root",
        "kind: totp SHA1, 6 digits, every 30 s",
        "recovery codes left: 0",
        "last successful login: never",
        "second factor: not locked",
    ] {
        assert!(run.stdout.contains(expected), "{expected}: {}", run.stdout);
    }
    assert!(sb.audit_lines().is_empty(), "status changes nothing");
}

#[test]
fn new_recovery_codes_need_a_current_code_and_wrong_ones_count() {
    let Some((_dir, helper, sb)) = setup() else {
        return;
    };
    let wrong = user_cli(&sb, &helper, "recovery", &["000000"], None);
    assert_eq!(wrong.code, Some(1), "{}", wrong.stdout);
    assert_eq!(failures(&sb), "\"failures\": 1,");
    assert!(!sb.store().join("root.recovery").exists());
    let lines = sb.audit_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.get("service") == "pam-mfa-user" && l.get("outcome") == "deny"),
        "{lines:#?}"
    );

    avoid_step_boundary(30);
    let code = Totp::new(SECRET).code();
    let run = user_cli(&sb, &helper, "recovery", &[&code], None);
    assert_eq!(run.code, Some(0), "{} {}", run.stdout, run.stderr);
    let codes = recovery_codes(&run.stdout);
    assert_eq!(codes.len(), 10, "{}", run.stdout);
    assert_eq!(failures(&sb), "\"failures\": 0,");
    let reasons: Vec<String> = sb
        .audit_lines()
        .iter()
        .map(|l| l.get("reason").to_owned())
        .collect();
    assert!(
        reasons.iter().any(|r| r == "valid code")
            && reasons
                .iter()
                .any(|r| r.starts_with("self-service: 10 new recovery codes")),
        "{reasons:?}"
    );
    // The code that authorised it is used up, as at a login.
    let again = user_cli(&sb, &helper, "recovery", &[&code], None);
    assert_eq!(again.code, Some(1));
    sb.audit_lines();

    // A new code works at a login.
    sb.login("root")
        .answer(&codes[0])
        .run()
        .expect(Pam::Success);
}

#[test]
fn a_new_secret_needs_proof_and_a_code_from_itself() {
    let Some((_dir, helper, sb)) = setup() else {
        return;
    };
    let record = fs::read(sb.record_path("root")).unwrap();

    // A wrong proof: counted, nothing shown, nothing changed.
    let wrong = user_cli(&sb, &helper, "rotate", &["000000"], None);
    assert_eq!(wrong.code, Some(1));
    assert!(!wrong.stdout.contains("otpauth://"), "{}", wrong.stdout);
    assert_eq!(failures(&sb), "\"failures\": 1,");
    assert_eq!(fs::read(sb.record_path("root")).unwrap(), record);

    // The right proof, then a wrong code for the new secret: nothing changed.
    avoid_step_boundary(30);
    let code = Totp::new(SECRET).code();
    let unconfirmed = user_cli(&sb, &helper, "rotate", &[&code], Some(&|_| "000000".into()));
    assert_eq!(unconfirmed.code, Some(1), "{}", unconfirmed.stdout);
    assert!(unconfirmed.stdout.contains("otpauth://"));
    assert_eq!(fs::read(sb.record_path("root")).unwrap(), record);
    sb.audit_lines();

    // The right proof (the next step's code) and the new secret's code: saved.
    let next = Totp::new(SECRET).code_in_steps(1);
    let mut shown = String::new();
    let run = user_cli(
        &sb,
        &helper,
        "rotate",
        &[&next],
        Some(&|uri: &str| {
            let secret = uri_secret(uri);
            Totp::new(&secret).code()
        }),
    );
    assert_eq!(run.code, Some(0), "{} {}", run.stdout, run.stderr);
    shown.push_str(&run.stdout);
    let uri = shown
        .lines()
        .find(|l| l.starts_with("otpauth://"))
        .expect("the new secret's link");
    let new_secret = uri_secret(uri);
    assert_ne!(new_secret, SECRET);
    let saved = fs::read_to_string(sb.record_path("root")).unwrap();
    assert!(
        saved.contains(&new_secret),
        "the record holds the secret shown"
    );
    assert_eq!(recovery_codes(&run.stdout).len(), 10);
    let reasons: Vec<String> = sb
        .audit_lines()
        .iter()
        .map(|l| l.get("reason").to_owned())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("self-service: new secret")),
        "{reasons:?}"
    );

    // The old secret no longer opens a login.
    let old = Totp::new(SECRET).code_in_steps(1);
    sb.login("root").answer(&old).run().expect(Pam::AuthErr);
}

#[test]
fn a_recovery_code_may_replace_the_secret() {
    let Some((_dir, helper, sb)) = setup() else {
        return;
    };
    avoid_step_boundary(30);
    let code = Totp::new(SECRET).code();
    let made = user_cli(&sb, &helper, "recovery", &[&code], None);
    let codes = recovery_codes(&made.stdout);
    assert_eq!(codes.len(), 10, "{}", made.stdout);
    let run = user_cli(
        &sb,
        &helper,
        "rotate",
        &[&codes[3]],
        Some(&|uri: &str| Totp::new(&uri_secret(uri)).code()),
    );
    assert_eq!(run.code, Some(0), "{} {}", run.stdout, run.stderr);
    // ... but not make new recovery codes.
    let refused = user_cli(
        &sb,
        &helper,
        "recovery",
        &[&recovery_codes(&run.stdout)[0]],
        None,
    );
    assert_eq!(refused.code, Some(1));
    assert!(
        refused.stderr.contains("does not make new recovery codes"),
        "{}",
        refused.stderr
    );
}

#[test]
fn a_caller_without_root_may_not_name_a_policy() {
    let Some((_dir, helper, sb)) = setup() else {
        return;
    };
    let run = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_pam-mfa-user"))
        .arg("--helper")
        .arg(&helper)
        .arg("--config")
        .arg(sb.policy_path())
        .arg("status")
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("only root may name another policy"),
        "{stderr}"
    );
    assert!(
        run.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
}

/// The setuid helper run as `uid` (real and effective) with a self-service request, its
/// standard input closed right after the request: every question then fails, as when the
/// caller goes away. Returns the texts it sent, its final status and exit status.
fn me_as(
    helper: &Path,
    uid: u32,
    request: MeRequest,
) -> (Vec<String>, Option<Status>, Option<i32>) {
    let mut child = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg(helper)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the helper");
    let watchdog = Watchdog::new(child.id(), "the helper");
    let body = serde_json::to_vec(&ToHelper::Me(request)).unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(&u32::try_from(body.len()).unwrap().to_be_bytes())
        .unwrap();
    input.write_all(&body).unwrap();
    drop(input);
    let mut output = child.stdout.take().unwrap();
    let mut sent = Vec::new();
    let mut status = None;
    loop {
        let mut prefix = [0u8; 4];
        if std::io::Read::read_exact(&mut output, &mut prefix).is_err() {
            break;
        }
        let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
        std::io::Read::read_exact(&mut output, &mut body).unwrap();
        match serde_json::from_slice(&body).unwrap() {
            ToCaller::Finished { status: end } => status = Some(end),
            ToCaller::Ask { hex } | ToCaller::Info { hex } | ToCaller::Error { hex } => {
                sent.push(String::from_utf8(unhex(hex).unwrap().to_vec()).unwrap())
            }
            other => sent.push(format!("{other:?}")),
        }
    }
    watchdog.disarm();
    let exit = child.wait().unwrap();
    (sent, status, exit.code())
}

/// Every refusal and error of self-service ends the helper at once when its caller stops
/// answering (standard input closed): a final status, an exit, nothing changed.
#[test]
fn every_refusal_ends_the_helper_when_its_caller_stops_answering() {
    let Some((_dir, helper, sb)) = setup() else {
        return;
    };
    let record = fs::read(sb.record_path("root")).unwrap();
    let request = |action, config: Option<&Path>, log: Option<&Path>| MeRequest {
        action,
        config: config.map(|p| p.display().to_string()),
        log_socket: log.map(|p| p.display().to_string()),
    };
    let policy = sb.policy_path();
    let log = sb.log_socket();

    // A caller without root that names a policy, or a log socket.
    let (sent, status, exit) = me_as(&helper, 65534, request(Action::Rotate, Some(&policy), None));
    assert_eq!(
        (status, exit),
        (Some(Status::Misconfigured), Some(1)),
        "{sent:?}"
    );
    assert!(
        sent.iter()
            .any(|t| t.contains("only root may name another policy")),
        "{sent:?}"
    );
    let (sent, status, exit) = me_as(&helper, 65534, request(Action::Recovery, None, Some(&log)));
    assert_eq!(
        (status, exit),
        (Some(Status::Misconfigured), Some(1)),
        "{sent:?}"
    );

    // A uid no account has.
    let (sent, status, exit) = me_as(&helper, 54321, request(Action::Status, None, None));
    assert_eq!(
        (status, exit),
        (Some(Status::Unavailable), Some(1)),
        "{sent:?}"
    );
    assert!(sent.iter().any(|t| t.contains("not known")), "{sent:?}");

    // Root's own account, whose answers never come: nothing is asked twice or changed.
    for action in [Action::Rotate, Action::Recovery] {
        let (sent, status, exit) = me_as(&helper, 0, request(action, Some(&policy), Some(&log)));
        assert!(
            status.is_some() && status != Some(Status::Success),
            "{sent:?}"
        );
        assert_eq!(exit, Some(1), "{sent:?}");
        assert!(!sent.iter().any(|t| t.contains("otpauth://")), "{sent:?}");
    }
    assert_eq!(fs::read(sb.record_path("root")).unwrap(), record);
    assert!(!sb.store().join("root.recovery").exists());
    sb.audit_lines();
}

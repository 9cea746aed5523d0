//! `pam-mfa policy check` finds the typos that quietly turn "required" off (a user NSS does
//! not know, a service no PAM file names, a rule that can never match), reports every
//! error of a file in one run at the line of its key, and says "run as root" when it
//! cannot read what it must.

mod common;

use std::fs;
use std::process::Command;

use common::{cli_path, sandbox, Finished, Sandbox};

/// The 1-based line of the policy file that holds `needle`.
fn line_with(sb: &Sandbox, needle: &str) -> usize {
    let text = fs::read_to_string(sb.policy_path()).unwrap();
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in the policy"))
        + 1
}

/// The output line that starts at `line` of the policy with `level`.
fn reported<'a>(sb: &Sandbox, run: &'a Finished, line: usize, level: &str) -> Vec<&'a str> {
    let start = format!("{}:{line}: {level}: ", sb.policy_path().display());
    run.stdout
        .lines()
        .filter(|l| l.starts_with(&start))
        .collect()
}

#[test]
fn check_warns_about_unknown_users_missing_services_and_rules_that_never_match() {
    let sb = sandbox()
        .user("alice", 1000)
        .group("wheel", 10, &["alice"])
        .policy(
            r#"store_dir = "{store}"
default_mode = "optional"

[[rule]]
name = "admins"
users = [
  "alice",
  "saalcie",
]
mode = "required"

[[rule]]
name = "ssh"
groups = ["wheel"]
services = ["ssh"]
mode = "required"

[[rule]]
name = "ghosts"
users = ["nobody-here"]
mode = "required"
"#,
        );
    let pam_dir = sb.path("etc-pam.d");
    fs::create_dir(&pam_dir).unwrap();
    for service in ["sshd", "sudo", "login"] {
        fs::write(pam_dir.join(service), "auth required pam_permit.so\n").unwrap();
    }
    let pam_dir = pam_dir.display().to_string();
    let run = sb
        .pam_mfa(&["policy", "check", "--pam-dir", &pam_dir])
        .run();
    assert_eq!(run.code, Some(0), "warnings alone pass: {run:?}");

    let typo = reported(&sb, &run, line_with(&sb, "\"saalcie\""), "warning");
    assert_eq!(typo.len(), 1, "{run:?}");
    assert!(
        typo[0].contains("rule \"admins\": user \"saalcie\" is not known to NSS"),
        "{run:?}"
    );
    let service = reported(&sb, &run, line_with(&sb, "services = [\"ssh\"]"), "warning");
    assert_eq!(service.len(), 2, "{run:?}");
    assert!(
        service[0].contains("names service \"ssh\"")
            && service[0].contains("did you mean \"sshd\"?"),
        "{run:?}"
    );
    assert!(
        service[1].contains("rule \"ssh\" can never match"),
        "{run:?}"
    );
    let ghosts = reported(&sb, &run, line_with(&sb, "\"nobody-here\""), "warning");
    assert_eq!(ghosts.len(), 2, "{run:?}");
    assert!(
        ghosts[1].contains("rule \"ghosts\" can never match"),
        "{run:?}"
    );
    // Nothing is said about what is fine.
    assert!(!run.stdout.contains("\"alice\""), "{run:?}");

    let strict = sb
        .pam_mfa(&["policy", "check", "--strict", "--pam-dir", &pam_dir])
        .run();
    assert_eq!(
        strict.code,
        Some(1),
        "--strict fails on warnings: {strict:?}"
    );
}

#[test]
fn check_reports_every_error_of_a_file_in_one_run_at_its_keys_line() {
    let sb = sandbox().policy(
        r#"store_dir = "{store}"
lockout_seconds = 0

[[rule]]
name = "first"
mode = "requird"

[[rule]]
name = "second"
mode = "required"
uids = ["2000-1000"]

[[rule]]
name = "third"
groups = ["root"]
mode = "exempt"
"#,
    );
    let run = sb.pam_mfa(&["policy", "check"]).run();
    assert_eq!(run.code, Some(1), "{run:?}");
    for (needle, words) in [
        ("lockout_seconds = 0", "lockout_seconds"),
        ("\"requird\"", "requird"),
        ("\"2000-1000\"", "empty range"),
        ("mode = \"exempt\"", "would make root exempt"),
    ] {
        let found = reported(&sb, &run, line_with(&sb, needle), "error");
        assert_eq!(found.len(), 1, "{needle}: {run:?}");
        assert!(found[0].contains(words), "{needle}: {run:?}");
    }
    assert!(run.stderr.contains("4 error(s)"), "{run:?}");
}

/// As another user the check cannot read the policy: it says to run it as root.
#[test]
fn check_says_run_as_root_when_it_cannot_read_the_policy() {
    let sb = sandbox().policy("store_dir = \"{store}\"\n");
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(cli_path())
        .args(["policy", "check", "--config"])
        .arg(sb.policy_path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("run setpriv");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stdout.contains("Permission denied"), "{output:?}");
    assert!(
        stdout.contains("run pam-mfa policy check as root"),
        "{output:?}"
    );
}

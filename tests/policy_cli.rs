//! `pam-mfa policy check` and `policy explain` against the module itself: malformed
//! fixtures rejected at the right line, the warnings an admin needs, NSS failures that
//! deny, services and remote hosts through pam_wrapper, enrollment deadlines, and a grid
//! on which explain and the module must reach the same decision.

mod common;

use std::fs;
use std::path::Path;

use common::{sandbox, Pam, Sandbox, Totp, DEFAULT_STACK, SECRET};

#[test]
fn policy_check_rejects_each_malformed_fixture_at_its_line() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policy-bad");
    let mut checked = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: no `# expect: LINE: words` header", path.display()));
        let (line, words) = expect
            .split_once(": ")
            .unwrap_or((expect.trim_end_matches(':'), ""));
        let sb = sandbox();
        fs::write(sb.policy_path(), &text).unwrap();
        let run = sb.pam_mfa(&["policy", "check"]).run();
        assert_eq!(run.code, Some(1), "{}: {run:?}", path.display());
        let location = format!("{}:{line}: error: ", sb.policy_path().display());
        let message = run
            .stdout
            .lines()
            .find(|l| l.starts_with(&location))
            .unwrap_or_else(|| panic!("{}: no `{location}` line in {run:?}", path.display()));
        assert!(
            message.contains(words.trim()),
            "{}: {message}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} fixtures");
}

/// A sandbox whose policy uses every condition, with accounts of each kind.
fn bastion() -> Sandbox {
    sandbox()
        .user("alice", 1000)
        .user("bob", 1001)
        .user("deploy", 1500)
        .user("svc", 500)
        .group("wheel", 10, &["alice"])
        .policy(
            r#"
store_dir = "{store}"
default_mode = "optional"
fail_delay_ms = 0

[[rule]]
name = "deploy-from-ci"
users = ["deploy"]
services = ["sshd"]
from = ["10.20.0.0/16", "2001:db8:20::/48"]
mode = "exempt"

[[rule]]
name = "privileged"
groups = ["wheel"]
users = ["deploy"]
mode = "required"

[[rule]]
name = "system"
uids = ["1-999"]
mode = "exempt"
"#,
        )
        .enroll("alice", SECRET)
        .service("sshd", DEFAULT_STACK)
        .service("sudo", DEFAULT_STACK)
        .service("login", DEFAULT_STACK)
}

#[test]
fn explain_and_the_module_decide_alike_over_a_grid() {
    let sb = bastion();
    let mut compared = 0;
    for user in ["root", "alice", "bob", "deploy", "svc"] {
        for service in ["sshd", "sudo", "login"] {
            for rhost in ["", "10.20.3.4", "192.0.2.7", "2001:db8:20::9", "ci.example"] {
                let explained = sb
                    .pam_mfa(&[
                        "policy",
                        "explain",
                        user,
                        "--service",
                        service,
                        "--rhost",
                        rhost,
                        "--json",
                    ])
                    .run();
                assert_eq!(explained.code, Some(0), "{explained:?}");
                let json: serde_json::Value = serde_json::from_str(&explained.stdout).unwrap();
                let field = |key: &str| -> String {
                    json[key]
                        .as_str()
                        .unwrap_or_else(|| panic!("{key} in {json}"))
                        .to_string()
                };
                let mut login = sb.login(user).service(service).answer("000000");
                if !rhost.is_empty() {
                    login = login.rhost(rhost);
                }
                let transaction = login.run();
                let line = sb.audit_line();
                let case = format!("{user} {service} {rhost:?}");
                assert_eq!(line.get("mode"), field("mode"), "{case}");
                assert_eq!(line.get("rule"), field("rule"), "{case}");
                assert_eq!(line.get("why"), field("why"), "{case}");
                // explain's planned outcome against what the module did: passed the
                // account on, refused it for the reason explain gave, or asked for and
                // checked the (wrong) code.
                let did = if matches!(transaction.rc(), Pam::PermDenied | Pam::Ignore) {
                    "ignore"
                } else if line.get("reason") == field("reason") {
                    "deny"
                } else {
                    "prompt"
                };
                assert_eq!(did, field("outcome"), "{case}: {line:?}");
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 75);
}

#[test]
fn services_and_remote_hosts_select_rules_in_the_module() {
    let sb = bastion();
    sb.login("deploy")
        .service("sshd")
        .rhost("10.20.3.4")
        .run()
        .expect(Pam::PermDenied);
    sb.audit_line()
        .expect("deploy", "exempt", "deploy-from-ci", "ignore");
    for (service, rhost) in [
        ("sshd", "192.0.2.7"),
        ("sudo", "10.20.3.4"),
        ("sshd", "ci.example"),
    ] {
        sb.login("deploy")
            .service(service)
            .rhost(rhost)
            .answer("123456")
            .run()
            .expect(Pam::AuthErr);
        sb.audit_line()
            .expect("deploy", "required", "privileged", "deny");
    }
    // No PAM_RHOST at all: a rule with `from` never matches.
    sb.login("deploy")
        .service("sshd")
        .answer("123456")
        .run()
        .expect(Pam::AuthErr);
    sb.audit_line()
        .expect("deploy", "required", "privileged", "deny");
}

#[test]
fn an_enrollment_deadline_lets_unenrolled_accounts_in_until_it_passes() {
    for (date, expected) in [
        ("2999-01-31", Pam::PermDenied),
        ("2000-01-31", Pam::AuthErr),
    ] {
        let sb = sandbox().user("alice", 1000).group("wheel", 10, &["alice"]).policy(&format!(
            "store_dir = \"{{store}}\"\ndefault_mode = \"optional\"\nfail_delay_ms = 0\n[[rule]]\nname = \"rollout\"\ngroups = [\"wheel\"]\nmode = \"required\"\nenroll_by = {date}\n"
        ));
        let transaction = sb.login("alice").answer("123456").run();
        transaction.expect(expected);
        let line = sb.audit_line();
        if expected == Pam::PermDenied {
            // PAM_IGNORE (alone in the stack: PERM_DENIED), with a message naming the date.
            assert_eq!(line.get("outcome"), "ignore");
            assert!(line.get("reason").contains(date), "{line:?}");
            assert!(
                transaction
                    .messages
                    .iter()
                    .any(|m| m.style == "info" && m.text.contains(date)),
                "{transaction:?}"
            );
        } else {
            assert_eq!(line.get("outcome"), "deny");
        }
    }
}

#[test]
fn root_is_never_in_an_enrollment_grace_period() {
    let sb = sandbox().policy(
        "store_dir = \"{store}\"\nfail_delay_ms = 0\n[[rule]]\nname = \"everyone\"\nmode = \"required\"\nenroll_by = 2999-01-31\n",
    );
    sb.login("root").answer("123456").run().expect(Pam::AuthErr);
    sb.audit_line().expect("root", "required", "root", "deny");
}

#[test]
fn policy_check_warns_about_unknown_groups_shadowed_rules_and_risky_exemptions() {
    let sb = sandbox()
        .user("alice", 1000)
        .group("wheel", 10, &["alice"])
        .policy(
            r#"store_dir = "{store}"
[[rule]]
name = "admins"
groups = ["wheel", "no-such-group"]
mode = "required"

[[rule]]
name = "never"
groups = ["wheel"]
mode = "optional"

[[rule]]
name = "spare-alice"
users = ["alice"]
mode = "exempt"
"#,
        );
    let run = sb.pam_mfa(&["policy", "check"]).run();
    assert_eq!(
        run.code,
        Some(0),
        "warnings alone keep the exit status 0: {run:?}"
    );
    let policy = sb.policy_path().display().to_string();
    for expected in [
        // At the groups key's line, not the [[rule]] header's.
        format!("{policy}:4: warning: rule \"admins\": group \"no-such-group\" is not known to NSS"),
        format!("{policy}:7: warning: rule \"never\" never decides"),
        format!("{policy}:12: warning: exempt rule \"spare-alice\" reaches privileged accounts: user \"alice\" (in \"wheel\")"),
    ] {
        assert!(run.stdout.lines().any(|l| l.starts_with(&expected)), "{expected}\n{run:?}");
    }
}

#[test]
fn policy_check_fails_on_a_bad_store_and_passes_a_good_policy() {
    let sb = sandbox();
    let run = sb.pam_mfa(&["policy", "check"]).run();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains(": OK: "), "{run:?}");
    sb.chmod(&sb.store(), 0o755);
    let run = sb.pam_mfa(&["policy", "check"]).run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("error: store_dir: "), "{run:?}");
}

#[test]
fn explain_names_the_rule_the_group_and_the_root_invariant() {
    let sb = bastion();
    let run = sb.pam_mfa(&["policy", "explain", "alice"]).run();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("alice: required"), "{run:?}");
    assert!(
        run.stdout
            .contains("rule 'privileged' matches through group 'wheel'"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("enrolled:  yes (totp, SHA1, 6 digits)"),
        "{run:?}"
    );
    let run = sb.pam_mfa(&["policy", "explain", "root"]).run();
    assert!(run.stdout.contains("uid 0 always needs a code"), "{run:?}");
    let totp = Totp::new(SECRET);
    sb.login("alice")
        .answer(&totp.code())
        .run()
        .expect(Pam::Success);
}

/// A Debian-like PAM configuration: common-auth as pam-auth-update writes it with the
/// package's profile enabled, and services that include it.
fn pam_dir_with_profile(sb: &Sandbox) -> std::path::PathBuf {
    let dir = sb.path("pam.d");
    fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| fs::write(dir.join(name), text).unwrap();
    write(
        "common-auth",
        "# here are the per-package modules (the \"Primary\" block)\n\
         auth\t[success=1 default=ignore]\tpam_unix.so nullok\n\
         auth\trequisite\t\t\tpam_deny.so\n\
         auth\trequired\t\t\tpam_permit.so\n\
         # and here are more per-package modules (the \"Additional\" block)\n\
         auth\trequired\t\t\tpam_mfa.so\n",
    );
    // The profile and a line of its own: asked twice.
    write(
        "sshd",
        "@include common-auth\nauth    required    pam_mfa.so config=/etc/pam-mfa/policy.toml\n\
         account required pam_permit.so\n",
    );
    // Through `include`, and the module named by its path.
    write(
        "login",
        "auth include common-auth\n\
         auth [success=done default=die] /usr/lib/x86_64-linux-gnu/security/pam_mfa.so\n",
    );
    // The profile alone, or a line alone: asked once.
    write("sudo", "@include common-auth\n# auth required pam_mfa.so\n");
    write(
        "su",
        "auth required pam_unix.so\n-auth required pam_mfa.so\n",
    );
    write(
        "sshd.dpkg-old",
        "@include common-auth\nauth required pam_mfa.so\n",
    );
    dir
}

#[test]
fn policy_check_warns_about_pam_mfa_stacked_twice_and_the_profile_without_roots_secret() {
    let sb = sandbox().user("alice", 1000);
    let pam_dir = pam_dir_with_profile(&sb);
    let pam = pam_dir.display().to_string();

    let run = sb.pam_mfa(&["policy", "check", "--pam-dir", &pam]).run();
    assert_eq!(run.code, Some(0), "warnings only: {run:?}");
    let twice: Vec<&str> = run
        .stdout
        .lines()
        .filter(|line| line.contains("stacked 2 times"))
        .collect();
    assert_eq!(twice.len(), 2, "{run:?}");
    assert!(
        twice[0].starts_with(&format!("{pam}/login:2: warning: "))
            && twice[0].contains("service login (common-auth:6, login:2)"),
        "{run:?}"
    );
    assert!(
        twice[1].starts_with(&format!("{pam}/sshd:2: warning: "))
            && twice[1].contains("service sshd (common-auth:6, sshd:2)"),
        "{run:?}"
    );
    let root = format!("{pam}/common-auth:6: warning: pam_mfa.so is in common-auth");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with(&root) && l.contains("pam-mfa enroll root")),
        "{run:?}"
    );
    assert!(run.stdout.contains(", 3 warning(s)"), "{run:?}");
    let strict = sb
        .pam_mfa(&["policy", "check", "--strict", "--pam-dir", &pam])
        .run();
    assert_eq!(strict.code, Some(1), "{strict:?}");

    // Root enrolled, the service's own line gone: nothing to say.
    let sb = sb.enroll("root", SECRET);
    fs::write(pam_dir.join("sshd"), "@include common-auth\n").unwrap();
    fs::write(pam_dir.join("login"), "auth include common-auth\n").unwrap();
    let run = sb
        .pam_mfa(&["policy", "check", "--strict", "--pam-dir", &pam])
        .run();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains(", 0 warning(s)"), "{run:?}");
}

//! The module through the real libpam with fake accounts (nss_wrapper): each test sets up a
//! sandbox, logs in with pamdrive (or pamtester under pam_wrapper) and checks the return code,
//! the prompt and the audit line against docs/contract.md. Codes come from oathtool.
//!
//! pamdrive prints what pam_authenticate returned. A lone `required` module's code comes through
//! unchanged, except PAM_IGNORE: libpam turns a stack in which every module ignored into
//! PAM_PERM_DENIED, which `expect_ignored` checks.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::process::Command;

use common::{
    avoid_step_boundary, require_debug_module, sandbox, Pam, Sandbox, Totp, OTHER_SECRET, PROMPT,
    SECRET, SECRET_256, SECRET_512, SERVICE,
};

const EXEMPT_BY_DEFAULT: &str = r#"
store_dir = "{store}"
default_mode = "exempt"
"#;

const OPTIONAL_BY_DEFAULT: &str = r#"
store_dir = "{store}"
default_mode = "optional"
"#;

const REQUIRED_BY_DEFAULT: &str = r#"
store_dir = "{store}"
default_mode = "required"
"#;

/// wheel members must give a code; everyone else may.
const WHEEL_REQUIRED: &str = r#"
store_dir = "{store}"
default_mode = "optional"

[[rule]]
name = "privileged"
groups = ["wheel"]
mode = "required"
"#;

/// alice (1000, in wheel), bob (1001), carol (1002): wheel members must give a code.
fn office() -> Sandbox {
    sandbox()
        .user("alice", 1000)
        .user("bob", 1001)
        .user("carol", 1002)
        .group("wheel", 10, &["alice"])
        .policy(WHEEL_REQUIRED)
}

// --- root ---------------------------------------------------------------------------------------

#[test]
fn root_without_secret_is_refused_even_when_default_is_exempt() {
    let sb = sandbox().policy(EXEMPT_BY_DEFAULT);

    sb.login("root")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect_prompted()
        .expect(Pam::AuthErr);
    sb.audit_line().expect("root", "required", "root", "deny");
}

#[test]
fn any_uid_zero_account_is_treated_as_root() {
    let sb = sandbox().user("toor", 0).policy(EXEMPT_BY_DEFAULT);

    sb.login("toor")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect_prompted()
        .expect(Pam::AuthErr);
    sb.audit_line().expect("toor", "required", "root", "deny");
}

#[test]
fn enrolled_root_with_right_code_succeeds() {
    let sb = sandbox().policy(EXEMPT_BY_DEFAULT).enroll("root", SECRET);

    sb.login("root")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect_prompted()
        .expect(Pam::Success);
    sb.audit_line()
        .expect("root", "required", "root", "success");
}

#[test]
fn rule_exempting_root_is_a_config_error_for_everyone() {
    let exempt_root_by_name = r#"
store_dir = "{store}"
default_mode = "optional"

[[rule]]
name = "break-glass"
users = ["root"]
mode = "exempt"
"#;
    let optional_root_by_group = r#"
store_dir = "{store}"
default_mode = "optional"

[[rule]]
name = "admins"
groups = ["root"]
mode = "optional"
"#;
    for policy in [exempt_root_by_name, optional_root_by_group] {
        let sb = sandbox()
            .user("alice", 1000)
            .policy(policy)
            .enroll("alice", SECRET);
        expect_service_error_for_everyone(&sb, &["root", "alice", "mallory"]);
    }
}

#[test]
fn rule_requiring_root_is_accepted() {
    let sb = sandbox()
        .user("alice", 1000)
        .policy(
            r#"
store_dir = "{store}"
default_mode = "exempt"

[[rule]]
name = "root-needs-code"
users = ["root"]
mode = "required"
"#,
        )
        .enroll("root", SECRET);

    sb.login("root")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect(Pam::Success);
    sb.login("alice")
        .run()
        .expect_not_prompted()
        .expect_ignored();
}

// --- policy decisions ---------------------------------------------------------------------------

#[test]
fn group_member_with_right_code_succeeds_and_is_audited_without_code_or_secret() {
    let sb = office().enroll("alice", SECRET);
    let code = Totp::new(SECRET).code();

    sb.login("alice")
        .rhost("198.51.100.7")
        .answer(&code)
        .run()
        .expect_prompted()
        .expect(Pam::Success);

    let line = sb.audit_line();
    line.expect("alice", "required", "privileged", "success")
        .expect_unique_keys();
    assert_eq!(line.get("service"), SERVICE);
    assert_eq!(line.get("rhost"), "198.51.100.7");
    assert!(!line.raw.contains(&code), "code in audit line: {line:?}");
    assert!(!line.raw.contains(SECRET), "secret in audit line: {line:?}");
    assert!(
        !line.raw.contains(&SECRET.to_lowercase()),
        "secret in audit line: {line:?}"
    );
}

/// A directory that ignores case (tests/tools/casefold.c over nss_wrapper) finds `ALICE` as
/// alice: every spelling is the same account, with its rules, record, replay state and audit.
#[test]
fn another_spelling_of_an_account_is_that_account() {
    let sb = sandbox()
        .user("alice", 1000)
        .user("deploy", 1001)
        .policy(
            r#"
store_dir = "{store}"
default_mode = "optional"

[[rule]]
name = "deployers"
users = ["deploy"]
mode = "required"
"#,
        )
        .enroll("alice", SECRET);
    let casefold = format!("{} libnss_wrapper.so", common::casefold().display());
    avoid_step_boundary(30);
    let code = Totp::new(SECRET).code();

    // Enrolled alice, as ALICE: asked for alice's code, which is then used up for alice too.
    sb.login("ALICE")
        .env("LD_PRELOAD", &casefold)
        .answer(&code)
        .run()
        .expect_prompted()
        .expect(Pam::Success);
    let line = sb.audit_line();
    line.expect("ALICE", "optional", "default", "success")
        .expect_unique_keys();
    assert_eq!(line.get("account"), "alice", "{line:#?}");
    sb.login("alice")
        .env("LD_PRELOAD", &casefold)
        .answer(&code)
        .run()
        .expect(Pam::AuthErr);
    sb.audit_lines();

    // deploy's rule reaches DEPLOY: required, and not enrolled, so refused.
    let refused = sb
        .login("DEPLOY")
        .env("LD_PRELOAD", &casefold)
        .answer(&code)
        .run();
    assert!(
        !matches!(refused.rounds[..], [Pam::Success | Pam::Ignore]),
        "{refused:?}"
    );
    let line = sb.audit_line();
    assert_eq!(line.get("rule"), "deployers", "{line:#?}");
    assert_eq!(line.get("mode"), "required", "{line:#?}");
    assert!(!sb.path("store/DEPLOY.toml").exists());
    assert!(!sb.path("store/ALICE.toml").exists());
}

/// "Required from everywhere, exempt otherwise": a remote host given by name (sshd with
/// UseDNS yes) cannot be placed, so it is asked; a service named with capitals in the policy
/// is the service libpam calls in lower case.
#[test]
fn a_host_name_cannot_escape_a_required_from_rule() {
    let sb = sandbox()
        .user("bob", 1001)
        .policy(
            r#"
store_dir = "{store}"
default_mode = "exempt"

[[rule]]
name = "remote"
from = ["0.0.0.0/0", "::/0"]
mode = "required"

[[rule]]
name = "vpn"
services = ["OpenVPN"]
mode = "required"
"#,
        )
        .service(
            "openvpn",
            "auth required {module} config={config} log_socket={log}\n",
        );
    for rhost in ["203.0.113.9", "host.example.com", "203.0.113.9 "] {
        let refused = sb.login("bob").rhost(rhost).answer("000000").run();
        refused.expect_prompted();
        assert_eq!(refused.rounds, [Pam::AuthErr], "{rhost:?}: {refused:?}");
        assert_eq!(sb.audit_line().get("rule"), "remote", "{rhost:?}");
    }
    sb.login("bob").run().expect_not_prompted().expect_ignored();
    sb.audit_lines();
    // libpam finds the file `openvpn` and sets PAM_SERVICE to `openvpn`.
    let vpn = sb.login("bob").service("OpenVPN").answer("000000").run();
    assert_eq!(vpn.rounds, [Pam::AuthErr], "{vpn:?}");
    assert_eq!(sb.audit_line().get("rule"), "vpn");
}

/// An IPv4 host is the same host however PAM_RHOST writes it (plain, mapped as a dual-stack
/// sshd reports it, or compatible), and a block written in the mapped form means those hosts:
/// `::ffff:0.0.0.0/96` is every IPv4 address, and no IPv6 one.
#[test]
fn a_mapped_ipv4_block_matches_the_host_however_it_is_written() {
    let sb = sandbox().user("bob", 1001).policy(
        r#"
store_dir = "{store}"
default_mode = "exempt"

[[rule]]
name = "ipv4"
from = ["::ffff:0.0.0.0/96"]
mode = "required"
"#,
    );
    for rhost in ["203.0.113.9", "::ffff:203.0.113.9", "::203.0.113.9"] {
        let refused = sb.login("bob").rhost(rhost).answer("000000").run();
        refused.expect_prompted();
        assert_eq!(refused.rounds, [Pam::AuthErr], "{rhost:?}: {refused:?}");
        assert_eq!(sb.audit_line().get("rule"), "ipv4", "{rhost:?}");
    }
    for rhost in ["2001:db8::9", "::1"] {
        sb.login("bob")
            .rhost(rhost)
            .run()
            .expect_not_prompted()
            .expect_ignored();
        assert_eq!(sb.audit_line().get("rule"), "default", "{rhost:?}");
    }
}

#[test]
fn secondary_group_membership_brings_the_group_rule() {
    // alice is in wheel only through the member list of the group file.
    let sb = office();

    sb.login("alice")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect_prompted()
        .expect(Pam::AuthErr);
    sb.audit_line()
        .expect("alice", "required", "privileged", "deny");

    sb.login("bob").run().expect_not_prompted().expect_ignored();
    sb.audit_line()
        .expect("bob", "optional", "default", "ignore");
}

#[test]
fn primary_group_brings_the_group_rule() {
    let sb = office().user_with_gid("dave", 1003, 10);

    sb.login("dave")
        .answer("123456")
        .run()
        .expect_prompted()
        .expect(Pam::AuthErr);
    sb.audit_line()
        .expect("dave", "required", "privileged", "deny");
}

#[test]
fn optional_unenrolled_account_is_ignored_without_prompt() {
    let sb = sandbox().user("bob", 1001).policy(OPTIONAL_BY_DEFAULT);

    sb.login("bob").run().expect_not_prompted().expect_ignored();
    sb.audit_line()
        .expect("bob", "optional", "default", "ignore");
}

#[test]
fn ignoring_module_lets_the_rest_of_the_stack_decide() {
    let sb = sandbox()
        .user("bob", 1001)
        .policy(OPTIONAL_BY_DEFAULT)
        .service(
            "permit-then-mfa",
            "auth required pam_permit.so\n\
             auth required {module} config={config} log_socket={log}\n",
        )
        .service(
            "mfa-then-deny",
            "auth sufficient {module} config={config} log_socket={log}\n\
             auth required pam_deny.so\n",
        );

    let pamtester = sb.pamtester("permit-then-mfa", "bob", "");
    assert_eq!(pamtester.code, Some(0), "pamtester: {pamtester:?}");
    sb.login("bob")
        .service("permit-then-mfa")
        .run()
        .expect_not_prompted()
        .expect(Pam::Success);
    // Alone in the stack, the module's PAM_IGNORE leaves libpam with nothing that succeeded.
    sb.login("bob").run().expect_ignored();
    // An ignore is no success: a `sufficient` module that ignores does not end the stack.
    sb.login("bob")
        .service("mfa-then-deny")
        .run()
        .expect(Pam::AuthErr);
}

#[test]
fn optional_enrolled_account_is_asked_and_right_code_succeeds() {
    let sb = sandbox()
        .user("bob", 1001)
        .policy(OPTIONAL_BY_DEFAULT)
        .enroll("bob", SECRET);

    sb.login("bob")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect_prompted()
        .expect(Pam::Success);
    sb.audit_line()
        .expect("bob", "optional", "default", "success");
}

#[test]
fn optional_enrolled_account_with_wrong_code_is_refused() {
    let totp = Totp::new(SECRET);
    let sb = sandbox()
        .user("bob", 1001)
        .policy(OPTIONAL_BY_DEFAULT)
        .enroll("bob", SECRET);

    sb.login("bob")
        .answer(&totp.wrong_code())
        .run()
        .expect_prompted()
        .expect(Pam::AuthErr);
    sb.audit_line().expect("bob", "optional", "default", "deny");
}

#[test]
fn exempt_account_is_ignored_without_prompt_even_when_enrolled() {
    let sb = sandbox()
        .user("svc", 1500)
        .policy(
            r#"
store_dir = "{store}"
default_mode = "required"

[[rule]]
name = "service-accounts"
users = ["svc"]
mode = "exempt"
"#,
        )
        .enroll("svc", SECRET);

    sb.login("svc").run().expect_not_prompted().expect_ignored();
    sb.audit_line()
        .expect("svc", "exempt", "service-accounts", "ignore");
}

#[test]
fn required_unenrolled_account_is_prompted_then_refused() {
    let sb = office();

    sb.login("alice")
        .answer("123456")
        .run()
        .expect_prompted()
        .expect(Pam::AuthErr);
    sb.audit_line()
        .expect("alice", "required", "privileged", "deny");
}

#[test]
fn unknown_user_gets_the_same_prompt_then_fails() {
    let sb = sandbox()
        .user("alice", 1000)
        .user("carol", 1002)
        .policy(REQUIRED_BY_DEFAULT)
        .enroll("alice", SECRET);

    let enrolled = sb
        .login("alice")
        .answer(&Totp::new(SECRET).wrong_code())
        .run();
    let unenrolled = sb.login("carol").answer("123456").run();
    let unknown = sb.login("mallory").answer("123456").run();

    unknown.expect_prompted().expect(Pam::UserUnknown);
    assert_eq!(unknown.messages, enrolled.messages);
    assert_eq!(unknown.messages, unenrolled.messages);
    assert_eq!(enrolled.prompts()[0].text, PROMPT);
}

#[test]
fn unknown_user_is_prompted_even_where_accounts_are_optional() {
    let sb = sandbox().policy(OPTIONAL_BY_DEFAULT);

    sb.login("mallory")
        .answer("123456")
        .run()
        .expect_prompted()
        .expect(Pam::UserUnknown);
}

#[test]
fn first_matching_rule_wins() {
    let exempt_first = r#"
store_dir = "{store}"
default_mode = "optional"

[[rule]]
name = "alice-exempt"
users = ["alice"]
mode = "exempt"

[[rule]]
name = "privileged"
groups = ["wheel"]
mode = "required"
"#;
    let required_first = r#"
store_dir = "{store}"
default_mode = "optional"

[[rule]]
name = "privileged"
groups = ["wheel"]
mode = "required"

[[rule]]
name = "alice-exempt"
users = ["alice"]
mode = "exempt"
"#;
    let sb = office().policy(exempt_first);
    sb.login("alice")
        .run()
        .expect_not_prompted()
        .expect_ignored();
    sb.audit_line()
        .expect("alice", "exempt", "alice-exempt", "ignore");

    let sb = sb.policy(required_first);
    sb.login("alice")
        .answer("123456")
        .run()
        .expect_prompted()
        .expect(Pam::AuthErr);
    sb.audit_line()
        .expect("alice", "required", "privileged", "deny");
}

#[test]
fn default_mode_applies_when_no_rule_matches() {
    let sb = office().policy(
        r#"
store_dir = "{store}"
default_mode = "required"

[[rule]]
name = "wheel-exempt"
groups = ["wheel"]
mode = "exempt"
"#,
    );

    sb.login("bob")
        .answer("123456")
        .run()
        .expect_prompted()
        .expect(Pam::AuthErr);
    sb.audit_line().expect("bob", "required", "default", "deny");
    sb.login("alice")
        .run()
        .expect_not_prompted()
        .expect_ignored();
}

// --- codes --------------------------------------------------------------------------------------

#[test]
fn wrong_code_is_refused() {
    let totp = Totp::new(SECRET);
    let sb = office().enroll("alice", SECRET);

    sb.login("alice")
        .answer(&totp.wrong_code())
        .run()
        .expect_prompted()
        .expect(Pam::AuthErr);
    sb.audit_line()
        .expect("alice", "required", "privileged", "deny");
}

#[test]
fn code_of_another_secret_is_refused() {
    let sb = office().enroll("alice", SECRET);

    sb.login("alice")
        .answer(&Totp::new(OTHER_SECRET).code())
        .run()
        .expect(Pam::AuthErr);
}

#[test]
fn replayed_code_is_refused() {
    let code = Totp::new(SECRET).code();
    let sb = office().enroll("alice", SECRET);

    sb.login("alice").answer(&code).run().expect(Pam::Success);
    sb.login("alice").answer(&code).run().expect(Pam::AuthErr);
    let lines = sb.audit_lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    lines[0].expect("alice", "required", "privileged", "success");
    lines[1].expect("alice", "required", "privileged", "deny");
}

#[test]
fn replayed_code_is_refused_within_one_process() {
    let code = Totp::new(SECRET).code();
    let sb = office().enroll("alice", SECRET);

    let run = sb.login("alice").answer(&code).repeat(2).run();
    assert_eq!(run.rounds, [Pam::Success, Pam::AuthErr], "{run:?}");
}

#[test]
fn next_code_is_accepted_after_current_one() {
    let totp = Totp::new(SECRET);
    let sb = office().enroll("alice", SECRET);

    sb.login("alice")
        .answer(&totp.code())
        .run()
        .expect(Pam::Success);
    sb.login("alice")
        .answer(&totp.code_in_steps(1))
        .run()
        .expect(Pam::Success);
}

#[test]
fn code_one_step_old_is_accepted_within_window() {
    avoid_step_boundary(30);
    let totp = Totp::new(SECRET);
    let sb = office().enroll("alice", SECRET);

    sb.login("alice")
        .answer(&totp.code_in_steps(-1))
        .run()
        .expect(Pam::Success);
}

#[test]
fn code_two_steps_old_is_refused() {
    let totp = Totp::new(SECRET);
    let sb = office().enroll("alice", SECRET);

    sb.login("alice")
        .answer(&totp.code_in_steps(-2))
        .run()
        .expect(Pam::AuthErr);
}

/// A rule's wide window reaches root only as far as root's record allows, where the top
/// level sets no window: a code four steps old works for alice, not for root.
#[test]
fn a_rules_wide_window_does_not_widen_roots() {
    let sb = sandbox()
        .user("alice", 1000)
        .group("wheel", 10, &["alice", "root"])
        .policy(
            r#"
store_dir = "{store}"
default_mode = "optional"

[[rule]]
name = "wide-wheel"
groups = ["wheel"]
mode = "required"
window = 10
"#,
        )
        .enroll("alice", SECRET)
        .enroll("root", OTHER_SECRET);
    avoid_step_boundary(30);
    sb.login("alice")
        .answer(&Totp::new(SECRET).code_in_steps(-4))
        .run()
        .expect(Pam::Success);
    sb.login("root")
        .answer(&Totp::new(OTHER_SECRET).code_in_steps(-4))
        .run()
        .expect(Pam::AuthErr);
    sb.login("root")
        .answer(&Totp::new(OTHER_SECRET).code())
        .run()
        .expect(Pam::Success);
}

/// HOTP look-ahead is bounded by the policy's `window` too, counted as counters ahead of the
/// next unused one: with `window = 0` only the next counter's code works, whatever the
/// record allows (100 here, as imports may give), a rule's window applies to its members,
/// and root's is never looser than the top level's, even through a wide rule.
#[test]
fn the_policy_window_bounds_hotp_look_ahead() {
    let sb = sandbox()
        .user("alice", 1000)
        .user("bob", 1001)
        .group("wheel", 10, &["alice", "root"])
        .policy(
            r#"
store_dir = "{store}"
default_mode = "optional"
window = 0

[[rule]]
name = "wide-wheel"
groups = ["wheel"]
mode = "required"
window = 3
"#,
        );
    let record = format!("kind = \"hotp\"\nsecret = \"{SECRET}\"\nwindow = 100\n");
    for user in ["alice", "bob", "root"] {
        common::write_file(&sb.record_path(user), &record, 0o600);
    }
    let login = |user: &str, counter: u64| sb.login(user).answer(&hotp(SECRET, counter)).run();

    // bob, top level: the next counter (0) only.
    login("bob", 10).expect(Pam::AuthErr);
    login("bob", 1).expect(Pam::AuthErr);
    login("bob", 0).expect(Pam::Success);
    login("bob", 1).expect(Pam::Success);
    // alice, through the rule: three ahead of the next counter.
    login("alice", 10).expect(Pam::AuthErr);
    login("alice", 4).expect(Pam::AuthErr);
    login("alice", 3).expect(Pam::Success);
    login("alice", 8).expect(Pam::AuthErr);
    login("alice", 7).expect(Pam::Success);
    // root, through the same rule, keeps the top level's window of 0.
    login("root", 2).expect(Pam::AuthErr);
    login("root", 1).expect(Pam::AuthErr);
    login("root", 0).expect(Pam::Success);
    login("root", 1).expect(Pam::Success);
}

/// `oathtool --hotp -b -c COUNTER SECRET`.
fn hotp(secret: &str, counter: u64) -> String {
    let output = Command::new("oathtool")
        .args(["--hotp", "-b", "-c", &counter.to_string(), secret])
        .output()
        .expect("run oathtool");
    assert!(output.status.success(), "oathtool: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[test]
fn record_window_zero_accepts_the_current_step_only() {
    avoid_step_boundary(30);
    let totp = Totp::new(SECRET);
    let sb = office();
    common::write_file(
        &sb.record_path("alice"),
        &format!("{}window = 0\n", totp.record()),
        0o600,
    );

    sb.login("alice")
        .answer(&totp.code_in_steps(-1))
        .run()
        .expect(Pam::AuthErr);
    sb.login("alice")
        .answer(&totp.code_in_steps(1))
        .run()
        .expect(Pam::AuthErr);
    sb.login("alice")
        .answer(&totp.code())
        .run()
        .expect(Pam::Success);
}

#[test]
fn concurrent_logins_with_one_code_succeed_once() {
    let code = Totp::new(SECRET).code();
    let sb = office().enroll("alice", SECRET);

    let rounds: Vec<Pam> = std::thread::scope(|scope| {
        let logins: Vec<_> = (0..6)
            .map(|_| scope.spawn(|| sb.login("alice").answer(&code).run().rc()))
            .collect();
        logins.into_iter().map(|l| l.join().unwrap()).collect()
    });
    let successes = rounds.iter().filter(|rc| **rc == Pam::Success).count();
    assert_eq!(successes, 1, "{rounds:?}");
    assert!(
        rounds
            .iter()
            .all(|rc| matches!(rc, Pam::Success | Pam::AuthErr)),
        "{rounds:?}"
    );
}

#[test]
fn code_three_steps_ahead_is_refused() {
    let totp = Totp::new(SECRET);
    let sb = office().enroll("alice", SECRET);

    sb.login("alice")
        .answer(&totp.code_in_steps(3))
        .run()
        .expect(Pam::AuthErr);
}

#[test]
fn sha256_and_sha512_records_with_8_digits_and_60_second_steps_work() {
    for (algorithm, secret) in [("SHA256", SECRET_256), ("SHA512", SECRET_512)] {
        let totp = Totp::new(secret).algorithm(algorithm).digits(8).period(60);
        let sb = office().enroll_record("alice", &totp);

        sb.login("alice")
            .answer(&totp.wrong_code())
            .run()
            .expect(Pam::AuthErr);
        // A SHA1 code of the same secret is no code of this record.
        sb.login("alice")
            .answer(&Totp::new(secret).digits(8).period(60).code())
            .run()
            .expect(Pam::AuthErr);
        let code = totp.code();
        assert_eq!(code.len(), 8);
        sb.login("alice")
            .answer(&code)
            .run()
            .expect_prompted()
            .expect(Pam::Success);
    }
}

#[test]
fn null_empty_and_failed_answers_fail() {
    let sb = office().enroll("alice", SECRET);

    sb.login("alice").answer("@null").run().expect(Pam::AuthErr);
    sb.login("alice")
        .answer("@empty")
        .run()
        .expect(Pam::AuthErr);
    sb.login("alice")
        .answer("@convfail")
        .run()
        .expect(Pam::ConvErr);
    // pamdrive has no answer left: its conversation fails as well.
    sb.login("alice").run().expect(Pam::ConvErr);
    // The code still works afterwards: none of these consumed anything.
    sb.login("alice")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect(Pam::Success);
}

#[test]
fn overlong_and_non_numeric_answers_are_refused() {
    let code = Totp::new(SECRET).code();
    let sb = office().enroll("alice", SECRET);

    for answer in [
        format!("{code}0"),
        code[..5].to_string(),
        "12345a".to_string(),
        "9".repeat(4096),
    ] {
        sb.login("alice").answer(&answer).run().expect(Pam::AuthErr);
    }
}

// --- policy errors ------------------------------------------------------------------------------

/// Every account, whatever the policy would have said, gets PAM_SERVICE_ERR: never success,
/// never ignore.
fn expect_service_error_for_everyone(sb: &Sandbox, users: &[&str]) {
    for user in users {
        let run = sb.login(user).answer(&Totp::new(SECRET).code()).run();
        assert_eq!(run.rc(), Pam::ServiceErr, "{user}: {run:?}");
        // No policy, no mode and no rule to name.
        sb.audit_line().expect(user, "unknown", "-", "error");
    }
}

fn exempt_office() -> Sandbox {
    office()
        .policy(EXEMPT_BY_DEFAULT)
        .enroll("alice", SECRET)
        .enroll("root", SECRET)
}

const EVERYONE: &[&str] = &["root", "alice", "bob", "mallory"];

#[test]
fn malformed_policy_fails_for_every_account() {
    let cases = [
        (
            "syntax error",
            "store_dir = \"{store}\"\ndefault_mode = \"exempt\"\n[[rule]\nname = \"x\"\n",
        ),
        (
            "unknown top-level key",
            "store_dir = \"{store}\"\ndefault_mode = \"exempt\"\nfallback = \"exempt\"\n",
        ),
        (
            "unknown rule key",
            "store_dir = \"{store}\"\ndefault_mode = \"exempt\"\n\
             [[rule]]\nname = \"x\"\nusers = [\"bob\"]\nmdoe = \"exempt\"\n",
        ),
        ("wrong type", "store_dir = \"{store}\"\ndefault_mode = 0\n"),
        (
            "wrong type in rule",
            "store_dir = \"{store}\"\ndefault_mode = \"exempt\"\n\
             [[rule]]\nname = \"x\"\ngroups = \"wheel\"\nmode = \"exempt\"\n",
        ),
        (
            "unknown mode",
            "store_dir = \"{store}\"\ndefault_mode = \"exempt-ish\"\n",
        ),
    ];
    for (what, text) in cases {
        let sb = exempt_office().policy(text);
        eprintln!("case: {what}");
        expect_service_error_for_everyone(&sb, EVERYONE);
    }
}

#[test]
fn missing_policy_fails_for_every_account() {
    let sb = exempt_office();
    fs::remove_file(sb.policy_path()).unwrap();

    expect_service_error_for_everyone(&sb, EVERYONE);
}

/// A FIFO where the policy should be: refused at once, not a login that waits for a writer
/// (the harness gives each login a bounded time).
#[test]
fn policy_that_is_a_fifo_fails_for_every_account_without_waiting() {
    let sb = exempt_office();
    fs::remove_file(sb.policy_path()).unwrap();
    let made = Command::new("mkfifo")
        .arg("-m")
        .arg("0600")
        .arg(sb.policy_path())
        .status()
        .expect("run mkfifo");
    assert!(made.success());

    expect_service_error_for_everyone(&sb, EVERYONE);
    let check = sb.pam_mfa(&["policy", "check"]).run();
    assert_eq!(check.code, Some(1), "{check:?}");
    assert!(check.stdout.contains("not a regular file"), "{check:?}");
}

#[test]
fn policy_that_is_a_directory_fails_for_every_account() {
    let sb = exempt_office();
    fs::remove_file(sb.policy_path()).unwrap();
    fs::create_dir(sb.policy_path()).unwrap();

    expect_service_error_for_everyone(&sb, EVERYONE);
}

#[test]
fn writable_policy_fails_for_every_account() {
    for mode in [0o666, 0o602, 0o620] {
        let sb = exempt_office();
        sb.chmod(&sb.policy_path(), mode);
        eprintln!("case: mode {mode:o}");
        expect_service_error_for_everyone(&sb, EVERYONE);
    }
}

#[test]
fn policy_owned_by_another_user_fails_for_every_account() {
    if !common::is_root() {
        eprintln!("skipped: giving a file to another user needs root");
        return;
    }
    let sb = exempt_office();
    sb.chown(&sb.policy_path(), 1000);

    expect_service_error_for_everyone(&sb, EVERYONE);
}

/// Whoever can rename entries in a directory above the policy can swap it: such a
/// directory fails every login, unless it is sticky as /tmp is.
#[test]
fn a_directory_above_the_policy_that_others_control_fails_for_every_account() {
    let sb = exempt_office();
    let dir = sb.policy_path().parent().unwrap().to_owned();
    sb.chmod(&dir, 0o777);
    expect_service_error_for_everyone(&sb, EVERYONE);
    let check = sb.pam_mfa(&["policy", "check"]).run();
    assert_eq!(check.code, Some(1), "{check:?}");
    assert!(
        check.stdout.contains("above the policy, has mode 0777"),
        "{check:?}"
    );

    sb.chmod(&dir, 0o1777);
    avoid_step_boundary(30);
    sb.login("root")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect(Pam::Success);
    sb.audit_lines();

    if common::is_root() {
        sb.chmod(&dir, 0o755);
        sb.chown(&dir, 1000);
        expect_service_error_for_everyone(&sb, EVERYONE);
        sb.chown(&dir, 0);
    }
    sb.chmod(&dir, 0o700);
}

/// A link on the way to the policy, however well the file behind it is owned, is refused:
/// whoever controls the link's directory could repoint it.
#[test]
fn a_policy_reached_through_a_symlink_fails_for_every_account() {
    let sb = exempt_office();
    let real = sb.path("real-policy.toml");
    fs::rename(sb.policy_path(), &real).unwrap();
    symlink(&real, sb.policy_path()).unwrap();
    expect_service_error_for_everyone(&sb, EVERYONE);
    let check = sb.pam_mfa(&["policy", "check"]).run();
    assert_eq!(check.code, Some(1), "{check:?}");
    assert!(check.stdout.contains("symbolic link"), "{check:?}");
}

#[test]
fn unknown_module_argument_fails() {
    for extra in ["frobnicate", "config_file=/etc/passwd", "Debug", "debug=1"] {
        let sb = exempt_office().service(
            SERVICE,
            &format!("auth required {{module}} config={{config}} log_socket={{log}} {extra}\n"),
        );
        for user in EVERYONE {
            let run = sb.login(user).answer(&Totp::new(SECRET).code()).run();
            assert_eq!(run.rc(), Pam::ServiceErr, "{extra}, {user}: {run:?}");
        }
    }
}

#[test]
fn debug_argument_is_accepted() {
    let sb = office().enroll("alice", SECRET).service(
        SERVICE,
        "auth required {module} debug config={config} log_socket={log}\n",
    );

    sb.login("alice")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect(Pam::Success);
}

// --- store errors -------------------------------------------------------------------------------

/// alice (required) and bob (optional), both enrolled, about to meet a broken store.
fn enrolled_pair() -> Sandbox {
    office().enroll("alice", SECRET).enroll("bob", SECRET)
}

/// A store error makes the module fail for required and optional accounts alike: an optional
/// account whose record cannot be trusted must not be waved through as "not enrolled".
fn expect_store_unavailable(sb: &Sandbox, users: &[&str]) {
    let code = Totp::new(SECRET).code();
    for user in users {
        let run = sb.login(user).answer(&code).run();
        assert_eq!(run.rc(), Pam::AuthinfoUnavail, "{user}: {run:?}");
        let line = sb.audit_line();
        assert_eq!(line.get("user"), *user, "{line:#?}");
        assert_eq!(line.get("outcome"), "error", "{line:#?}");
        assert_eq!(line.severity, common::SEVERITY_ERR, "{line:#?}");
    }
}

fn break_records(sb: &Sandbox, users: &[&str], defect: impl Fn(&std::path::Path)) {
    for user in users {
        defect(&sb.record_path(user));
    }
}

#[test]
fn store_dir_open_to_others_makes_the_store_unavailable() {
    for mode in [0o755, 0o750, 0o701] {
        let sb = enrolled_pair();
        sb.chmod(&sb.store(), mode);
        eprintln!("case: mode {mode:o}");
        // carol is optional and has no record: an untrusted store cannot tell that either.
        expect_store_unavailable(&sb, &["alice", "bob", "carol"]);
    }
}

#[test]
fn store_dir_owned_by_another_user_makes_the_store_unavailable() {
    if !common::is_root() {
        eprintln!("skipped: giving a file to another user needs root");
        return;
    }
    let sb = enrolled_pair();
    sb.chown(&sb.store(), 1000);

    expect_store_unavailable(&sb, &["alice", "bob", "carol"]);
}

/// Whoever can rename entries in a directory above the store can put a store without the
/// account's record in its place, and an enrolled optional account would then pass as not
/// enrolled: such a directory, or a link on the way, makes the store unavailable for
/// everyone, unless the directory is sticky as /tmp is.
#[test]
fn a_directory_above_the_store_that_others_control_makes_the_store_unavailable() {
    let sb = enrolled_pair();
    let shared = sb.path("shared");
    fs::create_dir(&shared).unwrap();
    let store = shared.join("store");
    fs::rename(sb.store(), &store).unwrap();
    let sb = sb.policy(&WHEEL_REQUIRED.replace("{store}", &store.display().to_string()));
    sb.chmod(&shared, 0o777);
    expect_store_unavailable(&sb, &["alice", "bob", "carol"]);
    let status = sb.pam_mfa(&["status", "bob"]).run();
    assert_eq!(status.code, Some(1), "{status:?}");
    assert!(
        status.stderr.contains("above the store, has mode 0777"),
        "{status:?}"
    );

    sb.chmod(&shared, 0o1777);
    avoid_step_boundary(30);
    sb.login("bob")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect(Pam::Success);
    sb.audit_lines();

    if common::is_root() {
        sb.chmod(&shared, 0o755);
        sb.chown(&shared, 1000);
        expect_store_unavailable(&sb, &["alice", "bob", "carol"]);
        sb.chown(&shared, 0);
    }

    sb.chmod(&shared, 0o755);
    let link = sb.path("link");
    symlink(&shared, &link).unwrap();
    let sb =
        sb.policy(&WHEEL_REQUIRED.replace("{store}", &link.join("store").display().to_string()));
    expect_store_unavailable(&sb, &["alice", "bob", "carol"]);
}

#[test]
fn record_readable_by_others_makes_the_store_unavailable() {
    for mode in [0o644, 0o640, 0o604, 0o660] {
        let sb = enrolled_pair();
        break_records(&sb, &["alice", "bob"], |record| sb.chmod(record, mode));
        eprintln!("case: mode {mode:o}");
        expect_store_unavailable(&sb, &["alice", "bob"]);
    }
}

#[test]
fn record_symlink_makes_the_store_unavailable() {
    let sb = enrolled_pair();
    break_records(&sb, &["alice", "bob"], |record| {
        let elsewhere = sb.path(&format!(
            "elsewhere-{}",
            record.file_name().unwrap().to_string_lossy()
        ));
        fs::rename(record, &elsewhere).unwrap();
        symlink(&elsewhere, record).unwrap();
    });

    expect_store_unavailable(&sb, &["alice", "bob"]);
}

#[test]
fn record_hard_link_makes_the_store_unavailable() {
    let sb = enrolled_pair();
    break_records(&sb, &["alice", "bob"], |record| {
        let other_name = sb.path(&format!(
            "link-{}",
            record.file_name().unwrap().to_string_lossy()
        ));
        fs::hard_link(record, other_name).unwrap();
    });

    expect_store_unavailable(&sb, &["alice", "bob"]);
}

#[test]
fn record_fifo_makes_the_store_unavailable_without_hanging() {
    let sb = enrolled_pair();
    break_records(&sb, &["alice", "bob"], |record| {
        fs::remove_file(record).unwrap();
        let status = Command::new("mkfifo")
            .args(["-m", "600"])
            .arg(record)
            .status()
            .unwrap();
        assert!(status.success());
    });

    // A module that opens the FIFO for reading blocks: the runner kills it after a while.
    expect_store_unavailable(&sb, &["alice", "bob"]);
}

#[test]
fn record_directory_makes_the_store_unavailable() {
    let sb = enrolled_pair();
    break_records(&sb, &["alice", "bob"], |record| {
        fs::remove_file(record).unwrap();
        fs::create_dir(record).unwrap();
        sb.chmod(record, 0o700);
    });

    expect_store_unavailable(&sb, &["alice", "bob"]);
}

#[test]
fn record_owned_by_another_user_makes_the_store_unavailable() {
    if !common::is_root() {
        eprintln!("skipped: giving a file to another user needs root");
        return;
    }
    let sb = enrolled_pair();
    break_records(&sb, &["alice", "bob"], |record| sb.chown(record, 1000));

    expect_store_unavailable(&sb, &["alice", "bob"]);
}

#[test]
fn state_symlink_is_not_followed() {
    let sb = enrolled_pair();
    let victim = sb.path("victim");
    common::write_file(&victim, "precious\n", 0o600);
    for user in ["alice", "bob"] {
        symlink(&victim, sb.store().join(format!("{user}.state"))).unwrap();
    }

    expect_store_unavailable(&sb, &["alice", "bob"]);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn corrupt_record_makes_the_store_unavailable() {
    let records = [
        "this is not a record\n".to_string(),
        "secret = \"NOT*BASE32!\"\n".to_string(),
        "algorithm = \"SHA1\"\n".to_string(),
        format!("secret = \"{SECRET}\"\nalgorithm = \"MD5\"\n"),
        format!("secret = \"{SECRET}\"\ndigits = 12\n"),
        format!("secret = \"{SECRET}\"\ndigits = 5\n"),
        format!("secret = \"{SECRET}\"\nperiod = 0\n"),
        format!("secret = \"{SECRET}\"\nkind = \"sms\"\n"),
        format!("secret = \"{SECRET}\"\nsecret = \"{OTHER_SECRET}\"\n"),
    ];
    for record in &records {
        let sb = enrolled_pair();
        break_records(&sb, &["alice", "bob"], |path| {
            common::write_file(path, record, 0o600);
        });
        eprintln!("case: {record:?}");
        expect_store_unavailable(&sb, &["alice", "bob"]);
    }
}

// --- robustness ---------------------------------------------------------------------------------

#[test]
fn panic_in_debug_module_returns_system_error_and_application_lives_on() {
    require_debug_module();
    let sb = office().enroll("alice", SECRET).service(
        SERVICE,
        "auth required {debug_module} config={config} log_socket={log}\n",
    );

    let run = sb
        .login("alice")
        .env("PAM_MFA_TEST_PANIC", "1")
        .answer(&Totp::new(SECRET).code())
        .repeat(3)
        .run();
    assert_eq!(run.rounds, [Pam::SystemErr; 3], "{run:?}");
    // Every panicked call still writes its audit line: outcome error, failed closed.
    let lines = sb.audit_lines();
    assert_eq!(lines.len(), 3, "one audit line per call: {lines:#?}");
    for line in &lines {
        line.expect("alice", "unknown", "-", "error");
        assert_eq!(line.get("reason"), "internal error (panic); failed closed");
        assert_eq!(line.get("service"), SERVICE);
    }

    // Without the variable, the debug module is the module.
    sb.login("alice")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect(Pam::Success);
}

/// A syslog daemon whose queue stays full does not lose the line unseen: after two tries
/// the module writes it to standard error, and the decision stands.
#[test]
fn an_audit_line_the_syslog_queue_has_no_room_for_goes_to_stderr() {
    let sb = office().enroll("alice", SECRET);
    let full = sb.path("full.sock");
    let _daemon = std::os::unix::net::UnixDatagram::bind(&full).unwrap(); // never read
    let filler = std::os::unix::net::UnixDatagram::unbound().unwrap();
    filler.set_nonblocking(true).unwrap();
    while filler.send_to(b"filler", &full).is_ok() {}
    let sb = sb.service(
        "fullog",
        &format!(
            "auth required {{module}} config={{config}} log_socket={}\n",
            full.display()
        ),
    );
    let run = sb
        .login("alice")
        .service("fullog")
        .answer(&Totp::new(SECRET).code())
        .run();
    run.expect(Pam::Success);
    let stderr = &run.output.stderr;
    let line = stderr
        .lines()
        .find(|l| l.starts_with("pam_mfa: audit line not delivered to "))
        .unwrap_or_else(|| panic!("no audit line on stderr: {stderr}"));
    assert!(
        line.contains("service=fullog user=alice ") && line.contains("outcome=success"),
        "{line}"
    );
}

/// build.rs links the unwinder statically (libpam loads the module at every login, and
/// `libgcc_s.so.1` with it cost about 100 µs); its symbols must stay inside the module.
#[test]
fn module_needs_no_shared_unwinder_and_exports_only_pam_entry_points() {
    let module = common::module_path();
    let dynamic = Command::new("readelf")
        .args(["--dynamic", "--wide"])
        .arg(&module)
        .output()
        .expect("run readelf (binutils)");
    assert!(dynamic.status.success(), "{dynamic:?}");
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    let needed: Vec<&str> = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect();
    assert!(needed.contains(&"libpam.so.0"), "{needed:?}");
    // pam-sys asks to link libpam_misc as well; the module uses none of it.
    assert!(
        !needed.iter().any(|n| n.starts_with("libpam_misc")),
        "module loads libpam_misc: {needed:?}"
    );
    assert!(
        !needed.iter().any(|n| n.starts_with("libgcc_s")),
        "module loads the shared unwinder: {needed:?}"
    );

    let symbols = Command::new("nm")
        .args(["--dynamic", "--defined-only"])
        .arg(&module)
        .output()
        .expect("run nm (binutils)");
    assert!(symbols.status.success(), "{symbols:?}");
    let mut exported: Vec<String> = String::from_utf8_lossy(&symbols.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    exported.sort();
    assert_eq!(exported, ["pam_sm_authenticate", "pam_sm_setcred"]);
}

#[test]
fn release_module_has_no_panic_hook() {
    let sb = office().enroll("alice", SECRET);

    sb.login("alice")
        .env("PAM_MFA_TEST_PANIC", "1")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect(Pam::Success);
}

#[test]
fn setcred_succeeds() {
    let sb = office().enroll("alice", SECRET);

    let run = sb
        .login("alice")
        .answer(&Totp::new(SECRET).code())
        .setcred()
        .run();
    run.expect(Pam::Success);
    assert_eq!(run.setcred, [Pam::Success], "{run:?}");
}

#[test]
fn audit_fields_cannot_be_forged_through_rhost() {
    let sb = office().enroll("alice", SECRET);

    sb.login("alice")
        .rhost("evil\" outcome=success rule=\"x mode=exempt")
        .answer(&Totp::new(SECRET).wrong_code())
        .run()
        .expect(Pam::AuthErr);
    let line = sb.audit_line();
    line.expect_unique_keys()
        .expect("alice", "required", "privileged", "deny");
    assert!(!line.raw.contains('\n'), "{line:#?}");
}

#[test]
fn pamtester_authenticates_with_a_code_on_stdin() {
    let totp = Totp::new(SECRET);
    let sb = office().enroll("alice", SECRET);

    let refused = sb.pamtester(SERVICE, "alice", &format!("{}\n", totp.wrong_code()));
    assert_ne!(refused.code, Some(0), "{refused:?}");
    let accepted = sb.pamtester(SERVICE, "alice", &format!("{}\n", totp.code()));
    assert_eq!(accepted.code, Some(0), "{accepted:?}");
    assert!(
        accepted.stdout.contains("successfully authenticated"),
        "{accepted:?}"
    );
}

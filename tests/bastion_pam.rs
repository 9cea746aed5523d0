//! The bastion workflows through the real libpam (pamdrive, nss_wrapper accounts, codes from
//! oathtool): enrollment at first login, answered by a "phone" that reads the otpauth URI from
//! the PAM_TEXT_INFO message it was shown (pamdrive --answer-cmd), and MFA age across
//! processes of one kernel audit session (a shell that writes /proc/self/loginuid, as
//! pam_loginuid does at an ssh login, then runs pamdrive more than once).
//!
//! tests/bastion.rs covers the same logic in-process with an injected clock and session.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use common::{
    avoid_step_boundary, sandbox, shell_quote, uri_secret, AuditLine, Finished, Login, Pam,
    Sandbox, Totp, Transaction, OTHER_SECRET, PROMPT, SECRET, SEVERITY_INFO, SEVERITY_WARNING,
};

const ENROLLED_AT_LOGIN: &str = "enrolled at login with a first valid code";
const NOT_ENROLLED: &str = "a code is required but the account has no secret (pam-mfa enroll)";

/// alice (1000) and bob (1001) must give a code and may enroll at their first login;
/// everyone else (root aside) is optional. `{extra}` goes into the rule.
const SELF_ENROLL: &str = r#"
store_dir = "{store}"
default_mode = "optional"

[[rule]]
name = "operators"
users = ["alice", "bob"]
mode = "required"
self_enroll = true
{extra}
"#;

fn operators(extra: &str) -> Sandbox {
    sandbox()
        .user("alice", 1000)
        .user("bob", 1001)
        .policy(&SELF_ENROLL.replace("{extra}", extra))
}

// --- the phone -------------------------------------------------------------------------------

/// Shell that sets $secret from the otpauth URI in the last PAM_TEXT_INFO message, or fails.
const READ_URI: &str = r#"secret=$(printf '%s\n' "$LAST_INFO" | sed -n 's|^otpauth://totp/.*[?&]secret=\([A-Z2-7]*\).*$|\1|p' | tail -n 1)
[ -n "$secret" ] || { echo "phone: no otpauth URI with a secret in: $LAST_INFO" >&2; exit 1; }
"#;

/// An authenticator app for pamdrive --answer-cmd: scans the URI it was shown and types the
/// current code. With `log`, the code typed is appended to that file as well.
fn phone(log: Option<&Path>) -> String {
    let mut cmd = format!("{READ_URI}oathtool --totp -b \"$secret\"");
    if let Some(log) = log {
        cmd.push_str(&format!(
            " | tee -a {}",
            shell_quote(&log.display().to_string())
        ));
    }
    cmd
}

/// A user who scanned the URI and mistyped: a code valid for no step within two of now.
fn clumsy_phone() -> String {
    format!(
        r#"{READ_URI}near=$(oathtool --totp -b -w 4 -N 'now - 60 sec' "$secret")
code=000000
while printf '%s\n' "$near" | grep -qx "$code"; do
    code=$(printf '%06d' $(( (10#$code + 111111) % 1000000 )))
done
echo "$code""#
    )
}

/// `phone` behind a barrier: the command waits until `parties` commands have reached it
/// (each drops a file in `dir`), so that every login has shown its QR code before any answers.
fn phone_after_barrier(dir: &Path, parties: usize) -> String {
    let dir = shell_quote(&dir.display().to_string());
    format!(
        r#"touch {dir}/$$
i=0
while [ "$(ls {dir} | wc -l)" -lt {parties} ]; do
    i=$((i + 1)); [ "$i" -lt 400 ] || {{ echo "phone: barrier timed out" >&2; exit 1; }}
    sleep 0.05
done
{}"#,
        phone(None)
    )
}

// --- what the module showed ------------------------------------------------------------------

/// What one enrollment at login showed: the first info message (QR code and URI).
struct Shown {
    uri: String,
    secret: String,
}

/// Checks the first PAM_TEXT_INFO message of `run`: a QR code in Unicode half blocks and an
/// otpauth URI for `user`, then the contract's prompt.
fn expect_enrollment_offered(run: &Transaction, user: &str) -> Shown {
    let infos = run.infos();
    assert!(
        !infos.is_empty(),
        "expected the enrollment message: {run:?}"
    );
    assert_eq!(
        run.messages[0].style, "info",
        "the QR code comes first: {run:?}"
    );
    let shown = infos[0];
    let uri = shown
        .lines()
        .find(|l| l.starts_with("otpauth://totp/"))
        .unwrap_or_else(|| panic!("no otpauth URI in {shown:?}"))
        .to_string();
    assert!(
        uri.contains(&format!(":{user}?")),
        "the URI names the account: {uri}"
    );
    let qr: Vec<&str> = shown
        .lines()
        .filter(|l| !l.is_empty() && l.chars().all(|c| matches!(c, '█' | '▀' | '▄' | ' ')))
        .collect();
    assert!(qr.len() >= 10, "a QR code in half blocks: {shown}");
    let width = qr[0].chars().count();
    assert!(
        width >= 21 && qr.iter().all(|l| l.chars().count() == width),
        "the QR code's lines are of one width: {shown}"
    );
    // One prompt, and one more after each wrong code the module asks again for.
    let retries = run
        .messages
        .iter()
        .filter(|m| m.style == "error" && m.text.contains("left)."))
        .count();
    let prompts = run.prompts();
    assert_eq!(prompts.len(), 1 + retries, "{run:?}");
    for prompt in prompts {
        assert_eq!(
            (prompt.style.as_str(), prompt.text.as_str()),
            ("echo_off", PROMPT)
        );
    }
    let secret = uri_secret(&uri);
    assert!(secret.len() >= 32, "a secret of 160 bits or more: {uri}");
    Shown { uri, secret }
}

/// The ten recovery codes of the last info message, checked for their form.
fn recovery_codes(run: &Transaction) -> Vec<String> {
    let infos = run.infos();
    assert_eq!(infos.len(), 2, "QR code, then recovery codes: {run:?}");
    assert_eq!(
        run.messages.last().map(|m| m.style.as_str()),
        Some("info"),
        "the recovery codes come after the code was typed: {run:?}"
    );
    let text = infos[1];
    assert!(text.contains("Recovery codes"), "{text}");
    let codes: Vec<String> = text.lines().skip(1).map(|l| l.trim().to_string()).collect();
    assert_eq!(codes.len(), 10, "ten recovery codes: {text}");
    for code in &codes {
        let (a, b) = code.split_once('-').unwrap_or_else(|| panic!("{code:?}"));
        assert!(
            a.len() == 5
                && b.len() == 5
                && (a.chars().chain(b.chars()))
                    .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)),
            "recovery code {code:?}"
        );
    }
    codes
}

fn store_names(sb: &Sandbox) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(sb.store())
        .expect("read store")
        .map(|e| {
            e.expect("store entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn expect_reason(line: &AuditLine, reason: &str) {
    assert_eq!(line.get("reason"), reason, "{line:#?}");
}

// --- enrollment at first login -----------------------------------------------------------------

#[test]
fn first_login_enrolls_with_the_code_of_the_secret_it_showed() {
    let sb = operators("");
    let typed = sb.path("typed");
    avoid_step_boundary(30);

    let first = sb.login("alice").answer_cmd(&phone(Some(&typed))).run();
    first.expect(Pam::Success);
    let styles: Vec<&str> = first.messages.iter().map(|m| m.style.as_str()).collect();
    assert_eq!(styles, ["info", "echo_off", "info"], "{first:?}");
    let shown = expect_enrollment_offered(&first, "alice");
    let codes = recovery_codes(&first);

    // The record holds the secret that was shown, next to its state and recovery hashes.
    assert_eq!(
        store_names(&sb),
        ["alice.recovery", "alice.state", "alice.toml"]
    );
    for name in store_names(&sb) {
        let meta = fs::metadata(sb.store().join(&name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
    let record = fs::read_to_string(sb.record_path("alice")).unwrap();
    assert!(
        record.contains(&format!("secret = \"{}\"", shown.secret)),
        "the saved secret is the one in {}: {record}",
        shown.uri
    );

    let line = sb.audit_line();
    assert_eq!(line.get("outcome"), "success", "{line:#?}");
    assert_eq!(line.get("user"), "alice");
    assert_eq!(line.get("mode"), "required");
    assert_eq!(line.get("rule"), "operators");
    assert_eq!(line.severity, SEVERITY_WARNING, "a warning: {line:#?}");
    expect_reason(&line, ENROLLED_AT_LOGIN);
    assert!(
        !line.raw.contains(&shown.secret),
        "no secret in the log: {line:#?}"
    );

    // The enrollment's code is spent; the next step's code from the same secret works,
    // now with the prompt alone.
    let typed = fs::read_to_string(&typed).unwrap().trim().to_string();
    assert_eq!(typed.len(), 6, "the phone typed one code: {typed:?}");
    sb.login("alice")
        .answer(&typed)
        .run()
        .expect_prompted()
        .expect(Pam::AuthErr);
    sb.audit_line()
        .expect("alice", "required", "operators", "deny");

    let totp = Totp::new(&shown.secret);
    let next = sb.login("alice").answer(&totp.code_in_steps(1)).run();
    next.expect_prompted().expect(Pam::Success);
    assert!(next.infos().is_empty(), "no second enrollment: {next:?}");
    let line = sb.audit_line();
    line.expect("alice", "required", "operators", "success");
    expect_reason(&line, "valid code");

    // The recovery codes shown are the ones saved.
    sb.login("alice")
        .answer(&codes[3])
        .run()
        .expect_prompted()
        .expect(Pam::Success);
    let line = sb.audit_line();
    assert_eq!(
        (line.get("outcome"), line.severity),
        ("success", SEVERITY_WARNING),
        "{line:#?}"
    );
    expect_reason(&line, "recovery code used; 9 left");
}

#[test]
fn a_wrong_or_missing_first_code_keeps_no_secret() {
    let sb = operators("");
    let mut secrets = Vec::new();
    let cases: Vec<(&str, Login<'_>, Pam)> = vec![
        (
            "a wrong code",
            sb.login("alice").answer_cmd(&clumsy_phone()),
            Pam::AuthErr,
        ),
        (
            "an empty answer",
            sb.login("alice").answer("@empty"),
            Pam::AuthErr,
        ),
        (
            "a NULL answer",
            sb.login("alice").answer("@null"),
            Pam::AuthErr,
        ),
        ("letters", sb.login("alice").answer("abcdef"), Pam::AuthErr),
        ("a failed conversation", sb.login("alice"), Pam::ConvErr),
    ];
    for (case, login, expected) in cases {
        let run = login.run();
        assert_eq!(run.rc(), expected, "{case}: {run:?}");
        let shown = expect_enrollment_offered(&run, "alice");
        assert_eq!(run.infos().len(), 1, "{case}: no recovery codes: {run:?}");
        // A wrong code is asked for again, up to three tries; anything else ends the login.
        let tries = if case == "a wrong code" { 3 } else { 1 };
        assert_eq!(run.prompts().len(), tries, "{case}: {run:?}");
        // No secret and no recovery code is kept; a wrong code (the first case) is counted
        // towards the lockout in the state file, as any wrong code is (issue 18, item 2).
        assert_eq!(
            store_names(&sb),
            vec!["alice.state".to_string()],
            "{case}: only the count of the wrong code is written"
        );
        let line = sb.audit_line();
        let outcome = if expected == Pam::ConvErr {
            "error"
        } else {
            "deny"
        };
        line.expect("alice", "required", "operators", outcome);
        assert!(!line.raw.contains(&shown.secret), "{case}: {line:#?}");
        secrets.push(shown.secret);
    }
    secrets.sort();
    secrets.dedup();
    assert_eq!(secrets.len(), 5, "each attempt is shown a fresh secret");

    // One wrong code is below max_failures: the first good login enrolls the account.
    avoid_step_boundary(30);
    sb.login("alice")
        .answer_cmd(&phone(None))
        .run()
        .expect(Pam::Success);
    assert!(sb.record_path("alice").exists());
}

#[test]
fn root_is_never_enrolled_at_login() {
    // The rule names no account, so it reaches root as well: root is only refused.
    let sb = sandbox().user("alice", 1000).policy(
        "store_dir = \"{store}\"\n[[rule]]\nname = \"everyone\"\nmode = \"required\"\nself_enroll = true\n",
    );
    let run = sb.login("root").answer("123456").run();
    run.expect_prompted().expect(Pam::AuthErr);
    assert!(run.infos().is_empty(), "nothing shown to root: {run:?}");
    assert!(!run.output.stdout.contains("otpauth"), "{run:?}");
    assert_eq!(store_names(&sb), Vec::<String>::new());
    let line = sb.audit_line();
    assert_eq!(
        (line.get("user"), line.get("mode"), line.get("outcome")),
        ("root", "required", "deny"),
        "{line:#?}"
    );
    expect_reason(&line, NOT_ENROLLED);

    // The same policy does offer the enrollment to an ordinary account.
    let run = sb.login("alice").run();
    run.expect(Pam::ConvErr);
    expect_enrollment_offered(&run, "alice");
    sb.audit_lines();

    // A rule that names root with self_enroll is a broken policy: every login fails.
    let sb = sb.policy(
        "store_dir = \"{store}\"\n[[rule]]\nname = \"admins\"\nusers = [\"root\", \"alice\"]\nmode = \"required\"\nself_enroll = true\n",
    );
    for user in ["root", "alice"] {
        let run = sb.login(user).answer("123456").run();
        run.expect_not_prompted().expect(Pam::ServiceErr);
        assert!(run.infos().is_empty(), "{run:?}");
        let line = sb.audit_line();
        assert_eq!(line.get("outcome"), "error", "{line:#?}");
        assert!(
            line.get("reason").contains("root never enrolls"),
            "{line:#?}"
        );
    }
    assert_eq!(store_names(&sb), Vec::<String>::new());
}

#[test]
fn two_parallel_first_logins_enroll_exactly_once() {
    let sb = operators("");
    let barrier = sb.path("barrier");
    fs::create_dir(&barrier).unwrap();
    let cmd = phone_after_barrier(&barrier, 2);
    avoid_step_boundary(30);

    let runs: Vec<Transaction> = thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| sb.login("alice").answer_cmd(&cmd).run()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        fs::read_dir(&barrier).unwrap().count(),
        2,
        "both logins were asked for a code before either answered"
    );
    let shown: Vec<Shown> = runs
        .iter()
        .map(|run| expect_enrollment_offered(run, "alice"))
        .collect();
    assert_ne!(shown[0].secret, shown[1].secret);
    let rcs: Vec<Pam> = runs.iter().map(Transaction::rc).collect();
    let winner = match rcs.as_slice() {
        [Pam::Success, Pam::AuthErr] => 0,
        [Pam::AuthErr, Pam::Success] => 1,
        _ => panic!(
            "expected one success and one failure: {:?}\n{:?}",
            runs[0], runs[1]
        ),
    };
    let loser = 1 - winner;
    recovery_codes(&runs[winner]);
    assert_eq!(
        runs[loser].infos().len(),
        1,
        "the loser is shown no recovery codes: {:?}",
        runs[loser]
    );

    let record = fs::read_to_string(sb.record_path("alice")).unwrap();
    assert!(
        record.contains(&format!("secret = \"{}\"", shown[winner].secret)),
        "the winner's secret is saved: {record}"
    );
    assert!(!record.contains(&shown[loser].secret));

    let mut lines = sb.audit_lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    lines.sort_by_key(|l| l.get("outcome").to_string());
    assert_eq!(lines[0].get("outcome"), "deny");
    expect_reason(
        &lines[0],
        "another login enrolled the account first; nothing overwritten",
    );
    assert_eq!(lines[1].get("outcome"), "success");
    expect_reason(&lines[1], ENROLLED_AT_LOGIN);

    // The winner's secret is the one that works from now on.
    sb.login("alice")
        .answer(&Totp::new(&shown[winner].secret).code_in_steps(1))
        .run()
        .expect(Pam::Success);
}

#[test]
fn enroll_by_ends_enrollment_at_login() {
    let sb = operators("enroll_by = 2020-01-31");
    let run = sb.login("alice").answer("123456").run();
    run.expect_prompted().expect(Pam::AuthErr);
    assert!(run.infos().is_empty(), "no enrollment offered: {run:?}");
    assert_eq!(store_names(&sb), Vec::<String>::new());
    let line = sb.audit_line();
    line.expect("alice", "required", "operators", "deny");
    expect_reason(&line, NOT_ENROLLED);

    // Before its enroll_by date, the rule still enrolls.
    let sb = sb.policy(&SELF_ENROLL.replace("{extra}", "enroll_by = 2099-12-31"));
    avoid_step_boundary(30);
    let run = sb.login("bob").answer_cmd(&phone(None)).run();
    run.expect(Pam::Success);
    recovery_codes(&run);
    assert!(sb.record_path("bob").exists());
    expect_reason(&sb.audit_line(), ENROLLED_AT_LOGIN);
}

// --- MFA age: one audit session, several processes ---------------------------------------------

/// ops (1001) must give a code, and a code is remembered for `seconds` in its audit session.
fn remembering(seconds: u32) -> Sandbox {
    sandbox().user("ops", 1001).enroll("ops", SECRET).policy(&format!(
        "store_dir = \"{{store}}\"\ndefault_mode = \"optional\"\n\n[[rule]]\nname = \"ops\"\nusers = [\"ops\"]\nmode = \"required\"\nremember_seconds = {seconds}\n"
    ))
}

enum Step<'a> {
    Login(Login<'a>),
    Sleep(Duration),
}

/// What one shell, and so one audit session, ran.
struct Session {
    /// /proc/self/sessionid in the shell after it wrote its loginuid.
    id: u32,
    runs: Vec<Transaction>,
}

const UNSET_SESSION: u32 = u32::MAX;

/// Runs `steps` from one bash that first writes `loginuid` to /proc/self/loginuid: that
/// gives it a new audit session (or none, for 4294967295) which the pamdrive processes it
/// starts share, as pam_loginuid does for an ssh login and the sudo run inside it.
fn in_audit_session(sb: &Sandbox, loginuid: u32, steps: Vec<Step<'_>>) -> Session {
    let mut script = format!(
        "echo {loginuid} > /proc/self/loginuid || exit 97\necho \"session $(cat /proc/self/sessionid)\"\n"
    );
    for step in &steps {
        match step {
            Step::Login(login) => {
                let argv: Vec<String> = login.argv().iter().map(|a| shell_quote(a)).collect();
                script.push_str(&format!("{}\necho \"--- exit $?\"\n", argv.join(" ")));
            }
            Step::Sleep(duration) => {
                script.push_str(&format!("sleep {:.3}\n", duration.as_secs_f64()));
            }
        }
    }
    let shell = sb.shell(&script);
    assert_eq!(shell.code, Some(0), "the session shell failed: {shell:?}");
    let mut lines = shell.stdout.lines();
    let id = lines
        .next()
        .and_then(|l| l.strip_prefix("session "))
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or_else(|| panic!("no session id from the shell: {shell:?}"));
    let mut runs = Vec::new();
    let mut chunk = String::new();
    for line in lines {
        if let Some(code) = line.strip_prefix("--- exit ") {
            runs.push(Transaction::from_output(Finished {
                code: code.parse().ok(),
                stdout: std::mem::take(&mut chunk),
                stderr: shell.stderr.clone(),
            }));
        } else {
            chunk.push_str(line);
            chunk.push('\n');
        }
    }
    assert_eq!(
        runs.len(),
        steps.iter().filter(|s| matches!(s, Step::Login(_))).count(),
        "{shell:?}"
    );
    Session { id, runs }
}

/// Whether a child of this test can start an audit session of its own. When it cannot, the
/// test is skipped with the reason, except that a CI run as root must be able to.
fn audit_sessions_available(test: &str) -> bool {
    let probe = Command::new("bash")
        .arg("-c")
        .arg("echo 4242 > /proc/self/loginuid && cat /proc/self/sessionid")
        .output();
    let reason = match probe {
        Ok(out) if out.status.success() => {
            match String::from_utf8_lossy(&out.stdout).trim().parse::<u32>() {
                Ok(id) if id != UNSET_SESSION => return true,
                _ => "writing /proc/self/loginuid gave no audit session id (kernel without audit?)"
                    .to_string(),
            }
        }
        Ok(out) => format!(
            "/proc/self/loginuid is not writable here ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("cannot run bash: {e}"),
    };
    let root = fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    if root && std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: {reason}; CI runs as root and must run this test");
    }
    eprintln!("skipped {test}: {reason}; it needs root (CAP_AUDIT_CONTROL) or an unset loginuid");
    false
}

fn expect_remembered(line: &AuditLine, user: &str, rule: &str, session: u32) {
    line.expect(user, "required", rule, "success");
    let reason = line.get("reason");
    assert!(
        reason.starts_with("no code asked: verified ")
            && reason.ends_with(&format!(" s ago in audit session {session}")),
        "{line:#?}"
    );
}

#[test]
fn a_verified_audit_session_is_not_asked_again_and_another_one_is() {
    if !audit_sessions_available("a_verified_audit_session_is_not_asked_again_and_another_one_is") {
        return;
    }
    let sb = remembering(600);
    let totp = Totp::new(SECRET);
    avoid_step_boundary(30);

    // As after an ssh login that gave a code: the same session's sudo is not asked.
    let session = in_audit_session(
        &sb,
        1001,
        vec![
            Step::Login(sb.login("ops").answer(&totp.code())),
            Step::Login(sb.login("ops")),
        ],
    );
    assert_ne!(session.id, UNSET_SESSION);
    let [first, second] = session.runs.as_slice() else {
        unreachable!()
    };
    first.expect_prompted().expect(Pam::Success);
    second.expect_not_prompted().expect(Pam::Success);
    let lines = sb.audit_lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    lines[0].expect("ops", "required", "ops", "success");
    expect_reason(&lines[0], "valid code");
    expect_remembered(&lines[1], "ops", "ops", session.id);

    // Another login (its own loginuid write, its own session) is asked again.
    let other = in_audit_session(
        &sb,
        1001,
        vec![
            Step::Login(sb.login("ops")),
            Step::Login(sb.login("ops").answer(&totp.code_in_steps(1))),
        ],
    );
    assert_ne!(other.id, session.id);
    let [unanswered, answered] = other.runs.as_slice() else {
        unreachable!()
    };
    unanswered.expect_prompted().expect(Pam::ConvErr);
    answered.expect_prompted().expect(Pam::Success);
    let lines = sb.audit_lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    lines[0].expect("ops", "required", "ops", "error");
    lines[1].expect("ops", "required", "ops", "success");
    expect_reason(&lines[1], "valid code");

    // A third session is asked as well.
    let again = in_audit_session(&sb, 1001, vec![Step::Login(sb.login("ops"))]);
    again.runs[0].expect_prompted().expect(Pam::ConvErr);
    sb.audit_lines();
}

#[test]
fn a_remembered_session_is_remembered_for_its_account_only() {
    if !audit_sessions_available("a_remembered_session_is_remembered_for_its_account_only") {
        return;
    }
    let sb = remembering(600)
        .user("dev", 1002)
        .enroll("dev", OTHER_SECRET)
        .policy("store_dir = \"{store}\"\n[[rule]]\nname = \"ops\"\nusers = [\"ops\", \"dev\"]\nmode = \"required\"\nremember_seconds = 600\n");
    avoid_step_boundary(30);
    let session = in_audit_session(
        &sb,
        1001,
        vec![
            Step::Login(sb.login("ops").answer(&Totp::new(SECRET).code())),
            Step::Login(sb.login("dev")),
            Step::Login(sb.login("ops")),
        ],
    );
    session.runs[0].expect_prompted().expect(Pam::Success);
    session.runs[1].expect_prompted().expect(Pam::ConvErr);
    session.runs[2].expect_not_prompted().expect(Pam::Success);
}

/// A remembered session serves only local authentications (sudo, su: no PAM_RHOST) in a
/// session whose login uid is the account's own. A daemon started by hand from a shell
/// serves every client in that shell's session: with someone else's login uid nothing is
/// remembered, and with the account's own, remote logins are still asked.
#[test]
fn a_remembered_session_serves_only_local_logins_of_its_own_login_uid() {
    if !audit_sessions_available(
        "a_remembered_session_serves_only_local_logins_of_its_own_login_uid",
    ) {
        return;
    }
    let sb = remembering(600);
    let totp = Totp::new(SECRET);
    avoid_step_boundary(30);
    // (login uid of the session, whether the third login, a local one, is spared)
    for (loginuid, spared, code) in [
        (4242, false, totp.code()),
        (1001, true, totp.code_in_steps(1)),
    ] {
        let session = in_audit_session(
            &sb,
            loginuid,
            vec![
                Step::Login(sb.login("ops").rhost("10.0.0.5").answer(&code)),
                Step::Login(sb.login("ops").rhost("203.0.113.66")),
                Step::Login(sb.login("ops")),
            ],
        );
        assert_ne!(session.id, UNSET_SESSION);
        session.runs[0].expect_prompted().expect(Pam::Success);
        session.runs[1].expect_prompted().expect(Pam::ConvErr);
        if spared {
            session.runs[2].expect_not_prompted().expect(Pam::Success);
        } else {
            session.runs[2].expect_prompted().expect(Pam::ConvErr);
        }
        sb.audit_lines();
    }
}

#[test]
fn without_an_audit_session_every_login_is_asked() {
    if !audit_sessions_available("without_an_audit_session_every_login_is_asked") {
        return;
    }
    let sb = remembering(600);
    let totp = Totp::new(SECRET);
    avoid_step_boundary(30);
    // 4294967295 unsets the loginuid, and with it the session id.
    let session = in_audit_session(
        &sb,
        UNSET_SESSION,
        vec![
            Step::Login(sb.login("ops").answer(&totp.code())),
            Step::Login(sb.login("ops")),
        ],
    );
    assert_eq!(session.id, UNSET_SESSION, "the shell has no audit session");
    session.runs[0].expect_prompted().expect(Pam::Success);
    session.runs[1].expect_prompted().expect(Pam::ConvErr);
}

#[test]
fn an_expired_age_is_asked_again() {
    if !audit_sessions_available("an_expired_age_is_asked_again") {
        return;
    }
    let sb = remembering(2);
    let totp = Totp::new(SECRET);
    avoid_step_boundary(30);
    let session = in_audit_session(
        &sb,
        1001,
        vec![
            Step::Login(sb.login("ops").answer(&totp.code())),
            Step::Login(sb.login("ops")),
            Step::Sleep(Duration::from_millis(3100)),
            Step::Login(sb.login("ops")),
        ],
    );
    session.runs[0].expect_prompted().expect(Pam::Success);
    session.runs[1].expect_not_prompted().expect(Pam::Success);
    session.runs[2].expect_prompted().expect(Pam::ConvErr);
    let lines = sb.audit_lines();
    expect_remembered(&lines[1], "ops", "ops", session.id);
    lines[2].expect("ops", "required", "ops", "error");
}

#[test]
fn a_remembered_session_after_enrollment_at_login() {
    if !audit_sessions_available("a_remembered_session_after_enrollment_at_login") {
        return;
    }
    // The ssh login that enrolls also verifies its session: sudo right after it is not asked.
    let sb = operators("remember_seconds = 600");
    let cmd = phone(None);
    avoid_step_boundary(30);
    let session = in_audit_session(
        &sb,
        1000,
        vec![
            Step::Login(sb.login("alice").answer_cmd(&cmd)),
            Step::Login(sb.login("alice")),
        ],
    );
    session.runs[0].expect(Pam::Success);
    recovery_codes(&session.runs[0]);
    session.runs[1].expect_not_prompted().expect(Pam::Success);
    let lines = sb.audit_lines();
    expect_reason(&lines[0], ENROLLED_AT_LOGIN);
    expect_remembered(&lines[1], "alice", "operators", session.id);
}

const ROOT_REMEMBERED: &str = r#"
store_dir = "{store}"
default_mode = "optional"

[[rule]]
name = "admins"
users = ["root", "ops"]
mode = "required"
remember_seconds = 600
"#;

#[test]
fn remember_seconds_for_root_needs_allow_root() {
    let sb = sandbox()
        .user("ops", 1001)
        .enroll("ops", SECRET)
        .enroll("root", SECRET)
        .policy(ROOT_REMEMBERED);
    for user in ["root", "ops"] {
        let run = sb.login(user).answer(&Totp::new(SECRET).code()).run();
        run.expect_not_prompted().expect(Pam::ServiceErr);
        let line = sb.audit_line();
        assert_eq!(line.get("outcome"), "error", "{line:#?}");
        assert!(line.get("reason").contains("allow_root"), "{line:#?}");
    }
    let check = sb.pam_mfa(&["policy", "check"]).run();
    assert_eq!(check.code, Some(1), "{check:?}");
    assert!(check.stdout.contains("allow_root"), "{check:?}");
}

#[test]
fn root_is_remembered_only_with_allow_root() {
    if !audit_sessions_available("root_is_remembered_only_with_allow_root") {
        return;
    }
    let sb = sandbox()
        .enroll("root", SECRET)
        .policy(&format!("{ROOT_REMEMBERED}allow_root = true\n"));
    let totp = Totp::new(SECRET);
    avoid_step_boundary(30);
    let session = in_audit_session(
        &sb,
        0,
        vec![
            Step::Login(sb.login("root").answer(&totp.code())),
            Step::Login(sb.login("root")),
        ],
    );
    session.runs[0].expect_prompted().expect(Pam::Success);
    session.runs[1].expect_not_prompted().expect(Pam::Success);
    let lines = sb.audit_lines();
    // Root's decisions always name the rule "root"; the limits come from "admins".
    expect_remembered(&lines[1], "root", "root", session.id);
    assert!(lines[1].get("why").contains("'admins'"), "{:#?}", lines[1]);
    assert_eq!(lines[1].severity, SEVERITY_INFO);
}

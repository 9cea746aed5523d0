//! The admin command `pam-mfa enroll`, run under nss_wrapper against a sandbox's policy and store;
//! what it writes is then used to log in through the module.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};

use common::{sandbox, uri_secret, Finished, Pam, Sandbox, Totp, OTHER_SECRET, SECRET};

/// alice (1000) must give a code, bob (1001) may.
fn office() -> Sandbox {
    sandbox()
        .user("alice", 1000)
        .user("bob", 1001)
        .group("wheel", 10, &["alice"])
        .policy(
            r#"
store_dir = "{store}"
default_mode = "optional"

[[rule]]
name = "privileged"
groups = ["wheel"]
mode = "required"
"#,
        )
}

/// The `otpauth://totp/` line of the command's output.
fn printed_uri(run: &Finished) -> String {
    run.stdout
        .lines()
        .find(|line| line.starts_with("otpauth://totp/"))
        .unwrap_or_else(|| panic!("no otpauth://totp/ URI on stdout: {run:?}"))
        .to_string()
}

/// Exit status 1 and one line on stderr starting `pam-mfa: `.
fn expect_error(run: &Finished) {
    assert_eq!(run.code, Some(1), "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line of error expected: {run:?}");
    assert!(lines[0].starts_with("pam-mfa: "), "{run:?}");
}

/// Where the command asked for a code first, stderr also holds its instructions and prompt:
/// exit status 1 and, last, one line starting `pam-mfa: `.
fn expect_error_after_prompt(run: &Finished) {
    assert_eq!(run.code, Some(1), "{run:?}");
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| line.contains("pam-mfa: "))
        .collect();
    assert_eq!(errors.len(), 1, "one line of error expected: {run:?}");
    assert!(errors[0].starts_with("pam-mfa: "), "error line: {run:?}");
    assert_eq!(run.stderr.lines().last(), Some(errors[0]), "{run:?}");
}

fn expect_not_enrolled(sb: &Sandbox, user: &str) {
    for file in [format!("{user}.toml"), format!("{user}.state")] {
        let path = sb.store().join(&file);
        assert!(
            fs::symlink_metadata(&path).is_err(),
            "{file} written: {:?}",
            fs::read_to_string(&path)
        );
    }
}

#[test]
fn enroll_prints_uri_writes_private_record_and_the_secret_logs_in() {
    let sb = office();

    let run = sb.pam_mfa(&["enroll", "alice", "--no-confirm"]).run();
    assert_eq!(run.code, Some(0), "{run:?}");
    let secret = uri_secret(&printed_uri(&run));
    assert!(secret.len() >= 32, "160-bit secret expected: {secret}");

    let record = fs::symlink_metadata(sb.record_path("alice")).expect("record written");
    assert!(record.file_type().is_file());
    assert_eq!(record.permissions().mode() & 0o7777, 0o600);
    assert_eq!(record.nlink(), 1);
    assert_eq!(record.uid(), fs::metadata(sb.store()).unwrap().uid());
    assert!(!run.stderr.contains(&secret), "secret on stderr: {run:?}");
    let store = fs::metadata(sb.store()).unwrap();
    assert_eq!(store.permissions().mode() & 0o7777, 0o700);
    if let Ok(state) = fs::symlink_metadata(sb.store().join("alice.state")) {
        assert!(state.file_type().is_file());
        assert_eq!(
            state.permissions().mode() & 0o077,
            0,
            "state readable by others"
        );
    }

    sb.login("alice")
        .answer(&Totp::new(&secret).code())
        .run()
        .expect_prompted()
        .expect(Pam::Success);
}

#[test]
fn enrolled_record_follows_the_record_format() {
    let sb = office().enroll_with_cli("alice", SECRET);

    let text = fs::read_to_string(sb.record_path("alice")).unwrap();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(" = ")
            .unwrap_or_else(|| panic!("not `key = value`: {line:?} in\n{text}"));
        assert!(
            key.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{line:?}"
        );
        let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
        assert!(
            quoted || value.parse::<i64>().is_ok(),
            "neither string nor integer: {line:?}"
        );
    }
    assert!(text.contains(&format!("secret = \"{SECRET}\"")), "{text}");
}

#[test]
fn secret_on_stdin_may_be_lowercase_and_spaced() {
    let sb = office();

    let run = sb
        .pam_mfa(&["enroll", "alice", "--secret-stdin", "--no-confirm"])
        .stdin("jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp\n")
        .run();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(uri_secret(&printed_uri(&run)), SECRET);

    sb.login("alice")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect(Pam::Success);
}

/// A secret typed or piped in is read one byte at a time into the command's own zeroizing
/// buffer: no read hands the kernel a buffer that then holds it whole (std's stdin buffer
/// would keep that copy until the process ends).
#[test]
fn a_secret_on_stdin_never_sits_whole_in_a_read_buffer() {
    let sb = office();
    let trace = sb.path("read.strace");
    let inner = sb
        .pam_mfa(&["enroll", "alice", "--secret-stdin", "--no-confirm"])
        .command();
    let mut command = Command::new("strace");
    command
        .args(["-f", "-qq", "-e", "trace=read", "-s", "4096", "-o"])
        .arg(&trace)
        .arg(inner.get_program())
        .args(inner.get_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in inner.get_envs() {
        if let Some(value) = value {
            command.env(name, value);
        }
    }
    let mut child = command
        .spawn()
        .expect("run strace (scripts/deps.sh installs it)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{SECRET}\n").as_bytes()).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let reads = fs::read_to_string(&trace).unwrap();
    assert!(reads.contains("read("), "{reads}");
    // A byte-at-a-time read never shows eight characters of it together.
    for window in SECRET.as_bytes().windows(8) {
        let piece = std::str::from_utf8(window).unwrap();
        assert!(
            !reads.contains(piece),
            "a read buffer held {piece:?}: {reads}"
        );
    }
    assert!(sb.record_path("alice").exists());
}

#[test]
fn invalid_base32_is_refused_and_nothing_written() {
    for input in ["not base32!\n", "JBSWY3DPEHPK3PX0\n", "\n"] {
        let sb = office();

        let run = sb
            .pam_mfa(&["enroll", "alice", "--secret-stdin", "--no-confirm"])
            .stdin(input)
            .run();
        expect_error(&run);
        expect_not_enrolled(&sb, "alice");
    }
}

#[test]
fn unknown_user_is_refused() {
    let sb = office();

    let run = sb
        .pam_mfa(&["enroll", "mallory", "--secret-stdin", "--no-confirm"])
        .stdin(&format!("{SECRET}\n"))
        .run();
    expect_error(&run);
    expect_not_enrolled(&sb, "mallory");
}

/// The module goes by the name NSS answers with; the command refuses another spelling
/// rather than write a record the module would never read.
#[test]
fn enrolling_another_spelling_of_an_account_names_the_account_and_writes_nothing() {
    let sb = office();
    let casefold = format!("{} libnss_wrapper.so", common::casefold().display());
    let run = sb
        .pam_mfa(&["enroll", "ALICE", "--secret-stdin", "--no-confirm"])
        .env("LD_PRELOAD", &casefold)
        .stdin(&format!("{SECRET}\n"))
        .run();
    expect_error(&run);
    assert!(
        run.stderr.contains("NSS knows this account as alice"),
        "{run:?}"
    );
    expect_not_enrolled(&sb, "ALICE");
    expect_not_enrolled(&sb, "alice");
}

#[test]
fn enrolling_twice_without_force_fails_and_keeps_the_first_secret() {
    let sb = office().enroll_with_cli("alice", SECRET);
    let before = fs::read(sb.record_path("alice")).unwrap();

    let run = sb
        .pam_mfa(&["enroll", "alice", "--secret-stdin", "--no-confirm"])
        .stdin(&format!("{OTHER_SECRET}\n"))
        .run();
    expect_error(&run);
    assert_eq!(fs::read(sb.record_path("alice")).unwrap(), before);

    sb.login("alice")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect(Pam::Success);
}

#[test]
fn force_replaces_the_secret() {
    let sb = office().enroll_with_cli("alice", SECRET);

    let run = sb
        .pam_mfa(&[
            "enroll",
            "alice",
            "--secret-stdin",
            "--no-confirm",
            "--force",
        ])
        .stdin(&format!("{OTHER_SECRET}\n"))
        .run();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(uri_secret(&printed_uri(&run)), OTHER_SECRET);

    sb.login("alice")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect(Pam::AuthErr);
    sb.login("alice")
        .answer(&Totp::new(OTHER_SECRET).code())
        .run()
        .expect(Pam::Success);
}

#[test]
fn confirmation_with_wrong_code_saves_nothing() {
    let sb = office();
    let wrong = Totp::new(SECRET).wrong_code();

    let run = sb
        .pam_mfa(&["enroll", "alice", "--secret-stdin"])
        .stdin(&format!("{SECRET}\n{wrong}\n"))
        .run();
    expect_error_after_prompt(&run);
    expect_not_enrolled(&sb, "alice");

    sb.login("alice")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect(Pam::AuthErr);
}

#[test]
fn confirmation_with_right_code_saves() {
    let sb = office();

    let run = sb
        .pam_mfa(&["enroll", "alice", "--secret-stdin"])
        .stdin(&format!("{SECRET}\n{}\n", Totp::new(SECRET).code()))
        .run();
    assert_eq!(run.code, Some(0), "{run:?}");

    sb.login("alice")
        .answer(&Totp::new(SECRET).code_in_steps(1))
        .run()
        .expect(Pam::Success);
}

#[test]
fn generated_secret_is_confirmed_with_a_code_from_the_printed_uri() {
    let sb = office();
    let mut secret = String::new();

    let run = sb.pam_mfa(&["enroll", "alice"]).run_answering_uri(|uri| {
        secret = uri_secret(uri);
        Totp::new(&secret).code()
    });
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(sb.record_path("alice").is_file());

    sb.login("alice")
        .answer(&Totp::new(&secret).code_in_steps(1))
        .run()
        .expect(Pam::Success);
}

#[test]
fn issuer_appears_in_the_uri() {
    let sb = office();

    let run = sb
        .pam_mfa(&["enroll", "alice", "--no-confirm", "--issuer", "ExampleCorp"])
        .run();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(printed_uri(&run).contains("issuer=ExampleCorp"), "{run:?}");
}

#[test]
fn store_without_parent_is_refused() {
    let sb =
        office().policy("store_dir = \"{store}/missing/store\"\ndefault_mode = \"optional\"\n");

    let run = sb
        .pam_mfa(&["enroll", "alice", "--secret-stdin", "--no-confirm"])
        .stdin(&format!("{SECRET}\n"))
        .run();
    expect_error(&run);
    assert!(!sb.store().join("missing").exists());
}

#[test]
fn store_owned_by_another_user_is_refused() {
    if !common::is_root() {
        eprintln!("skipped: giving a file to another user needs root");
        return;
    }
    let sb = office();
    sb.chown(&sb.store(), 1000);

    let run = sb
        .pam_mfa(&["enroll", "alice", "--secret-stdin", "--no-confirm"])
        .stdin(&format!("{SECRET}\n"))
        .run();
    expect_error(&run);
    expect_not_enrolled(&sb, "alice");
}

#[test]
fn missing_policy_is_refused() {
    let sb = office();
    fs::remove_file(sb.policy_path()).unwrap();

    let run = sb
        .pam_mfa(&["enroll", "alice", "--secret-stdin", "--no-confirm"])
        .stdin(&format!("{SECRET}\n"))
        .run();
    expect_error(&run);
    expect_not_enrolled(&sb, "alice");
}

#[test]
fn usage_errors_exit_with_status_2() {
    let sb = office();

    for args in [
        &["enroll"][..],
        &["enroll", "alice", "--frobnicate"],
        &["frobnicate"],
    ] {
        let run = sb.pam_mfa(args).run();
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
    }
    expect_not_enrolled(&sb, "alice");
}

/// A reader that goes away (`pam-mfa ... | head -1`) ends the command quietly with status
/// 141, as SIGPIPE would, not with a panic message.
#[test]
fn a_closed_pipe_on_stdout_ends_quietly() {
    let sb = office();
    let run = std::process::Command::new("bash")
        .arg("-c")
        .arg("( sleep 0.3; exec \"$0\" \"$@\" ) | true; echo \"status ${PIPESTATUS[0]}\"")
        .arg(common::cli_path())
        .args(["policy", "check", "--config"])
        .arg(sb.policy_path())
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(stdout.trim(), "status 141", "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Rules compare the name NSS gives an account; policy check warns about an entry that a
/// directory knows under another spelling, since it matches no login.
#[test]
fn policy_check_warns_about_a_rule_user_nss_spells_otherwise() {
    let sb = sandbox().user("deploy", 1001).policy(
        "store_dir = \"{store}\"\n[[rule]]\nname = \"deployers\"\nusers = [\"Deploy\"]\nmode = \"required\"\n",
    );
    let casefold = format!("{} libnss_wrapper.so", common::casefold().display());
    let run = sb
        .pam_mfa(&["policy", "check"])
        .env("LD_PRELOAD", &casefold)
        .run();
    assert!(
        run.stdout
            .contains("user \"Deploy\" is deploy in NSS; rules compare that name"),
        "{run:?}"
    );
    // Without the case-blind directory, Deploy is simply unknown: no such warning.
    let run = sb.pam_mfa(&["policy", "check"]).run();
    assert!(!run.stdout.contains("is deploy in NSS"), "{run:?}");
}

//! `pam-mfa import pskc` end to end: the RFC 6030 example documents and a vendor-style file
//! (tests/fixtures/pskc/) imported by the built command, then a login through the real libpam
//! with the token's code from oathtool; and the failures that must write nothing.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{avoid_step_boundary, cli_path, sandbox, Finished, Pam, Sandbox};

/// The secret of the RFC 6030 examples (Figures 3, 5, 6 and 7): "12345678901234567890".
const RFC_SECRET_HEX: &str = "3132333435363738393031323334353637383930";
/// Figure 6's pre-shared key.
const RFC_KEY_HEX: &str = "12345678901234567890123456789012";
/// Figure 7's password.
const RFC_PASSWORD: &str = "qwerty";
/// The pre-shared key of vendor-tokens.pskcxml (see make-vendor-tokens.py).
const VENDOR_KEY_HEX: &str = "5f1c2a9b7e3d4c6a8b0e1f2d3c4b5a69";
/// Its token secrets: SHA-1 or SHA-256 of "secret-SERIAL".
const VENDOR_1001_HEX: &str = "229a59c234c1d35b6c80acc140984d7056417793";
const VENDOR_1002_HEX: &str = "d2b324d65573ee3bf38c858e8407f8cd1d34b7cd3a78d93add169e7bc6c00388";
const VENDOR_1003_HEX: &str = "2b911c71c2370c45cd24f6e901e24b0d9a2b7623";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pskc")
        .join(name)
}

/// A sandbox with accounts alice, bob, carol and dave.
fn world() -> Sandbox {
    sandbox()
        .user("alice", 1001)
        .user("bob", 1002)
        .user("carol", 1003)
        .user("dave", 1004)
}

/// Writes `contents` into the sandbox with `mode`, and returns its path as a string.
fn put(sandbox: &Sandbox, name: &str, contents: &str, mode: u32) -> String {
    let path = sandbox.path(name);
    fs::write(&path, contents).expect("write file");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
    path.display().to_string()
}

fn import(sandbox: &Sandbox, args: &[&str]) -> Finished {
    let mut all = vec!["import", "pskc"];
    all.extend_from_slice(args);
    sandbox.pam_mfa(&all).run()
}

fn expect_success(run: &Finished) {
    assert_eq!(run.code, Some(0), "{run:?}");
}

/// Exit status 1, one line on stderr starting `pam-mfa: ` and holding `word`.
fn expect_error(run: &Finished, word: &str) {
    assert_eq!(run.code, Some(1), "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line of error expected: {run:?}");
    assert!(lines[0].starts_with("pam-mfa: "), "{run:?}");
    assert!(lines[0].contains(word), "{word:?} expected: {run:?}");
}

/// `oathtool --hotp -c COUNTER -d DIGITS HEX`.
fn hotp(secret_hex: &str, counter: u64, digits: u32) -> String {
    oathtool(&[
        "--hotp",
        "-c",
        &counter.to_string(),
        "-d",
        &digits.to_string(),
        secret_hex,
    ])
}

/// `oathtool --totp[=ALGO] -s STEP -d DIGITS HEX`, away from a step boundary.
fn totp(secret_hex: &str, algorithm: &str, step: u64, digits: u32) -> String {
    avoid_step_boundary(step);
    oathtool(&[
        &format!("--totp={algorithm}"),
        "-s",
        &step.to_string(),
        "-d",
        &digits.to_string(),
        secret_hex,
    ])
}

fn oathtool(args: &[&str]) -> String {
    let output = Command::new("oathtool")
        .args(args)
        .output()
        .expect("run oathtool (apt-get install oathtool)");
    assert!(output.status.success(), "oathtool {args:?} failed");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// Every file of the store with its contents: what "nothing written" is checked against.
fn store_snapshot(sandbox: &Sandbox) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(sandbox.store())
        .expect("read store")
        .map(|entry| {
            let entry = entry.expect("entry");
            (
                entry.file_name().to_string_lossy().into_owned(),
                fs::read(entry.path()).expect("read store file"),
            )
        })
        .collect()
}

fn record(sandbox: &Sandbox, user: &str) -> String {
    fs::read_to_string(sandbox.record_path(user)).expect("read record")
}

#[test]
fn rfc6030_plain_hotp_token_imports_and_its_codes_log_in() {
    let sandbox = world();
    let file = fixture("rfc6030-figure3.pskcxml");
    let run = import(
        &sandbox,
        &[file.to_str().unwrap(), "--assign", "987654321=alice"],
    );
    expect_success(&run);
    assert!(
        run.stdout
            .contains("imported 987654321 -> alice: hotp SHA1, 8 digits, counter 0"),
        "{run:?}"
    );
    let text = record(&sandbox, "alice");
    assert!(text.contains("serial = \"987654321\"\n"), "{text}");
    assert!(text.contains("manufacturer = \"Manufacturer\"\n"), "{text}");

    sandbox
        .login("alice")
        .answer("00000000")
        .run()
        .expect(Pam::AuthErr);
    sandbox
        .login("alice")
        .answer(&hotp(RFC_SECRET_HEX, 0, 8))
        .run()
        .expect(Pam::Success);
    sandbox
        .login("alice")
        .answer(&hotp(RFC_SECRET_HEX, 0, 8))
        .run()
        .expect(Pam::AuthErr);
    sandbox
        .login("alice")
        .answer(&hotp(RFC_SECRET_HEX, 1, 8))
        .run()
        .expect(Pam::Success);
}

#[test]
fn rfc6030_pre_shared_key_file_imports_and_logs_in() {
    let sandbox = world();
    let key = put(
        &sandbox,
        "transport.key",
        &format!("{RFC_KEY_HEX}\n"),
        0o600,
    );
    let file = fixture("rfc6030-figure6.pskcxml");
    let run = import(
        &sandbox,
        &[
            file.to_str().unwrap(),
            "--key-file",
            &key,
            "--assign",
            "987654321=bob",
        ],
    );
    expect_success(&run);
    assert!(run.stdout.contains("imported 987654321 -> bob"), "{run:?}");
    sandbox
        .login("bob")
        .answer(&hotp(RFC_SECRET_HEX, 0, 8))
        .run()
        .expect(Pam::Success);
}

#[test]
fn rfc6030_raw_key_file_works_too() {
    let sandbox = world();
    let path = sandbox.path("raw.key");
    let raw: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&RFC_KEY_HEX[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    fs::write(&path, raw).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    let file = fixture("rfc6030-figure6.pskcxml");
    let run = import(
        &sandbox,
        &[
            file.to_str().unwrap(),
            "--key-file",
            path.to_str().unwrap(),
            "--assign",
            "987654321=bob",
        ],
    );
    expect_success(&run);
}

#[test]
fn rfc6030_password_file_derives_the_key_and_logs_in() {
    let sandbox = world();
    let password = put(&sandbox, "password", &format!("{RFC_PASSWORD}\n"), 0o600);
    let file = fixture("rfc6030-figure7.pskcxml");
    let run = import(
        &sandbox,
        &[
            file.to_str().unwrap(),
            "--password-file",
            &password,
            "--assign",
            "987654321=carol",
        ],
    );
    expect_success(&run);
    assert!(record(&sandbox, "carol").contains("manufacturer = \"TokenVendorAcme\""));
    sandbox
        .login("carol")
        .answer(&hotp(RFC_SECRET_HEX, 0, 8))
        .run()
        .expect(Pam::Success);
}

#[test]
fn rfc6030_password_is_asked_on_the_terminal() {
    let sandbox = world();
    let file = fixture("rfc6030-figure7.pskcxml");
    let run = on_terminal(
        &sandbox,
        &[
            "import",
            "pskc",
            file.to_str().unwrap(),
            "--assign",
            "987654321=carol",
        ],
        "Password for",
        RFC_PASSWORD,
    );
    assert!(run.contains("(My Password 1)"), "{run}");
    assert!(
        !run.contains(RFC_PASSWORD),
        "the password was echoed: {run}"
    );
    assert!(run.contains("imported 987654321 -> carol"), "{run}");
    sandbox
        .login("carol")
        .answer(&hotp(RFC_SECRET_HEX, 0, 8))
        .run()
        .expect(Pam::Success);
}

#[test]
fn vendor_file_imports_by_map_with_totp_steps_hashes_and_counters() {
    let sandbox = world().user("erin", 1005);
    let key = put(&sandbox, "vendor.key", VENDOR_KEY_HEX, 0o600);
    let map = put(
        &sandbox,
        "tokens.map",
        "serial,user\n1001 alice\n1002 bob\n1003,carol\n1004 dave # T0 is not 0\n9999 erin\n",
        0o644,
    );
    let file = fixture("vendor-tokens.pskcxml");
    let run = import(
        &sandbox,
        &[
            file.to_str().unwrap(),
            "--key-file",
            &key,
            "--all",
            "--map",
            &map,
        ],
    );
    // A token was skipped, so the command fails, after importing the others.
    expect_error(&run, "1 token(s) skipped");
    for line in [
        "imported 1001 -> alice: totp SHA1, 6 digits, 60 s steps, Example Token Works",
        "imported 1002 -> bob: totp SHA256, 8 digits, 30 s steps",
        "imported 1003 -> carol: hotp SHA1, 6 digits, counter 5",
        "skipped  1004 -> dave: its time origin (T0) is 1000",
        "3 imported, 0 unchanged, 0 conflict(s), 1 skipped, 3 token(s) of the file not in the map, 1 map line(s) naming no token of the file",
    ] {
        assert!(run.stdout.contains(line), "{line:?} expected: {run:?}");
    }
    assert!(!sandbox.record_path("dave").exists());
    assert!(!sandbox.record_path("erin").exists());

    sandbox
        .login("alice")
        .answer(&totp(VENDOR_1001_HEX, "sha1", 60, 6))
        .run()
        .expect(Pam::Success);
    sandbox
        .login("bob")
        .answer(&totp(VENDOR_1002_HEX, "sha256", 30, 8))
        .run()
        .expect(Pam::Success);
    sandbox
        .login("carol")
        .answer(&hotp(VENDOR_1003_HEX, 4, 6))
        .run()
        .expect(Pam::AuthErr);
    sandbox
        .login("carol")
        .answer(&hotp(VENDOR_1003_HEX, 5, 6))
        .run()
        .expect(Pam::Success);

    // Lost-token workflow: who holds 1002?
    let status = sandbox.pam_mfa(&["status", "--serial", "1002"]).run();
    expect_success(&status);
    assert!(status.stdout.contains("\nbob "), "{status:?}");
    assert!(!status.stdout.contains("alice"), "{status:?}");
    assert!(
        status
            .stdout
            .contains("token: serial 1002 (Example Token Works)"),
        "{status:?}"
    );
    let json = sandbox.pam_mfa(&["status", "alice", "--json"]).run();
    assert!(json.stdout.contains("\"serial\": \"1001\""), "{json:?}");
    let nobody = sandbox.pam_mfa(&["status", "--serial", "4242"]).run();
    expect_error(&nobody, "no account has the token with serial number 4242");
}

#[test]
fn an_account_enrolled_with_another_secret_is_a_conflict_unless_forced() {
    let sandbox = world().enroll("alice", common::SECRET);
    let file = fixture("rfc6030-figure3.pskcxml");
    let before = record(&sandbox, "alice");
    let run = import(
        &sandbox,
        &[file.to_str().unwrap(), "--assign", "987654321=alice"],
    );
    expect_error(&run, "1 conflict(s) and 0 token(s) skipped");
    assert!(
        run.stdout.contains(
            "conflict  987654321 -> alice: enrolled already with a different secret; use --force to replace it"
        ) && run
            .stdout
            .contains("0 imported, 0 unchanged, 1 conflict(s), 0 skipped"),
        "{run:?}"
    );
    assert_eq!(record(&sandbox, "alice"), before);

    let forced = import(
        &sandbox,
        &[
            file.to_str().unwrap(),
            "--assign",
            "987654321=alice",
            "--force",
        ],
    );
    expect_success(&forced);
    sandbox
        .login("alice")
        .answer(&hotp(RFC_SECRET_HEX, 0, 8))
        .run()
        .expect(Pam::Success);
}

/// Importing the same file again is no error and changes nothing: a script may run it as
/// often as it likes, as the other imports allow.
#[test]
fn importing_the_same_token_again_is_unchanged_and_succeeds() {
    let sandbox = world();
    let file = fixture("rfc6030-figure3.pskcxml");
    let args = [file.to_str().unwrap(), "--assign", "987654321=alice"];
    expect_success(&import(&sandbox, &args));
    sandbox
        .login("alice")
        .answer(&hotp(RFC_SECRET_HEX, 0, 8))
        .run()
        .expect(Pam::Success);
    let before = record(&sandbox, "alice");
    let state_before = fs::read(sandbox.store().join("alice.state")).unwrap();

    let again = import(&sandbox, &args);
    expect_success(&again);
    assert!(
        again
            .stdout
            .contains("unchanged 987654321 -> alice: enrolled with this token's secret already")
            && again
                .stdout
                .contains("0 imported, 1 unchanged, 0 conflict(s), 0 skipped"),
        "{again:?}"
    );
    assert_eq!(record(&sandbox, "alice"), before);
    assert_eq!(
        fs::read(sandbox.store().join("alice.state")).unwrap(),
        state_before,
        "the counter's state is untouched"
    );
    // The used counter stays used.
    sandbox
        .login("alice")
        .answer(&hotp(RFC_SECRET_HEX, 0, 8))
        .run()
        .expect(Pam::AuthErr);
}

#[test]
fn tokens_pam_mfa_cannot_honour_are_skipped_with_the_reason() {
    let sandbox = world();
    let cases = [
        ("rfc6030-figure2.pskcxml", "12345678=alice", "32 bits"),
        ("rfc6030-figure4.pskcxml", "987654321=alice", "KeyReference"),
    ];
    for (name, assign, reason) in cases {
        let file = fixture(name);
        let run = import(&sandbox, &[file.to_str().unwrap(), "--assign", assign]);
        expect_error(&run, "skipped");
        assert!(run.stdout.contains(reason), "{name}: {run:?}");
        assert!(!sandbox.record_path("alice").exists(), "{name}");
    }
    // Figure 5: the device's HOTP key imports (the token checks its PIN); its PIN key is
    // not an OTP key and is left alone.
    let file = fixture("rfc6030-figure5.pskcxml");
    let run = import(
        &sandbox,
        &[file.to_str().unwrap(), "--assign", "987654321=alice"],
    );
    expect_success(&run);
    assert!(
        run.stdout.contains("the token checks its PIN itself"),
        "{run:?}"
    );
}

/// Each failure: one line, exit 1, and the store exactly as it was.
#[test]
fn failures_are_one_line_and_write_nothing() {
    let sandbox = world().enroll("dave", common::SECRET);
    let right_key = put(&sandbox, "right.key", RFC_KEY_HEX, 0o600);
    let wrong_key = put(
        &sandbox,
        "wrong.key",
        "00112233445566778899aabbccddeeff",
        0o600,
    );
    let open_key = put(&sandbox, "open.key", RFC_KEY_HEX, 0o644);
    let wrong_password = put(&sandbox, "wrong.password", "qwertz\n", 0o600);
    let figure3 = fixture("rfc6030-figure3.pskcxml");
    let figure6 = fixture("rfc6030-figure6.pskcxml");
    let figure7 = fixture("rfc6030-figure7.pskcxml");
    let figure6_text = fs::read_to_string(&figure6).unwrap();
    let tampered_mac = put(
        &sandbox,
        "tampered-mac.pskcxml",
        &figure6_text.replace(
            "Su+NvtQfmvfJzF6bmQiJqoLRExc=",
            "Su+OvtQfmvfJzF6bmQiJqoLRExc=",
        ),
        0o644,
    );
    let tampered_cipher = put(
        &sandbox,
        "tampered-cipher.pskcxml",
        &figure6_text.replace("AAECAwQFBgcICQoLDA0OD+cI", "AAECAwQFBgcICQoLDA0OD+cJ"),
        0o644,
    );
    let figure3_text = fs::read_to_string(&figure3).unwrap();
    let truncated = put(
        &sandbox,
        "truncated.pskcxml",
        &figure3_text[..figure3_text.len() / 2],
        0o644,
    );
    let not_pskc = put(&sandbox, "not.pskcxml", "<html><body/></html>\n", 0o644);
    let map = put(&sandbox, "bad.map", "987654321 alice extra\n", 0o644);
    let f3 = figure3.to_str().unwrap();
    let f6 = figure6.to_str().unwrap();
    let f7 = figure7.to_str().unwrap();

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![f6, "--key-file", &wrong_key, "--assign", "987654321=alice"],
            "key or password is wrong",
        ),
        (
            vec![
                f7,
                "--password-file",
                &wrong_password,
                "--assign",
                "987654321=alice",
            ],
            "wrong",
        ),
        (
            vec![
                &tampered_mac,
                "--key-file",
                &right_key,
                "--assign",
                "987654321=alice",
            ],
            "MAC",
        ),
        (
            vec![
                &tampered_cipher,
                "--key-file",
                &right_key,
                "--assign",
                "987654321=alice",
            ],
            "MAC",
        ),
        (vec![&truncated, "--assign", "987654321=alice"], "XML"),
        (
            vec![&not_pskc, "--assign", "987654321=alice"],
            "not a PSKC file",
        ),
        (
            vec![f3, "--assign", "987654321=alice", "--assign", "123=bob"],
            "no token with serial number 123",
        ),
        (vec![f3, "--assign", "987654321=mallory"], "no such user"),
        (
            vec![
                f3,
                "--assign",
                "987654321=alice",
                "--assign",
                "987654321=bob",
            ],
            "assigned twice",
        ),
        (vec![f6, "--assign", "987654321=alice"], "--key-file"),
        (
            vec![f6, "--key-file", &open_key, "--assign", "987654321=alice"],
            "chmod 0600",
        ),
        (
            vec![f3, "--key-file", &right_key, "--assign", "987654321=alice"],
            "not encrypted",
        ),
        (
            vec![f7, "--key-file", &right_key, "--assign", "987654321=alice"],
            "password",
        ),
        (vec![f3, "--all", "--map", &map], "line 1"),
    ];
    for (args, word) in cases {
        let before = store_snapshot(&sandbox);
        let run = import(&sandbox, &args);
        expect_error(&run, word);
        assert!(run.stdout.is_empty(), "{args:?}: {run:?}");
        assert_eq!(
            store_snapshot(&sandbox),
            before,
            "{args:?} wrote to the store"
        );
        // Errors name no secret, key or password.
        for secret in ["1234567890", RFC_KEY_HEX, "qwert", "MTIz"] {
            assert!(!run.stderr.contains(secret), "{args:?}: {run:?}");
        }
    }
    assert!(!sandbox.record_path("alice").exists());
}

#[test]
fn without_a_terminal_a_password_file_is_required() {
    let sandbox = world();
    let file = fixture("rfc6030-figure7.pskcxml");
    let before = store_snapshot(&sandbox);
    // setsid: no controlling terminal, as under cron or CI.
    let mut command = Command::new("setsid");
    command.args(["-w", cli_path().to_str().unwrap()]);
    command.args([
        "import",
        "pskc",
        file.to_str().unwrap(),
        "--assign",
        "987654321=carol",
        "--config",
        sandbox.policy_path().to_str().unwrap(),
    ]);
    wrap(&sandbox, &mut command);
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("run setsid pam-mfa");
    let run = Finished {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    expect_error(&run, "--password-file");
    assert_eq!(store_snapshot(&sandbox), before);
}

/// The environment of the sandbox's CLI runs: its accounts through nss_wrapper.
fn wrap(sandbox: &Sandbox, command: &mut Command) {
    command.env_clear();
    for name in ["PATH", "TMPDIR"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
        .env("NSS_WRAPPER_PASSWD", sandbox.path("passwd"))
        .env("NSS_WRAPPER_GROUP", sandbox.path("group"))
        .env("LD_PRELOAD", "libnss_wrapper.so");
}

/// Runs `pam-mfa ARGS --config POLICY` on a pseudo-terminal (util-linux `script`), types
/// `answer` once `prompt` shows, and returns everything the terminal showed.
fn on_terminal(sandbox: &Sandbox, args: &[&str], prompt: &str, answer: &str) -> String {
    let mut line = vec![cli_path().display().to_string()];
    line.extend(args.iter().map(|a| a.to_string()));
    line.push("--config".into());
    line.push(sandbox.policy_path().display().to_string());
    let quoted: Vec<String> = line
        .iter()
        .map(|word| format!("'{}'", word.replace('\'', "'\\''")))
        .collect();
    let mut command = Command::new("script");
    command.args(["-q", "-e", "-c", &quoted.join(" "), "/dev/null"]);
    wrap(sandbox, &mut command);
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script");
    let mut stdout = child.stdout.take().expect("stdout");
    let (sender, receiver) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            match stdout.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    seen.extend_from_slice(&buffer[..n]);
                    let _ = sender.send(String::from_utf8_lossy(&seen).into_owned());
                }
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let mut stdin = child.stdin.take().expect("stdin");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let remaining = deadline.saturating_duration_since(std::time::Instant::now());
        match receiver.recv_timeout(remaining) {
            Ok(seen) if seen.contains(prompt) => break,
            Ok(_) => continue,
            Err(_) => {
                let _ = child.kill();
                panic!("no {prompt:?} prompt on the terminal");
            }
        }
    }
    // The prompt is written just before echo is off and input is read; a moment's pause
    // keeps the answer from arriving before.
    thread::sleep(Duration::from_millis(200));
    stdin
        .write_all(format!("{answer}\n").as_bytes())
        .expect("type the answer");
    let status = child.wait().expect("wait for script");
    drop(stdin);
    let seen = reader.join().expect("reader");
    assert!(status.success(), "pam-mfa on a terminal failed: {seen}");
    seen
}

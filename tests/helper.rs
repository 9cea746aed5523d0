//! The helper `pam-mfa-check` and the module's relay to it, through the real libpam.
//!
//! The module relays when it runs without root (effective uid not 0). Here pamdrive runs
//! with effective uid 65534 and real uid 0 (`setpriv --euid`), and the helper is a setuid
//! copy of the built one: so the relay, the pipe and the helper's core are the real ones,
//! with the sandbox's policy (a caller whose real uid is root may name any policy). The
//! helper gets no environment, so no nss_wrapper: the accounts are ones every Debian has
//! (root, nobody). Refusals of callers without root are checked by running the setuid
//! helper as uid 65534 and speaking its protocol; logins as a real user through the default
//! policy are in the end-to-end tests (tests/e2e/run.sh).

mod common;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use pam_mfa::authenticate::Status;
use pam_mfa::helper::wire::{hex, unhex, LoginRequest, ToCaller, ToHelper};

const NOBODY: u32 = 65534;

/// A sandbox whose default service relays to `helper`, and which uid 65534 can read.
fn relaying(helper: &Path, policy: &str) -> Sandbox {
    let sb = sandbox().user("nobody", NOBODY).policy(policy).service(
        SERVICE,
        &format!(
            "auth required {{module}} config={{config}} log_socket={{log}} helper={}\n",
            helper.display()
        ),
    );
    sb.chmod(&sb.path(""), 0o755);
    sb.chmod(&sb.log_socket(), 0o666);
    sb
}

/// A login by pamdrive with effective uid 65534: the module must relay.
fn without_root<'a>(sb: &'a Sandbox, user: &str) -> Login<'a> {
    sb.login(user).run_under("setpriv", &["--euid=65534"])
}

macro_rules! helper_or_skip {
    () => {
        match installed_helper() {
            Some(installed) => installed,
            None => {
                eprintln!("skipped: a setuid helper needs root to install");
                return;
            }
        }
    };
}

const OPTIONAL: &str = "store_dir = \"{store}\"\ndefault_mode = \"optional\"\nfail_delay_ms = 0\n";

#[test]
fn without_root_the_helper_decides_as_the_module_would() {
    let (_dir, helper) = helper_or_skip!();
    let sb = relaying(&helper, OPTIONAL).enroll("root", SECRET);

    without_root(&sb, "nobody")
        .run()
        .expect_ignored()
        .expect_not_prompted();
    sb.audit_line()
        .expect("nobody", "optional", "default", "ignore");

    avoid_step_boundary(30);
    let code = Totp::new(SECRET).code();
    without_root(&sb, "root")
        .answer(&code)
        .run()
        .expect(Pam::Success)
        .expect_prompted();
    let line = sb.audit_line();
    line.expect("root", "required", "root", "success");
    assert_eq!(line.get("reason"), "valid code");

    without_root(&sb, "root")
        .answer(&code)
        .run()
        .expect(Pam::AuthErr);
    assert_eq!(sb.audit_line().get("reason"), "code already used");

    without_root(&sb, "root")
        .answer("@null")
        .run()
        .expect(Pam::AuthErr);
    assert_eq!(sb.audit_line().get("reason"), "no code given");

    without_root(&sb, "root")
        .answer("@convfail")
        .run()
        .expect(Pam::ConvErr);
    sb.audit_lines();
}

#[test]
fn wrong_codes_through_the_helper_count_and_lock() {
    let (_dir, helper) = helper_or_skip!();
    let policy = format!("{OPTIONAL}max_failures = 2\nlockout_seconds = 600\n");
    let sb = relaying(&helper, &policy).enroll("root", SECRET);

    without_root(&sb, "root")
        .answer("000000")
        .run()
        .expect(Pam::AuthErr);
    sb.audit_line().expect("root", "required", "root", "deny");
    let locking = without_root(&sb, "root").answer("000001").run();
    locking.expect(Pam::AuthErr);
    assert!(
        locking
            .messages
            .iter()
            .any(|m| m.style == "error" && m.text.contains("is locked until")),
        "the lock is told through the relay: {locking:?}"
    );
    sb.audit_lines();

    avoid_step_boundary(30);
    let locked = without_root(&sb, "root")
        .answer(&Totp::new(SECRET).code())
        .run();
    locked.expect(Pam::Other(11)).expect_not_prompted();
    assert!(sb.audit_line().get("reason").starts_with("locked"));
    let status = sb.pam_mfa(&["status", "--json", "root"]).run();
    assert!(status.stdout.contains("\"locked_until\": 1"), "{status:?}");
}

#[test]
fn a_helper_that_others_could_replace_is_never_run() {
    let (_dir, helper) = helper_or_skip!();
    let sb = relaying(&helper, OPTIONAL).enroll("root", SECRET);
    let dir = helper.parent().unwrap();

    for (path, mode, what) in [
        (dir, 0o777, "above the helper, has mode 0777"),
        (helper.as_path(), 0o4777, "has mode 4777"),
    ] {
        let before = fs::metadata(path).unwrap().permissions().mode();
        sb.chmod(path, mode);
        let run = without_root(&sb, "root").answer("123456").run();
        sb.chmod(path, before & 0o7777);
        run.expect(Pam::SystemErr).expect_not_prompted();
        let reason = sb.audit_line().get("reason").to_owned();
        assert!(
            reason.contains("helper") && reason.contains(what),
            "{reason}"
        );
    }

    let missing = relaying(&dir.join("absent"), OPTIONAL);
    without_root(&missing, "root").run().expect(Pam::SystemErr);
    assert!(missing.audit_line().get("reason").contains("absent"));
}

/// A helper that goes away in the middle of a question (the real one does so at its
/// deadline, when someone at a locked screen answers the code prompt more than 5 minutes
/// later) must not take the application with it. A write to a pipe nobody reads raises
/// SIGPIPE, whose default action ends the process: for a screen locker such as away(1),
/// the end of the lock. The login fails closed and the application goes on.
#[test]
fn a_helper_gone_in_the_middle_of_a_question_does_not_end_the_application() {
    let (dir, _helper) = helper_or_skip!();
    // In the helper's place, a script that stops reading, asks, and ends: the real
    // helper's last moments at its deadline, without waiting 5 minutes for them.
    let question = serde_json::to_vec(&ToCaller::Ask {
        hex: &hex(PROMPT.as_bytes()),
    })
    .unwrap();
    let mut frame = u32::try_from(question.len())
        .unwrap()
        .to_be_bytes()
        .to_vec();
    frame.extend_from_slice(&question);
    let frame_path = dir.path().join("question");
    fs::write(&frame_path, frame).unwrap();
    let gone = dir.path().join("gone");
    fs::write(
        &gone,
        format!("#!/bin/sh\nexec 0<&-\ncat {}\n", frame_path.display()),
    )
    .unwrap();
    fs::set_permissions(&gone, fs::Permissions::from_mode(0o755)).unwrap();
    let sb = relaying(&gone, OPTIONAL).enroll("root", SECRET);

    // run() asserts that pamdrive ended on its own (exit status 0), not by a signal.
    without_root(&sb, "root")
        .answer("123456")
        .run()
        .expect(Pam::SystemErr)
        .expect_prompted();
    let reason = sb.audit_line().get("reason").to_owned();
    assert!(reason.contains("the pipe failed"), "{reason}");
}

/// Runs the installed helper as uid 65534 (real and effective, as a screen locker runs)
/// with `login` as its request, answering every question with a NULL answer; returns the
/// questions asked and the final status.
fn ask_as_nobody(helper: &Path, login: LoginRequest) -> (Vec<String>, Status) {
    let mut child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(helper)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the helper");
    let mut input = child.stdin.take().unwrap();
    let mut output = child.stdout.take().unwrap();
    send(&mut input, &ToHelper::Login(login));
    let mut asked = Vec::new();
    let status = loop {
        let body = receive(&mut output);
        match serde_json::from_slice(&body).unwrap() {
            ToCaller::Finished { status } => break status,
            ToCaller::Delay { .. } => {}
            ToCaller::Ask { hex } => {
                asked.push(String::from_utf8(unhex(hex).unwrap().to_vec()).unwrap());
                send(&mut input, &ToHelper::Answer { hex: None });
            }
            other => {
                asked.push(format!("{other:?}"));
                send(&mut input, &ToHelper::Done);
            }
        }
    };
    drop(input);
    child.wait().unwrap();
    (asked, status)
}

/// Writes one frame to the helper: its length (4 bytes, big-endian), then its JSON.
fn send(input: &mut impl Write, message: &ToHelper<'_>) {
    let body = serde_json::to_vec(message).unwrap();
    input
        .write_all(&u32::try_from(body.len()).unwrap().to_be_bytes())
        .unwrap();
    input.write_all(&body).unwrap();
}

/// Reads one frame's JSON from the helper.
fn receive(output: &mut impl Read) -> Vec<u8> {
    let mut prefix = [0u8; 4];
    output
        .read_exact(&mut prefix)
        .expect("a frame from the helper");
    let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
    output.read_exact(&mut body).unwrap();
    body
}

/// A login of root under `sb`'s policy and audit socket.
fn root_login(sb: &Sandbox) -> ToHelper<'static> {
    ToHelper::Login(login_request(
        "root",
        &[
            format!("config={}", sb.policy_path().display()),
            format!("log_socket={}", sb.log_socket().display()),
        ],
    ))
}

fn login_request(user: &str, args: &[String]) -> LoginRequest {
    LoginRequest {
        user: Some(user.into()),
        service: "xscreensaver".into(),
        rhost: String::new(),
        args: args.to_vec(),
        silent: false,
    }
}

#[test]
fn a_caller_without_root_gets_only_its_own_account_and_the_default_policy() {
    let (_dir, helper) = helper_or_skip!();
    let sb = relaying(&helper, OPTIONAL).enroll("root", SECRET);
    let own_policy = format!("config={}", sb.policy_path().display());

    let (asked, status) = ask_as_nobody(&helper, login_request("root", &[]));
    assert_eq!((asked, status), (vec![], Status::Denied));

    // A policy of the caller's own: even one root owns, in a directory root owns.
    let (asked, status) = ask_as_nobody(&helper, login_request("nobody", &[own_policy]));
    assert_eq!((asked, status), (vec![], Status::Misconfigured));

    let log = format!("log_socket={}", sb.log_socket().display());
    let (asked, status) = ask_as_nobody(&helper, login_request("nobody", &[log]));
    assert_eq!((asked, status), (vec![], Status::Misconfigured));
    assert!(
        sb.audit_lines().is_empty(),
        "a refused caller's socket got a line"
    );

    // Its own account under the default policy is served (whatever that policy says).
    let (_, status) = ask_as_nobody(&helper, login_request("nobody", &[]));
    assert_ne!(status, Status::Denied);
}

#[test]
fn a_caller_that_stops_answering_does_not_keep_the_helper() {
    // The deadline itself is 300 s; what is checked here is that the helper ends when its
    // caller goes away in the middle of a question, and counts nothing.
    let (_dir, helper) = helper_or_skip!();
    let sb = relaying(&helper, OPTIONAL).enroll("root", SECRET);
    let mut child = Command::new(&helper)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    send(&mut input, &root_login(&sb));
    drop(input);
    let status = child.wait().unwrap();
    assert!(!status.success());
    let line = sb.audit_line();
    assert_eq!(line.get("outcome"), "error", "{line:?}");
    let status = sb.pam_mfa(&["status", "--json", "root"]).run();
    assert!(status.stdout.contains("\"failures\": 0"), "{status:?}");
}

/// The helper works in `/`, whatever directory its caller ran it from: a caller's working
/// directory is the caller's to choose (posix_spawn from the module cannot change it).
#[test]
fn the_helper_leaves_its_callers_working_directory() {
    let (dir, helper) = helper_or_skip!();
    let sb = relaying(&helper, OPTIONAL).enroll("root", SECRET);
    let mut child = Command::new(&helper)
        .current_dir(dir.path())
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the helper");
    let mut input = child.stdin.take().unwrap();
    let mut output = child.stdout.take().unwrap();
    send(&mut input, &root_login(&sb));
    // Once it asks for the code it has hardened itself and is waiting: look at it then.
    loop {
        let body = receive(&mut output);
        match serde_json::from_slice(&body).unwrap() {
            ToCaller::Ask { .. } => break,
            ToCaller::Delay { .. } => {}
            other => panic!("expected the prompt, got {other:?}"),
        }
    }
    let cwd = fs::read_link(format!("/proc/{}/cwd", child.id())).unwrap();
    drop(input);
    child.wait().unwrap();
    assert_eq!(
        cwd,
        Path::new("/"),
        "the helper kept its caller's directory"
    );
}

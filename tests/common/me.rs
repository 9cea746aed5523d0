//! `pam-mfa-user` driven as a person would at a terminal, through a given helper, with a
//! deadline so that a run waiting for an answer nobody sends fails instead of hanging.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::Sandbox;

/// How a run of `pam-mfa-user` ended, and what it printed.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// `pam-mfa-user ACTION` with the sandbox's policy and log, through `helper`; `answers`
/// are typed one per question. When `confirm` is set, the answer to the new secret's
/// question is computed from the otpauth link it shows.
pub fn user_cli(
    sb: &Sandbox,
    helper: &Path,
    action: &str,
    answers: &[&str],
    confirm: Option<&dyn Fn(&str) -> String>,
) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pam-mfa-user"))
        .arg("--helper")
        .arg(helper)
        .arg("--config")
        .arg(sb.policy_path())
        .arg("--log-socket")
        .arg(sb.log_socket())
        .arg(action)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pam-mfa-user");
    let watchdog = Watchdog::new(child.id(), "pam-mfa-user");
    let mut input = Some(child.stdin.take().unwrap());
    for answer in answers {
        writeln!(input.as_mut().unwrap(), "{answer}").unwrap();
    }
    // No more answers: a question after these gets end of file (a NULL answer).
    if confirm.is_none() {
        input = None;
    }
    let mut stdout = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        if let (Some(confirm), true) = (confirm, line.starts_with("otpauth://")) {
            if let Some(mut answering) = input.take() {
                let _ = writeln!(answering, "{}", confirm(line.trim()));
            }
        }
        stdout.push_str(&line);
        line.clear();
    }
    drop(input);
    // Before the child is reaped: its pid cannot have been reused while the watchdog runs.
    watchdog.disarm();
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code(),
        stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The harness's deadline: a process that waits for input the harness will never send
/// (a question nobody expected, on a pipe the harness keeps open) is killed after
/// `LIMIT`, so the test fails on its exit status instead of hanging. Not a timed
/// assertion: every run here ends in well under a second.
pub struct Watchdog {
    done: mpsc::Sender<()>,
    guard: thread::JoinHandle<()>,
}

impl Watchdog {
    const LIMIT: Duration = Duration::from_secs(60);

    pub fn new(pid: u32, what: &'static str) -> Watchdog {
        let (done, wait) = mpsc::channel::<()>();
        let guard = thread::spawn(move || {
            if wait.recv_timeout(Self::LIMIT).is_err() {
                eprintln!(
                    "{what} (pid {pid}) still running after {:?}: killed",
                    Self::LIMIT
                );
                let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        });
        Watchdog { done, guard }
    }

    pub fn disarm(self) {
        let _ = self.done.send(());
        self.guard.join().unwrap();
    }
}

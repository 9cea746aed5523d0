//! The login of a caller without root: the module cannot read the store, so it runs the
//! setuid helper and relays the conversation between it and the application. The helper
//! runs the same core; the module only carries messages and maps the final status.

#![forbid(unsafe_code)]

use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use zeroize::Zeroizing;

use crate::audit::{self, Event, Sink, Syslog, Verdict};
use crate::authenticate::{Conversation, Options, Request, Status};
use crate::helper::wire::{hex, unhex, Channel, LoginRequest, ToCaller, ToHelper};
use crate::helper::DEADLINE;
use crate::trusted_path;

/// Whether this process must leave the login to the helper: it runs without root, so it
/// cannot open the root-only store.
pub fn needed() -> bool {
    !nix::unistd::geteuid().is_root()
}

/// Runs the login through the helper named in `options`, writing an audit line of its
/// own only when the helper cannot be run or understood (the helper writes the rest).
pub fn login(options: &Options, request: &Request, conv: &mut dyn Conversation) -> Status {
    match run(options, request, conv) {
        Ok(status) => status,
        Err(problem) => {
            let reason = format!("helper {}: {problem}", options.helper.display());
            let event = Event {
                service: &request.service,
                user: request.user.as_deref().unwrap_or(""),
                account: "",
                rhost: &request.rhost,
                mode: "unknown",
                rule: "-",
                verdict: Verdict::Error,
                reason: &reason,
                why: "",
            };
            let sink = Syslog {
                socket: &options.log_socket,
            };
            sink.send(audit::Severity::Error, &event.message());
            Status::SystemFailed
        }
    }
}

fn run(
    options: &Options,
    request: &Request,
    conv: &mut dyn Conversation,
) -> Result<Status, String> {
    check_helper(&options.helper)?;
    let mut child = Command::new(&options.helper)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot be run: {e}"))?;
    let result = converse(&mut child, request, conv);
    // The helper ends on its own once its pipes close (or at its deadline); if it
    // already ended, or the application reaps children itself, there is nothing to wait for.
    drop(child.stdin.take());
    drop(child.stdout.take());
    let _ = child.wait();
    result
}

fn converse(
    child: &mut Child,
    request: &Request,
    conv: &mut dyn Conversation,
) -> Result<Status, String> {
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("no pipe to it".into());
    };
    // A little longer than the helper's own deadline: the helper gives up first.
    let deadline = Instant::now() + DEADLINE + std::time::Duration::from_secs(10);
    let mut channel = Channel::new(OwnedFd::from(stdout), OwnedFd::from(stdin), deadline)
        .map_err(|e| format!("pipe: {e}"))?;
    let broken = |e: std::io::Error| format!("the pipe failed: {e}");
    channel
        .send(&ToHelper::Login(LoginRequest {
            user: request.user.clone(),
            service: request.service.clone(),
            rhost: request.rhost.clone(),
            args: request.args.clone(),
            silent: request.silent,
        }))
        .map_err(broken)?;
    loop {
        let frame = channel.receive().map_err(broken)?;
        let message: ToCaller<'_> =
            serde_json::from_slice(&frame).map_err(|e| format!("answered nonsense: {e}"))?;
        // A text may hold a new secret (an enrollment at login): it is wiped once shown.
        let text = |hex: &str| -> Result<Zeroizing<String>, String> {
            let bytes = unhex(hex).map_err(|e| format!("answered nonsense: {e}"))?;
            let text = String::from_utf8(bytes.to_vec()).map_err(|e| {
                Zeroizing::new(e.into_bytes());
                "sent a text that is not UTF-8".to_string()
            })?;
            Ok(Zeroizing::new(text))
        };
        let reply = match message {
            ToCaller::Finished { status } => return Ok(status),
            ToCaller::Delay { microseconds } => {
                conv.request_delay(microseconds);
                continue;
            }
            ToCaller::Ask { hex } => answer(conv.ask_hidden(&text(hex)?)),
            ToCaller::Info { hex } => done(conv.info(&text(hex)?)),
            ToCaller::Error { hex } => done(conv.error(&text(hex)?)),
            ToCaller::Authtok => answer(conv.authtok()),
            ToCaller::SetAuthtok { hex } => {
                let value = unhex(hex).map_err(|e| format!("answered nonsense: {e}"))?;
                done(conv.set_authtok(&value))
            }
        };
        channel.send(&reply.message()).map_err(broken)?;
    }
}

/// A reply to the helper, holding an answer in zeroizing memory.
enum Reply {
    Answer(Option<Zeroizing<String>>),
    Done,
    Failed,
}

impl Reply {
    fn message(&self) -> ToHelper<'_> {
        match self {
            Reply::Answer(answer) => ToHelper::Answer {
                hex: answer.as_deref().map(String::as_str),
            },
            Reply::Done => ToHelper::Done,
            Reply::Failed => ToHelper::Failed,
        }
    }
}

fn answer<E>(result: Result<Option<Zeroizing<Vec<u8>>>, E>) -> Reply {
    match result {
        Ok(answer) => Reply::Answer(answer.map(|bytes| hex(&bytes))),
        Err(_) => Reply::Failed,
    }
}

fn done<E>(result: Result<(), E>) -> Reply {
    match result {
        Ok(()) => Reply::Done,
        Err(_) => Reply::Failed,
    }
}

/// The helper runs as root, so it gets the policy's rule: owned by root (or this
/// process's user) and writable by no one else, in directories of the same kind, and a
/// regular file.
fn check_helper(path: &Path) -> Result<(), String> {
    trusted_path::check_ancestors(path, "the helper")?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("cannot be read: {e}"))?;
    let kind = meta.file_type();
    if !kind.is_file() || kind.is_fifo() {
        return Err("is not a regular file".into());
    }
    trusted_path::guarded(&meta, false, || path.display().to_string())
}

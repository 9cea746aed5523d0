//! The caller's side of the helper: run it, send the request, carry its questions to a
//! conversation and the answers back, and return its final status. The module (for a
//! login) and `pam-mfa-user` (for self-service) both call the helper through this.

#![forbid(unsafe_code)]

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::spawn::{posix_spawn, PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags};
use nix::sys::signal::SigSet;
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use zeroize::Zeroizing;

use super::wire::{hex, stream_pair, unhex, Channel, ToCaller, ToHelper};
use super::DEADLINE;
use crate::authenticate::{Conversation, Status};
use crate::trusted_path;

/// Runs the helper at `helper` (its path checked as the policy's is), sends `request`,
/// and relays the exchange through `conv` to the helper's final status. An Err says why
/// the helper could not be run or understood.
pub fn call(
    helper: &Path,
    request: &ToHelper<'_>,
    conv: &mut dyn Conversation,
) -> Result<Status, String> {
    check_helper(helper)?;
    let (child, to_helper, from_helper) =
        spawn(helper).map_err(|e| format!("cannot be run: {e}"))?;
    let result = converse(to_helper, from_helper, request, conv);
    // The helper ends on its own once its socket closes (converse dropped it) or at its
    // deadline; if it already ended, or the application reaps children itself, there is
    // nothing to wait for.
    while let Err(Errno::EINTR) = waitpid(child, None) {}
    result
}

/// Starts the helper with an empty environment, its standard input and output on a socket
/// pair with this process and its standard error on /dev/null, its signal mask cleared. With
/// posix_spawn from nix rather than std::process::Command, whose fork, exec and
/// pidfd paths would add some forty libc symbols that every dlopen of the module would
/// resolve (the load cost of issue 15).
fn spawn(helper: &Path) -> nix::Result<(Pid, OwnedFd, OwnedFd)> {
    // One socket pair rather than two pipes: the module's writes to it then raise no
    // SIGPIPE in the application when the helper has gone (wire::Channel).
    let (ours, helpers) = stream_pair()?;
    // A host that closed its own standard input or output would have handed out 0 or 1:
    // the dup2s below must not overwrite the helper's end with ours.
    let ours = above_stdio(ours)?;
    let helpers = above_stdio(helpers)?;
    let to_helper = ours
        .try_clone()
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EBADF)))?;
    let mut actions = PosixSpawnFileActions::init()?;
    actions.add_dup2(helpers.as_raw_fd(), 0)?;
    actions.add_dup2(helpers.as_raw_fd(), 1)?;
    actions.add_open(2, "/dev/null", OFlag::O_WRONLY, Mode::empty())?;
    let mut attributes = PosixSpawnAttr::init()?;
    attributes.set_sigmask(&SigSet::empty())?;
    attributes.set_flags(PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK)?;
    let program = CString::new(helper.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let no_environment: [&CStr; 0] = [];
    let child = posix_spawn(
        program.as_c_str(),
        &actions,
        &attributes,
        &[program.as_c_str()],
        &no_environment,
    )?;
    // The child's end is closed here: only the helper holds it now.
    Ok((child, to_helper, ours))
}

/// `fd`, moved to a number above 2 (close-on-exec) when it is 0, 1 or 2.
fn above_stdio(fd: OwnedFd) -> nix::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // std duplicates with F_DUPFD_CLOEXEC from 3 up; the low number is closed on return.
    fd.try_clone()
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EBADF)))
}

fn converse(
    to_helper: OwnedFd,
    from_helper: OwnedFd,
    request: &ToHelper<'_>,
    conv: &mut dyn Conversation,
) -> Result<Status, String> {
    // A little longer than the helper's own deadline: the helper gives up first.
    let deadline = Instant::now() + DEADLINE + std::time::Duration::from_secs(10);
    let mut channel =
        Channel::new(from_helper, to_helper, deadline).map_err(|e| format!("pipe: {e}"))?;
    let broken = |e: std::io::Error| format!("the pipe failed: {e}");
    channel.send(request).map_err(broken)?;
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

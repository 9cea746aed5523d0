//! What the setuid helper does first, before it reads a byte from its caller: it takes
//! nothing from the caller's process but the real uid (the caller's identity) and the
//! standard pipes. No environment (TZ would make chrono read a zoneinfo file the caller
//! chose), no stray file descriptors, no core dumps or ptrace, no inherited umask, working
//! directory or file-size limit, and none of the caller's groups.

#![forbid(unsafe_code)]

use std::os::fd::IntoRawFd;

use nix::fcntl::{open, OFlag};
use nix::sys::resource::{setrlimit, Resource, RLIM_INFINITY};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{chdir, close, geteuid, getuid, setgroups, setresgid, Gid};

/// Who called the helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The real uid the helper was started with: the only account it serves, unless 0.
    pub uid: u32,
}

/// Why the helper cannot run.
#[derive(Debug)]
pub struct Unprivileged;

/// Cleans the process up and drops the caller's ids; Err when the helper does not run
/// with effective uid 0 (not installed setuid root), where it could read nothing anyway.
pub fn harden() -> Result<Caller, Unprivileged> {
    // First of all: from here on no core dump holds what the helper reads, and the caller
    // cannot ptrace it.
    let _ = nix::sys::prctl::set_dumpable(false);
    // The 2021 edition's remove_var is safe; the helper has one thread at this point.
    for (key, _) in std::env::vars_os() {
        std::env::remove_var(key);
    }
    umask(Mode::from_bits_truncate(0o077));
    // The caller's working directory is the caller's: never resolve anything against it.
    if chdir("/").is_err() {
        return Err(Unprivileged);
    }
    standard_fds();
    close_stray_fds();
    let caller = Caller {
        uid: getuid().as_raw(),
    };
    if !geteuid().is_root() {
        return Err(Unprivileged);
    }
    // Root's groups, so that what it creates is root's; the real uid stays the caller's,
    // as unix_chkpwd's does, so that the helper counts against the caller's process limit
    // (RLIMIT_NPROC) and a caller cannot escape it by starting helpers. The caller may
    // then signal the helper; at worst that stops the check of its own account (the store
    // survives a kill at any instant), and non-dumpable bars ptrace.
    let root = Gid::from_raw(0);
    if setgroups(&[])
        .and_then(|()| setresgid(root, root, root))
        .is_err()
    {
        return Err(Unprivileged);
    }
    // A caller's small file-size or CPU limit would kill the helper (SIGXFSZ, SIGXCPU)
    // in the middle of a write; the store survives that, but nothing needs to allow it.
    let _ = setrlimit(Resource::RLIMIT_FSIZE, RLIM_INFINITY, RLIM_INFINITY);
    let _ = setrlimit(Resource::RLIMIT_CPU, RLIM_INFINITY, RLIM_INFINITY);
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
    Ok(caller)
}

/// Opens /dev/null on whichever of 0, 1 and 2 the caller left closed, so that no file the
/// helper opens later becomes its standard input, output or error.
fn standard_fds() {
    for fd in 0..3 {
        if std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_err() {
            // The lowest free descriptor: this one. Kept open for the process's life.
            if let Ok(null) = open("/dev/null", OFlag::O_RDWR, Mode::empty()) {
                let _ = null.into_raw_fd();
            }
        }
    }
}

/// Closes every descriptor above 2 that the caller left open.
fn close_stray_fds() {
    let listed: Option<Vec<i32>> = std::fs::read_dir("/proc/self/fd").ok().map(|entries| {
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect()
    });
    // Without /proc: every descriptor below the usual limit.
    let fds = listed.unwrap_or_else(|| (3..1024).collect());
    for fd in fds.into_iter().filter(|fd| *fd > 2) {
        // The directory's own descriptor is closed already: EBADF, ignored.
        let _ = close(fd);
    }
}

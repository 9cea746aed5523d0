//! Keeps the host process from dumping core while the module holds a secret, where the
//! host allows: a process that is dumpable (PR_GET_DUMPABLE 1) is made non-dumpable for
//! the call and dumpable again before the module returns.

/// While alive, the process is non-dumpable if the module made it so.
///
/// Non-dumpable means, for the whole process (every thread): no core dump, /proc/PID files
/// owned by root, and no ptrace attach by unprivileged processes of the same uid. The
/// flag is put back when this is dropped, so the host is as it was once the module has
/// returned (its secrets are wiped by then). A process that is non-dumpable already (a
/// setuid sudo or su, or one that chose so) or dumpable only for root (2, from the
/// fs.suid_dumpable sysctl, which prctl cannot set back) is left as it is.
pub struct NoCoreDumps {
    restore: bool,
}

impl NoCoreDumps {
    pub fn begin() -> NoCoreDumps {
        // SAFETY: PR_GET_DUMPABLE reads this process's dumpable flag; it takes no pointer
        // (the other arguments are ignored) and changes nothing. nix's get_dumpable folds
        // 2 into "dumpable", which could not be restored, hence the raw call.
        let current = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
        let restore = current == 1 && nix::sys::prctl::set_dumpable(false).is_ok();
        NoCoreDumps { restore }
    }
}

impl Drop for NoCoreDumps {
    fn drop(&mut self) {
        if self.restore {
            let _ = nix::sys::prctl::set_dumpable(true);
        }
    }
}

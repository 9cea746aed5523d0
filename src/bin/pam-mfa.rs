//! The `pam-mfa` admin command: parses arguments, runs the subcommand, and turns an
//! error into one line on stderr and a non-zero exit status.

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    // The command holds secrets (a new key while enroll waits for its first code, imported
    // seeds): no core dump may keep them, and no process of the same uid may ptrace it.
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        eprintln!("pam-mfa: cannot keep secrets out of core dumps (PR_SET_DUMPABLE): {e}");
        return ExitCode::FAILURE;
    }
    pam_mfa::cli::main()
}

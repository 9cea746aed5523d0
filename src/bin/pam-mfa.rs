//! The `pam-mfa` admin command: parses arguments, runs the subcommand, and turns an
//! error into one line on stderr and a non-zero exit status.

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    pam_mfa::cli::main()
}

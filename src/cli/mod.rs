//! The `pam-mfa` admin command: the argument definitions and the dispatch to one file
//! per subcommand.

#![forbid(unsafe_code)]

mod enroll;
mod input;
mod uri;

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::policy;

/// Manage pam-mfa: enroll accounts for one-time codes.
#[derive(Parser)]
#[command(name = "pam-mfa", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Give an account a TOTP secret: print its otpauth URI and save its record.
    Enroll(enroll::EnrollArgs),
}

/// The policy file option every subcommand takes.
#[derive(Args, Clone, Debug)]
pub struct ConfigArg {
    /// The policy file.
    #[arg(long, value_name = "FILE", default_value = policy::DEFAULT_PATH)]
    pub config: PathBuf,
}

/// A user-facing error: one line, no Debug dump, no secret.
#[derive(Debug)]
pub struct CliError(String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError(e.to_string())
    }
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError(message.into())
    }
}

/// Runs the command line; usage errors exit with 2 (clap), other errors with 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Enroll(args) => enroll::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pam-mfa: {e}");
            ExitCode::FAILURE
        }
    }
}

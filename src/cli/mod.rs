//! The `pam-mfa` admin command: the argument definitions and the dispatch to one file
//! per subcommand.

#![forbid(unsafe_code)]

mod account;
mod enroll;
mod fleet;
mod generate;
mod import;
mod input;
mod policy;
mod progress;
mod pskc;
mod recovery;
mod remove;
mod stacks;
mod status;
mod store;
mod unlock;
pub mod user;

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::policy as policy_file;

/// The admin command of pam_mfa: enroll accounts for one-time codes, check the policy.
///
/// pam-mfa manages what the PAM module pam_mfa.so reads: it gives accounts TOTP or HOTP
/// secrets and recovery codes, imports secrets from google-authenticator files, otpauth
/// URIs and PSKC files, shows who is enrolled or locked, clears locks, and checks and
/// explains the policy file. It must run as root, the owner of the store.
#[derive(Parser)]
#[command(name = "pam-mfa", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Give an account a TOTP or HOTP (--hotp) secret: print its otpauth URI, save its record.
    Enroll(enroll::EnrollArgs),
    /// Show accounts: mode, enrollment, lock, recovery codes left, last login.
    Status(status::StatusArgs),
    /// Clear an account's failure count and lock; pull a last used step in the future back to now.
    Unlock(unlock::UnlockArgs),
    /// Delete an account's secret, state and recovery codes.
    Remove(remove::RemoveArgs),
    /// Make a new set of recovery codes for an account.
    Recovery(recovery::RecoveryArgs),
    /// Check a policy file, or explain what it decides for an account.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Import secrets: google-authenticator files, an otpauth URI, or a PSKC seed file.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Work on the store as a whole: bring hosts' file stores into the policy's store,
    /// create the fleet store's tables, re-seal its secrets.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Write man pages into a directory (for packaging).
    #[command(hide = true)]
    GenerateMan(generate::OutputDir),
    /// Write bash, zsh and fish completions into a directory (for packaging).
    #[command(hide = true)]
    GenerateCompletions(generate::OutputDir),
}

/// The policy file option every subcommand takes.
#[derive(Args, Clone, Debug)]
pub struct ConfigArg {
    /// The policy file.
    #[arg(long, value_name = "FILE", default_value = policy_file::DEFAULT_PATH)]
    pub config: PathBuf,
}

/// A user-facing error: one line, no Debug dump, no secret. An empty message means
/// the command has already said what went wrong and only the exit status remains.
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

    /// Failure whose messages were printed already.
    pub fn silent() -> Self {
        CliError(String::new())
    }
}

/// Runs the command line; usage errors exit with 2 (clap), other errors with 1.
pub fn main() -> ExitCode {
    quiet_broken_pipe();
    run(Cli::parse())
}

/// A reader that went away (`pam-mfa status | head -1`) ends the command quietly with
/// status 141, as SIGPIPE would, instead of a panic message: Rust ignores SIGPIPE, so
/// `println!` panics on EPIPE.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("os error 32") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// Runs the command line given as `args` (the first is the program name), in this
/// process: for tests that watch what the command does to memory.
pub fn run_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => run(cli),
        Err(e) => {
            let _ = e.print();
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Enroll(args) => enroll::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Unlock(args) => unlock::run(&args),
        Command::Remove(args) => remove::run(&args),
        Command::Recovery(args) => recovery::run(&args),
        Command::Policy(command) => policy::run(&command),
        Command::Import(command) => import::run(&command),
        Command::Store(command) => store::run(&command),
        Command::GenerateMan(args) => generate::man(&args),
        Command::GenerateCompletions(args) => generate::completions(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.0.is_empty() {
                eprintln!("pam-mfa: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

//! `pam-mfa recovery USER`: a new set of recovery codes, replacing the old set.

#![forbid(unsafe_code)]

use clap::Args;

use super::account::target;
use super::input::confirm;
use super::{CliError, ConfigArg};
use crate::recovery::{self, RecoveryCode};

#[derive(Args, Debug)]
pub struct RecoveryArgs {
    /// The account that gets new recovery codes.
    user: String,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
    #[command(flatten)]
    config: ConfigArg,
}

pub fn run(args: &RecoveryArgs) -> Result<(), CliError> {
    let target = target(&args.config.config, &args.user)?;
    let user = &target.user;
    if !target.store.is_enrolled(user)? {
        return Err(CliError::new(format!("{user} is not enrolled")));
    }
    confirm(
        &format!("Replace the recovery codes of {user}? The old ones stop working."),
        args.yes,
    )?;
    let (codes, hashes) = recovery::generate()?;
    let guard = target.store.lock_state(user)?;
    target.store.write_recovery_hashes(user, &hashes)?;
    drop(guard);
    print_codes(&codes);
    Ok(())
}

/// Prints codes for the user to keep; they are never shown again.
pub fn print_codes(codes: &[RecoveryCode]) {
    println!(
        "Recovery codes (each works once; keep them somewhere safe, they are not shown again):"
    );
    for code in codes {
        println!("  {}", code.as_str());
    }
}

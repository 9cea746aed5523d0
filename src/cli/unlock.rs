//! `pam-mfa unlock USER`: clear the failure count and lock of an account's second factor.

#![forbid(unsafe_code)]

use clap::Args;

use super::account::target;
use super::input::confirm;
use super::{CliError, ConfigArg};
use crate::clock::{Clock, SystemClock};

#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// The account to unlock.
    user: String,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
    #[command(flatten)]
    config: ConfigArg,
}

pub fn run(args: &UnlockArgs) -> Result<(), CliError> {
    let target = target(&args.config.config, &args.user)?;
    let user = &target.user;
    if target.store.record(user)?.is_none() {
        return Err(CliError::new(format!("{user} is not enrolled")));
    }
    confirm(
        &format!("Clear the failure count and lock of {user}?"),
        args.yes,
    )?;
    if !target.store.unlock(user, SystemClock.now())? {
        return Err(CliError::new(format!("{user} is not enrolled")));
    }
    println!("{user}: unlocked");
    Ok(())
}

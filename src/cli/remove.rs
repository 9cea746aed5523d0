//! `pam-mfa remove USER`: delete an account's secret, state and recovery codes.

#![forbid(unsafe_code)]

use clap::Args;

use super::account::stored_target;
use super::input::confirm;
use super::{CliError, ConfigArg};

#[derive(Args, Debug)]
pub struct RemoveArgs {
    /// The account whose second factor is removed.
    user: String,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
    #[command(flatten)]
    config: ConfigArg,
}

pub fn run(args: &RemoveArgs) -> Result<(), CliError> {
    // No NSS lookup: a record is removable under the name it is stored by, even when the
    // account is gone from the directory or NSS spells it otherwise.
    let target = stored_target(&args.config.config, &args.user)?;
    let user = &target.user;
    if !target.store.is_enrolled(user)? {
        return Err(CliError::new(format!("{user} is not enrolled")));
    }
    confirm(
        &format!("Remove the second factor of {user}? A required account then cannot log in."),
        args.yes,
    )?;
    // Atomic with respect to the account's logins: none is half-way through.
    target.store.remove(user)?;
    println!("{user}: second factor removed");
    Ok(())
}

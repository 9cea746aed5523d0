//! `pam-mfa unlock USER`: clear the failure count and lock of an account's second factor.

#![forbid(unsafe_code)]

use clap::Args;

use super::account::target;
use super::input::confirm;
use super::{CliError, ConfigArg};
use crate::clock::{Clock, SystemClock};
use crate::otp::totp::time_step;
use crate::store::{FailureCount, Kind, State, StoreError};

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
    let Some(record) = target.store.record(user)? else {
        return Err(CliError::new(format!("{user} is not enrolled")));
    };
    confirm(
        &format!("Clear the failure count and lock of {user}?"),
        args.yes,
    )?;
    let mut state_file = target.store.lock_state(user)?;
    let read = state_file.read();
    if let Err(StoreError::State { .. }) = read {
        state_file.reset()?;
    }
    let state = match read {
        Ok(state) => State {
            failures: 0,
            failure_window_start: 0,
            locked_until: 0,
            combined: FailureCount::default(),
            ..state
        },
        // A damaged state file: start over, treating every step up to now as used so
        // no code seen before can be replayed. An HOTP counter cannot be rebuilt.
        Err(StoreError::State { .. }) if record.kind == Kind::Totp => State {
            last_step: Some(time_step(SystemClock.now(), record.period) + u64::from(record.window)),
            ..State::default()
        },
        Err(StoreError::State { .. }) => {
            return Err(CliError::new(format!(
                "{}: the HOTP counter is lost; re-enroll {user} with pam-mfa enroll --force",
                state_file.path().display()
            )))
        }
        Err(e) => return Err(e.into()),
    };
    state_file.write(&state)?;
    println!("{user}: unlocked");
    Ok(())
}

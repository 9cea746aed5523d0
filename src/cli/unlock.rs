//! `pam-mfa unlock USER`: clear the failure count and lock of an account's second factor,
//! and bring back to now a last used TOTP step that a clock running ahead left in the future.

#![forbid(unsafe_code)]

use clap::Args;

use super::account::target;
use super::input::confirm;
use super::{CliError, ConfigArg};
use crate::clock::{Clock, SystemClock};
use crate::otp::totp::time_step;
use crate::store::Kind;

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
    // A code accepted while the module's clock ran far ahead leaves the last used step in
    // the future, and every code of today's steps reads as used: the store's unlock pulls
    // it back to now. Read first, to say so (a login meanwhile only moves it further).
    let now = SystemClock.now();
    let ahead = match (record.kind, target.store.peek_state(user)) {
        (Kind::Totp, Ok(Some(state))) => state.steps_ahead(time_step(now, record.period)),
        _ => None,
    };
    if !target.store.unlock(user, now)? {
        return Err(CliError::new(format!("{user} is not enrolled")));
    }
    match ahead {
        Some(steps) => println!(
            "{user}: unlocked; the last used time step lay {steps} steps (about {}) in the \
             future, from a clock that ran ahead: pulled back to the current step, so the \
             authenticator's next code works",
            about(steps.saturating_mul(u64::from(record.period)))
        ),
        None => println!("{user}: unlocked"),
    }
    Ok(())
}

/// A duration for people: seconds, minutes, hours or days.
fn about(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

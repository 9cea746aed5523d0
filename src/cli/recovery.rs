//! `pam-mfa recovery USER...`: a new set of recovery codes for each account, replacing
//! its old set; `--all-missing` picks the enrolled accounts that have no code left.

#![forbid(unsafe_code)]

use clap::Args;

use super::account::{lookup, open_store};
use super::input::confirm;
use super::progress::Progress;
use super::{CliError, ConfigArg};
use crate::policy;
use crate::recovery::{self, RecoveryCode};
use crate::store::Store;
use crate::username::UserName;

#[derive(Args, Debug)]
pub struct RecoveryArgs {
    /// The accounts that get new recovery codes.
    #[arg(
        required_unless_present = "all_missing",
        conflicts_with = "all_missing"
    )]
    users: Vec<String>,
    /// Every enrolled account that has no unused recovery code left (none made, or all
    /// used up).
    #[arg(long)]
    all_missing: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
    #[command(flatten)]
    config: ConfigArg,
}

pub fn run(args: &RecoveryArgs) -> Result<(), CliError> {
    let policy = policy::load(&args.config.config)?;
    let store = open_store(&policy)?;
    let users = if args.all_missing {
        without_codes(&*store)?
    } else {
        named(&*store, &args.users)?
    };
    if users.is_empty() {
        println!("every enrolled account has recovery codes left; nothing to do");
        return Ok(());
    }
    let names: Vec<String> = users.iter().map(ToString::to_string).collect();
    let question = match names.as_slice() {
        [one] => format!("Replace the recovery codes of {one}? The old ones stop working."),
        many => format!(
            "Replace the recovery codes of {} accounts ({})? Their old ones stop working.",
            many.len(),
            shortened(many)
        ),
    };
    confirm(&question, args.yes)?;

    let mut progress = Progress::new("accounts", users.len());
    for (index, user) in users.iter().enumerate() {
        progress.update(index);
        let (codes, hashes) = recovery::generate()?;
        store.replace_recovery_hashes(user, &hashes)?;
        progress.clear();
        if users.len() > 1 {
            println!("{user}:");
        }
        print_codes(&codes);
        progress.update(index + 1);
    }
    progress.finish();
    if users.len() > 1 {
        eprintln!("new recovery codes for {} accounts", users.len());
    }
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

/// The named accounts, each known to NSS and enrolled; checked all before any changes,
/// so a typo in the tenth name changes nothing.
fn named(store: &dyn Store, names: &[String]) -> Result<Vec<UserName>, CliError> {
    let mut users: Vec<UserName> = Vec::with_capacity(names.len());
    for name in names {
        let user = UserName::parse(name)?;
        lookup(&user)?;
        if !store.is_enrolled(&user)? {
            return Err(CliError::new(format!(
                "{user} is not enrolled; nothing was changed"
            )));
        }
        if !users.contains(&user) {
            users.push(user);
        }
    }
    Ok(users)
}

/// Enrolled accounts with no unused recovery code.
fn without_codes(store: &dyn Store) -> Result<Vec<UserName>, CliError> {
    let mut users = Vec::new();
    for user in store.enrolled_users()? {
        if store.recovery_hashes(&user)?.is_empty() {
            users.push(user);
        }
    }
    Ok(users)
}

/// `alice, bob, carol and 12 more`.
fn shortened(names: &[String]) -> String {
    const SHOWN: usize = 5;
    if names.len() <= SHOWN {
        return names.join(", ");
    }
    format!(
        "{} and {} more",
        names[..SHOWN].join(", "),
        names.len() - SHOWN
    )
}

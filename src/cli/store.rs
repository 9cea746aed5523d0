//! `pam-mfa store migrate --from DIR`: brings a host's file store into the store the
//! policy names, through the store interface alone, so the same merge serves every
//! backend. Idempotent: a second run changes nothing and says "unchanged". The fleet
//! store's own subcommands (init, rekey, new-key) are in fleet.rs.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::account::open_or_create_store;
use super::{fleet, CliError, ConfigArg};
use crate::policy;
use crate::store::{FileStore, State, Store, StoreError};
use crate::username::UserName;

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Bring hosts' file stores into the store the policy names: the highest step and
    /// counter win, recovery codes used on any host stay used, and an account whose
    /// secret differs between hosts is refused and reported.
    Migrate(MigrateArgs),
    /// Create or upgrade the fleet store's tables and the module role's grants (run with
    /// a policy naming the admin role); idempotent.
    Init(fleet::InitArgs),
    /// Re-seal every secret of the fleet store under a new key file.
    Rekey(fleet::RekeyArgs),
    /// Write a new 32-byte key file (mode 0600) for the fleet store's secret_key_file.
    NewKey(fleet::NewKeyArgs),
}

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// A host's store directory (a copy of its /var/lib/pam-mfa, owned by root, mode
    /// 0700); give it again for each host.
    #[arg(long = "from", value_name = "DIR", required = true)]
    from: Vec<PathBuf>,
    #[command(flatten)]
    config: ConfigArg,
}

pub fn run(command: &StoreCommand) -> Result<(), CliError> {
    match command {
        StoreCommand::Migrate(args) => migrate(args),
        StoreCommand::Init(args) => fleet::init(args),
        StoreCommand::Rekey(args) => fleet::rekey(args),
        StoreCommand::NewKey(args) => fleet::new_key(args),
    }
}

/// What became of one account of a source.
#[derive(Debug, PartialEq, Eq)]
enum Migrated {
    /// New in the store, with this many recovery codes.
    Added { codes: usize },
    /// Already there with the same secret: its ledger moved forward or codes used on the
    /// source host were burned.
    Merged { burned: usize, not_carried: usize },
    /// Already there with the same secret, nothing to change.
    Unchanged { not_carried: usize },
    /// Already there with another secret: left as it is.
    Conflict,
    /// The source's record went away while it was read.
    Gone,
}

/// Every count of a run, for its one summary.
#[derive(Default)]
struct Tally {
    added: usize,
    merged: usize,
    unchanged: usize,
    refused: usize,
    failed: usize,
}

fn migrate(args: &MigrateArgs) -> Result<(), CliError> {
    let policy = policy::load(&args.config.config)?;
    // Every source is opened (and checked) before anything is written.
    let sources = args
        .from
        .iter()
        .map(|dir| {
            FileStore::open(dir)
                .map(|store| (dir, store))
                .map_err(|e| CliError::new(format!("--from: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let target = open_or_create_store(&policy)?;
    let mut tally = Tally::default();
    for (dir, source) in &sources {
        let dir = dir.display();
        for user in source.enrolled_users()? {
            match merge_account(source, &*target, &user) {
                Ok(Migrated::Added { codes }) => {
                    tally.added += 1;
                    println!("{user}: added from {dir} ({codes} recovery codes)");
                }
                Ok(Migrated::Merged {
                    burned,
                    not_carried,
                }) => {
                    tally.merged += 1;
                    println!(
                        "{user}: merged from {dir} (ledger moved forward; {burned} recovery codes used there burned{})",
                        not_carried_note(not_carried)
                    );
                }
                Ok(Migrated::Unchanged { not_carried }) => {
                    tally.unchanged += 1;
                    println!("{user}: unchanged{}", not_carried_note(not_carried));
                }
                Ok(Migrated::Gone) => {}
                Ok(Migrated::Conflict) => {
                    tally.refused += 1;
                    eprintln!(
                        "pam-mfa: {user}: refused: the secret in {dir} differs from the one in the store; the store's is kept (re-enroll {user}, or remove one of them)"
                    );
                }
                Err(e) => {
                    tally.failed += 1;
                    eprintln!("pam-mfa: {user}: not migrated from {dir}: {e}");
                }
            }
        }
    }
    println!(
        "{} added, {} merged, {} unchanged, {} refused, {} failed",
        tally.added, tally.merged, tally.unchanged, tally.refused, tally.failed
    );
    match tally.refused + tally.failed {
        0 => Ok(()),
        n => Err(CliError::new(format!(
            "{n} account(s) not migrated; the others were"
        ))),
    }
}

fn not_carried_note(not_carried: usize) -> String {
    match not_carried {
        0 => String::new(),
        n => format!(
            "; {n} recovery codes of that host not carried over: the store keeps its own set (pam-mfa recovery makes new ones)"
        ),
    }
}

/// Brings one account of `source` into `target`. A new account comes with its secret, its
/// ledger (last step, counter) and its unused recovery codes; failure counts and locks
/// are the host's own and stay behind. An account the store has with the same secret
/// keeps the higher step and counter, and loses every recovery code burned on the source
/// host; its code set is otherwise the store's (adding a host's codes back could revive
/// one used in the store). Another secret is a conflict, and nothing is changed.
fn merge_account(
    source: &FileStore,
    target: &dyn Store,
    user: &UserName,
) -> Result<Migrated, StoreError> {
    let Some(record) = source.record(user)? else {
        return Ok(Migrated::Gone);
    };
    let state = source.peek_state(user)?.unwrap_or_default();
    let ledger = State {
        last_step: state.last_step,
        next_counter: state.next_counter,
        clock_offset: state.clock_offset,
        last_success: state.last_success,
        ..State::default()
    };
    let unused = source.recovery_hashes(user)?;
    let Some(existing) = target.record(user)? else {
        target.enroll(user, &record, ledger, &unused, false)?;
        return Ok(Migrated::Added {
            codes: unused.len(),
        });
    };
    if !existing.same_secret(&record) {
        return Ok(Migrated::Conflict);
    }
    let current = target.peek_state(user)?.unwrap_or_default();
    let merged = State {
        last_step: current.last_step.max(ledger.last_step),
        next_counter: current.next_counter.max(ledger.next_counter),
        clock_offset: if ledger.last_step > current.last_step {
            ledger.clock_offset
        } else {
            current.clock_offset
        },
        last_success: current.last_success.max(ledger.last_success),
        ..current
    };
    let burned = source.burned_recovery_hashes(user)?;
    let hashes = target.recovery_hashes(user)?;
    let kept: Vec<String> = hashes
        .iter()
        .filter(|hash| !burned.contains(hash))
        .cloned()
        .collect();
    let not_carried = unused.iter().filter(|hash| !hashes.contains(hash)).count();
    if merged == current && kept.len() == hashes.len() {
        return Ok(Migrated::Unchanged { not_carried });
    }
    // The record is the store's own, written again as it was.
    target.enroll(user, &existing, merged, &kept, true)?;
    Ok(Migrated::Merged {
        burned: hashes.len() - kept.len(),
        not_carried,
    })
}

//! `pam-mfa store migrate --from DIR`: brings a host's file store into the store the
//! policy names, through the store interface alone, so the same merge serves every
//! backend. Idempotent: a second run changes nothing and says "unchanged". The fleet
//! store's own subcommands (init, rekey, new-key) are in fleet.rs.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::account::open_or_create_store;
use super::{fleet, CliError, ConfigArg};
use crate::policy::{self, Backend, Policy};
use crate::store::{FileStore, Incoming, Merged, State, Store, StoreError};
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
    let target_name = describe(&policy);
    let mut tally = Tally::default();
    for (dir, source) in &sources {
        let dir = dir.display();
        for user in source.enrolled_users()? {
            match merge_account(source, &*target, &user) {
                Ok(Some(Merged::Added { codes })) => {
                    tally.added += 1;
                    println!("{user}: added from {dir} ({codes} recovery codes)");
                }
                Ok(Some(Merged::Merged {
                    burned,
                    not_carried,
                })) => {
                    tally.merged += 1;
                    println!(
                        "{user}: merged from {dir} (ledger moved forward; {burned} recovery codes used there burned{})",
                        not_carried_note(not_carried)
                    );
                }
                Ok(Some(Merged::Unchanged { not_carried })) => {
                    tally.unchanged += 1;
                    println!("{user}: unchanged{}", not_carried_note(not_carried));
                }
                Ok(None) => {}
                Ok(Some(Merged::Conflict)) => {
                    tally.refused += 1;
                    eprintln!(
                        "pam-mfa: {user}: refused: the secret in {dir} differs from the one in {target_name}; the store's is kept (re-enroll {user}, or remove one of them)"
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

/// Brings one account of `source` into `target`, through the store's one atomic merge
/// ([`Store::merge`]), so that a login on any host while this runs is never undone. None
/// when the source's record went away while it was read.
fn merge_account(
    source: &FileStore,
    target: &dyn Store,
    user: &UserName,
) -> Result<Option<Merged>, StoreError> {
    let Some(record) = source.record(user)? else {
        return Ok(None);
    };
    let state = source.peek_state(user)?.unwrap_or_default();
    // Failure counts and locks are the host's own and stay behind.
    let ledger = State {
        last_step: state.last_step,
        next_counter: state.next_counter,
        clock_offset: state.clock_offset,
        last_success: state.last_success,
        ..State::default()
    };
    let unused = source.recovery_hashes(user)?;
    let burned = source.burned_recovery_hashes(user)?;
    let incoming = Incoming {
        record: &record,
        ledger: &ledger,
        unused: &unused,
        burned: &burned,
    };
    target.merge(user, &incoming).map(Some)
}

/// The store the policy names, for a message: its directory, or the fleet's database.
fn describe(policy: &Policy) -> String {
    match &policy.store {
        Backend::File => format!("the store {}", policy.store_dir.display()),
        Backend::Postgresql(store) => format!("the fleet store ({})", store.connection),
    }
}

//! `pam-mfa store init|rekey|new-key`: the fleet store itself. `init` creates or upgrades
//! the schema of the database the policy names and grants the module's role what a login
//! needs; `rekey` re-seals every secret under a new key; `new-key` writes a key file.

#![forbid(unsafe_code)]

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use clap::Args;
use zeroize::Zeroizing;

use super::{CliError, ConfigArg};
use crate::policy::{self as policy_file, Backend};
use crate::store::postgres::{read_key, PgStore, Settings};

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The role the hosts' logins connect as: it gets SELECT on the secrets and UPDATE on
    /// the state and recovery codes, nothing more.
    #[arg(long, value_name = "ROLE", default_value = "pam_mfa_module")]
    module_role: String,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(Args, Debug)]
pub struct RekeyArgs {
    /// The new key file (32 bytes, root's, mode 0600). The policy's secret_key_file is
    /// the current key; after the rekey, install the new key there on every host.
    #[arg(long, value_name = "FILE")]
    new_key: PathBuf,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(Args, Debug)]
pub struct NewKeyArgs {
    /// Where to write the key; it must not exist yet.
    path: PathBuf,
}

/// `store init`.
pub fn init(args: &InitArgs) -> Result<(), CliError> {
    let store = open(&args.config)?;
    match store.init(&args.module_role)? {
        None => println!(
            "fleet store: schema created; {} may log in",
            args.module_role
        ),
        Some(found) => println!(
            "fleet store: schema was version {found}, is {}; grants for {} renewed",
            crate::store::postgres::schema::VERSION,
            args.module_role
        ),
    }
    Ok(())
}

/// `store rekey`.
pub fn rekey(args: &RekeyArgs) -> Result<(), CliError> {
    let store = open(&args.config)?;
    let new_key = read_key(&args.new_key)?;
    if new_key.id() == store.key_id() {
        return Err(CliError::new(format!(
            "{} is the key in use already",
            args.new_key.display()
        )));
    }
    let count = store.rekey(&new_key)?;
    println!(
        "fleet store: {count} secrets re-sealed from key {} to key {}; now install {} as secret_key_file on every host",
        store.key_id(),
        new_key.id(),
        args.new_key.display()
    );
    Ok(())
}

/// The fleet store the policy names; an error for a policy of the file backend.
fn open(config: &ConfigArg) -> Result<PgStore, CliError> {
    let policy = policy_file::load(&config.config)?;
    match &policy.store {
        Backend::Postgresql(postgresql) => Ok(PgStore::open(&Settings::from_policy(postgresql))?),
        Backend::File => Err(CliError::new(format!(
            "{}: the policy's store is the file backend; `store` commands are for backend = \"postgresql\"",
            config.config.display()
        ))),
    }
}

/// `store new-key`.
pub fn new_key(args: &NewKeyArgs) -> Result<(), CliError> {
    let path = args.path.as_path();
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::fill(key.as_mut_slice())
        .map_err(|e| CliError::new(format!("no randomness: {e}")))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
    file.write_all(key.as_slice())
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
    println!(
        "{}: a new store key (id {})",
        path.display(),
        read_key(path)?.id()
    );
    Ok(())
}

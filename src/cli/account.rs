//! What several subcommands share: loading the policy and store for an account, with
//! the errors an admin can act on.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::Command;

use super::CliError;
use crate::accounts::{self, Account, AccountError, Names};
use crate::policy::{self, Backend, Policy};
use crate::store::postgres::{PgStore, Settings};
use crate::store::{FileStore, Store, StoreError};
use crate::username::UserName;

/// The store of a policy, and an account that NSS knows.
pub struct Target {
    pub store: Box<dyn Store>,
    pub user: UserName,
}

/// Loads the policy, resolves `user` through NSS and opens the store (checking that this
/// process runs as the store's owner).
pub fn target(config: &std::path::Path, user: &str) -> Result<Target, CliError> {
    let policy = policy::load(config)?;
    let user = UserName::parse(user)?;
    lookup(&user)?;
    let store = open_store(&policy)?;
    Ok(Target { store, user })
}

/// Resolves `user` through NSS. A name that NSS finds under another name (a directory
/// that ignores case, or an alias) is refused with that name, so that the admin's command
/// and the module, which goes by NSS's name, always mean the same record.
/// Like `target`, without asking NSS: for removing what the store holds under a name,
/// whether or not NSS still knows it (an account deleted from the directory, a record left
/// under another spelling of one).
pub fn stored_target(config: &std::path::Path, user: &str) -> Result<Target, CliError> {
    let policy = policy::load(config)?;
    let user = UserName::parse(user)?;
    let store = open_store(&policy)?;
    Ok(Target { store, user })
}

pub fn lookup(user: &UserName) -> Result<Account, CliError> {
    lookup_with(user, &Names::default())
}

/// Like `lookup`, matching the account against `names` (those of a policy, resolved once).
pub fn lookup_with(user: &UserName, names: &Names) -> Result<Account, CliError> {
    match accounts::lookup(user, names) {
        Ok(account) if account.name != *user => Err(CliError::new(format!(
            "{user}: NSS knows this account as {}; use that name",
            account.name
        ))),
        Ok(account) => Ok(account),
        Err(AccountError::Unknown) => Err(CliError::new(format!("no such user: {user}"))),
        Err(e) => Err(CliError::new(format!("{user}: {e}"))),
    }
}

/// The names `policy` mentions, resolved through NSS.
pub fn policy_names(policy: &Policy) -> Result<Names, CliError> {
    Names::resolve(policy.named_groups(), policy.named_users())
        .map_err(|e| CliError::new(e.to_string()))
}

/// Opens the policy's store; an ownership error says who must run the command.
pub fn open_store(policy: &Policy) -> Result<Box<dyn Store>, CliError> {
    open(policy, false)
}

/// Like `open_store`, creating the directory (mode 0700) when it does not exist.
pub fn open_or_create_store(policy: &Policy) -> Result<Box<dyn Store>, CliError> {
    open(policy, true)
}

/// The one place every subcommand opens its store: the backend the policy's `[store]`
/// names, never another in its place.
fn open(policy: &Policy, create: bool) -> Result<Box<dyn Store>, CliError> {
    match &policy.store {
        Backend::File => {
            let store = if create {
                FileStore::open_or_create(&policy.store_dir)
            } else {
                FileStore::open(&policy.store_dir)
            };
            Ok(Box::new(store.map_err(owner_hint)?))
        }
        // The fleet store: the database is reached at the first operation, not here.
        Backend::Postgresql(store) => Ok(Box::new(PgStore::open(&Settings::from_policy(store))?)),
    }
}

fn owner_hint(e: StoreError) -> CliError {
    match &e {
        StoreError::Owner { uid, .. } => CliError::new(format!(
            "{e}; run pam-mfa as the store's owner (uid {uid}), normally root"
        )),
        StoreError::Io {
            errno: nix::errno::Errno::EACCES,
            ..
        } => CliError::new(format!("{e}; run pam-mfa as root")),
        _ => CliError::from(e),
    }
}

/// (name, uid, home) of every account NSS enumerates.
pub fn all_accounts() -> Result<Vec<(String, u32, PathBuf)>, CliError> {
    let output = Command::new("getent")
        .arg("passwd")
        .output()
        .map_err(|e| CliError::new(format!("cannot run getent passwd: {e}")))?;
    if !output.status.success() {
        return Err(CliError::new("getent passwd failed; cannot list accounts"));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let uid = fields.get(2)?.parse().ok()?;
            Some((
                fields.first()?.to_string(),
                uid,
                PathBuf::from(fields.get(5)?),
            ))
        })
        .collect())
}

/// (name, gid) of every group NSS enumerates (a directory may list none of its own).
pub fn all_groups() -> Result<Vec<(String, u32)>, CliError> {
    let output = Command::new("getent")
        .arg("group")
        .output()
        .map_err(|e| CliError::new(format!("cannot run getent group: {e}")))?;
    if !output.status.success() {
        return Err(CliError::new("getent group failed; cannot list groups"));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some((fields.first()?.to_string(), fields.get(2)?.parse().ok()?))
        })
        .collect())
}

//! The secret store: one root-owned directory, a secret record per account
//! (`<user>.toml`, written only by the admin command) and a separate state file per
//! account (`<user>.state`, the replay and failure state that logins update).

#![forbid(unsafe_code)]

mod error;
mod fs;
pub mod record;
pub mod state;

use std::path::{Path, PathBuf};

pub use error::StoreError;
pub use record::{Kind, Record};
pub use state::{State, StateFile};

use crate::username::UserName;
use fs::Dir;

/// An opened, checked store directory. Every file in it is opened relative to this
/// handle, so a store path swapped for a symlink after the check changes nothing.
pub struct Store {
    dir: Dir,
}

impl Store {
    /// Opens an existing store. It must be a real directory (not a symlink) owned by the
    /// effective uid with no group or other permissions.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            dir: Dir::open(path)?,
        })
    }

    /// Opens the store, first creating the directory with mode 0700 if it does not
    /// exist (its parent must). For the admin command.
    pub fn open_or_create(path: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            dir: Dir::open_or_create(path)?,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn record_path(&self, user: &UserName) -> PathBuf {
        self.path().join(record_name(user))
    }

    /// The account's secret record, or None when it is not enrolled.
    pub fn record(&self, user: &UserName) -> Result<Option<Record>, StoreError> {
        let name = record_name(user);
        let Some(contents) = self.dir.read_file(&name)? else {
            return Ok(None);
        };
        Record::parse(&contents, &self.dir.path().join(&name)).map(Some)
    }

    /// Opens (creating if needed) the account's state file and locks it. The lock is
    /// held until the returned handle is dropped; read the state only after this.
    pub fn lock_state(&self, user: &UserName) -> Result<StateFile, StoreError> {
        StateFile::open_locked(&self.dir, &state_name(user))
    }

    /// Writes the account's record atomically and durably. Unless `replace`, an existing
    /// record is an error and is left untouched.
    pub fn write_record(
        &self,
        user: &UserName,
        record: &Record,
        replace: bool,
    ) -> Result<(), StoreError> {
        let text = record.to_text();
        self.dir
            .write_atomic(&record_name(user), text.as_bytes(), replace)
            .map_err(|e| match e {
                StoreError::Exists { .. } => StoreError::AlreadyEnrolled {
                    user: user.to_string(),
                },
                other => other,
            })
    }
}

fn record_name(user: &UserName) -> String {
    format!("{user}.toml")
}

fn state_name(user: &UserName) -> String {
    format!("{user}.state")
}

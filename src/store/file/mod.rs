//! The file backend: one root-owned directory, a secret record per account
//! (`<user>.toml`, written only by the admin command), a separate state file per
//! account (`<user>.state`, the replay and failure state that logins update) and the
//! hashes of its unused recovery codes (`<user>.recovery`). A login's decision is atomic
//! under the state file's lock.

#![forbid(unsafe_code)]

mod fs;
pub mod state;

use std::path::{Path, PathBuf};

pub use state::{ParkedState, StateFile};

use super::{
    merge_ledger, Attempt, Current, Incoming, Kind, Lockout, Merged, Record, Settled, State, Store,
    StoreError, Used, Verdict,
};
use crate::clock::Clock;
use crate::otp::totp::time_step;
use crate::recovery::HASH_LEN;
use crate::username::UserName;
use fs::{Dir, MAX_FILE_BYTES};

/// The first line of a recovery file.
const RECOVERY_HEADER: &str = "# pam-mfa recovery codes: Argon2id hashes, one per unused code\n";
/// The most recovery codes an account can hold: as many hashes as fit in a recovery file
/// the store reads back (64 KiB). Imports refuse more before hashing any.
pub const MAX_RECOVERY_CODES: usize = (MAX_FILE_BYTES - RECOVERY_HEADER.len()) / (HASH_LEN + 1);

/// An opened, checked store directory. Every file in it is opened relative to this
/// handle, so a store path swapped for a symlink after the check changes nothing.
pub struct FileStore {
    dir: Dir,
}

impl FileStore {
    /// Opens an existing store. It must be a real directory (not a symlink) owned by the
    /// effective uid with no group or other permissions.
    pub fn open(path: &Path) -> Result<FileStore, StoreError> {
        Ok(FileStore {
            dir: Dir::open(path)?,
        })
    }

    /// Opens the store, first creating the directory with mode 0700 if it does not
    /// exist (its parent must). For the admin command.
    pub fn open_or_create(path: &Path) -> Result<FileStore, StoreError> {
        Ok(FileStore {
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

    /// The account's state, without creating a state file; None when it has none.
    pub fn peek_state(&self, user: &UserName) -> Result<Option<State>, StoreError> {
        match StateFile::open_existing(&self.dir, &state_name(user))? {
            Some(mut file) => file.read().map(Some),
            None => Ok(None),
        }
    }

    /// Whether the account has a record (without parsing it).
    pub fn is_enrolled(&self, user: &UserName) -> Result<bool, StoreError> {
        Ok(self
            .dir
            .open_file(&record_name(user), nix::fcntl::OFlag::O_RDONLY)?
            .is_some())
    }

    /// Removes the account's record and state; false if it had neither.
    ///
    /// Also removes the account's temporary files that a killed `pam-mfa` left behind
    /// (`.alice.toml.PID.RANDOM.tmp`): they may hold a secret. Logins never delete them.
    pub fn remove(&self, user: &UserName) -> Result<bool, StoreError> {
        // Under the state lock, which a login holds from its second look at the record to
        // its last write: a login in flight sees the secret or its absence, never a half.
        // (Best effort: a damaged state file must not keep the record from going.)
        let _held = StateFile::open_existing(&self.dir, &state_name(user))
            .ok()
            .flatten();
        let record = self.dir.remove(&record_name(user))?;
        let state = self.dir.remove(&state_name(user))?;
        let recovery = self.dir.remove(&recovery_name(user))?;
        let prefixes = [
            format!(".{}.", record_name(user)),
            format!(".{}.", recovery_name(user)),
        ];
        // `PID.RANDOM.tmp` after the prefix, exactly, so that another account whose name
        // begins the same way keeps its files.
        let temporary = |rest: &str| {
            let mut parts = rest.split('.');
            matches!(
                (parts.next(), parts.next(), parts.next(), parts.next()),
                (Some(pid), Some(random), Some("tmp"), None)
                    if !pid.is_empty()
                        && pid.bytes().all(|b| b.is_ascii_digit())
                        && random.len() == 12
                        && random.bytes().all(|b| b.is_ascii_hexdigit())
            )
        };
        for name in self.dir.names()? {
            let ours = prefixes
                .iter()
                .any(|p| name.strip_prefix(p.as_str()).is_some_and(temporary));
            if ours {
                self.dir.remove(&name)?;
            }
        }
        Ok(record || state || recovery)
    }

    /// Every account name that has a record, sorted.
    pub fn enrolled_users(&self) -> Result<Vec<UserName>, StoreError> {
        let mut users: Vec<UserName> = self
            .dir
            .names()?
            .iter()
            .filter_map(|n| n.strip_suffix(".toml"))
            .filter_map(|n| UserName::parse(n).ok())
            .collect();
        users.sort();
        Ok(users)
    }

    /// Saves a new enrollment under the account's state lock: the record (replacing an
    /// existing one only if `replace`), a fresh `state` (a TOTP step never goes back,
    /// for the same secret, nor an HOTP counter; a new secret starts a new ledger) and the
    /// recovery-code hashes.
    ///
    /// A replacement first empties the old recovery codes, so that a crash at any point
    /// leaves either the old secret or the new one, and never the new secret with the old
    /// codes (re-enrolling after a lost device must end them).
    pub fn enroll(
        &self,
        user: &UserName,
        record: &Record,
        state: State,
        recovery_hashes: &[String],
        replace: bool,
    ) -> Result<(), StoreError> {
        let mut state_file = self.lock_state(user)?;
        self.enroll_locked(
            &mut state_file,
            user,
            record,
            state,
            recovery_hashes,
            replace,
        )
    }

    /// [`FileStore::enroll`] with the account's state lock already held.
    fn enroll_locked(
        &self,
        state_file: &mut StateFile,
        user: &UserName,
        record: &Record,
        mut state: State,
        recovery_hashes: &[String],
        replace: bool,
    ) -> Result<(), StoreError> {
        let old = match state_file.read() {
            Ok(old) => old,
            // A damaged state file: the new enrollment starts it over.
            Err(StoreError::State { .. }) => {
                state_file.reset()?;
                State::default()
            }
            Err(e) => return Err(e),
        };
        // The same secret again (a re-import or re-enrollment with --force) keeps its
        // ledger: a TOTP step or HOTP counter never goes back, or codes used before would
        // work again. A new secret starts a new ledger (none of its codes was ever used),
        // so that a step a clock far ahead left in the future dies with the old secret.
        if self.has_secret(user, record)? {
            match record.kind {
                Kind::Totp => state.last_step = state.last_step.max(old.last_step),
                Kind::Hotp => state.next_counter = state.next_counter.max(old.next_counter),
            }
        }
        if replace && self.is_enrolled(user)? {
            self.write_recovery_hashes(user, &[])?;
        }
        self.write_record(user, record, replace)?;
        state_file.write(&state)?;
        self.write_recovery_hashes(user, recovery_hashes)
    }

    /// Whether the account's record holds `record`'s secret. A record that does not parse
    /// is being replaced, and holds no secret to keep a ledger for.
    fn has_secret(&self, user: &UserName, record: &Record) -> Result<bool, StoreError> {
        match self.record(user) {
            Ok(Some(old)) => Ok(old.secret.same_as(&record.secret)),
            Ok(None) | Err(StoreError::Record { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The stored recovery-code hashes; empty when the account has none.
    pub fn recovery_hashes(&self, user: &UserName) -> Result<Vec<String>, StoreError> {
        let name = recovery_name(user);
        let Some(contents) = self.dir.read_file(&name)? else {
            return Ok(Vec::new());
        };
        let path = self.dir.path().join(&name);
        let text = std::str::from_utf8(&contents).map_err(|_| StoreError::Record {
            path: path.clone(),
            line: 1,
            message: "not UTF-8 text".into(),
        })?;
        let mut hashes = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if !line.starts_with("$argon2") {
                return Err(StoreError::Record {
                    path,
                    line: index + 1,
                    message: "expected an Argon2 hash".into(),
                });
            }
            hashes.push(line.to_owned());
        }
        Ok(hashes)
    }

    /// The hashes of the recovery codes burned by logins and still in the file (a login
    /// burns a code in place, its `$argon2…` line becoming `#argon2…`; only a new set of
    /// codes drops them), for `pam-mfa store migrate`, so that a code used on one host
    /// stays used everywhere.
    pub fn burned_recovery_hashes(&self, user: &UserName) -> Result<Vec<String>, StoreError> {
        let Some(contents) = self.dir.read_file(&recovery_name(user))? else {
            return Ok(Vec::new());
        };
        Ok(String::from_utf8_lossy(&contents)
            .lines()
            .filter_map(|line| line.trim().strip_prefix("#argon2"))
            .map(|rest| format!("$argon2{rest}"))
            .collect())
    }

    /// Burns one recovery code: the first byte of its hash's line, `$`, becomes `#`, which
    /// makes the line a comment. One byte written in place and `fdatasync`ed needs no new
    /// space (recovery codes are the way back in when the disk is full), and a crash leaves
    /// the code whole or burned, never a torn line. The file is rewritten, and the burned
    /// lines dropped, only by the admin command.
    pub fn burn_recovery_hash(&self, user: &UserName, hash: &str) -> Result<(), StoreError> {
        use std::io::Read;
        use std::os::unix::fs::FileExt;
        let name = recovery_name(user);
        let path = self.dir.path().join(&name);
        let Some((file, size)) = self.dir.open_file(&name, nix::fcntl::OFlag::O_RDWR)? else {
            return Err(StoreError::Vanished);
        };
        if size > fs::MAX_FILE_BYTES as u64 {
            return Err(StoreError::TooLarge { path });
        }
        let mut contents = Vec::with_capacity(size as usize + 1);
        (&file)
            .take(fs::MAX_FILE_BYTES as u64 + 1)
            .read_to_end(&mut contents)
            .map_err(|e| fs::io(&path, "read", fs::errno_of(&e)))?;
        let mut offset = 0;
        let mut found = None;
        for line in contents.split_inclusive(|&b| b == b'\n') {
            let start = line
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(line.len());
            if line[start..].trim_ascii_end() == hash.as_bytes() {
                found = Some(offset + start);
                break;
            }
            offset += line.len();
        }
        let Some(at) = found else {
            return Err(StoreError::Vanished);
        };
        file.write_all_at(b"#", at as u64)
            .map_err(|e| fs::io(&path, "write", fs::errno_of(&e)))?;
        file.sync_data()
            .map_err(|e| fs::io(&path, "sync", fs::errno_of(&e)))
    }

    /// Replaces the account's recovery-code hashes, atomically and durably.
    pub fn write_recovery_hashes(
        &self,
        user: &UserName,
        hashes: &[String],
    ) -> Result<(), StoreError> {
        let mut text = String::from(RECOVERY_HEADER);
        for hash in hashes {
            text.push_str(hash);
            text.push('\n');
        }
        self.dir
            .write_atomic(&recovery_name(user), text.as_bytes(), true)
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

impl Store for FileStore {
    fn record(&self, user: &UserName) -> Result<Option<Record>, StoreError> {
        FileStore::record(self, user)
    }

    fn is_enrolled(&self, user: &UserName) -> Result<bool, StoreError> {
        FileStore::is_enrolled(self, user)
    }

    fn enrolled_users(&self) -> Result<Vec<UserName>, StoreError> {
        FileStore::enrolled_users(self)
    }

    fn peek_state(&self, user: &UserName) -> Result<Option<State>, StoreError> {
        FileStore::peek_state(self, user)
    }

    fn recovery_hashes(&self, user: &UserName) -> Result<Vec<String>, StoreError> {
        FileStore::recovery_hashes(self, user)
    }

    fn enroll(
        &self,
        user: &UserName,
        record: &Record,
        state: State,
        recovery_hashes: &[String],
        replace: bool,
    ) -> Result<(), StoreError> {
        FileStore::enroll(self, user, record, state, recovery_hashes, replace)
    }

    fn replace_recovery_hashes(
        &self,
        user: &UserName,
        hashes: &[String],
    ) -> Result<(), StoreError> {
        // Under the state lock, as a login burns a code under it.
        let _held = self.lock_state(user)?;
        self.write_recovery_hashes(user, hashes)
    }

    fn rotate(
        &self,
        user: &UserName,
        proven: &Record,
        record: &Record,
        state: State,
        recovery_hashes: &[String],
    ) -> Result<bool, StoreError> {
        // Under the state lock, which enroll and remove take to change the record.
        let mut state_file = self.lock_state(user)?;
        if !FileStore::record(self, user)?.is_some_and(|current| current.same_secret(proven)) {
            return Ok(false);
        }
        self.enroll_locked(&mut state_file, user, record, state, recovery_hashes, true)?;
        Ok(true)
    }

    fn renew_recovery(
        &self,
        user: &UserName,
        proven: &Record,
        hashes: &[String],
    ) -> Result<bool, StoreError> {
        let _held = self.lock_state(user)?;
        if !FileStore::record(self, user)?.is_some_and(|current| current.same_secret(proven)) {
            return Ok(false);
        }
        self.write_recovery_hashes(user, hashes)?;
        Ok(true)
    }

    fn merge(&self, user: &UserName, incoming: &Incoming<'_>) -> Result<Merged, StoreError> {
        // Under the state lock, which logins hold for their decision and enroll and
        // remove for a change of the record: read, merge and write as one step.
        let mut state_file = self.lock_state(user)?;
        let Some(existing) = FileStore::record(self, user)? else {
            let ledger = *incoming.ledger;
            self.enroll_locked(
                &mut state_file,
                user,
                incoming.record,
                ledger,
                incoming.unused,
                false,
            )?;
            return Ok(Merged::Added {
                codes: incoming.unused.len(),
            });
        };
        if !existing.same_secret(incoming.record) {
            return Ok(Merged::Conflict);
        }
        let current = state_file.read()?;
        let merged = merge_ledger(&current, incoming.ledger);
        let hashes = FileStore::recovery_hashes(self, user)?;
        let kept: Vec<String> = hashes
            .iter()
            .filter(|hash| !incoming.burned.contains(hash))
            .cloned()
            .collect();
        let not_carried = not_carried(incoming.unused, &hashes);
        if merged == current && kept.len() == hashes.len() {
            return Ok(Merged::Unchanged { not_carried });
        }
        if merged != current {
            state_file.write(&merged)?;
        }
        if kept.len() != hashes.len() {
            self.write_recovery_hashes(user, &kept)?;
        }
        Ok(Merged::Merged {
            burned: hashes.len() - kept.len(),
            not_carried,
        })
    }

    fn remove(&self, user: &UserName) -> Result<bool, StoreError> {
        FileStore::remove(self, user)
    }

    fn unlock(&self, user: &UserName, now: u64) -> Result<bool, StoreError> {
        let Some(record) = FileStore::record(self, user)? else {
            return Ok(false);
        };
        let mut state_file = self.lock_state(user)?;
        let read = state_file.read();
        if let Err(StoreError::State { .. }) = read {
            state_file.reset()?;
        }
        let state = match read {
            Ok(state) => state.unlocked(record.kind, time_step(now, record.period)),
            // A damaged state file: start over, treating every step up to now as used so
            // no code seen before can be replayed. An HOTP counter cannot be rebuilt.
            Err(StoreError::State { .. }) if record.kind == Kind::Totp => State {
                last_step: Some(time_step(now, record.period) + u64::from(record.window)),
                ..State::default()
            },
            Err(StoreError::State { .. }) => {
                return Err(StoreError::CounterLost {
                    path: state_file.path().to_owned(),
                    user: user.to_string(),
                })
            }
            Err(e) => return Err(e),
        };
        state_file.write(&state)?;
        Ok(true)
    }

    fn begin<'s>(&'s self, user: &UserName) -> Result<Box<dyn Attempt + 's>, StoreError> {
        // The state file is opened and checked once; its lock is not held while the user
        // types.
        let mut state_file = self.lock_state(user)?;
        let state = state_file.read()?;
        Ok(Box::new(FileAttempt {
            store: self,
            user: user.clone(),
            state,
            parked: state_file.park()?,
        }))
    }

    fn count_failure(
        &self,
        user: &UserName,
        clock: &dyn Clock,
        lockout: &Lockout,
    ) -> Result<Settled, StoreError> {
        let mut state_file = self.lock_state(user)?;
        let state = state_file.read()?;
        let now = clock.now();
        if state.locked_at(now) {
            return Ok(Settled::Locked {
                until: state.locked_until,
            });
        }
        let next = state.after_wrong(lockout, now);
        state_file.write(&next)?;
        Ok(Settled::Denied {
            locked_until: next.locked_at(now).then_some(next.locked_until),
        })
    }
}

/// A login of the file backend between its prompt's two sides: the state file, open and
/// checked, without its lock.
struct FileAttempt<'s> {
    store: &'s FileStore,
    user: UserName,
    state: State,
    parked: ParkedState,
}

impl Attempt for FileAttempt<'_> {
    fn state(&self) -> &State {
        &self.state
    }

    fn settle(
        self: Box<Self>,
        record: &Record,
        clock: &dyn Clock,
        lockout: &Lockout,
        check: &mut dyn FnMut(&Current<'_>) -> Result<Verdict, StoreError>,
    ) -> Result<Settled, StoreError> {
        let FileAttempt {
            store,
            user,
            parked,
            ..
        } = *self;
        // Lock again, then read again: parallel logins see each other's writes, and a lock
        // that came while the user typed still holds.
        let mut state_file = parked.relock()?;
        let state = state_file.read()?;
        let now = clock.now();
        if state.locked_at(now) {
            return Ok(Settled::Locked {
                until: state.locked_until,
            });
        }
        // A secret removed (`pam-mfa remove`) or replaced (`enroll --force`) while the user
        // typed is revoked for this login too: both change the record under this lock.
        if !FileStore::record(store, &user)?.is_some_and(|current| current.same_secret(record)) {
            return Ok(Settled::Revoked);
        }
        if let Some(until) = state.refused_until(lockout, now) {
            return Ok(Settled::Locked { until });
        }
        // The recovery hashes are read again under the lock, so two logins with one
        // recovery code cannot both burn it (the slow hash ran before the lock).
        let hashes = || FileStore::recovery_hashes(store, &user);
        let current = Current {
            state: &state,
            now,
            recovery_hashes: &hashes,
        };
        match check(&current)? {
            Verdict::Accepted(accepted) => {
                if let Used::RecoveryHash(hash) = &accepted.used {
                    // Burned in place, in space the file has: works on a full disk.
                    store.burn_recovery_hash(&user, hash)?;
                }
                // Durable before PAM_SUCCESS: a code that cannot be marked used is refused.
                state_file.write(&state.after_success(&accepted, now))?;
                Ok(Settled::Accepted)
            }
            Verdict::NoCode => Ok(Settled::NoCode),
            Verdict::Wrong => {
                // Counted durably: a failure that cannot be counted is an error, not a retry.
                let next = state.after_wrong(lockout, now);
                state_file.write(&next)?;
                Ok(Settled::Denied {
                    locked_until: next.locked_at(now).then_some(next.locked_until),
                })
            }
        }
    }
}

/// The most the store adds to an account's name in a file name: the temporary file
/// `.NAME.recovery.PID.RANDOM.tmp` (a pid has at most 7 digits: Linux's pid_max is at most
/// 2^22, and RANDOM is 12 hex digits). `UserName` keeps names short enough for it.
pub const NAME_OVERHEAD: usize =
    ".".len() + ".recovery".len() + ".4194304".len() + ".0123456789ab".len() + ".tmp".len();

/// How many of another store's unused recovery codes this account's set lacks.
pub(crate) fn not_carried(unused: &[String], here: &[String]) -> usize {
    unused.iter().filter(|hash| !here.contains(hash)).count()
}

fn record_name(user: &UserName) -> String {
    format!("{user}.toml")
}

fn state_name(user: &UserName) -> String {
    format!("{user}.state")
}

fn recovery_name(user: &UserName) -> String {
    format!("{user}.recovery")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound imports check is the one the store reads back: as many hashes as that
    /// fit, and not one more.
    #[test]
    fn max_recovery_codes_is_what_a_recovery_file_holds() {
        let (_temp, dir) = fs::temp_store();
        let store = FileStore { dir };
        let user = UserName::parse("alice").unwrap();
        assert_eq!(
            MAX_RECOVERY_CODES, 668,
            "README.md and `pam-mfa import google-authenticator --help` name this bound"
        );
        let hash = format!("$argon2id${}", "x".repeat(HASH_LEN - 10));
        assert_eq!(hash.len(), HASH_LEN);
        let hashes = vec![hash; MAX_RECOVERY_CODES + 1];
        store
            .write_recovery_hashes(&user, &hashes[..MAX_RECOVERY_CODES])
            .unwrap();
        assert_eq!(
            store.recovery_hashes(&user).unwrap().len(),
            MAX_RECOVERY_CODES
        );
        store.write_recovery_hashes(&user, &hashes).unwrap();
        assert!(matches!(
            store.recovery_hashes(&user),
            Err(StoreError::TooLarge { .. })
        ));
    }
}

//! The secret store: one interface, [`Store`], to what is kept per account (the secret
//! record, the replay ledger and lockout [`State`], the recovery-code hashes), and its
//! backends: [`file`] (a root-owned directory on this host) and, for fleets, a database.
//!
//! The module and the admin command use only the trait; a backend is chosen by the
//! policy and opened in one place. Every backend keeps the contract written on the trait.

#![forbid(unsafe_code)]

mod error;
pub mod file;
pub mod postgres;
pub mod record;
pub mod state;

pub use error::StoreError;
pub use file::{FileStore, MAX_RECOVERY_CODES, NAME_OVERHEAD};
pub use record::{Kind, Record};
pub use state::{FailureCount, State};

use crate::clock::Clock;
use crate::policy::{Backend, Policy};
use crate::username::UserName;

/// The store backends one process may open. The module opens only [`FileOnly`], so that
/// its build references no database client (the linker drops what nothing reaches); the
/// privileged helper and the admin command open every backend built in.
pub trait Backends {
    /// Whether this process opens the store `policy` names.
    fn opens(&self, policy: &Policy) -> bool;

    /// Opens the store `policy` names (call `opens` first): checked, ready, fail closed.
    fn open(&self, policy: &Policy) -> Result<Box<dyn Store>, StoreError>;
}

/// The file backend alone.
pub struct FileOnly;

impl Backends for FileOnly {
    fn opens(&self, policy: &Policy) -> bool {
        policy.store == Backend::File
    }

    fn open(&self, policy: &Policy) -> Result<Box<dyn Store>, StoreError> {
        match &policy.store {
            Backend::File => Ok(Box::new(FileStore::open(&policy.store_dir)?)),
            // Never files in the place of the store the policy names.
            other => Err(StoreError::NotHere {
                backend: other.name(),
            }),
        }
    }
}

/// What every backend of the store provides.
///
/// The contract a backend must meet:
/// - **Fail closed.** Any doubt (unreachable, timed out, a row or file that does not read
///   back, a write not known to be durable) is an `Err`, never a default: the module turns
///   every error into a refusal. A code is accepted only once its use is durable.
/// - **One decision per login, atomic.** [`Attempt::settle`] is the only way a login
///   changes the store; between its refusal checks (locked, revoked) and its write no
///   other login of the account may decide, on this host or any other.
/// - **Nothing held while the user types.** [`Store::begin`] returns with no lock and no
///   transaction open; `settle` takes whatever it needs afresh.
/// - **Ledgers never go back.** For one secret, a TOTP step once used stays used and an
///   HOTP counter never goes back (a new secret starts a new ledger: none of its codes
///   was used; only `unlock` pulls a TOTP step that lies in the future back to now); a
///   burned recovery code never works again.
/// - **No secret in an error.** Errors name the account and where, never a secret or code.
pub trait Store {
    /// The account's secret record, or None when it is not enrolled.
    fn record(&self, user: &UserName) -> Result<Option<Record>, StoreError>;

    /// Whether the account has a record (without reading its secret).
    fn is_enrolled(&self, user: &UserName) -> Result<bool, StoreError>;

    /// Every account name that has a record, sorted.
    fn enrolled_users(&self) -> Result<Vec<UserName>, StoreError>;

    /// The account's state without changing anything; None when it has none yet.
    fn peek_state(&self, user: &UserName) -> Result<Option<State>, StoreError>;

    /// The account's unused recovery-code hashes; empty when it has none.
    fn recovery_hashes(&self, user: &UserName) -> Result<Vec<String>, StoreError>;

    /// Saves an enrollment, atomically with respect to logins of the account: the record
    /// (an existing one is an error, [`StoreError::AlreadyEnrolled`], unless `replace`),
    /// `state` merged with the old ledger for the same secret (neither a TOTP step nor an
    /// HOTP counter goes back; a new secret starts a new ledger), and the recovery-code
    /// hashes. A replaced
    /// secret never keeps the old recovery codes, even after a crash.
    fn enroll(
        &self,
        user: &UserName,
        record: &Record,
        state: State,
        recovery_hashes: &[String],
        replace: bool,
    ) -> Result<(), StoreError>;

    /// Replaces the account's recovery-code hashes, atomically with respect to its logins.
    fn replace_recovery_hashes(&self, user: &UserName, hashes: &[String])
        -> Result<(), StoreError>;

    /// Self-service's new secret: replaces the account's record with `record`, as
    /// [`Store::enroll`] with `replace` does, but only while its secret is still `proven`
    /// (the one the user just proved), checked and written in one atomic step. False, and
    /// nothing changed, when the secret was removed or replaced meanwhile. A fleet's host
    /// role may do this (and [`Store::renew_recovery`]) and no other change of a record.
    fn rotate(
        &self,
        user: &UserName,
        proven: &Record,
        record: &Record,
        state: State,
        recovery_hashes: &[String],
    ) -> Result<bool, StoreError>;

    /// Self-service's new recovery codes: replaces the account's recovery-code hashes
    /// only while its secret is still `proven`, atomically; false (nothing changed) when
    /// it is not.
    fn renew_recovery(
        &self,
        user: &UserName,
        proven: &Record,
        hashes: &[String],
    ) -> Result<bool, StoreError>;

    /// Brings one account of another store in (`pam-mfa store migrate`), in one atomic
    /// step with respect to its logins on every host: a new account comes with the
    /// incoming record, ledger and unused recovery codes; one with the same secret keeps
    /// the higher TOTP step and HOTP counter ([`merge_ledger`]), its own failures and
    /// lock, and its own recovery codes less those burned in the other store (a code used
    /// anywhere stays used; none is added back); another secret is a
    /// [`Merged::Conflict`] and nothing changes.
    fn merge(&self, user: &UserName, incoming: &Incoming<'_>) -> Result<Merged, StoreError>;

    /// Removes the account's record, state and recovery codes, atomically with respect to
    /// its logins (one in flight ends [`Settled::Revoked`]); false if it had none of them.
    fn remove(&self, user: &UserName) -> Result<bool, StoreError>;

    /// Clears the account's failure counts and lock, keeping its ledger except a last TOTP
    /// step beyond the step of `now`, which is pulled back to it ([`State::unlocked`]); a state that
    /// cannot be read is started over with every TOTP step up to `now` (plus the record's
    /// window) used, and is an error for HOTP ([`StoreError::CounterLost`]). False when
    /// the account has no record.
    fn unlock(&self, user: &UserName, now: u64) -> Result<bool, StoreError>;

    /// Starts a login of an enrolled account: its state as it is now, for the checks
    /// before the prompt (locked, a remembered session). Holds no lock and no transaction
    /// when it returns.
    fn begin<'s>(&'s self, user: &UserName) -> Result<Box<dyn Attempt + 's>, StoreError>;

    /// The account's record and, when it has one, a login begun on it: [`Store::record`]
    /// then [`Store::begin`]. A database reads both over one connection; like `begin`,
    /// nothing is held when it returns.
    fn record_and_begin<'s>(&'s self, user: &UserName) -> Result<Option<Begun<'s>>, StoreError> {
        match self.record(user)? {
            Some(record) => Ok(Some((record, self.begin(user)?))),
            None => Ok(None),
        }
    }

    /// Counts one wrong code for an account that has no record yet (a wrong first code of
    /// an enrollment at login), atomically, like [`Attempt::settle`]'s `Wrong`. Returns
    /// [`Settled::Locked`] (nothing counted) or [`Settled::Denied`].
    fn count_failure(
        &self,
        user: &UserName,
        clock: &dyn Clock,
        lockout: &Lockout,
    ) -> Result<Settled, StoreError>;
}

/// An enrolled account's record, and a login begun on it.
pub type Begun<'s> = (Record, Box<dyn Attempt + 's>);

/// One account of another store (a host's files), for [`Store::merge`].
pub struct Incoming<'a> {
    pub record: &'a Record,
    /// Its ledger (last step, next counter, clock offset, last success); failure counts
    /// and locks are the other host's and stay behind.
    pub ledger: &'a State,
    /// Its unused recovery-code hashes: carried into a new account only.
    pub unused: &'a [String],
    /// Its burned recovery-code hashes: burned here too.
    pub burned: &'a [String],
}

/// What [`Store::merge`] did.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merged {
    /// New here, with this many recovery codes.
    Added { codes: usize },
    /// Same secret: the ledger moved forward, or codes burned there were burned here.
    Merged { burned: usize, not_carried: usize },
    /// Same secret, nothing to change.
    Unchanged { not_carried: usize },
    /// Another secret here: left as it is.
    Conflict,
}

/// The ledger of an account after a merge: `current` with the higher TOTP step (and its
/// clock offset), HOTP counter and last success of the two; its failure counts, lock and
/// remembered session are its own.
pub fn merge_ledger(current: &State, incoming: &State) -> State {
    State {
        last_step: current.last_step.max(incoming.last_step),
        next_counter: current.next_counter.max(incoming.next_counter),
        clock_offset: if incoming.last_step > current.last_step {
            incoming.clock_offset
        } else {
            current.clock_offset
        },
        last_success: current.last_success.max(incoming.last_success),
        ..*current
    }
}

/// A login between [`Store::begin`] and its one decision.
pub trait Attempt {
    /// The account's state when the login began.
    fn state(&self) -> &State;

    /// Decides the login, atomically, with the user's answer already in hand:
    /// 1. refuses, without calling `check`, an account locked at the store's `now`
    ///    ([`Settled::Locked`]), one whose secret is no longer `record`'s
    ///    ([`Settled::Revoked`]: removed or replaced while the user typed), and, for a
    ///    `combined` login, one whose combined count locks;
    /// 2. calls `check` once with the state as it is now;
    /// 3. makes the verdict durable: [`Verdict::Accepted`] through
    ///    [`State::after_success`], and the recovery hash it names burned, only if the
    ///    step, counter or hash is still unused (else [`Settled::Replayed`], counted as a
    ///    wrong code); [`Verdict::Wrong`] through [`State::after_wrong`];
    ///    [`Verdict::NoCode`] changes nothing.
    ///
    /// The file backend does this under the account's lock. A database reserves the
    /// attempt first (one UPDATE that counts it as a failure and refuses when locked),
    /// then accepts through a conditional UPDATE (`... AND last_step < $2`: 0 rows is
    /// `Replayed`), or gives the reservation back for `NoCode`. Either way parallel logins
    /// on any number of hosts accept one code once, and never count more than
    /// `max_failures` wrong codes before the lock.
    fn settle(
        self: Box<Self>,
        record: &Record,
        clock: &dyn Clock,
        lockout: &Lockout,
        check: &mut dyn FnMut(&Current<'_>) -> Result<Verdict, StoreError>,
    ) -> Result<Settled, StoreError>;
}

/// How wrong codes count, from the policy's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    pub max_failures: u32,
    pub lockout_seconds: u64,
    /// Code typed with the password (`combined`): counted apart (see [`State::combined`]).
    pub combined: bool,
}

/// What `check` sees: the account's state at the moment of the decision.
pub struct Current<'a> {
    pub state: &'a State,
    /// The store's time of the decision.
    pub now: u64,
    /// Reads the unused recovery-code hashes, within the decision (only an answer shaped
    /// like a recovery code needs them).
    pub recovery_hashes: &'a dyn Fn() -> Result<Vec<String>, StoreError>,
}

/// The check's answer. The proof of a valid code stays with the caller; the store gets
/// only what it must mark used.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A valid code: mark it used and clear the failures.
    Accepted(Accepted),
    /// A wrong code (or a replayed one, or a wrong recovery code): counted.
    Wrong,
    /// No code at all (NULL, empty, not a code's shape): guesses nothing, not counted.
    NoCode,
}

/// A valid answer and what it uses up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub used: Used,
    /// The audit session that passed, for `remember_seconds`.
    pub session: Option<u32>,
}

/// What a valid answer uses up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Used {
    /// A TOTP step, and how many steps it lay from the store's clock.
    Step { step: u64, clock_offset: i32 },
    /// An HOTP counter (the next one becomes the one after it).
    Counter(u64),
    /// A recovery code, by its stored hash: burned.
    RecoveryHash(String),
}

/// How a login's decision ended in the store.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The verdict's acceptance is durable: the code is used up, the failures cleared.
    Accepted,
    /// The check accepted, but another login used the same step, counter or recovery
    /// code first (a conditional update changed 0 rows); counted as a wrong code.
    Replayed,
    /// Locked until this time; `check` was not called, nothing counted.
    Locked { until: u64 },
    /// The record was removed or replaced since the login began; nothing counted.
    Revoked,
    /// A wrong code, counted durably; `locked_until` when this one locked the account.
    Denied { locked_until: Option<u64> },
    /// No code at all; nothing counted.
    NoCode,
}

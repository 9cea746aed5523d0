//! The fleet store: the accounts of every host in one PostgreSQL database, reached over
//! TLS, one connection per operation and closed before it returns. Replay and lockout are
//! decided by the database: a login reserves its attempt with one UPDATE that refuses a
//! locked account, and is accepted only by a conditional UPDATE (`last_step < $2`), so
//! that parallel logins on any number of hosts use a code once and never count more than
//! `max_failures` wrong ones. Secrets are sealed (seal.rs); lock times are the server's.

#![forbid(unsafe_code)]

mod connect;
mod files;
pub mod schema;
pub mod seal;

use std::path::Path;

use tokio_postgres::{Client, GenericClient, Row};

pub use connect::Settings;
use connect::{describe, Target};
use seal::{SealKey, Sealed};

use crate::clock::Clock;
use crate::otp::{Algorithm, Digits};
use crate::policy::{Backend, Policy};
use crate::secret::SecretKey;
use crate::store::file::not_carried;
use crate::store::record::TokenLabel;
use crate::store::{
    merge_ledger, Attempt, Backends, Begun, Current, FailureCount, FileOnly, Incoming, Kind,
    Lockout, Merged, Record, Settled, State, Store, StoreError, Used, Verdict,
};
use crate::username::UserName;

/// Every backend built in: the file store and the fleet store, the one the policy names.
/// For the helper and the admin command; the module opens [`FileOnly`] and relays.
pub struct AllBackends;

impl Backends for AllBackends {
    fn opens(&self, _policy: &Policy) -> bool {
        true
    }

    fn open(&self, policy: &Policy) -> Result<Box<dyn Store>, StoreError> {
        match &policy.store {
            Backend::File => FileOnly.open(policy),
            Backend::Postgresql(store) => {
                Ok(Box::new(PgStore::open(&Settings::from_policy(store))?))
            }
        }
    }
}

/// An opened fleet store: its settings read and checked, its key in memory. Holds no
/// connection: every operation opens its own and closes it.
pub struct PgStore {
    target: Target,
    key: SealKey,
}

impl PgStore {
    /// Reads the settings' files (CA, client key or password, the sealing key) and checks
    /// them; connects to nothing yet.
    pub fn open(settings: &Settings) -> Result<PgStore, StoreError> {
        Ok(PgStore {
            target: Target::new(settings)?,
            key: SealKey::read(&settings.secret_key_file)?,
        })
    }

    /// The id of the key this host seals with.
    pub fn key_id(&self) -> &str {
        self.key.id()
    }

    /// Creates or upgrades the schema and grants `module_role` a login's rights
    /// (`pam-mfa store init`). Returns the version found before (None: a new store).
    pub fn init(&self, module_role: &str) -> Result<Option<i32>, StoreError> {
        let role = module_role.to_owned();
        self.target
            .run(|mut client| async move { schema::init(&mut client, &role).await })
    }

    /// Re-seals every secret under `new_key` (`pam-mfa store rekey`), each row in its own
    /// conditional UPDATE, so a rekey that stops halfway can run again. Rows sealed under
    /// `new_key` already are left alone; a row under neither key is an error, after the
    /// others are done. Returns how many rows were re-sealed.
    pub fn rekey(&self, new_key: &SealKey) -> Result<usize, StoreError> {
        let old = &self.key;
        self.target.run(|client| async move {
            schema::check(&client).await?;
            let rows = client
                .query(
                    "SELECT account, kind, key_id, nonce, sealed FROM accounts ORDER BY account",
                    &[],
                )
                .await
                .map_err(failed("rekey"))?;
            let mut done = 0;
            let mut foreign = Vec::new();
            for row in rows {
                let user = user_of(&row)?;
                let kind = kind_of(&row)?;
                let sealed = sealed_of(&row);
                if sealed.key_id == new_key.id() {
                    continue;
                }
                if sealed.key_id != old.id() {
                    foreign.push(format!("{user} (key {})", sealed.key_id));
                    continue;
                }
                let secret = old.unseal(&user, kind, &sealed)?;
                let resealed = new_key.seal(&user, kind, &secret)?;
                done += client
                    .execute(
                        "UPDATE accounts SET key_id = $2, nonce = $3, sealed = $4
                         WHERE account = $1 AND nonce = $5",
                        &[
                            &user.as_str(),
                            &resealed.key_id,
                            &resealed.nonce,
                            &resealed.ciphertext,
                            &sealed.nonce,
                        ],
                    )
                    .await
                    .map_err(failed("rekey"))? as usize;
            }
            if !foreign.is_empty() {
                return Err(StoreError::Database {
                    what: "rekey",
                    message: format!(
                        "sealed under neither key, left as they are: {}",
                        foreign.join(", ")
                    ),
                });
            }
            Ok(done)
        })
    }

    /// Runs `work` on a connection to a store whose schema this build reads.
    fn run<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        self.target.run(|client| async move {
            schema::check(&client).await?;
            work(client).await
        })
    }

    /// The nonce of the account's sealed secret when that secret is `proven`'s: what
    /// a self-service change names to be refused if the secret changed meanwhile.
    async fn proven_nonce(
        &self,
        client: &Client,
        name: &str,
        proven: &Record,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let row = client
            .query_opt(SELECT_ACCOUNT, &[&name])
            .await
            .map_err(failed("accounts"))?;
        match row {
            Some(row) if self.record_of(&row)?.same_secret(proven) => Ok(Some(row.get("nonce"))),
            _ => Ok(None),
        }
    }

    fn record_of(&self, row: &Row) -> Result<Record, StoreError> {
        let user = user_of(row)?;
        let kind = kind_of(row)?;
        let secret = self.key.unseal(&user, kind, &sealed_of(row))?;
        let corrupt = |message: String| StoreError::Database {
            what: "accounts",
            message: format!("{user}: {message}"),
        };
        let algorithm: String = row.get("algorithm");
        let digits: i16 = row.get("digits");
        let period: i32 = row.get("period");
        let window: i32 = row.get("code_window");
        let label = |name: &str| -> Result<Option<TokenLabel>, StoreError> {
            match row.get::<_, Option<String>>(name) {
                Some(text) => TokenLabel::parse(&text)
                    .map(Some)
                    .ok_or_else(|| corrupt(format!("{name} is not a token label"))),
                None => Ok(None),
            }
        };
        Ok(Record {
            kind,
            secret: SecretKey::from_bytes(secret)
                .map_err(|e| corrupt(format!("the secret: {e}")))?,
            algorithm: Algorithm::from_name(&algorithm)
                .ok_or_else(|| corrupt(format!("algorithm {algorithm:?}")))?,
            digits: u8::try_from(digits)
                .ok()
                .and_then(Digits::new)
                .ok_or_else(|| corrupt(format!("digits {digits}")))?,
            period: u32::try_from(period)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| corrupt(format!("period {period}")))?,
            window: u32::try_from(window).map_err(|_| corrupt(format!("window {window}")))?,
            serial: label("serial")?,
            manufacturer: label("manufacturer")?,
        })
    }
}

impl Store for PgStore {
    fn record(&self, user: &UserName) -> Result<Option<Record>, StoreError> {
        let name = user.as_str().to_owned();
        let row = self.run(|client| async move {
            client
                .query_opt(SELECT_ACCOUNT, &[&name])
                .await
                .map_err(failed("accounts"))
        })?;
        row.map(|row| self.record_of(&row)).transpose()
    }

    fn is_enrolled(&self, user: &UserName) -> Result<bool, StoreError> {
        let name = user.as_str().to_owned();
        self.run(|client| async move {
            let row = client
                .query_opt("SELECT 1 FROM accounts WHERE account = $1", &[&name])
                .await
                .map_err(failed("accounts"))?;
            Ok(row.is_some())
        })
    }

    fn enrolled_users(&self) -> Result<Vec<UserName>, StoreError> {
        let names: Vec<String> = self.run(|client| async move {
            let rows = client
                .query("SELECT account FROM accounts ORDER BY account", &[])
                .await
                .map_err(failed("accounts"))?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })?;
        let mut users: Vec<UserName> = names
            .iter()
            .filter_map(|n| UserName::parse(n).ok())
            .collect();
        users.sort();
        Ok(users)
    }

    fn peek_state(&self, user: &UserName) -> Result<Option<State>, StoreError> {
        let name = user.as_str().to_owned();
        self.run(|client| async move { read_state(&client, &name).await })
    }

    fn recovery_hashes(&self, user: &UserName) -> Result<Vec<String>, StoreError> {
        let name = user.as_str().to_owned();
        self.run(|client| async move { unused_hashes(&client, &name).await })
    }

    fn enroll(
        &self,
        user: &UserName,
        record: &Record,
        state: State,
        recovery_hashes: &[String],
        replace: bool,
    ) -> Result<(), StoreError> {
        let sealed = self.key.seal(user, record.kind, record.secret.as_bytes())?;
        self.run(|mut client| async move {
            let name = user.as_str();
            let transaction = client.transaction().await.map_err(failed("enroll"))?;
            let old_row = transaction
                .query_opt(&format!("{SELECT_ACCOUNT} FOR UPDATE"), &[&name])
                .await
                .map_err(failed("enroll"))?;
            if old_row.is_some() && !replace {
                return Err(StoreError::AlreadyEnrolled {
                    user: name.to_owned(),
                });
            }
            // Same HOTP token again: its counter never goes back. A secret that does
            // not open is being replaced, and keeps no ledger.
            let same_secret = match &old_row {
                Some(row) => self
                    .record_of(row)
                    .is_ok_and(|old| old.kind == record.kind && old.secret.same_as(&record.secret)),
                None => false,
            };
            let old = read_state_for_update(&transaction, name)
                .await?
                .unwrap_or_default();
            let mut state = state;
            if record.kind == Kind::Totp {
                state.last_step = state.last_step.max(old.last_step);
            }
            if record.kind == Kind::Hotp && same_secret {
                state.next_counter = state.next_counter.max(old.next_counter);
            }
            write_account(&transaction, name, record, &sealed, true, "enroll").await?;
            write_state(&transaction, name, &state).await?;
            write_hashes(&transaction, name, recovery_hashes).await?;
            transaction.commit().await.map_err(failed("enroll"))
        })
    }

    fn replace_recovery_hashes(
        &self,
        user: &UserName,
        hashes: &[String],
    ) -> Result<(), StoreError> {
        self.run(|mut client| async move {
            let transaction = client.transaction().await.map_err(failed("recovery"))?;
            write_hashes(&transaction, user.as_str(), hashes).await?;
            transaction.commit().await.map_err(failed("recovery"))
        })
    }

    fn rotate(
        &self,
        user: &UserName,
        proven: &Record,
        record: &Record,
        state: State,
        recovery_hashes: &[String],
    ) -> Result<bool, StoreError> {
        let sealed = self.key.seal(user, record.kind, record.secret.as_bytes())?;
        let last_step = state.last_step.map(big).transpose()?;
        let last_success = big(state.last_success)?;
        self.run(|client| async move {
            let name = user.as_str();
            let Some(nonce) = self.proven_nonce(&client, name, proven).await? else {
                return Ok(false);
            };
            // The function checks the nonce again under the row's lock: one atomic step.
            let row = client
                .query_one(
                    "SELECT pam_mfa_self_rotate($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                         $11, $12, $13, $14, $15, $16)",
                    &[
                        &name,
                        &nonce,
                        &record.kind.name(),
                        &record.algorithm.name(),
                        &i16::from(record.digits.get()),
                        &int(record.period)?,
                        &int(record.window)?,
                        &record.serial.as_ref().map(TokenLabel::as_str),
                        &record.manufacturer.as_ref().map(TokenLabel::as_str),
                        &sealed.key_id,
                        &sealed.nonce,
                        &sealed.ciphertext,
                        &last_step,
                        &state.clock_offset,
                        &last_success,
                        &recovery_hashes,
                    ],
                )
                .await
                .map_err(failed("self-service"))?;
            Ok(row.get::<_, bool>(0))
        })
    }

    fn renew_recovery(
        &self,
        user: &UserName,
        proven: &Record,
        hashes: &[String],
    ) -> Result<bool, StoreError> {
        self.run(|client| async move {
            let name = user.as_str();
            let Some(nonce) = self.proven_nonce(&client, name, proven).await? else {
                return Ok(false);
            };
            let row = client
                .query_one(
                    "SELECT pam_mfa_self_recovery($1, $2, $3)",
                    &[&name, &nonce, &hashes],
                )
                .await
                .map_err(failed("self-service"))?;
            Ok(row.get::<_, bool>(0))
        })
    }

    fn merge(&self, user: &UserName, incoming: &Incoming<'_>) -> Result<Merged, StoreError> {
        let sealed = self.key.seal(
            user,
            incoming.record.kind,
            incoming.record.secret.as_bytes(),
        )?;
        self.run(|mut client| async move {
            let name = user.as_str();
            let transaction = client.transaction().await.map_err(failed("migrate"))?;
            // The account's row locked first, then its state row: enroll, remove and the
            // self-service functions wait for this transaction, and so do the logins'
            // UPDATEs of the state, which then see the merged row.
            let row = transaction
                .query_opt(&format!("{SELECT_ACCOUNT} FOR UPDATE"), &[&name])
                .await
                .map_err(failed("migrate"))?;
            let Some(row) = row else {
                if write_account(
                    &transaction,
                    name,
                    incoming.record,
                    &sealed,
                    false,
                    "migrate",
                )
                .await?
                    == 0
                {
                    return Err(StoreError::Database {
                        what: "migrate",
                        message: format!("{name} was enrolled meanwhile; run the migrate again"),
                    });
                }
                write_state(&transaction, name, incoming.ledger).await?;
                write_hashes(&transaction, name, incoming.unused).await?;
                transaction.commit().await.map_err(failed("migrate"))?;
                return Ok(Merged::Added {
                    codes: incoming.unused.len(),
                });
            };
            if !self.record_of(&row)?.same_secret(incoming.record) {
                return Ok(Merged::Conflict);
            }
            // A state row may be missing (an admin's enrollment writes one; be sure).
            ensure_state_row(&transaction, name).await?;
            let current = read_state_for_update(&transaction, name)
                .await?
                .unwrap_or_default();
            let merged = merge_ledger(&current, incoming.ledger);
            let not_carried =
                not_carried(incoming.unused, &unused_hashes(&transaction, name).await?);
            // Only ever from unused to used: a code burned on any host, or by a login
            // here, stays burned.
            let burned = transaction
                .execute(
                    "UPDATE recovery SET used = true
                     WHERE account = $1 AND NOT used AND hash = ANY($2)",
                    &[&name, &incoming.burned],
                )
                .await
                .map_err(failed("migrate"))?;
            if merged != current {
                transaction
                    .execute(
                        "UPDATE state SET last_step = $2, next_counter = $3, clock_offset = $4,
                             last_success = $5
                         WHERE account = $1",
                        &[
                            &name,
                            &merged.last_step.map(big).transpose()?,
                            &big(merged.next_counter)?,
                            &merged.clock_offset,
                            &big(merged.last_success)?,
                        ],
                    )
                    .await
                    .map_err(failed("migrate"))?;
            }
            transaction.commit().await.map_err(failed("migrate"))?;
            if merged == current && burned == 0 {
                return Ok(Merged::Unchanged { not_carried });
            }
            Ok(Merged::Merged {
                burned: burned as usize,
                not_carried,
            })
        })
    }

    fn remove(&self, user: &UserName) -> Result<bool, StoreError> {
        self.run(|mut client| async move {
            let name = user.as_str();
            let transaction = client.transaction().await.map_err(failed("remove"))?;
            let mut removed = 0;
            for table in ["recovery", "accounts", "state"] {
                removed += transaction
                    .execute(&format!("DELETE FROM {table} WHERE account = $1"), &[&name])
                    .await
                    .map_err(failed("remove"))?;
            }
            transaction.commit().await.map_err(failed("remove"))?;
            Ok(removed > 0)
        })
    }

    fn unlock(&self, user: &UserName, _now: u64) -> Result<bool, StoreError> {
        self.run(|client| async move {
            let name = user.as_str();
            let enrolled = client
                .query_opt("SELECT 1 FROM accounts WHERE account = $1", &[&name])
                .await
                .map_err(failed("unlock"))?
                .is_some();
            if enrolled {
                // A row that reads back wrong cannot be here: the columns are typed.
                client
                    .execute(
                        "UPDATE state SET failures = 0, failure_window_start = 0,
                             locked_until = 0, combined_failures = 0, combined_window_start = 0
                         WHERE account = $1",
                        &[&name],
                    )
                    .await
                    .map_err(failed("unlock"))?;
            }
            Ok(enrolled)
        })
    }

    fn begin<'s>(&'s self, user: &UserName) -> Result<Box<dyn Attempt + 's>, StoreError> {
        let state = self.peek_state(user)?.unwrap_or_default();
        Ok(Box::new(PgAttempt {
            store: self,
            user: user.clone(),
            state,
        }))
    }

    /// One connection for both: a login's first look costs one connect, TLS handshake
    /// and authentication, not two (the decision after the prompt takes another).
    fn record_and_begin<'s>(&'s self, user: &UserName) -> Result<Option<Begun<'s>>, StoreError> {
        let name = user.as_str().to_owned();
        let found = self.run(|client| async move {
            let Some(row) = client
                .query_opt(SELECT_ACCOUNT, &[&name])
                .await
                .map_err(failed("accounts"))?
            else {
                return Ok(None);
            };
            let state = read_state(&client, &name).await?;
            Ok(Some((row, state)))
        })?;
        let Some((row, state)) = found else {
            return Ok(None);
        };
        let attempt: Box<dyn Attempt + 's> = Box::new(PgAttempt {
            store: self,
            user: user.clone(),
            state: state.unwrap_or_default(),
        });
        Ok(Some((self.record_of(&row)?, attempt)))
    }

    fn count_failure(
        &self,
        user: &UserName,
        _clock: &dyn Clock,
        lockout: &Lockout,
    ) -> Result<Settled, StoreError> {
        let name = user.as_str().to_owned();
        let lockout = *lockout;
        self.run(|client| async move {
            ensure_state_row(&client, &name).await?;
            match reserve(&client, &name, &lockout).await? {
                Reserved::Refused { until } => Ok(Settled::Locked { until }),
                Reserved::Counted { state, .. } => {
                    let locked_until = charge(&client, &name, &lockout, &state).await?;
                    Ok(Settled::Denied { locked_until })
                }
            }
        })
    }
}

/// A login between its first look at the store and its decision: only the state it saw.
struct PgAttempt<'s> {
    store: &'s PgStore,
    user: UserName,
    state: State,
}

impl Attempt for PgAttempt<'_> {
    fn state(&self) -> &State {
        &self.state
    }

    fn settle(
        self: Box<Self>,
        record: &Record,
        _clock: &dyn Clock,
        lockout: &Lockout,
        check: &mut dyn FnMut(&Current<'_>) -> Result<Verdict, StoreError>,
    ) -> Result<Settled, StoreError> {
        let store = self.store;
        let name = self.user.as_str().to_owned();
        let lockout = *lockout;
        store.run(|client| async move {
            // The secret the user answered for must still be the account's: removed or
            // replaced while the user typed refuses, and nothing is counted.
            let Some(row) = client
                .query_opt(SELECT_ACCOUNT, &[&name])
                .await
                .map_err(failed("accounts"))?
            else {
                return Ok(Settled::Revoked);
            };
            let current = store.record_of(&row)?;
            if !current.same_secret(record) {
                return Ok(Settled::Revoked);
            }
            let nonce: Vec<u8> = row.get("nonce");
            ensure_state_row(&client, &name).await?;
            let (state, now) = match reserve(&client, &name, &lockout).await? {
                Reserved::Refused { until } => return Ok(Settled::Locked { until }),
                Reserved::Counted { state, now } => (state, now),
            };
            // Read now, inside the decision: the conditional UPDATE below still decides.
            let hashes = unused_hashes(&client, &name).await?;
            let read_hashes = move || Ok(hashes.clone());
            let verdict = check(&Current {
                state: &state,
                now,
                recovery_hashes: &read_hashes,
            })?;
            match verdict {
                Verdict::Accepted(accepted) => {
                    if accept(
                        &client,
                        &name,
                        &nonce,
                        &accepted.used,
                        accepted.session,
                        now,
                    )
                    .await?
                    {
                        return Ok(Settled::Accepted);
                    }
                    let still: Option<Row> = client
                        .query_opt(
                            "SELECT 1 FROM accounts WHERE account = $1 AND nonce = $2",
                            &[&name, &nonce],
                        )
                        .await
                        .map_err(failed("accounts"))?;
                    if still.is_none() {
                        return Ok(Settled::Revoked);
                    }
                    // Used by another login first: a wrong code, already counted.
                    charge(&client, &name, &lockout, &state).await?;
                    Ok(Settled::Replayed)
                }
                Verdict::Wrong => {
                    let locked_until = charge(&client, &name, &lockout, &state).await?;
                    Ok(Settled::Denied { locked_until })
                }
                Verdict::NoCode => {
                    give_back(&client, &name, &lockout, &state).await?;
                    Ok(Settled::NoCode)
                }
            }
        })
    }
}

const SELECT_ACCOUNT: &str = "SELECT account, kind, algorithm, digits, period, code_window,
    serial, manufacturer, key_id, nonce, sealed FROM accounts WHERE account = $1";

const STATE_COLUMNS: &str = "last_step, next_counter, failures, failure_window_start,
    locked_until, last_success, verified_session, verified_at, combined_failures,
    combined_window_start, clock_offset";

/// The database's clock, in Unix seconds, as every lock time is taken.
const DB_NOW: &str = "(SELECT extract(epoch FROM now())::bigint AS t) n";

/// The outcome of reserving an attempt.
enum Reserved {
    /// Locked (or as many attempts in flight as may fail): nothing counted.
    Refused { until: u64 },
    /// Counted as a failure until decided; the state after counting, and the
    /// database's time.
    Counted { state: State, now: u64 },
}

/// Counts the attempt as a wrong code in one UPDATE that refuses when the account is
/// locked or its count is full, so that no more than `max_failures` attempts are ever
/// in flight or failed, over every host.
async fn reserve(client: &Client, name: &str, lockout: &Lockout) -> Result<Reserved, StoreError> {
    let (count, start) = if lockout.combined {
        ("combined_failures", "combined_window_start")
    } else {
        ("failures", "failure_window_start")
    };
    // A count whose window is over starts again.
    let fresh = format!("(s.{count} = 0 OR n.t - s.{start} >= $3)");
    let sql = format!(
        "UPDATE state s SET
             {count} = CASE WHEN {fresh} THEN 1 ELSE s.{count} + 1 END,
             {start} = CASE WHEN {fresh} THEN n.t ELSE s.{start} END
         FROM {DB_NOW}
         WHERE s.account = $1 AND s.locked_until <= n.t
           AND (CASE WHEN {fresh} THEN 0 ELSE s.{count} END) < $2::bigint
         RETURNING {STATE_COLUMNS_S}, n.t",
        STATE_COLUMNS_S = prefixed_state_columns("s")
    );
    let row = client
        .query_opt(
            &sql,
            &[
                &name,
                &i64::from(lockout.max_failures),
                &big(lockout.lockout_seconds)?,
            ],
        )
        .await
        .map_err(failed("state"))?;
    if let Some(row) = row {
        let now: i64 = row.get("t");
        return Ok(Reserved::Counted {
            state: state_of(&row)?,
            now: unsigned(now)?,
        });
    }
    // Refused: say until when. A full count without a lock yet is a lock in the making.
    let state = read_state(client, name).await?.unwrap_or_default();
    let until = if state.locked_until > 0 && !lockout.combined {
        state.locked_until
    } else {
        let window = if lockout.combined {
            state.combined.window_start
        } else {
            state.failure_window_start
        };
        state
            .locked_until
            .max(window.saturating_add(lockout.lockout_seconds))
    };
    Ok(Reserved::Refused { until })
}

/// A reserved attempt that failed stays counted; the one that fills the count locks the
/// account from the database's now. Returns the lock's end when this one locked.
async fn charge(
    client: &Client,
    name: &str,
    lockout: &Lockout,
    reserved: &State,
) -> Result<Option<u64>, StoreError> {
    if lockout.combined {
        // The combined count locks by itself, only that way in.
        return Ok(reserved.combined.locked_until(
            lockout.max_failures,
            lockout.lockout_seconds,
            reserved.combined.window_start,
        ));
    }
    let row = client
        .query_opt(
            &format!(
                "UPDATE state SET locked_until = n.t + $3, failures = 0, failure_window_start = 0
                 FROM {DB_NOW}
                 WHERE account = $1 AND failures >= $2::bigint
                 RETURNING locked_until"
            ),
            &[
                &name,
                &i64::from(lockout.max_failures),
                &big(lockout.lockout_seconds)?,
            ],
        )
        .await
        .map_err(failed("state"))?;
    row.map(|r| unsigned(r.get::<_, i64>(0))).transpose()
}

/// An attempt that brought no code at all guessed nothing: its reservation is given
/// back, if its count's window is still the one it was counted in.
async fn give_back(
    client: &Client,
    name: &str,
    lockout: &Lockout,
    reserved: &State,
) -> Result<(), StoreError> {
    let (count, start, window) = if lockout.combined {
        (
            "combined_failures",
            "combined_window_start",
            reserved.combined.window_start,
        )
    } else {
        (
            "failures",
            "failure_window_start",
            reserved.failure_window_start,
        )
    };
    client
        .execute(
            &format!(
                "UPDATE state SET {count} = {count} - 1
                 WHERE account = $1 AND {count} > 0 AND {start} = $2"
            ),
            &[&name, &big(window)?],
        )
        .await
        .map_err(failed("state"))?;
    Ok(())
}

/// Accepts the answer only if what it uses is still unused (a step after the last one,
/// a counter not behind the next, a recovery code not burned) and the secret is still
/// the one checked (its nonce): one conditional UPDATE decides, 0 rows is a replay.
async fn accept(
    client: &Client,
    name: &str,
    nonce: &[u8],
    used: &Used,
    session: Option<u32>,
    now: u64,
) -> Result<bool, StoreError> {
    let secret_unchanged =
        "EXISTS (SELECT 1 FROM accounts a WHERE a.account = $1 AND a.nonce = $2)";
    let success = "failures = 0, failure_window_start = 0, locked_until = 0,
        combined_failures = 0, combined_window_start = 0, last_success = $3,
        verified_session = $4, verified_at = $3";
    let now = big(now)?;
    let session = session.map(i64::from);
    let changed = match used {
        Used::Step { step, clock_offset } => {
            client
                .execute(
                    &format!(
                        "UPDATE state SET {success}, last_step = $5, clock_offset = $6
                     WHERE account = $1 AND (last_step IS NULL OR last_step < $5)
                       AND {secret_unchanged}"
                    ),
                    &[&name, &nonce, &now, &session, &big(*step)?, clock_offset],
                )
                .await
        }
        Used::Counter(counter) => {
            client
                .execute(
                    &format!(
                        "UPDATE state SET {success}, next_counter = $5 + 1
                     WHERE account = $1 AND next_counter <= $5 AND {secret_unchanged}"
                    ),
                    &[&name, &nonce, &now, &session, &big(*counter)?],
                )
                .await
        }
        Used::RecoveryHash(hash) => {
            let burned = client
                .execute(
                    &format!(
                        "UPDATE recovery SET used = true
                         WHERE account = $1 AND hash = $3 AND NOT used AND {secret_unchanged}"
                    ),
                    &[&name, &nonce, hash],
                )
                .await
                .map_err(failed("recovery"))?;
            if burned == 0 {
                return Ok(false);
            }
            client
                .execute(
                    &format!(
                        "UPDATE state SET {success} WHERE account = $1 AND {secret_unchanged}"
                    ),
                    &[&name, &nonce, &now, &session],
                )
                .await
        }
    }
    .map_err(failed("state"))?;
    Ok(changed == 1)
}

/// Writes the account's row: replacing an existing one when `replace`, else leaving it
/// as it is. The number of rows written (0: there was one, and `replace` was false).
/// `what` names the operation in an error.
async fn write_account(
    client: &impl GenericClient,
    name: &str,
    record: &Record,
    sealed: &Sealed,
    replace: bool,
    what: &'static str,
) -> Result<u64, StoreError> {
    let on_conflict = if replace {
        "DO UPDATE SET kind = $2, algorithm = $3, digits = $4, period = $5, code_window = $6,
             serial = $7, manufacturer = $8, key_id = $9, nonce = $10, sealed = $11,
             enrolled_at = now()"
    } else {
        "DO NOTHING"
    };
    client
        .execute(
            &format!(
                "INSERT INTO accounts (account, kind, algorithm, digits, period, code_window,
                     serial, manufacturer, key_id, nonce, sealed)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (account) {on_conflict}"
            ),
            &[
                &name,
                &record.kind.name(),
                &record.algorithm.name(),
                &i16::from(record.digits.get()),
                &int(record.period)?,
                &int(record.window)?,
                &record.serial.as_ref().map(TokenLabel::as_str),
                &record.manufacturer.as_ref().map(TokenLabel::as_str),
                &sealed.key_id,
                &sealed.nonce,
                &sealed.ciphertext,
            ],
        )
        .await
        .map_err(failed(what))
}

async fn ensure_state_row(client: &impl GenericClient, name: &str) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO state (account) VALUES ($1) ON CONFLICT (account) DO NOTHING",
            &[&name],
        )
        .await
        .map_err(failed("state"))?;
    Ok(())
}

async fn read_state(client: &impl GenericClient, name: &str) -> Result<Option<State>, StoreError> {
    client
        .query_opt(
            &format!("SELECT {STATE_COLUMNS} FROM state WHERE account = $1"),
            &[&name],
        )
        .await
        .map_err(failed("state"))?
        .map(|row| state_of(&row))
        .transpose()
}

async fn read_state_for_update(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<State>, StoreError> {
    client
        .query_opt(
            &format!("SELECT {STATE_COLUMNS} FROM state WHERE account = $1 FOR UPDATE"),
            &[&name],
        )
        .await
        .map_err(failed("state"))?
        .map(|row| state_of(&row))
        .transpose()
}

async fn write_state(
    client: &impl GenericClient,
    name: &str,
    state: &State,
) -> Result<(), StoreError> {
    let last_step = state.last_step.map(big).transpose()?;
    let session = state.verified_session.map(i64::from);
    client
        .execute(
            &format!(
                "INSERT INTO state (account, {STATE_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (account) DO UPDATE SET ({STATE_COLUMNS}) =
                     ($2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ),
            &[
                &name,
                &last_step,
                &big(state.next_counter)?,
                &int(state.failures)?,
                &big(state.failure_window_start)?,
                &big(state.locked_until)?,
                &big(state.last_success)?,
                &session,
                &big(state.verified_at)?,
                &int(state.combined.failures)?,
                &big(state.combined.window_start)?,
                &state.clock_offset,
            ],
        )
        .await
        .map_err(failed("state"))?;
    Ok(())
}

async fn unused_hashes(client: &impl GenericClient, name: &str) -> Result<Vec<String>, StoreError> {
    let rows = client
        .query(
            "SELECT hash FROM recovery WHERE account = $1 AND NOT used ORDER BY hash",
            &[&name],
        )
        .await
        .map_err(failed("recovery"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

async fn write_hashes(
    client: &impl GenericClient,
    name: &str,
    hashes: &[String],
) -> Result<(), StoreError> {
    client
        .execute("DELETE FROM recovery WHERE account = $1", &[&name])
        .await
        .map_err(failed("recovery"))?;
    for hash in hashes {
        client
            .execute(
                "INSERT INTO recovery (account, hash) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&name, hash],
            )
            .await
            .map_err(failed("recovery"))?;
    }
    Ok(())
}

fn state_of(row: &Row) -> Result<State, StoreError> {
    let session: Option<i64> = row.get("verified_session");
    Ok(State {
        last_step: row
            .get::<_, Option<i64>>("last_step")
            .map(unsigned)
            .transpose()?,
        next_counter: unsigned(row.get("next_counter"))?,
        failures: count(row.get("failures"))?,
        failure_window_start: unsigned(row.get("failure_window_start"))?,
        locked_until: unsigned(row.get("locked_until"))?,
        last_success: unsigned(row.get("last_success"))?,
        verified_session: session.and_then(|s| u32::try_from(s).ok()),
        verified_at: unsigned(row.get("verified_at"))?,
        combined: FailureCount {
            failures: count(row.get("combined_failures"))?,
            window_start: unsigned(row.get("combined_window_start"))?,
        },
        clock_offset: row.get("clock_offset"),
    })
}

fn prefixed_state_columns(alias: &str) -> String {
    STATE_COLUMNS
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn user_of(row: &Row) -> Result<UserName, StoreError> {
    let name: String = row.get("account");
    UserName::parse(&name).map_err(|e| StoreError::Database {
        what: "accounts",
        message: format!("{name:?}: {e}"),
    })
}

fn kind_of(row: &Row) -> Result<Kind, StoreError> {
    match row.get::<_, &str>("kind") {
        "totp" => Ok(Kind::Totp),
        "hotp" => Ok(Kind::Hotp),
        other => Err(StoreError::Database {
            what: "accounts",
            message: format!("kind {other:?}"),
        }),
    }
}

fn sealed_of(row: &Row) -> Sealed {
    Sealed {
        key_id: row.get("key_id"),
        nonce: row.get("nonce"),
        ciphertext: row.get("sealed"),
    }
}

fn failed(what: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::Database {
        what,
        message: describe(&e),
    }
}

fn out_of_range(value: impl std::fmt::Display) -> StoreError {
    StoreError::Database {
        what: "state",
        message: format!("{value} is out of range"),
    }
}

fn big(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| out_of_range(value))
}

fn int(value: u32) -> Result<i32, StoreError> {
    i32::try_from(value).map_err(|_| out_of_range(value))
}

fn unsigned(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| out_of_range(value))
}

fn count(value: i32) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| out_of_range(value))
}

/// The key file a new key is read from for `store rekey`, checked like the current one.
pub fn read_key(path: &Path) -> Result<SealKey, StoreError> {
    SealKey::read(path)
}

//! The fleet store's tables, created or upgraded by `pam-mfa store init` (versioned,
//! idempotent), and the least privilege the module's role gets on them.

#![forbid(unsafe_code)]

use tokio_postgres::Client;

use super::connect::describe;
use crate::store::StoreError;

/// The schema this build reads and writes. Version 2 added the self-service functions
/// (pam_mfa_self_rotate, pam_mfa_self_recovery): a host refuses a version 1 store until
/// `store init` upgrades it.
pub const VERSION: i32 = 2;

/// Version 2, every statement safe to run again (on nothing, or on version 1).
const CREATE: &str = "
CREATE TABLE IF NOT EXISTS pam_mfa_schema (
    version integer NOT NULL
);
-- One row per enrolled account: how its codes are made, and its secret sealed
-- (XChaCha20-Poly1305 under the key named by key_id; the account and kind are the
-- associated data).
CREATE TABLE IF NOT EXISTS accounts (
    account      text PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('totp', 'hotp')),
    algorithm    text NOT NULL,
    digits       smallint NOT NULL,
    period       integer NOT NULL,
    code_window  integer NOT NULL,
    serial       text,
    manufacturer text,
    key_id       text NOT NULL,
    nonce        bytea NOT NULL,
    sealed       bytea NOT NULL,
    enrolled_at  timestamptz NOT NULL DEFAULT now()
);
-- What logins remember: the replay ledger, the failure counts and the lock. Times are
-- Unix seconds of the database's clock. A row may exist without an account (wrong first
-- codes of an enrollment at login count too).
CREATE TABLE IF NOT EXISTS state (
    account               text PRIMARY KEY,
    last_step             bigint,
    next_counter          bigint NOT NULL DEFAULT 0,
    failures              integer NOT NULL DEFAULT 0,
    failure_window_start  bigint NOT NULL DEFAULT 0,
    locked_until          bigint NOT NULL DEFAULT 0,
    last_success          bigint NOT NULL DEFAULT 0,
    verified_session      bigint,
    verified_at           bigint NOT NULL DEFAULT 0,
    combined_failures     integer NOT NULL DEFAULT 0,
    combined_window_start bigint NOT NULL DEFAULT 0,
    clock_offset          integer
);
-- Argon2id hashes of recovery codes; a used one stays, marked, so it never works again.
CREATE TABLE IF NOT EXISTS recovery (
    account text NOT NULL REFERENCES accounts (account) ON DELETE CASCADE,
    hash    text NOT NULL,
    used    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (account, hash)
);
-- Self-service (pam-mfa-user through a host's helper): the host role may replace the
-- secret or the recovery codes of an account that has one, and only while its secret is
-- still the one the user proved (its nonce), nothing else: no new account, no removal.
-- Owned by the admin role, run with its rights; tables found only in its schemas.
CREATE OR REPLACE FUNCTION pam_mfa_self_rotate(
    p_account text, p_proven_nonce bytea, p_kind text, p_algorithm text,
    p_digits smallint, p_period integer, p_window integer, p_serial text,
    p_manufacturer text, p_key_id text, p_nonce bytea, p_sealed bytea, p_last_step bigint,
    p_clock_offset integer, p_last_success bigint, p_hashes text[]) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = \"$user\", public, pg_temp AS $f$
BEGIN
    UPDATE accounts SET kind = p_kind, algorithm = p_algorithm, digits = p_digits,
        period = p_period, code_window = p_window, serial = p_serial,
        manufacturer = p_manufacturer,
        key_id = p_key_id, nonce = p_nonce, sealed = p_sealed, enrolled_at = now()
    WHERE account = p_account AND nonce = p_proven_nonce;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- A new ledger, but a TOTP step never goes back.
    INSERT INTO state (account, last_step, clock_offset, last_success)
    VALUES (p_account, p_last_step, p_clock_offset, p_last_success)
    ON CONFLICT (account) DO UPDATE SET
        last_step = GREATEST(state.last_step, p_last_step), next_counter = 0,
        failures = 0, failure_window_start = 0, locked_until = 0,
        last_success = p_last_success, verified_session = NULL, verified_at = 0,
        combined_failures = 0, combined_window_start = 0, clock_offset = p_clock_offset;
    DELETE FROM recovery WHERE account = p_account;
    INSERT INTO recovery (account, hash)
    SELECT p_account, h FROM unnest(p_hashes) AS h ON CONFLICT DO NOTHING;
    RETURN true;
END $f$;
CREATE OR REPLACE FUNCTION pam_mfa_self_recovery(
    p_account text, p_proven_nonce bytea, p_hashes text[]) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = \"$user\", public, pg_temp AS $f$
BEGIN
    PERFORM 1 FROM accounts WHERE account = p_account AND nonce = p_proven_nonce
        FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM recovery WHERE account = p_account;
    INSERT INTO recovery (account, hash)
    SELECT p_account, h FROM unnest(p_hashes) AS h ON CONFLICT DO NOTHING;
    RETURN true;
END $f$;
REVOKE ALL ON FUNCTION pam_mfa_self_rotate(text, bytea, text, text, smallint, integer,
    integer, text, text, text, bytea, bytea, bigint, integer, bigint, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pam_mfa_self_recovery(text, bytea, text[]) FROM PUBLIC;
";

/// Creates or upgrades the schema and grants `module_role` what a login needs, in one
/// transaction. Returns the version it found (None: a new store).
pub async fn init(client: &mut Client, module_role: &str) -> Result<Option<i32>, StoreError> {
    let role = quote_role(module_role)?;
    let failed = |e: tokio_postgres::Error| StoreError::Database {
        what: "store init",
        message: describe(&e),
    };
    let transaction = client.transaction().await.map_err(failed)?;
    // One init at a time: a second one waits here, then finds the version written.
    transaction
        .batch_execute("SELECT pg_advisory_xact_lock(7310450901)")
        .await
        .map_err(failed)?;
    transaction.batch_execute(CREATE).await.map_err(failed)?;
    let found: Option<i32> = transaction
        .query_opt("SELECT max(version) FROM pam_mfa_schema", &[])
        .await
        .map_err(failed)?
        .and_then(|row| row.get(0));
    match found {
        Some(v) if v > VERSION => {
            return Err(StoreError::Database {
                what: "store init",
                message: format!(
                    "the store has schema version {v}, newer than this pam-mfa's {VERSION}: upgrade pam-mfa"
                ),
            })
        }
        Some(_) => {
            transaction
                .execute("UPDATE pam_mfa_schema SET version = $1", &[&VERSION])
                .await
                .map_err(failed)?;
        }
        None => {
            transaction
                .execute("INSERT INTO pam_mfa_schema (version) VALUES ($1)", &[&VERSION])
                .await
                .map_err(failed)?;
        }
    }
    let grants = format!(
        "GRANT SELECT ON pam_mfa_schema, accounts TO {role};
         GRANT SELECT, INSERT, UPDATE ON state TO {role};
         GRANT SELECT, UPDATE (used) ON recovery TO {role};
         GRANT EXECUTE ON FUNCTION pam_mfa_self_rotate(text, bytea, text, text, smallint,
             integer, integer, text, text, text, bytea, bytea, bigint, integer, bigint,
             text[]) TO {role};
         GRANT EXECUTE ON FUNCTION pam_mfa_self_recovery(text, bytea, text[]) TO {role};"
    );
    transaction.batch_execute(&grants).await.map_err(failed)?;
    transaction.commit().await.map_err(failed)?;
    Ok(found)
}

/// Refuses a store whose schema this build does not know (missing, or newer).
pub async fn check(client: &Client) -> Result<(), StoreError> {
    let row = client
        .query_opt("SELECT max(version) FROM pam_mfa_schema", &[])
        .await
        .map_err(|e| StoreError::Database {
            what: "schema",
            message: format!("{} (run pam-mfa store init)", describe(&e)),
        })?;
    match row.and_then(|r| r.get::<_, Option<i32>>(0)) {
        Some(VERSION) => Ok(()),
        other => Err(StoreError::Database {
            what: "schema",
            message: format!(
                "the store has schema version {}, this pam-mfa reads {VERSION} (run pam-mfa store init)",
                other.map_or("none".to_owned(), |v| v.to_string())
            ),
        }),
    }
}

/// A role name as an SQL identifier: only the plain names roles are given (letters,
/// digits, `_`), so that it can be put into a GRANT as it is.
fn quote_role(name: &str) -> Result<String, StoreError> {
    let plain = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if plain {
        Ok(format!("\"{name}\""))
    } else {
        Err(StoreError::Database {
            what: "store init",
            message: format!("{name:?} is not a plain role name (a-z, 0-9, _)"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_role_names_go_into_a_grant() {
        assert_eq!(quote_role("pam_mfa_module").unwrap(), "\"pam_mfa_module\"");
        for bad in ["", "x\"; DROP TABLE accounts; --", "Module", "1role", "a b"] {
            assert!(quote_role(bad).is_err(), "{bad}");
        }
    }
}

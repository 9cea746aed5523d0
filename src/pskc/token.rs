//! One key package as pam-mfa can enroll it: the HOTP and TOTP profiles of RFC 6030 mapped
//! onto a record, or the reason the token cannot be honoured. A token is taken whole or
//! not at all: any parameter pam-mfa cannot keep is a skip, never a guess.

#![forbid(unsafe_code)]

use zeroize::Zeroizing;

use super::crypto::decode_base64;
use super::parse::{Key, Package, Value};
use super::{Opener, PskcError};
use crate::clock::Date;
use crate::otp::{Algorithm, Digits};
use crate::secret::{SecretError, SecretKey, MAX_KEY_BYTES, MIN_KEY_BYTES};
use crate::store::record::{TokenLabel, DEFAULT_PERIOD};
use crate::store::{Kind, Record};

/// One key package of a document.
#[derive(Debug)]
pub struct Token {
    /// `<DeviceInfo><SerialNo>`.
    pub serial: Option<String>,
    /// `<DeviceInfo><Manufacturer>`.
    pub manufacturer: Option<String>,
    /// The `Id` of its `<Key>`; None for a package without a key.
    pub key_id: Option<String>,
    pub outcome: Outcome,
}

impl Token {
    /// What an admin assigns the token by: its serial number, or for a package without
    /// one, its key's Id.
    pub fn identity(&self) -> Option<&str> {
        self.serial.as_deref().or(self.key_id.as_deref())
    }
}

/// Whether pam-mfa can enroll the token.
#[derive(Debug)]
pub enum Outcome {
    Ready(Import),
    /// Why not, in words for the admin.
    Skip(String),
}

/// A token ready to enroll.
#[derive(Debug)]
pub struct Import {
    pub record: Record,
    /// The next HOTP counter (0 for TOTP).
    pub counter: u64,
    /// What the admin should know: defaults taken, PINs the token checks itself.
    pub notes: Vec<String>,
}

/// Reads one package. Errors are the document's (a value that does not parse or decrypt);
/// what pam-mfa cannot honour is an `Outcome::Skip`.
pub(crate) fn read(package: &Package<'_>, opener: &Opener, now: u64) -> Result<Token, PskcError> {
    let key_id = package.key.as_ref().map(|key| key.id.to_owned());
    let outcome = match &package.key {
        None => Outcome::Skip("the key package holds no key".into()),
        Some(key) => match profile(package, key, opener, now)? {
            Ok(import) => Outcome::Ready(import),
            Err(why) => Outcome::Skip(why),
        },
    };
    Ok(Token {
        serial: package.serial.map(str::to_owned),
        manufacturer: package.manufacturer.map(str::to_owned),
        key_id,
        outcome,
    })
}

/// The record for `key`, `Err(reason)` when pam-mfa cannot honour it, or a document error.
fn profile(
    package: &Package<'_>,
    key: &Key<'_>,
    opener: &Opener,
    now: u64,
) -> Result<Result<Import, String>, PskcError> {
    let mut notes = Vec::new();
    let kind = match key.algorithm {
        Some(
            "urn:ietf:params:xml:ns:keyprov:pskc:hotp" | "urn:ietf:params:xml:ns:keyprov:pskc#hotp",
        ) => Kind::Hotp,
        Some(
            "urn:ietf:params:xml:ns:keyprov:pskc:totp" | "urn:ietf:params:xml:ns:keyprov:pskc#totp",
        ) => Kind::Totp,
        Some(other) => return Ok(Err(format!("algorithm {other} is not HOTP or TOTP"))),
        None => return Ok(Err("the key names no algorithm".into())),
    };
    let Some(secret) = &key.secret else {
        return Ok(Err(if key.key_reference {
            "no secret in the file: the vendor derives it from a master key (KeyReference)".into()
        } else {
            "no secret in the file".into()
        }));
    };

    // When the token and its key may be used.
    for (what, date, after) in [
        ("the key", key.policy.start, true),
        ("the key", key.policy.expiry, false),
        ("the device", package.device_start, true),
        ("the device", package.device_expiry, false),
    ] {
        let Some(text) = date else { continue };
        let at = parse_date_time(text).ok_or_else(|| PskcError::Malformed {
            line: key.line,
            message: format!("{text:?} is not an xs:dateTime"),
        })?;
        if after && at > now as i64 {
            return Ok(Err(format!("{what} is not valid before {text}")));
        }
        if !after && at <= now as i64 {
            return Ok(Err(format!("{what} expired on {text}")));
        }
    }
    match key.policy.pin_usage {
        None => {}
        Some("Local") => notes.push("the token checks its PIN itself".into()),
        Some(mode) => {
            return Ok(Err(format!(
                "its PIN is for the server to check (PINUsageMode {mode:?}); pam-mfa checks no PIN"
            )))
        }
    }
    if !key.policy.key_usage.is_empty() && !key.policy.key_usage.contains(&"OTP") {
        return Ok(Err(format!(
            "its key usage is {}, not OTP",
            key.policy.key_usage.join(", ")
        )));
    }
    if let Some(count) = key.policy.transactions {
        return Ok(Err(format!(
            "it may be used {count} times only (NumberOfTransactions); pam-mfa cannot count uses"
        )));
    }

    // How codes look.
    if key.challenge {
        return Ok(Err(
            "it answers challenges (ChallengeFormat); pam-mfa takes one-time codes".into(),
        ));
    }
    let digits = match &key.response {
        None => {
            notes.push("the file gives no code length; 6 digits assumed".into());
            Digits::SIX
        }
        Some(format) => {
            if let Some(encoding) = format.encoding {
                if !encoding.eq_ignore_ascii_case("DECIMAL") {
                    return Ok(Err(format!(
                        "its codes are {encoding}; pam-mfa takes decimal codes"
                    )));
                }
            }
            if matches!(format.check_digits, Some("true" | "1")) {
                return Ok(Err(
                    "its codes end in a check digit (CheckDigits); pam-mfa cannot check it".into(),
                ));
            }
            match format.length {
                None => {
                    notes.push("the file gives no code length; 6 digits assumed".into());
                    Digits::SIX
                }
                Some(length) => match length.trim().parse::<u8>().ok().and_then(Digits::new) {
                    Some(digits) => digits,
                    None => {
                        return Ok(Err(format!(
                            "its codes have {length} digits; pam-mfa takes 6 to 8"
                        )))
                    }
                },
            }
        }
    };
    let algorithm = match key.suite {
        None => Algorithm::Sha1,
        Some(suite) => match suite_algorithm(suite) {
            Some(algorithm) => algorithm,
            None => {
                return Ok(Err(format!(
                    "its hash {suite:?} is not SHA1, SHA256 or SHA512"
                )))
            }
        },
    };

    // The moving factor.
    let (period, counter) = match kind {
        Kind::Totp => {
            let period = match &key.time_interval {
                None => {
                    notes.push(format!(
                        "the file gives no time step; {DEFAULT_PERIOD} s assumed"
                    ));
                    DEFAULT_PERIOD
                }
                Some(value) => {
                    let step = integer(value, opener)?;
                    match u32::try_from(step).ok().filter(|p| (1..=3600).contains(p)) {
                        Some(period) => period,
                        None => {
                            return Ok(Err(format!(
                                "its time step is {step} s; pam-mfa takes 1 to 3600"
                            )))
                        }
                    }
                }
            };
            if let Some(value) = &key.time {
                let origin = integer(value, opener)?;
                if origin != 0 {
                    return Ok(Err(format!(
                        "its time origin (T0) is {origin}; pam-mfa counts time steps from 1970-01-01 (T0 = 0)"
                    )));
                }
            }
            if let Some(value) = &key.time_drift {
                let drift = integer(value, opener)?;
                if drift != 0 {
                    return Ok(Err(format!(
                        "its clock is recorded as {drift} step(s) adrift (TimeDrift); pam-mfa keeps no drift per token"
                    )));
                }
            }
            (period, 0)
        }
        Kind::Hotp => {
            let counter = match &key.counter {
                None => 0,
                Some(value) => {
                    let counter = integer(value, opener)?;
                    u64::try_from(counter).map_err(|_| PskcError::Malformed {
                        line: value.line(),
                        message: format!("the counter {counter} is negative"),
                    })?
                }
            };
            (DEFAULT_PERIOD, counter)
        }
    };

    // The labels the record keeps.
    let label = |what: &str, text: Option<&str>| {
        match text {
        None => Ok(None),
        Some(text) => TokenLabel::parse(text).map(Some).ok_or_else(|| {
            format!(
                "its {what} {text:?} cannot be kept in a record (1 to 128 bytes, no quotes, backslashes or control characters)"
            )
        }),
    }
    };
    let serial = match label("serial number", package.serial) {
        Ok(serial) => serial,
        Err(why) => return Ok(Err(why)),
    };
    let manufacturer = match label("manufacturer", package.manufacturer) {
        Ok(manufacturer) => manufacturer,
        Err(why) => return Ok(Err(why)),
    };

    // The secret, last: only a token that passed every check is decrypted.
    let bytes = match secret {
        Value::Plain { text, line } => {
            if opener.encrypted_document() {
                return Ok(Err(
                    "its secret is in the clear in an encrypted file, where no MAC vouches for it"
                        .into(),
                ));
            }
            decode_base64(text).ok_or_else(|| PskcError::Malformed {
                line: *line,
                message: "the secret is not base64".into(),
            })?
        }
        Value::Encrypted(encrypted) => opener.decrypt(encrypted)?,
    };
    let secret = match SecretKey::from_bytes(bytes) {
        Ok(secret) => secret,
        Err(SecretError::BadLength { bytes }) => {
            return Ok(Err(format!(
                "its secret is {} bits; pam-mfa takes {} to {} bits",
                bytes * 8,
                MIN_KEY_BYTES * 8,
                MAX_KEY_BYTES * 8
            )))
        }
        Err(e) => return Ok(Err(e.to_string())),
    };
    let record = Record {
        kind,
        secret,
        algorithm,
        digits,
        period,
        window: kind.default_window(),
        serial,
        manufacturer,
    };
    Ok(Ok(Import {
        record,
        counter,
        notes,
    }))
}

/// The hash of an `<AlgorithmParameters><Suite>`: `HMAC-SHA256`, `SHA-256`, `sha256`...
fn suite_algorithm(suite: &str) -> Option<Algorithm> {
    let upper = suite.trim().to_ascii_uppercase();
    let name = upper
        .strip_prefix("HMAC-")
        .unwrap_or(&upper)
        .replace('-', "");
    Algorithm::from_name(&name)
}

/// An integer data value: decimal text when plain, big-endian two's complement when
/// encrypted (RFC 6030 section 4.3.2 encrypts the binary form).
fn integer(value: &Value<'_>, opener: &Opener) -> Result<i64, PskcError> {
    match value {
        Value::Plain { text, line } => {
            text.trim()
                .parse::<i64>()
                .map_err(|_| PskcError::Malformed {
                    line: *line,
                    message: format!("{text:?} is not an integer"),
                })
        }
        Value::Encrypted(encrypted) => {
            let bytes: Zeroizing<Vec<u8>> = opener.decrypt(encrypted)?;
            if bytes.is_empty() || bytes.len() > 8 {
                return Err(PskcError::Malformed {
                    line: encrypted.line,
                    message: format!("an encrypted integer of {} bytes", bytes.len()),
                });
            }
            let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
            let mut be = [fill; 8];
            be[8 - bytes.len()..].copy_from_slice(&bytes);
            Ok(i64::from_be_bytes(be))
        }
    }
}

/// Unix seconds of an xs:dateTime: `2012-08-01T00:00:00Z`, with optional fractions of a
/// second and a `Z` or `±hh:mm` zone (none means UTC).
fn parse_date_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, time) = text.split_once('T')?;
    let mut parts = date.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    let date = Date::new(year, month, day)?;
    let (clock, offset) = if let Some(clock) = time.strip_suffix('Z') {
        (clock, 0)
    } else if let Some(at) = time.rfind(['+', '-']) {
        let (clock, zone) = time.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = zone[1..].split_once(':')?;
        let hours: i64 = hours.parse().ok()?;
        let minutes: i64 = minutes.parse().ok()?;
        if hours > 14 || minutes > 59 {
            return None;
        }
        (clock, sign * (hours * 3600 + minutes * 60))
    } else {
        (time, 0)
    };
    let clock = clock.split('.').next()?;
    let mut fields = clock.splitn(3, ':');
    let hour: i64 = fields.next()?.parse().ok()?;
    let minute: i64 = fields.next()?.parse().ok()?;
    let second: i64 = fields.next()?.parse().ok()?;
    if hour > 24 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(date) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days since 1970-01-01 (Howard Hinnant's days-from-civil).
fn days_from_civil(date: Date) -> i64 {
    let year = date.year - i64::from(date.month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(date.month);
    let doy =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(date.day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times_in_utc_and_with_zones() {
        assert_eq!(parse_date_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_date_time("2012-08-01T00:00:00Z"), Some(1_343_779_200));
        assert_eq!(parse_date_time("2037-12-31T00:00:00"), Some(2_145_830_400));
        assert_eq!(
            parse_date_time("2012-08-01T02:00:00.123+02:00"),
            Some(1_343_779_200)
        );
        assert_eq!(
            parse_date_time("2012-07-31T19:00:00-05:00"),
            Some(1_343_779_200)
        );
        for bad in [
            "2012-02-30T00:00:00Z",
            "2012-08-01",
            "yesterday",
            "2012-08-01T25:00:00Z",
        ] {
            assert_eq!(parse_date_time(bad), None, "{bad}");
        }
        assert_eq!(
            Date::from_unix(parse_date_time("2024-02-29T12:00:00Z").unwrap() as u64),
            Date::new(2024, 2, 29).unwrap()
        );
    }

    #[test]
    fn suites_name_the_hash() {
        for (suite, algorithm) in [
            ("HMAC-SHA1", Some(Algorithm::Sha1)),
            ("hmac-sha256", Some(Algorithm::Sha256)),
            ("SHA-512", Some(Algorithm::Sha512)),
            ("SHA256", Some(Algorithm::Sha256)),
            ("HMAC-MD5", None),
            ("OCRA-1:HOTP-SHA1-6:QN08", None),
        ] {
            assert_eq!(suite_algorithm(suite), algorithm, "{suite}");
        }
    }
}

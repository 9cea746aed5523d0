//! otpauth:// URIs in Google's Key Uri Format, which authenticator apps import: making
//! them for enrollment and reading them back for `pam-mfa import uri`.

#![forbid(unsafe_code)]

use std::fmt::Write as _;

use zeroize::Zeroizing;

use crate::otp::verify::LAST_USABLE_COUNTER;
use crate::otp::{Algorithm, Digits};
use crate::secret::SecretKey;
use crate::store::record::DEFAULT_PERIOD;
use crate::store::{Kind, Record};

/// `otpauth://totp/ISSUER:LABEL?secret=...&issuer=ISSUER&algorithm=...&digits=...&period=...`,
/// in zeroizing memory since it holds the secret.
pub fn otpauth(record: &Record, issuer: &str, label: &str) -> Zeroizing<String> {
    let secret = record.secret.to_base32();
    let mut uri = Zeroizing::new(String::with_capacity(
        256 + secret.len() + 3 * (issuer.len() * 2 + label.len()),
    ));
    let _ = write!(
        uri,
        "otpauth://{}/{}:{}?secret=",
        record.kind.name(),
        encode(issuer),
        encode(label)
    );
    uri.push_str(&secret);
    let _ = write!(
        uri,
        "&issuer={}&algorithm={}&digits={}",
        encode(issuer),
        record.algorithm,
        record.digits.get()
    );
    match record.kind {
        Kind::Totp => {
            let _ = write!(uri, "&period={}", record.period);
        }
        Kind::Hotp => {
            let _ = write!(uri, "&counter=0");
        }
    }
    uri
}

/// A record and the HOTP counter read from an otpauth URI.
pub struct Parsed {
    pub record: Record,
    pub counter: u64,
}

/// Parses an otpauth URI. Errors say what is wrong, never the secret.
pub fn parse(uri: &[u8]) -> Result<Parsed, String> {
    let bad = |what: &str| format!("not a usable otpauth URI: {what}");
    let text = std::str::from_utf8(uri)
        .map_err(|_| bad("not UTF-8"))?
        .trim();
    let rest = text
        .strip_prefix("otpauth://")
        .ok_or_else(|| bad("it does not start with otpauth://"))?;
    let (kind, rest) = rest.split_once('/').ok_or_else(|| bad("no type"))?;
    let kind = match kind.to_ascii_lowercase().as_str() {
        "totp" => Kind::Totp,
        "hotp" => Kind::Hotp,
        other => return Err(bad(&format!("type {other:?} is not totp or hotp"))),
    };
    let query = rest.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut secret = None;
    let mut algorithm = Algorithm::Sha1;
    let mut digits = Digits::SIX;
    let mut period = DEFAULT_PERIOD;
    let mut counter = None;
    let mut seen: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        // Two secrets (or two of anything) leave which one the app took to a guess.
        if seen.contains(&key) {
            return Err(bad(&format!("the parameter {key:?} is given twice")));
        }
        seen.push(key);
        match key {
            "secret" => {
                let decoded =
                    decode(value).ok_or_else(|| bad("the secret is badly percent-encoded"))?;
                let text =
                    std::str::from_utf8(&decoded).map_err(|_| bad("the secret is not base32"))?;
                secret = Some(SecretKey::from_base32(text).map_err(|e| bad(&e.to_string()))?);
            }
            "algorithm" => {
                algorithm = Algorithm::from_name(value).ok_or_else(|| {
                    bad(&format!(
                        "algorithm {value:?} is not SHA1, SHA256 or SHA512"
                    ))
                })?
            }
            "digits" => {
                digits = value
                    .parse::<u8>()
                    .ok()
                    .and_then(Digits::new)
                    .ok_or_else(|| bad(&format!("digits {value:?} is not 6, 7 or 8")))?
            }
            "period" => {
                period = value
                    .parse::<u32>()
                    .ok()
                    .filter(|p| (1..=3600).contains(p))
                    .ok_or_else(|| bad(&format!("period {value:?} is not 1 to 3600 seconds")))?
            }
            "counter" => {
                counter = Some(
                    value
                        .parse::<u64>()
                        .ok()
                        .filter(|c| *c <= LAST_USABLE_COUNTER)
                        .ok_or_else(|| {
                            bad(&format!(
                                "counter {value:?} is not a number from 0 to {LAST_USABLE_COUNTER}"
                            ))
                        })?,
                )
            }
            // Issuer and image are for the app's display only.
            _ => {}
        }
    }
    let secret = secret.ok_or_else(|| bad("no secret parameter"))?;
    // The format requires the counter of an HOTP key: starting at 0 by guess would make
    // a token that is far along refuse every code.
    let counter = match (kind, counter) {
        (Kind::Hotp, None) => return Err(bad("an hotp URI needs a counter parameter")),
        (_, counter) => counter.unwrap_or(0),
    };
    Ok(Parsed {
        record: Record {
            kind,
            secret,
            algorithm,
            digits,
            period,
            window: kind.default_window(),
            serial: None,
            manufacturer: None,
        },
        counter,
    })
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Percent-decoding into zeroizing memory (the value may be the secret).
fn decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let bytes = text.as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len()));
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_has_issuer_twice_and_encodes_it() {
        let record = Record::new_totp(SecretKey::from_base32("JBSWY3DPEHPK3PXP").unwrap());
        let uri = otpauth(&record, "ACME Co", "alice@bastion");
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/ACME%20Co:alice%40bastion?secret=JBSWY3DPEHPK3PXP&issuer=ACME%20Co\
             &algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn encoding_keeps_unreserved_only() {
        assert_eq!(encode("a-b.c_d~e"), "a-b.c_d~e");
        assert_eq!(encode("x:y/z?&="), "x%3Ay%2Fz%3F%26%3D");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn made_uris_parse_back() {
        let mut record = Record::new_totp(SecretKey::from_base32("JBSWY3DPEHPK3PXP").unwrap());
        record.algorithm = Algorithm::Sha256;
        record.digits = Digits::new(8).unwrap();
        record.period = 60;
        let uri = otpauth(&record, "ACME Co", "alice");
        let parsed = parse(uri.as_bytes()).unwrap();
        assert_eq!(parsed.record.secret.as_bytes(), record.secret.as_bytes());
        assert_eq!(parsed.record.algorithm, Algorithm::Sha256);
        assert_eq!(parsed.record.digits.get(), 8);
        assert_eq!(parsed.record.period, 60);
        let hotp = parse(b"otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP&counter=42").unwrap();
        assert_eq!(hotp.record.kind, Kind::Hotp);
        assert_eq!(hotp.counter, 42);
    }

    #[test]
    fn bad_uris_are_refused_without_echoing_the_secret() {
        for bad in [
            &b"http://totp/x?secret=JBSWY3DPEHPK3PXP"[..],
            b"otpauth://motp/x?secret=JBSWY3DPEHPK3PXP",
            b"otpauth://totp/x?issuer=y",
            b"otpauth://totp/x?secret=JBSWY3DP1HPK3PXP",
            b"otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&digits=9",
            b"otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&algorithm=MD5",
            b"otpauth://totp/x?secret=JBSWY3DPEHPK%3",
            b"otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP&counter=18446744073709551615",
            b"otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP&counter=-1",
            b"otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP",
            b"otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&secret=GEZDGNBVGY3TQOJQ",
            b"otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&digits=6&digits=8",
        ] {
            let err = parse(bad)
                .err()
                .unwrap_or_else(|| panic!("{:?}", String::from_utf8_lossy(bad)));
            assert!(!err.to_string().contains("JBSWY3DP"), "{err}");
        }
    }
}

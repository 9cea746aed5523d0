//! otpauth:// URIs in Google's Key Uri Format, which authenticator apps import.

#![forbid(unsafe_code)]

use std::fmt::Write as _;

use zeroize::Zeroizing;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretKey;

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
}

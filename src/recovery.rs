//! Recovery codes: single-use codes for when the authenticator is lost. Shown once,
//! stored only as salted Argon2id hashes, and shaped so they can never be taken for a
//! TOTP code (letters and a dash: `abcde-fgh2k`, 50 bits each).

#![forbid(unsafe_code)]

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

/// Codes made at enrollment and by `pam-mfa recovery`.
pub const COUNT: usize = 10;
/// Characters of one stored hash: `$argon2id$v=19$m=19456,t=2,p=1$`, a 16-byte salt and a
/// 32-byte hash in unpadded base64.
pub const HASH_LEN: usize = 97;
/// Characters in a code (base32, 5 bits each), shown as two groups of five.
const CHARS: usize = 10;
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// One recovery code in clear, as shown to the user once. Wiped on drop.
pub struct RecoveryCode(Zeroizing<String>);

impl RecoveryCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(<redacted>)")
    }
}

/// Proof that a stored recovery code matched an answer. Only this module makes one.
#[must_use]
#[derive(Debug, Clone)]
pub struct RecoveryMatch {
    /// The stored hash that matched (not secret: it is what the store holds).
    pub hash: String,
}

/// Hashing failed (bad parameters or the random source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryError(String);

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "recovery codes: {}", self.0)
    }
}

impl std::error::Error for RecoveryError {}

/// Argon2id with OWASP's minimum parameters: 19 MiB, 2 passes, 1 lane.
fn hasher() -> Argon2<'static> {
    // Invariant: these constant parameters are within Argon2's limits.
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A fresh set of codes and their hashes, in the same order.
pub fn generate() -> Result<(Vec<RecoveryCode>, Vec<String>), RecoveryError> {
    let mut codes = Vec::with_capacity(COUNT);
    let mut hashes = Vec::with_capacity(COUNT);
    for _ in 0..COUNT {
        let mut random = Zeroizing::new([0u8; CHARS]);
        getrandom::fill(random.as_mut()).map_err(|e| RecoveryError(e.to_string()))?;
        let mut text = Zeroizing::new(String::with_capacity(CHARS + 1));
        for (i, byte) in random.iter().enumerate() {
            if i == CHARS / 2 {
                text.push('-');
            }
            text.push(char::from(ALPHABET[usize::from(byte & 31)]));
        }
        let code = RecoveryCode(text);
        hashes.push(hash(&normalize(code.as_str().as_bytes()).ok_or_else(
            || RecoveryError("a generated code did not normalize".into()),
        )?)?);
        codes.push(code);
    }
    Ok((codes, hashes))
}

/// Hashes a normalized code with a random salt (PHC string format).
pub fn hash(normalized: &[u8]) -> Result<String, RecoveryError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| RecoveryError(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| RecoveryError(e.to_string()))?;
    hasher()
        .hash_password(normalized, &salt)
        .map(|h| h.to_string())
        .map_err(|e| RecoveryError(e.to_string()))
}

/// An answer in the canonical form that was hashed: lower case, no dashes or spaces.
/// Recovery codes (10 base32 characters) and imported google-authenticator scratch
/// codes (8 digits) qualify; anything else is not a recovery code.
pub fn normalize(answer: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(answer.len()));
    for &byte in answer.trim_ascii() {
        match byte {
            b'-' | b' ' => {}
            b'A'..=b'Z' => out.push(byte.to_ascii_lowercase()),
            b'a'..=b'z' | b'0'..=b'9' => out.push(byte),
            _ => return None,
        }
    }
    let recovery = out.len() == CHARS && out.iter().all(|b| ALPHABET.contains(b));
    let scratch = out.len() == 8 && out.iter().all(u8::is_ascii_digit);
    (recovery || scratch).then_some(out)
}

/// Checks a normalized answer against every stored hash. This is the slow path; the
/// module only takes it for answers that cannot be a TOTP code.
pub fn find(hashes: &[String], normalized: &[u8]) -> Option<RecoveryMatch> {
    let argon = hasher();
    let mut found = None;
    for stored in hashes {
        let Ok(parsed) = PasswordHash::new(stored) else {
            continue;
        };
        if argon.verify_password(normalized, &parsed).is_ok() && found.is_none() {
            found = Some(RecoveryMatch {
                hash: stored.clone(),
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_look_nothing_like_totp_and_verify_once_each() {
        let (codes, hashes) = generate().unwrap();
        assert!(hashes.iter().all(|h| h.len() == HASH_LEN), "{hashes:?}");
        assert_eq!(codes.len(), COUNT);
        for code in &codes {
            let text = code.as_str();
            assert_eq!(text.len(), 11);
            assert_eq!(&text[5..6], "-");
            assert!(text.bytes().any(|b| b.is_ascii_lowercase()) || text.contains('-'));
        }
        let first = normalize(codes[3].as_str().to_uppercase().as_bytes()).unwrap();
        let matched = find(&hashes, &first).unwrap();
        assert_eq!(matched.hash, hashes[3]);
        assert!(find(&hashes, &normalize(b"aaaaa-aaaaa").unwrap()).is_none());
    }

    #[test]
    fn hashes_are_salted_and_hold_no_code() {
        let (codes, hashes) = generate().unwrap();
        assert!(hashes.iter().all(|h| h.starts_with("$argon2id$")));
        let again = hash(&normalize(codes[0].as_str().as_bytes()).unwrap()).unwrap();
        assert_ne!(again, hashes[0], "salted: same code, different hash");
        for (code, hash) in codes.iter().zip(&hashes) {
            assert!(!hash.contains(&code.as_str().replace('-', "")));
        }
    }

    #[test]
    fn normalization() {
        assert_eq!(
            normalize(b" ABCDE-fgh23 ").unwrap().as_slice(),
            b"abcdefgh23"
        );
        assert_eq!(normalize(b"12345678").unwrap().as_slice(), b"12345678");
        for bad in [
            &b"123456"[..],
            b"abcde-fgh1j",
            b"abcdefghijk",
            b"abc!e-fghij",
            b"",
        ] {
            assert!(
                normalize(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn debug_hides_codes() {
        let (codes, _) = generate().unwrap();
        assert_eq!(format!("{:?}", codes[0]), "RecoveryCode(<redacted>)");
    }
}

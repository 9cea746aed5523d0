//! Key material: a newtype that lives only in zeroizing memory, never prints itself,
//! and converts to and from base32 without leaving copies behind.

#![forbid(unsafe_code)]

use std::fmt;

use data_encoding::{DecodeKind, BASE32_NOPAD};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::otp::Algorithm;

/// Fewest key bytes accepted: 80 bits, what google-authenticator-libpam generates.
pub const MIN_KEY_BYTES: usize = 10;
/// Most key bytes accepted (a SHA512 block).
pub const MAX_KEY_BYTES: usize = 128;

/// An HMAC key. Wiped when dropped; `Debug` shows nothing of it.
pub struct SecretKey(Zeroizing<Vec<u8>>);

/// Why a base32 secret was refused. Never holds any part of the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    /// A character outside the base32 alphabet.
    NotBase32,
    /// Letters and digits of the alphabet, but so many that they cannot be whole bytes
    /// (a character missing or one too many), or whose last one leaves stray bits.
    Base32Length { characters: usize },
    /// Fewer than 80 or more than 1024 bits.
    BadLength { bytes: usize },
    /// The operating system's random source failed.
    Random(String),
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotBase32 => {
                f.write_str("the secret is not valid base32 (letters A-Z and digits 2-7)")
            }
            Self::Base32Length { characters } => write!(
                f,
                "the secret's {characters} base32 characters do not make whole bytes: \
                 one is missing or one too many, or the last one is mistyped"
            ),
            Self::BadLength { bytes } => write!(
                f,
                "the secret is {} bits long; it must be between {} and {} bits",
                bytes * 8,
                MIN_KEY_BYTES * 8,
                MAX_KEY_BYTES * 8
            ),
            Self::Random(why) => write!(f, "the random source failed: {why}"),
        }
    }
}

impl std::error::Error for SecretError {}

impl SecretKey {
    /// A new random key from the operating system, as long as `algorithm`'s output.
    pub fn generate(algorithm: Algorithm) -> Result<SecretKey, SecretError> {
        let mut bytes = Zeroizing::new(vec![0u8; algorithm.key_bytes()]);
        getrandom::fill(&mut bytes).map_err(|e| SecretError::Random(e.to_string()))?;
        Ok(SecretKey(bytes))
    }

    /// Raw key bytes; the caller takes care not to copy them into ordinary memory.
    pub fn from_bytes(bytes: Zeroizing<Vec<u8>>) -> Result<SecretKey, SecretError> {
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&bytes.len()) {
            return Err(SecretError::BadLength { bytes: bytes.len() });
        }
        Ok(SecretKey(bytes))
    }

    /// Decodes base32 as people type it: case-insensitive, with spaces, dashes and `=`
    /// padding ignored.
    pub fn from_base32(text: &str) -> Result<SecretKey, SecretError> {
        let mut clean = Zeroizing::new(Vec::with_capacity(text.len()));
        for byte in text.bytes() {
            match byte {
                b' ' | b'\t' | b'-' | b'=' => {}
                b'a'..=b'z' => clean.push(byte.to_ascii_uppercase()),
                _ => clean.push(byte),
            }
        }
        // A character outside the alphabet is named as such before the length is looked
        // at, so that each error says what is actually wrong.
        if !clean
            .iter()
            .all(|&b| matches!(b, b'A'..=b'Z' | b'2'..=b'7'))
        {
            return Err(SecretError::NotBase32);
        }
        let characters = clean.len();
        let length = BASE32_NOPAD
            .decode_len(characters)
            .map_err(|_| SecretError::Base32Length { characters })?;
        let mut bytes = Zeroizing::new(vec![0u8; length]);
        let written =
            BASE32_NOPAD
                .decode_mut(&clean, &mut bytes)
                .map_err(|partial| match partial.error.kind {
                    DecodeKind::Length | DecodeKind::Trailing => {
                        SecretError::Base32Length { characters }
                    }
                    DecodeKind::Symbol | DecodeKind::Padding => SecretError::NotBase32,
                })?;
        bytes.truncate(written);
        Self::from_bytes(bytes)
    }

    /// The key in unpadded upper-case base32, in zeroizing memory.
    pub fn to_base32(&self) -> Zeroizing<String> {
        let mut encoded = Zeroizing::new(vec![0u8; BASE32_NOPAD.encode_len(self.0.len())]);
        BASE32_NOPAD.encode_mut(&self.0, &mut encoded);
        let mut text = Zeroizing::new(String::with_capacity(encoded.len()));
        // The base32 alphabet is ASCII, so every byte is a char.
        text.extend(encoded.iter().map(|&b| char::from(b)));
        text
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether both are the same key, compared in constant time (for keys of one length).
    pub fn same_as(&self, other: &SecretKey) -> bool {
        bool::from(self.0.as_slice().ct_eq(other.0.as_slice()))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_round_trip_is_case_and_space_insensitive() {
        let key = SecretKey::from_base32("jbsw y3dp-ehpk 3pxp").unwrap();
        assert_eq!(key.as_bytes(), b"Hello!\xde\xad\xbe\xef");
        assert_eq!(key.to_base32().as_str(), "JBSWY3DPEHPK3PXP");
    }

    #[test]
    fn padding_is_accepted() {
        let key = SecretKey::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ====").unwrap();
        assert_eq!(key.as_bytes(), b"12345678901234567890");
    }

    #[test]
    fn invalid_characters_are_refused() {
        assert_eq!(
            SecretKey::from_base32("JBSWY3DP1HPK3PXP").unwrap_err(),
            SecretError::NotBase32
        );
        assert_eq!(
            SecretKey::from_base32("JBSWY3DP!HPK3PXP").unwrap_err(),
            SecretError::NotBase32
        );
    }

    #[test]
    fn a_length_no_bytes_have_is_called_a_length_problem() {
        // 17 characters (85 bits) cannot be whole bytes; every one of them is base32.
        let err = SecretKey::from_base32("JBSWY3DPEHPK3PXPA").unwrap_err();
        assert_eq!(err, SecretError::Base32Length { characters: 17 });
        let message = err.to_string();
        assert!(message.contains("17 base32 characters"), "{message}");
        assert!(!message.contains("not valid"), "{message}");
        // 16 + 2 characters whose last one leaves bits over.
        assert_eq!(
            SecretKey::from_base32("JBSWY3DPEHPK3PXPJB").unwrap_err(),
            SecretError::Base32Length { characters: 18 }
        );
        // A foreign character is still named as such, whatever the length.
        assert_eq!(
            SecretKey::from_base32("JBSWY3DPEHPK3PXP1").unwrap_err(),
            SecretError::NotBase32
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(
            SecretKey::from_base32("JBSWY3DP").unwrap_err(),
            SecretError::BadLength { bytes: 5 }
        ));
        assert!(SecretKey::from_base32("").is_err());
    }

    #[test]
    fn generated_keys_are_as_long_as_the_hash_and_differ() {
        let a = SecretKey::generate(Algorithm::Sha1).unwrap();
        let b = SecretKey::generate(Algorithm::Sha1).unwrap();
        assert_eq!(a.as_bytes().len(), 20);
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_eq!(
            SecretKey::generate(Algorithm::Sha256)
                .unwrap()
                .as_bytes()
                .len(),
            32
        );
        assert_eq!(
            SecretKey::generate(Algorithm::Sha512)
                .unwrap()
                .as_bytes()
                .len(),
            64
        );
    }

    #[test]
    fn debug_and_errors_never_show_the_secret() {
        let key = SecretKey::from_base32("JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(format!("{key:?}"), "SecretKey(<redacted>)");
        let err = SecretKey::from_base32("JBSWY3DPEHPK3PX!").unwrap_err();
        assert!(!err.to_string().contains("JBSW"));
    }
}

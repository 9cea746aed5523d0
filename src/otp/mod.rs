//! One-time passwords: HOTP (RFC 4226), TOTP (RFC 6238) and the verifier
//! that checks a typed code against a window of candidates in constant time.

#![forbid(unsafe_code)]

pub mod hotp;
pub mod totp;
pub mod verify;

use std::fmt;

/// The most TOTP steps each way a code may be from now, for a record and for the policy:
/// 10 steps of 30 s already accept a code five minutes old.
pub const MAX_TOTP_WINDOW: u32 = 10;

/// The HMAC hash function behind a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// Parses the names used in records and otpauth URIs (`SHA1`, `SHA256`, `SHA512`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            "SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    /// The length of a new key: the hash's output, as RFC 4226 (section 4, R6) and
    /// RFC 6238 (section 5.1) recommend.
    pub fn key_bytes(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The number of digits in a code: 6, 7 or 8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digits(u8);

impl Digits {
    pub const SIX: Digits = Digits(6);

    pub fn new(digits: u8) -> Option<Self> {
        (6..=8).contains(&digits).then_some(Self(digits))
    }

    pub fn get(self) -> u8 {
        self.0
    }

    fn modulus(self) -> u32 {
        10u32.pow(u32::from(self.0))
    }
}

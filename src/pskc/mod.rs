//! PSKC (RFC 6030), the seed files hardware-token vendors ship: values in the clear, or
//! encrypted (AES-CBC) with a pre-shared key or a key derived from a password (PBKDF2).
//! A document becomes a list of tokens, each ready to enroll or skipped with the reason;
//! every MAC in the document is checked before any value is decrypted or used.

#![forbid(unsafe_code)]

mod crypto;
mod parse;
mod token;

use std::fmt;

use zeroize::Zeroizing;

pub use crypto::parse_key_file;
pub use parse::{Container, Xml};
pub use token::{Import, Outcome, Token};

use crypto::{decode_base64, decrypt, mac_matches, AesCbc, DecryptError, HmacHash};
use parse::{Encrypted, Encryption, Value};

/// Fewest and most PBKDF2 iterations accepted: the most keeps a hostile file from
/// keeping the command busy for hours.
const MAX_ITERATIONS: u32 = 10_000_000;

/// Why a document cannot be read. One line each; never a secret, a key or a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PskcError {
    /// The file is not UTF-8 text.
    NotUtf8,
    /// Not well-formed XML, or XML with a DTD.
    Xml(String),
    /// Well-formed XML, but not an RFC 6030 document.
    NotPskc(String),
    /// Something the document needs is missing or wrong.
    Malformed { line: u32, message: String },
    /// Something RFC 6030 allows that pam-mfa cannot read.
    Unsupported { line: u32, message: String },
    /// The document needs a key or password that was not given, or one of another kind.
    Key(String),
    /// The pre-shared key or password does not decrypt the document's MAC key.
    WrongKey,
    /// The MAC of an encrypted value does not match.
    MacMismatch { line: u32 },
}

impl fmt::Display for PskcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotUtf8 => f.write_str("not UTF-8 text, so not a PSKC file"),
            Self::Xml(why) => write!(f, "not well-formed XML: {why}"),
            Self::NotPskc(why) => write!(f, "not a PSKC file: {why}"),
            Self::Malformed { line, message } => write!(f, "line {line}: {message}"),
            Self::Unsupported { line, message } => {
                write!(f, "line {line}: not supported: {message}")
            }
            Self::Key(why) => f.write_str(why),
            Self::WrongKey => f.write_str(
                "the key or password is wrong: it does not decrypt the file's MAC key",
            ),
            Self::MacMismatch { line } => write!(
                f,
                "line {line}: the MAC of the encrypted value does not match: the file was altered, or the key or password is wrong"
            ),
        }
    }
}

impl std::error::Error for PskcError {}

/// What a document needs before its values can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection<'d> {
    /// Nothing: no `<EncryptionKey>`.
    Plain,
    /// A pre-shared AES key, with the name the vendor gave it.
    PreSharedKey { name: Option<&'d str> },
    /// A password, with the name the vendor gave it.
    Password { name: Option<&'d str> },
}

/// The key material the admin gives for a document.
pub enum Unlock<'k> {
    Nothing,
    Key(&'k [u8]),
    Password(&'k [u8]),
}

impl<'d> Container<'d> {
    pub fn protection(&self) -> Protection<'d> {
        match &self.encryption {
            Encryption::None => Protection::Plain,
            Encryption::PreShared { name } => Protection::PreSharedKey { name: *name },
            Encryption::Password(params) => Protection::Password { name: params.name },
        }
    }

    /// Opens the document with `unlock`, checks the MAC of every encrypted value, then reads
    /// every key package. `now` (Unix seconds) is for the validity dates.
    pub fn tokens(&self, unlock: Unlock<'_>, now: u64) -> Result<Vec<Token>, PskcError> {
        let key = self.document_key(unlock)?;
        let opener = Opener {
            key,
            encrypted_document: !matches!(self.encryption, Encryption::None),
        };
        self.check_macs(&opener)?;
        self.packages
            .iter()
            .map(|package| token::read(package, &opener, now))
            .collect()
    }

    /// The document's AES key: the pre-shared one, or derived from the password.
    fn document_key(&self, unlock: Unlock<'_>) -> Result<Option<Zeroizing<Vec<u8>>>, PskcError> {
        match (&self.encryption, unlock) {
            (Encryption::None, Unlock::Nothing) => Ok(None),
            (Encryption::None, _) => Err(PskcError::Key(
                "the file is not encrypted, yet a key or password was given".into(),
            )),
            (Encryption::PreShared { .. }, Unlock::Key(key)) => {
                let mut copy = Zeroizing::new(Vec::with_capacity(key.len()));
                copy.extend_from_slice(key);
                Ok(Some(copy))
            }
            (Encryption::PreShared { .. }, _) => Err(PskcError::Key(
                "the file is encrypted with a pre-shared key, and no key was given".into(),
            )),
            (Encryption::Password(params), Unlock::Password(password)) => {
                if params.iterations > MAX_ITERATIONS {
                    return Err(PskcError::Key(format!(
                        "the file asks for {} PBKDF2 iterations; pam-mfa stops at {MAX_ITERATIONS}",
                        params.iterations
                    )));
                }
                let length = params.key_length.unwrap_or(16);
                if !matches!(length, 16 | 24 | 32) {
                    return Err(PskcError::Key(format!(
                        "the file derives a {length}-byte key; AES takes 16, 24 or 32"
                    )));
                }
                let salt = decode_base64(params.salt)
                    .ok_or_else(|| PskcError::Key("the PBKDF2 salt is not base64".into()))?;
                Ok(Some(crypto::pbkdf2(
                    params.prf,
                    password,
                    &salt,
                    params.iterations,
                    length,
                )))
            }
            (Encryption::Password(_), _) => Err(PskcError::Key(
                "the file is encrypted with a password, and no password was given".into(),
            )),
        }
    }

    /// Checks every encrypted value's MAC, before anything is decrypted. AES-CBC has no
    /// integrity of its own, so RFC 6030 requires the MAC; a value without one is refused.
    fn check_macs(&self, opener: &Opener) -> Result<(), PskcError> {
        let values: Vec<&Encrypted<'_>> = self
            .packages
            .iter()
            .filter_map(|package| package.key.as_ref())
            .flat_map(|key| {
                [
                    &key.secret,
                    &key.counter,
                    &key.time,
                    &key.time_interval,
                    &key.time_drift,
                ]
            })
            .filter_map(|value| match value {
                Some(Value::Encrypted(encrypted)) => Some(encrypted),
                _ => None,
            })
            .collect();
        let Some(first) = values.first() else {
            return Ok(());
        };
        let method = self.mac.as_ref().ok_or(PskcError::Unsupported {
            line: first.line,
            message: "encrypted values without a MACMethod; RFC 6030 requires a MAC with AES-CBC"
                .into(),
        })?;
        let mac_key = match &method.key {
            Some(encrypted) => opener.decrypt(encrypted)?,
            // The drafts before RFC 6030 had no MACKey: the MAC key was the document key.
            None => opener.key_copy(first.line)?,
        };
        for value in values {
            check_mac(method.hash, &mac_key, value)?;
        }
        Ok(())
    }
}

fn check_mac(hash: HmacHash, mac_key: &[u8], value: &Encrypted<'_>) -> Result<(), PskcError> {
    let mac = value.mac.ok_or(PskcError::Unsupported {
        line: value.line,
        message: "an encrypted value without a ValueMAC; RFC 6030 requires one with AES-CBC".into(),
    })?;
    let mac = decode_base64(mac).ok_or(PskcError::Malformed {
        line: value.line,
        message: "the ValueMAC is not base64".into(),
    })?;
    let data = decode_base64(value.cipher_value).ok_or(PskcError::Malformed {
        line: value.line,
        message: "the CipherValue is not base64".into(),
    })?;
    if mac_matches(hash, mac_key, &data, &mac) {
        Ok(())
    } else {
        Err(PskcError::MacMismatch { line: value.line })
    }
}

/// Decrypts values with the document key; made only after the key is known.
pub(crate) struct Opener {
    key: Option<Zeroizing<Vec<u8>>>,
    /// Whether the document declares encryption: then a secret in the clear is suspect.
    encrypted_document: bool,
}

impl Opener {
    pub(crate) fn encrypted_document(&self) -> bool {
        self.encrypted_document
    }

    /// The plaintext of an encrypted value, in zeroizing memory. Its MAC was checked first.
    pub(crate) fn decrypt(&self, value: &Encrypted<'_>) -> Result<Zeroizing<Vec<u8>>, PskcError> {
        let cipher = AesCbc::from_uri(value.algorithm).ok_or_else(|| PskcError::Unsupported {
            line: value.line,
            message: format!(
                "encryption {:?}; pam-mfa decrypts AES-CBC (128, 192 or 256 bits)",
                value.algorithm
            ),
        })?;
        let key = self.key.as_ref().ok_or(PskcError::Malformed {
            line: value.line,
            message: "an encrypted value, but the file has no EncryptionKey".into(),
        })?;
        let data = decode_base64(value.cipher_value).ok_or(PskcError::Malformed {
            line: value.line,
            message: "the CipherValue is not base64".into(),
        })?;
        decrypt(cipher, key, data).map_err(|e| match e {
            DecryptError::KeyLength => PskcError::Key(format!(
                "the key is {} bytes long; the file uses {} ({} bytes)",
                key.len(),
                cipher.name(),
                cipher.key_len()
            )),
            DecryptError::BadLength => PskcError::Malformed {
                line: value.line,
                message: "the CipherValue is not an IV and whole AES blocks".into(),
            },
            DecryptError::Padding => PskcError::WrongKey,
        })
    }

    fn key_copy(&self, line: u32) -> Result<Zeroizing<Vec<u8>>, PskcError> {
        let key = self.key.as_ref().ok_or(PskcError::Malformed {
            line,
            message: "an encrypted value, but the file has no EncryptionKey".into(),
        })?;
        let mut copy = Zeroizing::new(Vec::with_capacity(key.len()));
        copy.extend_from_slice(key);
        Ok(copy)
    }
}

#[cfg(test)]
mod tests;

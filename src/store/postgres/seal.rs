//! Secrets at rest in the fleet store: sealed with XChaCha20-Poly1305 under a 32-byte key
//! that every host holds in a root-only file. The account's name and the secret's kind
//! are bound in as associated data, so whoever can write the database can neither read a
//! secret nor move one account's sealed secret onto another account's row.

#![forbid(unsafe_code)]

use std::fmt;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::files::read_private;
use crate::store::{Kind, StoreError};
use crate::username::UserName;

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 24;

/// The sealing key, in zeroizing memory, with the id that rows sealed under it carry.
pub struct SealKey {
    key: Zeroizing<[u8; KEY_LEN]>,
    id: String,
}

/// A secret as the database holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealKey({})", self.id)
    }
}

impl SealKey {
    /// Reads the key file: exactly 32 bytes, root's, mode 0600 or stricter.
    pub fn read(path: &Path) -> Result<SealKey, StoreError> {
        let contents = read_private(path, "secret_key_file")?;
        let key: [u8; KEY_LEN] = contents.as_slice().try_into().map_err(|_| StoreError::Key {
            path: path.to_owned(),
            message: format!(
                "holds {} bytes; it must hold exactly {KEY_LEN} random bytes (head -c {KEY_LEN} /dev/urandom)",
                contents.len()
            ),
        })?;
        Ok(SealKey::from_bytes(Zeroizing::new(key)))
    }

    pub fn from_bytes(key: Zeroizing<[u8; KEY_LEN]>) -> SealKey {
        // The id names the key without revealing it: a hash under a label of its own.
        let mut hash = Sha256::new();
        hash.update(b"pam-mfa store key id\0");
        hash.update(key.as_slice());
        let id = data_encoding::HEXLOWER.encode(&hash.finalize()[..8]);
        SealKey { key, id }
    }

    /// The id of the key, stored beside every secret sealed under it.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn seal(&self, user: &UserName, kind: Kind, secret: &[u8]) -> Result<Sealed, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| StoreError::Key {
            path: Default::default(),
            message: format!("no random nonce: {e}"),
        })?;
        let aad = associated_data(user, kind);
        let ciphertext = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::Key {
                path: Default::default(),
                message: "sealing failed".to_owned(),
            })?;
        Ok(Sealed {
            key_id: self.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// The secret, only if it was sealed under this key for this account and kind.
    pub fn unseal(
        &self,
        user: &UserName,
        kind: Kind,
        sealed: &Sealed,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let refused = |message: &str| StoreError::Sealed {
            user: user.to_string(),
            message: message.to_owned(),
        };
        if sealed.key_id != self.id {
            return Err(refused(&format!(
                "sealed under key {}, and this host's secret_key_file is key {}",
                sealed.key_id, self.id
            )));
        }
        if sealed.nonce.len() != NONCE_LEN {
            return Err(refused("the nonce is not 24 bytes"));
        }
        let aad = associated_data(user, kind);
        self.cipher()
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| {
                refused("does not open for this account: it was changed, or sealed for another account or kind")
            })
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.as_slice().into())
    }
}

/// What a sealed secret is bound to: a version label, the account and the kind.
fn associated_data(user: &UserName, kind: Kind) -> Vec<u8> {
    let mut aad = b"pam-mfa sealed secret v1\0".to_vec();
    aad.extend_from_slice(user.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(kind.name().as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SealKey {
        SealKey::from_bytes(Zeroizing::new([byte; KEY_LEN]))
    }

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_for_its_account_and_kind_only() {
        let k = key(7);
        let sealed = k
            .seal(&user("root"), Kind::Totp, b"twenty bytes secret!")
            .unwrap();
        assert_eq!(
            k.unseal(&user("root"), Kind::Totp, &sealed)
                .unwrap()
                .as_slice(),
            b"twenty bytes secret!"
        );
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"twenty"));
        assert!(matches!(
            k.unseal(&user("alice"), Kind::Totp, &sealed),
            Err(StoreError::Sealed { .. })
        ));
        assert!(matches!(
            k.unseal(&user("root"), Kind::Hotp, &sealed),
            Err(StoreError::Sealed { .. })
        ));
    }

    #[test]
    fn another_key_or_a_changed_byte_is_refused() {
        let sealed = key(1).seal(&user("bob"), Kind::Hotp, b"secret").unwrap();
        assert!(key(2).unseal(&user("bob"), Kind::Hotp, &sealed).is_err());
        let mut forged = Sealed {
            key_id: key(2).id().to_owned(),
            ..sealed.clone()
        };
        assert!(key(2).unseal(&user("bob"), Kind::Hotp, &forged).is_err());
        forged = sealed.clone();
        forged.ciphertext[0] ^= 1;
        assert!(key(1).unseal(&user("bob"), Kind::Hotp, &forged).is_err());
    }

    #[test]
    fn key_ids_differ_between_keys_and_nonces_between_seals() {
        assert_ne!(key(1).id(), key(2).id());
        assert_eq!(key(1).id().len(), 16);
        let a = key(1).seal(&user("bob"), Kind::Totp, b"s").unwrap();
        let b = key(1).seal(&user("bob"), Kind::Totp, b"s").unwrap();
        assert_ne!(a.nonce, b.nonce);
    }
}

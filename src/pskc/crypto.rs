//! The cryptography RFC 6030 names: AES-CBC with the IV prepended (XML Encryption), HMAC
//! over the encrypted value, and PBKDF2 for password-derived keys. Every plaintext is
//! decrypted in place in zeroizing memory; MACs are compared in constant time.

#![forbid(unsafe_code)]

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockCipher, BlockDecrypt, BlockDecryptMut, KeyInit, KeyIvInit};
use aes::{Aes128, Aes192, Aes256};
use data_encoding::BASE64;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use zeroize::{Zeroize, Zeroizing};

/// AES's block size, which is also the length of the IV that starts every cipher value.
const BLOCK: usize = 16;

/// An encryption algorithm of XML Encryption that pam-mfa can undo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AesCbc {
    Aes128,
    Aes192,
    Aes256,
}

impl AesCbc {
    pub fn from_uri(uri: &str) -> Option<AesCbc> {
        match uri {
            "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => Some(Self::Aes128),
            "http://www.w3.org/2001/04/xmlenc#aes192-cbc" => Some(Self::Aes192),
            "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => Some(Self::Aes256),
            _ => None,
        }
    }

    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128 => 16,
            Self::Aes192 => 24,
            Self::Aes256 => 32,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Aes128 => "AES-128-CBC",
            Self::Aes192 => "AES-192-CBC",
            Self::Aes256 => "AES-256-CBC",
        }
    }
}

/// The hash behind a MAC (MACMethod) or behind PBKDF2's pseudo-random function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HmacHash {
    Sha1,
    Sha256,
    Sha512,
}

impl HmacHash {
    /// The algorithm URIs of XML Signature and its "more" additions.
    pub fn from_uri(uri: &str) -> Option<HmacHash> {
        match uri {
            "http://www.w3.org/2000/09/xmldsig#hmac-sha1" => Some(Self::Sha1),
            "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256" => Some(Self::Sha256),
            "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

/// Why a cipher value did not decrypt. Says nothing about the plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecryptError {
    /// Shorter than an IV and one block, or not whole blocks.
    BadLength,
    /// The key is not as long as the algorithm needs.
    KeyLength,
    /// The padding is wrong: the key is wrong or the value was altered.
    Padding,
}

/// Decodes base64 as XML carries it (line breaks and indentation anywhere) into zeroizing
/// memory, without a copy of the text left in ordinary memory. None if it is not base64.
pub fn decode_base64(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut clean = Zeroizing::new(Vec::with_capacity(text.len()));
    clean.extend(
        text.bytes()
            .filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n')),
    );
    let length = BASE64.decode_len(clean.len()).ok()?;
    let mut bytes = Zeroizing::new(vec![0u8; length]);
    let written = BASE64.decode_mut(&clean, &mut bytes).ok()?;
    bytes[written..].zeroize();
    bytes.truncate(written);
    Some(bytes)
}

/// Decrypts `data` (IV, then the cipher text) in place and returns the plaintext in the
/// same zeroizing buffer.
pub fn decrypt(
    cipher: AesCbc,
    key: &[u8],
    mut data: Zeroizing<Vec<u8>>,
) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
    if key.len() != cipher.key_len() {
        return Err(DecryptError::KeyLength);
    }
    if data.len() < 2 * BLOCK || data.len() % BLOCK != 0 {
        return Err(DecryptError::BadLength);
    }
    let (iv, body) = data.split_at_mut(BLOCK);
    let plain_len = match cipher {
        AesCbc::Aes128 => cbc_decrypt::<Aes128>(key, iv, body),
        AesCbc::Aes192 => cbc_decrypt::<Aes192>(key, iv, body),
        AesCbc::Aes256 => cbc_decrypt::<Aes256>(key, iv, body),
    }?;
    data.copy_within(BLOCK..BLOCK + plain_len, 0);
    data[plain_len..].zeroize();
    data.truncate(plain_len);
    Ok(data)
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], body: &mut [u8]) -> Result<usize, DecryptError>
where
    C: BlockDecrypt + BlockCipher + KeyInit,
{
    let decryptor =
        cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| DecryptError::KeyLength)?;
    let plain = decryptor
        .decrypt_padded_mut::<Pkcs7>(body)
        .map_err(|_| DecryptError::Padding)?;
    Ok(plain.len())
}

/// Whether `mac` is the HMAC of `data` under `key`, compared in constant time.
pub fn mac_matches(hash: HmacHash, key: &[u8], data: &[u8], mac: &[u8]) -> bool {
    fn check<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8], mac: &[u8]) -> bool {
        match <M as hmac::digest::KeyInit>::new_from_slice(key) {
            Ok(mut hmac) => {
                hmac.update(data);
                hmac.verify_slice(mac).is_ok()
            }
            Err(_) => false,
        }
    }
    match hash {
        HmacHash::Sha1 => check::<Hmac<Sha1>>(key, data, mac),
        HmacHash::Sha256 => check::<Hmac<Sha256>>(key, data, mac),
        HmacHash::Sha512 => check::<Hmac<Sha512>>(key, data, mac),
    }
}

/// PBKDF2 (RFC 8018) of `password`, `length` bytes, into zeroizing memory.
pub fn pbkdf2(
    hash: HmacHash,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    length: usize,
) -> Zeroizing<Vec<u8>> {
    let mut key = Zeroizing::new(vec![0u8; length]);
    match hash {
        HmacHash::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut key),
        HmacHash::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut key),
        HmacHash::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut key),
    }
    key
}

/// A pre-shared AES key as an admin keeps it in a file: 32, 48 or 64 hex digits (spaces
/// and a final newline around them allowed), or the raw 16, 24 or 32 bytes. None if the
/// contents are neither.
pub fn parse_key_file(contents: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let trimmed = contents.trim_ascii();
    if matches!(trimmed.len(), 32 | 48 | 64) && trimmed.iter().all(u8::is_ascii_hexdigit) {
        let mut key = Zeroizing::new(vec![0u8; trimmed.len() / 2]);
        for (byte, pair) in key.iter_mut().zip(trimmed.chunks_exact(2)) {
            *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
        }
        return Some(key);
    }
    if matches!(contents.len(), 16 | 24 | 32) {
        let mut key = Zeroizing::new(Vec::with_capacity(contents.len()));
        key.extend_from_slice(contents);
        return Some(key);
    }
    None
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6030 Figure 6: the pre-shared key, its encrypted MAC key and secret, and the MAC.
    const KEY_HEX: &[u8] = b"12345678901234567890123456789012";
    const MAC_KEY_CIPHER: &str = "ESIzRFVmd4iZABEiM0RVZgKn6WjLaTC1sbeBMSvIhRejN9vJa2BOlSaMrR7I5wSX";
    const SECRET_CIPHER: &str = "AAECAwQFBgcICQoLDA0OD+cIHItlB3Wra1DUpxVvOx2lef1VmNPCMl8jwZqIUqGv";
    const SECRET_MAC: &str = "Su+NvtQfmvfJzF6bmQiJqoLRExc=";

    fn key() -> Zeroizing<Vec<u8>> {
        parse_key_file(KEY_HEX).unwrap()
    }

    #[test]
    fn rfc6030_figure6_decrypts_and_its_mac_matches() {
        let mac_key = decrypt(
            AesCbc::Aes128,
            &key(),
            decode_base64(MAC_KEY_CIPHER).unwrap(),
        )
        .unwrap();
        assert_eq!(
            mac_key.as_slice(),
            b"\x11\x22\x33\x44\x55\x66\x77\x88\x99\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\x00"
        );
        let cipher_value = decode_base64(SECRET_CIPHER).unwrap();
        let mac = decode_base64(SECRET_MAC).unwrap();
        assert!(mac_matches(HmacHash::Sha1, &mac_key, &cipher_value, &mac));
        let secret = decrypt(AesCbc::Aes128, &key(), cipher_value).unwrap();
        assert_eq!(secret.as_slice(), b"12345678901234567890");
    }

    #[test]
    fn altered_values_fail_the_mac_and_wrong_keys_fail_the_padding() {
        let mut cipher_value = decode_base64(SECRET_CIPHER).unwrap();
        cipher_value[20] ^= 1;
        let mac = decode_base64(SECRET_MAC).unwrap();
        let mac_key = [0x11u8; 20];
        assert!(!mac_matches(HmacHash::Sha1, &mac_key, &cipher_value, &mac));
        let mut wrong = key();
        wrong[0] ^= 0x80;
        assert_eq!(
            decrypt(
                AesCbc::Aes128,
                &wrong,
                decode_base64(MAC_KEY_CIPHER).unwrap()
            )
            .unwrap_err(),
            DecryptError::Padding
        );
        assert_eq!(
            decrypt(
                AesCbc::Aes256,
                &key(),
                decode_base64(SECRET_CIPHER).unwrap()
            )
            .unwrap_err(),
            DecryptError::KeyLength
        );
        assert_eq!(
            decrypt(AesCbc::Aes128, &key(), Zeroizing::new(vec![0u8; 16])).unwrap_err(),
            DecryptError::BadLength
        );
    }

    #[test]
    fn rfc6030_figure7_password_derives_the_key() {
        let salt = decode_base64("Ej7/PEpyEpw=").unwrap();
        let key = pbkdf2(HmacHash::Sha1, b"qwerty", &salt, 1000, 16);
        assert_eq!(
            key.as_slice(),
            b"\x65\x1e\x63\xcd\x57\x00\x84\x76\xaf\x1f\xf6\x42\x2c\xd0\x2e\x41"
        );
    }

    #[test]
    fn base64_ignores_xml_whitespace_and_refuses_garbage() {
        assert_eq!(
            decode_base64("MTIz\n   NDU2Nzg5MDEyMzQ1Njc4OTA=\n  ")
                .unwrap()
                .as_slice(),
            b"12345678901234567890"
        );
        assert!(decode_base64("MTIz!").is_none());
        assert!(decode_base64("MTI").is_none());
    }

    #[test]
    fn key_files_in_hex_or_raw() {
        assert_eq!(key().len(), 16);
        assert_eq!(key()[0], 0x12);
        assert_eq!(
            parse_key_file(b"  12345678901234567890123456789012\n")
                .unwrap()
                .as_slice(),
            key().as_slice()
        );
        let raw = [0xffu8; 16];
        assert_eq!(parse_key_file(&raw).unwrap().as_slice(), &raw);
        assert_eq!(parse_key_file(&[b'a'; 64]).unwrap().len(), 32);
        for bad in [&b"1234"[..], b"zz345678901234567890123456789012\n", b""] {
            assert!(parse_key_file(bad).is_none());
        }
    }

    #[test]
    fn algorithm_uris() {
        assert_eq!(
            AesCbc::from_uri("http://www.w3.org/2001/04/xmlenc#aes128-cbc"),
            Some(AesCbc::Aes128)
        );
        assert_eq!(
            AesCbc::from_uri("http://www.w3.org/2001/04/xmlenc#kw-aes128"),
            None
        );
        assert_eq!(
            HmacHash::from_uri("http://www.w3.org/2000/09/xmldsig#hmac-sha1"),
            Some(HmacHash::Sha1)
        );
    }
}

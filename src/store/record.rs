//! The secret record, `<store_dir>/<user>.toml`: TOML read and written with toml + serde,
//! the secret going from the file's zeroizing buffer straight into zeroizing memory, with
//! no copy left in an ordinary String.

#![forbid(unsafe_code)]

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use toml::de::DeTable;
use toml::Spanned;
use zeroize::Zeroizing;

use super::StoreError;
use crate::otp::verify::TotpParams;
use crate::otp::{Algorithm, Digits};
use crate::secret::SecretKey;

/// Time-based or counter-based codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Totp,
    Hotp,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Hotp => "hotp",
        }
    }

    /// The window a new record of this kind gets: steps each way (TOTP) or counters
    /// looked ahead (HOTP).
    pub fn default_window(self) -> u32 {
        match self {
            Self::Totp => DEFAULT_TOTP_WINDOW,
            Self::Hotp => DEFAULT_HOTP_WINDOW,
        }
    }
}

pub const DEFAULT_PERIOD: u32 = 30;
pub const DEFAULT_TOTP_WINDOW: u32 = 1;
pub const DEFAULT_HOTP_WINDOW: u32 = 10;
pub const MAX_HOTP_WINDOW: u32 = 100;
/// A limit of the algorithm, kept in otp/ where the policy takes it too.
pub use crate::otp::MAX_TOTP_WINDOW;
/// Longest token serial number or manufacturer name a record keeps, in bytes.
pub const MAX_LABEL_LEN: usize = 128;

/// A hardware token's serial number or manufacturer, as a record keeps it: 1 to 128 bytes
/// of printable text, no surrounding space, and no `"` or `\`, so it round-trips through the
/// record's string syntax unchanged.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenLabel(String);

impl TokenLabel {
    pub fn parse(text: &str) -> Option<TokenLabel> {
        let fits = !text.is_empty()
            && text.len() <= MAX_LABEL_LEN
            && text.trim() == text
            && !text
                .chars()
                .any(|c| c.is_control() || c == '"' || c == '\\');
        fits.then(|| TokenLabel(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TokenLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// An account's enrolled secret and how its codes are made.
#[derive(Debug)]
pub struct Record {
    pub kind: Kind,
    pub secret: SecretKey,
    pub algorithm: Algorithm,
    pub digits: Digits,
    /// Seconds per step (TOTP).
    pub period: u32,
    /// Steps accepted each way (TOTP), or counters looked ahead (HOTP).
    pub window: u32,
    /// The hardware token's serial number, when the secret came from a vendor's seed file.
    pub serial: Option<TokenLabel>,
    /// The hardware token's manufacturer, likewise.
    pub manufacturer: Option<TokenLabel>,
}

impl Record {
    /// A TOTP record with the defaults every authenticator app understands.
    pub fn new_totp(secret: SecretKey) -> Record {
        Record {
            kind: Kind::Totp,
            secret,
            algorithm: Algorithm::Sha1,
            digits: Digits::SIX,
            period: DEFAULT_PERIOD,
            window: DEFAULT_TOTP_WINDOW,
            serial: None,
            manufacturer: None,
        }
    }

    /// Whether `other` makes the same codes: same kind, secret (compared in constant
    /// time), algorithm, digits, period and window.
    pub fn same_secret(&self, other: &Record) -> bool {
        use subtle::ConstantTimeEq;
        let secret: bool = self.secret.as_bytes().ct_eq(other.secret.as_bytes()).into();
        secret
            && self.kind == other.kind
            && self.algorithm == other.algorithm
            && self.digits == other.digits
            && self.period == other.period
            && self.window == other.window
    }

    pub fn totp_params(&self) -> TotpParams {
        TotpParams {
            algorithm: self.algorithm,
            digits: self.digits,
            period: self.period,
            window: self.window,
        }
    }

    /// Parses a record. Errors name the file and line, never the secret.
    ///
    /// `contents` is the file in zeroizing memory. toml parses it without copying strings
    /// that hold no escape, so the secret goes from that buffer straight into the key's
    /// zeroizing bytes (`secret_key`); a secret written with escapes, which toml would
    /// decode into an ordinary String, is refused. Only a file that is not TOML at all
    /// makes toml keep a copy of the text in its error.
    pub fn parse(contents: &[u8], path: &Path) -> Result<Record, StoreError> {
        let text = std::str::from_utf8(contents).map_err(|_| StoreError::Record {
            path: path.to_owned(),
            line: 1,
            message: "not UTF-8 text".into(),
        })?;
        let error = |at: usize, message: String| StoreError::Record {
            path: path.to_owned(),
            line: line_of(text, at),
            message,
        };
        // Deserialized from the parsed document, not with toml::from_str: that would attach
        // a copy of the whole text, secret and all, to any error about a value.
        let document = DeTable::parse(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            let message = match e.message() {
                "duplicate key" => {
                    let key = e.span().and_then(|s| text.get(s)).unwrap_or_default();
                    match RECORD_KEYS.contains(&key) {
                        true => format!("{key}: given twice"),
                        false => "a key is given twice".into(),
                    }
                }
                other => other.replace('\n', "; "),
            };
            error(at, message)
        })?;
        let raw = RawRecord::deserialize(toml::de::Deserializer::from(document)).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            let message = e.message().replace('\n', "; ");
            match key_at(text, at) {
                Some(key) if !message.starts_with(key) => error(at, format!("{key}: {message}")),
                _ => error(at, message),
            }
        })?;

        let secret = raw
            .secret
            .ok_or_else(|| error(0, "no `secret` key".into()))?;
        let kind = raw.kind.map_or(Kind::Totp, Spanned::into_inner);
        let algorithm = match raw.algorithm {
            Some(name) => Algorithm::from_name(name.get_ref()).ok_or_else(|| {
                error(
                    name.span().start,
                    format!(
                        "algorithm: {:?} is not SHA1, SHA256 or SHA512",
                        name.get_ref()
                    ),
                )
            })?,
            None => Algorithm::Sha1,
        };
        let digits = match raw.digits {
            Some(n) => {
                let Integer(value) = *n.get_ref();
                u8::try_from(value)
                    .ok()
                    .and_then(Digits::new)
                    .ok_or_else(|| {
                        error(n.span().start, format!("digits: {value} is not 6, 7 or 8"))
                    })?
            }
            None => Digits::SIX,
        };
        let period = match raw.period {
            Some(n) => {
                let Integer(value) = *n.get_ref();
                u32::try_from(value)
                    .ok()
                    .filter(|p| (1..=3600).contains(p))
                    .ok_or_else(|| {
                        error(
                            n.span().start,
                            format!("period: {value} is not between 1 and 3600 seconds"),
                        )
                    })?
            }
            None => DEFAULT_PERIOD,
        };
        let max_window = match kind {
            Kind::Totp => MAX_TOTP_WINDOW,
            Kind::Hotp => MAX_HOTP_WINDOW,
        };
        // Checked against the kind, which may come later in the file; the error still
        // names the window's line.
        let window = match raw.window {
            Some(n) => {
                let Integer(value) = *n.get_ref();
                let at = n.span().start;
                let window = u32::try_from(value)
                    .map_err(|_| error(at, format!("window: {value} is negative or too large")))?;
                if window > max_window {
                    return Err(error(
                        at,
                        format!(
                            "window: {window} is more than {max_window} for a {} secret",
                            kind.name()
                        ),
                    ));
                }
                window
            }
            None => kind.default_window(),
        };
        let label = |key: &str, value: Option<Spanned<String>>| {
            match value {
            Some(text) => TokenLabel::parse(text.get_ref()).map(Some).ok_or_else(|| {
                error(
                    text.span().start,
                    format!(
                        "{key}: not 1 to {MAX_LABEL_LEN} bytes of printable text without surrounding spaces"
                    ),
                )
            }),
            None => Ok(None),
        }
        };
        Ok(Record {
            kind,
            secret,
            algorithm,
            digits,
            period,
            window,
            serial: label("serial", raw.serial)?,
            manufacturer: label("manufacturer", raw.manufacturer)?,
        })
    }

    /// The record as file contents, in zeroizing memory. Each value is written by toml's
    /// value serializer straight into this one buffer, reserved up front so that it never
    /// reallocates and leaves a copy of the secret behind.
    pub fn to_text(&self) -> Zeroizing<String> {
        let secret = self.secret.to_base32();
        let labels = [&self.serial, &self.manufacturer]
            .iter()
            .filter_map(|label| label.as_ref())
            .map(|label| label.as_str().len() * 6 + 32)
            .sum::<usize>();
        let mut text = Zeroizing::new(String::with_capacity(256 + secret.len() + labels));
        let reserved = text.capacity();
        text.push_str("# pam-mfa secret record: keep it private, it is a password.\n");
        line(&mut text, "kind", self.kind.name());
        line(&mut text, "secret", secret.as_str());
        line(&mut text, "algorithm", self.algorithm.name());
        line(&mut text, "digits", &self.digits.get());
        if self.kind == Kind::Totp {
            line(&mut text, "period", &self.period);
        }
        line(&mut text, "window", &self.window);
        if let Some(serial) = &self.serial {
            line(&mut text, "serial", serial.as_str());
        }
        if let Some(manufacturer) = &self.manufacturer {
            line(&mut text, "manufacturer", manufacturer.as_str());
        }
        debug_assert_eq!(text.capacity(), reserved, "the record's buffer grew");
        text
    }
}

/// `key = value` and a newline, the value encoded by toml.
fn line<T: Serialize + ?Sized>(text: &mut String, key: &str, value: &T) {
    text.push_str(key);
    text.push_str(" = ");
    // Strings, integers: toml's value serializer cannot fail on these.
    let _ = value.serialize(toml::ser::ValueSerializer::new(text));
    text.push('\n');
}

/// The keys a record may have.
const RECORD_KEYS: &[&str] = &[
    "kind",
    "secret",
    "algorithm",
    "digits",
    "period",
    "window",
    "serial",
    "manufacturer",
];

/// The record as written; each setting but the secret with where it is, for messages.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    kind: Option<Spanned<Kind>>,
    #[serde(default, deserialize_with = "secret_key")]
    secret: Option<SecretKey>,
    algorithm: Option<Spanned<String>>,
    digits: Option<Spanned<Integer>>,
    period: Option<Spanned<Integer>>,
    window: Option<Spanned<Integer>>,
    serial: Option<Spanned<String>>,
    manufacturer: Option<Spanned<String>>,
}

/// The secret, from the record's own buffer (a borrowed &str) into zeroizing bytes.
fn secret_key<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SecretKey>, D::Error> {
    struct Base32;
    impl<'de> de::Visitor<'de> for Base32 {
        type Value = SecretKey;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a base32 string")
        }
        fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<SecretKey, E> {
            SecretKey::from_base32(text).map_err(|e| E::custom(format!("secret: {e}")))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretKey, E> {
            Err(E::custom(ESCAPED))
        }
        fn visit_string<E: de::Error>(self, text: String) -> Result<SecretKey, E> {
            drop(Zeroizing::new(text));
            Err(E::custom(ESCAPED))
        }
    }
    const ESCAPED: &str = "secret: write the string as it is, with no escapes";
    deserializer.deserialize_str(Base32).map(Some)
}

/// A whole number; named so in messages ("expected an integer").
#[derive(Clone, Copy)]
struct Integer(i64);

impl<'de> Deserialize<'de> for Integer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Integer, D::Error> {
        struct Whole;
        impl de::Visitor<'_> for Whole {
            type Value = Integer;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Integer, E> {
                Ok(Integer(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Integer, E> {
                Ok(Integer(i64::try_from(n).unwrap_or(i64::MAX)))
            }
        }
        deserializer.deserialize_i64(Whole)
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Kind, D::Error> {
        struct KindName;
        impl de::Visitor<'_> for KindName {
            type Value = Kind;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"totp\" or \"hotp\"")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Kind, E> {
                match name {
                    "totp" => Ok(Kind::Totp),
                    "hotp" => Ok(Kind::Hotp),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
        }
        deserializer.deserialize_str(KindName)
    }
}

/// The record key whose name or value holds a byte offset, for messages. Parses the text
/// again (only on an error), borrowing from it as before.
fn key_at(text: &str, offset: usize) -> Option<&'static str> {
    let document = DeTable::parse(text).ok()?;
    let (key, _) = document
        .get_ref()
        .iter()
        .find(|(key, value)| key.span().contains(&offset) || value.span().contains(&offset))?;
    RECORD_KEYS
        .iter()
        .copied()
        .find(|known| *known == key.get_ref().as_ref())
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn parse(text: &str) -> Result<Record, StoreError> {
        Record::parse(text.as_bytes(), Path::new("alice.toml"))
    }

    #[test]
    fn minimal_record_takes_defaults() {
        let record = parse(&format!("secret = \"{SECRET}\"\n")).unwrap();
        assert_eq!(record.kind, Kind::Totp);
        assert_eq!(record.algorithm, Algorithm::Sha1);
        assert_eq!(record.digits, Digits::SIX);
        assert_eq!(record.period, 30);
        assert_eq!(record.window, 1);
        assert_eq!(record.secret.as_bytes(), b"12345678901234567890");
    }

    #[test]
    fn full_record_round_trips() {
        let text = format!(
            "# comment\nkind = \"totp\"\nsecret = \"{SECRET}\" # trailing\nalgorithm = \"SHA512\"\ndigits = 8\nperiod = 60\nwindow = 2\n"
        );
        let record = parse(&text).unwrap();
        assert_eq!(record.algorithm, Algorithm::Sha512);
        assert_eq!(record.digits.get(), 8);
        assert_eq!(record.period, 60);
        assert_eq!(record.window, 2);
        let again = parse(&record.to_text()).unwrap();
        assert_eq!(again.secret.as_bytes(), record.secret.as_bytes());
        assert_eq!(again.period, 60);
        assert_eq!(again.digits.get(), 8);
    }

    #[test]
    fn bad_records_name_the_line_and_never_the_secret() {
        let cases: &[(&str, usize, &str)] = &[
            ("kind = \"totp\"\n", 1, "no `secret`"),
            ("secret = \"JBSWY3DP1HPK3PXP\"\n", 1, "base32"),
            ("\nsecret = \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"\ndigits = 9\n", 3, "digits"),
            ("secret = \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"\ncolour = \"red\"\n", 2, "colour"),
            ("secret = \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"\nperiod = \"30\"\n", 2, "integer"),
            ("secret = \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"\nperiod = 0\n", 2, "period"),
            ("secret = \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"\nwindow = 50\n", 2, "window"),
            ("# a record\nsecret = \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"\n\nwindow = 11\nkind = \"totp\"\n", 4, "window"),
            ("secret = \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"\nalgorithm = \"MD5\"\n", 2, "MD5"),
            ("secret = \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"\nsecret = \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"\n", 2, "twice"),
            ("secret = GEZDGNBVGY3TQOJQ\n", 1, "string"),
            ("secret = \"GEZD\\u0041\"\n", 1, "string"),
            ("just text\n", 1, "expected `=`"),
            ("secret = 12\n", 1, "string"),
            ("secret = \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"\ndigits = 6.5\n", 2, "digits"),
            ("secret = \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"\nkind = \"motp\"\n", 2, "kind"),
        ];
        for (text, line, word) in cases {
            let err = parse(text).unwrap_err();
            let shown = err.to_string();
            assert!(
                matches!(&err, StoreError::Record { line: l, .. } if l == line),
                "{text:?}: {shown}"
            );
            assert!(shown.contains(word), "{text:?}: {shown}");
            assert!(
                !shown.contains("GEZDGNBV") && !shown.contains("JBSWY3DP"),
                "{shown}"
            );
        }
    }

    /// Records as the hand-written writer made them before the switch to toml + serde
    /// (tests/fixtures/records, written by commit 2604636's `Record::to_text`) read the same.
    #[test]
    fn records_in_the_earlier_format_are_read() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/records");
        let totp = std::fs::read(dir.join("totp.toml")).unwrap();
        let record = Record::parse(&totp, Path::new("totp.toml")).unwrap();
        assert_eq!(record.kind, Kind::Totp);
        assert_eq!(record.secret.as_bytes(), b"12345678901234567890");
        assert_eq!(
            (record.algorithm, record.digits.get()),
            (Algorithm::Sha1, 6)
        );
        assert_eq!((record.period, record.window), (30, 1));
        assert_eq!(*record.to_text(), String::from_utf8(totp).unwrap());

        let hotp = std::fs::read(dir.join("hotp-token.toml")).unwrap();
        let record = Record::parse(&hotp, Path::new("hotp-token.toml")).unwrap();
        assert_eq!(record.kind, Kind::Hotp);
        assert_eq!(record.secret.as_bytes(), b"1234567890".repeat(4));
        assert_eq!(
            (record.algorithm, record.digits.get()),
            (Algorithm::Sha256, 8)
        );
        assert_eq!(record.window, 10);
        assert_eq!(record.serial.as_ref().unwrap().as_str(), "987654321");
        assert_eq!(
            record.manufacturer.as_ref().unwrap().as_str(),
            "Feitian Technology Co.,Ltd"
        );
        assert_eq!(*record.to_text(), String::from_utf8(hotp).unwrap());
    }

    #[test]
    fn token_serial_and_manufacturer_round_trip() {
        let text = format!(
            "secret = \"{SECRET}\"\nkind = \"hotp\"\nserial = \"987654321\"\nmanufacturer = \"Feitian Technology Co.,Ltd\" # vendor\n"
        );
        let record = parse(&text).unwrap();
        assert_eq!(record.serial.as_ref().unwrap().as_str(), "987654321");
        assert_eq!(
            record.manufacturer.as_ref().unwrap().as_str(),
            "Feitian Technology Co.,Ltd"
        );
        let written = record.to_text();
        assert!(written.contains("serial = \"987654321\"\n"), "{}", *written);
        let again = parse(&written).unwrap();
        assert_eq!(again.serial, record.serial);
        assert_eq!(again.manufacturer, record.manufacturer);
        assert_eq!(again.secret.as_bytes(), record.secret.as_bytes());
    }

    #[test]
    fn records_without_a_token_write_no_token_keys() {
        let record = parse(&format!("secret = \"{SECRET}\"\n")).unwrap();
        assert!(record.serial.is_none() && record.manufacturer.is_none());
        let written = record.to_text();
        assert!(!written.contains("serial") && !written.contains("manufacturer"));
    }

    #[test]
    fn bad_token_labels_are_refused() {
        let cases: &[(&str, usize, &str)] = &[
            ("serial = \"\"\n", 2, "serial"),
            ("serial = \" 12\"\n", 2, "serial"),
            ("serial = 12\n", 2, "string"),
            ("manufacturer = \"a\tb\"\n", 2, "manufacturer"),
            ("serial = \"1\"\nserial = \"2\"\n", 3, "twice"),
        ];
        for (extra, line, word) in cases {
            let text = format!("secret = \"{SECRET}\"\n{extra}");
            let err = parse(&text).unwrap_err();
            let shown = err.to_string();
            assert!(
                matches!(&err, StoreError::Record { line: l, .. } if l == line),
                "{text:?}: {shown}"
            );
            assert!(shown.contains(word), "{text:?}: {shown}");
        }
        let long = "x".repeat(MAX_LABEL_LEN + 1);
        assert!(TokenLabel::parse(&long).is_none());
        assert!(TokenLabel::parse(&long[1..]).is_some());
        for bad in ["a\"b", "a\\b", "", " a", "a\n"] {
            assert!(TokenLabel::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let record = parse(&format!("secret = \"{SECRET}\"\n")).unwrap();
        let shown = format!("{record:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains("GEZD") && !shown.contains("1234567890"));
    }
}

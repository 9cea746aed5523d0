//! The secret record, `<store_dir>/<user>.toml`: a small TOML subset parsed by hand, so
//! the secret goes from the file buffer straight into zeroizing memory with no copy
//! left in a parser's strings.

#![forbid(unsafe_code)]

use std::fmt::{self, Write as _};
use std::path::Path;

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

    pub fn totp_params(&self) -> TotpParams {
        TotpParams {
            algorithm: self.algorithm,
            digits: self.digits,
            period: self.period,
            window: self.window,
        }
    }

    /// Parses a record. Errors name the file and line, never the secret.
    pub fn parse(contents: &[u8], path: &Path) -> Result<Record, StoreError> {
        let error = |line: usize, message: String| StoreError::Record {
            path: path.to_owned(),
            line,
            message,
        };
        let text = std::str::from_utf8(contents).map_err(|_| error(1, "not UTF-8 text".into()))?;

        let mut kind = None;
        let mut secret = None;
        let mut algorithm = None;
        let mut digits = None;
        let mut period = None;
        let mut window = None;
        let mut serial = None;
        let mut manufacturer = None;
        for (index, raw_line) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw_line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(error(line_no, "expected `key = value`".into()));
            };
            let key = key.trim();
            let value = Value::parse(value.trim()).ok_or_else(|| {
                error(
                    line_no,
                    format!("{key}: expected a \"string\" or an integer"),
                )
            })?;
            let duplicate = || error(line_no, format!("{key}: given twice"));
            match key {
                "kind" => {
                    let parsed = match value.string(key).map_err(|m| error(line_no, m))? {
                        "totp" => Kind::Totp,
                        "hotp" => Kind::Hotp,
                        other => {
                            return Err(error(
                                line_no,
                                format!("kind: {other:?} is not \"totp\" or \"hotp\""),
                            ))
                        }
                    };
                    if kind.replace(parsed).is_some() {
                        return Err(duplicate());
                    }
                }
                "secret" => {
                    let text = value.string(key).map_err(|m| error(line_no, m))?;
                    let key = SecretKey::from_base32(text)
                        .map_err(|e| error(line_no, format!("secret: {e}")))?;
                    if secret.replace(key).is_some() {
                        return Err(duplicate());
                    }
                }
                "algorithm" => {
                    let name = value.string(key).map_err(|m| error(line_no, m))?;
                    let parsed = Algorithm::from_name(name).ok_or_else(|| {
                        error(
                            line_no,
                            format!("algorithm: {name:?} is not SHA1, SHA256 or SHA512"),
                        )
                    })?;
                    if algorithm.replace(parsed).is_some() {
                        return Err(duplicate());
                    }
                }
                "digits" => {
                    let n = value.integer(key).map_err(|m| error(line_no, m))?;
                    let parsed = u8::try_from(n)
                        .ok()
                        .and_then(Digits::new)
                        .ok_or_else(|| error(line_no, format!("digits: {n} is not 6, 7 or 8")))?;
                    if digits.replace(parsed).is_some() {
                        return Err(duplicate());
                    }
                }
                "period" => {
                    let n = value.integer(key).map_err(|m| error(line_no, m))?;
                    let parsed = u32::try_from(n)
                        .ok()
                        .filter(|p| (1..=3600).contains(p))
                        .ok_or_else(|| {
                            error(
                                line_no,
                                format!("period: {n} is not between 1 and 3600 seconds"),
                            )
                        })?;
                    if period.replace(parsed).is_some() {
                        return Err(duplicate());
                    }
                }
                "window" => {
                    let n = value.integer(key).map_err(|m| error(line_no, m))?;
                    let parsed = u32::try_from(n).map_err(|_| {
                        error(line_no, format!("window: {n} is negative or too large"))
                    })?;
                    if window.replace((parsed, line_no)).is_some() {
                        return Err(duplicate());
                    }
                }
                "serial" | "manufacturer" => {
                    let text = value.string(key).map_err(|m| error(line_no, m))?;
                    let label = TokenLabel::parse(text).ok_or_else(|| {
                        error(
                            line_no,
                            format!(
                                "{key}: not 1 to {MAX_LABEL_LEN} bytes of printable text without surrounding spaces"
                            ),
                        )
                    })?;
                    let slot = if key == "serial" {
                        &mut serial
                    } else {
                        &mut manufacturer
                    };
                    if slot.replace(label).is_some() {
                        return Err(duplicate());
                    }
                }
                other => return Err(error(line_no, format!("unknown key {other:?}"))),
            }
        }

        let secret = secret.ok_or_else(|| error(1, "no `secret` key".into()))?;
        let kind = kind.unwrap_or(Kind::Totp);
        let (default_window, max_window) = match kind {
            Kind::Totp => (kind.default_window(), MAX_TOTP_WINDOW),
            Kind::Hotp => (kind.default_window(), MAX_HOTP_WINDOW),
        };
        // Checked here, against the kind, which may come later in the file; the error
        // still names the window's line.
        let (window, window_line) = window.unwrap_or((default_window, 1));
        if window > max_window {
            return Err(error(
                window_line,
                format!(
                    "window: {window} is more than {max_window} for a {} secret",
                    kind.name()
                ),
            ));
        }
        Ok(Record {
            kind,
            secret,
            algorithm: algorithm.unwrap_or(Algorithm::Sha1),
            digits: digits.unwrap_or(Digits::SIX),
            period: period.unwrap_or(DEFAULT_PERIOD),
            window,
            serial,
            manufacturer,
        })
    }

    /// The record as file contents, in zeroizing memory.
    pub fn to_text(&self) -> Zeroizing<String> {
        let secret = self.secret.to_base32();
        let labels = [&self.serial, &self.manufacturer]
            .iter()
            .filter_map(|label| label.as_ref())
            .map(|label| label.as_str().len() + 32)
            .sum::<usize>();
        // Reserved up front so the string never reallocates and leaves a copy behind.
        let mut text = Zeroizing::new(String::with_capacity(256 + secret.len() + labels));
        text.push_str("# pam-mfa secret record: keep it private, it is a password.\n");
        let _ = writeln!(text, "kind = \"{}\"", self.kind.name());
        text.push_str("secret = \"");
        text.push_str(&secret);
        text.push_str("\"\n");
        let _ = writeln!(text, "algorithm = \"{}\"", self.algorithm);
        let _ = writeln!(text, "digits = {}", self.digits.get());
        if self.kind == Kind::Totp {
            let _ = writeln!(text, "period = {}", self.period);
        }
        let _ = writeln!(text, "window = {}", self.window);
        if let Some(serial) = &self.serial {
            let _ = writeln!(text, "serial = \"{serial}\"");
        }
        if let Some(manufacturer) = &self.manufacturer {
            let _ = writeln!(text, "manufacturer = \"{manufacturer}\"");
        }
        text
    }
}

/// A value in the subset: a basic string without escapes, or a decimal integer.
enum Value<'a> {
    String(&'a str),
    Integer(i64),
}

impl<'a> Value<'a> {
    fn parse(text: &'a str) -> Option<Value<'a>> {
        // A trailing comment after the value is allowed, as in TOML.
        if let Some(rest) = text.strip_prefix('"') {
            let end = rest.find('"')?;
            let (inner, after) = (&rest[..end], rest[end + 1..].trim());
            if inner.contains('\\') || !(after.is_empty() || after.starts_with('#')) {
                return None;
            }
            return Some(Value::String(inner));
        }
        let number = text.split('#').next()?.trim();
        number.parse().ok().map(Value::Integer)
    }

    fn string(&self, key: &str) -> Result<&'a str, String> {
        match self {
            Value::String(s) => Ok(s),
            Value::Integer(_) => Err(format!("{key}: expected a string")),
        }
    }

    fn integer(&self, key: &str) -> Result<i64, String> {
        match self {
            Value::Integer(n) => Ok(*n),
            Value::String(_) => Err(format!("{key}: expected an integer")),
        }
    }
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
            ("just text\n", 1, "key = value"),
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

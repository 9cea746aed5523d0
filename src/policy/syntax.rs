//! The TOML the policy is written in, read by hand.
//!
//! The module reads the policy at every login, in a process that loaded it a moment ago;
//! with the `toml` crate that parse touched eight more pages of fresh code and cost about
//! 75 µs a login (BENCHMARKS.md). The policy needs little of TOML: `key = value` lines, the
//! `[[rule]]` array of tables, comments, and values that are strings, decimal integers,
//! booleans, local dates and arrays of those. That subset is read here; anything else in
//! TOML (inline tables, multi-line strings, floats, dotted keys, other tables) is refused
//! with a message that says so, never guessed at.
//!
//! Every document this reader accepts is valid TOML with the same values: the tests compare
//! it against the `toml` crate on the examples, the fixtures and the fuzzing corpus.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;

use crate::clock::Date;

/// A value and the byte offset where it starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub at: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    String(String),
    Integer(i64),
    Boolean(bool),
    /// A local date, `2027-01-31`.
    Date(Date),
    Array(Vec<Spanned<Value>>),
}

impl Value {
    /// The TOML type, for messages: "expected a string, found an integer".
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Boolean(_) => "a boolean",
            Value::Date(..) => "a date",
            Value::Array(_) => "an array",
        }
    }
}

/// `key = value` in a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: Spanned<String>,
    pub value: Spanned<Value>,
}

/// The top-level table, or one `[[rule]]`: `at` is where its header starts (0 for the top).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub at: usize,
    pub entries: Vec<Entry>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Document {
    pub top: Table,
    pub rules: Vec<Table>,
}

/// Where the text stops being the policy's TOML, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub at: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The only array of tables a policy has.
pub const RULE_TABLE: &str = "rule";

/// Deepest nesting of arrays accepted (the policy uses one level).
const MAX_DEPTH: usize = 8;

pub fn parse(text: &str) -> Result<Document, SyntaxError> {
    if text.starts_with('\u{feff}') {
        return Err(SyntaxError {
            at: 0,
            message: "the file starts with a byte order mark; save it as UTF-8 without one".into(),
        });
    }
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    let mut document = Document::default();
    // Keys of the table being read, with where each was set: a repeat is an error. (A
    // BTreeMap: no hashing, and no random keys fetched from the kernel at every login.)
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    loop {
        reader.skip_blank();
        match reader.peek() {
            None => return Ok(document),
            Some(b'\n') => reader.pos += 1,
            Some(b'\r') => reader.newline()?,
            Some(b'#') => {
                reader.comment()?;
                reader.end_of_line()?;
            }
            Some(b'[') => {
                let table = reader.header()?;
                document.rules.push(table);
                seen.clear();
            }
            Some(_) => {
                let entry = reader.entry()?;
                if document.rules.is_empty() && entry.key.value == RULE_TABLE {
                    return Err(SyntaxError {
                        at: entry.key.at,
                        message: "rule: each rule is a table that starts with [[rule]]".into(),
                    });
                }
                // Bare keys are written as they are: the text holds the key verbatim.
                let key = &text[entry.key.at..entry.key.at + entry.key.value.len()];
                if let Some(&first) = seen.get(key) {
                    let line = line_of(text, first);
                    return Err(SyntaxError {
                        at: entry.key.at,
                        message: about(
                            &entry.key.value,
                            &format!("set twice in the same table (first at line {line})"),
                        ),
                    });
                }
                seen.insert(key, entry.key.at);
                let table = document.rules.last_mut().unwrap_or(&mut document.top);
                table.entries.push(entry);
            }
        }
    }
}

/// 1-based line number of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

struct Reader<'t> {
    text: &'t str,
    bytes: &'t [u8],
    pos: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn error<T>(&self, at: usize, message: impl Into<String>) -> Result<T, SyntaxError> {
        Err(SyntaxError {
            at,
            message: message.into(),
        })
    }

    /// Spaces and tabs.
    fn skip_blank(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// A `\n` or `\r\n`.
    fn newline(&mut self) -> Result<(), SyntaxError> {
        match (self.peek(), self.bytes.get(self.pos + 1)) {
            (Some(b'\n'), _) => self.pos += 1,
            (Some(b'\r'), Some(b'\n')) => self.pos += 2,
            _ => return self.error(self.pos, "a carriage return must be followed by a newline"),
        }
        Ok(())
    }

    /// From `#` to the end of the line, which it leaves unread.
    fn comment(&mut self) -> Result<(), SyntaxError> {
        let start = self.pos;
        let end = self.bytes[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.bytes.len(), |i| start + i);
        let body = &self.text[start..end];
        let body = body.strip_suffix('\r').unwrap_or(body);
        if let Some(i) = body.find(is_forbidden_control) {
            return self.error(start + i, "a comment holds a control character");
        }
        self.pos = start + body.len();
        Ok(())
    }

    /// Blanks, an optional comment, then a newline or the end of the text.
    fn end_of_line(&mut self) -> Result<(), SyntaxError> {
        self.skip_blank();
        if self.peek() == Some(b'#') {
            self.comment()?;
        }
        match self.peek() {
            None => Ok(()),
            Some(b'\n' | b'\r') => self.newline(),
            Some(_) => self.error(self.pos, "expected the end of the line"),
        }
    }

    /// `[[rule]]`; the only table the policy has.
    fn header(&mut self) -> Result<Table, SyntaxError> {
        let at = self.pos;
        if !self.bytes[self.pos..].starts_with(b"[[") {
            return self.error(at, "a policy has no tables; each rule starts with [[rule]]");
        }
        self.pos += 2;
        self.skip_blank();
        let is_rule = self.bare_key() == RULE_TABLE;
        self.skip_blank();
        if !is_rule || !self.bytes[self.pos..].starts_with(b"]]") {
            return self.error(at, "unknown table; the only array of tables is [[rule]]");
        }
        self.pos += 2;
        self.end_of_line()?;
        Ok(Table {
            at,
            entries: Vec::new(),
        })
    }

    fn bare_key(&mut self) -> &str {
        let start = self.pos;
        while matches!(
            self.peek(),
            Some(b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-')
        ) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// `key = value`, then the end of the line.
    fn entry(&mut self) -> Result<Entry, SyntaxError> {
        let at = self.pos;
        let key = self.bare_key().to_owned();
        if key.is_empty() {
            return match self.peek() {
                Some(b'"' | b'\'') => self.error(at, "quoted keys are not used in the policy"),
                _ => self.error(at, "expected a key such as store_dir, or [[rule]]"),
            };
        }
        self.skip_blank();
        match self.peek() {
            Some(b'=') => self.pos += 1,
            Some(b'.') => {
                return self.error(at, about(&key, "dotted keys are not used in the policy"))
            }
            _ => return self.error(self.pos, about(&key, "expected `=` after the key")),
        }
        self.skip_blank();
        let value = self.value(0).map_err(|e| self.keyed(&key, e))?;
        self.end_of_line().map_err(|e| self.keyed(&key, e))?;
        Ok(Entry {
            key: Spanned { value: key, at },
            value,
        })
    }

    fn keyed(&self, key: &str, e: SyntaxError) -> SyntaxError {
        SyntaxError {
            at: e.at,
            message: about(key, &e.message),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Spanned<Value>, SyntaxError> {
        let at = self.pos;
        let value = match self.peek() {
            None | Some(b'\n' | b'\r' | b'#' | b',' | b']') => {
                return self.error(at, "expected a value")
            }
            Some(b'"') if self.bytes[at..].starts_with(b"\"\"\"") => {
                return self.error(at, "multi-line strings are not used in the policy")
            }
            Some(b'\'') if self.bytes[at..].starts_with(b"'''") => {
                return self.error(at, "multi-line strings are not used in the policy")
            }
            Some(b'"') => Value::String(self.basic_string()?),
            Some(b'\'') => Value::String(self.literal_string()?),
            Some(b'[') => Value::Array(self.array(depth)?),
            Some(b'{') => return self.error(at, "inline tables are not used in the policy"),
            Some(_) => self.scalar()?,
        };
        Ok(Spanned { value, at })
    }

    /// `"..."` with TOML's escapes.
    fn basic_string(&mut self) -> Result<String, SyntaxError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let start = self.pos;
            let run = self.bytes[start..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b == b'\n' || is_forbidden_byte(b))
                .map_or(self.bytes.len(), |i| start + i);
            out.push_str(&self.text[start..run]);
            self.pos = run;
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => out.push(self.escape()?),
                Some(b'\n') | None => {
                    return self.error(open, "a string is not closed on its line")
                }
                Some(_) => return self.error(self.pos, "a string holds a control character"),
            }
        }
    }

    /// After a backslash in a basic string.
    fn escape(&mut self) -> Result<char, SyntaxError> {
        let at = self.pos;
        self.pos += 1;
        let simple = match self.peek() {
            Some(b'b') => Some('\u{8}'),
            Some(b't') => Some('\t'),
            Some(b'n') => Some('\n'),
            Some(b'f') => Some('\u{c}'),
            Some(b'r') => Some('\r'),
            Some(b'"') => Some('"'),
            Some(b'\\') => Some('\\'),
            _ => None,
        };
        if let Some(c) = simple {
            self.pos += 1;
            return Ok(c);
        }
        let len = match self.peek() {
            Some(b'u') => 4,
            Some(b'U') => 8,
            _ => return self.error(at, "a string holds an unknown escape"),
        };
        let hex = self.bytes.get(self.pos + 1..self.pos + 1 + len);
        let code = hex
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())
            .and_then(char::from_u32);
        match code {
            Some(c) => {
                self.pos += 1 + len;
                Ok(c)
            }
            None => self.error(
                at,
                "a string holds an escape that is not a Unicode scalar value",
            ),
        }
    }

    /// `'...'`: no escapes.
    fn literal_string(&mut self) -> Result<String, SyntaxError> {
        let open = self.pos;
        let start = open + 1;
        let end = self.bytes[start..]
            .iter()
            .position(|&b| b == b'\'' || b == b'\n' || is_forbidden_byte(b))
            .map_or(self.bytes.len(), |i| start + i);
        match self.bytes.get(end) {
            Some(b'\'') => {
                self.pos = end + 1;
                Ok(self.text[start..end].to_owned())
            }
            Some(b'\n') | None => self.error(open, "a string is not closed on its line"),
            Some(_) => self.error(end, "a string holds a control character"),
        }
    }

    /// `[ value, value, ]`, over several lines if need be, with comments.
    fn array(&mut self, depth: usize) -> Result<Vec<Spanned<Value>>, SyntaxError> {
        let open = self.pos;
        if depth >= MAX_DEPTH {
            return self.error(open, "arrays are nested too deeply");
        }
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_array_space()?;
            match self.peek() {
                Some(b']') => {
                    self.pos += 1;
                    return Ok(items);
                }
                None => return self.error(open, "an array is not closed"),
                Some(_) => items.push(self.value(depth + 1)?),
            }
            self.skip_array_space()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(items);
                }
                None => return self.error(open, "an array is not closed"),
                Some(_) => return self.error(self.pos, "expected `,` or `]` in an array"),
            }
        }
    }

    /// Blanks, newlines and comments between array items.
    fn skip_array_space(&mut self) -> Result<(), SyntaxError> {
        loop {
            self.skip_blank();
            match self.peek() {
                Some(b'\n' | b'\r') => self.newline()?,
                Some(b'#') => self.comment()?,
                _ => return Ok(()),
            }
        }
    }

    /// A bare value: boolean, decimal integer, or date.
    fn scalar(&mut self) -> Result<Value, SyntaxError> {
        let at = self.pos;
        let end = self.bytes[at..]
            .iter()
            .position(|&b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b',' | b']' | b'#'))
            .map_or(self.bytes.len(), |i| at + i);
        let token = &self.text[at..end];
        let b = token.as_bytes();
        let time_follows = match b.get(10) {
            Some(b'T' | b't') => true,
            None => {
                self.bytes.get(end) == Some(&b' ')
                    && self.bytes.get(end + 1).is_some_and(u8::is_ascii_digit)
            }
            Some(_) => false,
        };
        if b.len() >= 10 && is_date_bytes(&b[..10]) && time_follows {
            return self.error(
                at,
                "date-times are not used in the policy; write a date such as 2027-01-31",
            );
        }
        let value = match token {
            "true" => Value::Boolean(true),
            "false" => Value::Boolean(false),
            _ if is_date(token) => {
                let number = |range: std::ops::Range<usize>| token[range].parse::<u8>().ok();
                let year = token[..4].parse::<i64>().ok();
                match (year, number(5..7), number(8..10)) {
                    (Some(y), Some(m), Some(d)) => match Date::new(y, m, d) {
                        Some(date) => Value::Date(date),
                        None => return self.error(at, "not a valid date"),
                    },
                    _ => return self.error(at, "not a valid date"),
                }
            }
            _ => match decimal(token) {
                Some(Some(n)) => Value::Integer(n),
                Some(None) => return self.error(at, "too large a number"),
                None => return self.error(
                    at,
                    "not a value the policy uses (a \"string\", a whole number, true or false, a date, or an [array])",
                ),
            },
        };
        self.pos = end;
        Ok(value)
    }
}

/// `2027-01-31`.
fn is_date(token: &str) -> bool {
    is_date_bytes(token.as_bytes())
}

fn is_date_bytes(b: &[u8]) -> bool {
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// A TOML decimal integer: optional sign, no leading zero, `_` only between digits.
/// `Some(None)` when it is one but does not fit in 64 bits.
fn decimal(token: &str) -> Option<Option<i64>> {
    let digits = token.strip_prefix(['+', '-']).unwrap_or(token);
    let b = digits.as_bytes();
    let well_formed = !b.is_empty()
        && b[0].is_ascii_digit()
        && b[b.len() - 1].is_ascii_digit()
        && !(b[0] == b'0' && b.len() > 1)
        && b.iter().all(|c| c.is_ascii_digit() || *c == b'_')
        && !digits.contains("__");
    if !well_formed {
        return None;
    }
    let plain: String = token.chars().filter(|&c| c != '_').collect();
    Some(plain.parse::<i64>().ok())
}

/// Control characters TOML forbids in strings and comments (tab is allowed).
fn is_forbidden_control(c: char) -> bool {
    (c.is_ascii_control() && c != '\t') && c != '\n'
}

fn is_forbidden_byte(b: u8) -> bool {
    (b < 0x20 && b != b'\t' && b != b'\n') || b == 0x7f
}

/// The `toml` crate as the reference for this reader: the unit tests and the fuzzing
/// target (feature `toml-oracle`) check that whatever is accepted here, TOML accepts
/// with the same values.
#[cfg(any(test, feature = "toml-oracle"))]
pub mod oracle {
    use super::{parse, Table, Value, RULE_TABLE};

    /// The same value as the `toml` crate represents it.
    fn as_toml(value: &Value) -> toml::Value {
        match value {
            Value::String(s) => toml::Value::String(s.clone()),
            Value::Integer(n) => toml::Value::Integer(*n),
            Value::Boolean(b) => toml::Value::Boolean(*b),
            Value::Date(d) => toml::Value::Datetime(
                format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
                    .parse()
                    .unwrap(),
            ),
            Value::Array(items) => {
                toml::Value::Array(items.iter().map(|i| as_toml(&i.value)).collect())
            }
        }
    }

    fn same_table(text: &str, ours: &Table, theirs: &toml::Table) {
        assert_eq!(ours.entries.len(), theirs.len(), "{text:?}");
        for entry in &ours.entries {
            let theirs = theirs
                .get(&entry.key.value)
                .unwrap_or_else(|| panic!("{text:?}: toml has no {}", entry.key.value));
            assert_eq!(&as_toml(&entry.value.value), theirs, "{text:?}");
        }
    }

    /// Whatever this reader accepts, TOML accepts with the same values.
    pub fn agrees_with_toml(text: &str) {
        let Ok(ours) = parse(text) else { return };
        let theirs: toml::Table = toml::from_str(text)
            .unwrap_or_else(|e| panic!("accepted what TOML refuses: {text:?}: {e}"));
        let mut top = theirs.clone();
        let rules = top.remove(RULE_TABLE);
        same_table(text, &ours.top, &top);
        let rules = match rules {
            Some(toml::Value::Array(rules)) => rules,
            None => Vec::new(),
            Some(other) => panic!("{text:?}: rule is {other:?}"),
        };
        assert_eq!(ours.rules.len(), rules.len(), "{text:?}");
        for (ours, theirs) in ours.rules.iter().zip(&rules) {
            let toml::Value::Table(theirs) = theirs else {
                panic!("{text:?}: {theirs:?}")
            };
            same_table(text, ours, theirs);
        }
    }
}

/// `message`, after `key: ` when the policy uses that key. Other text of the file is never
/// quoted, so that an error cannot print a line of a file that was not meant to be a policy
/// (a secret file given as `--config` by mistake); the line number says where.
fn about(key: &str, message: &str) -> String {
    if super::parse::is_policy_key(key) {
        format!("{key}: {message}")
    } else {
        message.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::oracle::agrees_with_toml;
    use super::*;
    use std::path::Path;

    fn read(text: &str) -> Document {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e} at {}", e.at))
    }

    fn refused(text: &str) -> SyntaxError {
        match parse(text) {
            Ok(doc) => panic!("{text:?} was accepted: {doc:?}"),
            Err(e) => e,
        }
    }

    fn value(text: &str) -> Value {
        let doc = read(&format!("k = {text}\n"));
        doc.top.entries.into_iter().next().unwrap().value.value
    }

    #[test]
    fn reads_keys_rules_comments_and_offsets() {
        let text = "# a policy\nstore_dir = \"/s\" # where\n\n[[rule]]   # first\nname = 'a'\nusers = [\n  \"x\", # one\n  \"y\",\n]\n[[ rule ]]\r\nname = \"b\"\r\n";
        let doc = read(text);
        assert_eq!(doc.top.entries.len(), 1);
        assert_eq!(doc.top.entries[0].key.value, "store_dir");
        assert_eq!(line_of(text, doc.top.entries[0].value.at), 2);
        assert_eq!(doc.rules.len(), 2);
        assert_eq!(line_of(text, doc.rules[0].at), 4);
        assert_eq!(line_of(text, doc.rules[1].at), 10);
        let Value::Array(users) = &doc.rules[0].entries[1].value.value else {
            panic!()
        };
        assert_eq!(users.len(), 2);
        assert_eq!(line_of(text, users[1].at), 8);
        agrees_with_toml(text);
    }

    #[test]
    fn reads_the_values_the_policy_uses() {
        assert_eq!(
            value("\"a\\tb\\\"c\\\\d\\u00e9\\U0001F600\""),
            Value::String("a\tb\"c\\d\u{e9}\u{1F600}".into())
        );
        assert_eq!(value("'C:\\x\\y'"), Value::String("C:\\x\\y".into()));
        assert_eq!(value("\"\""), Value::String(String::new()));
        assert_eq!(value("\"café ü\""), Value::String("café ü".into()));
        assert_eq!(value("0"), Value::Integer(0));
        assert_eq!(value("-17"), Value::Integer(-17));
        assert_eq!(value("+1_000"), Value::Integer(1000));
        assert_eq!(value("9223372036854775807"), Value::Integer(i64::MAX));
        assert_eq!(value("-9223372036854775808"), Value::Integer(i64::MIN));
        assert_eq!(value("true"), Value::Boolean(true));
        assert_eq!(value("false"), Value::Boolean(false));
        assert_eq!(
            value("2027-01-31"),
            Value::Date(Date::new(2027, 1, 31).unwrap())
        );
        assert_eq!(
            value("2028-02-29"),
            Value::Date(Date::new(2028, 2, 29).unwrap())
        );
        assert_eq!(value("[]"), Value::Array(vec![]));
        assert!(matches!(value("[[1], [\"a\"]]"), Value::Array(v) if v.len() == 2));
    }

    /// Each refusal names what is wrong and points at the right line.
    #[test]
    fn refuses_what_is_not_the_policy_s_toml() {
        let cases: &[(&str, usize, &str)] = &[
            ("k = \n", 1, "expected a value"),
            ("k = \"open\n", 1, "not closed"),
            ("k = 'open\n", 1, "not closed"),
            ("k = \"\"\"x\"\"\"\n", 1, "multi-line"),
            ("k = '''x'''\n", 1, "multi-line"),
            ("k = { a = 1 }\n", 1, "inline tables"),
            ("k = 1.5\n", 1, "not a value"),
            ("k = inf\n", 1, "not a value"),
            ("k = 0x10\n", 1, "not a value"),
            ("k = 01\n", 1, "not a value"),
            ("k = 1__0\n", 1, "not a value"),
            ("k = _1\n", 1, "not a value"),
            ("k = 1_\n", 1, "not a value"),
            ("k = 9223372036854775808\n", 1, "too large"),
            ("k = yes\n", 1, "not a value"),
            ("k = 2027-13-01\n", 1, "not a valid date"),
            ("k = 2027-02-29\n", 1, "not a valid date"),
            ("k = 2027-01-31T10:00:00Z\n", 1, "date-times"),
            ("k = 2027-01-31 10:00:00\n", 1, "date-times"),
            ("k = 10:00:00\n", 1, "not a value"),
            ("k = 2027-04-31\n", 1, "not a valid date"),
            ("k = \"a\\qb\"\n", 1, "unknown escape"),
            ("k = \"\\uD800\"\n", 1, "Unicode scalar"),
            ("k = \"\\u12\"\n", 1, "Unicode scalar"),
            ("k = \"a\u{1}b\"\n", 1, "control character"),
            ("k = 'a\u{7f}b'\n", 1, "control character"),
            ("k = $$ur\u{feff}ur\u{feff}awir\n", 1, "not a value"),
            ("k = 2027-01-3\u{e9}\n", 1, "not a value"),
            ("# bad \u{0} comment\n", 1, "control character"),
            ("k = 1 2\n", 1, "end of the line"),
            ("k = 1 x = 2\n", 1, "end of the line"),
            ("k = 1\rx = 2\n", 1, "carriage return"),
            ("k = [1, 2\n", 1, "not closed"),
            ("k = [1 2]\n", 1, "`,` or `]`"),
            ("k = [,]\n", 1, "expected a value"),
            ("k = [[[[[[[[[1]]]]]]]]]\n", 1, "nested"),
            ("\n\"quoted\" = 1\n", 2, "quoted keys"),
            ("a.b = 1\n", 1, "dotted keys"),
            ("a b = 1\n", 1, "expected `=`"),
            ("= 1\n", 1, "expected a key"),
            ("[limits]\n", 1, "no tables"),
            ("[[rules]]\n", 1, "unknown table"),
            ("[[rule]] x\n", 1, "end of the line"),
            ("[[rule]\n", 1, "unknown table"),
            ("a = 1\nb = 2\na = 3\n", 3, "set twice"),
            ("[[rule]]\nname = 'x'\nname = 'y'\n", 3, "set twice"),
            ("rule = \"required\"\n", 1, "[[rule]]"),
            (
                "\u{feff}default_mode = \"required\"\n",
                1,
                "byte order mark",
            ),
        ];
        for (text, line, word) in cases {
            let e = refused(text);
            assert_eq!(line_of(text, e.at), *line, "{text:?}: {e}");
            assert!(e.message.contains(word), "{text:?}: {e}");
            assert!(!e.message.contains('\n'), "{text:?}: {e}");
            agrees_with_toml(text);
        }
    }

    /// A file given as the policy by mistake: its text is not quoted back, only where.
    #[test]
    fn refusals_quote_only_the_policys_own_keys() {
        let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
        for text in [
            format!("{secret}\n\" RATE_LIMIT 3 30\n"),
            format!("{secret}.x = 1\n"),
            format!("k = {secret}\n"),
            format!("k = 9{secret}\n"),
            format!("[{secret}]\n"),
            format!("[[{secret}]]\n"),
            format!("{secret} = 1\n{secret} = 2\n"),
            format!("PASSWORD = {secret}\n"),
        ] {
            let e = refused(&text);
            assert!(!e.message.contains(secret), "{text:?}: {e}");
            assert!(!e.message.contains("PASSWORD"), "{text:?}: {e}");
        }
        // The policy's keys are named.
        assert!(refused("window = x\n").message.starts_with("window: "));
    }

    /// The same key in two different rules is no repeat.
    #[test]
    fn each_rule_is_its_own_table() {
        let doc = read("name = 1\n[[rule]]\nname = 'a'\n[[rule]]\nname = 'b'\n");
        assert_eq!(doc.rules.len(), 2);
    }

    /// Every example, fixture and corpus entry this reader accepts reads the same in TOML,
    /// and so do mutations of them: every line cut at every character.
    #[test]
    fn agrees_with_the_toml_crate() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut texts = Vec::new();
        for dir in [
            "tests/fixtures/evaluate",
            "tests/fixtures/policy-bad",
            "fuzz/corpus/policy",
        ] {
            for file in std::fs::read_dir(root.join(dir)).unwrap() {
                let bytes = std::fs::read(file.unwrap().path()).unwrap();
                texts.push(String::from_utf8_lossy(&bytes).into_owned());
            }
        }
        texts.push(std::fs::read_to_string(root.join("config/policy.toml")).unwrap());
        for doc in ["README.md", "docs/policy.md"] {
            let text = std::fs::read_to_string(root.join(doc)).unwrap();
            for block in text.split("```toml\n").skip(1) {
                texts.push(block.split("```").next().unwrap().to_owned());
            }
        }
        assert!(texts.len() > 15, "{}", texts.len());
        let mut accepted = 0;
        for text in &texts {
            if parse(text).is_ok() {
                accepted += 1;
            }
            agrees_with_toml(text);
            for (i, _) in text.char_indices() {
                agrees_with_toml(&text[..i]);
                let line_end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                agrees_with_toml(&format!("{}{}", &text[..i], &text[line_end..]));
            }
        }
        assert!(accepted > 10, "{accepted}");
    }
}

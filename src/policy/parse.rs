//! Reading the policy file: safe opening, TOML into typed values, and errors that name
//! the file, the line and the key.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer};
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::value::Datetime;
use toml::Spanned;

use super::store::{self as store_table, RawStore, STORE_KEYS};
use super::{
    Backend, Cidr, ItemLines, Limits, Mode, Policy, Rule, Window, DEFAULT_FAIL_DELAY_MS,
    DEFAULT_LOCKOUT_SECONDS, DEFAULT_MAX_FAILURES, DEFAULT_STORE_DIR, MAX_REMEMBER_SECONDS,
};
use crate::clock::Date;
use crate::otp::MAX_TOTP_WINDOW;
use crate::trusted_path::{check_ancestors, guarded};
use crate::username::UserName;

/// Largest policy file read; anything bigger is a mistake, not a policy.
const MAX_POLICY_BYTES: u64 = 1 << 20;

/// A policy that cannot be used. Display gives `FILE:LINE: what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.path.display(), line, self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for PolicyError {}

/// Reads and parses the policy at `path`. The file must be a regular file owned by root
/// or by the effective user and writable by nobody else: whoever can write it decides
/// who needs a second factor.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    parse(&read_text(path)?, path)
}

/// Like [`load`], but a policy that does not parse is reported whole, for `pam-mfa policy
/// check`: every error of the file, each at the line of the key it is about (see
/// [`all_errors`]). The module stops at the first, which is all it needs.
pub fn load_reporting_all(path: &Path) -> Result<Policy, Vec<PolicyError>> {
    let text = read_text(path).map_err(|e| vec![e])?;
    parse(&text, path).map_err(|first| {
        let all = all_errors(&text, path);
        if all.is_empty() {
            vec![first]
        } else {
            all
        }
    })
}

/// The policy file's text, read safely (see [`load`]).
fn read_text(path: &Path) -> Result<String, PolicyError> {
    let error = |message: String| PolicyError {
        path: path.to_owned(),
        line: None,
        message,
    };
    check_ancestors(path, "the policy").map_err(error)?;
    // O_NONBLOCK: a FIFO put where the policy should be opens at once, and is refused
    // below, instead of holding every login until something writes to it.
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => error("the policy is a symbolic link; give the real path".into()),
            _ => error(format!("cannot open the policy: {e}")),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| error(format!("cannot stat the policy: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(error("the policy is not a regular file".into()));
    }
    guarded(&meta, false, || "the policy".into()).map_err(error)?;
    if meta.len() > MAX_POLICY_BYTES {
        return Err(error("the policy is larger than 1 MiB".into()));
    }
    // Sized from the stat above, one byte more to notice a file that grew meanwhile.
    let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
    (&mut file)
        .take(MAX_POLICY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| error(format!("cannot read the policy: {e}")))?;
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        return Err(error("the policy is larger than 1 MiB".into()));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        PolicyError {
            path: path.to_owned(),
            line: Some(line),
            message: "the policy is not UTF-8 text".into(),
        }
    })?;
    Ok(text)
}

/// The policy as written: what serde reads from the TOML, each value with the span it
/// came from, so that a check made after reading still names the line. A new table (such
/// as a later `[store]`) is one more field here and one more key in `POLICY_KEYS`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    store_dir: Option<Spanned<String>>,
    default_mode: Option<Spanned<Mode>>,
    window: Option<Spanned<i64>>,
    max_failures: Option<Spanned<i64>>,
    lockout_seconds: Option<Spanned<i64>>,
    fail_delay_ms: Option<Spanned<i64>>,
    store: Option<RawStore>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

/// One `[[rule]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    mode: Spanned<Mode>,
    users: Option<Spanned<Vec<Spanned<String>>>>,
    groups: Option<Spanned<Vec<Spanned<String>>>>,
    uids: Option<Spanned<Vec<Spanned<Uid>>>>,
    services: Option<Spanned<Vec<Spanned<String>>>>,
    from: Option<Spanned<Vec<Spanned<String>>>>,
    enroll_by: Option<Spanned<Datetime>>,
    window: Option<Spanned<i64>>,
    max_failures: Option<Spanned<i64>>,
    lockout_seconds: Option<Spanned<i64>>,
    self_enroll: Option<Spanned<bool>>,
    remember_seconds: Option<Spanned<i64>>,
    allow_root: Option<Spanned<bool>>,
}

/// The keys of `RawPolicy` and `RawRule`, for "did you mean" and "expected one of".
const POLICY_KEYS: &[&str] = &[
    "store_dir",
    "default_mode",
    "window",
    "max_failures",
    "lockout_seconds",
    "fail_delay_ms",
    "store",
    "rule",
];
const RULE_KEYS: &[&str] = &[
    "name",
    "mode",
    "users",
    "groups",
    "uids",
    "services",
    "from",
    "enroll_by",
    "window",
    "max_failures",
    "lockout_seconds",
    "self_enroll",
    "remember_seconds",
    "allow_root",
];

/// A mode as the policy writes it: `"required"`, `"optional"` or `"exempt"`.
impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Mode, D::Error> {
        struct ModeName;
        impl de::Visitor<'_> for ModeName {
            type Value = Mode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("one of \"required\", \"optional\", \"exempt\"")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Mode, E> {
                match name {
                    "required" => Ok(Mode::Required),
                    "optional" => Ok(Mode::Optional),
                    "exempt" => Ok(Mode::Exempt),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
        }
        deserializer.deserialize_str(ModeName)
    }
}

/// An item of `uids`: `1000`, `"1000"` or `"1000-59999"`, checked by `uid_range`.
enum Uid {
    Number(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for Uid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Uid, D::Error> {
        struct UidItem;
        impl de::Visitor<'_> for UidItem {
            type Value = Uid;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a uid or a range such as \"1000-59999\"")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Uid, E> {
                Ok(Uid::Number(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Uid, E> {
                i64::try_from(n)
                    .map(Uid::Number)
                    .map_err(|_| E::custom(format!("{n} is not a uid")))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Uid, E> {
                Ok(Uid::Text(text.to_owned()))
            }
        }
        deserializer.deserialize_any(UidItem)
    }
}

/// An error in the policy: the byte offset to point at, and the message.
type Bad = (usize, String);

/// Parses policy text; `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<Policy, PolicyError> {
    let lines = Lines::new(text);
    let error_at = |offset: usize, message: String| PolicyError {
        path: path.to_owned(),
        line: Some(lines.of(offset)),
        message,
    };
    // TOML allows one; an editor that adds it unasked should be told, not obeyed quietly.
    if text.starts_with('\u{feff}') {
        return Err(error_at(
            0,
            "the file starts with a byte order mark; save it as UTF-8 without one".into(),
        ));
    }
    let raw: RawPolicy = toml::from_str(text).map_err(|e| {
        let (at, message) = explain(text, &e);
        PolicyError {
            path: path.to_owned(),
            line: at.map(|at| lines.of(at)),
            message,
        }
    })?;

    let store_dir_line = raw.store_dir.as_ref().map(|d| lines.of(d.span().start));
    let store_dir = match raw.store_dir {
        Some(dir) => {
            let start = dir.span().start;
            let dir = PathBuf::from(dir.into_inner());
            if !dir.is_absolute() {
                return Err(error_at(start, "store_dir must be an absolute path".into()));
            }
            dir
        }
        None => PathBuf::from(DEFAULT_STORE_DIR),
    };
    let default_mode = raw.default_mode.map_or(Mode::Optional, Spanned::into_inner);
    let top = Limits {
        window: optional(&raw.window, "window", 0, u64::from(MAX_TOTP_WINDOW))
            .map_err(|(at, m)| error_at(at, m))?
            .map_or(Window::Record, |w| Window::Steps(w as u32)),
        max_failures: optional(&raw.max_failures, "max_failures", 1, 1000)
            .map_err(|(at, m)| error_at(at, m))?
            .map_or(DEFAULT_MAX_FAILURES, |n| n as u32),
        lockout_seconds: optional(&raw.lockout_seconds, "lockout_seconds", 1, 30 * 86_400)
            .map_err(|(at, m)| error_at(at, m))?
            .unwrap_or(DEFAULT_LOCKOUT_SECONDS),
    };
    let fail_delay_ms = optional(&raw.fail_delay_ms, "fail_delay_ms", 0, 30_000)
        .map_err(|(at, m)| error_at(at, m))?
        .map_or(DEFAULT_FAIL_DELAY_MS, |n| n as u32);
    let store = match raw.store {
        Some(table) => {
            store_table::backend(table, &|at| lines.of(at)).map_err(|(at, m)| error_at(at, m))?
        }
        None => Backend::File,
    };

    let mut rules: Vec<Rule> = Vec::with_capacity(raw.rule.len());
    // Each rule's name and line: one lookup per rule keeps a policy of many rules linear
    // (n log n) to read. A BTreeMap needs no random hash keys at every login.
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for spanned in raw.rule {
        let rule_start = spanned.span().start;
        let rule =
            parse_rule(spanned.into_inner(), rule_start, &top, &names, &lines).map_err(|bad| {
                let (at, m) = bad.into_iter().next().unwrap_or_default();
                error_at(at, m)
            })?;
        names.insert(rule.name.clone(), rule.line);
        rules.push(rule);
    }

    Ok(Policy {
        path: path.to_owned(),
        store_dir,
        store_dir_line,
        default_mode,
        limits: top,
        fail_delay_ms,
        store,
        rules,
    })
}

/// Every error of a policy that does not parse, in the order of the file: a syntax error
/// (after which nothing can be read), the top level's keys, and each rule on its own (its
/// keys, then its first error of meaning), so that one rule's mistake does not hide the
/// next rule's. Empty when the policy parses.
pub fn all_errors(text: &str, path: &Path) -> Vec<PolicyError> {
    let lines = Lines::new(text);
    let error_at = |at: Option<usize>, message: String| PolicyError {
        path: path.to_owned(),
        line: at.map(|at| lines.of(at)),
        message,
    };
    let mut errors = Vec::new();
    let body = match text.strip_prefix('\u{feff}') {
        Some(rest) => {
            errors.push(error_at(
                Some(0),
                "the file starts with a byte order mark; save it as UTF-8 without one".into(),
            ));
            rest
        }
        None => text,
    };
    let shift = text.len() - body.len();
    // A syntax error leaves no document; each [[rule]] header found in the text then
    // starts a part read on its own (the top level before the first), so that the
    // syntax error hides only what its own part says.
    let (headers, syntax_line) = match DeTable::parse(body) {
        Ok(document) => {
            let headers: Vec<std::ops::Range<usize>> = match document.get_ref().get("rule") {
                Some(value) => match value.get_ref() {
                    DeValue::Array(items) => items.iter().map(|item| item.span()).collect(),
                    _ => Vec::new(),
                },
                None => Vec::new(),
            };
            (headers, None)
        }
        Err(e) => {
            let (at, message) = explain_at(body, e.span(), e.message());
            let headers = rule_headers(body);
            let rest = if headers.is_empty() {
                "the rest of the file is not checked"
            } else {
                "the rest of its part is not checked; the top level and every [[rule]] are \
                 checked on their own"
            };
            errors.push(error_at(
                at.map(|at| at + shift),
                format!("{message} (a syntax error: {rest})"),
            ));
            if headers.is_empty() {
                return errors;
            }
            (headers, Some(at.map(|at| lines.of(at + shift))))
        }
    };
    // After a syntax error, the first part (in the file's order) that is not TOML on its
    // own is the one the syntax error is in (the parser stops at the first error, so the
    // parts before it read): it is not read again. A later part with a syntax error of its
    // own has it reported.
    let mut cause_found = syntax_line.is_none();
    let mut is_cause = |part: &str| {
        let cause = !cause_found && DeTable::parse(part).is_err();
        cause_found |= cause;
        cause
    };
    // The top level, with the rules read as anything: each is read on its own below.
    // After a syntax error only its own text is read: the rules would not parse.
    let top_text = match (syntax_line, headers.first()) {
        (Some(_), Some(first)) => &body[..first.start],
        _ => body,
    };
    let top = match toml::from_str::<RawTop>(top_text) {
        Ok(top) => Some(top),
        Err(_) if is_cause(top_text) => None,
        Err(e) => {
            let (at, message) = explain(top_text, &e);
            errors.push(error_at(at.map(|at| at + shift), message));
            None
        }
    };
    let mut limits = Limits {
        window: Window::Record,
        max_failures: DEFAULT_MAX_FAILURES,
        lockout_seconds: DEFAULT_LOCKOUT_SECONDS,
    };
    if let Some(top) = top {
        if let Some(dir) = &top.store_dir {
            if !Path::new(dir.get_ref()).is_absolute() {
                errors.push(error_at(
                    Some(dir.span().start + shift),
                    "store_dir must be an absolute path".into(),
                ));
            }
        }
        let mut check = |value: &Option<Spanned<i64>>, key: &str, min: u64, max: u64| {
            optional(value, key, min, max)
                .map_err(|(at, m)| errors.push(error_at(Some(at + shift), m)))
                .ok()
                .flatten()
        };
        if let Some(w) = check(&top.window, "window", 0, u64::from(MAX_TOTP_WINDOW)) {
            limits.window = Window::Steps(w as u32);
        }
        if let Some(n) = check(&top.max_failures, "max_failures", 1, 1000) {
            limits.max_failures = n as u32;
        }
        if let Some(n) = check(&top.lockout_seconds, "lockout_seconds", 1, 30 * 86_400) {
            limits.lockout_seconds = n;
        }
        check(&top.fail_delay_ms, "fail_delay_ms", 0, 30_000);
        if let Some(table) = top.store {
            if let Err((at, m)) = store_table::backend(table, &|at| lines.of(at + shift)) {
                errors.push(error_at(Some(at + shift), m));
            }
        }
    }
    // Each rule's text runs from the end of its [[rule]] header to the next header.
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (index, header) in headers.iter().enumerate() {
        let end = headers.get(index + 1).map_or(body.len(), |next| next.start);
        let Some(rule_text) = body.get(header.end..end) else {
            continue;
        };
        // The rule's text is read as a document of its own, of the same length as the
        // file: blanks in front keep every offset (and so every line) where it was.
        let mut padded = " ".repeat(header.end);
        padded.push_str(rule_text);
        let raw = match toml::from_str::<RawRule>(&padded) {
            Ok(raw) => raw,
            Err(e) => {
                let (at, message) = explain_at(body, e.span(), e.message());
                let at = if message.starts_with("a [[rule]] needs") {
                    header.start
                } else {
                    at.unwrap_or(header.start)
                };
                if !is_cause(&padded) {
                    errors.push(error_at(Some(at + shift), message));
                }
                continue;
            }
        };
        match parse_rule(raw, header.start, &limits, &names, &lines) {
            Ok(rule) => {
                names.insert(rule.name.clone(), rule.line);
            }
            Err(bad) => errors.extend(
                bad.into_iter()
                    .map(|(at, message)| error_at(Some(at + shift), message)),
            ),
        }
    }
    errors
}

/// Where the `[[rule]]` headers are, found in the text itself (for a file with a syntax
/// error, which has no document to ask): a line that starts, after blanks, with
/// `[[rule]]` (blanks inside the brackets allowed), followed by nothing but a comment.
fn rule_headers(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut headers = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset + (line.len() - line.trim_start().len());
        offset += line.len();
        let Some(rest) = line.trim_start().strip_prefix("[[") else {
            continue;
        };
        let Some(inner_end) = rest.find("]]") else {
            continue;
        };
        let after = rest[inner_end + 2..].trim();
        if rest[..inner_end].trim() == "rule" && (after.is_empty() || after.starts_with('#')) {
            headers.push(start..start + 2 + inner_end + 2);
        }
    }
    headers
}

/// The top level of the policy as [`all_errors`] reads it: the rules are left for later.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTop {
    store_dir: Option<Spanned<String>>,
    #[allow(dead_code)]
    default_mode: Option<Spanned<Mode>>,
    window: Option<Spanned<i64>>,
    max_failures: Option<Spanned<i64>>,
    lockout_seconds: Option<Spanned<i64>>,
    fail_delay_ms: Option<Spanned<i64>>,
    store: Option<RawStore>,
    #[allow(dead_code)]
    #[serde(default)]
    rule: Vec<de::IgnoredAny>,
}

/// Where a TOML or serde error points, and its message on one line, with the key it is
/// about. Messages quote nothing of the file but the policy's own keys and their values:
/// a file given as `--config` by mistake (a google-authenticator file, a key file) must not
/// have its text printed.
fn explain(text: &str, error: &toml::de::Error) -> (Option<usize>, String) {
    explain_at(text, error.span(), error.message())
}

/// [`explain`] for an error's span and message.
fn explain_at(
    text: &str,
    span: Option<std::ops::Range<usize>>,
    message: &str,
) -> (Option<usize>, String) {
    let at = span.as_ref().map(|s| s.start);
    let message = message.trim().replace('\n', "; ");
    let Some(span) = span else {
        return (at, message);
    };
    // Syntax errors come from the parser, before there is a document to look keys up in.
    let Ok(document) = DeTable::parse(text) else {
        if message == "duplicate key" {
            let key = text.get(span).unwrap_or_default();
            return (at, about(key, "set twice in the same table"));
        }
        return (at, message);
    };
    let found = key_at(document.get_ref(), span.start, POLICY_KEYS);
    if message.starts_with("unknown field `") {
        if let Some((key, expected)) = &found {
            return (at, unknown(key, expected));
        }
    }
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        return (at, format!("a [[rule]] needs `{field}`"));
    }
    match found {
        Some((key, _)) if key == "rule" && message.starts_with("invalid type") => (
            at,
            "rule: each rule is a table that starts with [[rule]]".into(),
        ),
        Some((key, _)) => (at, about(&key, &message)),
        None => (at, message),
    }
}

/// The innermost key whose name or value holds the byte offset, and the keys of the table
/// it is in (the top level's, a `[[rule]]`'s or `[store]`'s).
fn key_at(
    table: &DeTable<'_>,
    offset: usize,
    keys: &'static [&'static str],
) -> Option<(String, &'static [&'static str])> {
    for (key, value) in table.iter() {
        let holds = |span: std::ops::Range<usize>| span.contains(&offset) || span.start == offset;
        if holds(key.span()) {
            return Some((key.get_ref().to_string(), keys));
        }
        if let (DeValue::Table(inner), "store") = (value.get_ref(), key.get_ref().as_ref()) {
            if let Some(found) = key_at(inner, offset, STORE_KEYS) {
                return Some(found);
            }
        }
        if let DeValue::Array(items) = value.get_ref() {
            for item in items.iter() {
                if let DeValue::Table(inner) = item.get_ref() {
                    let inner_keys = if key.get_ref() == "rule" {
                        RULE_KEYS
                    } else {
                        keys
                    };
                    if let Some(found) = key_at(inner, offset, inner_keys) {
                        return Some(found);
                    }
                    if holds(item.span()) {
                        return Some((key.get_ref().to_string(), keys));
                    }
                }
            }
        }
        if holds(value.span()) {
            return Some((key.get_ref().to_string(), keys));
        }
    }
    None
}

/// `message`, after `key: ` when the policy uses that key; other names are not quoted.
fn about(key: &str, message: &str) -> String {
    if is_policy_key(key) {
        format!("{key}: {message}")
    } else {
        message.to_owned()
    }
}

/// Whether `key` is one the policy uses, at the top level or in a rule.
fn is_policy_key(key: &str) -> bool {
    POLICY_KEYS.contains(&key) || RULE_KEYS.contains(&key) || STORE_KEYS.contains(&key)
}

/// An unknown key, with the known one a typo meant. The key is quoted only when it is
/// written as the policy's keys are (a short lowercase name): a secret file's line is not.
fn unknown(key: &str, expected: &[&str]) -> String {
    let near = expected
        .iter()
        .map(|known| (edit_distance(known, key), *known))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, known)| known);
    let key_like = !key.is_empty()
        && key.len() <= 32
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    match (near, key_like) {
        (Some(known), true) => format!("unknown key `{key}`; did you mean `{known}`?"),
        (None, true) => format!(
            "unknown key `{key}`, expected one of {}",
            expected.join(", ")
        ),
        (_, false) => format!(
            "an unknown key (not shown: it is not written as a policy key), expected one of {}",
            expected.join(", ")
        ),
    }
}

/// Levenshtein distance, for suggesting the key a typo meant.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Where each line of the text starts, so that finding the line of an offset is a binary
/// search: counting newlines from the top for each of many rules made reading a large
/// policy quadratic.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Lines {
        let newlines = text.bytes().enumerate().filter(|&(_, b)| b == b'\n');
        Lines {
            starts: std::iter::once(0)
                .chain(newlines.map(|(i, _)| i + 1))
                .collect(),
        }
    }

    /// 1-based line number of a byte offset.
    fn of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset)
    }
}
/// A list condition (users, groups, uids, services, from). An empty one is refused: read
/// as no condition it would match everyone, the opposite of what `from = []` says.
fn list<T>(key: &str, value: Option<Spanned<Vec<Spanned<T>>>>) -> Result<Vec<Spanned<T>>, Bad> {
    let Some(items) = value else {
        return Ok(Vec::new());
    };
    if items.get_ref().is_empty() {
        return Err((
            items.span().start,
            format!("{key}: an empty list names nothing; leave {key} out for a rule that does not look at it"),
        ));
    }
    Ok(items.into_inner())
}

fn parse_rule(
    raw: RawRule,
    rule_start: usize,
    top: &Limits,
    earlier: &BTreeMap<String, usize>,
    lines: &Lines,
) -> Result<Rule, Vec<Bad>> {
    // Every error of meaning is collected, in the order of the checks, so that
    // `policy check` shows them all; the module needs only the first.
    let mut bad: Vec<Bad> = Vec::new();
    let name_start = raw.name.span().start;
    // Where each key's value starts, so that what is said about a key later (here, or by
    // `pam-mfa policy check`) names its line rather than the [[rule]] header.
    let key_starts: Vec<(&'static str, usize)> = [
        ("name", Some(name_start)),
        ("mode", Some(raw.mode.span().start)),
        ("users", raw.users.as_ref().map(|v| v.span().start)),
        ("groups", raw.groups.as_ref().map(|v| v.span().start)),
        ("uids", raw.uids.as_ref().map(|v| v.span().start)),
        ("services", raw.services.as_ref().map(|v| v.span().start)),
        ("from", raw.from.as_ref().map(|v| v.span().start)),
        ("enroll_by", raw.enroll_by.as_ref().map(|v| v.span().start)),
        ("window", raw.window.as_ref().map(|v| v.span().start)),
        (
            "max_failures",
            raw.max_failures.as_ref().map(|v| v.span().start),
        ),
        (
            "lockout_seconds",
            raw.lockout_seconds.as_ref().map(|v| v.span().start),
        ),
        (
            "self_enroll",
            raw.self_enroll.as_ref().map(|v| v.span().start),
        ),
        (
            "remember_seconds",
            raw.remember_seconds.as_ref().map(|v| v.span().start),
        ),
        (
            "allow_root",
            raw.allow_root.as_ref().map(|v| v.span().start),
        ),
    ]
    .into_iter()
    .filter_map(|(key, start)| start.map(|start| (key, start)))
    .collect();
    let key_start = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| key_starts.iter().find(|(key, _)| key == k).map(|(_, s)| *s))
            .unwrap_or(rule_start)
    };
    let mut item_lines = ItemLines::default();
    let name = raw.name.into_inner();
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        bad.push((name_start, "a rule's name must be non-empty text".into()));
    } else if let Some(line) = earlier.get(&name) {
        bad.push((
            name_start,
            format!("rule name {name:?} is already used by the rule at line {line}"),
        ));
    }
    let at = |start: usize, message: String| (start, format!("rule {name:?}: {message}"));
    let mode = *raw.mode.get_ref();

    let mut users = Vec::new();
    for user in list("users", raw.users).unwrap_or_else(|(o, m)| {
        bad.push(at(o, m));
        Vec::new()
    }) {
        if let Err(e) = UserName::parse(user.get_ref()) {
            bad.push(at(user.span().start, format!("users: {e}")));
            continue;
        }
        item_lines.users.push(lines.of(user.span().start));
        users.push(user.into_inner());
    }
    let mut groups = Vec::new();
    for group in list("groups", raw.groups).unwrap_or_else(|(o, m)| {
        bad.push(at(o, m));
        Vec::new()
    }) {
        let g = group.get_ref();
        // Directory groups have spaces (`domain admins@corp.example.com`); only space at
        // either end, which no group name has, is taken for a typo.
        if g.trim().is_empty() || g.trim() != g || g.chars().any(char::is_control) {
            bad.push(at(
                group.span().start,
                format!("groups: {g:?} is not a valid group name"),
            ));
            continue;
        }
        item_lines.groups.push(lines.of(group.span().start));
        groups.push(group.into_inner());
    }
    let mut uids = Vec::new();
    for uid in list("uids", raw.uids).unwrap_or_else(|(o, m)| {
        bad.push(at(o, m));
        Vec::new()
    }) {
        match uid_range(uid.get_ref()) {
            Ok(range) => uids.push(range),
            Err(m) => bad.push(at(uid.span().start, format!("uids: {m}"))),
        }
    }
    let mut services = Vec::new();
    for service in list("services", raw.services).unwrap_or_else(|(o, m)| {
        bad.push(at(o, m));
        Vec::new()
    }) {
        let s = service.get_ref();
        if s.is_empty() || s.contains('/') || s.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            bad.push(at(
                service.span().start,
                format!("services: {s:?} is not a PAM service name"),
            ));
            continue;
        }
        item_lines.services.push(lines.of(service.span().start));
        services.push(service.into_inner());
    }
    let mut from = Vec::new();
    for block in list("from", raw.from).unwrap_or_else(|(o, m)| {
        bad.push(at(o, m));
        Vec::new()
    }) {
        match Cidr::parse(block.get_ref()) {
            Ok(cidr) => from.push(cidr),
            Err(m) => bad.push(at(block.span().start, format!("from: {m}"))),
        }
    }
    let enroll_by = match &raw.enroll_by {
        Some(value) => {
            let start = value.span().start;
            let when = value.get_ref();
            let date = match (when.date, when.time, when.offset) {
                (Some(d), None, None) => Date::new(i64::from(d.year), d.month, d.day),
                _ => None,
            };
            if date.is_none() {
                bad.push(at(
                    start,
                    "enroll_by: expected a date such as 2027-01-31".into(),
                ));
            } else if mode != Mode::Required {
                bad.push(at(
                    start,
                    "enroll_by only makes sense on a required rule".into(),
                ));
            }
            date
        }
        None => None,
    };
    let mut setting = |value: &Option<Spanned<i64>>, key: &str, min: u64, max: u64| {
        optional(value, key, min, max).unwrap_or_else(|(o, m)| {
            bad.push((o, format!("rule {name:?}: {m}")));
            None
        })
    };
    let limits = Limits {
        window: setting(&raw.window, "window", 0, u64::from(MAX_TOTP_WINDOW))
            .map_or(top.window, |w| Window::Steps(w as u32)),
        max_failures: setting(&raw.max_failures, "max_failures", 1, 1000)
            .map_or(top.max_failures, |n| n as u32),
        lockout_seconds: setting(&raw.lockout_seconds, "lockout_seconds", 1, 30 * 86_400)
            .unwrap_or(top.lockout_seconds),
    };
    let remember_seconds = setting(
        &raw.remember_seconds,
        "remember_seconds",
        1,
        MAX_REMEMBER_SECONDS,
    );
    let self_enroll = raw.self_enroll.as_ref().is_some_and(|v| *v.get_ref());
    if self_enroll && mode != Mode::Required {
        bad.push((
            raw.self_enroll
                .as_ref()
                .map_or(rule_start, |v| v.span().start),
            format!("rule {name:?}: self_enroll only makes sense on a required rule"),
        ));
    }
    let allow_root = raw.allow_root.as_ref().is_some_and(|v| *v.get_ref());
    if allow_root && remember_seconds.is_none() && raw.remember_seconds.is_none() {
        bad.push((
            raw.allow_root.as_ref().map_or(rule_start, |v| v.span().start),
            format!("rule {name:?}: allow_root only applies to remember_seconds, which the rule does not set"),
        ));
    }
    item_lines.keys = key_starts
        .iter()
        .map(|(key, start)| (*key, lines.of(*start)))
        .collect();
    let rule = Rule {
        name,
        line: lines.of(rule_start),
        lines: item_lines,
        mode,
        users,
        groups,
        uids,
        services,
        from,
        enroll_by,
        limits,
        self_enroll,
        remember_seconds,
        allow_root,
    };
    if rule.names_root() {
        if rule.mode != Mode::Required {
            bad.push((
                key_start(&["mode"]),
                format!(
                    "rule {:?} would make root {}; root always needs a code",
                    rule.name, rule.mode
                ),
            ));
        }
        if rule.limits.looser_than(top) {
            bad.push((
                key_start(&["window", "max_failures", "lockout_seconds"]),
                format!(
                    "rule {:?} names root with limits looser than the top level; root's limits may only be stricter",
                    rule.name
                ),
            ));
        }
        if rule.enroll_by.is_some() {
            bad.push((
                key_start(&["enroll_by"]),
                format!(
                    "rule {:?} names root: enroll_by never applies to root",
                    rule.name
                ),
            ));
        }
        if rule.self_enroll {
            bad.push((
                key_start(&["self_enroll"]),
                format!(
                    "rule {:?} names root: root never enrolls itself at login",
                    rule.name
                ),
            ));
        }
        if rule.remember_seconds.is_some() && !rule.allow_root {
            bad.push((
                key_start(&["remember_seconds"]),
                format!(
                    "rule {:?} names root with remember_seconds; add allow_root = true if root may skip the code within that time",
                    rule.name
                ),
            ));
        }
    }
    if bad.is_empty() {
        Ok(rule)
    } else {
        Err(bad)
    }
}

/// An optional integer setting, checked against its range.
fn optional(
    value: &Option<Spanned<i64>>,
    key: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, Bad> {
    let Some(value) = value else {
        return Ok(None);
    };
    let n = *value.get_ref();
    u64::try_from(n)
        .ok()
        .filter(|n| (min..=max).contains(n))
        .map(Some)
        .ok_or_else(|| {
            (
                value.span().start,
                format!("{key}: {n} is not between {min} and {max}"),
            )
        })
}

/// `1000`, `"1000"` or `"1000-59999"`.
fn uid_range(value: &Uid) -> Result<std::ops::RangeInclusive<u32>, String> {
    match value {
        Uid::Number(n) => u32::try_from(*n)
            .map(|n| n..=n)
            .map_err(|_| format!("{n} is not a uid")),
        Uid::Text(s) => {
            let number = |t: &str| {
                t.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("{s:?} is not a uid or a range such as \"1000-59999\""))
            };
            let (low, high) = match s.split_once('-') {
                Some((low, high)) => (number(low)?, number(high)?),
                None => (number(s)?, number(s)?),
            };
            if low > high {
                return Err(format!("{s:?} is an empty range"));
            }
            Ok(low..=high)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Date;

    fn parse_str(text: &str) -> Result<Policy, PolicyError> {
        parse(text, Path::new("policy.toml"))
    }

    #[test]
    fn the_documented_example_parses() {
        let policy = parse_str(
            r#"
store_dir = "/var/lib/pam-mfa"
default_mode = "optional"

[[rule]]
name = "privileged"
groups = ["sudo", "wheel", "admin"]
users = ["deploy"]
mode = "required"
"#,
        )
        .unwrap();
        assert_eq!(policy.store_dir, Path::new("/var/lib/pam-mfa"));
        assert_eq!(policy.default_mode, Mode::Optional);
        assert_eq!(policy.rules.len(), 1);
        let rule = &policy.rules[0];
        assert_eq!(rule.name, "privileged");
        assert_eq!(rule.groups, ["sudo", "wheel", "admin"]);
        assert_eq!(rule.users, ["deploy"]);
        assert_eq!(rule.mode, Mode::Required);
        assert_eq!(rule.line, 5);
    }

    /// Every rule is read on its own: one rule's mistakes do not hide the next rule's, and
    /// each error names the line of its key.
    #[test]
    fn all_errors_reports_each_rule_and_the_top_level_at_their_keys() {
        let text = "\
max_failures = 0
[[rule]]
name = \"a\"
grups = [\"wheel\"]
mode = \"required\"

[[rule]]
name = \"b\"
mode = \"required\"
uids = [\"9-1\"]

[[rule]]
name = \"c\"
users = [\"root\"]
mode = \"exempt\"

[[rule]]
name = \"fine\"
mode = \"optional\"
";
        let errors = all_errors(text, Path::new("policy.toml"));
        let found: Vec<(Option<usize>, &str)> = errors
            .iter()
            .map(|e| (e.line, e.message.as_str()))
            .collect();
        assert_eq!(found.len(), 4, "{found:#?}");
        assert_eq!(found[0].0, Some(1), "{found:#?}");
        assert!(found[0].1.contains("max_failures"), "{found:#?}");
        assert_eq!(found[1].0, Some(4), "{found:#?}");
        assert!(found[1].1.contains("did you mean `groups`?"), "{found:#?}");
        assert_eq!(found[2].0, Some(10), "{found:#?}");
        assert!(found[2].1.contains("empty range"), "{found:#?}");
        assert_eq!(found[3].0, Some(15), "{found:#?}");
        assert!(found[3].1.contains("would make root exempt"), "{found:#?}");
        // The module stops at one of them.
        let first = parse_str(text).unwrap_err();
        assert!(errors.contains(&first), "{first:?} in {errors:#?}");
        assert!(all_errors(
            "[[rule]]\nname = \"x\"\nmode = \"exempt\"\n",
            Path::new("p")
        )
        .is_empty());
        // A rule without its mode is named at its header.
        let missing = all_errors("[[rule]]\nname = \"x\"\n", Path::new("p"));
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert_eq!(missing[0].line, Some(1), "{missing:?}");
        // A syntax error stops the reading, and says so.
        let syntax = all_errors("a = \nmax_failures = 0\n", Path::new("p"));
        assert_eq!(syntax.len(), 1, "{syntax:?}");
        assert!(syntax[0].message.contains("not checked"), "{syntax:?}");
    }

    /// Within one rule every error of meaning is reported, each at its key's line and
    /// naming the rule; the module still stops at the first.
    #[test]
    fn every_error_of_one_rule_is_reported_at_its_line() {
        let text = "\
[[rule]]
name = \"ops\"
mode = \"optional\"
users = [\"a/b\", \"alice\", \"\"]
uids = [\"9-1\"]
from = [\"10.0.0.0/33\"]
window = 99
self_enroll = true
";
        let errors = all_errors(text, Path::new("policy.toml"));
        let found: Vec<(Option<usize>, &str)> = errors
            .iter()
            .map(|e| (e.line, e.message.as_str()))
            .collect();
        let lines: Vec<Option<usize>> = found.iter().map(|(line, _)| *line).collect();
        assert_eq!(
            lines,
            [Some(4), Some(4), Some(5), Some(6), Some(7), Some(8)],
            "{found:#?}"
        );
        assert!(
            found.iter().all(|(_, m)| m.starts_with("rule \"ops\": ")),
            "{found:#?}"
        );
        assert!(found[5].1.contains("self_enroll"), "{found:#?}");
        let first = parse_str(text).unwrap_err();
        assert_eq!(first, errors[0]);
    }

    /// A syntax error hides only its own part: the top level and every other [[rule]]
    /// are still checked, each on its own; the syntax error is said once.
    #[test]
    fn after_a_syntax_error_the_other_rules_are_still_checked() {
        let text = "\
max_failures = 0
[[rule]]
name = \"broken\"
mode = \"required\"
users = [\"alice\"
[[rule]]
name = \"later\"
mode = \"exempt\"
uids = [\"9-1\"]
";
        let errors = all_errors(text, Path::new("policy.toml"));
        let found: Vec<(Option<usize>, &str)> = errors
            .iter()
            .map(|e| (e.line, e.message.as_str()))
            .collect();
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].1.contains("a syntax error") && found[0].1.contains("checked on their own"),
            "{found:#?}"
        );
        assert!(
            found
                .iter()
                .any(|(line, m)| *line == Some(1) && m.contains("max_failures")),
            "{found:#?}"
        );
        assert!(
            found
                .iter()
                .any(|(line, m)| *line == Some(9) && m.contains("rule \"later\"")),
            "{found:#?}"
        );
    }

    #[test]
    fn load_reads_the_file_and_refuses_what_is_not_text() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "default_mode = \"required\"\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(load(&path).unwrap().default_mode, Mode::Required);

        std::fs::write(&path, b"# ok\n# \xff\n").unwrap();
        let err = load(&path).unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    #[test]
    fn an_empty_policy_takes_the_defaults() {
        let policy = parse_str("").unwrap();
        assert_eq!(policy.store_dir, Path::new(DEFAULT_STORE_DIR));
        assert_eq!(policy.default_mode, Mode::Optional);
        assert!(policy.rules.is_empty());
    }

    /// Each malformed policy names the right line and the offending key or value.
    #[test]
    fn malformed_policies_name_line_and_key() {
        let cases: &[(&str, usize, &str)] = &[
            ("store_dir = \"/x\"\nbogus = 1\n", 2, "bogus"),
            ("default_mod = \"required\"\n", 1, "did you mean `default_mode`?"),
            ("[[rule]]\nname = \"a\"\nmode = \"required\"\ngroup = [\"x\"]\n", 4, "did you mean `groups`?"),
            ("default_mode = \"sometimes\"\n", 1, "sometimes"),
            ("default_mode = 3\n", 1, "default_mode"),
            ("store_dir = 5\n", 1, "store_dir: invalid type"),
            ("[[rule]]\nname = \"a\"\nmode = \"required\"\ngroups = [1]\n", 4, "groups"),
            ("store_dir = \"relative\"\n", 1, "absolute"),
            ("\n\n[[rule]]\nname = \"a\"\nmode = \"required\"\nuser = [\"x\"]\n", 6, "user"),
            ("[[rule]]\nname = \"a\"\nusers = \"x\"\nmode = \"required\"\n", 3, "users: invalid type"),
            ("[[rule]]\nname = \"a\"\nmode = \"exempt\"\nfrom = []\n", 4, "from: an empty list"),
            ("[[rule]]\nname = \"a\"\nmode = \"exempt\"\nusers = [\n]\n", 4, "users: an empty list"),
            ("[[rule]]\nname = \"a\"\nmode = \"exempt\"\ngroups = []\n", 4, "groups: an empty list"),
            ("[[rule]]\nname = \"a\"\nmode = \"exempt\"\nuids = []\n", 4, "uids: an empty list"),
            ("[[rule]]\nname = \"a\"\nmode = \"exempt\"\nservices = []\n", 4, "services: an empty list"),
            ("[[rule]]\nname = \"a\"\n", 1, "mode"),
            ("[[rule]]\nmode = \"exempt\"\n", 1, "name"),
            ("[[rule]]\nname = \"a\"\nusers = [\"root\"]\nmode = \"exempt\"\n", 4, "root"),
            ("[[rule]]\nname = \"a\"\ngroups = [\"root\"]\nmode = \"optional\"\n", 4, "root"),
            ("[[rule]]\nname = \"a\"\nuids = [\"0-999\"]\nmode = \"exempt\"\n", 4, "root"),
            ("max_failures = 3\n[[rule]]\nname = \"r\"\nusers = [\"root\"]\nmode = \"required\"\nmax_failures = 10\n", 6, "looser"),
            ("lockout_seconds = 600\n[[rule]]\nname = \"r\"\nuids = [0]\nmode = \"required\"\nlockout_seconds = 60\n", 6, "looser"),
            ("[[rule]]\nname = \"r\"\nusers = [\"root\"]\nmode = \"required\"\nenroll_by = 2027-01-31\n", 5, "never applies to root"),
            ("[[rule]]\nname = \"a\"\nuids = [\"100-50\"]\nmode = \"exempt\"\n", 3, "empty range"),
            ("[[rule]]\nname = \"a\"\nuids = [\"x\"]\nmode = \"exempt\"\n", 3, "uids"),
            ("[[rule]]\nname = \"a\"\nuids = [-1]\nmode = \"exempt\"\n", 3, "uids"),
            ("[[rule]]\nname = \"a\"\nfrom = [\"10.0.0.0/33\"]\nmode = \"exempt\"\n", 3, "from"),
            ("[[rule]]\nname = \"a\"\nfrom = [\"bastion.example\"]\nmode = \"exempt\"\n", 3, "not an IP"),
            ("[[rule]]\nname = \"a\"\nservices = [\"ss hd\"]\nmode = \"exempt\"\n", 3, "services"),
            ("[[rule]]\nname = \"a\"\nmode = \"optional\"\nenroll_by = 2027-01-31\n", 4, "required rule"),
            ("[[rule]]\nname = \"a\"\nmode = \"required\"\nenroll_by = \"2027-01-31\"\n", 4, "enroll_by"),
            ("[[rule]]\nname = \"a\"\nmode = \"required\"\nenroll_by = 2027-01-31T10:00:00Z\n", 4, "date"),
            ("[[rule]]\nname = \"a\"\nmode = \"required\"\nenroll_by = 2027-02-30\n", 4, ""),
            ("window = 11\n", 1, "window"),
            ("max_failures = 0\n", 1, "max_failures"),
            ("[[rule]]\nname = \"a\"\nmode = \"required\"\nlockout_seconds = -5\n", 4, "lockout_seconds"),
            ("fail_delay_ms = 60000\n", 1, "fail_delay_ms"),
            ("[[rule]]\nname = \"a\"\nmode = \"optional\"\nself_enroll = true\n", 4, "self_enroll"),
            ("[[rule]]\nname = \"r\"\nusers = [\"root\"]\nmode = \"required\"\nself_enroll = true\n", 5, "never enrolls"),
            ("[[rule]]\nname = \"r\"\nusers = [\"root\"]\nmode = \"required\"\nremember_seconds = 600\n", 5, "allow_root"),
            ("[[rule]]\nname = \"a\"\nmode = \"required\"\nallow_root = true\n", 4, "remember_seconds"),
            ("[[rule]]\nname = \"a\"\nmode = \"required\"\nremember_seconds = 0\n", 4, "remember_seconds"),
            ("[[rule]]\nname = \"a\"\nmode = \"required\"\nremember_seconds = 999999\n", 4, "remember_seconds"),
            ("[[rule]]\nname = \"a\"\nmode = \"required\"\nself_enroll = \"yes\"\n", 4, "self_enroll"),
            ("[[rule]]\nname = \"a\"\nusers = [\"../x\"]\nmode = \"required\"\n", 3, "invalid user name"),
            (
                "[[rule]]\nname = \"a\"\nmode = \"exempt\"\n[[rule]]\nname = \"a\"\nmode = \"exempt\"\n",
                5,
                "already used",
            ),
            ("store_dir = \n", 1, ""),
        ];
        for (text, line, word) in cases {
            let err = parse_str(text).unwrap_err();
            assert_eq!(err.line, Some(*line), "{text:?}: {err}");
            assert!(err.to_string().contains(word), "{text:?}: {err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("policy.toml:{line}: ")),
                "{err}"
            );
            assert!(!err.to_string().contains('\n'), "one line: {err:?}");
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
            format!("PASSWORD = \"{secret}\"\n"),
            format!("[[rule]]\nname = 'a'\nmode = 'exempt'\n{secret} = 1\n"),
        ] {
            let e = parse_str(&text).unwrap_err().to_string();
            assert!(!e.contains(secret), "{text:?}: {e}");
            assert!(!e.contains("PASSWORD"), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{text:?}: {e}");
        }
        // The policy's keys are named.
        let e = parse_str("window = \"x\"\n").unwrap_err();
        assert!(e.message.starts_with("window: "), "{e}");
        let e = parse_str("window = 1\nwindow = 2\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.starts_with("window: set twice"), "{e}");
    }

    /// What TOML allows but the policy refuses, or that an admin writes by mistake.
    #[test]
    fn toml_the_policy_does_not_use_is_refused_at_its_line() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "\u{feff}default_mode = \"required\"\n",
                1,
                "byte order mark",
            ),
            ("rule = \"required\"\n", 1, "[[rule]]"),
            ("[rule]\nname = 'a'\nmode = 'exempt'\n", 1, "[[rule]]"),
            ("\n[limits]\nwindow = 1\n", 2, "unknown key `limits`"),
            ("[[rules]]\n", 1, "did you mean `rule`?"),
            ("window = 1.5\n", 1, "window: invalid type"),
            ("window = 99999999999999999999\n", 1, "window"),
            (
                "[[rule]]\nname = 'a'\nmode = 'exempt'\nuids = [true]\n",
                4,
                "uids: invalid type",
            ),
            ("[[rule]]\nname = 'a'\nmode = 3\n", 3, "mode: invalid type"),
            (
                "\n[[rule]]\nname = 'a'\nmode = 'exempt'\n[[rule]]\nname = 'b'\n",
                5,
                "needs `mode`",
            ),
            ("window = [\n", 1, ""),
            ("store_dir = \"a\u{1}b\"\n", 1, ""),
        ];
        for (text, line, word) in cases {
            let err = parse_str(text).unwrap_err();
            assert_eq!(err.line, Some(*line), "{text:?}: {err}");
            assert!(err.message.contains(word), "{text:?}: {err}");
            assert!(!err.message.contains('\n'), "{text:?}: {err:?}");
        }
    }

    /// Any TOML spelling of the same settings reads the same.
    #[test]
    fn other_toml_spellings_of_a_rule_read_alike() {
        let policy = parse_str(
            "\"window\" = 1_0\nrule = [{ name = 'a', mode = 'exempt', users = [\n  'x', # one\n] }]\n",
        )
        .unwrap();
        assert_eq!(policy.limits.window, Window::Steps(10));
        assert_eq!(policy.rules[0].users, ["x"]);
        assert_eq!(policy.rules[0].line, 2);
    }

    /// Rule names are checked against each other in one pass: a large policy reads in
    /// time that grows with its size, and the duplicate still names both lines.
    #[test]
    fn many_rules_read_and_a_late_duplicate_names_the_first() {
        let mut text = String::new();
        for i in 0..2000 {
            text.push_str(&format!(
                "[[rule]]\nname = \"r{i}\"\nusers = [\"u{i}\"]\nmode = \"required\"\n"
            ));
        }
        assert_eq!(parse_str(&text).unwrap().rules.len(), 2000);
        text.push_str("[[rule]]\nname = \"r7\"\nmode = \"exempt\"\n");
        let err = parse_str(&text).unwrap_err();
        assert_eq!(err.line, Some(8002), "{err}");
        assert!(
            err.message.contains("already used by the rule at line 29"),
            "{err}"
        );
    }

    #[test]
    fn conditions_and_settings_parse() {
        let policy = parse_str(
            r#"
window = 2
max_failures = 4
lockout_seconds = 600
fail_delay_ms = 0

[[rule]]
name = "deploy"
users = ["deploy"]
uids = [1500, "2000-2999"]
services = ["sshd"]
from = ["10.1.0.0/16", "2001:db8::/32"]
mode = "exempt"

[[rule]]
name = "admins"
groups = ["sudo"]
mode = "required"
enroll_by = 2027-01-31
window = 1
max_failures = 3
"#,
        )
        .unwrap();
        assert_eq!(policy.limits.window, Window::Steps(2));
        assert_eq!(policy.limits.max_failures, 4);
        assert_eq!(policy.limits.lockout_seconds, 600);
        assert_eq!(policy.fail_delay_ms, 0);
        let deploy = &policy.rules[0];
        assert_eq!(deploy.uids, [1500..=1500, 2000..=2999]);
        assert_eq!(deploy.services, ["sshd"]);
        assert_eq!(deploy.from.len(), 2);
        assert_eq!(
            deploy.limits, policy.limits,
            "a rule inherits the top level"
        );
        let admins = &policy.rules[1];
        assert_eq!(admins.enroll_by, Date::new(2027, 1, 31));
        assert_eq!(admins.limits.window, Window::Steps(1));
        assert_eq!(admins.limits.max_failures, 3);
        assert_eq!(admins.limits.lockout_seconds, 600);
    }

    #[test]
    fn root_may_get_stricter_limits() {
        let policy = parse_str(
            "max_failures = 5\n[[rule]]\nname = \"root\"\nusers = [\"root\"]\nmode = \"required\"\nmax_failures = 2\nlockout_seconds = 3600\n",
        )
        .unwrap();
        assert_eq!(policy.rules[0].limits.max_failures, 2);
    }

    #[test]
    fn a_rule_naming_root_may_not_widen_a_window_the_top_level_sets() {
        let rule = "[[rule]]\nname = \"r\"\nusers = [\"root\"]\nmode = \"required\"\n";
        let wider = parse_str(&format!("window = 2\n{rule}window = 3\n")).unwrap_err();
        assert!(
            wider.to_string().contains("looser than the top level"),
            "{wider}"
        );
        // Where the top level keeps the record's window, the record's caps the rule's.
        let capped = parse_str(&format!("{rule}window = 3\n")).unwrap();
        assert_eq!(capped.rules[0].limits.window, Window::Steps(3));
        let floor = capped.limits;
        assert_eq!(
            capped.rules[0].limits.no_looser_than(&floor).window,
            Window::RecordAtMost(3)
        );
        assert_eq!(Window::RecordAtMost(3).steps(1), 1);
        assert_eq!(Window::RecordAtMost(3).steps(5), 3);
    }

    /// The examples users copy: README.md, docs/policy.md and config/policy.toml.
    #[test]
    fn documented_examples_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut examples = 0;
        for doc in ["README.md", "docs/policy.md"] {
            let text = std::fs::read_to_string(root.join(doc)).unwrap();
            for block in text.split("```toml\n").skip(1) {
                let body = block.split("```").next().unwrap();
                parse(body, Path::new(doc)).unwrap_or_else(|e| panic!("{e}"));
                examples += 1;
            }
        }
        let shipped = root.join("config/policy.toml");
        parse(&std::fs::read_to_string(&shipped).unwrap(), &shipped)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(examples >= 2);
    }

    #[test]
    fn root_may_be_named_in_a_required_rule() {
        let policy =
            parse_str("[[rule]]\nname = \"a\"\nusers = [\"root\"]\nmode = \"required\"\n").unwrap();
        assert_eq!(policy.rules[0].users, ["root"]);
    }
}

//! Reading the policy file: safe opening, TOML into typed values, and errors that name
//! the file, the line and the key.

#![forbid(unsafe_code)]

use std::fmt;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::syntax::{self, line_of, Entry, Spanned, Value};

use super::{
    Cidr, Limits, Mode, Policy, Rule, Window, DEFAULT_FAIL_DELAY_MS, DEFAULT_LOCKOUT_SECONDS,
    DEFAULT_MAX_FAILURES, DEFAULT_STORE_DIR, MAX_REMEMBER_SECONDS,
};
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
    parse(&text, path)
}

/// The policy's settings as written, each with where it starts.
#[derive(Default)]
struct RawPolicy {
    store_dir: Option<Spanned<String>>,
    default_mode: Option<Spanned<String>>,
    window: Option<Spanned<i64>>,
    max_failures: Option<Spanned<i64>>,
    lockout_seconds: Option<Spanned<i64>>,
    fail_delay_ms: Option<Spanned<i64>>,
    rule: Vec<Spanned<RawRule>>,
}

const POLICY_KEYS: &str =
    "store_dir, default_mode, window, max_failures, lockout_seconds, fail_delay_ms";

impl RawPolicy {
    fn from_document(document: syntax::Document) -> Result<RawPolicy, Bad> {
        let mut raw = RawPolicy::default();
        for Entry { key, value } in document.top.entries {
            let name = key.value.as_str();
            match name {
                "store_dir" => raw.store_dir = Some(string(name, value)?),
                "default_mode" => raw.default_mode = Some(string(name, value)?),
                "window" => raw.window = Some(integer(name, value)?),
                "max_failures" => raw.max_failures = Some(integer(name, value)?),
                "lockout_seconds" => raw.lockout_seconds = Some(integer(name, value)?),
                "fail_delay_ms" => raw.fail_delay_ms = Some(integer(name, value)?),
                _ => return Err(unknown(&key, POLICY_KEYS)),
            }
        }
        for table in document.rules {
            let at = table.at;
            raw.rule.push(Spanned {
                value: RawRule::from_table(table)?,
                at,
            });
        }
        Ok(raw)
    }
}

/// One `[[rule]]` as written.
#[derive(Default)]
struct RawRule {
    name: Spanned<String>,
    mode: Spanned<String>,
    users: Vec<Spanned<String>>,
    groups: Vec<Spanned<String>>,
    uids: Vec<Spanned<Value>>,
    services: Vec<Spanned<String>>,
    from: Vec<Spanned<String>>,
    enroll_by: Option<Spanned<Value>>,
    window: Option<Spanned<i64>>,
    max_failures: Option<Spanned<i64>>,
    lockout_seconds: Option<Spanned<i64>>,
    self_enroll: Option<Spanned<bool>>,
    remember_seconds: Option<Spanned<i64>>,
    allow_root: Option<Spanned<bool>>,
}

const RULE_KEYS: &str = "name, mode, users, groups, uids, services, from, enroll_by, window, \
     max_failures, lockout_seconds, self_enroll, remember_seconds, allow_root";

/// Whether `key` is one the policy uses, at the top level or in a rule. Messages about
/// the file's text quote nothing else from it: a file given as `--config` by mistake
/// (a google-authenticator file, a key file) must not have its first line printed.
pub(super) fn is_policy_key(key: &str) -> bool {
    POLICY_KEYS
        .split(", ")
        .chain(RULE_KEYS.split(", "))
        .any(|known| known == key)
}

impl RawRule {
    fn from_table(table: syntax::Table) -> Result<RawRule, Bad> {
        let mut raw = RawRule::default();
        let (mut rule_name, mut mode) = (None, None);
        for Entry { key, value } in table.entries {
            let name = key.value.as_str();
            match name {
                "name" => rule_name = Some(string(name, value)?),
                "mode" => mode = Some(string(name, value)?),
                "users" => raw.users = strings(name, value)?,
                "groups" => raw.groups = strings(name, value)?,
                "uids" => raw.uids = array(name, value, "an array of uids")?,
                "services" => raw.services = strings(name, value)?,
                "from" => raw.from = strings(name, value)?,
                "enroll_by" => raw.enroll_by = Some(value),
                "window" => raw.window = Some(integer(name, value)?),
                "max_failures" => raw.max_failures = Some(integer(name, value)?),
                "lockout_seconds" => raw.lockout_seconds = Some(integer(name, value)?),
                "self_enroll" => raw.self_enroll = Some(boolean(name, value)?),
                "remember_seconds" => raw.remember_seconds = Some(integer(name, value)?),
                "allow_root" => raw.allow_root = Some(boolean(name, value)?),
                _ => return Err(unknown(&key, RULE_KEYS)),
            }
        }
        let missing = |key: &str| (table.at, format!("a [[rule]] needs `{key}`"));
        raw.name = rule_name.ok_or_else(|| missing("name"))?;
        raw.mode = mode.ok_or_else(|| missing("mode"))?;
        Ok(raw)
    }
}

/// An error in the policy: the byte offset to point at, and the message.
type Bad = (usize, String);

fn unknown(key: &Spanned<String>, expected: &str) -> Bad {
    let near = expected
        .split(", ")
        .map(|known| (edit_distance(known, &key.value), known))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, known)| known);
    let message = match near {
        Some(known) => format!("unknown key `{}`; did you mean `{known}`?", key.value),
        None => format!("unknown key `{}`, expected one of {expected}", key.value),
    };
    (key.at, message)
}

/// Levenshtein distance, for suggesting the key a typo meant.
fn edit_distance(a: &str, b: &str) -> usize {
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

/// The value, if `pick` finds it of the wanted type; else an "invalid type" error.
fn typed<T>(
    key: &str,
    value: Spanned<Value>,
    expected: &str,
    pick: fn(Value) -> Option<T>,
) -> Result<Spanned<T>, Bad> {
    let found = value.value.type_name();
    match pick(value.value) {
        Some(picked) => Ok(Spanned {
            value: picked,
            at: value.at,
        }),
        None => Err((
            value.at,
            format!("{key}: invalid type: expected {expected}, found {found}"),
        )),
    }
}

fn string(key: &str, value: Spanned<Value>) -> Result<Spanned<String>, Bad> {
    typed(key, value, "a string", |v| match v {
        Value::String(s) => Some(s),
        _ => None,
    })
}

fn integer(key: &str, value: Spanned<Value>) -> Result<Spanned<i64>, Bad> {
    typed(key, value, "a whole number", |v| match v {
        Value::Integer(n) => Some(n),
        _ => None,
    })
}

fn boolean(key: &str, value: Spanned<Value>) -> Result<Spanned<bool>, Bad> {
    typed(key, value, "true or false", |v| match v {
        Value::Boolean(b) => Some(b),
        _ => None,
    })
}

/// A list condition (users, groups, uids, services, from). An empty one is refused: read
/// as no condition it would match everyone, the opposite of what `from = []` says.
fn array(key: &str, value: Spanned<Value>, expected: &str) -> Result<Vec<Spanned<Value>>, Bad> {
    let items = typed(key, value, expected, |v| match v {
        Value::Array(items) => Some(items),
        _ => None,
    })?;
    if items.value.is_empty() {
        return Err((
            items.at,
            format!("{key}: an empty list names nothing; leave {key} out for a rule that does not look at it"),
        ));
    }
    Ok(items.value)
}

fn strings(key: &str, value: Spanned<Value>) -> Result<Vec<Spanned<String>>, Bad> {
    array(key, value, "an array of strings")?
        .into_iter()
        .map(|item| string(key, item))
        .collect()
}

/// Parses policy text; `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<Policy, PolicyError> {
    let error_at = |offset: usize, message: String| PolicyError {
        path: path.to_owned(),
        line: Some(line_of(text, offset)),
        message,
    };
    let document = syntax::parse(text).map_err(|e| error_at(e.at, e.message))?;
    let raw = RawPolicy::from_document(document).map_err(|(at, m)| error_at(at, m))?;

    let store_dir_line = raw.store_dir.as_ref().map(|d| line_of(text, d.at));
    let store_dir = match raw.store_dir {
        Some(dir) => {
            let start = dir.at;
            let dir = PathBuf::from(dir.value);
            if !dir.is_absolute() {
                return Err(error_at(start, "store_dir must be an absolute path".into()));
            }
            dir
        }
        None => PathBuf::from(DEFAULT_STORE_DIR),
    };
    let default_mode = match &raw.default_mode {
        Some(mode) => mode_of(mode, "default_mode").map_err(|m| error_at(mode.at, m))?,
        None => Mode::Optional,
    };
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

    let mut rules: Vec<Rule> = Vec::with_capacity(raw.rule.len());
    for spanned in raw.rule {
        let rule_start = spanned.at;
        let rule = parse_rule(spanned.value, rule_start, &top, &rules, text)
            .map_err(|(at, m)| error_at(at, m))?;
        rules.push(rule);
    }

    Ok(Policy {
        path: path.to_owned(),
        store_dir,
        store_dir_line,
        default_mode,
        limits: top,
        fail_delay_ms,
        rules,
    })
}

fn parse_rule(
    raw: RawRule,
    rule_start: usize,
    top: &Limits,
    earlier: &[Rule],
    text: &str,
) -> Result<Rule, Bad> {
    let name_start = raw.name.at;
    let name = raw.name.value;
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err((name_start, "a rule's name must be non-empty text".into()));
    }
    if let Some(other) = earlier.iter().find(|r| r.name == name) {
        return Err((
            name_start,
            format!(
                "rule name {name:?} is already used by the rule at line {}",
                other.line
            ),
        ));
    }
    let at = |start: usize, message: String| (start, format!("rule {name:?}: {message}"));
    let mode = mode_of(&raw.mode, "mode").map_err(|m| at(raw.mode.at, m))?;

    let mut users = Vec::with_capacity(raw.users.len());
    for user in raw.users {
        UserName::parse(&user.value).map_err(|e| at(user.at, format!("users: {e}")))?;
        users.push(user.value);
    }
    let mut groups = Vec::with_capacity(raw.groups.len());
    for group in raw.groups {
        let g = &group.value;
        if g.is_empty() || g.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(at(
                group.at,
                format!("groups: {g:?} is not a valid group name"),
            ));
        }
        groups.push(group.value);
    }
    let mut uids = Vec::with_capacity(raw.uids.len());
    for uid in &raw.uids {
        uids.push(uid_range(&uid.value).map_err(|m| at(uid.at, format!("uids: {m}")))?);
    }
    let mut services = Vec::with_capacity(raw.services.len());
    for service in raw.services {
        let s = &service.value;
        if s.is_empty() || s.contains('/') || s.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(at(
                service.at,
                format!("services: {s:?} is not a PAM service name"),
            ));
        }
        services.push(service.value);
    }
    let mut from = Vec::with_capacity(raw.from.len());
    for block in &raw.from {
        from.push(Cidr::parse(&block.value).map_err(|m| at(block.at, format!("from: {m}")))?);
    }
    let enroll_by = match &raw.enroll_by {
        Some(value) => {
            let date = match value.value {
                Value::Date(date) => Some(date),
                _ => None,
            }
            .ok_or_else(|| {
                at(
                    value.at,
                    "enroll_by: expected a date such as 2027-01-31".into(),
                )
            })?;
            if mode != Mode::Required {
                return Err(at(
                    value.at,
                    "enroll_by only makes sense on a required rule".into(),
                ));
            }
            Some(date)
        }
        None => None,
    };
    let limits = Limits {
        window: optional(&raw.window, "window", 0, u64::from(MAX_TOTP_WINDOW))
            .map_err(|(o, m)| (o, format!("rule {name:?}: {m}")))?
            .map_or(top.window, |w| Window::Steps(w as u32)),
        max_failures: optional(&raw.max_failures, "max_failures", 1, 1000)
            .map_err(|(o, m)| (o, format!("rule {name:?}: {m}")))?
            .map_or(top.max_failures, |n| n as u32),
        lockout_seconds: optional(&raw.lockout_seconds, "lockout_seconds", 1, 30 * 86_400)
            .map_err(|(o, m)| (o, format!("rule {name:?}: {m}")))?
            .unwrap_or(top.lockout_seconds),
    };
    let self_enroll = raw.self_enroll.as_ref().is_some_and(|v| v.value);
    if self_enroll && mode != Mode::Required {
        return Err((
            raw.self_enroll.as_ref().map_or(rule_start, |v| v.at),
            format!("rule {name:?}: self_enroll only makes sense on a required rule"),
        ));
    }
    let remember_seconds = optional(
        &raw.remember_seconds,
        "remember_seconds",
        1,
        MAX_REMEMBER_SECONDS,
    )
    .map_err(|(o, m)| (o, format!("rule {name:?}: {m}")))?;
    let allow_root = raw.allow_root.as_ref().is_some_and(|v| v.value);
    if allow_root && remember_seconds.is_none() {
        return Err((
            raw.allow_root.as_ref().map_or(rule_start, |v| v.at),
            format!("rule {name:?}: allow_root only applies to remember_seconds, which the rule does not set"),
        ));
    }
    let rule = Rule {
        name,
        line: line_of(text, rule_start),
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
            return Err((
                rule_start,
                format!(
                    "rule {:?} would make root {}; root always needs a code",
                    rule.name, rule.mode
                ),
            ));
        }
        if rule.limits.looser_than(top) {
            return Err((
                rule_start,
                format!(
                    "rule {:?} names root with limits looser than the top level; root's limits may only be stricter",
                    rule.name
                ),
            ));
        }
        if rule.enroll_by.is_some() {
            return Err((
                rule_start,
                format!(
                    "rule {:?} names root: enroll_by never applies to root",
                    rule.name
                ),
            ));
        }
        if rule.self_enroll {
            return Err((
                rule_start,
                format!(
                    "rule {:?} names root: root never enrolls itself at login",
                    rule.name
                ),
            ));
        }
        if rule.remember_seconds.is_some() && !rule.allow_root {
            return Err((
                rule_start,
                format!(
                    "rule {:?} names root with remember_seconds; add allow_root = true if root may skip the code within that time",
                    rule.name
                ),
            ));
        }
    }
    Ok(rule)
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
    let n = value.value;
    u64::try_from(n)
        .ok()
        .filter(|n| (min..=max).contains(n))
        .map(Some)
        .ok_or_else(|| {
            (
                value.at,
                format!("{key}: {n} is not between {min} and {max}"),
            )
        })
}

/// `1000`, `"1000"` or `"1000-59999"`.
fn uid_range(value: &Value) -> Result<std::ops::RangeInclusive<u32>, String> {
    let single = |n: i64| u32::try_from(n).map_err(|_| format!("{n} is not a uid"));
    match value {
        Value::Integer(n) => single(*n).map(|n| n..=n),
        Value::String(s) => {
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
        other => Err(format!(
            "{} is not a uid or a range such as \"1000-59999\"",
            other.type_name()
        )),
    }
}

fn mode_of(value: &Spanned<String>, key: &str) -> Result<Mode, String> {
    match value.value.as_str() {
        "required" => Ok(Mode::Required),
        "optional" => Ok(Mode::Optional),
        "exempt" => Ok(Mode::Exempt),
        other => Err(format!(
            "{key}: {other:?} is not one of \"required\", \"optional\", \"exempt\""
        )),
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
            ("[[rule]]\nname = \"a\"\nusers = [\"root\"]\nmode = \"exempt\"\n", 1, "root"),
            ("[[rule]]\nname = \"a\"\ngroups = [\"root\"]\nmode = \"optional\"\n", 1, "root"),
            ("[[rule]]\nname = \"a\"\nuids = [\"0-999\"]\nmode = \"exempt\"\n", 1, "root"),
            ("max_failures = 3\n[[rule]]\nname = \"r\"\nusers = [\"root\"]\nmode = \"required\"\nmax_failures = 10\n", 2, "looser"),
            ("lockout_seconds = 600\n[[rule]]\nname = \"r\"\nuids = [0]\nmode = \"required\"\nlockout_seconds = 60\n", 2, "looser"),
            ("[[rule]]\nname = \"r\"\nusers = [\"root\"]\nmode = \"required\"\nenroll_by = 2027-01-31\n", 1, "never applies to root"),
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
            ("[[rule]]\nname = \"r\"\nusers = [\"root\"]\nmode = \"required\"\nself_enroll = true\n", 1, "never enrolls"),
            ("[[rule]]\nname = \"r\"\nusers = [\"root\"]\nmode = \"required\"\nremember_seconds = 600\n", 1, "allow_root"),
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

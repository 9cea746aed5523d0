//! Reading the policy file: safe opening, TOML into typed values, and errors that name
//! the file, the line and the key.

#![forbid(unsafe_code)]

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{Mode, Policy, Rule, DEFAULT_STORE_DIR};
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
    let mut file = File::open(path).map_err(|e| error(format!("cannot open the policy: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| error(format!("cannot stat the policy: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(error("the policy is not a regular file".into()));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(error(format!(
            "the policy is owned by uid {}; it must be owned by root",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(error(format!(
            "the policy has mode {:04o}; it must not be writable by group or others (chmod go-w)",
            meta.mode() & 0o7777
        )));
    }
    if meta.len() > MAX_POLICY_BYTES {
        return Err(error("the policy is larger than 1 MiB".into()));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| error(format!("cannot read the policy: {e}")))?;
    parse(&text, path)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    store_dir: Option<Spanned<String>>,
    default_mode: Option<Mode>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    #[serde(default)]
    users: Vec<Spanned<String>>,
    #[serde(default)]
    groups: Vec<Spanned<String>>,
    mode: Spanned<Mode>,
}

/// Parses policy text; `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<Policy, PolicyError> {
    let error_at = |offset: Option<usize>, message: String| PolicyError {
        path: path.to_owned(),
        line: offset.map(|o| line_of(text, o)),
        message,
    };
    let raw: RawPolicy = toml::from_str(text)
        .map_err(|e| error_at(e.span().map(|s| s.start), e.message().trim().to_owned()))?;

    let store_dir = match raw.store_dir {
        Some(dir) => {
            let start = dir.span().start;
            let dir = PathBuf::from(dir.into_inner());
            if !dir.is_absolute() {
                return Err(error_at(
                    Some(start),
                    "store_dir must be an absolute path".into(),
                ));
            }
            dir
        }
        None => PathBuf::from(DEFAULT_STORE_DIR),
    };

    let mut rules: Vec<Rule> = Vec::with_capacity(raw.rule.len());
    for spanned in raw.rule {
        let rule_start = spanned.span().start;
        let raw_rule = spanned.into_inner();
        let name_start = raw_rule.name.span().start;
        let name = raw_rule.name.into_inner();
        if name.trim().is_empty() {
            return Err(error_at(
                Some(name_start),
                "a rule's name must not be empty".into(),
            ));
        }
        if let Some(earlier) = rules.iter().find(|r| r.name == name) {
            return Err(error_at(
                Some(name_start),
                format!(
                    "rule name {name:?} is already used by the rule at line {}",
                    earlier.line
                ),
            ));
        }
        let mode = *raw_rule.mode.get_ref();
        let mut users = Vec::with_capacity(raw_rule.users.len());
        for user in raw_rule.users {
            let start = user.span().start;
            let user = user.into_inner();
            UserName::parse(&user)
                .map_err(|e| error_at(Some(start), format!("rule {name:?}: users: {e}")))?;
            if user == "root" && mode != Mode::Required {
                return Err(error_at(
                    Some(start),
                    format!("rule {name:?} would make root {mode}; root always needs a code"),
                ));
            }
            users.push(user);
        }
        let mut groups = Vec::with_capacity(raw_rule.groups.len());
        for group in raw_rule.groups {
            let start = group.span().start;
            let group = group.into_inner();
            if group.is_empty() || group.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(error_at(
                    Some(start),
                    format!("rule {name:?}: groups: {group:?} is not a valid group name"),
                ));
            }
            if group == "root" && mode != Mode::Required {
                return Err(error_at(
                    Some(start),
                    format!("rule {name:?} would make group root {mode}; root always needs a code"),
                ));
            }
            groups.push(group);
        }
        rules.push(Rule {
            name,
            users,
            groups,
            mode,
            line: line_of(text, rule_start),
        });
    }

    Ok(Policy {
        path: path.to_owned(),
        store_dir,
        default_mode: raw.default_mode.unwrap_or(Mode::Optional),
        rules,
    })
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ("default_mode = \"sometimes\"\n", 1, "sometimes"),
            ("default_mode = 3\n", 1, "string"),
            ("store_dir = \"relative\"\n", 1, "absolute"),
            ("\n\n[[rule]]\nname = \"a\"\nmode = \"required\"\nuser = [\"x\"]\n", 6, "user"),
            ("[[rule]]\nname = \"a\"\nusers = \"x\"\nmode = \"required\"\n", 3, "sequence"),
            ("[[rule]]\nname = \"a\"\n", 1, "mode"),
            ("[[rule]]\nmode = \"exempt\"\n", 1, "name"),
            ("[[rule]]\nname = \"a\"\nusers = [\"root\"]\nmode = \"exempt\"\n", 3, "root"),
            ("[[rule]]\nname = \"a\"\ngroups = [\"root\"]\nmode = \"optional\"\n", 3, "root"),
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
    fn root_may_be_named_in_a_required_rule() {
        let policy =
            parse_str("[[rule]]\nname = \"a\"\nusers = [\"root\"]\nmode = \"required\"\n").unwrap();
        assert_eq!(policy.rules[0].users, ["root"]);
    }
}

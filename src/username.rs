//! Account names, validated before any path is built from them.

#![forbid(unsafe_code)]

use std::fmt;

/// Longest accepted name, in bytes (the utmp limit that login tools share).
pub const MAX_LEN: usize = 32;

/// A user name that is safe to use as a file name inside the store and in log lines:
/// 1 to 32 bytes, no `/`, no `..`, no NUL or other control character, no whitespace,
/// and no leading `-` or `.`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadUserName(&'static str);

impl fmt::Display for BadUserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid user name: {}", self.0)
    }
}

impl std::error::Error for BadUserName {}

impl UserName {
    pub fn parse(name: &str) -> Result<UserName, BadUserName> {
        let problem = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > MAX_LEN {
            Some("it is longer than 32 bytes")
        } else if name.contains('/') {
            Some("it contains '/'")
        } else if name.contains("..") {
            Some("it contains '..'")
        } else if name.starts_with('-') {
            Some("it starts with '-'")
        } else if name.starts_with('.') {
            Some("it starts with '.'")
        } else if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            Some("it contains a control or space character")
        } else {
            None
        };
        match problem {
            Some(why) => Err(BadUserName(why)),
            None => Ok(UserName(name.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_are_accepted() {
        for name in [
            "root",
            "alice",
            "svc-deploy",
            "a.b",
            "user_1",
            "x",
            "DOMAIN+bob",
        ] {
            assert_eq!(UserName::parse(name).unwrap().as_str(), name);
        }
        assert!(UserName::parse(&"a".repeat(32)).is_ok());
    }

    #[test]
    fn names_that_could_escape_the_store_are_refused() {
        for name in [
            "", "../etc", "a/b", "..", ".", ".hidden", "-rf", "a\0b", "a b", "a\nb", "x..y",
        ] {
            assert!(UserName::parse(name).is_err(), "{name:?}");
        }
        assert!(UserName::parse(&"a".repeat(33)).is_err());
    }
}

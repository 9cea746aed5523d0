//! Account names, validated before any path is built from them. A directory's names are
//! names: `first.last@corp.example.com`, `john smith`, `DOMAIN\bob`, long ones too. Only
//! what would make an unusable or unsafe file name in the store is refused.

#![forbid(unsafe_code)]

use std::fmt;

use crate::store::NAME_OVERHEAD;

/// Longest file name the filesystems we run on take (NAME_MAX), in bytes.
const NAME_MAX: usize = 255;

/// Longest accepted name, in bytes: what NAME_MAX leaves once the store has added its
/// longest prefix and suffix (a temporary file `.NAME.recovery.PID.RANDOM.tmp`).
pub const MAX_LEN: usize = NAME_MAX - NAME_OVERHEAD;

/// A user name that is safe to use as a file name inside the store: 1 to `MAX_LEN` bytes,
/// no `/`, no leading `.` (so neither `.` nor `..`, nor the store's temporary files), and
/// no NUL or other control character (no directory gives such names, and they would let a
/// name rewrite an admin's terminal or a log line). Spaces, `@`, `\`, `-` anywhere, and
/// every other character are accepted.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadUserName(String);

impl fmt::Display for BadUserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid user name: {}", self.0)
    }
}

impl std::error::Error for BadUserName {}

impl UserName {
    pub fn parse(name: &str) -> Result<UserName, BadUserName> {
        let problem = if name.is_empty() {
            Some("it is empty".to_owned())
        } else if name.len() > MAX_LEN {
            Some(format!(
                "it is {} bytes long; the store's file names hold at most {MAX_LEN}",
                name.len()
            ))
        } else if name.contains('/') {
            Some("it contains '/'".to_owned())
        } else if name.starts_with('.') {
            Some("it starts with '.'".to_owned())
        } else if name.chars().any(char::is_control) {
            Some("it contains a control character".to_owned())
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
    fn ordinary_and_directory_names_are_accepted() {
        let longest = format!("{}@corp.example.com", "f".repeat(MAX_LEN - 17));
        for name in [
            "root",
            "alice",
            "svc-deploy",
            "a.b",
            "user_1",
            "x",
            "DOMAIN+bob",
            "DOMAIN\\bob",
            "firstname.lastname@corp.example.com",
            "john smith",
            "-rf",
            "x..y",
            "jos\u{e9}",
            &longest,
        ] {
            assert_eq!(UserName::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(MAX_LEN, 220);
        assert_eq!(longest.len(), MAX_LEN);
    }

    #[test]
    fn names_that_could_escape_the_store_are_refused() {
        for name in [
            "",
            "../etc",
            "a/b",
            "/",
            "..",
            ".",
            ".hidden",
            "a\0b",
            "a\nb",
            "\u{1b}[2J",
            "a\u{7f}",
        ] {
            assert!(UserName::parse(name).is_err(), "{name:?}");
        }
        let error = UserName::parse(&"a".repeat(MAX_LEN + 1)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid user name: it is 221 bytes long; the store's file names hold at most 220"
        );
    }
}

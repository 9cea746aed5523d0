//! The policy: which accounts must, may or need not give a one-time code.
//! `parse` turns the TOML file into these types; `evaluate` decides, without I/O.

#![forbid(unsafe_code)]

pub mod evaluate;
pub mod parse;

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

pub use evaluate::{evaluate, DecidedBy, Decision};
pub use parse::{load, parse, PolicyError};

/// Where the policy lives unless a `config=` argument says otherwise.
pub const DEFAULT_PATH: &str = "/etc/pam-mfa/policy.toml";
/// Where the secret store lives unless the policy says otherwise.
pub const DEFAULT_STORE_DIR: &str = "/var/lib/pam-mfa";

/// What an account must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A valid code is needed; without a secret the account cannot log in.
    Required,
    /// A valid code is needed only if the account has a secret.
    Optional,
    /// Never asked.
    Exempt,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Optional => "optional",
            Self::Exempt => "exempt",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed, validated policy file.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The file it came from, for messages.
    pub path: PathBuf,
    pub store_dir: PathBuf,
    pub default_mode: Mode,
    pub rules: Vec<Rule>,
}

/// One `[[rule]]`: it matches when every condition it names matches.
#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    pub users: Vec<String>,
    pub groups: Vec<String>,
    pub mode: Mode,
    /// The line of its `[[rule]]` header, for messages.
    pub line: usize,
}

//! The policy: which accounts must, may or need not give a one-time code, and the
//! limits that apply to them. `parse` turns the TOML file into these types;
//! `evaluate` decides, as a pure function without I/O.

#![forbid(unsafe_code)]

pub mod cidr;
pub mod evaluate;
pub mod lint;
pub mod parse;
pub mod store;

use std::fmt;
use std::ops::RangeInclusive;
use std::path::PathBuf;

pub use cidr::Cidr;
pub use evaluate::{evaluate, may_require, Context, DecidedBy, Decision, Requirement, Via};
pub use parse::{load, parse, PolicyError};
pub use store::Backend;

use crate::clock::Date;

/// Where the policy lives unless a `config=` argument says otherwise.
pub const DEFAULT_PATH: &str = "/etc/pam-mfa/policy.toml";
/// Where the secret store lives unless the policy says otherwise.
pub const DEFAULT_STORE_DIR: &str = "/var/lib/pam-mfa";
pub const DEFAULT_MAX_FAILURES: u32 = 5;
pub const DEFAULT_LOCKOUT_SECONDS: u64 = 300;
pub const DEFAULT_FAIL_DELAY_MS: u32 = 2000;
/// Longest `remember_seconds`: a working day.
pub const MAX_REMEMBER_SECONDS: u64 = 12 * 3600;

/// What an account must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// How many TOTP steps each way a code may be from now; for HOTP, how many counters a
/// code may be ahead of the next unused one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The record's own window (the policy sets none).
    Record,
    /// This many, whatever the record says.
    Steps(u32),
    /// The record's window, but no more than this: root under a rule that sets a window
    /// where the top level keeps the record's.
    RecordAtMost(u32),
}

impl Window {
    /// The steps for a record whose own window is `record`.
    pub fn steps(self, record: u32) -> u32 {
        match self {
            Window::Record => record,
            Window::Steps(n) => n,
            Window::RecordAtMost(n) => record.min(n),
        }
    }

    /// The narrower of the two for every record.
    pub fn no_wider_than(self, other: Window) -> Window {
        use Window::{Record, RecordAtMost, Steps};
        match (self, other) {
            (Steps(a), Steps(b)) => Steps(a.min(b)),
            (Record, Record) => Record,
            (Record, Steps(n) | RecordAtMost(n)) | (Steps(n) | RecordAtMost(n), Record) => {
                RecordAtMost(n)
            }
            (Steps(a) | RecordAtMost(a), Steps(b) | RecordAtMost(b)) => RecordAtMost(a.min(b)),
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Record => f.write_str("the record's"),
            Window::Steps(n) => write!(f, "{n}"),
            Window::RecordAtMost(n) => write!(f, "the record's, at most {n}"),
        }
    }
}

/// Limits on code checking, set at the top level and overridable per rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// TOTP steps accepted each way; HOTP counters looked ahead.
    pub window: Window,
    /// Wrong codes within `lockout_seconds` that lock the account's second factor.
    pub max_failures: u32,
    /// How long failures are counted, and how long a lock lasts.
    pub lockout_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            window: Window::Record,
            max_failures: DEFAULT_MAX_FAILURES,
            lockout_seconds: DEFAULT_LOCKOUT_SECONDS,
        }
    }
}

impl Limits {
    /// These limits, made no looser than `floor` in any respect.
    pub fn no_looser_than(self, floor: &Limits) -> Limits {
        Limits {
            window: self.window.no_wider_than(floor.window),
            max_failures: self.max_failures.min(floor.max_failures),
            lockout_seconds: self.lockout_seconds.max(floor.lockout_seconds),
        }
    }

    /// Whether any limit is looser than `floor`'s for some record. A window where `floor`
    /// keeps the record's is not counted: the record's window caps it (see `no_looser_than`).
    pub fn looser_than(&self, floor: &Limits) -> bool {
        let window = match (self.window, floor.window) {
            (Window::Steps(a), Window::Steps(b)) => a > b,
            (Window::Record, Window::Steps(_)) => true,
            _ => false,
        };
        window
            || self.max_failures > floor.max_failures
            || self.lockout_seconds < floor.lockout_seconds
    }
}

/// A parsed, validated policy file.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The file it came from, for messages.
    pub path: PathBuf,
    pub store_dir: PathBuf,
    /// The line of the `store_dir` key, if the file sets it.
    pub store_dir_line: Option<usize>,
    pub default_mode: Mode,
    pub limits: Limits,
    /// Delay libpam adds after a failed attempt, in milliseconds.
    pub fail_delay_ms: u32,
    /// The `[store]` table: where secrets and state are kept (`store_dir` for the file
    /// backend, and for what is kept per host whatever the backend).
    pub store: Backend,
    pub rules: Vec<Rule>,
}

impl Policy {
    /// Every group name the rules mention (repeats included), for resolving to gids.
    pub fn named_groups(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .flat_map(|r| r.groups.iter().map(String::as_str))
    }

    /// Every user name the rules mention (repeats included), for resolving to uids.
    pub fn named_users(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .flat_map(|r| r.users.iter().map(String::as_str))
    }
}

/// One `[[rule]]`. It matches when every condition it names matches; `users`, `groups`
/// and `uids` together make one condition (the account is named by any of them).
#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    /// The line of its `[[rule]]` header, for messages.
    pub line: usize,
    /// The lines of its keys and list items, for messages about them.
    pub lines: ItemLines,
    pub mode: Mode,
    pub users: Vec<String>,
    pub groups: Vec<String>,
    pub uids: Vec<RangeInclusive<u32>>,
    pub services: Vec<String>,
    pub from: Vec<Cidr>,
    /// Until this date (UTC), a required account without a secret is let through.
    pub enroll_by: Option<Date>,
    /// This rule's limits, the top level's where it sets none.
    pub limits: Limits,
    /// An account without a secret enrolls at login, inside the PAM conversation.
    pub self_enroll: bool,
    /// After a valid code, later logins of the account in the same audit session pass
    /// without a prompt for this long.
    pub remember_seconds: Option<u64>,
    /// `remember_seconds` may apply to root too.
    pub allow_root: bool,
}

/// Where a rule's keys and the items of its lists are, for messages that point at them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemLines {
    /// (key, line of its value) for each key the rule sets.
    pub keys: Vec<(&'static str, usize)>,
    /// The line of each item of `users`, `groups` and `services`, in order.
    pub users: Vec<usize>,
    pub groups: Vec<usize>,
    pub services: Vec<usize>,
}

impl Rule {
    /// The line of `key`'s value; the `[[rule]]` header's when the rule does not set it.
    pub fn line_of(&self, key: &str) -> usize {
        self.lines
            .keys
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(self.line, |(_, line)| *line)
    }

    /// The line of the `index`th item of `users`, `groups` or `services`.
    pub fn item_line(&self, key: &str, index: usize) -> usize {
        let items = match key {
            "users" => &self.lines.users,
            "groups" => &self.lines.groups,
            "services" => &self.lines.services,
            _ => return self.line_of(key),
        };
        items
            .get(index)
            .copied()
            .unwrap_or_else(|| self.line_of(key))
    }

    /// Whether the rule names accounts at all (users, groups or uids).
    pub fn names_accounts(&self) -> bool {
        !(self.users.is_empty() && self.groups.is_empty() && self.uids.is_empty())
    }

    /// Whether the rule names root explicitly: user root, group root, or uid 0.
    pub fn names_root(&self) -> bool {
        self.users.iter().any(|u| u == "root")
            || self.groups.iter().any(|g| g == "root")
            || self.uids.iter().any(|r| r.contains(&0))
    }
}

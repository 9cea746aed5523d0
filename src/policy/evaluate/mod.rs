//! The decision, as one pure function of the policy, the account and the request's
//! context: no I/O, no PAM, no clock of its own.

#![forbid(unsafe_code)]

use std::fmt;
use std::net::IpAddr;

use super::{Cidr, Limits, Mode, Policy, Rule};
use crate::accounts::Account;
use crate::clock::Date;

/// What the request brings besides the account.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// PAM_SERVICE.
    pub service: &'a str,
    /// PAM_RHOST as given; a `from` rule only matches when it is an IP address.
    pub rhost: &'a str,
    /// Today (UTC), for enrollment deadlines.
    pub today: Date,
}

/// The mode an account gets, what gave it, and the limits that apply.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub mode: Mode,
    pub by: DecidedBy,
    pub limits: Limits,
    /// The deadline of the rule that decided, if it has one (never for root).
    pub enroll_by: Option<Date>,
    /// An account without a secret may enroll at login (never root).
    pub self_enroll: bool,
    /// How long a verified session may skip the code (root only with allow_root).
    pub remember_seconds: Option<u64>,
}

impl Decision {
    /// Whether a required account without a secret may still pass: its rule's
    /// enrollment deadline has not come yet.
    pub fn in_grace(&self, today: Date) -> bool {
        self.mode == Mode::Required && self.enroll_by.is_some_and(|deadline| today < deadline)
    }

    /// Whether an account without a secret may enroll at login today: the rule allows it
    /// and its deadline, if any, has not passed.
    pub fn may_self_enroll(&self, today: Date) -> bool {
        self.self_enroll && self.enroll_by.is_none_or(|deadline| today < deadline)
    }
}

/// What decided the mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecidedBy {
    /// uid 0: always required. The first rule that matched, if any, may have made its
    /// limits stricter (never looser).
    Root { rule: Option<String> },
    /// A rule matched.
    Rule { name: String, matched: Match },
    /// No rule matched: `default_mode`.
    Default,
}

/// How a rule matched: which account condition and, if the rule has them, which
/// service and network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    pub via: Via,
    pub service: Option<String>,
    pub network: Option<Cidr>,
}

/// The account condition a matching rule met.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    User,
    Group(String),
    Uid(u32),
    /// The rule names no users, groups or uids.
    Anyone,
}

impl DecidedBy {
    /// The short name used in the audit line's `rule=` field.
    pub fn rule_name(&self) -> &str {
        match self {
            Self::Root { .. } => "root",
            Self::Rule { name, .. } => name,
            Self::Default => "default",
        }
    }
}

impl fmt::Display for DecidedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root { rule: None } => f.write_str("uid 0 always needs a code"),
            Self::Root { rule: Some(name) } => {
                write!(f, "uid 0 always needs a code; limits of rule '{name}'")
            }
            Self::Rule { name, matched } => {
                write!(f, "rule '{name}' matches")?;
                match &matched.via {
                    Via::User => f.write_str(" the user")?,
                    Via::Group(group) => write!(f, " through group '{group}'")?,
                    Via::Uid(uid) => write!(f, " through uid {uid}")?,
                    Via::Anyone => f.write_str(" any account")?,
                }
                if let Some(service) = &matched.service {
                    write!(f, ", service '{service}'")?;
                }
                if let Some(network) = &matched.network {
                    write!(f, ", from {network}")?;
                }
                Ok(())
            }
            Self::Default => f.write_str("no rule matches; default_mode applies"),
        }
    }
}

/// Decides for `account` in `context`: the first rule whose every condition matches,
/// otherwise `default_mode`. uid 0 is always required, with limits no looser than the
/// top level's, never a deadline, never enrollment at login, and a remembered session
/// only where its rule says `allow_root`.
pub fn evaluate(policy: &Policy, account: &Account, context: &Context<'_>) -> Decision {
    let rhost: Option<IpAddr> = context.rhost.parse().ok();
    let first = policy
        .rules
        .iter()
        .find_map(|rule| matches(rule, account, context.service, rhost).map(|m| (rule, m)));
    if account.uid == 0 {
        let (rule, limits, remember_seconds) = match first {
            Some((rule, _)) => (
                Some(rule.name.clone()),
                rule.limits.no_looser_than(&policy.limits),
                rule.remember_seconds.filter(|_| rule.allow_root),
            ),
            None => (None, policy.limits, None),
        };
        return Decision {
            mode: Mode::Required,
            by: DecidedBy::Root { rule },
            limits,
            enroll_by: None,
            self_enroll: false,
            remember_seconds,
        };
    }
    match first {
        Some((rule, matched)) => Decision {
            mode: rule.mode,
            by: DecidedBy::Rule {
                name: rule.name.clone(),
                matched,
            },
            limits: rule.limits,
            enroll_by: rule.enroll_by,
            self_enroll: rule.self_enroll,
            remember_seconds: rule.remember_seconds,
        },
        None => Decision {
            mode: policy.default_mode,
            by: DecidedBy::Default,
            limits: policy.limits,
            enroll_by: None,
            self_enroll: false,
            remember_seconds: None,
        },
    }
}

/// How `rule` matches, or None.
fn matches(rule: &Rule, account: &Account, service: &str, rhost: Option<IpAddr>) -> Option<Match> {
    let via = if !rule.names_accounts() {
        Via::Anyone
    } else if rule.users.iter().any(|u| u == account.name.as_str()) {
        Via::User
    } else if let Some(group) = rule.groups.iter().find(|g| account.groups.contains(g)) {
        Via::Group(group.clone())
    } else if rule.uids.iter().any(|r| r.contains(&account.uid)) {
        Via::Uid(account.uid)
    } else {
        return None;
    };
    let service = if rule.services.is_empty() {
        None
    } else {
        Some(rule.services.iter().find(|s| *s == service)?.clone())
    };
    let network = if rule.from.is_empty() {
        None
    } else {
        let address = rhost?;
        Some(*rule.from.iter().find(|block| block.contains(address))?)
    };
    Some(Match {
        via,
        service,
        network,
    })
}

#[cfg(test)]
mod tests;

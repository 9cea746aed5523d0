//! The decision, as one pure function of the policy, the account and the request's
//! context: no I/O, no PAM, no clock of its own.

#![forbid(unsafe_code)]

use std::fmt;
use std::net::IpAddr;

use super::{Cidr, Limits, Mode, Policy, Rule};
use crate::accounts::{Account, NamedId};
use crate::clock::Date;

/// What the request brings besides the account.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// PAM_SERVICE.
    pub service: &'a str,
    /// PAM_RHOST as given: empty for a local login, normally an IP address, a host name
    /// when the application resolved it (sshd with UseDNS yes).
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
    pub network: Option<Origin>,
}

/// Where a matching `from` rule placed PAM_RHOST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// An address inside this block of the rule.
    Inside(Cidr),
    /// Not an address (a host name, or anything else): it could be anywhere, so it
    /// matches a `from` rule that requires a code and no other.
    Unknown,
}

/// PAM_RHOST as the `from` condition reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rhost {
    /// Empty: a local login (console, su, sudo).
    Local,
    Address(IpAddr),
    Unknown,
}

impl Rhost {
    fn parse(rhost: &str) -> Rhost {
        if rhost.is_empty() {
            return Rhost::Local;
        }
        if let Ok(address) = rhost.parse() {
            return Rhost::Address(address);
        }
        // A link-local IPv6 address with its zone, as in `fe80::1%eth0`.
        match rhost.split_once('%') {
            Some((address, zone)) if !zone.is_empty() => address
                .parse::<std::net::Ipv6Addr>()
                .map_or(Rhost::Unknown, |a| Rhost::Address(IpAddr::V6(a))),
            _ => Rhost::Unknown,
        }
    }
}

/// The account condition a matching rule met.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    User,
    /// Another passwd name of the account's uid (a second entry, `alice2` with alice's uid).
    SameUid(NamedId),
    /// A group of the rule whose gid the account has.
    Group(NamedId),
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
                    Via::SameUid(user) => {
                        write!(f, " through user '{}' (same uid {})", user.name, user.id)?
                    }
                    Via::Group(group) => {
                        write!(f, " through group '{}' (gid {})", group.name, group.id)?
                    }
                    Via::Uid(uid) => write!(f, " through uid {uid}")?,
                    Via::Anyone => f.write_str(" any account")?,
                }
                if let Some(service) = &matched.service {
                    write!(f, ", service '{service}'")?;
                }
                match &matched.network {
                    Some(Origin::Inside(block)) => write!(f, ", from {block}")?,
                    Some(Origin::Unknown) => {
                        f.write_str(", from a remote host that is no address (could be anywhere)")?
                    }
                    None => {}
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
    let rhost = Rhost::parse(context.rhost);
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
        // A rule reached only because PAM_RHOST could be anywhere gives its requirement
        // and nothing it grants: no enrollment at login, no deadline, no remembered
        // session, no limits looser than the top level's.
        Some((rule, matched)) if matched.network == Some(Origin::Unknown) => Decision {
            mode: Mode::Required,
            limits: rule.limits.no_looser_than(&policy.limits),
            by: DecidedBy::Rule {
                name: rule.name.clone(),
                matched,
            },
            enroll_by: None,
            self_enroll: false,
            remember_seconds: None,
        },
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

/// Why an account may have to give a code somewhere (see `may_require`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    Root,
    Rule(String),
    Default,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root => f.write_str("uid 0 always needs a code"),
            Self::Rule(name) => write!(f, "rule '{name}' requires a code"),
            Self::Default => f.write_str("default_mode is required"),
        }
    }
}

/// Why `account` may have to give a code somewhere, whatever the service or the remote
/// host: uid 0, `default_mode = "required"`, or a `required` rule that names it (or
/// everyone) in its account condition. None when no login can require one. Rules before
/// it that could exempt the account are not weighed: for a rollout check, a maybe is a yes.
pub fn may_require(policy: &Policy, account: &Account) -> Option<Requirement> {
    if account.uid == 0 {
        return Some(Requirement::Root);
    }
    if let Some(rule) = policy
        .rules
        .iter()
        .filter(|r| r.mode == Mode::Required)
        .find(|r| names(r, account).is_some())
    {
        return Some(Requirement::Rule(rule.name.clone()));
    }
    (policy.default_mode == Mode::Required).then_some(Requirement::Default)
}

/// How `rule`'s account condition (users, groups, uids) names `account`, or None. Users
/// match by name or by uid (another passwd name of the same uid is the same account to the
/// kernel), groups by gid: what `account` says of the names the policy mentions.
fn names(rule: &Rule, account: &Account) -> Option<Via> {
    if !rule.names_accounts() {
        Some(Via::Anyone)
    } else if rule.users.iter().any(|u| u == account.name.as_str()) {
        Some(Via::User)
    } else if let Some(user) = account
        .same_uid
        .iter()
        .find(|same| rule.users.contains(&same.name))
    {
        Some(Via::SameUid(user.clone()))
    } else if let Some(group) = rule.groups.iter().find_map(|g| account.group(g)) {
        Some(Via::Group(group.clone()))
    } else if rule.uids.iter().any(|r| r.contains(&account.uid)) {
        Some(Via::Uid(account.uid))
    } else {
        None
    }
}

/// How `rule` matches, or None.
fn matches(rule: &Rule, account: &Account, service: &str, rhost: Rhost) -> Option<Match> {
    let via = names(rule, account)?;
    let service = if rule.services.is_empty() {
        None
    } else {
        // libpam lower-cases the service name at pam_start, so `OpenVPN` in a policy
        // means the service libpam calls `openvpn`.
        Some(
            rule.services
                .iter()
                .find(|s| s.eq_ignore_ascii_case(service))?
                .clone(),
        )
    };
    let network = if rule.from.is_empty() {
        None
    } else {
        match rhost {
            Rhost::Local => return None,
            Rhost::Address(address) => Some(Origin::Inside(
                *rule.from.iter().find(|block| block.contains(address))?,
            )),
            // Fail closed: an origin nobody can place may not earn an exemption, but
            // cannot escape a requirement either.
            Rhost::Unknown if rule.mode == Mode::Required => Some(Origin::Unknown),
            Rhost::Unknown => return None,
        }
    };
    Some(Match {
        via,
        service,
        network,
    })
}

#[cfg(test)]
mod tests;

//! The decision, as one pure function of the policy and the account: no I/O, no PAM.

#![forbid(unsafe_code)]

use std::fmt;

use super::{Mode, Policy};
use crate::accounts::Account;

/// The mode an account gets and what gave it.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub mode: Mode,
    pub by: DecidedBy,
}

/// What decided the mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecidedBy {
    /// uid 0: always required, whatever the policy says.
    Root,
    /// A rule matched, through the user's name or one of their groups.
    Rule { name: String, via: Via },
    /// No rule matched: `default_mode`.
    Default,
}

/// Which condition of a matching rule the account met.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    User,
    Group(String),
    /// The rule names no user or group condition and so matches everyone.
    Everyone,
}

impl DecidedBy {
    /// The short name used in the audit line's `rule=` field.
    pub fn rule_name(&self) -> &str {
        match self {
            Self::Root => "root",
            Self::Rule { name, .. } => name,
            Self::Default => "default",
        }
    }
}

impl fmt::Display for DecidedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root => f.write_str("uid 0 always needs a code"),
            Self::Rule {
                name,
                via: Via::User,
            } => write!(f, "rule {name:?} names the user"),
            Self::Rule {
                name,
                via: Via::Group(group),
            } => {
                write!(f, "rule {name:?} matches through group {group:?}")
            }
            Self::Rule {
                name,
                via: Via::Everyone,
            } => write!(f, "rule {name:?} matches everyone"),
            Self::Default => f.write_str("no rule matches; default_mode applies"),
        }
    }
}

/// Decides the mode for `account`: uid 0 is always required; otherwise the first rule
/// that matches, otherwise `default_mode`.
pub fn evaluate(policy: &Policy, account: &Account) -> Decision {
    if account.uid == 0 {
        return Decision {
            mode: Mode::Required,
            by: DecidedBy::Root,
        };
    }
    for rule in &policy.rules {
        let via = if rule.users.is_empty() && rule.groups.is_empty() {
            Some(Via::Everyone)
        } else if rule.users.iter().any(|u| u == account.name.as_str()) {
            Some(Via::User)
        } else {
            rule.groups
                .iter()
                .find(|g| account.groups.iter().any(|ag| ag == *g))
                .map(|g| Via::Group(g.clone()))
        };
        if let Some(via) = via {
            return Decision {
                mode: rule.mode,
                by: DecidedBy::Rule {
                    name: rule.name.clone(),
                    via,
                },
            };
        }
    }
    Decision {
        mode: policy.default_mode,
        by: DecidedBy::Default,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::parse;
    use crate::username::UserName;

    const POLICY: &str = r#"
default_mode = "optional"

[[rule]]
name = "break-glass"
users = ["ops"]
mode = "required"

[[rule]]
name = "service"
users = ["backup"]
groups = ["svc"]
mode = "exempt"

[[rule]]
name = "privileged"
groups = ["sudo", "wheel"]
mode = "required"
"#;

    fn account(name: &str, uid: u32, groups: &[&str]) -> Account {
        Account {
            name: UserName::parse(name).unwrap(),
            uid,
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn decide(text: &str, acct: &Account) -> Decision {
        evaluate(&parse(text, Path::new("p.toml")).unwrap(), acct)
    }

    /// (user, uid, groups, expected mode, expected rule name)
    #[test]
    fn decisions_table() {
        let table: &[(&str, u32, &[&str], Mode, &str)] = &[
            ("root", 0, &["root"], Mode::Required, "root"),
            ("toor", 0, &[], Mode::Required, "root"),
            ("ops", 1001, &["svc"], Mode::Required, "break-glass"),
            ("backup", 1002, &[], Mode::Exempt, "service"),
            ("runner", 1003, &["svc", "sudo"], Mode::Exempt, "service"),
            (
                "alice",
                1004,
                &["users", "sudo"],
                Mode::Required,
                "privileged",
            ),
            ("bob", 1005, &["users"], Mode::Optional, "default"),
        ];
        for &(name, uid, groups, mode, rule) in table {
            let decision = decide(POLICY, &account(name, uid, groups));
            assert_eq!(decision.mode, mode, "{name}");
            assert_eq!(decision.by.rule_name(), rule, "{name}");
        }
    }

    #[test]
    fn root_cannot_be_exempted_by_any_policy() {
        let everyone_exempt =
            "default_mode = \"exempt\"\n[[rule]]\nname = \"all\"\nmode = \"exempt\"\n";
        let decision = decide(everyone_exempt, &account("root", 0, &["root"]));
        assert_eq!(
            decision,
            Decision {
                mode: Mode::Required,
                by: DecidedBy::Root
            }
        );
        let decision = decide(everyone_exempt, &account("admin0", 0, &[]));
        assert_eq!(decision.mode, Mode::Required);
    }

    #[test]
    fn the_group_that_matched_is_reported() {
        let decision = decide(POLICY, &account("alice", 1004, &["users", "wheel"]));
        assert_eq!(
            decision.by,
            DecidedBy::Rule {
                name: "privileged".into(),
                via: Via::Group("wheel".into())
            }
        );
    }

    #[test]
    fn a_rule_without_conditions_matches_everyone() {
        let text = "default_mode = \"exempt\"\n[[rule]]\nname = \"all\"\nmode = \"required\"\n";
        let decision = decide(text, &account("bob", 1000, &[]));
        assert_eq!(decision.mode, Mode::Required);
        assert_eq!(decision.by.rule_name(), "all");
    }
}

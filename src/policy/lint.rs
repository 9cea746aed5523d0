//! Static checks of a policy for `pam-mfa policy check`: rules that can never match and
//! exempt rules that reach privileged accounts. Pure: NSS lookups happen in the caller.

#![forbid(unsafe_code)]

use super::{Mode, Policy, Rule};

/// Groups treated as privileged even when no required rule names them.
pub const WELL_KNOWN_PRIVILEGED: [&str; 4] = ["root", "sudo", "wheel", "admin"];

/// Whether `earlier` matches every request `later` would, so `later` never decides.
pub fn shadows(earlier: &Rule, later: &Rule) -> bool {
    let accounts = !earlier.names_accounts()
        || (later.names_accounts()
            && later.users.iter().all(|u| earlier.users.contains(u))
            && later.groups.iter().all(|g| earlier.groups.contains(g))
            && later.uids.iter().all(|r| {
                earlier
                    .uids
                    .iter()
                    .any(|e| e.start() <= r.start() && r.end() <= e.end())
            }));
    let services = earlier.services.is_empty()
        || (!later.services.is_empty()
            && later.services.iter().all(|s| earlier.services.contains(s)));
    let networks = earlier.from.is_empty()
        || (!later.from.is_empty()
            && later
                .from
                .iter()
                .all(|b| earlier.from.iter().any(|e| e.covers(b))));
    accounts && services && networks
}

/// For each rule shadowed by an earlier one: (shadowed, the earlier rule).
pub fn shadowed_rules(policy: &Policy) -> Vec<(&Rule, &Rule)> {
    let mut found = Vec::new();
    for (index, later) in policy.rules.iter().enumerate() {
        if let Some(earlier) = policy.rules[..index].iter().find(|e| shadows(e, later)) {
            found.push((later, earlier));
        }
    }
    found
}

/// The groups the policy treats as privileged: those its required rules name, and the
/// usual administrator groups.
pub fn privileged_groups(policy: &Policy) -> Vec<String> {
    let mut groups: Vec<String> = WELL_KNOWN_PRIVILEGED
        .iter()
        .map(|g| g.to_string())
        .collect();
    for rule in policy.rules.iter().filter(|r| r.mode == Mode::Required) {
        for group in &rule.groups {
            if !groups.contains(group) {
                groups.push(group.clone());
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::parse;

    fn policy(text: &str) -> Policy {
        parse(text, Path::new("p.toml")).unwrap()
    }

    fn shadowed_names(text: &str) -> Vec<(String, String)> {
        let p = policy(text);
        shadowed_rules(&p)
            .into_iter()
            .map(|(l, e)| (l.name.clone(), e.name.clone()))
            .collect()
    }

    #[test]
    fn catch_all_shadows_everything_after_it() {
        let found = shadowed_names(
            "[[rule]]\nname = \"all\"\nmode = \"required\"\n[[rule]]\nname = \"ops\"\ngroups = [\"ops\"]\nmode = \"exempt\"\n",
        );
        assert_eq!(found, [("ops".to_string(), "all".to_string())]);
    }

    #[test]
    fn narrower_later_rules_are_shadowed_and_wider_ones_are_not() {
        let text = r#"
[[rule]]
name = "wide"
groups = ["sudo", "wheel"]
uids = ["1000-1999"]
from = ["10.0.0.0/8"]
mode = "required"

[[rule]]
name = "narrow"
groups = ["wheel"]
uids = ["1500-1600"]
from = ["10.1.0.0/16"]
mode = "exempt"

[[rule]]
name = "other-service"
groups = ["wheel"]
services = ["sudo"]
mode = "exempt"

[[rule]]
name = "no-network"
groups = ["wheel"]
mode = "exempt"
"#;
        let found = shadowed_names(text);
        assert_eq!(found, [("narrow".to_string(), "wide".to_string())]);
    }

    #[test]
    fn a_service_condition_only_narrows() {
        let text = "[[rule]]\nname = \"ssh\"\nservices = [\"sshd\"]\nmode = \"required\"\n[[rule]]\nname = \"all\"\nmode = \"exempt\"\n";
        assert!(shadowed_names(text).is_empty());
    }

    #[test]
    fn privileged_groups_include_required_rules_groups() {
        let p = policy("[[rule]]\nname = \"ops\"\ngroups = [\"ops\"]\nmode = \"required\"\n");
        let groups = privileged_groups(&p);
        assert!(groups.contains(&"ops".to_string()));
        assert!(groups.contains(&"wheel".to_string()));
    }
}

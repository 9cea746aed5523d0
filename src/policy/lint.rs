//! Static checks of a policy for `pam-mfa policy check`: rules that can never match and
//! exempt rules that reach privileged accounts. Pure: NSS lookups happen in the caller.

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

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
///
/// Not every earlier rule is compared: only those that could shadow it, found in indexes
/// built as the rules go by. A rule that names accounts is shadowed only by one that names
/// no accounts, or that lists its first user (first group; or a uid range, when it names
/// only uids); a rule that names no accounts only by one that names none either and has no
/// services or its first service. So a policy of thousands of rules, each naming its own
/// accounts, is checked in n log n rather than n squared.
pub fn shadowed_rules(policy: &Policy) -> Vec<(&Rule, &Rule)> {
    let rules = &policy.rules;
    let mut by_user: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut by_group: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut with_uids: Vec<usize> = Vec::new();
    // Rules that name no accounts, by service; those with no services apart.
    let mut anyone_by_service: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut anyone_anywhere: Vec<usize> = Vec::new();
    let mut found = Vec::new();
    for (index, later) in rules.iter().enumerate() {
        let mut lists: Vec<&[usize]> = vec![&anyone_anywhere];
        if let Some(service) = later.services.first() {
            lists.extend(anyone_by_service.get(service.as_str()).map(Vec::as_slice));
        }
        if let Some(user) = later.users.first() {
            lists.extend(by_user.get(user.as_str()).map(Vec::as_slice));
        } else if let Some(group) = later.groups.first() {
            lists.extend(by_group.get(group.as_str()).map(Vec::as_slice));
        } else if later.names_accounts() {
            lists.push(&with_uids);
        }
        // Each list is in file order: its first rule that shadows is its earliest.
        let first = lists
            .iter()
            .filter_map(|list| list.iter().copied().find(|&e| shadows(&rules[e], later)))
            .min();
        if let Some(earlier) = first {
            found.push((later, &rules[earlier]));
        }
        if later.names_accounts() {
            for user in &later.users {
                by_user.entry(user).or_default().push(index);
            }
            for group in &later.groups {
                by_group.entry(group).or_default().push(index);
            }
            if !later.uids.is_empty() {
                with_uids.push(index);
            }
        } else if later.services.is_empty() {
            anyone_anywhere.push(index);
        } else {
            for service in &later.services {
                anyone_by_service.entry(service).or_default().push(index);
            }
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
    // One lookup per name, not a scan of the list so far.
    let mut seen: BTreeSet<String> = groups.iter().cloned().collect();
    for rule in policy.rules.iter().filter(|r| r.mode == Mode::Required) {
        for group in &rule.groups {
            if seen.insert(group.clone()) {
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

    /// The indexed search finds what comparing every pair finds, on rules drawn from small
    /// pools so that many shadow each other.
    #[test]
    fn indexed_search_agrees_with_every_pair() {
        let pick = |n: usize, pool: &[&str]| -> String {
            let chosen: Vec<String> = pool
                .iter()
                .enumerate()
                .filter(|(i, _)| n >> i & 1 == 1)
                .map(|(_, v)| format!("{v:?}"))
                .collect();
            chosen.join(", ")
        };
        let mut text = String::new();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..400 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let r = seed as usize;
            text.push_str(&format!("[[rule]]\nname = \"r{i}\"\nmode = \"required\"\n"));
            for (key, shift, pool) in [
                ("users", 0, &["a", "b", "c"][..]),
                ("groups", 3, &["g", "h"][..]),
                ("services", 5, &["sshd", "sudo"][..]),
                ("from", 7, &["10.0.0.0/8", "10.1.0.0/16"][..]),
            ] {
                let list = pick(r >> shift, pool);
                if !list.is_empty() && r >> (shift + 10) & 1 == 1 {
                    text.push_str(&format!("{key} = [{list}]\n"));
                }
            }
            if r >> 20 & 3 == 0 {
                text.push_str(&format!(
                    "uids = [\"{}-{}\"]\n",
                    r >> 22 & 7,
                    8 + (r >> 25 & 7)
                ));
            }
        }
        let p = policy(&text);
        let every_pair: Vec<(&str, &str)> = p
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, later)| {
                let earlier = p.rules[..i].iter().find(|e| shadows(e, later))?;
                Some((later.name.as_str(), earlier.name.as_str()))
            })
            .collect();
        let indexed: Vec<(&str, &str)> = shadowed_rules(&p)
            .into_iter()
            .map(|(l, e)| (l.name.as_str(), e.name.as_str()))
            .collect();
        assert!(every_pair.len() > 50, "{}", every_pair.len());
        assert_eq!(indexed, every_pair);
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

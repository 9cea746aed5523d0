//! Table-driven tests of the decision, from the TOML fixtures in
//! tests/fixtures/evaluate/: each holds a policy and the cases it must decide.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::*;
use crate::policy::parse;
use crate::username::UserName;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    policy: String,
    #[serde(rename = "case")]
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    user: String,
    uid: u32,
    /// The policy's groups the account has the gid of.
    #[serde(default)]
    groups: Vec<String>,
    /// The policy's user names NSS gives the account's uid too.
    #[serde(default)]
    same_uid: Vec<String>,
    #[serde(default)]
    service: String,
    #[serde(default)]
    rhost: String,
    today: Option<toml::value::Datetime>,
    // What must come out.
    mode: String,
    rule: String,
    via: Option<String>,
    grace: Option<bool>,
    window: Option<u32>,
    /// The record's own window, for `window` (1 when not given).
    record_window: Option<u32>,
    max_failures: Option<u32>,
    lockout_seconds: Option<u64>,
    self_enroll: Option<bool>,
    remember_seconds: Option<u64>,
}

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/evaluate");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn date(value: &Option<toml::value::Datetime>) -> Date {
    match value.as_ref().and_then(|d| d.date) {
        Some(d) => Date::new(i64::from(d.year), d.month, d.day).unwrap(),
        None => Date::new(2026, 6, 1).unwrap(),
    }
}

fn via_name(decision: &Decision) -> String {
    match &decision.by {
        DecidedBy::Root { .. } => "root".into(),
        DecidedBy::Default => "default".into(),
        DecidedBy::Rule { matched, .. } => match &matched.via {
            Via::User => "user".into(),
            Via::SameUid(u) => format!("same_uid:{}", u.name),
            Via::Group(g) => format!("group:{}", g.name),
            Via::Uid(u) => format!("uid:{u}"),
            Via::Anyone => "anyone".into(),
        },
    }
}

#[test]
fn fixtures_decide_as_expected() {
    let files = fixtures();
    assert!(files.len() >= 4, "fixtures missing");
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let fixture: Fixture =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let policy = parse(&fixture.policy, &file).unwrap_or_else(|e| panic!("{e}"));
        for (index, case) in fixture.cases.iter().enumerate() {
            let label = format!("{} case {} ({})", file.display(), index + 1, case.user);
            let account = Account {
                name: UserName::parse(&case.user).unwrap(),
                uid: case.uid,
                gids: (0..case.groups.len()).map(|i| 10_000 + i as u32).collect(),
                groups: case
                    .groups
                    .iter()
                    .enumerate()
                    .map(|(i, name)| NamedId {
                        name: name.clone(),
                        id: 10_000 + i as u32,
                    })
                    .collect(),
                same_uid: case
                    .same_uid
                    .iter()
                    .map(|name| NamedId {
                        name: name.clone(),
                        id: case.uid,
                    })
                    .collect(),
            };
            let today = date(&case.today);
            let context = Context {
                service: &case.service,
                rhost: &case.rhost,
                today,
            };
            let decision = evaluate(&policy, &account, &context);
            assert_eq!(decision.mode.name(), case.mode, "{label}: mode");
            assert_eq!(decision.by.rule_name(), case.rule, "{label}: rule");
            if let Some(via) = &case.via {
                assert_eq!(&via_name(&decision), via, "{label}: via");
            }
            if let Some(grace) = case.grace {
                assert_eq!(decision.in_grace(today), grace, "{label}: grace");
            }
            if let Some(window) = case.window {
                let record = case.record_window.unwrap_or(1);
                assert_eq!(
                    decision.limits.window.steps(record),
                    window,
                    "{label}: window"
                );
            }
            if let Some(max) = case.max_failures {
                assert_eq!(decision.limits.max_failures, max, "{label}: max_failures");
            }
            if let Some(seconds) = case.lockout_seconds {
                assert_eq!(
                    decision.limits.lockout_seconds, seconds,
                    "{label}: lockout_seconds"
                );
            }
            if let Some(self_enroll) = case.self_enroll {
                assert_eq!(
                    decision.may_self_enroll(today),
                    self_enroll,
                    "{label}: self_enroll"
                );
            }
            if let Some(seconds) = case.remember_seconds {
                assert_eq!(
                    decision.remember_seconds.unwrap_or(0),
                    seconds,
                    "{label}: remember_seconds"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} cases");
}

#[test]
fn explanations_name_what_matched() {
    let policy = parse(
        "[[rule]]\nname = \"ops\"\ngroups = [\"wheel\"]\nservices = [\"sshd\"]\nfrom = [\"10.0.0.0/8\"]\nmode = \"required\"\n",
        Path::new("p.toml"),
    )
    .unwrap();
    let account = Account {
        name: UserName::parse("alice").unwrap(),
        uid: 1000,
        gids: vec![1000, 10],
        groups: vec![NamedId {
            name: "wheel".into(),
            id: 10,
        }],
        same_uid: Vec::new(),
    };
    let context = Context {
        service: "sshd",
        rhost: "10.2.3.4",
        today: Date::new(2026, 1, 1).unwrap(),
    };
    let decision = evaluate(&policy, &account, &context);
    assert_eq!(
        decision.by.to_string(),
        "rule 'ops' matches through group 'wheel' (gid 10), service 'sshd', from 10.0.0.0/8"
    );
}

#[test]
fn a_second_name_of_the_uid_is_named_by_the_first() {
    let policy = parse(
        "[[rule]]\nname = \"deployers\"\nusers = [\"alice\"]\nmode = \"required\"\n",
        Path::new("p.toml"),
    )
    .unwrap();
    let alice2 = Account {
        name: UserName::parse("alice2").unwrap(),
        uid: 1000,
        gids: vec![1000],
        groups: Vec::new(),
        same_uid: vec![NamedId {
            name: "alice".into(),
            id: 1000,
        }],
    };
    let context = Context {
        service: "sshd",
        rhost: "",
        today: Date::new(2026, 1, 1).unwrap(),
    };
    let decision = evaluate(&policy, &alice2, &context);
    assert_eq!(decision.mode, Mode::Required);
    assert_eq!(
        decision.by.to_string(),
        "rule 'deployers' matches through user 'alice' (same uid 1000)"
    );
    assert_eq!(
        may_require(&policy, &alice2),
        Some(Requirement::Rule("deployers".into()))
    );
}

//! `pam-mfa policy check` and `pam-mfa policy explain`: see what a policy does before it
//! locks anyone out, through the very code the module runs.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use nix::errno::Errno;
use nix::unistd::geteuid;
use serde::Serialize;

use super::account::{all_groups, lookup_with, open_store, policy_names};
use super::stacks;
use super::{CliError, ConfigArg};
use crate::accounts::{self, AccountError, NamedId, Names};
use crate::authenticate::{plan, Plan};
use crate::clock::{Clock, SystemClock};
use crate::policy::{self, lint, Backend, Context, DecidedBy, Mode, Policy, Rule, Via, Window};
use crate::store::{FileStore, StoreError};
use crate::trusted_path::check_private_file;
use crate::username::UserName;

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate the policy file and the store; warn about likely mistakes.
    Check(CheckArgs),
    /// Show the mode an account gets and why.
    Explain(ExplainArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Fail (exit status 1) on warnings too, not only on errors.
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    config: ConfigArg,
    /// The PAM configuration whose stacks are checked (for tests).
    #[arg(long, value_name = "DIR", default_value = stacks::PAM_DIR, hide = true)]
    pam_dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The account to explain.
    user: String,
    /// The PAM service of the login (e.g. sshd, sudo).
    #[arg(long, default_value = "")]
    service: String,
    /// The remote address of the login (PAM_RHOST).
    #[arg(long, default_value = "")]
    rhost: String,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    config: ConfigArg,
}

pub fn run(command: &PolicyCommand) -> Result<(), CliError> {
    match command {
        PolicyCommand::Check(args) => check(args),
        PolicyCommand::Explain(args) => explain(args),
    }
}

/// Prints `FILE:LINE: error|warning: ...` lines; errors make the exit status 1.
fn check(args: &CheckArgs) -> Result<(), CliError> {
    let path = &args.config.config;
    let policy = match policy::parse::load_reporting_all(path) {
        Ok(policy) => policy,
        Err(errors) => {
            for e in &errors {
                println!("{}{}", with_level(&e.to_string(), "error"), as_root_hint(e));
            }
            eprintln!(
                "{}: {} error(s); no warnings are checked until the policy reads",
                path.display(),
                errors.len()
            );
            return Err(CliError::silent());
        }
    };
    let file = path.display().to_string();
    let at = |line: Option<usize>| match line {
        Some(line) => format!("{file}:{line}"),
        None => file.clone(),
    };
    let mut errors = 0;
    let mut warnings = 0;

    match &policy.store {
        Backend::File => {
            if let Err(e) = FileStore::open(&policy.store_dir) {
                let hint = match &e {
                    StoreError::Io {
                        errno: Errno::EACCES,
                        ..
                    } if !geteuid().is_root() => "; run pam-mfa policy check as root",
                    _ => "",
                };
                println!("{}: error: store_dir: {e}{hint}", at(policy.store_dir_line));
                errors += 1;
            }
        }
        Backend::Postgresql(database) => {
            for (key, file, private) in database.files() {
                if let Err(e) = check_private_file(&file.path, private) {
                    println!("{}: error: {key}: {e}", at(Some(file.line)));
                    errors += 1;
                }
            }
        }
    }
    let mut report = Report {
        file: &file,
        errors: 0,
        warnings: 0,
    };
    unknown_users(&policy, &mut report);
    services_without_a_file(&policy, &args.pam_dir, &mut report);
    errors += report.errors;
    warnings += report.warnings;
    for rule in &policy.rules {
        for (index, group) in rule.groups.iter().enumerate() {
            match accounts::group_exists(group) {
                Ok(true) => {}
                Ok(false) => {
                    println!(
                        "{}: warning: rule {:?}: group {group:?} is not known to NSS: it matches nobody",
                        at(Some(rule.item_line("groups", index))),
                        rule.name
                    );
                    warnings += 1;
                }
                Err(e) => {
                    println!(
                        "{}: error: rule {:?}: looking up group {group:?} failed: {}",
                        at(Some(rule.line)),
                        rule.name,
                        e.desc()
                    );
                    errors += 1;
                }
            }
        }
    }
    for SharedGid {
        rule,
        group,
        others,
    } in shared_gids(&policy)?
    {
        println!(
            "{}: warning: rule {:?}: group {:?} shares gid {} with {}: one group to the kernel, so the rule reaches the members of each",
            at(Some(rule.line)),
            rule.name,
            group.name,
            group.id,
            others
                .iter()
                .map(|o| format!("{o:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        warnings += 1;
    }
    // Rules compare the name NSS gives an account: where the directory knows a user under
    // another spelling (case, alias), the rule's entry matches no login.
    for rule in &policy.rules {
        for (index, user) in rule.users.iter().enumerate() {
            let Ok(name) = UserName::parse(user) else {
                continue;
            };
            if let Ok(account) = accounts::lookup(&name, &Names::default()) {
                if account.name != name {
                    println!(
                        "{}: warning: rule {:?}: user {user:?} is {} in NSS; rules compare that name, so this entry matches no one",
                        at(Some(rule.item_line("users", index))),
                        rule.name,
                        account.name
                    );
                    warnings += 1;
                }
            }
        }
    }
    errors += combined_self_enrollment(&policy, path, &args.pam_dir, &at);
    for (later, earlier) in lint::shadowed_rules(&policy) {
        println!(
            "{}: warning: rule {:?} never decides: rule {:?} (line {}) matches everything it would",
            at(Some(later.line)),
            later.name,
            earlier.name,
            earlier.line
        );
        warnings += 1;
    }
    let privileged = lint::privileged_groups(&policy);
    let privileged_set: std::collections::BTreeSet<&str> =
        privileged.iter().map(String::as_str).collect();
    // Unresolvable names are reported above; here they only reach nobody.
    let privileged_names =
        Names::resolve(privileged.iter().map(String::as_str), []).unwrap_or_default();
    for rule in policy.rules.iter().filter(|r| r.mode == Mode::Exempt) {
        let mut reached: Vec<String> = rule
            .groups
            .iter()
            .filter(|g| privileged_set.contains(g.as_str()))
            .map(|g| format!("group {g:?}"))
            .collect();
        for user in &rule.users {
            if let Ok(account) = UserName::parse(user)
                .map_err(drop)
                .and_then(|u| accounts::lookup(&u, &privileged_names).map_err(drop))
            {
                if let Some(group) = account.groups.first() {
                    reached.push(format!("user {user:?} (in {:?})", group.name));
                }
            }
        }
        if !rule.names_accounts() {
            reached.push("every account".into());
        }
        if !reached.is_empty() {
            println!(
                "{}: warning: exempt rule {:?} reaches privileged accounts: {}",
                at(Some(rule.line)),
                rule.name,
                reached.join(", ")
            );
            warnings += 1;
        }
    }
    warnings += check_stacks(&args.pam_dir, &policy);
    if errors > 0 || (args.strict && warnings > 0) {
        eprintln!("{file}: {errors} error(s), {warnings} warning(s)");
        return Err(CliError::silent());
    }
    println!(
        "{file}: OK: {} rule(s), default_mode {}, {warnings} warning(s)",
        policy.rules.len(),
        policy.default_mode
    );
    Ok(())
}

/// Prints the warnings about the PAM stacks in `pam_dir` (see [`stacks`]); returns how
/// many.
fn check_stacks(pam_dir: &Path, policy: &Policy) -> usize {
    let root_has_secret = || {
        // uid 0 by whatever name NSS gives it; a store that cannot be read is an error
        // reported above, not a second warning here.
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(0))
            .ok()
            .flatten()
            .map_or_else(|| "root".to_string(), |user| user.name);
        let Ok(user) = UserName::parse(&name) else {
            return true;
        };
        open_store(policy)
            .ok()
            .and_then(|store| store.is_enrolled(&user).ok())
            .unwrap_or(true)
    };
    let found = stacks::warnings(pam_dir, root_has_secret);
    for warning in &found {
        println!("{}: warning: {}", warning.at, warning.message);
    }
    found.len()
}

/// A group a rule names whose gid other groups have too.
struct SharedGid<'a> {
    rule: &'a Rule,
    group: NamedId,
    /// The other names of the gid.
    others: Vec<String>,
}

/// Each group a rule names that shares its gid with another group. The other names come
/// from NSS's name for the gid, the groups NSS enumerates (a directory may not), and the
/// groups the policy names.
fn shared_gids(policy: &Policy) -> Result<Vec<SharedGid<'_>>, CliError> {
    let mut resolved: Vec<(&str, u32)> = Vec::new();
    for group in policy.named_groups() {
        if let Ok(Some(gid)) = accounts::group_id(group) {
            resolved.push((group, gid));
        }
    }
    let listed = all_groups()?;
    let mut found = Vec::new();
    for rule in &policy.rules {
        for group in &rule.groups {
            let Some(&(_, gid)) = resolved.iter().find(|(name, _)| name == group) else {
                continue;
            };
            let mut others: Vec<String> = Vec::new();
            let first = accounts::group_name(gid).ok().flatten();
            let candidates = first
                .into_iter()
                .chain(
                    listed
                        .iter()
                        .filter(|(_, id)| *id == gid)
                        .map(|(n, _)| n.clone()),
                )
                .chain(
                    resolved
                        .iter()
                        .filter(|(_, id)| *id == gid)
                        .map(|(n, _)| n.to_string()),
                );
            for name in candidates {
                if &name != group && !others.contains(&name) {
                    others.push(name);
                }
            }
            if !others.is_empty() {
                found.push(SharedGid {
                    rule,
                    group: NamedId {
                        name: group.clone(),
                        id: gid,
                    },
                    others,
                });
            }
        }
    }
    Ok(found)
}

/// A `self_enroll` rule reached through a `combined` stack would show a new secret before
/// any password is checked (the module refuses it): one error per rule and stack.
fn combined_self_enrollment(
    policy: &Policy,
    path: &std::path::Path,
    pam_dir: &Path,
    at: &dyn Fn(Option<usize>) -> String,
) -> usize {
    let enrolling: Vec<_> = policy.rules.iter().filter(|r| r.self_enroll).collect();
    if enrolling.is_empty() {
        return 0;
    }
    let mut errors = 0;
    for stack in stacks::combined_stacks(pam_dir) {
        if !stacks::same_file(&stack.config, path) {
            continue;
        }
        for rule in &enrolling {
            println!(
                "{}: error: rule {:?}: self_enroll, but {}:{} passes the module `combined`, which reads the code before any password is checked; the module refuses enrollment at login there",
                at(Some(rule.line)),
                rule.name,
                stack.file.display(),
                stack.line
            );
            errors += 1;
        }
    }
    errors
}

/// What `policy check` found so far, counted as it is printed.
struct Report<'a> {
    file: &'a str,
    errors: usize,
    warnings: usize,
}

impl Report<'_> {
    fn warning(&mut self, line: usize, message: &str) {
        println!("{}:{line}: warning: {message}", self.file);
        self.warnings += 1;
    }

    fn error(&mut self, line: usize, message: &str) {
        println!("{}:{line}: error: {message}", self.file);
        self.errors += 1;
    }
}

/// Users that NSS does not know: a typo (`saalcie`) quietly drops a requirement. A rule
/// whose every account condition names only such users and unknown groups can never match.
fn unknown_users(policy: &Policy, report: &mut Report<'_>) {
    for rule in &policy.rules {
        let mut unknown = 0;
        for (index, user) in rule.users.iter().enumerate() {
            let Ok(name) = UserName::parse(user) else {
                continue;
            };
            match accounts::lookup(&name, &Names::default()) {
                Ok(_) => {}
                Err(AccountError::Unknown) => {
                    unknown += 1;
                    report.warning(
                        rule.item_line("users", index),
                        &format!(
                            "rule {:?}: user {user:?} is not known to NSS: it matches nobody",
                            rule.name
                        ),
                    );
                }
                Err(e) => report.error(
                    rule.item_line("users", index),
                    &format!(
                        "rule {:?}: looking up user {user:?} failed: {e}{}",
                        rule.name,
                        root_hint()
                    ),
                ),
            }
        }
        let groups_unknown = rule
            .groups
            .iter()
            .all(|g| matches!(accounts::group_exists(g), Ok(false)));
        if !rule.users.is_empty()
            && unknown == rule.users.len()
            && groups_unknown
            && rule.uids.is_empty()
        {
            report.warning(
                rule.line_of("users"),
                &format!(
                    "rule {:?} can never match: NSS knows none of the accounts it names",
                    rule.name
                ),
            );
        }
    }
}

/// Services that no file in the PAM directory names: on Debian sshd's is `sshd`, not
/// `ssh`, and a rule for a service that does not exist quietly matches no login.
fn services_without_a_file(policy: &Policy, pam_dir: &Path, report: &mut Report<'_>) {
    if policy.rules.iter().all(|r| r.services.is_empty()) {
        return;
    }
    let known: Vec<String> = match std::fs::read_dir(pam_dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(e) => {
            let first = policy.rules.iter().find(|r| !r.services.is_empty());
            let line = first.map_or(1, |r| r.line_of("services"));
            let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                root_hint()
            } else {
                ""
            };
            report.error(
                line,
                &format!(
                    "cannot read {} to check the rules' services: {e}{hint}",
                    pam_dir.display()
                ),
            );
            return;
        }
    };
    for rule in &policy.rules {
        let mut missing = 0;
        for (index, service) in rule.services.iter().enumerate() {
            if known.iter().any(|k| k == service) {
                continue;
            }
            missing += 1;
            let near = known
                .iter()
                .filter(|k| policy::parse::edit_distance(k, service) <= 2)
                .min_by_key(|k| policy::parse::edit_distance(k, service))
                .map_or(String::new(), |k| format!(" (did you mean {k:?}?)"));
            report.warning(
                rule.item_line("services", index),
                &format!(
                    "rule {:?}: no file in {} names service {service:?}: it matches no login{near}",
                    rule.name,
                    pam_dir.display()
                ),
            );
        }
        if missing > 0 && missing == rule.services.len() {
            report.warning(
                rule.line_of("services"),
                &format!(
                    "rule {:?} can never match: none of its services exists",
                    rule.name
                ),
            );
        }
    }
}

/// "; run ... as root" when the check runs as anyone else, for what it could not read.
fn root_hint() -> &'static str {
    if geteuid().is_root() {
        ""
    } else {
        "; run pam-mfa policy check as root"
    }
}

/// The same hint for a policy that could not be read for lack of permission.
fn as_root_hint(error: &policy::PolicyError) -> &'static str {
    if error.line.is_none() && error.message.contains("Permission denied") {
        root_hint()
    } else {
        ""
    }
}

/// `FILE:LINE: message` becomes `FILE:LINE: LEVEL: message`.
fn with_level(message: &str, level: &str) -> String {
    // The location ends at the first ": " after the path.
    match message.find(": ") {
        Some(i) => format!("{}: {level}: {}", &message[..i], &message[i + 2..]),
        None => format!("{level}: {message}"),
    }
}

fn explain(args: &ExplainArgs) -> Result<(), CliError> {
    let policy = policy::load(&args.config.config)?;
    let user = UserName::parse(&args.user)?;
    let names = policy_names(&policy)?;
    let account = lookup_with(&user, &names)?;
    let unknown_groups: Vec<&str> = names.unknown_groups().collect();
    let clock = SystemClock;
    let today = clock.today();
    let context = Context {
        service: &args.service,
        rhost: &args.rhost,
        today,
    };
    let decision = policy::evaluate(&policy, &account, &context);
    let store = open_store(&policy)?;
    let record = if decision.mode == Mode::Exempt {
        // The module does not look at the store for exempt accounts either.
        None
    } else {
        store.record(&user)?
    };
    let state = store.peek_state(&user)?;
    let plan = plan(&decision, record.is_some(), today);
    let rule_line = rule_line(&policy, &decision.by);
    let locked_until = state
        .filter(|s| s.locked_at(clock.now()))
        .map(|s| s.locked_until);

    if args.json {
        let groups = account.groups.iter().map(|g| GroupJson {
            name: &g.name,
            gid: g.id,
        });
        let value = ExplainJson {
            user: user.as_str(),
            uid: account.uid,
            gids: &account.gids,
            groups: groups.collect(),
            unknown_groups,
            via: via_json(&decision.by),
            service: &args.service,
            rhost: &args.rhost,
            mode: decision.mode.name(),
            rule: decision.by.rule_name(),
            rule_line,
            why: decision.by.to_string(),
            root: matches!(decision.by, DecidedBy::Root { .. }),
            enrolled: record.is_some(),
            kind: record.as_ref().map(|r| r.kind.name()),
            algorithm: record.as_ref().map(|r| r.algorithm.name()),
            enroll_by: decision.enroll_by.map(|d| d.to_string()),
            in_grace: decision.in_grace(today),
            window: match (decision.limits.window, &record) {
                (_, Some(r)) => Some(decision.limits.window.steps(r.window)),
                (Window::Steps(n), None) => Some(n),
                (_, None) => None,
            },
            max_failures: decision.limits.max_failures,
            lockout_seconds: decision.limits.lockout_seconds,
            locked_until,
            outcome: match plan {
                Plan::AskCode => "prompt",
                Plan::Pass(_) => "ignore",
                Plan::Refuse(_) => "deny",
                Plan::SelfEnroll => "enroll",
            },
            self_enroll: decision.may_self_enroll(today),
            remember_seconds: decision.remember_seconds,
            reason: plan.describe(),
        };
        let text = serde_json::to_string_pretty(&value)
            .map_err(|e| CliError::new(format!("cannot write JSON: {e}")))?;
        println!("{text}");
        return Ok(());
    }

    println!("{user}: {}", decision.mode);
    println!("  why:       {}", decision.by);
    if let Some(line) = rule_line {
        println!("  rule:      line {line} of {}", policy.path.display());
    }
    if !args.service.is_empty() || !args.rhost.is_empty() {
        println!(
            "  login:     service {}, from {}",
            or_dash(&args.service),
            or_dash(&args.rhost)
        );
    }
    match &record {
        Some(r) => println!(
            "  enrolled:  yes ({}, {}, {} digits)",
            r.kind.name(),
            r.algorithm,
            r.digits.get()
        ),
        None if decision.mode == Mode::Exempt => println!("  enrolled:  not looked at (exempt)"),
        None => println!("  enrolled:  no"),
    }
    match decision.enroll_by {
        Some(deadline) if decision.in_grace(today) => {
            println!("  deadline:  {deadline} (not reached: may log in without a code until then)")
        }
        Some(deadline) => println!("  deadline:  {deadline} (passed)"),
        None => {}
    }
    println!(
        "  limits:    window {}, max_failures {}, lockout_seconds {}",
        match &record {
            Some(r) => decision.limits.window.steps(r.window).to_string(),
            None => decision.limits.window.to_string(),
        },
        decision.limits.max_failures,
        decision.limits.lockout_seconds
    );
    if decision.may_self_enroll(today) {
        println!("  enroll:    at login (self_enroll), when the account has no secret");
    }
    if let Some(seconds) = decision.remember_seconds {
        println!(
            "  remember:  {seconds} s: after a valid code, sudo and su (no remote host) in the same audit session skip it"
        );
    }
    for group in &unknown_groups {
        println!("  unknown:   group {group:?} is not known to NSS and matches nobody");
    }
    if let Some(until) = locked_until {
        println!("  locked:    until {until} (pam-mfa unlock {user})");
    }
    println!("  outcome:   {}", plan.describe());
    Ok(())
}

/// What `policy explain --json` prints.
#[derive(Serialize)]
struct ExplainJson<'a> {
    user: &'a str,
    uid: u32,
    gids: &'a [u32],
    groups: Vec<GroupJson<'a>>,
    unknown_groups: Vec<&'a str>,
    via: Option<ViaJson<'a>>,
    service: &'a str,
    rhost: &'a str,
    mode: &'static str,
    rule: &'a str,
    rule_line: Option<usize>,
    why: String,
    root: bool,
    enrolled: bool,
    kind: Option<&'static str>,
    algorithm: Option<&'static str>,
    enroll_by: Option<String>,
    in_grace: bool,
    window: Option<u32>,
    max_failures: u32,
    lockout_seconds: u64,
    locked_until: Option<u64>,
    outcome: &'static str,
    self_enroll: bool,
    remember_seconds: Option<u64>,
    reason: String,
}

#[derive(Serialize)]
struct GroupJson<'a> {
    name: &'a str,
    gid: u32,
}

/// How the deciding rule named the account: `{"kind": "group", "group": ..., "gid": ...}`.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ViaJson<'a> {
    User,
    SameUid { user: &'a str, uid: u32 },
    Group { group: &'a str, gid: u32 },
    Uid { uid: u32 },
    Anyone,
}

/// How the deciding rule named the account, for `explain --json` (null for root and the
/// default).
fn via_json(by: &DecidedBy) -> Option<ViaJson<'_>> {
    let DecidedBy::Rule { matched, .. } = by else {
        return None;
    };
    Some(match &matched.via {
        Via::User => ViaJson::User,
        Via::SameUid(user) => ViaJson::SameUid {
            user: &user.name,
            uid: user.id,
        },
        Via::Group(group) => ViaJson::Group {
            group: &group.name,
            gid: group.id,
        },
        Via::Uid(uid) => ViaJson::Uid { uid: *uid },
        Via::Anyone => ViaJson::Anyone,
    })
}

fn rule_line(policy: &Policy, by: &DecidedBy) -> Option<usize> {
    let name = match by {
        DecidedBy::Rule { name, .. } => name,
        DecidedBy::Root { rule: Some(name) } => name,
        _ => return None,
    };
    policy
        .rules
        .iter()
        .find(|r| &r.name == name)
        .map(|r| r.line)
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() {
        "-"
    } else {
        text
    }
}

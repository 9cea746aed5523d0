//! `pam-mfa status [USER...]`: who must give a code, who is enrolled, who is locked;
//! `pam-mfa status --missing`: who may have to give a code and has no secret.

#![forbid(unsafe_code)]

use std::io::IsTerminal;

use clap::Args;
use serde::Serialize;

use super::account::{all_accounts, lookup_with, open_store, policy_names};
use super::{CliError, ConfigArg};
use crate::accounts::{self, AccountError};
use crate::clock::{format_utc, Clock, SystemClock};
use crate::policy::{self, Context, Mode};
use crate::store::{Kind, Store};
use crate::username::UserName;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Accounts to show (default: every enrolled account).
    #[arg(conflicts_with_all = ["serial", "missing"])]
    users: Vec<String>,
    /// List every account NSS enumerates that the policy may require a code of (root, a
    /// required rule or default) and that has no secret; exit status 1 if there is one.
    #[arg(long, conflicts_with = "serial")]
    missing: bool,
    /// Show the account that the hardware token with this serial number is assigned to.
    #[arg(long, value_name = "SERIAL")]
    serial: Option<String>,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    config: ConfigArg,
}

struct Row {
    user: String,
    /// None when the account could not be looked up (JSON null, "-" in the table).
    mode: Option<String>,
    rule: Option<String>,
    enrolled: Option<String>,
    locked_until: Option<u64>,
    /// The lock on codes typed with the password (`combined`), apart from the other.
    combined_locked_until: Option<u64>,
    recovery_left: Option<usize>,
    last_login: Option<u64>,
    serial: Option<String>,
    manufacturer: Option<String>,
    problem: Option<String>,
    /// TOTP: how far the device's clock was from this host's at the last accepted code,
    /// in seconds (positive: ahead).
    clock_offset: Option<i64>,
    /// Wrong codes counted now, and the `max_failures` that lock: `3 of 5`.
    failures: Option<(u32, u32)>,
    /// The same for codes typed with the password (`combined`).
    combined_failures: Option<(u32, u32)>,
}

/// One account in `status --json`.
#[derive(Serialize)]
struct RowJson<'a> {
    user: &'a str,
    mode: Option<&'a str>,
    rule: Option<&'a str>,
    enrolled: bool,
    kind: Option<&'a str>,
    locked_until: Option<u64>,
    combined_locked_until: Option<u64>,
    recovery_codes_left: Option<usize>,
    last_login: Option<u64>,
    serial: Option<&'a str>,
    manufacturer: Option<&'a str>,
    problem: Option<&'a str>,
    clock_offset_seconds: Option<i64>,
    failures: Option<u32>,
    max_failures: Option<u32>,
    combined_failures: Option<u32>,
}

impl<'a> From<&'a Row> for RowJson<'a> {
    fn from(r: &'a Row) -> RowJson<'a> {
        RowJson {
            user: &r.user,
            mode: r.mode.as_deref(),
            rule: r.rule.as_deref(),
            enrolled: r.enrolled.is_some(),
            kind: r.enrolled.as_deref(),
            locked_until: r.locked_until,
            combined_locked_until: r.combined_locked_until,
            recovery_codes_left: r.recovery_left,
            last_login: r.last_login,
            serial: r.serial.as_deref(),
            manufacturer: r.manufacturer.as_deref(),
            problem: r.problem.as_deref(),
            clock_offset_seconds: r.clock_offset,
            failures: r.failures.map(|(n, _)| n),
            max_failures: r.failures.map(|(_, max)| max),
            combined_failures: r.combined_failures.map(|(n, _)| n),
        }
    }
}

/// One account in `status --missing --json`.
#[derive(Serialize)]
struct MissingJson<'a> {
    user: &'a str,
    why: &'a str,
}

/// `value` as indented JSON on standard output.
fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::new(format!("cannot write JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

pub fn run(args: &StatusArgs) -> Result<(), CliError> {
    let policy = policy::load(&args.config.config)?;
    let store = open_store(&policy)?;
    if args.missing {
        return missing(&policy, &*store, args.json);
    }
    let users = if let Some(serial) = &args.serial {
        let holders = token_holders(&*store, serial.trim())?;
        if holders.is_empty() {
            return Err(CliError::new(format!(
                "no account has the token with serial number {}",
                serial.trim()
            )));
        }
        holders
    } else if args.users.is_empty() {
        store.enrolled_users()?
    } else {
        args.users
            .iter()
            .map(|u| UserName::parse(u))
            .collect::<Result<Vec<_>, _>>()?
    };
    let clock = SystemClock;
    let now = clock.now();
    let context = Context {
        service: "",
        rhost: "",
        today: clock.today(),
    };
    let names = policy_names(&policy)?;
    let mut rows = Vec::with_capacity(users.len());
    for user in &users {
        let mut row = Row {
            user: user.to_string(),
            mode: None,
            rule: None,
            enrolled: None,
            locked_until: None,
            combined_locked_until: None,
            recovery_left: None,
            last_login: None,
            serial: None,
            manufacturer: None,
            problem: None,
            clock_offset: None,
            failures: None,
            combined_failures: None,
        };
        let limits = match lookup_with(user, &names) {
            Ok(account) => {
                let decision = policy::evaluate(&policy, &account, &context);
                row.mode = Some(decision.mode.name().into());
                row.rule = Some(decision.by.rule_name().into());
                Some(decision.limits)
            }
            Err(e) => {
                row.problem = Some(e.to_string());
                None
            }
        };
        match store.record(user) {
            Ok(Some(record)) => {
                row.enrolled = Some(format!("{} {}", record.kind.name(), record.algorithm));
                row.serial = record.serial.as_ref().map(ToString::to_string);
                row.manufacturer = record.manufacturer.as_ref().map(ToString::to_string);
                match store.recovery_hashes(user) {
                    Ok(hashes) => row.recovery_left = Some(hashes.len()),
                    Err(e) => row.problem = Some(e.to_string()),
                }
                match store.peek_state(user) {
                    Ok(Some(state)) => {
                        row.locked_until = state.locked_at(now).then_some(state.locked_until);
                        row.combined_locked_until = limits.and_then(|l| {
                            state
                                .combined
                                .locked_until(l.max_failures, l.lockout_seconds, now)
                        });
                        row.last_login = (state.last_success > 0).then_some(state.last_success);
                        if let Some(limits) = limits {
                            let counted = |failures: u32, since: u64| {
                                let running = now.saturating_sub(since) < limits.lockout_seconds;
                                (if running { failures } else { 0 }, limits.max_failures)
                            };
                            row.failures =
                                Some(counted(state.failures, state.failure_window_start));
                            row.combined_failures = Some(counted(
                                state.combined.failures,
                                state.combined.window_start,
                            ));
                        }
                        row.clock_offset = state
                            .clock_offset
                            .filter(|_| record.kind == Kind::Totp)
                            .map(|steps| i64::from(steps) * i64::from(record.period));
                    }
                    Ok(None) => {}
                    Err(e) => row.problem = Some(e.to_string()),
                }
            }
            Ok(None) => {}
            Err(e) => row.problem = Some(e.to_string()),
        }
        rows.push(row);
    }

    if args.json {
        let list: Vec<RowJson> = rows.iter().map(RowJson::from).collect();
        print_json(&list)?;
        return problems(&rows);
    }

    let colour = std::io::stdout().is_terminal();
    let paint = |text: String, code: &str| {
        if colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text
        }
    };
    println!(
        "{}",
        paint(
            format!(
                "{:<16} {:<9} {:<16} {:<12} {:<24} {:>8}  {}",
                "USER", "MODE", "RULE", "ENROLLED", "LOCKED UNTIL", "RECOVERY", "LAST LOGIN"
            ),
            "1"
        )
    );
    for row in &rows {
        let enrolled = row.enrolled.clone().unwrap_or_else(|| "no".into());
        let line = format!(
            "{:<16} {:<9} {:<16} {:<12} {:<24} {:>8}  {}",
            row.user,
            row.mode.as_deref().unwrap_or("-"),
            row.rule.as_deref().unwrap_or("-"),
            enrolled,
            row.locked_until.map_or("-".into(), format_utc),
            row.recovery_left.map_or("-".into(), |n| n.to_string()),
            row.last_login.map_or("never".into(), format_utc),
        );
        let needs_attention = row.locked_until.is_some()
            || row.combined_locked_until.is_some()
            || row.problem.is_some()
            || (row.mode.as_deref() == Some(Mode::Required.name()) && row.enrolled.is_none());
        println!(
            "{}",
            if needs_attention {
                paint(line, "31")
            } else {
                line
            }
        );
        if let Some(serial) = &row.serial {
            let made_by = row
                .manufacturer
                .as_ref()
                .map_or(String::new(), |m| format!(" ({m})"));
            println!("  token: serial {serial}{made_by}");
        }
        if let Some(until) = row.combined_locked_until {
            let note = format!(
                "combined: codes typed with the password are refused until {} (pam-mfa unlock {})",
                format_utc(until),
                row.user
            );
            println!("  {}", paint(note, "31"));
        }
        if let Some((failures, max)) = row.failures.filter(|(n, _)| *n > 0) {
            println!(
                "  failures: {failures} of {max} wrong codes (at {max} the second factor locks)"
            );
        }
        if let Some((failures, max)) = row.combined_failures.filter(|(n, _)| *n > 0) {
            if row.combined_locked_until.is_none() {
                println!("  combined: {failures} of {max} wrong codes typed with the password");
            }
        }
        // Only an offset worth a look: within a step is what every clock does.
        if let Some(seconds) = row.clock_offset.filter(|s| *s != 0) {
            println!(
                "  clock about {seconds:+} s: the last accepted code was the device's, {} s {} this host's clock",
                seconds.unsigned_abs(),
                if seconds > 0 { "ahead of" } else { "behind" }
            );
        }
        if let Some(problem) = &row.problem {
            println!("  {}", paint(format!("problem: {problem}"), "31"));
        }
    }
    problems(&rows)
}

/// Exit status 1 when an account shown has a problem (unknown, unreadable record or
/// state), after every account was shown: scripts see it without parsing the output.
fn problems(rows: &[Row]) -> Result<(), CliError> {
    if rows.iter().any(|r| r.problem.is_some()) {
        Err(CliError::silent())
    } else {
        Ok(())
    }
}

/// `status --missing`: the accounts, of all NSS enumerates, that some login may ask for a
/// code and that have no secret, with the reason (or the error that hides it).
fn missing(policy: &policy::Policy, store: &dyn Store, json: bool) -> Result<(), CliError> {
    // NSS may not enumerate directory accounts (SSSD's default enumerate = false): the
    // users that required rules name, and the listed members of their groups, count too.
    let mut candidates: Vec<String> = all_accounts()?.into_iter().map(|(n, _, _)| n).collect();
    for rule in policy.rules.iter().filter(|r| r.mode == Mode::Required) {
        candidates.extend(rule.users.iter().cloned());
        for group in &rule.groups {
            let members = accounts::group_members(group).map_err(|e| {
                CliError::new(format!("looking up group {group:?} failed: {}", e.desc()))
            })?;
            candidates.extend(members);
        }
    }
    // Root always needs a code, listed or not.
    candidates.push("root".into());
    // Each name once, in the order found: an account listed and also named by a rule is
    // looked up once.
    let mut seen = std::collections::HashSet::new();
    candidates.retain(|name| seen.insert(name.clone()));
    let names = policy_names(policy)?;
    let mut found: Vec<(String, String)> = Vec::new();
    for name in candidates {
        let Ok(user) = UserName::parse(&name) else {
            continue;
        };
        if store.is_enrolled(&user)? {
            continue;
        }
        let why = match accounts::lookup(&user, &names) {
            Ok(account) => match policy::may_require(policy, &account) {
                Some(requirement) => requirement.to_string(),
                None => continue,
            },
            // A name a rule gives that NSS does not know cannot log in.
            Err(AccountError::Unknown) => continue,
            Err(e) => format!("cannot tell: {e}"),
        };
        found.push((name, why));
    }
    if json {
        let list: Vec<MissingJson> = found
            .iter()
            .map(|(user, why)| MissingJson { user, why })
            .collect();
        print_json(&list)?;
    } else {
        if found.is_empty() {
            println!("every account that may need a code has a secret");
        }
        for (user, why) in &found {
            println!("{user:<16} no secret: {why}");
        }
        println!(
            "(looked at root, the accounts NSS lists, the users required rules name and the listed members of their groups)"
        );
    }
    if found.is_empty() {
        Ok(())
    } else {
        Err(CliError::silent())
    }
}

/// The enrolled accounts whose record names the token `serial`. A record that cannot be
/// read is an error, so that a lost token is never reported as assigned to no one while a
/// record hides it.
fn token_holders(store: &dyn Store, serial: &str) -> Result<Vec<UserName>, CliError> {
    let mut holders = Vec::new();
    for user in store.enrolled_users()? {
        let Some(record) = store.record(&user)? else {
            continue;
        };
        if record.serial.as_ref().is_some_and(|s| s.as_str() == serial) {
            holders.push(user);
        }
    }
    Ok(holders)
}

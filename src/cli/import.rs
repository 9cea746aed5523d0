//! `pam-mfa import`: bring accounts over from google-authenticator-libpam files, or an
//! existing device from its otpauth URI.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{IsTerminal, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::account::{all_accounts, lookup, open_or_create_store};
use super::input::read_line;
use super::progress::Progress;
use super::recovery::print_codes;
use super::{CliError, ConfigArg};
use crate::clock::{Clock, SystemClock};
use crate::otp::totp::time_step;
use crate::otp::verify::LAST_USABLE_COUNTER;
use crate::otpauth;
use crate::policy;
use crate::recovery;
use crate::secret::SecretKey;
use crate::store::record::{MAX_HOTP_WINDOW, MAX_TOTP_WINDOW};
use crate::store::{Kind, Record, State, Store, MAX_RECOVERY_CODES};
use crate::username::UserName;

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// Import google-authenticator-libpam secret files (~/.google_authenticator).
    ///
    /// Scratch codes become recovery codes, at most 668 (as many as a recovery file holds);
    /// an HOTP_COUNTER above 18446744073709551614 (after which no code could pass) is refused.
    GoogleAuthenticator(GoogleArgs),
    /// Import an existing device from its otpauth:// URI, read from standard input.
    Uri(UriArgs),
    /// Import hardware tokens from a vendor's PSKC (RFC 6030) seed file, by serial number.
    Pskc(super::pskc::PskcArgs),
}

#[derive(Args, Debug)]
pub struct GoogleArgs {
    /// The account to import (with FILE, or its ~/.google_authenticator).
    #[arg(
        long,
        conflicts_with = "all_homes",
        required_unless_present = "all_homes"
    )]
    user: Option<String>,
    /// The google-authenticator file (default: the user's ~/.google_authenticator).
    #[arg(requires = "user")]
    file: Option<PathBuf>,
    /// Import every account whose home directory (from NSS) holds a .google_authenticator.
    #[arg(long)]
    all_homes: bool,
    /// Replace the secret of accounts enrolled already with a different one (an account
    /// enrolled with the same secret is left unchanged without it).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(Args, Debug)]
pub struct UriArgs {
    /// The account the device belongs to.
    #[arg(long)]
    user: String,
    /// Replace the secret of an account enrolled already with a different one (an account
    /// enrolled with the same secret is left unchanged without it).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    config: ConfigArg,
}

pub fn run(command: &ImportCommand) -> Result<(), CliError> {
    match command {
        ImportCommand::GoogleAuthenticator(args) => google(args),
        ImportCommand::Uri(args) => from_uri(args),
        ImportCommand::Pskc(args) => super::pskc::run(args),
    }
}

fn from_uri(args: &UriArgs) -> Result<(), CliError> {
    let policy = policy::load(&args.config.config)?;
    let user = UserName::parse(&args.user)?;
    lookup(&user)?;
    let store = open_or_create_store(&policy)?;
    if std::io::stdin().is_terminal() {
        eprintln!("Paste the otpauth:// URI, then press Enter:");
    }
    let line = read_line("otpauth URI")?;
    let parsed = otpauth::parse(&line).map_err(CliError::new)?;
    if !args.force {
        match compare_enrolled(&*store, &user, &parsed.record)? {
            Enrolled::No => {}
            Enrolled::Same => {
                println!("unchanged {user}: enrolled with this secret already");
                return Ok(());
            }
            Enrolled::Different(what) => {
                return Err(CliError::new(format!(
                    "conflict {user}: enrolled already with {what}; use --force to replace it"
                )))
            }
        }
    }
    let state = State {
        next_counter: parsed.counter,
        ..State::default()
    };
    let (codes, hashes) = recovery::generate()?;
    store.enroll(&user, &parsed.record, state, &hashes, args.force)?;
    print_codes(&codes);
    eprintln!(
        "{user} is enrolled ({} {}, {} digits).",
        parsed.record.kind.name(),
        parsed.record.algorithm,
        parsed.record.digits.get()
    );
    Ok(())
}

/// What happened to one account.
enum Result1 {
    Imported(String),
    /// Enrolled already with the same secret and parameters: nothing written.
    Unchanged,
    /// Enrolled already with another secret (or parameters), and no --force.
    Conflict(String),
    Skipped(String),
}

/// How an import meets the account's record.
pub(super) enum Enrolled {
    No,
    /// The same secret, kind, algorithm, digits and period: importing again changes
    /// nothing a login sees, so a script may run the import as often as it likes.
    Same,
    /// Something else, described for the admin (never the secret itself).
    Different(&'static str),
}

/// Compares what an import would save with what the store holds; secrets in constant
/// time.
pub(super) fn compare_enrolled(
    store: &dyn Store,
    user: &UserName,
    new: &Record,
) -> Result<Enrolled, CliError> {
    let Some(old) = store.record(user)? else {
        return Ok(Enrolled::No);
    };
    let same_secret: bool = old.secret.as_bytes().ct_eq(new.secret.as_bytes()).into();
    Ok(if !same_secret {
        Enrolled::Different("a different secret")
    } else if old.kind != new.kind
        || old.algorithm != new.algorithm
        || old.digits != new.digits
        || (old.kind == Kind::Totp && old.period != new.period)
    {
        Enrolled::Different(
            "the same secret but other parameters (kind, algorithm, digits or period)",
        )
    } else {
        Enrolled::Same
    })
}

fn google(args: &GoogleArgs) -> Result<(), CliError> {
    let policy = policy::load(&args.config.config)?;
    let store = open_or_create_store(&policy)?;
    if let Some(user) = &args.user {
        let user = UserName::parse(user)?;
        let account = lookup(&user)?;
        let (path, owners) = match &args.file {
            // An explicit file may be the user's own or a central, root-owned one.
            Some(path) => (path.clone(), vec![account.uid, 0]),
            None => (
                home_of(&user)?.join(".google_authenticator"),
                vec![account.uid],
            ),
        };
        return match import_one(&*store, &user, &path, &owners, args.force)? {
            Result1::Imported(what) => {
                println!("imported {user}: {what}");
                Ok(())
            }
            Result1::Unchanged => {
                println!("unchanged {user}: enrolled with this secret already");
                Ok(())
            }
            Result1::Conflict(why) => Err(CliError::new(format!("conflict {user}: {why}"))),
            Result1::Skipped(why) => Err(CliError::new(format!("{user}: {why}"))),
        };
    }

    // --all-homes: every account NSS lists, through getent so LDAP and SSSD count.
    let accounts = all_accounts()?;
    let candidates: Vec<_> = accounts
        .iter()
        .filter(|(_, _, home)| home.join(".google_authenticator").exists())
        .collect();
    let mut progress = Progress::new("accounts", candidates.len());
    let (mut imported, mut unchanged, mut conflicts, mut skipped) = (0, 0, 0, 0);
    for (index, (name, uid, home)) in candidates.iter().enumerate() {
        progress.update(index);
        let outcome = match UserName::parse(name) {
            Ok(user) => import_one(
                &*store,
                &user,
                &home.join(".google_authenticator"),
                &[*uid],
                args.force,
            )
            .unwrap_or_else(|e| Result1::Skipped(e.to_string())),
            Err(e) => Result1::Skipped(e.to_string()),
        };
        // One line per account on stdout, for scripts to read; the count on stderr.
        progress.clear();
        match outcome {
            Result1::Imported(what) => {
                imported += 1;
                println!("imported  {name}: {what}");
            }
            Result1::Unchanged => {
                unchanged += 1;
                println!("unchanged {name}: enrolled with this secret already");
            }
            Result1::Conflict(why) => {
                conflicts += 1;
                println!("conflict  {name}: {why}");
            }
            Result1::Skipped(why) => {
                skipped += 1;
                println!("skipped   {name}: {why}");
            }
        }
        progress.update(index + 1);
    }
    progress.finish();
    println!(
        "{imported} imported, {skipped} skipped, {unchanged} unchanged, {conflicts} conflict(s), \
         {} account(s) without a .google_authenticator file",
        accounts.len() - candidates.len()
    );
    if conflicts + skipped > 0 {
        return Err(CliError::new(format!(
            "{conflicts} conflict(s) and {skipped} skipped account(s); see above"
        )));
    }
    Ok(())
}

/// Imports one google-authenticator file for `user`. Problems with this account's file
/// are a skip with a reason; errors of the store stop everything.
fn import_one(
    store: &dyn Store,
    user: &UserName,
    path: &Path,
    owners: &[u32],
    force: bool,
) -> Result<Result1, CliError> {
    let contents = match read_source(path, owners) {
        Ok(contents) => contents,
        Err(why) => return Ok(Result1::Skipped(why)),
    };
    let parsed = match parse_google(&contents) {
        Ok(parsed) => parsed,
        Err(why) => return Ok(Result1::Skipped(format!("{}: {why}", path.display()))),
    };
    if !force {
        match compare_enrolled(store, user, &parsed.record)? {
            Enrolled::No => {}
            Enrolled::Same => return Ok(Result1::Unchanged),
            Enrolled::Different(what) => {
                return Ok(Result1::Conflict(format!(
                    "enrolled already with {what}; use --force to replace it"
                )))
            }
        }
    }
    // A used step beyond the window ahead of now would refuse every code until then.
    if let (Kind::Totp, Some(used)) = (parsed.record.kind, parsed.state.last_step) {
        let now = time_step(SystemClock.now(), parsed.record.period);
        if used > now + u64::from(parsed.record.window) {
            return Ok(Result1::Skipped(format!(
                "{}: DISALLOW_REUSE names time step {used}, after the current step {now}: \
                 the file or the clock is wrong",
                path.display()
            )));
        }
    }
    let mut hashes = Vec::with_capacity(parsed.scratch.len());
    for code in &parsed.scratch {
        hashes.push(recovery::hash(code)?);
    }
    store.enroll(user, &parsed.record, parsed.state, &hashes, force)?;
    let timing = match parsed.record.kind {
        Kind::Totp => format!("{} s steps", parsed.record.period),
        Kind::Hotp => format!("counter {}", parsed.state.next_counter),
    };
    let mut what = format!(
        "{}, {timing}, window {}, {} scratch code(s) as recovery codes",
        parsed.record.kind.name(),
        parsed.record.window,
        parsed.scratch.len()
    );
    for note in &parsed.notes {
        what.push_str("; ");
        what.push_str(note);
    }
    Ok(Result1::Imported(what))
}

/// Reads a source file without following a symlink, refusing anything but a regular
/// file with one link, owned by one of `owners`, and unreadable by group and others.
/// The source is never modified or deleted.
fn read_source(path: &Path, owners: &[u32]) -> Result<Zeroizing<Vec<u8>>, String> {
    let shown = path.display();
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = open(path, flags, Mode::empty()).map_err(|e| match e {
        nix::errno::Errno::ELOOP => format!("{shown}: is a symbolic link; refusing it"),
        e => format!("{shown}: {}", e.desc()),
    })?;
    let mut file = File::from(fd);
    let meta = file.metadata().map_err(|e| format!("{shown}: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(format!("{shown}: not a regular file"));
    }
    if !owners.contains(&meta.uid()) {
        return Err(format!(
            "{shown}: owned by uid {}, not by the account; refusing it",
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{shown}: mode {:04o} lets others read the secret; refusing it (chmod 0400 and rotate the secret)",
            meta.mode() & 0o7777
        ));
    }
    if meta.nlink() != 1 {
        return Err(format!(
            "{shown}: has {} hard links; refusing it",
            meta.nlink()
        ));
    }
    let mut buffer = Zeroizing::new(vec![0u8; 64 * 1024 + 1]);
    let mut filled = 0;
    loop {
        let n = file
            .read(&mut buffer[filled..])
            .map_err(|e| format!("{shown}: {e}"))?;
        if n == 0 {
            break;
        }
        filled += n;
        if filled > 64 * 1024 {
            return Err(format!(
                "{shown}: too large for a google-authenticator file"
            ));
        }
    }
    buffer.truncate(filled);
    Ok(buffer)
}

struct GoogleFile {
    record: Record,
    state: State,
    /// Scratch codes, normalized for hashing.
    scratch: Vec<Zeroizing<Vec<u8>>>,
    /// What could not be carried over exactly.
    notes: Vec<String>,
}

/// Parses google-authenticator-libpam's format: the base32 secret on the first line,
/// `" OPTION ...` lines, then 8-digit scratch codes.
fn parse_google(contents: &[u8]) -> Result<GoogleFile, String> {
    let text = std::str::from_utf8(contents).map_err(|_| "not text".to_string())?;
    let mut lines = text.lines();
    let secret_line = lines.next().ok_or("empty file")?;
    let secret = SecretKey::from_base32(secret_line.trim()).map_err(|e| format!("line 1: {e}"))?;
    let mut record = Record::new_totp(secret);
    let mut state = State::default();
    let mut totp = false;
    let mut hotp_counter = None;
    let mut window_size = None;
    let mut scratch = Vec::new();
    let mut notes = Vec::new();
    let mut reuse_allowed = true;
    for (index, line) in lines.enumerate() {
        let number = index + 2;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(option) = line.strip_prefix("\" ") {
            let mut words = option.split_whitespace();
            let values: Vec<&str> = words.clone().skip(1).collect();
            let parse_u64 = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| format!("line {number}: bad number {v:?}"))
            };
            match words.next() {
                Some("TOTP_AUTH") => totp = true,
                Some("HOTP_COUNTER") => {
                    let counter = parse_u64(values.first().ok_or(format!("line {number}: no counter"))?)?;
                    // After the last usable counter no code could ever be accepted.
                    if counter > LAST_USABLE_COUNTER {
                        return Err(format!(
                            "line {number}: HOTP_COUNTER {counter} is not a number from 0 to \
                             {LAST_USABLE_COUNTER}: no code after it could ever be accepted"
                        ));
                    }
                    hotp_counter = Some(counter);
                }
                Some("STEP_SIZE") => {
                    let step = parse_u64(values.first().ok_or(format!("line {number}: no step size"))?)?;
                    record.period = u32::try_from(step)
                        .ok()
                        .filter(|p| (1..=3600).contains(p))
                        .ok_or(format!("line {number}: step size {step} is not 1 to 3600"))?;
                }
                Some("WINDOW_SIZE") => {
                    window_size = Some(parse_u64(values.first().ok_or(format!("line {number}: no window size"))?)?)
                }
                Some("DISALLOW_REUSE") => {
                    reuse_allowed = false;
                    for value in &values {
                        let step = parse_u64(value)?;
                        state.last_step = state.last_step.max(Some(step));
                    }
                }
                Some("RATE_LIMIT") => notes.push(format!(
                    "RATE_LIMIT {} not carried over: the policy's max_failures and lockout_seconds apply",
                    values.iter().take(2).copied().collect::<Vec<_>>().join(" ")
                )),
                // Options that change nothing here.
                Some(_) | None => {}
            }
        } else if line.len() == 8 && line.bytes().all(|b| b.is_ascii_digit()) {
            let normalized = recovery::normalize(line.as_bytes())
                .ok_or(format!("line {number}: bad scratch code"))?;
            if scratch.len() == MAX_RECOVERY_CODES {
                return Err(format!(
                    "line {number}: more than {MAX_RECOVERY_CODES} scratch codes; \
                     a recovery file holds at most {MAX_RECOVERY_CODES}"
                ));
            }
            scratch.push(normalized);
        } else {
            return Err(format!("line {number}: not an option or a scratch code"));
        }
    }
    match (totp, hotp_counter) {
        (true, Some(_)) => return Err("both TOTP_AUTH and HOTP_COUNTER".into()),
        (false, Some(counter)) => {
            record.kind = Kind::Hotp;
            state.next_counter = counter;
            state.last_step = None;
            record.window =
                window_size.map_or(3, |w| w.clamp(1, u64::from(MAX_HOTP_WINDOW)) as u32);
        }
        // google-authenticator treats a file without either option as TOTP.
        (_, None) => {
            // WINDOW_SIZE counts all codes accepted; pam-mfa counts steps on each side.
            let each_side = window_size.map_or(1, |w| w.saturating_sub(1) / 2);
            if each_side > u64::from(MAX_TOTP_WINDOW) {
                notes.push(format!(
                    "window narrowed to {MAX_TOTP_WINDOW} steps each way"
                ));
            }
            record.window = each_side.min(u64::from(MAX_TOTP_WINDOW)) as u32;
        }
    }
    if reuse_allowed {
        notes.push("reuse was allowed; pam-mfa never accepts a code twice".into());
    }
    Ok(GoogleFile {
        record,
        state,
        scratch,
        notes,
    })
}

/// The home directory of an account, from NSS.
fn home_of(user: &UserName) -> Result<PathBuf, CliError> {
    match nix::unistd::User::from_name(user.as_str()) {
        Ok(Some(entry)) => Ok(entry.dir),
        _ => Err(CliError::new(format!("no home directory for {user}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_file_with_options_and_scratch_codes() {
        let file = b"4PTUUTJ4ILRM6ISUNPXRJRIIHY\n\" RATE_LIMIT 3 30 1700000000\n\" WINDOW_SIZE 17\n\" DISALLOW_REUSE 56666660 56666661\n\" TOTP_AUTH\n93101389\n70326577\n";
        let parsed = parse_google(file).unwrap();
        assert_eq!(parsed.record.kind, Kind::Totp);
        assert_eq!(parsed.record.window, 8);
        assert_eq!(parsed.state.last_step, Some(56666661));
        assert_eq!(parsed.scratch.len(), 2);
        assert!(parsed.notes.iter().any(|n| n.contains("RATE_LIMIT")));
    }

    #[test]
    fn hotp_file_keeps_its_counter() {
        let file = b"JENLMADAYVWUYQGKS7LYS4LVEU\n\" WINDOW_SIZE 5\n\" HOTP_COUNTER 7\n78611011\n";
        let parsed = parse_google(file).unwrap();
        assert_eq!(parsed.record.kind, Kind::Hotp);
        assert_eq!(parsed.state.next_counter, 7);
        assert_eq!(parsed.record.window, 5);
    }

    #[test]
    fn step_size_carries_over() {
        let parsed =
            parse_google(b"JENLMADAYVWUYQGKS7LYS4LVEU\n\" STEP_SIZE 60\n\" TOTP_AUTH\n").unwrap();
        assert_eq!(parsed.record.period, 60);
        assert_eq!(parsed.record.window, 1);
    }

    #[test]
    fn malformed_files_are_refused() {
        for bad in [
            &b""[..],
            b"not base32!\n",
            b"JENLMADAYVWUYQGKS7LYS4LVEU\n\" STEP_SIZE 0\n",
            b"JENLMADAYVWUYQGKS7LYS4LVEU\n1234\n",
            b"JENLMADAYVWUYQGKS7LYS4LVEU\n\" TOTP_AUTH\n\" HOTP_COUNTER 1\n",
        ] {
            assert!(
                parse_google(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

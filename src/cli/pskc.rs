//! `pam-mfa import pskc`: hardware tokens from a vendor's PSKC (RFC 6030) seed file,
//! assigned to accounts by serial number, one by one (`--assign`) or from a map file
//! (`--all --map`). Everything is read, decrypted and checked before anything is written.

#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use clap::Args;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};
use zeroize::{Zeroize, Zeroizing};

use super::account::{lookup, open_or_create_store};
use super::import::{compare_enrolled, Enrolled};
use super::{CliError, ConfigArg};
use crate::clock::{Clock, SystemClock};
use crate::policy;
use crate::pskc::{self, Import, Outcome, Protection, PskcError, Token, Unlock, Xml};
use crate::store::{Kind, State};
use crate::username::UserName;

/// Largest seed file read: tens of thousands of tokens.
const MAX_PSKC_BYTES: u64 = 64 * 1024 * 1024;
/// Largest key, password or map file read.
const MAX_SMALL_FILE_BYTES: u64 = 1024 * 1024;
/// Longest password accepted.
const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Args, Debug)]
pub struct PskcArgs {
    /// The vendor's PSKC file.
    file: PathBuf,
    /// Give the token with serial number SERIAL to account USER; repeat for more tokens.
    #[arg(
        long,
        value_name = "SERIAL=USER",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    assign: Vec<String>,
    /// Import every token that the --map file assigns.
    #[arg(long, requires = "map")]
    all: bool,
    /// With --all: serial number and account, two columns a line (`#` starts a comment).
    #[arg(long, value_name = "FILE", requires = "all")]
    map: Option<PathBuf>,
    /// For a file encrypted with a pre-shared key: the AES key, in hex or as raw bytes, in FILE
    /// (mode 0600 or stricter).
    #[arg(long, value_name = "FILE", conflicts_with = "password_file")]
    key_file: Option<PathBuf>,
    /// For a file encrypted with a password: the first line of FILE (mode 0600 or stricter) is
    /// the password. Without it, the password is asked on the terminal.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Replace the secret of accounts that are enrolled already.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    config: ConfigArg,
}

/// A token given to an account, and where the admin said so.
struct Assignment {
    serial: String,
    user: UserName,
    /// `--assign SERIAL=USER`, or `map line N`.
    origin: String,
}

/// What becomes of one assignment.
enum Plan<'t> {
    Import(&'t Import),
    Skip(String),
}

pub fn run(args: &PskcArgs) -> Result<(), CliError> {
    let policy = policy::load(&args.config.config)?;
    let assignments = match &args.map {
        Some(map) if args.all => read_map(map)?,
        _ => parse_assignments(&args.assign)?,
    };
    check_assignments(&assignments)?;

    let shown = args.file.display().to_string();
    let in_file = |e: PskcError| CliError::new(format!("{shown}: {e}"));
    let mut contents = read_file(&args.file, MAX_PSKC_BYTES, false)?;
    // XML turns CR LF into LF, which would make the parser copy the text (a secret among
    // it) into memory that is not wiped. A space reads the same in every value taken here.
    for byte in contents.iter_mut().filter(|b| **b == b'\r') {
        *byte = b' ';
    }
    let text = std::str::from_utf8(&contents).map_err(|_| in_file(PskcError::NotUtf8))?;
    let xml = Xml::parse(text).map_err(in_file)?;
    let container = xml.container().map_err(in_file)?;
    let protection = container.protection();
    let secret = key_material(args, protection)?;
    let unlock = match (protection, &secret) {
        (Protection::Plain, _) | (_, None) => Unlock::Nothing,
        (Protection::PreSharedKey { .. }, Some(key)) => Unlock::Key(key),
        (Protection::Password { .. }, Some(password)) => Unlock::Password(password),
    };
    let tokens = container
        .tokens(unlock, SystemClock.now())
        .map_err(in_file)?;
    drop(secret);

    // Which token each account gets; a serial the file lacks stops everything.
    let by_identity = group_by_identity(&tokens);
    let mut plans = Vec::with_capacity(assignments.len());
    let mut missing_from_file = 0;
    for assignment in &assignments {
        match by_identity.get(assignment.serial.as_str()) {
            Some(group) => plans.push((assignment, plan(group))),
            None if args.all => missing_from_file += 1,
            None => {
                return Err(CliError::new(format!(
                    "{shown}: no token with serial number {} ({}); nothing was imported",
                    assignment.serial, assignment.origin
                )))
            }
        }
    }
    let assigned: HashSet<&str> = assignments.iter().map(|a| a.serial.as_str()).collect();
    let unassigned = by_identity
        .keys()
        .filter(|identity| !assigned.contains(*identity))
        .count();

    let store = open_or_create_store(&policy)?;
    let (mut imported, mut unchanged, mut conflicts, mut skipped) = (0, 0, 0, 0);
    let mut without_recovery = Vec::new();
    for (assignment, plan) in plans {
        let (serial, user) = (&assignment.serial, &assignment.user);
        // As the other imports: the same token again changes nothing and is no error, so
        // that a script may run the import as often as it likes; another secret is a
        // conflict unless --force.
        if let (Plan::Import(import), false) = (&plan, args.force) {
            match compare_enrolled(&*store, user, &import.record)? {
                Enrolled::No => {}
                Enrolled::Same => {
                    unchanged += 1;
                    println!(
                        "unchanged {serial} -> {user}: enrolled with this token's secret already"
                    );
                    continue;
                }
                Enrolled::Different(what) => {
                    conflicts += 1;
                    println!(
                        "conflict  {serial} -> {user}: enrolled already with {what}; use --force to replace it"
                    );
                    continue;
                }
            }
        }
        match plan {
            Plan::Import(import) => {
                let state = State {
                    next_counter: import.counter,
                    ..State::default()
                };
                // A new token does not void the account's recovery codes.
                let hashes = store.recovery_hashes(user)?;
                store
                    .enroll(user, &import.record, state, &hashes, args.force)
                    .map_err(|e| {
                        CliError::new(format!(
                            "{e}; {imported} token(s) were imported before this error"
                        ))
                    })?;
                if hashes.is_empty() {
                    without_recovery.push(user.to_string());
                }
                imported += 1;
                println!("imported {serial} -> {user}: {}", describe(import));
            }
            Plan::Skip(why) => {
                skipped += 1;
                println!("skipped  {serial} -> {user}: {why}");
            }
        }
    }

    let mut summary = format!(
        "{imported} imported, {unchanged} unchanged, {conflicts} conflict(s), {skipped} skipped"
    );
    if args.all {
        summary.push_str(&format!(
            ", {unassigned} token(s) of the file not in the map, {missing_from_file} map line(s) naming no token of the file"
        ));
    }
    println!("{summary}");
    if protection == Protection::Plain {
        println!(
            "{shown} holds the secrets in the clear: keep it as safe as the store, or delete it"
        );
    }
    if !without_recovery.is_empty() {
        println!(
            "no recovery codes yet for {}: make them with `pam-mfa recovery USER`",
            without_recovery.join(", ")
        );
    }
    if conflicts + skipped > 0 {
        return Err(CliError::new(format!(
            "{conflicts} conflict(s) and {skipped} token(s) skipped; see above"
        )));
    }
    Ok(())
}

/// The pre-shared key or the password the document needs, checked against the options.
fn key_material(
    args: &PskcArgs,
    protection: Protection<'_>,
) -> Result<Option<Zeroizing<Vec<u8>>>, CliError> {
    let shown = args.file.display();
    match protection {
        Protection::Plain => {
            if args.key_file.is_some() || args.password_file.is_some() {
                return Err(CliError::new(format!(
                    "{shown} is not encrypted; leave out --key-file and --password-file"
                )));
            }
            Ok(None)
        }
        Protection::PreSharedKey { name } => {
            let named = name.map_or(String::new(), |n| format!(" ({n:?})"));
            let Some(path) = &args.key_file else {
                return Err(CliError::new(format!(
                    "{shown} is encrypted with a pre-shared key{named}: give it with --key-file FILE"
                )));
            };
            let contents = read_file(path, MAX_SMALL_FILE_BYTES, true)?;
            pskc::parse_key_file(&contents).map(Some).ok_or_else(|| {
                CliError::new(format!(
                    "{}: not an AES key (16, 24 or 32 bytes, raw or in hex)",
                    path.display()
                ))
            })
        }
        Protection::Password { name } => {
            if args.key_file.is_some() {
                return Err(CliError::new(format!(
                    "{shown} is encrypted with a password, not a pre-shared key: give --password-file FILE, or leave both out to be asked"
                )));
            }
            match &args.password_file {
                Some(path) => password_from_file(path).map(Some),
                None => ask_password(&args.file, name).map(Some),
            }
        }
    }
}

/// The first line of a private file, without its line ending.
fn password_from_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let mut contents = read_file(path, MAX_SMALL_FILE_BYTES, true)?;
    let mut end = contents
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(contents.len());
    if end > 0 && contents[end - 1] == b'\r' {
        end -= 1;
    }
    contents[end..].zeroize();
    contents.truncate(end);
    if contents.is_empty() {
        return Err(CliError::new(format!(
            "{}: the first line, the password, is empty",
            path.display()
        )));
    }
    Ok(contents)
}

/// Asks the password on the terminal, with echo off.
fn ask_password(file: &Path, name: Option<&str>) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let no_terminal = || {
        CliError::new(format!(
            "{} is encrypted with a password and there is no terminal to ask it on: give --password-file FILE",
            file.display()
        ))
    };
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| no_terminal())?;
    let original = termios::tcgetattr(&tty).map_err(|_| no_terminal())?;
    let mut quiet = original.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    termios::tcsetattr(&tty, SetArg::TCSAFLUSH, &quiet)
        .map_err(|e| CliError::new(format!("cannot turn off echo on the terminal: {e}")))?;
    let restore = EchoRestorer {
        tty: &tty,
        original,
    };
    let named = name.map_or(String::new(), |n| format!(" ({n})"));
    let mut writer = &tty;
    let _ = write!(writer, "Password for {}{named}: ", file.display());
    let _ = writer.flush();
    let mut password = Zeroizing::new(Vec::with_capacity(MAX_PASSWORD_BYTES));
    let mut byte = [0u8; 1];
    let mut reader = &tty;
    loop {
        match reader.read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) if password.len() == MAX_PASSWORD_BYTES => {
                byte.zeroize();
                return Err(CliError::new("the password is too long"));
            }
            Ok(_) => password.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CliError::new(format!("cannot read the password: {e}"))),
        }
    }
    byte.zeroize();
    drop(restore);
    if password.last() == Some(&b'\r') {
        password.pop();
    }
    if password.is_empty() {
        return Err(CliError::new("no password given; nothing was imported"));
    }
    Ok(password)
}

/// Puts the terminal's echo back, however the prompt ends.
struct EchoRestorer<'a> {
    tty: &'a File,
    original: Termios,
}

impl Drop for EchoRestorer<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.tty, SetArg::TCSANOW, &self.original);
    }
}

/// `--assign SERIAL=USER` options.
fn parse_assignments(options: &[String]) -> Result<Vec<Assignment>, CliError> {
    options
        .iter()
        .map(|option| {
            let (serial, user) = option
                .split_once('=')
                .map(|(s, u)| (s.trim(), u.trim()))
                .filter(|(s, u)| !s.is_empty() && !u.is_empty())
                .ok_or_else(|| {
                    CliError::new(format!("--assign {option:?}: expected SERIAL=USER"))
                })?;
            Ok(Assignment {
                serial: serial.to_owned(),
                user: UserName::parse(user)
                    .map_err(|e| CliError::new(format!("--assign {option:?}: {e}")))?,
                origin: format!("--assign {serial}={user}"),
            })
        })
        .collect()
}

/// The map file: `SERIAL USER` a line, separated by spaces, tabs, a comma or a semicolon;
/// blank lines and `#` comments ignored, and a first line `serial,user` taken as a header.
fn read_map(path: &Path) -> Result<Vec<Assignment>, CliError> {
    let shown = path.display();
    let contents = read_file(path, MAX_SMALL_FILE_BYTES, false)?;
    let text = std::str::from_utf8(&contents)
        .map_err(|_| CliError::new(format!("{shown}: not UTF-8 text")))?;
    let mut assignments = Vec::new();
    let mut first = true;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .filter(|field| !field.is_empty())
            .collect();
        let header = first
            && fields
                .first()
                .is_some_and(|f| f.eq_ignore_ascii_case("serial"));
        first = false;
        if header {
            continue;
        }
        let [serial, user] = fields[..] else {
            return Err(CliError::new(format!(
                "{shown}: line {number}: expected two columns, serial number and account"
            )));
        };
        assignments.push(Assignment {
            serial: serial.to_owned(),
            user: UserName::parse(user)
                .map_err(|e| CliError::new(format!("{shown}: line {number}: {e}")))?,
            origin: format!("{shown} line {number}"),
        });
    }
    if assignments.is_empty() {
        return Err(CliError::new(format!("{shown}: assigns no token")));
    }
    Ok(assignments)
}

/// No token twice, no account twice, and every account known to NSS.
fn check_assignments(assignments: &[Assignment]) -> Result<(), CliError> {
    let mut serials = HashMap::new();
    let mut users = HashMap::new();
    for assignment in assignments {
        if let Some(earlier) = serials.insert(assignment.serial.as_str(), &assignment.origin) {
            return Err(CliError::new(format!(
                "serial number {} is assigned twice ({earlier}, {})",
                assignment.serial, assignment.origin
            )));
        }
        if let Some(earlier) = users.insert(&assignment.user, &assignment.origin) {
            return Err(CliError::new(format!(
                "{} is given two tokens ({earlier}, {}); an account has one secret",
                assignment.user, assignment.origin
            )));
        }
        lookup(&assignment.user)
            .map_err(|e| CliError::new(format!("{e} ({})", assignment.origin)))?;
    }
    Ok(())
}

/// The file's tokens by serial number (or key Id), in file order within each.
fn group_by_identity(tokens: &[Token]) -> HashMap<&str, Vec<&Token>> {
    let mut groups: HashMap<&str, Vec<&Token>> = HashMap::new();
    for token in tokens {
        if let Some(identity) = token.identity() {
            groups.entry(identity).or_default().push(token);
        }
    }
    groups
}

/// The one usable key of a device, or why there is none.
fn plan<'t>(group: &[&'t Token]) -> Plan<'t> {
    let ready: Vec<(&Token, &Import)> = group
        .iter()
        .filter_map(|token| match &token.outcome {
            Outcome::Ready(import) => Some((*token, import)),
            Outcome::Skip(_) => None,
        })
        .collect();
    match ready[..] {
        [(_, import)] => Plan::Import(import),
        [] => Plan::Skip(
            group
                .iter()
                .map(|token| {
                    let why = match &token.outcome {
                        Outcome::Skip(why) => why.as_str(),
                        Outcome::Ready(_) => "",
                    };
                    match (&token.key_id, group.len()) {
                        (Some(id), 2..) => format!("key {id}: {why}"),
                        _ => why.to_owned(),
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => Plan::Skip(format!(
            "the file has {} usable keys for this device ({}); pam-mfa cannot tell which one it shows",
            ready.len(),
            ready
                .iter()
                .map(|(token, _)| token.key_id.as_deref().unwrap_or("?"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// `totp SHA1, 6 digits, 60 s steps, Manufacturer; notes`.
fn describe(import: &Import) -> String {
    let record = &import.record;
    let mut text = format!(
        "{} {}, {} digits",
        record.kind.name(),
        record.algorithm,
        record.digits.get()
    );
    match record.kind {
        Kind::Totp => text.push_str(&format!(", {} s steps", record.period)),
        Kind::Hotp => text.push_str(&format!(", counter {}", import.counter)),
    }
    if let Some(manufacturer) = &record.manufacturer {
        text.push_str(&format!(", {manufacturer}"));
    }
    for note in &import.notes {
        text.push_str("; ");
        text.push_str(note);
    }
    text
}

/// Reads a file without following a symlink: a regular file, at most `limit` bytes, into
/// zeroizing memory sized once. A `private` file (a key or password) must not be readable
/// or writable by group or others.
fn read_file(path: &Path, limit: u64, private: bool) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let shown = path.display();
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = open(path, flags, Mode::empty()).map_err(|e| match e {
        nix::errno::Errno::ELOOP => {
            CliError::new(format!("{shown}: is a symbolic link; refusing it"))
        }
        e => CliError::new(format!("{shown}: {}", e.desc())),
    })?;
    let mut file = File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| CliError::new(format!("{shown}: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(CliError::new(format!("{shown}: not a regular file")));
    }
    if private && meta.mode() & 0o077 != 0 {
        return Err(CliError::new(format!(
            "{shown}: mode {:04o} lets others read or change it; chmod 0600 it",
            meta.mode() & 0o7777
        )));
    }
    if meta.len() > limit {
        return Err(CliError::new(format!("{shown}: larger than {limit} bytes")));
    }
    // One byte more than the file has, to see it end; the length came from fstat, so it fits.
    let size = usize::try_from(meta.len()).unwrap_or(0) + 1;
    let mut buffer = Zeroizing::new(vec![0u8; size]);
    let mut filled = 0;
    loop {
        if filled == buffer.len() {
            return Err(CliError::new(format!("{shown}: grew while it was read")));
        }
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CliError::new(format!("{shown}: {e}"))),
        }
    }
    buffer.truncate(filled);
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_need_a_serial_and_a_user() {
        let parsed = parse_assignments(&["987654321=alice".into(), " 12 = bob ".into()]).unwrap();
        assert_eq!(parsed[0].serial, "987654321");
        assert_eq!(parsed[0].user.as_str(), "alice");
        assert_eq!(parsed[1].serial, "12");
        for bad in ["987654321", "=alice", "987654321=", "1=a/b"] {
            assert!(parse_assignments(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn map_files_take_columns_comments_and_a_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map");
        std::fs::write(
            &path,
            "serial,user\n# roll-out 1\n1001 alice\n\n1002,\tbob # spare\n1003;carol\n",
        )
        .unwrap();
        let map = read_map(&path).unwrap();
        let pairs: Vec<(&str, &str)> = map
            .iter()
            .map(|a| (a.serial.as_str(), a.user.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [("1001", "alice"), ("1002", "bob"), ("1003", "carol")]
        );
        assert!(map[1].origin.ends_with("line 5"));
        std::fs::write(&path, "1001 alice extra\n").unwrap();
        let err = read_map(&path).err().unwrap().to_string();
        assert!(err.contains("line 1"), "{err}");
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(read_map(&path).is_err());
    }

    #[test]
    fn password_files_give_their_first_line() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, "qwerty\r\nsecond line\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(password_from_file(&path).unwrap().as_slice(), b"qwerty");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = password_from_file(&path).err().unwrap().to_string();
        assert!(err.contains("chmod 0600"), "{err}");
    }
}

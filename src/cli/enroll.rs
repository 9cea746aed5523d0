//! `pam-mfa enroll USER`: make or read a secret, show the otpauth URI, check a first
//! code (unless told not to), and save the record, a fresh state and recovery codes.

#![forbid(unsafe_code)]

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::account::{lookup, open_or_create_store};
use super::input::read_line;
use super::recovery::print_codes;
use super::{CliError, ConfigArg};
use crate::clock::{Clock, SystemClock};
use crate::otp::verify::{verify_hotp, verify_totp, Code, Rejection, Verified};
use crate::otp::{Algorithm, Digits};
use crate::otpauth::otpauth;
use crate::policy;
use crate::qr::{Modules, TerminalQr};
use crate::recovery;
use crate::secret::SecretKey;
use crate::store::record::DEFAULT_PERIOD;
use crate::store::{Kind, Record, State};
use crate::username::UserName;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum AlgorithmArg {
    Sha1,
    Sha256,
    Sha512,
}

#[derive(Args, Debug)]
pub struct EnrollArgs {
    /// The account to enroll.
    user: String,
    #[command(flatten)]
    config: ConfigArg,
    /// Read an existing base32 secret from standard input instead of making one.
    #[arg(long)]
    secret_stdin: bool,
    /// Save without asking for a first code from the app.
    #[arg(long)]
    no_confirm: bool,
    /// Replace the secret of an account that is enrolled already.
    #[arg(long)]
    force: bool,
    /// Issuer shown by the app (default: this host's name); not empty, no colon.
    #[arg(long, value_parser = uri_name)]
    issuer: Option<String>,
    /// Account label shown by the app (default: the user name); not empty, no colon.
    #[arg(long, value_parser = uri_name)]
    label: Option<String>,
    /// Counter-based codes (HOTP, RFC 4226) instead of time-based ones.
    #[arg(long)]
    hotp: bool,
    /// HMAC hash (most apps only support SHA1).
    #[arg(long, value_enum, default_value = "sha1")]
    algorithm: AlgorithmArg,
    /// Digits per code: 6, 7 or 8.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u8).range(6..=8))]
    digits: u8,
    /// Seconds per TOTP step (not with --hotp, which has no steps).
    #[arg(long, default_value_t = DEFAULT_PERIOD, value_parser = clap::value_parser!(u32).range(1..=3600), conflicts_with = "hotp")]
    period: u32,
    /// QR code in the terminal.
    #[arg(long, value_enum, default_value = "utf8")]
    qr: TerminalQr,
    /// Also write the QR code as a PNG image (a new file, mode 0600).
    #[arg(long, value_name = "FILE")]
    qr_png: Option<PathBuf>,
    /// Also write the QR code as an SVG image (a new file, mode 0600).
    #[arg(long, value_name = "FILE")]
    qr_svg: Option<PathBuf>,
}

pub fn run(args: &EnrollArgs) -> Result<(), CliError> {
    let user = UserName::parse(&args.user)?;
    let policy = policy::load(&args.config.config)?;
    lookup(&user)?;
    let store = open_or_create_store(&policy)?;
    if !args.force && store.is_enrolled(&user)? {
        return Err(CliError::new(format!(
            "{user} is enrolled already; use --force to replace the secret"
        )));
    }

    let algorithm = match args.algorithm {
        AlgorithmArg::Sha1 => Algorithm::Sha1,
        AlgorithmArg::Sha256 => Algorithm::Sha256,
        AlgorithmArg::Sha512 => Algorithm::Sha512,
    };
    let secret = if args.secret_stdin {
        let line = read_line("secret")?;
        let text = std::str::from_utf8(&line).map_err(|_| {
            CliError::new("the secret is not valid base32 (letters A-Z and digits 2-7)")
        })?;
        SecretKey::from_base32(text)?
    } else {
        SecretKey::generate(algorithm)?
    };
    let kind = if args.hotp { Kind::Hotp } else { Kind::Totp };
    let record = Record {
        kind,
        secret,
        algorithm,
        // Invariant: clap limits --digits to 6..=8.
        digits: Digits::new(args.digits).unwrap_or(Digits::SIX),
        period: args.period,
        window: kind.default_window(),
        serial: None,
        manufacturer: None,
    };

    let issuer = match &args.issuer {
        Some(issuer) => issuer.clone(),
        None => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "pam-mfa".into()),
    };
    let label = args.label.clone().unwrap_or_else(|| user.to_string());
    let uri = otpauth(&record, &issuer, &label);
    for image in [&args.qr_png, &args.qr_svg].into_iter().flatten() {
        outside_the_store(image, &policy.store_dir)?;
    }
    let images = show(&uri, args)?;
    // The images hold the secret: they go again when the enrollment is not saved.
    let saved = confirm_first_code(&record, args).and_then(|state| {
        let (codes, hashes) = recovery::generate()?;
        store.enroll(&user, &record, state, &hashes, args.force)?;
        Ok(codes)
    });
    let codes = match saved {
        Ok(codes) => codes,
        Err(e) => {
            remove_images(&images);
            return Err(e);
        }
    };
    print_codes(&codes);
    eprintln!("{user} is enrolled.");
    Ok(())
}

/// Tries a person at a terminal gets to type the first code.
const CONFIRM_TRIES: u32 = 3;

/// Unless --no-confirm, reads a first code from the app and checks it: the state that
/// records it as used, or an error (nothing is saved then). At a terminal a mistyped code
/// may be typed again, up to three tries, so the secret already scanned is not lost; a
/// script piping the code in gets one.
fn confirm_first_code(record: &Record, args: &EnrollArgs) -> Result<State, CliError> {
    let mut state = State::default();
    if args.no_confirm {
        return Ok(state);
    }
    // Instructions are for people at a terminal; a script piping the code in gets
    // nothing on stderr but a possible one-line error.
    let interactive = std::io::stdin().is_terminal();
    let tries = if interactive { CONFIRM_TRIES } else { 1 };
    if interactive {
        eprintln!("Add the URI above to the authenticator app, then type the code it shows.");
    }
    let mut try_number = 1;
    let verified = loop {
        if interactive {
            eprint!("Code: ");
        }
        let line = read_line("code")?;
        let checked = match Code::parse(&line, record.digits) {
            None => Err(format!(
                "that is not a code of {} digits",
                record.digits.get()
            )),
            Some(code) => check_first_code(record, &code)
                .map_err(|_| "the code does not match the secret".to_owned()),
        };
        match checked {
            Ok(verified) => break verified,
            Err(why) if try_number < tries => {
                eprintln!("{why}; try again ({} left)", tries - try_number);
                try_number += 1;
            }
            Err(why) => {
                let after = if tries > 1 {
                    format!(" after {tries} tries")
                } else {
                    String::new()
                };
                return Err(CliError::new(format!(
                    "{why}{after}; nothing was saved (check the phone's clock)"
                )));
            }
        }
    };
    // The confirmation code counts as used: a code is good once, also when it was
    // typed here. The first login takes the app's next code.
    match record.kind {
        Kind::Totp => state.last_step = Some(verified.accepted()),
        Kind::Hotp => state.next_counter = verified.accepted() + 1,
    }
    if interactive {
        let when = match record.kind {
            Kind::Totp => format!(" (it shows one within {} s)", record.period),
            Kind::Hotp => String::new(),
        };
        eprintln!("The code you typed is used up: log in with the app's next code{when}.");
    }
    Ok(state)
}

/// Checks a first code against the new secret: any step of the window around now (TOTP)
/// or any counter of the look-ahead from 0 (HOTP).
fn check_first_code(record: &Record, code: &Code) -> Result<Verified, Rejection> {
    match record.kind {
        Kind::Totp => verify_totp(
            record.secret.as_bytes(),
            &record.totp_params(),
            code,
            SystemClock.now(),
            None,
        ),
        Kind::Hotp => verify_hotp(
            record.secret.as_bytes(),
            record.algorithm,
            record.digits,
            0,
            record.window,
            code,
        ),
    }
}

/// An issuer or label for the URI: the Key Uri Format joins them with a colon, so neither
/// may hold one, and an app shows nothing useful for an empty one.
fn uri_name(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("must not be empty".into())
    } else if text.contains(':') {
        Err("must not contain a colon (the URI's label joins issuer and account with one)".into())
    } else {
        Ok(text.to_owned())
    }
}

/// Shows the URI (and its QR code) and writes the images asked for; returns the images
/// written. When one cannot be written, the others are removed again.
fn show(uri: &str, args: &EnrollArgs) -> Result<Vec<PathBuf>, CliError> {
    let mut written = Vec::new();
    let needs_qr = args.qr != TerminalQr::None || args.qr_png.is_some() || args.qr_svg.is_some();
    if needs_qr {
        let modules = Modules::encode(uri)?;
        if let Some(path) = &args.qr_png {
            let png = modules.png(8).inspect_err(|_| remove_images(&written))?;
            write_private(path, &png).inspect_err(|_| remove_images(&written))?;
            written.push(path.clone());
        }
        if let Some(path) = &args.qr_svg {
            write_private(path, modules.svg().as_bytes())
                .inspect_err(|_| remove_images(&written))?;
            written.push(path.clone());
        }
        if args.qr != TerminalQr::None {
            print!("{}", modules.terminal(args.qr, 2));
        }
    }
    println!("{uri}");
    Ok(written)
}

/// Removes the QR images written for an enrollment that was not saved: they hold its secret.
fn remove_images(images: &[PathBuf]) {
    for image in images {
        let _ = std::fs::remove_file(image);
    }
}

/// Refuses an image path in the store directory: a file there could take the place of
/// the account's record (`--qr-png /var/lib/pam-mfa/alice.toml`).
fn outside_the_store(image: &Path, store: &Path) -> Result<(), CliError> {
    let parent = match image.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let inside = match (parent.canonicalize(), store.canonicalize()) {
        (Ok(parent), Ok(store)) => parent == store,
        _ => false,
    };
    if inside {
        return Err(CliError::new(format!(
            "{}: the image may not go in the store directory",
            image.display()
        )));
    }
    Ok(())
}

/// Writes `contents` to a new file of mode 0600; an existing file is an error.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), CliError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    "exists already; the image is only written as a new file".to_owned()
                }
                std::io::ErrorKind::NotFound => "its directory does not exist".to_owned(),
                _ => e.to_string(),
            };
            CliError::new(format!("{}: {why}", path.display()))
        })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::new(format!("{}: {e}", path.display())))
}

//! `pam-mfa enroll USER`: make or read a secret, show the otpauth URI, check a first
//! code (unless told not to), and save the record and a fresh state.

#![forbid(unsafe_code)]

use clap::Args;

use super::input::read_line;
use super::uri::otpauth;
use super::{CliError, ConfigArg};
use crate::accounts::{self, AccountError};
use crate::clock::{Clock, SystemClock};
use crate::otp::verify::{verify_totp, Code};
use crate::policy;
use crate::secret::SecretKey;
use crate::store::{Record, State, Store};
use crate::username::UserName;

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
    /// Issuer shown by the app (default: this host's name).
    #[arg(long)]
    issuer: Option<String>,
    /// Account label shown by the app (default: the user name).
    #[arg(long)]
    label: Option<String>,
}

pub fn run(args: &EnrollArgs) -> Result<(), CliError> {
    let user = UserName::parse(&args.user)?;
    let policy = policy::load(&args.config.config)?;
    match accounts::lookup(&user) {
        Ok(_) => {}
        Err(AccountError::Unknown) => {
            return Err(CliError::new(format!("no such user: {user}")));
        }
        Err(e) => return Err(CliError::new(format!("{user}: {e}"))),
    }
    let store = Store::open_or_create(&policy.store_dir)?;
    if !args.force && store.record_path(&user).exists() {
        return Err(CliError::new(format!(
            "{user} is enrolled already; use --force to replace the secret"
        )));
    }

    let secret = if args.secret_stdin {
        let line = read_line("secret")?;
        let text = std::str::from_utf8(&line).map_err(|_| {
            CliError::new("the secret is not valid base32 (letters A-Z and digits 2-7)")
        })?;
        SecretKey::from_base32(text)?
    } else {
        SecretKey::generate()?
    };
    let record = Record::new_totp(secret);

    let issuer = match &args.issuer {
        Some(issuer) => issuer.clone(),
        None => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "pam-mfa".into()),
    };
    let label = args.label.clone().unwrap_or_else(|| user.to_string());
    let uri = otpauth(&record, &issuer, &label);
    println!("{}", uri.as_str());

    let mut confirmed_step = None;
    if !args.no_confirm {
        eprintln!("Add the URI above to the authenticator app, then type the code it shows.");
        eprint!("Code: ");
        let line = read_line("code")?;
        let code = Code::parse(&line, record.digits)
            .ok_or_else(|| CliError::new("that is not a code of 6 digits; nothing was saved"))?;
        let verified = verify_totp(
            record.secret.as_bytes(),
            &record.totp_params(),
            &code,
            SystemClock.now(),
            None,
        )
        .map_err(|_| {
            CliError::new(
                "the code does not match the secret; nothing was saved (check the phone's clock)",
            )
        })?;
        confirmed_step = Some(verified.accepted());
    }

    // The state lock serializes this with logins and with other enrollments.
    let mut state_file = store.lock_state(&user)?;
    let old = state_file.read().unwrap_or_default();
    store.write_record(&user, &record, args.force)?;
    let state = State {
        // The confirmation code counts as used, and no step ever goes back.
        last_step: old.last_step.max(confirmed_step),
        ..State::default()
    };
    state_file.write(&state)?;
    eprintln!("{user} is enrolled.");
    Ok(())
}

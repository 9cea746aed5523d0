//! Self-service through the helper (`pam-mfa-user`): a user sees their own enrollment,
//! replaces their own secret, or makes new recovery codes, without root. Always the
//! account of the caller's real uid, under the default policy. A change needs proof of
//! the current factor, and that proof is a login: the core's own `authenticate` (service
//! `pam-mfa-user`) with its prompt, replay check, lockout and audit line, so a wrong proof
//! counts exactly as a wrong code at a login does.

#![forbid(unsafe_code)]

use std::path::Path;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{admit, audit_line, refuse, Caller};
use crate::audit::Verdict;
use crate::authenticate::{
    authenticate_with, Conversation, Options, Outcome, Proof, Request, Session, Status,
};
use crate::clock::{format_local, Clock, SystemClock};
use crate::otp::verify::{step_offset, verify_totp, Code};
use crate::otp::Algorithm;
use crate::otpauth::otpauth;
use crate::policy;
use crate::qr::{Modules, TerminalQr};
use crate::recovery;
use crate::secret::SecretKey;
use crate::store::postgres::AllBackends;
use crate::store::{Backends, Record, State, Store, StoreError};
use crate::username::UserName;

use super::wire::LoginRequest;

/// The PAM service name of self-service in audit lines and policy rules.
pub const SERVICE: &str = "pam-mfa-user";

/// What a user asks about their own account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Show the enrollment: kind, algorithm, recovery codes left, last login, lock.
    Status,
    /// Replace the secret (proof: a current code or a recovery code).
    Rotate,
    /// Make a new set of recovery codes (proof: a current code).
    Recovery,
}

/// A self-service request. `config` is honoured for root only, as `config=` is at a login.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeRequest {
    pub action: Action,
    pub config: Option<String>,
    pub log_socket: Option<String>,
}

/// Serves one self-service request for the caller's own account.
pub fn serve(request: &MeRequest, caller: Caller, conv: &mut dyn Conversation) -> Status {
    let name = match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(caller.uid)) {
        Ok(Some(account)) => account.name,
        lookup => {
            // A refusal like any other: an audit line, on the default socket (root, the
            // only caller who may name another, always has an account).
            let why = match lookup {
                Ok(_) => "no account has this uid".to_owned(),
                Err(e) => format!("cannot look up the account: {e}"),
            };
            let request = Request {
                service: SERVICE.into(),
                ..Request::default()
            };
            let reason = format!("helper refused: uid {}: {why}", caller.uid);
            let socket = Path::new(crate::audit::DEFAULT_SOCKET);
            audit_line(&request, Verdict::Error, &reason, socket);
            let _ = conv.error("Your account is not known to this host (NSS).");
            return Status::Unavailable;
        }
    };
    let login = LoginRequest {
        user: Some(name.clone()),
        service: SERVICE.into(),
        rhost: String::new(),
        args: request
            .config
            .iter()
            .map(|c| format!("config={c}"))
            .chain(request.log_socket.iter().map(|l| format!("log_socket={l}")))
            .collect(),
        silent: false,
    };
    if let Err(refusal) = admit(&login, caller) {
        refuse(&login, caller, &refusal);
        let _ = conv.error("Refused: only root may name another policy.");
        return refusal.status();
    }
    let me = Me { login, name };
    match me.run(request.action, conv) {
        Ok(status) => status,
        Err(message) => {
            let _ = conv.error(&message);
            me.audit(Verdict::Error, &message);
            Status::Unavailable
        }
    }
}

struct Me {
    login: LoginRequest,
    name: String,
}

impl Me {
    fn run(&self, action: Action, conv: &mut dyn Conversation) -> Result<Status, String> {
        let options = Options::parse(&self.login.args)?;
        let policy = policy::load(&options.config).map_err(|e| e.to_string())?;
        // The store the policy names, a host's files or a fleet's database, as the
        // helper's logins open it; a database that cannot be reached fails closed here.
        let store = AllBackends.open(&policy).map_err(unusable)?;
        let user = UserName::parse(&self.name).map_err(|e| e.to_string())?;
        let Some(record) = store.record(&user).map_err(unusable)? else {
            conv.info("You are not enrolled: you have no secret here. An administrator enrolls you (pam-mfa enroll).")
                .map_err(|e| e.to_string())?;
            return Ok(match action {
                Action::Status => Status::Success,
                Action::Rotate | Action::Recovery => Status::Denied,
            });
        };
        match action {
            Action::Status => self.status(store.as_ref(), &user, &record, conv),
            Action::Rotate => self.rotate(store.as_ref(), &user, &record, conv),
            Action::Recovery => self.recovery(store.as_ref(), &user, &record, conv),
        }
    }

    fn status(
        &self,
        store: &dyn Store,
        user: &UserName,
        record: &Record,
        conv: &mut dyn Conversation,
    ) -> Result<Status, String> {
        let state = store
            .peek_state(user)
            .map_err(unusable)?
            .unwrap_or_default();
        let left = store.recovery_hashes(user).map_err(unusable)?.len();
        let now = SystemClock.now();
        let last = match state.last_success {
            0 => "never".to_owned(),
            at => format_local(at),
        };
        let lock = if state.locked_at(now) {
            format!("locked until {}", format_local(state.locked_until))
        } else {
            "not locked".to_owned()
        };
        let text = format!(
            "account: {}\nkind: {} {}, {} digits{}\nrecovery codes left: {left}\nlast successful login: {last}\nsecond factor: {lock}",
            self.name,
            record.kind.name(),
            record.algorithm,
            record.digits.get(),
            match record.kind {
                crate::store::Kind::Totp => format!(", every {} s", record.period),
                crate::store::Kind::Hotp => String::new(),
            }
        );
        conv.info(&text).map_err(|e| e.to_string())?;
        Ok(Status::Success)
    }

    /// Proof of the current factor: a login, counted as one.
    fn prove(
        &self,
        conv: &mut dyn Conversation,
        recovery_allowed: bool,
    ) -> Result<Option<Status>, String> {
        let request = Request {
            user: Some(self.name.clone()),
            service: SERVICE.into(),
            rhost: String::new(),
            args: self.login.args.clone(),
            silent: false,
            // Never a remembered session: a change needs a code typed now.
            session: Session::Unset,
        };
        match authenticate_with(&request, conv, &SystemClock, &AllBackends) {
            Outcome::Success(Proof::Code(_)) => Ok(None),
            Outcome::Success(Proof::Recovery { .. }) if recovery_allowed => Ok(None),
            Outcome::Success(Proof::Recovery { .. }) => {
                conv.error("A recovery code does not make new recovery codes (it is used up now); type a code from your authenticator, or use `pam-mfa-user rotate`.")
                    .map_err(|e| e.to_string())?;
                Ok(Some(Status::Denied))
            }
            Outcome::Success(_) | Outcome::Ignore(_) => {
                conv.error("No code was checked, so nothing is changed.")
                    .map_err(|e| e.to_string())?;
                Ok(Some(Status::Denied))
            }
            other => Ok(Some(other.status())),
        }
    }

    fn recovery(
        &self,
        store: &dyn Store,
        user: &UserName,
        proven: &Record,
        conv: &mut dyn Conversation,
    ) -> Result<Status, String> {
        conv.info("New recovery codes: first type a current code from your authenticator.")
            .map_err(|e| e.to_string())?;
        if let Some(status) = self.prove(conv, false)? {
            return Ok(status);
        }
        let (codes, hashes) = recovery::generate().map_err(|e| e.to_string())?;
        if !store
            .renew_recovery(user, proven, &hashes)
            .map_err(unusable)?
        {
            return Ok(self.changed_meanwhile(conv));
        }
        self.audit(
            Verdict::Success,
            &format!(
                "self-service: {} new recovery codes; the old ones no longer work",
                codes.len()
            ),
        );
        show_codes(conv, &codes);
        Ok(Status::Success)
    }

    fn rotate(
        &self,
        store: &dyn Store,
        user: &UserName,
        proven: &Record,
        conv: &mut dyn Conversation,
    ) -> Result<Status, String> {
        conv.info(
            "A new secret: first type a current code from your authenticator, or a recovery code.",
        )
        .map_err(|e| e.to_string())?;
        if let Some(status) = self.prove(conv, true)? {
            return Ok(status);
        }
        let secret = SecretKey::generate(Algorithm::Sha1).map_err(|e| e.to_string())?;
        let record = Record::new_totp(secret);
        let issuer = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "pam-mfa".into());
        let uri = Zeroizing::new(otpauth(&record, &issuer, &self.name));
        let qr = Zeroizing::new(
            Modules::encode(&uri)
                .map(|m| m.terminal(TerminalQr::Utf8, 2))
                .unwrap_or_default(),
        );
        let mut message = Zeroizing::new(String::with_capacity(qr.len() + uri.len() + 200));
        message.push_str("Scan this QR code with your authenticator app, or add the key from the link below by hand; then type the code it shows. Your old secret works until then.\n");
        message.push_str(&qr);
        message.push_str(&uri);
        conv.info(&message).map_err(|e| e.to_string())?;
        drop(message);
        let answer = conv
            .ask_hidden("Code from the new secret: ")
            .map_err(|e| e.to_string())?;
        let now = SystemClock.now();
        let verified = answer
            .as_deref()
            .and_then(|a| Code::parse(a, record.digits))
            .and_then(|code| {
                verify_totp(
                    record.secret.as_bytes(),
                    &record.totp_params(),
                    &code,
                    now,
                    None,
                )
                .ok()
            });
        let Some(verified) = verified else {
            conv.error("That is not the code of the new secret: nothing was changed, your old secret still works.")
                .map_err(|e| e.to_string())?;
            self.audit(
                Verdict::Deny,
                "self-service: new secret not confirmed; nothing changed",
            );
            return Ok(Status::Denied);
        };
        let (codes, hashes) = recovery::generate().map_err(|e| e.to_string())?;
        let state = State {
            last_step: Some(verified.accepted()),
            clock_offset: Some(step_offset(verified.accepted(), now, record.period)),
            last_success: now,
            ..State::default()
        };
        if !store
            .rotate(user, proven, &record, state, &hashes)
            .map_err(unusable)?
        {
            return Ok(self.changed_meanwhile(conv));
        }
        self.audit(
            Verdict::Success,
            "self-service: new secret, confirmed with its code; new recovery codes",
        );
        show_codes(conv, &codes);
        Ok(Status::Success)
    }

    /// The secret proven is no longer the account's (an admin replaced or removed it
    /// while the user typed): nothing is changed.
    fn changed_meanwhile(&self, conv: &mut dyn Conversation) -> Status {
        let _ = conv.error("Your secret was changed or removed by an administrator meanwhile: nothing was changed.");
        self.audit(
            Verdict::Deny,
            "self-service: the secret proven was replaced or removed meanwhile; nothing changed",
        );
        Status::Denied
    }

    /// One audit line for a change (or a refused one), on the default socket for
    /// everyone but root, who may name another policy (and log socket) as at a login.
    fn audit(&self, verdict: Verdict, reason: &str) {
        let socket = Options::parse(&self.login.args)
            .map(|o| o.log_socket)
            .unwrap_or_else(|_| crate::audit::DEFAULT_SOCKET.into());
        let request = Request {
            user: Some(self.name.clone()),
            service: SERVICE.into(),
            ..Request::default()
        };
        audit_line(&request, verdict, reason, Path::new(&socket));
    }
}

/// A store that cannot be used (a fleet's database unreachable, a file store unsafe)
/// fails the request closed; the error names the store and the cause, never a secret.
fn unusable(error: StoreError) -> String {
    format!("Your second factor's store cannot be used: {error}")
}

fn show_codes(conv: &mut dyn Conversation, codes: &[recovery::RecoveryCode]) {
    let mut shown = Zeroizing::new(String::with_capacity(100 + codes.len() * 16));
    shown.push_str("Recovery codes, each good once; keep them safe, they are not shown again:\n");
    for code in codes {
        shown.push_str("  ");
        shown.push_str(code.as_str());
        shown.push('\n');
    }
    // The change stands even if this cannot be shown: `pam-mfa-user recovery` makes others.
    let _ = conv.info(shown.trim_end());
}

//! The safe core of `pam_sm_authenticate`: (request, arguments, conversation, clock) to
//! an [`Outcome`]. No FFI here; `pam/` turns the outcome into a PAM return code.

#![forbid(unsafe_code)]

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::accounts::{self, Account, AccountError, Names};
use crate::audit::{self, Event, Sink, Syslog, Verdict};
use crate::clock::{format_iso8601, format_local, Clock, Date};
use crate::otp::totp::time_step;
use crate::otp::verify::{
    near_miss, step_offset, verify_hotp, verify_totp, Code, Rejection, TotpParams, Verified,
    NEAR_MISS_STEPS,
};
use crate::otp::{Algorithm, Digits, MAX_TOTP_WINDOW};
use crate::otpauth::otpauth;
use crate::policy::{self, Context, Decision, Limits, Mode, Policy, PolicyError};
use crate::qr::{Modules, TerminalQr};
use crate::recovery::{self, RecoveryMatch};
use crate::secret::SecretKey;
use crate::store::{
    self, Accepted, Attempt, Backends, Current, FileOnly, Kind, Lockout, Record, Settled, State,
    Store, StoreError, Used,
};
use crate::username::UserName;

/// Where the package installs the helper `pam-mfa-check` (the `helper=` argument's default).
pub const DEFAULT_HELPER: &str = "/usr/libexec/pam-mfa/pam-mfa-check";

/// The prompt every account sees, enrolled or not, known or not.
pub const PROMPT: &str = "Verification code: ";

/// What PAM told us about this attempt.
#[derive(Debug, Default, Clone)]
pub struct Request {
    /// PAM_USER; None when PAM could not give a usable (UTF-8) name.
    pub user: Option<String>,
    pub service: String,
    pub rhost: String,
    /// The module's arguments from the PAM service file.
    pub args: Vec<String>,
    /// PAM_SILENT: show no informational messages.
    pub silent: bool,
    /// The caller's audit session, for `remember_seconds`.
    pub session: Session,
}

/// Where the caller's audit session comes from. The module reads `/proc/self/sessionid`
/// only when the policy has a rule with `remember_seconds`, the one thing that uses it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// No session: nothing is remembered.
    #[default]
    Unset,
    Id(u32),
    /// This process's audit session, as pam_loginuid set it.
    Audit,
}

impl Session {
    /// The session id for the account `uid`, if it has one.
    fn id(self, uid: u32) -> Option<u32> {
        match self {
            Session::Unset => None,
            Session::Id(id) => Some(id),
            Session::Audit => audit_session(uid),
        }
    }
}

impl From<Option<u32>> for Session {
    fn from(id: Option<u32>) -> Session {
        id.map_or(Session::Unset, Session::Id)
    }
}

/// The audit session of this process, as pam_loginuid set it, when it is the account's
/// own: its login uid is `uid`. None when unset, or when the session is someone else's,
/// as in a daemon started by hand from an admin's shell, which keeps that shell's session
/// for every client it serves.
fn audit_session(uid: u32) -> Option<u32> {
    let read = |path: &str| -> Option<u32> {
        let text = std::fs::read_to_string(path).ok()?;
        text.trim().parse::<u32>().ok().filter(|id| *id != u32::MAX)
    };
    if read("/proc/self/loginuid")? != uid {
        return None;
    }
    read("/proc/self/sessionid")
}

/// The application's conversation function.
pub trait Conversation {
    /// Asks with echo off. Ok(None) is a NULL answer.
    fn ask_hidden(&mut self, prompt: &str)
        -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError>;

    /// Shows an informational line (PAM_TEXT_INFO).
    fn info(&mut self, text: &str) -> Result<(), ConversationError>;

    /// Shows an error line (PAM_ERROR_MSG); an application without the distinction
    /// gets it as an informational line.
    fn error(&mut self, text: &str) -> Result<(), ConversationError> {
        self.info(text)
    }

    /// Asks libpam to wait this long before it reports a failure (pam_fail_delay).
    fn request_delay(&mut self, _microseconds: u32) {}

    /// PAM_AUTHTOK, the password an earlier module or the application set, if any.
    fn authtok(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError>;

    /// Sets PAM_AUTHTOK for the modules after this one.
    fn set_authtok(&mut self, value: &[u8]) -> Result<(), ConversationError>;
}

/// The conversation function failed or answered nonsense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationError;

impl fmt::Display for ConversationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the PAM conversation failed")
    }
}

/// The module's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub config: PathBuf,
    pub debug: bool,
    pub log_socket: PathBuf,
    /// Password and code typed as one secret: the code is its last digits.
    pub combined: bool,
    /// The helper that checks the code when the module cannot (it runs without root).
    pub helper: PathBuf,
}

impl Options {
    /// Parses `config=PATH`, `debug`, `combined`, `log_socket=PATH` and `helper=PATH`; anything else is an error,
    /// so a typo in a PAM file cannot silently drop a setting.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut config = None;
        let mut log_socket = None;
        let mut helper = None;
        let mut debug = false;
        let mut combined = false;
        for arg in args {
            if arg.contains(char::REPLACEMENT_CHARACTER) {
                return Err(format!("module argument {arg:?} is not valid UTF-8"));
            }
            let (slot, value) = if let Some(path) = arg.strip_prefix("config=") {
                (&mut config, path)
            } else if let Some(path) = arg.strip_prefix("log_socket=") {
                (&mut log_socket, path)
            } else if let Some(path) = arg.strip_prefix("helper=") {
                (&mut helper, path)
            } else if arg == "debug" {
                debug = true;
                continue;
            } else if arg == "combined" {
                combined = true;
                continue;
            } else {
                return Err(format!("unknown module argument {arg:?}"));
            };
            let path = PathBuf::from(value);
            if !path.is_absolute() {
                return Err(format!("module argument {arg:?} needs an absolute path"));
            }
            if slot.replace(path).is_some() {
                return Err(format!("module argument {arg:?} is given twice"));
            }
        }
        Ok(Options {
            config: config.unwrap_or_else(|| PathBuf::from(policy::DEFAULT_PATH)),
            debug,
            log_socket: log_socket.unwrap_or_else(|| PathBuf::from(audit::DEFAULT_SOCKET)),
            combined,
            helper: helper.unwrap_or_else(|| PathBuf::from(DEFAULT_HELPER)),
        })
    }
}

/// How an authentication ended.
#[must_use]
#[derive(Debug)]
pub enum Outcome {
    /// A valid, unused code: the only way to PAM_SUCCESS, and it needs a verifier's proof.
    Success(Proof),
    /// The policy lets this account pass without a code; the rest of the stack decides.
    Ignore(Pass),
    /// The user failed the second factor.
    Denied(Denial),
    /// Too many wrong codes: the account's second factor is locked until this time;
    /// no code is checked.
    Locked { until: u64 },
    /// NSS does not know the account (it was prompted all the same).
    UnknownUser,
    /// Something is broken: the answer is failure, whatever the policy.
    Failed(Failure),
    /// The policy's store is not one this process may open (the module opens only the
    /// file backend): nothing was asked or decided; the privileged helper, which opens
    /// every backend, must run the whole login.
    Relay,
}

/// What only a verifier can make: a code checked and marked used.
#[derive(Debug)]
pub enum Proof {
    /// A TOTP or HOTP code.
    Code(Verified),
    /// A recovery code, now burned; `left` remain.
    Recovery { used: RecoveryMatch, left: usize },
    /// The first code of an enrollment at login, now saved with the new secret.
    SelfEnrolled(Verified),
    /// A code was verified in this audit session `age` seconds ago, within the rule's
    /// `remember_seconds`.
    Remembered { session: u32, age: u64 },
}

/// Why the policy lets an account through without a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Exempt,
    /// Optional, and the account has no secret.
    OptionalNotEnrolled,
    /// Required and not enrolled, but the rule's enrollment deadline has not come.
    Grace(Date),
}

/// Why the second factor was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    Rejected(Rejection),
    /// A wrong code that is the code of a step `steps` beyond the module's clock, just
    /// outside the window: the device's clock is off. Refused like any wrong code; only
    /// the audit line tells, never the user.
    NearMiss {
        steps: i32,
        period: u32,
    },
    /// The answer was NULL, empty or not a code of the right shape.
    NoCode,
    /// The answer had the shape of a recovery code but matched none left.
    WrongRecoveryCode,
    /// Required, and the account has no secret.
    NotEnrolled,
    /// Enrollment at login needs informational messages, and the caller asked for silence.
    EnrollmentSilenced,
    /// Another login enrolled the account while this one was enrolling it.
    EnrolledMeanwhile,
    /// The account's secret was removed or replaced while the code was typed.
    Revoked,
    /// Enrollment at login through a `combined` stack: the code is read before any
    /// password is checked, so the new secret would be shown to anyone.
    EnrollmentCombined,
    /// The last used TOTP step lies `steps` (more than MAX_TOTP_WINDOW) beyond the module's
    /// clock: a code was accepted while the clock ran far ahead, and every code of today
    /// would read as used. Refused without checking the code and not counted (the user
    /// guessed nothing); `pam-mfa unlock` pulls the step back to now.
    StepAhead {
        steps: u64,
        period: u32,
    },
}

/// A failure of configuration or of the system.
#[derive(Debug)]
pub enum Failure {
    /// A bad argument in the PAM service file.
    Argument(String),
    Policy(PolicyError),
    Store(StoreError),
    Account(AccountError),
    Conversation(ConversationError),
    /// The system could not provide something (the random source for a new secret).
    System(String),
}

/// How an authentication ended, stripped of its details: what the module turns into a
/// PAM return code (src/pam/) and what the helper sends back to the module. The core knows
/// nothing of PAM's numbers.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A valid, unused code was checked.
    Success,
    /// The policy lets the account pass without a code.
    Ignore,
    /// The second factor was refused.
    Denied,
    /// The second factor is locked.
    Locked,
    /// NSS does not know the account.
    UnknownUser,
    /// The module's arguments or the policy are wrong.
    Misconfigured,
    /// The store or NSS could not be read.
    Unavailable,
    /// The conversation with the application failed.
    ConversationFailed,
    /// The system failed (or the helper could not be run or understood).
    SystemFailed,
}

impl Outcome {
    /// The outcome's status. Every variant is listed with no catch-all, so a new one
    /// forces a decision about whether it fails closed.
    pub fn status(&self) -> Status {
        match self {
            Outcome::Success(_) => Status::Success,
            Outcome::Ignore(_) => Status::Ignore,
            Outcome::Denied(_) => Status::Denied,
            Outcome::Locked { .. } => Status::Locked,
            Outcome::UnknownUser => Status::UnknownUser,
            Outcome::Failed(Failure::Argument(_)) => Status::Misconfigured,
            Outcome::Failed(Failure::Policy(_)) => Status::Misconfigured,
            Outcome::Failed(Failure::Store(_)) => Status::Unavailable,
            Outcome::Failed(Failure::Account(_)) => Status::Unavailable,
            Outcome::Failed(Failure::Conversation(_)) => Status::ConversationFailed,
            Outcome::Failed(Failure::System(_)) => Status::SystemFailed,
            // Until the module hands such logins to the helper: fail closed.
            Outcome::Relay => Status::Unavailable,
        }
    }

    /// A recovery code in use is worth a warning: the authenticator may be lost.
    fn severity(&self) -> audit::Severity {
        match self {
            Outcome::Success(Proof::Recovery { .. } | Proof::SelfEnrolled(_)) => {
                audit::Severity::Warning
            }
            other => other.verdict().severity(),
        }
    }

    fn verdict(&self) -> Verdict {
        match self {
            Outcome::Success(_) => Verdict::Success,
            Outcome::Ignore(_) => Verdict::Ignore,
            Outcome::Denied(_) | Outcome::Locked { .. } | Outcome::UnknownUser => Verdict::Deny,
            Outcome::Failed(_) | Outcome::Relay => Verdict::Error,
        }
    }

    fn reason(&self) -> String {
        match self {
            Outcome::Success(Proof::Code(_)) => "valid code".into(),
            Outcome::Success(Proof::Recovery { left, .. }) => {
                format!("recovery code used; {left} left")
            }
            Outcome::Success(Proof::SelfEnrolled(_)) => {
                "enrolled at login with a first valid code".into()
            }
            Outcome::Success(Proof::Remembered { session, age }) => {
                format!("no code asked: verified {age} s ago in audit session {session}")
            }
            Outcome::Ignore(Pass::Exempt) => "exempt by policy".into(),
            Outcome::Ignore(Pass::OptionalNotEnrolled) => "optional and not enrolled".into(),
            Outcome::Ignore(Pass::Grace(date)) => {
                format!("not enrolled; allowed until the enrollment deadline {date}")
            }
            Outcome::Locked { until } => format!(
                "locked after too many wrong codes until {}",
                format_iso8601(*until)
            ),
            Outcome::Denied(Denial::Rejected(rejection)) => rejection.to_string(),
            Outcome::Denied(Denial::NearMiss { steps, period }) => format!(
                "wrong code; near miss: valid {} {} {}, {} (refused)",
                steps.unsigned_abs(),
                if steps.unsigned_abs() == 1 {
                    "step"
                } else {
                    "steps"
                },
                if *steps > 0 { "ahead" } else { "behind" },
                clock_about(*steps, *period)
            ),
            Outcome::Denied(Denial::NoCode) => "no code given".into(),
            Outcome::Denied(Denial::EnrollmentSilenced) => {
                "enrollment at login needs messages, but PAM_SILENT is set".into()
            }
            Outcome::Denied(Denial::Revoked) => {
                "the secret was removed or replaced while the code was typed".into()
            }
            Outcome::Denied(Denial::StepAhead { steps, period }) => format!(
                "the last used time step lies {steps} steps ({}) ahead of this host's clock, \
                 which ran ahead when a code was accepted; refused, not counted \
                 (pam-mfa unlock pulls it back to now)",
                clock_about(i32::try_from(*steps).unwrap_or(i32::MAX), *period)
            ),
            Outcome::Denied(Denial::EnrollmentCombined) => {
                "no enrollment at login through a combined stack (no password is checked before it)"
                    .into()
            }
            Outcome::Denied(Denial::EnrolledMeanwhile) => {
                "another login enrolled the account first; nothing overwritten".into()
            }
            Outcome::Denied(Denial::WrongRecoveryCode) => {
                "wrong or already used recovery code".into()
            }
            Outcome::Denied(Denial::NotEnrolled) => {
                "a code is required but the account has no secret (pam-mfa enroll)".into()
            }
            // nslcd answers "not found" while its directory is down: say so, as the admin
            // reading this during an outage needs to know.
            Outcome::UnknownUser => {
                "unknown account: NSS does not know it (or its directory did not answer)".into()
            }
            Outcome::Failed(Failure::Argument(e)) => e.clone(),
            Outcome::Failed(Failure::Policy(e)) => e.to_string(),
            Outcome::Failed(Failure::Store(e)) => e.to_string(),
            Outcome::Failed(Failure::Account(e)) => e.to_string(),
            Outcome::Failed(Failure::Conversation(e)) => e.to_string(),
            Outcome::Failed(Failure::System(e)) => e.clone(),
            Outcome::Relay => {
                "the policy's store backend is not one this process opens; for the helper".into()
            }
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

/// Authenticates one request and writes its audit line, opening only the file backend
/// (the module's case: nothing else is linked in).
pub fn authenticate(request: &Request, conv: &mut dyn Conversation, clock: &dyn Clock) -> Outcome {
    authenticate_with(request, conv, clock, &FileOnly)
}

/// Like [`authenticate`], opening a store only through `backends`: a policy whose store
/// this process may not open ends in [`Outcome::Relay`], before any prompt.
pub fn authenticate_with(
    request: &Request,
    conv: &mut dyn Conversation,
    clock: &dyn Clock,
    backends: &dyn Backends,
) -> Outcome {
    test_hook();
    let mut trail = Trail::default();
    let (outcome, socket) = match Options::parse(&request.args) {
        Ok(options) => {
            let outcome = match decide(&options, request, conv, clock, backends, &mut trail) {
                Ok(outcome) => outcome,
                Err(failure) => Outcome::Failed(failure),
            };
            if let Outcome::Locked { until } = outcome {
                tell_locked(conv, request, &options, until);
            }
            (outcome, options.log_socket)
        }
        Err(message) => (
            Outcome::Failed(Failure::Argument(message)),
            PathBuf::from(audit::DEFAULT_SOCKET),
        ),
    };
    // A login handed to the helper is not decided here: the helper writes its line (and
    // the module one of its own if the helper cannot be run).
    if !matches!(outcome, Outcome::Relay) {
        let sink = Syslog { socket: &socket };
        trail.record(&sink, request, &outcome);
    }
    outcome
}

/// The audit line of a call that ended before `authenticate` could write one (a panic,
/// or arguments libpam could not hand over): outcome error, failed closed. The log
/// socket comes from the arguments when they parse.
pub fn audit_abort(request: &Request, reason: &str) {
    let socket = Options::parse(&request.args)
        .map(|options| options.log_socket)
        .unwrap_or_else(|_| PathBuf::from(audit::DEFAULT_SOCKET));
    let event = Event {
        service: &request.service,
        user: request.user.as_deref().unwrap_or(""),
        account: "",
        rhost: &request.rhost,
        mode: "unknown",
        rule: "-",
        verdict: Verdict::Error,
        reason,
        why: "",
    };
    Syslog { socket: &socket }.send(Verdict::Error.severity(), &event.message());
}

/// Mode and rule as far as the decision got, for the audit line.
#[derive(Default)]
struct Trail {
    /// The account's name in NSS, when the user typed another spelling of it.
    account: Option<String>,
    mode: Option<Mode>,
    rule: Option<String>,
    why: Option<String>,
}

impl Trail {
    fn record(&self, sink: &dyn Sink, request: &Request, outcome: &Outcome) {
        let reason = outcome.reason();
        let event = Event {
            service: &request.service,
            user: request.user.as_deref().unwrap_or(""),
            account: self.account.as_deref().unwrap_or(""),
            rhost: &request.rhost,
            mode: self.mode.map_or("unknown", Mode::name),
            rule: self.rule.as_deref().unwrap_or("-"),
            verdict: outcome.verdict(),
            reason: &reason,
            why: self.why.as_deref().unwrap_or(""),
        };
        sink.send(outcome.severity(), &event.message());
    }
}

/// Who the login is for and what the policy decided for it (phases 1 and 2).
struct Login {
    /// The account's name as NSS gives it.
    name: UserName,
    decision: Decision,
    /// The caller's audit session, when a rule can remember one.
    session: Option<u32>,
    today: Date,
}

impl Login {
    /// How the account's wrong codes count under its rule; `combined` (codes typed with
    /// the password) has a count and lock of its own.
    fn lockout(&self, combined: bool) -> Lockout {
        Lockout {
            max_failures: self.decision.limits.max_failures,
            lockout_seconds: self.decision.limits.lockout_seconds,
            combined,
        }
    }
}

/// The login, phase by phase: the policy, the account, the policy's decision, the plan,
/// the checks before the prompt, the prompt, and the one decision in the store.
fn decide(
    options: &Options,
    request: &Request,
    conv: &mut dyn Conversation,
    clock: &dyn Clock,
    backends: &dyn Backends,
    trail: &mut Trail,
) -> Result<Outcome, Failure> {
    let policy = policy::load(&options.config).map_err(Failure::Policy)?;
    // Before any prompt: a login this process cannot finish goes whole to the helper.
    if !backends.opens(&policy) {
        return Ok(Outcome::Relay);
    }
    let mut answers = Answers::new(conv, options.combined, policy.fail_delay_ms)?;
    let conv = &mut answers;
    let Some((names, account)) = resolve_account(request, &policy, trail)? else {
        return prompt_then(conv, Outcome::UnknownUser);
    };
    let login = evaluate_policy(options, request, &policy, &names, &account, clock, trail);
    if login.decision.mode == Mode::Exempt {
        return Ok(Outcome::Ignore(Pass::Exempt));
    }

    let store = backends.open(&policy)?;
    let found = store.record_and_begin(&login.name)?;
    let (record, attempt) = match plan(&login.decision, found.is_some(), login.today) {
        Plan::AskCode => found.ok_or(Failure::Store(StoreError::Vanished))?,
        Plan::Pass(pass) => return pass_with_notice(conv, request, pass),
        Plan::Refuse(denial) => return prompt_then(conv, Outcome::Denied(denial)),
        // With `combined` the module runs before any password is checked: showing a new
        // secret there would show it to anyone who knows the account's name.
        Plan::SelfEnroll if conv.combined.is_some() => {
            return Ok(Outcome::Denied(Denial::EnrollmentCombined))
        }
        Plan::SelfEnroll => return enroll_at_login(conv, &*store, &login, request, clock),
    };

    // The store holds no lock and no transaction while the user types.
    if let Some(outcome) = before_prompt(attempt.state(), &login, request, clock.now()) {
        return Ok(outcome);
    }
    let answer = conv.code(record.digits)?;
    // The slow hash of a recovery code runs here, before the store's decision: under
    // the account's lock it made parallel logins wait for each other's Argon2 runs.
    let recovery = recovery_match(
        &*store,
        &login.name,
        &record,
        answer.as_deref().map(|a| a.as_slice()),
    )?;
    settle(
        attempt, conv, &record, answer, recovery, &login, request, clock,
    )
}

/// For an answer shaped like a recovery code (never a code's shape): the stored hash it
/// matches, if any, found without holding the account's lock. The decision then only
/// checks that this hash is still unused (another login may have burned it).
fn recovery_match(
    store: &dyn store::Store,
    user: &UserName,
    record: &Record,
    answer: Option<&[u8]>,
) -> Result<Option<RecoveryMatch>, StoreError> {
    if answer.and_then(|a| Code::parse(a, record.digits)).is_some() {
        return Ok(None);
    }
    let Some(candidate) = answer.and_then(recovery::normalize) else {
        return Ok(None);
    };
    let hashes = store.recovery_hashes(user)?;
    Ok(recovery::find(&hashes, &candidate))
}

/// Phase 1: the account NSS knows by the name PAM gave, with the policy's names resolved;
/// None when the name is unusable or unknown. From here on the account goes by the name
/// NSS gave it: `ALICE` from a directory that ignores case is alice, with alice's rules,
/// record and lockout.
fn resolve_account(
    request: &Request,
    policy: &Policy,
    trail: &mut Trail,
) -> Result<Option<(Names, Account)>, Failure> {
    let Some(name) = request
        .user
        .as_deref()
        .and_then(|u| UserName::parse(u).ok())
    else {
        return Ok(None);
    };
    let names =
        Names::resolve(policy.named_groups(), policy.named_users()).map_err(Failure::Account)?;
    let account = match accounts::lookup(&name, &names) {
        Ok(account) => account,
        Err(AccountError::Unknown) => return Ok(None),
        Err(e) => return Err(Failure::Account(e)),
    };
    if request.user.as_deref() != Some(account.name.as_str()) {
        trail.account = Some(account.name.to_string());
    }
    Ok(Some((names, account)))
}

/// Phase 2: what the policy decides for the account, here and now.
fn evaluate_policy(
    options: &Options,
    request: &Request,
    policy: &Policy,
    names: &Names,
    account: &Account,
    clock: &dyn Clock,
    trail: &mut Trail,
) -> Login {
    // Recorded at every verified login (an ssh login's session serves a later sudo), but
    // only worth reading when some rule can remember it.
    let session = if policy.rules.iter().any(|r| r.remember_seconds.is_some()) {
        request.session.id(account.uid)
    } else {
        None
    };
    let today = clock.today();
    let context = Context {
        service: &request.service,
        rhost: &request.rhost,
        today,
    };
    let decision = policy::evaluate(policy, account, &context);
    trail.mode = Some(decision.mode);
    trail.rule = Some(decision.by.rule_name().to_owned());
    trail.why = Some(decision.by.to_string());
    if options.debug {
        debug_line(options, policy, names, account, &decision);
    }
    Login {
        name: account.name.clone(),
        decision,
        session,
        today,
    }
}

/// Phase 3, a plan to pass: the grace period's notice first, unless PAM_SILENT.
fn pass_with_notice(
    answers: &mut Answers<'_>,
    request: &Request,
    pass: Pass,
) -> Result<Outcome, Failure> {
    if let (Pass::Grace(deadline), false) = (pass, request.silent) {
        answers
            .conv
            .info(&grace_message(deadline))
            .map_err(Failure::Conversation)?;
    }
    Ok(Outcome::Ignore(pass))
}

/// Phase 4, before the prompt: a locked account is refused before any code is asked for
/// or checked. Only a local authentication (no PAM_RHOST: sudo or su inside the session)
/// may use a remembered session; a remote login is always asked, even in the same session
/// (a daemon started by hand from the account's own shell serves every client in it).
fn before_prompt(state: &State, login: &Login, request: &Request, now: u64) -> Option<Outcome> {
    if state.locked_at(now) {
        return Some(Outcome::Locked {
            until: state.locked_until,
        });
    }
    let local = request.rhost.is_empty();
    remembered(&login.decision, state, login.session, now)
        .filter(|_| local)
        .map(Outcome::Success)
}

/// Phase 6, the settle: the answer checked and its verdict made durable in one atomic
/// step of the store. The proof of a valid code stays here; the outcome is a success only
/// when the store accepted and the check made that proof.
#[allow(clippy::too_many_arguments)]
fn settle(
    attempt: Box<dyn Attempt + '_>,
    answers: &mut Answers<'_>,
    record: &Record,
    answer: Option<Zeroizing<Vec<u8>>>,
    recovery: Option<RecoveryMatch>,
    login: &Login,
    request: &Request,
    clock: &dyn Clock,
) -> Result<Outcome, Failure> {
    let limits = &login.decision.limits;
    // With `combined` the code is checked before the password: its wrong codes have their
    // own count and lock, which shut only this way in.
    let lockout = login.lockout(answers.combined.is_some());
    let mut proof = None;
    let mut denial = Denial::NoCode;
    let settled = attempt.settle(record, clock, &lockout, &mut |current| {
        Ok(
            match check(
                record,
                answer.as_ref().map(|a| a.as_slice()),
                recovery.as_ref(),
                current,
                limits,
                login.session,
            )? {
                Ok((accepted, verified)) => {
                    proof = Some(verified);
                    store::Verdict::Accepted(accepted)
                }
                // An answer that cannot be a code guesses nothing, so it does not count
                // towards the lockout: sshd answers for root under PermitRootLogin
                // prohibit-password with a fixed bogus string, which must not lock root out.
                Err(Denial::NoCode) => store::Verdict::NoCode,
                // A ledger a clock far ahead left in the future: no code was checked.
                Err(ahead @ Denial::StepAhead { .. }) => {
                    denial = ahead;
                    store::Verdict::NoCode
                }
                Err(wrong) => {
                    denial = wrong;
                    store::Verdict::Wrong
                }
            },
        )
    })?;
    Ok(match settled {
        Settled::Accepted => match proof {
            Some(proof) => Outcome::Success(proof),
            None => Outcome::Failed(Failure::System(
                "the store accepted a login no code check verified".into(),
            )),
        },
        Settled::Replayed => Outcome::Denied(Denial::Rejected(Rejection::Replayed)),
        Settled::Locked { until } => Outcome::Locked { until },
        Settled::Revoked => Outcome::Denied(Denial::Revoked),
        Settled::NoCode => Outcome::Denied(match denial {
            ahead @ Denial::StepAhead { .. } => ahead,
            _ => Denial::NoCode,
        }),
        Settled::Denied { locked_until } => {
            // The wrong code that locks: say so now, not only at the next attempt.
            if let (Some(until), false, false) = (locked_until, lockout.combined, request.silent) {
                let _ = answers.conv.error(&locked_message(until));
            }
            Outcome::Denied(denial)
        }
    })
}

/// The answer checked against the record and the account's state of the moment: what
/// the store must mark used and the proof of it, or why it is refused.
fn check(
    record: &Record,
    answer: Option<&[u8]>,
    recovery: Option<&RecoveryMatch>,
    current: &Current<'_>,
    limits: &Limits,
    session: Option<u32>,
) -> Result<Result<(Accepted, Proof), Denial>, StoreError> {
    let now = current.now;
    let state = current.state;
    let accepted = |used| Accepted { used, session };
    let code = answer.and_then(|a| Code::parse(a, record.digits));
    let Some(code) = code else {
        // Only answers that cannot be codes may be recovery codes.
        if answer.and_then(recovery::normalize).is_none() {
            return Ok(Err(Denial::NoCode));
        }
        // Matched before the lock; here only: is that hash still unused?
        let hashes = (current.recovery_hashes)()?;
        return Ok(match recovery.filter(|m| hashes.contains(&m.hash)) {
            Some(used) => {
                let left = hashes.len().saturating_sub(1);
                let burned = Used::RecoveryHash(used.hash.clone());
                Ok((
                    accepted(burned),
                    Proof::Recovery {
                        used: used.clone(),
                        left,
                    },
                ))
            }
            None => Err(Denial::WrongRecoveryCode),
        });
    };
    Ok(match record.kind {
        Kind::Totp => {
            if let Some(steps) = state
                .steps_ahead(time_step(now, record.period))
                .filter(|steps| *steps > u64::from(MAX_TOTP_WINDOW))
            {
                return Ok(Err(Denial::StepAhead {
                    steps,
                    period: record.period,
                }));
            }
            let params = TotpParams {
                window: limits.window.steps(record.window),
                ..record.totp_params()
            };
            let secret = record.secret.as_bytes();
            match verify_totp(secret, &params, &code, now, state.last_step) {
                Ok(verified) => {
                    let step = verified.accepted();
                    let clock_offset = step_offset(step, now, record.period);
                    let used = Used::Step { step, clock_offset };
                    Ok((accepted(used), Proof::Code(verified)))
                }
                Err(rejection) => Err(
                    match near_miss(
                        secret,
                        &params,
                        &code,
                        now,
                        state.last_step,
                        NEAR_MISS_STEPS,
                    ) {
                        Some(steps) if rejection == Rejection::WrongCode => Denial::NearMiss {
                            steps,
                            period: params.period,
                        },
                        _ => Denial::Rejected(rejection),
                    },
                ),
            }
        }
        // The policy's window bounds HOTP too, as counters looked ahead.
        Kind::Hotp => match verify_hotp(
            record.secret.as_bytes(),
            record.algorithm,
            record.digits,
            state.next_counter,
            limits.window.steps(record.window),
            &code,
        ) {
            Ok(verified) => Ok((
                accepted(Used::Counter(verified.accepted())),
                Proof::Code(verified),
            )),
            Err(rejection) => Err(Denial::Rejected(rejection)),
        },
    })
}

/// Tells the user that the second factor is locked, until when (local time) and who can
/// unlock it: PAM_ERROR_MSG, unless PAM_SILENT. Not with `combined`, where no password
/// has been checked yet: a stranger typing any password would learn that the account
/// exists, is enrolled and is locked. A message that cannot be shown changes nothing.
fn tell_locked(conv: &mut dyn Conversation, request: &Request, options: &Options, until: u64) {
    if request.silent || options.combined {
        return;
    }
    let _ = conv.error(&locked_message(until));
}

/// What a user whose second factor is locked reads.
pub fn locked_message(until: u64) -> String {
    format!(
        "Too many wrong verification codes: the second factor of this account is locked until {}. An administrator can unlock it sooner.",
        format_local(until)
    )
}

/// A code verified earlier in the same audit session, within the rule's
/// `remember_seconds`: the only way past the prompt without a code. Never without a
/// session id, and never for a time in the future (a clock set back).
fn remembered(decision: &Decision, state: &State, session: Option<u32>, now: u64) -> Option<Proof> {
    let limit = decision.remember_seconds?;
    let session = session?;
    if state.verified_session != Some(session) || state.verified_at == 0 {
        return None;
    }
    let age = now.checked_sub(state.verified_at)?;
    (age < limit).then_some(Proof::Remembered { session, age })
}

/// Enrollment at first login: show the new secret (QR code and URI) through the
/// conversation, and save it only once the user typed a valid first code from it. Two
/// parallel first logins: the record is created without replacing, so one wins and
/// the other fails without overwriting it.
///
/// A wrong first code counts towards the account's lockout like any wrong code (and waits
/// the same failure delay), so enrollment cannot be used to guess codes at speed.
fn enroll_at_login(
    answers: &mut Answers<'_>,
    store: &dyn Store,
    login: &Login,
    request: &Request,
    clock: &dyn Clock,
) -> Result<Outcome, Failure> {
    if request.silent {
        return Ok(Outcome::Denied(Denial::EnrollmentSilenced));
    }
    let name = &login.name;
    // Read without creating: only a counted wrong code writes to the store.
    if let Some(state) = store.peek_state(name)? {
        if state.locked_at(clock.now()) {
            return Ok(Outcome::Locked {
                until: state.locked_until,
            });
        }
    }
    let secret =
        SecretKey::generate(Algorithm::Sha1).map_err(|e| Failure::System(e.to_string()))?;
    let record = Record::new_totp(secret);
    let issuer = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "pam-mfa".into());
    let uri = otpauth(&record, &issuer, name.as_str());
    let qr = Modules::encode(&uri)
        .map(|m| m.terminal(TerminalQr::Utf8, 2))
        .unwrap_or_default();
    let mut message = Zeroizing::new(String::with_capacity(qr.len() + uri.len() + 256));
    message.push_str(
        "This account needs a second factor. Scan the QR code with an authenticator app,\n\
         or add the key from the link below by hand, then type the code the app shows.\n",
    );
    message.push_str(&qr);
    message.push_str(&uri);
    answers.conv.info(&message).map_err(Failure::Conversation)?;
    drop(message);

    let (verified, now) = match first_code(answers, store, login, &record, clock)? {
        FirstCode::Valid { verified, now } => (verified, now),
        FirstCode::Refused(outcome) => return Ok(outcome),
    };
    let (codes, hashes) = recovery::generate().map_err(|e| Failure::System(e.to_string()))?;
    let state = State {
        last_step: Some(verified.accepted()),
        clock_offset: Some(step_offset(verified.accepted(), now, record.period)),
        last_success: now,
        verified_session: login.session,
        verified_at: now,
        ..State::default()
    };
    match store.enroll(name, &record, state, &hashes, false) {
        Ok(()) => {}
        Err(StoreError::AlreadyEnrolled { .. }) => {
            return Ok(Outcome::Denied(Denial::EnrolledMeanwhile))
        }
        Err(e) => return Err(Failure::Store(e)),
    }
    let mut shown = Zeroizing::new(String::with_capacity(40 + codes.len() * 16));
    shown.push_str(
        "Enrolled. Recovery codes, each good once; keep them safe, they are not shown again:\n",
    );
    for code in &codes {
        shown.push_str("  ");
        shown.push_str(code.as_str());
        shown.push('\n');
    }
    // The enrollment stands even if this message cannot be shown: the admin can make
    // new codes with pam-mfa recovery.
    let _ = answers.conv.info(shown.trim_end());
    Ok(Outcome::Success(Proof::SelfEnrolled(verified)))
}

/// How many first codes an enrollment at login takes: a mistyped code does not throw the
/// new secret away, so the user need not scan again.
pub const ENROLL_TRIES: u32 = 3;

/// The first code of an enrollment at login, checked against the new secret.
enum FirstCode {
    Valid { verified: Verified, now: u64 },
    Refused(Outcome),
}

/// Asks for the first code up to [`ENROLL_TRIES`] times. Each wrong code is counted
/// durably, as a wrong code of an enrolled account is, and the tries end at the lock; an
/// answer that cannot be a code ends them uncounted. libpam waits its failure delay only
/// once, when the call returns, so between tries the module waits the policy's delay itself.
fn first_code(
    answers: &mut Answers<'_>,
    store: &dyn Store,
    login: &Login,
    record: &Record,
    clock: &dyn Clock,
) -> Result<FirstCode, Failure> {
    let lockout = login.lockout(false);
    let mut refused = Outcome::Denied(Denial::NoCode);
    for tries_left in (0..ENROLL_TRIES).rev() {
        let answer = match answers.code(record.digits) {
            Ok(answer) => answer,
            // A conversation that ends after a counted wrong code ends in that refusal.
            Err(Failure::Conversation(_)) if tries_left + 1 < ENROLL_TRIES => {
                return Ok(FirstCode::Refused(refused))
            }
            Err(failure) => return Err(failure),
        };
        let Some(code) = answer
            .as_deref()
            .and_then(|a| Code::parse(a, record.digits))
        else {
            return Ok(FirstCode::Refused(refused));
        };
        let now = clock.now();
        let rejection = match verify_totp(
            record.secret.as_bytes(),
            &record.totp_params(),
            &code,
            now,
            None,
        ) {
            Ok(verified) => return Ok(FirstCode::Valid { verified, now }),
            Err(rejection) => rejection,
        };
        refused = Outcome::Denied(Denial::Rejected(rejection));
        match store.count_failure(&login.name, clock, &lockout)? {
            Settled::Locked { until } => return Ok(FirstCode::Refused(Outcome::Locked { until })),
            Settled::Denied {
                locked_until: Some(until),
            } => {
                let _ = answers.conv.error(&locked_message(until));
                return Ok(FirstCode::Refused(refused));
            }
            _ if tries_left == 0 => break,
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(answers.delay_ms()));
        let again = format!(
            "That code is not right. Type the code the app shows now ({tries_left} {} left).",
            if tries_left == 1 { "try" } else { "tries" }
        );
        if answers.conv.error(&again).is_err() {
            return Ok(FirstCode::Refused(refused));
        }
    }
    Ok(FirstCode::Refused(refused))
}

fn debug_line(
    options: &Options,
    policy: &Policy,
    names: &Names,
    account: &Account,
    decision: &Decision,
) {
    let sink = Syslog {
        socket: &options.log_socket,
    };
    let join = |ids: &mut dyn Iterator<Item = String>| {
        let list = ids.collect::<Vec<_>>().join(",");
        if list.is_empty() {
            "-".to_owned()
        } else {
            list
        }
    };
    sink.send(
        audit::Severity::Info,
        &format!(
            "debug: user={} uid={} gids={} groups={} unknown_groups={} policy={} store={} mode={} why=\"{}\" max_failures={} lockout_seconds={}",
            account.name,
            account.uid,
            join(&mut account.gids.iter().map(u32::to_string)),
            join(&mut account.groups.iter().map(|g| format!("{}({})", g.name, g.id))),
            join(&mut names.unknown_groups().map(str::to_owned)),
            policy.path.display(),
            policy.store_dir.display(),
            decision.mode,
            decision.by,
            decision.limits.max_failures,
            decision.limits.lockout_seconds,
        ),
    );
}

/// What the module will do for an account, before any code is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Prompt and check the code.
    AskCode,
    /// Let the rest of the stack decide (PAM_IGNORE).
    Pass(Pass),
    /// Prompt (so the prompt tells nothing), then refuse.
    Refuse(Denial),
    /// Enroll the account inside the conversation.
    SelfEnroll,
}

impl Plan {
    /// The plan in the words of the audit line's reason.
    pub fn describe(&self) -> String {
        match self {
            Plan::AskCode => "asks for a code".into(),
            Plan::Pass(pass) => Outcome::Ignore(*pass).reason(),
            Plan::Refuse(denial) => Outcome::Denied(*denial).reason(),
            Plan::SelfEnroll => "enrolls the account at login (QR code, first code)".into(),
        }
    }
}

/// The plan for a decision, given whether the account has a secret. The module and
/// `pam-mfa policy explain` both use this, so they cannot disagree.
pub fn plan(decision: &Decision, enrolled: bool, today: Date) -> Plan {
    match (decision.mode, enrolled) {
        (Mode::Exempt, _) => Plan::Pass(Pass::Exempt),
        (_, true) => Plan::AskCode,
        (Mode::Optional, false) => Plan::Pass(Pass::OptionalNotEnrolled),
        (Mode::Required, false) if decision.may_self_enroll(today) => Plan::SelfEnroll,
        (Mode::Required, false) => match decision.enroll_by {
            Some(deadline) if decision.in_grace(today) => Plan::Pass(Pass::Grace(deadline)),
            _ => Plan::Refuse(Denial::NotEnrolled),
        },
    }
}

/// A clock offset of `steps` steps of `period` seconds in words: `clock about +90 s`
/// (the device's clock runs 90 s ahead of this host's).
pub fn clock_about(steps: i32, period: u32) -> String {
    match i64::from(steps) * i64::from(period) {
        0 => "clock in step".into(),
        seconds => format!("clock about {seconds:+} s"),
    }
}

/// The line a required account in its enrollment grace period sees.
pub fn grace_message(deadline: Date) -> String {
    format!(
        "This account must enroll a second factor by {deadline}; after that date it cannot log in without one."
    )
}

/// Where the code comes from: its own prompt, or, with `combined`, the last digits of
/// the password, whose rest goes on to the next module as PAM_AUTHTOK.
///
/// Every prompt asks libpam for the policy's failure delay first, whoever answers it
/// (unknown, not enrolled, enrolling or enrolled): how long a failure takes must not tell
/// who is enrolled.
struct Answers<'c> {
    conv: &'c mut dyn Conversation,
    /// With `combined`: password and code as typed.
    combined: Option<Zeroizing<Vec<u8>>>,
    /// The failure delay to request before a prompt, in microseconds.
    delay: u32,
}

/// The prompt for password and code together when no earlier module asked.
pub const COMBINED_PROMPT: &str = "Password and verification code: ";

impl<'c> Answers<'c> {
    fn new(
        conv: &'c mut dyn Conversation,
        combined: bool,
        fail_delay_ms: u32,
    ) -> Result<Answers<'c>, Failure> {
        let delay = fail_delay_ms.saturating_mul(1000);
        let combined = if combined {
            // The one prompt of `combined` is everyone's, before the account is known.
            conv.request_delay(delay);
            let typed = match conv.authtok().map_err(Failure::Conversation)? {
                Some(authtok) => authtok,
                None => conv
                    .ask_hidden(COMBINED_PROMPT)
                    .map_err(Failure::Conversation)?
                    .unwrap_or_default(),
            };
            // Until a code is split off, the next module gets everything as typed, so
            // accounts that need no code keep their password.
            conv.set_authtok(&typed).map_err(Failure::Conversation)?;
            Some(typed)
        } else {
            None
        };
        Ok(Answers {
            conv,
            combined,
            delay,
        })
    }

    /// The policy's failure delay, in milliseconds.
    fn delay_ms(&self) -> u64 {
        u64::from(self.delay / 1000)
    }

    /// The code as answered; None for a NULL answer or a combined secret too short to
    /// hold a code. A conversation failure is a failure.
    fn code(&mut self, digits: Digits) -> Result<Option<Zeroizing<Vec<u8>>>, Failure> {
        let Some(typed) = &self.combined else {
            self.conv.request_delay(self.delay);
            return self.conv.ask_hidden(PROMPT).map_err(Failure::Conversation);
        };
        let Some(split) = typed.len().checked_sub(usize::from(digits.get())) else {
            return Ok(None);
        };
        let (password, code) = typed.split_at(split);
        self.conv
            .set_authtok(password)
            .map_err(Failure::Conversation)?;
        let mut answer = Zeroizing::new(Vec::with_capacity(code.len()));
        answer.extend_from_slice(code);
        Ok(Some(answer))
    }
}

/// Shows the same prompt an enrolled account gets, discards the answer, and ends with
/// `outcome`: the prompt must not tell who exists or who is enrolled. (With `combined`
/// the one prompt was shown already.)
fn prompt_then(answers: &mut Answers<'_>, outcome: Outcome) -> Result<Outcome, Failure> {
    if answers.combined.is_none() {
        drop(answers.code(Digits::SIX)?);
    }
    Ok(outcome)
}

/// Debug builds only: lets the integration tests prove that a panic inside the module
/// comes back as PAM_SYSTEM_ERR. Release builds have no such hook.
fn test_hook() {
    #[cfg(debug_assertions)]
    if std::env::var_os("PAM_MFA_TEST_PANIC").is_some() {
        panic!("PAM_MFA_TEST_PANIC is set");
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_parse() {
        let options = Options::parse(&args(&["config=/etc/x.toml", "debug"])).unwrap();
        assert_eq!(options.config, Path::new("/etc/x.toml"));
        assert!(options.debug);
        assert_eq!(options.log_socket, Path::new("/dev/log"));
        let options = Options::parse(&[]).unwrap();
        assert_eq!(options.config, Path::new("/etc/pam-mfa/policy.toml"));
        assert!(!options.debug);
    }

    #[test]
    fn bad_arguments_are_errors() {
        for bad in [
            &["nullok"][..],
            &["config=relative.toml"],
            &["config=/a", "config=/b"],
            &["Debug"],
            &["config"],
            &["log_socket=x"],
        ] {
            assert!(Options::parse(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_failure_has_a_failing_status() {
        let failures = [
            Outcome::Failed(Failure::Argument("x".into())),
            Outcome::Failed(Failure::Policy(PolicyError {
                path: "p".into(),
                line: None,
                message: "m".into(),
            })),
            Outcome::Failed(Failure::Store(StoreError::MissingDir { path: "s".into() })),
            Outcome::Failed(Failure::Account(AccountError::Unknown)),
            Outcome::Failed(Failure::Conversation(ConversationError)),
            Outcome::Denied(Denial::NoCode),
            Outcome::Locked { until: 1 },
            Outcome::Denied(Denial::NotEnrolled),
            Outcome::Denied(Denial::Rejected(Rejection::Replayed)),
            Outcome::UnknownUser,
            Outcome::Relay,
        ];
        for outcome in failures {
            let status = outcome.status();
            assert!(
                status != Status::Success && status != Status::Ignore,
                "{outcome:?}"
            );
        }
    }
}

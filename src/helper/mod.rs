//! `pam-mfa-check`, the helper installed setuid root: it lets a caller that cannot read
//! the store (a screen locker running as the user) check the user's own code, with the
//! same core as the module. It reads one request from its standard input, carries the
//! conversation over its standard input and output, and ends with a status. A caller
//! other than root is served only for its own account, and only under the default policy.

#![forbid(unsafe_code)]

pub mod caller;
mod conv;
pub mod me;
mod process;
pub mod wire;

use std::os::fd::AsFd;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::audit::{self, Event, Sink, Syslog, Verdict};
use crate::authenticate::{authenticate_with, Options, Outcome, Request, Session, Status};
use crate::clock::SystemClock;
use crate::policy;
use crate::store::postgres::AllBackends;
use conv::PipeConversation;
pub use process::Caller;
use wire::{Channel, LoginRequest, ToCaller, ToHelper};

/// Where the package installs the helper.
pub const DEFAULT_PATH: &str = crate::authenticate::DEFAULT_HELPER;

/// How long one exchange may take, prompts and typing included: a caller that stops
/// answering does not keep the helper (and its memory of the request) any longer.
/// sudo's own password timeout is as long.
pub const DEADLINE: Duration = Duration::from_secs(300);

/// The helper's `main`. The exit status is for people; callers read the final frame.
pub fn main() -> ExitCode {
    let started = Instant::now();
    let caller = process::harden();
    let Some(mut channel) = stdio_channel(started + DEADLINE) else {
        return ExitCode::from(2);
    };
    let status = match caller {
        Ok(caller) => {
            let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                serve(&mut channel, caller)
            }));
            served.unwrap_or(Status::SystemFailed)
        }
        // Not setuid root: it could read no store.
        Err(process::Unprivileged) => Status::Unavailable,
    };
    let _ = channel.send(&ToCaller::Finished { status });
    match status {
        Status::Success => ExitCode::SUCCESS,
        Status::Ignore => ExitCode::from(3),
        _ => ExitCode::FAILURE,
    }
}

/// Serves one request on `channel` for `caller`: admits it, then runs the core.
pub fn serve(channel: &mut Channel, caller: Caller) -> Status {
    let Ok(frame) = channel.receive() else {
        return Status::SystemFailed;
    };
    let login = match serde_json::from_slice::<ToHelper<'_>>(&frame) {
        Ok(ToHelper::Login(login)) => login,
        Ok(ToHelper::Me(request)) => {
            drop(frame);
            return me::serve(&request, caller, &mut PipeConversation { channel });
        }
        _ => return Status::SystemFailed,
    };
    drop(frame);
    if let Err(refusal) = admit(&login, caller) {
        refuse(&login, caller, &refusal);
        return refusal.status();
    }
    let request = Request {
        user: login.user,
        service: login.service,
        rhost: login.rhost,
        args: login.args,
        silent: login.silent,
        // The kernel's, inherited from the caller: never the caller's word.
        session: Session::Audit,
    };
    let mut conversation = PipeConversation { channel };
    // Every backend built in: the fleet store's logins come here from the module, which
    // opens only the files (its library never reaches the database client).
    match authenticate_with(&request, &mut conversation, &SystemClock, &AllBackends) {
        // The helper is the last stop: a store it does not open either fails closed.
        Outcome::Relay => {
            let socket = Options::parse(&request.args)
                .map(|o| o.log_socket)
                .unwrap_or_else(|_| audit::DEFAULT_SOCKET.into());
            let reason = "the policy's store backend is not one this helper opens";
            audit_line(&request, Verdict::Error, reason, &socket);
            Status::Unavailable
        }
        outcome => outcome.status(),
    }
}

/// Why the helper turns a request away without running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// An unprivileged caller asked about an account that is not its own (or none).
    OtherAccount { asked: String },
    /// An unprivileged caller named a policy other than the default.
    Policy { path: String },
    /// An unprivileged caller named a log socket other than the default.
    LogSocket { path: String },
    /// NSS could not say whose the account is.
    Lookup(String),
}

impl Refusal {
    pub fn status(&self) -> Status {
        match self {
            Refusal::OtherAccount { .. } => Status::Denied,
            Refusal::Policy { .. } | Refusal::LogSocket { .. } => Status::Misconfigured,
            Refusal::Lookup(_) => Status::Unavailable,
        }
    }

    fn reason(&self, caller: Caller) -> String {
        let uid = caller.uid;
        match self {
            Refusal::OtherAccount { asked } => format!(
                "helper refused: uid {uid} asked about account {asked:?}, not its own"
            ),
            Refusal::Policy { path } => format!(
                "helper refused: uid {uid} named the policy {path:?}; callers without root get only {}",
                policy::DEFAULT_PATH
            ),
            Refusal::LogSocket { path } => format!(
                "helper refused: uid {uid} named the log socket {path:?}; callers without root get only {}",
                audit::DEFAULT_SOCKET
            ),
            Refusal::Lookup(e) => format!("helper refused: uid {uid}: cannot look up the account: {e}"),
        }
    }
}

/// Root may ask anything the module may. Anyone else only about the account of its real
/// uid, under the default policy, logging to the default socket: a policy of the caller's
/// own could exempt anyone or name a store of its making.
pub fn admit(login: &LoginRequest, caller: Caller) -> Result<(), Refusal> {
    if caller.uid == 0 {
        return Ok(());
    }
    // Bad arguments are the core's to report; these two only if they parse.
    if let Ok(options) = Options::parse(&login.args) {
        if options.config != Path::new(policy::DEFAULT_PATH) {
            return Err(Refusal::Policy {
                path: options.config.display().to_string(),
            });
        }
        if options.log_socket != Path::new(audit::DEFAULT_SOCKET) {
            return Err(Refusal::LogSocket {
                path: options.log_socket.display().to_string(),
            });
        }
    }
    let asked = login.user.clone().unwrap_or_default();
    match nix::unistd::User::from_name(&asked) {
        Ok(Some(account)) if account.uid.as_raw() == caller.uid => Ok(()),
        Ok(_) => Err(Refusal::OtherAccount { asked }),
        // A name NSS cannot even take (empty, or with a NUL) is no one's.
        Err(nix::errno::Errno::EINVAL) => Err(Refusal::OtherAccount { asked }),
        Err(e) => Err(Refusal::Lookup(e.to_string())),
    }
}

/// The audit line of a refusal, on the default socket.
fn refuse(login: &LoginRequest, caller: Caller, refusal: &Refusal) {
    let verdict = match refusal.status() {
        Status::Denied => Verdict::Deny,
        _ => Verdict::Error,
    };
    let request = Request {
        user: login.user.clone(),
        service: login.service.clone(),
        rhost: login.rhost.clone(),
        ..Request::default()
    };
    let socket = Path::new(audit::DEFAULT_SOCKET);
    audit_line(&request, verdict, &refusal.reason(caller), socket);
}

/// An audit line of the helper's own, for a request the core did not decide.
fn audit_line(request: &Request, verdict: Verdict, reason: &str, socket: &Path) {
    let event = Event {
        service: &request.service,
        user: request.user.as_deref().unwrap_or(""),
        account: "",
        rhost: &request.rhost,
        mode: "unknown",
        rule: "-",
        verdict,
        reason,
        why: "",
    };
    Syslog { socket }.send(verdict.severity(), &event.message());
}

/// The channel on standard input and output, through duplicates of the descriptors: the
/// standard library's stdin would read ahead into a buffer that is never wiped.
fn stdio_channel(deadline: Instant) -> Option<Channel> {
    let input = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let output = std::io::stdout().as_fd().try_clone_to_owned().ok()?;
    Channel::new(input, output, deadline).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(user: &str, args: &[&str]) -> LoginRequest {
        LoginRequest {
            user: Some(user.into()),
            service: "xscreensaver".into(),
            rhost: String::new(),
            args: args.iter().map(|s| s.to_string()).collect(),
            silent: false,
        }
    }

    // root (0) and nobody (65534) are in every Debian's /etc/passwd.
    const NOBODY: Caller = Caller { uid: 65534 };

    #[test]
    fn an_unprivileged_caller_is_served_only_for_its_own_account() {
        assert_eq!(admit(&login("nobody", &[]), NOBODY), Ok(()));
        for other in ["root", "", "no-such-account-here", "a\0b"] {
            assert_eq!(
                admit(&login(other, &[]), NOBODY),
                Err(Refusal::OtherAccount {
                    asked: other.into()
                }),
                "{other:?}"
            );
        }
        let mut nameless = login("nobody", &[]);
        nameless.user = None;
        assert!(admit(&nameless, NOBODY).is_err());
    }

    #[test]
    fn an_unprivileged_caller_gets_only_the_default_policy_and_log() {
        let own = &["config=/home/nobody/policy.toml"];
        assert_eq!(
            admit(&login("nobody", own), NOBODY).unwrap_err().status(),
            Status::Misconfigured
        );
        let log = &["log_socket=/tmp/mine"];
        assert!(matches!(
            admit(&login("nobody", log), NOBODY),
            Err(Refusal::LogSocket { .. })
        ));
        let default = &[
            "config=/etc/pam-mfa/policy.toml",
            "debug",
            "log_socket=/dev/log",
        ];
        assert_eq!(admit(&login("nobody", default), NOBODY), Ok(()));
    }

    #[test]
    fn root_may_ask_about_anyone_under_any_policy() {
        let root = Caller { uid: 0 };
        assert_eq!(
            admit(
                &login("nobody", &["config=/srv/p.toml", "log_socket=/x"]),
                root
            ),
            Ok(())
        );
    }
}

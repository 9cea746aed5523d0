//! The login of a caller without root: the module cannot read the store, so it runs the
//! setuid helper and relays the conversation between it and the application. The helper
//! runs the same core; the module only carries messages and maps the final status.

#![forbid(unsafe_code)]

use crate::audit::{self, Event, Sink, Syslog, Verdict};
use crate::authenticate::{Conversation, Options, Request, Status};
use crate::helper::caller;
use crate::helper::wire::{LoginRequest, ToHelper};

/// Whether this process must leave the login to the helper: it runs without root, so it
/// cannot open the root-only store.
pub fn needed() -> bool {
    !nix::unistd::geteuid().is_root()
}

/// Runs the login through the helper named in `options`, writing an audit line of its
/// own only when the helper cannot be run or understood (the helper writes the rest).
pub fn login(options: &Options, request: &Request, conv: &mut dyn Conversation) -> Status {
    let login = ToHelper::Login(LoginRequest {
        user: request.user.clone(),
        service: request.service.clone(),
        rhost: request.rhost.clone(),
        args: request.args.clone(),
        silent: request.silent,
    });
    match caller::call(&options.helper, &login, conv) {
        Ok(status) => status,
        Err(problem) => {
            let reason = format!("helper {}: {problem}", options.helper.display());
            let event = Event {
                service: &request.service,
                user: request.user.as_deref().unwrap_or(""),
                account: "",
                rhost: &request.rhost,
                mode: "unknown",
                rule: "-",
                verdict: Verdict::Error,
                reason: &reason,
                why: "",
            };
            let sink = Syslog {
                socket: &options.log_socket,
            };
            sink.send(audit::Severity::Error, &event.message());
            Status::SystemFailed
        }
    }
}

//! The audit trail: one syslog line per decision, facility auth, sent as a datagram to
//! the local syslog socket. Never a code, never a secret.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::clock::Date;

/// The local syslog socket of journald, rsyslog and syslog-ng.
pub const DEFAULT_SOCKET: &str = "/dev/log";

const FACILITY_AUTH: u8 = 4;

/// How long a line may wait for room in the syslog daemon's queue.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// How often a line is tried before it goes to standard error instead.
const SEND_TRIES: usize = 2;

/// How serious a line is (syslog severities).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error = 3,
    Warning = 4,
    Info = 6,
}

/// How the module answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Ignore,
    Deny,
    Error,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Ignore => "ignore",
            Self::Deny => "deny",
            Self::Error => "error",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Self::Success | Self::Ignore => Severity::Info,
            Self::Deny => Severity::Warning,
            Self::Error => Severity::Error,
        }
    }
}

/// One decision, as it goes into the log.
#[derive(Clone, Debug)]
pub struct Event<'a> {
    pub service: &'a str,
    pub user: &'a str,
    /// The name NSS gave the account, when it differs from `user` (empty otherwise).
    pub account: &'a str,
    pub rhost: &'a str,
    /// `required`, `optional`, `exempt`, or `unknown` before the policy decided.
    pub mode: &'a str,
    /// The rule's name, `root`, `default`, or `-`.
    pub rule: &'a str,
    pub verdict: Verdict,
    pub reason: &'a str,
    /// Why the policy gave this mode, in the words `pam-mfa policy explain` uses.
    pub why: &'a str,
}

impl Event<'_> {
    /// The message part of the line: `service=... user=... ... reason="..."`.
    pub fn message(&self) -> String {
        let mut line = String::with_capacity(160);
        for (key, value) in [("service", self.service), ("user", self.user)] {
            let _ = write!(line, "{key}={} ", token(value));
        }
        if !self.account.is_empty() {
            let _ = write!(line, "account={} ", token(self.account));
        }
        for (key, value) in [
            ("rhost", self.rhost),
            ("mode", self.mode),
            ("rule", self.rule),
            ("outcome", self.verdict.name()),
        ] {
            let _ = write!(line, "{key}={} ", token(value));
        }
        let _ = write!(line, "reason=\"{}\"", quoted(self.reason));
        if !self.why.is_empty() {
            let _ = write!(line, " why=\"{}\"", quoted(self.why));
        }
        line
    }
}

/// Where audit lines go.
pub trait Sink {
    fn send(&self, severity: Severity, message: &str);
}

/// A syslog datagram socket (normally /dev/log).
pub struct Syslog<'a> {
    pub socket: &'a Path,
}

impl Sink for Syslog<'_> {
    /// A syslog daemon whose queue stays full must neither hang every login nor lose the
    /// line unseen: each try waits up to SEND_TIMEOUT for room, a second try follows the
    /// first, and a line that still cannot go is written to standard error (the daemon's
    /// journal under systemd, the terminal of su or sudo), with why. The decision stands
    /// either way.
    fn send(&self, severity: Severity, message: &str) {
        let datagram = frame(severity, message, SystemTime::now());
        let mut failure = None;
        for _ in 0..SEND_TRIES {
            match send_once(self.socket, datagram.as_bytes()) {
                Ok(()) => return,
                Err(e) => failure = Some(e),
            }
        }
        let why = failure.map_or_else(String::new, |e| e.to_string());
        let _ = writeln!(
            std::io::stderr().lock(),
            "pam_mfa: audit line not delivered to {} ({why}): {message}",
            self.socket.display()
        );
    }
}

/// Sends one datagram, waiting at most SEND_TIMEOUT for room in the daemon's queue.
fn send_once(socket: &Path, datagram: &[u8]) -> std::io::Result<()> {
    let client = UnixDatagram::unbound()?;
    client.set_write_timeout(Some(SEND_TIMEOUT))?;
    client.send_to(datagram, socket).map(|_| ())
}

/// An RFC 3164 line: `<PRI>Mmm dd hh:mm:ss pam_mfa[pid]: message` (UTC; journald and
/// rsyslog stamp their own time on local lines anyway).
fn frame(severity: Severity, message: &str, at: SystemTime) -> String {
    let priority = FACILITY_AUTH * 8 + severity as u8;
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let date = Date::from_unix(secs);
    let of_day = secs % 86_400;
    format!(
        "<{priority}>{} {:>2} {:02}:{:02}:{:02} pam_mfa[{}]: {message}",
        date.month_abbreviation(),
        date.day,
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        std::process::id()
    )
}

/// Longest field value kept, in characters: room for the longest account name the store
/// takes (`username::MAX_LEN` bytes), so that two long directory names stay apart.
const MAX_TOKEN: usize = 256;

/// A field value as one token: empty becomes `-`; spaces, quotes, `=` and control
/// characters become `?`, so a hostile rhost cannot forge fields or lines.
fn token(value: &str) -> String {
    if value.is_empty() {
        return "-".into();
    }
    value
        .chars()
        .take(MAX_TOKEN)
        .map(|c| {
            if c.is_control() || c.is_whitespace() || c == '"' || c == '=' {
                '?'
            } else {
                c
            }
        })
        .collect()
}

fn quoted(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            '"' => '\'',
            c if c.is_control() || c == '\\' => '?',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn line_has_every_field_and_auth_facility() {
        let event = Event {
            service: "sshd",
            user: "alice",
            account: "",
            rhost: "",
            mode: "required",
            rule: "privileged",
            verdict: Verdict::Deny,
            reason: "wrong code",
            why: "",
        };
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000); // 2023-11-14 22:13:20 UTC
        let line = frame(event.verdict.severity(), &event.message(), at);
        let expected = format!(
            "<36>Nov 14 22:13:20 pam_mfa[{}]: service=sshd user=alice rhost=- mode=required \
             rule=privileged outcome=deny reason=\"wrong code\"",
            std::process::id()
        );
        assert_eq!(line, expected);

        let respelled = Event {
            user: "ALICE",
            account: "alice",
            ..event
        };
        assert!(respelled
            .message()
            .starts_with("service=sshd user=ALICE account=alice rhost=- mode=required "));
    }

    #[test]
    fn a_syslog_daemon_that_stopped_reading_does_not_hang_the_login() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let _daemon = UnixDatagram::bind(&path).unwrap(); // bound, never read
        let filler = UnixDatagram::unbound().unwrap();
        filler.set_nonblocking(true).unwrap();
        while filler.send_to(b"filler", &path).is_ok() {}
        let (done, finished) = std::sync::mpsc::channel();
        let socket = path.clone();
        std::thread::spawn(move || {
            Syslog { socket: &socket }.send(Severity::Info, "service=x outcome=success");
            let _ = done.send(());
        });
        finished
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("sending to a full syslog queue hung");
    }

    #[test]
    fn hostile_values_cannot_forge_fields_or_lines() {
        let event = Event {
            service: "sshd",
            user: "bob",
            account: "",
            rhost: "evil outcome=success\nx\"",
            mode: "optional",
            rule: "-",
            verdict: Verdict::Error,
            reason: "bad \"quote\"\nline",
            why: "rule \"x\" matches",
        };
        let message = event.message();
        assert!(!message.contains('\n'));
        assert_eq!(message.matches("outcome=").count(), 1);
        assert!(message.contains("rhost=evil?outcome?success?x?"));
        assert!(
            message.contains("reason=\"bad 'quote'?line\" why=\"rule 'x' matches\""),
            "{message}"
        );
    }
}

//! `pam-mfa-user`: self-service for whoever runs it, without root. It never reads the store
//! itself: it asks the setuid helper `pam-mfa-check`, which serves only the account of the
//! caller's real uid, and shows the helper's questions and messages at the terminal.

#![forbid(unsafe_code)]

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
use zeroize::Zeroizing;

use super::input::read_line;
use crate::authenticate::{Conversation, ConversationError, Status};
use crate::helper::me::{Action, MeRequest};
use crate::helper::wire::ToHelper;
use crate::helper::{caller, DEFAULT_PATH};

/// Your own second factor: see your enrollment, replace your secret (a new phone), or make
/// new recovery codes, without root. A change asks a current code first; wrong codes count
/// towards the same lock as at a login.
#[derive(Parser)]
#[command(name = "pam-mfa-user", version)]
pub struct UserCli {
    #[command(subcommand)]
    action: UserAction,
    /// The helper to ask (for tests and unusual installs).
    #[arg(long, hide = true, value_name = "PATH", default_value = DEFAULT_PATH)]
    helper: PathBuf,
    /// Another policy: the helper honours it for root only.
    #[arg(long, hide = true, value_name = "FILE")]
    config: Option<String>,
    /// Another syslog socket: the helper honours it for root only.
    #[arg(long, hide = true, value_name = "PATH")]
    log_socket: Option<String>,
}

#[derive(Subcommand, Clone, Copy)]
enum UserAction {
    /// Show your enrollment: kind, algorithm, recovery codes left, last login, lock.
    Status,
    /// Replace your secret: asks a current code (or a recovery code), shows the new QR
    /// code and link, and saves it once you type a code from it.
    Rotate,
    /// Make a new set of recovery codes (the old ones stop working): asks a current code.
    Recovery,
}

/// `pam-mfa-user`'s main.
pub fn main() -> ExitCode {
    // The new secret and recovery codes pass through this process.
    let _ = nix::sys::prctl::set_dumpable(false);
    let cli = UserCli::parse();
    let action = match cli.action {
        UserAction::Status => Action::Status,
        UserAction::Rotate => Action::Rotate,
        UserAction::Recovery => Action::Recovery,
    };
    let request = ToHelper::Me(MeRequest {
        action,
        config: cli.config,
        log_socket: cli.log_socket,
    });
    match caller::call(&cli.helper, &request, &mut Terminal) {
        Ok(Status::Success) => ExitCode::SUCCESS,
        Ok(Status::Locked) => {
            eprintln!("pam-mfa-user: your second factor is locked; nothing was changed");
            ExitCode::FAILURE
        }
        Ok(_) => ExitCode::FAILURE,
        Err(problem) => {
            eprintln!("pam-mfa-user: helper {}: {problem}", cli.helper.display());
            ExitCode::FAILURE
        }
    }
}

/// The conversation at the terminal: questions and errors on stderr, answers from stdin
/// (without echo at a terminal), information on stdout.
struct Terminal;

impl Conversation for Terminal {
    fn ask_hidden(
        &mut self,
        prompt: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        eprint!("{prompt}");
        let _ = io::stderr().flush();
        let stdin = io::stdin();
        let saved = if stdin.is_terminal() {
            tcgetattr(&stdin).ok()
        } else {
            None
        };
        if let Some(saved) = &saved {
            let mut quiet = saved.clone();
            quiet.local_flags.remove(LocalFlags::ECHO);
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
        }
        let answer = read_line("code");
        if let Some(saved) = &saved {
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, saved);
            eprintln!();
        }
        // No line at all is a NULL answer, as at a PAM prompt.
        Ok(answer.ok())
    }

    fn info(&mut self, text: &str) -> Result<(), ConversationError> {
        println!("{text}");
        Ok(())
    }

    fn error(&mut self, text: &str) -> Result<(), ConversationError> {
        eprintln!("{text}");
        Ok(())
    }

    fn authtok(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        Ok(None)
    }

    fn set_authtok(&mut self, _value: &[u8]) -> Result<(), ConversationError> {
        Err(ConversationError)
    }
}

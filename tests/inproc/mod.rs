//! For tests that drive the module's Rust path in this process (no libpam): a store and
//! policy in a temporary directory for the current user, and a scripted conversation.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};

use zeroize::Zeroizing;

use pam_mfa::authenticate::{Conversation, ConversationError, Request};
use pam_mfa::otp::hotp::{format_code, hotp};
use pam_mfa::otp::totp::time_step;
use pam_mfa::otp::{Algorithm, Digits};

pub const KEY: &[u8] = b"12345678901234567890";
pub const KEY_BASE32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// An account NSS knows that is not root (root never self-enrolls and is remembered
/// only by its own rule): the user running the test, or `nobody` when that is root.
pub fn current_user() -> String {
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .expect("the current user has a passwd entry");
    if me.uid.is_root() {
        let nobody = nix::unistd::User::from_name("nobody")
            .unwrap()
            .expect("a nobody account");
        assert!(!nobody.uid.is_root());
        return nobody.name;
    }
    me.name
}

/// A policy and store for the current user.
pub struct Place {
    pub dir: tempfile::TempDir,
    pub user: String,
}

impl Place {
    /// `policy` is the policy without store_dir, which is filled in.
    pub fn new(policy: &str) -> Place {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        fs::create_dir(&store).unwrap();
        fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(
            dir.path().join("policy.toml"),
            format!(
                "store_dir = \"{}\"\nfail_delay_ms = 0\n{policy}",
                store.display()
            ),
        )
        .unwrap();
        Place {
            dir,
            user: current_user(),
        }
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn enroll(&self, base32: &str) {
        let record = self.store().join(format!("{}.toml", self.user));
        fs::write(&record, format!("secret = \"{base32}\"\n")).unwrap();
        fs::set_permissions(&record, fs::Permissions::from_mode(0o600)).unwrap();
    }

    pub fn request(&self, session_id: Option<u32>) -> Request {
        Request {
            user: Some(self.user.clone()),
            service: "inproc".into(),
            rhost: String::new(),
            args: vec![
                format!("config={}", self.dir.path().join("policy.toml").display()),
                format!("log_socket={}", self.dir.path().join("log.sock").display()),
            ],
            silent: false,
            session: session_id.into(),
        }
    }
}

/// The TOTP code of `key` at `now`.
pub fn code_at(key: &[u8], now: u64) -> String {
    format_code(
        hotp(key, time_step(now, 30), Algorithm::Sha1, Digits::SIX),
        Digits::SIX,
    )
}

/// Picks the answer to a prompt from the messages shown so far.
pub type Answerer = dyn FnMut(&[String]) -> Option<String> + Send;

/// A conversation that records what it is shown and answers from a script. The answer
/// function sees every message shown so far (to read a URI from an info message).
pub struct Scripted {
    pub shown: Vec<String>,
    pub asked: usize,
    pub answer: Box<Answerer>,
    /// Waited on before answering, to line up parallel logins.
    pub barrier: Option<Arc<Barrier>>,
}

impl Scripted {
    pub fn answering(code: &str) -> Scripted {
        let code = code.to_string();
        Scripted::with(move |_| Some(code.clone()))
    }

    pub fn with(answer: impl FnMut(&[String]) -> Option<String> + Send + 'static) -> Scripted {
        Scripted {
            shown: Vec::new(),
            asked: 0,
            answer: Box::new(answer),
            barrier: None,
        }
    }
}

impl Conversation for Scripted {
    fn ask_hidden(
        &mut self,
        prompt: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        self.asked += 1;
        self.shown.push(prompt.to_string());
        if let Some(barrier) = &self.barrier {
            barrier.wait();
        }
        Ok((self.answer)(&self.shown).map(|a| Zeroizing::new(a.into_bytes())))
    }

    fn info(&mut self, text: &str) -> Result<(), ConversationError> {
        self.shown.push(text.to_string());
        Ok(())
    }

    fn authtok(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        Ok(None)
    }

    fn set_authtok(&mut self, _value: &[u8]) -> Result<(), ConversationError> {
        Ok(())
    }
}

/// The base32 secret in the otpauth URI among the messages shown.
pub fn secret_from_messages(shown: &[String]) -> Option<String> {
    shown.iter().find_map(|message| {
        let start = message.find("otpauth://")?;
        let uri = message[start..].split_whitespace().next()?;
        let query = uri.split_once('?')?.1;
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("secret="))
            .map(str::to_string)
    })
}

/// Raw key bytes from base32 (the test's own decoder).
pub fn decode_base32(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let value = ALPHABET.iter().position(|&a| a == c).expect("base32") as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

//! Proof that secrets do not linger in freed memory: a global allocator wrapper scans
//! every block as it is freed for the secret (raw bytes and base32) and the typed code,
//! while an enrollment and a complete authentication run through the module's own Rust
//! code in this process.
//!
//! This file needs `unsafe` for the allocator (GlobalAlloc is an unsafe trait); it is
//! test code, outside the crate, and each block says why it is sound. It runs without
//! the test harness, whose output capture would itself copy what is printed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use zeroize::Zeroizing;

use pam_mfa::authenticate::{authenticate, Conversation, ConversationError, Outcome, Request};
use pam_mfa::clock::FixedClock;
use pam_mfa::otp::hotp::{format_code, hotp};
use pam_mfa::otp::totp::time_step;
use pam_mfa::otp::{Algorithm, Digits};

const NEEDLES: usize = 3;
const MAX_NEEDLE: usize = 64;

/// What to look for, in statics so that scanning never allocates.
struct Needle {
    len: AtomicUsize,
    bytes: [AtomicU8; MAX_NEEDLE],
}

static WATCHED: [Needle; NEEDLES] = [const {
    Needle {
        len: AtomicUsize::new(0),
        bytes: [const { AtomicU8::new(0) }; MAX_NEEDLE],
    }
}; NEEDLES];
static ARMED: AtomicBool = AtomicBool::new(false);
static HITS: [AtomicUsize; NEEDLES] = [const { AtomicUsize::new(0) }; NEEDLES];
static SCANNED: AtomicUsize = AtomicUsize::new(0);

struct Scanning;

// SAFETY: every method forwards to the system allocator with the same arguments; dealloc
// only reads the block it is about to free, which the caller guarantees is valid for
// `layout.size()` bytes.
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::SeqCst) {
            // SAFETY: the block is allocated, `layout.size()` bytes long, and not yet freed.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            scan(block);
        }
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Scanning = Scanning;

fn scan(block: &[u8]) {
    SCANNED.fetch_add(1, Ordering::Relaxed);
    for (index, needle) in WATCHED.iter().enumerate() {
        let len = needle.len.load(Ordering::Relaxed);
        if len == 0 || block.len() < len {
            continue;
        }
        let found = block.windows(len).any(|window| {
            window
                .iter()
                .zip(needle.bytes.iter())
                .all(|(b, n)| *b == n.load(Ordering::Relaxed))
        });
        if found {
            HITS[index].fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn watch(index: usize, bytes: &[u8]) {
    assert!(bytes.len() <= MAX_NEEDLE);
    for (slot, byte) in WATCHED[index].bytes.iter().zip(bytes) {
        slot.store(*byte, Ordering::SeqCst);
    }
    WATCHED[index].len.store(bytes.len(), Ordering::SeqCst);
}

/// Runs `f` with scanning on; returns the hits per needle.
fn scanned<R>(f: impl FnOnce() -> R) -> (R, [usize; NEEDLES]) {
    for hit in &HITS {
        hit.store(0, Ordering::SeqCst);
    }
    ARMED.store(true, Ordering::SeqCst);
    let result = f();
    ARMED.store(false, Ordering::SeqCst);
    (result, HITS.each_ref().map(|h| h.load(Ordering::SeqCst)))
}

/// The secret of the test account: 20 raw bytes, and its base32.
const RAW: &[u8; 20] =
    b"\x8f\x13\xa7\x5c\x02\xe9\x41\xbb\x7d\x66\xc0\x1f\x93\x2a\xd8\x55\x0e\xb4\x39\x71";

struct Answer(Option<Vec<u8>>);

impl Conversation for Answer {
    fn ask_hidden(
        &mut self,
        _prompt: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        // What the application hands over becomes the module's to wipe.
        Ok(self.0.take().map(Zeroizing::new))
    }
    fn info(&mut self, _text: &str) -> Result<(), ConversationError> {
        Ok(())
    }
    fn authtok(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        Ok(None)
    }
    fn set_authtok(&mut self, _value: &[u8]) -> Result<(), ConversationError> {
        Ok(())
    }
}

fn main() -> ExitCode {
    let base32 = data_encoding_base32(RAW);
    let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .expect("passwd lookup")
        .expect("the current user has a passwd entry")
        .name;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    fs::create_dir(&store).unwrap();
    fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).unwrap();
    let policy = dir.path().join("policy.toml");
    fs::write(
        &policy,
        format!(
            "store_dir = \"{}\"\ndefault_mode = \"required\"\nfail_delay_ms = 0\n",
            store.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("log.sock");

    watch(0, RAW);
    watch(1, base32.as_bytes());

    // Enrollment, in this process, with the secret on standard input.
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    let mut writer = fs::File::from(write_end);
    writer.write_all(format!("{base32}\n").as_bytes()).unwrap();
    drop(writer);
    nix::unistd::dup2_stdin(&read_end).unwrap();
    drop(read_end);
    let args = [
        "pam-mfa",
        "enroll",
        &user,
        "--config",
        policy.to_str().unwrap(),
        "--secret-stdin",
        "--no-confirm",
        "--qr",
        "utf8",
    ];
    let (status, enroll_hits) = scanned(|| pam_mfa::cli::run_from(args));
    if status != ExitCode::SUCCESS {
        eprintln!("memory: enrollment failed");
        return ExitCode::FAILURE;
    }
    let record = fs::read_to_string(store.join(format!("{user}.toml"))).unwrap();
    assert!(
        record.contains(&base32),
        "the enrollment stored another secret"
    );

    // A complete authentication through the module's Rust path.
    let now = 1_900_000_000;
    let code = format_code(
        hotp(RAW, time_step(now, 30), Algorithm::Sha1, Digits::SIX),
        Digits::SIX,
    );
    watch(2, code.as_bytes());
    let request = Request {
        user: Some(user.clone()),
        service: "memory-test".into(),
        rhost: String::new(),
        args: vec![
            format!("config={}", policy.display()),
            format!("log_socket={}", log.display()),
        ],
        silent: false,
        session: Default::default(),
    };
    let mut answer = Answer(Some(code.as_bytes().to_vec()));
    let (outcome, auth_hits) = scanned(|| authenticate(&request, &mut answer, &FixedClock(now)));
    let succeeded = matches!(outcome, Outcome::Success(_));
    drop(outcome);

    let names = ["raw secret", "base32 secret", "typed code"];
    let mut failed = !succeeded;
    if !succeeded {
        eprintln!("memory: the authentication did not succeed");
    }
    for (phase, hits) in [("enrollment", enroll_hits), ("authentication", auth_hits)] {
        for (name, count) in names.iter().zip(hits) {
            if count > 0 {
                eprintln!("memory: {phase}: {count} freed block(s) held the {name}");
                failed = true;
            }
        }
    }
    let scanned_blocks = SCANNED.load(Ordering::SeqCst);
    assert!(
        scanned_blocks > 100,
        "the scanner saw only {scanned_blocks} frees"
    );
    let _ = std::io::stdout().as_raw_fd();
    if failed {
        println!("memory: 0 passed, 1 failed");
        return ExitCode::FAILURE;
    }
    println!("memory: no freed block held a secret or code ({scanned_blocks} blocks scanned)");
    println!("memory: 1 passed, 0 failed");
    ExitCode::SUCCESS
}

/// Base32 without padding, written here so the test does not share the crate's encoder.
fn data_encoding_base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

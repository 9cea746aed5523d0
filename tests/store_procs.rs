//! The store under parallel logins and crashes, across real processes: many pamdrive
//! processes let go at one moment, on a slowed disk, with one code, one recovery code or
//! wrong codes; a state write whose fdatasync fails or that is torn by a SIGKILL
//! (tests/tools/faults.c, preloaded); and a state file truncated to nothing.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use common::{
    avoid_step_boundary, pamdrive, recovery_codes, sandbox, AuditLine, Pam, Sandbox, Totp,
    FACILITY_AUTH, SECRET, SERVICE, SEVERITY_WARNING,
};

/// libpam's PAM_MAXTRIES, which `Pam` has no name for.
const PAM_MAXTRIES: Pam = Pam::Other(11);

/// How many logins run at once.
const PARALLEL: usize = 16;

/// A disk that takes 50 ms for each write (tests/tools/faults.c): a login's read-check-write
/// of the state then lasts long enough for every parallel login to read the same state,
/// unless the account's lock keeps them apart.
const SLOW_DISK: &[(&str, &str)] = &[
    ("PAM_MFA_FAULT", "pwrite-slow"),
    ("PAM_MFA_FAULT_DELAY_MS", "50"),
];

/// The state file's layout (src/store/state.rs): two 128-byte slots, 4 KiB apart, each
/// `PMFS`, version, flags, a sequence number at 8, the failure count at 32, and a SHA-256
/// of the first 96 bytes at 96.
const SLOT_LEN: usize = 128;
const SLOT_OFFSETS: [usize; 2] = [0, 4096];

/// alice (1000) must give a code; failures never lock her out within a test unless the test
/// says so, and libpam is asked for no delay.
fn required_alice(max_failures: u32) -> Sandbox {
    sandbox().user("alice", 1000).policy(&format!(
        "store_dir = \"{{store}}\"\ndefault_mode = \"required\"\nmax_failures = {max_failures}\n\
         fail_delay_ms = 0\n"
    ))
}

// --- parallel logins ----------------------------------------------------------------------

#[test]
fn sixteen_parallel_logins_with_one_code_succeed_once() {
    let sb = required_alice(100).enroll_with_cli("alice", SECRET);
    avoid_step_boundary(30);
    let code = Totp::new(SECRET).code();

    let (rounds, _) = run_together(&sb, &[("alice", code.as_str()); PARALLEL], SLOW_DISK);

    let successes = rounds.iter().filter(|rc| **rc == Pam::Success).count();
    assert_eq!(successes, 1, "{rounds:?}");
    assert_eq!(
        rounds.iter().filter(|rc| **rc == Pam::AuthErr).count(),
        PARALLEL - 1,
        "{rounds:?}"
    );
}

#[test]
fn sixteen_parallel_wrong_codes_are_all_counted() {
    let sb = required_alice(100).enroll_with_cli("alice", SECRET);
    let wrong = Totp::new(SECRET).wrong_code();

    let (rounds, _) = run_together(&sb, &[("alice", wrong.as_str()); PARALLEL], SLOW_DISK);

    assert!(rounds.iter().all(|rc| *rc == Pam::AuthErr), "{rounds:?}");
    let state = fs::read(state_path(&sb, "alice")).expect("read alice.state");
    let (_, slot) = newest_slot(&state).expect("a valid state slot");
    assert_eq!(
        u32_at(&slot, 32),
        PARALLEL as u32,
        "failure count after {PARALLEL} parallel wrong codes"
    );
}

/// With max_failures = 16, sixteen parallel wrong codes lock the account (so each was
/// counted); with 17 they do not (so none was counted twice).
#[test]
fn sixteen_parallel_wrong_codes_lock_exactly_at_max_failures() {
    for (max_failures, expected) in [(16, PAM_MAXTRIES), (17, Pam::Success)] {
        let sb = required_alice(max_failures).enroll_with_cli("alice", SECRET);
        let totp = Totp::new(SECRET);
        let wrong = totp.wrong_code();

        let (rounds, _) = run_together(&sb, &[("alice", wrong.as_str()); PARALLEL], SLOW_DISK);
        assert!(
            rounds.iter().all(|rc| *rc == Pam::AuthErr),
            "max_failures {max_failures}: {rounds:?}"
        );

        avoid_step_boundary(30);
        let after = sb.login("alice").answer(&totp.code()).run();
        assert_eq!(
            after.rc(),
            expected,
            "a valid code after {PARALLEL} wrong ones, max_failures {max_failures}: {after:?}"
        );
    }
}

#[test]
fn parallel_logins_with_one_recovery_code_succeed_once() {
    // Each login runs ten Argon2 hashes before it takes the account's lock, and under
    // the lock only reads the hashes again: eight logins never wait for each other's
    // hashing, so none reaches the lock's timeout however busy the machine.
    const LOGINS: usize = 8;
    let sb = required_alice(100);
    let enrolled = sb
        .pam_mfa(&["enroll", "alice", "--secret-stdin", "--no-confirm"])
        .stdin(&format!("{SECRET}\n"))
        .run();
    assert_eq!(enrolled.code, Some(0), "{enrolled:?}");
    let codes = recovery_codes(&enrolled.stdout);
    assert_eq!(codes.len(), 10, "{enrolled:?}");
    sb.audit_lines();

    let (rounds, lines) = run_together(&sb, &[("alice", codes[3].as_str()); LOGINS], SLOW_DISK);

    assert_eq!(
        rounds.iter().filter(|rc| **rc == Pam::Success).count(),
        1,
        "{rounds:?}"
    );
    assert_eq!(
        rounds.iter().filter(|rc| **rc == Pam::AuthErr).count(),
        LOGINS - 1,
        "{rounds:?}"
    );
    assert_eq!(lines.len(), LOGINS, "{lines:#?}");
    let success: Vec<_> = lines
        .iter()
        .filter(|l| l.get("outcome") == "success")
        .collect();
    assert_eq!(success.len(), 1, "{lines:#?}");
    let line = success[0];
    assert_eq!(line.facility, FACILITY_AUTH, "{line:#?}");
    assert_eq!(line.severity, SEVERITY_WARNING, "{line:#?}");
    assert!(
        line.raw
            .starts_with(&format!("<{}>", FACILITY_AUTH * 8 + SEVERITY_WARNING)),
        "{line:#?}"
    );
    assert!(line.get("reason").contains("recovery code"), "{line:#?}");
    assert_eq!(line.get("user"), "alice");

    let status = sb.pam_mfa(&["status", "--json", "alice"]).run();
    assert_eq!(status.code, Some(0), "{status:?}");
    let json: Value = serde_json::from_str(&status.stdout).expect("status --json is JSON");
    assert_eq!(json[0]["recovery_codes_left"], 9, "{json:#}");
}

// --- faults at the state write -----------------------------------------------------------

#[test]
fn login_whose_state_cannot_be_synced_is_refused_and_the_next_code_works() {
    let sb = required_alice(100).enroll_with_cli("alice", SECRET);
    let totp = Totp::new(SECRET);
    let before = fs::read(state_path(&sb, "alice")).expect("state after enrollment");
    let (newest, _) = newest_slot(&before).expect("enrollment wrote a state");
    sb.audit_lines();
    avoid_step_boundary(30);

    let (faulty, lines) = run_one(
        &sb,
        "alice",
        &totp.code(),
        &[("PAM_MFA_FAULT", "fdatasync-eio")],
    );
    let rc = rc_of(&faulty);
    assert!(
        !matches!(rc, Some(Pam::Success) | Some(Pam::Ignore)),
        "a login whose state could not be made durable must be refused: {faulty:?}"
    );
    assert_eq!(rc, Some(Pam::AuthinfoUnavail), "{faulty:?}");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = &lines[0];
    line.expect("alice", "required", "default", "error");
    assert!(line.get("reason").contains("sync"), "{line:#?}");
    let after = fs::read(state_path(&sb, "alice")).unwrap();
    assert_eq!(
        slot_bytes(&after, newest),
        slot_bytes(&before, newest),
        "the newest durable slot was overwritten"
    );

    sb.login("alice")
        .answer(&totp.code_in_steps(1))
        .run()
        .expect(Pam::Success);
}

#[test]
fn wrong_code_whose_failure_cannot_be_synced_is_an_error_not_a_denial() {
    let sb = required_alice(100).enroll_with_cli("alice", SECRET);
    let wrong = Totp::new(SECRET).wrong_code();
    sb.audit_lines();

    let (faulty, lines) = run_one(&sb, "alice", &wrong, &[("PAM_MFA_FAULT", "fdatasync-eio")]);

    assert_eq!(rc_of(&faulty), Some(Pam::AuthinfoUnavail), "{faulty:?}");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    lines[0].expect("alice", "required", "default", "error");
}

#[test]
fn login_killed_mid_write_leaves_the_previous_state_and_its_code_unused() {
    let sb = required_alice(100).enroll_with_cli("alice", SECRET);
    let totp = Totp::new(SECRET);
    avoid_step_boundary(30);
    // A login of the step before makes a state worth keeping (sequence 2, in slot 1).
    sb.login("alice")
        .answer(&totp.code_in_steps(-1))
        .run()
        .expect(Pam::Success);
    let before = fs::read(state_path(&sb, "alice")).unwrap();
    let (newest, newest_bytes) = newest_slot(&before).expect("a valid state");
    let code = totp.code();
    sb.audit_lines();

    let (killed, lines) = run_one(&sb, "alice", &code, &[("PAM_MFA_FAULT", "pwrite-torn")]);
    assert!(lines.is_empty(), "a killed login sent {lines:#?}");

    assert_eq!(
        killed.status.signal(),
        Some(9),
        "pamdrive should die by SIGKILL in the middle of the state write: {killed:?}"
    );
    assert_eq!(rc_of(&killed), None, "{killed:?}");
    let after = fs::read(state_path(&sb, "alice")).unwrap();
    assert_eq!(after.len(), before.len(), "the state file changed size");
    assert_eq!(
        slot_bytes(&after, newest),
        newest_bytes,
        "the previous state's slot is not byte-identical"
    );
    let torn = 1 - newest;
    assert_ne!(
        slot_bytes(&after, torn),
        slot_bytes(&before, torn),
        "the fault did not reach the other slot: was the shim preloaded?"
    );
    let (still_newest, _) = newest_slot(&after).expect("a valid state after the crash");
    assert_eq!(still_newest, newest, "the torn slot was taken as valid");

    // The code being accepted when the process died was never marked used: it works,
    // once.
    sb.login("alice").answer(&code).run().expect(Pam::Success);
    sb.login("alice").answer(&code).run().expect(Pam::AuthErr);
}

/// google-authenticator-libpam's issue 177: an empty state file locked root out.
#[test]
fn zero_byte_state_file_does_not_lock_root_out() {
    let sb = sandbox().enroll_with_cli("root", SECRET);
    let state = state_path(&sb, "root");
    fs::File::options()
        .write(true)
        .open(&state)
        .expect("open root.state")
        .set_len(0)
        .expect("truncate root.state");
    assert_eq!(fs::metadata(&state).unwrap().len(), 0);
    avoid_step_boundary(30);

    sb.login("root")
        .answer(&Totp::new(SECRET).code())
        .run()
        .expect_prompted()
        .expect(Pam::Success);
}

// --- helpers -------------------------------------------------------------------------------

/// One pamdrive process that has not run yet: the default service, `user`, one answer, with
/// the harness's environment (nss_wrapper, nothing from the test's environment but PATH and
/// TMPDIR), the fault shim preloaded (it does nothing unless `env` asks), and `env` on top.
fn pamdrive_command(sb: &Sandbox, user: &str, answer: &str, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(pamdrive());
    command
        .arg("--confdir")
        .arg(sb.path("pam.d"))
        .arg(SERVICE)
        .arg(user)
        .arg(answer)
        .env_clear();
    for name in ["PATH", "TMPDIR"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
        .env("NSS_WRAPPER_PASSWD", sb.path("passwd"))
        .env("NSS_WRAPPER_GROUP", sb.path("group"))
        .env(
            "LD_PRELOAD",
            format!("{} libnss_wrapper.so", faults().display()),
        )
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// What a pamdrive process left: how it ended and what it printed.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout\n{}--- stderr\n{}---",
            self.status, self.stdout, self.stderr
        )
    }
}

/// One pamdrive process to its end, and the audit lines it sent.
fn run_one(sb: &Sandbox, user: &str, answer: &str, env: &[(&str, &str)]) -> (Ran, Vec<AuditLine>) {
    let child = pamdrive_command(sb, user, answer, env)
        .spawn()
        .expect("spawn pamdrive");
    let (mut ran, lines) = wait_all(sb, vec![child]);
    (ran.remove(0), lines)
}

/// Starts one pamdrive process per login and lets them all go at one moment (the shim's
/// gate), then returns their return codes (each must have finished normally with one) and
/// the audit lines they sent.
fn run_together(
    sb: &Sandbox,
    logins: &[(&str, &str)],
    env: &[(&str, &str)],
) -> (Vec<Pam>, Vec<AuditLine>) {
    let gate = sb.path("gate");
    let gate_text = gate.to_str().expect("UTF-8 path").to_string();
    let mut env = env.to_vec();
    env.push(("PAM_MFA_GATE", &gate_text));
    let children: Vec<Child> = logins
        .iter()
        .map(|(user, answer)| {
            pamdrive_command(sb, user, answer, &env)
                .spawn()
                .expect("spawn pamdrive")
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = fs::read_dir(sb.path("."))
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with("gate.ready.")
            })
            .count();
        if ready == logins.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {ready} of {} processes reached the gate",
            logins.len()
        );
        thread::sleep(Duration::from_millis(2));
    }
    fs::write(&gate, "").expect("open the gate");
    let (ran, lines) = wait_all(sb, children);
    let codes = ran
        .into_iter()
        .map(|ran| {
            assert_eq!(ran.status.code(), Some(0), "pamdrive failed: {ran:?}");
            rc_of(&ran).unwrap_or_else(|| panic!("no return code: {ran:?}"))
        })
        .collect();
    for entry in fs::read_dir(sb.path(".")).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("gate")
        {
            fs::remove_file(path).unwrap();
        }
    }
    (codes, lines)
}

/// Waits for every child (killing them all if any takes longer than a minute) and reads
/// their output. The syslog sink is emptied meanwhile: a Unix datagram socket queues only
/// a few lines (net.unix.max_dgram_qlen, 10 by default), and the module's send blocks
/// while the queue is full.
fn wait_all(sb: &Sandbox, mut children: Vec<Child>) -> (Vec<Ran>, Vec<AuditLine>) {
    let readers: Vec<_> = children
        .iter_mut()
        .map(|child| {
            let out = drain(child.stdout.take().expect("stdout"));
            let err = drain(child.stderr.take().expect("stderr"));
            (out, err)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; children.len()];
    while statuses.iter().any(Option::is_none) {
        lines.extend(sb.audit_lines());
        for (child, status) in children.iter_mut().zip(statuses.iter_mut()) {
            if status.is_none() {
                *status = child.try_wait().expect("wait for pamdrive");
            }
        }
        if Instant::now() > deadline {
            for child in &mut children {
                let _ = child.kill();
                let _ = child.wait();
            }
            panic!("pamdrive processes hung and were killed");
        }
        thread::sleep(Duration::from_millis(5));
    }
    lines.extend(sb.audit_lines());
    let ran = statuses
        .into_iter()
        .zip(readers)
        .map(|(status, (out, err))| Ran {
            status: status.expect("every child finished"),
            stdout: out.join().expect("stdout reader"),
            stderr: err.join().expect("stderr reader"),
        })
        .collect();
    (ran, lines)
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// pam_authenticate's return code from pamdrive's `rc N NAME` line, if it printed one.
fn rc_of(ran: &Ran) -> Option<Pam> {
    ran.stdout.lines().find_map(|line| {
        let rest = line.strip_prefix("rc ")?;
        let number = rest.split(' ').next()?;
        Some(Pam::from_int(number.parse().expect("rc is a number")))
    })
}

fn state_path(sb: &Sandbox, user: &str) -> PathBuf {
    sb.store().join(format!("{user}.state"))
}

/// The 128 bytes of slot `index` (zeros past the end of the file).
fn slot_bytes(file: &[u8], index: usize) -> Vec<u8> {
    let mut slot = vec![0u8; SLOT_LEN];
    let start = SLOT_OFFSETS[index].min(file.len());
    let end = (start + SLOT_LEN).min(file.len());
    slot[..end - start].copy_from_slice(&file[start..end]);
    slot
}

/// The index and bytes of the valid slot with the highest sequence number.
fn newest_slot(file: &[u8]) -> Option<(usize, Vec<u8>)> {
    (0..SLOT_OFFSETS.len())
        .map(|index| (index, slot_bytes(file, index)))
        .filter(|(_, slot)| {
            slot.starts_with(b"PMFS") && Sha256::digest(&slot[..96]).as_slice() == &slot[96..]
        })
        .max_by_key(|(_, slot)| u64_at(slot, 8))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// tests/tools/faults.c as a shared object.
fn faults() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| common::c_tool("faults.c", &["-shared", "-fPIC"], &["-ldl"]))
        .clone()
}

/// `enroll --force` killed between its renames (emptying the old recovery codes, the new
/// record, the new codes): the old codes never outlive the old secret, and whichever secret
/// the record holds signs in.
#[test]
fn enroll_force_killed_between_renames_never_keeps_the_old_recovery_codes() {
    for at in [1, 2, 3] {
        let sb = common::sandbox()
            .user("alice", 1000)
            .policy("store_dir = \"{store}\"\ndefault_mode = \"required\"\n");
        let first = sb
            .pam_mfa(&["enroll", "alice", "--secret-stdin", "--no-confirm"])
            .stdin(&format!("{}\n", common::SECRET))
            .run();
        assert_eq!(first.code, Some(0), "{first:?}");
        let old_codes = recovery_codes(&first.stdout);
        assert!(!old_codes.is_empty(), "{first:?}");
        let old_record = fs::read(sb.record_path("alice")).unwrap();

        let at_text = at.to_string();
        let killed = sb
            .pam_mfa(&[
                "enroll",
                "alice",
                "--secret-stdin",
                "--no-confirm",
                "--force",
            ])
            .env(
                "LD_PRELOAD",
                &format!("{} libnss_wrapper.so", faults().display()),
            )
            .env("PAM_MFA_FAULT", "rename-kill")
            .env("PAM_MFA_FAULT_AT", &at_text)
            .stdin(&format!("{}\n", common::OTHER_SECRET))
            .run();
        assert_eq!(killed.code, None, "rename {at}: not killed: {killed:?}");

        let record = fs::read(sb.record_path("alice")).unwrap();
        let kept_old = record == old_record;
        if at > 1 {
            // Past the first rename the old codes are gone, whatever else happened.
            let recovery = sb.login("alice").answer(&old_codes[0]).run();
            assert_ne!(
                recovery.rounds,
                [common::Pam::Success],
                "rename {at}: {recovery:?}"
            );
        }
        assert_eq!(kept_old, at <= 2, "rename {at}: which record");
        let secret = if kept_old {
            common::SECRET
        } else {
            common::OTHER_SECRET
        };
        common::avoid_step_boundary(30);
        sb.login("alice")
            .answer(&common::Totp::new(secret).code())
            .run()
            .expect(common::Pam::Success);
    }
}

#[test]
fn a_wrong_code_asks_libpam_for_the_policys_failure_delay() {
    let sb = common::sandbox()
        .user("alice", 1000)
        .policy("store_dir = \"{store}\"\ndefault_mode = \"required\"\nfail_delay_ms = 9000\n")
        .enroll("alice", common::SECRET);
    let totp = common::Totp::new(common::SECRET);
    let failed = sb.login("alice").answer(&totp.wrong_code()).run();
    failed.expect(common::Pam::AuthErr);
    assert_eq!(failed.delays.len(), 1, "{failed:?}");
    // libpam scales the requested delay by the mean of three uniform draws, so it lands
    // anywhere between half and one and a half times the request (pam_delay.c). 9 s keeps
    // that range clear of the default 2 s's (1 to 3 s) and of no delay at all; the test's
    // delay function does not sleep.
    assert!(
        (4_500_000..=13_500_000).contains(&failed.delays[0]),
        "{failed:?}"
    );
    // An account the module never asks (here: unknown to the policy's store, optional)
    // gets no delay from it.
    let sb = common::sandbox()
        .user("bob", 1001)
        .policy("store_dir = \"{store}\"\ndefault_mode = \"optional\"\nfail_delay_ms = 9000\n");
    let ignored = sb.login("bob").run();
    assert!(ignored.delays.iter().all(|usec| *usec == 0), "{ignored:?}");
}

// --- contention: one audit line per login -----------------------------------------------------

/// Issue 18, item 15: sixteen processes log in to one HOTP account at once, several times
/// each, through the real libpam. Every login writes exactly one audit line, and every
/// return code is one the module gives for such a login (success, or a wrong or used
/// code). None is PAM_PERM_DENIED, which libpam returns when no module decides (every one
/// ignores, or the stack is empty): the account is optional, so a record misread under
/// contention would show up as exactly that. (The PAM_PERM_DENIED the review saw came
/// from its harness: pam_wrapper copies the service files into a /tmp/pam.X directory
/// that processes started together share, so one could read a half-copied, empty service
/// file and run no module at all. pamdrive --confdir reads the files in place.)
#[test]
fn sixteen_processes_on_one_hotp_account_get_one_audit_line_per_login() {
    const ROUNDS: usize = 12;
    let sb = sandbox().user("alice", 1000).policy(
        "store_dir = \"{store}\"\ndefault_mode = \"optional\"\nmax_failures = 1000\n\
         fail_delay_ms = 0\n",
    );
    let enrolled = sb
        .pam_mfa(&[
            "enroll",
            "alice",
            "--hotp",
            "--secret-stdin",
            "--no-confirm",
        ])
        .stdin(&format!("{SECRET}\n"))
        .run();
    assert_eq!(enrolled.code, Some(0), "{enrolled:?}");
    sb.audit_lines();
    // Process p types the code of counter p, every round: some are accepted once, the
    // rest are used or too far ahead.
    let codes: Vec<String> = (0..PARALLEL)
        .map(|counter| {
            let out = Command::new("oathtool")
                .args(["--hotp", "-b", "-c", &counter.to_string(), SECRET])
                .output()
                .expect("run oathtool");
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        })
        .collect();
    let children: Vec<Child> = codes
        .iter()
        .map(|code| {
            let mut command = pamdrive_command(&sb, "alice", code, &[]);
            // --repeat goes before the service: rebuild the arguments with it.
            let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
            let mut repeated = Command::new(command.get_program());
            repeated
                .arg("--repeat")
                .arg(ROUNDS.to_string())
                .args(args)
                .env_clear()
                .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            command = repeated;
            command.spawn().expect("spawn pamdrive")
        })
        .collect();
    let (ran, lines) = wait_all(&sb, children);

    let mut rounds = Vec::new();
    for ran in &ran {
        assert_eq!(ran.status.code(), Some(0), "pamdrive failed: {ran:?}");
        assert!(
            !ran.stderr.contains("audit line not delivered"),
            "the sink took every line: {ran:?}"
        );
        let codes: Vec<Pam> = ran
            .stdout
            .lines()
            .filter_map(|line| line.strip_prefix("rc "))
            .map(|rest| Pam::from_int(rest.split(' ').next().unwrap().parse().unwrap()))
            .collect();
        assert_eq!(codes.len(), ROUNDS, "{ran:?}");
        rounds.extend(codes);
    }
    let logins = PARALLEL * ROUNDS;
    assert_eq!(lines.len(), logins, "one audit line per login: {lines:#?}");
    let unexplained: Vec<&Pam> = rounds
        .iter()
        .filter(|rc| !matches!(rc, Pam::Success | Pam::AuthErr))
        .collect();
    assert!(unexplained.is_empty(), "unexplained codes: {unexplained:?}");
    let successes = rounds.iter().filter(|rc| **rc == Pam::Success).count();
    let success_lines = lines
        .iter()
        .filter(|l| l.get("outcome") == "success")
        .count();
    assert_eq!(successes, success_lines, "{lines:#?}");
    assert!(
        (1..=PARALLEL).contains(&successes),
        "each counter is accepted at most once: {successes} successes"
    );
    for line in &lines {
        assert!(
            matches!(line.get("outcome"), "success" | "deny"),
            "{line:#?}"
        );
        assert_eq!(line.get("mode"), "optional", "{line:#?}");
    }
}

//! The sandbox every integration test runs in: fake accounts for nss_wrapper, a policy, a store,
//! PAM service files and a syslog sink, all inside one temporary directory, so a test drives the
//! built module through the real libpam without touching /etc. pamdrive hands the service
//! directory to libpam (pam_start_confdir); pamtester gets it through pam_wrapper.
//!
//! Each test binary uses part of this module only.
#![allow(dead_code)]

pub mod me;
pub mod pg;

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

/// The prompt of the contract, shown to enrolled, required-but-unenrolled and unknown accounts.
pub const PROMPT: &str = "Verification code: ";
/// The PAM service every sandbox has, with the default stack (the module alone, `required`).
pub const SERVICE: &str = "mfa";
/// The default stack: `{module}`, `{debug_module}`, `{config}` and `{log}` are filled in.
pub const DEFAULT_STACK: &str = "auth required {module} config={config} log_socket={log}\n";

/// Base32 secrets of 160 bits, and longer ones for the SHA-2 records.
pub const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
pub const OTHER_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
pub const SECRET_256: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBV";
pub const SECRET_512: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// syslog facility `auth` and the severities the contract names.
pub const FACILITY_AUTH: u8 = 4;
pub const SEVERITY_ERR: u8 = 3;
pub const SEVERITY_WARNING: u8 = 4;
pub const SEVERITY_INFO: u8 = 6;

/// How long one PAM transaction or CLI run may take before the test calls it a hang.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// A return code of libpam, as pamdrive reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pam {
    Success,
    ServiceErr,
    SystemErr,
    PermDenied,
    AuthErr,
    AuthinfoUnavail,
    UserUnknown,
    ConvErr,
    Ignore,
    Other(i32),
}

impl Pam {
    pub fn from_int(code: i32) -> Self {
        match code {
            0 => Self::Success,
            3 => Self::ServiceErr,
            4 => Self::SystemErr,
            6 => Self::PermDenied,
            7 => Self::AuthErr,
            9 => Self::AuthinfoUnavail,
            10 => Self::UserUnknown,
            19 => Self::ConvErr,
            25 => Self::Ignore,
            other => Self::Other(other),
        }
    }

    /// The name pamdrive prints next to the number.
    pub fn c_name(self) -> Option<&'static str> {
        Some(match self {
            Self::Success => "PAM_SUCCESS",
            Self::ServiceErr => "PAM_SERVICE_ERR",
            Self::SystemErr => "PAM_SYSTEM_ERR",
            Self::PermDenied => "PAM_PERM_DENIED",
            Self::AuthErr => "PAM_AUTH_ERR",
            Self::AuthinfoUnavail => "PAM_AUTHINFO_UNAVAIL",
            Self::UserUnknown => "PAM_USER_UNKNOWN",
            Self::ConvErr => "PAM_CONV_ERR",
            Self::Ignore => "PAM_IGNORE",
            Self::Other(_) => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The sandbox

/// A temporary world for one test: accounts, policy, store, PAM services and a syslog sink.
pub struct Sandbox {
    dir: TempDir,
    users: Vec<(String, u32, u32)>,
    groups: Vec<(String, u32, Vec<String>)>,
    sink: UnixDatagram,
}

/// A sandbox with root (uid 0) in its accounts, a store directory (0700), a policy that makes
/// everyone optional, and the default service.
pub fn sandbox() -> Sandbox {
    Sandbox::new()
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pam-mfa-test.")
            .tempdir()
            .expect("create sandbox dir");
        let sink = UnixDatagram::bind(dir.path().join("log.sock")).expect("bind syslog sink");
        sink.set_nonblocking(true).expect("non-blocking sink");
        let sandbox = Sandbox {
            dir,
            users: vec![("root".into(), 0, 0)],
            groups: vec![("root".into(), 0, Vec::new())],
            sink,
        };
        fs::create_dir(sandbox.store()).expect("create store");
        set_mode(&sandbox.store(), 0o700);
        fs::create_dir(sandbox.service_dir()).expect("create service dir");
        sandbox.write_accounts();
        sandbox
            .policy("store_dir = \"{store}\"\ndefault_mode = \"optional\"\n")
            .service(SERVICE, DEFAULT_STACK)
    }

    // --- accounts -------------------------------------------------------------------------

    /// An account with a private primary group of the same name and id (as Debian makes them),
    /// unless a group with that id is there already.
    pub fn user(mut self, name: &str, uid: u32) -> Self {
        if !self.groups.iter().any(|(_, gid, _)| *gid == uid) {
            self.groups.push((name.into(), uid, Vec::new()));
        }
        self.user_with_gid(name, uid, uid)
    }

    pub fn user_with_gid(mut self, name: &str, uid: u32, gid: u32) -> Self {
        self.users.push((name.into(), uid, gid));
        self.write_accounts();
        self
    }

    /// A group whose member list (the fourth field of the group file) names `members`: secondary
    /// membership, as getgrouplist(3) reports it.
    pub fn group(mut self, name: &str, gid: u32, members: &[&str]) -> Self {
        let members = members.iter().map(|m| m.to_string()).collect();
        self.groups.push((name.into(), gid, members));
        self.write_accounts();
        self
    }

    fn write_accounts(&self) {
        let passwd: String = self
            .users
            .iter()
            .map(|(name, uid, gid)| format!("{name}:x:{uid}:{gid}:{name}:/nonexistent:/bin/sh\n"))
            .collect();
        let group: String = self
            .groups
            .iter()
            .map(|(name, gid, members)| format!("{name}:x:{gid}:{}\n", members.join(",")))
            .collect();
        fs::write(self.passwd_path(), passwd).expect("write passwd");
        fs::write(self.group_path(), group).expect("write group");
    }

    // --- policy ---------------------------------------------------------------------------

    /// Replaces the policy file with `toml`, `{store}` standing for the store directory.
    /// The file is written with mode 0600.
    pub fn policy(self, toml: &str) -> Self {
        let text = toml.replace("{store}", &self.store().display().to_string());
        write_file(&self.policy_path(), &text, 0o600);
        self
    }

    pub fn policy_path(&self) -> PathBuf {
        self.path("policy.toml")
    }

    // --- store ----------------------------------------------------------------------------

    pub fn store(&self) -> PathBuf {
        self.path("store")
    }

    pub fn record_path(&self, user: &str) -> PathBuf {
        self.store().join(format!("{user}.toml"))
    }

    /// Writes `<store>/<user>.toml` (mode 0600) for a SHA1, 6-digit, 30-second TOTP secret.
    pub fn enroll(self, user: &str, secret: &str) -> Self {
        self.enroll_record(user, &Totp::new(secret))
    }

    /// Writes `<store>/<user>.toml` (mode 0600) in the record format of the contract.
    pub fn enroll_record(self, user: &str, totp: &Totp) -> Self {
        write_file(&self.record_path(user), &totp.record(), 0o600);
        self
    }

    /// Enrolls through the real CLI: `pam-mfa enroll USER --config FILE --secret-stdin
    /// --no-confirm`, the secret on stdin.
    pub fn enroll_with_cli(self, user: &str, secret: &str) -> Self {
        let run = self
            .pam_mfa(&["enroll", user, "--secret-stdin", "--no-confirm"])
            .stdin(&format!("{secret}\n"))
            .run();
        assert_eq!(run.code, Some(0), "pam-mfa enroll {user} failed: {run:?}");
        self
    }

    // --- PAM services ---------------------------------------------------------------------

    /// Writes the service file `name`, whose stack is `stack` with `{module}` (the release
    /// module), `{debug_module}`, `{config}` (the policy) and `{log}` (the sink) filled in.
    pub fn service(self, name: &str, stack: &str) -> Self {
        let text = stack
            .replace("{module}", &module_path().display().to_string())
            .replace("{debug_module}", &debug_module_path().display().to_string())
            .replace("{config}", &self.policy_path().display().to_string())
            .replace("{log}", &self.log_socket().display().to_string());
        fs::write(self.service_dir().join(name), text).expect("write service file");
        self
    }

    fn service_dir(&self) -> PathBuf {
        self.path("pam.d")
    }

    fn passwd_path(&self) -> PathBuf {
        self.path("passwd")
    }

    fn group_path(&self) -> PathBuf {
        self.path("group")
    }

    pub fn log_socket(&self) -> PathBuf {
        self.path("log.sock")
    }

    /// A path inside the sandbox directory.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    // --- running --------------------------------------------------------------------------

    /// A PAM transaction by pamdrive (tests/tools/pamdrive.c) for `user` on the default service.
    pub fn login(&self, user: &str) -> Login<'_> {
        Login {
            sandbox: self,
            service: SERVICE.into(),
            user: user.into(),
            answers: Vec::new(),
            options: Vec::new(),
            env: Vec::new(),
            runner: Vec::new(),
        }
    }

    /// `pamtester SERVICE USER authenticate` with `stdin` as its input, under pam_wrapper.
    ///
    /// pam_wrapper copies the service files into a directory /tmp/pam.X that it picks with a
    /// check-then-create race, so two of its processes started together can share or lose that
    /// directory: pamtester runs one at a time. (pamdrive does not need pam_wrapper: it hands
    /// the service directory to libpam's pam_start_confdir itself.)
    pub fn pamtester(&self, service: &str, user: &str, stdin: &str) -> Finished {
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let mut command = Command::new("pamtester");
        command.args([service, user, "authenticate"]);
        self.wrap(&mut command, true);
        finish(command, Some(stdin.as_bytes()), "pamtester")
    }

    /// The admin command with `args` and `--config <policy>` appended, under nss_wrapper.
    pub fn pam_mfa(&self, args: &[&str]) -> Cli<'_> {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.push("--config".into());
        all.push(self.policy_path().display().to_string());
        Cli {
            sandbox: self,
            args: all,
            stdin: String::new(),
            env: Vec::new(),
        }
    }

    /// Sets the environment of a run: nss_wrapper with the sandbox's accounts, pam_wrapper with
    /// its services if asked, and nothing from the test's own environment but PATH and TMPDIR,
    /// so that no PAM_MFA_* variable leaks in.
    fn wrap(&self, command: &mut Command, with_pam_wrapper: bool) {
        command.env_clear();
        for name in ["PATH", "TMPDIR"] {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command
            .env("NSS_WRAPPER_PASSWD", self.passwd_path())
            .env("NSS_WRAPPER_GROUP", self.group_path());
        if with_pam_wrapper {
            command
                .env("LD_PRELOAD", "libpam_wrapper.so libnss_wrapper.so")
                .env("PAM_WRAPPER", "1")
                .env("PAM_WRAPPER_SERVICE_DIR", self.service_dir())
                .env("PAM_WRAPPER_DEBUGLEVEL", "0");
        } else {
            command.env("LD_PRELOAD", "libnss_wrapper.so");
        }
    }

    // --- audit ----------------------------------------------------------------------------

    /// Every datagram the sink holds, parsed; the sink is empty afterwards.
    pub fn audit_lines(&self) -> Vec<AuditLine> {
        let mut lines = Vec::new();
        let mut buffer = vec![0u8; 65536];
        loop {
            match self.sink.recv(&mut buffer) {
                Ok(n) => lines.push(AuditLine::parse(&String::from_utf8_lossy(&buffer[..n]))),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return lines,
                Err(e) => panic!("reading the syslog sink: {e}"),
            }
        }
    }

    /// The one datagram that the last decision sent.
    pub fn audit_line(&self) -> AuditLine {
        let mut lines = self.audit_lines();
        assert_eq!(lines.len(), 1, "expected one audit line, got {lines:#?}");
        lines.remove(0)
    }

    // --- file defects, for store and policy checks ----------------------------------------

    pub fn chmod(&self, path: &Path, mode: u32) {
        set_mode(path, mode);
    }

    /// Gives `path` to `uid`; only root can (see [`is_root`]).
    pub fn chown(&self, path: &Path, uid: u32) {
        chown(path, Some(uid), None).expect("chown");
    }
}

/// Whether the tests run as root, as CI does: giving a file away needs it.
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective uid of the process.
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------------------------
// PAM transactions through pamdrive

/// A PAM transaction to run: `sandbox.login("alice").answer(&code).run()`.
pub struct Login<'a> {
    sandbox: &'a Sandbox,
    service: String,
    user: String,
    answers: Vec<String>,
    options: Vec<String>,
    env: Vec<(String, String)>,
    /// A program (and its arguments) that runs pamdrive, such as valgrind.
    runner: Vec<String>,
}

impl Login<'_> {
    /// The reply to the next prompt; `@null`, `@empty` and `@convfail` are special.
    pub fn answer(mut self, answer: &str) -> Self {
        self.answers.push(answer.into());
        self
    }

    pub fn service(mut self, service: &str) -> Self {
        self.service = service.into();
        self
    }

    pub fn rhost(self, rhost: &str) -> Self {
        self.option("--rhost", rhost)
    }

    pub fn repeat(self, rounds: u32) -> Self {
        self.option("--repeat", &rounds.to_string())
    }

    /// Calls pam_setcred(PAM_ESTABLISH_CRED) after each pam_authenticate.
    pub fn setcred(mut self) -> Self {
        self.options.push("--setcred".into());
        self
    }

    /// Calls pam_authenticate with PAM_SILENT.
    pub fn silent(mut self) -> Self {
        self.options.push("--silent".into());
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// The application sets a new PAM_CONV from inside each conversation call (pamdrive
    /// --swap-conv), and libpam frees the one it held.
    pub fn report_dumpable(mut self) -> Self {
        self.options.push("--report-dumpable".into());
        self
    }

    pub fn swap_conv(mut self) -> Self {
        self.options.push("--swap-conv".into());
        self
    }

    fn option(mut self, name: &str, value: &str) -> Self {
        self.options.push(name.into());
        self.options.push(value.into());
        self
    }

    /// Runs pamdrive under `program args...` (valgrind), which must exit 0 for the run to
    /// count as finished.
    pub fn run_under(mut self, program: &str, args: &[&str]) -> Self {
        self.runner = std::iter::once(program)
            .chain(args.iter().copied())
            .map(str::to_owned)
            .collect();
        self
    }

    pub fn run(self) -> Transaction {
        let mut command = match self.runner.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(pamdrive());
                command
            }
            None => Command::new(pamdrive()),
        };
        command
            .arg("--confdir")
            .arg(self.sandbox.service_dir())
            .args(&self.options)
            .arg(&self.service)
            .arg(&self.user)
            .args(&self.answers);
        self.sandbox.wrap(&mut command, false);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        let finished = finish(command, None, "pamdrive");
        Transaction::parse(finished)
    }
}

/// One message the conversation function received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// echo_off, echo_on, error or info.
    pub style: String,
    pub text: String,
}

/// What pamdrive reported: the messages and one return code per round.
pub struct Transaction {
    pub messages: Vec<Message>,
    pub rounds: Vec<Pam>,
    pub setcred: Vec<Pam>,
    /// The failure delays libpam applied after failed rounds (microseconds).
    pub delays: Vec<u64>,
    /// With `report_dumpable`: the process's PR_GET_DUMPABLE at each conversation call and
    /// after each round, in order.
    pub dumpable: Vec<i32>,
    pub output: Finished,
}

impl Transaction {
    fn parse(output: Finished) -> Self {
        assert_eq!(output.code, Some(0), "pamdrive did not finish: {output:?}");
        let mut messages = Vec::new();
        let mut rounds = Vec::new();
        let mut setcred = Vec::new();
        let mut delays = Vec::new();
        let mut dumpable = Vec::new();
        for line in output.stdout.lines() {
            if let Some(rest) = line.strip_prefix("msg ") {
                let (style, text) = rest.split_once(' ').unwrap_or((rest, ""));
                messages.push(Message {
                    style: style.into(),
                    text: text.replace("\\n", "\n").replace("\\\\", "\\"),
                });
            } else if let Some(rest) = line.strip_prefix("rc ") {
                rounds.push(parse_code(rest, &output));
            } else if let Some(rest) = line.strip_prefix("setcred ") {
                setcred.push(parse_code(rest, &output));
            } else if let Some(rest) = line.strip_prefix("dumpable ") {
                dumpable.push(rest.trim().parse().expect("dumpable flag"));
            } else if let Some(rest) = line.strip_prefix("delay ") {
                delays.push(rest.trim().parse().expect("delay in microseconds"));
            } else {
                panic!("unexpected pamdrive line {line:?} in {output:?}");
            }
        }
        Transaction {
            messages,
            rounds,
            setcred,
            delays,
            dumpable,
            output,
        }
    }

    /// The return code of pam_authenticate, for a one-round transaction.
    pub fn rc(&self) -> Pam {
        assert_eq!(self.rounds.len(), 1, "expected one round: {self:?}");
        self.rounds[0]
    }

    /// Asserts the return code, showing the whole transaction when it differs.
    pub fn expect(&self, expected: Pam) -> &Self {
        assert_eq!(self.rc(), expected, "unexpected return code: {self:?}");
        self
    }

    /// The texts of the echo-off and echo-on prompts.
    pub fn prompts(&self) -> Vec<&Message> {
        self.messages
            .iter()
            .filter(|m| m.style == "echo_off" || m.style == "echo_on")
            .collect()
    }

    /// Asserts that the conversation showed the contract's prompt once (per round), echo off.
    pub fn expect_prompted(&self) -> &Self {
        let expected = Message {
            style: "echo_off".into(),
            text: PROMPT.into(),
        };
        let prompts: Vec<Message> = self.prompts().into_iter().cloned().collect();
        assert_eq!(
            prompts,
            vec![expected; self.rounds.len()],
            "expected the verification prompt: {self:?}"
        );
        self
    }

    /// Asserts that the module ignored the request, where it is alone in the stack: libpam
    /// returns PAM_PERM_DENIED when every module of a stack ignores, and passes any other code
    /// of a lone `required` module through.
    pub fn expect_ignored(&self) -> &Self {
        assert_eq!(
            self.rc(),
            Pam::PermDenied,
            "expected the module to ignore (libpam: PAM_PERM_DENIED): {self:?}"
        );
        self
    }

    pub fn expect_not_prompted(&self) -> &Self {
        assert!(self.prompts().is_empty(), "expected no prompt: {self:?}");
        self
    }
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rounds {:?}, setcred {:?}\n--- stdout\n{}--- stderr\n{}---",
            self.rounds,
            self.setcred,
            self.output.stdout,
            relevant_stderr(&self.output.stderr)
        )
    }
}

fn parse_code(rest: &str, output: &Finished) -> Pam {
    let (number, name) = rest.split_once(' ').unwrap_or((rest, ""));
    let number: i32 = number
        .parse()
        .unwrap_or_else(|_| panic!("bad code {rest:?} in {output:?}"));
    let code = Pam::from_int(number);
    if let Some(expected_name) = code.c_name() {
        assert_eq!(name, expected_name, "pamdrive named {number} oddly");
    }
    code
}

/// pam_wrapper's stderr without the notice it prints at every pam_start.
fn relevant_stderr(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| !l.contains("no default config other"))
        .map(|l| format!("{l}\n"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The admin command

/// A run of `pam-mfa`: `sandbox.pam_mfa(&["enroll", "alice", "--no-confirm"]).run()`.
pub struct Cli<'a> {
    sandbox: &'a Sandbox,
    args: Vec<String>,
    stdin: String,
    env: Vec<(String, String)>,
}

impl Cli<'_> {
    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = text.into();
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn run(self) -> Finished {
        let command = self.command();
        finish(command, Some(self.stdin.as_bytes()), "pam-mfa")
    }

    /// Runs the command interactively: writes the stdin given so far, waits for the
    /// `otpauth://` line on stdout, and answers with `reply(uri)` followed by a newline.
    pub fn run_answering_uri(self, reply: impl FnOnce(&str) -> String) -> Finished {
        let mut command = self.command();
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn pam-mfa");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(self.stdin.as_bytes()).expect("write stdin");
        stdin.flush().expect("flush stdin");
        let stderr = drain(child.stderr.take().expect("stderr"));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        let reader = thread::spawn(move || {
            let mut all = String::new();
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent && line.contains("otpauth://") {
                    let _ = tx.send(line.clone());
                    sent = true;
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let uri = rx.recv_timeout(RUN_TIMEOUT);
        if let Ok(uri) = &uri {
            let start = uri.find("otpauth://").unwrap_or(0);
            let answer = reply(&uri[start..]);
            // The command may have exited already; its status then tells what happened.
            let _ = writeln!(stdin, "{answer}");
        }
        drop(stdin);
        let status = wait_with_timeout(&mut child, "pam-mfa");
        let finished = Finished {
            code: status.code(),
            stdout: reader.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        };
        assert!(uri.is_ok(), "pam-mfa printed no otpauth URI: {finished:?}");
        finished
    }

    /// The command as it would run, for a test that spawns it itself.
    pub fn command(&self) -> Command {
        let mut command = Command::new(cli_path());
        command.args(&self.args);
        self.sandbox.wrap(&mut command, false);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }
}

/// The `secret` parameter of an `otpauth://` URI.
pub fn uri_secret(uri: &str) -> String {
    let query = uri
        .split_once('?')
        .unwrap_or_else(|| panic!("no query in {uri:?}"))
        .1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("secret="))
        .unwrap_or_else(|| panic!("no secret in {uri:?}"))
        .trim_end_matches("%3D")
        .trim_end_matches('=')
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A finished process: exit code (None if killed by a signal), stdout and stderr.
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Debug for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}---",
            self.code,
            self.stdout,
            relevant_stderr(&self.stderr)
        )
    }
}

/// Runs `command` to the end with `stdin` (or /dev/null), failing the test if it hangs.
fn finish(mut command: Command, stdin: Option<&[u8]>, what: &str) -> Finished {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        // A command may exit without reading its input: a broken pipe is no failure here.
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let status = wait_with_timeout(&mut child, what);
    Finished {
        code: status.code(),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn wait_with_timeout(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} hung for {RUN_TIMEOUT:?} and was killed");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------------------------
// Audit lines

/// One datagram of the audit sink:
/// `<PRI>Mmm dd hh:mm:ss pam_mfa[PID]: service=S user=U rhost=R mode=M rule=NAME outcome=O
/// reason="TEXT"`.
#[derive(Debug, Clone)]
pub struct AuditLine {
    pub raw: String,
    pub facility: u8,
    pub severity: u8,
    pub tag: String,
    /// `key=value` pairs in order, quoted values unquoted.
    pub fields: Vec<(String, String)>,
}

impl AuditLine {
    pub fn parse(raw: &str) -> Self {
        let fail = |why: &str| -> ! { panic!("audit line {raw:?}: {why}") };
        let rest = raw.strip_prefix('<').unwrap_or_else(|| fail("no <PRI>"));
        let (pri, rest) = rest.split_once('>').unwrap_or_else(|| fail("no <PRI>"));
        let pri: u16 = pri.parse().unwrap_or_else(|_| fail("PRI is no number"));
        // "Mmm dd hh:mm:ss " is 16 characters.
        let timestamp = rest.get(..15).unwrap_or_else(|| fail("no timestamp"));
        let ts = timestamp.as_bytes();
        if !(ts[3] == b' ' && ts[6] == b' ' && ts[9] == b':' && ts[12] == b':') {
            fail("timestamp is not `Mmm dd hh:mm:ss`");
        }
        let rest = rest[15..]
            .strip_prefix(' ')
            .unwrap_or_else(|| fail("no space after timestamp"));
        let (tag, body) = rest.split_once(": ").unwrap_or_else(|| fail("no tag"));
        let program = tag.split('[').next().unwrap_or(tag);
        let pid = tag.strip_prefix(program).unwrap_or("");
        if !(pid.starts_with('[')
            && pid.ends_with(']')
            && pid[1..pid.len() - 1].chars().all(|c| c.is_ascii_digit()))
        {
            fail("tag is not `name[PID]`");
        }
        AuditLine {
            raw: raw.into(),
            facility: (pri / 8) as u8,
            severity: (pri % 8) as u8,
            tag: program.into(),
            fields: parse_fields(body.trim_end_matches(['\n', '\0'])),
        }
    }

    /// The value of `key`; panics if absent or given twice.
    pub fn get(&self, key: &str) -> &str {
        let values: Vec<&str> = self
            .fields
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(values.len(), 1, "field {key} in {self:#?}");
        values[0]
    }

    /// Asserts user, mode, rule, outcome and the PRI that the outcome implies.
    pub fn expect(&self, user: &str, mode: &str, rule: &str, outcome: &str) -> &Self {
        assert_eq!(self.tag, "pam_mfa", "{self:#?}");
        assert_eq!(self.facility, FACILITY_AUTH, "facility: {self:#?}");
        assert_eq!(self.get("user"), user, "{self:#?}");
        assert_eq!(self.get("mode"), mode, "{self:#?}");
        assert_eq!(self.get("rule"), rule, "{self:#?}");
        assert_eq!(self.get("outcome"), outcome, "{self:#?}");
        let severity = match outcome {
            "success" | "ignore" => SEVERITY_INFO,
            "deny" => SEVERITY_WARNING,
            "error" => SEVERITY_ERR,
            other => panic!("no such outcome {other}"),
        };
        assert_eq!(self.severity, severity, "severity: {self:#?}");
        self
    }

    /// Asserts that each key appears at most once, so nothing was smuggled into the line.
    pub fn expect_unique_keys(&self) -> &Self {
        for (i, (key, _)) in self.fields.iter().enumerate() {
            assert!(
                !self.fields[i + 1..].iter().any(|(k, _)| k == key),
                "field {key} twice in {self:#?}"
            );
        }
        self
    }
}

/// Splits `a=b c="d e" f="g\"h"` into pairs; a word without `=` is kept with an empty key.
fn parse_fields(body: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return fields;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ' ' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            fields.push((String::new(), key));
            continue;
        }
        chars.next();
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        fields.push((key, value));
    }
}

// ---------------------------------------------------------------------------------------------
// Codes

/// A TOTP record of the contract, and the codes oathtool computes for it.
#[derive(Clone, Debug)]
pub struct Totp {
    pub secret: String,
    algorithm: Option<String>,
    digits: Option<u32>,
    period: Option<u32>,
}

impl Totp {
    /// SHA1, 6 digits, 30 seconds: the defaults, left out of the record.
    pub fn new(secret: &str) -> Self {
        Totp {
            secret: secret.into(),
            algorithm: None,
            digits: None,
            period: None,
        }
    }

    pub fn algorithm(mut self, algorithm: &str) -> Self {
        self.algorithm = Some(algorithm.into());
        self
    }

    pub fn digits(mut self, digits: u32) -> Self {
        self.digits = Some(digits);
        self
    }

    pub fn period(mut self, seconds: u32) -> Self {
        self.period = Some(seconds);
        self
    }

    /// The text of `<user>.toml`.
    pub fn record(&self) -> String {
        let mut text = format!(
            "# written by the test harness\nkind = \"totp\"\nsecret = \"{}\"\n",
            self.secret
        );
        if let Some(algorithm) = &self.algorithm {
            text.push_str(&format!("algorithm = \"{algorithm}\"\n"));
        }
        if let Some(digits) = self.digits {
            text.push_str(&format!("digits = {digits}\n"));
        }
        if let Some(period) = self.period {
            text.push_str(&format!("period = {period}\n"));
        }
        text
    }

    /// The code of the current time step.
    pub fn code(&self) -> String {
        oathtool(&self.secret, &self.args(None))
    }

    /// The code `steps` time steps from now (negative: in the past).
    pub fn code_in_steps(&self, steps: i64) -> String {
        let seconds = steps * i64::from(self.period.unwrap_or(30));
        let when = if seconds < 0 {
            format!("now - {} sec", -seconds)
        } else {
            format!("now + {seconds} sec")
        };
        oathtool(&self.secret, &self.args(Some(&when)))
    }

    /// A code of the right length that matches no step within two of now.
    pub fn wrong_code(&self) -> String {
        let near: Vec<String> = (-2..=2).map(|s| self.code_in_steps(s)).collect();
        let digits = self.digits.unwrap_or(6) as usize;
        (0u64..)
            .map(|n| format!("{:0digits$}", n * 1_111_111 % 10u64.pow(digits as u32)))
            .find(|candidate| !near.contains(candidate))
            .expect("some code is wrong")
    }

    fn args(&self, when: Option<&str>) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(algorithm) = &self.algorithm {
            args.push(format!("--totp={}", algorithm.to_lowercase()));
        }
        if let Some(digits) = self.digits {
            args.extend(["-d".into(), digits.to_string()]);
        }
        if let Some(period) = self.period {
            args.extend(["-s".into(), period.to_string()]);
        }
        if let Some(when) = when {
            args.extend(["-N".into(), when.into()]);
        }
        args
    }
}

/// Waits, at most a second, for a fresh time step when the current one (of `period` seconds) is
/// about to end, so that a code computed now is still in the same step when the module checks.
pub fn avoid_step_boundary(period: u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    let into_step = Duration::from_millis((now.as_millis() % (u128::from(period) * 1000)) as u64);
    let left = Duration::from_secs(period) - into_step;
    if left < Duration::from_millis(900) {
        thread::sleep(left + Duration::from_millis(20));
    }
}

/// `oathtool --totp -b [ARGS...] SECRET`, trimmed (`--totp=ALGO` in `args` replaces `--totp`).
pub fn oathtool<S: AsRef<str>>(secret_b32: &str, args: &[S]) -> String {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let mut command = Command::new("oathtool");
    if !args.iter().any(|a| a.starts_with("--totp")) {
        command.arg("--totp");
    }
    command.arg("-b").args(&args).arg(secret_b32);
    let output = command.output().expect("run oathtool");
    assert!(
        output.status.success(),
        "oathtool {args:?} failed: {output:?}"
    );
    String::from_utf8(output.stdout)
        .expect("oathtool prints ASCII")
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Built artefacts

/// The module under test: $PAM_MFA_MODULE, else the release build.
pub fn module_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os("PAM_MFA_MODULE") {
            return PathBuf::from(path);
        }
        let path = target_dir().join("release/libpam_mfa.so");
        assert_built(&path, "cargo build --release --locked");
        path
    })
    .clone()
}

/// The debug build of the module, which has the PAM_MFA_TEST_PANIC hook.
/// Checked when a test uses it, not when a service names it.
pub fn debug_module_path() -> PathBuf {
    target_dir().join("debug/libpam_mfa.so")
}

pub fn require_debug_module() -> PathBuf {
    let path = debug_module_path();
    assert_built(&path, "cargo build --locked");
    path
}

/// Fails the test unless `module` exists and is newer than every source file it was built from
/// (as listed by cargo's dep-info file beside it): `cargo test` builds the cdylib under deps/
/// but does not copy it to where the tests look, so a module left from an earlier `cargo build`
/// would otherwise be tested in place of the code under test.
fn assert_built(module: &Path, build_command: &str) {
    let built = fs::metadata(module)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "module {} not found: run `{build_command}` first",
                module.display()
            )
        });
    let dep_info = module.with_extension("d");
    let Ok(text) = fs::read_to_string(&dep_info) else {
        return;
    };
    for source in dep_info_sources(&text) {
        let Ok(changed) = fs::metadata(&source).and_then(|m| m.modified()) else {
            continue;
        };
        assert!(
            changed <= built,
            "module {} is older than {}: run `{build_command}` first",
            module.display(),
            source.display()
        );
    }
}

/// The prerequisites of a make-style dep-info file (`target: a.rs b\ c.rs`).
fn dep_info_sources(text: &str) -> Vec<PathBuf> {
    let mut sources = Vec::new();
    for line in text.lines() {
        let Some((_, prerequisites)) = line.split_once(": ") else {
            continue;
        };
        let mut current = String::new();
        let mut chars = prerequisites.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.extend(chars.next()),
                ' ' => {
                    if !current.is_empty() {
                        sources.push(PathBuf::from(std::mem::take(&mut current)));
                    }
                }
                c => current.push(c),
            }
        }
        if !current.is_empty() {
            sources.push(PathBuf::from(current));
        }
    }
    sources
}

pub fn cli_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pam-mfa"))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The built helper `pam-mfa-check`, copied setuid root into a directory of root's (mode
/// 0755, so that any uid can run it; the module checks the helper's path as the policy's);
/// None when the tests do not run as root. Each caller gets its own copy.
pub fn installed_helper() -> Option<(TempDir, PathBuf)> {
    if !is_root() {
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("pam-mfa-helper.")
        .tempdir()
        .expect("helper dir");
    set_mode(dir.path(), 0o755);
    let helper = dir.path().join("pam-mfa-check");
    // Copied by another process: a file this process held open for writing could leak,
    // through a fork of another test thread, into a child that has not yet exec'd, and
    // running the copy would then fail with ETXTBSY ("Text file busy").
    let copied = Command::new("install")
        .args(["-m", "4755", env!("CARGO_BIN_EXE_pam-mfa-check")])
        .arg(&helper)
        .status()
        .expect("run install");
    assert!(copied.success(), "install the helper: {copied}");
    Some((dir, helper))
}

/// pamdrive (tests/tools/pamdrive.c), the libpam driver.
pub fn pamdrive() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| c_tool("pamdrive.c", &[], &["-lpam"]))
        .clone()
}

/// tests/tools/casefold.c as a shared object: preloaded before nss_wrapper, it makes NSS find
/// accounts whatever the case of the name, as SSSD with `case_sensitive = false` does.
pub fn casefold() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| c_tool("casefold.c", &["-shared", "-fPIC"], &["-ldl"]))
        .clone()
}

/// tests/tools/noenum.c as a shared object: preloaded before nss_wrapper, getpwent lists
/// no account (SSSD's enumerate = false); lookups by name still work.
pub fn noenum() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| c_tool("noenum.c", &["-shared", "-fPIC"], &[]))
        .clone()
}

/// Compiles tests/tools/`source` with `flags` and `libs`, once per test binary. The output's
/// name carries a hash of the source and the flags, and it is compiled under a unique name and
/// renamed into place, so test binaries running in parallel never see a half-written file.
pub fn c_tool(source: &str, flags: &[&str], libs: &[&str]) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tools")
        .join(source);
    let text = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut hasher = DefaultHasher::new();
    (text, flags, libs).hash(&mut hasher);
    let dir = target_dir().join("pamdrive");
    fs::create_dir_all(&dir).expect("create target/pamdrive");
    let stem = source.trim_end_matches(".c");
    let shared = if flags.contains(&"-shared") {
        ".so"
    } else {
        ""
    };
    let output = dir.join(format!("{stem}-{:016x}{shared}", hasher.finish()));
    if output.is_file() {
        return output;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let partial = dir.join(format!(".{stem}.{}.{nanos}{shared}", std::process::id()));
    let result = Command::new("cc")
        .args(["-Wall", "-Wextra", "-O2"])
        .args(flags)
        .arg("-o")
        .arg(&partial)
        .arg(&path)
        .args(libs)
        .output()
        .expect("run cc");
    assert!(
        result.status.success(),
        "compiling {source} failed (are gcc and libpam0g-dev installed?): {}",
        String::from_utf8_lossy(&result.stderr)
    );
    fs::rename(&partial, &output).expect("rename the compiled tool into place");
    output
}

// ---------------------------------------------------------------------------------------------
// Small file helpers

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, path.display()));
}

/// Writes `text` to `path` and sets `mode` (a fresh file, or an existing one rewritten).
pub fn write_file(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    set_mode(path, mode);
}

// ---------------------------------------------------------------------------------------------
// Bastion workflows: answers computed from what the conversation showed, and logins run from a
// shell of the test's own (one audit session for several logins)

impl Login<'_> {
    /// Answers each prompt left after the `answer`s with the first line `cmd` prints (pamdrive
    /// `--answer-cmd`): `cmd` runs through /bin/sh with `$LAST_INFO`, the text of the last
    /// PAM_TEXT_INFO message of the round, and `$PROMPT`.
    pub fn answer_cmd(self, cmd: &str) -> Self {
        self.option("--answer-cmd", cmd)
    }

    /// pamdrive's command line for this login, program first (behind `env NAME=VALUE...` when
    /// the login sets variables), for a test that runs it from a shell of its own
    /// ([`Sandbox::shell`]). The sandbox's accounts come from that shell's environment.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = Vec::new();
        if !self.env.is_empty() {
            argv.push("env".to_string());
            argv.extend(self.env.iter().map(|(k, v)| format!("{k}={v}")));
        }
        argv.push(pamdrive().display().to_string());
        argv.push("--confdir".into());
        argv.push(self.sandbox.service_dir().display().to_string());
        argv.extend(self.options.iter().cloned());
        argv.push(self.service.clone());
        argv.push(self.user.clone());
        argv.extend(self.answers.iter().cloned());
        argv
    }
}

impl Sandbox {
    /// `bash -c SCRIPT` in the environment of a pamdrive login (nss_wrapper with the sandbox's
    /// accounts, nothing else from the test's environment but PATH and TMPDIR).
    pub fn shell(&self, script: &str) -> Finished {
        let mut command = Command::new("bash");
        command.arg("-c").arg(script);
        self.wrap(&mut command, false);
        finish(command, None, "bash")
    }
}

impl Transaction {
    /// Parses pamdrive's report from output a test collected itself (one of several runs of
    /// [`Login::argv`] from one shell).
    pub fn from_output(output: Finished) -> Self {
        Self::parse(output)
    }

    /// The texts of the PAM_TEXT_INFO messages, in order (newlines restored).
    pub fn infos(&self) -> Vec<&str> {
        self.messages
            .iter()
            .filter(|m| m.style == "info")
            .map(|m| m.text.as_str())
            .collect()
    }
}

/// `word` quoted for a POSIX shell.
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// alice (1000, in wheel) must give a code, bob (1001) may; `max_failures` wrong codes
/// lock an account, and libpam is asked for no delay.
pub fn office_locking_after(max_failures: u32) -> Sandbox {
    sandbox()
        .user("alice", 1000)
        .user("bob", 1001)
        .group("wheel", 10, &["alice"])
        .policy(&format!(
            r#"
store_dir = "{{store}}"
default_mode = "optional"
max_failures = {max_failures}
fail_delay_ms = 0

[[rule]]
name = "privileged"
groups = ["wheel"]
mode = "required"
"#
        ))
}

/// The recovery codes (`abcde-fgh23`) in a command's output.
pub fn recovery_codes(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|line| {
            line.len() == 11
                && line.as_bytes()[5] == b'-'
                && line
                    .bytes()
                    .enumerate()
                    .all(|(i, b)| i == 5 || matches!(b, b'a'..=b'z' | b'2'..=b'7'))
        })
        .map(String::from)
        .collect()
}

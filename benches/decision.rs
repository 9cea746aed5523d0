//! The decision and verification path alone, without I/O: what a login costs in CPU once the
//! policy, the account (NSS) and the record (store) are in memory. `scripts/bench.sh` runs it
//! (`cargo bench --bench decision`) and BENCHMARKS.md reports it; the target for
//! `decision_and_verify` is under 5 µs.
//!
//! The module also parses the policy file and the account's record on every login (it keeps
//! nothing between logins), so those two are measured here as well, on their own.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};

use pam_mfa::accounts::{Account, NamedId};
use pam_mfa::clock::Date;
use pam_mfa::otp::hotp::format_code;
use pam_mfa::otp::totp::totp;
use pam_mfa::otp::verify::{verify_totp, Code, TotpParams};
use pam_mfa::otp::{Algorithm, Digits};
use pam_mfa::policy::{evaluate, parse, Context, Policy};
use pam_mfa::store::Record;
use pam_mfa::username::UserName;

/// The policy of the login benchmark (benches/setup_accounts.py writes the same): a
/// bastion's, with a privileged-groups rule, a users+from rule and an exemption.
const POLICY: &str = r#"# pam-mfa benchmark policy: a bastion's, as in config/policy.toml.
store_dir = "/var/lib/pam-mfa"
default_mode = "optional"
fail_delay_ms = 0
max_failures = 5
lockout_seconds = 300

[[rule]]
name = "privileged"
groups = ["sudo", "wheel", "admin"]
mode = "required"

[[rule]]
name = "contractors"
users = ["c-ops1", "c-ops2", "c-ops3"]
from = ["192.0.2.0/24"]
mode = "required"

[[rule]]
name = "backup-service"
users = ["backup"]
mode = "exempt"
"#;

/// A record as `pam-mfa enroll` writes it (the RFC 6238 SHA-1 test key).
const RECORD: &str = "# pam-mfa secret record: keep it private, it is a password.
kind = \"totp\"
secret = \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"
algorithm = \"SHA1\"
digits = 6
period = 30
window = 1
";

const KEY: &[u8] = b"12345678901234567890";
const NOW: u64 = 1_700_000_000;
const PARAMS: TotpParams = TotpParams {
    algorithm: Algorithm::Sha1,
    digits: Digits::SIX,
    period: 30,
    window: 1,
};

fn policy() -> Policy {
    parse(POLICY, Path::new("/etc/pam-mfa/policy.toml")).expect("the benchmark policy parses")
}

fn account(name: &str, uid: u32, groups: &[&str]) -> Account {
    Account {
        name: UserName::parse(name).expect("a valid name"),
        uid,
        gids: (0..groups.len()).map(|i| 20_000 + i as u32).collect(),
        groups: groups
            .iter()
            .enumerate()
            .map(|(i, g)| NamedId {
                name: g.to_string(),
                id: 20_000 + i as u32,
            })
            .collect(),
        same_uid: Vec::new(),
    }
}

fn context() -> Context<'static> {
    Context {
        service: "sshd",
        rhost: "198.51.100.7",
        today: Date::from_unix(NOW),
    }
}

fn valid_code() -> Code {
    let value = totp(KEY, NOW, 30, Algorithm::Sha1, Digits::SIX);
    Code::parse(format_code(value, Digits::SIX).as_bytes(), Digits::SIX).expect("six digits")
}

fn wrong_code() -> Code {
    let value = (totp(KEY, NOW, 30, Algorithm::Sha1, Digits::SIX) + 1) % 1_000_000;
    Code::parse(format_code(value, Digits::SIX).as_bytes(), Digits::SIX).expect("six digits")
}

fn decision(c: &mut Criterion) {
    let policy = policy();
    let context = context();
    let root = account("root", 0, &["root"]);
    let admin = account("alice", 1001, &["users", "sudo"]);
    let user = account("bob", 1002, &["users"]);
    let mut group = c.benchmark_group("evaluate");
    group.bench_function("root", |b| {
        b.iter(|| evaluate(black_box(&policy), black_box(&root), black_box(&context)))
    });
    group.bench_function("privileged_group", |b| {
        b.iter(|| evaluate(black_box(&policy), black_box(&admin), black_box(&context)))
    });
    group.bench_function("default_mode", |b| {
        b.iter(|| evaluate(black_box(&policy), black_box(&user), black_box(&context)))
    });
    group.finish();
}

fn verification(c: &mut Criterion) {
    let valid = valid_code();
    let wrong = wrong_code();
    let mut group = c.benchmark_group("verify_totp_window_1");
    group.bench_function("valid", |b| {
        b.iter(|| verify_totp(black_box(KEY), &PARAMS, black_box(&valid), NOW, Some(0)))
    });
    group.bench_function("wrong", |b| {
        b.iter(|| verify_totp(black_box(KEY), &PARAMS, black_box(&wrong), NOW, Some(0)))
    });
    group.finish();
}

/// The target: the decision for an account in a privileged group, then the code check.
fn decision_and_verify(c: &mut Criterion) {
    let policy = policy();
    let context = context();
    let admin = account("alice", 1001, &["users", "sudo"]);
    let valid = valid_code();
    c.bench_function("decision_and_verify", |b| {
        b.iter(|| {
            let decision = evaluate(black_box(&policy), black_box(&admin), black_box(&context));
            let params = TotpParams {
                window: decision.limits.window.steps(PARAMS.window),
                ..PARAMS
            };
            verify_totp(black_box(KEY), &params, black_box(&valid), NOW, Some(0))
        })
    });
}

/// What the module parses on every login besides: the policy file and the record.
fn parsing(c: &mut Criterion) {
    let path = Path::new("/etc/pam-mfa/policy.toml");
    let record_path = Path::new("/var/lib/pam-mfa/alice.toml");
    let mut group = c.benchmark_group("parse");
    group.bench_function("policy", |b| b.iter(|| parse(black_box(POLICY), path)));
    group.bench_function("record", |b| {
        b.iter(|| Record::parse(black_box(RECORD.as_bytes()), record_path))
    });
    group.finish();
}

/// All the CPU work of one login between the NSS answer and the state write, as the module
/// does it today: parse the policy, decide, parse the record, check the code.
fn login_cpu(c: &mut Criterion) {
    let path = Path::new("/etc/pam-mfa/policy.toml");
    let record_path = Path::new("/var/lib/pam-mfa/alice.toml");
    let context = context();
    let admin = account("alice", 1001, &["users", "sudo"]);
    let valid = valid_code();
    c.bench_function("login_cpu_parse_decide_verify", |b| {
        b.iter(|| {
            let policy = parse(black_box(POLICY), path).expect("parses");
            let decision = evaluate(&policy, black_box(&admin), &context);
            let record = Record::parse(black_box(RECORD.as_bytes()), record_path).expect("parses");
            let params = TotpParams {
                window: decision.limits.window.steps(record.window),
                ..record.totp_params()
            };
            verify_totp(
                record.secret.as_bytes(),
                &params,
                black_box(&valid),
                NOW,
                Some(0),
            )
        })
    });
}

criterion_group!(
    benches,
    decision,
    verification,
    decision_and_verify,
    parsing,
    login_cpu
);
criterion_main!(benches);

//! The private PostgreSQL the fleet tests use: the one tests/pg/start.sh started when its
//! environment is set (PAM_MFA_PG_DIR), else one this test binary starts for itself and
//! that stops once the binary has exited. Each test gets a database of its own in it,
//! initialized by `store init` as the admin role. A cluster that cannot start fails the
//! test: nothing here skips.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use pam_mfa::store::postgres::{PgStore, Settings};
use tempfile::TempDir;

/// A running cluster, and what tests/pg/start.sh wrote about it.
pub struct Cluster {
    env: HashMap<String, String>,
}

/// The role a connection logs in as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Module,
    Admin,
}

/// One test's database, with a sealing key and the settings for each role.
pub struct Db {
    pub name: String,
    pub dir: TempDir,
    pub port: u16,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The shared cluster of this test binary.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| match std::env::var_os("PAM_MFA_PG_DIR") {
        Some(dir) => Cluster::read(Path::new(&dir)),
        None => Cluster::start(),
    })
}

/// A cluster of its own, for a test that stops it; it goes when dropped.
pub fn own_cluster() -> OwnCluster {
    let cluster = Cluster::start();
    OwnCluster { cluster }
}

pub struct OwnCluster {
    pub cluster: Cluster,
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("--stop")
            .arg(self.cluster.var("PAM_MFA_PG_DIR"))
            .status();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pg/start.sh")
}

impl Cluster {
    fn start() -> Cluster {
        // Not in a TempDir: the cluster outlives this struct and stops by itself when the
        // test binary exits (--owner-pid), removing the directory.
        let parent = std::env::temp_dir().join(format!(
            "pam-mfa-pg-{}-{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&parent);
        let output = Command::new(script())
            .arg(&parent)
            .arg("--owner-pid")
            .arg(std::process::id().to_string())
            .output()
            .expect("run tests/pg/start.sh");
        assert!(
            output.status.success(),
            "a private PostgreSQL did not start (scripts/deps.sh installs it):\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Cluster::read(&parent)
    }

    fn read(dir: &Path) -> Cluster {
        let text = fs::read_to_string(dir.join("env"))
            .unwrap_or_else(|e| panic!("{}/env: {e}", dir.display()));
        let env = text
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Cluster { env }
    }

    pub fn var(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("{name} not in the cluster's env"))
    }

    pub fn port(&self) -> u16 {
        self.var("PAM_MFA_PG_PORT").parse().unwrap()
    }

    /// `program` (psql, pg_dump) as the cluster's owner, with `options`, connected to
    /// `database` as the superuser over the cluster's socket.
    fn superuser(&self, program: &str, options: &[&str], database: &str) -> Command {
        let mut command = as_owner(&format!("{}/{program}", self.var("PAM_MFA_PG_BIN")));
        command
            .args(options)
            .arg("-h")
            .arg(self.var("PAM_MFA_PG_SOCKET"))
            .args([
                "-p",
                self.var("PAM_MFA_PG_PORT"),
                "-U",
                "postgres",
                "-d",
                database,
            ]);
        command
    }

    /// Runs SQL as the superuser over the cluster's socket; its output, unaligned.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let mut command = self.superuser("psql", PSQL_OPTIONS, database);
        command.args(["-c", sql]);
        let output = command.output().expect("run psql");
        assert!(
            output.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// An interactive psql as the superuser, its input and output piped (unaligned, tuples
    /// only): for a transaction that a test holds open while something else runs.
    pub fn session(&self, database: &str) -> std::process::Child {
        self.superuser("psql", PSQL_OPTIONS, database)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run psql")
    }

    /// pg_dump of a database as the superuser: everything in it, as text.
    pub fn dump(&self, database: &str) -> String {
        let mut command = self.superuser("pg_dump", &[], database);
        let output = command.output().expect("run pg_dump");
        assert!(
            output.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Stops the server (the test's own cluster only).
    pub fn stop(&self) {
        let status = as_owner(&format!("{}/pg_ctl", self.var("PAM_MFA_PG_BIN")))
            .arg("-D")
            .arg(format!("{}/data", self.var("PAM_MFA_PG_DIR")))
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .expect("run pg_ctl");
        assert!(
            status.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }

    /// A fresh database owned by the admin role, with the store's schema made by
    /// `PgStore::init` as the admin (the grants for the module's role with it).
    pub fn database(&self) -> Db {
        let db = self.empty_database();
        PgStore::open(&db.settings(self, Role::Admin))
            .and_then(|store| store.init("pam_mfa_module"))
            .unwrap_or_else(|e| panic!("store init: {e}"));
        db
    }

    /// A fresh database owned by the admin role, without the store's schema.
    pub fn empty_database(&self) -> Db {
        let name = format!(
            "store_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::SeqCst)
        );
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {name} OWNER pam_mfa_admin"),
        );
        self.psql(
            "postgres",
            &format!(
                "REVOKE ALL ON DATABASE {name} FROM PUBLIC; \
                 GRANT CONNECT ON DATABASE {name} TO pam_mfa_admin, pam_mfa_module, pam_mfa_password"
            ),
        );
        let dir = tempfile::Builder::new()
            .prefix("pam-mfa-db")
            .tempdir()
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let mut key = [0u8; 32];
        getrandom(&mut key);
        write_private(&dir.path().join("store.key"), &key);
        write_private(&dir.path().join("password"), b"test-password\n");
        // Copies the client keys owned by this process, mode 0600, as the module checks.
        for name in ["module", "admin", "other"] {
            let key =
                fs::read(self.var(&format!("PAM_MFA_PG_{}_KEY", name.to_uppercase()))).unwrap();
            write_private(&dir.path().join(format!("{name}.key")), &key);
        }
        Db {
            name,
            dir,
            port: self.port(),
        }
    }
}

impl Db {
    /// The `[store]` settings of a host logging in as `role`, by certificate.
    pub fn settings(&self, cluster: &Cluster, role: Role) -> Settings {
        let (user, cert, key) = match role {
            Role::Module => ("pam_mfa_module", "PAM_MFA_PG_MODULE_CERT", "module.key"),
            Role::Admin => ("pam_mfa_admin", "PAM_MFA_PG_ADMIN_CERT", "admin.key"),
        };
        Settings {
            connection: format!(
                "host=localhost hostaddr=127.0.0.1 port={} dbname={} user={user}",
                self.port, self.name
            ),
            ca_file: PathBuf::from(cluster.var("PAM_MFA_PG_CA")),
            cert_file: Some(PathBuf::from(cluster.var(cert))),
            key_file: Some(self.dir.path().join(key)),
            password_file: None,
            secret_key_file: self.key_file(),
            timeout: std::time::Duration::from_secs(5),
        }
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("store.key")
    }

    /// The `[store]` table of a policy for `role`, as TOML.
    pub fn store_table(&self, cluster: &Cluster, role: Role) -> String {
        let s = self.settings(cluster, role);
        format!(
            "[store]\nbackend = \"postgresql\"\nconnection = \"{}\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\nsecret_key_file = \"{}\"\ntimeout_seconds = 3\n",
            s.connection,
            s.ca_file.display(),
            s.cert_file.unwrap().display(),
            s.key_file.unwrap().display(),
            s.secret_key_file.display()
        )
    }
}

/// psql without ~/.psqlrc, quiet, unaligned, tuples only, stopping at the first error.
const PSQL_OPTIONS: &[&str] = &["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"];

fn as_owner(program: &str) -> Command {
    if nix_is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", program]);
        command
    } else {
        Command::new(program)
    }
}

fn nix_is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn getrandom(buf: &mut [u8]) {
    let mut file = fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut file, buf).unwrap();
}

pub fn write_private(path: &Path, contents: &[u8]) {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    file.write_all(contents).unwrap();
}

use std::os::unix::fs::OpenOptionsExt;

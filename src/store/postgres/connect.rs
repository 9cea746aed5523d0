//! One exchange with the database: resolve, connect, TLS, log in, run the statements,
//! close, all under one deadline, on a current-thread runtime that the call owns and
//! drops before it returns. No pool, no thread, no socket outlives the call.

#![forbid(unsafe_code)]

use std::future::Future;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;
use zeroize::Zeroizing;

use super::files::read_private;
use crate::policy::store::Postgresql;
use crate::store::StoreError;

/// Where the database is and how to reach it, from the policy's `[store]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// libpq-style `key=value` pairs: host, hostaddr, port, dbname, user.
    pub connection: String,
    /// The CA that signed the server's certificate; the server's name is verified.
    pub ca_file: PathBuf,
    /// A client certificate and its key, for `cert` login.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// A file holding the role's password (first line), for `scram-sha-256` login.
    pub password_file: Option<PathBuf>,
    /// The 32-byte key that seals the secrets.
    pub secret_key_file: PathBuf,
    /// The deadline over one whole exchange.
    pub timeout: Duration,
}

impl Settings {
    /// The settings of a policy's `[store] backend = "postgresql"`.
    pub fn from_policy(store: &Postgresql) -> Settings {
        Settings {
            connection: store.connection.clone(),
            ca_file: store.ca_file.path.clone(),
            cert_file: store.cert_file.as_ref().map(|f| f.path.clone()),
            key_file: store.key_file.as_ref().map(|f| f.path.clone()),
            password_file: store.password_file.as_ref().map(|f| f.path.clone()),
            secret_key_file: store.secret_key_file.path.clone(),
            timeout: Duration::from_secs(store.timeout_seconds),
        }
    }
}

/// Everything a connection needs, read and checked once per operation.
pub(super) struct Target {
    config: Config,
    /// The name the server's certificate must carry.
    server_name: String,
    /// The address or addresses to connect to, resolved before the runtime starts.
    host: String,
    hostaddr: Option<IpAddr>,
    port: u16,
    tls: ClientConfig,
    timeout: Duration,
}

impl Target {
    pub(super) fn new(settings: &Settings) -> Result<Target, StoreError> {
        let bad = |message: String| StoreError::Database {
            what: "connection",
            message,
        };
        let mut config = Config::from_str(&settings.connection)
            .map_err(|e| bad(format!("`connection` does not parse: {e}")))?;
        if config.get_password().is_some() {
            return Err(bad(
                "`connection` must not hold a password: use password_file".to_owned(),
            ));
        }
        let host = match config.get_hosts() {
            [Host::Tcp(name)] => name.clone(),
            [] => return Err(bad("`connection` names no host".to_owned())),
            [Host::Tcp(_), ..] => {
                return Err(bad(
                    "`connection` names more than one host: give the primary's".to_owned(),
                ))
            }
            #[allow(unreachable_patterns)]
            _ => {
                return Err(bad(
                    "`connection` must name a TCP host: TLS is required".to_owned()
                ))
            }
        };
        let hostaddr = match config.get_hostaddrs() {
            [] => None,
            [one] => Some(*one),
            _ => return Err(bad("`connection` names more than one hostaddr".to_owned())),
        };
        let port = match config.get_ports() {
            [] => 5432,
            [one] => *one,
            _ => return Err(bad("`connection` names more than one port".to_owned())),
        };
        if config.get_user().is_none() {
            return Err(bad("`connection` names no user".to_owned()));
        }
        // TLS always, whatever `sslmode` said: verified by the CA and the host's name.
        config.ssl_mode(SslMode::Require);
        if let Some(path) = &settings.password_file {
            let password = read_password(path)?;
            config.password(password.as_slice());
        }
        Ok(Target {
            config,
            server_name: host.clone(),
            host,
            hostaddr,
            port,
            tls: tls_config(settings)?,
            timeout: settings.timeout,
        })
    }

    /// Runs `work` on a fresh connection under the deadline, then closes it. An error,
    /// a refusal and the deadline all end in `Err`: the caller fails closed.
    pub(super) fn run<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let started = Instant::now();
        let addresses = self.addresses()?;
        let left = self
            .timeout
            .checked_sub(started.elapsed())
            .ok_or(StoreError::Timeout {
                seconds: self.timeout.as_secs(),
            })?;
        // Current-thread: no worker thread, and nothing spawned with spawn_blocking (the
        // address is resolved already), so no thread exists past block_on. Dropping the
        // runtime drops the connection task and its socket, on every path.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| StoreError::Database {
                what: "runtime",
                message: e.to_string(),
            })?;
        let exchange = async {
            let client = self.connect(&addresses).await?;
            work(client).await
        };
        let result = runtime.block_on(async { tokio::time::timeout(left, exchange).await });
        drop(runtime);
        match result {
            Ok(outcome) => outcome,
            Err(_) => Err(StoreError::Timeout {
                seconds: self.timeout.as_secs(),
            }),
        }
    }

    /// The host's addresses: `hostaddr` or a literal address as given, else the name
    /// resolved here, in the calling thread (getaddrinfo, bounded by the resolver's own
    /// timeouts in resolv.conf), before any runtime exists to leave a thread behind.
    fn addresses(&self) -> Result<Vec<SocketAddr>, StoreError> {
        if let Some(address) = self.hostaddr {
            return Ok(vec![SocketAddr::new(address, self.port)]);
        }
        if let Ok(address) = self.host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(address, self.port)]);
        }
        let found: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| StoreError::Database {
                what: "resolve",
                message: format!("{}: {e}", self.host),
            })?
            .collect();
        if found.is_empty() {
            return Err(StoreError::Database {
                what: "resolve",
                message: format!("{}: no address", self.host),
            });
        }
        Ok(found)
    }

    async fn connect(&self, addresses: &[SocketAddr]) -> Result<Client, StoreError> {
        let mut last = None;
        let mut stream = None;
        for address in addresses {
            match tokio::net::TcpStream::connect(address).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(format!("{address}: {e}")),
            }
        }
        let stream = stream.ok_or_else(|| StoreError::Database {
            what: "connect",
            message: last.unwrap_or_default(),
        })?;
        let _ = stream.set_nodelay(true);
        let mut maker = MakeRustlsConnect::new(self.tls.clone());
        let tls = <MakeRustlsConnect as MakeTlsConnect<tokio::net::TcpStream>>::make_tls_connect(
            &mut maker,
            &self.server_name,
        )
        .map_err(|e| StoreError::Database {
            what: "tls",
            message: format!("server name {:?}: {e}", self.server_name),
        })?;
        let (client, connection) =
            self.config
                .connect_raw(stream, tls)
                .await
                .map_err(|e| StoreError::Database {
                    what: "connect",
                    message: describe(&e),
                })?;
        // The connection's task ends when the client is dropped (or the runtime is).
        tokio::spawn(connection);
        Ok(client)
    }
}

/// A database error in words an admin can act on (the server's message and code when
/// it sent one), never a parameter: statements carry codes and secrets only as parameters.
pub(super) fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn tls_config(settings: &Settings) -> Result<ClientConfig, StoreError> {
    let bad = |path: &Path, message: String| StoreError::Database {
        what: "tls",
        message: format!("{}: {message}", path.display()),
    };
    let ca = std::fs::read(&settings.ca_file).map_err(|e| bad(&settings.ca_file, e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        let cert = cert.map_err(|e| bad(&settings.ca_file, e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| bad(&settings.ca_file, e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad(&settings.ca_file, "holds no certificate".to_owned()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&settings.ca_file, e.to_string()))?
        .with_root_certificates(roots);
    match (&settings.cert_file, &settings.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let pem = std::fs::read(cert_file).map_err(|e| bad(cert_file, e.to_string()))?;
            let chain = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(cert_file, e.to_string()))?;
            let key = read_private(key_file, "key_file")?;
            let key =
                PrivateKeyDer::from_pem_slice(&key).map_err(|e| bad(key_file, e.to_string()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad(cert_file, e.to_string()))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(path), None) | (None, Some(path)) => {
            Err(bad(path, "cert_file and key_file go together".to_owned()))
        }
    }
}

fn read_password(path: &Path) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let contents = read_private(path, "password_file")?;
    let line = contents.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(StoreError::Database {
            what: "password_file",
            message: format!("{}: empty", path.display()),
        });
    }
    Ok(Zeroizing::new(line.to_vec()))
}

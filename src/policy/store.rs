//! The policy's `[store]` table: which backend holds the accounts' secrets and state, and
//! how to reach a database. Read with serde like the rest of the policy; the rules that
//! tie keys together are checked here, each error at the line of the key it is about.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use serde::de::{self, Deserializer};
use serde::Deserialize;
use toml::Spanned;

/// The longest `timeout_seconds`: a login waits at most this long for the database.
pub const MAX_TIMEOUT_SECONDS: u64 = 60;
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 3;

/// The keys of `[store]`, for "did you mean" and "expected one of".
pub const STORE_KEYS: &[&str] = &[
    "backend",
    "connection",
    "ca_file",
    "cert_file",
    "key_file",
    "password_file",
    "secret_key_file",
    "timeout_seconds",
];

/// Where the accounts' secrets and state are kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// Files in `store_dir` on this host (the default).
    #[default]
    File,
    /// One PostgreSQL database for a fleet of hosts.
    Postgresql(Postgresql),
}

impl Backend {
    /// The name the policy writes: `file` or `postgresql`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::File => "file",
            Backend::Postgresql(_) => "postgresql",
        }
    }
}

/// How to reach the fleet's database. No secret is held here: passwords and keys stay in
/// their files, read when a connection is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Postgresql {
    /// libpq-style `key=value` parameters (host, port, dbname, user), without a password.
    pub connection: String,
    /// The CA that signed the server's certificate; TLS is required.
    pub ca_file: StoreFile,
    /// The client certificate and its key, for certificate login.
    pub cert_file: Option<StoreFile>,
    pub key_file: Option<StoreFile>,
    /// A file holding the role's password, for password login.
    pub password_file: Option<StoreFile>,
    /// The 32-byte key that seals the secrets, the same on every host.
    pub secret_key_file: StoreFile,
    /// One deadline over a whole exchange with the database.
    pub timeout_seconds: u64,
}

impl Postgresql {
    /// Every file the backend reads, with its key, and whether it holds a secret (a key
    /// or a password: it must be mode 0600).
    pub fn files(&self) -> Vec<(&'static str, &StoreFile, bool)> {
        let mut files = vec![("ca_file", &self.ca_file, false)];
        files.extend(self.cert_file.as_ref().map(|f| ("cert_file", f, false)));
        files.extend(self.key_file.as_ref().map(|f| ("key_file", f, true)));
        files.extend(
            self.password_file
                .as_ref()
                .map(|f| ("password_file", f, true)),
        );
        files.push(("secret_key_file", &self.secret_key_file, true));
        files
    }
}

/// A file the policy names, and the line that names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreFile {
    pub path: PathBuf,
    pub line: usize,
}

/// `[store]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    backend: Option<Spanned<BackendName>>,
    connection: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    cert_file: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    secret_key_file: Option<Spanned<String>>,
    timeout_seconds: Option<Spanned<i64>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BackendName {
    File,
    Postgresql,
}

/// A backend as the policy writes it: `"file"` or `"postgresql"`.
impl<'de> Deserialize<'de> for BackendName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BackendName, D::Error> {
        struct Name;
        impl de::Visitor<'_> for Name {
            type Value = BackendName;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("one of \"file\", \"postgresql\"")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<BackendName, E> {
                match name {
                    "file" => Ok(BackendName::File),
                    "postgresql" => Ok(BackendName::Postgresql),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
        }
        deserializer.deserialize_str(Name)
    }
}

/// An error at a byte offset of the policy.
type Bad = (usize, String);

/// The backend `[store]` names, with every rule between its keys checked; `line` turns
/// an offset into a line number.
pub(super) fn backend(raw: RawStore, line: &dyn Fn(usize) -> usize) -> Result<Backend, Bad> {
    let postgresql_keys = [
        ("connection", raw.connection.as_ref().map(Spanned::span)),
        ("ca_file", raw.ca_file.as_ref().map(Spanned::span)),
        ("cert_file", raw.cert_file.as_ref().map(Spanned::span)),
        ("key_file", raw.key_file.as_ref().map(Spanned::span)),
        (
            "password_file",
            raw.password_file.as_ref().map(Spanned::span),
        ),
        (
            "secret_key_file",
            raw.secret_key_file.as_ref().map(Spanned::span),
        ),
        (
            "timeout_seconds",
            raw.timeout_seconds.as_ref().map(Spanned::span),
        ),
    ];
    // Without `backend` the table is the file backend's, and `at` is never used.
    let (name, at) = match &raw.backend {
        Some(name) => (*name.get_ref(), name.span().start),
        None => (BackendName::File, 0),
    };
    if name == BackendName::File {
        return match postgresql_keys
            .iter()
            .find_map(|(k, s)| Some((k, s.clone()?)))
        {
            Some((key, span)) => Err((
                span.start,
                format!(
                    "{key}: only for backend = \"postgresql\"; the file backend uses store_dir"
                ),
            )),
            None => Ok(Backend::File),
        };
    }
    let needs = |key: &str| {
        (
            at,
            format!("backend = \"postgresql\" needs {key} in [store]"),
        )
    };
    let connection = raw.connection.ok_or_else(|| needs("connection"))?;
    check_connection(&connection)?;
    let file = |key: &str, value: Option<Spanned<String>>| -> Result<Option<StoreFile>, Bad> {
        let Some(value) = value else {
            return Ok(None);
        };
        let start = value.span().start;
        let path = PathBuf::from(value.into_inner());
        if !path.is_absolute() {
            return Err((start, format!("{key} must be an absolute path")));
        }
        Ok(Some(StoreFile {
            path,
            line: line(start),
        }))
    };
    let ca_file = file("ca_file", raw.ca_file)?.ok_or_else(|| needs("ca_file"))?;
    let cert_span = raw.cert_file.as_ref().map(|f| f.span().start);
    let key_span = raw.key_file.as_ref().map(|f| f.span().start);
    let cert_file = file("cert_file", raw.cert_file)?;
    let key_file = file("key_file", raw.key_file)?;
    let password_file = file("password_file", raw.password_file)?;
    let secret_key_file =
        file("secret_key_file", raw.secret_key_file)?.ok_or_else(|| needs("secret_key_file"))?;
    match (cert_span, key_span) {
        (Some(at), None) => {
            return Err((
                at,
                "cert_file needs key_file, the certificate's private key".into(),
            ))
        }
        (None, Some(at)) => {
            return Err((
                at,
                "key_file needs cert_file, the certificate it is the key of".into(),
            ))
        }
        _ => {}
    }
    if cert_file.is_none() && password_file.is_none() {
        return Err((
            at,
            "backend = \"postgresql\" needs a way to log in: cert_file and key_file, or password_file"
                .into(),
        ));
    }
    let timeout_seconds = match &raw.timeout_seconds {
        Some(value) => {
            let n = *value.get_ref();
            u64::try_from(n)
                .ok()
                .filter(|n| (1..=MAX_TIMEOUT_SECONDS).contains(n))
                .ok_or_else(|| {
                    (
                        value.span().start,
                        format!("timeout_seconds: {n} is not between 1 and {MAX_TIMEOUT_SECONDS}"),
                    )
                })?
        }
        None => DEFAULT_TIMEOUT_SECONDS,
    };
    Ok(Backend::Postgresql(Postgresql {
        connection: connection.into_inner(),
        ca_file,
        cert_file,
        key_file,
        password_file,
        secret_key_file,
        timeout_seconds,
    }))
}

/// A connection string: `key=value` parameters, never a password (the policy is readable
/// by everyone; a password goes in `password_file`). Its text is never quoted back.
fn check_connection(connection: &Spanned<String>) -> Result<(), Bad> {
    let at = connection.span().start;
    let text = connection.get_ref();
    if text.trim().is_empty() {
        return Err((
            at,
            "connection: empty; give host, port, dbname and user".into(),
        ));
    }
    let lower = text.to_ascii_lowercase();
    let uri = lower.starts_with("postgres://") || lower.starts_with("postgresql://");
    let password_in_uri = uri
        && lower
            .split_once("://")
            .and_then(|(_, rest)| rest.split(['/', '?']).next())
            .and_then(|authority| authority.rsplit_once('@'))
            .is_some_and(|(user_info, _)| user_info.contains(':'));
    let password_key = lower
        .split(|c: char| c.is_whitespace() || c == '?' || c == '&')
        .any(|part| part.trim_start().starts_with("password"));
    if password_in_uri || password_key {
        return Err((
            at,
            "connection: holds a password; the policy is readable by everyone, so put it in password_file"
                .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::parse::{all_errors, parse};

    const PG: &str = "[store]\nbackend = \"postgresql\"\nconnection = \"host=db.internal dbname=pam_mfa user=pam_mfa_module\"\nca_file = \"/etc/pam-mfa/db-ca.pem\"\nsecret_key_file = \"/etc/pam-mfa/store.key\"\n";

    fn error_of(text: &str) -> (Option<usize>, String) {
        let error = parse(text, Path::new("p")).expect_err(text);
        // `pam-mfa policy check` reports the same error at the same line.
        let all = all_errors(text, Path::new("p"));
        assert!(all.contains(&error), "{error:?} not in {all:?}");
        (error.line, error.message)
    }

    #[test]
    fn a_policy_without_store_uses_files_and_a_full_postgresql_table_reads() {
        let policy = parse("", Path::new("p")).unwrap();
        assert_eq!(policy.store, Backend::File);
        let policy = parse("[store]\nbackend = \"file\"\n", Path::new("p")).unwrap();
        assert_eq!(policy.store, Backend::File);
        let text = format!(
            "{PG}cert_file = \"/etc/pam-mfa/c.pem\"\nkey_file = \"/etc/pam-mfa/c.key\"\ntimeout_seconds = 10\n"
        );
        let Backend::Postgresql(pg) = parse(&text, Path::new("p")).unwrap().store else {
            panic!("not postgresql");
        };
        assert_eq!(
            pg.connection,
            "host=db.internal dbname=pam_mfa user=pam_mfa_module"
        );
        assert_eq!(pg.ca_file.line, 4);
        assert_eq!(pg.secret_key_file.path, Path::new("/etc/pam-mfa/store.key"));
        assert_eq!(pg.key_file.as_ref().map(|f| f.line), Some(7));
        assert_eq!(pg.timeout_seconds, 10);
        assert!(pg
            .files()
            .iter()
            .any(|(k, _, secret)| *k == "key_file" && *secret));
        let text = format!("{PG}password_file = \"/etc/pam-mfa/db.pass\"\n");
        let Backend::Postgresql(pg) = parse(&text, Path::new("p")).unwrap().store else {
            panic!("not postgresql");
        };
        assert_eq!(pg.timeout_seconds, DEFAULT_TIMEOUT_SECONDS);
        assert_eq!(pg.password_file.map(|f| f.line), Some(6));
    }

    #[test]
    fn postgresql_without_connection_is_an_error_at_backend() {
        let text = PG.replace(
            "connection = \"host=db.internal dbname=pam_mfa user=pam_mfa_module\"\n",
            "",
        ) + "password_file = \"/p\"\n";
        let (line, message) = error_of(&text);
        assert_eq!(line, Some(2), "{message}");
        assert!(message.contains("needs connection"), "{message}");
    }

    #[test]
    fn postgresql_without_ca_file_is_an_error_at_backend() {
        let text =
            PG.replace("ca_file = \"/etc/pam-mfa/db-ca.pem\"\n", "") + "password_file = \"/p\"\n";
        let (line, message) = error_of(&text);
        assert_eq!(line, Some(2), "{message}");
        assert!(message.contains("needs ca_file"), "{message}");
    }

    #[test]
    fn postgresql_without_secret_key_file_is_an_error_at_backend() {
        let text = PG.replace("secret_key_file = \"/etc/pam-mfa/store.key\"\n", "")
            + "password_file = \"/p\"\n";
        let (line, message) = error_of(&text);
        assert_eq!(line, Some(2), "{message}");
        assert!(message.contains("needs secret_key_file"), "{message}");
    }

    #[test]
    fn cert_file_without_key_file_is_an_error_at_cert_file() {
        let (line, message) = error_of(&format!("{PG}\ncert_file = \"/c.pem\"\n"));
        assert_eq!(line, Some(7), "{message}");
        assert!(message.starts_with("cert_file needs key_file"), "{message}");
    }

    #[test]
    fn key_file_without_cert_file_is_an_error_at_key_file() {
        let (line, message) = error_of(&format!("{PG}key_file = \"/c.key\"\n"));
        assert_eq!(line, Some(6), "{message}");
        assert!(message.starts_with("key_file needs cert_file"), "{message}");
    }

    #[test]
    fn postgresql_without_a_way_to_log_in_is_an_error_at_backend() {
        let (line, message) = error_of(PG);
        assert_eq!(line, Some(2), "{message}");
        assert!(
            message.contains("cert_file and key_file, or password_file"),
            "{message}"
        );
    }

    #[test]
    fn postgresql_keys_under_the_file_backend_are_errors_at_their_line() {
        for (key, value) in [
            ("connection", "\"host=x\""),
            ("ca_file", "\"/ca.pem\""),
            ("cert_file", "\"/c.pem\""),
            ("key_file", "\"/c.key\""),
            ("password_file", "\"/p\""),
            ("secret_key_file", "\"/k\""),
            ("timeout_seconds", "5"),
        ] {
            for backend in ["backend = \"file\"\n", ""] {
                let text = format!("store_dir = \"/s\"\n[store]\n{backend}\n{key} = {value}\n");
                let (line, message) = error_of(&text);
                let expected = if backend.is_empty() { 4 } else { 5 };
                assert_eq!(line, Some(expected), "{key}: {message}");
                assert!(
                    message.starts_with(&format!("{key}: only for backend = \"postgresql\"")),
                    "{message}"
                );
            }
        }
    }

    #[test]
    fn timeout_seconds_is_bounded() {
        for bad in ["0", "61", "-1"] {
            let text = format!("{PG}password_file = \"/p\"\ntimeout_seconds = {bad}\n");
            let (line, message) = error_of(&text);
            assert_eq!(line, Some(7), "{message}");
            assert!(message.starts_with("timeout_seconds: "), "{message}");
            assert!(message.contains("between 1 and 60"), "{message}");
        }
    }

    #[test]
    fn a_relative_file_is_an_error_at_its_key() {
        let text =
            PG.replace("\"/etc/pam-mfa/db-ca.pem\"", "\"db-ca.pem\"") + "password_file = \"/p\"\n";
        let (line, message) = error_of(&text);
        assert_eq!(line, Some(4), "{message}");
        assert_eq!(message, "ca_file must be an absolute path");
    }

    #[test]
    fn an_unknown_backend_or_key_is_named_with_the_known_ones() {
        let (line, message) = error_of("[store]\nbackend = \"mysql\"\n");
        assert_eq!(line, Some(2), "{message}");
        assert!(message.starts_with("backend: "), "{message}");
        assert!(message.contains("\"file\", \"postgresql\""), "{message}");
        let (line, message) = error_of(&format!("{PG}conection = \"x\"\n"));
        assert_eq!(line, Some(6), "{message}");
        assert!(message.contains("did you mean `connection`?"), "{message}");
    }

    /// A password in the connection string would sit in a file everyone can read; the
    /// error says so without quoting the string.
    #[test]
    fn a_password_in_the_connection_is_refused_and_never_shown() {
        for connection in [
            "host=db user=u password=hunter2secret",
            "host=db PASSWORD=hunter2secret",
            "postgresql://u:hunter2secret@db/pam_mfa",
            "postgres://db/pam_mfa?user=u&password=hunter2secret",
        ] {
            let text = PG.replace(
                "host=db.internal dbname=pam_mfa user=pam_mfa_module",
                connection,
            ) + "password_file = \"/p\"\n";
            let (line, message) = error_of(&text);
            assert_eq!(line, Some(3), "{message}");
            assert!(
                message.starts_with("connection: holds a password"),
                "{message}"
            );
            assert!(!message.contains("hunter2"), "{message}");
        }
    }
}

//! What can go wrong in the store. Every variant names the file; none holds a secret.

#![forbid(unsafe_code)]

use std::fmt;
use std::path::PathBuf;

use nix::errno::Errno;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// A system call on a store file failed.
    Io {
        path: PathBuf,
        action: &'static str,
        errno: Errno,
    },
    /// The store directory does not exist.
    MissingDir { path: PathBuf },
    /// A symbolic link where a file or the directory should be.
    Symlink { path: PathBuf },
    /// Not a regular file (a FIFO, a device, a directory...).
    NotRegular { path: PathBuf },
    /// The store path is not a directory.
    NotDirectory { path: PathBuf },
    /// A directory above the store that someone else could change (a symbolic link, or
    /// owned or writable by another user), or a path with `..` in it. The message names it.
    UnsafePath { path: PathBuf, message: String },
    /// Owned by someone other than the effective uid.
    Owner {
        path: PathBuf,
        uid: u32,
        expected: u32,
    },
    /// Group or other permission bits are set.
    Mode { path: PathBuf, mode: u32 },
    /// More than one name for the file: a hard link someone else may control.
    HardLink { path: PathBuf, links: u64 },
    /// Larger than any record or state file can be.
    TooLarge { path: PathBuf },
    /// A record that does not parse.
    Record {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A state file whose contents cannot be trusted.
    State { path: PathBuf, message: String },
    /// The state lock stayed taken for too long.
    Busy { path: PathBuf },
    /// The file to create exists already.
    Exists { path: PathBuf },
    /// The account has a record already.
    AlreadyEnrolled { user: String },
    /// A file that was there a moment ago is gone.
    Vanished,
    /// The policy names a backend this process does not open.
    NotHere { backend: &'static str },
    /// The account's HOTP state cannot be read, and its counter cannot be rebuilt.
    CounterLost { path: PathBuf, user: String },
    /// The fleet database could not be reached, refused us, or answered in error. `what`
    /// names the step (connect, tls, state...), `message` the cause; never a secret.
    Database { what: &'static str, message: String },
    /// The fleet database did not finish the exchange within `timeout_seconds`.
    Timeout { seconds: u64 },
    /// A sealed secret that does not open: another key, or not this account's.
    Sealed { user: String, message: String },
    /// The sealing key file is unusable.
    Key { path: PathBuf, message: String },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io {
                path,
                action,
                errno,
            } => {
                write!(f, "{}: cannot {action}: {}", path.display(), errno.desc())
            }
            Self::MissingDir { path } => write!(
                f,
                "{}: the store directory does not exist (create it with mode 0700)",
                path.display()
            ),
            Self::Symlink { path } => {
                write!(
                    f,
                    "{}: is a symbolic link; refusing to follow it",
                    path.display()
                )
            }
            Self::NotRegular { path } => write!(f, "{}: is not a regular file", path.display()),
            Self::NotDirectory { path } => write!(f, "{}: is not a directory", path.display()),
            Self::UnsafePath { path, message } => write!(f, "{}: {message}", path.display()),
            Self::Owner {
                path,
                uid,
                expected,
            } => write!(
                f,
                "{}: is owned by uid {uid}; it must be owned by uid {expected}",
                path.display()
            ),
            Self::Mode { path, mode } => write!(
                f,
                "{}: has mode {mode:04o}; group and others must have no access (chmod go=)",
                path.display()
            ),
            Self::HardLink { path, links } => write!(
                f,
                "{}: has {links} hard links; a store file must have exactly one",
                path.display()
            ),
            Self::TooLarge { path } => write!(f, "{}: is too large", path.display()),
            Self::Record {
                path,
                line,
                message,
            } => {
                write!(f, "{}:{line}: {message}", path.display())
            }
            Self::State { path, message } => write!(f, "{}: {message}", path.display()),
            Self::Busy { path } => {
                write!(
                    f,
                    "{}: still locked by another login after 5 seconds",
                    path.display()
                )
            }
            Self::Exists { path } => write!(f, "{}: exists already", path.display()),
            Self::Vanished => f.write_str("a store file disappeared during the login"),
            Self::NotHere { backend } => write!(
                f,
                "the policy's store is the {backend} backend, which this process does not open"
            ),
            Self::CounterLost { path, user } => write!(
                f,
                "{}: the HOTP counter is lost; re-enroll {user} with pam-mfa enroll --force",
                path.display()
            ),
            Self::Database { what, message } => {
                write!(f, "fleet store ({what}): {message}")
            }
            Self::Timeout { seconds } => write!(
                f,
                "fleet store: no answer within timeout_seconds ({seconds} s)"
            ),
            Self::Sealed { user, message } => {
                write!(f, "fleet store: the secret of {user} {message}")
            }
            Self::Key { path, message } => {
                write!(f, "{}: secret_key_file: {message}", path.display())
            }
            Self::AlreadyEnrolled { user } => write!(
                f,
                "{user} is enrolled already; use --force to replace the secret"
            ),
        }
    }
}

impl std::error::Error for StoreError {}

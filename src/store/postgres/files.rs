//! The fleet store's private files (the sealing key, a client key, a password): read
//! only when they are regular files owned by root (or the effective user) that nobody
//! else may read or write, below directories nobody else may change, as the policy is.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use crate::store::StoreError;
use crate::trusted_path::{check_ancestors, guarded};

/// Larger than any key or password file.
const MAX_LEN: u64 = 64 * 1024;

/// Reads a private file into zeroizing memory; `what` names its policy key in errors.
pub(super) fn read_private(
    path: &Path,
    what: &'static str,
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let unsafe_path = |message: String| StoreError::UnsafePath {
        path: path.to_owned(),
        message: format!("{what}: {message}"),
    };
    check_ancestors(path, what).map_err(unsafe_path)?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| StoreError::Io {
            path: path.to_owned(),
            action: "open",
            errno: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })?;
    let meta = file.metadata().map_err(|e| io(path, "stat", &e))?;
    if !meta.file_type().is_file() {
        return Err(StoreError::NotRegular {
            path: path.to_owned(),
        });
    }
    guarded(&meta, false, || path.display().to_string()).map_err(unsafe_path)?;
    if meta.mode() & 0o077 != 0 {
        return Err(StoreError::Mode {
            path: path.to_owned(),
            mode: meta.mode() & 0o7777,
        });
    }
    if meta.len() > MAX_LEN {
        return Err(StoreError::TooLarge {
            path: path.to_owned(),
        });
    }
    read_all(&mut file, path)
}

fn read_all(file: &mut File, path: &Path) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    // Room reserved up front: a growing Vec would leave copies of the contents behind.
    let mut contents = Zeroizing::new(Vec::with_capacity(MAX_LEN as usize + 1));
    file.take(MAX_LEN + 1)
        .read_to_end(&mut contents)
        .map_err(|e| io(path, "read", &e))?;
    if contents.len() as u64 > MAX_LEN {
        return Err(StoreError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(contents)
}

fn io(path: &Path, action: &'static str, error: &std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        action,
        errno: nix::errno::Errno::from_raw(error.raw_os_error().unwrap_or(libc::EIO)),
    }
}

//! The rule for paths whose owner decides who logs in: the policy file and the store
//! directory. Whoever can rename entries in a directory on the way, or repoint a link
//! there, can swap what the path names however well the file itself is owned.

#![forbid(unsafe_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

/// Checks every directory above `path`: it must be the real path, with no symbolic link
/// or `..` in it, and each directory above it must be owned by root, or by the effective
/// user, and writable by nobody else unless it is sticky (/tmp). With no link in the
/// path, the directories checked are the ones an open goes through. One lstat per
/// directory: this runs at every login. `what` names the path in messages ("the policy").
pub fn check_ancestors(path: &Path, what: &str) -> Result<(), String> {
    let given = std::path::absolute(path).map_err(|e| format!("cannot resolve the path: {e}"))?;
    if given.components().any(|c| c == Component::ParentDir) {
        return Err("the path has `..` in it; give the real path".into());
    }
    for dir in given.ancestors().skip(1) {
        let meta = match std::fs::symlink_metadata(dir) {
            Ok(meta) => meta,
            // A missing directory is reported by the open that follows.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("cannot stat {}, above {what}: {e}", dir.display())),
        };
        if meta.file_type().is_symlink() {
            return Err(format!(
                "{}, above {what}, is a symbolic link; give the real path",
                dir.display()
            ));
        }
        guarded(&meta, true, || format!("{}, above {what},", dir.display()))?;
    }
    Ok(())
}

/// The rule for the policy and every directory above it, and for the directories above
/// the store: owned by root (or the effective user, for a policy of one's own) and
/// writable by nobody else; a directory may be group- or world-writable only when it is
/// sticky (/tmp), where no one can rename another user's entry. `what` names it in a
/// message (made only for one, at every login).
pub fn guarded(
    meta: &std::fs::Metadata,
    sticky_ok: bool,
    what: impl Fn() -> String,
) -> Result<(), String> {
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(format!(
            "{} is owned by uid {}; it must be owned by root",
            what(),
            meta.uid()
        ));
    }
    let sticky = sticky_ok && meta.mode() & 0o1000 != 0;
    if meta.mode() & 0o022 != 0 && !sticky {
        return Err(format!(
            "{} has mode {:04o}; it must not be writable by group or others (chmod go-w)",
            what(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Checks a file the policy names for the store (a CA, a client key, a password or the
/// secret key) as the policy itself is checked: the real path, owned by root and writable
/// by nobody else, the directories above it too; and, when it holds a secret (`private`),
/// readable by its owner alone. Never reads it.
pub fn check_private_file(path: &Path, private: bool) -> Result<(), String> {
    check_ancestors(path, "the file")?;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("{}: does not exist", path.display()))
        }
        Err(e) => return Err(format!("{}: cannot stat: {e}", path.display())),
    };
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is a symbolic link; give the real path",
            path.display()
        ));
    }
    if !meta.file_type().is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    guarded(&meta, false, || path.display().to_string())?;
    if private && meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{} has mode {:04o}; it holds a secret and must be 0600 (chmod 600)",
            path.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

//! Opening store files safely: by handle relative to the checked directory, never
//! following a symlink, never blocking on a FIFO, and checking the opened handle
//! (owner, mode, link count, file type) rather than the name.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, renameat2, OFlag, RenameFlags, AT_FDCWD};
use nix::sys::stat::{fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{fsync, geteuid, unlinkat, UnlinkatFlags};
use zeroize::Zeroizing;

use crate::store::StoreError;
use crate::trusted_path::check_ancestors;

/// Largest record read; records are a few hundred bytes.
pub const MAX_FILE_BYTES: usize = 64 * 1024;

/// A checked store directory, held open.
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Opens the store directory after checking the directories above it as the policy's
    /// are checked: whoever could rename an entry on the way could put another store,
    /// without the account's record, in its place.
    pub fn open(path: &Path) -> Result<Dir, StoreError> {
        check_above(path)?;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(AT_FDCWD, path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Err(StoreError::MissingDir { path: path.into() }),
            Err(Errno::ELOOP) => return Err(StoreError::Symlink { path: path.into() }),
            Err(Errno::ENOTDIR) => return Err(not_a_directory(path)),
            Err(errno) => return Err(io(path, "open the store directory", errno)),
        };
        let stat = fstat(&fd).map_err(|e| io(path, "stat the store directory", e))?;
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
            return Err(StoreError::NotDirectory { path: path.into() });
        }
        check_owner_and_mode(&stat, path)?;
        Ok(Dir {
            fd,
            path: path.to_owned(),
        })
    }

    pub fn open_or_create(path: &Path) -> Result<Dir, StoreError> {
        check_above(path)?;
        match mkdirat(AT_FDCWD, path, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(errno) => return Err(io(path, "create the store directory", errno)),
        }
        Self::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads a whole store file into zeroizing memory, or None if it does not exist.
    pub fn read_file(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let Some((file, size)) = self.open_file(name, OFlag::O_RDONLY)? else {
            return Ok(None);
        };
        let path = self.path.join(name);
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size > MAX_FILE_BYTES {
            return Err(StoreError::TooLarge { path });
        }
        // A buffer sized once from the file's size (one byte more, to notice a file that
        // grew), so reading never reallocates and leaves a copy behind, and only the
        // record's own pages are touched and wiped.
        let mut buffer = Zeroizing::new(vec![0u8; size + 1]);
        let mut filled = 0;
        let mut reader = &file;
        loop {
            match reader.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(&path, "read", errno_of(&e))),
            }
            if filled > size {
                return Err(StoreError::TooLarge { path });
            }
        }
        buffer.truncate(filled);
        Ok(Some(buffer))
    }

    /// Opens an existing store file after checking it, or None if there is none; with the
    /// file's size as the check saw it.
    pub fn open_file(&self, name: &str, access: OFlag) -> Result<Option<(File, u64)>, StoreError> {
        let path = self.path.join(name);
        // Look before opening, so that a FIFO or device is never opened at all...
        match fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => check_file(&stat, &path)?,
            Err(Errno::ENOENT) => return Ok(None),
            Err(errno) => return Err(io(&path, "stat", errno)),
        }
        let flags = access | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = match openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => return Err(StoreError::Symlink { path }),
            Err(errno) => return Err(io(&path, "open", errno)),
        };
        // ...and check again what was opened: the name may have changed in between.
        let stat = fstat(&fd).map_err(|e| io(&path, "stat", e))?;
        check_file(&stat, &path)?;
        let size = u64::try_from(stat.st_size).unwrap_or(0);
        Ok(Some((File::from(fd), size)))
    }

    /// Creates a new store file with mode 0600; Ok(None) if the name exists already.
    pub fn create_file(&self, name: &str) -> Result<Option<File>, StoreError> {
        let path = self.path.join(name);
        let flags = OFlag::O_RDWR
            | OFlag::O_CREAT
            | OFlag::O_EXCL
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC;
        match openat(&self.fd, name, flags, Mode::from_bits_truncate(0o600)) {
            Ok(fd) => {
                let stat = fstat(&fd).map_err(|e| io(&path, "stat", e))?;
                check_file(&stat, &path)?;
                Ok(Some(File::from(fd)))
            }
            Err(Errno::EEXIST) => Ok(None),
            Err(errno) => Err(io(&path, "create", errno)),
        }
    }

    /// Makes the directory's entries durable (after a create or a rename).
    pub fn sync(&self) -> Result<(), StoreError> {
        fsync(&self.fd).map_err(|e| io(&self.path, "sync the store directory", e))
    }

    /// Replaces (or, unless `replace`, creates) `name` with `contents`: temp file, fsync,
    /// rename, directory fsync. A crash at any point leaves the old file or the new one.
    pub fn write_atomic(
        &self,
        name: &str,
        contents: &[u8],
        replace: bool,
    ) -> Result<(), StoreError> {
        let temp = self.temp_name(name)?;
        let temp_path = self.path.join(&temp);
        let Some(mut file) = self.create_file(&temp)? else {
            return Err(StoreError::Exists { path: temp_path });
        };
        let result = (|| {
            file.write_all(contents)
                .map_err(|e| io(&temp_path, "write", errno_of(&e)))?;
            file.sync_all()
                .map_err(|e| io(&temp_path, "sync", errno_of(&e)))?;
            let flags = if replace {
                RenameFlags::empty()
            } else {
                RenameFlags::RENAME_NOREPLACE
            };
            match renameat2(&self.fd, temp.as_str(), &self.fd, name, flags) {
                Ok(()) => Ok(()),
                Err(Errno::EEXIST) => Err(StoreError::Exists {
                    path: self.path.join(name),
                }),
                Err(errno) => Err(io(&self.path.join(name), "rename into place", errno)),
            }
        })();
        if result.is_err() {
            let _ = unlinkat(&self.fd, temp.as_str(), UnlinkatFlags::NoRemoveDir);
            return result;
        }
        self.sync()
    }

    /// Removes `name` if it exists and makes that durable; true if it did exist.
    pub fn remove(&self, name: &str) -> Result<bool, StoreError> {
        match unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => self.sync().map(|()| true),
            Err(Errno::ENOENT) => Ok(false),
            Err(errno) => Err(io(&self.path.join(name), "remove", errno)),
        }
    }

    /// The names of the directory's entries (no `.` or `..`).
    pub fn names(&self) -> Result<Vec<String>, StoreError> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| io(&self.path, "duplicate the directory handle", errno_of(&e)))?;
        let mut dir = nix::dir::Dir::from_fd(fd).map_err(|e| io(&self.path, "list", e))?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|e| io(&self.path, "list", e))?;
            if let Ok(name) = entry.file_name().to_str() {
                if name != "." && name != ".." {
                    names.push(name.to_owned());
                }
            }
        }
        Ok(names)
    }

    fn temp_name(&self, name: &str) -> Result<String, StoreError> {
        let mut random = [0u8; 6];
        getrandom::fill(&mut random)
            .map_err(|_| io(&self.path, "make a temporary name", Errno::EIO))?;
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        Ok(format!(".{name}.{}.{suffix}.tmp", std::process::id()))
    }

    pub fn fd(&self) -> impl AsFd + '_ {
        self.fd.as_fd()
    }
}

fn check_above(path: &Path) -> Result<(), StoreError> {
    check_ancestors(path, "the store").map_err(|message| StoreError::UnsafePath {
        path: path.into(),
        message,
    })
}

/// A store file must be a regular file, owned by the effective uid, with no group or
/// other permissions and exactly one link.
fn check_file(stat: &FileStat, path: &Path) -> Result<(), StoreError> {
    match SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFREG => {}
        SFlag::S_IFLNK => return Err(StoreError::Symlink { path: path.into() }),
        _ => return Err(StoreError::NotRegular { path: path.into() }),
    }
    check_owner_and_mode(stat, path)?;
    if stat.st_nlink != 1 {
        return Err(StoreError::HardLink {
            path: path.into(),
            links: stat.st_nlink,
        });
    }
    Ok(())
}

fn check_owner_and_mode(stat: &FileStat, path: &Path) -> Result<(), StoreError> {
    let euid = geteuid().as_raw();
    if stat.st_uid != euid {
        return Err(StoreError::Owner {
            path: path.into(),
            uid: stat.st_uid,
            expected: euid,
        });
    }
    if stat.st_mode & 0o077 != 0 {
        return Err(StoreError::Mode {
            path: path.into(),
            mode: stat.st_mode & 0o7777,
        });
    }
    Ok(())
}

/// ENOTDIR from an open with O_DIRECTORY|O_NOFOLLOW: a symlink (even to a directory)
/// gives it too, and is named as such.
fn not_a_directory(path: &Path) -> StoreError {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => StoreError::Symlink { path: path.into() },
        _ => StoreError::NotDirectory { path: path.into() },
    }
}

pub fn io(path: &Path, action: &'static str, errno: Errno) -> StoreError {
    StoreError::Io {
        path: path.into(),
        action,
        errno,
    }
}

pub fn errno_of(error: &std::io::Error) -> Errno {
    error
        .raw_os_error()
        .map(Errno::from_raw)
        .unwrap_or(Errno::EIO)
}

/// A new, empty store directory (mode 0700) inside a temporary directory, for tests.
#[cfg(test)]
pub(super) fn temp_store() -> (tempfile::TempDir, Dir) {
    use std::os::unix::fs::PermissionsExt;
    let temp = tempfile::tempdir().unwrap();
    let path = temp.path().join("store");
    std::fs::create_dir(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    let dir = Dir::open(&path).unwrap();
    (temp, dir)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt};

    use super::*;

    /// The longest account name leaves room for every file the store makes of it, its
    /// temporary files with the longest pid included.
    #[test]
    fn the_longest_name_fits_every_store_file() {
        let (_temp, dir) = temp_store();
        let user = "n".repeat(crate::username::MAX_LEN);
        for suffix in ["toml", "state", "recovery"] {
            let name = format!("{user}.{suffix}");
            dir.write_atomic(&name, b"x", false).unwrap();
            let longest_temp = format!(".{name}.4194304.0123456789ab.tmp");
            assert!(longest_temp.len() <= 255, "{}", longest_temp.len());
            assert!(dir.create_file(&longest_temp).unwrap().is_some());
        }
        let longest = format!(".{user}.recovery.4194304.0123456789ab.tmp");
        assert_eq!(longest.len(), 255);
    }

    #[test]
    fn a_store_path_that_is_a_symlink_to_a_directory_is_named_a_symlink() {
        let (temp, dir) = temp_store();
        let link = temp.path().join("link");
        symlink(dir.path(), &link).unwrap();
        let error = Dir::open(&link).err().expect("a symlink is refused");
        assert!(matches!(error, StoreError::Symlink { .. }), "{error}");
        let file = temp.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let error = Dir::open(&file).err().expect("a file is refused");
        assert!(matches!(error, StoreError::NotDirectory { .. }), "{error}");
    }

    #[test]
    fn a_symlink_planted_at_a_new_file_name_is_never_followed() {
        let (temp, dir) = temp_store();
        let target = temp.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        symlink(&target, dir.path().join(".alice.toml.1.abc.tmp")).unwrap();
        assert!(dir.create_file(".alice.toml.1.abc.tmp").unwrap().is_none());
        assert!(matches!(
            dir.open_file(".alice.toml.1.abc.tmp", OFlag::O_RDONLY),
            Err(StoreError::Symlink { .. })
        ));
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }

    #[test]
    fn writing_without_replace_keeps_the_existing_file() {
        let (_temp, dir) = temp_store();
        dir.write_atomic("alice.toml", b"first", false).unwrap();
        assert!(matches!(
            dir.write_atomic("alice.toml", b"second", false),
            Err(StoreError::Exists { .. })
        ));
        assert_eq!(
            std::fs::read(dir.path().join("alice.toml")).unwrap(),
            b"first"
        );
        dir.write_atomic("alice.toml", b"third", true).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("alice.toml")).unwrap(),
            b"third"
        );
        // No temporary file is left behind either way.
        assert_eq!(dir.names().unwrap(), ["alice.toml"]);
    }

    #[test]
    fn new_files_are_private() {
        let (_temp, dir) = temp_store();
        dir.write_atomic("alice.toml", b"x", false).unwrap();
        let mode = std::fs::metadata(dir.path().join("alice.toml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

//! A small filesystem for tests of a full disk: a tmpfs of a given size mounted on a
//! directory (root only), unmounted when its guard drops, and a way to fill it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Mounts a tmpfs of `size` (mode 0700) on `dir`; None when this process may not mount.
/// Keep the guard declared after everything that owns `dir` (a sandbox's temporary
/// directory): locals drop in reverse order, and a directory cannot be removed while
/// something is mounted on it.
pub fn mount(dir: &Path, size: &str) -> Option<Unmount> {
    fs::create_dir_all(dir).unwrap();
    let status = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
        ])
        .arg(dir)
        .status()
        .ok()?;
    status.success().then(|| Unmount(dir.to_owned()))
}

/// Unmounts its directory on drop.
pub struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the filesystem of `path` until a write fails (ENOSPC).
pub fn fill(path: &Path) {
    let mut file = fs::File::create(path).unwrap();
    let block = vec![0xA5u8; 4096];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
}

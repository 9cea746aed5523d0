//! The store under attack and under stress, through the module's Rust path: filesystem
//! tricks (symlinks, hard links, FIFOs, wrong owners and modes, path names), stale
//! temporary files, and a full disk. Each attack must end in a failure that leaves the
//! target untouched and never hangs.

mod inproc;
mod smallfs;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use inproc::{code_at, Place, Scripted, KEY, KEY_BASE32};
use pam_mfa::authenticate::{authenticate, Failure, Outcome, Request};
use pam_mfa::clock::FixedClock;
use pam_mfa::store::StoreError;

const NOW: u64 = 1_800_000_000;

fn required() -> Place {
    let place = Place::new("default_mode = \"required\"\n");
    place.enroll(KEY_BASE32);
    place
}

/// Runs one login with the right code on a thread, failing the test if it hangs.
fn login_within(request: Request, now: u64) -> Outcome {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut conv = Scripted::answering(&code_at(KEY, now));
        let outcome = authenticate(&request, &mut conv, &FixedClock(now));
        let _ = sender.send(outcome);
    });
    receiver
        .recv_timeout(Duration::from_secs(10))
        .expect("the login hung")
}

/// A file's bytes and metadata that must not change.
fn fingerprint(path: &Path) -> (Vec<u8>, u32, u64) {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).unwrap();
    (
        fs::read(path).unwrap_or_default(),
        meta.mode(),
        meta.nlink(),
    )
}

fn assert_store_error(outcome: &Outcome, what: &str) {
    assert!(
        matches!(outcome, Outcome::Failed(Failure::Store(_))),
        "{what}: expected a store failure, got {outcome:?}"
    );
}

/// A file outside the store that an attacker would like the module to read or write.
fn victim(place: &Place) -> PathBuf {
    let path = place.dir.path().join("victim");
    fs::write(&path, b"precious\n").unwrap();
    path
}

#[test]
fn symlinked_record_state_or_store_fails_and_the_target_is_untouched() {
    for (what, setup) in [
        ("record", 0),
        ("state file", 1),
        ("recovery file", 2),
        ("store directory", 3),
    ] {
        let place = required();
        let target = victim(&place);
        let store = place.store();
        let record = store.join(format!("{}.toml", place.user));
        match setup {
            0 => {
                fs::copy(&record, &target).unwrap();
                fs::remove_file(&record).unwrap();
                symlink(&target, &record).unwrap();
            }
            1 => symlink(&target, store.join(format!("{}.state", place.user))).unwrap(),
            2 => symlink(&target, store.join(format!("{}.recovery", place.user))).unwrap(),
            _ => {
                let real = place.dir.path().join("real-store");
                fs::rename(&store, &real).unwrap();
                symlink(&real, &store).unwrap();
            }
        }
        let before = fingerprint(&target);
        let outcome = if setup == 2 {
            // The recovery file is only read for a recovery-code answer.
            let mut conv = Scripted::answering("abcde-fghij");
            authenticate(&place.request(None), &mut conv, &FixedClock(NOW))
        } else {
            login_within(place.request(None), NOW)
        };
        assert_store_error(&outcome, what);
        assert_eq!(fingerprint(&target), before, "{what}: the target changed");
    }
}

#[test]
fn hard_linked_record_or_state_fails_and_the_target_is_untouched() {
    for state in [false, true] {
        let place = required();
        let store = place.store();
        let name = if state { "state" } else { "toml" };
        let inside = store.join(format!("{}.{name}", place.user));
        let outside = place.dir.path().join(format!("link.{name}"));
        if state {
            fs::write(&inside, vec![0u8; 10]).unwrap();
            fs::set_permissions(&inside, fs::Permissions::from_mode(0o600)).unwrap();
        }
        fs::hard_link(&inside, &outside).unwrap();
        let before = fingerprint(&outside);
        let outcome = login_within(place.request(None), NOW);
        assert!(
            matches!(
                outcome,
                Outcome::Failed(Failure::Store(StoreError::HardLink { .. }))
            ),
            "{name}: {outcome:?}"
        );
        assert_eq!(fingerprint(&outside), before);
    }
}

#[test]
fn a_fifo_in_place_of_the_record_or_state_fails_without_blocking() {
    for name in ["toml", "state"] {
        let place = required();
        let path = place.store().join(format!("{}.{name}", place.user));
        let _ = fs::remove_file(&path);
        let status = Command::new("mkfifo")
            .arg("-m")
            .arg("600")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let outcome = login_within(place.request(None), NOW);
        assert_store_error(&outcome, name);
    }
}

#[test]
fn group_or_other_permissions_fail() {
    for (what, mode) in [
        ("record", 0o640),
        ("record", 0o604),
        ("store", 0o750),
        ("store", 0o777),
    ] {
        let place = required();
        let path = match what {
            "record" => place.store().join(format!("{}.toml", place.user)),
            _ => place.store(),
        };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let outcome = login_within(place.request(None), NOW);
        assert!(
            matches!(
                outcome,
                Outcome::Failed(Failure::Store(StoreError::Mode { .. }))
            ),
            "{what} {mode:o}: {outcome:?}"
        );
    }
}

#[test]
fn files_owned_by_someone_else_fail() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: changing a file's owner needs root");
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        return;
    }
    for what in ["record", "state", "store"] {
        let place = required();
        let store = place.store();
        let path = match what {
            "record" => store.join(format!("{}.toml", place.user)),
            "state" => {
                let path = store.join(format!("{}.state", place.user));
                fs::write(&path, b"").unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
                path
            }
            _ => store,
        };
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let outcome = login_within(place.request(None), NOW);
        assert!(
            matches!(
                outcome,
                Outcome::Failed(Failure::Store(StoreError::Owner { .. }))
            ),
            "{what}: {outcome:?}"
        );
    }
}

#[test]
fn names_that_would_leave_the_store_are_unknown_accounts_and_touch_nothing() {
    let place = required();
    let before: Vec<_> = fs::read_dir(place.store())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for name in ["../victim", "a/b", "..", "-rf", ".hidden", "x\0y"] {
        let mut request = place.request(None);
        request.user = Some(name.into());
        let outcome = login_within(request, NOW);
        assert!(
            matches!(outcome, Outcome::UnknownUser),
            "{name:?}: {outcome:?}"
        );
    }
    let after: Vec<_> = fs::read_dir(place.store())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(before, after);
    assert!(!place.dir.path().join("victim.state").exists());
}

#[test]
fn stale_temporary_files_are_ignored() {
    let place = required();
    let store = place.store();
    let stale = store.join(format!(".{}.toml.4242.0123456789ab.tmp", place.user));
    fs::write(&stale, b"secret = \"AAAAAAAAAAAAAAAA\"\n").unwrap();
    let victim = victim(&place);
    symlink(
        &victim,
        store.join(format!(".{}.toml.4243.ba9876543210.tmp", place.user)),
    )
    .unwrap();
    let before = fingerprint(&victim);
    let outcome = login_within(place.request(None), NOW);
    assert!(matches!(outcome, Outcome::Success(_)), "{outcome:?}");
    assert_eq!(fingerprint(&victim), before);
    assert!(
        stale.exists(),
        "the module never deletes what it did not write"
    );
}

#[test]
fn a_full_disk_never_damages_state_and_the_login_works_once_space_is_back() {
    let place = Place::new("default_mode = \"required\"\n");
    let mount = place.dir.path().join("tmpfs");
    let Some(_guard) = smallfs::mount(&mount, "256k") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root and must run this test"
        );
        return;
    };
    // Move the store onto the small filesystem.
    let store = mount.join("store");
    fs::create_dir(&store).unwrap();
    fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).unwrap();
    let policy = place.dir.path().join("policy.toml");
    fs::write(
        &policy,
        format!(
            "store_dir = \"{}\"\ndefault_mode = \"required\"\nfail_delay_ms = 0\n",
            store.display()
        ),
    )
    .unwrap();
    let record = store.join(format!("{}.toml", place.user));
    fs::write(&record, format!("secret = \"{KEY_BASE32}\"\n")).unwrap();
    fs::set_permissions(&record, fs::Permissions::from_mode(0o600)).unwrap();

    // 1. The disk fills before the account's first login: its state file cannot be
    //    set up, so the code cannot be marked used, and the login is refused.
    let filler = mount.join("filler");
    smallfs::fill(&filler);
    let outcome = login_within(place.request(None), NOW);
    assert_store_error(&outcome, "first login on a full disk");
    let record_before = fingerprint(&record);

    // 2. Space comes back: the same code, never accepted, now works.
    fs::remove_file(&filler).unwrap();
    let outcome = login_within(place.request(None), NOW);
    assert!(matches!(outcome, Outcome::Success(_)), "{outcome:?}");

    // 3. The disk fills again: updates write into reserved blocks and still work, and
    //    the state stays exact (the used code is refused, the next one accepted).
    smallfs::fill(&filler);
    let state = store.join(format!("{}.state", place.user));
    let outcome = login_within(place.request(None), NOW + 1);
    assert!(
        matches!(outcome, Outcome::Denied(_)),
        "replayed on a full disk: {outcome:?}"
    );
    let outcome = login_within(place.request(None), NOW + 30);
    assert!(
        matches!(outcome, Outcome::Success(_)),
        "next code on a full disk: {outcome:?}"
    );
    assert_eq!(
        fs::metadata(&state).unwrap().len(),
        pam_mfa::store::state::FILE_LEN
    );
    assert_eq!(
        fingerprint(&record),
        record_before,
        "a login never rewrites the record"
    );
}

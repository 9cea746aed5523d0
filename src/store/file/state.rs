//! The file backend's state file (`<user>.state`): the account's [`State`], kept apart
//! from the secret record so a failed write can never damage the secret.
//!
//! The file holds two fixed slots, 4 KiB apart. Each write goes, in place, into the
//! slot that does not hold the newest state, with a higher sequence number and a
//! SHA-256 checksum, then `fdatasync`. A crash or torn write can only damage the slot
//! being written, so the newest complete state always survives; and since the file
//! never grows after its first write, an update cannot fail with ENOSPC.

#![forbid(unsafe_code)]

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{posix_fallocate, Flock, FlockArg, OFlag};
use nix::unistd::fsync;
use sha2::{Digest, Sha256};

use super::fs::{errno_of, io, Dir};
use crate::store::state::{FailureCount, State};
use crate::store::StoreError;

const MAGIC: &[u8; 4] = b"PMFS";
const VERSION: u8 = 1;
const SLOT_LEN: usize = 128;
const BODY_LEN: usize = 96;
const SLOT_OFFSETS: [u64; 2] = [0, 4096];
/// The size of a state file; every byte is reserved when it is created.
pub const FILE_LEN: u64 = 4096 + SLOT_LEN as u64;
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// An open, exclusively locked state file. The lock goes when this is dropped.
pub struct StateFile {
    file: Flock<File>,
    path: PathBuf,
    /// Sequence number and slot of the newest valid state, if any.
    newest: Option<(u64, usize)>,
    /// Set while the file is new: its directory entry still needs an fsync, through
    /// this handle on the store directory.
    unsynced_dir: Option<(OwnedFd, PathBuf)>,
}

impl StateFile {
    /// Opens or creates `name` in the store and takes its lock (waiting up to 5 s).
    pub(super) fn open_locked(dir: &Dir, name: &str) -> Result<StateFile, StoreError> {
        let path = dir.path().join(name);
        let (file, length, created) = match dir.open_file(name, OFlag::O_RDWR)? {
            Some((file, length)) => (file, length, false),
            None => match dir.create_file(name)? {
                Some(file) => (file, 0, true),
                // Created by a parallel login between our two calls.
                None => match dir.open_file(name, OFlag::O_RDWR)? {
                    Some((file, length)) => (file, length, false),
                    None => return Err(io(&path, "open", Errno::ENOENT)),
                },
            },
        };
        let file = lock(file, &path)?;
        // Reserve every block the file will ever use, so that no later update can fail
        // for lack of space. Only its creator's fallocate makes it FILE_LEN long; an empty
        // file (seen again under the lock, as a parallel creator may have grown it) gets
        // it now. Any other length is damage, which `read` reports: growing it here would
        // turn a truncated file into a blank, new one.
        let length = if length == FILE_LEN {
            length
        } else {
            file.metadata()
                .map_err(|e| io(&path, "stat", errno_of(&e)))?
                .len()
        };
        if length == 0 {
            posix_fallocate(&*file, 0, FILE_LEN as i64)
                .map_err(|e| io(&path, "reserve space for", e))?;
        }
        let unsynced_dir = if created {
            let fd = dir
                .fd()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| io(dir.path(), "duplicate the directory handle", errno_of(&e)))?;
            Some((fd, dir.path().to_owned()))
        } else {
            None
        };
        Ok(StateFile {
            file,
            path,
            newest: None,
            unsynced_dir,
        })
    }

    /// Opens and locks an existing state file for reading; None when there is none.
    /// Never creates one (for the read-only admin commands).
    pub(super) fn open_existing(dir: &Dir, name: &str) -> Result<Option<StateFile>, StoreError> {
        let path = dir.path().join(name);
        let Some((file, _)) = dir.open_file(name, OFlag::O_RDWR)? else {
            return Ok(None);
        };
        Ok(Some(StateFile {
            file: lock(file, &path)?,
            path,
            newest: None,
            unsynced_dir: None,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Releases the lock but keeps the file open, checked, for `ParkedState::relock`:
    /// the login holds no lock while the user types, and opens the file only once.
    pub fn park(self) -> Result<ParkedState, StoreError> {
        let file = self
            .file
            .unlock()
            .map_err(|(_, errno)| io(&self.path, "unlock", errno))?;
        Ok(ParkedState {
            file,
            path: self.path,
            unsynced_dir: self.unsynced_dir,
        })
    }

    /// Reads the newest valid state. A new or empty file reads as the default state;
    /// a file in which no slot is valid and one holds something else is corrupt.
    pub fn read(&mut self) -> Result<State, StoreError> {
        let mut contents = [0u8; FILE_LEN as usize + 1];
        let length = read_at_most(&self.file, &mut contents, 0)
            .map_err(|e| io(&self.path, "read", errno_of(&e)))?;
        match decode_file(&contents[..length]) {
            Ok(Some((seq, slot, state))) => {
                self.newest = Some((seq, slot));
                Ok(state)
            }
            Ok(None) => {
                self.newest = None;
                Ok(State::default())
            }
            Err(message) => Err(self.corrupt(message)),
        }
    }

    /// Makes `state` the newest, durably, before returning. Call `read` first.
    pub fn write(&mut self, state: &State) -> Result<(), StoreError> {
        let (seq, slot) = match self.newest {
            Some((seq, slot)) => (seq + 1, 1 - slot),
            None => (1, 0),
        };
        let bytes = encode(seq, state);
        self.file
            .write_all_at(&bytes, SLOT_OFFSETS[slot])
            .map_err(|e| io(&self.path, "write", errno_of(&e)))?;
        self.file
            .sync_data()
            .map_err(|e| io(&self.path, "sync", errno_of(&e)))?;
        if let Some((fd, path)) = &self.unsynced_dir {
            fsync(fd).map_err(|e| io(path, "sync the store directory", e))?;
            self.unsynced_dir = None;
        }
        self.newest = Some((seq, slot));
        Ok(())
    }

    /// Makes a damaged file FILE_LEN long again, for an admin who resets it (`pam-mfa
    /// unlock`, a new enrollment); call `write` next. It does not empty the file first,
    /// which would read as new (no used code, no lock) if the write then failed: the
    /// blocks are reserved first (a full disk leaves the damage as it was), a longer file
    /// is cut to length, and the next write outranks any slot still valid. Only a crash
    /// between the reservation of a short file and that write can leave it reading as new.
    pub fn reset(&mut self) -> Result<(), StoreError> {
        posix_fallocate(&*self.file, 0, FILE_LEN as i64)
            .map_err(|e| io(&self.path, "reserve space for", e))?;
        let length = self
            .file
            .metadata()
            .map_err(|e| io(&self.path, "stat", errno_of(&e)))?
            .len();
        if length > FILE_LEN {
            self.file
                .set_len(FILE_LEN)
                .map_err(|e| io(&self.path, "truncate", errno_of(&e)))?;
        }
        let mut contents = [0u8; FILE_LEN as usize];
        let length = read_at_most(&self.file, &mut contents, 0)
            .map_err(|e| io(&self.path, "read", errno_of(&e)))?;
        self.newest = newest_valid_slot(&contents[..length]);
        Ok(())
    }

    fn corrupt(&self, message: &str) -> StoreError {
        StoreError::State {
            path: self.path.clone(),
            message: message.to_owned(),
        }
    }
}

/// A state file kept open without its lock (see `StateFile::park`).
pub struct ParkedState {
    file: File,
    path: PathBuf,
    unsynced_dir: Option<(OwnedFd, PathBuf)>,
}

impl ParkedState {
    /// Takes the lock again. Read the state again before writing: other logins may
    /// have written it meanwhile.
    pub fn relock(self) -> Result<StateFile, StoreError> {
        Ok(StateFile {
            file: lock(self.file, &self.path)?,
            path: self.path,
            newest: None,
            unsynced_dir: self.unsynced_dir,
        })
    }
}

/// Takes the exclusive lock on a state file, waiting at most LOCK_TIMEOUT.
///
/// Linux has no flock with a timeout, and a PAM module may not install a signal handler
/// (SIGALRM) in its host. So: one non-blocking try, which is all an uncontended login
/// pays; on contention the file goes to a short-lived thread that blocks in flock and
/// hands the locked file back through a Mutex and Condvar, which this thread waits on until the
/// deadline. The waiter is woken by the kernel the moment the holder unlocks, instead
/// of finding out on its next 2 ms poll. On timeout the caller fails closed and drops
/// its end; the thread, when it gets the lock at last, cannot hand it over, drops it
/// (unlocking) and ends.
fn lock(file: File, path: &Path) -> Result<Flock<File>, StoreError> {
    lock_within(file, path, LOCK_TIMEOUT)
}

fn lock_within(file: File, path: &Path, timeout: Duration) -> Result<Flock<File>, StoreError> {
    let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(locked) => return Ok(locked),
        Err((file, Errno::EWOULDBLOCK | Errno::EINTR)) => file,
        Err((_, errno)) => return Err(io(path, "lock", errno)),
    };
    // The thread leaves its result in `slot` and wakes this one. On a timeout this side
    // drops its reference; the locked file then goes with the thread's (unlocking).
    let slot: Arc<Handover> = Arc::default();
    let handover = Arc::clone(&slot);
    std::thread::Builder::new()
        .name("pam_mfa-lock".into())
        .stack_size(WAITER_STACK)
        .spawn(move || {
            // A thread that outlives its call (after a timeout) keeps running code of
            // this library: a pending thread-local destructor keeps glibc's dlclose
            // from unmapping it until the thread has ended.
            KEEP_LOADED.with(|_| {});
            let result = lock_blocking(file);
            if let Ok(mut held) = handover.result.lock() {
                *held = Some(result);
                handover.ready.notify_one();
            }
        })
        .map_err(|e| io(path, "start a thread to wait for the lock on", errno_of(&e)))?;
    let deadline = Instant::now() + timeout;
    let poisoned = || io(path, "lock", Errno::EIO);
    let mut held = slot.result.lock().map_err(|_| poisoned())?;
    loop {
        if let Some(result) = held.take() {
            return result.map_err(|errno| io(path, "lock", errno));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(StoreError::Busy { path: path.into() });
        }
        held = slot
            .ready
            .wait_timeout(held, left)
            .map_err(|_| poisoned())?
            .0;
    }
}

/// Where the waiting thread leaves the locked file (or flock's error) for the login.
/// A Mutex and a Condvar rather than a channel: std's channels link three
/// implementations into the module, which every dlopen pays for (issue 15).
#[derive(Default)]
struct Handover {
    result: Mutex<Option<Result<Flock<File>, Errno>>>,
    ready: Condvar,
}

/// The waiting thread's stack: it only calls flock and sends.
const WAITER_STACK: usize = 64 * 1024;

/// Blocks in flock until the lock is ours, retrying when a signal interrupts it.
fn lock_blocking(mut file: File) -> Result<Flock<File>, Errno> {
    loop {
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(locked) => return Ok(locked),
            Err((returned, Errno::EINTR)) => file = returned,
            Err((_, errno)) => return Err(errno),
        }
    }
}

/// A thread-local value with a destructor, which registers that destructor with glibc
/// (`__cxa_thread_atexit_impl`, naming this library): glibc does not unload a library
/// while one of its thread-local destructors is pending.
struct KeepLoaded;

impl Drop for KeepLoaded {
    fn drop(&mut self) {}
}

thread_local! {
    static KEEP_LOADED: KeepLoaded = const { KeepLoaded };
}

/// Decodes a whole state file: the sequence number, slot and state of its newest valid
/// slot; None for a new file (no slot written yet, or only a torn first write); an
/// error when no slot is valid and none is blank, or the file is too long.
pub fn decode_file(contents: &[u8]) -> Result<Option<(u64, usize, State)>, &'static str> {
    if contents.len() > FILE_LEN as usize {
        return Err("is larger than a state file can be");
    }
    // Empty: created, not yet reserved. Every other state file is FILE_LEN long from its
    // first login on; a shorter one was cut, and what it held (the last used step, a
    // lock) cannot be read as 'nothing yet'.
    if !contents.is_empty() && contents.len() != FILE_LEN as usize {
        return Err(
            "is shorter than a state file; it was damaged outside pam-mfa (pam-mfa unlock resets it)",
        );
    }
    let mut best: Option<(u64, usize, State)> = None;
    let mut blank = false;
    for (index, slot) in slots(contents) {
        if slot.iter().all(|&b| b == 0) {
            blank = true;
            continue;
        }
        if let Some((seq, state)) = decode(&slot) {
            if best.as_ref().is_none_or(|(best_seq, _, _)| seq > *best_seq) {
                best = Some((seq, index, state));
            }
        }
    }
    match best {
        Some(found) => Ok(Some(found)),
        None if blank => Ok(None),
        None => Err(
            "has no valid state slot; it was damaged outside pam-mfa (pam-mfa unlock resets it)",
        ),
    }
}

/// The two slots of `contents`, with their index; bytes past its end read as zeros.
fn slots(contents: &[u8]) -> impl Iterator<Item = (usize, [u8; SLOT_LEN])> + '_ {
    SLOT_OFFSETS.iter().enumerate().map(move |(index, offset)| {
        let mut slot = [0u8; SLOT_LEN];
        let start = (*offset as usize).min(contents.len());
        let end = (start + SLOT_LEN).min(contents.len());
        slot[..end - start].copy_from_slice(&contents[start..end]);
        (index, slot)
    })
}

/// The sequence number and index of the newest valid slot in `contents`, whatever else
/// the file holds.
fn newest_valid_slot(contents: &[u8]) -> Option<(u64, usize)> {
    slots(contents)
        .filter_map(|(index, slot)| decode(&slot).map(|(seq, _)| (seq, index)))
        .max()
}

/// Reads from the start of the file into `buf`; returns how many bytes were read.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn encode(seq: u64, state: &State) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    slot[0..4].copy_from_slice(MAGIC);
    slot[4] = VERSION;
    slot[5] = u8::from(state.last_step.is_some());
    slot[8..16].copy_from_slice(&seq.to_le_bytes());
    slot[16..24].copy_from_slice(&state.last_step.unwrap_or(0).to_le_bytes());
    slot[24..32].copy_from_slice(&state.next_counter.to_le_bytes());
    slot[32..36].copy_from_slice(&state.failures.to_le_bytes());
    slot[40..48].copy_from_slice(&state.failure_window_start.to_le_bytes());
    slot[48..56].copy_from_slice(&state.locked_until.to_le_bytes());
    slot[56..64].copy_from_slice(&state.last_success.to_le_bytes());
    slot[64] = u8::from(state.verified_session.is_some());
    slot[68..72].copy_from_slice(&state.verified_session.unwrap_or(0).to_le_bytes());
    slot[72..80].copy_from_slice(&state.verified_at.to_le_bytes());
    // Bytes 80..96 were zero before these fields: a slot written without them reads as
    // no combined failures, and an older reader skips them (the checksum covers them).
    slot[80..84].copy_from_slice(&state.combined.failures.to_le_bytes());
    slot[88..96].copy_from_slice(&state.combined.window_start.to_le_bytes());
    // Byte 6 and bytes 36..40 were zero before the clock offset: an older slot reads as
    // no offset known.
    slot[6] = u8::from(state.clock_offset.is_some());
    slot[36..40].copy_from_slice(&state.clock_offset.unwrap_or(0).to_le_bytes());
    let checksum = Sha256::digest(&slot[..BODY_LEN]);
    slot[BODY_LEN..].copy_from_slice(&checksum);
    slot
}

fn decode(slot: &[u8; SLOT_LEN]) -> Option<(u64, State)> {
    if &slot[0..4] != MAGIC || slot[4] != VERSION || slot[5] > 1 || slot[6] > 1 || slot[64] > 1 {
        return None;
    }
    if Sha256::digest(&slot[..BODY_LEN]).as_slice() != &slot[BODY_LEN..] {
        return None;
    }
    let u64_at = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&slot[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    let u32_at = |at: usize| {
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(&slot[at..at + 4]);
        u32::from_le_bytes(bytes)
    };
    let state = State {
        last_step: (slot[5] == 1).then(|| u64_at(16)),
        next_counter: u64_at(24),
        failures: u32_at(32),
        failure_window_start: u64_at(40),
        locked_until: u64_at(48),
        last_success: u64_at(56),
        verified_session: (slot[64] == 1).then(|| u32_at(68)),
        verified_at: u64_at(72),
        combined: FailureCount {
            failures: u32_at(80),
            window_start: u64_at(88),
        },
        clock_offset: (slot[6] == 1).then(|| i32::from_le_bytes(u32_at(36).to_le_bytes())),
    };
    Some((u64_at(8), state))
}

#[cfg(test)]
mod tests {
    use super::super::fs::temp_store;
    use std::sync::mpsc::sync_channel;

    use super::*;

    fn sample(step: u64) -> State {
        State {
            last_step: Some(step),
            next_counter: 7,
            failures: 2,
            failure_window_start: 1_700_000_000,
            locked_until: 0,
            last_success: 1_700_000_100,
            verified_session: Some(34),
            verified_at: 1_700_000_100,
            combined: FailureCount {
                failures: 3,
                window_start: 1_700_000_050,
            },
            clock_offset: Some(-3),
        }
    }

    /// A slot as versions before the clock offset wrote it (bytes 6 and 36..40 zero)
    /// still reads, as no offset known; a written offset, negative too, round-trips.
    #[test]
    fn clock_offset_round_trips_and_older_slots_read_as_unknown() {
        let state = sample(5);
        let (_, read) = decode(&encode(9, &state)).unwrap();
        assert_eq!(read.clock_offset, Some(-3));
        let mut old = encode(
            9,
            &State {
                clock_offset: None,
                ..state
            },
        );
        assert_eq!(old[6], 0);
        assert!(old[36..40].iter().all(|&b| b == 0));
        let checksum = Sha256::digest(&old[..BODY_LEN]);
        old[BODY_LEN..].copy_from_slice(&checksum);
        let (_, read) = decode(&old).unwrap();
        assert_eq!(
            read,
            State {
                clock_offset: None,
                ..state
            }
        );
    }

    #[test]
    fn new_state_reads_as_default_and_round_trips() {
        let (_temp, dir) = temp_store();
        let mut file = StateFile::open_locked(&dir, "alice.state").unwrap();
        assert_eq!(file.read().unwrap(), State::default());
        file.write(&sample(10)).unwrap();
        drop(file);
        let mut file = StateFile::open_locked(&dir, "alice.state").unwrap();
        assert_eq!(file.read().unwrap(), sample(10));
    }

    #[test]
    fn writes_alternate_slots_and_the_newest_wins() {
        let (_temp, dir) = temp_store();
        let mut file = StateFile::open_locked(&dir, "a.state").unwrap();
        file.read().unwrap();
        for step in 1..=5 {
            file.write(&sample(step)).unwrap();
        }
        drop(file);
        let mut file = StateFile::open_locked(&dir, "a.state").unwrap();
        assert_eq!(file.read().unwrap().last_step, Some(5));
    }

    #[test]
    fn a_torn_write_leaves_the_previous_state() {
        let (_temp, dir) = temp_store();
        let mut file = StateFile::open_locked(&dir, "a.state").unwrap();
        file.read().unwrap();
        file.write(&sample(1)).unwrap();
        file.write(&sample(2)).unwrap();
        // The next write goes to slot 0 (which holds step 1); tear it halfway.
        let torn = encode(3, &sample(3));
        file.file
            .write_all_at(&torn[..40], SLOT_OFFSETS[0])
            .unwrap();
        drop(file);
        let mut file = StateFile::open_locked(&dir, "a.state").unwrap();
        assert_eq!(file.read().unwrap().last_step, Some(2));
    }

    #[test]
    fn a_truncated_file_is_an_error_not_a_fresh_state_and_reset_starts_over() {
        let (_temp, dir) = temp_store();
        let mut file = StateFile::open_locked(&dir, "a.state").unwrap();
        file.read().unwrap();
        file.write(&sample(1)).unwrap();
        file.write(&sample(2)).unwrap();
        for cut in [100, SLOT_LEN as u64, 4096, FILE_LEN - 1] {
            file.file.set_len(cut).unwrap();
            drop(file);
            file = StateFile::open_locked(&dir, "a.state").unwrap();
            assert!(
                matches!(file.read(), Err(StoreError::State { .. })),
                "cut to {cut}"
            );
            assert_eq!(file.file.metadata().unwrap().len(), cut, "grown back");
        }
        file.reset().unwrap();
        assert_eq!(file.file.metadata().unwrap().len(), FILE_LEN);
        file.write(&sample(3)).unwrap();
        drop(file);
        let mut file = StateFile::open_locked(&dir, "a.state").unwrap();
        assert_eq!(file.read().unwrap().last_step, Some(3));
        assert_eq!(file.file.metadata().unwrap().len(), FILE_LEN);
    }

    /// A file too long (damage), whose slot 1 still holds a valid state of a high sequence
    /// number: after a reset the written state wins, and the file has its length again.
    #[test]
    fn reset_outranks_a_surviving_slot_and_cuts_the_file_to_length() {
        let (_temp, dir) = temp_store();
        let mut file = StateFile::open_locked(&dir, "a.state").unwrap();
        file.read().unwrap();
        file.file
            .write_all_at(&encode(90, &sample(9)), 4096)
            .unwrap();
        file.file.write_all_at(b"trailing", FILE_LEN).unwrap();
        assert!(matches!(file.read(), Err(StoreError::State { .. })));
        file.reset().unwrap();
        file.write(&sample(4)).unwrap();
        drop(file);
        let mut file = StateFile::open_locked(&dir, "a.state").unwrap();
        assert_eq!(file.read().unwrap().last_step, Some(4));
        assert_eq!(file.file.metadata().unwrap().len(), FILE_LEN);
    }

    #[test]
    fn garbage_in_both_slots_is_an_error_not_a_fresh_state() {
        let (_temp, dir) = temp_store();
        let mut file = StateFile::open_locked(&dir, "a.state").unwrap();
        file.file.write_all_at(&[0xAA; SLOT_LEN], 0).unwrap();
        file.file.write_all_at(&[0x55; SLOT_LEN], 4096).unwrap();
        assert!(matches!(file.read(), Err(StoreError::State { .. })));
    }

    #[test]
    fn a_lock_is_exclusive_across_handles() {
        let (_temp, dir) = temp_store();
        let held = StateFile::open_locked(&dir, "a.state").unwrap();
        let path = held.path().to_owned();
        let other = File::open(&path).unwrap();
        assert!(Flock::lock(other, FlockArg::LockExclusiveNonblock).is_err());
        drop(held);
        let other = File::open(&path).unwrap();
        assert!(Flock::lock(other, FlockArg::LockExclusiveNonblock).is_ok());
    }
    /// A login that finds the lock taken gets it as soon as its holder lets go, and
    /// reads what the holder wrote.
    #[test]
    fn a_waiting_login_gets_the_lock_when_its_holder_lets_go() {
        let (_temp, dir) = temp_store();
        let mut held = StateFile::open_locked(&dir, "a.state").unwrap();
        held.read().unwrap();
        let path = held.path().to_owned();
        let (started, waiting) = sync_channel(0);
        let waiter = std::thread::spawn(move || {
            let file = File::options().read(true).write(true).open(&path).unwrap();
            started.send(()).unwrap();
            let locked = lock(file, &path).unwrap();
            let mut contents = [0u8; FILE_LEN as usize];
            let length = read_at_most(&locked, &mut contents, 0).unwrap();
            decode_file(&contents[..length]).unwrap().map(|(_, _, s)| s)
        });
        waiting.recv().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        held.write(&sample(7)).unwrap();
        drop(held);
        assert_eq!(waiter.join().unwrap(), Some(sample(7)));
    }

    /// Past the deadline the wait fails closed (Busy), and the thread left waiting gives
    /// the lock back as soon as it gets it: the file does not stay locked.
    #[test]
    fn a_lock_held_past_the_deadline_fails_closed_and_is_not_kept() {
        let (_temp, dir) = temp_store();
        let held = StateFile::open_locked(&dir, "a.state").unwrap();
        let path = held.path().to_owned();
        let file = File::options().read(true).write(true).open(&path).unwrap();
        assert!(matches!(
            lock_within(file, &path, Duration::from_millis(100)),
            Err(StoreError::Busy { .. })
        ));
        drop(held);
        let mut tries = 0;
        loop {
            let file = File::open(&path).unwrap();
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(_) => break,
                Err(_) if tries < 500 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => panic!("the abandoned waiter kept the lock"),
            }
        }
    }
}

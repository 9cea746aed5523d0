//! Replays the checked-in fuzz corpus (fuzz/corpus/<target>/*) through the same entry
//! points the cargo-fuzz targets use, so every input that ever found a bug, and every
//! seed, is checked by the normal test run.

use std::fs;
use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = fs::read(&path).unwrap();
        check(&data);
        count += 1;
    }
    count
}

#[test]
fn policy_corpus() {
    assert!(replay("policy", pam_mfa::fuzzing::policy) >= 3);
}

#[test]
fn record_corpus() {
    assert!(replay("record", pam_mfa::fuzzing::record) >= 2);
}

#[test]
fn state_corpus() {
    assert!(replay("state", pam_mfa::fuzzing::state) >= 1);
}

#[test]
fn code_input_corpus() {
    assert!(replay("code_input", pam_mfa::fuzzing::code_input) >= 3);
}

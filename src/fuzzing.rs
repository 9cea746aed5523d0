//! Entry points shared by the cargo-fuzz targets (fuzz/) and the test that replays the
//! checked-in corpus (tests/fuzz_corpus.rs): one function per parser of untrusted input.
//! Each checks what must hold for any input, and panics (a finding) if it does not.

#![forbid(unsafe_code)]

use std::path::Path;

use crate::otp::verify::Code;
use crate::otp::Digits;
use crate::policy;
use crate::recovery;
use crate::store::record::Record;
use crate::store::state::decode_file;

/// Policy text: a policy, or an error on one line.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = policy::parse(text, Path::new("fuzz.toml")) {
        assert!(!e.to_string().contains('\n'), "multi-line error: {e:?}");
    }
}

/// A secret record: a record, or an error that never quotes the secret line.
pub fn record(data: &[u8]) {
    if let Err(e) = Record::parse(data, Path::new("fuzz.toml")) {
        assert!(!e.to_string().contains('\n'), "multi-line error: {e:?}");
    }
}

/// A state file of any bytes.
pub fn state(data: &[u8]) {
    if let Ok(Some((_, slot, _))) = decode_file(data) {
        assert!(slot < 2);
    }
}

/// A typed answer: a code of each length, or a recovery code, or nothing.
pub fn code_input(data: &[u8]) {
    for digits in 6..=8 {
        let digits = Digits::new(digits).expect("6 to 8 are valid");
        if Code::parse(data, digits).is_some() {
            assert!(data.trim_ascii().len() == usize::from(digits.get()));
        }
    }
    if let Some(normalized) = recovery::normalize(data) {
        assert!(normalized.len() == 8 || normalized.len() == 10);
    }
}

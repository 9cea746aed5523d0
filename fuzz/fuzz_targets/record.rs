//! The secret record parser must turn any bytes into a record or an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pam_mfa::fuzzing::record(data);
});

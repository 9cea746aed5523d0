//! The state file decoder must accept any bytes without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pam_mfa::fuzzing::state(data);
});

//! Whatever a user types at the prompt: code and recovery-code parsing never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pam_mfa::fuzzing::code_input(data);
});

//! The policy parser must turn any text into a policy or a one-line error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pam_mfa::fuzzing::policy(data);
});

//! TOTP, RFC 6238: HOTP over the number of time steps since the Unix epoch.

#![forbid(unsafe_code)]

use super::hotp::hotp;
use super::{Algorithm, Digits};

/// The time step that contains `unix_time` for steps of `period` seconds (T0 = 0).
pub fn time_step(unix_time: u64, period: u32) -> u64 {
    unix_time / u64::from(period.max(1))
}

/// The TOTP code for `unix_time`.
pub fn totp(key: &[u8], unix_time: u64, period: u32, algorithm: Algorithm, digits: Digits) -> u32 {
    hotp(key, time_step(unix_time, period), algorithm, digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1_KEY: &[u8] = b"12345678901234567890";
    const SHA256_KEY: &[u8] = b"12345678901234567890123456789012";
    const SHA512_KEY: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    /// RFC 6238 Appendix B, eight digits, 30-second steps, including times past 2038
    /// (64-bit time) and past 2^32 seconds.
    #[test]
    fn rfc6238_appendix_b_vectors() {
        let table: &[(u64, u32, u32, u32)] = &[
            (59, 94287082, 46119246, 90693936),
            (1111111109, 7081804, 68084774, 25091201),
            (1111111111, 14050471, 67062674, 99943326),
            (1234567890, 89005924, 91819424, 93441116),
            (2000000000, 69279037, 90698825, 38618901),
            (20000000000, 65353130, 77737706, 47863826),
        ];
        let eight = Digits::new(8).unwrap();
        for &(time, sha1, sha256, sha512) in table {
            assert_eq!(
                totp(SHA1_KEY, time, 30, Algorithm::Sha1, eight),
                sha1,
                "SHA1 at {time}"
            );
            assert_eq!(
                totp(SHA256_KEY, time, 30, Algorithm::Sha256, eight),
                sha256,
                "SHA256 at {time}"
            );
            assert_eq!(
                totp(SHA512_KEY, time, 30, Algorithm::Sha512, eight),
                sha512,
                "SHA512 at {time}"
            );
        }
    }

    #[test]
    fn time_step_boundaries() {
        assert_eq!(time_step(0, 30), 0);
        assert_eq!(time_step(29, 30), 0);
        assert_eq!(time_step(30, 30), 1);
        assert_eq!(time_step(59, 60), 0);
        assert_eq!(time_step(u64::MAX, 30), u64::MAX / 30);
    }
}

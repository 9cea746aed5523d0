//! pam-mfa: a PAM module that demands a TOTP/HOTP code after the password when a policy
//! says so (root always, privileged accounts required, others optional), and the
//! `pam-mfa` admin command that enrolls accounts.
//!
//! `unsafe` is denied crate-wide and allowed only in `pam/`, the boundary to libpam.

#![deny(unsafe_code)]

/// NSS lookups: uid and every group of an account.
pub mod accounts;
/// One syslog line (facility auth) per decision.
pub mod audit;
/// The safe core of pam_sm_authenticate.
pub mod authenticate;
/// The `pam-mfa` admin command, one file per subcommand.
pub mod cli;
/// Time behind a trait, so tests can set it.
pub mod clock;
/// Entry points for the fuzz targets and the corpus replay test.
pub mod fuzzing;
/// `pam-mfa-check`, the setuid helper for callers without root, and its pipe protocol.
pub mod helper;
/// HOTP, TOTP and the constant-time verifier.
pub mod otp;
/// otpauth:// URIs: making them and reading them.
pub mod otpauth;
/// The exported pam_sm_* entry points: the only unsafe code.
#[allow(unsafe_code)]
pub mod pam;
/// The policy file: parsing and the pure decision.
pub mod policy;
/// PSKC (RFC 6030) seed files of hardware tokens: parsing, decryption, token profiles.
pub mod pskc;
/// QR codes for terminals, PNG and SVG.
pub mod qr;
/// Recovery codes: generation, Argon2id hashes, matching.
pub mod recovery;
/// Key material in zeroizing memory.
pub mod secret;
/// The secret store: one interface (records, replay ledger, lockout, recovery codes) and
/// its backends.
pub mod store;
/// Who may control the policy and the directories above it and above the store.
pub mod trusted_path;
/// Validated account names.
pub mod username;

//! `pam-mfa-user`: a user's own second factor (status, a new secret, new recovery codes),
//! through the setuid helper. All of it is in `pam_mfa::cli::user`.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    pam_mfa::cli::user::main()
}

//! `pam-mfa-check`: the setuid helper through which callers without root check their own
//! code. All of it is in `pam_mfa::helper`.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    pam_mfa::helper::main()
}

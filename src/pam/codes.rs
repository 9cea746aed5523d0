//! PAM return codes (Linux-PAM's values). Integers from C go through the total
//! `from_int`; nothing here is a `#[repr(C)]` enum that C could fill with a stray value.

#![forbid(unsafe_code)]

use std::os::raw::c_int;

use super::ffi;
use crate::authenticate::Status;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PamCode {
    Success,
    ServiceErr,
    SystemErr,
    BufErr,
    PermDenied,
    AuthErr,
    AuthinfoUnavail,
    UserUnknown,
    MaxTries,
    ConvErr,
    Ignore,
    Abort,
    Unknown(c_int),
}

/// Each code with libpam's value, from the system headers (through pam-sys).
const TABLE: [(PamCode, c_int); 12] = [
    (PamCode::Success, ffi::PAM_SUCCESS),
    (PamCode::ServiceErr, ffi::PAM_SERVICE_ERR),
    (PamCode::SystemErr, ffi::PAM_SYSTEM_ERR),
    (PamCode::BufErr, ffi::PAM_BUF_ERR),
    (PamCode::PermDenied, ffi::PAM_PERM_DENIED),
    (PamCode::AuthErr, ffi::PAM_AUTH_ERR),
    (PamCode::AuthinfoUnavail, ffi::PAM_AUTHINFO_UNAVAIL),
    (PamCode::UserUnknown, ffi::PAM_USER_UNKNOWN),
    (PamCode::MaxTries, ffi::PAM_MAXTRIES),
    (PamCode::ConvErr, ffi::PAM_CONV_ERR),
    (PamCode::Ignore, ffi::PAM_IGNORE),
    (PamCode::Abort, ffi::PAM_ABORT),
];
impl PamCode {
    pub fn from_int(value: c_int) -> PamCode {
        TABLE
            .iter()
            .find(|(_, v)| *v == value)
            .map_or(PamCode::Unknown(value), |(code, _)| *code)
    }

    pub fn as_int(self) -> c_int {
        match self {
            PamCode::Unknown(value) => value,
            known => TABLE
                .iter()
                .find(|(code, _)| *code == known)
                .map_or(ffi::PAM_SYSTEM_ERR, |(_, v)| *v),
        }
    }
}

impl From<Status> for PamCode {
    /// The PAM return code of the core's status (the module's own login or the helper's
    /// answer). One exhaustive match: a new status forces a decision here.
    fn from(status: Status) -> PamCode {
        match status {
            Status::Success => PamCode::Success,
            Status::Ignore => PamCode::Ignore,
            Status::Denied => PamCode::AuthErr,
            Status::Locked => PamCode::MaxTries,
            Status::UnknownUser => PamCode::UserUnknown,
            Status::Misconfigured => PamCode::ServiceErr,
            Status::Unavailable => PamCode::AuthinfoUnavail,
            Status::ConversationFailed => PamCode::ConvErr,
            Status::SystemFailed => PamCode::SystemErr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for value in -2..40 {
            assert_eq!(PamCode::from_int(value).as_int(), value);
        }
        for (code, value) in TABLE {
            assert_eq!(PamCode::from_int(value), code);
            assert_eq!(code.as_int(), value);
        }
    }

    #[test]
    fn only_success_and_ignore_map_to_success_and_ignore() {
        let all = [
            Status::Success,
            Status::Ignore,
            Status::Denied,
            Status::Locked,
            Status::UnknownUser,
            Status::Misconfigured,
            Status::Unavailable,
            Status::ConversationFailed,
            Status::SystemFailed,
        ];
        for status in all {
            let code = PamCode::from(status);
            assert_eq!(
                code == PamCode::Success,
                status == Status::Success,
                "{status:?}"
            );
            assert_eq!(
                code == PamCode::Ignore,
                status == Status::Ignore,
                "{status:?}"
            );
        }
    }

    #[test]
    fn linux_pam_values() {
        assert_eq!(PamCode::Success.as_int(), 0);
        assert_eq!(PamCode::AuthErr.as_int(), 7);
        assert_eq!(PamCode::Ignore.as_int(), 25);
        assert_eq!(PamCode::SystemErr.as_int(), 4);
        assert_eq!(PamCode::from_int(8), PamCode::Unknown(8));
    }
}

//! PAM return codes (Linux-PAM's values). Integers from C go through the total
//! `from_int`; nothing here is a `#[repr(C)]` enum that C could fill with a stray value.

#![forbid(unsafe_code)]

use std::os::raw::c_int;

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

const TABLE: [(PamCode, c_int); 12] = [
    (PamCode::Success, 0),
    (PamCode::ServiceErr, 3),
    (PamCode::SystemErr, 4),
    (PamCode::BufErr, 5),
    (PamCode::PermDenied, 6),
    (PamCode::AuthErr, 7),
    (PamCode::AuthinfoUnavail, 9),
    (PamCode::UserUnknown, 10),
    (PamCode::MaxTries, 11),
    (PamCode::ConvErr, 19),
    (PamCode::Ignore, 25),
    (PamCode::Abort, 26),
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
                .map_or(4, |(_, v)| *v),
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
    fn linux_pam_values() {
        assert_eq!(PamCode::Success.as_int(), 0);
        assert_eq!(PamCode::AuthErr.as_int(), 7);
        assert_eq!(PamCode::Ignore.as_int(), 25);
        assert_eq!(PamCode::SystemErr.as_int(), 4);
        assert_eq!(PamCode::from_int(8), PamCode::Unknown(8));
    }
}

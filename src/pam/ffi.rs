//! The few libpam declarations the module uses (from <security/pam_modules.h> and
//! <security/_pam_types.h>), written out by hand rather than generated.

use std::os::raw::{c_char, c_int, c_void};

/// libpam's opaque handle.
#[repr(C)]
pub struct PamHandleT {
    _private: [u8; 0],
}

#[repr(C)]
pub struct PamMessage {
    pub msg_style: c_int,
    pub msg: *const c_char,
}

#[repr(C)]
pub struct PamResponse {
    pub resp: *mut c_char,
    pub resp_retcode: c_int,
}

pub type ConvFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int;

#[repr(C)]
pub struct PamConv {
    pub conv: Option<ConvFn>,
    pub appdata_ptr: *mut c_void,
}

pub const PAM_SUCCESS: c_int = 0;
pub const PAM_BUF_ERR: c_int = 5;

pub const PAM_SERVICE: c_int = 1;
pub const PAM_RHOST: c_int = 4;
pub const PAM_CONV: c_int = 5;
pub const PAM_AUTHTOK: c_int = 6;

pub const PAM_PROMPT_ECHO_OFF: c_int = 1;
pub const PAM_ERROR_MSG: c_int = 3;
pub const PAM_TEXT_INFO: c_int = 4;

pub const PAM_SILENT: c_int = 0x8000;

#[link(name = "pam")]
extern "C" {
    pub fn pam_get_user(
        pamh: *mut PamHandleT,
        user: *mut *const c_char,
        prompt: *const c_char,
    ) -> c_int;
    pub fn pam_fail_delay(pamh: *mut PamHandleT, usec: std::os::raw::c_uint) -> c_int;
    pub fn pam_set_item(pamh: *mut PamHandleT, item_type: c_int, item: *const c_void) -> c_int;
    pub fn pam_get_item(
        pamh: *const PamHandleT,
        item_type: c_int,
        item: *mut *const c_void,
    ) -> c_int;
}

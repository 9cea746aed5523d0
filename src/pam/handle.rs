//! A borrowed libpam handle with safe accessors for the items the module reads.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr;

use zeroize::Zeroizing;

use super::ffi;

/// The handle libpam passed to an entry point, valid for the duration of that call.
pub struct PamHandle {
    raw: *mut ffi::PamHandleT,
}

impl PamHandle {
    /// # Safety
    /// `raw` must be the non-null handle libpam passed to the running entry point, and
    /// the `PamHandle` must not outlive that call.
    pub unsafe fn from_raw(raw: *mut ffi::PamHandleT) -> Option<PamHandle> {
        (!raw.is_null()).then_some(PamHandle { raw })
    }

    /// PAM_USER, asking libpam (and through it the application) if it is not set yet.
    /// None when libpam fails or the name is not UTF-8.
    pub fn user(&self) -> Option<String> {
        let mut user: *const c_char = ptr::null();
        // SAFETY: self.raw is a valid handle for this call (from_raw's contract); `user` is
        // a valid out-pointer; a NULL prompt asks libpam for its default prompt.
        let rc = unsafe { ffi::pam_get_user(self.raw, &mut user, ptr::null()) };
        if rc != ffi::PAM_SUCCESS || user.is_null() {
            return None;
        }
        // SAFETY: on success libpam points `user` at a NUL-terminated string that it owns
        // and keeps alive at least until the item changes; we copy it at once.
        let name = unsafe { CStr::from_ptr(user) };
        name.to_str().ok().map(str::to_owned)
    }

    /// A string item (PAM_SERVICE, PAM_RHOST...), lossily decoded; empty when unset.
    pub fn string_item(&self, item_type: c_int) -> String {
        let Some(item) = self.item(item_type) else {
            return String::new();
        };
        // SAFETY: for string item types libpam stores a NUL-terminated string; `item` is
        // non-null and owned by libpam for the duration of this call; we copy it at once.
        let value = unsafe { CStr::from_ptr(item.cast::<c_char>()) };
        value.to_string_lossy().into_owned()
    }

    /// Asks libpam to wait at least this long before it returns a failure.
    pub fn fail_delay(&self, microseconds: u32) {
        // SAFETY: self.raw is a valid handle for this call; the call takes a plain integer.
        // Its result only says whether the handle was valid, which from_raw guarantees.
        let _ = unsafe { ffi::pam_fail_delay(self.raw, microseconds) };
    }

    /// PAM_AUTHTOK, copied into zeroizing memory; None when unset.
    pub fn authtok(&self) -> Option<Zeroizing<Vec<u8>>> {
        let item = self.item(ffi::PAM_AUTHTOK)?;
        // SAFETY: PAM_AUTHTOK is a NUL-terminated string owned by libpam; `item` is
        // non-null and stays valid during this call; we copy it at once.
        let bytes = unsafe { CStr::from_ptr(item.cast::<c_char>()) }.to_bytes();
        let mut copy = Zeroizing::new(Vec::with_capacity(bytes.len()));
        copy.extend_from_slice(bytes);
        Some(copy)
    }

    /// Sets PAM_AUTHTOK (libpam keeps its own copy and wipes the one it replaces).
    pub fn set_authtok(&self, value: &[u8]) -> Result<(), c_int> {
        if value.contains(&0) {
            return Err(ffi::PAM_BUF_ERR);
        }
        let mut c_value = Zeroizing::new(Vec::with_capacity(value.len() + 1));
        c_value.extend_from_slice(value);
        c_value.push(0);
        // SAFETY: self.raw is valid for this call; c_value is NUL-terminated and lives
        // until after pam_set_item returns, which copies it.
        let rc = unsafe { ffi::pam_set_item(self.raw, ffi::PAM_AUTHTOK, c_value.as_ptr().cast()) };
        if rc == ffi::PAM_SUCCESS {
            Ok(())
        } else {
            Err(rc)
        }
    }

    /// The raw pointer of an item, or None when unset or on error.
    pub fn item(&self, item_type: c_int) -> Option<*const c_void> {
        let mut item: *const c_void = ptr::null();
        // SAFETY: self.raw is a valid handle for this call; `item` is a valid out-pointer.
        let rc = unsafe { ffi::pam_get_item(self.raw, item_type, &mut item) };
        (rc == ffi::PAM_SUCCESS && !item.is_null()).then_some(item)
    }
}

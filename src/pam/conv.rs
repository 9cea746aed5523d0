//! Prompting through the application's conversation function. Replies are copied into
//! zeroizing memory, and the application's buffer is wiped before it is freed.

use std::ffi::CStr;
use std::os::raw::{c_int, c_void};
use std::ptr;

use zeroize::{Zeroize, Zeroizing};

use super::ffi;
use super::handle::PamHandle;
use crate::authenticate::{Conversation, ConversationError};

/// The conversation of a handle, for one entry-point call. It keeps the handle, not the
/// application's `pam_conv`: an application may set a new PAM_CONV from inside its own
/// conversation function, and libpam then frees the struct it held, so the item is fetched
/// afresh for every message.
pub struct PamConversation<'a> {
    handle: &'a PamHandle,
}

impl<'a> PamConversation<'a> {
    /// The conversation of the handle; None when the application set no PAM_CONV item or
    /// one without a function.
    pub fn of(handle: &'a PamHandle) -> Option<PamConversation<'a>> {
        current(handle).map(|_| PamConversation { handle })
    }

    fn converse(
        &self,
        style: c_int,
        text: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        let Some((function, appdata)) = current(self.handle)
            .and_then(|(conv, appdata)| conv.conv.map(|function| (function, appdata)))
        else {
            return Err(ConversationError);
        };
        // The text may hold a secret (enrollment at login shows the key), so its C copy
        // lives in zeroizing memory too.
        if text.as_bytes().contains(&0) {
            return Err(ConversationError);
        }
        let mut c_text = Zeroizing::new(Vec::with_capacity(text.len() + 1));
        c_text.extend_from_slice(text.as_bytes());
        c_text.push(0);
        let message = ffi::PamMessage {
            msg_style: style,
            msg: c_text.as_ptr().cast(),
        };
        let mut messages = [&message as *const ffi::PamMessage];
        let mut response: *mut ffi::PamResponse = ptr::null_mut();
        // SAFETY: we pass one valid message (alive until the call returns), an out-pointer
        // for the response array, and the appdata pointer that the application stored with
        // this function, exactly as the conversation contract (pam_conv(3)) requires. Both
        // were copied out of the PAM_CONV item just now; nothing here reads the item again
        // after the call, which may replace (and free) it.
        let rc = unsafe { function(1, messages.as_mut_ptr(), &mut response, appdata) };
        // SAFETY: `response` is either null or, per pam_conv(3), a malloc'd array of one
        // pam_response whose resp is null or a malloc'd NUL-terminated string; we take
        // ownership of both and free them exactly once.
        let answer = unsafe { take_response(response) };
        if rc != ffi::PAM_SUCCESS {
            return Err(ConversationError);
        }
        Ok(answer)
    }
}

impl Conversation for PamConversation<'_> {
    fn ask_hidden(
        &mut self,
        prompt: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        self.converse(ffi::PAM_PROMPT_ECHO_OFF, prompt)
    }

    fn info(&mut self, text: &str) -> Result<(), ConversationError> {
        // Any reply to an informational message is discarded (and wiped).
        self.converse(ffi::PAM_TEXT_INFO, text).map(drop)
    }

    fn error(&mut self, text: &str) -> Result<(), ConversationError> {
        self.converse(ffi::PAM_ERROR_MSG, text).map(drop)
    }

    fn request_delay(&mut self, microseconds: u32) {
        self.handle.fail_delay(microseconds);
    }

    fn authtok(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        Ok(self.handle.authtok())
    }

    fn set_authtok(&mut self, value: &[u8]) -> Result<(), ConversationError> {
        self.handle
            .set_authtok(value)
            .map_err(|_| ConversationError)
    }
}

/// The conversation function and its appdata pointer, copied out of the handle's PAM_CONV
/// item as it is now; None when the item is unset or has no function.
fn current(handle: &PamHandle) -> Option<(ffi::PamConv, *mut c_void)> {
    let item = handle.item(ffi::PAM_CONV)?;
    // SAFETY: libpam's pam_get_item(PAM_CONV) returns its own copy of the application's
    // `struct pam_conv` (pam_set_item copies it into a malloc'd struct). That copy stays
    // valid until the next pam_set_item(PAM_CONV), which frees it, or pam_end; neither can
    // run between this call and the read below, which copies both fields out at once, so
    // no reference to the struct outlives this function. `item` is non-null (handle.item
    // checks) and points to a properly aligned pam_conv.
    let conv = unsafe { item.cast::<ffi::PamConv>().read() };
    let appdata = conv.appdata_ptr;
    conv.conv.is_some().then_some((conv, appdata))
}

/// Copies the answer out of a conversation response, wipes it and frees it.
///
/// # Safety
/// `response` must be null or a malloc'd array of at least one `pam_response` whose
/// `resp` is null or a malloc'd NUL-terminated string, owned by no one else.
unsafe fn take_response(response: *mut ffi::PamResponse) -> Option<Zeroizing<Vec<u8>>> {
    if response.is_null() {
        return None;
    }
    // SAFETY: non-null and valid per this function's contract.
    let resp = unsafe { (*response).resp };
    let answer = if resp.is_null() {
        None
    } else {
        // SAFETY: resp is a NUL-terminated string per the contract.
        let length = unsafe { CStr::from_ptr(resp) }.to_bytes().len();
        // SAFETY: the `length` bytes before the NUL belong to the string's allocation,
        // which we own; no one else reads or writes it now.
        let bytes = unsafe { std::slice::from_raw_parts_mut(resp.cast::<u8>(), length) };
        let mut copy = Zeroizing::new(Vec::with_capacity(length));
        copy.extend_from_slice(bytes);
        bytes.zeroize();
        // SAFETY: resp was allocated with malloc by the application and is freed once.
        unsafe { libc::free(resp.cast()) };
        Some(copy)
    };
    // SAFETY: the array was allocated with malloc by the application and is freed once.
    unsafe { libc::free(response.cast()) };
    answer
}

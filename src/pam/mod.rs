//! The boundary to libpam, and the only place in the crate with `unsafe`. Each entry
//! point checks what C handed it, wraps the handle, runs the safe logic under
//! `catch_unwind`, and maps the result to a C int.

pub mod codes;
mod conv;
mod dumpable;
mod ffi;
mod handle;
mod relay;

use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};

use zeroize::Zeroizing;

use crate::authenticate::{
    audit_abort, authenticate, Conversation, ConversationError, Options, Outcome, Request, Session,
    Status,
};
use crate::clock::SystemClock;
use codes::PamCode;
use conv::PamConversation;
use handle::PamHandle;

/// `auth` entry point: demands a code when the policy says so.
///
/// # Safety
/// Called by libpam with a valid handle and `argc` valid NUL-terminated strings in `argv`.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_authenticate(
    pamh: *mut ffi::PamHandleT,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // What is known of the request, for the audit line of a call that panicked.
    let mut seen: Option<Request> = None;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _no_core = dumpable::NoCoreDumps::begin();
        // SAFETY: libpam passes the handle of the running call; it outlives this closure.
        let Some(handle) = (unsafe { PamHandle::from_raw(pamh) }) else {
            audit_abort(&Request::default(), "libpam passed no PAM handle");
            return PamCode::ServiceErr;
        };
        // SAFETY: libpam passes argc valid strings in argv for the duration of the call.
        let args = unsafe { arguments(argc, argv) };
        let request = Request {
            user: handle.user(),
            service: handle.string_item(ffi::PAM_SERVICE),
            rhost: handle.string_item(ffi::PAM_RHOST),
            args: args.clone().unwrap_or_default(),
            silent: flags & ffi::PAM_SILENT != 0,
            session: Session::Audit,
        };
        if args.is_none() {
            audit_abort(&request, "libpam passed unreadable module arguments");
            return PamCode::ServiceErr;
        }
        let request = seen.insert(request);
        let status = match PamConversation::of(&handle) {
            Some(mut conversation) => login(request, &mut conversation),
            None => login(request, &mut NoConversation),
        };
        PamCode::from(status)
    }));
    result
        .unwrap_or_else(|_| {
            // Writing the line must not unwind into libpam either.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                let request = seen.take().unwrap_or_default();
                audit_abort(&request, "internal error (panic); failed closed");
            }));
            PamCode::SystemErr
        })
        .as_int()
}

/// The login itself, or through the helper when this process cannot finish it: it runs
/// without root (it cannot read the store), or the policy names a store the module does
/// not open. Arguments that do not parse are the core's to report.
fn login(request: &Request, conversation: &mut dyn Conversation) -> Status {
    let Ok(options) = Options::parse(&request.args) else {
        return authenticate(request, conversation, &SystemClock).status();
    };
    if relay::needed() {
        return relay::login(&options, request, conversation);
    }
    match authenticate(request, conversation, &SystemClock) {
        Outcome::Relay => relay::login(&options, request, conversation),
        outcome => outcome.status(),
    }
}

/// `auth` credential step: the module sets no credentials.
///
/// # Safety
/// Called by libpam; no argument is dereferenced.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_setcred(
    _pamh: *mut ffi::PamHandleT,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    PamCode::Success.as_int()
}

/// Stands in when the application set no conversation: every question fails.
struct NoConversation;

impl Conversation for NoConversation {
    fn ask_hidden(
        &mut self,
        _prompt: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        Err(ConversationError)
    }

    fn info(&mut self, _text: &str) -> Result<(), ConversationError> {
        Err(ConversationError)
    }

    fn authtok(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        Err(ConversationError)
    }

    fn set_authtok(&mut self, _value: &[u8]) -> Result<(), ConversationError> {
        Err(ConversationError)
    }
}

/// The module's arguments, lossily decoded (the argument parser refuses a lossy one).
///
/// # Safety
/// `argv` must be null or point to `argc` valid NUL-terminated strings.
unsafe fn arguments(argc: c_int, argv: *const *const c_char) -> Option<Vec<String>> {
    let count = usize::try_from(argc).ok()?;
    if count == 0 {
        return Some(Vec::new());
    }
    if argv.is_null() {
        return None;
    }
    let mut args = Vec::with_capacity(count);
    for index in 0..count {
        // SAFETY: index < argc, and argv holds argc pointers per the contract.
        let arg = unsafe { *argv.add(index) };
        if arg.is_null() {
            return None;
        }
        // SAFETY: each argument is a valid NUL-terminated string per the contract.
        let text = unsafe { CStr::from_ptr(arg) };
        args.push(text.to_string_lossy().into_owned());
    }
    Some(args)
}

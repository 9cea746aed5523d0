//! Links the unwinder statically on GNU/Linux.
//!
//! libpam loads and unloads `pam_mfa.so` at every `pam_start` / `pam_end`. Rust's standard
//! library asks for `-lgcc_s` (the unwinder `catch_unwind` needs), so every login also loaded
//! and unloaded `libgcc_s.so.1`: about 100 µs of a login, which no peer module pays
//! (BENCHMARKS.md). A linker script named `libgcc_s.so`, found before the system's, turns that
//! request into GCC's static `libgcc_eh.a`. Unwinding still works (it finds the module's frames
//! through `dl_iterate_phdr`), and the unwinder's symbols stay local to the module because
//! rustc exports only the `pam_sm_*` entry points. `tests/module.rs` checks both: the module
//! needs no `libgcc_s`, and a panic still ends as `PAM_SYSTEM_ERR`.
//!
//! Set `PAM_MFA_SHARED_LIBGCC=1` to link the shared unwinder as rustc does by default.

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PAM_MFA_SHARED_LIBGCC");

    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let abi = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os != "linux" || abi != "gnu" || env::var_os("PAM_MFA_SHARED_LIBGCC").is_some() {
        return;
    }

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dir = out.join("static-unwinder");
    fs::create_dir_all(&dir).expect("create OUT_DIR/static-unwinder");
    fs::write(dir.join("libgcc_s.so"), "INPUT(-lgcc_eh)\n").expect("write libgcc_s.so script");
    println!("cargo:rustc-link-search=native={}", dir.display());
}

//! The boundaries the crate's layout promises, checked on its sources: only src/pam/ knows
//! libpam, so the safe core (and the setuid helper built on it) never pulls in PAM's glue.

use std::fs;
use std::path::{Path, PathBuf};

fn sources(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

#[test]
fn nothing_outside_src_pam_uses_the_pam_glue() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pam = root.join("src/pam");
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    assert!(files.len() > 20, "found only {} sources", files.len());
    let offenders: Vec<_> = files
        .iter()
        .filter(|f| !f.starts_with(&pam) && !f.ends_with("src/lib.rs"))
        .filter(|f| {
            let text = fs::read_to_string(f).expect("read source");
            text.contains("crate::pam") || text.contains("pam_sys") || text.contains("pam::")
        })
        .collect();
    assert!(offenders.is_empty(), "{offenders:?} use src/pam/ or libpam");
}

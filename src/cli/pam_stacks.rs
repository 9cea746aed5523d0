//! The PAM service files that stack pam_mfa.so, read by `pam-mfa policy check` for what
//! the policy alone cannot show: which stacks pass the module `combined`, and with which
//! policy file.

#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};

use crate::policy;

/// A line of a PAM service file that stacks pam_mfa.so with `combined`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CombinedStack {
    pub file: PathBuf,
    pub line: usize,
    /// The policy the line names (`config=`), or the default one.
    pub config: PathBuf,
}

/// Every line in the service files of `dir` that stacks pam_mfa.so with `combined`. A
/// missing directory has none; a file that cannot be read as text is skipped (it is not
/// the policy's to judge).
pub fn combined_stacks(dir: &Path) -> Vec<CombinedStack> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        for (index, line) in text.lines().enumerate() {
            if let Some(config) = combined_config(line) {
                found.push(CombinedStack {
                    file: file.clone(),
                    line: index + 1,
                    config,
                });
            }
        }
    }
    found
}

/// Whether `a` and `b` name the same policy file (by their real paths when both exist).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The policy path of a `[-]auth CONTROL .../pam_mfa.so ARGS` line whose arguments hold
/// `combined`; None for any other line.
fn combined_config(line: &str) -> Option<PathBuf> {
    let line = line.split('#').next().unwrap_or("");
    let mut words = line.split_whitespace();
    let kind = words.next()?;
    if kind.trim_start_matches('-') != "auth" {
        return None;
    }
    // The control is one word, or a bracketed list that may hold spaces.
    let control = words.next()?;
    if control.starts_with('[') && !control.ends_with(']') {
        words.by_ref().find(|w| w.ends_with(']'))?;
    }
    // Installed as pam_mfa.so; the build's own name is libpam_mfa.so.
    let module = Path::new(words.next()?).file_name()?;
    if module != "pam_mfa.so" && module != "libpam_mfa.so" {
        return None;
    }
    let mut combined = false;
    let mut config = PathBuf::from(policy::DEFAULT_PATH);
    for arg in words {
        if arg == "combined" {
            combined = true;
        } else if let Some(path) = arg.strip_prefix("config=") {
            config = PathBuf::from(path);
        }
    }
    combined.then_some(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_lines_are_found_with_their_policy() {
        let cases = [
            (
                "auth requisite pam_mfa.so combined",
                Some(policy::DEFAULT_PATH),
            ),
            (
                "-auth [success=1 default=die] /lib/security/pam_mfa.so config=/p.toml combined",
                Some("/p.toml"),
            ),
            ("auth required pam_mfa.so config=/p.toml", None),
            (
                "auth required /src/target/release/libpam_mfa.so combined",
                Some(policy::DEFAULT_PATH),
            ),
            ("# auth required pam_mfa.so combined", None),
            ("account required pam_mfa.so combined", None),
            ("auth required pam_unix.so combined", None),
            ("auth required pam_mfa.so debug # combined", None),
        ];
        for (line, expected) in cases {
            assert_eq!(
                combined_config(line),
                expected.map(PathBuf::from),
                "{line:?}"
            );
        }
    }
}

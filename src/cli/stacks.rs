//! What `policy check` reads in the PAM configuration: services that stack pam_mfa.so
//! twice (the pam-auth-update profile in common-auth and a line of their own), which asks
//! the code twice and refuses the second as a replay, and the profile enabled while root
//! has no secret, which shuts root out of every service that includes common-auth.

#![forbid(unsafe_code)]

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::policy;

/// Where the services' stacks are.
pub const PAM_DIR: &str = "/etc/pam.d";

/// The file pam-auth-update writes the profile's line into.
const COMMON_AUTH: &str = "common-auth";

/// Includes deeper than this are a loop (libpam itself stops far sooner).
const MAX_INCLUDE_DEPTH: usize = 16;

/// One finding: where it is (`/etc/pam.d/sshd:3`) and what to do about it.
#[derive(Debug)]
pub struct StackWarning {
    pub at: String,
    pub message: String,
}

/// The warnings about the stacks in `pam_dir`. `root_has_secret` is asked only when
/// common-auth stacks the module.
pub fn warnings(pam_dir: &Path, root_has_secret: impl FnOnce() -> bool) -> Vec<StackWarning> {
    let mut found = Vec::new();
    let services = match services(pam_dir) {
        Ok(services) => services,
        // No PAM configuration at all: nothing stacks the module.
        Err(e) if e.kind() == ErrorKind::NotFound => return found,
        Err(e) => {
            found.push(unreadable(pam_dir, &e));
            return found;
        }
    };
    for service in &services {
        let mut reader = Reader::new(pam_dir);
        let places = reader.module_lines(service, 0);
        found.append(&mut reader.problems);
        if places.len() > 1 {
            found.push(StackWarning {
                at: places[places.len() - 1].to_string(),
                message: format!(
                    "pam_mfa.so is stacked {} times for service {service} ({}): the code is \
                     asked twice and the second time refused as a replay; keep the \
                     pam-auth-update profile or the service's own line, not both",
                    places.len(),
                    places
                        .iter()
                        .map(|p| p.short())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    let mut reader = Reader::new(pam_dir);
    let profile = reader.module_lines(COMMON_AUTH, 0);
    if let Some(first) = profile.first() {
        if !root_has_secret() {
            found.push(StackWarning {
                at: first.to_string(),
                message: "pam_mfa.so is in common-auth (the pam-auth-update profile) and root \
                          has no secret: root must give a code, so every service that \
                          includes common-auth refuses root; run `pam-mfa enroll root` first"
                    .into(),
            });
        }
    }
    found
}

/// A line of a PAM service file that stacks pam_mfa.so with `combined`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CombinedStack {
    pub file: PathBuf,
    pub line: usize,
    /// The policy the line names (`config=`), or the default one.
    pub config: PathBuf,
}

/// Every line in the files of `pam_dir` that stacks pam_mfa.so with `combined`. A missing
/// directory has none; a file that cannot be read as text is skipped (it is not the
/// policy's to judge).
pub fn combined_stacks(pam_dir: &Path) -> Vec<CombinedStack> {
    let Ok(entries) = fs::read_dir(pam_dir) else {
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

/// The policy path of an auth line that stacks pam_mfa.so with `combined`; None for any
/// other line.
fn combined_config(line: &str) -> Option<PathBuf> {
    let Some(Entry::Module(module, args)) = parse(line) else {
        return None;
    };
    if !is_pam_mfa(module) || !args.contains(&"combined") {
        return None;
    }
    let config = args.iter().find_map(|a| a.strip_prefix("config="));
    Some(PathBuf::from(config.unwrap_or(policy::DEFAULT_PATH)))
}

/// Whether a module path names this module: installed as pam_mfa.so, built as
/// libpam_mfa.so.
fn is_pam_mfa(module: &str) -> bool {
    let base = module.rsplit('/').next().unwrap_or(module);
    base == "pam_mfa.so" || base == "libpam_mfa.so"
}

/// The service files: every regular file but the common-* ones other files include, and
/// the copies package managers and editors leave, which libpam never reads as services.
fn services(pam_dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(pam_dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let backup = name.ends_with('~') || name.contains(".dpkg-") || name.contains(".ucf-");
        if !(name.starts_with("common-") || name.starts_with('.') || backup) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// A line that stacks pam_mfa.so in the auth section.
#[derive(Debug)]
struct Place {
    path: PathBuf,
    line: usize,
}

impl Place {
    /// `sshd:3`, for a list of places in one message.
    fn short(&self) -> String {
        let name = self.path.file_name().unwrap_or(self.path.as_os_str());
        format!("{}:{}", name.to_string_lossy(), self.line)
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// Follows a service's auth stack through `@include`, `include` and `substack`.
struct Reader<'a> {
    pam_dir: &'a Path,
    problems: Vec<StackWarning>,
}

impl<'a> Reader<'a> {
    fn new(pam_dir: &'a Path) -> Self {
        Reader {
            pam_dir,
            problems: Vec::new(),
        }
    }

    /// The auth lines that stack pam_mfa.so, in `file` and what it includes, in order.
    fn module_lines(&mut self, file: &str, depth: usize) -> Vec<Place> {
        let path = self.pam_dir.join(file);
        if depth > MAX_INCLUDE_DEPTH {
            self.problems.push(StackWarning {
                at: path.display().to_string(),
                message: "includes nest too deep (a loop?); the stacks were not all checked".into(),
            });
            return Vec::new();
        }
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            // libpam skips a missing include as well.
            Err(e) if e.kind() == ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                self.problems.push(unreadable(&path, &e));
                return Vec::new();
            }
        };
        let mut places = Vec::new();
        for (index, line) in text.lines().enumerate() {
            match parse(line) {
                Some(Entry::Include(name)) => {
                    places.append(&mut self.module_lines(name, depth + 1));
                }
                Some(Entry::Module(module, _)) if is_pam_mfa(module) => {
                    places.push(Place {
                        path: path.clone(),
                        line: index + 1,
                    });
                }
                Some(Entry::Module(..)) | None => {}
            }
        }
        places
    }
}

/// What an auth line of a PAM file does.
enum Entry<'l> {
    /// `@include FILE`, or `auth include|substack FILE`.
    Include(&'l str),
    /// `auth CONTROL MODULE [ARGS]`.
    Module(&'l str, Vec<&'l str>),
}

/// One line of a PAM file, for the auth section only; comments and other sections are
/// None.
fn parse(line: &str) -> Option<Entry<'_>> {
    let line = line.split('#').next().unwrap_or_default();
    let mut words = line.split_whitespace();
    let first = words.next()?;
    if first == "@include" {
        return words.next().map(Entry::Include);
    }
    // `-auth`: the same line, quiet when its module is missing.
    if first.trim_start_matches('-') != "auth" {
        return None;
    }
    let mut control = words.next()?.to_string();
    // `[success=done default=die]` may hold spaces.
    if control.starts_with('[') {
        while !control.ends_with(']') {
            control.push(' ');
            control.push_str(words.next()?);
        }
    }
    let target = words.next()?;
    if control == "include" || control == "substack" {
        Some(Entry::Include(target))
    } else {
        Some(Entry::Module(target, words.collect()))
    }
}

fn unreadable(path: &Path, e: &std::io::Error) -> StackWarning {
    let hint = if e.kind() == ErrorKind::PermissionDenied {
        " (run as root)"
    } else {
        ""
    };
    StackWarning {
        at: path.display().to_string(),
        message: format!("cannot read it{hint}: {e}; the PAM stacks were not all checked"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_lines_are_read_as_libpam_reads_them() {
        assert!(matches!(
            parse("@include common-auth"),
            Some(Entry::Include("common-auth"))
        ));
        assert!(matches!(
            parse("auth  [success=done ignore=ignore default=die]  pam_mfa.so config=/x"),
            Some(Entry::Module("pam_mfa.so", _))
        ));
        assert!(matches!(
            parse("-auth optional /lib/security/pam_mfa.so"),
            Some(Entry::Module("/lib/security/pam_mfa.so", _))
        ));
        assert!(matches!(
            parse("auth substack common-auth"),
            Some(Entry::Include("common-auth"))
        ));
        assert!(parse("# auth required pam_mfa.so").is_none());
        assert!(parse("account required pam_mfa.so").is_none());
        assert!(parse("auth [default=die").is_none());
    }

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

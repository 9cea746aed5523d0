//! What the package ships from `pam-mfa generate-completions` and `generate-man`, used
//! as a user meets it: completions run in a real bash and fish, man pages rendered by
//! man(1) with its warnings on.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

fn pam_mfa() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pam-mfa"))
}

/// Runs `pam-mfa generate-SOMETHING DIR` and returns DIR.
fn generate(what: &str) -> TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = Command::new(pam_mfa())
        .arg(format!("generate-{what}"))
        .arg(dir.path())
        .output()
        .expect("run pam-mfa");
    assert!(out.status.success(), "generate-{what}: {out:?}");
    dir
}

fn tool(name: &str) -> Command {
    let found = ["/usr/bin", "/bin"]
        .iter()
        .any(|dir| Path::new(dir).join(name).exists());
    assert!(found, "{name} is missing: scripts/deps.sh installs it");
    Command::new(name)
}

/// What bash offers for `line` (the cursor at its end) with the package's script
/// sourced: the function `complete -p pam-mfa` names, called the way readline calls it.
fn bash_completes(script: &Path, line: &str) -> Vec<String> {
    const DRIVER: &str = r#"
source "$1" || exit 90
fn=$(complete -p pam-mfa | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
[ -n "$fn" ] || exit 91
line=$2
read -ra COMP_WORDS <<<"$line"
[[ $line == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE=$line
COMP_POINT=${#line}
"$fn" pam-mfa "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let out = tool("bash")
        .args(["--norc", "--noprofile", "-c", DRIVER, "bash"])
        .arg(script)
        .arg(line)
        .output()
        .expect("run bash");
    assert!(out.status.success(), "bash completion of {line:?}: {out:?}");
    words(&out.stdout)
}

/// What fish offers for `line` with the package's script sourced (`complete -C`).
fn fish_completes(script: &Path, line: &str) -> Vec<String> {
    let out = tool("fish")
        .args([
            "--no-config",
            "-c",
            "source $argv[1]; and complete -C $argv[2]",
        ])
        .arg(script)
        .arg(line)
        .output()
        .expect("run fish");
    assert!(out.status.success(), "fish completion of {line:?}: {out:?}");
    // Each line is a candidate, then a tab and its description.
    words(&out.stdout)
        .into_iter()
        .map(|line| line.split('\t').next().unwrap_or_default().to_string())
        .collect()
}

fn words(output: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(output)
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn bash_completes_option_values_and_nested_subcommands() {
    let dir = generate("completions");
    let script = dir.path().join("pam-mfa.bash");

    let algorithms = bash_completes(&script, "pam-mfa enroll --algorithm ");
    assert_eq!(
        algorithms.into_iter().collect::<BTreeSet<_>>(),
        set(&["sha1", "sha256", "sha512"])
    );
    assert_eq!(
        bash_completes(&script, "pam-mfa policy ex"),
        vec!["explain"]
    );
    assert_eq!(
        bash_completes(&script, "pam-mfa enroll --qr a"),
        vec!["ansi"]
    );
    let options = bash_completes(&script, "pam-mfa import google-authenticator --");
    assert!(options.contains(&"--all-homes".to_string()), "{options:?}");
    assert!(options.contains(&"--user".to_string()), "{options:?}");
}

#[test]
fn bash_offers_the_subcommands_users_run_and_not_the_packaging_ones() {
    let dir = generate("completions");
    let offered = bash_completes(&dir.path().join("pam-mfa.bash"), "pam-mfa ");
    for visible in [
        "enroll", "status", "unlock", "remove", "recovery", "policy", "import",
    ] {
        assert!(offered.contains(&visible.to_string()), "{offered:?}");
    }
    assert!(
        !offered.iter().any(|word| word.starts_with("generate")),
        "{offered:?}"
    );
    assert_eq!(
        bash_completes(&dir.path().join("pam-mfa.bash"), "pam-mfa gen"),
        Vec::<String>::new()
    );
}

#[test]
fn fish_completes_option_values_and_nested_subcommands() {
    let dir = generate("completions");
    let script = dir.path().join("pam-mfa.fish");

    assert_eq!(
        fish_completes(&script, "pam-mfa enroll --algorithm ")
            .into_iter()
            .collect::<BTreeSet<_>>(),
        set(&["sha1", "sha256", "sha512"])
    );
    assert_eq!(
        fish_completes(&script, "pam-mfa policy ex"),
        vec!["explain"]
    );
    let offered = fish_completes(&script, "pam-mfa ");
    assert!(offered.contains(&"enroll".to_string()), "{offered:?}");
    assert!(
        !offered.iter().any(|word| word.starts_with("generate")),
        "{offered:?}"
    );
}

/// `man -l PAGE` as text, with man's and groff's warnings: each must be empty.
fn render(page: &Path) -> String {
    let out = tool("man")
        .args(["--warnings", "-E", "UTF-8", "-P", "cat", "-l"])
        .arg(page)
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("run man");
    assert!(out.status.success(), "man -l {}: {out:?}", page.display());
    assert!(
        out.stderr.is_empty(),
        "man -l {} warns: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of a section: the lines after its heading, up to the next heading.
fn section<'a>(page: &'a str, heading: &str) -> Vec<&'a str> {
    page.lines()
        .skip_while(|line| *line != heading)
        .skip(1)
        .take_while(|line| line.is_empty() || line.starts_with(' '))
        .collect()
}

#[test]
fn man_pages_render_cleanly_and_every_page_they_name_exists() {
    let dir = generate("man");
    let packaged = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/man");
    let mut shipped = BTreeSet::new();
    let mut pages = Vec::new();
    for folder in [dir.path(), packaged.as_path()] {
        for entry in fs::read_dir(folder).expect("read man directory") {
            let path = entry.expect("directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // policy.toml.5 is page policy.toml(5).
            let (page, section) = name.rsplit_once('.').expect("NAME.SECTION");
            shipped.insert(format!("{page}({section})"));
            pages.push(path);
        }
    }
    assert!(shipped.contains("pam-mfa(8)"), "{shipped:?}");
    assert!(shipped.contains("pam-mfa-policy-check(8)"), "{shipped:?}");

    for page in &pages {
        let text = render(page);
        // Every reference to a page of ours names one the package ships.
        for reference in references(&text) {
            assert!(
                shipped.contains(&reference),
                "{} names {reference}, which is not shipped ({shipped:?})",
                page.display()
            );
        }
        // The synopsis shows the command as it is typed: `pam-mfa policy check`, not a
        // binary called pam-mfa-policy-check. (pam-mfa-user is a binary of its own.)
        let synopsis = section(&text, "SYNOPSIS");
        let own_binary = page.file_name().is_some_and(|n| n == "pam-mfa-user.1");
        assert!(
            synopsis.iter().all(|line| {
                let line = line.trim_start();
                !line.starts_with("pam-mfa-") || (own_binary && line.starts_with("pam-mfa-user "))
            }),
            "{}: {synopsis:?}",
            page.display()
        );
    }

    let check = render(&dir.path().join("pam-mfa-policy-check.8"));
    assert!(
        section(&check, "SYNOPSIS")
            .iter()
            .any(|line| line.trim_start().starts_with("pam-mfa policy check ")),
        "{check}"
    );
    assert!(section(&check, "SEE ALSO").join(" ").contains("pam-mfa(8)"));
}

/// The pages of ours a text names: `pam-mfa-unlock(8)`, `pam_mfa(8)`.
fn references(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || c == ',') {
        let word = word.trim_start_matches('(');
        if !(word.starts_with("pam-mfa") || word.starts_with("pam_mfa")) {
            continue;
        }
        if let Some(open) = word.find('(') {
            if let Some(close) = word[open..].find(')') {
                found.push(word[..open + close + 1].to_string());
            }
        }
    }
    found
}

#[test]
fn the_command_page_describes_the_command_with_examples_files_and_see_also() {
    let dir = generate("man");
    let page = render(&dir.path().join("pam-mfa.8"));

    let name = section(&page, "NAME").join(" ");
    assert!(name.contains("pam-mfa - The admin command"), "{name}");
    assert!(!name.contains("PAM module that"), "{name}");
    let examples = section(&page, "EXAMPLES").join("\n");
    assert!(examples.contains("pam-mfa enroll root"), "{page}");
    assert!(examples.contains("pam-mfa policy check"), "{page}");
    let files = section(&page, "FILES").join("\n");
    assert!(files.contains("/etc/pam-mfa/policy.toml"), "{page}");
    assert!(files.contains("/var/lib/pam-mfa"), "{page}");
    let see_also = section(&page, "SEE ALSO").join(" ");
    assert!(see_also.contains("pam_mfa(8)"), "{page}");
    assert!(see_also.contains("policy.toml(5)"), "{page}");
    let subcommands = section(&page, "SUBCOMMANDS").join("\n");
    assert!(subcommands.contains("pam-mfa-enroll(8)"), "{page}");
    assert!(!page.contains("pam-mfa-help"), "{page}");
    assert!(!page.contains("generate-"), "{page}");
}

#[test]
fn enroll_help_names_hotp_as_well_as_totp() {
    let out = Command::new(pam_mfa())
        .args(["enroll", "--help"])
        .output()
        .expect("run pam-mfa");
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    let summary = help.lines().next().unwrap_or_default();
    assert!(summary.contains("HOTP"), "{summary}");
    assert!(summary.contains("--hotp"), "{summary}");
}

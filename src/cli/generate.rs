//! Hidden subcommands for packaging: man pages and shell completions generated from the
//! same command definition users run, so they cannot drift apart.

#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use clap_complete::{Generator, Shell};

use super::{Cli, CliError};

/// The name users type; the man pages of subcommands are named after it
/// (`pam-mfa-enroll.8`) but show it in their synopsis (`pam-mfa enroll`).
const BIN: &str = "pam-mfa";

#[derive(Args, Debug)]
pub struct OutputDir {
    /// Directory to write into (created if missing).
    dir: PathBuf,
}

/// Writes pam-mfa.8 and one page per subcommand (pam-mfa-enroll.8, ...).
pub fn man(args: &OutputDir) -> Result<(), CliError> {
    fs::create_dir_all(&args.dir).map_err(|e| io_error(&args.dir, e))?;
    let mut command = visible_command();
    // Building fills in every subcommand's bin name ("pam-mfa policy check"), which is
    // what its synopsis must show: there is no pam-mfa-policy-check binary.
    command.build();
    write_page(&args.dir, &command, BIN, COMMAND_SECTIONS)?;
    for sub in command.get_subcommands() {
        let name = format!("{BIN}-{}", sub.get_name());
        write_page(&args.dir, &page_of(sub, &name), &name, SUBCOMMAND_SECTIONS)?;
        for nested in sub.get_subcommands() {
            let nested_name = format!("{name}-{}", nested.get_name());
            write_page(
                &args.dir,
                &page_of(nested, &nested_name),
                &nested_name,
                SUBCOMMAND_SECTIONS,
            )?;
        }
    }
    Ok(())
}

/// Writes completions for bash, zsh and fish.
pub fn completions(args: &OutputDir) -> Result<(), CliError> {
    fs::create_dir_all(&args.dir).map_err(|e| io_error(&args.dir, e))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut visible_command(), BIN, &mut script);
        let mut script = String::from_utf8(script)
            .map_err(|_| CliError::new(format!("the {shell} completion script is not UTF-8")))?;
        if shell == Shell::Bash {
            script = fix_bash_states(&script, BIN);
        }
        let path = args.dir.join(shell.file_name(BIN));
        fs::write(&path, script).map_err(|e| io_error(&path, e))?;
    }
    Ok(())
}

/// The command users see: without the hidden packaging subcommands (completions would
/// offer them, clap_complete does not skip hidden subcommands) and without clap's `help`
/// subcommand, which has no man page of its own (`pam-mfa help enroll` is `pam-mfa enroll
/// --help`). clap cannot remove a subcommand, so the command is built anew from the
/// visible ones.
fn visible_command() -> clap::Command {
    let full = Cli::command();
    let mut visible = clap::Command::new(BIN)
        .version(full.get_version().unwrap_or_default().to_owned())
        .propagate_version(true)
        .subcommand_required(true)
        .arg_required_else_help(true)
        .disable_help_subcommand(true)
        .subcommands(
            full.get_subcommands()
                .filter(|sub| !sub.is_hide_set())
                .map(|sub| sub.clone().disable_help_subcommand(true)),
        );
    if let Some(about) = full.get_about() {
        visible = visible.about(about.clone());
    }
    if let Some(long_about) = full.get_long_about() {
        visible = visible.long_about(long_about.clone());
    }
    visible
}

/// A subcommand as its own page: named `pam-mfa-enroll` in the title and NAME line.
fn page_of(sub: &clap::Command, name: &str) -> clap::Command {
    sub.clone().display_name(name.to_owned())
}

/// clap_complete (4.6.11, the newest release; clap-rs/clap#6421, #6529 open) spells the
/// bash states of a hyphenated binary's subcommands two ways: the loop that walks the
/// words arrives at `pam__mfa__subcmd__enroll`, the case labels say
/// `pam__subcmd__mfa__subcmd__enroll`, so nothing after the first word completes. This
/// spells the labels as the loop does; on a fixed release it changes nothing.
fn fix_bash_states(script: &str, bin: &str) -> String {
    let as_labelled = format!("{}__subcmd__", bin.replace('-', "__subcmd__"));
    let as_walked = format!("{}__subcmd__", bin.replace('-', "__"));
    script.replace(&as_labelled, &as_walked)
}

fn write_page(
    dir: &Path,
    command: &clap::Command,
    name: &str,
    sections: &str,
) -> Result<(), CliError> {
    let version = command.get_version().unwrap_or_default();
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .section("8")
        .source(format!("{BIN} {version}"))
        .manual("System Administration")
        .render(&mut page)
        .map_err(|e| CliError::new(format!("rendering {name}.8: {e}")))?;
    page.extend_from_slice(sections.as_bytes());
    let path = dir.join(format!("{name}.8"));
    fs::write(&path, page).map_err(|e| io_error(&path, e))
}

fn io_error(path: &Path, e: std::io::Error) -> CliError {
    CliError::new(format!("{}: {e}", path.display()))
}

/// What pam-mfa(8) says after the generated sections: roff, as in packaging/man.
const COMMAND_SECTIONS: &str = r#".SH EXIT STATUS
0 on success; 1 on an error, reported as one line on standard error starting
.RB \(dq pam\-mfa: \(dq ;
2 on a usage error.
.B status \-\-missing
exits 1 while an account that needs a code has no secret.
.SH EXAMPLES
Enroll root first, and keep its recovery codes somewhere safe:
.PP
.RS
.nf
pam\-mfa enroll root
.fi
.RE
.PP
Enroll a counter\-based token, the QR code also as an image:
.PP
.RS
.nf
pam\-mfa enroll ops \-\-hotp \-\-qr\-png /root/ops.png
.fi
.RE
.PP
Check the policy, see what it decides for an account, and who still has no secret:
.PP
.RS
.nf
pam\-mfa policy check
pam\-mfa policy explain alice \-\-service sshd \-\-rhost 10.1.2.3
pam\-mfa status \-\-missing
.fi
.RE
.PP
Carry over existing secrets (run again, an account with the same secret is
reported unchanged), then give new recovery codes to every enrolled account that
has none left:
.PP
.RS
.nf
pam\-mfa import google\-authenticator \-\-all\-homes
pam\-mfa import uri \-\-user bob < bob.uri
pam\-mfa recovery \-\-all\-missing \-\-yes
.fi
.RE
.SH FILES
.TP
.I /etc/pam\-mfa/policy.toml
The policy: who must, who may and who need not give a code (see
.BR policy.toml (5)).
.TP
.I /var/lib/pam\-mfa
The default store: per account a secret record
.RI ( USER .toml),
its state
.RI ( USER .state)
and its recovery codes
.RI ( USER .recovery).
Root's only.
.TP
.I /usr/share/pam\-configs/pam\-mfa
The pam\-auth\-update profile, not enabled when the package is installed.
.SH SEE ALSO
.BR pam_mfa (8),
.BR policy.toml (5),
.BR pam\-mfa\-enroll (8),
.BR pam\-mfa\-status (8),
.BR pam\-mfa\-policy (8),
.BR pam\-mfa\-import (8),
.BR pam\-auth\-update (8),
.BR oathtool (1)
"#;

/// What every subcommand's page says last.
const SUBCOMMAND_SECTIONS: &str = r#".SH SEE ALSO
.BR pam\-mfa (8),
.BR pam_mfa (8),
.BR policy.toml (5)
"#;

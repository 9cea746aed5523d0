//! Hidden subcommands for packaging: man pages and shell completions generated from the
//! same command definition users run, so they cannot drift apart.

#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, CliError};

#[derive(Args, Debug)]
pub struct OutputDir {
    /// Directory to write into (created if missing).
    dir: PathBuf,
}

/// Writes pam-mfa.8 and one page per subcommand (pam-mfa-enroll.8, ...).
pub fn man(args: &OutputDir) -> Result<(), CliError> {
    fs::create_dir_all(&args.dir).map_err(|e| io_error(&args.dir, e))?;
    let command = Cli::command();
    write_page(&args.dir, &command, "pam-mfa")?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("pam-mfa-{}", sub.get_name());
        write_page(&args.dir, &sub.clone().name(name.clone()), &name)?;
        for nested in sub.get_subcommands() {
            let nested_name = format!("{name}-{}", nested.get_name());
            write_page(
                &args.dir,
                &nested.clone().name(nested_name.clone()),
                &nested_name,
            )?;
        }
    }
    Ok(())
}

fn write_page(dir: &Path, command: &clap::Command, name: &str) -> Result<(), CliError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .section("8")
        .render(&mut page)
        .map_err(|e| CliError::new(format!("rendering {name}.8: {e}")))?;
    let path = dir.join(format!("{name}.8"));
    fs::write(&path, page).map_err(|e| io_error(&path, e))
}

/// Writes completions for bash, zsh and fish.
pub fn completions(args: &OutputDir) -> Result<(), CliError> {
    fs::create_dir_all(&args.dir).map_err(|e| io_error(&args.dir, e))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut command = Cli::command();
        clap_complete::generate_to(shell, &mut command, "pam-mfa", &args.dir)
            .map_err(|e| io_error(&args.dir, e))?;
    }
    Ok(())
}

fn io_error(path: &Path, e: std::io::Error) -> CliError {
    CliError::new(format!("{}: {e}", path.display()))
}

//! Reading secrets, codes and confirmations from standard input without leaving copies:
//! unbuffered, one byte at a time into a buffer that is sized once and wiped on drop.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsFd;

use zeroize::Zeroizing;

use super::CliError;

/// Longest line accepted.
const MAX_LINE: usize = 1024;

/// Reads one line from standard input, without its line ending. Reads byte by byte, from
/// a duplicate of descriptor 0 rather than through `io::stdin()`, whose 8 KiB buffer would
/// keep a copy of whatever arrived (the rest of a piped secret, the next answers) until the
/// process ends; the next line stays in the pipe for the next question.
pub fn read_line(what: &str) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_LINE));
    let mut stdin = io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .map_err(|e| CliError::new(format!("cannot read the {what}: {e}")))?;
    let mut byte = [0u8; 1];
    loop {
        match stdin.read(&mut byte) {
            Ok(0) if line.is_empty() => {
                return Err(CliError::new(format!("no {what} on standard input")))
            }
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) if line.len() == MAX_LINE => {
                return Err(CliError::new(format!("the {what} line is too long")))
            }
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CliError::new(format!("cannot read the {what}: {e}"))),
        }
    }
    byte.fill(0);
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

/// Asks a yes/no question unless `yes` was given; anything but "y" or "yes" cancels.
pub fn confirm(question: &str, yes: bool) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    // The question is for a person at a terminal; a script's answer comes without it, so
    // an error stays on a line of its own.
    if io::stdin().is_terminal() {
        eprint!("{question} [y/N] ");
        let _ = io::stderr().flush();
    }
    let answer = read_line("answer").unwrap_or_default();
    match String::from_utf8_lossy(&answer)
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "y" | "yes" => Ok(()),
        _ => Err(CliError::new(
            "cancelled; nothing was changed (use --yes to skip the question)",
        )),
    }
}

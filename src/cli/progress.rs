//! Progress of a run over many accounts, on stderr: each account costs an Argon2id hash
//! or more (~140 ms), so hundreds take minutes. On a terminal one line is rewritten in
//! place; elsewhere (a log, a pipe) a line every [`LOG_EVERY`] accounts, so that a log
//! gets short lines and no run of carriage returns.

#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant};

/// Accounts between two progress lines when stderr is not a terminal.
pub const LOG_EVERY: usize = 5;

pub struct Progress {
    what: &'static str,
    total: usize,
    started: Instant,
    terminal: bool,
    shown: bool,
    /// The count last shown: a log gets each line once.
    last: usize,
}

impl Progress {
    /// Progress over `total` items, each called `what` ("accounts").
    pub fn new(what: &'static str, total: usize) -> Progress {
        Progress {
            what,
            total,
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            shown: false,
            last: 0,
        }
    }

    /// `done` of the items are done.
    pub fn update(&mut self, done: usize) {
        // A run no longer than one step is quick: no progress at all.
        if self.total <= LOG_EVERY || done == 0 {
            return;
        }
        if !self.terminal && (done % LOG_EVERY != 0 || done == self.last) {
            return;
        }
        self.last = done;
        let line = self.line(done, self.started.elapsed());
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            // \x1b[K clears what a longer previous line left.
            let _ = write!(stderr, "\r{line}\x1b[K");
        } else {
            let _ = writeln!(stderr, "{line}");
        }
        let _ = stderr.flush();
        self.shown = true;
    }

    /// Takes the rewritten line off the terminal, so that a line printed now takes its
    /// place; the next update draws it again below.
    pub fn clear(&mut self) {
        if self.terminal && self.shown {
            eprint!("\r\x1b[K");
        }
        self.shown = false;
    }

    /// Ends the rewritten line, so that what follows starts on its own.
    pub fn finish(&mut self) {
        if self.terminal && self.shown {
            eprintln!();
        }
        self.shown = false;
    }

    /// `pam-mfa: 50/400 accounts, about 49 s left`.
    fn line(&self, done: usize, elapsed: Duration) -> String {
        let mut line = format!("pam-mfa: {done}/{} {}", self.total, self.what);
        if done < self.total {
            // Each item so far took elapsed / done; the rest will take about as long.
            let left = elapsed.as_secs_f64() / done as f64 * (self.total - done) as f64;
            line.push_str(&format!(", about {} left", duration(left)));
        }
        line
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `12 s`, `3 min`, `2 h 5 min`: as precise as a person needs to wait.
fn duration(seconds: f64) -> String {
    let seconds = seconds.round() as u64;
    match seconds {
        0..=89 => format!("{seconds} s"),
        90..=5399 => format!("{} min", (seconds + 30) / 60),
        _ => format!("{} h {} min", seconds / 3600, (seconds % 3600 + 30) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_has_count_and_time_left() {
        let progress = Progress {
            what: "accounts",
            total: 400,
            started: Instant::now(),
            terminal: false,
            shown: false,
            last: 0,
        };
        assert_eq!(
            progress.line(50, Duration::from_secs(7)),
            "pam-mfa: 50/400 accounts, about 49 s left"
        );
        assert_eq!(
            progress.line(100, Duration::from_secs(14)),
            "pam-mfa: 100/400 accounts, about 42 s left"
        );
        assert_eq!(
            progress.line(10, Duration::from_secs(10)),
            "pam-mfa: 10/400 accounts, about 7 min left"
        );
        assert_eq!(
            progress.line(400, Duration::from_secs(56)),
            "pam-mfa: 400/400 accounts"
        );
    }

    #[test]
    fn durations_read_as_a_person_would_say_them() {
        assert_eq!(duration(0.4), "0 s");
        assert_eq!(duration(89.0), "89 s");
        assert_eq!(duration(90.0), "2 min");
        assert_eq!(duration(4200.0), "70 min");
        assert_eq!(duration(7800.0), "2 h 10 min");
    }
}

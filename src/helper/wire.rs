//! The pipe between a caller (the module, or `pam-mfa me`) and the helper `pam-mfa-check`.
//! A frame is a 4-byte big-endian length and that many bytes of JSON, at most
//! [`MAX_FRAME`], read and written before one deadline. Conversation texts and answers
//! cross as lowercase hex: a hex string has no JSON escapes, so it is borrowed straight
//! from the frame (which lives in zeroizing memory) and decoded into zeroizing memory;
//! a JSON string with escapes would be unescaped by the parser into a buffer nobody wipes.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use data_encoding::HEXLOWER;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use nix::sys::stat::{fstat, SFlag};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::authenticate::Status;

/// The largest frame either side sends or accepts, length prefix excluded. An enrollment
/// at login (QR code and link, in hex) needs about 12 KiB.
pub const MAX_FRAME: usize = 64 * 1024;

/// What the caller sends: one request first, then one reply per question.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ToHelper<'a> {
    /// Authenticate this PAM request (the first frame of a login).
    Login(LoginRequest),
    /// Self-service for the caller's own account (the first frame of `pam-mfa-user`).
    Me(super::me::MeRequest),
    /// The answer to `Ask` or `Authtok`, in hex; None for a NULL answer or unset item.
    Answer {
        #[serde(borrow)]
        hex: Option<&'a str>,
    },
    /// `Info`, `Error` or `SetAuthtok` was done.
    Done,
    /// The caller's conversation failed.
    Failed,
}

/// A PAM request as the module saw it. The caller's audit session is not in it: the
/// helper reads its own, which the kernel gave it from the caller.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub user: Option<String>,
    pub service: String,
    pub rhost: String,
    /// The module's arguments, as in the PAM service file.
    pub args: Vec<String>,
    /// PAM_SILENT.
    pub silent: bool,
}

/// What the helper sends: questions, then one final status.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ToCaller<'a> {
    /// Ask with echo off (the text in hex); answered by `Answer` or `Failed`.
    Ask { hex: &'a str },
    /// Show an informational line; answered by `Done` or `Failed`.
    Info { hex: &'a str },
    /// Show an error line; answered by `Done` or `Failed`.
    Error { hex: &'a str },
    /// Request a failure delay (pam_fail_delay); not answered.
    Delay { microseconds: u32 },
    /// Send PAM_AUTHTOK; answered by `Answer` or `Failed`.
    Authtok,
    /// Set PAM_AUTHTOK; answered by `Done` or `Failed`.
    SetAuthtok { hex: &'a str },
    /// The end: how the request ended.
    Finished { status: Status },
}

/// Bytes as lowercase hex, in zeroizing memory.
pub fn hex(bytes: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(vec![0u8; HEXLOWER.encode_len(bytes.len())]);
    HEXLOWER.encode_mut(bytes, &mut out);
    let mut text = Zeroizing::new(String::with_capacity(out.len()));
    // Hex digits are ASCII; the copy goes into memory that is wiped too.
    text.extend(out.iter().map(|&b| char::from(b)));
    text
}

/// Lowercase hex back to bytes, in zeroizing memory.
pub fn unhex(text: &str) -> io::Result<Zeroizing<Vec<u8>>> {
    let invalid = || io::Error::new(ErrorKind::InvalidData, "bad hex in a frame");
    let length = HEXLOWER.decode_len(text.len()).map_err(|_| invalid())?;
    let mut out = Zeroizing::new(vec![0u8; length]);
    HEXLOWER
        .decode_mut(text.as_bytes(), &mut out)
        .map_err(|_| invalid())?;
    Ok(out)
}

/// A connected pair of stream sockets (close-on-exec) for the helper's standard input and
/// output: one end for the helper, the other for its caller's [`Channel`].
pub fn stream_pair() -> nix::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

/// One end of the pipe, both directions, with the deadline of the whole exchange.
pub struct Channel {
    input: File,
    output: File,
    /// `output` is a socket: written with MSG_NOSIGNAL (see [`Channel::new`]).
    output_is_socket: bool,
    deadline: Instant,
}

impl Channel {
    /// Reads from `input` and writes to `output` (made non-blocking, so no read or
    /// write outlasts the deadline) until `deadline`. When `output` is a socket (the
    /// module's end, from [`stream_pair`]), a write after the peer has gone fails with
    /// EPIPE and raises no SIGPIPE: the module runs inside someone else's process (a
    /// screen locker), whose SIGPIPE would end it, and with it the lock.
    pub fn new(input: OwnedFd, output: OwnedFd, deadline: Instant) -> io::Result<Channel> {
        for fd in [&input, &output] {
            let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
            fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        }
        let kind = SFlag::from_bits_truncate(fstat(&output)?.st_mode) & SFlag::S_IFMT;
        Ok(Channel {
            input: File::from(input),
            output: File::from(output),
            output_is_socket: kind == SFlag::S_IFSOCK,
            deadline,
        })
    }

    /// Sends one message as one frame.
    pub fn send<T: Serialize>(&mut self, message: &T) -> io::Result<()> {
        let mut counter = Counter(0);
        serde_json::to_writer(&mut counter, message)?;
        let length = counter.0;
        if length > MAX_FRAME {
            return Err(io::Error::new(ErrorKind::InvalidInput, "frame too large"));
        }
        // Sized once: a growing Vec would leave copies of the frame behind in freed memory.
        let mut frame = Zeroizing::new(Vec::with_capacity(4 + length));
        frame.extend_from_slice(&u32::try_from(length).unwrap_or(u32::MAX).to_be_bytes());
        serde_json::to_writer(&mut *frame, message)?;
        self.write_all(&frame)
    }

    /// Receives one frame, in zeroizing memory; parse it with `serde_json::from_slice`.
    pub fn receive(&mut self) -> io::Result<Zeroizing<Vec<u8>>> {
        let mut prefix = [0u8; 4];
        self.read_exact(&mut prefix)?;
        let length = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
        if length > MAX_FRAME {
            return Err(io::Error::new(ErrorKind::InvalidData, "frame too large"));
        }
        let mut frame = Zeroizing::new(vec![0u8; length]);
        self.read_exact(&mut frame)?;
        Ok(frame)
    }

    fn read_exact(&mut self, mut buffer: &mut [u8]) -> io::Result<()> {
        while !buffer.is_empty() {
            self.wait(Direction::In)?;
            match self.input.read(buffer) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(n) => buffer = &mut buffer[n..],
                Err(e) if retry(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            self.wait(Direction::Out)?;
            let written = if self.output_is_socket {
                send(self.output.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL)
                    .map_err(io::Error::from)
            } else {
                self.output.write(bytes)
            };
            match written {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if retry(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Waits until the pipe is ready in `direction`, or fails at the deadline.
    fn wait(&self, direction: Direction) -> io::Result<()> {
        let (fd, events) = match direction {
            Direction::In => (self.input.as_fd(), PollFlags::POLLIN),
            Direction::Out => (self.output.as_fd(), PollFlags::POLLOUT),
        };
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    ErrorKind::TimedOut,
                    "the exchange took too long",
                ));
            }
            let timeout = PollTimeout::try_from(left.min(Duration::from_secs(60)))
                .unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(fd, events)];
            match poll(&mut fds, timeout) {
                // Ready, or hung up / in error: the read or write says which.
                Ok(n) if n > 0 => return Ok(()),
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

enum Direction {
    In,
    Out,
}

fn retry(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
}

/// Counts what serde_json would write, so the frame's buffer is sized once.
struct Counter(usize);

impl Write for Counter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(bytes.len());
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use super::*;

    fn pair(deadline: Duration) -> (Channel, Channel) {
        let (a, b) = UnixStream::pair().unwrap();
        let end = |s: UnixStream| {
            let fd = OwnedFd::from(s);
            let copy = fd.try_clone().unwrap();
            Channel::new(fd, copy, Instant::now() + deadline).unwrap()
        };
        (end(a), end(b))
    }

    #[test]
    fn messages_cross_and_hex_round_trips() {
        let (mut helper, mut caller) = pair(Duration::from_secs(10));
        let text = hex("Verification code: \"quoted\"\n".as_bytes());
        helper.send(&ToCaller::Ask { hex: &text }).unwrap();
        let frame = caller.receive().unwrap();
        let ToCaller::Ask { hex } = serde_json::from_slice(&frame).unwrap() else {
            panic!("not an ask")
        };
        assert_eq!(&unhex(hex).unwrap()[..], b"Verification code: \"quoted\"\n");
        caller.send(&ToHelper::Answer { hex: None }).unwrap();
        let frame = helper.receive().unwrap();
        assert!(matches!(
            serde_json::from_slice(&frame).unwrap(),
            ToHelper::Answer { hex: None }
        ));
        assert!(unhex("0g").is_err());
    }

    #[test]
    fn an_oversized_frame_is_refused_unread() {
        let (mut helper, mut caller) = pair(Duration::from_secs(10));
        helper
            .write_all(&u32::try_from(MAX_FRAME + 1).unwrap().to_be_bytes())
            .unwrap();
        let e = caller.receive().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData);
        let big = "0".repeat(MAX_FRAME);
        assert!(helper.send(&ToCaller::Info { hex: &big }).is_err());
    }

    #[test]
    fn a_silent_peer_meets_the_deadline() {
        let (mut helper, _caller) = pair(Duration::from_millis(200));
        let e = helper.receive().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
    }

    #[test]
    fn a_peer_that_never_reads_meets_the_deadline() {
        let (mut helper, _caller) = pair(Duration::from_millis(300));
        let text = "00".repeat(MAX_FRAME / 2 - 100);
        let e = loop {
            if let Err(e) = helper.send(&ToCaller::Info { hex: &text }) {
                break e;
            }
        };
        assert_eq!(e.kind(), ErrorKind::TimedOut);
    }
}

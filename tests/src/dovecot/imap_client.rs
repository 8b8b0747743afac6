//! A minimal synchronous IMAP client for the harness and tests.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::encoding::mailbox_arg;
use super::process::connect;
use crate::DEADLINE;

/// A tiny synchronous IMAP client over a plain loopback TCP connection,
/// for the harness and for tests that need a second client (a concurrent
/// mutator, a session holding a folder selected). Every read has the
/// harness [`DEADLINE`]; a server that stops answering fails the test.
pub struct ImapClient {
    reader: BufReader<TcpStream>,
    greeting: String,
    next_tag: u32,
}

/// The server's answer to one command.
#[derive(Debug, Clone)]
pub struct ImapReply {
    /// Untagged responses, each with its CRLF and any literals inline,
    /// exactly as received.
    pub untagged: Vec<Vec<u8>>,
    /// `OK`, `NO` or `BAD`.
    pub status: String,
    /// The rest of the tagged line (with any response code).
    pub text: String,
}

impl ImapReply {
    /// Whether the command completed with OK.
    pub fn is_ok(&self) -> bool {
        self.status == "OK"
    }

    /// All untagged responses as (lossy) text.
    pub fn untagged_text(&self) -> String {
        self.untagged.iter().map(|u| crate::text(u)).collect()
    }
}

impl ImapClient {
    /// Connect to `127.0.0.1:<port>` and read the greeting.
    pub fn connect(port: u16) -> ImapClient {
        let stream = connect(port, DEADLINE)
            .unwrap_or_else(|e| panic!("cannot connect to IMAP on port {port}: {e}"));
        let mut client = ImapClient {
            reader: BufReader::new(stream),
            greeting: String::new(),
            next_tag: 1,
        };
        let greeting = client
            .read_unit(Instant::now() + DEADLINE)
            .unwrap_or_else(|| panic!("the IMAP server on port {port} closed without a greeting"));
        client.greeting = crate::text(&greeting);
        assert!(
            client.greeting.starts_with("* OK"),
            "unexpected IMAP greeting: {}",
            client.greeting
        );
        client
    }

    /// The greeting line.
    pub fn greeting(&self) -> &str {
        &self.greeting
    }

    /// LOGIN with literals (LITERAL+), so any password works. Fails the
    /// test unless the server says OK.
    pub fn login(&mut self, user: &str, password: &str) {
        let mut cmd = Vec::new();
        let _ = write!(cmd, "LOGIN {{{}+}}\r\n", user.len());
        cmd.extend_from_slice(user.as_bytes());
        let _ = write!(cmd, " {{{}+}}\r\n", password.len());
        cmd.extend_from_slice(password.as_bytes());
        let reply = self.command_bytes(&cmd);
        assert!(reply.is_ok(), "IMAP LOGIN as {user} failed: {}", reply.text);
    }

    /// Send one command (without tag or CRLF) and read the reply.
    pub fn command(&mut self, cmd: &str) -> ImapReply {
        self.command_bytes(cmd.as_bytes())
    }

    /// [`ImapClient::command`], failing the test unless the reply is OK.
    pub fn command_ok(&mut self, cmd: &str) -> ImapReply {
        let reply = self.command(cmd);
        assert!(
            reply.is_ok(),
            "IMAP `{cmd}` failed: {} {}\n{}",
            reply.status,
            reply.text,
            reply.untagged_text()
        );
        reply
    }

    /// APPEND a message with flags; returns its UID (from `APPENDUID`).
    pub fn append(&mut self, folder: &str, flags: &[&str], raw: &[u8]) -> u32 {
        let mut cmd = Vec::new();
        let _ = write!(
            cmd,
            "APPEND {} ({}) {{{}+}}\r\n",
            mailbox_arg(folder),
            flags.join(" "),
            raw.len()
        );
        cmd.extend_from_slice(raw);
        let reply = self.command_bytes(&cmd);
        assert!(
            reply.is_ok(),
            "IMAP APPEND to {folder} failed: {} {}",
            reply.status,
            reply.text
        );
        // "[APPENDUID <uidvalidity> <uid>] Append completed."
        reply
            .text
            .split_once("[APPENDUID ")
            .and_then(|(_, rest)| rest.split(']').next())
            .and_then(|codes| codes.split_whitespace().nth(1))
            .and_then(|uid| uid.parse().ok())
            .unwrap_or_else(|| panic!("APPEND reply without APPENDUID: {}", reply.text))
    }

    /// `UID FETCH <uid> BODY.PEEK[]` in the selected folder: the message's
    /// exact bytes, or `None` if there is no such UID.
    pub fn uid_fetch_body(&mut self, uid: u32) -> Option<Vec<u8>> {
        let reply = self.command_ok(&format!("UID FETCH {uid} (UID BODY.PEEK[])"));
        reply.untagged.iter().find_map(|u| {
            let at = find(u, b"BODY[] {")?;
            let rest = &u[at + b"BODY[] {".len()..];
            let close = find(rest, b"}\r\n")?;
            let len: usize = std::str::from_utf8(&rest[..close]).ok()?.parse().ok()?;
            let start = close + 3;
            rest.get(start..start + len).map(<[u8]>::to_vec)
        })
    }

    /// LOGOUT and close.
    pub fn logout(mut self) {
        let _ = self.command("LOGOUT");
    }

    /// Send `cmd` (which may contain LITERAL+ literals) with a new tag.
    ///
    /// A server that says `* BYE` and closes the connection (a kick, a
    /// shutdown, a UIDVALIDITY change) gives a reply with status `BYE`.
    fn command_bytes(&mut self, cmd: &[u8]) -> ImapReply {
        let tag = format!("h{}", self.next_tag);
        self.next_tag += 1;
        let mut line = Vec::with_capacity(cmd.len() + tag.len() + 3);
        line.extend_from_slice(tag.as_bytes());
        line.push(b' ');
        line.extend_from_slice(cmd);
        line.extend_from_slice(b"\r\n");
        // A closed connection may still hold a BYE to read: look first.
        let write_error = self.reader.get_mut().write_all(&line).err();
        let deadline = Instant::now() + DEADLINE;
        let mut untagged: Vec<Vec<u8>> = Vec::new();
        loop {
            let Some(unit) = self.read_unit(deadline) else {
                if let Some(bye) = untagged.iter().find(|u| u.starts_with(b"* BYE")) {
                    let text = crate::text(bye).trim_end().to_owned();
                    return ImapReply {
                        untagged,
                        status: "BYE".into(),
                        text,
                    };
                }
                panic!(
                    "the IMAP server closed the connection without BYE{}; received: {}",
                    write_error
                        .map(|e| format!(" (write: {e})"))
                        .unwrap_or_default(),
                    untagged.iter().map(|u| crate::text(u)).collect::<String>()
                );
            };
            if let Some(rest) = unit.strip_prefix(format!("{tag} ").as_bytes()) {
                let rest = crate::text(rest);
                let (status, text) = rest.trim_end().split_once(' ').unwrap_or((&rest, ""));
                return ImapReply {
                    untagged,
                    status: status.to_owned(),
                    text: text.to_owned(),
                };
            }
            untagged.push(unit);
        }
    }

    /// One response: a line, plus any literal it announces and the rest of
    /// the line after it, and so on. `None` when the server has closed the
    /// connection.
    fn read_unit(&mut self, deadline: Instant) -> Option<Vec<u8>> {
        let mut unit = Vec::new();
        loop {
            let start = unit.len();
            if !read_line(&mut self.reader, &mut unit, deadline, "IMAP") {
                assert!(
                    unit.is_empty(),
                    "the IMAP server closed the connection inside a response: {}",
                    crate::text(&unit)
                );
                return None;
            }
            let line = &unit[start..];
            match literal_len(line) {
                Some(n) => {
                    let mut buf = vec![0; n];
                    read_exact(&mut self.reader, &mut buf, deadline, "IMAP");
                    unit.extend_from_slice(&buf);
                }
                None => return Some(unit),
            }
        }
    }
}

/// The length of the literal a line announces (`... {123}\r\n`).
fn literal_len(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"}\r\n")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = body[open + 1..]
        .strip_suffix(b"+")
        .unwrap_or(&body[open + 1..]);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Something with a settable read timeout.
pub(super) trait Timed {
    fn set_timeout(&self, d: Duration) -> std::io::Result<()>;
}

impl Timed for TcpStream {
    fn set_timeout(&self, d: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(d))
    }
}

impl Timed for UnixStream {
    fn set_timeout(&self, d: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(d))
    }
}

/// The time left until `deadline`, failing the test once it has passed.
fn remaining(deadline: Instant, what: &str) -> Duration {
    let left = deadline.saturating_duration_since(Instant::now());
    assert!(
        !left.is_zero(),
        "the {what} server did not answer within {DEADLINE:?}"
    );
    left
}

/// Append one LF-terminated line to `buf`, within `deadline`. False if the
/// connection ended first (whatever arrived is in `buf`).
pub(super) fn read_line<S: Read + Timed>(
    r: &mut BufReader<S>,
    buf: &mut Vec<u8>,
    deadline: Instant,
    what: &str,
) -> bool {
    loop {
        r.get_ref()
            .set_timeout(remaining(deadline, what))
            .expect("set a read timeout");
        match r.read_until(b'\n', buf) {
            Ok(0) => return false,
            Ok(_) if buf.ends_with(b"\n") => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                remaining(deadline, what);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // A reset after BYE is an end like any other.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return false,
            Err(e) => panic!("reading from the {what} server failed: {e}"),
        }
    }
}

/// Fill `buf` within `deadline`.
fn read_exact<S: Read + Timed>(
    r: &mut BufReader<S>,
    buf: &mut [u8],
    deadline: Instant,
    what: &str,
) {
    let mut filled = 0;
    while filled < buf.len() {
        r.get_ref()
            .set_timeout(remaining(deadline, what))
            .expect("set a read timeout");
        match r.read(&mut buf[filled..]) {
            Ok(0) => panic!("the {what} server closed the connection inside a literal"),
            Ok(n) => filled += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                remaining(deadline, what);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("reading from the {what} server failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_lengths() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {12}\r\n"), Some(12));
        assert_eq!(literal_len(b"a LOGIN {3+}\r\n"), Some(3));
        assert_eq!(literal_len(b"* OK done\r\n"), None);
    }
}

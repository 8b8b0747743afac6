//! # POP3 wire
//!
//! Owns the bytes on the connection: a bounded line reader over a
//! `BufReader`, a timeout on every read and write, the RFC 1939 §3 rules for
//! multi-line replies (byte-stuffing and the `.` terminator), status-line
//! parsing, and protocol tracing that redacts credentials and never assumes
//! UTF-8. It knows nothing of commands; `client` builds them on top.
//!
//! Memory is bounded whatever the server sends: the read buffer has a fixed
//! size and a line that does not fit is collected only up to `max_line`
//! bytes before [`Error::LineTooLong`]. A line is cut at each LF, so a
//! broken server's bare LF ends a piece here, not a line in the RFC's sense
//! (see [`Wire::body_segment`]).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tracing::trace;
use zeroize::Zeroizing;

use super::error::{server_text, Error};

/// Size of the read buffer. Large enough that most lines are handed out
/// straight from it without a copy.
const READ_BUFFER: usize = 64 * 1024;

/// What `current` refers to, and what the next read must release first.
#[derive(Debug, Clone, Copy)]
enum Held {
    /// Nothing is held.
    Nothing,
    /// The first `n` bytes of the read buffer (a line that fitted in it).
    Buffer(usize),
    /// `Wire::line`, a line collected across several reads.
    Line,
}

/// How a command line is shown in the protocol trace.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shown {
    /// As sent.
    AsSent,
    /// Replaced by this text, for lines that carry credentials.
    Redacted(&'static str),
}

/// A status line: `+OK text`, `-ERR [CODE] text`, or a SASL continuation
/// `+ challenge` (RFC 5034 §4).
#[derive(Debug)]
pub(crate) enum Status {
    /// `+OK` and the text after it.
    Ok(Vec<u8>),
    /// `-ERR` and the text after it (response code still inside).
    Err(Vec<u8>),
    /// `+ ` or `+`: the server waits for a SASL response.
    Continue,
}

impl Status {
    /// Parse a status line (line end already removed). Upper case is what
    /// RFC 1939 §3 prescribes; other cases are accepted all the same.
    fn parse(line: &[u8]) -> Option<Status> {
        let starts = |prefix: &[u8]| {
            line.get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        };
        let rest = |n: usize| {
            line.get(n..)
                .unwrap_or_default()
                .trim_ascii_start()
                .to_vec()
        };
        // "+OK" must be followed by a space or the end of the line, so that
        // "+OKAY" is not taken for success.
        let word_end = |n: usize| line.get(n).is_none_or(|b| *b == b' ');
        if starts(b"+OK") && word_end(3) {
            Some(Status::Ok(rest(3)))
        } else if starts(b"-ERR") && word_end(4) {
            Some(Status::Err(rest(4)))
        } else if line == b"+" || line.starts_with(b"+ ") {
            Some(Status::Continue)
        } else {
            None
        }
    }
}

/// The connection, with its read buffer and limits.
pub(crate) struct Wire<S> {
    reader: BufReader<S>,
    /// Collects a line that spans several reads; at most `max_line` bytes.
    line: Vec<u8>,
    held: Held,
    /// Inside a multi-line reply: whether the next piece starts a line
    /// (only there do stuffing and the terminator count).
    at_line_start: bool,
    timeout: Duration,
    max_line: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Wire<S> {
    pub(crate) fn new(stream: S, timeout: Duration, max_line: usize) -> Wire<S> {
        Wire {
            reader: BufReader::with_capacity(READ_BUFFER, stream),
            line: Vec::new(),
            held: Held::Nothing,
            at_line_start: true,
            timeout,
            // A line end needs at least two bytes.
            max_line: max_line.max(3),
        }
    }

    /// Change the time allowed for each network step from now on.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Return the stream, provided the server has sent nothing that we have
    /// not consumed. Used after `+OK` to STLS: anything already buffered was
    /// sent in cleartext before the handshake and would be trusted as if it
    /// came over TLS (response injection, RFC 2595 §4 and the USENIX 2021
    /// STARTTLS paper), so it is refused, never silently dropped.
    pub(crate) fn into_inner_if_drained(mut self) -> Result<S, Error> {
        self.release();
        if self.line.is_empty() && self.reader.buffer().is_empty() {
            Ok(self.reader.into_inner())
        } else {
            Err(Error::StlsInjection)
        }
    }

    /// Write one command line (without its CRLF) and flush it.
    pub(crate) async fn send(&mut self, line: &[u8], shown: Shown) -> Result<(), Error> {
        match shown {
            Shown::AsSent => trace!("POP3 C: {}", line.escape_ascii()),
            Shown::Redacted(text) => trace!("POP3 C: {text}"),
        }
        // One write for the line and its CRLF, so that it leaves in one
        // segment (or one TLS record). Zeroed afterwards: it may hold a
        // password.
        let mut out = Zeroizing::new(Vec::with_capacity(line.len() + 2));
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
        let stream = self.reader.get_mut();
        let write = async {
            stream.write_all(&out).await?;
            stream.flush().await
        };
        match tokio::time::timeout(self.timeout, write).await {
            Err(_) => Err(Error::Timeout(self.timeout)),
            Ok(result) => result.map_err(Error::Io),
        }
    }

    /// Shut the write side down, ignoring failures: used after QUIT, when
    /// the session is over either way.
    pub(crate) async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(self.timeout, self.reader.get_mut().shutdown()).await;
    }

    /// Read one status line, under one timeout for the whole line (a server
    /// trickling one byte per read cannot hold us longer).
    pub(crate) async fn status(&mut self) -> Result<Status, Error> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.next_segment()).await {
            Err(_) => return Err(Error::Timeout(timeout)),
            Ok(result) => result?,
        }
        // A fresh multi-line reply may follow.
        self.at_line_start = true;
        let line = trim_line_end(self.current());
        trace!("POP3 S: {}", line.escape_ascii());
        Status::parse(line).ok_or_else(|| {
            Error::Protocol(format!(
                "expected +OK or -ERR, got \"{}\"",
                server_text(line)
            ))
        })
    }

    /// Read the next piece of a multi-line reply (RFC 1939 §3).
    ///
    /// Returns `None` at the terminator, else how many leading bytes of
    /// [`Wire::current`] are stuffing to skip (0 or 1); the rest is content,
    /// with its line end, exactly as sent.
    ///
    /// A line is what ends in CRLF. With `strict_crlf`, a bare LF (sent by
    /// broken servers that pass stored LF-only mail through) is content: it
    /// is kept as is, and the next piece does not start a line, so a dot
    /// after it is neither stuffing nor a terminator. Taking such a dot for
    /// the terminator would end a message early and store it cut short
    /// without an error; missing a terminator only ends in a timeout, which
    /// is an error. Listings, which can never hold a LF, pass `false`.
    ///
    /// Only `..` at a line start loses a dot. RFC 1939 §3 would also strip
    /// the dot of `.x`, which a correct server never sends unstuffed; keeping
    /// it is the kinder reading of a server that forgot to stuff.
    pub(crate) async fn body_segment(&mut self, strict_crlf: bool) -> Result<Option<usize>, Error> {
        self.next_segment().await?;
        let piece = self.current();
        let at_start = self.at_line_start;
        let terminator = piece == b".\r\n" || (!strict_crlf && piece == b".\n");
        let (result, ends_line) = if at_start && terminator {
            (None, true)
        } else {
            let skip = usize::from(at_start && piece.starts_with(b".."));
            (Some(skip), piece.ends_with(b"\r\n") || !strict_crlf)
        };
        self.at_line_start = ends_line;
        Ok(result)
    }

    /// The piece read last: one line, or the part of a line up to a bare
    /// LF, with its line end.
    pub(crate) fn current(&self) -> &[u8] {
        match self.held {
            Held::Nothing => &[],
            Held::Buffer(n) => self.reader.buffer().get(..n).unwrap_or_default(),
            Held::Line => &self.line,
        }
    }

    /// Release what `current` refers to.
    fn release(&mut self) {
        match std::mem::replace(&mut self.held, Held::Nothing) {
            Held::Nothing => {}
            Held::Buffer(n) => self.reader.consume(n),
            Held::Line => self.line.clear(),
        }
    }

    /// Read up to and including the next LF, each read under the timeout.
    /// Afterwards [`Wire::current`] holds the piece.
    async fn next_segment(&mut self) -> Result<(), Error> {
        self.release();
        loop {
            let (newline, available) =
                match tokio::time::timeout(self.timeout, self.reader.fill_buf()).await {
                    Err(_) => return Err(Error::Timeout(self.timeout)),
                    Ok(Err(e)) => return Err(Error::Io(e)),
                    Ok(Ok(buf)) => (buf.iter().position(|&b| b == b'\n'), buf.len()),
                };
            if available == 0 {
                return Err(Error::Closed);
            }
            let take = newline.map_or(available, |i| i + 1);
            if self.line.len().saturating_add(take) > self.max_line {
                return Err(Error::LineTooLong {
                    limit: self.max_line,
                });
            }
            if newline.is_some() && self.line.is_empty() {
                // The common case: the whole line is in the buffer; hand it
                // out from there without a copy.
                self.held = Held::Buffer(take);
                return Ok(());
            }
            let buffered = self.reader.buffer();
            self.line
                .extend_from_slice(buffered.get(..take).unwrap_or(buffered));
            self.reader.consume(take);
            if newline.is_some() {
                self.held = Held::Line;
                return Ok(());
            }
        }
    }
}

/// Remove a trailing CRLF (or a lone LF from a sloppy server).
pub(crate) fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Standard base64 with padding (RFC 4648 §4), as SASL needs (RFC 5034 §4).
/// Written out here rather than pulled in: one encoder, twenty lines.
pub(crate) fn base64_encode(input: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextet = |v: u32, shift: u32| ALPHABET[((v >> shift) & 0x3f) as usize];
    let mut out = Vec::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b0 = u32::from(chunk.first().copied().unwrap_or(0));
        let b1 = u32::from(chunk.get(1).copied().unwrap_or(0));
        let b2 = u32::from(chunk.get(2).copied().unwrap_or(0));
        let v = (b0 << 16) | (b1 << 8) | b2;
        out.push(sextet(v, 18));
        out.push(sextet(v, 12));
        out.push(if chunk.len() > 1 { sextet(v, 6) } else { b'=' });
        out.push(if chunk.len() > 2 { sextet(v, 0) } else { b'=' });
    }
    out
}

//! # Bounded IMAP response lines
//!
//! async-imap parses its whole read buffer again after every read of at
//! most 4 KiB until a response is complete, and lets that buffer grow to
//! 512 MiB: a server sending one endless line (bytes and never a CRLF)
//! costs time quadratic in its length — a core pinned for as long as the
//! server keeps sending, and again on each reconnection.
//!
//! [`Bounded`] sits between async-imap and the connection and counts the
//! bytes of the current response line outside literals: a line ending in
//! `{N}` or `{N+}` announces N bytes of literal (message bodies, which may
//! be large and are bounded separately by [`MAX_LITERAL`]) that are passed
//! through uncounted. A line longer than [`MAX_LINE`], or whose bytes keep
//! trickling in for longer than [`LINE_TIME`], fails the read with a clear
//! error; the engine then backs off as after any connection failure.
//!
//! The longest lines facteur asks for are a FETCH response's head and
//! LIST entries, a few hundred bytes; the sync lists UIDs with one FETCH
//! response per message rather than one SEARCH line, so the bound never
//! cuts a legitimate answer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Most bytes of one response line, literals excluded.
pub const MAX_LINE: usize = 128 * 1024;
/// Most bytes of one literal (one message body).
pub const MAX_LITERAL: u64 = 256 * 1024 * 1024;
/// Longest time the bytes of one line (literals excluded) may take.
pub const LINE_TIME: Duration = Duration::from_secs(120);

/// How many bytes at the end of a line are kept to find `{N}`.
const TAIL: usize = 24;

/// A stream whose incoming IMAP lines are bounded in bytes and time.
#[derive(Debug)]
pub struct Bounded<S> {
    inner: S,
    scan: Scan,
}

/// Where the reader stands in the server's byte stream.
#[derive(Debug, Default)]
struct Scan {
    /// Bytes of the current line since its last LF (or literal).
    line: usize,
    /// When the current line segment's first byte arrived.
    began: Option<Instant>,
    /// Bytes of literal still to pass through.
    literal: u64,
    /// The last bytes of the current line.
    tail: Vec<u8>,
}

impl<S> Bounded<S> {
    /// Wrap `inner`.
    pub fn new(inner: S) -> Self {
        Bounded {
            inner,
            scan: Scan::default(),
        }
    }

    /// Take the inner stream back (for STARTTLS).
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// `{N}` or `{N+}` right before the CRLF (or LF) that ends `tail`.
fn literal_at_end(tail: &[u8]) -> Option<u64> {
    let t = tail.strip_suffix(b"\n")?;
    let t = t.strip_suffix(b"\r").unwrap_or(t);
    let t = t.strip_suffix(b"}")?;
    let open = t.iter().rposition(|b| *b == b'{')?;
    let digits = &t[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

impl Scan {
    /// Account for `bytes` just read.
    fn feed(&mut self, mut bytes: &[u8], now: Instant) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.literal > 0 {
                let skip = usize::try_from(self.literal)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.literal -= skip as u64;
                bytes = &bytes[skip..];
                continue;
            }
            let began = *self.began.get_or_insert(now);
            let (segment, rest, ended) = match bytes.iter().position(|b| *b == b'\n') {
                Some(i) => (&bytes[..=i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            self.line += segment.len();
            if self.line > MAX_LINE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the server sent a response line longer than {} KiB",
                        MAX_LINE / 1024
                    ),
                ));
            }
            if now.duration_since(began) > LINE_TIME {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the server took more than {} s to send one response line",
                        LINE_TIME.as_secs()
                    ),
                ));
            }
            self.tail.extend_from_slice(segment);
            if self.tail.len() > TAIL {
                self.tail.drain(..self.tail.len() - TAIL);
            }
            if ended {
                if let Some(n) = literal_at_end(&self.tail) {
                    if n > MAX_LITERAL {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "the server announced a literal of {n} bytes, more than the \
                                 {} MiB facteur accepts",
                                MAX_LITERAL / (1024 * 1024)
                            ),
                        ));
                    }
                    self.literal = n;
                }
                self.line = 0;
                self.began = None;
                self.tail.clear();
            }
            bytes = rest;
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let start = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let fresh = &buf.filled()[start..];
                Poll::Ready(this.scan.feed(fresh, Instant::now()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Bounded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_pass_uncounted_and_long_lines_fail() {
        let now = Instant::now();
        let mut s = Scan::default();
        let big = vec![b'a'; MAX_LINE * 3];
        let mut head = b"* 1 FETCH (UID 1 BODY[] {".to_vec();
        head.extend_from_slice(format!("{}}}\r\n", big.len()).as_bytes());
        s.feed(&head, now).expect("a FETCH head");
        // Split across reads, as the network does.
        for chunk in big.chunks(1000) {
            s.feed(chunk, now).expect("literal bytes are not a line");
        }
        s.feed(b")\r\n* OK done\r\n", now).expect("short lines");
        // A literal+ announcement too, and a split CRLF.
        s.feed(b"* LIST () \"/\" {3+}\r", now).expect("half a line");
        s.feed(b"\na\r\n\r\n", now)
            .expect("the literal then the rest");
        assert_eq!(s.line, 0);
        let err = s.feed(&vec![b'x'; MAX_LINE + 1], now).expect_err("endless");
        assert!(err.to_string().contains("longer than"), "{err}");
    }

    #[test]
    fn huge_literals_and_slow_lines_fail() {
        let now = Instant::now();
        let mut s = Scan::default();
        let head = format!("* 1 FETCH (BODY[] {{{}}}\r\n", MAX_LITERAL + 1);
        assert!(s.feed(head.as_bytes(), now).is_err());
        let mut s = Scan::default();
        s.feed(b"* OK sl", now).expect("a start");
        let later = now + LINE_TIME + Duration::from_secs(1);
        assert!(s.feed(b"ow", later).is_err());
    }

    #[test]
    fn literal_markers() {
        assert_eq!(literal_at_end(b"abc {12}\r\n"), Some(12));
        assert_eq!(literal_at_end(b"{0+}\r\n"), Some(0));
        assert_eq!(literal_at_end(b"{x}\r\n"), None);
        assert_eq!(literal_at_end(b"done\r\n"), None);
    }
}

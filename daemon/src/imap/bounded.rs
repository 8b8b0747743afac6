//! # Bounded IMAP response lines
//!
//! async-imap parses its whole read buffer again after every read of at
//! most 4 KiB until a response is complete, and lets that buffer grow to
//! 512 MiB: a server sending one endless line (bytes and never a CRLF)
//! costs time quadratic in its length — a core pinned for as long as the
//! server keeps sending, and again on each reconnection.
//!
//! [`Bounded`] sits between async-imap and the connection and counts the
//! bytes of the current response outside literals. A line ending in `{N}`
//! CRLF announces N bytes of literal (message bodies, which may be large
//! and are bounded separately by [`MAX_LITERAL`]) that are passed through
//! uncounted, but only in a response where imap-proto reads a literal
//! (`admits_literals`: FETCH, LIST, LSUB, STATUS, ID, and the lines of
//! such a response after a literal). Anywhere else a `{N}` is text that
//! async-imap would not wait for (`* OK x {268435455}` is a complete
//! response): honouring it would let the endless line after it through.
//! A response whose bytes outside literals pass [`MAX_LINE`], or that takes
//! longer than [`LINE_TIME`] plus the time its literals may take at
//! [`LITERAL_RATE`], fails the read with a clear error; the engine then
//! backs off as after any connection failure.
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

/// Most bytes of one response, literals excluded.
pub const MAX_LINE: usize = 128 * 1024;
/// Most bytes of literal in one response (one message body).
pub const MAX_LITERAL: u64 = 256 * 1024 * 1024;
/// Longest time the bytes of one response (literals excluded) may take.
pub const LINE_TIME: Duration = Duration::from_secs(120);
/// Slowest rate literal bytes may arrive at: each announced byte adds
/// 1 / this many seconds to the time a response may take.
pub const LITERAL_RATE: u64 = 4 * 1024;

/// How many bytes at the end of a line are kept to find `{N}`.
const TAIL: usize = 24;
/// How many bytes at the start of a response are kept to tell its kind.
const HEAD: usize = 24;

/// A stream whose incoming IMAP lines are bounded in bytes and time.
#[derive(Debug)]
pub struct Bounded<S> {
    inner: S,
    scan: Scan,
}

/// Where the reader stands in the server's byte stream.
#[derive(Debug, Default)]
struct Scan {
    /// Bytes of the current response so far, literals excluded.
    line: usize,
    /// When the current response's first byte arrived.
    began: Option<Instant>,
    /// Bytes of literal still to pass through.
    literal: u64,
    /// Bytes of literal announced in the current response.
    announced: u64,
    /// Whether the current response is past its first line (and so is one
    /// that may hold literals: see [`admits_literals`]).
    continued: bool,
    /// The first bytes of the current response.
    head: Vec<u8>,
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

/// `{N}` right before the CRLF that ends `tail`: the only literal
/// imap-proto reads in a server response (`{N+}` is for clients only).
fn literal_at_end(tail: &[u8]) -> Option<u64> {
    let t = tail.strip_suffix(b"}\r\n")?;
    let open = t.iter().rposition(|b| *b == b'{')?;
    let digits = &t[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Whether a response that starts with `head` is one where imap-proto
/// (0.17) reads a literal and facteur asks for it: `* <n> FETCH`, `* LIST`,
/// `* LSUB`, `* STATUS` (a mailbox name) and `* ID`. Anywhere else (`* OK`
/// and other resp-text, `* SEARCH`, tagged and `+` responses) a `{N}` at
/// the end of a line is text, and the response ends there: what follows is
/// a new line, counted.
fn admits_literals(head: &[u8]) -> bool {
    let Some(rest) = head.strip_prefix(b"* ") else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let word = |w: &[u8]| {
        rest.len() > w.len() && rest[..w.len()].eq_ignore_ascii_case(w) && rest[w.len()] == b' '
    };
    if digits > 0 {
        let after = &rest[digits..];
        return after.len() > 6 && after[..7].eq_ignore_ascii_case(b" FETCH ");
    }
    word(b"LIST") || word(b"LSUB") || word(b"STATUS") || word(b"ID")
}

fn too_long() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "the server sent a response line longer than {} KiB",
            MAX_LINE / 1024
        ),
    )
}

fn too_slow() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "the server took more than {} s to send one response line",
            LINE_TIME.as_secs()
        ),
    )
}

impl Scan {
    /// How long the current response may take: [`LINE_TIME`], and more for
    /// the literals it announced.
    fn budget(&self) -> Duration {
        LINE_TIME + Duration::from_secs(self.announced / LITERAL_RATE)
    }

    /// Account for `bytes` just read.
    fn feed(&mut self, mut bytes: &[u8], now: Instant) -> io::Result<()> {
        while !bytes.is_empty() {
            let began = *self.began.get_or_insert(now);
            // Time counts across literals too: a response that trickles in
            // slower than [`LITERAL_RATE`] fails.
            if now.duration_since(began) > self.budget() {
                return Err(too_slow());
            }
            if self.literal > 0 {
                let skip = usize::try_from(self.literal)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.literal -= skip as u64;
                bytes = &bytes[skip..];
                continue;
            }
            let (segment, rest, ended) = match bytes.iter().position(|b| *b == b'\n') {
                Some(i) => (&bytes[..=i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            // Bytes outside literals count over the whole response, so that
            // a run of small literals cannot make an endless response.
            self.line += segment.len();
            if self.line > MAX_LINE {
                return Err(too_long());
            }
            if !self.continued && self.head.len() < HEAD {
                let room = HEAD - self.head.len();
                self.head
                    .extend_from_slice(&segment[..room.min(segment.len())]);
            }
            self.tail.extend_from_slice(segment);
            if self.tail.len() > TAIL {
                self.tail.drain(..self.tail.len() - TAIL);
            }
            if ended {
                let literal = literal_at_end(&self.tail)
                    .filter(|_| self.continued || admits_literals(&self.head));
                self.tail.clear();
                match literal {
                    Some(n) => {
                        self.announced = self.announced.saturating_add(n);
                        if self.announced > MAX_LITERAL {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!(
                                    "the server announced {} bytes of literal in one \
                                     response, more than the {} MiB facteur accepts",
                                    self.announced,
                                    MAX_LITERAL / (1024 * 1024)
                                ),
                            ));
                        }
                        self.literal = n;
                        self.continued = true;
                    }
                    None => {
                        // The end of the response.
                        self.line = 0;
                        self.began = None;
                        self.announced = 0;
                        self.continued = false;
                        self.head.clear();
                    }
                }
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
        // A LIST name as a literal, and a split CRLF.
        s.feed(b"* LIST () \"/\" {3}\r", now).expect("half a line");
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
        // Not literals for imap-proto in a server response.
        assert_eq!(literal_at_end(b"{0+}\r\n"), None);
        assert_eq!(literal_at_end(b"{12}\n"), None);
        assert_eq!(literal_at_end(b"{x}\r\n"), None);
        assert_eq!(literal_at_end(b"done\r\n"), None);
    }

    #[test]
    fn literals_only_where_imap_proto_reads_them() {
        for head in [
            &b"* 12 FETCH (UID 1 BODY[] {5}\r\n"[..],
            b"* 1 fetch (BODY[] {5}\r\n",
            b"* LIST () \"/\" {5}\r\n",
            b"* LSUB () \"/\" {5}\r\n",
            b"* STATUS {5}\r\n",
            b"* ID (\"name\" {5}\r\n",
        ] {
            assert!(admits_literals(head), "{:?}", String::from_utf8_lossy(head));
        }
        for head in [
            &b"* OK x {5}\r\n"[..],
            b"* NO [ALERT] {5}\r\n",
            b"* BYE {5}\r\n",
            b"* SEARCH 1 2 {5}\r\n",
            b"* 3 EXISTS {5}\r\n",
            b"* CAPABILITY IMAP4rev1 {5}\r\n",
            b"* LISTX {5}\r\n",
            b"A1 OK done {5}\r\n",
            b"+ go {5}\r\n",
        ] {
            assert!(
                !admits_literals(head),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    /// The bypass of the review: a `{N}` at the end of resp-text is no
    /// literal, so the endless line after it is counted and fails.
    #[test]
    fn a_literal_marker_in_text_does_not_open_the_bound() {
        let now = Instant::now();
        let mut s = Scan::default();
        s.feed(b"* OK x {268435455}\r\n", now)
            .expect("a short line");
        assert_eq!(s.literal, 0);
        let chunk = vec![b'x'; 4096];
        let mut fed = 0;
        let err = loop {
            match s.feed(&chunk, now) {
                Ok(()) => fed += chunk.len(),
                Err(e) => break e,
            }
            assert!(fed <= MAX_LINE, "the endless line passed the bound");
        };
        assert!(err.to_string().contains("longer than"), "{err}");
        // Same in a tagged answer and after a `+`.
        for first in [&b"A3 OK done {99999999}\r\n"[..], b"+ {99999999}\r\n"] {
            let mut s = Scan::default();
            s.feed(first, now).expect("a short line");
            assert!(s.feed(&vec![b'x'; MAX_LINE + 1], now).is_err());
        }
    }

    /// Inside a FETCH response, the bytes outside literals count over the
    /// whole response: many small literals do not make an endless one.
    #[test]
    fn small_literals_do_not_reset_the_count() {
        let now = Instant::now();
        let mut s = Scan::default();
        s.feed(b"* 1 FETCH (BODY[] {0}\r\n", now).expect("a head");
        let err = loop {
            if let Err(e) = s.feed(b" X {0}\r\n", now) {
                break e;
            }
        };
        assert!(err.to_string().contains("longer than"), "{err}");
        // A response with two literals then its end; the next starts anew.
        let mut s = Scan::default();
        s.feed(b"* 1 FETCH (BODY[1] {2}\r\nab BODY[2] {3}\r\nabc)\r\n", now)
            .expect("two literals");
        assert_eq!((s.line, s.literal, s.continued), (0, 0, false));
    }

    /// Time counts across literal bytes, with room for each announced byte.
    #[test]
    fn a_literal_that_trickles_fails_in_time() {
        let now = Instant::now();
        let mut s = Scan::default();
        s.feed(b"* 1 FETCH (BODY[] {268435455}\r\n", now)
            .expect("a head");
        let room = LINE_TIME + Duration::from_secs(268_435_455 / LITERAL_RATE);
        s.feed(b"xxxx", now + room - Duration::from_secs(1))
            .expect("within the budget");
        let err = s
            .feed(b"xxxx", now + room + Duration::from_secs(1))
            .expect_err("past the budget");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}

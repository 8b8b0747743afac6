//! # Line conversations before lettre takes over
//!
//! [`Lines`] reads CRLF-terminated lines from a stream with a buffer it
//! owns, so that the caller can tell, at the moment of a STARTTLS upgrade,
//! whether the server sent anything after its "go ahead" reply. Such bytes
//! came in clear text and must never be read as if they had come over TLS
//! (the response-injection class of the USENIX 2021 STARTTLS study; lettre
//! 0.11's own STARTTLS keeps them, see `reference/ecosystem-reliability.md`
//! §0.3). SMTP uses it up to and including the EHLO after TLS; discovery's
//! probes use it for IMAP, POP3 and SMTP alike.
//!
//! [`Prefixed`] then hands the stream to lettre with a greeting of our own
//! in front: lettre insists on reading a greeting, which was already read
//! here (or, after STARTTLS, never comes).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};

use crate::net;

/// Longest line accepted from a server before TLS (RFC 5321 §4.5.3.1.5
/// allows 512 octets for a reply line; IMAP capability lines run longer).
const MAX_LINE: usize = 8192;
/// Most lines in one multi-line reply.
const MAX_REPLY_LINES: usize = 200;

/// A line reader and writer over `S` with a buffer it controls.
#[derive(Debug)]
pub struct Lines<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Lines<S> {
    /// Start reading `stream`.
    pub fn new(stream: S) -> Lines<S> {
        Lines {
            stream,
            buf: Vec::new(),
        }
    }

    /// The next line, without its line end. End of file is an error.
    pub async fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.buf.len() > MAX_LINE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the server sent a line longer than {MAX_LINE} bytes"),
                ));
            }
            let mut chunk = [0u8; 1024];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Send one command line (CRLF is added).
    pub async fn send(&mut self, line: &str) -> io::Result<()> {
        self.stream.write_all(line.as_bytes()).await?;
        self.stream.write_all(b"\r\n").await?;
        self.stream.flush().await
    }

    /// An SMTP reply: its code and the text of each line.
    pub async fn smtp_reply(&mut self) -> io::Result<Reply> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await?;
            let bad = || {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the server's answer is not an SMTP reply: {:?}",
                        line.chars().take(80).collect::<String>()
                    ),
                )
            };
            let code = line
                .get(..3)
                .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(bad)?;
            let sep = line.as_bytes().get(3).copied();
            if !matches!(sep, None | Some(b' ') | Some(b'-')) {
                return Err(bad());
            }
            lines.push(line.get(4..).unwrap_or_default().to_owned());
            if sep != Some(b'-') {
                return Ok(Reply { code, lines });
            }
            if lines.len() > MAX_REPLY_LINES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the server's reply has too many lines",
                ));
            }
        }
    }

    /// How many bytes were read but not consumed yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The stream back, provided nothing is left unread in the buffer;
    /// otherwise the number of bytes left.
    pub fn into_inner(self) -> Result<S, usize> {
        if self.buf.is_empty() {
            Ok(self.stream)
        } else {
            Err(self.buf.len())
        }
    }
}

/// One SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text after the code, one entry per line.
    pub lines: Vec<String>,
}

impl Reply {
    /// Code and text on one line, as a person reads it.
    pub fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" "))
    }

    /// The EHLO keywords (first word of each line after the first),
    /// upper-cased, with their arguments.
    pub fn keywords(&self) -> Vec<(String, Vec<String>)> {
        self.lines
            .iter()
            .skip(1)
            .filter_map(|l| {
                let mut words = l.split_ascii_whitespace();
                let first = words.next()?.to_ascii_uppercase();
                // AUTH=PLAIN LOGIN is an old spelling some servers still send.
                let (key, args) = match first.split_once('=') {
                    Some((k, a)) => (k.to_owned(), vec![a.to_owned()]),
                    None => (first, Vec::new()),
                };
                let mut args = args;
                args.extend(words.map(str::to_owned));
                Some((key, args))
            })
            .collect()
    }
}

/// A stream that answers a fixed text first, then the inner stream's bytes.
/// Writes go straight to the inner stream.
#[derive(Debug)]
pub struct Prefixed {
    prefix: Vec<u8>,
    pos: usize,
    inner: net::Stream,
    peer: SocketAddr,
}

impl Prefixed {
    /// `prefix` then `inner`; `peer` is the server's address.
    pub fn new(prefix: &[u8], inner: net::Stream, peer: SocketAddr) -> Prefixed {
        Prefixed {
            prefix: prefix.to_vec(),
            pos: 0,
            inner,
            peer,
        }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() {
            let rest = &this.prefix[this.pos..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
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

impl lettre::transport::smtp::client::AsyncTokioStream for Prefixed {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn multi_line_reply_and_leftovers() {
        let (a, mut b) = tokio::io::duplex(1024);
        b.write_all(b"250-mx.example\r\n250-SIZE 1000\r\n250 AUTH PLAIN LOGIN\r\nextra")
            .await
            .ok();
        let mut lines = Lines::new(a);
        let r = lines.smtp_reply().await.ok();
        let r = r.unwrap_or(Reply {
            code: 0,
            lines: vec![],
        });
        assert_eq!(r.code, 250);
        assert_eq!(r.lines.len(), 3);
        let kw = r.keywords();
        assert_eq!(kw[0], ("SIZE".to_owned(), vec!["1000".to_owned()]));
        assert_eq!(
            kw[1],
            (
                "AUTH".to_owned(),
                vec!["PLAIN".to_owned(), "LOGIN".to_owned()]
            )
        );
        // What came after the reply is still buffered: an upgrade now must
        // be refused.
        assert_eq!(lines.buffered(), 5);
        assert!(lines.into_inner().is_err());
    }

    #[tokio::test]
    async fn not_smtp_is_an_error() {
        let (a, mut b) = tokio::io::duplex(1024);
        b.write_all(b"* OK IMAP4rev1 ready\r\n").await.ok();
        let mut lines = Lines::new(a);
        assert!(lines.smtp_reply().await.is_err());
    }
}

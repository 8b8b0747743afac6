//! # Network: connections, TLS, deadlines, failures
//!
//! Owns everything between a host name and a byte stream a protocol client
//! can use, for the sync engines and Verify alike (one path, one resolver,
//! one timeout table):
//!
//! - [`steps`]: the step recorder ([`Steps`]) and the steps every protocol
//!   shares: name resolution, TCP connect (with keepalive, so a half-open
//!   socket is noticed) and the TLS handshake, each under its deadline.
//! - [`tls`]: rustls with the system's roots, certificate checks unless
//!   `accept-invalid-certs`, handshake failures in words.
//! - [`timeouts`]: the deadline of every step, with the test override
//!   `FACTEUR_COMMAND_TIMEOUT_MS`.
//! - [`failure`]: [`Failure`], the typed outcome every protocol module
//!   reports, so the D-Bus edge can map causes to error names and the
//!   scheduler can decide between "retry soon" and "needs a person".
//! - here: [`Transport`] and [`Timed`], a stream whose reads and writes
//!   fail after a period of silence, as a last line of defence.
//!
//! Protocol logic (IMAP, POP3, SMTP) lives elsewhere; STARTTLS-style
//! upgrades call [`upgrade`] after their protocol said yes.

pub mod failure;
pub mod steps;
pub mod timeouts;
pub mod tls;

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub use failure::{mentions_limit, server_text, Failure, FailureKind};
pub use steps::{Service, Step, StepKind, Steps};
pub use timeouts::{
    auth_timeout, command_timeout, connect_timeout, dns_timeout, goodbye_timeout, reply_timeout,
    tls_timeout, within, COMMAND_TIMEOUT, REPLY_TIMEOUT, STREAM_READ_TIMEOUT,
};
pub use tls::{describe_tls_error, upgrade};

/// A TCP stream, in clear or under TLS.
#[derive(Debug)]
pub enum Transport {
    /// Plain TCP (before STARTTLS, or with security `none`).
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// The stream protocol clients use: a [`Transport`] with read and write
/// timeouts.
pub type Stream = Timed<Transport>;

/// A stream whose reads and writes fail with `TimedOut` after a period
/// without progress. `Unpin`, so the inner stream can be taken back out for
/// STARTTLS.
#[derive(Debug)]
pub struct Timed<S> {
    inner: S,
    read_timeout: Duration,
    write_timeout: Duration,
    read_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    write_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Timed<S> {
    /// Wrap `inner`.
    pub fn new(inner: S, read_timeout: Duration, write_timeout: Duration) -> Self {
        Timed {
            inner,
            read_timeout,
            write_timeout,
            read_deadline: None,
            write_deadline: None,
        }
    }

    /// Take the inner stream back.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Poll `op`; when it is pending, arm (once) and poll the deadline.
fn poll_with_deadline<T>(
    deadline: &mut Option<Pin<Box<tokio::time::Sleep>>>,
    timeout: Duration,
    cx: &mut Context<'_>,
    op: impl FnOnce(&mut Context<'_>) -> Poll<io::Result<T>>,
) -> Poll<io::Result<T>> {
    match op(cx) {
        Poll::Ready(r) => {
            *deadline = None;
            Poll::Ready(r)
        }
        Poll::Pending => {
            let sleep = deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    *deadline = None;
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no data for {} s", timeout.as_secs()),
                    )))
                }
                Poll::Pending => Poll::Pending,
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Timed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let inner = &mut this.inner;
        poll_with_deadline(&mut this.read_deadline, this.read_timeout, cx, |cx| {
            Pin::new(inner).poll_read(cx, buf)
        })
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Timed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let inner = &mut this.inner;
        poll_with_deadline(&mut this.write_deadline, this.write_timeout, cx, |cx| {
            Pin::new(inner).poll_write(cx, buf)
        })
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let inner = &mut this.inner;
        poll_with_deadline(&mut this.write_deadline, this.write_timeout, cx, |cx| {
            Pin::new(inner).poll_flush(cx)
        })
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Wrap a transport with the stream timeouts.
pub fn timed(transport: Transport) -> Stream {
    Timed::new(transport, STREAM_READ_TIMEOUT, command_timeout())
}

/// Take the transport back out of a timed stream (for STARTTLS).
pub fn untimed(stream: Stream) -> Transport {
    stream.into_inner()
}

/// TCP keepalive, so a peer that vanished (NAT timeout, suspend) is noticed
/// within minutes instead of hours.
pub(crate) fn set_keepalive(stream: &TcpStream) {
    let sock = socket2::SockRef::from(stream);
    let ka = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(20))
        .with_retries(3);
    if let Err(e) = sock.set_tcp_keepalive(&ka) {
        tracing::debug!("Cannot enable TCP keepalive: {e}");
    }
    let _ = sock.set_tcp_nodelay(true);
}

/// Upgrade a plain stream after the protocol's STARTTLS/STLS said yes.
pub async fn starttls(
    stream: Stream,
    host: &str,
    accept_invalid_certs: bool,
) -> Result<Stream, Failure> {
    match untimed(stream) {
        Transport::Plain(tcp) => Ok(timed(upgrade(tcp, host, accept_invalid_certs).await?)),
        Transport::Tls(_) => Err(Failure::new(
            FailureKind::Protocol,
            "STARTTLS on a connection that is already TLS",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test(start_paused = true)]
    async fn silent_peer_times_out_and_data_resets_the_clock() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut t = Timed::new(a, Duration::from_secs(10), Duration::from_secs(10));
        let mut buf = [0u8; 4];
        b.write_all(b"hi").await.ok();
        assert_eq!(t.read(&mut buf).await.ok(), Some(2));
        let err = t.read(&mut buf).await.err().map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::TimedOut));
    }
}

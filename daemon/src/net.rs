//! # Network: connections, TLS, timeouts
//!
//! Owns everything between a host name and a byte stream a protocol client
//! can use: name resolution and TCP connect under a timeout, TCP keepalive
//! (so a half-open socket is noticed), TLS with rustls and the system's
//! roots (`SSL_CERT_FILE`/`SSL_CERT_DIR` are honoured), certificate and host
//! name verification unless the account opted into `accept-invalid-certs`,
//! and a read/write timeout on the stream as a last line of defence.
//!
//! It also defines [`Failure`], the typed outcome every protocol module
//! reports, so the D-Bus edge can map causes to error names and the
//! scheduler can decide between "retry soon" and "needs a person".
//!
//! Protocol logic (IMAP, POP3, SMTP) lives elsewhere; STARTTLS-style
//! upgrades call [`upgrade`] after their protocol said yes.

use std::fmt;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types::ServerName, ClientConfig};

/// How long resolving and connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a TLS handshake may take.
pub const TLS_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one command may wait for its answer.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Silence after which a stream read fails. Longer than the IMAP IDLE
/// re-issue interval (see `imap::IDLE_TIMEOUT`), so that only a dead
/// connection trips it.
pub const STREAM_READ_TIMEOUT: Duration = Duration::from_secs(11 * 60);

/// What kind of failure, for error names and retry decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Name resolution or TCP connect failed, or the connection dropped.
    Connection,
    /// TLS could not be set up, the certificate was refused, or STARTTLS
    /// was required and not offered.
    Tls,
    /// A step took too long.
    Timeout,
    /// The server refused the credentials.
    Auth,
    /// No usable password.
    Credentials,
    /// The server said something we cannot work with.
    Protocol,
    /// The server lacks something we need.
    NotSupported,
    /// Local failure (store, disk).
    Local,
    /// The disk holding the store is full (ENOSPC, EDQUOT); retried.
    DiskFull,
    /// The server's certificate is not trusted (unknown issuer,
    /// self-signed, expired, wrong host name): only the user can decide.
    Certificate,
    /// The server refused for a limit of its own (too many connections,
    /// over quota, rate limit, temporarily unavailable); retried later.
    ServerLimit,
}

/// A failure a person can act on: what kind, and a sentence.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The kind.
    pub kind: FailureKind,
    /// What happened, naming host, port or login (never a password).
    pub message: String,
}

impl Failure {
    /// A failure of `kind`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// Whether retrying later may help without a person doing anything.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            FailureKind::Connection
                | FailureKind::Timeout
                | FailureKind::Protocol
                | FailureKind::Local
                | FailureKind::DiskFull
                | FailureKind::ServerLimit
        )
    }

    /// Whether only the user can fix this (credentials, a certificate):
    /// the account's `AttentionNeeded`.
    pub fn attention_needed(&self) -> bool {
        matches!(
            self.kind,
            FailureKind::Auth | FailureKind::Credentials | FailureKind::Certificate
        )
    }

    /// The stable `LastErrorCode` of this failure ('' for none of the
    /// listed causes).
    pub fn code(&self) -> &'static str {
        match self.kind {
            FailureKind::Auth => "auth-failed",
            FailureKind::Tls => "tls-failed",
            FailureKind::Connection => "connection-failed",
            FailureKind::Timeout => "timeout",
            FailureKind::Protocol | FailureKind::NotSupported => "protocol",
            FailureKind::Credentials => "keyring-locked",
            FailureKind::DiskFull => "disk-full",
            FailureKind::Certificate => "certificate-untrusted",
            FailureKind::ServerLimit => "server-limit",
            FailureKind::Local => "",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<Failure>() {
            Ok(f) => f,
            Err(e) => {
                let full = e
                    .downcast_ref::<crate::store::Unavailable>()
                    .map(|u| u.is_disk_full())
                    .unwrap_or(
                        crate::fsutil::disk_condition(&e)
                            == Some(crate::fsutil::DiskCondition::Full),
                    );
                let kind = if full {
                    FailureKind::DiskFull
                } else {
                    FailureKind::Local
                };
                Failure::new(kind, format!("{e:#}"))
            }
        }
    }
}

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
    Timed::new(transport, STREAM_READ_TIMEOUT, COMMAND_TIMEOUT)
}

/// Take the transport back out of a timed stream (for STARTTLS).
pub fn untimed(stream: Stream) -> Transport {
    stream.into_inner()
}

/// Resolve and connect to `host:port` with keepalive on.
pub async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, Failure> {
    let target = format!("{host}:{port}");
    let connect = async {
        let addrs: Vec<_> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| {
                Failure::new(
                    FailureKind::Connection,
                    format!("Cannot resolve the host name {host}: {e}"),
                )
            })?
            .collect();
        if addrs.is_empty() {
            return Err(Failure::new(
                FailureKind::Connection,
                format!("The host name {host} has no address"),
            ));
        }
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        let e = last.map(|e| e.to_string()).unwrap_or_default();
        Err(Failure::new(
            FailureKind::Connection,
            format!("Nothing accepts connections on {target} ({e})"),
        ))
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| {
            Failure::new(
                FailureKind::Timeout,
                format!(
                    "Connecting to {target} took more than {} s",
                    CONNECT_TIMEOUT.as_secs()
                ),
            )
        })??;
    set_keepalive(&stream);
    Ok(stream)
}

/// TCP keepalive, so a peer that vanished (NAT timeout, suspend) is noticed
/// within minutes instead of hours.
fn set_keepalive(stream: &TcpStream) {
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

fn verified_config() -> Result<Arc<ClientConfig>, Failure> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(format!(
                    "No trusted root certificates found ({:?}); install ca-certificates or set SSL_CERT_FILE",
                    found.errors.first().map(|e| e.to_string())
                ));
            }
            let config = ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(|e| Failure::new(FailureKind::Tls, e))
}

fn unverified_config() -> Result<Arc<ClientConfig>, Failure> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::new(FailureKind::Tls, e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The verifier of `accept-invalid-certs`: any certificate is accepted, but
/// the handshake signatures are still checked, so the connection is at
/// least encrypted to whoever holds the key.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Start TLS on a connected TCP stream.
pub async fn upgrade(
    tcp: TcpStream,
    host: &str,
    accept_invalid_certs: bool,
) -> Result<Transport, Failure> {
    let config = if accept_invalid_certs {
        unverified_config()?
    } else {
        verified_config()?
    };
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let name = ServerName::try_from(bare.to_owned()).map_err(|e| {
        Failure::new(
            FailureKind::Tls,
            format!("{host} cannot be checked against a certificate: {e}"),
        )
    })?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let tls = tokio::time::timeout(TLS_TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| {
            Failure::new(
                FailureKind::Timeout,
                format!(
                    "The TLS handshake with {host} took more than {} s",
                    TLS_TIMEOUT.as_secs()
                ),
            )
        })?
        .map_err(|e| Failure::new(FailureKind::Tls, describe_tls_error(&e, host)))?;
    Ok(Transport::Tls(Box::new(tls)))
}

/// A sentence for a failed handshake that names the certificate problem.
pub fn describe_tls_error(e: &io::Error, host: &str) -> String {
    use rustls::CertificateError as C;
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return format!("The TLS handshake with {host} failed: {e}");
    };
    match tls {
        rustls::Error::InvalidCertificate(cert) => {
            let why = match cert {
                C::Expired | C::ExpiredContext { .. } => "it has expired".to_owned(),
                C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".to_owned(),
                C::NotValidForName => format!("it is not valid for {host}"),
                C::NotValidForNameContext { presented, .. } => format!(
                    "it is for {}, not {host}",
                    if presented.is_empty() {
                        "no host name".to_owned()
                    } else {
                        presented
                            .iter()
                            .map(|p| bare_name(p))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
                C::UnknownIssuer => {
                    "it is self-signed or issued by an unknown authority".to_owned()
                }
                C::Revoked => "it has been revoked".to_owned(),
                C::BadSignature => "its signature is invalid".to_owned(),
                C::UnsupportedSignatureAlgorithmContext { .. }
                | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                    "its signature does not match the key of any trusted authority \
                     (self-signed, or signed by an unknown authority)"
                        .to_owned()
                }
                C::BadEncoding => "it cannot be decoded".to_owned(),
                C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                    "it is not meant for a server".to_owned()
                }
                other => {
                    // The debug form can be long; keep its name only.
                    let name = format!("{other:?}");
                    let short = name
                        .split([' ', '(', '{'])
                        .next()
                        .unwrap_or(&name)
                        .to_owned();
                    format!("it could not be verified ({short})")
                }
            };
            format!(
                "The server {host} presented a certificate that was refused: {why} \
                 (set accept-invalid-certs only if you trust this server)"
            )
        }
        other => format!("The TLS handshake with {host} failed: {other}"),
    }
}

/// rustls lists the names of a certificate in their debug form
/// (`DnsName("mail.example.net")`); a person wants just the name.
fn bare_name(presented: &str) -> &str {
    for prefix in ["DnsName(\"", "IpAddress(\""] {
        if let Some(inner) = presented
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("\")"))
        {
            return inner;
        }
    }
    presented
        .strip_prefix("IpAddress(")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(presented)
}

/// Connect with implicit TLS or in clear, per `tls`.
pub async fn connect(
    host: &str,
    port: u16,
    tls: bool,
    accept_invalid_certs: bool,
) -> Result<Stream, Failure> {
    let tcp = connect_tcp(host, port).await?;
    let transport = if tls {
        upgrade(tcp, host, accept_invalid_certs).await?
    } else {
        Transport::Plain(tcp)
    };
    Ok(timed(transport))
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

    #[test]
    fn certificate_names_are_shown_bare() {
        assert_eq!(
            bare_name("DnsName(\"mail.example.net\")"),
            "mail.example.net"
        );
        assert_eq!(bare_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(bare_name("other"), "other");
    }

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

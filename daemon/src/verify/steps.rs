//! # Verify steps
//!
//! The step recorder of a verification ([`Steps`]) and the steps every
//! protocol shares: name resolution, TCP connect and the implicit TLS
//! handshake. Each step runs under its own timeout, cut short by the
//! service's overall budget, and leaves one [`Step`] behind whether it
//! worked or not, so a person sees exactly where it broke.
//!
//! The protocol conversations (IMAP, POP3, SMTP) live in their own modules
//! and call [`Steps::run`] around each of their steps.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::net::{self, Failure, FailureKind, Transport};

/// Longest name resolution.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(4);
/// Longest TCP connect (all addresses together).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest TLS handshake (implicit or after STARTTLS).
pub const TLS_TIMEOUT: Duration = Duration::from_secs(6);
/// Longest wait for a greeting or a short command's answer.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(6);
/// Longest login: servers delay failed logins on purpose (Dovecot waits
/// 2 s by default), so this is longer than a plain reply.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Read and write timeout of the streams a verification opens: no step
/// waits longer for data than this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Which server a step talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The IMAP or POP3 server.
    Incoming,
    /// The SMTP server.
    Smtp,
}

impl Service {
    /// The contract's spelling (`incoming`, `smtp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Incoming => "incoming",
            Service::Smtp => "smtp",
        }
    }
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Resolve the host name.
    Dns,
    /// Open the TCP connection.
    Connect,
    /// Implicit TLS handshake.
    Tls,
    /// Read the server's greeting.
    Greeting,
    /// STARTTLS / STLS offered, accepted, and the handshake after it.
    Starttls,
    /// Log in.
    Auth,
    /// Read what the server can do.
    Capabilities,
}

impl StepKind {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Dns => "dns",
            StepKind::Connect => "connect",
            StepKind::Tls => "tls",
            StepKind::Greeting => "greeting",
            StepKind::Starttls => "starttls",
            StepKind::Auth => "auth",
            StepKind::Capabilities => "capabilities",
        }
    }

    /// The step in words, for timeout messages.
    fn describe(self) -> &'static str {
        match self {
            StepKind::Dns => "name resolution",
            StepKind::Connect => "TCP connection",
            StepKind::Tls => "TLS handshake",
            StepKind::Greeting => "greeting",
            StepKind::Starttls => "STARTTLS upgrade",
            StepKind::Auth => "login",
            StepKind::Capabilities => "capability query",
        }
    }
}

/// One step tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Which server.
    pub service: Service,
    /// Which step.
    pub step: StepKind,
    /// Whether it worked.
    pub ok: bool,
    /// What happened, for a person; never a password.
    pub detail: String,
    /// How long it took.
    pub elapsed: Duration,
}

/// The steps of one service, in the order they were tried, and the
/// deadline they all share.
#[derive(Debug)]
pub struct Steps {
    service: Service,
    target: String,
    deadline: Instant,
    /// Every step tried so far.
    pub list: Vec<Step>,
}

impl Steps {
    /// Steps for `service` on `target` (`host:port`, for messages), all to
    /// be done within `budget`.
    pub fn new(service: Service, target: impl Into<String>, budget: Duration) -> Steps {
        Steps {
            service,
            target: target.into(),
            deadline: Instant::now() + budget,
            list: Vec::new(),
        }
    }

    /// `host:port` of the server.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Run one step under `limit` (or what is left of the budget, if less)
    /// and record it. `fut` answers the value and the detail to show.
    pub async fn run<T>(
        &mut self,
        kind: StepKind,
        limit: Duration,
        fut: impl Future<Output = Result<(T, String), Failure>>,
    ) -> Result<T, Failure> {
        let start = Instant::now();
        let limit = limit.min(self.deadline.saturating_duration_since(start));
        let result = match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(Failure::new(
                FailureKind::Timeout,
                format!(
                    "{} gave no answer to the {} within {:.1} s",
                    self.target,
                    kind.describe(),
                    limit.as_secs_f32()
                ),
            )),
        };
        let elapsed = start.elapsed();
        match result {
            Ok((value, detail)) => {
                self.push(kind, true, detail, elapsed);
                Ok(value)
            }
            Err(f) => {
                self.push(kind, false, f.message.clone(), elapsed);
                Err(f)
            }
        }
    }

    /// Record a step that failed without being tried on the network (no
    /// password, say).
    pub fn fail(&mut self, kind: StepKind, failure: Failure) -> Failure {
        self.push(kind, false, failure.message.clone(), Duration::ZERO);
        failure
    }

    fn push(&mut self, step: StepKind, ok: bool, detail: String, elapsed: Duration) {
        self.list.push(Step {
            service: self.service,
            step,
            ok,
            detail,
            elapsed,
        });
    }
}

/// The `dns` and `connect` steps: resolve `host` and connect to the first
/// address that answers.
pub async fn open_tcp(steps: &mut Steps, host: &str, port: u16) -> Result<TcpStream, Failure> {
    let addrs = steps
        .run(StepKind::Dns, DNS_TIMEOUT, resolve(host, port))
        .await?;
    steps
        .run(
            StepKind::Connect,
            CONNECT_TIMEOUT,
            connect_any(host, port, addrs),
        )
        .await
}

async fn resolve(host: &str, port: u16) -> Result<(Vec<SocketAddr>, String), Failure> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| {
            Failure::new(
                FailureKind::Connection,
                format!("The host name {host} cannot be resolved ({e}); check its spelling"),
            )
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Failure::new(
            FailureKind::Connection,
            format!("The host name {host} has no address"),
        ));
    }
    let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
    let detail = format!("{host} is {}", shown.join(", "));
    Ok((addrs, detail))
}

async fn connect_any(
    host: &str,
    port: u16,
    addrs: Vec<SocketAddr>,
) -> Result<(TcpStream, String), Failure> {
    let mut errors = Vec::new();
    let mut refused = true;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                return Ok((tcp, format!("Connected to {addr}")));
            }
            Err(e) => {
                refused &= e.kind() == std::io::ErrorKind::ConnectionRefused;
                errors.push(format!("{}: {e}", addr.ip()));
            }
        }
    }
    let message = if refused {
        format!(
            "Nothing listens on {host}:{port} (connection refused); check the host and the port"
        )
    } else {
        format!("Cannot connect to {host}:{port} ({})", errors.join("; "))
    };
    Err(Failure::new(FailureKind::Connection, message))
}

/// A TLS handshake on `tcp` as one step of `kind` (`tls` for implicit TLS,
/// `starttls` after the protocol said yes).
pub async fn handshake(
    steps: &mut Steps,
    kind: StepKind,
    tcp: TcpStream,
    host: &str,
    accept_invalid_certs: bool,
    before: &str,
) -> Result<Transport, Failure> {
    steps
        .run(kind, TLS_TIMEOUT, async {
            let transport = net::upgrade(tcp, host, accept_invalid_certs).await?;
            let detail = format!("{before}{}", tls_summary(&transport, accept_invalid_certs));
            Ok((transport, detail))
        })
        .await
}

/// The TLS version and cipher of a transport, and whether the certificate
/// was checked.
pub fn tls_summary(transport: &Transport, accept_invalid_certs: bool) -> String {
    let Transport::Tls(tls) = transport else {
        return "no TLS".to_owned();
    };
    let (_, conn) = tls.get_ref();
    let version = conn
        .protocol_version()
        .map(|v| match v {
            tokio_rustls::rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3".to_owned(),
            tokio_rustls::rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2".to_owned(),
            other => format!("{other:?}"),
        })
        .unwrap_or_else(|| "TLS".to_owned());
    let suite = conn
        .negotiated_cipher_suite()
        .map(|s| format!(" ({:?})", s.suite()))
        .unwrap_or_default();
    let cert = if accept_invalid_certs {
        "the certificate was not checked (accept-invalid-certs)"
    } else {
        "the certificate is valid"
    };
    format!("{version}{suite}; {cert}")
}

/// A stream with the verification's read and write timeouts.
pub fn timed(transport: Transport) -> net::Stream {
    net::Timed::new(transport, IO_TIMEOUT, IO_TIMEOUT)
}

/// Server text made fit for a report: control characters dropped, cut at
/// 300 characters.
pub fn clean(text: &str) -> String {
    let mut s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned();
    if s.chars().count() > 300 {
        s = s.chars().take(299).collect();
        s.push('…');
    }
    s
}

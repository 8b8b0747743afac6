//! # Steps
//!
//! The step recorder ([`Steps`]) and the steps every protocol shares: name
//! resolution, TCP connect and the TLS handshake. The sync engines and
//! Verify connect the same way, through the protocols' one connect/login
//! function each; both pass a [`Steps`]. Each step runs under its deadline
//! from the [timeout table](super::timeouts), cut short by the recorder's
//! overall budget, and leaves one [`Step`] behind whether it worked or not:
//! Verify shows them all, so a person sees exactly where it broke; the sync
//! engines log the one that failed.
//!
//! The protocol conversations (IMAP, POP3, SMTP) live in their own modules
//! and call [`Steps::run`] around each of their steps.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::timeouts::{self, shown};
use super::{Failure, FailureKind, Transport};

pub use super::failure::server_text as clean;

/// The budget of one connect/login of a sync engine: the sum of its
/// steps' deadlines is well under it, so only the steps' own deadlines
/// apply.
pub const SESSION_BUDGET: Duration = Duration::from_secs(5 * 60);

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
                    "The {} with {} timed out: no answer within {}",
                    kind.describe(),
                    self.target,
                    shown(limit)
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

    /// The last step that failed, if any (for the sync engines' log).
    pub fn last_failed(&self) -> Option<&Step> {
        self.list.iter().rev().find(|s| !s.ok)
    }

    /// Say in the debug log which step failed last (the sync engines keep
    /// no report, only this line).
    pub fn log_last_failed(&self, protocol: &str) {
        if let Some(s) = self.last_failed() {
            tracing::debug!(
                "{protocol} {}: the {} step failed after {} ms: {}",
                self.target,
                s.step.as_str(),
                s.elapsed.as_millis(),
                s.detail
            );
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
        .run(StepKind::Dns, timeouts::dns_timeout(), resolve(host, port))
        .await?;
    steps
        .run(
            StepKind::Connect,
            timeouts::connect_timeout(),
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
    // One silent address (a black-holed IPv6 route) must not eat the whole
    // step: each but the last gets its share, at least 2 s; the last gets
    // what the step has left (the caller's deadline bounds it all).
    let n = addrs.len().max(1) as u32;
    let share = (super::connect_timeout() / n).max(Duration::from_secs(2));
    let last = addrs.len().saturating_sub(1);
    for (i, addr) in addrs.into_iter().enumerate() {
        let attempt = TcpStream::connect(addr);
        let result = if i < last {
            match tokio::time::timeout(share, attempt).await {
                Ok(r) => r,
                Err(_) => {
                    refused = false;
                    errors.push(format!("{}: no answer within {}", addr.ip(), shown(share)));
                    continue;
                }
            }
        } else {
            attempt.await
        };
        match result {
            Ok(tcp) => {
                super::set_keepalive(&tcp);
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
        .run(kind, timeouts::tls_timeout(), async {
            let transport = super::upgrade(tcp, host, accept_invalid_certs).await?;
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

/// A stream with the command deadline on reads and writes (SMTP, POP3:
/// protocols that never wait for the server on purpose).
pub fn timed(transport: Transport) -> super::Stream {
    let limit = timeouts::command_timeout();
    super::Timed::new(transport, limit, limit)
}

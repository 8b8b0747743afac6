//! # Opening an SMTP session
//!
//! Connects per the account's `smtp-security`: implicit TLS (RFC 8314, port
//! 465), STARTTLS that is required (port 587; a server that does not offer
//! it is refused, never used in clear text), or clear text only when the
//! account says `none`. Everything up to the EHLO after TLS is done here
//! with [`Lines`], which refuses bytes a server sent between its STARTTLS
//! "go ahead" and the handshake; the TLS itself is [`crate::net`]'s, so
//! certificate checks and `accept-invalid-certs` behave as for IMAP. lettre
//! then gets the encrypted stream and does EHLO, AUTH and the transaction.
//!
//! Every step is recorded in a [`Steps`] (the recorder of [`crate::net`]),
//! which is the Verify report for `Verify` and the error context for
//! `Send`, and runs under its deadline from [`crate::net::timeouts`]; the
//! stream lettre gets has the command deadline on every read and write.
//! A server's own limit (421, and 452/454 when they say so) is
//! [`FailureKind::ServerLimit`]; a refused password names the host, the
//! login and the server's words.

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;

use super::wire::{Lines, Prefixed, Reply};
use crate::net::steps::{self, clean, StepKind, Steps};
use crate::net::{self, Failure, FailureKind, Transport};
use crate::settings::{Security, Settings};

/// The name given in EHLO: an address literal, as mail clients do, so that
/// the machine's host name does not leak into every message sent.
pub fn client_id() -> ClientId {
    ClientId::Ipv4(std::net::Ipv4Addr::LOCALHOST)
}

/// What lettre's greeting reader gets: the real greeting was read here.
const GREETING: &[u8] = b"220 facteur: greeting already read\r\n";

/// What the server announced in its EHLO reply over the final transport.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caps {
    /// SIZE, the largest message accepted (0: no limit announced).
    pub size: Option<u64>,
    /// AUTH mechanisms, upper-cased.
    pub auth: Vec<String>,
    /// Every keyword with its arguments, for reports.
    pub all: Vec<String>,
}

impl Caps {
    fn from_reply(r: &Reply) -> Caps {
        let mut caps = Caps::default();
        for (key, args) in r.keywords() {
            match key.as_str() {
                "SIZE" => caps.size = args.first().and_then(|a| a.parse().ok()),
                "AUTH" => {
                    for m in &args {
                        let m = m.to_ascii_uppercase();
                        if !caps.auth.contains(&m) {
                            caps.auth.push(m);
                        }
                    }
                }
                _ => {}
            }
            let shown = if args.is_empty() {
                key
            } else {
                format!("{key} {}", args.join(" "))
            };
            caps.all.push(shown);
        }
        caps
    }

    /// The capabilities a report names: `smtp:SIZE=…`, `smtp:AUTH=…`.
    pub fn report(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(size) = self.size {
            out.push(format!("smtp:SIZE={size}"));
        }
        out.extend(self.auth.iter().map(|m| format!("smtp:AUTH={m}")));
        out
    }
}

/// An authenticated (or, where the server offers no AUTH, merely opened)
/// SMTP session.
pub struct Session {
    /// The lettre connection, after EHLO and AUTH.
    pub conn: AsyncSmtpConnection,
    /// What the server announced.
    pub caps: Caps,
}

fn io_failure(host: &str, what: &str, e: std::io::Error) -> Failure {
    let kind = if e.kind() == std::io::ErrorKind::TimedOut {
        FailureKind::Timeout
    } else if e.kind() == std::io::ErrorKind::InvalidData {
        FailureKind::Protocol
    } else {
        FailureKind::Connection
    };
    let message = match kind {
        FailureKind::Timeout => format!("{host} did not answer {what}: timed out"),
        FailureKind::Protocol => {
            format!("{host} sent something facteur cannot read during {what} ({e})")
        }
        _ => format!("The connection to {host} failed during {what} ({e})"),
    };
    Failure::new(kind, message)
}

/// What a lettre error says, without lettre's `permanent error (535): `
/// prefix.
pub(crate) fn said(e: &lettre::transport::smtp::Error) -> String {
    let text = clean(&e.to_string());
    for kind in ["permanent error", "transient error"] {
        if let Some(rest) = text.strip_prefix(kind) {
            if let Some((_, after)) = rest.split_once("): ") {
                return after.to_owned();
            }
        }
    }
    text
}

/// Whether an SMTP reply code and text mean a limit of the server's own:
/// 421 (service not available, closing: too many connections, rate
/// limits), 452 (insufficient storage, too many recipients), 454 and
/// other 4xx replies when their text says so.
pub fn is_limit(code: u16, text: &str) -> bool {
    match code {
        421 | 452 => true,
        400..=499 => net::mentions_limit(text),
        _ => false,
    }
}

/// A server limit as a failure.
fn limit_failure(host: &str, what: &str, code: u16, text: &str) -> Failure {
    Failure::new(
        FailureKind::ServerLimit,
        format!(
            "{host} refused {what} for now, for a limit of its own ({code} {text}); facteur \
             tries again later"
        ),
    )
}

/// A lettre error as a failure, `what` naming the step.
pub fn lettre_failure(host: &str, what: &str, e: &lettre::transport::smtp::Error) -> Failure {
    let text = said(e);
    if let Some(code) = e.status().map(u16::from) {
        if is_limit(code, &text) {
            return limit_failure(host, what, code, &text);
        }
    }
    if e.is_timeout() {
        Failure::new(
            FailureKind::Timeout,
            format!("{host} did not answer during {what}: timed out"),
        )
    } else if let Some(code) = e.status() {
        Failure::new(
            FailureKind::Protocol,
            format!("{host} refused {what} ({code} {text})"),
        )
    } else if e.is_response() {
        Failure::new(
            FailureKind::Protocol,
            format!("{host} answered {what} with something facteur cannot read ({text})"),
        )
    } else {
        Failure::new(
            FailureKind::Connection,
            format!("The connection to {host} failed during {what} ({text})"),
        )
    }
}

async fn reply(lines: &mut Lines<Transport>, host: &str, what: &str) -> Result<Reply, Failure> {
    lines
        .smtp_reply()
        .await
        .map_err(|e| io_failure(host, what, e))
}

async fn ehlo(lines: &mut Lines<Transport>, host: &str) -> Result<Reply, Failure> {
    lines
        .send(&format!("EHLO {}", client_id()))
        .await
        .map_err(|e| io_failure(host, "sending EHLO", e))?;
    let r = reply(lines, host, "EHLO").await?;
    if r.code != 250 {
        let text = clean(&r.text());
        if is_limit(r.code, &text) {
            return Err(limit_failure(host, "EHLO", r.code, &text));
        }
        return Err(Failure::new(
            FailureKind::Protocol,
            format!("{host} refused EHLO ({} {text})", r.code),
        ));
    }
    Ok(r)
}

/// Open a session on the account's SMTP server, recording each step.
/// `password` is the SMTP password, or the incoming one when the account
/// has no separate SMTP password.
pub async fn open(
    settings: &Settings,
    password: Option<&str>,
    steps: &mut Steps,
) -> Result<Session, Failure> {
    let host = settings.smtp_host.as_str();
    let port = settings.smtp_port();
    let insecure = settings.accept_invalid_certs;
    let security = settings.smtp_security;
    let tcp = steps::open_tcp(steps, host, port).await?;
    let peer = tcp
        .peer_addr()
        .map_err(|e| io_failure(host, "the connection", e))?;
    let transport = if security == Security::Tls {
        steps::handshake(steps, StepKind::Tls, tcp, host, insecure, "").await?
    } else {
        Transport::Plain(tcp)
    };
    let mut lines = Lines::new(transport);
    let first_ehlo = steps
        .run(StepKind::Greeting, net::reply_timeout() * 2, async {
            let greeting = reply(&mut lines, host, "the greeting").await.map_err(|f| {
                if f.kind == FailureKind::Protocol {
                    Failure::new(
                        FailureKind::Protocol,
                        format!(
                            "{host}:{port} did not greet as an SMTP server does ({}); is this \
                             the right port?",
                            f.message
                        ),
                    )
                } else {
                    f
                }
            })?;
            if greeting.code != 220 {
                let text = clean(&greeting.text());
                if is_limit(greeting.code, &text) {
                    return Err(limit_failure(host, "the connection", greeting.code, &text));
                }
                return Err(Failure::new(
                    FailureKind::Connection,
                    format!("{host} refused the connection ({} {text})", greeting.code),
                ));
            }
            let r = ehlo(&mut lines, host).await?;
            Ok((r, clean(&greeting.text())))
        })
        .await?;

    let mut final_ehlo = Some(first_ehlo.clone());
    if security == Security::Starttls {
        let limit = net::reply_timeout() * 2 + net::tls_timeout();
        lines = steps
            .run(StepKind::Starttls, limit, async move {
                let offered = first_ehlo.keywords().iter().any(|(k, _)| k == "STARTTLS");
                if !offered {
                    return Err(Failure::new(
                        FailureKind::Tls,
                        format!(
                            "{host}:{port} does not offer STARTTLS, so the password and the mail \
                             would travel in clear text; use security tls (port 465), or ask \
                             the provider"
                        ),
                    ));
                }
                lines
                    .send("STARTTLS")
                    .await
                    .map_err(|e| io_failure(host, "sending STARTTLS", e))?;
                let r = reply(&mut lines, host, "STARTTLS").await?;
                if r.code != 220 {
                    let text = clean(&r.text());
                    if is_limit(r.code, &text) {
                        return Err(limit_failure(host, "STARTTLS", r.code, &text));
                    }
                    return Err(Failure::new(
                        FailureKind::Tls,
                        format!("{host} refused STARTTLS ({} {text})", r.code),
                    ));
                }
                // Anything already buffered came in clear text after the go
                // ahead: trusting it after the handshake is the response
                // injection attack. Refuse the connection.
                let transport = lines.into_inner().map_err(|n| {
                    Failure::new(
                        FailureKind::Tls,
                        format!(
                            "{host} sent {n} byte(s) after accepting STARTTLS and before the TLS \
                             handshake; refusing the connection (possible response injection)"
                        ),
                    )
                })?;
                let Transport::Plain(tcp) = transport else {
                    return Err(Failure::new(FailureKind::Protocol, "STARTTLS on TLS"));
                };
                let transport = net::upgrade(tcp, host, insecure).await?;
                let detail = format!(
                    "STARTTLS offered and accepted; {}",
                    steps::tls_summary(&transport, insecure)
                );
                Ok((Lines::new(transport), detail))
            })
            .await?;
        // RFC 3207 §4.2: forget what was learned before TLS.
        final_ehlo = None;
    }

    let caps = steps
        .run(StepKind::Capabilities, net::reply_timeout(), async {
            let r = match final_ehlo {
                Some(r) => r,
                None => ehlo(&mut lines, host).await?,
            };
            let caps = Caps::from_reply(&r);
            let detail = if caps.all.is_empty() {
                "no ESMTP extensions".to_owned()
            } else {
                clean(&caps.all.join(", "))
            };
            Ok((caps, detail))
        })
        .await?;

    let transport = lines.into_inner().map_err(|n| {
        Failure::new(
            FailureKind::Protocol,
            format!("{host} sent {n} unexpected byte(s) after its EHLO reply"),
        )
    })?;
    let stream = Prefixed::new(GREETING, steps::timed(transport), peer);
    let login = settings.smtp_login();
    if !caps.auth.is_empty() && password.is_none() {
        return Err(steps.fail(
            StepKind::Auth,
            Failure::new(
                FailureKind::Credentials,
                format!("No password is known for login {login}"),
            ),
        ));
    }
    let offered = caps.auth.clone();
    let conn = steps
        .run(
            StepKind::Auth,
            net::reply_timeout() + net::auth_timeout(),
            async move {
                let mut conn =
                    AsyncSmtpConnection::connect_with_transport(Box::new(stream), &client_id())
                        .await
                        .map_err(|e| lettre_failure(host, "EHLO", &e))?;
                let Some(password) = password.filter(|_| !offered.is_empty()) else {
                    return Ok((
                        conn,
                        "The server offers no AUTH: mail is sent without logging in".to_owned(),
                    ));
                };
                let mechanism = if offered.iter().any(|m| m == "PLAIN") {
                    Mechanism::Plain
                } else if offered.iter().any(|m| m == "LOGIN") {
                    Mechanism::Login
                } else {
                    return Err(Failure::new(
                        FailureKind::NotSupported,
                        format!(
                            "{host} offers only AUTH {}; facteur logs in with PLAIN or LOGIN",
                            offered.join(" ")
                        ),
                    ));
                };
                let credentials = Credentials::new(login.to_owned(), password.to_owned());
                conn.auth(&[mechanism], &credentials)
                    .await
                    .map_err(|e| match e.status() {
                        Some(code) if e.is_permanent() => Failure::new(
                            FailureKind::Auth,
                            format!(
                                "The server {host} refused the password for login {login} \
                             ({code} {})",
                                said(&e)
                            ),
                        ),
                        _ => lettre_failure(host, "the login", &e),
                    })?;
                let used = match mechanism {
                    Mechanism::Plain => "PLAIN",
                    Mechanism::Login => "LOGIN",
                    Mechanism::Xoauth2 => "XOAUTH2",
                };
                Ok((
                    conn,
                    format!(
                        "mechanisms offered: {}; used {used}; logged in as {login}",
                        offered.join(" ")
                    ),
                ))
            },
        )
        .await?;
    Ok(Session { conn, caps })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_limits_are_recognised() {
        assert!(is_limit(421, "4.7.0 Too many connections, closing"));
        assert!(is_limit(421, "Service not available"));
        assert!(is_limit(452, "4.5.3 Too many recipients"));
        assert!(is_limit(454, "4.7.0 Rate limit exceeded, try again later"));
        assert!(!is_limit(
            454,
            "4.7.0 TLS not available due to local problem"
        ));
        assert!(!is_limit(535, "5.7.8 Too many connections"));
        assert!(!is_limit(250, "ok"));
        let f = limit_failure("smtp.example.net", "the connection", 421, "too busy");
        assert_eq!(f.kind, FailureKind::ServerLimit);
        assert_eq!(f.code(), "server-limit");
        assert!(f.message.contains("smtp.example.net"), "{f}");
        assert!(f.message.contains("421 too busy"), "{f}");
    }
}

//! # Verifying a POP3 server
//!
//! One POP3 session with the in-house client ([`crate::pop3`]), step by
//! step: greeting, STLS when the account asks for it (required, and the
//! client refuses bytes injected before the handshake), login with SASL
//! PLAIN when offered and USER/PASS otherwise, then CAPA and STAT. Nothing
//! is retrieved or deleted.

use super::steps::{self, clean, StepKind, Steps, AUTH_TIMEOUT, REPLY_TIMEOUT};
use crate::net::{self, Failure, FailureKind, Stream, Transport};
use crate::pop3::{Capabilities, Client, Config, Error};
use crate::settings::{Security, Settings};

/// The POP3 capabilities a report names, when the server has them.
pub const INTERESTING: &[&str] = &["UIDL", "TOP", "STLS"];

fn config() -> Config {
    Config {
        timeout: steps::IO_TIMEOUT,
        ..Config::default()
    }
}

/// A POP3 error as a failure a person can act on.
pub fn failure(e: Error, host: &str, login: &str) -> Failure {
    let kind = match &e {
        Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => FailureKind::Timeout,
        Error::Io(_) | Error::Closed | Error::Desynchronized => FailureKind::Connection,
        Error::Timeout(_) => FailureKind::Timeout,
        Error::AuthenticationFailed { .. } => FailureKind::Auth,
        Error::StlsInjection | Error::TlsRequired => FailureKind::Tls,
        Error::Sink(_) => FailureKind::Local,
        Error::InvalidInput(_) => FailureKind::Credentials,
        Error::Server { .. } | Error::Protocol(_) | Error::LineTooLong { .. } => {
            FailureKind::Protocol
        }
        Error::TooLarge { .. } => FailureKind::Protocol,
    };
    let message = match &e {
        Error::AuthenticationFailed { message, .. } => format!(
            "The server {host} refused the password for login {login}: {}",
            clean(message)
        ),
        other => format!("{host}: {other}"),
    };
    Failure::new(kind, message)
}

fn offered(caps: &Capabilities) -> String {
    let mut methods = Vec::new();
    let sasl = caps.sasl_mechanisms();
    if !sasl.is_empty() {
        methods.push(format!("SASL {}", sasl.join(" ")));
    }
    if caps.user() || !caps.advertised() {
        methods.push("USER".to_owned());
    }
    if methods.is_empty() {
        "no login method announced".to_owned()
    } else {
        format!("methods offered: {}", methods.join(", "))
    }
}

/// Check the incoming POP3 server of `settings`. Returns the capabilities
/// to report (`pop3:UIDL`, `pop3:SASL=PLAIN`, …).
pub async fn check(
    settings: &Settings,
    password: Option<&str>,
    steps: &mut Steps,
) -> Result<Vec<String>, Failure> {
    let host = settings.incoming_host.as_str();
    let port = settings.incoming_port();
    let insecure = settings.accept_invalid_certs;
    let login = settings.incoming_login();
    let tcp = steps::open_tcp(steps, host, port).await?;
    let transport = if settings.incoming_security == Security::Tls {
        steps::handshake(steps, StepKind::Tls, tcp, host, insecure, "").await?
    } else {
        Transport::Plain(tcp)
    };
    let mut client: Client<Stream> = steps
        .run(StepKind::Greeting, REPLY_TIMEOUT, async {
            let client = Client::connect(steps::timed(transport), config())
                .await
                .map_err(|e| failure(e, host, login))?;
            let detail = format!("+OK {}", clean(client.greeting()));
            Ok((client, detail))
        })
        .await?;

    if settings.incoming_security == Security::Starttls {
        let limit = REPLY_TIMEOUT + steps::TLS_TIMEOUT;
        client = steps
            .run(StepKind::Starttls, limit, async move {
                let caps = client.capa().await.map_err(|e| failure(e, host, login))?;
                if !caps.stls() {
                    return Err(Failure::new(
                        FailureKind::Tls,
                        format!(
                            "{host}:{port} does not offer STLS, so the password would travel in \
                             clear text; use security tls (port 995), or ask the provider"
                        ),
                    ));
                }
                // stls() refuses anything the server sent after its +OK.
                let plain = client.stls().await.map_err(|e| failure(e, host, login))?;
                let Transport::Plain(tcp) = plain.into_inner() else {
                    return Err(Failure::new(FailureKind::Protocol, "STLS on TLS"));
                };
                let transport = net::upgrade(tcp, host, insecure).await?;
                let detail = format!(
                    "STLS offered and accepted; {}",
                    steps::tls_summary(&transport, insecure)
                );
                Ok((
                    Client::after_stls(steps::timed(transport), config()),
                    detail,
                ))
            })
            .await?;
    }

    let Some(password) = password else {
        return Err(steps.fail(
            StepKind::Auth,
            Failure::new(
                FailureKind::Credentials,
                format!("No password is known for login {login}"),
            ),
        ));
    };
    let before = steps
        .run(StepKind::Auth, AUTH_TIMEOUT, async {
            // RFC 2595 §4: capabilities from before STLS are not used.
            let caps = client.capa().await.map_err(|e| failure(e, host, login))?;
            let used = if caps.sasl_plain() {
                "AUTH PLAIN"
            } else {
                "USER/PASS"
            };
            client
                .login(&caps, login, password)
                .await
                .map_err(|e| failure(e, host, login))?;
            let detail = format!("{}; used {used}; logged in as {login}", offered(&caps));
            Ok((caps, detail))
        })
        .await?;

    let caps = steps
        .run(StepKind::Capabilities, REPLY_TIMEOUT, async {
            // Some servers say more after login (RFC 2449 §5); keep the
            // earlier answer if this one fails.
            let caps = match client.capa().await {
                Ok(c) if c.advertised() => c,
                _ => before.clone(),
            };
            let stat = client.stat().await.map_err(|e| failure(e, host, login))?;
            // facteur keys everything on UIDL (issue 4, point 5): a server
            // without it cannot be synced without downloading twice.
            let has_uidl = if caps.advertised() || before.advertised() {
                caps.uidl() || before.uidl()
            } else {
                client.uidl().await.is_ok()
            };
            if !has_uidl {
                return Err(Failure::new(
                    FailureKind::NotSupported,
                    format!(
                        "{host} does not support UIDL, so facteur cannot tell new messages from \
                         old ones; use IMAP for this account"
                    ),
                ));
            }
            let found: Vec<&str> = INTERESTING
                .iter()
                .copied()
                .filter(|n| caps.has(n) || before.has(n))
                .collect();
            let detail = format!(
                "{}; {} message(s), {} bytes; all: {}",
                if found.is_empty() {
                    "none of UIDL, TOP, STLS".to_owned()
                } else {
                    found.join(" ")
                },
                stat.count,
                stat.size,
                clean(&caps.lines().join(", "))
            );
            Ok((caps, detail))
        })
        .await?;
    // Best effort: QUIT ends the session without changing the maildrop.
    let _ = tokio::time::timeout(REPLY_TIMEOUT, client.quit()).await;

    let mut report: Vec<String> = INTERESTING
        .iter()
        .filter(|n| caps.has(n) || before.has(n))
        .map(|n| format!("pop3:{n}"))
        .collect();
    report.extend(
        before
            .sasl_mechanisms()
            .into_iter()
            .map(|m| format!("pop3:SASL={m}")),
    );
    Ok(report)
}

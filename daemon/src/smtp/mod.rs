//! # SMTP: sending mail
//!
//! Submits a message over the account's SMTP server and answers with an
//! [`Outcome`]: sent, retry later, or failed for good, an explicit value a
//! caller branches on (never guessed from error text). For IMAP accounts a
//! copy then goes to the Sent folder ([`sent`]), and into the local store
//! at once.
//!
//! - [`connect`]: connection, TLS (implicit, or STARTTLS without clear-text
//!   fall-back and without trusting bytes read before the handshake), EHLO,
//!   AUTH, each step recorded like a Verify report.
//! - [`message`]: the envelope from the headers, the missing From/Date/
//!   Message-ID, Bcc removed.
//! - [`wire`]: the line reader used before lettre takes over.
//!
//! lettre does EHLO, AUTH, MAIL/RCPT/DATA and the dot-stuffing; TLS is
//! [`crate::net`]'s, so certificates are checked exactly as for IMAP.
//! Passwords are used for AUTH and dropped; they are never logged (lettre's
//! own `tracing` feature, which logs AUTH lines, is off).

pub mod connect;
pub mod message;
pub mod sent;
pub mod wire;

use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use crate::net::steps::{Service, Steps};
use crate::net::{Failure, FailureKind};
use crate::settings::{Protocol, Settings};
use crate::store::{Observer, Store};

/// Time allowed to connect, upgrade and log in before sending.
pub const CONNECT_BUDGET: Duration = Duration::from_secs(20);
/// Time allowed for the transaction (MAIL, RCPT, DATA and the final
/// reply). RFC 5321 §4.5.3.2 lets a server take 10 minutes after DATA;
/// Send is a D-Bus call a person waits for, so this is shorter.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed for the copy in the Sent folder.
pub const SENT_COPY_TIMEOUT: Duration = Duration::from_secs(30);

/// What went wrong with a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Reaching or talking to the server failed, per [`FailureKind`].
    Net(FailureKind),
    /// The server refused the sender, a recipient or the message; the
    /// message carries its reply.
    Rejected,
    /// The message cannot be sent as it is (no recipient, bad address).
    BadMessage,
    /// The connection timed out or was lost during the transaction, with
    /// no reply to say how it went: the server may have taken the message
    /// (a `RetryLater` that must look in the Sent folder before sending
    /// again).
    MaybeSent(FailureKind),
}

/// A send that did not happen, with a sentence a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// Why.
    pub cause: Cause,
    /// What happened, with the server's reply where there is one.
    pub message: String,
}

impl SendError {
    fn net(f: Failure) -> SendError {
        SendError {
            cause: Cause::Net(f.kind),
            message: f.message,
        }
    }
}

/// The result of one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server took the message; its final reply.
    Sent {
        /// The reply to the end of DATA.
        reply: String,
    },
    /// Nothing was sent; the same message may go through later (network
    /// down, timeout, a 4xx reply).
    RetryLater(SendError),
    /// Nothing was sent, and sending the same again will fail the same way
    /// (wrong password, certificate refused, 5xx reply, bad message).
    Failed(SendError),
}

/// A failure before the transaction: network trouble and timeouts may pass,
/// the rest needs a person.
fn before_transaction(f: Failure) -> Outcome {
    match f.kind {
        FailureKind::Connection | FailureKind::Timeout => Outcome::RetryLater(SendError::net(f)),
        _ => Outcome::Failed(SendError::net(f)),
    }
}

/// Send `raw` with `settings`, authenticating with `password`. Returns the
/// outcome and, when sent, the bytes to keep as the Sent copy.
pub async fn send(
    settings: &Settings,
    password: Option<&str>,
    raw: &[u8],
) -> (Outcome, Option<Vec<u8>>) {
    if settings.smtp_host.is_empty() {
        return (
            Outcome::Failed(SendError {
                cause: Cause::Net(FailureKind::NotSupported),
                message: "This account has no outgoing (SMTP) server; set smtp-host first"
                    .to_owned(),
            }),
            None,
        );
    }
    let prepared = match message::prepare(
        raw,
        &settings.email,
        &settings.display_name,
        SystemTime::now(),
    ) {
        Ok(p) => p,
        Err(message::Invalid(m)) => {
            return (
                Outcome::Failed(SendError {
                    cause: Cause::BadMessage,
                    message: m,
                }),
                None,
            )
        }
    };
    let host = settings.smtp_host.as_str();
    let target = format!("{host}:{}", settings.smtp_port());
    let mut steps = Steps::new(Service::Smtp, target, CONNECT_BUDGET);
    let mut session = match connect::open(settings, password, &mut steps).await {
        Ok(s) => s,
        Err(f) => return (before_transaction(f), None),
    };
    if let Some(limit) = session.caps.size.filter(|s| *s > 0) {
        if prepared.wire.len() as u64 > limit {
            let _ = session.conn.quit().await;
            return (
                Outcome::Failed(SendError {
                    cause: Cause::Rejected,
                    message: format!(
                        "The message is {} bytes; {host} accepts at most {limit}",
                        prepared.wire.len()
                    ),
                }),
                None,
            );
        }
    }
    let sent = tokio::time::timeout(
        TRANSACTION_TIMEOUT,
        session.conn.send(&prepared.envelope, &prepared.wire),
    )
    .await;
    let outcome = match sent {
        Err(_) => Outcome::RetryLater(SendError {
            cause: Cause::MaybeSent(FailureKind::Timeout),
            message: format!(
                "{host} did not confirm the message within {} s; it may or may not have been sent",
                TRANSACTION_TIMEOUT.as_secs()
            ),
        }),
        Ok(Ok(reply)) => Outcome::Sent {
            reply: format!(
                "{} {}",
                reply.code(),
                reply.message().collect::<Vec<_>>().join(" ")
            ),
        },
        Ok(Err(e)) => {
            // The server's own words, with its code: "550 5.1.1 No such user".
            let text = match e.status() {
                Some(code) => format!("{code} {}", connect::said(&e)),
                None => connect::said(&e),
            };
            if e.is_permanent() {
                Outcome::Failed(SendError {
                    cause: Cause::Rejected,
                    message: format!("{host} refused the message: {text}"),
                })
            } else if e.is_transient() {
                Outcome::RetryLater(SendError {
                    cause: Cause::Rejected,
                    message: format!(
                        "{host} refused the message for now (try again later): {text}"
                    ),
                })
            } else if e.is_client() {
                Outcome::Failed(SendError {
                    cause: Cause::BadMessage,
                    message: format!("The message cannot be sent through {host}: {text}"),
                })
            } else {
                // No reply: the connection went, maybe after DATA.
                let f = connect::lettre_failure(host, "sending", &e);
                Outcome::RetryLater(SendError {
                    cause: Cause::MaybeSent(f.kind),
                    message: format!("{}; it may or may not have been sent", f.message),
                })
            }
        }
    };
    // Best effort: the outcome is known already.
    let _ = tokio::time::timeout(Duration::from_secs(5), session.conn.quit()).await;
    let copy = matches!(outcome, Outcome::Sent { .. }).then_some(prepared.copy);
    (outcome, copy)
}

/// The passwords a submission uses; the caller (the accounts layer) has
/// looked them up.
#[derive(Clone, Copy, Default)]
pub struct Passwords<'a> {
    /// For SMTP AUTH: the account's SMTP password, else its incoming one.
    pub smtp: Option<&'a str>,
    /// For the copy in the Sent folder of an IMAP account.
    pub incoming: Option<&'a str>,
}

impl std::fmt::Debug for Passwords<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("smtp", &self.smtp.map(|_| "[redacted]"))
            .field("incoming", &self.incoming.map(|_| "[redacted]"))
            .finish()
    }
}

/// `Account.Send`: send `raw` through account `id` with `settings`, then
/// keep a copy in the Sent folder of an IMAP account, on the server and
/// here at once (announced through `observer` as a change, not as new
/// mail). A POP3 account keeps no Sent copy.
pub async fn submit(
    id: &str,
    settings: &Settings,
    passwords: Passwords<'_>,
    store: &Store,
    observer: &dyn Observer,
    raw: &[u8],
) -> Outcome {
    let (outcome, copy) = send(settings, passwords.smtp, raw).await;
    match &outcome {
        Outcome::Sent { reply } => info!("Account {id}: message sent ({reply})."),
        Outcome::RetryLater(e) => warn!("Account {id}: sending failed, for now: {}", e.message),
        Outcome::Failed(e) => warn!("Account {id}: sending failed: {}", e.message),
    }
    if let (Some(copy), Protocol::Imap) = (copy, settings.incoming_protocol) {
        let Some(incoming) = passwords.incoming else {
            warn!("Account {id}: no incoming password; the sent message is not copied to Sent.");
            return outcome;
        };
        let saved = tokio::time::timeout(
            SENT_COPY_TIMEOUT,
            sent::save_copy(id, settings, incoming, store, &copy),
        )
        .await;
        match saved {
            Ok(Ok(saved)) => {
                info!(
                    "Account {id}: copy of the sent message saved in {}.",
                    saved.display
                );
                sent::keep_locally(id, store, observer, saved).await;
            }
            Ok(Err(f)) => warn!(
                "Account {id}: the message was sent, but its copy could not be saved in the Sent folder: {}",
                f.message
            ),
            Err(_) => warn!(
                "Account {id}: the message was sent, but saving its copy in the Sent folder took more than {} s",
                SENT_COPY_TIMEOUT.as_secs()
            ),
        }
    }
    outcome
}

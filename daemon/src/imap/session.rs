//! # IMAP connection and login
//!
//! Connects per the account's security (implicit TLS, STARTTLS that is
//! required — never a silent fall back to plain text — or plain only when
//! the account says `none`), reads the greeting, logs in with AUTHENTICATE
//! PLAIN when offered and LOGIN otherwise, and re-reads the capabilities
//! after login (Dovecot announces CONDSTORE and friends only then).
//!
//! Every step runs under a timeout: async-imap has none of its own.

use std::future::Future;
use std::time::Duration;

use async_imap::{Client, Session};
use tracing::debug;

use super::bounded::Bounded;
use crate::net::{self, Failure, FailureKind, Stream};
use crate::settings::{Security, Settings};

/// The stream under an IMAP client: response lines bounded (see
/// [`Bounded`]).
pub type ImapStream = Bounded<Stream>;

/// A logged-in session.
pub type ImapSession = Session<ImapStream>;

/// What the server can do, as far as the sync engine cares.
#[derive(Debug, Clone, Default)]
pub struct Caps {
    /// RFC 2177.
    pub idle: bool,
    /// RFC 7162.
    pub condstore: bool,
    /// RFC 7162.
    pub qresync: bool,
    /// RFC 4315: UID EXPUNGE.
    pub uidplus: bool,
    /// RFC 6154.
    pub special_use: bool,
    /// RFC 6851.
    pub r#move: bool,
    /// RFC 2971.
    pub id: bool,
    /// Every capability, for reports.
    pub all: Vec<String>,
}

/// Run an IMAP step under [`net::COMMAND_TIMEOUT`], mapping errors.
pub async fn step<T>(
    what: &str,
    fut: impl Future<Output = async_imap::error::Result<T>>,
) -> Result<T, Failure> {
    step_within(net::COMMAND_TIMEOUT, what, fut).await
}

/// Run an IMAP step under `limit`.
pub async fn step_within<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = async_imap::error::Result<T>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(imap_failure(what, e)),
        Err(_) => Err(Failure::new(
            FailureKind::Timeout,
            format!(
                "The server did not answer {what} within {} s",
                limit.as_secs()
            ),
        )),
    }
}

/// Classify an async-imap error. Its text is cut to a sentence's length:
/// some errors quote everything the server sent.
pub fn imap_failure(what: &str, e: async_imap::error::Error) -> Failure {
    let mut f = classify(what, e);
    if f.message.chars().count() > 300 {
        f.message = f.message.chars().take(300).chain("…".chars()).collect();
    }
    f
}

fn classify(what: &str, e: async_imap::error::Error) -> Failure {
    use async_imap::error::Error as E;
    match e {
        E::Io(io) => Failure::new(
            if io.kind() == std::io::ErrorKind::TimedOut {
                FailureKind::Timeout
            } else {
                FailureKind::Connection
            },
            format!("The connection broke during {what}: {io}"),
        ),
        E::ConnectionLost => Failure::new(
            FailureKind::Connection,
            format!("The server closed the connection during {what}"),
        ),
        E::No(m) | E::Bad(m) => Failure::new(
            FailureKind::Protocol,
            format!("The server refused {what}: {m}"),
        ),
        other => Failure::new(FailureKind::Protocol, format!("{what} failed: {other}")),
    }
}

/// The names of capabilities a logged-in session reported.
pub fn capability_names(caps: &async_imap::types::Capabilities) -> Vec<String> {
    caps.iter()
        .map(|c| match c {
            async_imap::types::Capability::Imap4rev1 => "IMAP4rev1".to_owned(),
            async_imap::types::Capability::Auth(m) => format!("AUTH={m}"),
            async_imap::types::Capability::Atom(a) => a.to_string(),
        })
        .collect()
}

fn caps_of(caps: &async_imap::types::Capabilities) -> Caps {
    caps_from(capability_names(caps))
}

/// SASL PLAIN (RFC 4616) for AUTHENTICATE.
pub struct Plain<'a> {
    /// The login.
    pub login: &'a str,
    /// The password.
    pub password: &'a str,
}

impl async_imap::Authenticator for &Plain<'_> {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Self::Response {
        // RFC 4616: authzid NUL authcid NUL password.
        let mut r = Vec::with_capacity(self.login.len() + self.password.len() + 2);
        r.push(0);
        r.extend_from_slice(self.login.as_bytes());
        r.push(0);
        r.extend_from_slice(self.password.as_bytes());
        r
    }
}

/// CAPABILITY on a client that is not logged in yet.
pub async fn client_capabilities<T>(client: &mut Client<T>) -> Result<Vec<String>, Failure>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    // An unauthenticated Client has no capabilities() of its own: run the
    // command and collect its untagged answer from the side channel.
    let (tx, rx) = async_channel::bounded(16);
    step(
        "CAPABILITY",
        client.run_command_and_check_ok("CAPABILITY", Some(tx)),
    )
    .await?;
    let mut all = Vec::new();
    while let Ok(async_imap::types::UnsolicitedResponse::Other(resp)) = rx.try_recv() {
        if let imap_proto::Response::Capabilities(caps) = resp.parsed() {
            for c in caps {
                all.push(match c {
                    imap_proto::Capability::Imap4rev1 => "IMAP4rev1".to_owned(),
                    imap_proto::Capability::Auth(m) => format!("AUTH={m}"),
                    imap_proto::Capability::Atom(a) => a.to_string(),
                });
            }
        }
    }
    Ok(all)
}

async fn capabilities(client: &mut Client<ImapStream>) -> Result<Caps, Failure> {
    Ok(caps_from(client_capabilities(client).await?))
}

fn caps_from(all: Vec<String>) -> Caps {
    let has = |name: &str| all.iter().any(|c| c.eq_ignore_ascii_case(name));
    Caps {
        idle: has("IDLE"),
        condstore: has("CONDSTORE") || has("QRESYNC"),
        qresync: has("QRESYNC"),
        uidplus: has("UIDPLUS"),
        special_use: has("SPECIAL-USE"),
        r#move: has("MOVE"),
        id: has("ID"),
        all,
    }
}

/// Read the server's greeting (RFC 3501 §7.1); returns its text. A server
/// that greets with PREAUTH or BYE, or not as IMAP, is refused. No timeout
/// of its own: callers bound it.
pub async fn greeting<T>(client: &mut Client<T>, host: &str) -> Result<String, Failure>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let resp = client
        .read_response()
        .await
        .map_err(|e| {
            Failure::new(
                FailureKind::Connection,
                format!("Reading the greeting of {host}: {e}"),
            )
        })?
        .ok_or_else(|| {
            Failure::new(
                FailureKind::Connection,
                format!("{host} closed the connection before greeting"),
            )
        })?;
    match resp.parsed() {
        imap_proto::Response::Data {
            status: imap_proto::Status::Ok,
            outcome,
        } => Ok(outcome
            .information
            .as_deref()
            .unwrap_or_default()
            .to_owned()),
        imap_proto::Response::Data {
            status: imap_proto::Status::PreAuth,
            ..
        } => Err(Failure::new(
            FailureKind::Protocol,
            format!("{host} greeted with PREAUTH; facteur only logs in with a password"),
        )),
        imap_proto::Response::Data {
            status: imap_proto::Status::Bye,
            outcome,
        } => Err(Failure::new(
            FailureKind::Connection,
            format!(
                "{host} refused the connection: {}",
                outcome.information.as_deref().unwrap_or_default()
            ),
        )),
        _ => Err(Failure::new(
            FailureKind::Protocol,
            format!("{host} did not greet as an IMAP server does; is this the right port?"),
        )),
    }
}

/// Connect and log in. Returns the session and the post-login
/// capabilities.
pub async fn connect(settings: &Settings, password: &str) -> Result<(ImapSession, Caps), Failure> {
    let host = settings.incoming_host.as_str();
    let port = settings.incoming_port();
    let insecure = settings.accept_invalid_certs;
    let stream = net::connect(
        host,
        port,
        settings.incoming_security == Security::Tls,
        insecure,
    )
    .await?;
    let mut client = Client::new(Bounded::new(stream));
    tokio::time::timeout(net::COMMAND_TIMEOUT, greeting(&mut client, host))
        .await
        .map_err(|_| {
            Failure::new(
                FailureKind::Timeout,
                format!(
                    "{host} sent no IMAP greeting within {} s",
                    net::COMMAND_TIMEOUT.as_secs()
                ),
            )
        })??;
    let mut caps = capabilities(&mut client).await?;
    if settings.incoming_security == Security::Starttls {
        if !caps.all.iter().any(|c| c.eq_ignore_ascii_case("STARTTLS")) {
            return Err(Failure::new(
                FailureKind::Tls,
                format!(
                    "{host}:{port} does not offer STARTTLS; refusing to log in over plain text \
                     (use security tls on port 993, or none only on a trusted network)"
                ),
            ));
        }
        step(
            "STARTTLS",
            client.run_command_and_check_ok("STARTTLS", None),
        )
        .await?;
        // into_inner() drops whatever the server sent after its OK: nothing
        // read before TLS is trusted after it (response injection).
        let tls = net::starttls(client.into_inner().into_inner(), host, insecure).await?;
        client = Client::new(Bounded::new(tls));
        // RFC 3501 §6.2.1: capabilities learned before TLS are discarded.
        caps = capabilities(&mut client).await?;
    }
    let login = settings.incoming_login();
    let refused = |e: async_imap::error::Error| match e {
        async_imap::error::Error::No(m) | async_imap::error::Error::Bad(m) => Failure::new(
            FailureKind::Auth,
            format!("The server {host} refused the password for login {login}: {m}"),
        ),
        other => imap_failure("login", other),
    };
    let session = if caps
        .all
        .iter()
        .any(|c| c.eq_ignore_ascii_case("AUTH=PLAIN"))
    {
        let auth = Plain { login, password };
        tokio::time::timeout(net::COMMAND_TIMEOUT, client.authenticate("PLAIN", &auth))
            .await
            .map_err(|_| {
                Failure::new(
                    FailureKind::Timeout,
                    format!("{host} did not answer the login"),
                )
            })?
            .map_err(|(e, _)| refused(e))?
    } else if caps
        .all
        .iter()
        .any(|c| c.eq_ignore_ascii_case("LOGINDISABLED"))
    {
        return Err(Failure::new(
            FailureKind::NotSupported,
            format!("{host} disables LOGIN on this connection and offers no AUTH=PLAIN"),
        ));
    } else {
        tokio::time::timeout(net::COMMAND_TIMEOUT, client.login(login, password))
            .await
            .map_err(|_| {
                Failure::new(
                    FailureKind::Timeout,
                    format!("{host} did not answer the login"),
                )
            })?
            .map_err(|(e, _)| refused(e))?
    };
    let mut session = session;
    let after = step("CAPABILITY", session.capabilities()).await?;
    let caps = caps_of(&after);
    drain(&mut session);
    if caps.id {
        // RFC 2971; some providers (NetEase) refuse SELECT without it.
        let _ = step(
            "ID",
            session.id([
                ("name", Some("facteur")),
                ("version", Some(env!("CARGO_PKG_VERSION"))),
            ]),
        )
        .await;
    }
    debug!(
        "Logged in to {host}:{port} as {login}; capabilities {:?}.",
        caps.all
    );
    Ok((session, caps))
}

/// Empty the unsolicited-response channel (async-imap drops responses past
/// 100 unread ones). Returns whether any announced new or removed mail.
pub fn drain(session: &mut ImapSession) -> bool {
    use async_imap::types::UnsolicitedResponse as U;
    let mut changed = false;
    while let Ok(r) = session.unsolicited_responses.try_recv() {
        if matches!(r, U::Exists(_) | U::Expunge(_) | U::Recent(_)) {
            changed = true;
        }
    }
    changed
}

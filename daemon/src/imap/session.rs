//! # IMAP connection and login
//!
//! The one connect/login path of IMAP, for the sync engine and Verify
//! alike ([`open`]): connects per the account's security (implicit TLS,
//! STARTTLS that is required — never a silent fall back to plain text — or
//! plain only when the account says `none`), reads the greeting, logs in
//! with AUTHENTICATE PLAIN when offered and LOGIN otherwise, and re-reads
//! the capabilities after login (Dovecot announces CONDSTORE and friends
//! only then). Each step is recorded in a [`Steps`]: Verify reports them,
//! the sync engine ([`connect`]) logs the one that failed.
//!
//! Every step and every command afterwards runs under a deadline from
//! [`crate::net::timeouts`]: async-imap has none of its own. A refusal is
//! told in words: the server's text, not async-imap's debug form, and a
//! server's own limit (`[LIMIT]`, `[UNAVAILABLE]`, `[INUSE]`, `[OVERQUOTA]` of
//! RFC 5530, or "too many connections") is [`FailureKind::ServerLimit`].

use std::future::Future;
use std::time::Duration;

use async_imap::{Client, Session};
use tracing::debug;

mod refusal;

pub use refusal::{imap_failure, is_limit, said};
use refusal::{login_refused, quoted_text};

use super::bounded::Bounded;
use crate::net::steps::{self, clean, SESSION_BUDGET};
use crate::net::timeouts::shown;
use crate::net::{self, Failure, FailureKind, Service, StepKind, Steps, Stream, Transport};
use crate::settings::{Security, Settings};

/// The capabilities a report names and the capabilities step's detail
/// lists, when the server has them.
pub const INTERESTING: &[&str] = &[
    "IDLE",
    "CONDSTORE",
    "QRESYNC",
    "UIDPLUS",
    "MOVE",
    "SPECIAL-USE",
    "NOTIFY",
];

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

/// Run an IMAP step under the command deadline
/// ([`net::command_timeout`]), mapping errors.
pub async fn step<T>(
    what: &str,
    fut: impl Future<Output = async_imap::error::Result<T>>,
) -> Result<T, Failure> {
    step_within(net::COMMAND_TIMEOUT, what, fut).await
}

/// Run an IMAP step under `limit` (cut to `FACTEUR_COMMAND_TIMEOUT_MS`
/// when that is set, see [`net::within`]).
pub async fn step_within<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = async_imap::error::Result<T>>,
) -> Result<T, Failure> {
    let limit = net::within(limit);
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(imap_failure(what, e)),
        Err(_) => Err(Failure::new(
            FailureKind::Timeout,
            format!(
                "The server did not answer {what} within {}: timed out",
                shown(limit)
            ),
        )),
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
    step_within(
        net::REPLY_TIMEOUT,
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
        } => {
            let text = clean(outcome.information.as_deref().unwrap_or_default());
            let kind = if is_limit(&text) {
                FailureKind::ServerLimit
            } else {
                FailureKind::Connection
            };
            Err(Failure::new(
                kind,
                format!("{host} refused the connection{}", quoted_text(&text)),
            ))
        }
        _ => Err(Failure::new(
            FailureKind::Protocol,
            format!("{host} did not greet as an IMAP server does; is this the right port?"),
        )),
    }
}

/// Connect and log in for the sync engine: [`open`] with a recorder of its
/// own, whose failed step is logged; then ID (RFC 2971) when offered.
/// Returns the session and the post-login capabilities.
pub async fn connect(settings: &Settings, password: &str) -> Result<(ImapSession, Caps), Failure> {
    let host = settings.incoming_host.as_str();
    let port = settings.incoming_port();
    let mut steps = Steps::new(Service::Incoming, format!("{host}:{port}"), SESSION_BUDGET);
    let (mut session, mut caps) = match open(settings, Some(password), &mut steps).await {
        Ok(v) => v,
        Err(f) => {
            steps.log_last_failed("IMAP");
            return Err(f);
        }
    };
    if caps.id {
        // RFC 2971; some providers (NetEase) refuse SELECT without it.
        let _ = step_within(
            net::REPLY_TIMEOUT,
            "ID",
            session.id([
                ("name", Some("facteur")),
                ("version", Some(env!("CARGO_PKG_VERSION"))),
            ]),
        )
        .await;
    }
    if caps.qresync {
        // RFC 7162 §3.2.3: QRESYNC in SELECT only once it is enabled.
        caps.qresync = enable_qresync(&mut session).await?;
        debug!(
            "Account on {host}:{port}: ENABLE QRESYNC {}.",
            if caps.qresync { "accepted" } else { "refused" }
        );
    }
    debug!(
        "Logged in to {host}:{port} as {}; capabilities {:?}.",
        settings.incoming_login(),
        caps.all
    );
    Ok((session, caps))
}

/// `ENABLE QRESYNC` (RFC 5161, RFC 7162 §3.2.3); whether the server
/// enabled it (said so in `* ENABLED`). A refusal leaves the session as it
/// was: the folders are synced as on a CONDSTORE server.
async fn enable_qresync(session: &mut ImapSession) -> Result<bool, Failure> {
    let mut enabled = false;
    let answer = super::command::run_answer(session, "ENABLE", "ENABLE QRESYNC", |r| {
        if let imap_proto::Response::Capabilities(caps) = r {
            enabled |= caps.iter().any(|c| {
                matches!(c, imap_proto::Capability::Atom(a) if a.eq_ignore_ascii_case("QRESYNC"))
            });
        }
    })
    .await?;
    Ok(answer.is_ok() && enabled)
}

/// `f` with the host named: the helpers above say "The server" for any
/// server.
fn named(host: &str, mut f: Failure) -> Failure {
    if let Some(rest) = f.message.strip_prefix("The server ") {
        if !rest.starts_with(host) {
            f.message = format!("The server {host} {rest}");
        }
    }
    f
}

/// A `* BYE` that came in the unsolicited responses and names a limit of
/// the server's (Dovecot: "Maximum number of connections from user+IP
/// exceeded", right after the login), as a failure.
fn limit_bye(session: &mut ImapSession, host: &str) -> Option<Failure> {
    use async_imap::types::UnsolicitedResponse as U;
    while let Ok(r) = session.unsolicited_responses.try_recv() {
        let U::Other(resp) = r else { continue };
        if let imap_proto::Response::Data {
            status: imap_proto::Status::Bye,
            outcome,
        } = resp.parsed()
        {
            let text = clean(outcome.information.as_deref().unwrap_or_default());
            if is_limit(&text) {
                return Some(Failure::new(
                    FailureKind::ServerLimit,
                    format!(
                        "The server {host} closed the connection after the login, for a limit of \
                         its own ({text}); facteur tries again later"
                    ),
                ));
            }
        }
    }
    None
}

fn has(caps: &[String], name: &str) -> bool {
    caps.iter().any(|c| c.eq_ignore_ascii_case(name))
}

/// The one IMAP connect and login, step by step into `steps`: `dns`,
/// `connect`, `tls` (implicit TLS), `greeting`, `starttls` (when the
/// account asks for it), `auth` and `capabilities` (after login). Without
/// a password the `auth` step fails with [`FailureKind::Credentials`].
/// Returns the session and the post-login capabilities.
pub async fn open(
    settings: &Settings,
    password: Option<&str>,
    steps: &mut Steps,
) -> Result<(ImapSession, Caps), Failure> {
    let host = settings.incoming_host.as_str();
    let port = settings.incoming_port();
    let insecure = settings.accept_invalid_certs;
    let tcp = steps::open_tcp(steps, host, port).await?;
    let transport = if settings.incoming_security == Security::Tls {
        steps::handshake(steps, StepKind::Tls, tcp, host, insecure, "").await?
    } else {
        Transport::Plain(tcp)
    };
    let mut client = Client::new(Bounded::new(net::timed(transport)));
    steps
        .run(StepKind::Greeting, net::reply_timeout(), async {
            let text = greeting(&mut client, host).await?;
            Ok(((), format!("* OK {}", clean(&text))))
        })
        .await?;

    if settings.incoming_security == Security::Starttls {
        let limit = net::reply_timeout() * 2 + net::tls_timeout();
        client = steps
            .run(StepKind::Starttls, limit, async move {
                let caps = client_capabilities(&mut client)
                    .await
                    .map_err(|f| named(host, f))?;
                if !has(&caps, "STARTTLS") {
                    return Err(Failure::new(
                        FailureKind::Tls,
                        format!(
                            "{host}:{port} does not offer STARTTLS, so the password would travel \
                             in clear text; use security tls (port 993), or ask the provider"
                        ),
                    ));
                }
                step_within(
                    net::REPLY_TIMEOUT,
                    "STARTTLS",
                    client.run_command_and_check_ok("STARTTLS", None),
                )
                .await
                .map_err(|f| named(host, f))?;
                // into_inner() drops whatever the server sent after its OK:
                // nothing read before TLS is trusted after it (response
                // injection).
                let Transport::Plain(tcp) = net::untimed(client.into_inner().into_inner()) else {
                    return Err(Failure::new(FailureKind::Protocol, "STARTTLS on TLS"));
                };
                let transport = net::upgrade(tcp, host, insecure).await?;
                let detail = format!(
                    "STARTTLS offered and accepted; {}",
                    steps::tls_summary(&transport, insecure)
                );
                Ok((Client::new(Bounded::new(net::timed(transport))), detail))
            })
            .await?;
    }

    // RFC 3501 §6.2.1: capabilities learned before TLS are discarded.
    let login = settings.incoming_login();
    let Some(password) = password else {
        return Err(steps.fail(
            StepKind::Auth,
            Failure::new(
                FailureKind::Credentials,
                format!("No password is known for login {login}"),
            ),
        ));
    };
    let limit = net::reply_timeout() + net::auth_timeout();
    let mut session = steps
        .run(StepKind::Auth, limit, async {
            let caps = client_capabilities(&mut client)
                .await
                .map_err(|f| named(host, f))?;
            let offered: Vec<&str> = caps
                .iter()
                .filter_map(|c| {
                    c.get(..5)
                        .filter(|p| p.eq_ignore_ascii_case("AUTH="))
                        .and_then(|_| c.get(5..))
                })
                .collect();
            let offered_text = if offered.is_empty() {
                "no AUTH= mechanism offered".to_owned()
            } else {
                format!("mechanisms offered: {}", offered.join(" "))
            };
            let (session, used) = if offered.iter().any(|m| m.eq_ignore_ascii_case("PLAIN")) {
                let auth = Plain { login, password };
                let s = client
                    .authenticate("PLAIN", &auth)
                    .await
                    .map_err(|(e, _)| login_refused(host, login, e))?;
                (s, "AUTHENTICATE PLAIN")
            } else if has(&caps, "LOGINDISABLED") {
                return Err(Failure::new(
                    FailureKind::NotSupported,
                    format!(
                        "{host} refuses LOGIN on this connection and offers no AUTH=PLAIN \
                         ({offered_text})"
                    ),
                ));
            } else {
                let s = client
                    .login(login, password)
                    .await
                    .map_err(|(e, _)| login_refused(host, login, e))?;
                (s, "LOGIN")
            };
            Ok((
                session,
                format!("{offered_text}; used {used}; logged in as {login}"),
            ))
        })
        .await?;

    let caps = steps
        .run(StepKind::Capabilities, net::reply_timeout(), async {
            let caps =
                match step_within(net::REPLY_TIMEOUT, "CAPABILITY", session.capabilities()).await {
                    Ok(caps) => caps,
                    Err(f) => return Err(limit_bye(&mut session, host).unwrap_or(named(host, f))),
                };
            let caps = caps_of(&caps);
            let found: Vec<&str> = INTERESTING
                .iter()
                .copied()
                .filter(|name| has(&caps.all, name))
                .collect();
            let missing: Vec<&str> = INTERESTING
                .iter()
                .copied()
                .filter(|name| !has(&caps.all, name))
                .collect();
            let mut detail = if found.is_empty() {
                format!("none of {}", INTERESTING.join(", "))
            } else {
                found.join(" ")
            };
            if !missing.is_empty() && !found.is_empty() {
                detail.push_str(&format!(" (not offered: {})", missing.join(" ")));
            }
            detail.push_str(&format!("; all: {}", clean(&caps.all.join(" "))));
            Ok((caps, detail))
        })
        .await?;
    drain(&mut session);
    Ok((session, caps))
}

/// Empty the unsolicited-response channel (async-imap drops responses past
/// 100 unread ones). Returns whether any announced new or removed mail
/// (EXISTS, RECENT, EXPUNGE, or the VANISHED a QRESYNC session gets
/// instead of EXPUNGE).
pub fn drain(session: &mut ImapSession) -> bool {
    use async_imap::types::UnsolicitedResponse as U;
    let mut changed = false;
    while let Ok(r) = session.unsolicited_responses.try_recv() {
        let vanished = matches!(
            &r,
            U::Other(resp) if matches!(
                resp.parsed(),
                imap_proto::Response::Vanished { earlier: false, .. }
            )
        );
        if vanished || matches!(r, U::Exists(_) | U::Expunge(_) | U::Recent(_)) {
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_host_once() {
        let f = Failure::new(
            FailureKind::Timeout,
            "The server did not answer CAPABILITY within 10 s: timed out",
        );
        let f = named("imap.example.net", f);
        assert_eq!(
            f.message,
            "The server imap.example.net did not answer CAPABILITY within 10 s: timed out"
        );
        assert_eq!(named("imap.example.net", f.clone()).message, f.message);
        let other = Failure::new(FailureKind::Connection, "Nothing listens");
        assert_eq!(named("h", other).message, "Nothing listens");
    }
}

//! # Verifying an IMAP server
//!
//! One IMAP session, step by step: greeting, STARTTLS when the account asks
//! for it (required: a server that does not offer it fails the step), login
//! with AUTHENTICATE PLAIN when offered and LOGIN otherwise, then the
//! capabilities after login (Dovecot announces CONDSTORE and friends only
//! then). The sync engine's own connection code is in
//! [`crate::imap::session`]; this one exists because a report needs each
//! step apart.

use async_imap::Client;

use super::steps::{self, clean, StepKind, Steps, AUTH_TIMEOUT, REPLY_TIMEOUT};
use crate::imap::bounded::Bounded;
use crate::imap::session::imap_failure;
use crate::net::{self, Failure, FailureKind, Transport};
use crate::settings::{Security, Settings};

/// The IMAP capabilities a report names, when the server has them.
pub const INTERESTING: &[&str] = &[
    "IDLE",
    "CONDSTORE",
    "QRESYNC",
    "UIDPLUS",
    "MOVE",
    "SPECIAL-USE",
    "NOTIFY",
];

/// Check the incoming IMAP server of `settings`. Returns the capabilities
/// to report (`imap:IDLE`, `imap:AUTH=PLAIN`, …).
pub async fn check(
    settings: &Settings,
    password: Option<&str>,
    steps: &mut Steps,
) -> Result<Vec<String>, Failure> {
    let host = settings.incoming_host.as_str();
    let port = settings.incoming_port();
    let insecure = settings.accept_invalid_certs;
    let tcp = steps::open_tcp(steps, host, port).await?;
    let transport = if settings.incoming_security == Security::Tls {
        steps::handshake(steps, StepKind::Tls, tcp, host, insecure, "").await?
    } else {
        Transport::Plain(tcp)
    };
    let mut client = Client::new(Bounded::new(steps::timed(transport)));
    steps
        .run(StepKind::Greeting, REPLY_TIMEOUT, async {
            let text = crate::imap::session::greeting(&mut client, host).await?;
            Ok(((), format!("* OK {}", clean(&text))))
        })
        .await?;

    if settings.incoming_security == Security::Starttls {
        let limit = REPLY_TIMEOUT + steps::TLS_TIMEOUT;
        client = steps
            .run(StepKind::Starttls, limit, async move {
                let caps = crate::imap::session::client_capabilities(&mut client).await?;
                if !has(&caps, "STARTTLS") {
                    return Err(Failure::new(
                        FailureKind::Tls,
                        format!(
                            "{host}:{port} does not offer STARTTLS, so the password would travel \
                             in clear text; use security tls (port 993), or ask the provider"
                        ),
                    ));
                }
                crate::imap::session::step(
                    "STARTTLS",
                    client.run_command_and_check_ok("STARTTLS", None),
                )
                .await?;
                // into_inner() drops whatever the server sent after its OK:
                // nothing read before TLS is trusted after it (response
                // injection).
                let Transport::Plain(tcp) = client.into_inner().into_inner().into_inner() else {
                    return Err(Failure::new(FailureKind::Protocol, "STARTTLS on TLS"));
                };
                let transport = net::upgrade(tcp, host, insecure).await?;
                let detail = format!(
                    "STARTTLS offered and accepted; {}",
                    steps::tls_summary(&transport, insecure)
                );
                Ok((Client::new(Bounded::new(steps::timed(transport))), detail))
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
    let mut session = steps
        .run(StepKind::Auth, AUTH_TIMEOUT, async {
            let caps = crate::imap::session::client_capabilities(&mut client).await?;
            let offered: Vec<&str> = caps
                .iter()
                .filter_map(|c| {
                    c.get(..5)
                        .filter(|p| p.eq_ignore_ascii_case("AUTH="))
                        .map(|_| &c[5..])
                })
                .collect();
            let refused = |e: async_imap::error::Error| match e {
                async_imap::error::Error::No(m) | async_imap::error::Error::Bad(m) => {
                    Failure::new(
                        FailureKind::Auth,
                        format!(
                            "The server {host} refused the password for login {login}: {}",
                            clean(&m)
                        ),
                    )
                }
                other => imap_failure("the login", other),
            };
            let offered_text = if offered.is_empty() {
                "no AUTH= mechanism offered".to_owned()
            } else {
                format!("mechanisms offered: {}", offered.join(" "))
            };
            let (session, used) = if offered.iter().any(|m| m.eq_ignore_ascii_case("PLAIN")) {
                let auth = crate::imap::session::Plain { login, password };
                let s = client
                    .authenticate("PLAIN", &auth)
                    .await
                    .map_err(|(e, _)| refused(e))?;
                (s, "AUTHENTICATE PLAIN")
            } else if has(&caps, "LOGINDISABLED") {
                return Err(Failure::new(
                    FailureKind::NotSupported,
                    format!(
                        "{host} refuses LOGIN on this connection and offers no AUTH=PLAIN ({offered_text})"
                    ),
                ));
            } else {
                let s = client
                    .login(login, password)
                    .await
                    .map_err(|(e, _)| refused(e))?;
                (s, "LOGIN")
            };
            Ok((
                session,
                format!("{offered_text}; used {used}; logged in as {login}"),
            ))
        })
        .await?;

    let caps = steps
        .run(StepKind::Capabilities, REPLY_TIMEOUT, async {
            let caps = crate::imap::session::step("CAPABILITY", session.capabilities()).await?;
            let all = crate::imap::session::capability_names(&caps);
            let found: Vec<&str> = INTERESTING
                .iter()
                .copied()
                .filter(|name| has(&all, name))
                .collect();
            let missing: Vec<&str> = INTERESTING
                .iter()
                .copied()
                .filter(|name| !has(&all, name))
                .collect();
            let mut detail = if found.is_empty() {
                "none of IDLE, CONDSTORE, QRESYNC, UIDPLUS, MOVE, SPECIAL-USE, NOTIFY".to_owned()
            } else {
                found.join(" ")
            };
            if !missing.is_empty() && !found.is_empty() {
                detail.push_str(&format!(" (not offered: {})", missing.join(" ")));
            }
            detail.push_str(&format!("; all: {}", clean(&all.join(" "))));
            Ok((all, detail))
        })
        .await?;
    crate::imap::session::drain(&mut session);
    // Best effort: the report is complete either way.
    let _ = tokio::time::timeout(REPLY_TIMEOUT, session.logout()).await;

    let mut report: Vec<String> = INTERESTING
        .iter()
        .filter(|name| has(&caps, name))
        .map(|name| format!("imap:{name}"))
        .collect();
    report.extend(
        caps.iter()
            .filter(|c| c.len() > 5 && c[..5].eq_ignore_ascii_case("AUTH="))
            .map(|c| format!("imap:{}", c.to_ascii_uppercase())),
    );
    Ok(report)
}

fn has(caps: &[String], name: &str) -> bool {
    caps.iter().any(|c| c.eq_ignore_ascii_case(name))
}

//! # Verifying a POP3 server
//!
//! One POP3 session on the sync engine's own connect/login path
//! ([`crate::pop3::session::open`]), which records every step: greeting,
//! STLS when the account asks for it, login with SASL PLAIN when offered
//! and USER/PASS otherwise. Then this module's own step, CAPA and STAT,
//! picks what to report. Nothing is retrieved or deleted.

use crate::net::steps::clean;
use crate::net::{self, Failure, FailureKind, StepKind, Steps};
use crate::pop3::session::failure;
use crate::settings::Settings;

/// The POP3 capabilities a report names, when the server has them.
pub const INTERESTING: &[&str] = &["UIDL", "TOP", "STLS"];

/// Check the incoming POP3 server of `settings`. Returns the capabilities
/// to report (`pop3:UIDL`, `pop3:SASL=PLAIN`, …).
pub async fn check(
    settings: &Settings,
    password: Option<&str>,
    steps: &mut Steps,
) -> Result<Vec<String>, Failure> {
    let host = settings.incoming_host.as_str();
    let login = settings.incoming_login();
    let (mut client, before) = crate::pop3::session::open(settings, password, steps).await?;

    let caps = steps
        .run(StepKind::Capabilities, net::reply_timeout() * 2, async {
            // Some servers say more after login (RFC 2449 §5); keep the
            // earlier answer if this one fails.
            let caps = match client.capa().await {
                Ok(c) if c.advertised() => c,
                _ => before.clone(),
            };
            let stat = client.stat().await.map_err(|e| failure(host, login, e))?;
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
    let _ = tokio::time::timeout(net::goodbye_timeout(), client.quit()).await;

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

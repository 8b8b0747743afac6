//! # Verifying an IMAP server
//!
//! One IMAP session on the sync engine's own connect/login path
//! ([`crate::imap::session::open`]), which records every step: greeting,
//! STARTTLS when the account asks for it (required: a server that does not
//! offer it fails the step), login with AUTHENTICATE PLAIN when offered and
//! LOGIN otherwise, then the capabilities after login (Dovecot announces
//! CONDSTORE and friends only then). This module picks what to report.

use crate::net::{self, Failure, Steps};
use crate::settings::Settings;

pub use crate::imap::session::INTERESTING;

/// Check the incoming IMAP server of `settings`. Returns the capabilities
/// to report (`imap:IDLE`, `imap:AUTH=PLAIN`, …).
pub async fn check(
    settings: &Settings,
    password: Option<&str>,
    steps: &mut Steps,
) -> Result<Vec<String>, Failure> {
    let (mut session, caps) = crate::imap::session::open(settings, password, steps).await?;
    // Best effort: the report is complete either way.
    let _ = tokio::time::timeout(net::goodbye_timeout(), session.logout()).await;
    let has = |name: &str| caps.all.iter().any(|c| c.eq_ignore_ascii_case(name));
    let mut report: Vec<String> = INTERESTING
        .iter()
        .filter(|name| has(name))
        .map(|name| format!("imap:{name}"))
        .collect();
    report.extend(
        caps.all
            .iter()
            .filter(|c| c.len() > 5 && c.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("AUTH=")))
            .map(|c| format!("imap:{}", c.to_ascii_uppercase())),
    );
    Ok(report)
}

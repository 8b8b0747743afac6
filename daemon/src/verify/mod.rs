//! # Verify: the "verify connection" button
//!
//! Logs in to the incoming server (IMAP or POP3) and the SMTP server of a
//! set of settings, both at once, and reports every step tried (name
//! resolution, TCP connect, TLS, greeting, STARTTLS, login, capabilities)
//! with what happened and how long it took. Used by `VerifySettings` for
//! unsaved settings and by `Account.Verify` for saved ones. Nothing is
//! stored, and a password never appears in a report or a log line.
//!
//! The connect and login of each protocol is the one the sync engines use
//! ([`crate::imap::session::open`], [`crate::pop3::session::open`],
//! [`crate::smtp::connect::open`]), recording its steps in a
//! [`crate::net::Steps`]. Each step has its deadline from
//! [`crate::net::timeouts`] and each service a budget of
//! [`SERVICE_BUDGET`], so a report comes back in about 20 s at worst,
//! under the 25 s a D-Bus caller waits by default.
//!
//! Settings without an SMTP host get `smtp-ok` false and an `smtp-error`
//! saying that the account cannot send, with no SMTP step: a report that
//! said "ok" would let a wizard save an account that cannot send. They also
//! get `smtp-set` false, so that a client tells a receive-only account
//! (SMTP not set) from an SMTP server that failed.
//!
//! The `capabilities` list names what the servers offer that facteur cares
//! about, each prefixed with its protocol: `imap:IDLE`, `imap:CONDSTORE`,
//! `imap:QRESYNC`, `imap:UIDPLUS`, `imap:MOVE`, `imap:SPECIAL-USE`,
//! `imap:NOTIFY`, `imap:AUTH=PLAIN`; `pop3:UIDL`, `pop3:TOP`, `pop3:STLS`,
//! `pop3:SASL=PLAIN`; `smtp:SIZE=10240000`, `smtp:AUTH=PLAIN`. The
//! mechanism used to log in is in the `auth` step's detail.

pub mod imap;
pub mod pop3;

use std::time::{Duration, Instant};

use tracing::info;

use crate::net::steps::{Service, Step, Steps};
use crate::net::{Failure, FailureKind};
use crate::settings::{Protocol, Settings};

/// Time allowed for each service (incoming and SMTP run at the same time).
pub const SERVICE_BUDGET: Duration = Duration::from_secs(20);

/// What a verification found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The incoming server: `Ok` or why not.
    pub incoming: Result<(), Failure>,
    /// The SMTP server: `Ok` or why not.
    pub smtp: Result<(), Failure>,
    /// Whether the settings name an SMTP server at all.
    pub smtp_set: bool,
    /// Capabilities (see the module documentation).
    pub capabilities: Vec<String>,
    /// Total time.
    pub elapsed: Duration,
    /// Every step tried, incoming first.
    pub steps: Vec<Step>,
}

/// Verify `settings`, logging in with `incoming_password` and
/// `smtp_password` (the caller falls back to the incoming password for
/// SMTP).
pub async fn verify(
    settings: &Settings,
    incoming_password: Option<&str>,
    smtp_password: Option<&str>,
) -> Report {
    let start = Instant::now();
    let incoming = async {
        let target = format!("{}:{}", settings.incoming_host, settings.incoming_port());
        let mut steps = Steps::new(Service::Incoming, target, SERVICE_BUDGET);
        let result = match settings.incoming_protocol {
            Protocol::Imap => imap::check(settings, incoming_password, &mut steps).await,
            Protocol::Pop3 => pop3::check(settings, incoming_password, &mut steps).await,
        };
        (result, steps.list)
    };
    let smtp = async {
        if settings.smtp_host.is_empty() {
            let f = Failure::new(
                FailureKind::NotSupported,
                "No outgoing (SMTP) server is set (smtp-host is empty): this account could \
                 receive mail but not send it",
            );
            return (Err(f), Vec::new());
        }
        let target = format!("{}:{}", settings.smtp_host, settings.smtp_port());
        let mut steps = Steps::new(Service::Smtp, target, SERVICE_BUDGET);
        let result = match crate::smtp::connect::open(settings, smtp_password, &mut steps).await {
            Ok(mut session) => {
                let _ =
                    tokio::time::timeout(crate::net::goodbye_timeout(), session.conn.quit()).await;
                Ok(session.caps.report())
            }
            Err(f) => Err(f),
        };
        (result, steps.list)
    };
    let ((incoming, mut in_steps), (smtp, smtp_steps)) = tokio::join!(incoming, smtp);
    let mut capabilities = Vec::new();
    let incoming = incoming.map(|caps| capabilities.extend(caps));
    let smtp = smtp.map(|caps| capabilities.extend(caps));
    in_steps.extend(smtp_steps);
    let report = Report {
        incoming,
        smtp,
        smtp_set: !settings.smtp_host.is_empty(),
        capabilities,
        elapsed: start.elapsed(),
        steps: in_steps,
    };
    let verdict = |r: &Result<(), Failure>| match r {
        Ok(()) => "ok".to_owned(),
        Err(f) => format!("failed ({})", f.message),
    };
    info!(
        "Verified the settings of {}: incoming {}, SMTP {}, in {} ms.",
        settings.email,
        verdict(&report.incoming),
        verdict(&report.smtp),
        report.elapsed.as_millis()
    );
    report
}

impl Report {
    /// Whether both servers answered and accepted the login.
    pub fn ok(&self) -> bool {
        self.incoming.is_ok() && self.smtp.is_ok()
    }
}

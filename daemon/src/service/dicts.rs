//! # The dictionaries of the contract
//!
//! Every `a{sv}` the daemon returns is built here, from the plain Rust data
//! of the modules behind: message summaries (`ListMessages`,
//! `ListUnified`, `GetSummaries`), outbox entries (`ListOutbox`), folder entries (`ListFolders`), verify reports
//! (`VerifySettings`, `Verify`) and discovery candidates (`Discover`). The
//! keys are documented in `dbus/org.facteur.Facteur1.xml`; every string
//! goes through [`super::text::dbus_text`] on its way in ([`Dict::put`]).

use std::collections::HashMap;
use std::time::Duration;

use facteur_dbus::{keys, names};
use zbus::zvariant::{OwnedValue, Value};

use super::Dict;
use crate::autoconfig::Candidate;
use crate::net::Failure;
use crate::store::{Flags, FolderInfo, Queued, QueuedState, Summary};
use crate::verify::Report;

/// A dictionary as returned over D-Bus.
pub type OwnedDict = HashMap<String, OwnedValue>;

/// Milliseconds, saturating at `u32::MAX`.
fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// The contract's message summary.
pub fn summary_dict(s: &Summary) -> OwnedDict {
    let mut d = Dict::new();
    let r = &s.record;
    d.put("id", s.id.to_string());
    if let Ok(path) = zbus::zvariant::ObjectPath::try_from(names::account_path(&s.id.account)) {
        d.put("account", path);
    }
    d.put("folder", s.folder.clone());
    d.put("from", r.meta.from.clone());
    d.put("to", r.meta.to.clone());
    d.put("subject", r.meta.subject.clone());
    d.put("date", r.meta.date);
    d.put("size", r.size);
    d.put("seen", r.flags.has(Flags::SEEN));
    d.put("flagged", r.flags.has(Flags::FLAGGED));
    d.put("answered", r.flags.has(Flags::ANSWERED));
    d.put("draft", r.flags.has(Flags::DRAFT));
    d.put("deleted", r.flags.has(Flags::DELETED));
    d.put("keywords", r.keywords.clone());
    d.put("has-attachments", r.meta.has_attachments);
    d.put("message-id", r.meta.message_id.clone());
    d.0
}

/// One `ListOutbox` entry.
pub fn queued_dict(q: &Queued) -> OwnedDict {
    let mut d = Dict::new();
    d.put("id", q.id.clone());
    d.put("subject", q.subject.clone());
    d.put("to", q.to.clone());
    d.put(
        "state",
        match q.state {
            QueuedState::Queued => "queued",
            QueuedState::Sending => "sending",
            QueuedState::Failed => "failed",
        },
    );
    d.put("attempts", q.attempts);
    d.put("last-error", q.last_error.clone());
    d.put("queued", q.queued);
    d.0
}

/// One `ListFolders` entry.
pub fn folder_dict(f: &FolderInfo, messages: u32, unread: u32) -> OwnedDict {
    let mut d = Dict::new();
    d.put("name", f.display.clone());
    d.put("role", f.role.clone().unwrap_or_default());
    d.put("delimiter", f.delimiter.clone().unwrap_or_default());
    d.put("selectable", f.selectable);
    d.put("messages", messages);
    d.put("unread", unread);
    d.0
}

/// A verify report.
pub fn report_dict(r: &Report) -> OwnedDict {
    let error = |r: &Result<(), Failure>| match r {
        Ok(()) => String::new(),
        Err(f) => f.message.clone(),
    };
    let mut d = Dict::new();
    d.put("incoming-ok", r.incoming.is_ok());
    d.put("incoming-error", error(&r.incoming));
    d.put("smtp-ok", r.smtp.is_ok());
    d.put("smtp-error", error(&r.smtp));
    d.put("smtp-set", r.smtp_set);
    d.put("capabilities", r.capabilities.clone());
    d.put("elapsed-ms", millis(r.elapsed));
    let steps: Vec<OwnedDict> = r
        .steps
        .iter()
        .map(|s| {
            let mut e = Dict::new();
            e.put("service", s.service.as_str());
            e.put("step", s.step.as_str());
            e.put("ok", s.ok);
            e.put("detail", s.detail.clone());
            e.put("elapsed-ms", millis(s.elapsed));
            e.0
        })
        .collect();
    d.put("steps", Value::from(steps));
    d.0
}

/// A discovery candidate as a settings dictionary for `address` (the keys
/// of CreateAccount, no password) with `source` and `verified`. Logins
/// equal to their default (the address; the incoming login for SMTP) are
/// left out, so they follow later changes of the address.
pub fn candidate_dict(c: &Candidate, address: &str) -> OwnedDict {
    let mut d = Dict::new();
    let i = &c.incoming;
    d.put(keys::EMAIL, address);
    d.put(keys::INCOMING_PROTOCOL, i.kind.as_str());
    d.put(keys::INCOMING_HOST, i.host.as_str());
    d.put(keys::INCOMING_PORT, i.port);
    d.put(keys::INCOMING_SECURITY, i.security.as_str());
    if i.login != address {
        d.put(keys::INCOMING_LOGIN, i.login.as_str());
    }
    if let Some(s) = &c.smtp {
        d.put(keys::SMTP_HOST, s.host.as_str());
        d.put(keys::SMTP_PORT, s.port);
        d.put(keys::SMTP_SECURITY, s.security.as_str());
        if s.login != i.login {
            d.put(keys::SMTP_LOGIN, s.login.as_str());
        }
    }
    d.put("source", c.source.as_str());
    d.put("verified", c.verified);
    d.0
}

/// `.to_dict()` on the plain data behind a returned dictionary, so that a
/// method body reads `verify(…).await.to_dict()`.
pub trait ToDict {
    /// The contract's dictionary.
    fn to_dict(&self) -> OwnedDict;
}

impl ToDict for Report {
    fn to_dict(&self) -> OwnedDict {
        report_dict(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoconfig::config::{Kind, Server};
    use crate::autoconfig::Source;
    use crate::settings::Security;

    fn server(kind: Kind, host: &str, port: u16, login: &str) -> Server {
        Server {
            kind,
            host: host.into(),
            port,
            security: Security::Tls,
            login: login.into(),
        }
    }

    #[test]
    fn candidates_leave_out_default_logins() {
        let c = Candidate {
            source: Source::ProviderDb,
            incoming: server(Kind::Imap, "imap.me.com", 993, "emily"),
            smtp: Some(server(Kind::Smtp, "smtp.me.com", 465, "emily")),
            verified: true,
        };
        let d = candidate_dict(&c, "emily@me.com");
        assert!(d.contains_key("incoming-login"));
        // The SMTP login equals the incoming one: left out.
        assert!(!d.contains_key("smtp-login"));
        assert_eq!(d["incoming-port"], OwnedValue::from(993u16));
        let same = Candidate {
            incoming: server(Kind::Imap, "imap.me.com", 993, "emily@me.com"),
            ..c
        };
        let d = candidate_dict(&same, "emily@me.com");
        assert!(!d.contains_key("incoming-login"));
        assert_eq!(
            String::try_from(d["source"].try_clone().expect("clone")).expect("a string"),
            "provider-db"
        );
    }

    #[test]
    fn reports_carry_every_key() {
        let r = Report {
            incoming: Ok(()),
            smtp: Err(Failure::new(
                crate::net::FailureKind::Auth,
                "refused\0".to_owned(),
            )),
            smtp_set: true,
            capabilities: vec!["imap:IDLE".into()],
            elapsed: Duration::from_millis(12),
            steps: Vec::new(),
        };
        let d = report_dict(&r);
        for key in [
            "incoming-ok",
            "incoming-error",
            "smtp-ok",
            "smtp-error",
            "smtp-set",
            "capabilities",
            "elapsed-ms",
            "steps",
        ] {
            assert!(d.contains_key(key), "{key} missing");
        }
        let err = String::try_from(d["smtp-error"].try_clone().expect("clone")).expect("s");
        assert_eq!(err, "refused\u{2400}");
    }
}

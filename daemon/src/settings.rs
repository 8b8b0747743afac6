//! # Account settings
//!
//! The settings of one account as plain data, with the values derived from
//! them (ports from the security mode, logins from the address). At the
//! bottom of the daemon so every layer can read them; validating and
//! storing them is [`crate::accounts`]' job.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Incoming protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// IMAP4rev1.
    Imap,
    /// POP3.
    Pop3,
}

impl Protocol {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
        }
    }
}

/// Transport security of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Implicit TLS (RFC 8314), the default.
    Tls,
    /// STARTTLS / STLS, required: never falls back to plain text.
    Starttls,
    /// Plain text; only when the user says so.
    None,
}

impl Security {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Security::Tls => "tls",
            Security::Starttls => "starttls",
            Security::None => "none",
        }
    }
}

/// The settings of one account, as stored. Values the user did not set are
/// `None` and derived when read (ports from the security mode, logins from
/// the address), so a later change of security or address moves them along.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    /// Account name; `None` shows the address.
    pub name: Option<String>,
    /// E-mail address.
    pub email: String,
    /// Display name for sent mail.
    pub display_name: String,
    /// Feeds the Unified folder.
    pub use_unified: bool,
    /// IMAP or POP3.
    pub incoming_protocol: Protocol,
    /// Incoming server.
    pub incoming_host: String,
    /// Explicit incoming port.
    pub incoming_port: Option<u16>,
    /// Incoming security.
    pub incoming_security: Security,
    /// Explicit incoming login.
    pub incoming_login: Option<String>,
    /// Minutes between polls.
    pub poll_interval_minutes: u32,
    /// POP3: leave messages on the server.
    pub leave_on_server: bool,
    /// POP3: local deletion also deletes on the server.
    pub delete_on_server: bool,
    /// SMTP server; empty when the account sends nothing.
    pub smtp_host: String,
    /// Explicit SMTP port.
    pub smtp_port: Option<u16>,
    /// SMTP security.
    pub smtp_security: Security,
    /// Explicit SMTP login.
    pub smtp_login: Option<String>,
    /// Folder role (`sent`, …) → folder chosen by the user.
    pub folders: BTreeMap<String, String>,
    /// Accept certificates that fail verification.
    pub accept_invalid_certs: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            name: None,
            email: String::new(),
            display_name: String::new(),
            use_unified: true,
            incoming_protocol: Protocol::Imap,
            incoming_host: String::new(),
            incoming_port: None,
            incoming_security: Security::Tls,
            incoming_login: None,
            poll_interval_minutes: 15,
            leave_on_server: true,
            delete_on_server: false,
            smtp_host: String::new(),
            smtp_port: None,
            smtp_security: Security::Tls,
            smtp_login: None,
            folders: BTreeMap::new(),
            accept_invalid_certs: false,
        }
    }
}

impl Settings {
    /// The name shown to the user.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.email)
    }

    /// The incoming port, explicit or from protocol and security.
    pub fn incoming_port(&self) -> u16 {
        self.incoming_port
            .unwrap_or(match (self.incoming_protocol, self.incoming_security) {
                (Protocol::Imap, Security::Tls) => 993,
                (Protocol::Imap, _) => 143,
                (Protocol::Pop3, Security::Tls) => 995,
                (Protocol::Pop3, _) => 110,
            })
    }

    /// The incoming login, explicit or the address.
    pub fn incoming_login(&self) -> &str {
        self.incoming_login.as_deref().unwrap_or(&self.email)
    }

    /// The SMTP port, explicit or from the security mode (RFC 8314: 465 for
    /// implicit TLS, 587 for submission with STARTTLS).
    pub fn smtp_port(&self) -> u16 {
        self.smtp_port.unwrap_or(match self.smtp_security {
            Security::Tls => 465,
            Security::Starttls => 587,
            Security::None => 25,
        })
    }

    /// The SMTP login, explicit or the incoming login.
    pub fn smtp_login(&self) -> &str {
        self.smtp_login
            .as_deref()
            .unwrap_or_else(|| self.incoming_login())
    }

    /// Whether `other` connects exactly as `self` does (protocol, hosts,
    /// ports, security, logins, certificate policy, POP3 deletion rules):
    /// when it does, a running engine takes the new settings in place.
    pub fn same_connection(&self, other: &Settings) -> bool {
        self.incoming_protocol == other.incoming_protocol
            && self.incoming_host == other.incoming_host
            && self.incoming_port() == other.incoming_port()
            && self.incoming_security == other.incoming_security
            && self.incoming_login() == other.incoming_login()
            && self.accept_invalid_certs == other.accept_invalid_certs
            && self.leave_on_server == other.leave_on_server
            && self.delete_on_server == other.delete_on_server
    }

    /// Whether `other` is the same mailbox: same address, incoming host and
    /// login (compared as a server would, case-insensitively for names).
    pub fn same_mailbox(&self, other: &Settings) -> bool {
        self.email.eq_ignore_ascii_case(&other.email)
            && self
                .incoming_host
                .eq_ignore_ascii_case(&other.incoming_host)
            && self.incoming_login() == other.incoming_login()
    }
}

/// Whether `id` can be an object path element and a file name.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

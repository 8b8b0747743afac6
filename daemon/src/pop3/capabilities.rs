//! # POP3 capabilities
//!
//! Owns the parsed reply to CAPA (RFC 2449 §5) and the questions callers ask
//! of it: is STLS offered, which SASL mechanisms, is UIDL there, what do
//! EXPIRE and LOGIN-DELAY say. Fetching it is the client's job; deciding
//! what to do with it (require TLS, pick a login method, respect
//! LOGIN-DELAY in the poll interval) is the caller's.
//!
//! Capabilities learned before STLS must be thrown away after the TLS
//! handshake (RFC 2595 §4); a fresh client on the TLS stream has none until
//! it asks again, so stale ones cannot leak through.

use super::error::{server_text, Error};

/// What the server announced in its CAPA reply, one entry per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    lines: Vec<String>,
    advertised: bool,
}

/// The EXPIRE capability (RFC 2449 §6.7): how long the server keeps
/// messages after they have been retrieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expire {
    /// `EXPIRE NEVER`: the server does not delete retrieved messages itself.
    Never,
    /// `EXPIRE n`: retrieved messages may be deleted after `n` days; `0`
    /// means at once, so "leave messages on the server" cannot work.
    Days(u32),
}

impl Capabilities {
    /// Capabilities of a server that answered CAPA with `-ERR` (an RFC 1939
    /// server without RFC 2449): nothing is known, so nothing is offered.
    pub fn not_advertised() -> Capabilities {
        Capabilities::default()
    }

    /// Build from the lines of a CAPA reply (without line ends).
    pub(crate) fn from_lines<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Capabilities {
        Capabilities {
            lines: lines
                .into_iter()
                .map(server_text)
                .filter(|l| !l.is_empty())
                .collect(),
            advertised: true,
        }
    }

    /// Whether the server answered CAPA with `+OK` at all.
    pub fn advertised(&self) -> bool {
        self.advertised
    }

    /// The capability lines as sent (cleaned), e.g. `SASL PLAIN LOGIN`, for
    /// Verify's `capabilities` list.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The arguments of the capability `name` (case-insensitive), if offered.
    pub fn get(&self, name: &str) -> Option<Vec<&str>> {
        self.lines.iter().find_map(|line| {
            let mut words = line.split_ascii_whitespace();
            let first = words.next()?;
            first.eq_ignore_ascii_case(name).then(|| words.collect())
        })
    }

    /// Whether the capability `name` is offered (case-insensitive).
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// STLS (RFC 2595 §4).
    pub fn stls(&self) -> bool {
        self.has("STLS")
    }

    /// UIDL (RFC 2449 §6.8). Without it the poller cannot tell old mail from
    /// new.
    pub fn uidl(&self) -> bool {
        self.has("UIDL")
    }

    /// USER, i.e. USER/PASS login (RFC 2449 §6.2).
    pub fn user(&self) -> bool {
        self.has("USER")
    }

    /// TOP (RFC 2449 §6.1).
    pub fn top(&self) -> bool {
        self.has("TOP")
    }

    /// PIPELINING (RFC 2449 §6.6).
    pub fn pipelining(&self) -> bool {
        self.has("PIPELINING")
    }

    /// RESP-CODES (RFC 2449 §6.4): `-ERR` replies carry bracketed codes.
    pub fn resp_codes(&self) -> bool {
        self.has("RESP-CODES")
    }

    /// The SASL mechanisms offered (RFC 2449 §6.3, RFC 5034), upper-cased.
    pub fn sasl_mechanisms(&self) -> Vec<String> {
        self.get("SASL")
            .unwrap_or_default()
            .into_iter()
            .map(str::to_ascii_uppercase)
            .collect()
    }

    /// Whether SASL PLAIN is offered.
    pub fn sasl_plain(&self) -> bool {
        self.sasl_mechanisms().iter().any(|m| m == "PLAIN")
    }

    /// The EXPIRE policy (RFC 2449 §6.7), if announced and well formed. A
    /// server may add `USER` after the value when the policy differs per
    /// user after login; the value is read all the same.
    pub fn expire(&self) -> Option<Expire> {
        let args = self.get("EXPIRE")?;
        let value = args.first()?;
        if value.eq_ignore_ascii_case("NEVER") {
            Some(Expire::Never)
        } else {
            value.parse().ok().map(Expire::Days)
        }
    }

    /// The LOGIN-DELAY in seconds (RFC 2449 §6.5): the shortest allowed time
    /// between two logins. The poll interval must not be shorter.
    pub fn login_delay(&self) -> Option<u32> {
        self.get("LOGIN-DELAY")?.first()?.parse().ok()
    }

    /// The IMPLEMENTATION string (RFC 2449 §6.9), for diagnostics.
    pub fn implementation(&self) -> Option<String> {
        self.get("IMPLEMENTATION").map(|args| args.join(" "))
    }

    /// Fail with [`Error::TlsRequired`] unless STLS is offered. For
    /// accounts whose security is `starttls`: RFC 8314 §5 forbids falling
    /// back to cleartext when the capability is missing (or was stripped by
    /// an attacker).
    pub fn require_stls(&self) -> Result<(), Error> {
        if self.stls() {
            Ok(())
        } else {
            Err(Error::TlsRequired)
        }
    }
}

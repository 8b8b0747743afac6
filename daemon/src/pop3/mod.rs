//! # POP3
//!
//! The POP3 protocol client of facteur: a small client on tokio for RFC 1939
//! with CAPA (RFC 2449), STLS (RFC 2595), SASL PLAIN (RFC 5034) and the
//! response codes of RFC 2449 §8 and RFC 3206. Written in-house because the
//! available crate does not undo dot-stuffing, has no STLS and buffers whole
//! messages (`reference/ecosystem-reliability.md` §5.4).
//!
//! - [`client`]: one session over any stream: greeting, CAPA, STLS, login,
//!   STAT, UIDL, LIST, RETR streamed into a sink, TOP, DELE, RSET, NOOP, QUIT.
//! - [`capabilities`]: the parsed CAPA reply.
//! - [`error`]: the typed error the scheduler branches on.
//! - [`session`]: the one connect/login path (sync and Verify), and client
//!   errors as failures in words.
//! - `wire`: bounded line reading, timeouts, byte-stuffing, redacted tracing.
//!
//! Left to others: TCP and TLS (the `net` module), the choice of security
//! and login method per account, the polling loop with its UIDL bookkeeping
//! and the order RETR → store → flush → DELE → QUIT (the scheduler and the
//! store).
//!
//! A session with STLS, as RFC 2595 §4 and RFC 8314 want it:
//!
//! ```ignore
//! let mut client = Client::connect(tcp, config).await?;
//! client.capa().await?.require_stls()?;        // no cleartext fall-back
//! let tcp = client.stls().await?;              // refuses injected bytes
//! let tls = connector.connect(name, tcp).await?;
//! let mut client = Client::after_stls(tls, config);
//! let caps = client.capa().await?;             // forget what came before TLS
//! client.login(&caps, user, password).await?;
//! for entry in client.uidl().await? { /* ... */ }
//! client.quit().await?;
//! ```

pub mod capabilities;
pub mod client;
pub mod error;
pub mod poll;
pub mod session;
mod wire;

#[cfg(test)]
mod tests;

pub use capabilities::{Capabilities, Expire};
pub use client::{
    Client, Config, ListEntry, SaslMode, Stat, UidlEntry, DEFAULT_MAX_LINE,
    DEFAULT_MAX_LIST_ENTRIES, DEFAULT_TIMEOUT,
};
pub use error::{Error, ResponseCode};

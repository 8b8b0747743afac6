//! # Sync
//!
//! The layer between an account's life ([`crate::accounts`]) and the
//! protocols ([`crate::imap`], [`crate::pop3`]): the [`scheduler`] with one
//! supervised engine task per account, the requests it passes to a running
//! engine, the typed [`state`] an account shows, and the [`events`] through
//! which engines report without knowing about D-Bus.

pub mod events;
pub mod scheduler;
pub mod state;

pub use scheduler::{Request, Scheduler};
pub use state::{Field, State, Status};

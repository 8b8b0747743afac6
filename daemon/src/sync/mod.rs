//! # Sync
//!
//! The layer between an account's life ([`crate::accounts`]) and the
//! protocols ([`crate::imap`], [`crate::pop3`]), which it drives and which do
//! not know it:
//!
//! - [`scheduler`]: one supervised engine task per account, its requests
//!   (Sync, Delete) and settings, starts and stops serialised per account,
//!   tracked background tasks ([`tasks`]).
//! - [`imap_engine`], [`pop3_engine`]: each protocol's loop over its
//!   operations (connect, pass, idle or wait, delete).
//! - [`backoff`]: the one reconnection delay; [`health`]: the one
//!   failure → state mapping; [`wait`]: the one wait for a deadline or a
//!   request.
//! - [`state`]: the typed state an account shows; [`events`]: how engines
//!   report it without knowing about D-Bus, and how a reply waits until it
//!   is shown.

pub mod backoff;
pub mod events;
pub mod health;
pub mod imap_engine;
pub mod pop3_engine;
pub mod scheduler;
pub mod state;
pub mod tasks;
pub mod wait;

pub use scheduler::{Request, Scheduler};
pub use state::{Field, State, Status};

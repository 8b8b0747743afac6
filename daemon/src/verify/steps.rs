//! # Verify steps
//!
//! The step recorder moved to [`crate::net::steps`], where the sync engines
//! use it too; this module re-exports it for the callers that name it here.

pub use crate::net::steps::*;
pub use crate::net::timeouts::{AUTH_TIMEOUT, CONNECT_TIMEOUT, REPLY_TIMEOUT, TLS_TIMEOUT};

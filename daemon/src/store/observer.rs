//! # What a protocol engine announces as it stores
//!
//! The IMAP and POP3 engines tell, as they go, what they durably stored and
//! how far the pass is, through this one trait; the sync layer's reporter
//! implements it (the protocols never import the sync layer).

/// What an engine tells about what it stores, as it goes.
pub trait Observer: Send + Sync {
    /// New messages are durably stored in `folder` (display name).
    fn new_messages(&self, folder: &str, ids: Vec<String>);
    /// The flags of these messages of `folder` changed (stored).
    fn changed(&self, folder: &str, ids: Vec<String>);
    /// These messages of `folder` are gone (stored).
    fn removed(&self, folder: &str, ids: Vec<String>);
    /// These messages appeared in `folder` (stored) without being new mail:
    /// a moved or copied message landed, a placeholder was replaced.
    fn added(&self, folder: &str, ids: Vec<String>) {
        let _ = (folder, ids);
    }
    /// What settling this account's journal changed in *another*
    /// account's messages (a dropped cross-account move put a message back
    /// in its source): these ids of that account's `folder` (display name)
    /// were added, changed or removed. Counts of it follow with
    /// [`Observer::counts_of`].
    fn elsewhere(&self, account: &str, kind: Elsewhere, folder: &str, ids: Vec<String>) {
        let _ = (account, kind, folder, ids);
    }
    /// Message counts of another account may have changed.
    fn counts_of(&self, account: &str) {
        let _ = account;
    }
    /// Account `account`'s journal changed (a cross-account move's source
    /// may now expunge): its engine is woken to replay it.
    fn kick(&self, account: &str) {
        let _ = account;
    }
    /// Message counts may have changed (flags, expunges, new mail).
    fn counts(&self);
    /// One desktop notification for `count` new messages.
    fn notify(&self, count: usize, samples: Vec<(String, String)>);
    /// `n` more messages to fetch were found in this pass.
    fn found(&self, n: u32);
    /// `n` more messages of this pass are stored.
    fn stored(&self, n: u32);
}

/// Which messages of another account's folder a settled entry touched
/// (see [`Observer::elsewhere`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elsewhere {
    /// They appeared.
    Added,
    /// Their flags changed.
    Changed,
    /// They went.
    Removed,
}

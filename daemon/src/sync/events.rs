//! # Events
//!
//! How the sync engines tell the rest of the daemon what happened without
//! knowing about D-Bus: each engine holds a [`Reporter`] that sends
//! [`Event`]s down one channel; the service layer drains it, updates the
//! account status, emits signals and shows desktop notifications.

use tokio::sync::mpsc;

/// Something an engine reports about its account.
#[derive(Debug, Clone)]
pub enum Event {
    /// The account's state changed (`LastError` empty when healthy).
    State {
        /// Account id.
        account: String,
        /// The new state.
        state: crate::sync::State,
        /// The error a person can act on, or empty.
        error: String,
        /// The stable `LastErrorCode`, empty when healthy.
        code: &'static str,
    },
    /// A sync pass finished successfully at this unix time.
    Synced {
        /// Account id.
        account: String,
        /// Unix seconds.
        at: u64,
    },
    /// New messages are durably stored.
    NewMessages {
        /// Account id.
        account: String,
        /// Folder display name.
        folder: String,
        /// Message ids.
        ids: Vec<String>,
    },
    /// Message counts may have changed (flags, expunges, new mail).
    Counts {
        /// Account id.
        account: String,
    },
    /// One desktop notification for a batch of new mail.
    Notify {
        /// Account id.
        account: String,
        /// How many new messages.
        count: usize,
        /// (from, subject) of the first few.
        samples: Vec<(String, String)>,
    },
}

/// The sending end an engine holds, bound to its account.
#[derive(Debug, Clone)]
pub struct Reporter {
    account: String,
    tx: mpsc::UnboundedSender<Event>,
}

impl Reporter {
    /// A reporter for `account`.
    pub fn new(account: &str, tx: mpsc::UnboundedSender<Event>) -> Self {
        Reporter {
            account: account.to_owned(),
            tx,
        }
    }

    fn send(&self, e: Event) {
        // The receiver lives as long as the daemon; after shutdown there is
        // nobody left to tell.
        let _ = self.tx.send(e);
    }

    /// Report the state.
    pub fn state(&self, state: crate::sync::State, error: impl Into<String>) {
        self.send(Event::State {
            account: self.account.clone(),
            state,
            error: error.into(),
            code: "",
        });
    }

    /// Report a failure: the state, its sentence and its code.
    pub fn failure(&self, state: crate::sync::State, failure: &crate::net::Failure) {
        self.send(Event::State {
            account: self.account.clone(),
            state,
            error: failure.message.clone(),
            code: failure.code(),
        });
    }

    /// Report a finished pass.
    pub fn synced(&self) {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.send(Event::Synced {
            account: self.account.clone(),
            at,
        });
    }

    /// Report stored messages.
    pub fn new_messages(&self, folder: &str, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        self.send(Event::NewMessages {
            account: self.account.clone(),
            folder: folder.to_owned(),
            ids,
        });
    }

    /// Report that counts may have changed.
    pub fn counts(&self) {
        self.send(Event::Counts {
            account: self.account.clone(),
        });
    }

    /// Ask for one desktop notification.
    pub fn notify(&self, count: usize, samples: Vec<(String, String)>) {
        if count == 0 {
            return;
        }
        self.send(Event::Notify {
            account: self.account.clone(),
            count,
            samples,
        });
    }
}

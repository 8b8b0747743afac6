//! # POP3 polling
//!
//! The engine of one POP3 account: a session every `poll-interval-minutes`
//! (and at once on Sync, after creation or an update), downloading only the
//! unique-ids never seen before. The order inside a session is what makes
//! it safe to kill at any moment (RFC 1939 §6: DELE only takes effect after
//! QUIT):
//!
//! 1. UIDL; forget unique-ids the server no longer has.
//! 2. RETR each new message, store a batch with its unique-ids in one
//!    transaction, flush.
//! 3. Only then DELE: the stored messages when messages are not left on the
//!    server, and pending local deletions when `delete-on-server` is set.
//! 4. QUIT.
//!
//! A kill before 2 completes means a re-download; between 2 and 4 the
//! unique-ids are known, so nothing is stored twice and the DELE is simply
//! sent again next time. Message numbers are used inside one session only.
//!
//! The schedule around sessions (interval, backoff, requests, state) is
//! the sync layer's (the `sync` module); this module only knows how to poll
//! once and how to delete a message, and tells what it stores through an
//! [`Observer`].

use std::collections::BTreeSet;
use std::sync::Arc;

use tracing::{debug, info, warn};
use zeroize::Zeroizing;

use super::error::Error;
use crate::net::{Failure, FailureKind};
use crate::settings::Settings;
use crate::store::{Flags, FolderInfo, MessageId, NewMessage, Store};

/// Largest message accepted: bounded memory whatever the server says.
pub const MAX_MESSAGE: u64 = 128 * 1024 * 1024;
/// Messages stored per transaction.
const BATCH_MESSAGES: usize = 100;
/// Bytes held before a batch is stored.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

pub use crate::store::Observer;

pub use super::session::{failure, login};

/// One account's POP3 sessions.
pub struct Poller {
    id: String,
    settings: Settings,
    password: Zeroizing<String>,
    store: Store,
    reporter: Arc<dyn Observer>,
}

impl Poller {
    /// A poller for an account.
    pub fn new(
        id: String,
        settings: Settings,
        password: Zeroizing<String>,
        store: Store,
        reporter: Arc<dyn Observer>,
    ) -> Self {
        Poller {
            id,
            settings,
            password,
            store,
            reporter,
        }
    }

    /// The account's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Take settings that need no new connection (see
    /// [`Settings::same_connection`]); used from the next session.
    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    /// Run a blocking store call off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, Failure> {
        self.store.blocking(f).await.map_err(Failure::from)
    }

    /// Delete a message locally; with leave-on-server and delete-on-server,
    /// remember to delete it on the server at the next session (stored, so
    /// it survives restarts). Returns whether a server deletion is pending.
    pub async fn delete_local(&self, id: &MessageId) -> Result<bool, Failure> {
        let s = &self.settings;
        let pending = if s.leave_on_server && s.delete_on_server {
            self.store
                .pop3_mark_delete(&self.id, id.uid)
                .await
                .map_err(Failure::from)?
        } else {
            false
        };
        let removed = self
            .store
            .remove_uids(&self.id, id.folder, &[id.uid])
            .await
            .map_err(Failure::from)?;
        if let Some(folder) = self.store.folder_of(id).map_err(Failure::from)? {
            self.reporter.removed(
                &folder.display,
                removed.iter().map(|i| i.to_string()).collect(),
            );
        }
        self.reporter.counts();
        Ok(pending)
    }

    /// The local INBOX, made (empty) when missing: listing it works
    /// before the first poll has stored anything.
    pub async fn inbox(&self) -> Result<FolderInfo, Failure> {
        let id = self.id.clone();
        self.blocking(move |store| match store.folder(&id, "INBOX")? {
            Some(f) => Ok(f),
            None => store.upsert_folder(&id, "INBOX", "INBOX", None, Some("inbox".into()), true),
        })
        .await
    }

    /// One session; returns the number of new messages.
    pub async fn poll(&self) -> Result<u32, Failure> {
        // Mail stored is announced even when the session fails afterwards
        // (a RETR or QUIT that fails): it is stored, and the next poll does
        // not find it new again.
        let mut samples = Vec::new();
        let mut new_total = 0u32;
        let r = self.session(&mut samples, &mut new_total).await;
        self.reporter.notify(new_total as usize, samples);
        r
    }

    async fn session(
        &self,
        samples: &mut Vec<(String, String)>,
        new_total: &mut u32,
    ) -> Result<u32, Failure> {
        let host = self.settings.incoming_host.clone();
        let login_name = self.settings.incoming_login().to_owned();
        let fail = |e| failure(&host, &login_name, e);
        let (mut client, caps) = login(&self.settings, &self.password).await?;
        if caps.advertised() && !caps.uidl() {
            return Err(Failure::new(
                FailureKind::NotSupported,
                format!(
                    "{host} does not support UIDL, so facteur cannot tell new messages from old ones; \
                     use IMAP for this account"
                ),
            ));
        }
        let listing = match client.uidl().await {
            Ok(l) => l,
            Err(Error::Server { .. }) => {
                return Err(Failure::new(
                    FailureKind::NotSupported,
                    format!(
                        "{host} refused UIDL; facteur needs it to avoid downloading mail twice"
                    ),
                ))
            }
            Err(e) => return Err(fail(e)),
        };
        let sizes: std::collections::HashMap<u32, u64> = client
            .list()
            .await
            .map_err(fail)?
            .into_iter()
            .map(|e| (e.number, e.size))
            .collect();
        let id = self.id.clone();
        let known = self.blocking(move |store| store.pop3_entries(&id)).await?;
        let on_server: BTreeSet<&str> = listing.iter().map(|e| e.uid.as_str()).collect();
        let gone: Vec<String> = known
            .keys()
            .filter(|u| !on_server.contains(u.as_str()))
            .cloned()
            .collect();
        self.store
            .pop3_forget(&self.id, &gone)
            .await
            .map_err(Failure::from)?;

        let inbox = self.inbox().await?;
        let mut delete_now: Vec<u32> = Vec::new();
        let mut batch: Vec<(String, NewMessage)> = Vec::new();
        let mut batch_numbers: Vec<u32> = Vec::new();
        let mut batch_bytes = 0usize;
        let fresh: Vec<_> = listing
            .iter()
            .filter(|e| !known.contains_key(&e.uid))
            .filter(|e| {
                // Skipped before RETR: a message over the bound would end
                // every session at the same place.
                let size = sizes.get(&e.number).copied().unwrap_or(0);
                if size > MAX_MESSAGE {
                    warn!(
                        "Account {}: message {} on {host} has {size} bytes, more than the {MAX_MESSAGE} facteur accepts; it stays on the server.",
                        self.id, e.uid
                    );
                }
                size <= MAX_MESSAGE
            })
            .collect();
        self.reporter.found(fresh.len() as u32);
        if !fresh.is_empty() {
            debug!(
                "Account {}: {} new message(s) on {host}.",
                self.id,
                fresh.len()
            );
        }
        for (i, entry) in fresh.iter().enumerate() {
            let mut raw = Vec::with_capacity(
                sizes
                    .get(&entry.number)
                    .copied()
                    .unwrap_or(0)
                    .min(MAX_MESSAGE) as usize,
            );
            match client.retr(entry.number, &mut raw, MAX_MESSAGE).await {
                Ok(_) => {}
                Err(Error::TooLarge { limit }) => {
                    warn!(
                        "Account {}: message {} on {host} is larger than {limit} bytes; left on the server.",
                        self.id, entry.uid
                    );
                    return Err(Failure::new(
                        FailureKind::Protocol,
                        format!(
                            "A message on {host} is larger than {limit} bytes and was left there"
                        ),
                    ));
                }
                Err(e) => return Err(fail(e)),
            }
            batch_bytes += raw.len();
            batch.push((
                entry.uid.clone(),
                NewMessage {
                    uid: 0,
                    flags: Flags::default(),
                    keywords: Vec::new(),
                    raw,
                    internal_date: now(),
                },
            ));
            batch_numbers.push(entry.number);
            let last = i + 1 == fresh.len();
            if last || batch.len() >= BATCH_MESSAGES || batch_bytes >= BATCH_BYTES {
                let ids = self
                    .store
                    .pop3_store(&self.id, &inbox, std::mem::take(&mut batch))
                    .await
                    .map_err(Failure::from)?;
                batch_bytes = 0;
                // Stored and flushed: now, and only now, may they go.
                if !self.settings.leave_on_server {
                    delete_now.append(&mut batch_numbers);
                }
                batch_numbers.clear();
                self.reporter.stored(ids.len() as u32);
                let wanted: Vec<MessageId> = ids
                    .iter()
                    .take(5usize.saturating_sub(samples.len()))
                    .cloned()
                    .collect();
                let records = self
                    .blocking(move |store| Ok(store.records(&wanted)))
                    .await?;
                for r in records {
                    samples.push((r.meta.from.clone(), r.meta.subject.clone()));
                }
                *new_total = new_total.saturating_add(ids.len() as u32);
                self.reporter
                    .new_messages(&inbox.display, ids.iter().map(|i| i.to_string()).collect());
                self.reporter.counts();
            }
        }
        // Messages stored in an earlier session that must still go: not left
        // on the server (a crash came between store and QUIT, or the option
        // changed), or deleted locally with delete-on-server.
        let id = self.id.clone();
        let known = self.blocking(move |store| store.pop3_entries(&id)).await?;
        for entry in &listing {
            if let Some(k) = known.get(&entry.uid) {
                let pending = self.settings.leave_on_server
                    && self.settings.delete_on_server
                    && k.pending_delete;
                if (!self.settings.leave_on_server || pending)
                    && !delete_now.contains(&entry.number)
                {
                    delete_now.push(entry.number);
                }
            }
        }
        for number in &delete_now {
            client.dele(*number).await.map_err(fail)?;
        }
        client.quit().await.map_err(fail)?;
        if !delete_now.is_empty() {
            info!(
                "Account {}: deleted {} message(s) on {host}.",
                self.id,
                delete_now.len()
            );
        }
        Ok(*new_total)
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

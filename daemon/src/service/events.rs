//! # From engine events to D-Bus
//!
//! Drains the engines' [`Event`] channel: updates each account's status and
//! announces it with PropertiesChanged, emits `NewMessages` on the Manager
//! (the engines send it only after the store is flushed), and shows one
//! desktop notification per batch.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use facteur_dbus::names;
use tokio::sync::mpsc;
use tracing::warn;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::ObjectPath;

use super::account::emit_status;
use crate::accounts::Account;
use crate::sync::events::Event;
use crate::Daemon;

/// Shortest time between two recounts of one account's messages.
const COUNT_INTERVAL: Duration = Duration::from_secs(1);

/// The detected role → folder map of an account (display names).
pub fn detected_folders(daemon: &Daemon, account: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    if let Ok(folders) = daemon.store.folders(account) {
        for f in folders {
            if let Some(role) = f.role.filter(|r| r != "inbox") {
                map.entry(role).or_insert(f.display);
            }
        }
    }
    map
}

/// Recount an account's messages and announce what changed.
async fn recount(daemon: &Daemon, emitter: &SignalEmitter<'_>, account: &Account) {
    let store = daemon.store.clone();
    let id = account.id.clone();
    match tokio::task::spawn_blocking(move || store.counts(&id, None)).await {
        Ok(Ok((total, unread))) => {
            let changed = account.set_status(|s| {
                s.message_count = total;
                s.unread_count = unread;
            });
            emit_status(emitter, account, &changed).await;
        }
        Ok(Err(e)) => warn!("Account {}: cannot count messages: {e:#}", account.id),
        Err(e) => warn!("Account {}: cannot count messages: {e}", account.id),
    }
}

/// Run until the channel closes.
pub async fn run(
    conn: zbus::Connection,
    daemon: Arc<Daemon>,
    mut rx: mpsc::UnboundedReceiver<Event>,
) {
    let mut counted: HashMap<String, Instant> = HashMap::new();
    let mut stale: HashSet<String> = HashSet::new();
    while let Some(event) = rx.recv().await {
        let account_id = match &event {
            Event::State { account, .. }
            | Event::Synced { account, .. }
            | Event::NewMessages { account, .. }
            | Event::Counts { account }
            | Event::Notify { account, .. } => account.clone(),
        };
        let Some(account) = daemon.accounts.get(&account_id) else {
            continue;
        };
        let path = names::account_path(&account_id);
        let Ok(emitter) = SignalEmitter::new(&conn, path.clone()) else {
            continue;
        };
        match event {
            Event::State {
                state, error, code, ..
            } => {
                if stale.remove(&account_id) {
                    recount(&daemon, &emitter, &account).await;
                    counted.insert(account_id.clone(), Instant::now());
                }
                let changed = account.set_status(|s| {
                    s.state = state;
                    s.last_error = error;
                    s.last_error_code = code.to_owned();
                });
                emit_status(&emitter, &account, &changed).await;
            }
            Event::Synced { at, .. } => {
                if stale.remove(&account_id) {
                    recount(&daemon, &emitter, &account).await;
                    counted.insert(account_id.clone(), Instant::now());
                }
                let folders = detected_folders(&daemon, &account_id);
                let changed = account.set_status(|s| {
                    s.last_sync = at;
                    s.detected_folders = folders;
                });
                emit_status(&emitter, &account, &changed).await;
            }
            Event::Counts { .. } => {
                // Counting reads every record of the account: during a long
                // first sync, at most once a second; the pass's end (or its
                // failure) settles the last count.
                let recent = counted
                    .get(&account_id)
                    .is_some_and(|at: &Instant| at.elapsed() < COUNT_INTERVAL);
                if recent {
                    stale.insert(account_id.clone());
                } else {
                    recount(&daemon, &emitter, &account).await;
                    counted.insert(account_id.clone(), Instant::now());
                    stale.remove(&account_id);
                }
            }
            Event::NewMessages { folder, ids, .. } => {
                let Ok(root) = SignalEmitter::new(&conn, names::ROOT_PATH) else {
                    continue;
                };
                let Ok(account_path) = ObjectPath::try_from(path.as_str()) else {
                    continue;
                };
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                let folder = super::text::dbus_text(&folder);
                if let Err(e) =
                    super::manager::Manager::new_messages(&root, account_path, &folder, &ids).await
                {
                    warn!("Cannot emit NewMessages for account {account_id}: {e}");
                }
            }
            Event::Notify { count, samples, .. } => {
                let name = account.settings().name().to_owned();
                // Sent over the bus too (org.freedesktop.Notifications).
                let samples: Vec<(String, String)> = samples
                    .into_iter()
                    .map(|(from, subject)| {
                        (
                            super::text::dbus_string(from),
                            super::text::dbus_string(subject),
                        )
                    })
                    .collect();
                tokio::spawn(async move { crate::notify::new_mail(&name, count, &samples).await });
            }
        }
    }
}

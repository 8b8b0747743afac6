//! # From engine events to D-Bus
//!
//! Drains the engines' [`Event`] channel: updates each account's status and
//! announces it with PropertiesChanged, emits `NewMessages` on the Manager
//! (the engines send it only after the store is flushed), and shows one
//! desktop notification per batch.

use std::collections::HashMap;
use std::sync::Arc;

use facteur_dbus::names;
use tokio::sync::mpsc;
use tracing::warn;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::ObjectPath;

use super::account::emit_status;
use crate::events::Event;
use crate::Daemon;

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

/// Run until the channel closes.
pub async fn run(
    conn: zbus::Connection,
    daemon: Arc<Daemon>,
    mut rx: mpsc::UnboundedReceiver<Event>,
) {
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
            Event::State { state, error, .. } => {
                let changed = account.set_status(|s| {
                    s.state = state.to_owned();
                    s.last_error = error;
                });
                emit_status(&emitter, &account, &changed).await;
            }
            Event::Synced { at, .. } => {
                let folders = detected_folders(&daemon, &account_id);
                let changed = account.set_status(|s| {
                    s.last_sync = at;
                    s.detected_folders = folders;
                });
                emit_status(&emitter, &account, &changed).await;
            }
            Event::Counts { .. } => {
                let store = daemon.store.clone();
                let id = account_id.clone();
                let counts = tokio::task::spawn_blocking(move || store.counts(&id, None)).await;
                match counts {
                    Ok(Ok((total, unread))) => {
                        let changed = account.set_status(|s| {
                            s.message_count = total;
                            s.unread_count = unread;
                        });
                        emit_status(&emitter, &account, &changed).await;
                    }
                    Ok(Err(e)) => warn!("Account {account_id}: cannot count messages: {e:#}"),
                    Err(e) => warn!("Account {account_id}: cannot count messages: {e}"),
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
                if let Err(e) =
                    super::manager::Manager::new_messages(&root, account_path, &folder, &ids).await
                {
                    warn!("Cannot emit NewMessages for account {account_id}: {e}");
                }
            }
            Event::Notify { count, samples, .. } => {
                let name = account.settings().name().to_owned();
                tokio::spawn(async move { crate::notify::new_mail(&name, count, &samples).await });
            }
        }
    }
}

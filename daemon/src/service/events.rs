//! # From engine events to D-Bus
//!
//! Drains the engines' [`Event`] channel in order: updates each account's
//! status and announces it with PropertiesChanged, emits `NewMessages` on
//! the Manager (the engines send it only after the store is flushed),
//! `FoldersChanged` when a pass found the folder list changed, shows
//! one desktop notification per batch (a task the scheduler tracks), and
//! answers each [`Event::Flush`] once everything before it is announced, so
//! an engine's reply to Sync or DeleteMessage never overtakes its state.

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
use crate::sync::events::{Event, MessagesKind, Problem};
use crate::sync::State;
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

/// The display names of an account's folders, sorted; `None` when they
/// cannot be read.
fn folder_list(daemon: &Daemon, account: &str) -> Option<Vec<String>> {
    let mut names: Vec<String> = daemon
        .store
        .folders(account)
        .ok()?
        .into_iter()
        .map(|f| f.display)
        .collect();
    names.sort();
    Some(names)
}

/// Recount an account's messages, pending changes and outbox, and
/// announce what changed.
pub async fn recount(daemon: &Daemon, emitter: &SignalEmitter<'_>, account: &Account) {
    let store = daemon.store.clone();
    let id = account.id.clone();
    let counted = tokio::task::spawn_blocking(move || {
        let (total, unread) = store.counts(&id, None)?;
        let pending = store.pending_count(&id)?;
        let outbox = store.outbox_count(&id)?;
        let outbox_failed = store.outbox_failed_count(&id)?;
        anyhow::Ok((total, unread, pending, outbox, outbox_failed))
    })
    .await;
    match counted {
        Ok(Ok((total, unread, pending, outbox, outbox_failed))) => {
            let changed = account.set_status(|s| {
                s.message_count = total;
                s.unread_count = unread;
                s.pending_changes = pending;
                s.outbox_count = outbox;
                s.outbox_failed_count = outbox_failed;
            });
            emit_status(emitter, account, &changed).await;
        }
        Ok(Err(e)) => warn!("Account {}: cannot count messages: {e:#}", account.id),
        Err(e) => warn!("Account {}: cannot count messages: {e}", account.id),
    }
}

/// Emit `MessagesAdded`, `MessagesChanged` or `MessagesRemoved` for
/// messages of one folder of an account (nothing for no ids).
pub async fn emit_messages(
    conn: &zbus::Connection,
    account: &str,
    kind: MessagesKind,
    folder: &str,
    ids: &[String],
) {
    if ids.is_empty() {
        return;
    }
    let path = names::account_path(account);
    let (Ok(root), Ok(account_path)) = (
        SignalEmitter::new(conn, names::ROOT_PATH),
        ObjectPath::try_from(path.as_str()),
    ) else {
        return;
    };
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let folder = super::text::dbus_text(folder);
    use super::manager::Manager;
    let sent = match kind {
        MessagesKind::Added => Manager::messages_added(&root, account_path, &folder, &ids).await,
        MessagesKind::Changed => {
            Manager::messages_changed(&root, account_path, &folder, &ids).await
        }
        MessagesKind::Removed => {
            Manager::messages_removed(&root, account_path, &folder, &ids).await
        }
    };
    if let Err(e) = sent {
        warn!("Cannot emit {kind:?} messages for account {account}: {e}");
    }
}

/// Apply a state change and what becomes of the last error.
fn apply_state(status: &mut crate::sync::Status, state: State, problem: Problem, next_retry: u64) {
    status.state = state;
    status.next_retry = next_retry;
    match problem {
        Problem::Keep => {}
        Problem::Clear => {
            status.last_error.clear();
            status.last_error_code.clear();
            status.attention_needed = false;
        }
        Problem::Set {
            message,
            code,
            attention,
        } => {
            status.last_error = message;
            status.last_error_code = code.to_owned();
            status.attention_needed = attention;
        }
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
    let mut known_folders: HashMap<String, Vec<String>> = HashMap::new();
    while let Some(event) = rx.recv().await {
        let account_id = event.account().to_owned();
        let Some(account) = daemon.accounts.get(&account_id) else {
            if let Event::Flush { done, .. } = event {
                let _ = done.send(());
            }
            continue;
        };
        let path = names::account_path(&account_id);
        let Ok(emitter) = SignalEmitter::new(&conn, path.clone()) else {
            if let Event::Flush { done, .. } = event {
                let _ = done.send(());
            }
            continue;
        };
        match event {
            Event::State {
                state,
                problem,
                next_retry,
                ..
            } => {
                if stale.remove(&account_id) {
                    recount(&daemon, &emitter, &account).await;
                    counted.insert(account_id.clone(), Instant::now());
                }
                let changed = account.set_status(|s| apply_state(s, state, problem, next_retry));
                emit_status(&emitter, &account, &changed).await;
            }
            Event::Progress { done, total, .. } => {
                let changed = account.set_status(|s| s.progress = (done, total));
                emit_status(&emitter, &account, &changed).await;
            }
            Event::Synced { at, .. } => {
                if stale.remove(&account_id) {
                    recount(&daemon, &emitter, &account).await;
                    counted.insert(account_id.clone(), Instant::now());
                }
                let folders = {
                    let d = daemon.clone();
                    let id = account_id.clone();
                    tokio::task::spawn_blocking(move || {
                        (detected_folders(&d, &id), folder_list(&d, &id))
                    })
                    .await
                    .ok()
                };
                // A pass that found folders created, renamed or deleted on
                // the server (or the first pass) says so, before LastSync
                // does: UIs list again.
                if let Some((_, Some(list))) = &folders {
                    if known_folders.get(&account_id) != Some(list) {
                        super::changes::folders_changed(&conn, &account_id).await;
                        known_folders.insert(account_id.clone(), list.clone());
                    }
                }
                let changed = account.set_status(|s| {
                    s.last_sync = at;
                    if let Some((roles, _)) = folders {
                        s.detected_folders = roles;
                    }
                });
                emit_status(&emitter, &account, &changed).await;
            }
            Event::Counts { .. } => {
                // Counting reads every record of the account: during a long
                // first sync, at most once a second; the pass's end (or its
                // failure, or a reply) settles the last count.
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
            Event::Flush { done, .. } => {
                // A reply follows: the counts it implies are shown first.
                if stale.remove(&account_id) {
                    recount(&daemon, &emitter, &account).await;
                    counted.insert(account_id.clone(), Instant::now());
                }
                let _ = done.send(());
            }
            Event::NewMessages { folder, ids, .. } => {
                let Ok(root) = SignalEmitter::new(&conn, names::ROOT_PATH) else {
                    continue;
                };
                let Ok(account_path) = ObjectPath::try_from(path.as_str()) else {
                    continue;
                };
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                let text = super::text::dbus_text(&folder);
                if let Err(e) =
                    super::manager::Manager::new_messages(&root, account_path.clone(), &text, &refs)
                        .await
                {
                    warn!("Cannot emit NewMessages for account {account_id}: {e}");
                }
                emit_messages(&conn, &account_id, MessagesKind::Added, &folder, &ids).await;
            }
            Event::Messages {
                kind, folder, ids, ..
            } => emit_messages(&conn, &account_id, kind, &folder, &ids).await,
            Event::Kick { .. } => daemon.scheduler.kick(&account_id).await,
            Event::Notify { count, samples, .. } => {
                let name = account.settings().name().to_owned();
                // Sent over the bus too (org.freedesktop.Notifications);
                // tracked, so shutdown waits for it.
                let samples: Vec<(String, String)> = samples
                    .into_iter()
                    .map(|(from, subject)| {
                        (
                            super::text::dbus_string(from),
                            super::text::dbus_string(subject),
                        )
                    })
                    .collect();
                daemon
                    .scheduler
                    .spawn(async move { crate::notify::new_mail(&name, count, &samples).await });
            }
            Event::OutboxFailed {
                subject, reason, ..
            } => {
                let name = account.settings().name().to_owned();
                let (subject, reason) = (
                    super::text::dbus_string(subject),
                    super::text::dbus_string(reason),
                );
                daemon.scheduler.spawn(async move {
                    crate::notify::send_failed(&name, &subject, &reason).await
                });
            }
        }
    }
}

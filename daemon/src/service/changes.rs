//! # Announcing local changes
//!
//! What a method of two-way sync (`SetFlags`, `MoveMessages`,
//! `CopyMessages`, `CreateFolder`, `RenameFolder`, `DeleteFolder`) did to
//! stored mail, as the contract announces it, before the method replies:
//! first each touched account is recounted (`MessageCount`, `UnreadCount`,
//! `PendingChanges` in one PropertiesChanged), so a client reacting to a
//! signal reads true counts; then one `MessagesAdded`, `MessagesChanged` or
//! `MessagesRemoved` per folder, and `FoldersChanged` on each account
//! whose folder list changed.
//!
//! Only once all of that is sent are the engines of the journaled accounts
//! told to replay the change ([`finish`]), so what the replay announces
//! (a placeholder removed, the server's message added) never reaches a
//! client before the change it follows.
//!
//! Removed messages may have lived in a folder that is gone by now (a
//! deleted or renamed folder): their folder names are taken from a
//! [`Names`] snapshot made before the change. Every method takes one, so a
//! folder is only announced under the empty name when it was unknown both
//! before and after the change (it cannot be, for a message the method
//! found stored).

use std::collections::{BTreeSet, HashMap};

use facteur_dbus::names;
use tracing::warn;
use zbus::object_server::SignalEmitter;

use super::account::AccountObject;
use super::events::{emit_messages, recount};
use crate::accounts::{Done, Failed};
use crate::store::{Effects, MessageId};
use crate::sync::events::MessagesKind;
use crate::Daemon;

/// Folder display names by (account, folder number), as they were before
/// a change.
#[derive(Debug, Clone, Default)]
pub struct Names(HashMap<(String, u64), String>);

impl Names {
    /// The folder names of `account` now (empty when they cannot be read:
    /// the store is then asked again after the change).
    pub async fn of(daemon: &Daemon, account: &str) -> Names {
        let id = account.to_owned();
        let folders = daemon
            .store
            .blocking(move |store| store.folders(&id))
            .await
            .unwrap_or_else(|e| {
                warn!("Account {account}: cannot read its folders: {e:#}");
                Vec::new()
            });
        Names(
            folders
                .into_iter()
                .map(|f| ((account.to_owned(), f.no), f.display))
                .collect(),
        )
    }

    /// The folder names of these accounts now.
    pub async fn of_all(daemon: &Daemon, accounts: &BTreeSet<String>) -> Names {
        let mut all = Names::default();
        for account in accounts {
            all.0.extend(Names::of(daemon, account).await.0);
        }
        all
    }
}

/// After a two-way method: announce what it did (also what it did before
/// failing part-way; nothing when it was refused), then have the engines
/// replay it, then answer. `folders`: a folder method, whose success always
/// emits `FoldersChanged` on the caller's account.
pub async fn finish(
    conn: &zbus::Connection,
    daemon: &Daemon,
    result: Result<Done, Failed>,
    before: &Names,
    also: BTreeSet<String>,
    folders: bool,
) -> Result<(), facteur_dbus::Error> {
    let (mut done, error) = match result {
        Ok(done) => (done, None),
        Err(Failed { error, done }) => (done, Some(error)),
    };
    let did = !done.effects.added.is_empty()
        || !done.effects.changed.is_empty()
        || !done.effects.removed.is_empty()
        || done.effects.folders;
    if error.is_none() || did {
        done.effects.folders |= folders && error.is_none();
        announce(conn, daemon, &done.effects, before, also).await;
    }
    daemon.mail.replay(&done).await;
    match error {
        None => Ok(()),
        Some(e) => Err(e.into()),
    }
}

/// `ids` grouped by (account, folder display name), in the order first
/// seen: names from `before` first, then the store's.
async fn group(
    daemon: &Daemon,
    ids: &[MessageId],
    before: &Names,
) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut unknown: Vec<MessageId> = Vec::new();
    for id in ids {
        match before.0.get(&(id.account.clone(), id.folder)) {
            Some(name) => match out
                .iter_mut()
                .find(|(a, f, _)| *a == id.account && f == name)
            {
                Some((_, _, list)) => list.push(id.to_string()),
                None => out.push((id.account.clone(), name.clone(), vec![id.to_string()])),
            },
            None => unknown.push(id.clone()),
        }
    }
    if unknown.is_empty() {
        return out;
    }
    let store = daemon.store.clone();
    let rest = tokio::task::spawn_blocking(move || store.by_folder(&unknown))
        .await
        .unwrap_or_else(|e| {
            warn!("Cannot group changed messages by folder: {e}");
            Vec::new()
        });
    for (account, folder, list) in rest {
        match out
            .iter_mut()
            .find(|(a, f, _)| *a == account && *f == folder)
        {
            Some((_, _, have)) => have.extend(list),
            None => out.push((account, folder, list)),
        }
    }
    out
}

/// The accounts of these ids.
fn accounts_of<'a>(ids: impl IntoIterator<Item = &'a MessageId>) -> BTreeSet<String> {
    ids.into_iter().map(|id| id.account.clone()).collect()
}

/// The accounts named in `ids` (contract ids; malformed ones are skipped).
pub fn accounts_in(ids: &[String]) -> BTreeSet<String> {
    ids.iter()
        .filter_map(|id| id.parse::<MessageId>().ok())
        .map(|id| id.account)
        .collect()
}

/// Announce `effects` (see the module docs). `also` are accounts recounted
/// even when no message of theirs changed (the caller's account, the
/// accounts of the ids given); `FoldersChanged` goes to every recounted
/// account when `effects.folders` is set.
async fn announce(
    conn: &zbus::Connection,
    daemon: &Daemon,
    effects: &Effects,
    before: &Names,
    also: BTreeSet<String>,
) {
    let mut touched = also;
    touched.extend(accounts_of(
        effects
            .added
            .iter()
            .chain(&effects.changed)
            .chain(&effects.removed),
    ));
    for id in &touched {
        let Some(account) = daemon.accounts.get(id) else {
            continue;
        };
        match SignalEmitter::new(conn, names::account_path(id)) {
            Ok(emitter) => recount(daemon, &emitter, &account).await,
            Err(e) => warn!("Cannot announce the counts of account {id}: {e}"),
        }
    }
    let kinds = [
        (MessagesKind::Removed, &effects.removed),
        (MessagesKind::Added, &effects.added),
        (MessagesKind::Changed, &effects.changed),
    ];
    for (kind, ids) in kinds {
        if ids.is_empty() {
            continue;
        }
        for (account, folder, list) in group(daemon, ids, before).await {
            emit_messages(conn, &account, kind, &folder, &list).await;
        }
    }
    if effects.folders {
        for id in &touched {
            folders_changed(conn, id).await;
        }
    }
}

/// Emit `FoldersChanged` on the account's object.
pub async fn folders_changed(conn: &zbus::Connection, account: &str) {
    let sent = match SignalEmitter::new(conn, names::account_path(account)) {
        Ok(emitter) => AccountObject::folder_list_changed(&emitter).await,
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        warn!("Cannot emit FoldersChanged for account {account}: {e}");
    }
}

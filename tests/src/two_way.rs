//! Acting on mail through facteurd (issue 9): the Manager's `SetFlags`,
//! `MoveMessages` and `CopyMessages`, summaries as `ListMessages` gives
//! them, `PendingChanges`, and the `MessagesAdded/Changed/Removed` signals.

use std::collections::HashMap;

use facteur_dbus::names;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

use crate::{Bus, CallError, Signal};

/// What a test needs of one message summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// The message id.
    pub id: String,
    /// Folder display name.
    pub folder: String,
    /// `\Seen`.
    pub seen: bool,
    /// `\Flagged`.
    pub flagged: bool,
    /// The Message-ID, without angle brackets.
    pub message_id: String,
}

fn string(d: &HashMap<String, OwnedValue>, key: &str) -> String {
    match d.get(key).map(|v| &**v) {
        Some(Value::Str(s)) => s.to_string(),
        Some(Value::ObjectPath(p)) => p.to_string(),
        _ => String::new(),
    }
}

fn boolean(d: &HashMap<String, OwnedValue>, key: &str) -> bool {
    matches!(d.get(key).map(|v| &**v), Some(Value::Bool(true)))
}

/// `Account.ListMessages(folder, 0, 10000)` on the account at `path`.
pub fn listed(bus: &Bus, path: &str, folder: &str) -> Vec<Listed> {
    let reply = bus
        .call_facteur(
            path,
            names::ACCOUNT_INTERFACE,
            "ListMessages",
            &(folder, 0u32, 10_000u32),
        )
        .unwrap_or_else(|e| panic!("ListMessages({folder:?}) on {path} failed: {e}"));
    reply
        .body()
        .deserialize::<Vec<HashMap<String, OwnedValue>>>()
        .expect("ListMessages returns aa{sv}")
        .iter()
        .map(|d| Listed {
            id: string(d, "id"),
            folder: string(d, "folder"),
            seen: boolean(d, "seen"),
            flagged: boolean(d, "flagged"),
            message_id: string(d, "message-id"),
        })
        .collect()
}

/// `Manager.SetFlags(ids, add, remove)`.
pub fn set_flags(bus: &Bus, ids: &[&str], add: &[&str], remove: &[&str]) -> Result<(), CallError> {
    bus.call_facteur(
        names::ROOT_PATH,
        names::MANAGER_INTERFACE,
        "SetFlags",
        &(ids, add, remove),
    )
    .map(|_| ())
}

/// `Manager.MoveMessages` (or `CopyMessages` when `copy`) into `folder` of
/// the account at `account`.
pub fn move_messages(
    bus: &Bus,
    ids: &[&str],
    account: &str,
    folder: &str,
    copy: bool,
) -> Result<(), CallError> {
    let method = if copy { "CopyMessages" } else { "MoveMessages" };
    let account = ObjectPath::try_from(account).expect("an account path");
    bus.call_facteur(
        names::ROOT_PATH,
        names::MANAGER_INTERFACE,
        method,
        &(ids, account, folder),
    )
    .map(|_| ())
}

/// `(account, folder, ids)` of a `MessagesAdded`, `MessagesChanged` or
/// `MessagesRemoved` signal named `member`.
pub fn messages_signal(s: &Signal, member: &str) -> Option<(String, String, Vec<String>)> {
    if s.member != member || s.path != names::ROOT_PATH {
        return None;
    }
    let (account, folder, ids): (OwnedObjectPath, String, Vec<String>) =
        s.message.body().deserialize().ok()?;
    Some((account.as_str().to_owned(), folder, ids))
}

//! # The copy in the Sent folder
//!
//! After a message went out, IMAP accounts keep a copy (flagged `\Seen`) in
//! their Sent folder, over a short-lived connection of its own. The folder
//! is, in this order: the user's `folder-sent`; the folder the sync engine
//! found with the `sent` role; a folder the server marks `\Sent` (RFC 6154)
//! or names like one; else a new folder `Sent`, created with a log line.
//!
//! A failure here never fails the send, which has already happened: the
//! caller logs it.

use futures_util::TryStreamExt as _;
use tracing::info;

use crate::imap::session::{self, drain, step, ImapSession};
use crate::imap::{sync::role_from_name, utf7};
use crate::net::{Failure, FailureKind};
use crate::settings::Settings;
use crate::store::Store;

/// The name of the folder created when the server has none for sent mail.
pub const DEFAULT_SENT: &str = "Sent";

/// Append `message` to the Sent folder of account `id`; returns the folder
/// it went to (as shown to people).
pub async fn save_copy(
    id: &str,
    settings: &Settings,
    password: &str,
    store: &Store,
    message: &[u8],
) -> Result<String, Failure> {
    let (mut session, _caps) = session::connect(settings, password).await?;
    let folder = match known_folder(id, settings, store).await? {
        Some(f) => f,
        None => match find(&mut session).await? {
            Some(f) => f,
            None => {
                info!(
                    "Account {id}: the server has no folder for sent mail; creating {DEFAULT_SENT}."
                );
                step("CREATE", session.create(DEFAULT_SENT)).await?;
                DEFAULT_SENT.to_owned()
            }
        },
    };
    let appended = step(
        "APPEND",
        session.append(&folder, Some("(\\Seen)"), None, message),
    )
    .await;
    if let Err(f) = appended {
        // A chosen folder that does not exist yet (TRYCREATE): create it
        // once and try again.
        if f.kind != FailureKind::Protocol {
            return Err(f);
        }
        info!(
            "Account {id}: appending to {} failed ({}); creating the folder and trying again.",
            utf7::decode(&folder),
            f.message
        );
        step("CREATE", session.create(&folder)).await?;
        step(
            "APPEND",
            session.append(&folder, Some("(\\Seen)"), None, message),
        )
        .await?;
    }
    drain(&mut session);
    let _ = step("LOGOUT", session.logout()).await;
    Ok(utf7::decode(&folder))
}

fn encode(display: &str) -> String {
    if display.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_owned()
    } else {
        utf7::encode(display)
    }
}

/// Whether the Sent folder of account `id` holds a message with this
/// Message-ID (the outbox asks after a crash during a send: the copy is
/// appended only after the server took the message). No Sent folder yet
/// means no.
pub async fn contains(
    id: &str,
    settings: &Settings,
    password: &str,
    store: &Store,
    message_id: &str,
) -> Result<bool, Failure> {
    let (mut session, _caps) = session::connect(settings, password).await?;
    let folder = match known_folder(id, settings, store).await? {
        Some(f) => Some(f),
        None => find(&mut session).await?,
    };
    let Some(folder) = folder else {
        let _ = step("LOGOUT", session.logout()).await;
        return Ok(false);
    };
    if step("EXAMINE", session.examine(&folder)).await.is_err() {
        // A chosen folder that was never created: nothing was copied.
        drain(&mut session);
        let _ = step("LOGOUT", session.logout()).await;
        return Ok(false);
    }
    if !message_id.is_ascii() || message_id.contains(['"', '\\', '\r', '\n']) {
        // Not searchable as a quoted ASCII string: counted as not found
        // (the message is sent again rather than lost).
        info!(
            "Account {id}: Message-ID {message_id:?} cannot be searched for; \
             counted as not in the Sent folder."
        );
        drain(&mut session);
        let _ = step("LOGOUT", session.logout()).await;
        return Ok(false);
    }
    // SEARCH HEADER matches substrings: the brackets narrow it, and the
    // Message-ID of each match is then compared exactly.
    let found = step(
        "UID SEARCH",
        session.uid_search(format!("HEADER Message-ID \"<{message_id}>\"")),
    )
    .await?;
    drain(&mut session);
    let mut exact = false;
    if !found.is_empty() {
        let mut uids: Vec<u32> = found.into_iter().collect();
        uids.sort_unstable();
        let set = uids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let headers: Vec<Vec<u8>> = step("UID FETCH", async {
            let fetches: Vec<async_imap::types::Fetch> = session
                .uid_fetch(&set, "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]")
                .await?
                .try_collect()
                .await?;
            Ok(fetches
                .iter()
                .filter_map(|f| f.header().map(<[u8]>::to_vec))
                .collect())
        })
        .await?;
        drain(&mut session);
        exact = headers.iter().any(|h| same_message_id(h, message_id));
    }
    let _ = step("LOGOUT", session.logout()).await;
    Ok(exact)
}

/// Whether a header block names exactly this Message-ID (without its
/// angle brackets).
fn same_message_id(header: &[u8], message_id: &str) -> bool {
    mail_parser::MessageParser::new()
        .parse_headers(header)
        .and_then(|m| m.message_id().map(|id| id == message_id))
        .unwrap_or(false)
}

/// The Sent folder the settings or the last sync name (wire name).
async fn known_folder(
    id: &str,
    settings: &Settings,
    store: &Store,
) -> Result<Option<String>, Failure> {
    if let Some(display) = settings.folders.get("sent") {
        return Ok(Some(encode(display)));
    }
    // An index read: off the async workers.
    let (store, account) = (store.clone(), id.to_owned());
    let local = |e: String| Failure::new(FailureKind::Local, e);
    Ok(tokio::task::spawn_blocking(move || store.folders(&account))
        .await
        .map_err(|e| local(format!("The store task failed: {e}")))?
        .map_err(|e| local(format!("{e:#}")))?
        .into_iter()
        .find(|f| f.role.as_deref() == Some("sent"))
        .map(|f| f.name))
}

/// The server's folder for sent mail, by its `\Sent` mark or its name.
async fn find(session: &mut ImapSession) -> Result<Option<String>, Failure> {
    let names: Vec<async_imap::types::Name> = step("LIST", async {
        session.list(Some(""), Some("*")).await?.try_collect().await
    })
    .await?;
    drain(session);
    let marked = names.iter().find(|n| {
        n.attributes()
            .iter()
            .any(|a| matches!(a, imap_proto::NameAttribute::Sent))
    });
    let named = || {
        names
            .iter()
            .find(|n| role_from_name(&utf7::decode(n.name()), n.delimiter()) == Some("sent"))
    };
    Ok(marked.or_else(named).map(|n| n.name().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::same_message_id;

    #[test]
    fn message_ids_compare_exactly() {
        let h = b"Message-ID: <11@host>\r\n\r\n";
        assert!(same_message_id(h, "11@host"));
        assert!(!same_message_id(h, "1@host"));
        assert!(!same_message_id(
            b"Message-ID: <a<1@host>>\r\n\r\n",
            "1@host"
        ));
        assert!(!same_message_id(b"\r\n", "1@host"));
    }
}

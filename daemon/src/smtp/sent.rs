//! # The copy in the Sent folder
//!
//! After a message went out, IMAP accounts keep a copy (flagged `\Seen`) in
//! their Sent folder, over a short-lived connection of its own. The folder
//! is, in this order: the user's `folder-sent`; the folder the sync engine
//! found with the `sent` role; a folder the server marks `\Sent` (RFC 6154)
//! or names like one; else a new folder `Sent`, created with a log line.
//!
//! The copy is then stored here at once ([`keep_locally`]), as the next
//! sync of the folder would store it, under the UID the server gave:
//! the APPENDUID of a UIDPLUS server ([`append`]), else the newest
//! message of the folder with its Message-ID, fetched back. Neither (or a
//! folder not synced here yet, or whose UIDVALIDITY moved): the next sync
//! brings it, as before.
//!
//! A failure here never fails the send, which has already happened: the
//! caller logs it.

use futures_util::TryStreamExt as _;
use imap_proto::Status;
use tracing::info;

use crate::imap::command;
use crate::imap::session::{self, drain, is_limit, step, ImapSession};
use crate::imap::sync::{flags_of, keywords_of};
use crate::imap::{sync::role_from_name, utf7};
use crate::net::{Failure, FailureKind};
use crate::settings::Settings;
use crate::store::{Flags, NewMessage, Store};

mod append;
mod local;

pub use append::AppendUid;
pub use local::keep_locally;

/// The name of the folder created when the server has none for sent mail.
pub const DEFAULT_SENT: &str = "Sent";

/// Where a copy went.
#[derive(Debug)]
pub struct Saved {
    /// The folder as the server spells it (modified UTF-7).
    pub folder: String,
    /// The folder as shown to people.
    pub display: String,
    /// The copy as the server holds it, when known: by APPENDUID, else
    /// by its Message-ID in the folder.
    pub placed: Option<Placed>,
}

/// The copy on the server: what the next sync of the folder would fetch.
pub struct Placed {
    /// The folder's UIDVALIDITY the UID belongs to.
    pub uidvalidity: u32,
    /// The message, with its UID.
    pub message: NewMessage,
}

impl std::fmt::Debug for Placed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placed")
            .field("uidvalidity", &self.uidvalidity)
            .field("uid", &self.message.uid)
            .field("bytes", &self.message.raw.len())
            .finish()
    }
}

/// Append `message` to the Sent folder of account `id`; returns where it
/// went and, when the server tells (APPENDUID) or a search finds it, its
/// UID there.
pub async fn save_copy(
    id: &str,
    settings: &Settings,
    password: &str,
    store: &Store,
    message: &[u8],
) -> Result<Saved, Failure> {
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
    let uid = match append::append(&mut session, &folder, "(\\Seen)", message).await? {
        Ok(uid) => uid,
        Err(refusal) if is_limit(&refusal.text) => {
            // Over quota and the like: creating the folder would not help.
            return Err(refused(&refusal));
        }
        Err(refusal) => {
            // A chosen folder that does not exist yet (TRYCREATE): create
            // it once and try again.
            info!(
                "Account {id}: appending to {} failed ({}); creating the folder and trying again.",
                utf7::decode(&folder),
                refusal.text
            );
            step("CREATE", session.create(&folder)).await?;
            append::append(&mut session, &folder, "(\\Seen)", message)
                .await?
                .map_err(|r| refused(&r))?
        }
    };
    drain(&mut session);
    let placed = match uid {
        Some(at) => Some(Placed {
            uidvalidity: at.uidvalidity,
            message: NewMessage {
                uid: at.uid,
                flags: Flags(Flags::SEEN),
                keywords: Vec::new(),
                raw: message.to_vec(),
                internal_date: unix_now(),
            },
        }),
        None => located(id, &mut session, store, &folder, message).await,
    };
    let _ = step("LOGOUT", session.logout()).await;
    Ok(Saved {
        display: utf7::decode(&folder),
        folder,
        placed,
    })
}

/// A refused APPEND as a failure (a server limit, or a refusal in words).
fn refused(r: &command::Refusal) -> Failure {
    let status = if r.bad { Status::Bad } else { Status::No };
    command::refused("APPEND", &status, &r.text)
}

/// Unix seconds now (the server's INTERNALDATE of an appended message is
/// the time of the APPEND).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Without APPENDUID: the copy found by its Message-ID in `folder` (the
/// newest exact match) and fetched as the sync would fetch it; `None`
/// (logged) when the folder is not synced here yet, the message has no
/// searchable Message-ID, or the search fails: the next sync brings it.
async fn located(
    id: &str,
    session: &mut ImapSession,
    store: &Store,
    folder: &str,
    message: &[u8],
) -> Option<Placed> {
    let later = |why: &str| {
        info!(
            "Account {id}: the server gave no UID for the copy in {} ({why}); \
             it is stored here at the next sync of that folder.",
            utf7::decode(folder)
        );
        None
    };
    let (s, acc, name) = (store.clone(), id.to_owned(), folder.to_owned());
    let synced = tokio::task::spawn_blocking(move || s.folder(&acc, &name))
        .await
        .ok()
        .and_then(Result::ok)
        .flatten()
        .and_then(|f| f.state)
        .is_some();
    if !synced {
        return later("the folder is not synced here yet");
    }
    let Some(message_id) = mail_parser::MessageParser::new()
        .parse_headers(message)
        .and_then(|m| m.message_id().map(str::to_owned))
    else {
        return later("the message has no Message-ID");
    };
    match fetch_by_message_id(session, folder, &message_id).await {
        Ok(Some(placed)) => Some(placed),
        Ok(None) => later("a search for its Message-ID found nothing"),
        Err(f) => later(&f.message),
    }
}

/// EXAMINE `folder`, find the newest message whose Message-ID is exactly
/// `message_id`, and fetch it (UID, FLAGS, INTERNALDATE, the raw bytes).
async fn fetch_by_message_id(
    session: &mut ImapSession,
    folder: &str,
    message_id: &str,
) -> Result<Option<Placed>, Failure> {
    let mailbox = step("EXAMINE", session.examine(folder)).await?;
    drain(session);
    let Some(uidvalidity) = mailbox.uid_validity else {
        return Ok(None);
    };
    let Some(uid) = matching_uids(session, message_id).await?.into_iter().max() else {
        return Ok(None);
    };
    let mut got: Option<NewMessage> = None;
    command::run(
        session,
        "UID FETCH",
        &format!("UID FETCH {uid} (UID FLAGS INTERNALDATE BODY.PEEK[])"),
        |r| {
            let Some(f) = command::fetched(r) else {
                return;
            };
            if let (Some(u), Some(raw)) = (f.uid, f.body) {
                if u == uid && got.is_none() {
                    got = Some(NewMessage {
                        uid,
                        flags: flags_of(&f.flags),
                        keywords: keywords_of(&f.flags),
                        raw,
                        internal_date: f.internal_date.unwrap_or(0),
                    });
                }
            }
        },
    )
    .await?;
    drain(session);
    Ok(got.map(|message| Placed {
        uidvalidity,
        message,
    }))
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
    if !searchable(message_id) {
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
    let exact = !matching_uids(&mut session, message_id).await?.is_empty();
    let _ = step("LOGOUT", session.logout()).await;
    Ok(exact)
}

/// The UIDs of the selected folder's messages whose Message-ID is
/// exactly `message_id` (an empty list for one that cannot be searched as
/// a quoted ASCII string).
async fn matching_uids(session: &mut ImapSession, message_id: &str) -> Result<Vec<u32>, Failure> {
    if !searchable(message_id) {
        return Ok(Vec::new());
    }
    // SEARCH HEADER matches substrings: the brackets narrow it, and the
    // Message-ID of each match is then compared exactly.
    let found = step(
        "UID SEARCH",
        session.uid_search(format!("HEADER Message-ID \"<{message_id}>\"")),
    )
    .await?;
    drain(session);
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let mut uids: Vec<u32> = found.into_iter().collect();
    uids.sort_unstable();
    let set = uids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let headers: Vec<(u32, Vec<u8>)> = step("UID FETCH", async {
        let fetches: Vec<async_imap::types::Fetch> = session
            .uid_fetch(&set, "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]")
            .await?
            .try_collect()
            .await?;
        Ok(fetches
            .iter()
            .filter_map(|f| Some((f.uid?, f.header()?.to_vec())))
            .collect())
    })
    .await?;
    drain(session);
    Ok(headers
        .into_iter()
        .filter(|(_, h)| same_message_id(h, message_id))
        .map(|(uid, _)| uid)
        .collect())
}

/// Whether a Message-ID can be searched for as a quoted ASCII string.
fn searchable(message_id: &str) -> bool {
    message_id.is_ascii() && !message_id.contains(['"', '\\', '\r', '\n'])
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

//! # Damaged message files
//!
//! A message file that is missing, or whose bytes do not hash to its name,
//! is never served. [`Store::message`] refuses it with [`Damaged`] (which
//! names the file actually read, `.zst` or `.eml`), the file goes to
//! quarantine (see [`super::blobs`]), and the message is marked for
//! refetch: its record is removed, and for POP3 its unique-id is forgotten,
//! so the next pass where the server still has it downloads it again (the
//! IMAP engine fetches every server UID below the folder's high-water mark
//! that is not stored; the POP3 poller every unique-id it does not know).

use std::fmt;
use std::path::PathBuf;

use anyhow::Result;

use super::messages::{MessageId, Record, MAX_MESSAGE_BYTES};
use super::{blobs, Store};

/// A message file that cannot be served.
#[derive(Debug, Clone)]
pub struct Damaged {
    /// The file read (or, when missing, the name it would have compressed).
    pub path: PathBuf,
    /// The other name it could have had, when missing.
    pub other: Option<PathBuf>,
    /// Missing rather than damaged.
    pub missing: bool,
    /// What is wrong.
    pub why: String,
    /// Where the damaged file was moved.
    pub quarantined: Option<PathBuf>,
}

impl Damaged {
    pub(super) fn missing(zst: PathBuf, eml: PathBuf) -> Self {
        Damaged {
            path: zst,
            other: Some(eml),
            missing: true,
            why: "missing".into(),
            quarantined: None,
        }
    }

    pub(super) fn corrupt(path: PathBuf, why: &str, quarantined: Option<PathBuf>) -> Self {
        Damaged {
            path,
            other: None,
            missing: false,
            why: why.to_owned(),
            quarantined,
        }
    }
}

impl fmt::Display for Damaged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.missing {
            write!(
                f,
                "The message file is missing (neither {} nor {} exists)",
                self.path.display(),
                self.other
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )?;
        } else {
            write!(
                f,
                "The message file {} is damaged ({})",
                self.path.display(),
                self.why
            )?;
            if let Some(q) = &self.quarantined {
                write!(f, "; it was moved to {}", q.display())?;
            }
        }
        f.write_str(
            "; the message will be fetched again at the next sync if the server still has it",
        )
    }
}

impl std::error::Error for Damaged {}

impl Store {
    /// The raw bytes of a message, exactly as fetched and checked against
    /// their address. Blocking: call it off the async threads.
    /// A read error (EIO on one bad sector, EACCES on one file) concerns
    /// that message only: it never marks the whole store unavailable.
    pub fn raw(&self, record: &Record) -> Result<Vec<u8>> {
        blobs::read(&self.shared.messages, &record.hash, MAX_MESSAGE_BYTES)
    }

    /// The raw bytes of message `id`; a missing or damaged file is refused
    /// with [`Damaged`] and the message is marked for refetch (see
    /// [`Store::refetch`]).
    pub async fn message(&self, id: &MessageId, record: &Record) -> Result<Vec<u8>> {
        let this = self.clone();
        let rec = record.clone();
        let read = tokio::task::spawn_blocking(move || this.raw(&rec)).await?;
        match read {
            Err(e) if e.downcast_ref::<Damaged>().is_some() => {
                if let Err(f) = self.refetch(id).await {
                    tracing::warn!("Cannot mark message {id} for refetch: {f:#}");
                }
                Err(e)
            }
            other => other,
        }
    }

    /// Mark a message for download again: forget its POP3 unique-id (if it
    /// has one) and remove its record. The folder's state is left alone: the
    /// IMAP engine notices a server UID below the high-water mark that is not
    /// stored, and POP3's local UIDs must never be given twice.
    pub async fn refetch(&self, id: &MessageId) -> Result<()> {
        let uidls: Vec<String> = self
            .pop3_entries(&id.account)?
            .into_iter()
            .filter(|(_, e)| e.uid == id.uid)
            .map(|(u, _)| u)
            .collect();
        self.pop3_forget(&id.account, &uidls).await?;
        self.remove_uids(&id.account, id.folder, &[id.uid]).await?;
        tracing::info!("Message {id} will be fetched again.");
        Ok(())
    }
}

//! # Moves, copies, APPENDs and expunges on the server
//!
//! - A move: `UID MOVE` when the server has MOVE (its COPYUID comes in an
//!   untagged `OK` before the expunges, RFC 6851 §4.3), else `UID COPY`,
//!   `\Deleted` and `UID EXPUNGE` (plain `EXPUNGE` without UIDPLUS, which
//!   also expunges other messages flagged `\Deleted` there: a documented
//!   limit). A source UID the server no longer has (moved before a crash,
//!   or expunged) drops the entry: the placeholder goes and the target's
//!   next pass fetches the real message, so nothing is lost or doubled.
//! - A copy, and a move without MOVE: the target is searched for the
//!   message's Message-ID first; found, that UID is the copy (a retry after
//!   a crash between COPY and its settling does not copy twice).
//! - A cross-account APPEND: the same Message-ID search, else APPEND of
//!   the local file with its flags; APPENDUID names the new UID. Settling
//!   it turns the source account's `MovedOut` into an `Expunge`, and that
//!   account is woken to replay it.
//! - Expunges of one folder are batched: one `\Deleted` store and one
//!   `UID EXPUNGE` for all; a UID already gone counts as done.

use super::super::session::ImapSession;
use super::super::sync::uid_set;
use super::super::{command, Engine};
use super::{flags, wire, Opened, Run};
use crate::mail::Meta;
use crate::net::Failure;
use crate::store::{Change, Entry, MessageId, Outcome, Record};

/// The leading entries of `entries` that go in one batch with the first
/// (an expunge).
pub(super) fn expunge_batch(entries: &[Entry]) -> &[Entry] {
    let key = |e: &Entry| match &e.change {
        Change::Expunge {
            folder,
            uidvalidity,
            ..
        } => Some((*folder, *uidvalidity)),
        _ => None,
    };
    super::leading(entries, key)
}

impl Engine {
    /// Expunge a batch of messages of one folder (see [`expunge_batch`]).
    pub(super) async fn replay_expunges(
        &self,
        session: &mut ImapSession,
        run: &mut Run,
        batch: &[Entry],
    ) -> Result<Vec<(u64, Outcome)>, Failure> {
        let Change::Expunge {
            folder,
            uidvalidity,
            ..
        } = &batch[0].change
        else {
            return Ok(Vec::new());
        };
        let all = |outcome: Outcome| batch.iter().map(|e| (e.seq, outcome.clone())).collect();
        match self.open(session, run, *folder).await? {
            // Dropped: if the server still has the message, the next pass
            // fetches it back (nothing lost).
            Opened::Gone(why) => return Ok(all(Outcome::Dropped(why))),
            // The old UIDs are gone with the old UIDVALIDITY.
            Opened::Selected(v) if v != *uidvalidity => {
                return Ok(all(Outcome::Applied { flags: None }))
            }
            Opened::Selected(_) => {}
        }
        let mut uids: Vec<u32> = batch
            .iter()
            .filter_map(|e| match &e.change {
                Change::Expunge { uid, .. } => Some(*uid),
                _ => None,
            })
            .collect();
        uids.sort_unstable();
        uids.dedup();
        self.expunge_uids(session, &uids).await?;
        Ok(all(Outcome::Applied { flags: None }))
    }

    /// `\Deleted` and expunge these UIDs of the selected folder.
    async fn expunge_uids(&self, session: &mut ImapSession, uids: &[u32]) -> Result<(), Failure> {
        let set = uid_set(uids);
        wire::run(
            session,
            "UID STORE",
            &format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"),
            |_| {},
        )
        .await?;
        if self.caps.uidplus {
            wire::run(
                session,
                "UID EXPUNGE",
                &format!("UID EXPUNGE {set}"),
                |_| {},
            )
            .await?;
        } else {
            wire::run(session, "EXPUNGE", "EXPUNGE", |_| {}).await?;
        }
        Ok(())
    }

    /// The local record of a placeholder (for its Message-ID and file).
    async fn placeholder(&self, folder: u64, uid: u32) -> Result<Option<Record>, Failure> {
        let id = MessageId {
            account: self.id.clone(),
            folder,
            uidvalidity: 0,
            uid,
        };
        self.blocking(move |store| store.record(&id)).await
    }

    /// The UID of a message with this Message-ID in the selected folder.
    async fn search_message_id(
        &self,
        session: &mut ImapSession,
        message_id: &str,
    ) -> Result<Option<u32>, Failure> {
        // Non-ASCII would need a CHARSET; such ids are not looked for.
        if message_id.is_empty() || !message_id.is_ascii() {
            return Ok(None);
        }
        let mut found = Vec::new();
        wire::run(
            session,
            "UID SEARCH",
            &format!(
                "UID SEARCH HEADER Message-ID {}",
                command::quoted(message_id)?
            ),
            |r| wire::searched(r, &mut found),
        )
        .await?;
        Ok(found.into_iter().max())
    }

    /// A move or copy inside the account.
    pub(super) async fn replay_move(
        &self,
        session: &mut ImapSession,
        run: &mut Run,
        entry: &Entry,
    ) -> Result<Vec<(u64, Outcome)>, Failure> {
        let Change::Move {
            folder,
            uidvalidity,
            uid,
            to,
            placeholder,
            copy,
        } = &entry.change
        else {
            return Ok(Vec::new());
        };
        let (copy, uid) = (*copy, *uid);
        let one = |outcome| Ok(vec![(entry.seq, outcome)]);
        let Some(target) = run.folders.get(to).cloned() else {
            return one(Outcome::Dropped("the target folder is gone".into()));
        };
        let Some(source) = run.folders.get(folder).cloned() else {
            return one(Outcome::Dropped("the source folder is gone".into()));
        };
        let by_move = self.caps.r#move && !copy;
        // Already there (a retry after a crash)?
        let mut landed = None;
        if !by_move {
            let message_id = self
                .placeholder(*to, *placeholder)
                .await?
                .map(|r| r.meta.message_id)
                .unwrap_or_default();
            if !message_id.is_empty() {
                let target_validity = match self.open(session, run, *to).await? {
                    Opened::Gone(why) => return one(Outcome::Dropped(why)),
                    Opened::Selected(v) => v,
                };
                if let Some(found) = self.search_message_id(session, &message_id).await? {
                    landed = Some(Outcome::Landed {
                        uidvalidity: target_validity,
                        uid: Some(found),
                    });
                }
            }
        }
        match self.open(session, run, *folder).await? {
            Opened::Gone(why) => return one(Outcome::Dropped(why)),
            Opened::Selected(v) if v != *uidvalidity => {
                return one(Outcome::Dropped(format!(
                    "folder {} was reset on the server (UIDVALIDITY changed)",
                    source.display
                )))
            }
            Opened::Selected(_) => {}
        }
        let mut present = false;
        wire::run(
            session,
            "UID FETCH",
            &format!("UID FETCH {uid} (UID)"),
            |r| {
                if command::fetched(r).is_some_and(|f| f.uid == Some(uid)) {
                    present = true;
                }
            },
        )
        .await?;
        if !present && landed.is_none() && by_move {
            // A UID MOVE done before a crash: the message is in the target
            // already (looked for only now, so a first try costs nothing).
            let message_id = self
                .placeholder(*to, *placeholder)
                .await?
                .map(|r| r.meta.message_id)
                .unwrap_or_default();
            if !message_id.is_empty() {
                if let Opened::Selected(v) = self.open(session, run, *to).await? {
                    if let Some(found) = self.search_message_id(session, &message_id).await? {
                        landed = Some(Outcome::Landed {
                            uidvalidity: v,
                            uid: Some(found),
                        });
                    }
                }
            }
        }
        if !present {
            if let Some(outcome) = landed.clone() {
                // Copied (or moved) before a crash, the source gone since:
                // the copy in the target stands.
                return one(outcome);
            }
            return one(Outcome::Dropped(format!(
                "message {uid} is no longer in {} on the server",
                source.display
            )));
        }
        let name = command::quoted(&target.name)?;
        if landed.is_none() {
            let (what, line) = if by_move {
                ("UID MOVE", format!("UID MOVE {uid} {name}"))
            } else {
                ("UID COPY", format!("UID COPY {uid} {name}"))
            };
            let mut copied: Option<(u32, Vec<(u32, u32)>)> = None;
            let answer = wire::run(session, what, &line, |r| {
                if let imap_proto::Response::Data {
                    status: imap_proto::Status::Ok,
                    outcome,
                } = r
                {
                    if let Some(code) = &outcome.code {
                        copied = copied.take().or_else(|| wire::copyuid(code));
                    }
                }
            })
            .await?;
            if by_move {
                // The server expunged the source: what it announced is
                // read; the pass over the folder sees it.
                super::super::drain(session);
            }
            let copied = copied.or(answer.copyuid);
            landed = Some(match copied {
                Some((v, pairs)) => Outcome::Landed {
                    uidvalidity: v,
                    uid: pairs.iter().find(|(s, _)| *s == uid).map(|(_, d)| *d),
                },
                None => Outcome::Landed {
                    uidvalidity: target.state.map(|s| s.uidvalidity).unwrap_or(0),
                    uid: None,
                },
            });
        }
        if !copy && !by_move {
            self.expunge_uids(session, &[uid]).await?;
        }
        one(landed.unwrap_or(Outcome::Landed {
            uidvalidity: 0,
            uid: None,
        }))
    }

    /// A message moved or copied here from another account: APPEND it.
    pub(super) async fn replay_append(
        &self,
        session: &mut ImapSession,
        run: &mut Run,
        entry: &Entry,
    ) -> Result<Vec<(u64, Outcome)>, Failure> {
        let Change::Append {
            to,
            placeholder,
            hash,
            flags: wanted,
            message_id,
            source,
        } = &entry.change
        else {
            return Ok(Vec::new());
        };
        let one = |outcome| Ok(vec![(entry.seq, outcome)]);
        let Some(target) = run.folders.get(to).cloned() else {
            return one(Outcome::Dropped("the target folder is gone".into()));
        };
        // The source's journal changes once this is settled.
        if let Some(source) = source {
            if !run.kicks.contains(&source.account) {
                run.kicks.push(source.account.clone());
            }
        }
        if !message_id.is_empty() {
            let validity = match self.open(session, run, *to).await? {
                Opened::Gone(why) => return one(Outcome::Dropped(why)),
                Opened::Selected(v) => v,
            };
            if let Some(found) = self.search_message_id(session, message_id).await? {
                return one(Outcome::Landed {
                    uidvalidity: validity,
                    uid: Some(found),
                });
            }
        }
        let Some(list) = flags::atoms(wanted) else {
            return one(Outcome::Dropped(
                "a flag name cannot be sent to the server".into(),
            ));
        };
        let record = self
            .placeholder(*to, *placeholder)
            .await?
            .unwrap_or_else(|| Record {
                uid: *placeholder,
                uidvalidity: 0,
                flags: Default::default(),
                size: 0,
                hash: hash.clone(),
                meta: Meta::default(),
                keywords: Vec::new(),
            });
        let raw = match self.blocking(move |store| store.raw(&record)).await {
            Ok(raw) => raw,
            Err(f) => {
                return one(Outcome::Dropped(format!(
                    "the local copy of the message cannot be read ({f})"
                )))
            }
        };
        let answer = wire::append(session, &command::quoted(&target.name)?, &list, &raw).await?;
        super::super::drain(session);
        let outcome = match answer.appenduid {
            Some((v, uid)) => Outcome::Landed {
                uidvalidity: v,
                uid: Some(uid),
            },
            None => Outcome::Landed {
                uidvalidity: target.state.map(|s| s.uidvalidity).unwrap_or(0),
                uid: None,
            },
        };
        one(outcome)
    }
}

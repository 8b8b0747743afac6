//! # IMAP folder sync
//!
//! One pass over one folder: SELECT, a UIDVALIDITY check (a change drops
//! the folder's local copy and fetches it again, leaving nothing stale),
//! flag changes (CONDSTORE `CHANGEDSINCE` when offered, else a full UID and
//! FLAGS comparison), expunges (a UID SEARCH compared with the local UIDs),
//! then new messages from the stored UIDNEXT on, streamed in UID batches
//! bounded in count and bytes. Each batch is stored with the folder state
//! that covers it; nothing is announced before it is durable.
//!
//! Also the folder list: LIST with SPECIAL-USE roles (RFC 6154), names
//! decoded from modified UTF-7, name heuristics when the server has none.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use futures_util::TryStreamExt as _;
use tracing::{debug, info, warn};

use super::session::{drain, step, ImapSession};
use super::{utf7, Engine};
use crate::net::{Failure, FailureKind};
use crate::store::{Flags, FolderInfo, FolderState, NewMessage};

/// Most messages fetched in one FETCH.
const BATCH_MESSAGES: usize = 250;
/// Most bytes (by RFC822.SIZE) fetched in one FETCH: memory stays bounded
/// by this, or by the one message that is larger.
const BATCH_BYTES: u64 = 4 * 1024 * 1024;

fn local(e: anyhow::Error) -> Failure {
    // Classifies a full disk as `DiskFull`, anything else as `Local`.
    Failure::from(e)
}

/// Role of a folder from its SPECIAL-USE attributes.
fn special_use(attrs: &[imap_proto::NameAttribute<'_>]) -> Option<&'static str> {
    use imap_proto::NameAttribute as A;
    attrs.iter().find_map(|a| match a {
        A::Sent => Some("sent"),
        A::Drafts => Some("drafts"),
        A::Trash => Some("trash"),
        A::Junk => Some("spam"),
        A::Archive => Some("archive"),
        _ => None,
    })
}

/// Role of a folder from its name, for servers without SPECIAL-USE.
pub fn role_from_name(display: &str, delimiter: Option<&str>) -> Option<&'static str> {
    let leaf = match delimiter {
        Some(d) if !d.is_empty() => display.rsplit(d).next().unwrap_or(display),
        _ => display,
    };
    let leaf = leaf.to_lowercase();
    let table: &[(&str, &[&str])] = &[
        (
            "sent",
            &[
                "sent",
                "sent items",
                "sent messages",
                "sent mail",
                "envoyés",
                "éléments envoyés",
                "gesendet",
            ],
        ),
        ("drafts", &["drafts", "draft", "brouillons", "entwürfe"]),
        (
            "trash",
            &[
                "trash",
                "deleted items",
                "deleted messages",
                "corbeille",
                "papierkorb",
                "bin",
            ],
        ),
        (
            "spam",
            &[
                "spam",
                "junk",
                "junk e-mail",
                "junk mail",
                "courrier indésirable",
                "indésirables",
            ],
        ),
        ("archive", &["archive", "archives"]),
    ];
    table
        .iter()
        .find(|(_, names)| names.contains(&leaf.as_str()))
        .map(|(role, _)| *role)
}

fn flags_of(fetch: &async_imap::types::Fetch) -> Flags {
    use async_imap::types::Flag;
    let mut bits = 0;
    for f in fetch.flags() {
        bits |= match f {
            Flag::Seen => Flags::SEEN,
            Flag::Answered => Flags::ANSWERED,
            Flag::Flagged => Flags::FLAGGED,
            Flag::Deleted => Flags::DELETED,
            Flag::Draft => Flags::DRAFT,
            _ => 0,
        };
    }
    Flags(bits)
}

/// A UID set in IMAP syntax, ranges compressed.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.saturating_add(1) {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

impl Engine {
    /// LIST every folder, record them, forget the ones the server dropped.
    /// Returns the selectable folders, INBOX first.
    pub(super) async fn sync_folder_list(
        &self,
        session: &mut ImapSession,
    ) -> Result<Vec<FolderInfo>, Failure> {
        let names: Vec<async_imap::types::Name> = step("LIST", async {
            session.list(Some(""), Some("*")).await?.try_collect().await
        })
        .await?;
        drain(session);
        let any_special = names.iter().any(|n| special_use(n.attributes()).is_some());
        let mut seen = BTreeSet::new();
        let mut folders = Vec::new();
        for n in &names {
            let raw = n.name();
            let display = if raw.eq_ignore_ascii_case("INBOX") {
                "INBOX".to_owned()
            } else {
                utf7::decode(raw)
            };
            let selectable = !n
                .attributes()
                .iter()
                .any(|a| matches!(a, imap_proto::NameAttribute::NoSelect));
            let role = if raw.eq_ignore_ascii_case("INBOX") {
                Some("inbox")
            } else if any_special {
                special_use(n.attributes())
            } else {
                role_from_name(&display, n.delimiter())
            };
            let info = self
                .store
                .upsert_folder(
                    &self.id,
                    raw,
                    &display,
                    n.delimiter().map(str::to_owned),
                    role.map(str::to_owned),
                    selectable,
                )
                .map_err(local)?;
            seen.insert(raw.to_owned());
            if selectable {
                folders.push(info);
            }
        }
        for old in self.store.folders(&self.id).map_err(local)? {
            if !seen.contains(&old.name) {
                info!(
                    "Account {}: folder {} is gone from the server; dropping its local copy.",
                    self.id, old.display
                );
                self.store
                    .clear_folder(&self.id, &old, true)
                    .await
                    .map_err(local)?;
                self.reporter.counts();
            }
        }
        folders.sort_by_key(|f| (f.role.as_deref() != Some("inbox"), f.display.clone()));
        Ok(folders)
    }

    /// One pass over one folder; returns the number of new messages and
    /// leaves the folder selected.
    pub(super) async fn sync_folder(
        &self,
        session: &mut ImapSession,
        folder: &FolderInfo,
        samples: &mut Vec<(String, String)>,
    ) -> Result<u32, Failure> {
        let mailbox = if self.caps.condstore {
            step("SELECT", session.select_condstore(&folder.name)).await?
        } else {
            step("SELECT", session.select(&folder.name)).await?
        };
        drain(session);
        let uidvalidity = mailbox.uid_validity.ok_or_else(|| {
            Failure::new(
                FailureKind::Protocol,
                format!("The server gave no UIDVALIDITY for {}", folder.display),
            )
        })?;
        // After a UIDVALIDITY change the messages fetched again are not new
        // mail: they are stored (and announced with their new ids), but only
        // those whose content was not there before count and are notified.
        let mut seen_before: Option<HashSet<String>> = None;
        let mut known = self
            .store
            .folder(&self.id, &folder.name)
            .map_err(local)?
            .and_then(|f| f.state);
        if let Some(state) = known {
            if state.uidvalidity != uidvalidity {
                info!(
                    "Account {}: UIDVALIDITY of {} changed ({} → {uidvalidity}); fetching it again.",
                    self.id, folder.display, state.uidvalidity
                );
                seen_before = Some(self.store.hashes(&self.id, folder.no).map_err(local)?);
                self.store
                    .clear_folder(&self.id, folder, false)
                    .await
                    .map_err(local)?;
                self.reporter.counts();
                known = None;
            }
        }
        let modseq = if self.caps.condstore {
            mailbox.highest_modseq.unwrap_or(0)
        } else {
            0
        };
        let mut known_next = known.map(|s| s.uidnext).unwrap_or(1);
        let server_next = mailbox.uid_next;
        if let Some(n) = server_next.filter(|n| *n < known_next) {
            // UIDNEXT must never go down while UIDVALIDITY stays (RFC 3501
            // §2.3.1.1); some servers do it anyway. Look again from there:
            // what is already stored is not stored twice.
            warn!(
                "Account {}: the server lowered UIDNEXT of {} from {known_next} to {n}; rescanning from there.",
                self.id, folder.display
            );
            known_next = n.max(1);
        }

        if let Some(state) = known {
            if known_next > 1 {
                self.sync_known(session, folder, state, modseq).await?;
            }
        }

        let nothing_new = mailbox.exists == 0 || server_next.is_some_and(|n| n <= known_next);
        let (new, fetched_next) = if nothing_new {
            (0, known_next)
        } else {
            self.fetch_new(
                session,
                folder,
                (uidvalidity, known_next, modseq),
                seen_before.as_ref(),
                samples,
            )
            .await?
        };
        // The state that covers everything seen now: UIDNEXT from SELECT,
        // or past the last UID fetched when the server omitted it (some do).
        let after = self
            .store
            .folder(&self.id, &folder.name)
            .map_err(local)?
            .and_then(|f| f.state);
        let next = match server_next {
            Some(n) => n.max(fetched_next),
            None => fetched_next.max(known_next),
        };
        let state = FolderState {
            uidvalidity,
            uidnext: next,
            highestmodseq: modseq,
        };
        if after != Some(state) {
            self.store
                .set_folder_state(&self.id, folder, state)
                .await
                .map_err(local)?;
        }
        Ok(new)
    }

    /// Flags and expunges of the messages we already have.
    async fn sync_known(
        &self,
        session: &mut ImapSession,
        folder: &FolderInfo,
        state: FolderState,
        modseq: u64,
    ) -> Result<(), Failure> {
        let range = format!("1:{}", state.uidnext.saturating_sub(1).max(1));
        let local_uids = self.store.uids(&self.id, folder.no).map_err(local)?;
        // Expunges: what the server still has below the known UIDNEXT.
        let on_server = step("UID SEARCH", session.uid_search(format!("UID {range}"))).await?;
        drain(session);
        let gone: Vec<u32> = local_uids
            .keys()
            .copied()
            .filter(|u| !on_server.contains(u))
            .collect();
        if !gone.is_empty() {
            debug!(
                "Account {}: {} message(s) expunged from {}.",
                self.id,
                gone.len(),
                folder.display
            );
            self.store
                .remove_uids(&self.id, folder.no, &gone)
                .await
                .map_err(local)?;
            self.reporter.counts();
        }
        // Flags: only what changed since the last HIGHESTMODSEQ when the
        // server does CONDSTORE, else all of them.
        if self.caps.condstore && state.highestmodseq > 0 && modseq == state.highestmodseq {
            return Ok(());
        }
        let query = if self.caps.condstore && state.highestmodseq > 0 {
            format!("(UID FLAGS) (CHANGEDSINCE {})", state.highestmodseq)
        } else {
            "(UID FLAGS)".to_owned()
        };
        let fetched: Vec<async_imap::types::Fetch> = step("UID FETCH FLAGS", async {
            session.uid_fetch(&range, &query).await?.try_collect().await
        })
        .await?;
        drain(session);
        let changes: Vec<(u32, Flags)> = fetched
            .iter()
            .filter_map(|f| Some((f.uid?, flags_of(f))))
            .filter(|(uid, flags)| local_uids.get(uid).is_some_and(|old| old != flags))
            .collect();
        if !changes.is_empty() {
            self.store
                .set_flags(&self.id, folder, &changes, None)
                .await
                .map_err(local)?;
            self.reporter.counts();
        }
        Ok(())
    }

    /// Fetch messages from `from` on, in batches; returns how many were new
    /// and the UID after the last one seen.
    async fn fetch_new(
        &self,
        session: &mut ImapSession,
        folder: &FolderInfo,
        (uidvalidity, from, modseq): (u32, u32, u64),
        seen_before: Option<&HashSet<String>>,
        samples: &mut Vec<(String, String)>,
    ) -> Result<(u32, u32), Failure> {
        // Sizes first (a few bytes per message), so bodies can be fetched in
        // batches whose memory is bounded.
        let sizes: Vec<async_imap::types::Fetch> = step("UID FETCH RFC822.SIZE", async {
            session
                .uid_fetch(format!("{from}:*"), "(UID RFC822.SIZE)")
                .await?
                .try_collect()
                .await
        })
        .await?;
        drain(session);
        // "n:*" also returns the last message when n is past it (RFC 3501
        // §6.4.8), so keep only UIDs really at or after `from`.
        let sizes: BTreeMap<u32, u64> = sizes
            .iter()
            .filter_map(|f| Some((f.uid?, u64::from(f.size.unwrap_or(0)))))
            .filter(|(uid, _)| *uid >= from)
            .collect();
        let mut batches: Vec<Vec<u32>> = Vec::new();
        let (mut current, mut bytes) = (Vec::new(), 0u64);
        for (uid, size) in &sizes {
            if !current.is_empty()
                && (current.len() >= BATCH_MESSAGES || bytes + size > BATCH_BYTES)
            {
                batches.push(std::mem::take(&mut current));
                bytes = 0;
            }
            current.push(*uid);
            bytes += size;
        }
        if !current.is_empty() {
            batches.push(current);
        }
        let mut total = 0u32;
        for batch in batches {
            let set = uid_set(&batch);
            let mut stream_result = Vec::with_capacity(batch.len());
            {
                let fetch = step(
                    "UID FETCH",
                    session.uid_fetch(&set, "(UID FLAGS INTERNALDATE BODY.PEEK[])"),
                )
                .await?;
                let mut fetch = std::pin::pin!(fetch);
                loop {
                    let next = tokio::time::timeout(crate::net::COMMAND_TIMEOUT, fetch.try_next())
                        .await
                        .map_err(|_| {
                            Failure::new(
                                FailureKind::Timeout,
                                "The server stalled while sending messages",
                            )
                        })?
                        .map_err(|e| super::session::imap_failure("UID FETCH", e))?;
                    let Some(f) = next else { break };
                    let (Some(uid), Some(body)) = (f.uid, f.body()) else {
                        continue;
                    };
                    if !batch.contains(&uid) {
                        continue;
                    }
                    stream_result.push(NewMessage {
                        uid,
                        flags: flags_of(&f),
                        raw: body.to_vec(),
                        internal_date: f.internal_date().map(|d| d.timestamp()).unwrap_or(0),
                    });
                }
            }
            drain(session);
            let max_uid = batch.iter().copied().max().unwrap_or(from);
            // The state after this batch: every UID up to max_uid is now
            // stored (or was expunged meanwhile), so a crash re-fetches only
            // what follows.
            let state = FolderState {
                uidvalidity,
                uidnext: max_uid.saturating_add(1),
                highestmodseq: modseq,
            };
            let ids = self
                .store
                .store_batch(&self.id, folder, stream_result, Some(state))
                .await
                .map_err(local)?;
            if !ids.is_empty() {
                for id in &ids {
                    let Ok(Some(r)) = self.store.record(id) else {
                        continue;
                    };
                    if seen_before.is_some_and(|seen| seen.contains(&r.hash)) {
                        continue;
                    }
                    total = total.saturating_add(1);
                    if samples.len() < 5 {
                        samples.push((r.meta.from.clone(), r.meta.subject.clone()));
                    }
                }
                self.reporter
                    .new_messages(&folder.display, ids.iter().map(|i| i.to_string()).collect());
                self.reporter.counts();
            }
        }
        let next = sizes
            .keys()
            .next_back()
            .map(|u| u.saturating_add(1))
            .unwrap_or(from)
            .max(from);
        Ok((total, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_compress_ranges() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[4]), "4");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn roles_from_names() {
        assert_eq!(role_from_name("INBOX/Sent Items", Some("/")), Some("sent"));
        assert_eq!(role_from_name("Corbeille", Some(".")), Some("trash"));
        assert_eq!(role_from_name("Work", Some("/")), None);
    }
}

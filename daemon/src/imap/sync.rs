//! # IMAP folder sync
//!
//! One pass over one folder: SELECT, a UIDVALIDITY check (a change drops
//! the folder's local copy and fetches it again, leaving nothing stale),
//! flag changes (CONDSTORE `CHANGEDSINCE` when offered, else a full UID and
//! FLAGS comparison), expunges (the server's UIDs, listed by a UID FETCH,
//! compared with the local UIDs; with QRESYNC, the `VANISHED (EARLIER)` and
//! FETCH responses of the SELECT itself, see [`qresync`]),
//! then the messages to fetch, streamed in UID batches bounded in count and
//! bytes: the new ones (from the folder's high-water mark on) and any the
//! server has below it that are not stored here (a fetch cut short before,
//! a damaged message file whose record the store dropped).
//!
//! The high-water mark (the stored UIDNEXT) only ever covers UIDs that are
//! stored or that the server no longer lists: a FETCH that ends early (BYE,
//! a closed connection) fails the pass, and one that leaves a UID out moves
//! the mark no further than that UID. Each batch is stored with the state
//! that covers it; nothing is announced before it is durable.
//!
//! Local changes not on the server yet (the journal's entries, read once
//! per folder pass as [`Pending`]) are not undone by a pass: a UID removed
//! here that the server still has is neither fetched back nor taken for
//! missing, and the server's flags of a UID with a local flag change
//! waiting are not applied (the journal replays the local change, and the
//! next pass settles on what the server has then).

use std::collections::{BTreeMap, BTreeSet, HashSet};

mod known;
mod qresync;

use tracing::{info, warn};

use super::command::{self, Fetched};
use super::session::{drain, ImapSession};
use super::Engine;
use crate::net::{Failure, FailureKind};
use crate::store::{Flags, FolderInfo, FolderState, NewMessage, Pending};

pub use super::folders::role_from_name;

/// Most messages fetched in one FETCH.
const BATCH_MESSAGES: usize = 250;
/// Most bytes (by RFC822.SIZE) fetched in one FETCH: memory stays bounded
/// by this, or by the one message that is larger.
const BATCH_BYTES: u64 = 4 * 1024 * 1024;

fn local(e: anyhow::Error) -> Failure {
    // Classifies a full disk as `DiskFull`, anything else as `Local`.
    Failure::from(e)
}

/// Flags and keywords per UID, as the server or the store has them.
pub(crate) type FlagSets = BTreeMap<u32, (Flags, Vec<String>)>;

impl Engine {
    /// Apply the server's flags where they differ from the stored ones,
    /// except for UIDs with a local flag change waiting in the journal
    /// (replayed on the server first; the next pass settles), and announce
    /// the messages that changed.
    pub(super) async fn apply_server_flags(
        &self,
        folder: &FolderInfo,
        server: FlagSets,
        stored: &FlagSets,
        pending: &Pending,
    ) -> Result<(), Failure> {
        let changes: Vec<(u32, Flags, Vec<String>)> = server
            .into_iter()
            .filter(|(uid, now)| {
                !pending.flags.contains(uid) && stored.get(uid).is_some_and(|old| old != now)
            })
            .map(|(uid, (flags, keywords))| (uid, flags, keywords))
            .collect();
        if changes.is_empty() {
            return Ok(());
        }
        let changed = self
            .store
            .set_flags(&self.id, folder, &changes, None)
            .await
            .map_err(local)?;
        self.reporter.changed(
            &folder.display,
            changed.iter().map(|i| i.to_string()).collect(),
        );
        self.reporter.counts();
        Ok(())
    }
}

/// Flag bits of the FLAGS a server sent.
pub(crate) fn flags_of(flags: &[String]) -> Flags {
    let mut bits = 0;
    for f in flags {
        bits |= match f.to_ascii_lowercase().as_str() {
            "\\seen" => Flags::SEEN,
            "\\answered" => Flags::ANSWERED,
            "\\flagged" => Flags::FLAGGED,
            "\\deleted" => Flags::DELETED,
            "\\draft" => Flags::DRAFT,
            _ => 0,
        };
    }
    Flags(bits)
}

/// The keywords (flags that are not system flags) among the FLAGS a
/// server sent, as it spells them.
pub fn keywords_of(flags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = flags
        .iter()
        .filter(|f| !f.starts_with('\\'))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
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

/// Where a folder pass stands before fetching.
struct Mark {
    uidvalidity: u32,
    /// The stored high-water mark (UIDNEXT).
    from: u32,
    modseq: u64,
    /// UIDNEXT from SELECT, if the server said.
    server_next: Option<u32>,
}

impl Engine {
    /// The stored sync state of a folder, looked up off the async workers.
    async fn folder_state(&self, name: &str) -> Result<Option<FolderState>, Failure> {
        let (id, name) = (self.id.clone(), name.to_owned());
        Ok(self
            .blocking(move |store| store.folder(&id, &name))
            .await?
            .and_then(|f| f.state))
    }

    /// One pass over one folder; returns the number of new messages and
    /// leaves the folder selected.
    pub(super) async fn sync_folder(
        &self,
        session: &mut ImapSession,
        folder: &FolderInfo,
        samples: &mut Vec<(String, String)>,
    ) -> Result<u32, Failure> {
        let (id, no) = (self.id.clone(), folder.no);
        let pending = self.blocking(move |store| store.pending(&id, no)).await?;
        let stored_state = self.folder_state(&folder.name).await?;
        let mut resync = None;
        if let Some(state) = stored_state.filter(|s| self.caps.qresync && s.highestmodseq > 0) {
            match self.select_qresync(session, folder, &state).await? {
                Ok(selected) => resync = Some(selected),
                Err(refusal) if !refusal.bad => {
                    warn!(
                        "Account {}: the server refused to open folder {:?} ({}); skipping it this time.",
                        self.id, folder.display, refusal.text
                    );
                    return Ok(0);
                }
                Err(refusal) => warn!(
                    "Account {}: the server did not take SELECT QRESYNC for {:?} ({}); \
                     comparing the folder instead.",
                    self.id, folder.display, refusal.text
                ),
            }
        }
        let (mailbox, mut resync) = match resync {
            Some(selected) => (selected.mailbox, Some(selected.resync)),
            None => match self.select_plain(session, folder).await? {
                Some(m) => (m, None),
                None => return Ok(0),
            },
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
        let mut known = stored_state;
        if let Some(state) = known {
            if state.uidvalidity != uidvalidity {
                // The server ignored the QRESYNC parameters: what it said
                // is about a folder we do not have.
                resync = None;
                info!(
                    "Account {}: UIDVALIDITY of {} changed ({} → {uidvalidity}); fetching it again.",
                    self.id, folder.display, state.uidvalidity
                );
                let (id, no) = (self.id.clone(), folder.no);
                seen_before = Some(self.blocking(move |store| store.hashes(&id, no)).await?);
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

        // UIDs the server has below the mark that are not stored here.
        let mut missing = Vec::new();
        // With QRESYNC, whether the count is checked against EXISTS after
        // the pass (the safety net: a full comparison when it differs).
        let mut check_count = false;
        if let Some(state) = known {
            if let Some(resync) = resync.take() {
                self.apply_resync(folder, resync, &pending).await?;
                check_count = true;
            } else if known_next > 1 {
                let state = FolderState {
                    uidnext: known_next,
                    ..state
                };
                missing = self
                    .sync_known(session, folder, state, (modseq, mailbox.exists), &pending)
                    .await?;
            }
        }
        if !missing.is_empty() {
            info!(
                "Account {}: {} message(s) of {} on the server are not stored here; fetching them.",
                self.id,
                missing.len(),
                folder.display
            );
        }

        let nothing_new = mailbox.exists == 0 || server_next.is_some_and(|n| n <= known_next);
        let (new, next) = if nothing_new && missing.is_empty() {
            (0, server_next.unwrap_or(known_next).max(known_next))
        } else {
            let mark = Mark {
                uidvalidity,
                from: known_next,
                modseq,
                server_next: server_next.filter(|_| !nothing_new),
            };
            self.fetch_new(
                session,
                folder,
                &mark,
                (&missing, &pending),
                seen_before.as_ref(),
                samples,
            )
            .await?
        };
        let (new, next) = if check_count
            && !self.resync_adds_up(
                folder,
                self.stored_count(folder).await?,
                &pending,
                mailbox.exists,
            ) {
            self.compare_after_resync(
                session,
                folder,
                (uidvalidity, modseq, next, mailbox.exists),
                &pending,
                (new, seen_before.as_ref(), samples),
            )
            .await?
        } else {
            (new, next)
        };
        if folder.name.eq_ignore_ascii_case("INBOX") {
            // What the server announced, even where the mark stays below it
            // (a UID it lists and never sends): STATUS before IDLE compares
            // with this, so such a UID is retried at the next pass rather
            // than in a loop.
            self.inbox_next.store(
                server_next.unwrap_or(next).max(next),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        let after = self.folder_state(&folder.name).await?;
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

    /// Fetch the messages from the mark on and the `missing` ones below it,
    /// in batches; returns how many were new and the high-water mark after
    /// the pass.
    async fn fetch_new(
        &self,
        session: &mut ImapSession,
        folder: &FolderInfo,
        mark: &Mark,
        (missing, pending): (&[u32], &Pending),
        seen_before: Option<&HashSet<String>>,
        samples: &mut Vec<(String, String)>,
    ) -> Result<(u32, u32), Failure> {
        let from = mark.from;
        // Sizes first (a few bytes per message), so bodies can be fetched in
        // batches whose memory is bounded.
        let mut set = uid_set(missing);
        if !set.is_empty() {
            set.push(',');
        }
        set.push_str(&format!("{from}:*"));
        let mut listed: BTreeMap<u32, u64> = BTreeMap::new();
        command::run(
            session,
            "UID FETCH RFC822.SIZE",
            &format!("UID FETCH {set} (UID RFC822.SIZE)"),
            |r| {
                if let Some(Fetched {
                    uid: Some(uid),
                    size,
                    ..
                }) = command::fetched(r)
                {
                    listed.insert(uid, u64::from(size.unwrap_or(0)));
                }
            },
        )
        .await?;
        // "n:*" also returns the last message when n is past it (RFC 3501
        // §6.4.8), so keep only UIDs really at or after `from`, or asked for.
        let missing_set: BTreeSet<u32> = missing.iter().copied().collect();
        listed.retain(|uid, _| *uid >= from || missing_set.contains(uid));
        // Removed here and still on the server until the journal's entry is
        // replayed: not fetched back.
        listed.retain(|uid, _| !pending.removed.contains(uid));
        // What is stored already is not fetched again (a mark held back by a
        // UID the server left out covers UIDs stored after it).
        let (id, no) = (self.id.clone(), folder.no);
        let mut stored: BTreeSet<u32> = self
            .blocking(move |store| store.uids(&id, no))
            .await?
            .into_keys()
            .collect();
        let mut batches: Vec<Vec<u32>> = Vec::new();
        let (mut current, mut bytes) = (Vec::new(), 0u64);
        let too_big: Vec<u32> = listed
            .iter()
            .filter(|(u, size)| **size > super::bounded::MAX_LITERAL && !stored.contains(u))
            .map(|(u, _)| *u)
            .collect();
        if !too_big.is_empty() {
            // The reader refuses such a literal (see `bounded`): asking for
            // it would fail every pass. It stays on the server, and the mark
            // stays below it.
            warn!(
                "Account {}: message(s) {} of {} are larger than the {} MiB facteur accepts; \
                 they stay on the server.",
                self.id,
                uid_set(&too_big),
                folder.display,
                super::bounded::MAX_LITERAL / (1024 * 1024)
            );
        }
        for (uid, size) in listed
            .iter()
            .filter(|(u, _)| !stored.contains(u) && !too_big.contains(u))
        {
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
        // The pass's Progress: found so far, as folders are examined.
        self.reporter
            .found(batches.iter().map(Vec::len).sum::<usize>() as u32);
        // The mark covers a UID once it is stored; UIDs the server did not
        // list are gone and may be passed over.
        let upper: Vec<u32> = listed.keys().copied().filter(|u| *u >= from).collect();
        let mark_after = |stored: &BTreeSet<u32>| match upper.iter().find(|u| !stored.contains(u)) {
            Some(first_missing) => *first_missing,
            None => upper
                .last()
                .map(|u| u.saturating_add(1))
                .unwrap_or(from)
                .max(from),
        };
        let mut total = 0u32;
        for batch in batches {
            let wanted: BTreeSet<u32> = batch.iter().copied().collect();
            let mut received: Vec<NewMessage> = Vec::with_capacity(batch.len());
            let answer = command::run(
                session,
                "UID FETCH",
                &format!(
                    "UID FETCH {} (UID FLAGS INTERNALDATE BODY.PEEK[])",
                    uid_set(&batch)
                ),
                |r| {
                    let Some(f) = command::fetched(r) else {
                        return;
                    };
                    let (Some(uid), Some(raw)) = (f.uid, f.body) else {
                        return;
                    };
                    if wanted.contains(&uid) && !received.iter().any(|m| m.uid == uid) {
                        received.push(NewMessage {
                            uid,
                            flags: flags_of(&f.flags),
                            keywords: keywords_of(&f.flags),
                            raw,
                            internal_date: f.internal_date.unwrap_or(0),
                        });
                    }
                },
            )
            .await;
            if received.len() < batch.len() && answer.is_ok() {
                let got: BTreeSet<u32> = received.iter().map(|m| m.uid).collect();
                let left_out: Vec<u32> =
                    batch.iter().copied().filter(|u| !got.contains(u)).collect();
                warn!(
                    "Account {}: the server listed but did not send message(s) {} of {}; \
                     they will be asked for again at the next pass.",
                    self.id,
                    uid_set(&left_out),
                    folder.display
                );
            }
            stored.extend(received.iter().map(|m| m.uid));
            let arrived = received.len() as u32;
            // The state after this batch: every UID below the mark is now
            // stored (or gone from the server), so a crash re-fetches only
            // what follows.
            let state = FolderState {
                uidvalidity: mark.uidvalidity,
                uidnext: mark_after(&stored),
                highestmodseq: mark.modseq,
            };
            let ids = self
                .store
                .store_batch(&self.id, folder, received, Some(state))
                .await
                .map_err(local)?;
            self.reporter.stored(arrived);
            if !ids.is_empty() {
                let wanted = ids.clone();
                let records = self
                    .blocking(move |store| Ok(store.records(&wanted)))
                    .await?;
                for r in records {
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
            // A FETCH cut short fails the pass, but what did arrive is
            // stored first (above), so a flaky server still lets each try
            // get further.
            answer?;
        }
        let mut next = mark_after(&stored);
        // Everything listed is stored: what SELECT announced is covered too
        // (UIDs below it that were not listed are gone).
        if upper.iter().all(|u| stored.contains(u)) {
            if let Some(n) = mark.server_next {
                next = next.max(n);
            }
        }
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
    fn flags_from_names() {
        let f = flags_of(&[
            "\\Seen".to_owned(),
            "\\FLAGGED".to_owned(),
            "$Junk".to_owned(),
        ]);
        assert!(f.has(Flags::SEEN) && f.has(Flags::FLAGGED) && !f.has(Flags::DRAFT));
    }
}

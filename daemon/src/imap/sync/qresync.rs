//! # QRESYNC (RFC 7162 §3.2)
//!
//! A folder with stored state (UIDVALIDITY, HIGHESTMODSEQ > 0) on a server
//! that enabled QRESYNC (see `session::connect`) is opened with
//! `SELECT "name" (QRESYNC (uidvalidity modseq))`: the server answers with
//! the folder's state, `VANISHED (EARLIER)` for the UIDs expunged since
//! that HIGHESTMODSEQ and a FETCH (UID, FLAGS) for every message whose
//! flags changed since. That is the whole resync of what is already stored:
//! an unchanged folder costs one SELECT, with no `UID FETCH 1:n (UID)`
//! listing of the whole folder.
//!
//! The answer is read through [`command::run_answer`] (async-imap has no
//! QRESYNC SELECT, and would take a FETCH cut short by a BYE for a complete
//! answer). Responses before `* OK [CLOSED]` belong to the folder selected
//! before (§3.2.5.1) and are left out. A UIDVALIDITY other than the stored
//! one means the server ignored the QRESYNC parameters: the caller fetches
//! the folder again, as without QRESYNC.
//!
//! What the pass applies is bounded as today's comparison is: the stored
//! UIDs and flags of the folder, and the server's flag changes.

use std::collections::{BTreeMap, HashSet};
use std::ops::RangeInclusive;

use imap_proto::{AttributeValue, MailboxDatum, Response, ResponseCode, Status};
use tracing::{debug, warn};

use super::{flags_of, keywords_of, Mark};
use crate::imap::command::{self, Refusal};
use crate::imap::session::{imap_failure, step_within, ImapSession};
use crate::imap::Engine;
use crate::net::{self, Failure};
use crate::store::{Flags, FolderInfo, FolderState, Pending};

/// The (from, subject) of new mail, for the notification.
type Samples = Vec<(String, String)>;

/// What a QRESYNC SELECT said beyond the folder's state.
#[derive(Debug, Default)]
pub(super) struct Resync {
    /// UIDs expunged since the stored HIGHESTMODSEQ (`VANISHED (EARLIER)`).
    pub vanished: Vec<RangeInclusive<u32>>,
    /// Flags and keywords of the messages changed since, by UID.
    pub changed: BTreeMap<u32, (Flags, Vec<String>)>,
}

/// The answer to a QRESYNC SELECT.
pub(super) struct Selected {
    /// UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and EXISTS, as in async-imap's
    /// own SELECT.
    pub mailbox: async_imap::types::Mailbox,
    /// Expunges and flag changes since the stored state.
    pub resync: Resync,
}

/// The QRESYNC SELECT command for a folder with `state`.
pub(super) fn select_command(name: &str, state: &FolderState) -> Result<String, Failure> {
    Ok(format!(
        "SELECT {} (QRESYNC ({} {}))",
        command::quoted(name)?,
        state.uidvalidity,
        state.highestmodseq
    ))
}

/// Take one untagged response of a QRESYNC SELECT into `into`.
fn take(into: &mut Selected, r: &Response<'_>) {
    match r {
        Response::Data {
            status: Status::Ok,
            outcome,
        } => match &outcome.code {
            Some(ResponseCode::UidValidity(v)) => into.mailbox.uid_validity = Some(*v),
            Some(ResponseCode::UidNext(n)) => into.mailbox.uid_next = Some(*n),
            Some(ResponseCode::HighestModSeq(m)) => into.mailbox.highest_modseq = Some(*m),
            Some(ResponseCode::Unseen(n)) => into.mailbox.unseen = Some(*n),
            None if outcome
                .information
                .as_deref()
                .is_some_and(|t| t.trim_start().starts_with("[CLOSED]")) =>
            {
                // What came before is about the folder selected before.
                *into = Selected {
                    mailbox: Default::default(),
                    resync: Resync::default(),
                };
            }
            _ => {}
        },
        Response::MailboxData(MailboxDatum::Exists(n)) => into.mailbox.exists = *n,
        Response::MailboxData(MailboxDatum::Recent(n)) => into.mailbox.recent = *n,
        Response::Vanished { uids, .. } => {
            into.resync.vanished.extend(uids.iter().map(normalised));
        }
        Response::Fetch(_, attrs) => {
            let has_flags = attrs.iter().any(|a| matches!(a, AttributeValue::Flags(_)));
            if let (true, Some(f)) = (has_flags, command::fetched(r)) {
                if let Some(uid) = f.uid {
                    into.resync
                        .changed
                        .insert(uid, (flags_of(&f.flags), keywords_of(&f.flags)));
                }
            }
        }
        _ => {}
    }
}

/// A server's range as `min..=max`: `9:3` is legal (RFC 3501 §9) and
/// means the same as `3:9`, but `BTreeMap::range(9..=3)` panics.
pub(super) fn normalised(r: &RangeInclusive<u32>) -> RangeInclusive<u32> {
    let (a, b) = (*r.start(), *r.end());
    a.min(b)..=a.max(b)
}

/// The stored UIDs (keys of `local`) inside the `vanished` ranges.
pub(super) fn vanished_of<V>(
    local: &BTreeMap<u32, V>,
    vanished: &[RangeInclusive<u32>],
) -> Vec<u32> {
    let mut out: Vec<u32> = vanished
        .iter()
        .flat_map(|r| local.range(normalised(r)).map(|(u, _)| *u))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

impl Engine {
    /// SELECT `folder` with QRESYNC from its stored `state`. A tagged NO is
    /// handed back (the caller skips the folder, as for a plain SELECT); a
    /// BAD (a server that announced QRESYNC and does not take it here) too,
    /// and the caller opens the folder the CONDSTORE way.
    pub(super) async fn select_qresync(
        &self,
        session: &mut ImapSession,
        folder: &FolderInfo,
        state: &FolderState,
    ) -> Result<Result<Selected, Refusal>, Failure> {
        let cmd = select_command(&folder.name, state)?;
        debug!("Account {}: {cmd}", self.id);
        let mut selected = Selected {
            mailbox: Default::default(),
            resync: Resync::default(),
        };
        let answer =
            command::run_answer(session, "SELECT", &cmd, |r| take(&mut selected, r)).await?;
        Ok(answer.map(|_| selected))
    }

    /// Apply what a QRESYNC SELECT said: the vanished UIDs removed here
    /// (announced), the changed flags applied where no local change waits
    /// (announced). Returns how many messages of the folder are stored after
    /// it, for the caller's check against EXISTS.
    pub(super) async fn apply_resync(
        &self,
        folder: &FolderInfo,
        resync: Resync,
        pending: &Pending,
    ) -> Result<usize, Failure> {
        let (id, no) = (self.id.clone(), folder.no);
        let mut local = self.blocking(move |store| store.flag_sets(&id, no)).await?;
        let gone = vanished_of(&local, &resync.vanished);
        if !gone.is_empty() {
            debug!(
                "Account {}: {} message(s) of {} vanished on the server.",
                self.id,
                gone.len(),
                folder.display
            );
            let removed = self
                .store
                .remove_uids(&self.id, folder.no, &gone)
                .await
                .map_err(Failure::from)?;
            self.reporter.removed(
                &folder.display,
                removed.iter().map(|i| i.to_string()).collect(),
            );
            self.reporter.counts();
            for u in &gone {
                local.remove(u);
            }
        }
        let held = resync
            .changed
            .keys()
            .filter(|u| pending.flags.contains(u) && local.contains_key(u))
            .count();
        if held > 0 {
            // The journal applies the local change on the server; the next
            // pass settles on what the server has then.
            debug!(
                "Account {}: {held} flag change(s) of {} from the server wait for local ones.",
                self.id, folder.display
            );
        }
        self.apply_server_flags(folder, resync.changed, &local, pending)
            .await?;
        Ok(local.len())
    }

    /// SELECT without QRESYNC (with CONDSTORE when offered), through
    /// async-imap. `None` when the server refused to open the folder (a NO:
    /// gone since LIST, or not for us): the other folders are still synced.
    pub(super) async fn select_plain(
        &self,
        session: &mut ImapSession,
        folder: &FolderInfo,
    ) -> Result<Option<async_imap::types::Mailbox>, Failure> {
        let selected = step_within(net::COMMAND_TIMEOUT, "SELECT", async {
            let r = if self.caps.condstore {
                session.select_condstore(&folder.name).await
            } else {
                session.select(&folder.name).await
            };
            Ok(r)
        })
        .await?;
        match selected {
            Ok(m) => Ok(Some(m)),
            Err(async_imap::error::Error::No(why)) => {
                warn!(
                    "Account {}: the server refused to open folder {:?} ({why}); skipping it this time.",
                    self.id, folder.display
                );
                Ok(None)
            }
            Err(e) => Err(imap_failure("SELECT", e)),
        }
    }

    /// The safety net after a QRESYNC resync that does not add up: today's
    /// full comparison (UID listing; the flags are already the server's),
    /// then the messages it finds missing. Returns the new count and mark.
    pub(super) async fn compare_after_resync(
        &self,
        session: &mut ImapSession,
        folder: &FolderInfo,
        (uidvalidity, modseq, next, exists): (u32, u64, u32, u32),
        pending: &Pending,
        (new, seen_before, samples): (u32, Option<&HashSet<String>>, &mut Samples),
    ) -> Result<(u32, u32), Failure> {
        let state = FolderState {
            uidvalidity,
            uidnext: next,
            highestmodseq: modseq,
        };
        let missing = self
            .sync_known(session, folder, state, (modseq, exists), pending)
            .await?;
        if missing.is_empty() {
            return Ok((new, next));
        }
        let mark = Mark {
            uidvalidity,
            from: next,
            modseq,
            server_next: None,
        };
        let (more, after) = self
            .fetch_new(
                session,
                folder,
                &mark,
                (&missing, pending),
                seen_before,
                samples,
            )
            .await?;
        Ok((new.saturating_add(more), after.max(next)))
    }

    /// How many messages of a folder are stored (placeholders left out).
    pub(super) async fn stored_count(&self, folder: &FolderInfo) -> Result<usize, Failure> {
        let (id, no) = (self.id.clone(), folder.no);
        Ok(self.blocking(move |store| store.uids(&id, no)).await?.len())
    }

    /// Whether a QRESYNC resync left the folder as the server has it:
    /// `stored` messages here plus the local removals the server still has
    /// make its EXISTS. When not, the caller compares the whole folder.
    pub(super) fn resync_adds_up(
        &self,
        folder: &FolderInfo,
        stored: usize,
        pending: &Pending,
        exists: u32,
    ) -> bool {
        let expected = stored.saturating_add(pending.removed.len());
        let ok = expected == exists as usize;
        if !ok {
            warn!(
                "Account {}: after the QRESYNC resync {} holds {stored} message(s) (and {} \
                 removed here) but the server has {exists}; comparing the whole folder.",
                self.id,
                folder.display,
                pending.removed.len()
            );
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &[u8]) -> Response<'_> {
        match Response::parse(line) {
            Ok((_, r)) => r,
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn a_qresync_select_answer_is_collected() {
        let mut s = Selected {
            mailbox: Default::default(),
            resync: Resync::default(),
        };
        for line in [
            &b"* 3 EXISTS\r\n"[..],
            b"* VANISHED 99\r\n",
            b"* OK [CLOSED] Previous mailbox closed\r\n",
            b"* 12 EXISTS\r\n",
            b"* OK [UIDVALIDITY 1700] Ok\r\n",
            b"* OK [UIDNEXT 40] Predicted next UID\r\n",
            b"* OK [HIGHESTMODSEQ 77] Highest\r\n",
            b"* VANISHED (EARLIER) 3:5,9\r\n",
            b"* 2 FETCH (UID 7 FLAGS (\\Seen $Junk) MODSEQ (70))\r\n",
            b"* 3 FETCH (UID 8 MODSEQ (71))\r\n",
        ] {
            take(&mut s, &parse(line));
        }
        assert_eq!(s.mailbox.exists, 12);
        assert_eq!(s.mailbox.uid_validity, Some(1700));
        assert_eq!(s.mailbox.uid_next, Some(40));
        assert_eq!(s.mailbox.highest_modseq, Some(77));
        assert_eq!(s.resync.vanished, vec![3..=5, 9..=9]);
        let (flags, keywords) = &s.resync.changed[&7];
        assert!(flags.has(Flags::SEEN));
        assert_eq!(keywords, &vec!["$Junk".to_owned()]);
        assert!(!s.resync.changed.contains_key(&8));
    }

    #[test]
    fn vanished_ranges_meet_stored_uids_only() {
        let local: BTreeMap<u32, ()> = [1, 4, 5, 10, 20].into_iter().map(|u| (u, ())).collect();
        assert_eq!(
            vanished_of(&local, &[3..=5, 9..=u32::MAX, 4..=4]),
            vec![4, 5, 10, 20]
        );
        assert!(vanished_of(&local, &[]).is_empty());
    }

    #[test]
    fn a_descending_vanished_range_does_not_panic() {
        let mut s = Selected {
            mailbox: Default::default(),
            resync: Resync::default(),
        };
        take(&mut s, &parse(b"* VANISHED (EARLIER) 9:3,20\r\n"));
        assert_eq!(s.resync.vanished, vec![3..=9, 20..=20]);
        let local: BTreeMap<u32, ()> = [1, 4, 9, 10].into_iter().map(|u| (u, ())).collect();
        // Even a range that reached vanished_of unnormalised is taken.
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 9..=3;
        assert_eq!(vanished_of(&local, &[reversed]), vec![4, 9]);
    }

    #[test]
    fn the_command_names_the_stored_state() {
        let state = FolderState {
            uidvalidity: 17,
            uidnext: 5,
            highestmodseq: 99,
        };
        assert_eq!(
            select_command("Work \"x\"", &state).ok(),
            Some("SELECT \"Work \\\"x\\\"\" (QRESYNC (17 99))".to_owned())
        );
    }
}

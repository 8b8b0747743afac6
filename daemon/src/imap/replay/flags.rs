//! # Flag changes on the server
//!
//! Consecutive flag entries of one folder that add and remove the same
//! flags are one batch: one `UID STORE set +FLAGS.SILENT (…)` and one
//! `-FLAGS.SILENT (…)` for all of them (1,000 flag changes are a few round
//! trips, not 1,000). With CONDSTORE the first store carries `UNCHANGEDSINCE`
//! (the folder's HIGHESTMODSEQ when the change was made); the UIDs the
//! server reports `[MODIFIED …]` were changed on the server meanwhile:
//! their flags are fetched and merged per flag (a flag whose server value
//! still equals its value before the local change takes the local change;
//! a flag the server changed keeps the server's value), and what is left
//! is stored without the condition. A last `UID FETCH (FLAGS)` tells the
//! flags each message has now (settled with them) and which UIDs the
//! server no longer has (dropped: expunged there).

use std::collections::{BTreeMap, BTreeSet};

use tracing::info;

use super::super::session::ImapSession;
use super::super::sync::uid_set;
use super::super::{command, Engine};
use super::{wire, Opened, Run};
use crate::net::{Failure, FailureKind};
use crate::store::{Change, Entry, Flag, Outcome};

/// The leading entries of `entries` that go in one batch with the first
/// (a flag change).
pub(super) fn batch(entries: &[Entry]) -> &[Entry] {
    let key = |e: &Entry| match &e.change {
        Change::Flags {
            folder,
            uidvalidity,
            add,
            remove,
            modseq,
            ..
        } => Some((*folder, *uidvalidity, add.clone(), remove.clone(), *modseq)),
        _ => None,
    };
    super::leading(entries, key)
}

/// A flag as IMAP spells it; `None` for a keyword that is not an atom
/// (nothing else may go on the command line).
pub(super) fn atom(flag: &Flag) -> Option<String> {
    Some(match flag {
        Flag::Seen => "\\Seen".to_owned(),
        Flag::Answered => "\\Answered".to_owned(),
        Flag::Flagged => "\\Flagged".to_owned(),
        Flag::Deleted => "\\Deleted".to_owned(),
        Flag::Draft => "\\Draft".to_owned(),
        Flag::Keyword(k) => {
            let ok = !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b));
            if !ok {
                return None;
            }
            k.clone()
        }
    })
}

/// The flags as a space-separated list of atoms.
pub(super) fn atoms(flags: &[Flag]) -> Option<String> {
    let list: Option<Vec<String>> = flags.iter().map(atom).collect();
    list.map(|l| l.join(" "))
}

/// The FLAGS a server sent, as contract flags (`\Recent` and other
/// unknown system flags left out).
pub(super) fn parse(server: &[String]) -> Vec<Flag> {
    let mut out = Vec::new();
    for f in server {
        let flag = match f.to_ascii_lowercase().as_str() {
            "\\seen" => Flag::Seen,
            "\\answered" => Flag::Answered,
            "\\flagged" => Flag::Flagged,
            "\\deleted" => Flag::Deleted,
            "\\draft" => Flag::Draft,
            _ if f.starts_with('\\') => continue,
            _ => Flag::Keyword(f.clone()),
        };
        if !has(&out, &flag) {
            out.push(flag);
        }
    }
    out
}

/// Whether `set` holds `flag` (keywords compared without case, as IMAP
/// does).
pub(super) fn has(set: &[Flag], flag: &Flag) -> bool {
    set.iter().any(|f| match (f, flag) {
        (Flag::Keyword(a), Flag::Keyword(b)) => a.eq_ignore_ascii_case(b),
        (a, b) => a == b,
    })
}

/// What is left to store for one change after the server changed the
/// message meanwhile: (add, remove). A flag takes the local change only
/// where the server's value still equals the value before it.
pub(super) fn merge(
    add: &[Flag],
    remove: &[Flag],
    before: &[Flag],
    server: &[Flag],
) -> (Vec<Flag>, Vec<Flag>) {
    let untouched = |f: &Flag| has(server, f) == has(before, f);
    let add = add
        .iter()
        .filter(|f| untouched(f) && !has(server, f))
        .cloned()
        .collect();
    let remove = remove
        .iter()
        .filter(|f| untouched(f) && has(server, f))
        .cloned()
        .collect();
    (add, remove)
}

impl Engine {
    /// Apply one batch of flag changes (see [`batch`]).
    pub(super) async fn replay_flags(
        &self,
        session: &mut ImapSession,
        run: &mut Run,
        batch: &[Entry],
    ) -> Result<Vec<(u64, Outcome)>, Failure> {
        let Change::Flags {
            folder,
            uidvalidity,
            add,
            remove,
            modseq,
            ..
        } = &batch[0].change
        else {
            return Ok(Vec::new());
        };
        let drop_all = |why: &str| {
            batch
                .iter()
                .map(|e| (e.seq, Outcome::Dropped(why.to_owned())))
                .collect()
        };
        let (Some(add_atoms), Some(remove_atoms)) = (atoms(add), atoms(remove)) else {
            return Ok(drop_all("a flag name cannot be sent to the server"));
        };
        match self.open(session, run, *folder).await? {
            Opened::Gone(why) => return Ok(drop_all(&why)),
            Opened::Selected(v) if v != *uidvalidity => {
                return Ok(drop_all(
                    "the folder was reset on the server (UIDVALIDITY changed)",
                ))
            }
            Opened::Selected(_) => {}
        }
        let uids: Vec<u32> = batch
            .iter()
            .filter_map(|e| match &e.change {
                Change::Flags { uid, .. } => Some(*uid),
                _ => None,
            })
            .collect::<BTreeSet<u32>>()
            .into_iter()
            .collect();
        let conditional = self.caps.condstore && *modseq > 0;
        // UIDs the server changed since the local change was made.
        let mut conflicted: BTreeSet<u32> = BTreeSet::new();
        let mut first = true;
        for (sign, list) in [('+', &add_atoms), ('-', &remove_atoms)] {
            if list.is_empty() {
                continue;
            }
            let targets: Vec<u32> = uids
                .iter()
                .copied()
                .filter(|u| !conflicted.contains(u))
                .collect();
            if targets.is_empty() {
                continue;
            }
            let unchanged = if conditional && first {
                format!(" (UNCHANGEDSINCE {modseq})")
            } else {
                String::new()
            };
            let answer = wire::run(
                session,
                "UID STORE",
                &format!(
                    "UID STORE {}{unchanged} {sign}FLAGS.SILENT ({list})",
                    uid_set(&targets)
                ),
                |_| {},
            )
            .await?;
            if conditional && first {
                conflicted.extend(
                    wire::modified(&answer.text)
                        .into_iter()
                        .filter(|u| uids.binary_search(u).is_ok()),
                );
            }
            first = false;
        }
        if !conflicted.is_empty() {
            info!(
                "Account {}: {} message(s) changed on the server since the local flag change; \
                 merging per flag.",
                self.id,
                conflicted.len()
            );
            self.merge_conflicts(session, batch, &conflicted).await?;
        }
        // The flags now on the server, and which UIDs it still has.
        let now = fetch_flags(session, &uids).await?;
        Ok(batch
            .iter()
            .filter_map(|e| match &e.change {
                Change::Flags { uid, .. } => Some((e.seq, *uid)),
                _ => None,
            })
            .map(|(seq, uid)| match now.get(&uid) {
                Some(flags) => (
                    seq,
                    Outcome::Applied {
                        flags: Some(flags.clone()),
                    },
                ),
                None => (
                    seq,
                    Outcome::Dropped(format!(
                        "message {uid} was expunged on the server; its flag change is lost"
                    )),
                ),
            })
            .collect())
    }

    /// The per-flag merge for the UIDs the server changed meanwhile.
    async fn merge_conflicts(
        &self,
        session: &mut ImapSession,
        batch: &[Entry],
        conflicted: &BTreeSet<u32>,
    ) -> Result<(), Failure> {
        let list: Vec<u32> = conflicted.iter().copied().collect();
        let server = fetch_flags(session, &list).await?;
        for e in batch {
            let Change::Flags {
                uid,
                add,
                remove,
                before,
                ..
            } = &e.change
            else {
                continue;
            };
            if !conflicted.contains(uid) {
                continue;
            }
            // Expunged meanwhile: the last FETCH drops it.
            let Some(now) = server.get(uid) else { continue };
            let (add, remove) = merge(add, remove, before, now);
            for (sign, flags) in [('+', add), ('-', remove)] {
                if flags.is_empty() {
                    continue;
                }
                let list = atoms(&flags).ok_or_else(|| {
                    Failure::new(FailureKind::Protocol, "A flag name cannot be sent")
                })?;
                wire::run(
                    session,
                    "UID STORE",
                    &format!("UID STORE {uid} {sign}FLAGS.SILENT ({list})"),
                    |_| {},
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// `UID FETCH set (UID FLAGS)`: the flags of the UIDs the server has.
async fn fetch_flags(
    session: &mut ImapSession,
    uids: &[u32],
) -> Result<BTreeMap<u32, Vec<Flag>>, Failure> {
    let mut out = BTreeMap::new();
    if uids.is_empty() {
        return Ok(out);
    }
    wire::run(
        session,
        "UID FETCH FLAGS",
        &format!("UID FETCH {} (UID FLAGS)", uid_set(uids)),
        |r| {
            if let Some(command::Fetched {
                uid: Some(uid),
                flags,
                ..
            }) = command::fetched(r)
            {
                out.insert(uid, parse(&flags));
            }
        },
    )
    .await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(k: &str) -> Flag {
        Flag::Keyword(k.to_owned())
    }

    #[test]
    fn a_flag_the_server_changed_keeps_the_server_value() {
        // Locally: +seen +flagged, before: nothing. The server set
        // flagged itself meanwhile and removed nothing: only seen is left.
        let (add, remove) = merge(&[Flag::Seen, Flag::Flagged], &[], &[], &[Flag::Flagged]);
        assert_eq!(add, vec![Flag::Seen]);
        assert!(remove.is_empty());
        // Locally: -seen, before: seen. The server changed another flag
        // (flagged), not seen: the local removal still applies.
        let (add, remove) = merge(
            &[],
            &[Flag::Seen],
            &[Flag::Seen],
            &[Flag::Seen, Flag::Flagged],
        );
        assert!(add.is_empty());
        assert_eq!(remove, vec![Flag::Seen]);
        // Locally: +$Junk, before: nothing; the server has $junk now
        // (another client): nothing left to do.
        let (add, _) = merge(&[kw("$Junk")], &[], &[], &[kw("$junk")]);
        assert!(add.is_empty());
    }

    #[test]
    fn only_atoms_go_on_the_command_line() {
        assert_eq!(
            atoms(&[Flag::Seen, kw("$Junk"), kw("work")]).as_deref(),
            Some("\\Seen $Junk work")
        );
        assert_eq!(atoms(&[kw("two words")]), None);
        assert_eq!(atoms(&[kw("x)")]), None);
        assert_eq!(atoms(&[kw("a\r\nb")]), None);
        assert_eq!(atoms(&[kw("")]), None);
    }

    #[test]
    fn server_flags_are_read_without_recent() {
        let got = parse(&[
            "\\Seen".into(),
            "\\Recent".into(),
            "$Junk".into(),
            "\\FLAGGED".into(),
        ]);
        assert_eq!(got, vec![Flag::Seen, kw("$Junk"), Flag::Flagged]);
    }

    #[test]
    fn batches_stop_where_the_change_differs() {
        let flags = |seq, uid, folder, add: Vec<Flag>| Entry {
            seq,
            change: Change::Flags {
                folder,
                uidvalidity: 1,
                uid,
                add,
                remove: vec![],
                before: vec![],
                modseq: 0,
            },
        };
        let entries = vec![
            flags(1, 10, 1, vec![Flag::Seen]),
            flags(2, 11, 1, vec![Flag::Seen]),
            flags(3, 12, 2, vec![Flag::Seen]),
            flags(4, 13, 2, vec![Flag::Flagged]),
        ];
        assert_eq!(batch(&entries).len(), 2);
        assert_eq!(batch(&entries[2..]).len(), 1);
        assert_eq!(batch(&entries[3..]).len(), 1);
    }
}

//! # Settling journal entries
//!
//! The engine replays an entry, then settles it with what the server said
//! ([`Outcome`]): the entry goes and the local side follows, in one
//! transaction, flushed before [`Store::settle`] returns.
//!
//! - Flags, `Applied { flags }`: with the server's flags, the record takes
//!   them.
//! - Move or Append, `Landed { uidvalidity, uid }`: the placeholder becomes
//!   the server's message under (uidvalidity, uid), with the placeholder's
//!   flags; flags changed on the placeholder since the move are journaled
//!   for the real UID (the server's copy has those of the move). Without a
//!   UID the placeholder only goes (the target's next pass fetches the
//!   message, with the server's flags: flags set on the placeholder are
//!   then lost). An Append's source `MovedOut` entry becomes an `Expunge`.
//! - Move or Append, `Dropped`: the placeholder goes, and a moved message is
//!   put back where it was (an Append's source `MovedOut` entry goes too);
//!   when it cannot go back, the placeholder stays (never a lost file).
//! - Flags, `Dropped`: the change is undone on the record (flags it added
//!   and the message did not have go, flags it removed come back).
//! - Anything else: the entry goes (`Dropped` is logged).
//!
//! A sequence that is not in the journal any more settles to nothing.

use std::collections::HashMap;

use anyhow::Result;
use tracing::warn;

use super::journal::{Change, Effects, Outcome};
use super::manifest::Line;
use super::messages::{from_json, to_json, FolderInfo, MessageId, Record};
use super::placeholder::{
    apply_flags, flag_list, flags_missing, from_flag_list, journal_key, Held, Tx, TxResult,
};
use super::Store;

/// Lines for manifests, by account, written after the commit.
type Lines = Vec<(String, Vec<Line>, bool)>;

fn id_of(account: &str, folder: u64, r: &Record) -> MessageId {
    MessageId {
        account: account.to_owned(),
        folder,
        uidvalidity: r.uidvalidity,
        uid: r.uid,
    }
}

impl Store {
    /// [`Store::settle`] off the async workers: (what changed, message
    /// files that lost their last reference).
    pub(super) fn settle_blocking(
        &self,
        account: &str,
        seq: u64,
        outcome: &Outcome,
    ) -> Result<(Effects, Vec<String>)> {
        let key = journal_key(account, seq);
        let Some(v) = self.handle()?.trees.journal.get(&key)? else {
            return Ok((Effects::default(), Vec::new()));
        };
        let change: Change = from_json(&v)?;
        // The folders the settling may need, read before the transaction.
        let mut folders: HashMap<(String, u64), FolderInfo> = HashMap::new();
        let mut accounts = vec![account.to_owned()];
        if let Change::Move {
            to, placeholder, ..
        }
        | Change::Append {
            to, placeholder, ..
        } = &change
        {
            let held = self
                .handle()?
                .trees
                .placeholders
                .get(super::messages::msg_key(account, *to, *placeholder))?;
            if let Some(h) = held.and_then(|h| from_json::<Held>(&h).ok()) {
                if let Some(o) = h.origin {
                    accounts.push(o.account);
                }
            }
        }
        for a in &accounts {
            for f in self.folders(a)? {
                folders.insert((a.clone(), f.no), f);
            }
        }
        if let Outcome::Dropped(reason) = outcome {
            warn!("Account {account}: a local change could not be applied on the server and is dropped ({reason}): {change:?}");
        }
        let (effects, orphans, lines) = self.transact(|tx| {
            let mut effects = Effects::default();
            let mut orphans = Vec::new();
            let mut lines: Lines = Vec::new();
            let Some(v) = tx.journal.remove(key.as_slice())? else {
                return Ok((effects, orphans, lines));
            };
            let change: Change = from_json(&v).map_err(super::messages::abort)?;
            match (&change, outcome) {
                (
                    Change::Flags {
                        folder,
                        uidvalidity,
                        uid,
                        add,
                        remove,
                        before,
                        ..
                    },
                    Outcome::Applied { flags: Some(list) },
                ) => {
                    if let Some(mut r) = tx.record(account, *folder, *uid)? {
                        // The record as this change left it; anything else is
                        // a newer local change (its entry still waits in the
                        // journal), which the server's flags must not undo.
                        let (bf, bk) = from_flag_list(before);
                        let made = apply_flags(bf, &bk, add, remove);
                        let newer = (r.flags, &r.keywords) != (made.0, &made.1);
                        let (f, k) = from_flag_list(list);
                        if !newer
                            && r.uidvalidity == *uidvalidity
                            && (r.flags != f || r.keywords != k)
                        {
                            r.flags = f;
                            r.keywords = k;
                            tx.update(account, *folder, &r)?;
                            effects.changed.push(id_of(account, *folder, &r));
                        }
                    }
                }
                (
                    Change::Move {
                        to, placeholder, ..
                    }
                    | Change::Append {
                        to, placeholder, ..
                    },
                    Outcome::Landed { .. } | Outcome::Applied { .. },
                ) => {
                    let (uidvalidity, uid) = match outcome {
                        Outcome::Landed { uidvalidity, uid } => (*uidvalidity, *uid),
                        _ => (0, None),
                    };
                    land(
                        tx,
                        account,
                        &folders,
                        (*to, *placeholder),
                        (uidvalidity, uid),
                        (&mut effects, &mut orphans, &mut lines),
                    )?;
                    if let Change::Append {
                        source: Some(src), ..
                    } = &change
                    {
                        let skey = journal_key(&src.account, src.seq);
                        if let Some(v) = tx.journal.get(&skey)? {
                            if let Ok(Change::MovedOut {
                                folder,
                                uidvalidity,
                                uid,
                            }) = from_json::<Change>(&v)
                            {
                                let expunge = Change::Expunge {
                                    folder,
                                    uidvalidity,
                                    uid,
                                };
                                tx.journal.insert(
                                    skey,
                                    to_json(&expunge).map_err(super::messages::abort)?,
                                )?;
                            }
                        }
                    }
                }
                (
                    Change::Move {
                        to, placeholder, ..
                    }
                    | Change::Append {
                        to, placeholder, ..
                    },
                    Outcome::Dropped(_),
                ) => {
                    unplace(
                        tx,
                        account,
                        (*to, *placeholder),
                        &folders,
                        (&mut effects, &mut orphans, &mut lines),
                    )?;
                    if let Change::Append {
                        source: Some(src), ..
                    } = &change
                    {
                        tx.journal.remove(journal_key(&src.account, src.seq))?;
                    }
                }
                (
                    Change::Flags {
                        folder,
                        uidvalidity,
                        uid,
                        add,
                        remove,
                        before,
                        ..
                    },
                    Outcome::Dropped(_),
                ) => {
                    // The server did not take the change: the record goes
                    // back to the flags it had before it (a pass will not
                    // fetch the server's again: HIGHESTMODSEQ is past them).
                    if let Some(mut r) = tx.record(account, *folder, *uid)? {
                        if r.uidvalidity == *uidvalidity {
                            let undo_add = flags_missing(add, before);
                            let readd: Vec<_> = remove
                                .iter()
                                .filter(|f| flags_missing(&[(*f).clone()], before).is_empty())
                                .cloned()
                                .collect();
                            let (f, k) = apply_flags(r.flags, &r.keywords, &readd, &undo_add);
                            if r.flags != f || r.keywords != k {
                                r.flags = f;
                                r.keywords = k;
                                tx.update(account, *folder, &r)?;
                                effects.changed.push(id_of(account, *folder, &r));
                            }
                        }
                    }
                }
                _ => {}
            }
            Ok((effects, orphans, lines))
        })?;
        for (a, l, sync) in lines {
            self.manifest_append(&a, &l, sync)
                .map_err(|e| self.failed(e))?;
        }
        Ok((effects, orphans))
    }
}

type Out<'a> = (&'a mut Effects, &'a mut Vec<String>, &'a mut Lines);

/// A placeholder lands as the server's (uidvalidity, uid).
fn land(
    tx: &Tx<'_>,
    account: &str,
    folders: &HashMap<(String, u64), FolderInfo>,
    (to, placeholder): (u64, u32),
    (uidvalidity, uid): (u32, Option<u32>),
    (effects, orphans, lines): Out<'_>,
) -> TxResult<()> {
    let Some(ph) = tx.record(account, to, placeholder)? else {
        return Ok(());
    };
    let info = folders.get(&(account.to_owned(), to));
    let held = tx.held(account, to, placeholder)?;
    // A message moved out of a POP3 account leaves its manifest only now
    // that the server has it (until then a rebuild finds it there).
    if let Some(o) = held
        .as_ref()
        .and_then(|h| h.origin.as_ref())
        .filter(|o| o.local)
    {
        if let Some(f) = folders.get(&(o.account.clone(), o.folder)) {
            lines.push((
                o.account.clone(),
                vec![Line::Remove {
                    folder: f.name.clone(),
                    uidvalidity: o.record.uidvalidity,
                    uid: o.record.uid,
                }],
                true,
            ));
        }
    }
    if let Some(u) = uid {
        let mut real = ph.clone();
        real.uid = u;
        real.uidvalidity = uidvalidity;
        if tx.put(account, to, &real)? {
            effects.added.push(id_of(account, to, &real));
            if let Some(f) = info {
                lines.push((account.to_owned(), super::local::add_lines(f, &real), false));
            }
        }
        if let Some(h) = held {
            if h.flags != ph.flags || h.keywords != ph.keywords {
                let before = flag_list(h.flags, &h.keywords);
                let after = flag_list(ph.flags, &ph.keywords);
                tx.push(
                    account,
                    &Change::Flags {
                        folder: to,
                        uidvalidity,
                        uid: u,
                        add: flags_missing(&after, &before),
                        remove: flags_missing(&before, &after),
                        before,
                        modseq: info
                            .and_then(|f| f.state)
                            .filter(|s| s.uidvalidity == uidvalidity)
                            .map(|s| s.highestmodseq)
                            .unwrap_or(0),
                    },
                )?;
            }
        }
    }
    if let Some((r, orphan)) = tx.take(account, to, placeholder)? {
        effects.removed.push(id_of(account, to, &r));
        if orphan {
            orphans.push(r.hash);
        }
    }
    Ok(())
}

/// A placeholder goes, and a moved message is put back where it was. When
/// it cannot be (its folder is gone, its place holds another message) the
/// placeholder stays as a local record: its file is never lost.
fn unplace(
    tx: &Tx<'_>,
    account: &str,
    (to, placeholder): (u64, u32),
    folders: &HashMap<(String, u64), FolderInfo>,
    (effects, orphans, lines): Out<'_>,
) -> TxResult<()> {
    let held = tx.held(account, to, placeholder)?;
    if let Some(origin) = held.and_then(|h| h.origin) {
        let Some(f) = folders.get(&(origin.account.clone(), origin.folder)) else {
            // The source folder is gone: the placeholder may hold the only
            // copy, so it stays (a local record, with its file).
            warn!("Account {account}: a moved message cannot go back to its folder (gone); it stays where it was moved to, locally.");
            return Ok(());
        };
        if !tx.put(&origin.account, origin.folder, &origin.record)? {
            let there = tx.record(&origin.account, origin.folder, origin.record.uid)?;
            if there.is_none_or(|r| r.hash != origin.record.hash) {
                warn!("Account {account}: a moved message cannot go back to its folder (its place is taken); it stays where it was moved to, locally.");
                return Ok(());
            }
        } else {
            effects
                .added
                .push(id_of(&origin.account, origin.folder, &origin.record));
            if origin.local {
                lines.push((
                    origin.account.clone(),
                    super::local::add_lines(f, &origin.record),
                    true,
                ));
            }
        }
    }
    if let Some((r, orphan)) = tx.take(account, to, placeholder)? {
        effects.removed.push(id_of(account, to, &r));
        if orphan {
            orphans.push(r.hash);
        }
    }
    Ok(())
}

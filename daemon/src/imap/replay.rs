//! # Replaying the journal on the server
//!
//! Local changes (flags, moves, copies, cross-account APPENDs, expunges,
//! folders) wait in the account's journal ([`crate::store::Change`]);
//! [`Engine::replay`] applies them on the server in order, and settles
//! each one ([`Store::settle`](crate::store::Store::settle)) only after the
//! server confirmed it, so a kill at any point leaves the entry to be
//! replayed again. Replaying again is harmless:
//!
//! - flag stores are idempotent per UID; with CONDSTORE they carry
//!   `UNCHANGEDSINCE` and a flag the server changed meanwhile keeps the
//!   server's value (per flag, like mbsync), see [`flags`];
//! - a move whose source UID is gone (done before a crash, or expunged)
//!   is dropped: its placeholder goes and the target's next pass fetches
//!   the real message; a copy, a move without MOVE, and a cross-account
//!   APPEND look for the message's Message-ID in the target first, so a
//!   retry does not duplicate it, see [`moves`];
//! - an expunge of a UID that is gone, a CREATE of a folder that exists, a
//!   DELETE of one that does not, count as done.
//!
//! Each entry names folders by number; the replay gives them their server
//! names as they were at that point of the journal (a move out of a
//! folder renamed or deleted since still finds it; `names_at`).
//!
//! A failure of the connection ends the replay (the entry stays, replayed
//! next session; an entry that ended three sessions is dropped, so it
//! cannot block every pass for ever); a refusal of one entry (a tagged `NO`) drops that entry
//! with a warning and the rest goes on; a server limit (`[OVERQUOTA]`,
//! `[LIMIT]`…) stops this replay and keeps the entries. Consecutive flag
//! changes of one folder go in one `UID STORE` per flag set, never one
//! round trip per message, and a batch's outcomes settle with one flush.
//! What settling changed locally is announced per account and folder (one
//! call per folder per replay), then the counts of every account touched,
//! so `PendingChanges` follows. INBOX is left selected, ready for IDLE.

mod flags;
mod moves;
mod wire;

use std::collections::HashMap;

use tracing::{info, warn};

use super::session::ImapSession;
use super::{command, ends_session, select, Engine};
use crate::net::{Failure, FailureKind};
use crate::store::{Change, Effects, Elsewhere, Entry, FolderInfo, Outcome};

/// Most entries in one batch (one UID set in one command line).
const BATCH: usize = 500;

/// The leading entries of `entries` (at most [`BATCH`], at least one) whose
/// `key` equals the first one's: they go to the server together.
fn leading<K: PartialEq>(entries: &[Entry], key: impl Fn(&Entry) -> Option<K>) -> &[Entry] {
    let Some(first) = entries.first().map(&key) else {
        return entries;
    };
    let n = entries
        .iter()
        .take(BATCH)
        .take_while(|e| key(e) == first)
        .count();
    &entries[..n.max(1)]
}

/// What one replay holds while it runs.
struct Run {
    /// The account's folders, by number, with their server names as they
    /// are at the entry being replayed (see [`names_at`]).
    folders: HashMap<u64, FolderInfo>,
    /// The folders as they are from each entry index on (ascending).
    views: Vec<(usize, HashMap<u64, FolderInfo>)>,
    /// The folder selected now (number, UIDVALIDITY), if the replay knows.
    selected: Option<(u64, u32)>,
    /// What settling changed locally, announced at the end.
    effects: Effects,
    /// Entries settled.
    settled: u32,
    /// Accounts whose journals changed (a cross-account move's source).
    kicks: Vec<String>,
    /// Whether the replay selected a folder (INBOX is selected again at
    /// the end).
    reselect: bool,
    /// Sessions that ended replaying each entry (kept by the engine).
    ending: HashMap<u64, u32>,
}

/// Sessions an entry may end before it is dropped: one the server (or
/// facteur) can never get through must not block every pass for ever.
const ENDING_LIMIT: u32 = 3;

/// A folder opened for an entry, or why it cannot be.
enum Opened {
    /// Selected, with this UIDVALIDITY.
    Selected(u32),
    /// Not on the server (or refused): the reason.
    Gone(String),
}

/// The account's folders as the server has them at each point of the
/// journal: `(first entry index, folders)`, ascending from index 0. The
/// store holds the names after every local change; walking the journal
/// backwards from them, a `RenameFolder { from, to }` means the entries
/// before it name the folder (and its children) `from`, and a
/// `DeleteFolder { name, no }` gives back a folder the store no longer has,
/// so a move out of a folder renamed or deleted since still finds it.
fn names_at(
    entries: &[Entry],
    current: HashMap<u64, FolderInfo>,
) -> Vec<(usize, HashMap<u64, FolderInfo>)> {
    let mut views = Vec::new();
    let mut cur = current;
    for (i, e) in entries.iter().enumerate().rev() {
        match &e.change {
            Change::RenameFolder { from, to } => {
                views.push((i + 1, cur.clone()));
                let delim = cur
                    .values()
                    .find(|f| f.name == *to)
                    .and_then(|f| f.delimiter.clone());
                for f in cur.values_mut() {
                    if f.name == *to {
                        f.name.clone_from(from);
                        continue;
                    }
                    let Some(d) = f.delimiter.clone().or_else(|| delim.clone()) else {
                        continue;
                    };
                    if let Some(rest) = f
                        .name
                        .strip_prefix(to.as_str())
                        .and_then(|r| r.strip_prefix(d.as_str()))
                    {
                        f.name = format!("{from}{d}{rest}");
                    }
                }
            }
            Change::DeleteFolder { name, no: Some(no) } => {
                views.push((i + 1, cur.clone()));
                let delimiter = cur.values().find_map(|f| f.delimiter.clone());
                cur.entry(*no).or_insert_with(|| FolderInfo {
                    no: *no,
                    name: name.clone(),
                    display: name.clone(),
                    delimiter,
                    role: None,
                    selectable: true,
                    state: None,
                });
            }
            _ => {}
        }
    }
    views.push((0, cur));
    views.reverse();
    views
}

impl Engine {
    /// Apply the account's journal on the server, in order; returns how
    /// many entries were settled. Only a failure that ends the session (or
    /// a local one: the store) is returned; the entry it concerned stays
    /// in the journal.
    pub async fn replay(&mut self, session: &mut ImapSession) -> Result<u32, Failure> {
        let id = self.id.clone();
        let entries = self.blocking(move |store| store.journal(&id)).await?;
        if entries.is_empty() {
            return Ok(0);
        }
        let id = self.id.clone();
        let folders = self
            .blocking(move |store| store.folders(&id))
            .await?
            .into_iter()
            .map(|f| (f.no, f))
            .collect();
        let views = names_at(&entries, folders);
        let mut run = Run {
            folders: views.first().map(|(_, f)| f.clone()).unwrap_or_default(),
            views,
            selected: None,
            effects: Effects::default(),
            settled: 0,
            kicks: Vec::new(),
            reselect: false,
            ending: std::mem::take(&mut self.ending),
        };
        let replayed = self.replay_entries(session, &entries, &mut run).await;
        let (settled, reselect) = (run.settled, run.reselect);
        self.ending = std::mem::take(&mut run.ending);
        // Entries gone from the journal are forgotten.
        self.ending
            .retain(|seq, _| entries.iter().any(|e| e.seq == *seq));
        self.announce(run).await;
        replayed?;
        if settled > 0 {
            info!(
                "Account {}: {settled} local change(s) applied on the server.",
                self.id
            );
        }
        if reselect {
            // Leave INBOX selected for IDLE.
            select(session, "INBOX").await?;
        }
        Ok(settled)
    }

    async fn replay_entries(
        &self,
        session: &mut ImapSession,
        entries: &[Entry],
        run: &mut Run,
    ) -> Result<(), Failure> {
        let mut i = 0;
        let mut view = 0;
        while i < entries.len() {
            // The folder names as the server has them at this entry.
            while run
                .views
                .get(view + 1)
                .is_some_and(|(start, _)| *start <= i)
            {
                view += 1;
                if let Some((_, f)) = run.views.get(view) {
                    run.folders = f.clone();
                }
            }
            let rest = &entries[i..];
            let batch = match &rest[0].change {
                Change::Flags { .. } => flags::batch(rest),
                Change::Expunge { .. } => moves::expunge_batch(rest),
                _ => &rest[..1],
            };
            i += batch.len();
            let done = match &batch[0].change {
                Change::Flags { .. } => self.replay_flags(session, run, batch).await,
                Change::Expunge { .. } => self.replay_expunges(session, run, batch).await,
                Change::Move { .. } => self.replay_move(session, run, &batch[0]).await,
                Change::Append { .. } => self.replay_append(session, run, &batch[0]).await,
                // Waits for the other account's APPEND.
                Change::MovedOut { .. } => Ok(Vec::new()),
                Change::CreateFolder { .. }
                | Change::RenameFolder { .. }
                | Change::DeleteFolder { .. } => self.replay_folder(session, run, &batch[0]).await,
            };
            let outcomes = match done {
                Ok(outcomes) => outcomes,
                Err(f) => {
                    // Where the server stands is not known any more.
                    run.selected = None;
                    if ends_session(&f) {
                        let head = batch[0].seq;
                        let n = run.ending.entry(head).or_insert(0);
                        *n += 1;
                        if *n >= ENDING_LIMIT {
                            run.ending.remove(&head);
                            let reason = format!(
                                "{ENDING_LIMIT} sessions ended while it was replayed ({})",
                                f.message
                            );
                            for e in batch {
                                self.settle(run, e.seq, Outcome::Dropped(reason.clone()))
                                    .await?;
                            }
                        }
                        return Err(f);
                    }
                    if matches!(f.kind, FailureKind::Local | FailureKind::DiskFull) {
                        return Err(f);
                    }
                    if f.kind == FailureKind::ServerLimit {
                        warn!(
                            "Account {}: {f}; the remaining local changes wait for the next try.",
                            self.id
                        );
                        return Ok(());
                    }
                    // Refused for good: dropped, the rest goes on.
                    batch
                        .iter()
                        .map(|e| (e.seq, Outcome::Dropped(f.message.clone())))
                        .collect()
                }
            };
            self.settle_all(run, outcomes).await?;
        }
        Ok(())
    }

    /// Settle a batch's entries (one flush) and keep what they changed for
    /// the announcement.
    async fn settle_all(
        &self,
        run: &mut Run,
        outcomes: Vec<(u64, Outcome)>,
    ) -> Result<(), Failure> {
        let n = u32::try_from(outcomes.len()).unwrap_or(u32::MAX);
        let effects = self
            .store
            .settle_all(&self.id, outcomes)
            .await
            .map_err(Failure::from)?;
        run.effects.extend(effects);
        run.settled = run.settled.saturating_add(n);
        Ok(())
    }

    /// Settle one entry and keep what it changed for the announcement (a
    /// dropped entry is logged by the store, with the change).
    async fn settle(&self, run: &mut Run, seq: u64, outcome: Outcome) -> Result<(), Failure> {
        let effects = self
            .store
            .settle(&self.id, seq, outcome)
            .await
            .map_err(Failure::from)?;
        run.effects.extend(effects);
        run.settled += 1;
        Ok(())
    }

    /// Announce what settling changed, one call per folder and kind, then
    /// the counts; wake the accounts whose journals changed.
    async fn announce(&self, run: Run) {
        let Run {
            effects,
            settled,
            kicks,
            ..
        } = run;
        let mut others: Vec<String> = Vec::new();
        if !effects.is_empty() {
            let groups = self
                .blocking(move |store| {
                    Ok([
                        store.by_folder(&effects.removed),
                        store.by_folder(&effects.added),
                        store.by_folder(&effects.changed),
                    ])
                })
                .await;
            match groups {
                Ok([removed, added, changed]) => {
                    for (kind, groups) in [
                        (Elsewhere::Removed, removed),
                        (Elsewhere::Added, added),
                        (Elsewhere::Changed, changed),
                    ] {
                        for (account, folder, ids) in groups {
                            if account != self.id {
                                // A dropped cross-account move put it back in
                                // its source: that account announces it.
                                self.reporter.elsewhere(&account, kind, &folder, ids);
                                if !others.contains(&account) {
                                    others.push(account);
                                }
                                continue;
                            }
                            match kind {
                                Elsewhere::Removed => self.reporter.removed(&folder, ids),
                                Elsewhere::Added => self.reporter.added(&folder, ids),
                                Elsewhere::Changed => self.reporter.changed(&folder, ids),
                            }
                        }
                    }
                }
                Err(f) => warn!(
                    "Account {}: cannot group the replayed changes for their signals: {f}",
                    self.id
                ),
            }
        }
        if settled > 0 {
            self.reporter.counts();
        }
        for account in &kicks {
            if !others.contains(account) {
                others.push(account.clone());
            }
        }
        // Their PendingChanges and counts follow too.
        for account in others.iter().filter(|a| **a != self.id) {
            self.reporter.counts_of(account);
        }
        for account in kicks {
            self.reporter.kick(&account);
        }
    }

    /// SELECT folder `no` (with CONDSTORE when offered), unless the replay
    /// has it selected already.
    async fn open(
        &self,
        session: &mut ImapSession,
        run: &mut Run,
        no: u64,
    ) -> Result<Opened, Failure> {
        if let Some((selected, uidvalidity)) = run.selected {
            if selected == no {
                return Ok(Opened::Selected(uidvalidity));
            }
        }
        let Some(folder) = run.folders.get(&no) else {
            return Ok(Opened::Gone("its folder is gone".to_owned()));
        };
        let name = command::quoted(&folder.name)?;
        let command = if self.caps.condstore {
            format!("SELECT {name} (CONDSTORE)")
        } else {
            format!("SELECT {name}")
        };
        run.selected = None;
        run.reselect = true;
        let mut uidvalidity = None;
        let selected = wire::run(session, "SELECT", &command, |r| {
            if let imap_proto::Response::Data {
                status: imap_proto::Status::Ok,
                outcome,
            } = r
            {
                if let Some(imap_proto::ResponseCode::UidValidity(v)) = &outcome.code {
                    uidvalidity = Some(*v);
                }
            }
        })
        .await;
        super::drain(session);
        match selected {
            Ok(_) => {}
            Err(f) if f.kind == FailureKind::Protocol => {
                return Ok(Opened::Gone(format!(
                    "folder {} cannot be opened on the server ({})",
                    folder.display, f.message
                )))
            }
            Err(f) => return Err(f),
        }
        let Some(uidvalidity) = uidvalidity else {
            return Err(Failure::new(
                FailureKind::Protocol,
                format!("The server gave no UIDVALIDITY for {}", folder.display),
            ));
        };
        run.selected = Some((no, uidvalidity));
        Ok(Opened::Selected(uidvalidity))
    }

    /// CREATE, RENAME or DELETE a folder.
    async fn replay_folder(
        &self,
        session: &mut ImapSession,
        run: &mut Run,
        entry: &Entry,
    ) -> Result<Vec<(u64, Outcome)>, Failure> {
        let (what, line, done_if) = match &entry.change {
            Change::CreateFolder { name } => (
                "CREATE",
                format!("CREATE {}", command::quoted(name)?),
                Some("[ALREADYEXISTS]"),
            ),
            Change::RenameFolder { from, to } => (
                "RENAME",
                format!("RENAME {} {}", command::quoted(from)?, command::quoted(to)?),
                None,
            ),
            Change::DeleteFolder { name, .. } => {
                // Dovecot ends the session when the selected folder is
                // deleted: select INBOX first.
                let selected = run
                    .selected
                    .and_then(|(no, _)| run.folders.get(&no))
                    .is_some_and(|f| f.name == *name);
                if selected && !name.eq_ignore_ascii_case("INBOX") {
                    select(session, "INBOX").await?;
                }
                (
                    "DELETE",
                    format!("DELETE {}", command::quoted(name)?),
                    Some("[NONEXISTENT]"),
                )
            }
            _ => return Ok(Vec::new()),
        };
        run.selected = None;
        let outcome = match wire::run(session, what, &line, |_| {}).await {
            Ok(_) => Outcome::Applied { flags: None },
            Err(f)
                if f.kind == FailureKind::Protocol
                    && done_if
                        .is_some_and(|code| f.message.to_ascii_uppercase().contains(code)) =>
            {
                Outcome::Applied { flags: None }
            }
            Err(f) if f.kind == FailureKind::Protocol => Outcome::Dropped(f.message),
            Err(f) => return Err(f),
        };
        Ok(vec![(entry.seq, outcome)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(no: u64, name: &str) -> FolderInfo {
        FolderInfo {
            no,
            name: name.to_owned(),
            display: name.to_owned(),
            delimiter: Some(".".to_owned()),
            role: None,
            selectable: true,
            state: None,
        }
    }

    fn entry(seq: u64, change: Change) -> Entry {
        Entry { seq, change }
    }

    fn expunge(folder: u64) -> Change {
        Change::Expunge {
            folder,
            uidvalidity: 1,
            uid: 1,
        }
    }

    fn name(views: &[(usize, HashMap<u64, FolderInfo>)], at: usize, no: u64) -> Option<String> {
        let (_, v) = views.iter().rev().find(|(start, _)| *start <= at)?;
        v.get(&no).map(|f| f.name.clone())
    }

    /// Entries made before a rename or a delete replay with the folder's
    /// server name as it was then.
    #[test]
    fn entries_replay_with_the_names_of_their_time() {
        let current: HashMap<u64, FolderInfo> =
            [folder(1, "INBOX"), folder(2, "New"), folder(3, "New.Sub")]
                .into_iter()
                .map(|f| (f.no, f))
                .collect();
        let entries = vec![
            entry(1, expunge(2)),
            entry(2, expunge(4)),
            entry(
                3,
                Change::RenameFolder {
                    from: "Old".into(),
                    to: "New".into(),
                },
            ),
            entry(4, expunge(3)),
            entry(
                5,
                Change::DeleteFolder {
                    name: "Gone".into(),
                    no: Some(4),
                },
            ),
            entry(6, expunge(2)),
        ];
        let views = names_at(&entries, current);
        assert_eq!(name(&views, 0, 2).as_deref(), Some("Old"));
        assert_eq!(name(&views, 0, 3).as_deref(), Some("Old.Sub"));
        assert_eq!(name(&views, 1, 4).as_deref(), Some("Gone"));
        assert_eq!(
            name(&views, 2, 2).as_deref(),
            Some("Old"),
            "the RENAME itself"
        );
        assert_eq!(name(&views, 3, 3).as_deref(), Some("New.Sub"));
        assert_eq!(name(&views, 3, 4).as_deref(), Some("Gone"));
        assert_eq!(name(&views, 5, 2).as_deref(), Some("New"));
        assert_eq!(name(&views, 5, 4), None);
        assert_eq!(name(&views, 0, 1).as_deref(), Some("INBOX"));
    }
}

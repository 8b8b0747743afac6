//! # Local changes: flags, moves and copies
//!
//! What a user does to stored mail, applied to the index and journaled in
//! one transaction ([`Store::transact`]), then flushed before the call
//! returns. An account is *journaled* when its changes must reach a server
//! (IMAP; the caller says): its entries go to the journal
//! ([`super::journal`]). A POP3 account keeps no journal: its flags and
//! folders are local only, and its manifest gets the lines that let an
//! index rebuild find them again (`flags`, and `remove` + `add` for a move).
//!
//! Moves and copies:
//!
//! - into a journaled account: the target folder gets a placeholder
//!   ([`super::placeholder`]) at once; inside the account the entry is a
//!   [`Change::Move`], from another account a [`Change::Append`] (whose
//!   `source` names the source's [`Change::MovedOut`] entry for a move out
//!   of a journaled account);
//! - into a POP3 account: a real local record at once (the folder's next
//!   local UID); a journaled source then gets a [`Change::Expunge`];
//! - out of a POP3 account: the record goes; its unique-id entry stays, so
//!   the message is not downloaded again.
//!
//! A placeholder cannot be moved or copied again (the caller refuses it:
//! the message is still being moved); its flags can be changed, and are
//! carried to the server's message when it lands.

use std::collections::HashMap;

use anyhow::Result;

use super::journal::Flag;
use super::manifest::Line;
use super::messages::{to_json, FolderInfo, FolderState, MessageId, Record};
use super::placeholder::{
    apply_flags, flag_list, flags_missing, is_placeholder, Held, Origin, Tx, TxResult,
};
use super::pop3::POP3_UIDVALIDITY;
use super::{Change, Effects, Source, Store};

/// The manifest `add` line (and `flags` line for keywords) of a record.
pub(super) fn add_lines(f: &FolderInfo, r: &Record) -> Vec<Line> {
    let mut out = vec![Line::Add {
        folder: f.name.clone(),
        display: f.display.clone(),
        no: f.no,
        role: f.role.clone(),
        uidvalidity: r.uidvalidity,
        uid: r.uid,
        flags: r.flags.0,
        hash: r.hash.clone(),
        date: r.meta.date,
        uidl: None,
        first_seen: 0,
    }];
    if !r.keywords.is_empty() {
        out.push(flags_line(f, r));
    }
    out
}

/// The manifest `flags` line of a record.
pub(super) fn flags_line(f: &FolderInfo, r: &Record) -> Line {
    Line::Flags {
        folder: f.name.clone(),
        uidvalidity: r.uidvalidity,
        uid: r.uid,
        flags: r.flags.0,
        keywords: r.keywords.clone(),
    }
}

fn id_of(account: &str, folder: u64, r: &Record) -> MessageId {
    MessageId {
        account: account.to_owned(),
        folder,
        uidvalidity: r.uidvalidity,
        uid: r.uid,
    }
}

/// Where a move or copy goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// The account.
    pub account: String,
    /// The folder (it must exist).
    pub folder: FolderInfo,
    /// Whether the account is journaled (IMAP).
    pub journaled: bool,
}

impl Store {
    /// Add and remove flags on messages of one account (ids of other
    /// accounts, and ids not stored, are skipped), durably. Returns the ids
    /// whose flags really changed.
    pub async fn change_flags(
        &self,
        account: &str,
        journaled: bool,
        ids: Vec<MessageId>,
        add: Vec<Flag>,
        remove: Vec<Flag>,
    ) -> Result<Effects> {
        let owner = account.to_owned();
        let effects = self
            .blocking(move |s| {
                s.admit(&owner, || {
                    s.change_flags_blocking(&owner, journaled, &ids, &add, &remove)
                })
            })
            .await?;
        self.flush().await?;
        Ok(effects)
    }

    fn change_flags_blocking(
        &self,
        account: &str,
        journaled: bool,
        ids: &[MessageId],
        add: &[Flag],
        remove: &[Flag],
    ) -> Result<Effects> {
        let folders: HashMap<u64, FolderInfo> = self
            .folders(account)?
            .into_iter()
            .map(|f| (f.no, f))
            .collect();
        let changed = self.transact(|tx| {
            let mut out: Vec<(u64, Record)> = Vec::new();
            for id in ids {
                if id.account != account {
                    continue;
                }
                let Some(mut r) = tx.record(account, id.folder, id.uid)? else {
                    continue;
                };
                if r.uidvalidity != id.uidvalidity {
                    continue;
                }
                let (flags, keywords) = apply_flags(r.flags, &r.keywords, add, remove);
                if flags == r.flags && keywords == r.keywords {
                    continue;
                }
                let before = flag_list(r.flags, &r.keywords);
                let after = flag_list(flags, &keywords);
                r.flags = flags;
                r.keywords = keywords;
                tx.update(account, id.folder, &r)?;
                if journaled && !is_placeholder(&r) {
                    let modseq = folders
                        .get(&id.folder)
                        .and_then(|f| f.state)
                        .map(|s| s.highestmodseq)
                        .unwrap_or(0);
                    tx.push(
                        account,
                        &Change::Flags {
                            folder: id.folder,
                            uidvalidity: r.uidvalidity,
                            uid: r.uid,
                            add: flags_missing(&after, &before),
                            remove: flags_missing(&before, &after),
                            before,
                            modseq,
                        },
                    )?;
                }
                out.push((id.folder, r));
            }
            Ok(out)
        })?;
        if !journaled {
            let lines: Vec<Line> = changed
                .iter()
                .filter_map(|(folder, r)| folders.get(folder).map(|f| flags_line(f, r)))
                .collect();
            self.manifest_append(account, &lines, true)
                .map_err(|e| self.failed(e))?;
        }
        Ok(Effects {
            changed: changed
                .iter()
                .map(|(folder, r)| id_of(account, *folder, r))
                .collect(),
            ..Effects::default()
        })
    }

    /// Move (or copy) messages of one account (`source`, journaled or not)
    /// into a folder of the same or another account, durably: see the
    /// module docs. Ids of other accounts, ids not stored and placeholders
    /// are skipped (the caller refuses placeholders first); a move into the
    /// folder the message is in does nothing.
    pub async fn move_messages(
        &self,
        source: &str,
        source_journaled: bool,
        ids: Vec<MessageId>,
        target: Target,
        copy: bool,
    ) -> Result<Effects> {
        let owner = source.to_owned();
        let effects = self
            .blocking(move |s| {
                s.admit(&owner, || {
                    if target.account == owner {
                        s.move_blocking(&owner, source_journaled, &ids, &target, copy)
                    } else {
                        s.admit(&target.account, || {
                            s.move_blocking(&owner, source_journaled, &ids, &target, copy)
                        })
                    }
                })
            })
            .await?;
        self.flush().await?;
        Ok(effects)
    }

    fn move_blocking(
        &self,
        source: &str,
        source_journaled: bool,
        ids: &[MessageId],
        target: &Target,
        copy: bool,
    ) -> Result<Effects> {
        let sources: HashMap<u64, FolderInfo> = self
            .folders(source)?
            .into_iter()
            .map(|f| (f.no, f))
            .collect();
        let to = &target.folder;
        let (effects, moved) = self.transact(|tx| {
            let mut effects = Effects::default();
            // (source folder no, source record, target record)
            let mut moved: Vec<(u64, Record, Record)> = Vec::new();
            let mut state = if target.journaled {
                None
            } else {
                let info = tx.folder(&target.account, &to.name)?.unwrap_or(to.clone());
                Some((
                    info.clone(),
                    info.state.unwrap_or(FolderState {
                        uidvalidity: POP3_UIDVALIDITY,
                        uidnext: 1,
                        highestmodseq: 0,
                    }),
                ))
            };
            for id in ids {
                if id.account != source {
                    continue;
                }
                let Some(r) = tx.record(source, id.folder, id.uid)? else {
                    continue;
                };
                if r.uidvalidity != id.uidvalidity || is_placeholder(&r) {
                    continue;
                }
                if !copy && source == target.account && id.folder == to.no {
                    continue;
                }
                let mut copied = r.clone();
                let mut placeholder = 0;
                match state.as_mut() {
                    None => {
                        placeholder = tx.next_placeholder(&target.account, to.no)?;
                        copied.uid = placeholder;
                        copied.uidvalidity = 0;
                        let held = Held {
                            flags: r.flags,
                            keywords: r.keywords.clone(),
                            origin: (!copy).then(|| Origin {
                                account: source.to_owned(),
                                folder: id.folder,
                                record: r.clone(),
                                local: !source_journaled,
                            }),
                        };
                        tx.hold(&target.account, to.no, placeholder, &held)?;
                    }
                    Some((_, st)) => {
                        copied.uid = st.uidnext;
                        copied.uidvalidity = st.uidvalidity;
                        st.uidnext = st.uidnext.saturating_add(1);
                    }
                }
                if !tx.put(&target.account, to.no, &copied)? {
                    return Err(super::messages::abort(anyhow::anyhow!(
                        "UID {} of the target folder is taken",
                        copied.uid
                    )));
                }
                effects.added.push(id_of(&target.account, to.no, &copied));
                if !copy {
                    tx.take(source, id.folder, id.uid)?;
                    effects.removed.push(id.clone());
                }
                self.journal_move(
                    tx,
                    source,
                    source_journaled,
                    id,
                    &r,
                    target,
                    placeholder,
                    copy,
                )?;
                moved.push((id.folder, r, copied));
            }
            if let Some((mut info, st)) = state {
                info.state = Some(st);
                tx.folders.insert(
                    super::messages::folder_key(&target.account, &to.name),
                    to_json(&info).map_err(super::messages::abort)?,
                )?;
            }
            Ok((effects, moved))
        })?;
        // Manifests: the target's lines first (a crash in between leaves a
        // duplicate for a rebuild, never a loss).
        if !target.journaled {
            let lines: Vec<Line> = moved
                .iter()
                .flat_map(|(_, _, c)| add_lines(to, c))
                .collect();
            self.manifest_append(&target.account, &lines, true)
                .map_err(|e| self.failed(e))?;
        }
        // A POP3 message moved to a journaled account leaves its manifest
        // when the server has it ([`Store::settle`]).
        if !copy && (source_journaled || !target.journaled) {
            let lines: Vec<Line> = moved
                .iter()
                .filter_map(|(folder, r, _)| {
                    sources.get(folder).map(|f| Line::Remove {
                        folder: f.name.clone(),
                        uidvalidity: r.uidvalidity,
                        uid: r.uid,
                    })
                })
                .collect();
            self.manifest_append(source, &lines, true)
                .map_err(|e| self.failed(e))?;
        }
        Ok(effects)
    }

    /// The journal entries of one moved or copied message.
    #[allow(clippy::too_many_arguments)]
    fn journal_move(
        &self,
        tx: &Tx<'_>,
        source: &str,
        source_journaled: bool,
        id: &MessageId,
        r: &Record,
        target: &Target,
        placeholder: u32,
        copy: bool,
    ) -> TxResult<()> {
        let to = target.folder.no;
        if source == target.account {
            if target.journaled {
                tx.push(
                    source,
                    &Change::Move {
                        folder: id.folder,
                        uidvalidity: r.uidvalidity,
                        uid: r.uid,
                        to,
                        placeholder,
                        copy,
                    },
                )?;
            }
            return Ok(());
        }
        let mut moved_out = None;
        if !copy && source_journaled {
            let (folder, uidvalidity, uid) = (id.folder, r.uidvalidity, r.uid);
            if target.journaled {
                moved_out = Some(tx.push(
                    source,
                    &Change::MovedOut {
                        folder,
                        uidvalidity,
                        uid,
                    },
                )?);
            } else {
                // Stored in the (local) target already: expunge at once.
                tx.push(
                    source,
                    &Change::Expunge {
                        folder,
                        uidvalidity,
                        uid,
                    },
                )?;
            }
        }
        if target.journaled {
            tx.push(
                &target.account,
                &Change::Append {
                    to,
                    placeholder,
                    hash: r.hash.clone(),
                    flags: flag_list(r.flags, &r.keywords),
                    message_id: r.meta.message_id.clone(),
                    source: moved_out.map(|seq| Source {
                        account: source.to_owned(),
                        seq,
                    }),
                },
            )?;
        }
        Ok(())
    }
}

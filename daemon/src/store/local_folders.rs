//! # Local folder changes
//!
//! Creating, renaming and deleting folders, in one transaction with their
//! journal entry (journaled accounts: [`Change::CreateFolder`],
//! [`Change::RenameFolder`], [`Change::DeleteFolder`] with raw server
//! names), flushed before the call returns. Names come in raw (the caller
//! maps `/`, the namespace prefix and modified UTF-7).
//!
//! A rename re-keys the folder record and those of its children, keeping
//! their numbers, so message ids stay the same. A delete removes the folder
//! and its messages (placeholders too); its children stay, as IMAP's
//! DELETE leaves them.

use anyhow::Result;

use super::manifest::Line;
use super::messages::{abort, folder_key, from_json, prefix, to_json, FolderInfo, Record};
use super::{Change, Effects, MessageId, Store};

/// One folder of a rename: its record before, its raw and display names
/// after.
#[derive(Debug, Clone)]
pub struct Renamed {
    /// The folder before.
    pub from: FolderInfo,
    /// Raw name after.
    pub name: String,
    /// Display name after.
    pub display: String,
}

impl Store {
    /// Create a selectable folder (no sync state yet), durably; an existing
    /// one is returned unchanged and nothing is journaled.
    pub async fn create_folder(
        &self,
        account: &str,
        journaled: bool,
        name: &str,
        display: &str,
        delimiter: Option<String>,
    ) -> Result<(FolderInfo, Effects)> {
        let (owner, name, display) = (account.to_owned(), name.to_owned(), display.to_owned());
        let out = self
            .blocking(move |s| {
                s.admit(&owner, || {
                    s.transact(|tx| {
                        if let Some(f) = tx.folder(&owner, &name)? {
                            return Ok((f, Effects::default()));
                        }
                        let info = FolderInfo {
                            no: tx.folders.generate_id()?,
                            name: name.clone(),
                            display: display.clone(),
                            delimiter: delimiter.clone(),
                            role: None,
                            selectable: true,
                            state: None,
                        };
                        tx.folders
                            .insert(folder_key(&owner, &name), to_json(&info).map_err(abort)?)?;
                        if journaled {
                            tx.push(&owner, &Change::CreateFolder { name: name.clone() })?;
                        }
                        Ok((
                            info,
                            Effects {
                                folders: true,
                                ..Effects::default()
                            },
                        ))
                    })
                })
            })
            .await?;
        self.flush().await?;
        Ok(out)
    }

    /// Rename folders (a folder and its children, each given with its new
    /// names), journaling one `RenameFolder { from, to }`, durably.
    pub async fn rename_folders(
        &self,
        account: &str,
        journaled: bool,
        from: &str,
        to: &str,
        folders: Vec<Renamed>,
    ) -> Result<Effects> {
        let (owner, from, to) = (account.to_owned(), from.to_owned(), to.to_owned());
        let effects = self
            .blocking(move |s| {
                s.admit(&owner, || {
                    s.transact(|tx| {
                        for r in &folders {
                            let old = folder_key(&owner, &r.from.name);
                            let mut info: FolderInfo = match tx.folders.remove(old)? {
                                Some(v) => from_json(&v).map_err(abort)?,
                                None => r.from.clone(),
                            };
                            info.name = r.name.clone();
                            info.display = r.display.clone();
                            tx.folders.insert(
                                folder_key(&owner, &r.name),
                                to_json(&info).map_err(abort)?,
                            )?;
                        }
                        if journaled {
                            tx.push(
                                &owner,
                                &Change::RenameFolder {
                                    from: from.clone(),
                                    to: to.clone(),
                                },
                            )?;
                        }
                        Ok(())
                    })?;
                    if !journaled {
                        s.manifest_rename(&owner, &folders)?;
                    }
                    Ok(Effects {
                        folders: true,
                        ..Effects::default()
                    })
                })
            })
            .await?;
        self.flush().await?;
        Ok(effects)
    }

    /// The manifest lines of a local rename: each message of the renamed
    /// folders is added under the new name, then removed under the old.
    fn manifest_rename(&self, account: &str, folders: &[Renamed]) -> Result<()> {
        let mut adds = Vec::new();
        let mut removes = Vec::new();
        for r in folders {
            let mut after = r.from.clone();
            after.name = r.name.clone();
            after.display = r.display.clone();
            for rec in self.folder_records(account, r.from.no)? {
                adds.extend(super::local::add_lines(&after, &rec));
                removes.push(Line::Remove {
                    folder: r.from.name.clone(),
                    uidvalidity: rec.uidvalidity,
                    uid: rec.uid,
                });
            }
        }
        adds.extend(removes);
        self.manifest_append(account, &adds, true)
            .map_err(|e| self.failed(e))
    }

    /// Every record of a folder, placeholders included.
    pub(super) fn folder_records(&self, account: &str, folder: u64) -> Result<Vec<Record>> {
        let mut p = prefix(account);
        p.extend_from_slice(&folder.to_be_bytes());
        let o = self.handle()?;
        o.trees
            .messages
            .scan_prefix(p)
            .map(|kv| from_json(&kv?.1))
            .collect()
    }

    /// Delete a folder and its messages, durably; message files no record
    /// points at any more are deleted afterwards.
    pub async fn delete_folder(
        &self,
        account: &str,
        journaled: bool,
        folder: &FolderInfo,
    ) -> Result<Effects> {
        let (owner, folder) = (account.to_owned(), folder.clone());
        let (effects, orphans) = self
            .blocking(move |s| {
                s.admit(&owner, || {
                    let uids: Vec<u32> = s
                        .folder_records(&owner, folder.no)?
                        .iter()
                        .map(|r| r.uid)
                        .collect();
                    let (removed, orphans) = s.transact(|tx| {
                        let mut removed = Vec::new();
                        let mut orphans = Vec::new();
                        for uid in &uids {
                            if let Some((r, orphan)) = tx.take(&owner, folder.no, *uid)? {
                                if orphan {
                                    orphans.push(r.hash.clone());
                                }
                                removed.push(r);
                            }
                        }
                        tx.folders.remove(folder_key(&owner, &folder.name))?;
                        // The placeholder counter goes with the folder (its
                        // number is never given again).
                        tx.placeholders
                            .remove(super::placeholder::counter_key(&owner, folder.no))?;
                        if journaled {
                            tx.push(
                                &owner,
                                &Change::DeleteFolder {
                                    name: folder.name.clone(),
                                    no: Some(folder.no),
                                },
                            )?;
                        }
                        Ok((removed, orphans))
                    })?;
                    let lines: Vec<Line> = removed
                        .iter()
                        .map(|r| Line::Remove {
                            folder: folder.name.clone(),
                            uidvalidity: r.uidvalidity,
                            uid: r.uid,
                        })
                        .collect();
                    s.manifest_append(&owner, &lines, true)
                        .map_err(|e| s.failed(e))?;
                    let effects = Effects {
                        removed: removed
                            .iter()
                            .map(|r| MessageId {
                                account: owner.clone(),
                                folder: folder.no,
                                uidvalidity: r.uidvalidity,
                                uid: r.uid,
                            })
                            .collect(),
                        folders: true,
                        ..Effects::default()
                    };
                    Ok((effects, orphans))
                })
            })
            .await?;
        self.flush().await?;
        if !orphans.is_empty() {
            self.blocking(move |s| {
                s.remove_orphans_blocking(&orphans);
                Ok(())
            })
            .await?;
        }
        Ok(effects)
    }
}

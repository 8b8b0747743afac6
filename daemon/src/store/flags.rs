//! # Folder state and flags
//!
//! The per-folder sync state and the flags the server changed, each
//! refused once the account was removed (see [`Store::admit`]).

use anyhow::Result;
use sled::Transactional as _;

use super::messages::{abort, folder_key, from_json, msg_key, to_json, tx_error};
use super::{Flags, FolderInfo, FolderState, MessageId, Record, Store};

impl Store {
    /// Record the folder's sync state alone (nothing new to store).
    pub async fn set_folder_state(
        &self,
        account: &str,
        folder: &FolderInfo,
        state: FolderState,
    ) -> Result<()> {
        self.admit(account, || {
            let mut info = self
                .folder(account, &folder.name)?
                .unwrap_or_else(|| folder.clone());
            info.state = Some(state);
            self.handle()?
                .trees
                .folders
                .insert(folder_key(account, &folder.name), to_json(&info)?)
                .map_err(|e| self.failed(e.into()))?;
            Ok(())
        })?;
        self.flush().await
    }

    /// Apply flag changes from the server (flags and keywords), and the
    /// state covering them. Returns the ids of the messages that changed
    /// (for `MessagesChanged`).
    pub async fn set_flags(
        &self,
        account: &str,
        folder: &FolderInfo,
        changes: &[(u32, Flags, Vec<String>)],
        state: Option<FolderState>,
    ) -> Result<Vec<MessageId>> {
        let changed = self.admit(account, || {
            self.set_flags_admitted(account, folder, changes, state)
        })?;
        self.flush().await?;
        Ok(changed)
    }

    fn set_flags_admitted(
        &self,
        account: &str,
        folder: &FolderInfo,
        changes: &[(u32, Flags, Vec<String>)],
        state: Option<FolderState>,
    ) -> Result<Vec<MessageId>> {
        let o = self.handle()?;
        let t = &o.trees;
        let fkey = folder_key(account, &folder.name);
        let changed = (&t.messages, &t.folders)
            .transaction(|(msgs, folders)| {
                let mut changed = Vec::new();
                for (uid, flags, keywords) in changes {
                    let key = msg_key(account, folder.no, *uid);
                    let Some(v) = msgs.get(&key)? else { continue };
                    let mut r: Record = from_json(&v).map_err(abort)?;
                    if r.flags != *flags || r.keywords != *keywords {
                        r.flags = *flags;
                        r.keywords = keywords.clone();
                        msgs.insert(key, to_json(&r).map_err(abort)?)?;
                        changed.push(MessageId {
                            account: account.to_owned(),
                            folder: folder.no,
                            uidvalidity: r.uidvalidity,
                            uid: r.uid,
                        });
                    }
                }
                if let Some(state) = state {
                    let mut info: FolderInfo = match folders.get(&fkey)? {
                        Some(v) => from_json(&v).map_err(abort)?,
                        None => folder.clone(),
                    };
                    info.state = Some(state);
                    folders.insert(fkey.as_slice(), to_json(&info).map_err(abort)?)?;
                }
                Ok(changed)
            })
            .map_err(|e| self.failed(tx_error(e)))?;
        Ok(changed)
    }
}

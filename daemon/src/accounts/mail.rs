//! # Acting on mail
//!
//! The one home of what a user does to stored mail through facteur: flags,
//! moves and copies (inside an account and across accounts), summaries by
//! id, and folder creation, renaming and deletion. Input is checked here
//! (ids, flag names, folder names) and refused with a typed [`Refused`]
//! that changes nothing; a change is applied to the store and journaled in
//! one transaction ([`crate::store::Change`]), flushed, and only then
//! answered, with the [`Effects`] the service announces. The account's
//! engine is then told to replay its journal
//! ([`crate::sync::Scheduler::kick`]); POP3 accounts keep no journal (their
//! flags and folders are local only).

use std::collections::HashMap;
use std::sync::Arc;

use super::Registry;
use crate::settings::Protocol;
use crate::store::{
    is_placeholder, Effects, FolderInfo, MessageId, Renamed, Store, Summary, Target,
};
use crate::sync::Scheduler;

/// Why an action on mail was refused; nothing was changed.
#[derive(Debug)]
pub enum Refused {
    /// An id, flag or folder name is malformed (`InvalidArgument`).
    Invalid(String),
    /// A message, folder or account does not exist (`NotFound`).
    NotFound(String),
    /// The account cannot do this (`NotSupported`).
    NotSupported(String),
    /// A folder of that name exists already (`AlreadyExists`).
    AlreadyExists(String),
    /// Storing failed (`Internal`).
    Internal(anyhow::Error),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Invalid(m)
            | Refused::NotFound(m)
            | Refused::NotSupported(m)
            | Refused::AlreadyExists(m) => f.write_str(m),
            Refused::Internal(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for Refused {}

impl From<anyhow::Error> for Refused {
    fn from(e: anyhow::Error) -> Self {
        Refused::Internal(e)
    }
}

mod names;
#[cfg(test)]
mod tests;

use names::{find, is_inbox, parse_flags, parse_ids, Naming};

/// The refusal for moving a message that is still being moved.
const STILL_MOVING: &str =
    "is still being moved; try again once the account is online and the move is done";

/// Actions on stored mail: see the module docs.
pub struct Mail {
    registry: Arc<Registry>,
    store: Store,
    scheduler: Arc<Scheduler>,
}

impl Mail {
    /// Actions over these parts.
    pub fn new(registry: Arc<Registry>, store: Store, scheduler: Arc<Scheduler>) -> Self {
        Mail {
            registry,
            store,
            scheduler,
        }
    }

    /// Whether an account is journaled (IMAP); `NotFound` when it does not
    /// exist.
    fn journaled(&self, account: &str) -> Result<bool, Refused> {
        let a = self
            .registry
            .get(account)
            .ok_or_else(|| Refused::NotFound(format!("No account {account}")))?;
        Ok(a.settings().incoming_protocol == Protocol::Imap)
    }

    /// Parse ids and check they are all stored (and their accounts exist);
    /// the first malformed or missing one is refused. Returns them with
    /// their records' placeholder status.
    async fn existing(&self, ids: &[String]) -> Result<Vec<(MessageId, bool)>, Refused> {
        let parsed = parse_ids(ids)?;
        for id in &parsed {
            self.journaled(&id.account)
                .map_err(|_| Refused::NotFound(format!("No message {id}")))?;
        }
        let found = self
            .store
            .blocking(move |s| {
                let mut out = Vec::with_capacity(parsed.len());
                for id in parsed {
                    let r = s.record(&id)?;
                    out.push((id, r.map(|r| is_placeholder(&r))));
                }
                Ok(out)
            })
            .await?;
        found
            .into_iter()
            .map(|(id, r)| match r {
                Some(p) => Ok((id, p)),
                None => Err(Refused::NotFound(format!("No message {id}"))),
            })
            .collect()
    }

    /// Tell the engines and the service what changed.
    async fn touched(&self, accounts: &[(String, bool)]) {
        let mut seen: Vec<&str> = Vec::new();
        for (a, journaled) in accounts {
            if seen.contains(&a.as_str()) {
                continue;
            }
            seen.push(a);
            if *journaled {
                self.scheduler.kick(a).await;
            }
            self.scheduler.counts_changed(a);
        }
    }

    /// `SetFlags`: add and remove flags (`seen`, `flagged`, `answered`,
    /// `draft`, `deleted`, or keyword atoms) on messages of any accounts.
    pub async fn set_flags(
        &self,
        ids: &[String],
        add: &[String],
        remove: &[String],
    ) -> Result<Effects, Refused> {
        let (add, remove) = parse_flags(add, remove)?;
        let ids = self.existing(ids).await?;
        let mut effects = Effects::default();
        if add.is_empty() && remove.is_empty() {
            return Ok(effects);
        }
        let mut touched = Vec::new();
        for (account, group) in by_account(ids.into_iter().map(|(id, _)| id)) {
            let journaled = self.journaled(&account)?;
            let done = self
                .store
                .change_flags(&account, journaled, group, add.clone(), remove.clone())
                .await?;
            if !done.is_empty() {
                touched.push((account, journaled));
            }
            effects.extend(done);
        }
        self.touched(&touched).await;
        Ok(effects)
    }

    /// `MoveMessages` (`copy` false) and `CopyMessages` (`copy` true) into
    /// `folder` (a display name, `/` between levels) of account `to`. A
    /// message still being moved (a placeholder, until its account is
    /// online and the server has it) is refused (`NotSupported`).
    pub async fn move_messages(
        &self,
        ids: &[String],
        to: &str,
        folder: &str,
        copy: bool,
    ) -> Result<Effects, Refused> {
        let ids = self.existing(ids).await?;
        let target_journaled = self.journaled(to)?;
        let folders = self.store.folders(to)?;
        let naming = Naming::infer(&folders, target_journaled);
        let info = find(&folders, &naming, folder)
            .cloned()
            .ok_or_else(|| Refused::NotFound(format!("No folder {folder:?} in account {to}")))?;
        if !info.selectable {
            return Err(Refused::NotSupported(format!(
                "The folder {folder:?} cannot hold messages"
            )));
        }
        if let Some((id, _)) = ids.iter().find(|(_, placeholder)| *placeholder) {
            return Err(Refused::NotSupported(format!(
                "Message {id} {STILL_MOVING}"
            )));
        }
        let target = Target {
            account: to.to_owned(),
            folder: info,
            journaled: target_journaled,
        };
        let mut effects = Effects::default();
        let mut touched = Vec::new();
        for (account, group) in by_account(ids.into_iter().map(|(id, _)| id)) {
            let journaled = self.journaled(&account)?;
            let done = self
                .store
                .move_messages(&account, journaled, group, target.clone(), copy)
                .await?;
            if !done.is_empty() {
                touched.push((account, journaled));
                touched.push((to.to_owned(), target_journaled));
            }
            effects.extend(done);
        }
        self.touched(&touched).await;
        Ok(effects)
    }

    /// `GetSummaries`: the summaries of these ids, in order; unknown ids
    /// are left out, malformed ones refused.
    pub async fn summaries(&self, ids: &[String]) -> Result<Vec<Summary>, Refused> {
        let ids = parse_ids(ids)?;
        Ok(self
            .store
            .blocking(move |s| {
                let mut out = Vec::with_capacity(ids.len());
                let mut names: HashMap<(String, u64), String> = HashMap::new();
                for id in ids {
                    let Some(record) = s.record(&id)? else {
                        continue;
                    };
                    let key = (id.account.clone(), id.folder);
                    if !names.contains_key(&key) {
                        let display = s.folder_of(&id)?.map(|f| f.display).unwrap_or_default();
                        names.insert(key.clone(), display);
                    }
                    out.push(Summary {
                        folder: names.get(&key).cloned().unwrap_or_default(),
                        id,
                        record,
                    });
                }
                Ok(out)
            })
            .await?)
    }

    /// The account's folders and naming.
    fn naming(&self, account: &str) -> Result<(bool, Vec<FolderInfo>, Naming), Refused> {
        let journaled = self.journaled(account)?;
        let folders = self.store.folders(account)?;
        let naming = Naming::infer(&folders, journaled);
        Ok((journaled, folders, naming))
    }

    /// `CreateFolder` (`/` between levels).
    pub async fn create_folder(&self, account: &str, name: &str) -> Result<Effects, Refused> {
        let (journaled, folders, naming) = self.naming(account)?;
        let (raw, display) = naming.raw(name)?;
        if find(&folders, &naming, name).is_some() || folders.iter().any(|f| f.name == raw) {
            return Err(Refused::AlreadyExists(format!(
                "The folder {name:?} exists already"
            )));
        }
        let delimiter = Some(naming.delimiter.clone());
        let (_, effects) = self
            .store
            .create_folder(account, journaled, &raw, &display, delimiter)
            .await?;
        self.touched(&[(account.to_owned(), journaled)]).await;
        Ok(effects)
    }

    /// `RenameFolder`: the folder and its children (their ids stay).
    pub async fn rename_folder(
        &self,
        account: &str,
        from: &str,
        to: &str,
    ) -> Result<Effects, Refused> {
        let (journaled, folders, naming) = self.naming(account)?;
        let old = find(&folders, &naming, from)
            .cloned()
            .ok_or_else(|| Refused::NotFound(format!("No folder {from:?} in account {account}")))?;
        if is_inbox(&old.name) {
            return Err(Refused::NotSupported("INBOX cannot be renamed".into()));
        }
        let (raw, _) = naming.raw(to)?;
        if find(&folders, &naming, to).is_some() || folders.iter().any(|f| f.name == raw) {
            return Err(Refused::AlreadyExists(format!(
                "The folder {to:?} exists already"
            )));
        }
        let delimiter = old.delimiter.clone().unwrap_or(naming.delimiter.clone());
        let under = format!("{}{delimiter}", old.name);
        if raw.starts_with(&under) {
            return Err(Refused::Invalid(format!(
                "{from:?} cannot be moved inside itself"
            )));
        }
        let display_of = |raw: &str| {
            if journaled {
                crate::imap::utf7::decode(raw)
            } else {
                raw.to_owned()
            }
        };
        let mut renamed = Vec::new();
        for f in &folders {
            let name = if f.name == old.name {
                raw.clone()
            } else if let Some(rest) = f.name.strip_prefix(&under) {
                format!("{raw}{delimiter}{rest}")
            } else {
                continue;
            };
            renamed.push(Renamed {
                from: f.clone(),
                display: display_of(&name),
                name,
            });
        }
        let effects = self
            .store
            .rename_folders(account, journaled, &old.name, &raw, renamed)
            .await?;
        self.touched(&[(account.to_owned(), journaled)]).await;
        Ok(effects)
    }

    /// `DeleteFolder`: the folder and its messages (not INBOX).
    pub async fn delete_folder(&self, account: &str, name: &str) -> Result<Effects, Refused> {
        let (journaled, folders, naming) = self.naming(account)?;
        let folder = find(&folders, &naming, name)
            .cloned()
            .ok_or_else(|| Refused::NotFound(format!("No folder {name:?} in account {account}")))?;
        if is_inbox(&folder.name) {
            return Err(Refused::NotSupported("INBOX cannot be deleted".into()));
        }
        let effects = self
            .store
            .delete_folder(account, journaled, &folder)
            .await?;
        self.touched(&[(account.to_owned(), journaled)]).await;
        Ok(effects)
    }
}

/// Ids grouped by account, in the order accounts first appear.
fn by_account(ids: impl IntoIterator<Item = MessageId>) -> Vec<(String, Vec<MessageId>)> {
    let mut out: Vec<(String, Vec<MessageId>)> = Vec::new();
    for id in ids {
        match out.iter_mut().find(|(a, _)| *a == id.account) {
            Some((_, list)) => list.push(id),
            None => out.push((id.account.clone(), vec![id])),
        }
    }
    out
}

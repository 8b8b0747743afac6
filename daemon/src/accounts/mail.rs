//! # Acting on mail
//!
//! The one home of what a user does to stored mail through facteur: flags,
//! moves and copies (inside an account and across accounts), summaries by
//! id, and folder creation, renaming and deletion. Input is checked here
//! (ids, flag names, folder names) and refused with a typed [`Refused`]
//! that changes nothing; a change is applied to the store and journaled in
//! one transaction ([`crate::store::Change`]), flushed, and only then
//! answered, with a [`Done`]: the [`Effects`] the service announces and the
//! journaled accounts whose engines are to replay them. The service
//! announces first and only then calls [`Mail::replay`]
//! ([`crate::sync::Scheduler::kick`]), so a client never hears of the
//! replay's changes (a placeholder replaced by the server's message)
//! before the change itself. POP3 accounts keep no journal (their flags and
//! folders are local only).
//!
//! Everything a call names (ids, their accounts and folders, flags, the
//! target folder) is checked for every account before anything is
//! changed. A store failure part-way through a call over several accounts
//! is a [`Failed`] that still carries what was done before it, to be
//! announced and replayed like a success.

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

/// What an action did: the effects to announce, and the journaled
/// accounts to replay once they are announced ([`Mail::replay`]).
#[derive(Debug, Default)]
pub struct Done {
    /// The messages added, changed and removed, and whether folders changed.
    pub effects: Effects,
    /// The journaled (IMAP) accounts whose journal grew, each once.
    pub replay: Vec<String>,
}

impl Done {
    /// Add what one step did in `account` (replayed when `journaled`).
    fn add(&mut self, account: &str, journaled: bool, effects: Effects) {
        let any = !effects.added.is_empty()
            || !effects.changed.is_empty()
            || !effects.removed.is_empty()
            || effects.folders;
        self.effects.extend(effects);
        if any {
            self.replay_too(account, journaled);
        }
    }

    /// What a folder action did in `account` (always replayed when
    /// journaled: the journal grew).
    fn folders(account: &str, journaled: bool, effects: Effects) -> Self {
        let mut done = Done {
            effects,
            replay: Vec::new(),
        };
        done.replay_too(account, journaled);
        done
    }

    /// Replay `account` too (when `journaled`).
    fn replay_too(&mut self, account: &str, journaled: bool) {
        if journaled && !self.replay.iter().any(|a| a == account) {
            self.replay.push(account.to_owned());
        }
    }
}

/// An action that was refused or failed, with what it had done before
/// (nothing when refused: every check comes before the first change).
#[derive(Debug)]
pub struct Failed {
    /// Why.
    pub error: Refused,
    /// What was done before the failure: announce and replay it too.
    pub done: Done,
}

impl Failed {
    /// The failure after `done`.
    fn after(done: Done, error: impl Into<Refused>) -> Self {
        Failed {
            error: error.into(),
            done,
        }
    }
}

impl From<Refused> for Failed {
    fn from(error: Refused) -> Self {
        Failed {
            error,
            done: Done::default(),
        }
    }
}

impl From<anyhow::Error> for Failed {
    fn from(e: anyhow::Error) -> Self {
        Refused::Internal(e).into()
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Failed {}

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

    /// Tell the engines of the accounts in `done.replay` to replay their
    /// journals. The service calls it after announcing `done.effects`.
    pub async fn replay(&self, done: &Done) {
        for account in &done.replay {
            self.scheduler.kick(account).await;
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

    /// Parse ids and check they are all stored, in folders that exist, of
    /// accounts that exist; the first malformed or missing one is refused.
    /// Returns them grouped by account (in the order accounts first
    /// appear), with each account's journaled flag and whether any of its
    /// ids is a placeholder.
    async fn existing(&self, ids: &[String]) -> Result<Vec<Group>, Refused> {
        let parsed = parse_ids(ids)?;
        let mut journaled: HashMap<String, bool> = HashMap::new();
        for id in &parsed {
            if journaled.contains_key(&id.account) {
                continue;
            }
            let j = self
                .journaled(&id.account)
                .map_err(|_| Refused::NotFound(format!("No message {id}")))?;
            journaled.insert(id.account.clone(), j);
        }
        let found = self
            .store
            .blocking(move |s| {
                let mut out = Vec::with_capacity(parsed.len());
                let mut folders: HashMap<(String, u64), bool> = HashMap::new();
                for id in parsed {
                    let key = (id.account.clone(), id.folder);
                    let folder = match folders.get(&key) {
                        Some(f) => *f,
                        None => {
                            let f = s.folder_of(&id)?.is_some();
                            folders.insert(key, f);
                            f
                        }
                    };
                    let r = if folder { s.record(&id)? } else { None };
                    out.push((id, r.map(|r| is_placeholder(&r))));
                }
                Ok(out)
            })
            .await?;
        let mut groups: Vec<Group> = Vec::new();
        for (id, r) in found {
            let Some(placeholder) = r else {
                return Err(Refused::NotFound(format!("No message {id}")));
            };
            match groups.iter_mut().find(|g| g.account == id.account) {
                Some(g) => {
                    if placeholder && g.placeholder.is_none() {
                        g.placeholder = Some(id.clone());
                    }
                    g.ids.push(id);
                }
                None => groups.push(Group {
                    journaled: journaled.get(&id.account).copied().unwrap_or(false),
                    account: id.account.clone(),
                    placeholder: placeholder.then(|| id.clone()),
                    ids: vec![id],
                }),
            }
        }
        Ok(groups)
    }

    /// The stored folders of an account.
    async fn folders(&self, account: &str) -> Result<Vec<FolderInfo>, Refused> {
        let id = account.to_owned();
        Ok(self.store.blocking(move |s| s.folders(&id)).await?)
    }

    /// `SetFlags`: add and remove flags (`seen`, `flagged`, `answered`,
    /// `draft`, `deleted`, or keyword atoms) on messages of any accounts.
    /// Every id and flag is checked before any message is changed.
    pub async fn set_flags(
        &self,
        ids: &[String],
        add: &[String],
        remove: &[String],
    ) -> Result<Done, Failed> {
        let (add, remove) = parse_flags(add, remove)?;
        let groups = self.existing(ids).await?;
        let mut done = Done::default();
        if add.is_empty() && remove.is_empty() {
            return Ok(done);
        }
        for g in groups {
            match self
                .store
                .change_flags(&g.account, g.journaled, g.ids, add.clone(), remove.clone())
                .await
            {
                Ok(effects) => done.add(&g.account, g.journaled, effects),
                Err(e) => return Err(Failed::after(done, e)),
            }
        }
        Ok(done)
    }

    /// `MoveMessages` (`copy` false) and `CopyMessages` (`copy` true) into
    /// `folder` (a display name, `/` between levels) of account `to`. A
    /// message still being moved (a placeholder, until its account is
    /// online and the server has it) is refused (`NotSupported`), and so is
    /// a folder that cannot hold messages. Every id and the target are
    /// checked before any message is moved.
    pub async fn move_messages(
        &self,
        ids: &[String],
        to: &str,
        folder: &str,
        copy: bool,
    ) -> Result<Done, Failed> {
        let groups = self.existing(ids).await?;
        let target_journaled = self.journaled(to)?;
        let folders = self.folders(to).await?;
        let naming = Naming::infer(&folders, target_journaled);
        let info = find(&folders, &naming, folder)
            .cloned()
            .ok_or_else(|| Refused::NotFound(format!("No folder {folder:?} in account {to}")))?;
        if !info.selectable {
            return Err(Refused::NotSupported(format!(
                "The folder {folder:?} cannot hold messages"
            ))
            .into());
        }
        if let Some(id) = groups.iter().find_map(|g| g.placeholder.as_ref()) {
            return Err(Refused::NotSupported(format!("Message {id} {STILL_MOVING}")).into());
        }
        let target = Target {
            account: to.to_owned(),
            folder: info,
            journaled: target_journaled,
        };
        let mut done = Done::default();
        for g in groups {
            match self
                .store
                .move_messages(&g.account, g.journaled, g.ids, target.clone(), copy)
                .await
            {
                Ok(effects) => {
                    let any = !effects.added.is_empty() || !effects.removed.is_empty();
                    done.add(&g.account, g.journaled, effects);
                    if any {
                        done.replay_too(to, target_journaled);
                    }
                }
                Err(e) => return Err(Failed::after(done, e)),
            }
        }
        Ok(done)
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
    async fn naming(&self, account: &str) -> Result<(bool, Vec<FolderInfo>, Naming), Refused> {
        let journaled = self.journaled(account)?;
        let folders = self.folders(account).await?;
        let naming = Naming::infer(&folders, journaled);
        Ok((journaled, folders, naming))
    }

    /// `CreateFolder` (`/` between levels).
    pub async fn create_folder(&self, account: &str, name: &str) -> Result<Done, Failed> {
        let (journaled, folders, naming) = self.naming(account).await?;
        let (raw, display) = naming.raw(name)?;
        if find(&folders, &naming, name).is_some() || folders.iter().any(|f| f.name == raw) {
            return Err(
                Refused::AlreadyExists(format!("The folder {name:?} exists already")).into(),
            );
        }
        let delimiter = Some(naming.delimiter.clone());
        let (_, effects) = self
            .store
            .create_folder(account, journaled, &raw, &display, delimiter)
            .await?;
        Ok(Done::folders(account, journaled, effects))
    }

    /// `RenameFolder`: the folder and its children (their ids stay). INBOX
    /// cannot be renamed (`NotSupported`); a folder renamed to its own name
    /// or inside itself is `InvalidArgument`.
    pub async fn rename_folder(&self, account: &str, from: &str, to: &str) -> Result<Done, Failed> {
        let (journaled, folders, naming) = self.naming(account).await?;
        let old = find(&folders, &naming, from)
            .cloned()
            .ok_or_else(|| Refused::NotFound(format!("No folder {from:?} in account {account}")))?;
        if is_inbox(&old.name) {
            return Err(Refused::NotSupported("INBOX cannot be renamed".into()).into());
        }
        let (raw, _) = naming.raw(to)?;
        let same = find(&folders, &naming, to).is_some_and(|f| f.no == old.no) || raw == old.name;
        if same {
            return Err(Refused::Invalid(format!("{from:?} already has the name {to:?}")).into());
        }
        if find(&folders, &naming, to).is_some() || folders.iter().any(|f| f.name == raw) {
            return Err(Refused::AlreadyExists(format!("The folder {to:?} exists already")).into());
        }
        let delimiter = old.delimiter.clone().unwrap_or(naming.delimiter.clone());
        let under = format!("{}{delimiter}", old.name);
        if raw.starts_with(&under) {
            return Err(Refused::Invalid(format!("{from:?} cannot be moved inside itself")).into());
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
        Ok(Done::folders(account, journaled, effects))
    }

    /// `DeleteFolder`: the folder and its messages (not INBOX:
    /// `NotSupported`).
    pub async fn delete_folder(&self, account: &str, name: &str) -> Result<Done, Failed> {
        let (journaled, folders, naming) = self.naming(account).await?;
        let folder = find(&folders, &naming, name)
            .cloned()
            .ok_or_else(|| Refused::NotFound(format!("No folder {name:?} in account {account}")))?;
        if is_inbox(&folder.name) {
            return Err(Refused::NotSupported("INBOX cannot be deleted".into()).into());
        }
        let effects = self
            .store
            .delete_folder(account, journaled, &folder)
            .await?;
        Ok(Done::folders(account, journaled, effects))
    }
}

/// The ids of one account named by a call.
struct Group {
    account: String,
    journaled: bool,
    /// The first of its ids that is a placeholder (still being moved).
    placeholder: Option<MessageId>,
    ids: Vec<MessageId>,
}

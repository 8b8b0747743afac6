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

use std::sync::Arc;

use super::Registry;
use crate::store::{Effects, Store, Summary};
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

impl From<anyhow::Error> for Refused {
    fn from(e: anyhow::Error) -> Self {
        Refused::Internal(e)
    }
}

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

    /// `SetFlags`: add and remove flags (`seen`, `flagged`, `answered`,
    /// `draft`, `deleted`, or keyword atoms) on messages of any accounts.
    pub async fn set_flags(
        &self,
        ids: &[String],
        add: &[String],
        remove: &[String],
    ) -> Result<Effects, Refused> {
        let _ = (
            ids,
            add,
            remove,
            &self.registry,
            &self.store,
            &self.scheduler,
        );
        Err(Refused::NotSupported("SetFlags is not built yet".into()))
    }

    /// `MoveMessages` (`copy` false) and `CopyMessages` (`copy` true) into
    /// `folder` (a display name, `/` between levels) of account `to`.
    pub async fn move_messages(
        &self,
        ids: &[String],
        to: &str,
        folder: &str,
        copy: bool,
    ) -> Result<Effects, Refused> {
        let _ = (ids, to, folder, copy);
        Err(Refused::NotSupported(
            "MoveMessages is not built yet".into(),
        ))
    }

    /// `GetSummaries`: the summaries of these ids, in order; unknown ids
    /// are left out, malformed ones refused.
    pub async fn summaries(&self, ids: &[String]) -> Result<Vec<Summary>, Refused> {
        let _ = ids;
        Err(Refused::NotSupported(
            "GetSummaries is not built yet".into(),
        ))
    }

    /// `CreateFolder` (`/` between levels).
    pub async fn create_folder(&self, account: &str, name: &str) -> Result<Effects, Refused> {
        let _ = (account, name);
        Err(Refused::NotSupported(
            "CreateFolder is not built yet".into(),
        ))
    }

    /// `RenameFolder`.
    pub async fn rename_folder(
        &self,
        account: &str,
        from: &str,
        to: &str,
    ) -> Result<Effects, Refused> {
        let _ = (account, from, to);
        Err(Refused::NotSupported(
            "RenameFolder is not built yet".into(),
        ))
    }

    /// `DeleteFolder`: the folder and its messages.
    pub async fn delete_folder(&self, account: &str, name: &str) -> Result<Effects, Refused> {
        let _ = (account, name);
        Err(Refused::NotSupported(
            "DeleteFolder is not built yet".into(),
        ))
    }
}

//! # The Manager object
//!
//! `org.facteur.Facteur1.Manager` at the root path: account creation and
//! listing, the unified folder and message access, the message actions of
//! two-way sync (`SetFlags`, `MoveMessages`, `CopyMessages`,
//! `GetSummaries`), the `NewMessages` and `Messages*` signals.

// zbus generates a public signal-emitter trait for `NewMessages` without docs.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;

use facteur_dbus::{names, Error};
use zbus::object_server::{ObjectServer, SignalEmitter};
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue};

use super::account::AccountObject;
use super::changes::{accounts_in, finish, Names};
use super::dicts::ToDict as _;
use super::{change_error, internal};
use crate::store::{MessageId, Record};
use crate::Daemon;

/// The Manager interface.
pub struct Manager {
    daemon: Arc<Daemon>,
}

impl Manager {
    /// A Manager over the daemon's state.
    pub fn new(daemon: Arc<Daemon>) -> Self {
        Manager { daemon }
    }
}

fn object_path(id: &str) -> Result<OwnedObjectPath, Error> {
    OwnedObjectPath::try_from(names::account_path(id))
        .map_err(|e| internal(anyhow::anyhow!("Bad object path for account {id}: {e}")))
}

impl Manager {
    /// The message with this id, or the contract's error.
    async fn find(&self, id: &str) -> Result<(MessageId, Record), Error> {
        let mid: MessageId = id
            .parse()
            .map_err(|()| Error::InvalidArgument(format!("id: {id:?} is not a message id")))?;
        let key = mid.clone();
        let record = self
            .daemon
            .store
            .blocking(move |store| store.record(&key))
            .await
            .map_err(internal)?
            .ok_or_else(|| Error::NotFound(format!("No message with id {id}")))?;
        Ok((mid, record))
    }

    /// The id of the account at `path`: `InvalidArgument` for a path that
    /// is not an account path, `NotFound` for an account that does not
    /// exist.
    fn account_at(&self, path: &ObjectPath<'_>) -> Result<String, Error> {
        let id = names::account_id(path.as_str()).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "account: {path} is not an account path ({}/<id>)",
                names::ACCOUNTS_PATH
            ))
        })?;
        if self.daemon.accounts.get(id).is_none() {
            return Err(Error::NotFound(format!("No account with id {id}")));
        }
        Ok(id.to_owned())
    }

    /// `MoveMessages` and `CopyMessages`.
    async fn move_or_copy(
        &self,
        conn: &zbus::Connection,
        ids: &[String],
        account: &ObjectPath<'_>,
        folder: &str,
        copy: bool,
    ) -> Result<(), Error> {
        let to = self.account_at(account)?;
        let mut touched = accounts_in(ids);
        touched.insert(to.clone());
        let before = Names::of_all(&self.daemon, &touched).await;
        let result = self.daemon.mail.move_messages(ids, &to, folder, copy).await;
        finish(conn, &self.daemon, result, &before, touched, false).await
    }
}

#[zbus::interface(name = "org.facteur.Facteur1.Manager")]
impl Manager {
    /// Validate and store a new account, export it and return its path.
    #[zbus(out_args("account"))]
    async fn create_account(
        &self,
        settings: HashMap<String, OwnedValue>,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, Error> {
        let account = self
            .daemon
            .life
            .create(&super::settings_input(&settings))
            .await
            .map_err(change_error)?;
        let path = object_path(&account.id)?;
        server
            .at(
                path.as_str(),
                AccountObject::new(self.daemon.clone(), account),
            )
            .await
            .map_err(|e| internal(e.into()))?;
        Ok(path)
    }

    /// Check settings and log in to the servers without saving anything.
    #[zbus(out_args("report"))]
    async fn verify_settings(
        &self,
        settings: HashMap<String, OwnedValue>,
    ) -> Result<HashMap<String, OwnedValue>, Error> {
        // Bad input is refused exactly as CreateAccount would refuse it.
        let report = self
            .daemon
            .life
            .verify_settings(&super::settings_input(&settings))
            .await
            .map_err(change_error)?;
        Ok(super::text::clean_dict(report.to_dict()))
    }

    /// Candidate settings for an address, best first.
    #[zbus(out_args("candidates"))]
    async fn discover(&self, address: &str) -> Result<Vec<HashMap<String, OwnedValue>>, Error> {
        crate::accounts::validate::email("address", address)
            .map_err(|e| Error::InvalidArgument(e.0))?;
        let address = address.trim();
        Ok(self
            .daemon
            .discovery
            .discover(address)
            .await
            .iter()
            .map(|c| super::dicts::candidate_dict(c, address))
            .collect())
    }

    /// The paths of every account.
    #[zbus(out_args("accounts"))]
    async fn list_accounts(&self) -> Result<Vec<OwnedObjectPath>, Error> {
        self.daemon
            .accounts
            .all()
            .iter()
            .map(|a| object_path(&a.id))
            .collect()
    }

    /// The Unified folder, newest first.
    #[zbus(out_args("messages"))]
    async fn list_unified(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<HashMap<String, OwnedValue>>, Error> {
        let accounts = self.daemon.accounts.clone();
        let list = self
            .daemon
            .store
            .blocking(move |store| {
                store.list_unified(
                    |id| accounts.get(id).is_some_and(|a| a.settings().use_unified),
                    offset as usize,
                    limit as usize,
                )
            })
            .await
            .map_err(internal)?;
        Ok(list.iter().map(super::summary_dict).collect())
    }

    /// The raw bytes of a message. A message file that is missing or does
    /// not match its hash is never served: `NotFound` names the file, and
    /// the message is fetched again at the next sync where the server still
    /// has it (until then its id is gone, as `NotFound` says).
    #[zbus(out_args("message"))]
    async fn get_message(&self, id: &str) -> Result<Vec<u8>, Error> {
        let (mid, record) = self.find(id).await?;
        self.daemon.store.message(&mid, &record).await.map_err(|e| {
            match e.downcast::<crate::store::Damaged>() {
                Ok(d) => Error::NotFound(super::text::dbus_string(format!("Message {id}: {d}"))),
                Err(e) => internal(e),
            }
        })
    }

    /// Delete a message locally (and on the server where the account says so).
    async fn delete_message(&self, id: &str) -> Result<(), Error> {
        let (mid, _) = self.find(id).await?;
        self.daemon.scheduler.delete(mid).await.map_err(Error::from)
    }

    /// Add and remove flags (`seen`, `flagged`, `answered`, `draft`,
    /// `deleted`, keyword atoms) on messages of any accounts.
    async fn set_flags(
        &self,
        ids: Vec<String>,
        add: Vec<String>,
        remove: Vec<String>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        let touched = accounts_in(&ids);
        let before = Names::of_all(&self.daemon, &touched).await;
        let result = self.daemon.mail.set_flags(&ids, &add, &remove).await;
        finish(conn, &self.daemon, result, &before, touched, false).await
    }

    /// Move messages into a folder of an account (theirs or another).
    async fn move_messages(
        &self,
        ids: Vec<String>,
        account: ObjectPath<'_>,
        folder: &str,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        self.move_or_copy(conn, &ids, &account, folder, false).await
    }

    /// Copy messages into a folder of an account (theirs or another).
    async fn copy_messages(
        &self,
        ids: Vec<String>,
        account: ObjectPath<'_>,
        folder: &str,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        self.move_or_copy(conn, &ids, &account, folder, true).await
    }

    /// The summaries of these ids (unknown ones left out), in order.
    #[zbus(out_args("messages"))]
    async fn get_summaries(
        &self,
        ids: Vec<String>,
    ) -> Result<Vec<HashMap<String, OwnedValue>>, Error> {
        let list = self.daemon.mail.summaries(&ids).await?;
        Ok(list.iter().map(super::summary_dict).collect())
    }

    /// Emitted after new mail is durably stored.
    #[zbus(signal)]
    pub async fn new_messages(
        emitter: &SignalEmitter<'_>,
        account: ObjectPath<'_>,
        folder: &str,
        ids: &[&str],
    ) -> zbus::Result<()>;

    /// Emitted after messages appeared in a folder (durably stored).
    #[zbus(signal)]
    pub async fn messages_added(
        emitter: &SignalEmitter<'_>,
        account: ObjectPath<'_>,
        folder: &str,
        ids: &[&str],
    ) -> zbus::Result<()>;

    /// Emitted after the flags of messages changed (durably stored).
    #[zbus(signal)]
    pub async fn messages_changed(
        emitter: &SignalEmitter<'_>,
        account: ObjectPath<'_>,
        folder: &str,
        ids: &[&str],
    ) -> zbus::Result<()>;

    /// Emitted after messages left a folder (durably stored).
    #[zbus(signal)]
    pub async fn messages_removed(
        emitter: &SignalEmitter<'_>,
        account: ObjectPath<'_>,
        folder: &str,
        ids: &[&str],
    ) -> zbus::Result<()>;

    /// The daemon version.
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_owned()
    }

    /// Where passwords are kept: `secret-service` or `file`.
    #[zbus(property(emits_changed_signal = "const"))]
    fn secret_store(&self) -> String {
        self.daemon.secrets.kind().to_owned()
    }
}

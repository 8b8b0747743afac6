//! # Account objects
//!
//! `org.facteur.Facteur1.Account`, one object per account. Properties read
//! the registry's current settings and status; every change is announced
//! with one PropertiesChanged signal listing exactly what changed. The
//! names and values of the properties are in [`super::status`]; the folder
//! and outbox methods of two-way sync announce what they did through
//! [`super::changes`].

// zbus generates a public signal-emitter trait for `FoldersChanged` without
// docs.
#![allow(missing_docs)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use facteur_dbus::{names, Error};
use tracing::{info, warn};
use zbus::object_server::{ObjectServer, SignalEmitter};
use zbus::zvariant::{OwnedValue, Value};

use super::changes::{finish, Names};
use super::dicts::ToDict as _;
use super::events::recount;
use super::text::{clean_dict, dbus_string, dbus_text};
use super::tree::Served;
use super::{change_error, failure_error, internal, secret_error, summary_dict};
use crate::accounts::{Account, Done, Failed};
use crate::Daemon;

use super::status::{emit, folders, settings_properties};
pub use super::status::{emit_changes, emit_status, state_name};

/// The Account interface of one account.
pub struct AccountObject {
    daemon: Arc<Daemon>,
    account: Arc<Account>,
}

impl AccountObject {
    /// The object of `account`, ready to serve (a `Set` of one of its
    /// properties answers `PropertyReadOnly`).
    pub fn new(daemon: Arc<Daemon>, account: Arc<Account>) -> Served<Self> {
        Served::new(AccountObject { daemon, account })
    }
}

#[zbus::interface(name = "org.facteur.Facteur1.Account")]
impl AccountObject {
    /// Change settings; same keys and checks as CreateAccount.
    async fn update(
        &self,
        changes: HashMap<String, OwnedValue>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<(), Error> {
        let updated = self
            .daemon
            .life
            .update(&self.account, &super::settings_input(&changes))
            .await
            .map_err(change_error)?;
        self.daemon.outbox.wake();
        let after = self.account.settings();
        let detected = self.account.status().detected_folders;
        let old = settings_properties(&updated.before, &detected);
        let changed: HashMap<&str, Value<'_>> = settings_properties(&after, &detected)
            .into_iter()
            .zip(old)
            .filter(|((_, new), (_, old))| new != old)
            .map(|((name, new), _)| (name, new))
            .collect();
        if !changed.is_empty() {
            info!(
                "Account {} updated: {}.",
                self.account.id,
                changed.keys().copied().collect::<Vec<_>>().join(", ")
            );
            emit(&emitter, &self.account.id, changed).await;
        }
        emit_status(&emitter, &self.account, &updated.status).await;
        Ok(())
    }

    /// Remove the account, its secrets and its local messages.
    async fn delete(
        &self,
        #[zbus(object_server)] server: &ObjectServer,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<(), Error> {
        // The lifecycle removes the engine, the mail and the settings file
        // at once, and the passwords when the secret store can be written.
        let deleted = match self.daemon.life.delete(&self.account).await {
            Ok(d) => d,
            Err(failed) => {
                // The account stays, its engine restarted (or not).
                emit_status(&emitter, &self.account, &failed.status).await;
                return Err(internal(failed.error));
            }
        };
        if !deleted {
            // A Delete that ran first removed it (and its object).
            return Err(Error::NotFound(format!(
                "Account {} no longer exists",
                self.account.id
            )));
        }
        let path = names::account_path(&self.account.id);
        match server.remove::<AccountObject, _>(path.as_str()).await {
            // Already unserved: the account is gone all the same.
            Ok(_) | Err(zbus::Error::InterfaceNotFound) => {}
            Err(e) => warn!(
                "Account {}: cannot unserve its object: {e}",
                self.account.id
            ),
        }
        Ok(())
    }

    /// Verify the saved settings.
    #[zbus(out_args("report"))]
    async fn verify(&self) -> Result<HashMap<String, OwnedValue>, Error> {
        let report = self
            .daemon
            .life
            .verify(&self.account)
            .await
            .map_err(secret_error)?;
        Ok(clean_dict(report.to_dict()))
    }

    /// Run one sync pass now.
    #[zbus(out_args("new_messages"))]
    async fn sync(&self, #[zbus(signal_emitter)] emitter: SignalEmitter<'_>) -> Result<u32, Error> {
        // An account without an engine (the keyring was locked at start)
        // gets one now if its password can be read.
        let engine = self.daemon.life.ensure_engine(&self.account).await;
        emit_status(&emitter, &self.account, &engine.status).await;
        if engine.gone {
            return Err(Error::NotFound(format!(
                "Account {} no longer exists",
                self.account.id
            )));
        }
        if let Some(why) = engine.refused {
            return Err(Error::from(why));
        }
        self.daemon
            .scheduler
            .sync(&self.account.id)
            .await
            .map_err(Error::from)
    }

    /// Folder tree with roles and counts.
    #[zbus(out_args("folders"))]
    async fn list_folders(&self) -> Result<Vec<HashMap<String, OwnedValue>>, Error> {
        let id = self.account.id.clone();
        // sled work: off the async workers.
        let folders = self
            .daemon
            .store
            .blocking(move |store| {
                let mut out = Vec::new();
                for f in store.folders(&id)? {
                    let (total, unread) = store.counts(&id, Some(f.no))?;
                    out.push((f, total, unread));
                }
                Ok(out)
            })
            .await
            .map_err(internal)?;
        Ok(folders
            .iter()
            .map(|(f, total, unread)| super::dicts::folder_dict(f, *total, *unread))
            .collect())
    }

    /// Messages of one folder, newest first.
    #[zbus(out_args("messages"))]
    async fn list_messages(
        &self,
        folder: &str,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<HashMap<String, OwnedValue>>, Error> {
        let id = self.account.id.clone();
        let name = folder.to_owned();
        // Folders are named as ListFolders shows them (escaped for D-Bus).
        let list = self
            .daemon
            .store
            .blocking(move |store| {
                let Some(info) = store
                    .folders(&id)?
                    .into_iter()
                    .find(|f| dbus_text(&f.display) == name)
                else {
                    return Ok(None);
                };
                store
                    .list_folder(&id, &info, offset as usize, limit as usize)
                    .map(Some)
            })
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "Account {} has no folder {folder:?}",
                    self.account.id
                ))
            })?;
        Ok(list.iter().map(summary_dict).collect())
    }

    /// Submit a message over the account's SMTP server.
    async fn send(&self, message: Vec<u8>) -> Result<(), Error> {
        // Network and login failures map as everywhere else; a refusal by
        // the server (or a message that cannot be sent) is InvalidArgument
        // when final and ConnectionFailed when the server said "later".
        use crate::smtp::{Cause, Outcome, SendError};
        match self.daemon.life.send(&self.account, &message).await {
            Outcome::Sent { .. } => Ok(()),
            Outcome::RetryLater(SendError {
                cause: Cause::Net(kind),
                message,
            })
            | Outcome::Failed(SendError {
                cause: Cause::Net(kind),
                message,
            }) => Err(failure_error(crate::net::Failure::new(kind, message))),
            Outcome::RetryLater(e) => Err(Error::ConnectionFailed(e.message)),
            Outcome::Failed(e) => Err(Error::InvalidArgument(e.message)),
        }
    }

    /// Create a folder (`/` between levels).
    async fn create_folder(
        &self,
        name: &str,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        let before = Names::of(&self.daemon, &self.account.id).await;
        let result = self.daemon.mail.create_folder(&self.account.id, name).await;
        self.folders_done(conn, result, &before).await
    }

    /// Rename a folder (and the folders below it).
    async fn rename_folder(
        &self,
        from: &str,
        to: &str,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        let before = Names::of(&self.daemon, &self.account.id).await;
        let result = self
            .daemon
            .mail
            .rename_folder(&self.account.id, from, to)
            .await;
        self.folders_done(conn, result, &before).await
    }

    /// Delete a folder and its messages.
    async fn delete_folder(
        &self,
        name: &str,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), Error> {
        // The removed messages are announced under the folder's name from
        // before: it is gone from the store by then.
        let before = Names::of(&self.daemon, &self.account.id).await;
        let result = self.daemon.mail.delete_folder(&self.account.id, name).await;
        self.folders_done(conn, result, &before).await
    }

    /// Emitted after the account's folder list changed (a folder created,
    /// renamed or deleted): clients list the folders again.
    // The Rust name differs: zbus names the `Folders` property's own
    // change notifier `folders_changed`.
    #[zbus(signal, name = "FoldersChanged")]
    pub async fn folder_list_changed(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;

    /// Store a message durably in the outbox; its outbox id.
    #[zbus(out_args("id"))]
    async fn enqueue(
        &self,
        message: Vec<u8>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<String, Error> {
        if message.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::InvalidArgument(
                "message: an empty message cannot be queued".to_owned(),
            ));
        }
        let id = self.daemon.outbox.enqueue(&self.account, message).await?;
        recount(&self.daemon, &emitter, &self.account).await;
        Ok(id)
    }

    /// The queued and failed messages, oldest first.
    #[zbus(out_args("messages"))]
    async fn list_outbox(&self) -> Result<Vec<HashMap<String, OwnedValue>>, Error> {
        let list = self.daemon.outbox.list(&self.account).await?;
        Ok(list.iter().map(super::dicts::queued_dict).collect())
    }

    /// Drop a queued or failed message from the outbox.
    async fn cancel_outbox(
        &self,
        id: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<(), Error> {
        self.daemon.outbox.cancel(&self.account, id).await?;
        recount(&self.daemon, &emitter, &self.account).await;
        Ok(())
    }

    /// Stable account id.
    #[zbus(property(emits_changed_signal = "const"))]
    fn id(&self) -> String {
        self.account.id.clone()
    }

    /// Account name.
    #[zbus(property)]
    fn name(&self) -> String {
        self.account.settings().name().to_owned()
    }

    /// E-mail address.
    #[zbus(property)]
    fn email_address(&self) -> String {
        self.account.settings().email
    }

    /// Display name.
    #[zbus(property)]
    fn display_name(&self) -> String {
        self.account.settings().display_name
    }

    /// Feeds the Unified folder.
    #[zbus(property)]
    fn use_unified(&self) -> bool {
        self.account.settings().use_unified
    }

    /// `imap` or `pop3`.
    #[zbus(property)]
    fn incoming_protocol(&self) -> String {
        self.account
            .settings()
            .incoming_protocol
            .as_str()
            .to_owned()
    }

    /// Incoming server host.
    #[zbus(property)]
    fn incoming_host(&self) -> String {
        self.account.settings().incoming_host
    }

    /// Incoming server port.
    #[zbus(property)]
    fn incoming_port(&self) -> u16 {
        self.account.settings().incoming_port()
    }

    /// `tls`, `starttls` or `none`.
    #[zbus(property)]
    fn incoming_security(&self) -> String {
        self.account
            .settings()
            .incoming_security
            .as_str()
            .to_owned()
    }

    /// Incoming login.
    #[zbus(property)]
    fn incoming_login(&self) -> String {
        self.account.settings().incoming_login().to_owned()
    }

    /// Minutes between polls.
    #[zbus(property)]
    fn poll_interval_minutes(&self) -> u32 {
        self.account.settings().poll_interval_minutes
    }

    /// POP3: leave messages on the server.
    #[zbus(property)]
    fn leave_on_server(&self) -> bool {
        self.account.settings().leave_on_server
    }

    /// POP3: local deletion deletes on the server.
    #[zbus(property)]
    fn delete_on_server(&self) -> bool {
        self.account.settings().delete_on_server
    }

    /// SMTP host.
    #[zbus(property)]
    fn smtp_host(&self) -> String {
        self.account.settings().smtp_host
    }

    /// SMTP port.
    #[zbus(property)]
    fn smtp_port(&self) -> u16 {
        self.account.settings().smtp_port()
    }

    /// SMTP security.
    #[zbus(property)]
    fn smtp_security(&self) -> String {
        self.account.settings().smtp_security.as_str().to_owned()
    }

    /// SMTP login.
    #[zbus(property)]
    fn smtp_login(&self) -> String {
        self.account.settings().smtp_login().to_owned()
    }

    /// Role → folder.
    #[zbus(property)]
    fn folders(&self) -> HashMap<String, String> {
        folders(
            &self.account.settings(),
            &self.account.status().detected_folders,
        )
    }

    /// Accepts certificates that fail verification.
    #[zbus(property)]
    fn accept_invalid_certs(&self) -> bool {
        self.account.settings().accept_invalid_certs
    }

    /// Run-time state.
    #[zbus(property)]
    fn state(&self) -> String {
        state_name(self.account.status().state).to_owned()
    }

    /// The last error, empty when none.
    #[zbus(property)]
    fn last_error(&self) -> String {
        dbus_string(self.account.status().last_error)
    }

    /// The stable code of the last error (`auth-failed`, `disk-full`, …),
    /// empty when healthy.
    #[zbus(property)]
    fn last_error_code(&self) -> String {
        self.account.status().last_error_code
    }

    /// True when only the user can fix what is wrong (credentials, an
    /// untrusted certificate).
    #[zbus(property)]
    fn attention_needed(&self) -> bool {
        self.account.status().attention_needed
    }

    /// Unix seconds of the next retry while backing off, 0 when none.
    #[zbus(property)]
    fn next_retry(&self) -> u64 {
        self.account.status().next_retry
    }

    /// (done, total) messages of the current pass, (0, 0) when idle.
    #[zbus(property)]
    fn progress(&self) -> (u32, u32) {
        self.account.status().progress
    }

    /// Unix seconds of the last successful sync, 0 if never.
    #[zbus(property)]
    fn last_sync(&self) -> u64 {
        self.account.status().last_sync
    }

    /// Messages stored for the account.
    #[zbus(property)]
    fn message_count(&self) -> u32 {
        self.account.status().message_count
    }

    /// Unread messages stored for the account.
    #[zbus(property)]
    fn unread_count(&self) -> u32 {
        self.account.status().unread_count
    }

    /// Changes made locally and not yet applied on the server.
    #[zbus(property)]
    fn pending_changes(&self) -> u32 {
        self.account.status().pending_changes
    }

    /// Messages waiting in the outbox (queued or being sent; not failed).
    #[zbus(property)]
    fn outbox_count(&self) -> u32 {
        self.account.status().outbox_count
    }

    /// Messages of the outbox the server refused for good (`failed`).
    #[zbus(property)]
    fn outbox_failed_count(&self) -> u32 {
        self.account.status().outbox_failed_count
    }
}

impl AccountObject {
    /// After a folder method: recount, announce the messages that went or
    /// moved, and `FoldersChanged` (always on success: the caller asked
    /// for a folder change and got it), then replay; see
    /// [`super::changes::finish`].
    async fn folders_done(
        &self,
        conn: &zbus::Connection,
        result: Result<Done, Failed>,
        before: &Names,
    ) -> Result<(), Error> {
        finish(
            conn,
            &self.daemon,
            result,
            before,
            BTreeSet::from([self.account.id.clone()]),
            true,
        )
        .await
    }
}

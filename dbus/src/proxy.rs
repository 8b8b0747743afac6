//! # Proxies
//!
//! zbus client proxies for the Manager (at the root object) and for one
//! Account object. Methods answer [`crate::Error`], so a caller can branch on
//! `InvalidArgument`, `NotFound`, … without parsing strings.

use std::collections::HashMap;

use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

use crate::Error;

/// A settings or report dictionary (`a{sv}`) as sent.
pub type Dict<'a> = HashMap<&'a str, Value<'a>>;
/// A settings or report dictionary (`a{sv}`) as received.
pub type OwnedDict = HashMap<String, OwnedValue>;

/// `org.facteur.Facteur1.Manager` at `/org/facteur/Facteur1`.
#[zbus::proxy(
    interface = "org.facteur.Facteur1.Manager",
    default_service = "org.facteur.Facteur1",
    default_path = "/org/facteur/Facteur1"
)]
pub trait Manager {
    /// Validate and store a new account, start syncing it; returns its path.
    fn create_account(&self, settings: Dict<'_>) -> Result<OwnedObjectPath, Error>;

    /// Log in to the incoming and SMTP servers with unsaved settings.
    fn verify_settings(&self, settings: Dict<'_>) -> Result<OwnedDict, Error>;

    /// Candidate settings for an address, best first.
    fn discover(&self, address: &str) -> Result<Vec<OwnedDict>, Error>;

    /// The paths of every account.
    fn list_accounts(&self) -> Result<Vec<OwnedObjectPath>, Error>;

    /// The Unified folder, newest first.
    fn list_unified(&self, offset: u32, limit: u32) -> Result<Vec<OwnedDict>, Error>;

    /// The raw RFC 5322 bytes of a message, exactly as fetched.
    fn get_message(&self, id: &str) -> Result<Vec<u8>, Error>;

    /// Delete a message locally (and on the server where the account says so).
    fn delete_message(&self, id: &str) -> Result<(), Error>;

    /// Add and remove flags (`seen`, `flagged`, `answered`, `draft`,
    /// `deleted`, keyword atoms) on messages of any accounts.
    fn set_flags(&self, ids: &[&str], add: &[&str], remove: &[&str]) -> Result<(), Error>;

    /// Move messages into `folder` of the account at `account`.
    fn move_messages(
        &self,
        ids: &[&str],
        account: &ObjectPath<'_>,
        folder: &str,
    ) -> Result<(), Error>;

    /// Copy messages into `folder` of the account at `account`.
    fn copy_messages(
        &self,
        ids: &[&str],
        account: &ObjectPath<'_>,
        folder: &str,
    ) -> Result<(), Error>;

    /// The summaries of these ids, in order (ids of messages gone are left
    /// out).
    fn get_summaries(&self, ids: &[&str]) -> Result<Vec<OwnedDict>, Error>;

    /// Emitted after new mail is durably stored.
    #[zbus(signal)]
    fn new_messages(
        &self,
        account: ObjectPath<'_>,
        folder: &str,
        ids: Vec<&str>,
    ) -> zbus::Result<()>;

    /// Emitted after messages appeared in a folder (durably stored).
    #[zbus(signal)]
    fn messages_added(
        &self,
        account: ObjectPath<'_>,
        folder: &str,
        ids: Vec<&str>,
    ) -> zbus::Result<()>;

    /// Emitted after the flags of messages changed (durably stored).
    #[zbus(signal)]
    fn messages_changed(
        &self,
        account: ObjectPath<'_>,
        folder: &str,
        ids: Vec<&str>,
    ) -> zbus::Result<()>;

    /// Emitted after messages left a folder (durably stored).
    #[zbus(signal)]
    fn messages_removed(
        &self,
        account: ObjectPath<'_>,
        folder: &str,
        ids: Vec<&str>,
    ) -> zbus::Result<()>;

    /// The daemon version, e.g. `0.1.0` (the contract is version 1 while the
    /// names end in `1`).
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;

    /// Where passwords are kept: `secret-service` or `file`.
    #[zbus(property)]
    fn secret_store(&self) -> zbus::Result<String>;
}

/// `org.facteur.Facteur1.Account` at `/org/facteur/Facteur1/accounts/<id>`.
#[zbus::proxy(
    interface = "org.facteur.Facteur1.Account",
    default_service = "org.facteur.Facteur1"
)]
pub trait Account {
    /// Change settings; same keys and checks as CreateAccount.
    fn update(&self, changes: Dict<'_>) -> Result<(), Error>;
    /// Remove the account, its secrets and its local messages.
    fn delete(&self) -> Result<(), Error>;
    /// Verify the saved settings.
    fn verify(&self) -> Result<OwnedDict, Error>;
    /// Run one sync pass now; returns the number of new messages.
    fn sync(&self) -> Result<u32, Error>;
    /// Folder tree with roles and counts.
    fn list_folders(&self) -> Result<Vec<OwnedDict>, Error>;
    /// Messages of one folder, newest first.
    fn list_messages(&self, folder: &str, offset: u32, limit: u32)
        -> Result<Vec<OwnedDict>, Error>;
    /// Submit an RFC 5322 message over the account's SMTP server.
    fn send(&self, message: &[u8]) -> Result<(), Error>;
    /// Create a folder (`/` between levels).
    fn create_folder(&self, name: &str) -> Result<(), Error>;
    /// Rename a folder.
    fn rename_folder(&self, from: &str, to: &str) -> Result<(), Error>;
    /// Delete a folder and its messages.
    fn delete_folder(&self, name: &str) -> Result<(), Error>;
    /// Store a message durably in the outbox; its outbox id.
    fn enqueue(&self, message: &[u8]) -> Result<String, Error>;
    /// The queued and failed messages, oldest first.
    fn list_outbox(&self) -> Result<Vec<OwnedDict>, Error>;
    /// Drop a message from the outbox.
    fn cancel_outbox(&self, id: &str) -> Result<(), Error>;

    /// Emitted after the account's folder list changed.
    #[zbus(signal, name = "FoldersChanged")]
    fn folder_list_changed(&self) -> zbus::Result<()>;

    /// Stable account id.
    #[zbus(property)]
    fn id(&self) -> zbus::Result<String>;
    /// Account name.
    #[zbus(property)]
    fn name(&self) -> zbus::Result<String>;
    /// E-mail address.
    #[zbus(property)]
    fn email_address(&self) -> zbus::Result<String>;
    /// Display name.
    #[zbus(property)]
    fn display_name(&self) -> zbus::Result<String>;
    /// Feeds the Unified folder.
    #[zbus(property)]
    fn use_unified(&self) -> zbus::Result<bool>;
    /// `imap` or `pop3`.
    #[zbus(property)]
    fn incoming_protocol(&self) -> zbus::Result<String>;
    /// Incoming server host.
    #[zbus(property)]
    fn incoming_host(&self) -> zbus::Result<String>;
    /// Incoming server port.
    #[zbus(property)]
    fn incoming_port(&self) -> zbus::Result<u16>;
    /// `tls`, `starttls` or `none`.
    #[zbus(property)]
    fn incoming_security(&self) -> zbus::Result<String>;
    /// Incoming login.
    #[zbus(property)]
    fn incoming_login(&self) -> zbus::Result<String>;
    /// Minutes between polls.
    #[zbus(property)]
    fn poll_interval_minutes(&self) -> zbus::Result<u32>;
    /// POP3: leave messages on the server.
    #[zbus(property)]
    fn leave_on_server(&self) -> zbus::Result<bool>;
    /// POP3: local deletion deletes on the server.
    #[zbus(property)]
    fn delete_on_server(&self) -> zbus::Result<bool>;
    /// SMTP host.
    #[zbus(property)]
    fn smtp_host(&self) -> zbus::Result<String>;
    /// SMTP port.
    #[zbus(property)]
    fn smtp_port(&self) -> zbus::Result<u16>;
    /// SMTP security.
    #[zbus(property)]
    fn smtp_security(&self) -> zbus::Result<String>;
    /// SMTP login.
    #[zbus(property)]
    fn smtp_login(&self) -> zbus::Result<String>;
    /// Role → folder.
    #[zbus(property)]
    fn folders(&self) -> zbus::Result<HashMap<String, String>>;
    /// Accepts certificates that fail verification.
    #[zbus(property)]
    fn accept_invalid_certs(&self) -> zbus::Result<bool>;
    /// `idle`, `syncing`, `offline`, `error`, `needs-credentials`, `disabled`.
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    /// The last error, empty when none.
    #[zbus(property)]
    fn last_error(&self) -> zbus::Result<String>;
    /// The stable code of the last error (see [`crate::error_code`]),
    /// empty when healthy.
    #[zbus(property)]
    fn last_error_code(&self) -> zbus::Result<String>;
    /// True when only the user can fix what is wrong (credentials, an
    /// untrusted certificate).
    #[zbus(property)]
    fn attention_needed(&self) -> zbus::Result<bool>;
    /// Unix seconds of the next retry while backing off, 0 when none.
    #[zbus(property)]
    fn next_retry(&self) -> zbus::Result<u64>;
    /// (done, total) messages of the current pass, (0, 0) when idle.
    #[zbus(property)]
    fn progress(&self) -> zbus::Result<(u32, u32)>;
    /// Unix seconds of the last successful sync, 0 if never.
    #[zbus(property)]
    fn last_sync(&self) -> zbus::Result<u64>;
    /// Messages stored for the account.
    #[zbus(property)]
    fn message_count(&self) -> zbus::Result<u32>;
    /// Unread messages stored for the account.
    #[zbus(property)]
    fn unread_count(&self) -> zbus::Result<u32>;
    /// Changes made locally, not yet applied on the server.
    #[zbus(property)]
    fn pending_changes(&self) -> zbus::Result<u32>;
    /// Messages waiting in the outbox.
    #[zbus(property)]
    fn outbox_count(&self) -> zbus::Result<u32>;
}

//! # An account's life
//!
//! The one home of create, update, delete, credentials and engine starts.
//! [`Lifecycle`] owns the registry, the secret store, the scheduler and the
//! store handle; the D-Bus methods convert their input, call one method
//! here, and announce what it says changed.
//!
//! - Create: the id is reserved, the passwords are stored (each once), then
//!   the settings file is written, which is what makes the account exist;
//!   the engine starts with the password given, never read back.
//! - Update: only what changed restarts. Connection settings or a new
//!   incoming password restart the engine; name, display name, unified
//!   flag, folder roles and poll interval go to the running engine
//!   ([`crate::sync::Scheduler::reconfigure`]); a new SMTP password
//!   touches no engine.
//! - Delete always works: the engine stops, the mail and the settings file
//!   go at once; the passwords go when the secret store can be written,
//!   noted durably until then ([`super::retired`], [`super::cleanup`]).
//!
//! Changes are serialised: one create, update or delete at a time. File
//! and store work runs off the async workers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use zeroize::Zeroizing;

mod oneoff;
mod status;

use status::{credentials_restored, no_password, secret_refused, smtp_refused};

use super::cleanup::Cleanup;
use super::retired::Retired;
use super::{Account, Change, Field, Input, Registry, Settings, State};
use crate::net::{Failure, FailureKind};
use crate::secrets::{SecretError, SecretStore, Which};
use crate::store::Store;
use crate::sync::Scheduler;

/// How long `Delete` waits for the secret store before leaving the
/// passwords to the background cleanup.
const DELETE_SECRETS_WAIT: Duration = Duration::from_secs(5);

/// The accounts' life: see the module docs.
pub struct Lifecycle {
    registry: Arc<Registry>,
    secrets: Arc<SecretStore>,
    scheduler: Arc<Scheduler>,
    store: Store,
    retired: Arc<Retired>,
    /// One create, update or delete at a time.
    changes: tokio::sync::Mutex<()>,
    wake_cleanup: Arc<Notify>,
    stop_cleanup: CancellationToken,
    cleanup_task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The store's error [`Lifecycle::report_store`] showed, cleared when
    /// the store recovers.
    store_error: std::sync::Mutex<Option<String>>,
}

/// The accounts whose engines can start, with their passwords, read once
/// by [`Lifecycle::prepare`] for [`Lifecycle::start_engines`].
pub struct Ready(Vec<(Arc<Account>, Zeroizing<String>)>);

/// A Delete that could not be done: the account stays whole.
#[derive(Debug)]
pub struct DeleteFailed {
    /// Why.
    pub error: anyhow::Error,
    /// The status fields changed by restarting the account's engine.
    pub status: Vec<Field>,
}

/// What [`Lifecycle::ensure_engine`] found.
#[derive(Debug, Default)]
pub struct Engine {
    /// The status fields that changed.
    pub status: Vec<Field>,
    /// Why no engine runs, when none does.
    pub refused: Option<Failure>,
    /// The account was deleted meanwhile.
    pub gone: bool,
}

/// What an update changed.
#[derive(Debug)]
pub struct Updated {
    /// The settings before the change (the account has the new ones).
    pub before: Settings,
    /// The status fields that changed.
    pub status: Vec<Field>,
}

impl Lifecycle {
    /// The lifecycle over these parts; `retired` is the note of
    /// `config_dir` ([`Retired::load`]).
    pub fn new(
        registry: Arc<Registry>,
        secrets: Arc<SecretStore>,
        scheduler: Arc<Scheduler>,
        store: Store,
        retired: Retired,
    ) -> Self {
        Lifecycle {
            registry,
            secrets,
            scheduler,
            store,
            retired: Arc::new(retired),
            changes: tokio::sync::Mutex::new(()),
            wake_cleanup: Arc::new(Notify::new()),
            stop_cleanup: CancellationToken::new(),
            cleanup_task: std::sync::Mutex::new(None),
            store_error: std::sync::Mutex::new(None),
        }
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub(super) fn cleanup(&self) -> Cleanup {
        Cleanup {
            registry: self.registry.clone(),
            secrets: self.secrets.clone(),
            retired: self.retired.clone(),
            wake: self.wake_cleanup.clone(),
        }
    }

    /// At start, before the objects are served: remove the passwords that
    /// belong to no account (the file store at once, before anything can
    /// write it; the Secret Service, which may be locked, in the
    /// background cleanup), read each account's incoming password once to
    /// settle its credential state, and fill counts and folder roles from
    /// the store.
    pub async fn prepare(&self) -> Ready {
        let cleanup = self.cleanup();
        cleanup.reconcile().await;
        let orphans_done = match *self.secrets {
            SecretStore::File(_) => cleanup.remove_orphans().await,
            SecretStore::Service(_) => false,
        };
        let task = tokio::spawn(cleanup.run(
            orphans_done,
            super::cleanup::retry_interval(),
            self.stop_cleanup.clone(),
        ));
        *lock(&self.cleanup_task) = Some(task);
        let mut ready = Vec::new();
        for account in self.registry.all() {
            let (password, _) = self.read_incoming(&account).await;
            if let Some(password) = password {
                ready.push((account, password));
            }
        }
        self.load_status().await;
        self.report_store();
        Ready(ready)
    }

    /// Start the engines [`Lifecycle::prepare`] found ready.
    pub async fn start_engines(&self, ready: Ready) {
        for (account, password) in ready.0 {
            self.scheduler
                .start(&account.id, account.settings(), password)
                .await;
        }
    }

    /// Stop the background cleanup (daemon shutdown).
    pub async fn shutdown(&self) {
        self.stop_cleanup.cancel();
        let task = lock(&self.cleanup_task).take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                warn!("The password cleanup task failed: {e}");
            }
        }
    }

    /// Fill each account's counts and detected folder roles from the
    /// store, so the properties are right before the first sync of this
    /// run (and after the store comes back). The status fields changed,
    /// per account.
    pub async fn load_status(&self) -> Vec<(Arc<Account>, Vec<Field>)> {
        let mut changes = Vec::new();
        for account in self.registry.all() {
            let store = self.store.clone();
            let id = account.id.clone();
            let found = tokio::task::spawn_blocking(move || {
                (store.counts(&id, None), detected(&store, &id))
            })
            .await;
            let Ok((counts, folders)) = found else {
                continue;
            };
            let changed = account.set_status(|s| {
                if let Ok((total, unread)) = counts {
                    s.message_count = total;
                    s.unread_count = unread;
                }
                s.detected_folders = folders;
            });
            changes.push((account, changed));
        }
        changes
    }

    /// The store opened again: fill counts and folders from it and clear
    /// the error [`Lifecycle::report_store`] showed (an account in
    /// `needs-credentials` keeps its own reason). The status fields
    /// changed, per account, for the service to announce.
    pub async fn store_recovered(&self) -> Vec<(Arc<Account>, Vec<Field>)> {
        let shown = lock(&self.store_error).take();
        let mut changes = self.load_status().await;
        if let Some(shown) = shown {
            for (account, changed) in &mut changes {
                let cleared = account.set_status(|s| {
                    if s.state != State::NeedsCredentials && s.last_error == shown {
                        s.state = State::Idle;
                        s.last_error.clear();
                        s.last_error_code.clear();
                    }
                });
                for field in cleared {
                    if !changed.contains(&field) {
                        changed.push(field);
                    }
                }
            }
        }
        info!("The message index is available again.");
        changes
    }

    /// While the store is unavailable, show why on every account that can
    /// sync: state `error`, the sentence, and `disk-full` when the disk is
    /// full (`internal` otherwise). An account in `needs-credentials`
    /// keeps its own reason: the password is what a person must fix first.
    pub fn report_store(&self) {
        let Some(why) = self.store.unavailable() else {
            return;
        };
        warn!("Every account waits for the message index: {why}.");
        *lock(&self.store_error) = Some(why.message.clone());
        for account in self.registry.all() {
            account.set_status(|s| {
                if s.state == State::NeedsCredentials {
                    return;
                }
                s.state = State::Error;
                s.last_error = why.message.clone();
                s.last_error_code = if why.is_disk_full() {
                    facteur_dbus::error_code::DISK_FULL
                } else {
                    facteur_dbus::error_code::INTERNAL
                }
                .to_owned();
            });
        }
    }

    /// Validate and store a new account and start its engine. Passwords
    /// are stored first: the settings file is what makes the account
    /// exist, so a crash in between leaves a password without an account
    /// (removed at the next start), never an account without one. A secret
    /// store that refuses leaves the account in `needs-credentials` with
    /// the reason; it never fails the creation.
    pub async fn create(&self, input: &Input) -> Result<Arc<Account>, Change> {
        let _one = self.changes.lock().await;
        let retired = self.retired.ids().await;
        let (registry, dict) = (self.registry.clone(), input.clone());
        // Picking the id looks at the files already there.
        let (reservation, passwords) = tokio::task::spawn_blocking(move || {
            registry.reserve_avoiding(&dict, |id| retired.contains(id))
        })
        .await
        .map_err(|e| Change::Internal(anyhow::anyhow!("The settings task failed: {e}")))??;
        let id = reservation.id.clone();
        let label = reservation.settings().email.clone();
        let incoming_saved = self
            .save_one(&id, &label, Which::Incoming, &passwords.incoming)
            .await;
        let smtp_saved = match &incoming_saved {
            Ok(()) => {
                self.save_one(&id, &label, Which::Smtp, &passwords.smtp)
                    .await
            }
            // The same store: the incoming refusal says it all.
            Err(_) => Ok(()),
        };
        let registry = self.registry.clone();
        let committed = tokio::task::spawn_blocking(move || registry.commit(reservation))
            .await
            .map_err(|e| Change::Internal(anyhow::anyhow!("The settings task failed: {e}")))
            .and_then(|r| r);
        let account = match committed {
            Ok(a) => a,
            Err(e) => {
                self.forget_secrets(&id).await;
                return Err(e);
            }
        };
        match (incoming_saved, passwords.incoming) {
            (Err(e), _) => {
                account.set_status(|s| secret_refused(s, &e));
            }
            (Ok(()), Some(password)) if !password.is_empty() => {
                self.scheduler
                    .start(&id, account.settings(), password)
                    .await;
            }
            (Ok(()), _) => {
                account.set_status(|s| no_password(s, &id));
            }
        }
        if let Err(e) = smtp_saved {
            account.set_status(|s| smtp_refused(s, &e));
        }
        info!("Account {id} created ({label}).");
        Ok(account)
    }

    /// Validate and store changes to `account`; restart, reconfigure or
    /// leave its engine as the change requires.
    pub async fn update(&self, account: &Arc<Account>, input: &Input) -> Result<Updated, Change> {
        let _one = self.changes.lock().await;
        // Queued behind a Delete: the account is gone (the registry checks
        // again under its lock).
        if !self.is_registered(account) {
            return Err(Change::NotFound(format!(
                "Account {} no longer exists",
                account.id
            )));
        }
        let (registry, target, dict) = (self.registry.clone(), account.clone(), input.clone());
        let (before, passwords) =
            tokio::task::spawn_blocking(move || registry.update(&target, &dict))
                .await
                .map_err(|e| {
                    Change::Internal(anyhow::anyhow!("The settings task failed: {e}"))
                })??;
        let id = account.id.as_str();
        let after = account.settings();
        let label = after.email.clone();
        let incoming_saved = self
            .save_one(id, &label, Which::Incoming, &passwords.incoming)
            .await;
        let smtp_saved = self
            .save_one(id, &label, Which::Smtp, &passwords.smtp)
            .await;
        let mut status = Vec::new();
        match (incoming_saved, passwords.incoming) {
            (Err(e), _) => {
                self.scheduler.stop(id).await;
                status = account.set_status(|s| secret_refused(s, &e));
            }
            (Ok(()), Some(password)) if password.is_empty() => {
                self.scheduler.stop(id).await;
                status = account.set_status(|s| no_password(s, id));
            }
            (Ok(()), Some(password)) => {
                status = account.set_status(credentials_restored);
                self.scheduler.start(id, after, password).await;
                info!("Account {id}: new password; the engine restarts.");
            }
            (Ok(()), None) if !before.same_connection(&after) => {
                status = self.restart(account).await;
                info!("Account {id}: connection settings changed; the engine restarts.");
            }
            (Ok(()), None) if before != after => {
                self.scheduler.reconfigure(id, after).await;
            }
            (Ok(()), None) => {}
        }
        if let Err(e) = smtp_saved {
            // The incoming side is untouched: say why, change no state.
            for field in account.set_status(|s| smtp_refused(s, &e)) {
                if !status.contains(&field) {
                    status.push(field);
                }
            }
        }
        Ok(Updated { before, status })
    }

    /// Remove the account: its engine, mail and settings file at once, its
    /// passwords as soon as the secret store can be written. When the mail
    /// or the settings file cannot be removed, the account stays whole
    /// (minus mail that is fetched again) and the error says why.
    ///
    /// `Ok(false)` when the account was already gone (a Delete that ran
    /// first): nothing was done.
    pub async fn delete(&self, account: &Arc<Account>) -> Result<bool, DeleteFailed> {
        let _one = self.changes.lock().await;
        let id = account.id.clone();
        if !self.is_registered(account) {
            return Ok(false);
        }
        self.scheduler.stop(&id).await;
        if let Err(e) = self.retired.add(&id).await {
            let status = self.restart(account).await;
            return Err(DeleteFailed {
                error: e.context("Cannot note the account's passwords for removal"),
                status,
            });
        }
        let store = self.store.clone();
        let runtime = tokio::runtime::Handle::current();
        let mail_id = id.clone();
        let mail =
            tokio::task::spawn_blocking(move || runtime.block_on(store.remove_account(&mail_id)))
                .await
                .context("The store task failed")
                .and_then(|r| r);
        let removed = match mail {
            Ok(()) => {
                let (registry, file_id) = (self.registry.clone(), id.clone());
                tokio::task::spawn_blocking(move || registry.remove(&file_id))
                    .await
                    .context("The settings task failed")
                    .and_then(|r| r)
            }
            Err(e) => Err(e.context("Cannot remove the account's mail")),
        };
        if let Err(error) = removed {
            self.retired.remove(&id).await;
            let status = self.restart(account).await;
            return Err(DeleteFailed { error, status });
        }
        match tokio::time::timeout(DELETE_SECRETS_WAIT, self.secrets.delete_account(&id)).await {
            Ok(Ok(())) => self.retired.remove(&id).await,
            Ok(Err(e)) => {
                info!(
                    "Account {id}: its passwords are removed as soon as the secret store can be \
                     written ({e})."
                );
                self.wake_cleanup.notify_one();
            }
            Err(_) => {
                info!("Account {id}: the secret store is slow; its passwords are removed later.");
                self.wake_cleanup.notify_one();
            }
        }
        info!("Account {id} deleted.");
        Ok(true)
    }

    /// Make sure the engine of `account` runs, for a sync asked for by a
    /// person: when none runs (the keyring was locked at start, no
    /// password was stored), the password is read again and the engine
    /// starts if it can. The status fields changed, and why no engine can
    /// run (the state says it too, set before this returns).
    pub async fn ensure_engine(&self, account: &Arc<Account>) -> Engine {
        let _one = self.changes.lock().await;
        if !self.is_registered(account) {
            return Engine {
                status: Vec::new(),
                refused: Some(Failure::new(
                    FailureKind::Local,
                    format!("Account {} no longer exists", account.id),
                )),
                gone: true,
            };
        }
        if self.scheduler.is_running(&account.id).await {
            return Engine::default();
        }
        let (password, status) = match self.secrets.get(&account.id, Which::Incoming).await {
            Ok(Some(p)) if !p.is_empty() => (p, account.set_status(credentials_restored)),
            Ok(_) => {
                let status = account.set_status(|s| no_password(s, &account.id));
                let why = account.status().last_error;
                return Engine {
                    status,
                    refused: Some(Failure::new(FailureKind::Credentials, why)),
                    gone: false,
                };
            }
            Err(e) => {
                let status = account.set_status(|s| secret_refused(s, &e));
                let kind = match e {
                    SecretError::Locked => FailureKind::Credentials,
                    SecretError::Timeout => FailureKind::Timeout,
                    SecretError::Insecure(..) | SecretError::Store(_) => FailureKind::Local,
                };
                return Engine {
                    status,
                    refused: Some(Failure::new(kind, e.to_string())),
                    gone: false,
                };
            }
        };
        self.scheduler
            .start(&account.id, account.settings(), password)
            .await;
        info!(
            "Account {}: the password is readable again; the engine starts.",
            account.id
        );
        Engine {
            status,
            refused: None,
            gone: false,
        }
    }

    /// Whether an engine runs for the account (tests).
    #[cfg(test)]
    pub(super) async fn scheduler_runs(&self, id: &str) -> bool {
        self.scheduler.is_running(id).await
    }

    /// Whether `account` is still the registered account of its id (not
    /// deleted by a change that ran first).
    fn is_registered(&self, account: &Arc<Account>) -> bool {
        self.registry
            .get(&account.id)
            .is_some_and(|a| Arc::ptr_eq(&a, account))
    }

    /// Store one password when one was given (written once; `""`
    /// removes it). The reason is logged when the store refuses.
    async fn save_one(
        &self,
        id: &str,
        label: &str,
        which: Which,
        password: &Option<Zeroizing<String>>,
    ) -> Result<(), SecretError> {
        let Some(password) = password else {
            return Ok(());
        };
        self.secrets
            .set(id, label, which, password)
            .await
            .inspect_err(|e| warn!("Account {id}: cannot store its password: {e}"))
    }

    /// Read the incoming password once and settle the credential state
    /// from it: the password when usable, and the status fields changed.
    async fn read_incoming(&self, account: &Account) -> (Option<Zeroizing<String>>, Vec<Field>) {
        match self.secrets.get(&account.id, Which::Incoming).await {
            Ok(Some(p)) if !p.is_empty() => (Some(p), account.set_status(credentials_restored)),
            Ok(_) => (None, account.set_status(|s| no_password(s, &account.id))),
            Err(e) => (None, account.set_status(|s| secret_refused(s, &e))),
        }
    }

    /// (Re)start the engine with the stored password, or stop it and show
    /// `needs-credentials` when there is none. The status fields changed.
    async fn restart(&self, account: &Account) -> Vec<Field> {
        let (password, changed) = self.read_incoming(account).await;
        match password {
            Some(p) => {
                self.scheduler
                    .start(&account.id, account.settings(), p)
                    .await
            }
            None => self.scheduler.stop(&account.id).await,
        }
        changed
    }

    /// Remove the passwords of an id that did not become an account; left
    /// to the cleanup when the store refuses.
    async fn forget_secrets(&self, id: &str) {
        if let Err(e) = self.secrets.delete_account(id).await {
            warn!("Account {id}: cannot remove the passwords of a failed creation yet: {e}");
            if let Err(e) = self.retired.add(id).await {
                warn!("Account {id}: {e:#}");
            }
            self.wake_cleanup.notify_one();
        }
    }
}

/// The detected role → folder map of an account (display names), from the
/// store (blocking).
fn detected(store: &Store, account: &str) -> std::collections::HashMap<String, String> {
    let mut map = std::collections::HashMap::new();
    if let Ok(folders) = store.folders(account) {
        for f in folders {
            if let Some(role) = f.role.filter(|r| r != "inbox") {
                map.entry(role).or_insert(f.display);
            }
        }
    }
    map
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

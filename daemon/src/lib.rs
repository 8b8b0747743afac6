//! # facteurd
//!
//! The per-user mail-sync daemon. Data flows one way:
//!
//! - [`service`]: the D-Bus objects (Manager at the root, one Account object
//!   per account, the ObjectManager). Maps every failure to the contract's
//!   error enum at the edge.
//! - [`accounts`]: settings validation (one code path for create, update and
//!   verify) and the registry of accounts, stored one file per account.
//! - [`scheduler`]: one supervised engine task per account, with its
//!   cancellation token and request channel ("sync now", "delete this").
//! - [`imap`] and [`pop3`]: the protocol engines (connect and log in; sync
//!   folders, IDLE; poll). They report through [`events`] and never touch
//!   D-Bus.
//! - [`store`]: the sled index (metadata, folders, flags, sync state, POP3
//!   UIDLs, the unified index) and the content-addressed message files.
//! - [`mail`]: header metadata parsed from raw messages.
//! - [`net`]: TCP, TLS (rustls, system roots), timeouts, keepalive, and the
//!   typed [`net::Failure`] every protocol reports.
//! - [`notify`]: desktop notifications.
//! - [`secrets`]: passwords, in the Secret Service or a 0600 file.
//! - [`fsutil`]: atomic file writes shared by the stores above.
//! - [`logging`]: journald or stderr.
//! - [`verify`]: the "verify connection" report (incoming and SMTP).
//! - [`smtp`]: sending, with the copy in the Sent folder.
//! - [`autoconfig`]: candidate settings for an address (the wizard).
//!
//! [`run`] wires them together: open the store, connect to the bus, load the
//! accounts, serve the objects, start the engines, then take the bus name
//! and tell systemd we are ready.

pub mod accounts;
pub mod autoconfig;
pub mod fsutil;
pub mod imap;
pub mod logging;
pub mod mail;
pub mod net;
pub mod notify;
pub mod pop3;
pub mod secrets;
pub mod service;
pub mod settings;
pub mod smtp;
pub mod store;
pub mod sync;
pub mod verify;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use facteur_dbus::names;
use tracing::{debug, info, warn};

/// Command-line options of `facteurd`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "facteurd",
    version,
    about = "facteur's mail-sync daemon, driven over D-Bus"
)]
pub struct Options {
    /// Directory of the account settings (default: $XDG_CONFIG_HOME/facteur).
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// Directory of the index and the message files (default: $XDG_DATA_HOME/facteur).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where passwords are kept: the Secret Service when one is on the
    /// session bus (auto), always the Secret Service, or a 0600 file.
    #[arg(long, value_enum, default_value_t = secrets::Choice::Auto)]
    pub secret_store: secrets::Choice,
    /// Log filter (tracing's EnvFilter syntax; RUST_LOG wins when set).
    #[arg(long, default_value = "info", value_name = "FILTER")]
    pub log_level: String,
    /// Discovery: fetch every autoconfig URL SCHEME://HOST/PATH?QUERY as
    /// URL/HOST/PATH?QUERY instead (for tests and private deployments).
    #[arg(long, value_name = "URL", value_parser = parse_http_base)]
    pub discovery_http_base: Option<String>,
    /// Discovery: the DNS server for SRV and MX lookups (and for the
    /// addresses of probed hosts), instead of the system's.
    #[arg(long, value_name = "ADDR:PORT")]
    pub discovery_dns: Option<std::net::SocketAddr>,
    /// Discovery: extra provider entries (config-v1.1 XML, one
    /// emailProvider per provider), consulted before the built-in ones.
    #[arg(long, value_name = "FILE")]
    pub provider_db: Option<PathBuf>,
}

fn parse_http_base(s: &str) -> Result<String, String> {
    if s.starts_with("http://") || s.starts_with("https://") {
        Ok(s.trim_end_matches('/').to_owned())
    } else {
        Err(format!("{s:?} is not an http:// or https:// URL"))
    }
}

/// Why the daemon could not start or had to stop. Printed as one line.
#[derive(Debug)]
pub enum StartError {
    /// Anything that stops the daemon; the chain says why.
    Fatal(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(e: anyhow::Error) -> Self {
        StartError::Fatal(e)
    }
}

/// The shared state of a running daemon. Owned by the D-Bus objects through
/// an `Arc`; lives until [`run`] returns.
pub struct Daemon {
    /// Account registry (settings files and runtime status).
    pub accounts: accounts::Registry,
    /// The sled index.
    pub store: store::Store,
    /// The password store chosen at start.
    pub secrets: secrets::SecretStore,
    /// The running sync engines.
    pub scheduler: sync::Scheduler,
    /// Settings discovery (the wizard), set up from the options.
    pub discovery: autoconfig::Discovery,
}

fn xdg_dir(var: &str, fallback: &str) -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(var).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("Neither ${var} nor $HOME is set; pass the directory explicitly"))?;
    Ok(PathBuf::from(home).join(fallback))
}

/// Resolve the config and data directories from the options and XDG.
pub fn directories(options: &Options) -> anyhow::Result<(PathBuf, PathBuf)> {
    let config = match &options.config_dir {
        Some(d) => d.clone(),
        None => xdg_dir("XDG_CONFIG_HOME", ".config")?.join("facteur"),
    };
    let data = match &options.data_dir {
        Some(d) => d.clone(),
        None => xdg_dir("XDG_DATA_HOME", ".local/share")?.join("facteur"),
    };
    Ok((config, data))
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM received, shutting down."),
                _ = int.recv() => info!("SIGINT received, shutting down."),
            }
        }
        _ => {
            warn!("Cannot install signal handlers; stop facteurd with SIGKILL.");
            std::future::pending::<()>().await;
        }
    }
}

/// Run the daemon on the session bus until `shutdown` resolves.
pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let (config_dir, data_dir) = directories(&options)?;
    let discovery = autoconfig::Discovery::new(
        options.discovery_http_base.clone(),
        options.discovery_dns,
        options.provider_db.as_deref(),
    )?;
    let conn = connect_session_bus().await?;
    run_with(
        conn,
        options.secret_store,
        config_dir,
        data_dir,
        discovery,
        shutdown,
    )
    .await
}

async fn connect_session_bus() -> anyhow::Result<zbus::Connection> {
    let no_bus = |e: zbus::Error| {
        let address = std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap_or_default();
        let said = if address.is_empty() {
            "DBUS_SESSION_BUS_ADDRESS is not set".to_owned()
        } else {
            format!("DBUS_SESSION_BUS_ADDRESS={address}")
        };
        anyhow!(
            "Cannot connect to the session bus ({said}: {e}); run facteurd inside a desktop session, \
             as the systemd user service, or under `dbus-run-session -- facteurd`"
        )
    };
    let conn = zbus::connection::Builder::session()
        .map_err(no_bus)?
        .build()
        .await
        .map_err(no_bus)?;
    Ok(conn)
}

/// Run the daemon on an established bus connection (tests pass their own),
/// with discovery's defaults.
pub async fn run_on(
    conn: zbus::Connection,
    secret_choice: secrets::Choice,
    config_dir: PathBuf,
    data_dir: PathBuf,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let discovery = autoconfig::Discovery::new(None, None, None)?;
    run_with(
        conn,
        secret_choice,
        config_dir,
        data_dir,
        discovery,
        shutdown,
    )
    .await
}

/// [`run_on`] with discovery set up by the caller.
pub async fn run_with(
    conn: zbus::Connection,
    secret_choice: secrets::Choice,
    config_dir: PathBuf,
    data_dir: PathBuf,
    discovery: autoconfig::Discovery,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    // Refuse early, before touching the store, when another daemon runs. The
    // name request at the end still settles any race.
    let dbus = zbus::fdo::DBusProxy::new(&conn)
        .await
        .context("Cannot talk to the bus daemon")?;
    if dbus
        .name_has_owner(names::BUS_NAME.try_into().context("Bad bus name")?)
        .await
        .unwrap_or(false)
    {
        return Err(already_running().into());
    }

    let store = store::Store::open(&data_dir).context("Cannot open the index")?;
    let secrets = secrets::SecretStore::choose(&conn, secret_choice, &config_dir).await?;
    let accounts = accounts::Registry::load(&config_dir).context("Cannot load the accounts")?;
    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
    let daemon = Arc::new(Daemon {
        accounts,
        scheduler: sync::Scheduler::new(store.clone(), events_tx),
        store,
        secrets,
        discovery,
    });
    // Passwords whose account has no settings file: a crash during
    // CreateAccount. The file store is cleaned before anything else can
    // write it; the Secret Service (which may prompt) in the background.
    let orphans = {
        let daemon = daemon.clone();
        async move { daemon.remove_orphan_secrets().await }
    };
    if matches!(daemon.secrets, secrets::SecretStore::File(_)) {
        orphans.await;
    } else {
        // Tracked: shutdown waits for (or aborts) it.
        daemon.scheduler.spawn(orphans);
    }
    daemon.refresh_credentials().await;
    daemon.load_status();
    daemon.report_store();

    service::serve(&conn, &daemon)
        .await
        .context("Cannot serve the D-Bus objects")?;

    // The engines run before the name is taken: a client that sees the name
    // and calls Sync at once finds its account's engine there, connecting.
    let events = tokio::spawn(service::events::run(
        conn.clone(),
        daemon.clone(),
        events_rx,
    ));
    for account in daemon.accounts.all() {
        daemon.start_engine(&account).await;
    }
    let store_watch = tokio::spawn(watch_store(daemon.clone()));

    let refused = match conn.request_name(names::BUS_NAME).await {
        Ok(()) => None,
        Err(zbus::Error::NameTaken) => Some(already_running()),
        Err(e) => Some(
            anyhow::Error::new(e).context(format!("Cannot take the bus name {}", names::BUS_NAME)),
        ),
    };
    if let Some(e) = refused {
        store_watch.abort();
        let _ = store_watch.await;
        daemon.scheduler.shutdown().await;
        events.abort();
        let _ = events.await;
        return Err(e.into());
    }
    info!(
        "facteurd {} is ready on the session bus as {} with {} account(s).",
        env!("CARGO_PKG_VERSION"),
        names::BUS_NAME,
        daemon.accounts.len()
    );
    notify_systemd(&[sd_notify::NotifyState::Ready]);

    shutdown.await;

    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    store_watch.abort();
    let _ = store_watch.await;
    // Engines first (their last events still reach the loop), then the
    // tracked background tasks, then the events loop.
    daemon.scheduler.shutdown().await;
    events.abort();
    let _ = events.await;
    if let Err(e) = conn.release_name(names::BUS_NAME).await {
        warn!("Cannot release the bus name: {e}");
    }
    if let Err(e) = daemon.store.flush().await {
        warn!("Cannot flush the index on shutdown: {e:#}");
    }
    info!("facteurd stopped.");
    Ok(())
}

/// How often an unavailable store is tried again: [`store::RETRY_INTERVAL`],
/// or `FACTEUR_STORE_RETRY_MS` (for tests).
fn store_retry_interval() -> std::time::Duration {
    std::env::var("FACTEUR_STORE_RETRY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(std::time::Duration::from_millis)
        .unwrap_or(store::RETRY_INTERVAL)
}

/// Try an unavailable store again every retry interval; once it opens,
/// refresh every account and run a sync pass at once (engines waiting out
/// a backoff start right away).
async fn watch_store(daemon: Arc<Daemon>) {
    let every = store_retry_interval();
    loop {
        tokio::time::sleep(every).await;
        if daemon.store.unavailable().is_none() {
            continue;
        }
        let store = daemon.store.clone();
        let recovered = tokio::task::spawn_blocking(move || store.recover())
            .await
            .unwrap_or(false);
        if !recovered {
            continue;
        }
        // Counts and folder roles read the whole index: off the async
        // workers.
        let d = daemon.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || d.load_status()).await {
            warn!("Cannot refresh the accounts after the store came back: {e}");
        }
        for account in daemon.accounts.all() {
            let d = daemon.clone();
            // Tracked: shutdown waits for (or aborts) it.
            daemon.scheduler.spawn(async move {
                if let Err(f) = d.scheduler.sync(&account.id).await {
                    debug!(
                        "Account {}: the pass after the store came back: {f}",
                        account.id
                    );
                }
            });
        }
    }
}

fn already_running() -> anyhow::Error {
    anyhow!(
        "Another facteurd already owns {} on this session bus; stop it first (systemctl --user stop facteurd)",
        names::BUS_NAME
    )
}

fn notify_systemd(state: &[sd_notify::NotifyState]) {
    // Outside systemd NOTIFY_SOCKET is unset and this does nothing.
    if let Err(e) = sd_notify::notify(state) {
        warn!("Cannot notify systemd: {e}");
    }
}

use crate::sync::State;

impl Daemon {
    /// Fill each account's counts and detected folder roles from the store,
    /// so the properties are right before the first sync of this run.
    pub fn load_status(&self) {
        for account in self.accounts.all() {
            let counts = self.store.counts(&account.id, None);
            let folders = service::events::detected_folders(self, &account.id);
            account.set_status(|s| {
                if let Ok((total, unread)) = counts {
                    s.message_count = total;
                    s.unread_count = unread;
                }
                s.detected_folders = folders;
            });
        }
    }

    /// While the store is unavailable, show why on every account: state
    /// `error`, the sentence, and `disk-full` when the disk is full.
    pub fn report_store(&self) {
        let Some(why) = self.store.unavailable() else {
            return;
        };
        warn!("Every account waits for the message index: {why}.");
        for account in self.accounts.all() {
            account.set_status(|s| {
                if s.state != State::NeedsCredentials {
                    s.state = State::Error;
                }
                s.last_error = why.message.clone();
                s.last_error_code = if why.is_disk_full() { "disk-full" } else { "" }.to_owned();
            });
        }
    }

    /// (Re)start the sync engine of an account, or stop it when the account
    /// has no usable password.
    pub async fn start_engine(&self, account: &accounts::Account) {
        if account.status().state == State::NeedsCredentials {
            self.scheduler.stop(&account.id).await;
            return;
        }
        match self
            .secrets
            .get(&account.id, secrets::Which::Incoming)
            .await
        {
            Ok(Some(password)) => {
                self.scheduler
                    .start(&account.id, account.settings(), password)
                    .await
            }
            Ok(None) | Err(_) => self.scheduler.stop(&account.id).await,
        }
    }

    /// Remove the stored passwords of ids that are no account (see
    /// [`secrets::SecretStore::remove_orphans`]), and say so.
    pub async fn remove_orphan_secrets(&self) {
        match self
            .secrets
            .remove_orphans(|id| self.accounts.knows(id))
            .await
        {
            Ok(removed) => {
                for id in removed {
                    warn!(
                        "Removed the stored password(s) of {id}, which has no settings file \
                         (an account creation was interrupted)."
                    );
                }
            }
            Err(e) => warn!("Cannot look for passwords of removed accounts: {e}"),
        }
    }

    /// Store the passwords of a create or update, then settle the account's
    /// credential state. A store that refuses (locked keyring, dismissed
    /// prompt, loose file) leaves the account in `needs-credentials` with
    /// the reason in `LastError`; it never fails the request, which has
    /// already been stored. Returns the status properties that changed.
    pub async fn store_passwords(
        &self,
        account: &accounts::Account,
        passwords: accounts::Passwords,
        creating: bool,
    ) -> Vec<crate::sync::Field> {
        let saved = self
            .save_passwords(&account.id, &account.settings().email, passwords)
            .await;
        self.settle_credentials(account, saved, creating).await
    }

    /// Store the passwords given for account `id`; whether any was given.
    /// The reason is logged when the store refuses.
    pub async fn save_passwords(
        &self,
        id: &str,
        label: &str,
        passwords: accounts::Passwords,
    ) -> Result<bool, secrets::SecretError> {
        let given = [
            (secrets::Which::Incoming, passwords.incoming),
            (secrets::Which::Smtp, passwords.smtp),
        ];
        let mut touched = false;
        for (which, password) in given {
            let Some(password) = password else { continue };
            touched = true;
            if let Err(e) = self.secrets.set(id, label, which, &password).await {
                warn!("Account {id}: cannot store its password: {e}");
                return Err(e);
            }
        }
        Ok(touched)
    }

    /// Set the account's credential state after [`Daemon::save_passwords`].
    /// Returns the status properties that changed.
    pub async fn settle_credentials(
        &self,
        account: &accounts::Account,
        saved: Result<bool, secrets::SecretError>,
        creating: bool,
    ) -> Vec<crate::sync::Field> {
        match saved {
            Err(e) => account.set_status(|s| {
                s.state = State::NeedsCredentials;
                s.last_error = e.to_string();
            }),
            Ok(touched) if creating || touched => self.check_credentials(account).await,
            Ok(_) => Vec::new(),
        }
    }

    /// Check, for every account, that its password can be read, and set the
    /// `needs-credentials` state where it cannot.
    pub async fn refresh_credentials(&self) {
        for account in self.accounts.all() {
            self.check_credentials(&account).await;
        }
    }

    /// Set the account's state from whether its incoming password is usable.
    /// Returns the names of the properties that changed.
    pub async fn check_credentials(&self, account: &accounts::Account) -> Vec<crate::sync::Field> {
        use crate::sync::State;
        let verdict = self
            .secrets
            .get(&account.id, secrets::Which::Incoming)
            .await;
        let (new_state, error) = match verdict {
            Ok(Some(_)) => (State::Idle, String::new()),
            Ok(None) => (
                State::NeedsCredentials,
                format!(
                    "No password is stored for this account; set one with \
                     `facteurctl account set {} --password-stdin` or Update({{'incoming-password': ...}})",
                    account.id
                ),
            ),
            Err(e) => (State::NeedsCredentials, e.to_string()),
        };
        account.set_status(|s| {
            // Only the credential verdict is decided here; a running engine
            // owns the other states.
            if new_state == State::NeedsCredentials || s.state == State::NeedsCredentials {
                s.state = new_state;
                s.last_error = error.clone();
            }
        })
    }
}

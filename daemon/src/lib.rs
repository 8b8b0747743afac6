//! # facteurd
//!
//! The per-user mail-sync daemon. Imports only run downward, one layer to
//! the next:
//!
//! - [`service`]: the D-Bus objects (Manager at the root, one Account object
//!   per account, the ObjectManager, the introspection of parent nodes). The
//!   only place zvariant, `a{sv}`, property names and state strings appear;
//!   every internal error type has one `From` into the contract's error.
//! - [`accounts`]: settings validation (one code path for create, update and
//!   verify), the registry of accounts (one file per account), and
//!   [`accounts::lifecycle`], the one home of create, update, delete,
//!   credentials and engine starts (with the durable note of passwords still
//!   to remove after a Delete with a locked keyring).
//! - [`sync`]: the scheduler (one supervised engine per account, starts
//!   serialised, a displaced engine cancelled and awaited, background tasks
//!   tracked), the requests, the one backoff, the one failure → state
//!   mapping, the one wait loop, and the events through which engines report
//!   without knowing about D-Bus. [`sync::State`] is typed.
//! - [`imap`], [`pop3`], [`smtp`]: the protocols. Each has one connect and
//!   login path, shared by sync and verify ([`imap::session::open`],
//!   [`pop3::session::open`], [`smtp::connect::open`]); the sync layer drives
//!   them and they report through a small observer trait of their own.
//! - [`verify`]: the "verify connection" report, made of the protocols'
//!   connect paths; [`autoconfig`]: candidate settings for an address.
//! - [`store`]: the sled index (metadata, folders, flags, sync state, POP3
//!   UIDLs, the unified index), the content-addressed message files and the
//!   per-account manifests.
//! - [`net`]: TCP, TLS (rustls, system roots), the one timeout table, the
//!   step recorder, and the typed [`net::Failure`] every protocol reports.
//! - [`settings`]: account settings as plain data, readable by every layer.
//! - [`mail`], [`notify`], [`secrets`], [`fsutil`], [`logging`]: header
//!   metadata, desktop notifications, passwords (Secret Service or a 0600
//!   file), atomic file writes, journald or stderr.
//!
//! [`run`] wires them together: open the store, connect to the bus, load the
//! accounts and their credentials, serve the objects, start the engines,
//! then take the bus name and tell systemd we are ready.

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
///
/// The registry, secret store and scheduler are shared handles: anything
/// may read through them, but an account is created, changed or removed
/// only through [`Daemon::life`].
pub struct Daemon {
    /// Account registry (settings files and runtime status).
    pub accounts: Arc<accounts::Registry>,
    /// The sled index.
    pub store: store::Store,
    /// The password store chosen at start.
    pub secrets: Arc<secrets::SecretStore>,
    /// The running sync engines.
    pub scheduler: Arc<sync::Scheduler>,
    /// Settings discovery (the wizard), set up from the options.
    pub discovery: autoconfig::Discovery,
    /// Create, update, delete, credentials and engine starts.
    pub life: accounts::Lifecycle,
    /// Flags, moves, copies, summaries and folders (two-way sync).
    pub mail: accounts::Mail,
    /// The outbox (Enqueue, ListOutbox, CancelOutbox) and its sender.
    pub outbox: accounts::Outbox,
}

impl Daemon {
    /// Put the daemon together: the lifecycle gets the registry, the
    /// secret store, a scheduler reporting into `events`, the store, and
    /// the note of passwords still to remove from `config_dir`.
    pub async fn new(
        config_dir: &std::path::Path,
        store: store::Store,
        secrets: secrets::SecretStore,
        accounts: accounts::Registry,
        events: tokio::sync::mpsc::UnboundedSender<sync::events::Event>,
        discovery: autoconfig::Discovery,
    ) -> anyhow::Result<Arc<Daemon>> {
        let dir = config_dir.to_owned();
        let retired = tokio::task::spawn_blocking(move || accounts::retired::Retired::load(&dir))
            .await
            .context("The start-up task failed")?;
        let accounts = Arc::new(accounts);
        let secrets = Arc::new(secrets);
        let scheduler = Arc::new(sync::Scheduler::new(store.clone(), events.clone()));
        let life = accounts::Lifecycle::new(
            accounts.clone(),
            secrets.clone(),
            scheduler.clone(),
            store.clone(),
            retired,
        );
        let mail = accounts::Mail::new(accounts.clone(), store.clone(), scheduler.clone());
        let outbox = accounts::Outbox::new(
            accounts.clone(),
            store.clone(),
            secrets.clone(),
            scheduler.clone(),
            events,
        );
        Ok(Arc::new(Daemon {
            accounts,
            store,
            secrets,
            scheduler,
            discovery,
            life,
            mail,
            outbox,
        }))
    }
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
    let daemon = Daemon::new(&config_dir, store, secrets, accounts, events_tx, discovery).await?;
    // Credentials, counts and the password cleanup, before the objects are
    // served so their first state is true.
    let ready = daemon.life.prepare().await;

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
    daemon.life.start_engines(ready).await;
    // The outbox's sender: tracked, so shutdown waits for the message it
    // is sending.
    daemon.scheduler.spawn(daemon.outbox.run());
    let store_watch = tokio::spawn(watch_store(conn.clone(), daemon.clone()));

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
        daemon.outbox.shutdown();
        daemon.scheduler.shutdown().await;
        daemon.life.shutdown().await;
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
    // tracked background tasks (the outbox's sender stops after the
    // message it is sending), then the events loop.
    daemon.outbox.shutdown();
    daemon.scheduler.shutdown().await;
    daemon.life.shutdown().await;
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
async fn watch_store(conn: zbus::Connection, daemon: Arc<Daemon>) {
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
        let changes = daemon.life.store_recovered().await;
        service::account::emit_changes(&conn, &changes).await;
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

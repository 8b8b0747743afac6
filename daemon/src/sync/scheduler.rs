//! # Scheduler
//!
//! One supervised task per enabled account: started at daemon start and on
//! CreateAccount, restarted with the new settings when the connection
//! changes, given new settings in place otherwise ([`Scheduler::reconfigure`]),
//! stopped on Delete and at shutdown. Each task has its own cancellation
//! token, a small request channel ("sync now", "delete this message") and a
//! settings channel; a failing account never affects another, since each
//! engine handles its own errors and only ends when cancelled.
//!
//! Starts and stops of one account are serialised (one gate per account):
//! a displaced engine is cancelled and awaited (a bounded time, then
//! aborted and awaited) before the new one starts, so two engines of one
//! account never run together and store handles are really released.
//! Background work of the daemon is spawned through [`Scheduler::spawn`]
//! and awaited at [`Scheduler::shutdown`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use zeroize::Zeroizing;

use super::events::{Event, Reporter};
use super::tasks::Tracker;
use crate::net::{Failure, FailureKind};
use crate::settings::{Protocol, Settings};
use crate::store::{MessageId, Store};

/// Where the answer to a Sync goes: the number of new messages.
pub type SyncReply = oneshot::Sender<Result<u32, Failure>>;
/// Where the answer to a Delete goes.
pub type DeleteReply = oneshot::Sender<Result<(), Failure>>;

/// What the scheduler can ask of a running engine.
pub enum Request {
    /// Run a pass now; answer with the number of new messages.
    Sync(SyncReply),
    /// Delete the message on the server where the account says so (IMAP:
    /// `\Deleted` and expunge; POP3: DELE at the next session), then locally.
    Delete(MessageId, DeleteReply),
    /// Local changes were journaled (flags, moves, folders): replay the
    /// journal when connected. Nobody waits for an answer: the change is
    /// already stored, and `PendingChanges` tells when it reached the server.
    Replay,
}

/// How long a stopping engine may take to log out before it is aborted.
const STOP_GRACE: Duration = Duration::from_secs(5);

struct Task {
    cancel: CancellationToken,
    handle: JoinHandle<()>,
    requests: mpsc::Sender<Request>,
    settings: watch::Sender<Settings>,
}

/// The running engines, by account id.
pub struct Scheduler {
    tasks: Mutex<HashMap<String, Task>>,
    /// One gate per account: its starts and stops run one at a time.
    gates: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Set at shutdown: no engine starts after it.
    closed: AtomicBool,
    background: Tracker,
    events: mpsc::UnboundedSender<Event>,
    store: Store,
}

impl Scheduler {
    /// A scheduler whose engines report into `events`.
    pub fn new(store: Store, events: mpsc::UnboundedSender<Event>) -> Self {
        Scheduler {
            tasks: Mutex::new(HashMap::new()),
            gates: std::sync::Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            background: Tracker::new(),
            events,
            store,
        }
    }

    fn gate(&self, id: &str) -> Arc<Mutex<()>> {
        let mut gates = match self.gates.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        gates.entry(id.to_owned()).or_default().clone()
    }

    /// (Re)start the engine of an account with these settings. The engine
    /// it displaces is stopped (cancelled and awaited) first.
    pub async fn start(&self, id: &str, settings: Settings, password: Zeroizing<String>) {
        let gate = self.gate(id);
        let _one_at_a_time = gate.lock().await;
        let old = self.tasks.lock().await.remove(id);
        if let Some(old) = old {
            stop_task(id, old).await;
        }
        if self.closed.load(Ordering::SeqCst) {
            debug!("Account {id}: not started, the daemon is stopping.");
            return;
        }
        // A new account may reuse the id of a removed one: its writes are
        // accepted again (see `Store::admit`).
        self.store.revive(id);
        let reporter = Arc::new(Reporter::new(id, self.events.clone()));
        let cancel = CancellationToken::new();
        let (tx, rx) = mpsc::channel(8);
        let (settings_tx, settings_rx) = watch::channel(settings.clone());
        let handle = match settings.incoming_protocol {
            Protocol::Imap => {
                let engine = crate::imap::Engine::new(
                    id.to_owned(),
                    settings,
                    password,
                    self.store.clone(),
                    reporter.clone(),
                );
                let driver = super::imap_engine::Driver::new(engine, reporter, settings_rx);
                tokio::spawn(driver.run(rx, cancel.clone()))
            }
            Protocol::Pop3 => {
                let poller = crate::pop3::poll::Poller::new(
                    id.to_owned(),
                    settings,
                    password,
                    self.store.clone(),
                    reporter.clone(),
                );
                let driver = super::pop3_engine::Driver::new(poller, reporter, settings_rx);
                tokio::spawn(driver.run(rx, cancel.clone()))
            }
        };
        debug!("Account {id}: engine started.");
        self.tasks.lock().await.insert(
            id.to_owned(),
            Task {
                cancel,
                handle,
                requests: tx,
                settings: settings_tx,
            },
        );
    }

    /// Give a running engine settings that need no new connection (name,
    /// display name, unified flag, folder roles, poll interval): it takes
    /// them in place, without reconnecting, from its next pass or wait.
    /// The caller decides with [`Settings::same_connection`]. Whether an
    /// engine runs for the account.
    pub async fn reconfigure(&self, id: &str, settings: Settings) -> bool {
        match self.tasks.lock().await.get(id) {
            Some(task) => {
                task.settings.send_replace(settings);
                true
            }
            None => false,
        }
    }

    /// Whether an engine runs for the account.
    pub async fn is_running(&self, id: &str) -> bool {
        self.tasks.lock().await.contains_key(id)
    }

    /// Stop the engine of an account, if it runs, and wait until it has.
    pub async fn stop(&self, id: &str) {
        let gate = self.gate(id);
        let _one_at_a_time = gate.lock().await;
        let task = self.tasks.lock().await.remove(id);
        if let Some(task) = task {
            stop_task(id, task).await;
            // A pass cut short leaves no progress behind.
            Reporter::new(id, self.events.clone()).stopped().await;
        }
    }

    /// Run `task` in the background; [`Scheduler::shutdown`] waits for it
    /// (a bounded time, then aborts it). Nothing starts after shutdown.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.background.spawn(task);
    }

    /// Stop every engine and the background tasks (daemon shutdown).
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        // Wait for starts and stops under way.
        let gates: Vec<Arc<Mutex<()>>> = match self.gates.lock() {
            Ok(g) => g.values().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().values().cloned().collect(),
        };
        let mut held = Vec::with_capacity(gates.len());
        for gate in &gates {
            held.push(gate.lock().await);
        }
        let tasks: Vec<_> = self.tasks.lock().await.drain().collect();
        let stops = tasks
            .into_iter()
            .map(|(id, t)| async move { stop_task(&id, t).await });
        futures_util::future::join_all(stops).await;
        drop(held);
        self.background.shutdown(STOP_GRACE).await;
    }

    async fn sender(&self, id: &str) -> Result<mpsc::Sender<Request>, Failure> {
        self.tasks
            .lock()
            .await
            .get(id)
            .map(|t| t.requests.clone())
            .ok_or_else(|| {
                Failure::new(
                    FailureKind::Credentials,
                    "The account is not syncing (no usable password, or its protocol is not supported yet)",
                )
            })
    }

    /// Run one full pass now; the number of new messages. When it returns,
    /// the account's state says how the pass went.
    pub async fn sync(&self, id: &str) -> Result<u32, Failure> {
        let (reply, answer) = oneshot::channel();
        self.sender(id)
            .await?
            .send(Request::Sync(reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Tell an account's engine that its journal has new entries (see
    /// [`Request::Replay`]). Never waits: when the request channel is full a
    /// replay is already on its way, and an account without an engine
    /// replays when it starts.
    pub async fn kick(&self, id: &str) {
        if let Some(task) = self.tasks.lock().await.get(id) {
            let _ = task.requests.try_send(Request::Replay);
        }
    }

    /// A reporter into the events loop for account `id`, for what is
    /// stored outside an engine's pass (the copy of a sent message).
    pub fn reporter(&self, id: &str) -> Reporter {
        Reporter::new(id, self.events.clone())
    }

    /// Tell the service that an account's counts, pending changes or outbox
    /// may have changed (recounted and announced by the events loop).
    pub fn counts_changed(&self, id: &str) {
        let _ = self.events.send(Event::Counts {
            account: id.to_owned(),
        });
    }

    /// Delete a message on its server, then locally.
    pub async fn delete(&self, id: MessageId) -> Result<(), Failure> {
        let (reply, answer) = oneshot::channel();
        self.sender(&id.account)
            .await?
            .send(Request::Delete(id, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The answer to a request whose engine was stopped or replaced before it
/// ran (an Update of a connection setting, a Delete): a Connection failure,
/// since trying again (against the new engine) is what helps.
fn stopped() -> Failure {
    Failure::new(
        FailureKind::Connection,
        "The account was reconfigured (or removed) before the pass ran; sync again",
    )
}

async fn stop_task(id: &str, task: Task) {
    task.cancel.cancel();
    let mut handle = task.handle;
    if tokio::time::timeout(STOP_GRACE, &mut handle).await.is_err() {
        warn!(
            "Account {id}: the engine did not stop within {} s; aborting it.",
            STOP_GRACE.as_secs()
        );
        handle.abort();
        let _ = handle.await;
    }
    debug!("Account {id}: engine stopped.");
}

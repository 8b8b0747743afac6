//! # Scheduler
//!
//! One supervised task per enabled account: started at daemon start and on
//! CreateAccount, restarted with the new settings on Update, stopped on
//! Delete and at shutdown. Each task has its own cancellation token and a
//! small request channel ("sync now", "delete this message"); a failing
//! account never affects another, since each engine handles its own errors
//! and only ends when cancelled.
//!
//! The scheduler owns the task handles; [`Scheduler::stop`] cancels, waits
//! a bounded time, then aborts, so store handles are really released.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use zeroize::Zeroizing;

use crate::imap::Engine;
use crate::net::{Failure, FailureKind};
use crate::settings::{Protocol, Settings};
use crate::store::{MessageId, Store};
use crate::sync::events::{Event, Reporter};

/// What the scheduler can ask of a running engine.
pub enum Request {
    /// Run a pass now; answer with the number of new messages.
    Sync(oneshot::Sender<Result<u32, Failure>>),
    /// Delete the message on the server where the account says so (IMAP:
    /// `\Deleted` and expunge; POP3: DELE at the next session), then locally.
    Delete(MessageId, oneshot::Sender<Result<(), Failure>>),
}

/// How long a stopping engine may take to log out before it is aborted.
const STOP_GRACE: Duration = Duration::from_secs(5);

struct Task {
    cancel: CancellationToken,
    handle: JoinHandle<()>,
    requests: mpsc::Sender<Request>,
}

/// The running engines, by account id.
pub struct Scheduler {
    tasks: Mutex<HashMap<String, Task>>,
    events: mpsc::UnboundedSender<Event>,
    store: Store,
}

impl Scheduler {
    /// A scheduler whose engines report into `events`.
    pub fn new(store: Store, events: mpsc::UnboundedSender<Event>) -> Self {
        Scheduler {
            tasks: Mutex::new(HashMap::new()),
            events,
            store,
        }
    }

    /// (Re)start the engine of an account with these settings.
    pub async fn start(&self, id: &str, settings: Settings, password: Zeroizing<String>) {
        self.stop(id).await;
        let reporter = Reporter::new(id, self.events.clone());
        let cancel = CancellationToken::new();
        let (tx, rx) = mpsc::channel(8);
        let handle = match settings.incoming_protocol {
            Protocol::Imap => {
                let engine = Engine::new(
                    id.to_owned(),
                    settings,
                    password,
                    self.store.clone(),
                    reporter,
                );
                tokio::spawn(engine.run(rx, cancel.clone()))
            }
            Protocol::Pop3 => {
                let poller = crate::pop3::poll::Poller::new(
                    id.to_owned(),
                    settings,
                    password,
                    self.store.clone(),
                    reporter,
                );
                tokio::spawn(poller.run(rx, cancel.clone()))
            }
        };
        debug!("Account {id}: engine started.");
        self.tasks.lock().await.insert(
            id.to_owned(),
            Task {
                cancel,
                handle,
                requests: tx,
            },
        );
    }

    /// Give a running engine settings that need no new connection (name,
    /// display name, unified flag, folder roles, poll interval). The
    /// caller decides with [`Settings::same_connection`].
    pub async fn reconfigure(&self, id: &str, settings: Settings) {
        // Placeholder until the engines take new settings in place.
        let _ = (id, settings);
    }

    /// Stop the engine of an account, if it runs.
    pub async fn stop(&self, id: &str) {
        let task = self.tasks.lock().await.remove(id);
        if let Some(task) = task {
            stop_task(id, task).await;
        }
    }

    /// Stop every engine (daemon shutdown).
    pub async fn shutdown(&self) {
        let tasks: Vec<_> = self.tasks.lock().await.drain().collect();
        let stops = tasks
            .into_iter()
            .map(|(id, t)| async move { stop_task(&id, t).await });
        futures_util::future::join_all(stops).await;
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

    /// Run one full pass now; the number of new messages.
    pub async fn sync(&self, id: &str) -> Result<u32, Failure> {
        let (reply, answer) = oneshot::channel();
        self.sender(id)
            .await?
            .send(Request::Sync(reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
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

fn stopped() -> Failure {
    Failure::new(FailureKind::Local, "The account's engine stopped")
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

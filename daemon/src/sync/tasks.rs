//! # Tracked tasks
//!
//! Work the daemon starts in the background (a desktop notification, the
//! pass after the store comes back) is spawned here rather than detached,
//! so that shutdown waits for it a bounded time and aborts what is left.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::task::JoinSet;
use tracing::debug;

/// A set of background tasks, awaited (then aborted) at shutdown.
#[derive(Debug, Default)]
pub struct Tracker {
    /// `None` once closed: nothing new starts during shutdown.
    set: Mutex<Option<JoinSet<()>>>,
}

impl Tracker {
    /// An open tracker.
    pub fn new() -> Self {
        Tracker {
            set: Mutex::new(Some(JoinSet::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<JoinSet<()>>> {
        match self.set.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Run `task` in the background; dropped unstarted once shut down.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut guard = self.lock();
        let Some(set) = guard.as_mut() else {
            debug!("A background task was not started: the daemon is stopping.");
            return;
        };
        // Forget the ones that are done, so the set stays small.
        while set.try_join_next().is_some() {}
        set.spawn(task);
    }

    /// How many tasks are still running.
    pub fn len(&self) -> usize {
        let mut guard = self.lock();
        match guard.as_mut() {
            Some(set) => {
                while set.try_join_next().is_some() {}
                set.len()
            }
            None => 0,
        }
    }

    /// Whether no task is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refuse new tasks, wait up to `grace` for the running ones, then
    /// abort and await what is left.
    pub async fn shutdown(&self, grace: Duration) {
        let Some(mut set) = self.lock().take() else {
            return;
        };
        let all = async { while set.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all).await.is_err() {
            debug!("Aborting {} background task(s) at shutdown.", set.len());
            set.abort_all();
            while set.join_next().await.is_some() {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn shutdown_waits_for_tasks_then_refuses_new_ones() {
        let t = Tracker::new();
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        t.spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            d.store(true, Ordering::SeqCst);
        });
        t.shutdown(Duration::from_secs(5)).await;
        assert!(done.load(Ordering::SeqCst));
        let late = Arc::new(AtomicBool::new(false));
        let l = late.clone();
        t.spawn(async move { l.store(true, Ordering::SeqCst) });
        tokio::task::yield_now().await;
        assert!(!late.load(Ordering::SeqCst));
        assert!(t.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_task_is_aborted_after_the_grace() {
        let t = Tracker::new();
        t.spawn(std::future::pending());
        assert_eq!(t.len(), 1);
        t.shutdown(Duration::from_secs(1)).await;
        assert!(t.is_empty());
    }
}

//! # Waiting
//!
//! The one wait of every engine between attempts: until a deadline (the
//! next poll, the end of a backoff; none while waiting for credentials), a
//! request from the scheduler, or cancellation, whichever comes first.

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::scheduler::Request;

/// What ended a wait.
pub enum Woke {
    /// The deadline passed.
    Deadline,
    /// The scheduler asked for something.
    Request(Request),
    /// The engine is stopping (cancelled, or the scheduler dropped it).
    Cancelled,
}

/// Wait until `deadline` (forever when `None`), a request or cancellation.
pub async fn wait(
    deadline: Option<Instant>,
    requests: &mut mpsc::Receiver<Request>,
    cancel: &CancellationToken,
) -> Woke {
    let timer = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => Woke::Cancelled,
        r = requests.recv() => match r {
            Some(r) => Woke::Request(r),
            None => Woke::Cancelled,
        },
        _ = timer => Woke::Deadline,
    }
}

/// A request or cancellation, for waits that also watch a connection (an
/// IMAP IDLE takes this as the future that ends it).
pub async fn request(requests: &mut mpsc::Receiver<Request>, cancel: &CancellationToken) -> Woke {
    wait(None, requests, cancel).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_deadline_ends_the_wait() {
        let (_tx, mut rx) = mpsc::channel(1);
        let cancel = CancellationToken::new();
        let at = Instant::now() + Duration::from_secs(60);
        assert!(matches!(
            wait(Some(at), &mut rx, &cancel).await,
            Woke::Deadline
        ));
        assert!(Instant::now() >= at);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_credentials_has_no_deadline_but_a_sync_ends_it() {
        let (tx, mut rx) = mpsc::channel(1);
        let cancel = CancellationToken::new();
        let start = Instant::now();
        let asker = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            let (reply, _answer) = tokio::sync::oneshot::channel();
            let _ = tx.send(Request::Sync(reply)).await;
            tx
        });
        // An hour with no deadline: only the request ends it.
        assert!(matches!(
            wait(None, &mut rx, &cancel).await,
            Woke::Request(Request::Sync(_))
        ));
        assert!(start.elapsed() >= Duration::from_secs(3600));
        let _tx = asker.await;
    }

    #[tokio::test]
    async fn cancellation_and_a_closed_channel_end_it() {
        let (tx, mut rx) = mpsc::channel::<Request>(1);
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert!(matches!(
            wait(None, &mut rx, &cancel).await,
            Woke::Cancelled
        ));
        drop(tx);
        let cancel = CancellationToken::new();
        assert!(matches!(request(&mut rx, &cancel).await, Woke::Cancelled));
    }
}

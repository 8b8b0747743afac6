//! The sync loop inside the crate: a POP3 engine against a scripted server
//! on 127.0.0.1 that refuses the password, with the test playing the events
//! loop; the scheduler's one engine per account and its shutdown.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use super::events::{Event, Problem, Reporter};
use super::scheduler::Request;
use super::State;
use crate::net::FailureKind;
use crate::settings::{Protocol, Security, Settings};

/// A POP3 server that greets, has no CAPA and refuses every password;
/// counts the connections.
async fn refusing_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("bound").port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"+OK ready\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let answer: &[u8] = match line.split(' ').next().unwrap_or("") {
                        "USER" => b"+OK\r\n",
                        "PASS" => b"-ERR [AUTH] Invalid login\r\n",
                        "QUIT" => b"+OK bye\r\n",
                        _ => b"-ERR unknown command\r\n",
                    };
                    let _ = write.write_all(answer).await;
                    if line.starts_with("QUIT") {
                        break;
                    }
                }
            });
        }
    });
    (port, count)
}

/// The next state change (skipping `syncing` and everything else).
async fn next_state(rx: &mut mpsc::UnboundedReceiver<Event>) -> (State, Problem, u64) {
    loop {
        match rx.recv().await {
            Some(Event::State {
                state: State::Syncing,
                ..
            }) => {}
            Some(Event::State {
                state,
                problem,
                next_retry,
                ..
            }) => return (state, problem, next_retry),
            Some(Event::Flush { done, .. }) => {
                let _ = done.send(());
            }
            Some(_) => {}
            None => panic!("the engine stopped reporting"),
        }
    }
}

#[test]
fn a_refused_password_waits_for_credentials_and_a_sync_answers_after_the_state() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let (port, connections) = refusing_server().await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = crate::store::Store::open(dir.path()).expect("a store");
        let settings = Settings {
            email: "eve@example.test".into(),
            incoming_protocol: Protocol::Pop3,
            incoming_host: "127.0.0.1".into(),
            incoming_port: Some(port),
            incoming_security: Security::None,
            ..Settings::default()
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let reporter = Arc::new(Reporter::new("eve", tx));
        let poller = crate::pop3::poll::Poller::new(
            "eve".into(),
            settings.clone(),
            Zeroizing::new("wrong".into()),
            store,
            reporter.clone(),
        );
        let (_settings_tx, settings_rx) = watch::channel(settings);
        let driver = super::pop3_engine::Driver::new(poller, reporter, settings_rx);
        let (requests, requests_rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let engine = tokio::spawn(driver.run(requests_rx, cancel.clone()));

        // The refusal: needs-credentials, auth-failed, attention, no retry.
        let (state, problem, next_retry) = next_state(&mut rx).await;
        assert_eq!(state, State::NeedsCredentials);
        assert_eq!(next_retry, 0);
        assert!(matches!(
            problem,
            Problem::Set {
                code: "auth-failed",
                attention: true,
                ..
            }
        ));
        assert_eq!(connections.load(Ordering::SeqCst), 1);

        // An hour passes (paused clock, jumping ahead while all wait):
        // nothing is tried again.
        tokio::time::pause();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        tokio::time::resume();
        assert_eq!(connections.load(Ordering::SeqCst), 1, "retried on its own");
        assert!(rx.try_recv().is_err(), "reported something while waiting");

        // A Sync tries once more; its answer comes only after the state
        // it implies has been applied (the flush answered).
        let (reply, mut answer) = oneshot::channel();
        requests
            .send(Request::Sync(reply))
            .await
            .expect("the engine takes requests");
        let mut state_seen = false;
        loop {
            match rx.recv().await.expect("the engine reports") {
                Event::State {
                    state: State::NeedsCredentials,
                    ..
                } => state_seen = true,
                Event::Flush { done, .. } => {
                    assert!(state_seen, "flushed before the state was reported");
                    assert!(
                        matches!(answer.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
                        "the Sync was answered before the state was applied"
                    );
                    let _ = done.send(());
                    break;
                }
                _ => {}
            }
        }
        let got = answer.await.expect("an answer");
        assert!(
            matches!(got, Err(ref f) if f.kind == FailureKind::Auth),
            "{got:?}"
        );
        assert_eq!(
            connections.load(Ordering::SeqCst),
            2,
            "exactly one more try"
        );

        cancel.cancel();
        engine.await.expect("the engine ends when cancelled");
    });
}

#[tokio::test]
async fn one_engine_per_account_and_none_after_shutdown() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = crate::store::Store::open(dir.path()).expect("a store");
    let (tx, _rx) = mpsc::unbounded_channel();
    let scheduler = super::Scheduler::new(store, tx);
    let closed = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let settings = Settings {
        email: "f@example.test".into(),
        incoming_protocol: Protocol::Pop3,
        incoming_host: "127.0.0.1".into(),
        incoming_port: Some(closed),
        incoming_security: Security::None,
        ..Settings::default()
    };
    let pw = || Zeroizing::new("pw".to_owned());
    // Two starts at once: serialised, the first engine displaced.
    tokio::join!(
        scheduler.start("f", settings.clone(), pw()),
        scheduler.start("f", settings.clone(), pw())
    );
    assert!(scheduler.is_running("f").await);
    assert!(scheduler.reconfigure("f", settings.clone()).await);
    assert!(!scheduler.reconfigure("nobody", settings.clone()).await);
    scheduler.shutdown().await;
    assert!(!scheduler.is_running("f").await);
    // Nothing starts once the daemon is stopping.
    scheduler.start("f", settings, pw()).await;
    assert!(!scheduler.is_running("f").await);
}

/// Stopping an engine leaves its progress at (0, 0), applied (the flush
/// answered) before `stop` returns.
#[tokio::test]
async fn stop_resets_progress_before_it_returns() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = crate::store::Store::open(dir.path()).expect("a store");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let scheduler = Arc::new(super::Scheduler::new(store, tx));
    let closed = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let settings = Settings {
        email: "g@example.test".into(),
        incoming_protocol: Protocol::Pop3,
        incoming_host: "127.0.0.1".into(),
        incoming_port: Some(closed),
        incoming_security: Security::None,
        ..Settings::default()
    };
    scheduler
        .start("g", settings, Zeroizing::new("pw".to_owned()))
        .await;
    let stopping = {
        let scheduler = scheduler.clone();
        tokio::spawn(async move { scheduler.stop("g").await })
    };
    // Play the events loop until the stop's flush: the event right before
    // it is the (0, 0) the stop sends (the engine sends no flush here: no
    // request waits).
    let mut before_flush = None;
    loop {
        match rx.recv().await.expect("events") {
            Event::Flush { done, .. } => {
                let _ = done.send(());
                break;
            }
            Event::Progress { done, total, .. } => before_flush = Some((done, total)),
            _ => before_flush = None,
        }
    }
    stopping.await.expect("stop returns");
    assert_eq!(before_flush, Some((0, 0)));
    assert!(!scheduler.is_running("g").await);
}

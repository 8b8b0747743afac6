//! The copy of a sent message is local at once (issue 11, point 6):
//! after `Send` returns (or the outbox delivered an `Enqueue`d message),
//! the copy the daemon appended to the real Dovecot's Sent folder is in
//! `ListMessages("Sent")` without a Sync, byte for byte what the server
//! holds, announced with `MessagesAdded` and new counts, and neither as
//! `NewMessages` nor with a desktop notification (a notification server
//! owns the name on the private bus). A later Sync keeps exactly one copy,
//! and still fetches what another client put in Sent before it. Without
//! APPENDUID (a proxy in front of Dovecot drops it from the answers) the
//! copy is found by its Message-ID and fetched: the same at once.

mod support;

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use facteur_dbus::names;
use facteur_tests::notifications::Notifications;
use facteur_tests::two_way::messages_signal;
use facteur_tests::{wait_for_credentials, wait_until, Bus, Facteurd, Signals};
use support::{facteurd, message, Mail, ALICE, BOB};
use zbus::zvariant::{OwnedValue, Value};

/// How long a delivery through the outbox may take on a loaded machine (a
/// bound: the wait ends as soon as the copy is listed).
const DELIVERY: Duration = Duration::from_secs(60);

/// (id, subject) of every message `ListMessages(folder)` lists.
fn listed(bus: &Bus, path: &str, folder: &str) -> Vec<(String, String)> {
    let reply = bus
        .call_facteur(
            path,
            names::ACCOUNT_INTERFACE,
            "ListMessages",
            &(folder, 0u32, 1000u32),
        )
        .unwrap_or_else(|e| panic!("ListMessages({folder:?}) failed: {e}"));
    let dicts: Vec<HashMap<String, OwnedValue>> = reply
        .body()
        .deserialize()
        .expect("ListMessages returns aa{sv}");
    let s = |d: &HashMap<String, OwnedValue>, k: &str| match d.get(k).map(|v| &**v) {
        Some(Value::Str(s)) => s.to_string(),
        other => panic!("{k} is not a string: {other:?}"),
    };
    dicts
        .iter()
        .map(|d| (s(d, "id"), s(d, "subject")))
        .collect()
}

/// The ids of the messages of Sent with this subject.
fn in_sent(bus: &Bus, path: &str, subject: &str) -> Vec<String> {
    listed(bus, path, "Sent")
        .into_iter()
        .filter(|(_, s)| s == subject)
        .map(|(id, _)| id)
        .collect()
}

/// `GetMessage(id)`.
fn get(bus: &Bus, id: &str) -> Vec<u8> {
    bus.call_facteur(
        names::ROOT_PATH,
        names::MANAGER_INTERFACE,
        "GetMessage",
        &(id,),
    )
    .unwrap_or_else(|e| panic!("GetMessage({id}) failed: {e}"))
    .body()
    .deserialize::<&[u8]>()
    .expect("GetMessage is ay")
    .to_vec()
}

/// `Account.Sync()`: the number of new messages.
fn sync(bus: &Bus, d: &Facteurd<'_>, path: &str) -> u32 {
    bus.call_facteur(path, names::ACCOUNT_INTERFACE, "Sync", &())
        .unwrap_or_else(|e| panic!("Sync failed: {e}\n{}", d.log()))
        .body()
        .deserialize::<u32>()
        .expect("Sync returns u")
}

/// The UID of the message in Alice's Sent on the server whose bytes
/// contain `needle`, and those bytes.
fn on_server(mail: &Mail, needle: &str) -> Vec<(u32, Vec<u8>)> {
    mail.dovecot
        .list_uids(ALICE, "Sent")
        .into_iter()
        .map(|uid| (uid, mail.dovecot.fetch_raw(ALICE, "Sent", uid)))
        .filter(|(_, raw)| facteur_tests::contains(raw, needle.as_bytes()))
        .collect()
}

/// Alice's account, created and synced once (its Sent folder, made by
/// Dovecot with `\Sent`, is known here).
fn alice<'b>(mail: &Mail, bus: &'b Bus) -> (Facteurd<'b>, String) {
    alice_with(mail, bus, mail.alice())
}

/// [`alice`] with these settings.
fn alice_with<'b>(
    mail: &Mail,
    bus: &'b Bus,
    settings: facteur_tests::Settings,
) -> (Facteurd<'b>, String) {
    let d = facteurd(bus, &mail.ca, &[]);
    let path = bus
        .create_account(&settings.s("incoming-password", &mail.alice_password))
        .unwrap_or_else(|e| panic!("CreateAccount failed: {e}\n{}", d.log()));
    wait_for_credentials(bus, &path);
    assert_eq!(sync(bus, &d, &path), 0, "Alice's mailbox starts empty");
    assert!(
        listed(bus, &path, "Sent").is_empty(),
        "Sent is known and empty"
    );
    (d, path)
}

/// What must hold once the copy of the message with `subject` is listed:
/// the server's bytes, one MessagesAdded naming it, no NewMessages, the
/// count, and one copy after a Sync that fetches nothing.
fn check_copy(
    mail: &Mail,
    bus: &Bus,
    d: &Facteurd<'_>,
    path: &str,
    signals: &Signals,
    subject: &str,
) -> String {
    let ids = in_sent(bus, path, subject);
    assert_eq!(ids.len(), 1, "one copy listed: {ids:?}\n{}", d.log());
    let id = ids[0].clone();
    let server = on_server(mail, subject);
    assert_eq!(server.len(), 1, "one copy on the server");
    let (uid, raw) = &server[0];
    assert_eq!(
        get(bus, &id),
        *raw,
        "GetMessage is byte for byte the server's copy"
    );
    assert!(
        id.ends_with(&format!(".{uid}")),
        "the id {id} carries the server's UID {uid}"
    );
    assert!(
        facteur_tests::contains(raw, b"Subject: ")
            && facteur_tests::contains(raw, b"Message-ID: <"),
        "{}",
        facteur_tests::text(raw)
    );
    // MessagesAdded for it (a short bounded wait: signals travel apart
    // from the reply).
    let account = path.to_owned();
    signals.wait_for("MessagesAdded for the Sent copy", |s| {
        messages_signal(s, "MessagesAdded")
            .is_some_and(|(a, f, got)| a == account && f == "Sent" && got == vec![id.clone()])
    });
    // A later Sync fetches nothing and keeps one copy, the same.
    assert_eq!(
        sync(bus, d, path),
        0,
        "the copy is not new mail\n{}",
        d.log()
    );
    assert_eq!(in_sent(bus, path, subject), vec![id.clone()]);
    // Not new mail: no NewMessages carried it (the Sync above flushed
    // every event of the pass before it answered).
    let announced_new: Vec<_> = signals
        .all()
        .into_iter()
        .filter(|s| s.member == "NewMessages")
        .filter_map(|s| {
            s.message
                .body()
                .deserialize::<(zbus::zvariant::OwnedObjectPath, String, Vec<String>)>()
                .ok()
        })
        .filter(|(_, _, ids)| ids.contains(&id))
        .collect();
    assert!(
        announced_new.is_empty(),
        "the Sent copy was announced as new mail: {announced_new:?}"
    );
    id
}

#[test]
fn the_copy_of_a_send_is_listed_at_once_and_once() {
    let mail = Mail::start();
    let bus = Bus::start();
    let notices = Notifications::start(&bus);
    let (d, path) = alice(&mail, &bus);
    let before = bus.account(&path).u32("MessageCount");
    let signals = bus.signals();

    let subject = format!("Copied at once {}", std::process::id());
    bus.call_facteur(
        &path,
        names::ACCOUNT_INTERFACE,
        "Send",
        &(message(BOB, &subject),),
    )
    .unwrap_or_else(|e| panic!("Send failed: {e}\n{}", mail.mta.log()));
    // At once: no Sync, no wait.
    assert_eq!(
        in_sent(&bus, &path, &subject).len(),
        1,
        "the copy is listed when Send returns\n{}",
        d.log()
    );
    assert_eq!(
        bus.account(&path).u32("MessageCount"),
        before + 1,
        "MessageCount counts the copy when Send returns"
    );
    check_copy(&mail, &bus, &d, &path, &signals, &subject);
    assert!(
        d.log().contains("is stored here as"),
        "{}",
        facteur_tests::last_lines(&d.log(), 30)
    );
    assert!(
        notices.all().is_empty(),
        "the user's own Sent copy notified: {:?}",
        notices.all()
    );

    // Another client files a message in Sent, then a send: the copy,
    // stored ahead, does not make the next Sync skip the other message
    // (whose UID is below the copy's).
    let other = format!("Filed by another client {}", std::process::id());
    mail.dovecot
        .append(ALICE, "Sent", &message(BOB, &other), &["\\Seen"]);
    let second = format!("Copied after another {}", std::process::id());
    bus.call_facteur(
        &path,
        names::ACCOUNT_INTERFACE,
        "Send",
        &(message(BOB, &second),),
    )
    .unwrap_or_else(|e| panic!("Send failed: {e}\n{}", mail.mta.log()));
    let copy = in_sent(&bus, &path, &second);
    assert_eq!(copy.len(), 1, "the second copy is listed at once");
    assert!(
        in_sent(&bus, &path, &other).is_empty(),
        "the other client's message waits for a sync"
    );
    assert_eq!(
        sync(&bus, &d, &path),
        1,
        "the Sync fetches the other one\n{}",
        d.log()
    );
    assert_eq!(in_sent(&bus, &path, &other).len(), 1);
    assert_eq!(in_sent(&bus, &path, &second), copy, "still one copy");
    assert_eq!(in_sent(&bus, &path, &subject).len(), 1);
    assert_eq!(bus.account(&path).u32("MessageCount"), before + 3);
    assert_eq!(sync(&bus, &d, &path), 0, "nothing left to fetch");
    assert_eq!(listed(&bus, &path, "Sent").len(), 3);
}

#[test]
fn the_copy_of_an_outbox_delivery_is_listed_without_a_sync() {
    let mail = Mail::start();
    let bus = Bus::start();
    let notices = Notifications::start(&bus);
    let (d, path) = alice(&mail, &bus);
    let signals = bus.signals();

    let subject = format!("Queued and copied {}", std::process::id());
    bus.call_facteur(
        &path,
        names::ACCOUNT_INTERFACE,
        "Enqueue",
        &(message(BOB, &subject),),
    )
    .unwrap_or_else(|e| panic!("Enqueue failed: {e}\n{}", d.log()));
    // The sender delivers on its own: the copy is listed without any Sync
    // (a bounded poll, ended as soon as it is there).
    let listed_at_once = wait_until(DELIVERY, || {
        (!in_sent(&bus, &path, &subject).is_empty()).then_some(())
    });
    assert!(
        listed_at_once.is_some(),
        "the copy of the delivered message is not listed\n{}",
        d.log()
    );
    // The entry leaves the outbox right after the copy is stored.
    let drained = wait_until(DELIVERY, || {
        (bus.account(&path).u32("OutboxCount") == 0).then_some(())
    });
    assert!(drained.is_some(), "the outbox keeps the delivered message");
    check_copy(&mail, &bus, &d, &path, &signals, &subject);
    assert!(
        notices.all().is_empty(),
        "the user's own Sent copy notified: {:?}",
        notices.all()
    );
    // Bob got it, once.
    let got = wait_until(DELIVERY, || {
        let uids: Vec<u32> = mail
            .dovecot
            .list_uids(BOB, "INBOX")
            .into_iter()
            .filter(|u| {
                facteur_tests::contains(
                    &mail.dovecot.fetch_raw(BOB, "INBOX", *u),
                    subject.as_bytes(),
                )
            })
            .collect();
        (!uids.is_empty()).then_some(uids)
    });
    assert_eq!(got.map(|u| u.len()), Some(1));
}

/// A plain TCP proxy in front of Dovecot's clear-text IMAP port that drops
/// the `[APPENDUID …]` code from the server's lines: the answer to APPEND
/// of a server without UIDPLUS. Counts what it dropped.
struct NoAppendUid {
    port: u16,
    dropped: Arc<AtomicUsize>,
}

impl NoAppendUid {
    fn start(host: &str, target: u16) -> NoAppendUid {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let dropped = Arc::new(AtomicUsize::new(0));
        let count = dropped.clone();
        let host = host.to_owned();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect((host.as_str(), target)) else {
                    break;
                };
                let (mut up_from, mut up_to) = (
                    client.try_clone().expect("clone the client socket"),
                    server.try_clone().expect("clone the server socket"),
                );
                thread::spawn(move || {
                    let _ = std::io::copy(&mut up_from, &mut up_to);
                    let _ = up_to.shutdown(Shutdown::Write);
                });
                let count = count.clone();
                thread::spawn(move || {
                    let (mut reader, mut to_client) = (BufReader::new(server), client);
                    loop {
                        let mut line = Vec::new();
                        match reader.read_until(b'\n', &mut line) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                        if let Some(at) = find(&line, b"[APPENDUID ") {
                            if let Some(end) = find(&line[at..], b"] ") {
                                line.drain(at..at + end + 2);
                                count.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        if to_client.write_all(&line).is_err() {
                            break;
                        }
                    }
                    let _ = to_client.shutdown(Shutdown::Write);
                });
            }
        });
        NoAppendUid { port, dropped }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn without_appenduid_the_copy_is_found_by_its_message_id() {
    let mail = Mail::start();
    let bus = Bus::start();
    let notices = Notifications::start(&bus);
    let proxy = NoAppendUid::start(mail.dovecot.host(), mail.dovecot.imap_port());
    let settings = mail
        .alice()
        .s("incoming-host", "127.0.0.1")
        .q("incoming-port", proxy.port)
        .s("incoming-security", "none");
    let (d, path) = alice_with(&mail, &bus, settings);
    let signals = bus.signals();

    let subject = format!("Found by Message-ID {}", std::process::id());
    bus.call_facteur(
        &path,
        names::ACCOUNT_INTERFACE,
        "Send",
        &(message(BOB, &subject),),
    )
    .unwrap_or_else(|e| panic!("Send failed: {e}\n{}", mail.mta.log()));
    assert_eq!(
        proxy.dropped.load(Ordering::SeqCst),
        1,
        "the APPEND was answered without APPENDUID"
    );
    assert_eq!(
        in_sent(&bus, &path, &subject).len(),
        1,
        "the copy is listed when Send returns\n{}",
        d.log()
    );
    check_copy(&mail, &bus, &d, &path, &signals, &subject);
    assert!(
        notices.all().is_empty(),
        "the user's own Sent copy notified: {:?}",
        notices.all()
    );
}

//! The outbox against the harness's real MTA (Postfix delivering to Dovecot
//! over LMTP): `Enqueue` stores a message durably and a sender delivers it
//! in order once the SMTP server is reachable; `ListOutbox` shows what
//! waits (`queued`, attempts, last-error) or failed for good; `CancelOutbox`
//! drops a message; `OutboxCount` follows. Each delivered message is seen
//! in the recipient's INBOX exactly once (and once in Postfix's log), with
//! its copy in the sender's Sent folder, also across a SIGKILL of
//! facteurd while messages wait.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use facteur_dbus::names;
use facteur_tests::dovecot::Dovecot;
use facteur_tests::{closed_port, wait_for_credentials, wait_until, Bus, CallError, Settings};
use support::{facteurd, message, Mail, ALICE, BOB};
use zbus::zvariant::OwnedValue;

/// How long a delivery may take on a loaded machine (a bound, not a
/// measurement: every wait ends as soon as its condition holds).
const DELIVERY: Duration = Duration::from_secs(60);

fn enqueue(bus: &Bus, path: &str, raw: &[u8]) -> Result<String, CallError> {
    bus.call_facteur(path, names::ACCOUNT_INTERFACE, "Enqueue", &(raw.to_vec(),))
        .map(|m| m.body().deserialize::<String>().expect("Enqueue returns s"))
}

fn cancel(bus: &Bus, path: &str, id: &str) -> Result<(), CallError> {
    bus.call_facteur(path, names::ACCOUNT_INTERFACE, "CancelOutbox", &(id,))
        .map(|_| ())
}

/// One `ListOutbox` entry.
#[derive(Debug, Clone)]
struct Entry {
    id: String,
    subject: String,
    to: String,
    state: String,
    attempts: u32,
    last_error: String,
    queued: i64,
}

fn list(bus: &Bus, path: &str) -> Vec<Entry> {
    let reply = bus
        .call_facteur(path, names::ACCOUNT_INTERFACE, "ListOutbox", &())
        .expect("ListOutbox");
    let dicts: Vec<HashMap<String, OwnedValue>> = reply
        .body()
        .deserialize()
        .expect("ListOutbox returns aa{sv}");
    dicts
        .into_iter()
        .map(|d| {
            let s = |k: &str| {
                String::try_from(d.get(k).unwrap_or_else(|| panic!("no {k}")).clone())
                    .unwrap_or_else(|e| panic!("{k} is not a string: {e}"))
            };
            Entry {
                id: s("id"),
                subject: s("subject"),
                to: s("to"),
                state: s("state"),
                attempts: u32::try_from(d.get("attempts").expect("attempts").clone())
                    .expect("attempts is u"),
                last_error: s("last-error"),
                queued: i64::try_from(d.get("queued").expect("queued").clone())
                    .expect("queued is x"),
            }
        })
        .collect()
}

fn outbox_count(bus: &Bus, path: &str) -> u32 {
    bus.account(path).u32("OutboxCount")
}

fn failed_count(bus: &Bus, path: &str) -> u32 {
    bus.account(path).u32("OutboxFailedCount")
}

/// Wait until `OutboxCount` is `n` (the sender announces its changes
/// right after storing them).
fn count_becomes(bus: &Bus, path: &str, n: u32) {
    let got = wait_until(DELIVERY, || (outbox_count(bus, path) == n).then_some(()));
    assert!(
        got.is_some(),
        "OutboxCount stays {} instead of {n}",
        outbox_count(bus, path)
    );
}

/// The UIDs of the messages in `user`'s `folder` whose bytes contain
/// `needle`.
fn matching(dovecot: &Dovecot, user: &str, folder: &str, needle: &str) -> Vec<u32> {
    if !dovecot.folders(user).iter().any(|f| f == folder) {
        return Vec::new();
    }
    dovecot
        .list_uids(user, folder)
        .into_iter()
        .filter(|uid| {
            facteur_tests::contains(&dovecot.fetch_raw(user, folder, *uid), needle.as_bytes())
        })
        .collect()
}

/// Wait until a message with `needle` is in `user`'s `folder`; its UIDs.
fn arrived(dovecot: &Dovecot, user: &str, folder: &str, needle: &str) -> Vec<u32> {
    wait_until(DELIVERY, || {
        let found = matching(dovecot, user, folder, needle);
        (!found.is_empty()).then_some(found)
    })
    .unwrap_or_else(|| panic!("no message with {needle:?} arrived in {user}'s {folder}"))
}

/// Wait until the outbox is empty and `OutboxCount` is 0.
fn drained(bus: &Bus, path: &str, log: impl Fn() -> String) {
    let done = wait_until(DELIVERY, || {
        (list(bus, path).is_empty() && outbox_count(bus, path) == 0).then_some(())
    });
    assert!(
        done.is_some(),
        "the outbox did not drain: {:?}\n{}",
        list(bus, path),
        log()
    );
}

/// How many times Postfix took a message with this Message-ID.
fn submissions(mail: &Mail, message_id: &str) -> usize {
    let needle = format!("message-id=<{message_id}>");
    mail.mta
        .log()
        .lines()
        .filter(|l| l.contains("postfix/cleanup") && l.contains(&needle))
        .count()
}

fn with_id(to: &str, subject: &str, message_id: &str) -> Vec<u8> {
    let mut raw = message(to, subject);
    raw.splice(0..0, format!("Message-ID: <{message_id}>\r\n").into_bytes());
    raw
}

fn eml_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("outbox"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn queued_mail_is_delivered_once_with_its_sent_copy() {
    let mail = Mail::start();
    let bus = Bus::start();
    let d = facteurd(&bus, &mail.ca, &[]);
    let path = bus
        .create_account(&mail.alice().s("incoming-password", &mail.alice_password))
        .expect("create Alice's account");
    wait_for_credentials(&bus, &path);

    let pid = std::process::id();
    let subject = format!("Queued hello {pid}");
    let message_id = format!("outbox-once-{pid}@example.test");
    let id = enqueue(&bus, &path, &with_id(BOB, &subject, &message_id))
        .unwrap_or_else(|e| panic!("Enqueue failed: {e}\n{}", d.log()));
    assert!(!id.is_empty());

    let inbox = arrived(&mail.dovecot, BOB, "INBOX", &subject);
    drained(&bus, &path, || d.log());
    let sent = arrived(&mail.dovecot, ALICE, "Sent", &subject);
    assert_eq!(sent.len(), 1, "one Sent copy");
    let flags = mail.dovecot.flags(ALICE, "Sent", sent[0]);
    assert!(flags.iter().any(|f| f == "\\Seen"), "{flags:?}");
    // Exactly once: one submission in Postfix's log, one message in the
    // INBOX (both read after the outbox drained and the message arrived).
    assert_eq!(inbox.len(), 1, "delivered once");
    let taken = wait_until(DELIVERY, || {
        let n = submissions(&mail, &message_id);
        (n > 0).then_some(n)
    });
    assert_eq!(taken, Some(1), "{}", mail.mta.log());
    assert_eq!(matching(&mail.dovecot, BOB, "INBOX", &subject).len(), 1);
    let got = facteur_tests::text(&mail.dovecot.fetch_raw(BOB, "INBOX", inbox[0]));
    assert!(
        got.contains("From: Alice Test <alice@example.test>"),
        "{got}"
    );
    assert!(got.contains("\r\n.dot line\r\n"), "dot-stuffing: {got}");
    assert_eq!(eml_files(&d.data_dir()), 0, "the message file is removed");
    assert!(!d.log().contains(&mail.alice_password));
}

#[test]
fn smtp_down_keeps_messages_in_order_across_a_kill() {
    let mail = Mail::start();
    let bus = Bus::start();
    let mut d = facteurd(&bus, &mail.ca, &[]);
    let down = closed_port();
    let path = bus
        .create_account(
            &mail
                .alice()
                .s("incoming-password", &mail.alice_password)
                .q("smtp-port", down),
        )
        .expect("create Alice's account");
    wait_for_credentials(&bus, &path);

    let pid = std::process::id();
    let first = format!("First in line {pid}");
    let second = format!("Second in line {pid}");
    let third = format!("Cancelled {pid}");
    let second_id = format!("outbox-second-{pid}@example.test");
    // Without a Message-ID: Enqueue adds one.
    let a = enqueue(&bus, &path, &message(BOB, &first)).expect("Enqueue the first");
    let b = enqueue(&bus, &path, &with_id(BOB, &second, &second_id)).expect("Enqueue the second");
    // The same Message-ID again: the same entry, not a second one.
    let again = enqueue(&bus, &path, &with_id(BOB, &second, &second_id)).expect("Enqueue it again");
    assert_eq!(again, b, "one entry per Message-ID");
    // Other bytes under the same Message-ID: refused, the first kept.
    let e = enqueue(
        &bus,
        &path,
        &with_id(BOB, &format!("{second} (edited)"), &second_id),
    )
    .expect_err("an edited message under a queued Message-ID");
    assert_eq!(e.short_name(), "AlreadyExists", "{e}");
    assert!(e.to_string().contains(&b), "names the queued message: {e}");
    let c = enqueue(&bus, &path, &message(BOB, &third)).expect("Enqueue the third");
    assert_eq!(eml_files(&d.data_dir()), 3, "one file per message");

    // The first is tried, fails for now, and holds the others back.
    let tried = wait_until(DELIVERY, || {
        let l = list(&bus, &path);
        let tried = l
            .first()
            .is_some_and(|e| e.attempts >= 1 && !e.last_error.is_empty());
        tried.then_some(l)
    })
    .unwrap_or_else(|| panic!("the first message was not tried:\n{}", d.log()));
    let ids: Vec<&str> = tried.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [a.as_str(), b.as_str(), c.as_str()], "oldest first");
    assert_eq!(tried[0].state, "queued", "{tried:?}");
    assert_eq!(tried[0].subject, first);
    assert_eq!(tried[0].to, BOB);
    assert!(tried[0].queued > 0);
    assert_eq!(tried[1].attempts, 0, "order kept: {tried:?}");
    assert_eq!(tried[2].attempts, 0, "order kept: {tried:?}");
    count_becomes(&bus, &path, 3);

    // Cancel the third (queued, not being sent).
    cancel(&bus, &path, &c).expect("CancelOutbox");
    let e = cancel(&bus, &path, &c).expect_err("cancelled already");
    assert_eq!(e.short_name(), "NotFound", "{e}");
    assert_eq!(outbox_count(&bus, &path), 2);
    assert_eq!(eml_files(&d.data_dir()), 2, "its file went too");

    // A crash while they wait.
    d.kill();
    assert!(bus.wait_for_name(names::BUS_NAME, false, facteur_tests::DEADLINE));
    d.launch();
    wait_for_credentials(&bus, &path);
    let kept: Vec<String> = list(&bus, &path).into_iter().map(|e| e.id).collect();
    assert_eq!(kept, [a.clone(), b.clone()], "both survived the kill");
    count_becomes(&bus, &path, 2);

    // The SMTP server back: both go out, in order, once each.
    bus.update_account(
        &path,
        &Settings::new().q("smtp-port", mail.mta.submissions_port()),
    )
    .expect("Update smtp-port");
    arrived(&mail.dovecot, BOB, "INBOX", &first);
    arrived(&mail.dovecot, BOB, "INBOX", &second);
    drained(&bus, &path, || d.log());
    let sent_first = arrived(&mail.dovecot, ALICE, "Sent", &first);
    let sent_second = arrived(&mail.dovecot, ALICE, "Sent", &second);
    assert_eq!((sent_first.len(), sent_second.len()), (1, 1));
    assert!(
        sent_first[0] < sent_second[0],
        "sent in the order queued: {sent_first:?} {sent_second:?}"
    );
    let taken = wait_until(DELIVERY, || {
        let n = submissions(&mail, &second_id);
        (n > 0).then_some(n)
    });
    assert_eq!(taken, Some(1), "{}", mail.mta.log());
    assert_eq!(matching(&mail.dovecot, BOB, "INBOX", &first).len(), 1);
    assert_eq!(matching(&mail.dovecot, BOB, "INBOX", &second).len(), 1);
    assert!(
        matching(&mail.dovecot, BOB, "INBOX", &third).is_empty(),
        "the cancelled message was not sent"
    );
    assert_eq!(eml_files(&d.data_dir()), 0);
}

#[test]
fn refusals_fail_for_good_and_bad_input_queues_nothing() {
    let mail = Mail::start();
    let bus = Bus::start();
    let d = facteurd(&bus, &mail.ca, &[]);
    let path = bus
        .create_account(&mail.alice().s("incoming-password", &mail.alice_password))
        .expect("create Alice's account");
    wait_for_credentials(&bus, &path);

    // Bad input: refused at once, nothing queued.
    for (raw, what) in [
        (&b""[..], "empty"),
        (
            &b"To: bob@example.test\r\nSubject: no body\r\n"[..],
            "no separator",
        ),
        (
            &b"From: a@example.test\r\nSubject: x\r\n\r\nhi\r\n"[..],
            "no recipient",
        ),
        (
            &b"To: not an address\r\nSubject: x\r\n\r\nhi\r\n"[..],
            "bad recipient",
        ),
    ] {
        let e = enqueue(&bus, &path, raw).expect_err(what);
        assert_eq!(e.short_name(), "InvalidArgument", "{what}: {e}");
    }
    assert!(list(&bus, &path).is_empty());
    assert_eq!(outbox_count(&bus, &path), 0);
    assert_eq!(eml_files(&d.data_dir()), 0);
    let e = cancel(&bus, &path, "0000000000000001").expect_err("unknown id");
    assert_eq!(e.short_name(), "NotFound", "{e}");
    let e = cancel(&bus, &path, "not-an-id").expect_err("malformed id");
    assert_eq!(e.short_name(), "NotFound", "{e}");

    // A recipient Postfix refuses (550): failed, not retried, and the next
    // message still goes.
    let pid = std::process::id();
    let refused = format!("To nobody {pid}");
    let next = format!("After the refusal {pid}");
    let bad = enqueue(&bus, &path, &message("nobody@example.test", &refused)).expect("Enqueue");
    let good = enqueue(&bus, &path, &message(BOB, &next)).expect("Enqueue");
    arrived(&mail.dovecot, BOB, "INBOX", &next);
    let failed = wait_until(DELIVERY, || {
        let l = list(&bus, &path);
        (l.len() == 1 && l[0].state == "failed").then_some(l)
    })
    .unwrap_or_else(|| panic!("no failed entry: {:?}\n{}", list(&bus, &path), d.log()));
    assert_eq!(failed[0].id, bad);
    assert_ne!(failed[0].id, good);
    assert_eq!(failed[0].attempts, 1, "tried once: {failed:?}");
    assert!(failed[0].last_error.contains("550"), "{failed:?}");
    // Failed ones do not count as waiting; they are counted as failed.
    count_becomes(&bus, &path, 0);
    let counted = wait_until(DELIVERY, || (failed_count(&bus, &path) == 1).then_some(()));
    assert!(
        counted.is_some(),
        "OutboxFailedCount {}",
        failed_count(&bus, &path)
    );

    // Still failed after another message went through: not retried.
    let later = format!("Later still {pid}");
    enqueue(&bus, &path, &message(BOB, &later)).expect("Enqueue");
    arrived(&mail.dovecot, BOB, "INBOX", &later);
    let l = wait_until(DELIVERY, || {
        let l = list(&bus, &path);
        (l.len() == 1).then_some(l)
    })
    .expect("the later message leaves the outbox");
    assert_eq!((l[0].state.as_str(), l[0].attempts), ("failed", 1));

    // A failed message can be cancelled.
    cancel(&bus, &path, &bad).expect("CancelOutbox of a failed message");
    assert!(list(&bus, &path).is_empty());
    assert_eq!(eml_files(&d.data_dir()), 0);
    let counted = wait_until(DELIVERY, || (failed_count(&bus, &path) == 0).then_some(()));
    assert!(
        counted.is_some(),
        "OutboxFailedCount {}",
        failed_count(&bus, &path)
    );

    // An account without an SMTP server queues nothing.
    bus.update_account(&path, &Settings::new().s("smtp-host", ""))
        .expect("Update smtp-host");
    let e = enqueue(&bus, &path, &message(BOB, &format!("No server {pid}")))
        .expect_err("Enqueue without smtp-host");
    assert_eq!(e.short_name(), "InvalidArgument", "{e}");
    assert!(list(&bus, &path).is_empty());
    assert_eq!(eml_files(&d.data_dir()), 0);
    bus.update_account(&path, &Settings::new().s("smtp-host", "localhost"))
        .expect("Update smtp-host back");

    // Deleting the account drops what waits in its outbox.
    bus.update_account(&path, &Settings::new().q("smtp-port", closed_port()))
        .expect("Update smtp-port");
    enqueue(&bus, &path, &message(BOB, &format!("Never sent {pid}"))).expect("Enqueue");
    assert_eq!(eml_files(&d.data_dir()), 1);
    bus.delete_account(&path).expect("Delete");
    assert_eq!(
        eml_files(&d.data_dir()),
        0,
        "the outbox went with the account"
    );
}

/// Mark every outbox entry of the stopped daemon's index `sending`, as a
/// crash in the middle of a send leaves them.
fn mark_all_sending(data_dir: &std::path::Path, entries: usize) {
    let config = sled::Config::new()
        .path(data_dir.join("index"))
        .cache_capacity(8 * 1024 * 1024)
        .mode(sled::Mode::LowSpace);
    let deadline = std::time::Instant::now() + facteur_tests::DEADLINE;
    let db = loop {
        match config.open() {
            Ok(db) => break db,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot open the index: {e}"),
        }
    };
    let tree = db.open_tree("outbox").expect("the outbox tree");
    let mut marked = 0;
    for item in tree.iter() {
        let (key, value) = item.expect("an outbox entry");
        let mut entry: serde_json::Value = serde_json::from_slice(&value).expect("JSON");
        entry["state"] = serde_json::Value::from("sending");
        tree.insert(key, serde_json::to_vec(&entry).expect("JSON"))
            .expect("write the entry");
        marked += 1;
    }
    assert_eq!(marked, entries, "entries to mark");
    db.flush().expect("flush the index");
}

#[test]
fn an_interrupted_send_is_looked_up_in_the_sent_folder() {
    let mail = Mail::start();
    let bus = Bus::start();
    let mut d = facteurd(&bus, &mail.ca, &[]);
    let path = bus
        .create_account(
            &mail
                .alice()
                .s("incoming-password", &mail.alice_password)
                .q("smtp-port", closed_port()),
        )
        .expect("create Alice's account");
    wait_for_credentials(&bus, &path);

    let pid = std::process::id();
    let (delivered, undelivered, dropped) = (
        format!("Delivered before the crash {pid}"),
        format!("Not delivered before the crash {pid}"),
        format!("Cancelled after the crash {pid}"),
    );
    let (delivered_id, undelivered_id) = (
        format!("outbox-delivered-{pid}@example.test"),
        format!("outbox-undelivered-{pid}@example.test"),
    );
    let delivered_raw = with_id(BOB, &delivered, &delivered_id);
    enqueue(&bus, &path, &delivered_raw).expect("Enqueue");
    let second =
        enqueue(&bus, &path, &with_id(BOB, &undelivered, &undelivered_id)).expect("Enqueue");
    let third = enqueue(&bus, &path, &message(BOB, &dropped)).expect("Enqueue");
    // The Sent folder cannot be looked at after the restart (a wrong
    // IMAP password).
    bus.update_account(&path, &Settings::new().s("incoming-password", "wrong"))
        .expect("Update incoming-password");
    d.stop();

    // What a crash after the first one's Sent copy leaves: its copy in
    // Sent, every entry `sending`. Also in Sent: a message whose
    // Message-ID holds the second's as a substring (not the same one).
    if !mail.dovecot.folders(ALICE).iter().any(|f| f == "Sent") {
        mail.dovecot.create_folder(ALICE, "Sent");
    }
    mail.dovecot
        .append(ALICE, "Sent", &delivered_raw, &["\\Seen"]);
    let decoy = format!("Someone else's {pid}");
    mail.dovecot.append(
        ALICE,
        "Sent",
        &with_id(BOB, &decoy, &format!("pre-{undelivered_id}")),
        &["\\Seen"],
    );
    mark_all_sending(&d.data_dir(), 3);

    d.launch();
    wait_for_credentials(&bus, &path);
    // Every entry is queued again, not stuck `sending`, so one can be
    // cancelled; the first one's lookup failed (and says why).
    let waiting = wait_until(DELIVERY, || {
        let l = list(&bus, &path);
        let all =
            l.len() == 3 && l.iter().all(|e| e.state == "queued") && !l[0].last_error.is_empty();
        all.then_some(l)
    })
    .unwrap_or_else(|| panic!("{:?}\n{}", list(&bus, &path), d.log()));
    assert_eq!(waiting[1].id, second);
    assert_eq!(waiting[2].id, third);
    cancel(&bus, &path, &third).expect("CancelOutbox of an unverified entry");
    count_becomes(&bus, &path, 2);

    // The IMAP password and the SMTP server back (an Update: at once).
    bus.update_account(
        &path,
        &Settings::new()
            .s("incoming-password", &mail.alice_password)
            .q("smtp-port", mail.mta.submissions_port()),
    )
    .expect("Update");
    // The first is found in Sent and leaves; the second is sent again.
    arrived(&mail.dovecot, BOB, "INBOX", &undelivered);
    drained(&bus, &path, || d.log());
    assert!(d.log().contains("is in the Sent folder"), "{}", d.log());
    let taken = wait_until(DELIVERY, || {
        let n = submissions(&mail, &undelivered_id);
        (n > 0).then_some(n)
    });
    assert_eq!(taken, Some(1), "{}", mail.mta.log());
    assert_eq!(
        submissions(&mail, &delivered_id),
        0,
        "not sent a second time"
    );
    assert!(matching(&mail.dovecot, BOB, "INBOX", &delivered).is_empty());
    assert!(matching(&mail.dovecot, BOB, "INBOX", &dropped).is_empty());
    assert_eq!(matching(&mail.dovecot, ALICE, "Sent", &delivered).len(), 1);
}

#[test]
fn account_trouble_keeps_messages_queued_until_an_update_fixes_it() {
    let mail = Mail::start();
    let bus = Bus::start();
    let d = facteurd(&bus, &mail.ca, &[]);
    let path = bus
        .create_account(
            &mail
                .alice()
                .s("incoming-password", &mail.alice_password)
                .s("smtp-password", "not Alice's password"),
        )
        .expect("create Alice's account");
    wait_for_credentials(&bus, &path);

    let pid = std::process::id();
    let subjects: Vec<String> = (1..=3).map(|n| format!("Held back {n} {pid}")).collect();
    let message_ids: Vec<String> = (1..=3)
        .map(|n| format!("outbox-held-{n}-{pid}@example.test"))
        .collect();
    for (subject, id) in subjects.iter().zip(&message_ids) {
        enqueue(&bus, &path, &with_id(BOB, subject, id)).expect("Enqueue");
    }
    // The first is tried and refused (535): the account's trouble, not
    // the message's.
    let tried = wait_until(DELIVERY, || {
        let l = list(&bus, &path);
        l.first()
            .is_some_and(|e| e.attempts >= 1 && !e.last_error.is_empty())
            .then_some(())
    });
    assert!(tried.is_some(), "{:?}\n{}", list(&bus, &path), d.log());
    // Longer than the first backoffs: nothing fails, nothing else is
    // tried, and the refused password is not tried again on its own.
    std::thread::sleep(Duration::from_secs(5));
    let l = list(&bus, &path);
    assert_eq!(l.len(), 3, "{l:?}");
    assert!(l.iter().all(|e| e.state == "queued"), "{l:?}\n{}", d.log());
    assert_eq!(
        l.iter().map(|e| e.attempts).collect::<Vec<_>>(),
        [1, 0, 0],
        "{l:?}"
    );
    assert_eq!(failed_count(&bus, &path), 0);
    assert_eq!(outbox_count(&bus, &path), 3);

    // The right password (a secret only: no other setting changes): all
    // go at once, each once.
    bus.update_account(
        &path,
        &Settings::new().s("smtp-password", &mail.alice_password),
    )
    .expect("Update smtp-password");
    for subject in &subjects {
        arrived(&mail.dovecot, BOB, "INBOX", subject);
    }
    drained(&bus, &path, || d.log());
    for (subject, id) in subjects.iter().zip(&message_ids) {
        let taken = wait_until(DELIVERY, || {
            let n = submissions(&mail, id);
            (n > 0).then_some(n)
        });
        assert_eq!(taken, Some(1), "{}", mail.mta.log());
        assert_eq!(matching(&mail.dovecot, BOB, "INBOX", subject).len(), 1);
    }
    assert_eq!(failed_count(&bus, &path), 0);
    assert!(!d.log().contains(&mail.alice_password));
}

/// A submission server that reads one message per connection and then
/// says nothing: the connection is closed, with no reply to the end of
/// DATA, once the test sends on `release`. Each message read is sent on
/// the returned channel.
fn mute_smtp() -> (
    u16,
    std::sync::mpsc::Receiver<Vec<u8>>,
    std::sync::mpsc::Sender<()>,
) {
    use std::io::{BufRead as _, BufReader, Write as _};
    let listener = std::net::TcpListener::bind((facteur_tests::LOOPBACK, 0)).expect("bind");
    let port = listener.local_addr().expect("an address").port();
    let (got_tx, got) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut w) = stream else { continue };
            let Ok(r) = w.try_clone() else { continue };
            let mut r = BufReader::new(r);
            let _ = w.write_all(b"220 mute.test ESMTP\r\n");
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let verb = line.to_ascii_uppercase();
                if verb.starts_with("DATA") {
                    let _ = w.write_all(b"354 go on\r\n");
                    let mut raw = Vec::new();
                    let mut l = Vec::new();
                    loop {
                        l.clear();
                        if r.read_until(b'\n', &mut l).unwrap_or(0) == 0 || l == b".\r\n" {
                            break;
                        }
                        raw.extend_from_slice(&l);
                    }
                    let _ = got_tx.send(raw);
                    // No reply: wait for the test, then hang up.
                    let _ = released.recv_timeout(DELIVERY);
                    break;
                } else if verb.starts_with("QUIT") {
                    let _ = w.write_all(b"221 bye\r\n");
                    break;
                } else {
                    let _ = w.write_all(b"250 mute.test\r\n");
                }
            }
        }
    });
    (port, got, release)
}

#[test]
fn a_reply_lost_after_data_is_looked_up_in_sent_before_a_retry() {
    let mail = Mail::start();
    let bus = Bus::start();
    let d = facteurd(&bus, &mail.ca, &[]);
    let (port, got, release) = mute_smtp();
    let path = bus
        .create_account(
            &mail
                .alice()
                .s("incoming-password", &mail.alice_password)
                .s("smtp-host", facteur_tests::LOOPBACK)
                .q("smtp-port", port)
                .s("smtp-security", "none"),
        )
        .expect("create Alice's account");
    wait_for_credentials(&bus, &path);

    let pid = std::process::id();
    let subject = format!("Reply lost {pid}");
    let message_id = format!("outbox-lost-reply-{pid}@example.test");
    enqueue(&bus, &path, &with_id(BOB, &subject, &message_id)).expect("Enqueue");
    let first = got
        .recv_timeout(DELIVERY)
        .unwrap_or_else(|_| panic!("no message reached the server\n{}", d.log()));
    // The server took it and filed it in Sent itself (as Gmail does),
    // then the connection went without a final reply.
    if !mail.dovecot.folders(ALICE).iter().any(|f| f == "Sent") {
        mail.dovecot.create_folder(ALICE, "Sent");
    }
    mail.dovecot.append(ALICE, "Sent", &first, &["\\Seen"]);
    release.send(()).expect("release the connection");

    // The retry finds it in Sent: the outbox drains, nothing sent again.
    drained(&bus, &path, || d.log());
    assert!(d.log().contains("is in the Sent folder"), "{}", d.log());
    assert!(
        got.recv_timeout(Duration::from_secs(1)).is_err(),
        "sent a second time\n{}",
        d.log()
    );
    assert_eq!(matching(&mail.dovecot, ALICE, "Sent", &subject).len(), 1);
}

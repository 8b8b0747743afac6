//! # QRESYNC resync against a real Dovecot (issue 9)
//!
//! Dovecot offers QRESYNC after login: facteurd enables it, and a folder
//! with stored state is opened with `SELECT … (QRESYNC (uidvalidity
//! modseq))`, whose `VANISHED (EARLIER)` and FETCH answers are the whole
//! resync. Dovecot's rawlog (every command facteurd sent, as Dovecot read
//! it) proves which path ran. Also: a CONDSTORE-only Dovecot
//! (`imap_capability` without QRESYNC) keeps the comparison path, and an
//! expunge while facteurd idles (a `VANISHED` during IDLE) is noticed.
//!
//! Every wait polls with a deadline; nothing sleeps for a fixed time.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use facteur_dbus::names;
use facteur_tests::dovecot::{Dovecot, DovecotOptions};
use facteur_tests::*;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

const USER: &str = "alice@example.test";
const PASSWORD: &str = "pä ss-alice";

/// A Dovecot with Alice, writing a rawlog of every IMAP connection into
/// the returned directory; `extra` is more configuration.
fn dovecot(extra: &str) -> (Dovecot, tempfile::TempDir) {
    let rawlog = short_tempdir("rawlog-");
    fs::set_permissions(rawlog.path(), fs::Permissions::from_mode(0o777))
        .expect("open the rawlog dir");
    let mut options = DovecotOptions::default();
    options.extra_config.push_str(&format!(
        "\nverbose_proctitle = yes\nprotocol imap {{\n  rawlog_dir = {}\n}}\n{extra}\n",
        rawlog.path().display()
    ));
    let dovecot = Dovecot::start(options);
    dovecot.add_user(USER, PASSWORD);
    (dovecot, rawlog)
}

/// What facteurd sent to Dovecot so far, over every connection (the
/// rawlog's `.in` files, in name order: by time).
fn sent(rawlog: &Path) -> String {
    let mut files: Vec<PathBuf> = fs::read_dir(rawlog)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "in"));
    files.sort();
    files
        .iter()
        .map(|p| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn facteurd<'b>(bus: &'b Bus, dovecot: &Dovecot) -> Facteurd<'b> {
    let mut d = Facteurd::new(bus);
    d.env(
        "SSL_CERT_FILE",
        dovecot.ca_cert_path().as_os_str().to_owned(),
    )
    .env("SSL_CERT_DIR", "")
    .arg("--secret-store")
    .arg("file");
    d.launch();
    d
}

fn create_alice(bus: &Bus, dovecot: &Dovecot) -> String {
    create(bus, dovecot, USER, "tls")
}

/// An IMAP account for `user` (password [`PASSWORD`]) over implicit TLS
/// (`tls`) or the plain port (`none`).
fn create(bus: &Bus, dovecot: &Dovecot, user: &str, security: &str) -> String {
    let port = if security == "tls" {
        dovecot.imaps_port()
    } else {
        dovecot.imap_port()
    };
    let settings = Settings::new()
        .s("name", user)
        .s("email", user)
        .s("incoming-protocol", "imap")
        .s("incoming-host", dovecot.host())
        .q("incoming-port", port)
        .s("incoming-security", security)
        .s("incoming-login", user)
        .s("incoming-password", PASSWORD);
    bus.create_account(&settings)
        .unwrap_or_else(|e| panic!("CreateAccount failed: {e}"))
}

fn mail(subject: &str, n: i64) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.test>\r\nTo: <{USER}>\r\nSubject: {subject}\r\n\
         Date: Thu, 1 Jan 2026 00:00:{:02} +0000\r\nMessage-ID: <{subject}-{n}@example.test>\r\n\
         \r\nThe text of {subject}.\r\n",
        n % 60
    )
    .into_bytes()
}

fn wait_synced(bus: &Bus, d: &Facteurd<'_>, path: &str, count: u32) -> Props {
    wait_account(
        bus,
        d,
        path,
        &format!("synced with {count} messages"),
        DEADLINE,
        |p| {
            p.str("State") == "idle"
                && p.u64("LastSync") > 0
                && p.str("LastError").is_empty()
                && p.u32("MessageCount") == count
        },
    )
}

fn sync(bus: &Bus, d: &Facteurd<'_>, path: &str) -> u32 {
    bus.call_facteur(path, names::ACCOUNT_INTERFACE, "Sync", &())
        .map(|r| r.body().deserialize::<u32>().expect("Sync returns u"))
        .unwrap_or_else(|e| panic!("Sync on {path} failed: {e}\n{}", d.log()))
}

/// (id, seen, flagged) of the messages `ListMessages` shows, by UID.
fn listed(bus: &Bus, path: &str, folder: &str) -> HashMap<u32, (String, bool, bool)> {
    let reply = bus
        .call_facteur(
            path,
            names::ACCOUNT_INTERFACE,
            "ListMessages",
            &(folder, 0u32, 10_000u32),
        )
        .unwrap_or_else(|e| panic!("ListMessages failed: {e}"));
    let list: Vec<HashMap<String, OwnedValue>> = reply.body().deserialize().expect("aa{sv}");
    list.iter()
        .map(|m| {
            let Some(Value::Str(id)) = m.get("id").map(|v| &**v) else {
                panic!("no id in {m:?}")
            };
            let flag = |k: &str| matches!(m.get(k).map(|v| &**v), Some(Value::Bool(true)));
            let uid = id
                .rsplit('.')
                .next()
                .and_then(|u| u.parse().ok())
                .expect("an id ends in .UID");
            (uid, (id.to_string(), flag("seen"), flag("flagged")))
        })
        .collect()
}

/// The ids of every `member` signal (MessagesRemoved, MessagesChanged …)
/// for `folder` seen so far.
fn announced(signals: &Signals, member: &str, folder: &str) -> Vec<String> {
    signals
        .all()
        .iter()
        .filter(|s| s.interface == names::MANAGER_INTERFACE && s.member == member)
        .filter_map(|s| {
            let (_, f, ids): (OwnedObjectPath, String, Vec<String>) =
                s.message.body().deserialize().expect("(o, s, as)");
            (f == folder).then_some(ids)
        })
        .flatten()
        .collect()
}

/// Wait until `member` announced every id of `ids` for `folder`.
fn wait_announced(signals: &Signals, d: &Facteurd<'_>, member: &str, folder: &str, ids: &[&str]) {
    let seen = wait_until(DEADLINE, || {
        let got = announced(signals, member, folder);
        ids.iter().all(|i| got.iter().any(|g| g == i)).then_some(())
    });
    assert!(
        seen.is_some(),
        "{member} for {ids:?} in {folder} not seen; got {:?}\n{}",
        announced(signals, member, folder),
        d.log()
    );
}

/// The part of `text` after its last `needle`, if any.
fn after_last<'a>(text: &'a str, needle: &str) -> Option<&'a str> {
    text.rfind(needle).map(|i| &text[i..])
}

#[test]
fn a_qresync_resync_applies_server_expunges_flags_and_keywords() {
    let (dovecot, rawlog) = dovecot("");
    let uids: Vec<u32> = (1..=6)
        .map(|n| dovecot.deliver(USER, &mail(&format!("M{n}"), n)))
        .collect();
    let bus = Bus::start();
    let signals = bus.signals();
    let d = facteurd(&bus, &dovecot);
    let path = create_alice(&bus, &dovecot);
    wait_synced(&bus, &d, &path, 6);
    // The first pass found no state: no QRESYNC yet, but it was enabled.
    let first = sent(rawlog.path());
    assert!(first.contains("ENABLE QRESYNC"), "{first}");
    // An unchanged folder: one SELECT, no listing of its UIDs.
    assert_eq!(sync(&bus, &d, &path), 0);
    let log = sent(rawlog.path());
    let resync = after_last(&log, "SELECT \"INBOX\" (QRESYNC (")
        .unwrap_or_else(|| panic!("no QRESYNC SELECT sent:\n{log}"));
    assert!(
        !resync.contains("UID FETCH 1:"),
        "an unchanged folder was listed after the QRESYNC SELECT:\n{resync}"
    );
    let before = listed(&bus, &path, "INBOX");
    assert_eq!(before.len(), 6);

    // Changes on the server by doveadm: two expunged, flags on one,
    // keywords alone on another.
    let (gone_a, gone_b) = (uids[1], uids[4]);
    dovecot.expunge(USER, "INBOX", gone_a);
    dovecot.expunge(USER, "INBOX", gone_b);
    dovecot.set_flags(USER, "INBOX", uids[0], &["\\Seen", "\\Flagged"]);
    dovecot.set_flags(USER, "INBOX", uids[2], &["$Important", "work"]);
    assert_eq!(
        sync(&bus, &d, &path),
        0,
        "expunges and flags are not new mail"
    );

    let log = sent(rawlog.path());
    let resync = after_last(&log, "SELECT \"INBOX\" (QRESYNC (")
        .unwrap_or_else(|| panic!("no QRESYNC SELECT sent:\n{log}"));
    assert!(
        !resync.contains("UID FETCH 1:"),
        "the QRESYNC resync listed the folder (fell back):\n{resync}\n{}",
        d.log()
    );
    wait_announced(
        &signals,
        &d,
        "MessagesRemoved",
        "INBOX",
        &[&before[&gone_a].0, &before[&gone_b].0],
    );
    wait_announced(
        &signals,
        &d,
        "MessagesChanged",
        "INBOX",
        &[&before[&uids[0]].0, &before[&uids[2]].0],
    );
    let after = listed(&bus, &path, "INBOX");
    let mut left: Vec<u32> = after.keys().copied().collect();
    left.sort_unstable();
    assert_eq!(left, [uids[0], uids[2], uids[3], uids[5]]);
    assert_eq!((after[&uids[0]].1, after[&uids[0]].2), (true, true));
    assert_eq!((after[&uids[2]].1, after[&uids[2]].2), (false, false));
    wait_account(&bus, &d, &path, "counting 4, 3 unread", DEADLINE, |p| {
        p.u32("MessageCount") == 4 && p.u32("UnreadCount") == 3
    });
    // Removed keywords are followed too, and a later pass is quiet.
    dovecot.set_flags(USER, "INBOX", uids[2], &[]);
    let changed_before = announced(&signals, "MessagesChanged", "INBOX").len();
    assert_eq!(sync(&bus, &d, &path), 0);
    wait_until(DEADLINE, || {
        (announced(&signals, "MessagesChanged", "INBOX").len() > changed_before).then_some(())
    })
    .unwrap_or_else(|| panic!("removing keywords was not announced\n{}", d.log()));
    let removed = announced(&signals, "MessagesRemoved", "INBOX");
    assert_eq!(removed.len(), 2, "{removed:?}");
}

#[test]
fn an_expunge_while_idling_is_noticed_through_vanished() {
    let (dovecot, _rawlog) = dovecot("");
    let a = dovecot.deliver(USER, &mail("A", 1));
    let b = dovecot.deliver(USER, &mail("B", 2));
    let bus = Bus::start();
    let signals = bus.signals();
    let d = facteurd(&bus, &dovecot);
    let path = create_alice(&bus, &dovecot);
    wait_synced(&bus, &d, &path, 2);
    let ids = listed(&bus, &path, "INBOX");
    // Wait until facteurd idles on INBOX (the process title names IDLE).
    let idling = wait_until(DEADLINE, || {
        dovecot
            .sessions(USER)
            .iter()
            .any(|(proto, pid)| {
                proto == "imap"
                    && fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|t| String::from_utf8_lossy(&t).contains(" IDLE]"))
            })
            .then_some(())
    });
    assert!(idling.is_some(), "facteurd never idled\n{}", d.log());
    dovecot.expunge(USER, "INBOX", b);
    wait_announced(&signals, &d, "MessagesRemoved", "INBOX", &[&ids[&b].0]);
    wait_synced(&bus, &d, &path, 1);
    assert!(listed(&bus, &path, "INBOX").contains_key(&a));
}

#[test]
fn a_condstore_only_server_keeps_the_comparison_path() {
    let (dovecot, rawlog) = dovecot(
        "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ \
         CONDSTORE UIDPLUS MOVE SPECIAL-USE",
    );
    let uids: Vec<u32> = (1..=3)
        .map(|n| dovecot.deliver(USER, &mail(&format!("C{n}"), n)))
        .collect();
    let bus = Bus::start();
    let signals = bus.signals();
    let d = facteurd(&bus, &dovecot);
    let path = create_alice(&bus, &dovecot);
    wait_synced(&bus, &d, &path, 3);
    let before = listed(&bus, &path, "INBOX");
    dovecot.expunge(USER, "INBOX", uids[0]);
    dovecot.set_flags(USER, "INBOX", uids[1], &["\\Flagged", "$Later"]);
    assert_eq!(sync(&bus, &d, &path), 0);
    wait_announced(
        &signals,
        &d,
        "MessagesRemoved",
        "INBOX",
        &[&before[&uids[0]].0],
    );
    wait_announced(
        &signals,
        &d,
        "MessagesChanged",
        "INBOX",
        &[&before[&uids[1]].0],
    );
    let after = listed(&bus, &path, "INBOX");
    assert_eq!(after.len(), 2);
    assert!(after[&uids[1]].2, "{after:?}");
    let log = sent(rawlog.path());
    assert!(
        !log.contains("QRESYNC"),
        "QRESYNC used though not offered:\n{log}"
    );
    assert!(
        log.contains("(CHANGEDSINCE "),
        "the CONDSTORE path did not run:\n{log}"
    );
}

/// A message moved locally to another account whose server is down stays
/// on Alice's server (its `MovedOut` entry waits for the other account's
/// APPEND): Alice's passes neither fetch it back nor take the folder for
/// changed (with QRESYNC, the count check counts it as removed here).
fn a_pending_local_removal_is_not_fetched_back(extra: &str, qresync: bool) {
    const BOB: &str = "bob@example.test";
    let (other, _other_rawlog) = dovecot("");
    let (dovecot, rawlog) = dovecot(extra);
    other.add_user(BOB, PASSWORD);
    let uids: Vec<u32> = (1..=3)
        .map(|n| dovecot.deliver(USER, &mail(&format!("P{n}"), n)))
        .collect();
    other.deliver(BOB, &mail("Bob's", 9));
    let bus = Bus::start();
    let signals = bus.signals();
    let mut d = Facteurd::new(&bus);
    d.arg("--secret-store").arg("file");
    d.launch();
    let alice = create(&bus, &dovecot, USER, "none");
    let bob = create(&bus, &other, BOB, "none");
    wait_synced(&bus, &d, &alice, 3);
    wait_synced(&bus, &d, &bob, 1);
    // One pass with stored state, so the next ones resync.
    assert_eq!(sync(&bus, &d, &alice), 0);
    other.stop();
    let before = listed(&bus, &alice, "INBOX");
    let moved = before[&uids[1]].0.clone();
    bus.call_facteur(
        names::ROOT_PATH,
        names::MANAGER_INTERFACE,
        "MoveMessages",
        &(
            vec![moved.as_str()],
            OwnedObjectPath::try_from(bob.as_str()).expect("an object path"),
            "INBOX",
        ),
    )
    .unwrap_or_else(|e| panic!("MoveMessages failed: {e}\n{}", d.log()));
    wait_account(
        &bus,
        &d,
        &alice,
        "2 messages, a change pending",
        DEADLINE,
        |p| p.u32("MessageCount") == 2 && p.u32("PendingChanges") >= 1,
    );
    let added_before = announced(&signals, "MessagesAdded", "INBOX").len();
    let log_before = sent(rawlog.path()).len();
    for _ in 0..2 {
        assert_eq!(sync(&bus, &d, &alice), 0, "nothing is new");
    }
    let after = listed(&bus, &alice, "INBOX");
    let mut left: Vec<u32> = after.keys().copied().collect();
    left.sort_unstable();
    assert_eq!(
        left,
        [uids[0], uids[2]],
        "the moved message came back\n{}",
        d.log()
    );
    assert!(
        dovecot.list_uids(USER, "INBOX").contains(&uids[1]),
        "the server still has the moved message"
    );
    let props = bus.account(&alice);
    assert_eq!(props.u32("MessageCount"), 2);
    assert!(props.u32("PendingChanges") >= 1);
    let added: Vec<String> = announced(&signals, "MessagesAdded", "INBOX")
        .into_iter()
        .skip(added_before)
        .collect();
    assert!(
        !added.iter().any(|i| i.starts_with(&alice_prefix(&moved))),
        "{added:?}"
    );
    let log = sent(rawlog.path());
    let passes = &log[log_before.min(log.len())..];
    if qresync {
        assert!(passes.contains("(QRESYNC ("), "{passes}");
        assert!(
            !passes.contains("UID FETCH 1:"),
            "a pending removal made the QRESYNC resync fall back to listing:\n{passes}"
        );
    } else {
        assert!(!passes.contains("QRESYNC"), "{passes}");
    }
}

/// `<account>.<folder>.` of an id, to match ids of the same folder.
fn alice_prefix(id: &str) -> String {
    let mut parts: Vec<&str> = id.split('.').collect();
    parts.truncate(parts.len().saturating_sub(2));
    format!("{}.", parts.join("."))
}

#[test]
fn a_pending_local_removal_is_not_fetched_back_with_qresync() {
    a_pending_local_removal_is_not_fetched_back("", true);
}

#[test]
fn a_pending_local_removal_is_not_fetched_back_by_the_comparison() {
    a_pending_local_removal_is_not_fetched_back(
        "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ \
         CONDSTORE UIDPLUS MOVE SPECIAL-USE",
        false,
    );
}

//! # Two-way sync against a real Dovecot (issue 9)
//!
//! Local changes made through facteurd (`SetFlags`, `MoveMessages`,
//! `CopyMessages`) reach the server, each checked from a second,
//! independent view (`doveadm` on the mailboxes), and `PendingChanges`
//! goes back to 0:
//!
//! - flags (`seen`, `flagged`, keywords) added and removed;
//! - a move and a copy inside one account (the signals of both folders);
//! - a move across accounts (one copy in the target, none in the source);
//! - changes made while Dovecot is stopped, facteurd killed with SIGKILL,
//!   both started again: applied exactly once;
//! - a flag change pending on a message expunged on the server meanwhile:
//!   dropped, nothing crashes;
//! - a cross-account move whose source server is down, facteurd killed
//!   after the APPEND and before the source's removal: exactly one copy in
//!   the target, none left in the source.
//!
//! Every wait polls with a deadline; nothing sleeps for a fixed time.

use std::sync::Arc;

use facteur_dbus::names;
use facteur_tests::dovecot::{Dovecot, DovecotOptions};
use facteur_tests::two_way::{listed, messages_signal, move_messages, set_flags, Listed};
use facteur_tests::*;

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";
const PASSWORD: &str = "pw-two-way";

/// A Dovecot with these users; `like` shares its CA (one trust file for
/// facteurd).
fn dovecot(users: &[&str], like: Option<&Dovecot>) -> Dovecot {
    let options = DovecotOptions {
        ca: like.map(|d| Arc::clone(d.ca())),
        ..DovecotOptions::default()
    };
    let dovecot = Dovecot::start(options);
    for user in users {
        dovecot.add_user(user, PASSWORD);
    }
    dovecot
}

/// A facteurd on `bus` trusting `dovecot`'s CA, passwords in its file store.
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

/// An IMAP account (implicit TLS) for `user` on `dovecot`; its path.
fn account(bus: &Bus, dovecot: &Dovecot, user: &str) -> String {
    let settings = Settings::new()
        .s("name", user)
        .s("email", user)
        .s("incoming-protocol", "imap")
        .s("incoming-host", dovecot.host())
        .q("incoming-port", dovecot.imaps_port())
        .s("incoming-security", "tls")
        .s("incoming-login", user)
        .s("incoming-password", PASSWORD);
    bus.create_account(&settings)
        .unwrap_or_else(|e| panic!("CreateAccount for {user} failed: {e}"))
}

/// A small message whose Message-ID is `<subject@example.test>`.
fn mail(to: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Carol <carol@example.test>\r\n\
         To: <{to}>\r\n\
         Subject: {subject}\r\n\
         Date: Thu, 1 Jan 2026 10:00:00 +0000\r\n\
         Message-ID: <{subject}@example.test>\r\n\
         \r\n\
         The text of {subject}.\r\n"
    )
    .into_bytes()
}

/// The Message-ID (no angle brackets) of `subject`'s message.
fn mid(subject: &str) -> String {
    format!("{subject}@example.test")
}

/// Wait until the account finished a pass with `count` messages and no
/// pending change.
fn wait_synced(bus: &Bus, d: &Facteurd<'_>, path: &str, count: u32) -> Props {
    wait_account(
        bus,
        d,
        path,
        &format!("synced with {count} messages and nothing pending"),
        DEADLINE,
        |p| {
            p.str("State") == "idle"
                && p.u64("LastSync") > 0
                && p.str("LastError").is_empty()
                && p.u32("MessageCount") == count
                && p.u32("PendingChanges") == 0
        },
    )
}

/// Wait until `PendingChanges` is `n`.
fn wait_pending(bus: &Bus, d: &Facteurd<'_>, path: &str, n: u32) -> Props {
    wait_account(
        bus,
        d,
        path,
        &format!("with {n} pending changes"),
        DEADLINE,
        |p| p.u32("PendingChanges") == n,
    )
}

/// `Account.Sync()`, which must succeed.
fn sync(bus: &Bus, path: &str) {
    bus.call_facteur(path, names::ACCOUNT_INTERFACE, "Sync", &())
        .unwrap_or_else(|e| panic!("Sync on {path} failed: {e}"));
}

/// The Message-IDs of `folder` on the server, one per message (duplicates
/// kept), read through doveadm in one command (so a message expunged
/// meanwhile cannot fail the read).
fn server_ids(dovecot: &Dovecot, user: &str, folder: &str) -> Vec<String> {
    let out = dovecot.doveadm_ok(
        &["fetch", "-u", user, "hdr", "mailbox", folder, "all"],
        None,
    );
    out.lines()
        .filter_map(|l| {
            l.get(..11)
                .filter(|p| p.eq_ignore_ascii_case("Message-ID:"))
                .map(|_| l[11..].trim().trim_matches(['<', '>']).to_owned())
        })
        .collect()
}

/// How many messages of `folder` on the server carry `subject`'s Message-ID.
fn copies(dovecot: &Dovecot, user: &str, folder: &str, subject: &str) -> usize {
    let want = mid(subject);
    server_ids(dovecot, user, folder)
        .iter()
        .filter(|m| **m == want)
        .count()
}

/// Wait until `check` holds on the server; fail with facteurd's log.
fn wait_server(d: &Facteurd<'_>, what: &str, check: impl Fn() -> bool) {
    if wait_until(DEADLINE, || check().then_some(())).is_none() {
        panic!(
            "the server never showed {what} within {DEADLINE:?}; facteurd log:\n{}",
            last_lines(&d.log(), 80)
        );
    }
}

/// The listed message with `subject`'s Message-ID.
fn by_subject<'a>(list: &'a [Listed], subject: &str) -> &'a Listed {
    let want = mid(subject);
    list.iter()
        .find(|m| m.message_id == want)
        .unwrap_or_else(|| panic!("no message {want} in {list:?}"))
}

/// The UID in a message id (`<account>.<folder>.<uidvalidity>.<uid>`).
fn uid_of(id: &str) -> u32 {
    id.rsplit('.')
        .next()
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("message id {id:?} does not end in a UID"))
}

/// The UIDVALIDITY and UID in a message id.
fn validity_uid(id: &str) -> (u32, u32) {
    let mut parts = id.rsplit('.');
    let uid = parts.next().and_then(|u| u.parse().ok());
    let validity = parts.next().and_then(|v| v.parse().ok());
    match (validity, uid) {
        (Some(v), Some(u)) => (v, u),
        _ => panic!("message id {id:?} does not end in .UIDVALIDITY.UID"),
    }
}

/// The server's flags of a message, sorted.
fn server_flags(dovecot: &Dovecot, user: &str, folder: &str, uid: u32) -> Vec<String> {
    let mut f = dovecot.flags(user, folder, uid);
    f.sort();
    f
}

#[test]
fn flags_and_keywords_reach_the_server_and_come_off_again() {
    let dovecot = dovecot(&[ALICE], None);
    dovecot.deliver(ALICE, &mail(ALICE, "flags-one"));
    dovecot.deliver(ALICE, &mail(ALICE, "flags-two"));
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let alice = account(&bus, &dovecot, ALICE);
    wait_synced(&bus, &d, &alice, 2);
    let inbox = listed(&bus, &alice, "INBOX");
    let (one, two) = (
        by_subject(&inbox, "flags-one"),
        by_subject(&inbox, "flags-two"),
    );
    let (u1, u2) = (uid_of(&one.id), uid_of(&two.id));
    let signals = bus.signals();

    set_flags(&bus, &[&one.id], &["seen", "flagged"], &[]).expect("SetFlags seen flagged");
    set_flags(&bus, &[&two.id], &["$Junk", "work"], &[]).expect("SetFlags keywords");
    wait_server(&d, "seen+flagged and the keywords", || {
        server_flags(&dovecot, ALICE, "INBOX", u1) == ["\\Flagged", "\\Seen"]
            && server_flags(&dovecot, ALICE, "INBOX", u2) == ["$Junk", "work"]
    });
    wait_pending(&bus, &d, &alice, 0);
    signals.wait_for("MessagesChanged for the first message", |s| {
        messages_signal(s, "MessagesChanged")
            .is_some_and(|(a, f, ids)| a == alice && f == "INBOX" && ids.contains(&one.id))
    });
    let now = listed(&bus, &alice, "INBOX");
    let first = by_subject(&now, "flags-one");
    assert!(first.seen && first.flagged, "{first:?}");

    set_flags(&bus, &[&one.id], &[], &["seen"]).expect("SetFlags -seen");
    set_flags(&bus, &[&two.id], &[], &["$Junk"]).expect("SetFlags -$Junk");
    wait_server(&d, "seen and $Junk removed", || {
        server_flags(&dovecot, ALICE, "INBOX", u1) == ["\\Flagged"]
            && server_flags(&dovecot, ALICE, "INBOX", u2) == ["work"]
    });
    wait_pending(&bus, &d, &alice, 0);
    // A pass reads the server again: the local flags stay as the server has
    // them.
    sync(&bus, &alice);
    let after = listed(&bus, &alice, "INBOX");
    let first = by_subject(&after, "flags-one");
    assert!(!first.seen && first.flagged, "{first:?}");
    assert_eq!(
        wait_synced(&bus, &d, &alice, 2).u32("UnreadCount"),
        2,
        "both unread again"
    );
}

#[test]
fn a_move_and_a_copy_inside_one_account() {
    let dovecot = dovecot(&[ALICE], None);
    dovecot.create_folder(ALICE, "Archive");
    dovecot.deliver(ALICE, &mail(ALICE, "moved"));
    dovecot.deliver(ALICE, &mail(ALICE, "copied"));
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let alice = account(&bus, &dovecot, ALICE);
    wait_synced(&bus, &d, &alice, 2);
    let inbox = listed(&bus, &alice, "INBOX");
    let moved = by_subject(&inbox, "moved").clone();
    let copied = by_subject(&inbox, "copied").clone();
    let signals = bus.signals();

    move_messages(&bus, &[&moved.id], &alice, "Archive", false).expect("MoveMessages");
    wait_server(&d, "the message moved to Archive", || {
        copies(&dovecot, ALICE, "Archive", "moved") == 1
            && copies(&dovecot, ALICE, "INBOX", "moved") == 0
    });
    signals.wait_for("MessagesRemoved from INBOX", |s| {
        messages_signal(s, "MessagesRemoved")
            .is_some_and(|(a, f, ids)| a == alice && f == "INBOX" && ids.contains(&moved.id))
    });
    signals.wait_for("MessagesAdded in Archive", |s| {
        messages_signal(s, "MessagesAdded").is_some_and(|(a, f, _)| a == alice && f == "Archive")
    });

    // The placeholder became the server's message (COPYUID of UID MOVE),
    // without waiting for a pass over Archive.
    wait_pending(&bus, &d, &alice, 0);
    let landed = by_subject(&listed(&bus, &alice, "Archive"), "moved").clone();
    let (validity, uid) = validity_uid(&landed.id);
    assert_eq!(
        validity,
        dovecot.uidvalidity(ALICE, "Archive"),
        "{landed:?}"
    );
    assert_eq!(dovecot.list_uids(ALICE, "Archive"), [uid]);

    move_messages(&bus, &[&copied.id], &alice, "Archive", true).expect("CopyMessages");
    wait_server(&d, "the copy in Archive", || {
        copies(&dovecot, ALICE, "Archive", "copied") == 1
    });
    wait_pending(&bus, &d, &alice, 0);
    assert_eq!(
        copies(&dovecot, ALICE, "INBOX", "copied"),
        1,
        "the copy's source stays"
    );

    // A full pass: nothing doubled locally either (the placeholders became
    // the server's messages).
    sync(&bus, &alice);
    wait_synced(&bus, &d, &alice, 3);
    let archive = listed(&bus, &alice, "Archive");
    let mut ids: Vec<&str> = archive.iter().map(|m| m.message_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, [mid("copied"), mid("moved")], "{archive:?}");
    let inbox = listed(&bus, &alice, "INBOX");
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert_eq!(inbox[0].message_id, mid("copied"));
    assert_eq!(server_ids(&dovecot, ALICE, "Archive").len(), 2);
}

#[test]
fn a_move_across_accounts_leaves_one_copy_in_the_target_and_none_in_the_source() {
    let dovecot = dovecot(&[ALICE, BOB], None);
    dovecot.deliver(ALICE, &mail(ALICE, "across"));
    dovecot.deliver(ALICE, &mail(ALICE, "stays"));
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let alice = account(&bus, &dovecot, ALICE);
    let bob = account(&bus, &dovecot, BOB);
    wait_synced(&bus, &d, &alice, 2);
    wait_synced(&bus, &d, &bob, 0);
    let inbox = listed(&bus, &alice, "INBOX");
    let across = by_subject(&inbox, "across").clone();

    move_messages(&bus, &[&across.id], &bob, "INBOX", false).expect("MoveMessages to Bob");
    wait_server(&d, "the message in Bob's INBOX and not in Alice's", || {
        copies(&dovecot, BOB, "INBOX", "across") == 1
            && copies(&dovecot, ALICE, "INBOX", "across") == 0
    });
    wait_pending(&bus, &d, &alice, 0);
    wait_pending(&bus, &d, &bob, 0);
    // The placeholder became the server's message (APPENDUID).
    let landed = by_subject(&listed(&bus, &bob, "INBOX"), "across").clone();
    let (validity, uid) = validity_uid(&landed.id);
    assert_eq!(validity, dovecot.uidvalidity(BOB, "INBOX"), "{landed:?}");
    assert_eq!(dovecot.list_uids(BOB, "INBOX"), [uid]);
    sync(&bus, &alice);
    sync(&bus, &bob);
    wait_synced(&bus, &d, &alice, 1);
    wait_synced(&bus, &d, &bob, 1);
    assert_eq!(copies(&dovecot, BOB, "INBOX", "across"), 1);
    assert_eq!(server_ids(&dovecot, ALICE, "INBOX"), [mid("stays")]);
    let bobs = listed(&bus, &bob, "INBOX");
    assert_eq!(bobs.len(), 1, "{bobs:?}");
    assert_eq!(bobs[0].message_id, mid("across"));
}

#[test]
fn changes_made_offline_survive_a_kill_and_are_applied_once() {
    let dovecot = dovecot(&[ALICE], None);
    dovecot.create_folder(ALICE, "Archive");
    dovecot.deliver(ALICE, &mail(ALICE, "offline-read"));
    dovecot.deliver(ALICE, &mail(ALICE, "offline-moved"));
    dovecot.deliver(ALICE, &mail(ALICE, "offline-copied"));
    let bus = Bus::start();
    let mut d = facteurd(&bus, &dovecot);
    let alice = account(&bus, &dovecot, ALICE);
    wait_synced(&bus, &d, &alice, 3);
    let inbox = listed(&bus, &alice, "INBOX");
    let read = by_subject(&inbox, "offline-read").clone();
    let moved = by_subject(&inbox, "offline-moved").clone();
    let copied = by_subject(&inbox, "offline-copied").clone();

    dovecot.stop();
    set_flags(&bus, &[&read.id], &["seen", "$Important"], &[]).expect("SetFlags offline");
    move_messages(&bus, &[&moved.id], &alice, "Archive", false).expect("MoveMessages offline");
    move_messages(&bus, &[&copied.id], &alice, "Archive", true).expect("CopyMessages offline");
    // Answered at once, durably journaled.
    wait_pending(&bus, &d, &alice, 3);
    d.kill();
    dovecot.start_again();
    // Another client flags the message meanwhile: with CONDSTORE the
    // server's change is kept beside the local one.
    dovecot.set_flags(ALICE, "INBOX", uid_of(&read.id), &["\\Flagged"]);
    d.launch();

    wait_server(&d, "the offline changes", || {
        server_flags(&dovecot, ALICE, "INBOX", uid_of(&read.id))
            == ["$Important", "\\Flagged", "\\Seen"]
            && copies(&dovecot, ALICE, "Archive", "offline-moved") == 1
            && copies(&dovecot, ALICE, "Archive", "offline-copied") == 1
    });
    wait_pending(&bus, &d, &alice, 0);
    sync(&bus, &alice);
    wait_synced(&bus, &d, &alice, 4);
    // Exactly once: no second copy, the moved one gone from INBOX.
    assert_eq!(copies(&dovecot, ALICE, "Archive", "offline-moved"), 1);
    assert_eq!(copies(&dovecot, ALICE, "Archive", "offline-copied"), 1);
    assert_eq!(copies(&dovecot, ALICE, "INBOX", "offline-moved"), 0);
    assert_eq!(copies(&dovecot, ALICE, "INBOX", "offline-copied"), 1);
    assert_eq!(listed(&bus, &alice, "Archive").len(), 2);
    assert_eq!(listed(&bus, &alice, "INBOX").len(), 2);
    // The store went through UNCHANGEDSINCE and its [MODIFIED] answer.
    assert!(
        d.log()
            .contains("changed on the server since the local flag change"),
        "the conditional store saw no conflict:\n{}",
        last_lines(&d.log(), 60)
    );
}

#[test]
fn a_flag_change_on_a_message_expunged_meanwhile_is_dropped() {
    let dovecot = dovecot(&[ALICE], None);
    dovecot.deliver(ALICE, &mail(ALICE, "doomed"));
    dovecot.deliver(ALICE, &mail(ALICE, "kept"));
    let bus = Bus::start();
    let mut d = facteurd(&bus, &dovecot);
    let alice = account(&bus, &dovecot, ALICE);
    wait_synced(&bus, &d, &alice, 2);
    let inbox = listed(&bus, &alice, "INBOX");
    let doomed = by_subject(&inbox, "doomed").clone();
    let kept = by_subject(&inbox, "kept").clone();

    dovecot.stop();
    set_flags(&bus, &[&doomed.id], &["flagged"], &[]).expect("SetFlags offline");
    set_flags(&bus, &[&kept.id], &["flagged"], &[]).expect("SetFlags offline");
    wait_pending(&bus, &d, &alice, 2);
    // Another client expunges it before facteurd reaches the server again.
    d.kill();
    dovecot.start_again();
    dovecot.expunge(ALICE, "INBOX", uid_of(&doomed.id));
    d.launch();

    wait_pending(&bus, &d, &alice, 0);
    wait_server(&d, "the other message flagged", || {
        server_flags(&dovecot, ALICE, "INBOX", uid_of(&kept.id)) == ["\\Flagged"]
    });
    sync(&bus, &alice);
    wait_synced(&bus, &d, &alice, 1);
    assert_eq!(server_ids(&dovecot, ALICE, "INBOX"), [mid("kept")]);
    let now = listed(&bus, &alice, "INBOX");
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(now[0].flagged);
    assert!(
        d.log().contains("dropped"),
        "the lost change is logged:\n{}",
        last_lines(&d.log(), 40)
    );
}

#[test]
fn a_kill_between_the_append_and_the_source_removal_loses_and_doubles_nothing() {
    let target = dovecot(&[ALICE], None);
    let source = dovecot(&[BOB], Some(&target));
    source.deliver(BOB, &mail(BOB, "crossing"));
    source.deliver(BOB, &mail(BOB, "staying"));
    let bus = Bus::start();
    let mut d = facteurd(&bus, &target);
    let alice = account(&bus, &target, ALICE);
    let bob = account(&bus, &source, BOB);
    wait_synced(&bus, &d, &alice, 0);
    wait_synced(&bus, &d, &bob, 2);
    let bobs = listed(&bus, &bob, "INBOX");
    let crossing = by_subject(&bobs, "crossing").clone();

    // Only the APPEND can happen: the source's server is down.
    source.stop();
    move_messages(&bus, &[&crossing.id], &alice, "INBOX", false).expect("MoveMessages");
    wait_server(&d, "the APPEND in Alice's INBOX", || {
        copies(&target, ALICE, "INBOX", "crossing") == 1
    });
    wait_pending(&bus, &d, &alice, 0);
    // The source's removal still waits.
    assert!(
        bus.account(&bob).u32("PendingChanges") >= 1,
        "the source's expunge must still be pending"
    );
    d.kill();
    source.start_again();
    d.launch();

    wait_pending(&bus, &d, &bob, 0);
    wait_server(&d, "the message gone from Bob's server", || {
        copies(&source, BOB, "INBOX", "crossing") == 0
    });
    wait_pending(&bus, &d, &alice, 0);
    sync(&bus, &alice);
    sync(&bus, &bob);
    wait_synced(&bus, &d, &alice, 1);
    wait_synced(&bus, &d, &bob, 1);
    assert_eq!(copies(&target, ALICE, "INBOX", "crossing"), 1, "one copy");
    assert_eq!(server_ids(&source, BOB, "INBOX"), [mid("staying")]);
    let alices = listed(&bus, &alice, "INBOX");
    assert_eq!(alices.len(), 1, "{alices:?}");
    assert_eq!(alices[0].message_id, mid("crossing"));
}

#[test]
fn folders_created_renamed_and_deleted_reach_the_server() {
    let dovecot = dovecot(&[ALICE], None);
    dovecot.create_folder(ALICE, "Old");
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let alice = account(&bus, &dovecot, ALICE);
    wait_synced(&bus, &d, &alice, 0);
    let call = |method: &str, args: &(&str, &str)| {
        let r = if method == "RenameFolder" {
            bus.call_facteur(&alice, names::ACCOUNT_INTERFACE, method, args)
        } else {
            bus.call_facteur(&alice, names::ACCOUNT_INTERFACE, method, &(args.0,))
        };
        r.unwrap_or_else(|e| panic!("{method}{args:?} failed: {e}"));
    };
    call("CreateFolder", &("Reçus/Été", ""));
    wait_server(&d, "the new folder (modified UTF-7 on the wire)", || {
        dovecot.folders(ALICE).iter().any(|f| f == "Reçus/Été")
    });
    call("RenameFolder", &("Reçus/Été", "Reçus/Hiver"));
    call("DeleteFolder", &("Old", ""));
    wait_server(&d, "the folder renamed and Old deleted", || {
        let folders = dovecot.folders(ALICE);
        folders.iter().any(|f| f == "Reçus/Hiver")
            && !folders.iter().any(|f| f == "Reçus/Été" || f == "Old")
    });
    wait_pending(&bus, &d, &alice, 0);
    // A full pass keeps the local list as the server has it.
    sync(&bus, &alice);
    let p = wait_synced(&bus, &d, &alice, 0);
    assert!(p.str("LastError").is_empty());
    assert!(
        !d.log().contains("is dropped"),
        "nothing was dropped:\n{}",
        last_lines(&d.log(), 40)
    );
}

#[test]
fn many_flag_changes_are_a_few_round_trips() {
    use std::os::unix::fs::PermissionsExt as _;
    const N: usize = 300;
    let rawlog = short_tempdir("rawlog-");
    std::fs::set_permissions(rawlog.path(), std::fs::Permissions::from_mode(0o777))
        .expect("open the rawlog dir");
    let mut options = DovecotOptions::default();
    options.extra_config.push_str(&format!(
        "\nprotocol imap {{\n  rawlog_dir = {}\n}}\n",
        rawlog.path().display()
    ));
    let dovecot = Dovecot::start(options);
    dovecot.add_user(ALICE, PASSWORD);
    let mut imap = dovecot.imap_client(ALICE);
    for i in 0..N {
        imap.append("INBOX", &[], &mail(ALICE, &format!("bulk-{i}")));
    }
    imap.logout();
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let alice = account(&bus, &dovecot, ALICE);
    wait_synced(&bus, &d, &alice, N as u32);
    let ids: Vec<String> = listed(&bus, &alice, "INBOX")
        .into_iter()
        .map(|m| m.id)
        .collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();

    set_flags(&bus, &refs, &["seen"], &[]).expect("SetFlags on every message");
    wait_server(&d, "every message seen", || {
        dovecot
            .doveadm_ok(&["search", "-u", ALICE, "mailbox", "INBOX", "unseen"], None)
            .trim()
            .is_empty()
    });
    wait_pending(&bus, &d, &alice, 0);
    assert_eq!(
        wait_synced(&bus, &d, &alice, N as u32).u32("UnreadCount"),
        0
    );
    // What facteurd sent, as Dovecot read it.
    let mut sent = String::new();
    for entry in std::fs::read_dir(rawlog.path()).expect("the rawlog dir") {
        let path = entry.expect("a rawlog entry").path();
        if path.extension().is_some_and(|e| e == "in") {
            sent.push_str(&text(&std::fs::read(&path).unwrap_or_default()));
        }
    }
    let stores = sent
        .lines()
        .filter(|l| l.contains("UID STORE") && l.contains("+FLAGS.SILENT (\\Seen)"))
        .count();
    assert!(
        (1..=2).contains(&stores),
        "{N} flag changes took {stores} UID STORE commands:\n{}",
        last_lines(&sent, 20)
    );
}

/// A Dovecot with Alice and an Archive folder that offers no MOVE (nor
/// QRESYNC), writing a rawlog into the returned directory.
fn dovecot_without_move() -> (Dovecot, tempfile::TempDir) {
    use std::os::unix::fs::PermissionsExt as _;
    let rawlog = short_tempdir("rawlog-");
    std::fs::set_permissions(rawlog.path(), std::fs::Permissions::from_mode(0o777))
        .expect("open the rawlog dir");
    let mut options = DovecotOptions::default();
    options.extra_config.push_str(&format!(
        "\nimap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ UIDPLUS \
         CONDSTORE\nprotocol imap {{\n  rawlog_dir = {}\n}}\n",
        rawlog.path().display()
    ));
    let dovecot = Dovecot::start(options);
    dovecot.add_user(ALICE, PASSWORD);
    dovecot.create_folder(ALICE, "Archive");
    (dovecot, rawlog)
}

#[test]
fn without_move_a_retried_move_does_not_copy_twice() {
    let (dovecot, _rawlog) = dovecot_without_move();
    let raw = mail(ALICE, "retried");
    dovecot.deliver(ALICE, &raw);
    let bus = Bus::start();
    let mut d = facteurd(&bus, &dovecot);
    let alice = account(&bus, &dovecot, ALICE);
    wait_synced(&bus, &d, &alice, 1);
    let moved = by_subject(&listed(&bus, &alice, "INBOX"), "retried").clone();
    dovecot.stop();
    move_messages(&bus, &[&moved.id], &alice, "Archive", false).expect("MoveMessages offline");
    wait_pending(&bus, &d, &alice, 1);
    d.kill();
    dovecot.start_again();
    // As if the COPY had been done before a crash, its settling not.
    dovecot.append(ALICE, "Archive", &raw, &[]);
    d.launch();
    wait_server(&d, "the source expunged", || {
        copies(&dovecot, ALICE, "INBOX", "retried") == 0
    });
    wait_pending(&bus, &d, &alice, 0);
    assert_eq!(
        copies(&dovecot, ALICE, "Archive", "retried"),
        1,
        "no second copy"
    );
    sync(&bus, &alice);
    wait_synced(&bus, &d, &alice, 1);
    assert_eq!(listed(&bus, &alice, "Archive").len(), 1);
}

#[test]
fn without_move_a_move_is_copy_deleted_and_uid_expunge() {
    let (dovecot, rawlog) = dovecot_without_move();
    dovecot.deliver(ALICE, &mail(ALICE, "nomove-moved"));
    dovecot.deliver(ALICE, &mail(ALICE, "nomove-stays"));
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let alice = account(&bus, &dovecot, ALICE);
    wait_synced(&bus, &d, &alice, 2);
    let moved = by_subject(&listed(&bus, &alice, "INBOX"), "nomove-moved").clone();

    move_messages(&bus, &[&moved.id], &alice, "Archive", false).expect("MoveMessages");
    wait_server(&d, "the message moved to Archive", || {
        copies(&dovecot, ALICE, "Archive", "nomove-moved") == 1
            && copies(&dovecot, ALICE, "INBOX", "nomove-moved") == 0
    });
    wait_pending(&bus, &d, &alice, 0);
    assert_eq!(server_ids(&dovecot, ALICE, "INBOX"), [mid("nomove-stays")]);
    let mut sent = String::new();
    for entry in std::fs::read_dir(rawlog.path()).expect("the rawlog dir") {
        let path = entry.expect("a rawlog entry").path();
        if path.extension().is_some_and(|e| e == "in") {
            sent.push_str(&text(&std::fs::read(&path).unwrap_or_default()));
        }
    }
    let uid = uid_of(&moved.id);
    for wanted in [
        "UID SEARCH HEADER Message-ID".to_owned(),
        format!("UID COPY {uid} \"Archive\""),
        format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"),
        format!("UID EXPUNGE {uid}"),
    ] {
        assert!(sent.contains(&wanted), "no {wanted:?} in:\n{sent}");
    }
    assert!(!sent.contains("UID MOVE"), "{sent}");
    sync(&bus, &alice);
    wait_synced(&bus, &d, &alice, 2);
    assert_eq!(listed(&bus, &alice, "Archive").len(), 1);
}

#[test]
fn a_refused_entry_is_dropped_and_the_rest_goes_on() {
    let dovecot = dovecot(&[ALICE], None);
    dovecot.create_folder(ALICE, "Doomed");
    dovecot.deliver(ALICE, &mail(ALICE, "refused-move"));
    dovecot.deliver(ALICE, &mail(ALICE, "later-flag"));
    let bus = Bus::start();
    let mut d = facteurd(&bus, &dovecot);
    let alice = account(&bus, &dovecot, ALICE);
    wait_synced(&bus, &d, &alice, 2);
    let inbox = listed(&bus, &alice, "INBOX");
    let refused = by_subject(&inbox, "refused-move").clone();
    let later = by_subject(&inbox, "later-flag").clone();

    dovecot.stop();
    move_messages(&bus, &[&refused.id], &alice, "Doomed", false).expect("MoveMessages offline");
    set_flags(&bus, &[&later.id], &["flagged"], &[]).expect("SetFlags offline");
    wait_pending(&bus, &d, &alice, 2);
    d.kill();
    dovecot.start_again();
    // The target goes on the server before facteurd is back: the MOVE is
    // refused (NO [TRYCREATE]).
    dovecot.delete_folder(ALICE, "Doomed");
    d.launch();

    wait_pending(&bus, &d, &alice, 0);
    wait_server(&d, "the later change applied", || {
        server_flags(&dovecot, ALICE, "INBOX", uid_of(&later.id)) == ["\\Flagged"]
    });
    // Nothing lost: the message stays where the server has it.
    assert_eq!(copies(&dovecot, ALICE, "INBOX", "refused-move"), 1);
    sync(&bus, &alice);
    wait_synced(&bus, &d, &alice, 2);
    let now = listed(&bus, &alice, "INBOX");
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(by_subject(&now, "later-flag").flagged);
    assert!(
        d.log().contains("is dropped"),
        "the refused move is logged:\n{}",
        last_lines(&d.log(), 40)
    );
}

/// Entries made before a folder's rename or delete replay against the
/// folder's server name of their time: a move out of a folder deleted
/// afterwards lands in the target (once) before the DELETE, and flags set
/// before a rename reach the server under the new name.
#[test]
fn a_move_out_of_a_folder_deleted_afterwards_and_flags_before_a_rename_land() {
    let dovecot = dovecot(&[ALICE], None);
    dovecot.create_folder(ALICE, "Archive");
    dovecot.create_folder(ALICE, "Old");
    dovecot.create_folder(ALICE, "Ren");
    dovecot.deliver(ALICE, &mail(ALICE, "leaving"));
    dovecot.deliver(ALICE, &mail(ALICE, "renamed"));
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let alice = account(&bus, &dovecot, ALICE);
    wait_synced(&bus, &d, &alice, 2);
    let inbox = listed(&bus, &alice, "INBOX");
    move_messages(
        &bus,
        &[&by_subject(&inbox, "leaving").id],
        &alice,
        "Old",
        false,
    )
    .expect("MoveMessages to Old");
    move_messages(
        &bus,
        &[&by_subject(&inbox, "renamed").id],
        &alice,
        "Ren",
        false,
    )
    .expect("MoveMessages to Ren");
    wait_server(&d, "both moved", || {
        copies(&dovecot, ALICE, "Old", "leaving") == 1
            && copies(&dovecot, ALICE, "Ren", "renamed") == 1
    });
    wait_pending(&bus, &d, &alice, 0);
    sync(&bus, &alice);
    wait_synced(&bus, &d, &alice, 2);
    let leaving = by_subject(&listed(&bus, &alice, "Old"), "leaving").clone();
    let renamed = by_subject(&listed(&bus, &alice, "Ren"), "renamed").clone();

    dovecot.stop();
    move_messages(&bus, &[&leaving.id], &alice, "Archive", false).expect("MoveMessages offline");
    bus.call_facteur(&alice, names::ACCOUNT_INTERFACE, "DeleteFolder", &("Old",))
        .expect("DeleteFolder offline");
    set_flags(&bus, &[&renamed.id], &["flagged"], &[]).expect("SetFlags offline");
    bus.call_facteur(
        &alice,
        names::ACCOUNT_INTERFACE,
        "RenameFolder",
        &("Ren", "Ren2"),
    )
    .expect("RenameFolder offline");
    wait_pending(&bus, &d, &alice, 4);
    dovecot.start_again();

    wait_server(&d, "the move landed, Old deleted, the flag set", || {
        let folders = dovecot.folders(ALICE);
        !folders.iter().any(|f| f == "Old" || f == "Ren")
            && folders.iter().any(|f| f == "Ren2")
            && copies(&dovecot, ALICE, "Archive", "leaving") == 1
            && server_flags(&dovecot, ALICE, "Ren2", uid_of(&renamed.id)) == ["\\Flagged"]
    });
    wait_pending(&bus, &d, &alice, 0);
    sync(&bus, &alice);
    wait_synced(&bus, &d, &alice, 2);
    assert_eq!(copies(&dovecot, ALICE, "Archive", "leaving"), 1);
    assert_eq!(listed(&bus, &alice, "Archive").len(), 1);
    assert!(
        !d.log().contains("is dropped"),
        "nothing was dropped:\n{}",
        last_lines(&d.log(), 60)
    );
}

//! # Two-way sync through the D-Bus contract
//!
//! The methods of issue 9 against a real facteurd and Dovecot, as a client
//! of the contract sees them:
//!
//! - typed refusals that change nothing (malformed ids, flag names of bad
//!   syntax, a flag both added and removed, paths that are not accounts,
//!   unknown accounts and folders);
//! - `SetFlags` on an IMAP account: one `MessagesChanged` per folder with
//!   every id of that folder, `UnreadCount` and `PendingChanges` already
//!   true when the call returns, the flags on the server (read by doveadm)
//!   once the engine replayed them, `PendingChanges` back to 0;
//! - `GetSummaries` for the ids of a `MessagesAdded` signal, with every key;
//! - moves and copies inside an IMAP account, seen on the server; a move's
//!   own `MessagesRemoved`/`MessagesAdded` (the placeholder) strictly
//!   before the replay's (the placeholder replaced by the server's
//!   message);
//! - folders created, renamed and deleted on an IMAP account
//!   (`FoldersChanged`, the server's folder list);
//! - a POP3 account: flags local only, a move into a folder made with
//!   `CreateFolder`, through the same methods, and nothing fetched back.
//!
//! Every wait polls with a deadline; nothing sleeps for a fixed time.

use std::collections::BTreeSet;

use facteur_dbus::names;
use facteur_tests::two_way_fixture::*;
use facteur_tests::*;

/// The message id in a summary.
fn id(m: &Summary) -> String {
    string(m, "id")
}

/// The ids of the messages of `folder`, by subject.
fn ids_by_subject(bus: &Bus, path: &str, folder: &str, subjects: &[&str]) -> Vec<String> {
    let list = list(bus, path, folder).expect("ListMessages answers");
    subjects.iter().map(|s| id(by_subject(&list, s))).collect()
}

/// The error name of a refused call; fails the test when it was not.
fn refused(what: &str, r: Result<(), CallError>) -> String {
    match r {
        Ok(()) => panic!("{what} was accepted"),
        Err(e) => {
            assert!(
                e.name.starts_with(names::ERROR_PREFIX),
                "{what}: an error outside the contract: {e}"
            );
            assert!(!e.message.is_empty(), "{what}: an error without a sentence");
            e.short_name().to_owned()
        }
    }
}

/// Wait until `pred` holds for the flags doveadm reads for `uid`.
fn wait_server_flags(
    dovecot: &dovecot::Dovecot,
    d: &Facteurd<'_>,
    folder: &str,
    uid: u32,
    what: &str,
    pred: impl Fn(&[String]) -> bool,
) {
    let ok = wait_until(DEADLINE, || {
        pred(&dovecot.flags(IMAP_USER, folder, uid)).then_some(())
    });
    assert!(
        ok.is_some(),
        "UID {uid} in {folder}: {what} not on the server: {:?}\n{}",
        dovecot.flags(IMAP_USER, folder, uid),
        last_lines(&d.log(), 60)
    );
}

#[test]
fn refusals_are_typed_and_change_nothing() {
    let dovecot = dovecot();
    dovecot.deliver(IMAP_USER, &message("First"));
    dovecot.append(IMAP_USER, "INBOX", &message("Second"), &["\\Seen"]);
    dovecot.create_folder(IMAP_USER, "Work");
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = imap_account(&bus, &d, &dovecot, 2);
    let before = list(&bus, &path, "INBOX").expect("ListMessages");
    let first = id(by_subject(&before, "First"));
    let folders_before = folder_names(&bus, &path);
    let server_before = dovecot.folders(IMAP_USER);
    let signals = bus.signals();

    let missing = {
        // Well formed, but no such message.
        let mut parts: Vec<&str> = first.rsplitn(2, '.').collect();
        parts[0] = "99999";
        format!("{}.{}", parts[1], parts[0])
    };
    let other = names::account_path("nobody_example_org");
    let cases: Vec<(&str, Result<(), CallError>, &str)> = vec![
        (
            "a malformed id",
            set_flags(&bus, &["not an id"], &["seen"], &[]),
            "InvalidArgument",
        ),
        (
            "an unknown id",
            set_flags(&bus, &[&missing], &["seen"], &[]),
            "NotFound",
        ),
        (
            "a flag with a space",
            set_flags(&bus, &[&first], &["a b"], &[]),
            "InvalidArgument",
        ),
        (
            "an unknown system flag",
            set_flags(&bus, &[&first], &["\\Bogus"], &[]),
            "InvalidArgument",
        ),
        (
            "an empty flag",
            set_flags(&bus, &[&first], &[""], &[]),
            "InvalidArgument",
        ),
        (
            "a flag added and removed",
            set_flags(&bus, &[&first], &["seen"], &["seen"]),
            "InvalidArgument",
        ),
        (
            "a good id beside a bad one",
            set_flags(&bus, &[&first, "bad"], &["flagged"], &[]),
            "InvalidArgument",
        ),
        (
            "a path outside the accounts",
            move_messages(&bus, &[&first], "/org/example/Other", "Work", false),
            "InvalidArgument",
        ),
        (
            "the accounts folder itself",
            move_messages(&bus, &[&first], names::ACCOUNTS_PATH, "Work", true),
            "InvalidArgument",
        ),
        (
            "an unknown account",
            move_messages(&bus, &[&first], &other, "Work", false),
            "NotFound",
        ),
        (
            "an unknown folder",
            move_messages(&bus, &[&first], &path, "No Such Folder", false),
            "NotFound",
        ),
        (
            "a copy of an unknown id",
            move_messages(&bus, &[&missing], &path, "Work", true),
            "NotFound",
        ),
        (
            "an empty folder name",
            account_call(&bus, &path, "CreateFolder", &("",)),
            "InvalidArgument",
        ),
        (
            "a folder that exists",
            account_call(&bus, &path, "CreateFolder", &("Work",)),
            "AlreadyExists",
        ),
        (
            "renaming an unknown folder",
            account_call(&bus, &path, "RenameFolder", &("Nope", "Other")),
            "NotFound",
        ),
        (
            "deleting an unknown folder",
            account_call(&bus, &path, "DeleteFolder", &("Nope",)),
            "NotFound",
        ),
        (
            "summaries of a malformed id",
            get_summaries(&bus, &["not an id"]).map(drop),
            "InvalidArgument",
        ),
    ];
    for (what, r, want) in cases {
        assert_eq!(refused(what, r), want, "{what}");
    }

    // Nothing changed: the messages and their flags, locally and on the
    // server, the folders, the journal; and nothing was announced.
    let after = list(&bus, &path, "INBOX").expect("ListMessages");
    assert_eq!(after.len(), before.len());
    for m in &before {
        let now = by_subject(&after, &string(m, "subject"));
        for key in ["id", "seen", "flagged", "answered", "deleted", "draft"] {
            assert_eq!(
                now.get(key),
                m.get(key),
                "{key} of {}",
                string(m, "subject")
            );
        }
        assert_eq!(keywords(now), keywords(m));
    }
    assert_eq!(folder_names(&bus, &path), folders_before);
    assert_eq!(dovecot.folders(IMAP_USER), server_before);
    let p = bus.account(&path);
    assert_eq!(p.u32("PendingChanges"), 0);
    assert_eq!(p.u32("UnreadCount"), 1);
    for uid in dovecot.list_uids(IMAP_USER, "INBOX") {
        let flags = dovecot.flags(IMAP_USER, "INBOX", uid);
        assert!(!flags.iter().any(|f| f == "\\Flagged"), "{flags:?}");
    }
    // A call after the refusals is answered after their signals would be.
    bus.list_accounts();
    let announced: Vec<String> = signals
        .all()
        .iter()
        .filter(|s| s.member.starts_with("Messages") || s.member == "FoldersChanged")
        .map(|s| s.member.clone())
        .collect();
    assert!(
        announced.is_empty(),
        "refused calls announced: {announced:?}"
    );
}

#[test]
fn set_flags_is_announced_per_folder_and_reaches_the_server() {
    let dovecot = dovecot();
    let a = dovecot.deliver(IMAP_USER, &message("Alpha"));
    let b = dovecot.deliver(IMAP_USER, &message("Beta"));
    dovecot.create_folder(IMAP_USER, "Work");
    let w = dovecot.append(IMAP_USER, "Work", &message("Gamma"), &[]);
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = imap_account(&bus, &d, &dovecot, 3);
    assert_eq!(bus.account(&path).u32("UnreadCount"), 3);
    let inbox = ids_by_subject(&bus, &path, "INBOX", &["Alpha", "Beta"]);
    let work = ids_by_subject(&bus, &path, "Work", &["Gamma"]);
    let signals = bus.signals();
    let monitor = Monitor::start(&bus);

    let all: Vec<&str> = inbox.iter().chain(&work).map(String::as_str).collect();
    set_flags(&bus, &all, &["seen", "$Work"], &[]).expect("SetFlags");
    // True when the call returns, before any server round trip.
    let p = bus.account(&path);
    assert_eq!(p.u32("UnreadCount"), 0);
    assert_eq!(p.u32("MessageCount"), 3);
    let summaries = get_summaries(&bus, &all).expect("GetSummaries");
    assert_eq!(summaries.len(), 3);
    for s in &summaries {
        assert!(flag(s, "seen"), "{s:?}");
        assert!(keywords(s).contains(&"$Work".to_owned()), "{s:?}");
    }

    // One MessagesChanged per folder, carrying all of that folder's ids.
    let changed = |folder: &str| {
        let sig = signals.wait_for(&format!("MessagesChanged for {folder}"), |s| {
            messages_signal(s, "MessagesChanged").is_some_and(|(_, f, _)| f == folder)
        });
        let (account, _, ids) = messages_signal(&sig, "MessagesChanged").expect("checked");
        assert_eq!(account, path);
        ids.into_iter().collect::<BTreeSet<String>>()
    };
    assert_eq!(changed("INBOX"), inbox.iter().cloned().collect());
    assert_eq!(changed("Work"), work.iter().cloned().collect());

    // The engine replays the journal: the flags reach the server.
    for (folder, uid) in [("INBOX", a), ("INBOX", b), ("Work", w)] {
        wait_server_flags(&dovecot, &d, folder, uid, "\\Seen $Work", |f| {
            f.iter().any(|x| x == "\\Seen") && f.iter().any(|x| x == "$Work")
        });
    }
    wait_account(&bus, &d, &path, "with nothing pending", DEADLINE, |p| {
        p.u32("PendingChanges") == 0
    });
    // An outside monitor saw the same: one MessagesChanged per folder for
    // the whole call, the replay on the server adding none (the server's
    // flags are the ones already announced).
    bus.list_accounts();
    let seen = wait_until(DEADLINE, || {
        let s: Vec<Monitored> = monitor
            .signals()
            .into_iter()
            .filter(|s| s.member == "MessagesChanged")
            .collect();
        (s.len() >= 2).then_some(s)
    })
    .unwrap_or_else(|| panic!("dbus-monitor saw: {:?}", monitor.signals()));
    let mut folders: Vec<(String, BTreeSet<String>)> = seen
        .iter()
        .map(|s| {
            assert_eq!(s.values.first(), Some(&path), "{s:?}");
            (s.values[1].clone(), s.values[2..].iter().cloned().collect())
        })
        .collect();
    folders.sort();
    assert_eq!(
        folders,
        vec![
            ("INBOX".to_owned(), inbox.iter().cloned().collect()),
            ("Work".to_owned(), work.iter().cloned().collect()),
        ],
        "{seen:?}"
    );

    // And back: unread again at once, on the server after the replay.
    set_flags(&bus, &[&inbox[0]], &[], &["seen", "$Work"]).expect("SetFlags remove");
    assert_eq!(bus.account(&path).u32("UnreadCount"), 1);
    wait_server_flags(&dovecot, &d, "INBOX", a, "no \\Seen", |f| {
        !f.iter().any(|x| x == "\\Seen" || x == "$Work")
    });
    // Beta kept its flags: only the id given changed.
    let beta = dovecot.flags(IMAP_USER, "INBOX", b);
    assert!(beta.iter().any(|x| x == "\\Seen"), "{beta:?}");
}

#[test]
fn summaries_for_the_ids_of_a_signal() {
    let dovecot = dovecot();
    dovecot.deliver(IMAP_USER, &message("Old"));
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = imap_account(&bus, &d, &dovecot, 1);
    let signals = bus.signals();
    dovecot.append(
        IMAP_USER,
        "INBOX",
        &message("Fresh"),
        &["\\Answered", "work"],
    );
    account_call(&bus, &path, "Sync", &()).expect("Sync");
    let sig = signals.wait_for("MessagesAdded", |s| {
        messages_signal(s, "MessagesAdded").is_some()
    });
    let (account, folder, ids) = messages_signal(&sig, "MessagesAdded").expect("checked");
    assert_eq!(
        (account.as_str(), folder.as_str()),
        (path.as_str(), "INBOX")
    );
    assert_eq!(ids.len(), 1, "{ids:?}");

    // An id that names nothing (any more) is left out, not refused.
    let gone = format!("{}0", ids[0]);
    let asked: Vec<&str> = vec![&gone, &ids[0]];
    let got = get_summaries(&bus, &asked).expect("GetSummaries");
    assert_eq!(got.len(), 1, "{got:?}");
    let s = &got[0];
    assert_eq!(id(s), ids[0]);
    assert_eq!(string(s, "subject"), "Fresh");
    assert_eq!(string(s, "account"), path);
    assert_eq!(string(s, "folder"), "INBOX");
    assert!(flag(s, "answered"));
    assert!(!flag(s, "seen") && !flag(s, "flagged") && !flag(s, "draft") && !flag(s, "deleted"));
    assert_eq!(keywords(s), vec!["work".to_owned()]);
    // The same keys as ListMessages.
    let listed = list(&bus, &path, "INBOX").expect("ListMessages");
    let listed = by_subject(&listed, "Fresh");
    let keys = |d: &Summary| d.keys().cloned().collect::<BTreeSet<String>>();
    assert_eq!(keys(s), keys(listed));
}

#[test]
fn moves_and_copies_inside_an_imap_account() {
    let dovecot = dovecot();
    dovecot.deliver(IMAP_USER, &message("Moved"));
    dovecot.deliver(IMAP_USER, &message("Copied"));
    dovecot.create_folder(IMAP_USER, "Archive");
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = imap_account(&bus, &d, &dovecot, 2);
    let ids = ids_by_subject(&bus, &path, "INBOX", &["Moved", "Copied"]);
    let signals = bus.signals();

    move_messages(&bus, &[&ids[0]], &path, "Archive", false).expect("MoveMessages");
    // At once, locally: gone from INBOX, in Archive.
    let inbox = list(&bus, &path, "INBOX").expect("INBOX");
    assert!(inbox.iter().all(|m| string(m, "subject") != "Moved"));
    by_subject(&list(&bus, &path, "Archive").expect("Archive"), "Moved");
    assert_eq!(bus.account(&path).u32("MessageCount"), 2);
    let removed = signals.wait_for("MessagesRemoved from INBOX", |s| {
        messages_signal(s, "MessagesRemoved").is_some_and(|(_, f, _)| f == "INBOX")
    });
    let (_, _, gone) = messages_signal(&removed, "MessagesRemoved").expect("checked");
    assert_eq!(gone, vec![ids[0].clone()]);
    signals.wait_for("MessagesAdded to Archive", |s| {
        messages_signal(s, "MessagesAdded").is_some_and(|(_, f, _)| f == "Archive")
    });

    // A copy stays in INBOX and shows in Archive at once.
    move_messages(&bus, &[&ids[1]], &path, "Archive", true).expect("CopyMessages");
    by_subject(&list(&bus, &path, "INBOX").expect("INBOX"), "Copied");
    by_subject(&list(&bus, &path, "Archive").expect("Archive"), "Copied");
    assert_eq!(bus.account(&path).u32("MessageCount"), 3);

    // On the server: Moved only in Archive, Copied in both.
    let subjects = |folder: &str| -> Vec<String> {
        dovecot
            .list_uids(IMAP_USER, folder)
            .into_iter()
            .map(|uid| {
                let raw = text_of(&dovecot.fetch_raw(IMAP_USER, folder, uid));
                raw.lines()
                    .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect()
    };
    let settled = wait_until(DEADLINE, || {
        let mut inbox = subjects("INBOX");
        let mut archive = subjects("Archive");
        inbox.sort();
        archive.sort();
        (inbox == ["Copied"] && archive == ["Copied", "Moved"]).then_some(())
    });
    assert!(
        settled.is_some(),
        "server INBOX {:?}, Archive {:?}\n{}",
        subjects("INBOX"),
        subjects("Archive"),
        last_lines(&d.log(), 60)
    );
    wait_account(&bus, &d, &path, "with nothing pending", DEADLINE, |p| {
        p.u32("PendingChanges") == 0 && p.u32("MessageCount") == 3
    });
}

#[test]
fn a_move_is_announced_before_its_replay() {
    let dovecot = dovecot();
    dovecot.deliver(IMAP_USER, &message("Ordered"));
    dovecot.create_folder(IMAP_USER, "Archive");
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = imap_account(&bus, &d, &dovecot, 1);
    let source = ids_by_subject(&bus, &path, "INBOX", &["Ordered"]).remove(0);
    let signals = bus.signals();

    move_messages(&bus, &[&source], &path, "Archive", false).expect("MoveMessages");
    // The call's own signals: the source removed, a placeholder added.
    let added = signals.wait_for("MessagesAdded to Archive", |s| {
        messages_signal(s, "MessagesAdded").is_some_and(|(_, f, _)| f == "Archive")
    });
    let (_, _, first) = messages_signal(&added, "MessagesAdded").expect("checked");
    let placeholder = first[0].clone();
    // The replay's: the placeholder replaced by the server's message.
    let replaced = signals.wait_for("the server's message added to Archive", |s| {
        messages_signal(s, "MessagesAdded")
            .is_some_and(|(_, f, ids)| f == "Archive" && !ids.contains(&placeholder))
    });
    let (_, _, last) = messages_signal(&replaced, "MessagesAdded").expect("checked");
    let final_id = last[0].clone();
    signals.wait_for("the placeholder removed from Archive", |s| {
        messages_signal(s, "MessagesRemoved")
            .is_some_and(|(_, f, ids)| f == "Archive" && ids.contains(&placeholder))
    });
    let listed = ids_by_subject(&bus, &path, "Archive", &["Ordered"]);
    assert_eq!(
        listed,
        vec![final_id.clone()],
        "Archive lists the server's message"
    );

    let all = signals.all();
    let at = |member: &str, folder: &str, id: &str| -> usize {
        all.iter()
            .position(|s| {
                messages_signal(s, member)
                    .is_some_and(|(_, f, ids)| f == folder && ids.iter().any(|i| i == id))
            })
            .unwrap_or_else(|| panic!("no {member} of {id} in {folder}"))
    };
    let call = [
        at("MessagesRemoved", "INBOX", &source),
        at("MessagesAdded", "Archive", &placeholder),
    ];
    let replay = [
        at("MessagesRemoved", "Archive", &placeholder),
        at("MessagesAdded", "Archive", &final_id),
    ];
    assert!(
        call.iter().all(|c| replay.iter().all(|r| c < r)),
        "the call's signals {call:?} must all come before the replay's {replay:?}"
    );
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn folders_created_renamed_and_deleted_on_an_imap_account() {
    let dovecot = dovecot();
    dovecot.create_folder(IMAP_USER, "Old");
    dovecot.append(IMAP_USER, "Old", &message("Inside"), &[]);
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = imap_account(&bus, &d, &dovecot, 1);
    let inside = ids_by_subject(&bus, &path, "Old", &["Inside"]);
    let signals = bus.signals();
    let folders_changed = |n: usize| {
        wait_until(DEADLINE, || {
            let seen = signals
                .all()
                .iter()
                .filter(|s| {
                    s.path == path
                        && s.interface == names::ACCOUNT_INTERFACE
                        && s.member == "FoldersChanged"
                })
                .count();
            (seen >= n).then_some(())
        })
        .unwrap_or_else(|| panic!("fewer than {n} FoldersChanged on {path}"));
    };

    // A folder made on the server by another client: the next pass says
    // FoldersChanged.
    dovecot.create_folder(IMAP_USER, "From Elsewhere");
    account_call(&bus, &path, "Sync", &()).expect("Sync");
    folders_changed(1);
    assert!(folder_names(&bus, &path).contains("From Elsewhere"));

    account_call(&bus, &path, "CreateFolder", &("Projects/2026",)).expect("CreateFolder");
    assert!(folder_names(&bus, &path).contains("Projects/2026"));
    folders_changed(2);
    account_call(
        &bus,
        &path,
        "RenameFolder",
        &("Projects/2026", "Projects/Done"),
    )
    .expect("RenameFolder");
    let names_now = folder_names(&bus, &path);
    assert!(names_now.contains("Projects/Done"), "{names_now:?}");
    assert!(!names_now.contains("Projects/2026"), "{names_now:?}");
    folders_changed(3);

    account_call(&bus, &path, "DeleteFolder", &("Old",)).expect("DeleteFolder");
    assert!(!folder_names(&bus, &path).contains("Old"));
    assert_eq!(bus.account(&path).u32("MessageCount"), 0);
    folders_changed(4);
    // The message that went with the folder is announced under its name.
    let sig = signals.wait_for("MessagesRemoved from Old", |s| {
        messages_signal(s, "MessagesRemoved").is_some_and(|(_, f, _)| f == "Old")
    });
    let (_, _, ids) = messages_signal(&sig, "MessagesRemoved").expect("checked");
    assert_eq!(ids, inside);

    // The server follows once the engine replayed the journal.
    let done = wait_until(DEADLINE, || {
        let f = dovecot.folders(IMAP_USER);
        (f.iter().any(|n| n == "Projects/Done")
            && !f.iter().any(|n| n == "Projects/2026" || n == "Old"))
        .then_some(())
    });
    assert!(
        done.is_some(),
        "server folders: {:?}\n{}",
        dovecot.folders(IMAP_USER),
        last_lines(&d.log(), 60)
    );
    wait_account(&bus, &d, &path, "with nothing pending", DEADLINE, |p| {
        p.u32("PendingChanges") == 0
    });
}

#[test]
fn pop3_flags_and_moves_stay_local_through_the_same_methods() {
    let dovecot = dovecot();
    dovecot.deliver(POP3_USER, &message("Kept"));
    dovecot.deliver(POP3_USER, &message("Filed"));
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = pop3_account(&bus, &d, &dovecot, 2);
    let ids = ids_by_subject(&bus, &path, "INBOX", &["Kept", "Filed"]);
    let server_uids = dovecot.list_uids(POP3_USER, "INBOX");
    let signals = bus.signals();

    set_flags(&bus, &[&ids[0]], &["seen", "flagged"], &[]).expect("SetFlags on POP3");
    let p = bus.account(&path);
    assert_eq!(p.u32("UnreadCount"), 1);
    // Nothing for a server to do.
    assert_eq!(p.u32("PendingChanges"), 0);
    let s = get_summaries(&bus, &[&ids[0]]).expect("GetSummaries");
    assert!(flag(&s[0], "seen") && flag(&s[0], "flagged"));
    signals.wait_for("MessagesChanged on POP3", |s| {
        messages_signal(s, "MessagesChanged")
            .is_some_and(|(a, _, i)| a == path && i == [ids[0].clone()])
    });

    account_call(&bus, &path, "CreateFolder", &("Filed Mail",)).expect("CreateFolder on POP3");
    assert!(folder_names(&bus, &path).contains("Filed Mail"));
    signals.wait_for("FoldersChanged on POP3", |s| {
        s.path == path && s.member == "FoldersChanged"
    });
    move_messages(&bus, &[&ids[1]], &path, "Filed Mail", false).expect("MoveMessages on POP3");
    let filed = list(&bus, &path, "Filed Mail").expect("the new folder lists");
    by_subject(&filed, "Filed");
    let inbox = list(&bus, &path, "INBOX").expect("INBOX");
    assert_eq!(inbox.len(), 1);
    by_subject(&inbox, "Kept");
    assert_eq!(bus.account(&path).u32("PendingChanges"), 0);

    // Another pass neither fetches the moved message back nor undoes the
    // local flags; the server's mailbox is untouched.
    account_call(&bus, &path, "Sync", &()).expect("Sync");
    let p = bus.account(&path);
    assert_eq!(p.u32("MessageCount"), 2);
    assert_eq!(p.u32("UnreadCount"), 1);
    assert_eq!(list(&bus, &path, "INBOX").expect("INBOX").len(), 1);
    let s = get_summaries(&bus, &[&ids[0]]).expect("GetSummaries");
    assert!(flag(&s[0], "seen") && flag(&s[0], "flagged"));
    assert_eq!(dovecot.list_uids(POP3_USER, "INBOX"), server_uids);
    for uid in server_uids {
        let flags = dovecot.flags(POP3_USER, "INBOX", uid);
        assert!(!flags.iter().any(|f| f == "\\Flagged"), "{flags:?}");
    }
    assert!(!dovecot.folders(POP3_USER).iter().any(|f| f == "Filed Mail"));
}

#[test]
fn a_move_across_accounts_lands_once_on_the_target_server() {
    let dovecot = dovecot();
    dovecot.deliver(POP3_USER, &message("Traveller"));
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let imap = imap_account(&bus, &d, &dovecot, 0);
    let pop3 = pop3_account(&bus, &d, &dovecot, 1);
    let ids = ids_by_subject(&bus, &pop3, "INBOX", &["Traveller"]);

    move_messages(&bus, &[&ids[0]], &imap, "INBOX", false).expect("MoveMessages across");
    // At once: gone from the POP3 account, shown in the IMAP one, counted.
    assert!(list(&bus, &pop3, "INBOX").expect("POP3 INBOX").is_empty());
    by_subject(
        &list(&bus, &imap, "INBOX").expect("IMAP INBOX"),
        "Traveller",
    );
    assert_eq!(bus.account(&pop3).u32("MessageCount"), 0);
    assert_eq!(bus.account(&imap).u32("MessageCount"), 1);

    // The IMAP server gets exactly one copy (APPEND), and nothing waits.
    let landed = wait_until(DEADLINE, || {
        let uids = dovecot.list_uids(IMAP_USER, "INBOX");
        let pending =
            bus.account(&imap).u32("PendingChanges") + bus.account(&pop3).u32("PendingChanges");
        (uids.len() == 1 && pending == 0).then_some(uids)
    })
    .unwrap_or_else(|| {
        panic!(
            "IMAP INBOX on the server: {:?}\n{}",
            dovecot.list_uids(IMAP_USER, "INBOX"),
            last_lines(&d.log(), 60)
        )
    });
    let raw = text_of(&dovecot.fetch_raw(IMAP_USER, "INBOX", landed[0]));
    assert!(raw.contains("Subject: Traveller"), "{raw}");
    // The moved message is not fetched back into the POP3 account.
    account_call(&bus, &pop3, "Sync", &()).expect("Sync POP3");
    assert_eq!(bus.account(&pop3).u32("MessageCount"), 0);
    assert_eq!(bus.account(&imap).u32("MessageCount"), 1);
    by_subject(
        &list(&bus, &imap, "INBOX").expect("IMAP INBOX"),
        "Traveller",
    );
}

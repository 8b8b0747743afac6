//! Tests of local changes, the journal, placeholders and settling.

use anyhow::{Context as _, Result};

use super::*;

mod rebuilds;

fn message(uid: u32, flags: u8) -> NewMessage {
    NewMessage {
        uid,
        flags: Flags(flags),
        keywords: Vec::new(),
        raw: format!("Subject: m{uid}\r\nMessage-ID: <m{uid}@x>\r\n\r\nbody {uid}\r\n")
            .into_bytes(),
        internal_date: 1000 + i64::from(uid),
    }
}

const UV: u32 = 7;

/// An IMAP account `i` with INBOX (UIDs 1..=n) and an empty `Archive`,
/// HIGHESTMODSEQ 42.
async fn imap(store: &Store, account: &str, n: u32) -> Result<(FolderInfo, FolderInfo)> {
    let inbox = store.upsert_folder(account, "INBOX", "INBOX", Some(".".into()), None, true)?;
    let archive =
        store.upsert_folder(account, "Archive", "Archive", Some(".".into()), None, true)?;
    let state = FolderState {
        uidvalidity: UV,
        uidnext: n + 1,
        highestmodseq: 42,
    };
    store
        .store_batch(
            account,
            &inbox,
            (1..=n).map(|u| message(u, 0)).collect(),
            Some(state),
        )
        .await?;
    store.set_folder_state(account, &archive, state).await?;
    let inbox = store.folder(account, "INBOX")?.context("inbox")?;
    let archive = store.folder(account, "Archive")?.context("archive")?;
    Ok((inbox, archive))
}

fn id(account: &str, folder: &FolderInfo, uidvalidity: u32, uid: u32) -> MessageId {
    MessageId {
        account: account.into(),
        folder: folder.no,
        uidvalidity,
        uid,
    }
}

fn target(account: &str, folder: &FolderInfo, journaled: bool) -> local::Target {
    local::Target {
        account: account.into(),
        folder: folder.clone(),
        journaled,
    }
}

#[tokio::test]
async fn flags_are_journaled_once_with_before_and_modseq() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let (inbox, _) = imap(&store, "i", 2).await?;
    let ids = vec![id("i", &inbox, UV, 1), id("i", &inbox, UV, 2)];
    let add = vec![Flag::Seen, Flag::Keyword("$Junk".into())];
    let e = store
        .change_flags("i", true, ids.clone(), add.clone(), vec![])
        .await?;
    assert_eq!(e.changed, ids);
    let journal = store.journal("i")?;
    assert_eq!(journal.len(), 2);
    assert!(journal[0].seq < journal[1].seq);
    assert_eq!(
        journal[0].change,
        Change::Flags {
            folder: inbox.no,
            uidvalidity: UV,
            uid: 1,
            add: add.clone(),
            remove: vec![],
            before: vec![],
            modseq: 42,
        }
    );
    let r = store.record(&ids[0])?.context("record")?;
    assert!(r.flags.has(Flags::SEEN));
    assert_eq!(r.keywords, vec!["$Junk".to_owned()]);
    // The same again changes nothing and journals nothing (keywords
    // compare case-insensitively).
    let e = store
        .change_flags(
            "i",
            true,
            ids.clone(),
            vec![Flag::Keyword("$junk".into())],
            vec![],
        )
        .await?;
    assert!(e.is_empty());
    assert_eq!(store.pending_count("i")?, 2);
    let pending = store.pending("i", inbox.no)?;
    assert_eq!(pending.flags, [1, 2].into_iter().collect());
    assert!(pending.removed.is_empty());
    assert_eq!(store.counts("i", None)?, (2, 0));

    // Settled with the server's flags: the record follows, the entry goes;
    // settling it again does nothing.
    let seq = journal[0].seq;
    let e = store
        .settle(
            "i",
            seq,
            Outcome::Applied {
                flags: Some(vec![Flag::Seen, Flag::Flagged]),
            },
        )
        .await?;
    assert_eq!(e.changed, vec![ids[0].clone()]);
    let r = store.record(&ids[0])?.context("record")?;
    assert_eq!(r.flags, Flags(Flags::SEEN | Flags::FLAGGED));
    assert!(r.keywords.is_empty());
    assert!(store
        .settle("i", seq, Outcome::Applied { flags: None })
        .await?
        .is_empty());
    assert_eq!(store.pending_count("i")?, 1);
    // Dropped (the server refused the STORE): the change is undone
    // locally, or the record would keep it forever.
    let e = store
        .settle("i", journal[1].seq, Outcome::Dropped("refused".into()))
        .await?;
    assert_eq!(e.changed, vec![ids[1].clone()]);
    let r = store.record(&ids[1])?.context("record")?;
    assert_eq!(r.flags, Flags::default());
    assert!(r.keywords.is_empty());
    assert_eq!(store.pending_count("i")?, 0);

    // Removing: `before` holds what was there.
    store
        .change_flags("i", true, vec![ids[0].clone()], vec![], vec![Flag::Flagged])
        .await?;
    let j = store.journal("i")?;
    assert!(matches!(&j[0].change, Change::Flags { remove, before, .. }
        if *remove == vec![Flag::Flagged] && *before == vec![Flag::Seen, Flag::Flagged]));
    // A refused removal brings the flag back.
    store
        .settle("i", j[0].seq, Outcome::Dropped("refused".into()))
        .await?;
    let r = store.record(&ids[0])?.context("record")?;
    assert_eq!(r.flags, Flags(Flags::SEEN | Flags::FLAGGED));
    Ok(())
}

/// The record change and the entry are durable together: both are there
/// after a reopen.
#[tokio::test]
async fn change_and_entry_are_stored_together() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let m = {
        let store = Store::open(dir.path())?;
        let (inbox, archive) = imap(&store, "i", 1).await?;
        let m = id("i", &inbox, UV, 1);
        store
            .change_flags("i", true, vec![m.clone()], vec![Flag::Flagged], vec![])
            .await?;
        store
            .move_messages(
                "i",
                true,
                vec![m.clone()],
                target("i", &archive, true),
                false,
            )
            .await?;
        m
    };
    let store = Store::open(dir.path())?;
    assert!(store.record(&m)?.is_none(), "moved away");
    let j = store.journal("i")?;
    assert_eq!(j.len(), 2);
    assert!(matches!(
        j[1].change,
        Change::Move {
            uid: 1,
            copy: false,
            ..
        }
    ));
    let archive = store.folder("i", "Archive")?.context("archive")?;
    let listed = store.list_folder("i", &archive, 0, 10)?;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].record.flags.has(Flags::FLAGGED));
    Ok(())
}

#[tokio::test]
async fn a_move_shows_a_placeholder_until_it_lands() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let (inbox, archive) = imap(&store, "i", 3).await?;
    let m = id("i", &inbox, UV, 1);
    let raw = store.raw(&store.record(&m)?.context("record")?)?;
    let e = store
        .move_messages(
            "i",
            true,
            vec![m.clone()],
            target("i", &archive, true),
            false,
        )
        .await?;
    assert_eq!(e.removed, vec![m.clone()]);
    assert_eq!(e.added.len(), 1);
    let ph = e.added[0].clone();
    assert_eq!((ph.uidvalidity, ph.folder), (0, archive.no));
    assert!(ph.uid >= PLACEHOLDER_BASE);
    // Listed, counted and readable, but not a server UID.
    let listed = store.list_folder("i", &archive, 0, 10)?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, ph);
    assert_eq!(store.counts("i", Some(archive.no))?, (1, 1));
    let rec = store.record(&ph)?.context("placeholder record")?;
    assert!(is_placeholder(&rec));
    assert_eq!(store.raw(&rec)?, raw);
    assert!(store.uids("i", archive.no)?.is_empty());
    assert!(store.flag_sets("i", archive.no)?.is_empty());
    assert!(store.hashes("i", archive.no)?.is_empty());
    assert_eq!(store.uids("i", inbox.no)?.len(), 2);
    assert_eq!(
        store.journal("i")?[0].change,
        Change::Move {
            folder: inbox.no,
            uidvalidity: UV,
            uid: 1,
            to: archive.no,
            placeholder: ph.uid,
            copy: false,
        }
    );
    assert_eq!(
        store.pending("i", inbox.no)?.removed,
        [1].into_iter().collect()
    );
    // Flags on the placeholder: no entry of their own.
    store
        .change_flags("i", true, vec![ph.clone()], vec![Flag::Seen], vec![])
        .await?;
    assert_eq!(store.pending_count("i")?, 1);
    // A second move gets the next placeholder UID.
    let e2 = store
        .move_messages(
            "i",
            true,
            vec![id("i", &inbox, UV, 2)],
            target("i", &archive, true),
            false,
        )
        .await?;
    assert_eq!(e2.added[0].uid, ph.uid + 1);

    // Landed with a UID: the server's message, with the placeholder's
    // flags, and the flags set since journaled for the real UID.
    let seq = store.journal("i")?[0].seq;
    let e = store
        .settle(
            "i",
            seq,
            Outcome::Landed {
                uidvalidity: 9,
                uid: Some(55),
            },
        )
        .await?;
    let real = MessageId {
        account: "i".into(),
        folder: archive.no,
        uidvalidity: 9,
        uid: 55,
    };
    assert_eq!(e.removed, vec![ph.clone()]);
    assert_eq!(e.added, vec![real.clone()]);
    assert!(store.record(&ph)?.is_none());
    let r = store.record(&real)?.context("landed")?;
    assert!(r.flags.has(Flags::SEEN));
    assert_eq!(store.raw(&r)?, raw);
    assert_eq!(
        store.uids("i", archive.no)?.into_keys().collect::<Vec<_>>(),
        vec![55]
    );
    let j = store.journal("i")?;
    assert!(
        matches!(&j.last().context("entry")?.change, Change::Flags { uid: 55, uidvalidity: 9, add, before, .. }
            if *add == vec![Flag::Seen] && before.is_empty()),
        "{j:?}"
    );
    // Again: nothing.
    assert!(store
        .settle(
            "i",
            seq,
            Outcome::Landed {
                uidvalidity: 9,
                uid: Some(55)
            }
        )
        .await?
        .is_empty());

    // Landed without a UID: the placeholder only goes.
    let seq2 = j
        .iter()
        .find(|e| matches!(e.change, Change::Move { .. }))
        .context("second move")?
        .seq;
    let e = store
        .settle(
            "i",
            seq2,
            Outcome::Landed {
                uidvalidity: 9,
                uid: None,
            },
        )
        .await?;
    assert_eq!(e.removed, vec![e2.added[0].clone()]);
    assert!(e.added.is_empty());
    assert_eq!(store.counts("i", Some(archive.no))?.0, 1);
    Ok(())
}

#[tokio::test]
async fn a_dropped_move_puts_the_message_back() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let (inbox, archive) = imap(&store, "i", 1).await?;
    let m = id("i", &inbox, UV, 1);
    let e = store
        .move_messages(
            "i",
            true,
            vec![m.clone()],
            target("i", &archive, true),
            false,
        )
        .await?;
    let seq = store.journal("i")?[0].seq;
    let back = store
        .settle("i", seq, Outcome::Dropped("the source is gone".into()))
        .await?;
    assert_eq!(back.removed, e.added);
    assert_eq!(back.added, vec![m.clone()]);
    assert!(store.record(&m)?.is_some());
    assert_eq!(store.counts("i", Some(archive.no))?.0, 0);
    assert_eq!(store.pending_count("i")?, 0);
    assert!(store.pending("i", inbox.no)?.removed.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_copy_keeps_the_source() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let (inbox, archive) = imap(&store, "i", 1).await?;
    let m = id("i", &inbox, UV, 1);
    let e = store
        .move_messages(
            "i",
            true,
            vec![m.clone()],
            target("i", &archive, true),
            true,
        )
        .await?;
    assert!(e.removed.is_empty());
    assert!(store.record(&m)?.is_some());
    assert!(matches!(
        store.journal("i")?[0].change,
        Change::Move { copy: true, .. }
    ));
    assert!(store.pending("i", inbox.no)?.removed.is_empty());
    // Dropped: the copy goes, the source stays (once).
    let seq = store.journal("i")?[0].seq;
    let back = store
        .settle("i", seq, Outcome::Dropped("refused".into()))
        .await?;
    assert!(back.added.is_empty());
    assert_eq!(store.counts("i", None)?.0, 1);
    Ok(())
}

#[tokio::test]
async fn a_cross_account_move_appends_then_expunges() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let (inbox, _) = imap(&store, "a", 2).await?;
    let (_, b_archive) = imap(&store, "b", 0).await?;
    let ids = vec![id("a", &inbox, UV, 1), id("a", &inbox, UV, 2)];
    let e = store
        .move_messages("a", true, ids.clone(), target("b", &b_archive, true), false)
        .await?;
    assert_eq!(e.removed, ids);
    assert_eq!(e.added.len(), 2);
    let ja = store.journal("a")?;
    let jb = store.journal("b")?;
    assert!(matches!(ja[0].change, Change::MovedOut { uid: 1, .. }));
    let Change::Append {
        source,
        message_id,
        to,
        ..
    } = &jb[0].change
    else {
        anyhow::bail!("not an append: {jb:?}");
    };
    assert_eq!(*to, b_archive.no);
    assert_eq!(message_id, "m1@x");
    assert_eq!(
        source,
        &Some(Source {
            account: "a".into(),
            seq: ja[0].seq
        })
    );
    assert_eq!(
        store.pending("a", inbox.no)?.removed,
        [1, 2].into_iter().collect()
    );
    // The first lands: its MovedOut becomes an Expunge.
    store
        .settle(
            "b",
            jb[0].seq,
            Outcome::Landed {
                uidvalidity: 3,
                uid: Some(1),
            },
        )
        .await?;
    assert_eq!(
        store.journal("a")?[0].change,
        Change::Expunge {
            folder: inbox.no,
            uidvalidity: UV,
            uid: 1
        }
    );
    // The second is dropped: its MovedOut goes and the message is back.
    let back = store
        .settle("b", jb[1].seq, Outcome::Dropped("refused".into()))
        .await?;
    assert_eq!(back.added, vec![ids[1].clone()]);
    assert_eq!(store.journal("a")?.len(), 1);
    assert_eq!(store.counts("a", None)?.0, 1);
    assert_eq!(store.counts("b", None)?.0, 1);
    // Removing an account drops its journal.
    store.remove_account("a").await?;
    assert!(store.journal("a")?.is_empty());
    assert_eq!(store.pending_count("b")?, 0);
    Ok(())
}

/// A move whose target UID is taken aborts as a whole: nothing changed.
#[tokio::test]
async fn a_failed_move_changes_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let (inbox, _) = imap(&store, "i", 1).await?;
    let local = store.upsert_folder("p", "INBOX", "INBOX", None, None, true)?;
    store
        .pop3_store("p", &local, vec![("u".into(), message(5, 0))])
        .await?;
    // Make the POP3 folder's next UID one that is taken.
    let mut state = store
        .folder("p", "INBOX")?
        .and_then(|f| f.state)
        .context("state")?;
    state.uidnext = 1;
    store.set_folder_state("p", &local, state).await?;
    let m = id("i", &inbox, UV, 1);
    let r = store
        .move_messages(
            "i",
            true,
            vec![m.clone()],
            target("p", &local, false),
            false,
        )
        .await;
    assert!(r.is_err());
    assert!(store.record(&m)?.is_some());
    assert!(store.journal("i")?.is_empty());
    assert_eq!(store.counts("p", None)?.0, 1);
    Ok(())
}

/// An IMAP message moved to a POP3 account is stored there at once and
/// expunged from its server.
#[tokio::test]
async fn a_move_to_pop3_expunges_at_the_source() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let (inbox, _) = imap(&store, "i", 1).await?;
    let local = store.upsert_folder("p", "INBOX", "INBOX", None, None, true)?;
    let m = id("i", &inbox, UV, 1);
    let e = store
        .move_messages(
            "i",
            true,
            vec![m.clone()],
            target("p", &local, false),
            false,
        )
        .await?;
    assert_eq!(e.added[0].uid, 1);
    assert!(matches!(
        store.journal("i")?[0].change,
        Change::Expunge { uid: 1, .. }
    ));
    assert!(store.journal("p")?.is_empty());
    Ok(())
}

#[tokio::test]
async fn folders_are_created_renamed_and_deleted() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let (_, archive) = imap(&store, "i", 0).await?;
    let sub = store
        .create_folder("i", true, "Archive.2024", "Archive.2024", Some(".".into()))
        .await?
        .0;
    assert!(sub.selectable && sub.state.is_none());
    let again = store
        .create_folder("i", true, "Archive.2024", "Archive.2024", Some(".".into()))
        .await?;
    assert_eq!(again.0.no, sub.no);
    assert!(!again.1.folders);
    store
        .store_batch(
            "i",
            &archive,
            vec![message(1, 0)],
            Some(FolderState {
                uidvalidity: UV,
                uidnext: 2,
                highestmodseq: 0,
            }),
        )
        .await?;
    let m = id("i", &archive, UV, 1);
    let renamed = vec![
        Renamed {
            from: archive.clone(),
            name: "Old".into(),
            display: "Old".into(),
        },
        Renamed {
            from: sub.clone(),
            name: "Old.2024".into(),
            display: "Old.2024".into(),
        },
    ];
    let e = store
        .rename_folders("i", true, "Archive", "Old", renamed)
        .await?;
    assert!(e.folders);
    assert!(store.folder("i", "Archive")?.is_none());
    let old = store.folder("i", "Old")?.context("renamed")?;
    assert_eq!(old.no, archive.no);
    assert_eq!(store.folder("i", "Old.2024")?.context("child")?.no, sub.no);
    assert!(store.record(&m)?.is_some(), "ids stay");
    let e = store.delete_folder("i", true, &old).await?;
    assert_eq!(e.removed, vec![m.clone()]);
    assert!(store.record(&m)?.is_none());
    assert!(store.folder("i", "Old")?.is_none());
    let changes: Vec<Change> = store.journal("i")?.into_iter().map(|e| e.change).collect();
    assert_eq!(
        changes,
        vec![
            Change::CreateFolder {
                name: "Archive.2024".into()
            },
            Change::RenameFolder {
                from: "Archive".into(),
                to: "Old".into()
            },
            Change::DeleteFolder {
                name: "Old".into(),
                no: Some(old.no),
            },
        ]
    );
    Ok(())
}

/// An entry that cannot be read is removed (with a warning), so
/// `PendingChanges` can reach 0.
#[tokio::test]
async fn an_unreadable_journal_entry_is_removed() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let (inbox, _) = imap(&store, "i", 1).await?;
    store
        .change_flags(
            "i",
            true,
            vec![id("i", &inbox, UV, 1)],
            vec![Flag::Seen],
            vec![],
        )
        .await?;
    let o = store.handle()?;
    o.trees.journal.insert(
        placeholder::journal_key("i", u64::MAX - 1),
        &b"{\"op\":\"from-the-future\"}"[..],
    )?;
    assert_eq!(store.pending_count("i")?, 2);
    assert_eq!(store.journal("i")?.len(), 1);
    assert_eq!(store.pending_count("i")?, 1);
    Ok(())
}

/// A batch settles together: every entry goes, each with its outcome.
#[tokio::test]
async fn a_batch_of_outcomes_settles_at_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let (inbox, _) = imap(&store, "i", 3).await?;
    let ids: Vec<MessageId> = (1..=3).map(|u| id("i", &inbox, UV, u)).collect();
    store
        .change_flags("i", true, ids.clone(), vec![Flag::Seen], vec![])
        .await?;
    let outcomes: Vec<(u64, Outcome)> = store
        .journal("i")?
        .into_iter()
        .map(|e| {
            (
                e.seq,
                Outcome::Applied {
                    flags: Some(vec![Flag::Seen, Flag::Flagged]),
                },
            )
        })
        .collect();
    let e = store.settle_all("i", outcomes).await?;
    assert_eq!(e.changed, ids);
    assert_eq!(store.pending_count("i")?, 0);
    assert_eq!(
        store.record(&ids[2])?.context("record")?.flags,
        Flags(Flags::SEEN | Flags::FLAGGED)
    );
    Ok(())
}

#[tokio::test]
async fn the_servers_flags_do_not_undo_a_newer_local_change() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let (inbox, _) = imap(&store, "i", 1).await?;
    let one = vec![id("i", &inbox, UV, 1)];
    // Read, then unread again before the first change is settled.
    store
        .change_flags("i", true, one.clone(), vec![Flag::Seen], vec![])
        .await?;
    store
        .change_flags("i", true, one.clone(), vec![], vec![Flag::Seen])
        .await?;
    let journal = store.journal("i")?;
    assert_eq!(journal.len(), 2);
    // The server confirms the first: it has \Seen now.
    store
        .settle(
            "i",
            journal[0].seq,
            Outcome::Applied {
                flags: Some(vec![Flag::Seen]),
            },
        )
        .await?;
    let r = store.record(&one[0])?.context("record")?;
    assert!(!r.flags.has(Flags::SEEN), "the newer local change is kept");
    // The second is confirmed too: the server's flags are taken.
    store
        .settle(
            "i",
            journal[1].seq,
            Outcome::Applied {
                flags: Some(vec![Flag::Flagged]),
            },
        )
        .await?;
    let r = store.record(&one[0])?.context("record")?;
    assert!(!r.flags.has(Flags::SEEN) && r.flags.has(Flags::FLAGGED));
    Ok(())
}

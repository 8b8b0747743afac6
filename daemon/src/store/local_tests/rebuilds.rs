//! Tests of local changes that must survive a restart or a rebuild of the
//! index (POP3 mail lives only here), and of removing an account with
//! pending moves.

use super::*;

/// A POP3 account's moves and flags are local, and survive a rebuild of
/// the index from the manifests; its unique-ids stay known.
#[tokio::test]
async fn pop3_moves_and_flags_survive_a_rebuild() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (moved, flagged, archive_no) = {
        let store = Store::open(dir.path())?;
        let inbox = store.upsert_folder("p", "INBOX", "INBOX", None, Some("inbox".into()), true)?;
        let ids = store
            .pop3_store(
                "p",
                &inbox,
                vec![("u1".into(), message(0, 0)), ("u2".into(), message(9, 0))],
            )
            .await?;
        let (archive, e) = store
            .create_folder("p", false, "Old/2024", "Old/2024", Some("/".into()))
            .await?;
        assert!(e.folders);
        let e = store
            .move_messages(
                "p",
                false,
                vec![ids[0].clone()],
                target("p", &archive, false),
                false,
            )
            .await?;
        assert_eq!(e.added.len(), 1);
        assert_eq!(e.added[0].uidvalidity, pop3::POP3_UIDVALIDITY);
        assert!(!is_placeholder(
            &store.record(&e.added[0])?.context("moved")?
        ));
        store
            .change_flags(
                "p",
                false,
                vec![ids[1].clone()],
                vec![Flag::Seen, Flag::Keyword("work".into())],
                vec![],
            )
            .await?;
        assert!(store.journal("p")?.is_empty(), "POP3 keeps no journal");
        (e.added[0].clone(), ids[1].clone(), archive.no)
    };
    std::fs::remove_dir_all(dir.path().join("index"))?;
    let store = Store::open(dir.path())?;
    let archive = store.folder("p", "Old/2024")?.context("folder restored")?;
    assert_eq!(archive.no, archive_no);
    assert!(store.record(&moved)?.is_some(), "the move survived");
    let r = store.record(&flagged)?.context("flagged")?;
    assert!(r.flags.has(Flags::SEEN));
    assert_eq!(r.keywords, vec!["work".to_owned()]);
    assert_eq!(store.counts("p", None)?, (2, 1), "the moved one is unread");
    let inbox = store.folder("p", "INBOX")?.context("inbox")?;
    assert_eq!(store.uids("p", inbox.no)?.len(), 1);
    assert_eq!(store.pop3_entries("p")?.len(), 2, "not downloaded again");
    Ok(())
}

/// A POP3 message moved to an IMAP account stays in the POP3 manifest until
/// the server has it: a rebuild before that finds it in the POP3 folder, a
/// rebuild after does not.
#[tokio::test]
async fn a_pop3_message_moved_out_leaves_its_manifest_when_it_lands() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (kept, archive) = {
        let store = Store::open(dir.path())?;
        let (_, archive) = imap(&store, "i", 0).await?;
        let inbox = store.upsert_folder("p", "INBOX", "INBOX", None, Some("inbox".into()), true)?;
        let ids = store
            .pop3_store(
                "p",
                &inbox,
                vec![("u1".into(), message(1, 0)), ("u2".into(), message(2, 0))],
            )
            .await?;
        let e = store
            .move_messages("p", false, ids.clone(), target("i", &archive, true), false)
            .await?;
        assert_eq!(e.removed, ids);
        let j = store.journal("i")?;
        assert!(matches!(&j[0].change, Change::Append { source: None, .. }));
        store
            .settle(
                "i",
                j[0].seq,
                Outcome::Landed {
                    uidvalidity: UV,
                    uid: Some(1),
                },
            )
            .await?;
        (ids[1].clone(), archive)
    };
    std::fs::remove_dir_all(dir.path().join("index"))?;
    let store = Store::open(dir.path())?;
    assert!(store.record(&kept)?.is_some(), "the one not landed is back");
    assert_eq!(store.counts("p", None)?.0, 1, "the landed one is not");
    // The landed one is in the IMAP account's manifest.
    let archive = store.folder("i", &archive.name)?.context("archive")?;
    assert_eq!(store.uids("i", archive.no)?.len(), 1);
    Ok(())
}

/// A POP3 folder renamed locally keeps its messages and ids across a
/// rebuild.
#[tokio::test]
async fn a_pop3_rename_survives_a_rebuild() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let moved = {
        let store = Store::open(dir.path())?;
        let inbox = store.upsert_folder("p", "INBOX", "INBOX", None, Some("inbox".into()), true)?;
        let ids = store
            .pop3_store("p", &inbox, vec![("u1".into(), message(1, 0))])
            .await?;
        let (a, _) = store
            .create_folder("p", false, "A", "A", Some("/".into()))
            .await?;
        let e = store
            .move_messages("p", false, ids, target("p", &a, false), false)
            .await?;
        let renamed = vec![Renamed {
            from: a.clone(),
            name: "B".into(),
            display: "B".into(),
        }];
        store.rename_folders("p", false, "A", "B", renamed).await?;
        e.added[0].clone()
    };
    std::fs::remove_dir_all(dir.path().join("index"))?;
    let store = Store::open(dir.path())?;
    assert!(store.folder("p", "A")?.is_none());
    let b = store.folder("p", "B")?.context("renamed folder restored")?;
    assert_eq!(b.no, moved.folder);
    assert!(store.record(&moved)?.is_some());
    assert_eq!(store.counts("p", None)?.0, 1);
    Ok(())
}

/// A pending POP3 → IMAP move keeps its manifest line, but a restart (the
/// manifests are replayed at every open) must not bring the moved message
/// back beside its placeholder; nor once it has landed.
#[tokio::test]
async fn a_pending_pop3_move_is_not_restored_at_a_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let store = Store::open(dir.path())?;
        let (_, archive) = imap(&store, "i", 0).await?;
        let inbox = store.upsert_folder("p", "INBOX", "INBOX", None, Some("inbox".into()), true)?;
        let ids = store
            .pop3_store("p", &inbox, vec![("u1".into(), message(1, 0))])
            .await?;
        store
            .move_messages("p", false, ids, target("i", &archive, true), false)
            .await?;
    }
    let seq = {
        let store = Store::open(dir.path())?;
        assert_eq!(store.counts("p", None)?.0, 0, "not back in the POP3 folder");
        assert_eq!(store.counts("i", None)?.0, 1, "the placeholder");
        let j = store.journal("i")?;
        j[0].seq
    };
    {
        let store = Store::open(dir.path())?;
        assert_eq!(store.counts("p", None)?.0, 0);
        store
            .settle(
                "i",
                seq,
                Outcome::Landed {
                    uidvalidity: UV,
                    uid: Some(1),
                },
            )
            .await?;
    }
    let store = Store::open(dir.path())?;
    assert_eq!(
        store.counts("p", None)?.0,
        0,
        "landed: not in the POP3 folder"
    );
    assert_eq!(store.counts("i", None)?.0, 1, "landed: once in the target");
    Ok(())
}

/// A move dropped after its source folder was deleted cannot put the
/// message back: the placeholder stays, with its file, never lost.
#[tokio::test]
async fn a_dropped_move_out_of_a_deleted_folder_keeps_the_message() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let (_, archive) = imap(&store, "i", 0).await?;
    let (old, _) = store
        .create_folder("i", true, "Old", "Old", Some(".".into()))
        .await?;
    let state = FolderState {
        uidvalidity: UV,
        uidnext: 2,
        highestmodseq: 0,
    };
    store
        .store_batch("i", &old, vec![message(1, 0)], Some(state))
        .await?;
    let m = id("i", &old, UV, 1);
    let e = store
        .move_messages("i", true, vec![m], target("i", &archive, true), false)
        .await?;
    let old = store.folder("i", "Old")?.context("old")?;
    store.delete_folder("i", true, &old).await?;
    let mv = store
        .journal("i")?
        .into_iter()
        .find(|e| matches!(e.change, Change::Move { .. }))
        .context("move")?;
    store
        .settle("i", mv.seq, Outcome::Dropped("its folder is gone".into()))
        .await?;
    let kept = store
        .record(&e.added[0])?
        .context("the placeholder stays")?;
    assert!(
        blobs::read(&store.shared.messages, &kept.hash, 1 << 20).is_ok(),
        "its file stays"
    );
    assert_eq!(store.counts("i", Some(archive.no))?.0, 1);
    Ok(())
}

/// Removing an account with pending cross-account moves loses and hides
/// nothing: a POP3 message moved into the removed IMAP account goes back
/// to its POP3 folder (the placeholder was its only copy), and a move out
/// of the removed account still lands in the other one, with nothing
/// left pending there for the removed source.
#[tokio::test]
async fn removing_an_account_lets_its_pending_cross_account_moves_go() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let (_, i_archive) = imap(&store, "i", 0).await?;
    let (j_inbox, j_archive) = imap(&store, "j", 1).await?;
    let inbox = store.upsert_folder("p", "INBOX", "INBOX", None, Some("inbox".into()), true)?;
    let ids = store
        .pop3_store("p", &inbox, vec![("u1".into(), message(5, 0))])
        .await?;
    store
        .move_messages(
            "p",
            false,
            ids.clone(),
            target("i", &i_archive, true),
            false,
        )
        .await?;
    let moved = id("j", &j_inbox, UV, 1);
    store
        .move_messages("j", true, vec![moved], target("i", &i_archive, true), false)
        .await?;
    assert_eq!(store.counts("p", None)?.0, 0);
    assert_eq!(store.pending_count("j")?, 1);
    store.remove_account("i").await?;
    assert!(store.record(&ids[0])?.is_some(), "back in the POP3 folder");
    assert_eq!(store.counts("p", None)?.0, 1);
    assert_eq!(store.pending_count("j")?, 0, "the MovedOut went");
    assert_eq!(
        store.counts("j", Some(j_inbox.no))?.0,
        1,
        "and the message is back"
    );

    // Out of a removed account: the target's Append lands on its own.
    let (a_inbox, _) = imap(&store, "a", 1).await?;
    store
        .move_messages(
            "a",
            true,
            vec![id("a", &a_inbox, UV, 1)],
            target("j", &j_archive, true),
            false,
        )
        .await?;
    store.remove_account("a").await?;
    let jj = store.journal("j")?;
    assert!(
        matches!(
            &jj[..],
            [Entry {
                change: Change::Append { source: None, .. },
                ..
            }]
        ),
        "{jj:?}"
    );
    assert_eq!(
        store.counts("j", Some(j_archive.no))?.0,
        1,
        "the placeholder stays"
    );
    Ok(())
}

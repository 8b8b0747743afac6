//! Tests of opening, moving aside, rebuilding and recovering the store.

use super::*;
use crate::store::messages::{Flags, NewMessage};

fn pop3_message(n: u32) -> NewMessage {
    NewMessage {
        uid: 0,
        flags: Flags::default(),
        keywords: Vec::new(),
        raw: format!("Subject: kept {n}\r\nMessage-ID: <{n}@x>\r\n\r\nbody {n}\r\n").into_bytes(),
        internal_date: 1000 + i64::from(n),
    }
}

/// A store with two POP3 messages and one IMAP message, closed.
async fn filled(dir: &Path) -> Result<Vec<(MessageId, Vec<u8>)>> {
    let store = Store::open(dir)?;
    let inbox = store.upsert_folder("p", "INBOX", "INBOX", None, Some("inbox".into()), true)?;
    let ids = store
        .pop3_store(
            "p",
            &inbox,
            vec![
                ("u1".into(), pop3_message(1)),
                ("u2".into(), pop3_message(2)),
            ],
        )
        .await?;
    let f = store.upsert_folder("i", "Work", "Work", None, None, true)?;
    let imap = NewMessage {
        uid: 7,
        flags: Flags(Flags::SEEN),
        keywords: Vec::new(),
        raw: b"Subject: imap\r\n\r\nx\r\n".to_vec(),
        internal_date: 5,
    };
    let state = FolderState {
        uidvalidity: 3,
        uidnext: 8,
        highestmodseq: 42,
    };
    let mut all = Vec::new();
    for id in ids
        .iter()
        .chain(&store.store_batch("i", &f, vec![imap], Some(state)).await?)
    {
        let rec = store.record(id)?.context("record")?;
        all.push((id.clone(), store.raw(&rec)?));
    }
    store.flush().await?;
    Ok(all)
}

fn asides(dir: &Path) -> Result<usize> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("index.unreadable-")
        })
        .count())
}

/// After a rebuild every stored message is listed and served byte-exact,
/// the POP3 unique-ids are known (no re-download) and new UIDs do not
/// collide.
async fn assert_rebuilt(dir: &Path, before: &[(MessageId, Vec<u8>)]) -> Result<()> {
    let store = Store::open(dir)?;
    for (id, raw) in before {
        let folder = store.folder_of(id)?;
        let folder = folder.context("folder restored")?;
        let listed = store.list_folder(&id.account, &folder, 0, 100)?;
        let found = listed
            .iter()
            .find(|s| s.id.uid == id.uid)
            .context("message listed after the rebuild")?;
        assert_eq!(&store.message(&found.id, &found.record).await?, raw);
    }
    let uidls = store.pop3_entries("p")?;
    assert_eq!(uidls.keys().collect::<Vec<_>>(), vec!["u1", "u2"]);
    let inbox = store.folder("p", "INBOX")?.context("inbox")?;
    let new = store
        .pop3_store("p", &inbox, vec![("u3".into(), pop3_message(3))])
        .await?;
    assert_eq!(new.first().map(|i| i.uid), Some(3), "UIDs continue");
    let work = store.folder("i", "Work")?.context("imap folder")?;
    let state = work.state.context("state")?;
    assert_eq!(
        (state.uidvalidity, state.uidnext, state.highestmodseq),
        (3, 8, 0)
    );
    Ok(())
}

#[tokio::test]
async fn reopen_keeps_data_and_drops_accounts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let before = filled(dir.path()).await?;
    let store = Store::open(dir.path())?;
    assert_eq!(store.counts("p", None)?.0, 2);
    assert!(dir.path().join("manifests/p.log").exists());
    store.remove_account("p").await?;
    assert_eq!(store.counts("p", None)?.0, 0);
    assert!(
        !dir.path().join("manifests/p.log").exists(),
        "manifest removed"
    );
    assert_eq!(store.counts("i", None)?.0, 1);
    assert_eq!(asides(dir.path())?, 0);
    drop(store);
    // Nothing of p comes back at the next open.
    let store = Store::open(dir.path())?;
    assert_eq!(store.counts("p", None)?.0, 0);
    assert_eq!(before.len(), 3);
    Ok(())
}

#[tokio::test]
async fn wrong_schema_is_moved_aside_and_rebuilt() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let before = filled(dir.path()).await?;
    open::set_schema(&dir.path().join("index"), 99)?;
    assert_rebuilt(dir.path(), &before).await?;
    assert_eq!(asides(dir.path())?, 1);
    Ok(())
}

/// Finding 4: garbage at the start and in the middle of sled's file.
#[tokio::test]
async fn garbage_in_the_index_is_moved_aside_and_rebuilt() -> Result<()> {
    for at_start in [true, false] {
        let dir = tempfile::tempdir()?;
        let before = filled(dir.path()).await?;
        let db = dir.path().join("index/db");
        let mut bytes = std::fs::read(&db)?;
        let from = if at_start { 0 } else { bytes.len() / 2 };
        let to = (from + 4096).min(bytes.len());
        for (i, b) in bytes[from..to].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37) ^ 0xa5;
        }
        std::fs::write(&db, &bytes)?;
        assert_rebuilt(dir.path(), &before).await?;
        // Garbage at the start makes sled fail (or panic): moved aside. In
        // the middle sled keeps the records before it and drops the rest
        // silently; the manifests put the rest back.
        if at_start {
            assert_eq!(asides(dir.path())?, 1);
        }
    }
    Ok(())
}

/// Finding 4: damage that makes sled itself panic in its open (`tried to
/// serialize Uninitialized`) is caught: the index is moved aside and
/// rebuilt, the mail is listed and served byte-exact.
#[tokio::test]
async fn index_that_makes_sled_panic_is_moved_aside_and_rebuilt() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let before = filled(dir.path()).await?;
    let index = dir.path().join("index");
    open::install_index_that_panics(&index)?;
    assert!(
        open::sled_panics_on(&index)?,
        "the saved index no longer makes sled panic: this test would check nothing"
    );
    assert_rebuilt(dir.path(), &before).await?;
    assert_eq!(asides(dir.path())?, 1);
    Ok(())
}

/// Finding 5: a truncated index, cut so short that sled finds nothing
/// (moved aside) or in the middle (sled keeps a prefix; the manifests give
/// the rest back).
#[tokio::test]
async fn truncated_index_is_rebuilt() -> Result<()> {
    for keep_half in [false, true] {
        let dir = tempfile::tempdir()?;
        let before = filled(dir.path()).await?;
        let db = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("index/db"))?;
        let len = db.metadata()?.len();
        db.set_len(if keep_half { len / 2 } else { 64 })?;
        drop(db);
        assert_rebuilt(dir.path(), &before).await?;
        if !keep_half {
            assert_eq!(asides(dir.path())?, 1);
        }
    }
    Ok(())
}

/// Finding 6: a damaged file is refused and the message marked for
/// refetch (POP3: its unique-id forgotten).
#[tokio::test]
async fn damaged_file_marks_for_refetch() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let before = filled(dir.path()).await?;
    let store = Store::open(dir.path())?;
    let (id, raw) = &before[0];
    let rec = store.record(id)?.context("record")?;
    let sub = dir.path().join("messages").join(&rec.hash[..2]);
    let file = std::fs::read_dir(&sub)?
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with(&rec.hash))
        .context("the file")?;
    let mut bytes = std::fs::read(file.path())?;
    let last = bytes.len() - 3;
    bytes[last] ^= 1;
    std::fs::write(file.path(), &bytes)?;
    let err = store.message(id, &rec).await.err().context("refused")?;
    let damaged = err.downcast_ref::<Damaged>().context("typed")?;
    assert_eq!(damaged.path, file.path());
    assert!(store.record(id)?.is_none(), "record removed for refetch");
    assert!(
        !store.pop3_entries("p")?.contains_key("u1"),
        "UIDL forgotten"
    );
    assert!(store.pop3_entries("p")?.contains_key("u2"));
    // The next download stores it again, right.
    let inbox = store.folder("p", "INBOX")?.context("inbox")?;
    let again = store
        .pop3_store("p", &inbox, vec![("u1".into(), pop3_message(1))])
        .await?;
    let rec = store.record(&again[0])?.context("record")?;
    assert_eq!(&store.message(&again[0], &rec).await?, raw);
    assert_eq!(again[0].uid, 3, "POP3 UIDs are never given twice");
    // IMAP: the record goes, the folder's state stays (the engine refetches
    // server UIDs below the mark that are not stored).
    let (iid, _) = &before[2];
    let irec = store.record(iid)?.context("imap record")?;
    std::fs::remove_file(
        dir.path()
            .join("messages")
            .join(&irec.hash[..2])
            .join(format!("{}.eml", irec.hash)),
    )?;
    let state_before = store.folder("i", "Work")?.and_then(|f| f.state);
    assert!(store.message(iid, &irec).await.is_err());
    assert!(
        store.record(iid)?.is_none(),
        "IMAP record removed for refetch"
    );
    assert_eq!(
        store.folder("i", "Work")?.and_then(|f| f.state),
        state_before
    );
    Ok(())
}

/// The manifest rewritten at open keeps everything: messages, the unique-ids
/// still known (not the forgotten ones) and the highest UID given, across a
/// reopen and a rebuild from the manifest alone.
#[tokio::test]
async fn compaction_at_open_keeps_everything() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("manifests/p.log");
    let store = Store::open(dir.path())?;
    let inbox = store.upsert_folder("p", "INBOX", "INBOX", None, Some("inbox".into()), true)?;
    let batch = (1..=20)
        .map(|n| (format!("u{n}"), pop3_message(n)))
        .collect();
    let ids = store.pop3_store("p", &inbox, batch).await?;
    assert_eq!(ids.len(), 20);
    let inbox = store.folder("p", "INBOX")?.context("inbox")?;
    store
        .remove_uids("p", inbox.no, &(3..=20).collect::<Vec<_>>())
        .await?;
    // u2 is forgotten while its message stays.
    let forget: Vec<String> = (2..=20).map(|n| format!("u{n}")).collect();
    store.pop3_forget("p", &forget).await?;
    let lines = |p: &Path| -> Result<usize> { Ok(std::fs::read_to_string(p)?.lines().count()) };
    let long = lines(&log)?;
    drop(store);
    for rebuild in [false, true] {
        if rebuild {
            std::fs::remove_dir_all(dir.path().join("index"))?;
        }
        let store = Store::open(dir.path())?;
        assert!(lines(&log)? < long, "compacted");
        assert_eq!(store.counts("p", None)?.0, 2);
        for id in &ids[..2] {
            let rec = store.record(id)?.context("record kept")?;
            store.message(id, &rec).await?;
        }
        assert_eq!(
            store.pop3_entries("p")?.keys().collect::<Vec<_>>(),
            vec!["u1"]
        );
        let inbox = store.folder("p", "INBOX")?.context("inbox")?;
        assert_eq!(
            inbox.state.map(|s| s.uidnext),
            Some(21),
            "UIDs not given again"
        );
    }
    Ok(())
}

/// Finding 2: a disk fault is never taken for corruption.
#[test]
fn disk_faults_are_not_corruption() {
    let full = anyhow::Error::new(std::io::Error::from_raw_os_error(28));
    assert_eq!(disk_condition(&full), Some(DiskCondition::Full));
    let why = Unavailable::new(DiskCondition::Full, Path::new("/d"), &full);
    assert!(why.is_disk_full());
    // The typed error classifies through an anyhow chain too.
    let e = anyhow::Error::new(why).context("listing");
    assert_eq!(disk_condition(&e), None, "Unavailable is found by type");
    assert!(e.downcast_ref::<Unavailable>().is_some());
}

/// A write that lands after the account was removed (a cancelled engine's
/// batch still running in `spawn_blocking`) is refused, leaves no record,
/// folder or manifest behind; [`Store::revive`] lets a new account with the
/// same id write again.
#[tokio::test]
async fn writes_after_remove_account_are_refused_until_revived() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let inbox = store.upsert_folder("p", "INBOX", "INBOX", None, Some("inbox".into()), true)?;
    store
        .pop3_store("p", &inbox, vec![("u1".into(), pop3_message(1))])
        .await?;
    store.remove_account("p").await?;
    let late = store
        .pop3_store("p", &inbox, vec![("u2".into(), pop3_message(2))])
        .await;
    assert!(late.is_err(), "a write after the removal was accepted");
    assert!(store
        .upsert_folder("p", "INBOX", "INBOX", None, None, true)
        .is_err());
    assert!(store.folders("p")?.is_empty());
    assert_eq!(store.counts("p", None)?.0, 0);
    assert!(store.pop3_entries("p")?.is_empty());
    assert!(!store.manifest_path("p").exists());
    // Other accounts are not affected.
    store.upsert_folder("q", "INBOX", "INBOX", None, None, true)?;
    store.revive("p");
    let inbox = store.upsert_folder("p", "INBOX", "INBOX", None, Some("inbox".into()), true)?;
    let ids = store
        .pop3_store("p", &inbox, vec![("u3".into(), pop3_message(3))])
        .await?;
    assert_eq!(ids.len(), 1);
    Ok(())
}

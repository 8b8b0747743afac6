//! Tests of messages, folders and the unified index.

use super::*;

fn msg(uid: u32, date: &str, seen: bool) -> NewMessage {
    NewMessage {
        uid,
        flags: Flags(if seen { Flags::SEEN } else { 0 }),
        keywords: Vec::new(),
        raw: format!(
            "Date: {date}\r\nSubject: m{uid}\r\nFrom: a@example.org\r\n\r\nbody {uid}\r\n"
        )
        .into_bytes(),
        internal_date: 0,
    }
}

#[test]
fn ids_round_trip() {
    let id = MessageId {
        account: "a_b".into(),
        folder: 7,
        uidvalidity: 9,
        uid: 42,
    };
    assert_eq!(id.to_string(), "a_b.7.9.42");
    assert_eq!("a_b.7.9.42".parse::<MessageId>(), Ok(id));
    for bad in ["", "a.b.c", "A.1.2.3", "a.1.2", "a.x.2.3", "a/b.1.2.3"] {
        assert!(bad.parse::<MessageId>().is_err(), "{bad}");
    }
}

#[test]
fn inverted_dates_sort_newest_first() {
    let mut d = [5i64, -3, 0, 1_700_000_000, i64::MIN, i64::MAX];
    let mut keys: Vec<_> = d.iter().map(|x| inverted(*x)).collect();
    keys.sort();
    d.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, d.iter().map(|x| inverted(*x)).collect::<Vec<_>>());
}

#[tokio::test]
async fn batch_list_flags_remove() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let f = store.upsert_folder("a", "INBOX", "INBOX", Some("/".into()), None, true)?;
    let state = FolderState {
        uidvalidity: 7,
        uidnext: 4,
        highestmodseq: 0,
    };
    let ids = store
        .store_batch(
            "a",
            &f,
            vec![
                msg(1, "Mon, 1 Jan 2024 00:00:00 +0000", true),
                msg(2, "Mon, 1 Jan 2024 00:00:00 +0000", false),
                msg(3, "Tue, 2 Jan 2024 00:00:00 +0000", false),
            ],
            Some(state),
        )
        .await?;
    assert_eq!(ids.len(), 3);
    // A second copy of the same batch is not stored twice.
    let again = store
        .store_batch(
            "a",
            &f,
            vec![msg(3, "Tue, 2 Jan 2024 00:00:00 +0000", false)],
            None,
        )
        .await?;
    assert!(again.is_empty());
    assert_eq!(
        store.folder("a", "INBOX")?.and_then(|f| f.state),
        Some(state)
    );
    assert_eq!(store.counts("a", None)?, (3, 2));
    let listed = store.list_folder("a", &f, 0, 10)?;
    assert_eq!(listed.first().map(|s| s.id.uid), Some(3), "newest first");
    let unified = store.list_unified(|_| true, 1, 1)?;
    assert_eq!(unified.len(), 1);
    assert!(store.list_unified(|_| false, 0, 10)?.is_empty());

    let id = &ids[0];
    let rec = store.record(id)?.context("record")?;
    assert!(store.raw(&rec)?.starts_with(b"Date: Mon, 1 Jan 2024"));
    store
        .set_flags("a", &f, &[(2, Flags(Flags::SEEN), Vec::new())], None)
        .await?;
    assert_eq!(store.counts("a", None)?, (3, 1));
    assert_eq!(store.remove_uids("a", f.no, &[1, 99]).await?.len(), 1);
    assert!(store.record(id)?.is_none());
    assert!(
        store.raw(&rec).is_err(),
        "the file of a removed message goes too"
    );
    store.clear_folder("a", &f, false).await?;
    assert_eq!(store.counts("a", None)?, (0, 0));
    assert_eq!(store.folder("a", "INBOX")?.and_then(|f| f.state), None);
    Ok(())
}

#[tokio::test]
async fn shared_files_survive_one_owner() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let fa = store.upsert_folder("a", "INBOX", "INBOX", None, None, true)?;
    let fb = store.upsert_folder("b", "INBOX", "INBOX", None, None, true)?;
    let same = || msg(1, "Mon, 1 Jan 2024 00:00:00 +0000", false);
    let ia = store.store_batch("a", &fa, vec![same()], None).await?;
    store.store_batch("b", &fb, vec![same()], None).await?;
    let rec = store.record(&ia[0])?.context("record")?;
    store.remove_account("b").await?;
    assert!(store.raw(&rec).is_ok(), "still used by account a");
    store.remove_account("a").await?;
    assert!(store.raw(&rec).is_err());
    Ok(())
}

/// A file whose last reference went is not deleted when another account
/// stored the same content before the deletion ran (the window between
/// one account's index commit and its file removal).
#[tokio::test]
async fn an_orphan_taken_again_meanwhile_keeps_its_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let fa = store.upsert_folder("a", "INBOX", "INBOX", None, None, true)?;
    let fb = store.upsert_folder("b", "INBOX", "INBOX", None, None, true)?;
    let same = || msg(1, "Mon, 1 Jan 2024 00:00:00 +0000", false);
    store.store_batch("a", &fa, vec![same()], None).await?;
    // Account a's removal commits: the file is now an orphan…
    let (removed, orphans) = store.remove_uids_blocking("a", fa.no, &[1])?;
    assert_eq!((removed.len(), orphans.len()), (1, 1));
    // …when account b stores the same content, reusing the file…
    let ib = store.store_batch("b", &fb, vec![same()], None).await?;
    // …and only then a's deletion of orphans runs.
    store.remove_orphans_blocking(&orphans);
    let rec = store.record(&ib[0])?.context("record of b")?;
    assert_eq!(store.raw(&rec)?, same().raw, "b's message is still served");
    Ok(())
}

/// A file left torn under its final name (a crash between rename and
/// sync) is not taken as the stored copy of the same content: it is
/// quarantined and written again.
#[tokio::test]
async fn a_torn_file_is_written_again_not_reused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let f = store.upsert_folder("a", "INBOX", "INBOX", None, None, true)?;
    let m = msg(1, "Mon, 1 Jan 2024 00:00:00 +0000", false);
    let hash = blobs::hash(&m.raw);
    let sub = dir.path().join("messages").join(&hash[..2]);
    std::fs::create_dir_all(&sub)?;
    std::fs::write(sub.join(format!("{hash}.eml")), &m.raw[..10])?;
    let ids = store.store_batch("a", &f, vec![m], None).await?;
    let rec = store.record(&ids[0])?.context("record")?;
    assert_eq!(
        store.raw(&rec)?,
        msg(1, "Mon, 1 Jan 2024 00:00:00 +0000", false).raw
    );
    assert!(
        dir.path().join("quarantine").read_dir()?.count() >= 1,
        "the torn file is kept in quarantine"
    );
    Ok(())
}

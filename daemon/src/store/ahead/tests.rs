//! Tests of a message stored ahead of its folder's sync.

use super::super::{Flags, FolderState, NewMessage, Store};
use anyhow::Result;

fn copy(uid: u32) -> NewMessage {
    NewMessage {
        uid,
        flags: Flags(Flags::SEEN),
        keywords: Vec::new(),
        raw: format!(
            "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: sent {uid}\r\n\
             Message-ID: <{uid}@example.org>\r\n\r\nbody\r\n"
        )
        .into_bytes(),
        internal_date: 0,
    }
}

#[tokio::test]
async fn only_into_a_synced_folder_of_the_same_uidvalidity_and_the_mark_stays() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let f = store.upsert_folder(
        "a",
        "Sent",
        "Sent",
        Some("/".into()),
        Some("sent".into()),
        true,
    )?;
    // Unknown folder, or one never synced: left to the sync.
    assert!(store
        .store_ahead("a", "Nowhere", 7, copy(3))
        .await?
        .is_none());
    assert!(store.store_ahead("a", "Sent", 7, copy(3)).await?.is_none());
    let state = FolderState {
        uidvalidity: 7,
        uidnext: 3,
        highestmodseq: 0,
    };
    store.set_folder_state("a", &f, state).await?;
    // Another UIDVALIDITY: the UID means nothing here.
    assert!(store.store_ahead("a", "Sent", 8, copy(5)).await?.is_none());
    assert_eq!(store.uids("a", f.no)?.len(), 0);

    let (folder, id) = store
        .store_ahead("a", "Sent", 7, copy(5))
        .await?
        .expect("stored into the synced folder");
    assert_eq!(folder.no, f.no);
    let id = id.expect("a new message");
    assert_eq!((id.uidvalidity, id.uid), (7, 5));
    let record = store.record(&id)?.expect("the record is there");
    assert!(record.flags.has(Flags::SEEN));
    assert_eq!(record.meta.subject, "sent 5");
    // The folder's mark still covers only what a sync fetched: UIDs 3
    // and 4 are still to be fetched.
    assert_eq!(
        store.folder("a", "Sent")?.and_then(|f| f.state),
        Some(state)
    );
    assert_eq!(store.uids("a", f.no)?.len(), 1);
    // Stored again (a sync that was faster): the same record, once.
    let (_, again) = store
        .store_ahead("a", "Sent", 7, copy(5))
        .await?
        .expect("the folder is still synced");
    assert!(again.is_none());
    assert_eq!(store.uids("a", f.no)?.len(), 1);
    Ok(())
}

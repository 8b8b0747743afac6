//! Tests of the Mail facade: refusals change nothing, changes reach the
//! store, the journal and the events loop.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use tokio::sync::mpsc;

use super::{Failed, Mail, Refused};
use crate::accounts::{Given, Input, Registry};
use crate::store::{Change, Flags, FolderState, MessageId, NewMessage, Store};
use crate::sync::Scheduler;

struct Fixture {
    _dir: tempfile::TempDir,
    mail: Mail,
    store: Store,
    events: mpsc::UnboundedReceiver<crate::sync::events::Event>,
    imap: String,
    pop: String,
}

fn input(email: &str, protocol: &str) -> Input {
    [
        ("email", email),
        ("incoming-host", "mail.example.org"),
        ("incoming-password", "pw"),
        ("incoming-protocol", protocol),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Given::Str(v.to_owned())))
    .collect()
}

async fn fixture() -> Result<Fixture> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("data"))?;
    let registry = Arc::new(Registry::load(&dir.path().join("config"))?);
    let create = |d: &Input| -> Result<String> {
        let (a, _) = registry
            .create(d)
            .map_err(|e| anyhow::anyhow!("create: {e:?}"))?;
        Ok(a.id.clone())
    };
    let imap = create(&input("alice@example.org", "imap"))?;
    let pop = create(&input("bob@example.org", "pop3"))?;
    let (tx, events) = mpsc::unbounded_channel();
    let scheduler = Arc::new(Scheduler::new(store.clone(), tx));
    let inbox = store.upsert_folder(&imap, "INBOX", "INBOX", Some(".".into()), None, true)?;
    store.upsert_folder(&imap, "Sent", "Sent", Some(".".into()), None, true)?;
    store.upsert_folder(
        &imap,
        "Work.&AMk-t&AOk-",
        "Work.Été",
        Some(".".into()),
        None,
        true,
    )?;
    let messages = (1..=3)
        .map(|uid| NewMessage {
            uid,
            flags: Flags::default(),
            keywords: Vec::new(),
            raw: format!("Subject: s{uid}\r\n\r\nb\r\n").into_bytes(),
            internal_date: i64::from(uid),
        })
        .collect();
    let state = FolderState {
        uidvalidity: 5,
        uidnext: 4,
        highestmodseq: 0,
    };
    store
        .store_batch(&imap, &inbox, messages, Some(state))
        .await?;
    store.upsert_folder(&pop, "INBOX", "INBOX", None, Some("inbox".into()), true)?;
    Ok(Fixture {
        mail: Mail::new(registry, store.clone(), scheduler),
        store,
        events,
        imap,
        pop,
        _dir: dir,
    })
}

fn ids(f: &Fixture, uids: &[u32]) -> Result<Vec<String>> {
    let inbox = f.store.folder(&f.imap, "INBOX")?.context("inbox")?;
    Ok(uids
        .iter()
        .map(|uid| {
            MessageId {
                account: f.imap.clone(),
                folder: inbox.no,
                uidvalidity: 5,
                uid: *uid,
            }
            .to_string()
        })
        .collect())
}

/// A refusal of either kind of result.
trait Refusal {
    fn refusal(self) -> Option<Refused>;
}

impl Refusal for Refused {
    fn refusal(self) -> Option<Refused> {
        Some(self)
    }
}

impl Refusal for Failed {
    fn refusal(self) -> Option<Refused> {
        // A refusal did nothing before it.
        let nothing = self.done.effects.added.is_empty()
            && self.done.effects.changed.is_empty()
            && self.done.effects.removed.is_empty()
            && self.done.replay.is_empty();
        nothing.then_some(self.error)
    }
}

/// The refusal is the one wanted (and did nothing).
fn check<T, E: Refusal>(r: Result<T, E>, want: &str) -> Result<()> {
    let r = match r {
        Ok(_) => Ok(()),
        Err(e) => e.refusal().map_or(Ok(()), Err),
    };
    match (r, want) {
        (Err(Refused::Invalid(_)), "invalid")
        | (Err(Refused::NotFound(_)), "notfound")
        | (Err(Refused::NotSupported(_)), "notsupported")
        | (Err(Refused::AlreadyExists(_)), "exists") => Ok(()),
        (other, _) => Err(anyhow::anyhow!("expected {want}, got {other:?}")),
    }
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| (*x).to_owned()).collect()
}

#[tokio::test]
async fn refusals_change_nothing() -> Result<()> {
    let f = fixture().await?;
    let mut good = ids(&f, &[1, 2])?;
    check(
        f.mail.set_flags(&good, &strings(&["a b"]), &[]).await,
        "invalid",
    )?;
    check(
        f.mail.set_flags(&good, &strings(&["\\Recent"]), &[]).await,
        "invalid",
    )?;
    check(
        f.mail
            .set_flags(&good, &strings(&["seen"]), &strings(&["\\SEEN"]))
            .await,
        "invalid",
    )?;
    good.push("not-an-id".into());
    check(
        f.mail.set_flags(&good, &strings(&["seen"]), &[]).await,
        "invalid",
    )?;
    good.pop();
    good.push(ids(&f, &[99])?.remove(0));
    check(
        f.mail.set_flags(&good, &strings(&["seen"]), &[]).await,
        "notfound",
    )?;
    check(
        f.mail.move_messages(&good, &f.imap, "Sent", false).await,
        "notfound",
    )?;
    good.pop();
    check(
        f.mail.move_messages(&good, &f.imap, "Nowhere", false).await,
        "notfound",
    )?;
    check(
        f.mail.move_messages(&good, "nobody", "INBOX", false).await,
        "notfound",
    )?;
    check(f.mail.create_folder(&f.imap, "Sent").await, "exists")?;
    check(f.mail.create_folder(&f.imap, "a//b").await, "invalid")?;
    check(f.mail.delete_folder(&f.imap, "inbox").await, "notsupported")?;
    check(
        f.mail.rename_folder(&f.imap, "INBOX", "X").await,
        "notsupported",
    )?;
    check(f.mail.rename_folder(&f.imap, "Nope", "X").await, "notfound")?;
    check(
        f.mail.rename_folder(&f.imap, "Sent", "Work/Été").await,
        "exists",
    )?;
    check(
        f.mail.rename_folder(&f.imap, "Sent", "Sent").await,
        "invalid",
    )?;
    check(f.mail.summaries(&strings(&["x"])).await, "invalid")?;
    // Nothing changed.
    assert_eq!(f.store.pending_count(&f.imap)?, 0);
    assert_eq!(f.store.counts(&f.imap, None)?, (3, 3));
    assert_eq!(f.store.folders(&f.imap)?.len(), 3);
    Ok(())
}

#[tokio::test]
async fn changes_are_stored_journaled_and_announced() -> Result<()> {
    let mut f = fixture().await?;
    let all = ids(&f, &[1, 2, 3])?;
    let done = f
        .mail
        .set_flags(&all[..2], &strings(&["Seen", "$Junk"]), &[])
        .await?;
    assert_eq!(done.effects.changed.len(), 2);
    assert_eq!(f.store.counts(&f.imap, None)?, (3, 1));
    assert_eq!(f.store.pending_count(&f.imap)?, 2);
    // The facade neither kicks nor recounts: the service announces first,
    // then replays what `done.replay` names.
    assert_eq!(done.replay, vec![f.imap.clone()]);
    assert!(
        f.events.try_recv().is_err(),
        "nothing announced by the facade"
    );

    // A move by `/` name into the server's spelling.
    let e = f
        .mail
        .move_messages(&all[2..], &f.imap, "Work/Été", false)
        .await?
        .effects;
    let work = f
        .store
        .folder(&f.imap, "Work.&AMk-t&AOk-")?
        .context("work")?;
    assert_eq!(e.added[0].folder, work.no);
    // The placeholder cannot be moved again.
    let ph = e.added[0].to_string();
    check(
        f.mail
            .move_messages(std::slice::from_ref(&ph), &f.imap, "Sent", false)
            .await,
        "notsupported",
    )?;
    // Summaries in order, unknown ones left out.
    let mut asked = vec![ph.clone(), all[2].clone(), all[0].clone()];
    let s = f.mail.summaries(&asked).await?;
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].id.to_string(), ph);
    assert_eq!(s[0].folder, "Work.Été");
    assert_eq!(s[1].id.to_string(), all[0]);
    asked.clear();

    // Into the POP3 account: stored there at once, expunged at the source.
    let done = f
        .mail
        .move_messages(&all[..1], &f.pop, "inbox", false)
        .await?;
    assert_eq!(done.effects.added[0].account, f.pop);
    assert_eq!(done.replay, vec![f.imap.clone()], "POP3 keeps no journal");
    assert!(f.store.journal(&f.pop)?.is_empty());
    assert!(matches!(
        f.store.journal(&f.imap)?.last().map(|e| &e.change),
        Some(Change::Expunge { uid: 1, .. })
    ));

    // Folders: created with the server's delimiter, renamed with children,
    // deleted.
    f.mail.create_folder(&f.imap, "Projects/2025").await?;
    assert!(f.store.folder(&f.imap, "Projects.2025")?.is_some());
    f.mail.create_folder(&f.imap, "Projects").await?;
    f.mail.rename_folder(&f.imap, "Projects", "Done").await?;
    assert!(f.store.folder(&f.imap, "Done.2025")?.is_some());
    assert!(f.store.folder(&f.imap, "Projects")?.is_none());
    let deleted_no = f.store.folder(&f.imap, "Done.2025")?.map(|d| d.no);
    f.mail.delete_folder(&f.imap, "Done/2025").await?;
    assert!(f.store.folder(&f.imap, "Done.2025")?.is_none());
    let names: Vec<Change> = f
        .store
        .journal(&f.imap)?
        .into_iter()
        .map(|e| e.change)
        .filter(|c| {
            matches!(
                c,
                Change::CreateFolder { .. }
                    | Change::RenameFolder { .. }
                    | Change::DeleteFolder { .. }
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            Change::CreateFolder {
                name: "Projects.2025".into()
            },
            Change::CreateFolder {
                name: "Projects".into()
            },
            Change::RenameFolder {
                from: "Projects".into(),
                to: "Done".into()
            },
            Change::DeleteFolder {
                name: "Done.2025".into(),
                no: deleted_no,
            },
        ]
    );
    // POP3 folders are local: no journal.
    f.mail.create_folder(&f.pop, "Kept/Old").await?;
    assert!(f.store.folder(&f.pop, "Kept/Old")?.is_some());
    assert!(f.store.journal(&f.pop)?.is_empty());
    Ok(())
}

#[tokio::test]
async fn one_bad_id_among_two_accounts_changes_nothing() -> Result<()> {
    let f = fixture().await?;
    let pop_inbox = f.store.folder(&f.pop, "INBOX")?.context("pop inbox")?;
    let message = NewMessage {
        uid: 1,
        flags: Flags::default(),
        keywords: Vec::new(),
        raw: b"Subject: p\r\n\r\nb\r\n".to_vec(),
        internal_date: 1,
    };
    let state = FolderState {
        uidvalidity: 1,
        uidnext: 2,
        highestmodseq: 0,
    };
    f.store
        .store_batch(&f.pop, &pop_inbox, vec![message], Some(state))
        .await?;
    let pop_id = MessageId {
        account: f.pop.clone(),
        folder: pop_inbox.no,
        uidvalidity: 1,
        uid: 1,
    }
    .to_string();
    let bad_pop = MessageId {
        account: f.pop.clone(),
        folder: pop_inbox.no,
        uidvalidity: 1,
        uid: 7,
    }
    .to_string();
    let bad_folder = MessageId {
        account: f.imap.clone(),
        folder: 999,
        uidvalidity: 5,
        uid: 1,
    }
    .to_string();
    let good = ids(&f, &[1, 2])?;
    // The bad id last, of the second account; and in a folder that does
    // not exist.
    for bad in [bad_pop, bad_folder] {
        let asked = vec![good[0].clone(), pop_id.clone(), good[1].clone(), bad];
        check(
            f.mail.set_flags(&asked, &strings(&["seen"]), &[]).await,
            "notfound",
        )?;
        check(
            f.mail.move_messages(&asked, &f.imap, "Sent", false).await,
            "notfound",
        )?;
        check(
            f.mail.move_messages(&asked, &f.pop, "INBOX", true).await,
            "notfound",
        )?;
    }
    assert_eq!(f.store.pending_count(&f.imap)?, 0);
    assert_eq!(f.store.counts(&f.imap, None)?, (3, 3));
    assert_eq!(f.store.counts(&f.pop, None)?, (1, 1));
    // The same without the bad id changes both accounts.
    let asked = vec![good[0].clone(), pop_id.clone()];
    let done = f.mail.set_flags(&asked, &strings(&["seen"]), &[]).await?;
    assert_eq!(done.effects.changed.len(), 2);
    assert_eq!(f.store.counts(&f.pop, None)?, (1, 0));
    Ok(())
}

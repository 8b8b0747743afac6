//! # Loading the corpus into the test Dovecot
//!
//! Writes each generated message straight into the users' Maildirs (one
//! file in `cur/`, its size in the name as `S=` and `W=` so Dovecot never
//! stats or reads it to learn the size, its date as the mtime, which Dovecot
//! reports as INTERNALDATE), then `doveadm force-resync` so Dovecot indexes
//! them, then checks with `doveadm mailbox status` that every folder has the
//! count it should. This takes seconds where 10,000 IMAP APPENDs take
//! minutes.
//!
//! Every user gets the same messages: the first user's files are written,
//! the others' are hard links to them (Dovecot never rewrites a Maildir
//! file; a flag change renames the user's own link). So each client under
//! test starts from an identical, untouched mailbox of its own, and no client
//! warms Dovecot's per-user index for the next one.
//!
//! What this module leaves to others: generating the messages
//! ([`crate::corpus`]) and starting Dovecot (the harness).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{bail, ensure, Context as _, Result};
use facteur_tests::dovecot::Dovecot;

use crate::corpus::{Corpus, FOLDERS};

/// How long one doveadm command may take (a resync of a large INBOX).
const DOVEADM_DEADLINE: Duration = Duration::from_secs(600);

/// Where a user's messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Spread over INBOX and [`FOLDERS`], as each message says (IMAP).
    Folders,
    /// All in INBOX (POP3 sees nothing else).
    InboxOnly,
}

/// One Dovecot user to fill.
#[derive(Debug, Clone)]
pub struct Mailbox {
    /// The login.
    pub user: String,
    /// Its password.
    pub password: String,
    /// Where its messages go.
    pub layout: Layout,
}

/// What was loaded.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The sum of the messages' sizes, once (every user has the same).
    pub raw_bytes: u64,
    /// Messages per IMAP folder.
    pub per_folder: BTreeMap<String, u32>,
    /// FNV-1a 64 of every message's bytes in order: the same seed and count
    /// give the same digest on every machine.
    pub digest: u64,
    /// How long generating, writing and indexing took.
    pub seconds: f64,
}

/// The Maildir++ directory of `folder` (`Lists/dev` → `.Lists.dev`).
fn folder_dir(maildir: &Path, folder: &str) -> PathBuf {
    if folder == "INBOX" {
        maildir.to_path_buf()
    } else {
        maildir.join(format!(".{}", folder.replace('/', ".")))
    }
}

/// `doveadm -c <conf> args…`, with a deadline long enough for big mailboxes;
/// its standard output.
pub fn doveadm(dovecot: &Dovecot, args: &[&str]) -> Result<String> {
    let program = facteur_tests::tool("doveadm", "dovecot-core");
    let mut cmd = Command::new(program);
    cmd.arg("-c").arg(dovecot.conf_path()).args(args);
    let out = facteur_tests::run_with_deadline(&mut cmd, None, DOVEADM_DEADLINE);
    if !out.status.success() {
        bail!(
            "doveadm {} failed with {}: {}",
            args.join(" "),
            out.status,
            facteur_tests::text(&out.stderr).trim()
        );
    }
    Ok(facteur_tests::text(&out.stdout))
}

/// Create `dir` and its missing parents up to `stop`, each owned by
/// `uid:gid` with mode 0700 (Dovecot's own mode for mail directories).
fn make_owned_dir(dir: &Path, stop: &Path, uid: u32, gid: u32) -> Result<()> {
    let mut missing = Vec::new();
    let mut d = dir.to_path_buf();
    while d != stop && !d.exists() {
        missing.push(d.clone());
        if !d.pop() {
            break;
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("Cannot create {}", dir.display()))?;
    for d in missing.iter().rev() {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(d, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("Cannot chmod {}", d.display()))?;
        std::os::unix::fs::chown(d, Some(uid), Some(gid))
            .with_context(|| format!("Cannot chown {}", d.display()))?;
    }
    Ok(())
}

/// Fill every mailbox with the corpus, index it and check the counts.
pub fn load(dovecot: &Dovecot, corpus: &Corpus, mailboxes: &[Mailbox]) -> Result<Loaded> {
    let started = Instant::now();
    ensure!(!mailboxes.is_empty(), "No mailbox to load");
    // Dovecot's home/ belongs to the mail user (nobody when we are root).
    let homes = dovecot.dir().join("home");
    let owner = fs::metadata(&homes)
        .with_context(|| format!("Cannot stat Dovecot's {}", homes.display()))?;
    let (uid, gid) = (owner.uid(), owner.gid());

    let mut dirs: Vec<(PathBuf, Layout)> = Vec::new();
    for mb in mailboxes {
        dovecot.add_user(&mb.user, &mb.password);
        let maildir = dovecot.maildir(&mb.user);
        let mut folders = vec!["INBOX"];
        if mb.layout == Layout::Folders {
            folders.extend(FOLDERS.iter().map(|(name, _)| *name));
            let mut args = vec!["mailbox", "create", "-u", &mb.user];
            args.extend(FOLDERS.iter().map(|(name, _)| *name));
            doveadm(dovecot, &args)?;
        }
        for folder in folders {
            let dir = folder_dir(&maildir, folder);
            for sub in ["cur", "new", "tmp"] {
                make_owned_dir(&dir.join(sub), &homes, uid, gid)?;
            }
        }
        dirs.push((maildir, mb.layout));
    }

    let pid = std::process::id();
    let mut raw_bytes = 0u64;
    let mut digest = 0xcbf2_9ce4_8422_2325u64;
    let mut per_folder: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..corpus.count {
        let m = corpus.message(i);
        for &b in &m.raw {
            digest = (digest ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        raw_bytes += m.raw.len() as u64;
        *per_folder.entry(m.folder.to_owned()).or_default() += 1;
        let len = m.raw.len();
        let name = format!("{}.M{i}P{pid}.bench,S={len},W={len}:2,{}", m.date, m.flags);
        let mtime = UNIX_EPOCH + Duration::from_secs(u64::try_from(m.date).unwrap_or(0));
        let mut first: Option<PathBuf> = None;
        for (maildir, layout) in &dirs {
            let folder = match layout {
                Layout::Folders => m.folder,
                Layout::InboxOnly => "INBOX",
            };
            let path = folder_dir(maildir, folder).join("cur").join(&name);
            match &first {
                None => {
                    fs::write(&path, &m.raw)
                        .with_context(|| format!("Cannot write {}", path.display()))?;
                    let f = fs::File::options()
                        .write(true)
                        .open(&path)
                        .with_context(|| format!("Cannot open {}", path.display()))?;
                    f.set_modified(mtime)
                        .with_context(|| format!("Cannot set the mtime of {}", path.display()))?;
                    std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                        .with_context(|| format!("Cannot chown {}", path.display()))?;
                    first = Some(path);
                }
                Some(original) => {
                    fs::hard_link(original, &path).with_context(|| {
                        format!("Cannot link {} to {}", original.display(), path.display())
                    })?;
                }
            }
        }
    }

    for mb in mailboxes {
        doveadm(dovecot, &["force-resync", "-u", &mb.user, "*"])?;
        let expected: BTreeMap<String, u32> = match mb.layout {
            Layout::Folders => per_folder.clone(),
            Layout::InboxOnly => [("INBOX".to_owned(), corpus.count)].into(),
        };
        for (folder, want) in &expected {
            let got = dovecot.status(&mb.user, folder).messages;
            ensure!(
                got == *want,
                "Dovecot sees {got} messages in {folder} of {}, not {want}",
                mb.user
            );
        }
    }
    Ok(Loaded {
        raw_bytes,
        per_folder,
        digest,
        seconds: started.elapsed().as_secs_f64(),
    })
}

//! # Faults of the disk and of the store (issue 13: findings 2–6, 10, 12e)
//!
//! Each test starts its own private bus, Dovecot (POP3) and the real
//! `facteurd`, stores mail, then breaks something under it and checks what
//! a user would see afterwards:
//!
//! - a full disk at start (a small tmpfs mounted over the data dir): the
//!   daemon comes up, keeps its index where it is, shows `error` and
//!   `LastErrorCode` `disk-full` on every account, and syncs on its own once
//!   space is back; a full disk during a sync likewise recovers without a
//!   restart. Mounting needs root (or CAP_SYS_ADMIN): without it these two
//!   tests say so and skip;
//! - garbage at the start and in the middle of the index file, and a
//!   truncated index: the daemon starts (no exit 101), says so, and a POP3
//!   account whose server no longer has the mail (leave-on-server off)
//!   still lists and serves every message byte for byte;
//! - a message file with a flipped bit, swapped for another's, or deleted:
//!   `GetMessage` refuses with `NotFound` naming the file and never returns
//!   wrong bytes; with leave-on-server the next poll fetches it again;
//! - temporary files left by a crash are removed at start, and two
//!   accounts storing the same messages at once both succeed;
//! - a data dir created 0755 by someone else is tightened to 0700.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use facteur_dbus::names;
use facteur_tests::dovecot::{Dovecot, DovecotOptions, ServerTls};
use facteur_tests::*;
use zbus::zvariant::{OwnedValue, Value};

const PASSWORD: &str = "store faults pw";
/// How often the daemon retries an unavailable store in these tests.
const RETRY_MS: &str = "500";

fn dovecot(users: &[&str]) -> Dovecot {
    let d = Dovecot::start(DovecotOptions {
        tls: ServerTls::Off,
        ..DovecotOptions::default()
    });
    for u in users {
        d.add_user(u, PASSWORD);
    }
    d
}

fn daemon<'b>(bus: &'b Bus, data_setup: impl FnOnce(&Path)) -> Facteurd<'b> {
    let mut d = Facteurd::new(bus);
    d.arg("--secret-store")
        .arg("file")
        .env("FACTEUR_STORE_RETRY_MS", RETRY_MS);
    data_setup(&d.data_dir());
    d.launch();
    d
}

fn pop3(dovecot: &Dovecot, user: &str, leave: bool) -> Settings {
    Settings::new()
        .s("name", "POP3")
        .s("email", user)
        .s("incoming-protocol", "pop3")
        .s("incoming-host", LOOPBACK)
        .q("incoming-port", dovecot.pop3_port())
        .s("incoming-security", "none")
        .s("incoming-login", user)
        .s("incoming-password", PASSWORD)
        .b("leave-on-server", leave)
}

/// A message of about `lines` × 80 bytes, unique by `tag` and `n`.
fn message(tag: &str, n: usize, lines: usize) -> Vec<u8> {
    let mut m = format!(
        "From: S <s@example.test>\r\nTo: u@example.test\r\nSubject: {tag} {n}\r\n\
         Message-ID: <{tag}-{n}@example.test>\r\nDate: Mon, 2 Mar 2026 10:00:{:02} +0000\r\n\r\n",
        n % 60
    );
    for l in 0..lines {
        m.push_str(&format!(
            "{tag} {n} line {l:05}: the quick brown fox jumps\r\n"
        ));
    }
    m.into_bytes()
}

fn sync(bus: &Bus, path: &str) -> Result<u32, CallError> {
    bus.call_facteur(path, names::ACCOUNT_INTERFACE, "Sync", &())
        .map(|m| m.body().deserialize::<u32>().expect("Sync returns u"))
}

fn sync_ok(bus: &Bus, d: &Facteurd<'_>, path: &str) -> u32 {
    sync(bus, path).unwrap_or_else(|e| panic!("Sync failed: {e}\n{}", d.log()))
}

/// (id, subject) of the account's INBOX, or nothing if it cannot be listed.
fn inbox(bus: &Bus, path: &str) -> Vec<(String, String)> {
    let Ok(reply) = bus.call_facteur(
        path,
        names::ACCOUNT_INTERFACE,
        "ListMessages",
        &("INBOX", 0u32, 100_000u32),
    ) else {
        return Vec::new();
    };
    let dicts: Vec<HashMap<String, OwnedValue>> = reply
        .body()
        .deserialize()
        .expect("ListMessages returns aa{sv}");
    let s = |d: &HashMap<String, OwnedValue>, k: &str| match d.get(k).map(|v| &**v) {
        Some(Value::Str(s)) => s.to_string(),
        other => panic!("{k}: {other:?}"),
    };
    dicts
        .iter()
        .map(|d| (s(d, "id"), s(d, "subject")))
        .collect()
}

fn get_message(bus: &Bus, id: &str) -> Result<Vec<u8>, CallError> {
    bus.call_facteur(
        names::ROOT_PATH,
        names::MANAGER_INTERFACE,
        "GetMessage",
        &(id,),
    )
    .map(|m| {
        m.body()
            .deserialize::<Vec<u8>>()
            .expect("GetMessage returns ay")
    })
}

/// Subject → bytes as served, for every message of the INBOX.
fn served(bus: &Bus, path: &str) -> HashMap<String, Vec<u8>> {
    inbox(bus, path)
        .into_iter()
        .map(|(id, subject)| {
            let raw = get_message(bus, &id).unwrap_or_else(|e| panic!("GetMessage({id}): {e}"));
            (subject, raw)
        })
        .collect()
}

fn subject_of(raw: &[u8]) -> String {
    text(raw)
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_default()
        .to_owned()
}

fn wait_props(bus: &Bus, d: &Facteurd<'_>, path: &str, what: &str, pred: impl Fn(&Props) -> bool) {
    wait_account(bus, d, path, what, DEADLINE * 2, pred);
}

/// Sync until the INBOX lists `n` messages (the first poll after
/// CreateAccount may already have stored some).
fn synced(bus: &Bus, d: &Facteurd<'_>, path: &str, n: usize) {
    let got = wait_until(DEADLINE, || {
        sync_ok(bus, d, path);
        (inbox(bus, path).len() == n).then_some(())
    });
    got.unwrap_or_else(|| panic!("{path}: not {n} messages\n{}", d.log()));
}

fn asides(data: &Path) -> Vec<PathBuf> {
    fs::read_dir(data)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("index.unreadable-")
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// The SHA-256 (hex) of `raw`: the name of its message file.
fn sha256(raw: &[u8]) -> String {
    let out = run(Command::new("sha256sum").arg("-"), Some(raw));
    assert!(out.status.success(), "sha256sum failed");
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The message file of `raw` in the data dir (`.zst` or `.eml`).
fn message_file(data: &Path, raw: &[u8]) -> PathBuf {
    let h = sha256(raw);
    let dir = data.join("messages").join(&h[..2]);
    ["zst", "eml"]
        .iter()
        .map(|x| dir.join(format!("{h}.{x}")))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no message file for {h} in {}", dir.display()))
}

// ---------------------------------------------------------------------------
// A damaged index (findings 4 and 5)
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum IndexDamage {
    GarbageAtStart,
    GarbageInTheMiddle,
    Truncated,
    /// Damage that makes sled 0.34.7 panic inside its own open (`tried to
    /// serialize Uninitialized`): an index of several segments, reopened a
    /// few times, without its `snap.*` file, one changed byte at the start
    /// of `db`.
    SledPanics,
}

/// Files of a directory (not its subdirectories) copied into `to`.
fn copy_files(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).expect("list the directory") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("file type").is_file() {
            fs::copy(entry.path(), to.join(entry.file_name())).expect("copy a file");
        }
    }
}

/// Whether sled panics opening (a copy of) `index`.
fn sled_panics_on(index: &Path) -> bool {
    let copy = tempfile::tempdir().expect("tempdir");
    copy_files(index, copy.path());
    std::panic::catch_unwind(|| {
        sled::Config::new()
            .path(copy.path())
            .cache_capacity(8 * 1024 * 1024)
            .mode(sled::Mode::LowSpace)
            .open()
            .map(drop)
    })
    .is_err()
}

/// [`damage_once`] until sled panics on the result: how sled's background
/// flushes laid the segments out decides whether one try is enough.
fn damage_so_sled_panics(index: &Path) {
    let pristine = tempfile::tempdir().expect("tempdir");
    copy_files(index, pristine.path());
    for _ in 0..8 {
        for entry in fs::read_dir(index).expect("list the index") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("file type").is_file() {
                fs::remove_file(entry.path()).expect("clear the index");
            }
        }
        copy_files(pristine.path(), index);
        damage_once(index);
        if sled_panics_on(index) {
            return;
        }
    }
    panic!("the damage no longer makes sled panic in 8 tries: this test checks nothing");
}

/// Pad the (closed) index with sled itself to several segments, reopen it
/// a few times, then remove its snapshot and change the first byte.
fn damage_once(index: &Path) {
    let config = || {
        sled::Config::new()
            .path(index)
            .cache_capacity(8 * 1024 * 1024)
            .mode(sled::Mode::LowSpace)
    };
    {
        let db = open_when_free(&config()).expect("open the index with sled");
        let padding = db.open_tree("test-padding").expect("tree");
        for i in 0..9000u32 {
            let value = vec![b'x'; 20 + (i as usize % 97)];
            padding.insert(i.to_be_bytes(), value).expect("insert");
            if i % 300 == 0 {
                db.flush().expect("flush");
            }
        }
        db.flush().expect("flush");
    }
    for round in 0..3u32 {
        let db = open_when_free(&config()).expect("reopen the index with sled");
        let padding = db.open_tree("test-padding").expect("tree");
        for i in 0..200u32 {
            let key = (100_000 * (round + 1) + i).to_be_bytes();
            padding.insert(key, vec![1u8; 100]).expect("insert");
        }
        db.flush().expect("flush");
    }
    for entry in fs::read_dir(index).expect("list the index") {
        let entry = entry.expect("entry");
        if entry.file_name().to_string_lossy().starts_with("snap.") {
            fs::remove_file(entry.path()).expect("remove the snapshot");
        }
    }
    let db = index.join("db");
    let mut bytes = fs::read(&db).expect("read the index file");
    bytes[0] ^= 0xff;
    fs::write(&db, &bytes).expect("write the damaged index file");
}

fn damage_index(data: &Path, how: IndexDamage) {
    if let IndexDamage::SledPanics = how {
        return damage_so_sled_panics(&data.join("index"));
    }
    let db = data.join("index/db");
    let mut bytes = fs::read(&db).expect("read the index file");
    match how {
        IndexDamage::GarbageAtStart | IndexDamage::GarbageInTheMiddle => {
            let from = match how {
                IndexDamage::GarbageAtStart => 0,
                _ => bytes.len() / 2,
            };
            let to = (from + 8192).min(bytes.len());
            for (i, b) in bytes[from..to].iter_mut().enumerate() {
                *b = (i as u8).wrapping_mul(131) ^ 0x5a;
            }
        }
        IndexDamage::Truncated => bytes.truncate(64),
        IndexDamage::SledPanics => unreachable!(),
    }
    fs::write(&db, &bytes).expect("write the damaged index file");
}

/// POP3 with leave-on-server off: once downloaded, the mail exists only
/// here. After the index is damaged, all of it is still listed and served.
fn index_damage_keeps_pop3_mail(how: IndexDamage) {
    let user = "idx@example.test";
    let dovecot = dovecot(&[user]);
    let bus = Bus::start();
    let mut d = daemon(&bus, |_| {});
    let sent: Vec<Vec<u8>> = (0..5).map(|n| message("kept", n, 40)).collect();
    for raw in &sent {
        dovecot.deliver(user, raw);
    }
    let path = bus
        .create_account(&pop3(&dovecot, user, false))
        .unwrap_or_else(|e| panic!("CreateAccount: {e}\n{}", d.log()));
    synced(&bus, &d, &path, 5);
    assert!(
        dovecot.list_uids(user, "INBOX").is_empty(),
        "the server kept mail"
    );
    let before = served(&bus, &path);
    assert_eq!(before.len(), 5);
    let status = d.stop();
    assert!(status.success(), "{status}\n{}", d.log());

    damage_index(&d.data_dir(), how);
    d.launch();
    let after = wait_until(DEADLINE, || {
        let s = served(&bus, &path);
        (s.len() == 5).then_some(s)
    })
    .unwrap_or_else(|| panic!("{how:?}: messages not back after the restart\n{}", d.log()));
    for raw in &sent {
        assert_eq!(
            after.get(&subject_of(raw)),
            Some(raw),
            "{how:?}: bytes differ"
        );
    }
    assert_eq!(after, before);
    let log = d.log();
    if let IndexDamage::SledPanics = how {
        // The panic inside sled is caught (the hook still prints it).
        assert!(
            log.contains("sled panicked while reading it") && log.contains("cannot be read"),
            "{how:?}: the caught panic was not reported:\n{log}"
        );
    } else {
        assert!(
            !log.contains("panicked at"),
            "{how:?}: facteurd panicked:\n{log}"
        );
    }
    let warned_aside = log.contains("cannot be read") && !asides(&d.data_dir()).is_empty();
    let warned_restore = log.contains("restored") && log.contains("from its manifest");
    assert!(
        log.contains("WARN") && (warned_aside || warned_restore),
        "{how:?}: the rebuild was not announced with a warning:\n{log}"
    );
    if !matches!(how, IndexDamage::GarbageInTheMiddle) {
        assert_eq!(
            asides(&d.data_dir()).len(),
            1,
            "{how:?}: index not moved aside\n{log}"
        );
    }
    // Polling again downloads nothing twice.
    assert_eq!(sync_ok(&bus, &d, &path), 0);
    assert_eq!(inbox(&bus, &path).len(), 5);
}

#[test]
fn garbage_at_the_start_of_the_index() {
    index_damage_keeps_pop3_mail(IndexDamage::GarbageAtStart);
}

#[test]
fn garbage_in_the_middle_of_the_index() {
    index_damage_keeps_pop3_mail(IndexDamage::GarbageInTheMiddle);
}

#[test]
fn truncated_index() {
    index_damage_keeps_pop3_mail(IndexDamage::Truncated);
}

/// Finding 4: damage that makes sled panic in its open; facteurd stays up
/// (no exit 101), moves the index aside and rebuilds it.
#[test]
fn index_that_makes_sled_panic() {
    index_damage_keeps_pop3_mail(IndexDamage::SledPanics);
}

// ---------------------------------------------------------------------------
// Damaged message files (finding 6)
// ---------------------------------------------------------------------------

#[test]
fn damaged_message_files_are_refused_and_fetched_again() {
    let user = "files@example.test";
    let dovecot = dovecot(&[user]);
    let bus = Bus::start();
    let d = daemon(&bus, |_| {});
    // Big ones are compressed (.zst), tiny random-looking ones are not.
    let sent: Vec<Vec<u8>> = vec![
        message("flip", 1, 50),
        message("swap", 2, 50),
        message("other", 3, 50),
        message("gone", 4, 1),
    ];
    for raw in &sent {
        dovecot.deliver(user, raw);
    }
    let path = bus
        .create_account(&pop3(&dovecot, user, true))
        .unwrap_or_else(|e| panic!("CreateAccount: {e}\n{}", d.log()));
    synced(&bus, &d, &path, 4);
    let data = d.data_dir();
    let ids: HashMap<String, String> = inbox(&bus, &path)
        .into_iter()
        .map(|(id, s)| (s, id))
        .collect();
    let files: Vec<PathBuf> = sent.iter().map(|r| message_file(&data, r)).collect();

    // A flipped bit, a file swapped for another message's, a deleted file.
    let mut bytes = fs::read(&files[0]).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x04;
    fs::write(&files[0], &bytes).expect("flip a bit");
    fs::copy(&files[2], &files[1]).expect("swap a file");
    fs::remove_file(&files[3]).expect("delete a file");

    for (n, file) in [(0usize, &files[0]), (1, &files[1]), (3, &files[3])] {
        let subject = subject_of(&sent[n]);
        let id = &ids[&subject];
        let err = match get_message(&bus, id) {
            Ok(raw) => panic!("{subject}: served {} bytes from a damaged file", raw.len()),
            Err(e) => e,
        };
        assert_eq!(err.short_name(), "NotFound", "{subject}: {err}");
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        assert!(
            err.to_string().contains(&name),
            "{subject}: error does not name {name}: {err}"
        );
    }
    // The message whose file was copied is untouched and served right.
    assert_eq!(
        get_message(&bus, &ids[&subject_of(&sent[2])]).ok().as_ref(),
        Some(&sent[2])
    );
    // Damaged files are kept aside, never deleted.
    let quarantined = fs::read_dir(data.join("quarantine"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(quarantined, 2, "flipped and swapped files are quarantined");

    // The next poll downloads the three again, and they are served right.
    assert_eq!(sync_ok(&bus, &d, &path), 3, "{}", d.log());
    let now = served(&bus, &path);
    assert_eq!(now.len(), 4);
    for raw in &sent {
        assert_eq!(now.get(&subject_of(raw)), Some(raw), "{}", subject_of(raw));
    }
}

// ---------------------------------------------------------------------------
// Temporary files (finding 10) and modes (12e)
// ---------------------------------------------------------------------------

#[test]
fn leftover_temp_files_go_and_concurrent_accounts_do_not_clash() {
    let (a, b) = ("ta@example.test", "tb@example.test");
    let dovecot = dovecot(&[a, b]);
    let bus = Bus::start();
    let leftovers: Vec<PathBuf> = vec![
        PathBuf::from("messages/ab/.abcdef.4242.tmp"),
        PathBuf::from("messages/0f/.0f00.1.2.deadbeef.tmp"),
    ];
    let d = daemon(&bus, |data| {
        for l in &leftovers {
            let p = data.join(l);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(&p, b"").expect("leftover");
        }
    });
    for l in &leftovers {
        assert!(
            !d.data_dir().join(l).exists(),
            "{} was not removed\n{}",
            l.display(),
            d.log()
        );
    }
    // The same 30 messages in two mailboxes, stored by two accounts at once.
    let sent: Vec<Vec<u8>> = (0..30).map(|n| message("same", n, 30)).collect();
    for raw in &sent {
        dovecot.deliver(a, raw);
        dovecot.deliver(b, raw);
    }
    let pa = bus
        .create_account(&pop3(&dovecot, a, true))
        .expect("account a");
    let pb = bus
        .create_account(&pop3(&dovecot, b, true))
        .expect("account b");
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| sync(&bus, &pa));
        let tb = s.spawn(|| sync(&bus, &pb));
        (ta.join().expect("join"), tb.join().expect("join"))
    });
    // A background poll may have stored some first: count what is listed.
    assert!(ra.is_ok() && rb.is_ok(), "{ra:?} {rb:?}\n{}", d.log());
    assert_eq!(inbox(&bus, &pa).len(), 30);
    assert_eq!(inbox(&bus, &pb).len(), 30);
    let stray = files_named(&d.data_dir().join("messages"), ".tmp");
    assert!(stray.is_empty(), "temporary files left: {stray:?}");
}

fn files_named(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_named(&p, suffix));
        } else if p.to_string_lossy().ends_with(suffix) {
            out.push(p);
        }
    }
    out
}

#[test]
fn open_data_dir_is_tightened_to_0700() {
    let bus = Bus::start();
    let d = daemon(&bus, |data| {
        fs::create_dir_all(data.join("index")).expect("mkdir");
        for p in [data.to_path_buf(), data.join("index")] {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    });
    for sub in ["", "index", "messages", "manifests"] {
        let p = d.data_dir().join(sub);
        assert_eq!(mode(&p) & 0o777, 0o700, "{} is not 0700", p.display());
    }
    assert!(d.log().contains("now private"), "no log line:\n{}", d.log());
}

// ---------------------------------------------------------------------------
// A full disk (findings 2 and 3)
// ---------------------------------------------------------------------------

/// A tmpfs mounted over a directory; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mount, or say why not (the caller skips).
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(dir.to_owned()))
        } else {
            Err(format!(
                "mount -t tmpfs failed ({}); mounting needs root or CAP_SYS_ADMIN",
                text(&out.stderr).trim()
            ))
        }
    }

    /// Fill the file system to the last byte with `filler`.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let path = self.0.join("filler");
        let mut f = fs::File::create(&path).expect("create the filler");
        for chunk in [1 << 20, 4096, 1] {
            let buf = vec![0u8; chunk];
            while f.write_all(&buf).is_ok() {}
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let out = run(
        Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", from.display()))
            .arg(to),
        None,
    );
    assert!(out.status.success(), "cp -a failed: {}", text(&out.stderr));
}

#[test]
fn full_disk_at_start_keeps_the_index_and_recovers() {
    let user = "full@example.test";
    let dovecot = dovecot(&[user]);
    let bus = Bus::start();
    let mut d = daemon(&bus, |_| {});
    for n in 0..3 {
        dovecot.deliver(user, &message("early", n, 20));
    }
    let path = bus
        .create_account(&pop3(&dovecot, user, true))
        .unwrap_or_else(|e| panic!("CreateAccount: {e}\n{}", d.log()));
    synced(&bus, &d, &path, 3);
    assert!(d.stop().success());

    // The same data, now on a small file system filled to the brim.
    let data = d.data_dir();
    let saved = tempfile::tempdir().expect("tempdir");
    copy_tree(&data, saved.path());
    let mount = match Tmpfs::mount(&data, "32m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED full_disk_at_start_keeps_the_index_and_recovers: {why}");
            return;
        }
    };
    copy_tree(saved.path(), &data);
    let filler = mount.fill();
    d.launch();
    wait_props(&bus, &d, &path, "error/disk-full", |p| {
        p.str("State") == "error" && p.str("LastErrorCode") == "disk-full"
    });
    assert!(
        asides(&data).is_empty(),
        "a healthy index was moved aside\n{}",
        d.log()
    );
    assert!(
        d.log().contains("disk is full"),
        "no log line:\n{}",
        d.log()
    );
    assert!(data.join("index/db").exists());

    // Space back: recovers by itself, nothing lost, new mail comes in.
    dovecot.deliver(user, &message("late", 9, 20));
    fs::remove_file(&filler).expect("free space");
    wait_props(&bus, &d, &path, "recovered with 4 messages", |p| {
        p.u32("MessageCount") == 4 && p.str("LastErrorCode").is_empty() && p.str("State") == "idle"
    });
    assert_eq!(served(&bus, &path).len(), 4);
    d.kill();
    drop(mount);
}

#[test]
fn full_disk_during_a_sync_recovers_without_restart() {
    let user = "during@example.test";
    let dovecot = dovecot(&[user]);
    let bus = Bus::start();
    let mut setup = Facteurd::new(&bus);
    let data = setup.data_dir();
    let mount = match Tmpfs::mount(&data, "32m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED full_disk_during_a_sync_recovers_without_restart: {why}");
            return;
        }
    };
    setup
        .arg("--secret-store")
        .arg("file")
        .env("FACTEUR_STORE_RETRY_MS", RETRY_MS);
    setup.launch();
    let d = setup;
    dovecot.deliver(user, &message("first", 1, 20));
    let path = bus
        .create_account(&pop3(&dovecot, user, true))
        .unwrap_or_else(|e| panic!("CreateAccount: {e}\n{}", d.log()));
    synced(&bus, &d, &path, 1);

    let filler = mount.fill();
    for n in 2..5 {
        dovecot.deliver(user, &message("while-full", n, 400));
    }
    let err = sync(&bus, &path).expect_err("a sync on a full disk cannot succeed");
    eprintln!("sync on a full disk: {err}");
    wait_props(&bus, &d, &path, "error/disk-full", |p| {
        p.str("State") == "error" && p.str("LastErrorCode") == "disk-full"
    });
    fs::remove_file(&filler).expect("free space");
    wait_props(&bus, &d, &path, "recovered with 4 messages", |p| {
        p.u32("MessageCount") == 4 && p.str("LastErrorCode").is_empty()
    });
    let now = served(&bus, &path);
    assert_eq!(now.len(), 4);
    for n in 2..5 {
        let raw = message("while-full", n, 400);
        assert_eq!(now.get(&subject_of(&raw)), Some(&raw));
    }
    assert!(asides(&data).is_empty(), "{}", d.log());
    drop(d);
    drop(mount);
}

#[test]
fn damaged_imap_message_is_fetched_again() {
    let user = "imapfix@example.test";
    let dovecot = dovecot(&[user]);
    let bus = Bus::start();
    let d = daemon(&bus, |_| {});
    let settings = Settings::new()
        .s("name", "IMAP")
        .s("email", user)
        .s("incoming-protocol", "imap")
        .s("incoming-host", LOOPBACK)
        .q("incoming-port", dovecot.imap_port())
        .s("incoming-security", "none")
        .s("incoming-login", user)
        .s("incoming-password", PASSWORD);
    let path = bus
        .create_account(&settings)
        .unwrap_or_else(|e| panic!("CreateAccount: {e}\n{}", d.log()));
    let sent: Vec<Vec<u8>> = (1..=3).map(|n| message("imap", n, 50)).collect();
    for raw in &sent {
        dovecot.deliver(user, raw);
    }
    wait_until(DEADLINE, || (inbox(&bus, &path).len() == 3).then_some(()))
        .unwrap_or_else(|| panic!("3 messages not synced\n{}", d.log()));
    let ids: HashMap<String, String> = inbox(&bus, &path)
        .into_iter()
        .map(|(id, s)| (s, id))
        .collect();
    let victim = &sent[0];
    let file = message_file(&d.data_dir(), victim);
    let mut bytes = fs::read(&file).expect("read");
    bytes[10] ^= 0x01;
    fs::write(&file, &bytes).expect("flip a bit");
    let id = &ids[&subject_of(victim)];
    let err = get_message(&bus, id).expect_err("a damaged file is not served");
    assert_eq!(err.short_name(), "NotFound", "{err}");
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    assert!(err.to_string().contains(&name.unwrap_or_default()), "{err}");
    sync_ok(&bus, &d, &path);
    let now = served(&bus, &path);
    assert_eq!(now.len(), 3, "{}", d.log());
    for raw in &sent {
        assert_eq!(now.get(&subject_of(raw)), Some(raw), "{}", subject_of(raw));
    }
}

/// Open with sled, waiting while the lock of a just-stopped facteurd or a
/// just-dropped handle is still held (sled lets go of it a moment after).
fn open_when_free(config: &sled::Config) -> sled::Result<sled::Db> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match config.open() {
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

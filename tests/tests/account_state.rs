//! # Account state that is true when a call returns (issue 8)
//!
//! End to end, against the harness's private bus, a real Dovecot and the
//! real facteurd, what a desktop developer watching one account object sees:
//!
//! - `Sync` on an account whose server port is closed fails, and right
//!   after the error reply the account already reads `offline`, with
//!   `LastError`, `LastErrorCode` `connection-failed` and `NextRetry` in the
//!   future.
//! - A wrong password on Dovecot: `Sync`'s error reply, then
//!   `needs-credentials`, `auth-failed`, `AttentionNeeded`, `NextRetry` 0, a
//!   plain sentence in `LastError`, and no further login attempts; an Update
//!   with the right password brings it to `idle`.
//! - A successful `Sync` (the first one, asked for while the engine is
//!   still connecting): right after its reply, `idle`, `LastSync` set and
//!   the counts there.
//! - `Progress` during a first sync of a few thousand messages: increasing
//!   (done, total) with total > 0, ending at (0, 0).
//! - An Update of name, display name and poll interval does not reconnect.
//!
//! Every wait polls with a deadline; the only fixed waits are the windows
//! in which something must NOT happen (no login attempt, no reconnection).

use std::fs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use facteur_dbus::names;
use facteur_tests::dovecot::{Dovecot, DovecotOptions};
use facteur_tests::*;
use zbus::zvariant::{OwnedValue, Value};

/// The Dovecot user of every test.
const USER: &str = "carol@example.test";
/// Her password.
const PASSWORD: &str = "carol-pw 1";
/// How long a window is watched for something that must not happen.
const QUIET: Duration = Duration::from_secs(5);

fn dovecot() -> Dovecot {
    let dovecot = Dovecot::start(DovecotOptions::default());
    dovecot.add_user(USER, PASSWORD);
    dovecot
}

/// A facteurd trusting the Dovecot's CA, passwords in its file store.
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

fn imap(dovecot: &Dovecot, password: &str) -> Settings {
    Settings::new()
        .s("name", "Carol")
        .s("email", USER)
        .s("incoming-protocol", "imap")
        .s("incoming-host", dovecot.host())
        .q("incoming-port", dovecot.imaps_port())
        .s("incoming-security", "tls")
        .s("incoming-login", USER)
        .s("incoming-password", password)
}

fn create(bus: &Bus, d: &Facteurd<'_>, settings: &Settings) -> String {
    bus.create_account(settings)
        .unwrap_or_else(|e| panic!("CreateAccount failed: {e}\n{}", last_lines(&d.log(), 40)))
}

fn try_sync(bus: &Bus, path: &str) -> Result<u32, CallError> {
    bus.call_facteur(path, names::ACCOUNT_INTERFACE, "Sync", &())
        .map(|r| r.body().deserialize::<u32>().expect("Sync returns u"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Dovecot's log lines about logins of [`USER`]: (successful, refused).
fn logins(dovecot: &Dovecot) -> (usize, usize) {
    let log = dovecot.log();
    let ok = log
        .lines()
        .filter(|l| l.contains("Login: user=<") && l.contains(USER))
        .count();
    let refused = log
        .lines()
        .filter(|l| l.contains("auth failed") && l.contains(USER))
        .count();
    (ok, refused)
}

/// A `(uu)` value.
fn pair(v: &Value<'_>) -> Option<(u32, u32)> {
    let Value::Structure(s) = v else {
        return None;
    };
    match s.fields() {
        [Value::U32(a), Value::U32(b)] => Some((*a, *b)),
        _ => None,
    }
}

/// The values of `property` announced on `path`, in order.
fn announced(signals: &Signals, path: &str, property: &str) -> Vec<OwnedValue> {
    signals
        .all()
        .iter()
        .filter(|s| s.path == path)
        .filter_map(Signal::properties_changed)
        .filter_map(|(_, changed, _)| changed.get(property).cloned())
        .collect()
}

#[test]
fn a_failed_sync_has_set_offline_and_its_error_before_the_reply() {
    let bus = Bus::start();
    let mut d = Facteurd::new(&bus);
    d.arg("--secret-store").arg("file");
    d.launch();
    let path = create(
        &bus,
        &d,
        &Settings::unreachable("dan@example.test").s("incoming-password", "pw"),
    );
    let err = try_sync(&bus, &path).expect_err("nothing listens on the port");
    // Read right after the reply: no waiting.
    let p = bus.account(&path);
    let now = unix_now();
    assert_eq!(p.str("State"), "offline", "after {err}");
    assert!(!p.str("LastError").is_empty(), "LastError is empty after {err}");
    assert_eq!(p.str("LastErrorCode"), "connection-failed");
    assert!(!p.bool("AttentionNeeded"));
    assert!(
        p.u64("NextRetry") > now,
        "NextRetry {} is not after {now}",
        p.u64("NextRetry")
    );
}

#[test]
fn a_wrong_password_waits_for_credentials_and_an_update_fixes_it() {
    let dovecot = dovecot();
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = create(&bus, &d, &imap(&dovecot, "not her password"));
    wait_account(&bus, &d, &path, "needs-credentials", DEADLINE, |p| {
        p.str("State") == "needs-credentials"
    });

    // A user's Sync tries once more, and fails with the state already set.
    let err = try_sync(&bus, &path).expect_err("the password is wrong");
    let p = bus.account(&path);
    assert_eq!(p.str("State"), "needs-credentials", "after {err}");
    assert_eq!(p.str("LastErrorCode"), "auth-failed");
    assert!(p.bool("AttentionNeeded"));
    assert_eq!(p.u64("NextRetry"), 0, "no retry is planned");
    let sentence = p.str("LastError");
    assert!(!sentence.is_empty());

    // No reconnect loop: the refused logins stop. (Dovecot's log process
    // writes a line a moment after the session.)
    let before = wait_until(DEADLINE, || {
        let (_, refused) = logins(&dovecot);
        (refused >= 2).then_some(refused)
    })
    .unwrap_or_else(|| panic!("Dovecot logged fewer than two refused logins:\n{}", dovecot.log()));
    std::thread::sleep(QUIET);
    let (_, after) = logins(&dovecot);
    assert_eq!(
        before, after,
        "facteurd kept trying the refused password:\n{}",
        last_lines(&d.log(), 40)
    );
    let p = bus.account(&path);
    assert_eq!(p.str("State"), "needs-credentials");
    assert_eq!(p.u64("NextRetry"), 0);

    // The right password: the engine runs again and syncs.
    dovecot.deliver(USER, b"Subject: hello\r\nFrom: a@b.test\r\n\r\nbody\r\n");
    bus.update_account(&path, &Settings::new().s("incoming-password", PASSWORD))
        .unwrap_or_else(|e| panic!("Update failed: {e}"));
    let p = wait_account(&bus, &d, &path, "synced", DEADLINE, |p| {
        p.str("State") == "idle" && p.u64("LastSync") > 0 && p.u32("MessageCount") == 1
    });
    assert_eq!(p.str("LastErrorCode"), "");
    assert!(!p.bool("AttentionNeeded"));
    assert!(p.str("LastError").is_empty());

    // Last, as it depends on the protocol's wording: a sentence, no Rust
    // debug text.
    for debug in ["Some(", "None", "code:"] {
        assert!(
            !sentence.contains(debug),
            "LastError has debug text {debug:?}: {sentence}"
        );
    }
}

#[test]
fn a_successful_sync_has_set_idle_and_last_sync_before_the_reply() {
    let dovecot = dovecot();
    for i in 0..3 {
        dovecot.deliver(
            USER,
            format!("Subject: m{i}\r\nFrom: a@b.test\r\n\r\nbody {i}\r\n").as_bytes(),
        );
    }
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = create(&bus, &d, &imap(&dovecot, PASSWORD));
    // Asked for at once, while the engine connects: answered by a pass.
    let new = try_sync(&bus, &path)
        .unwrap_or_else(|e| panic!("Sync failed: {e}\n{}", last_lines(&d.log(), 40)));
    let p = bus.account(&path);
    assert_eq!(p.str("State"), "idle");
    assert!(p.u64("LastSync") > 0);
    assert_eq!(p.str("LastError"), "");
    assert_eq!(p.u32("MessageCount"), 3);
    assert!(new <= 3, "{new} new messages");
    assert_eq!(p.u64("NextRetry"), 0);
    // Nothing runs: no progress to show.
    assert_eq!(pair(p.get("Progress")), Some((0, 0)));
}

/// Put `count` messages in the user's INBOX: one delivered (so Dovecot
/// makes the Maildir, owned by its mail user), the others written straight
/// into `cur/` with that owner, then indexed by Dovecot (seconds, where
/// APPENDs would take minutes).
fn fill_inbox(dovecot: &Dovecot, count: usize) {
    use std::os::unix::fs::MetadataExt as _;
    let filler = "x".repeat(2000);
    let raw = |i: usize| {
        format!(
            "From: sender{i}@example.test\r\nTo: {USER}\r\nSubject: message {i}\r\n\
             Message-ID: <m{i}@example.test>\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n\
             {filler}\r\n"
        )
    };
    dovecot.deliver(USER, raw(0).as_bytes());
    let cur = dovecot.maildir(USER).join("cur");
    let owner = fs::metadata(&cur).expect("Dovecot made the Maildir");
    for i in 1..count {
        let raw = raw(i);
        let file = cur.join(format!("1767225600.M{i}P1.test,S={}:2,", raw.len()));
        fs::write(&file, raw).expect("write a message");
        std::os::unix::fs::chown(&file, Some(owner.uid()), Some(owner.gid()))
            .expect("give the message to Dovecot's mail user");
    }
    dovecot.doveadm_ok(&["force-resync", "-u", USER, "INBOX"], None);
    let status = dovecot.status(USER, "INBOX");
    assert_eq!(status.messages as usize, count, "Dovecot indexed the INBOX");
}

#[test]
fn progress_grows_during_a_first_sync_and_ends_at_zero() {
    const COUNT: u32 = 3000;
    let dovecot = dovecot();
    fill_inbox(&dovecot, COUNT as usize);
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let signals = bus.signals();
    let path = create(&bus, &d, &imap(&dovecot, PASSWORD));
    wait_account(&bus, &d, &path, "synced", Duration::from_secs(300), |p| {
        p.str("State") == "idle" && p.u32("MessageCount") == COUNT
    });
    let p = bus.account(&path);
    assert_eq!(pair(p.get("Progress")), Some((0, 0)));
    let seen: Vec<(u32, u32)> = announced(&signals, &path, "Progress")
        .iter()
        .filter_map(|v| pair(v))
        .collect();
    let during: Vec<(u32, u32)> = seen.iter().copied().filter(|p| *p != (0, 0)).collect();
    assert!(
        during.len() >= 2,
        "fewer than two Progress updates during the pass: {seen:?}"
    );
    assert!(
        during.len() < 100,
        "Progress is announced far too often ({} updates)",
        during.len()
    );
    for w in during.windows(2) {
        assert!(
            w[1].0 >= w[0].0 && w[1].1 >= w[0].1 && w[1] != w[0],
            "Progress does not grow: {seen:?}"
        );
    }
    assert!(during.iter().all(|(done, total)| *total > 0 && done <= total));
    assert_eq!(during.last().map(|p| p.1), Some(COUNT), "{seen:?}");
    assert_eq!(seen.last(), Some(&(0, 0)), "Progress did not end at (0, 0)");
}

#[test]
fn renaming_and_a_new_poll_interval_do_not_reconnect() {
    let dovecot = dovecot();
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = create(&bus, &d, &imap(&dovecot, PASSWORD));
    wait_account(&bus, &d, &path, "synced", DEADLINE, |p| {
        p.str("State") == "idle" && p.u64("LastSync") > 0
    });
    let (logins_before, _) = logins(&dovecot);
    assert!(logins_before >= 1, "Dovecot logged no login");
    let signals = bus.signals();
    bus.update_account(
        &path,
        &Settings::new()
            .s("name", "Carol at work")
            .s("display-name", "Carol C.")
            .u("poll-interval-minutes", 7),
    )
    .unwrap_or_else(|e| panic!("Update failed: {e}"));
    let name = signals.wait_property_changed(&path, "Name");
    assert!(name.is_some(), "the new Name was announced");
    std::thread::sleep(QUIET);
    let states: Vec<String> = announced(&signals, &path, "State")
        .iter()
        .filter_map(|v| match &**v {
            Value::Str(s) => Some(s.as_str().to_owned()),
            _ => None,
        })
        .collect();
    assert!(
        states.is_empty(),
        "the Update changed State (a reconnection): {states:?}\n{}",
        last_lines(&d.log(), 40)
    );
    let (logins_after, _) = logins(&dovecot);
    assert_eq!(
        logins_before, logins_after,
        "the Update logged in again\n{}",
        last_lines(&d.log(), 40)
    );
    let p = bus.account(&path);
    assert_eq!(p.str("State"), "idle");
    assert_eq!(p.u32("PollIntervalMinutes"), 7);
}

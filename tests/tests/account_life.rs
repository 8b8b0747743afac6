//! # An account's life: Delete that always works, Update that restarts only what changed
//!
//! Against a real Dovecot, gnome-keyring and facteurd on a private bus:
//!
//! - `Delete` with the Secret Service collection locked succeeds, and the
//!   account object, its settings file and its stored mail are gone at
//!   once; its passwords follow as soon as the keyring is unlocked; a
//!   restart in between does not bring the account back.
//! - `Update` of `name` only does not reconnect (no new login in Dovecot's
//!   log, `State` never `syncing`); `Update` of the port (and security)
//!   does (a new login).

use std::fs;
use std::time::Duration;

use facteur_dbus::names;
use facteur_tests::dovecot::{Dovecot, DovecotOptions};
use facteur_tests::keyring_unlock::unlock_keyring;
use facteur_tests::*;

const USER: &str = "alice@example.test";
const PASSWORD: &str = "pw-alice-life";

/// A Dovecot with Alice as a user and one message carrying `marker`.
fn dovecot(marker: &str) -> Dovecot {
    let dovecot = Dovecot::start(DovecotOptions::default());
    dovecot.add_user(USER, PASSWORD);
    let raw = format!(
        "From: Bob <bob@example.test>\r\nTo: {USER}\r\nSubject: {marker}\r\n\
         Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <{marker}@example.test>\r\n\r\n\
         Body {marker}\r\n"
    );
    dovecot.deliver(USER, raw.as_bytes());
    dovecot
}

/// A facteurd trusting the Dovecot's CA, trying passwords still to remove
/// every 200 ms; `file_store` keeps passwords in its file instead of the
/// keyring.
fn facteurd<'b>(bus: &'b Bus, dovecot: &Dovecot, file_store: bool) -> Facteurd<'b> {
    let mut d = Facteurd::new(bus);
    d.env(
        "SSL_CERT_FILE",
        dovecot.ca_cert_path().as_os_str().to_owned(),
    )
    .env("SSL_CERT_DIR", "")
    .env("FACTEUR_SECRET_RETRY_MS", "200");
    if file_store {
        d.arg("--secret-store").arg("file");
    }
    d.launch();
    d
}

/// Alice's IMAP account over implicit TLS.
fn alice(dovecot: &Dovecot) -> Settings {
    Settings::new()
        .s("name", "Alice")
        .s("email", USER)
        .s("incoming-protocol", "imap")
        .s("incoming-host", dovecot.host())
        .q("incoming-port", dovecot.imaps_port())
        .s("incoming-security", "tls")
        .s("incoming-login", USER)
        .s("incoming-password", PASSWORD)
}

fn synced(bus: &Bus, d: &Facteurd<'_>, path: &str) -> Props {
    wait_account(bus, d, path, "synced with 1 message", DEADLINE, |p| {
        p.str("State") == "idle" && p.u64("LastSync") > 0 && p.u32("MessageCount") == 1
    })
}

/// Create Alice's account and wait for its first sync; its path, and how
/// many logins Dovecot has logged by then.
fn create_and_sync(bus: &Bus, d: &Facteurd<'_>, dovecot: &Dovecot) -> (String, usize) {
    let start = logins(dovecot);
    let path = bus.create_account(&alice(dovecot)).expect("create");
    synced(bus, d, &path);
    let before = wait_until(DEADLINE, || {
        let n = logins(dovecot);
        (n > start).then_some(n)
    })
    .expect("Dovecot logged Alice's login");
    (path, before)
}

/// How many times Alice logged in to Dovecot so far.
fn logins(dovecot: &Dovecot) -> usize {
    dovecot
        .log()
        .matches(&format!("Login: user=<{USER}>"))
        .count()
}

/// The message files of the daemon (stored compressed or as is; the
/// account under test is the only one, so every file is its).
fn message_files(d: &Facteurd<'_>) -> Vec<std::path::PathBuf> {
    snapshot(&d.data_dir().join("messages"))
        .into_keys()
        .filter(|p| p.extension().is_some_and(|x| x == "zst" || x == "eml"))
        .collect()
}

#[test]
fn delete_with_the_keyring_locked_removes_everything_and_the_passwords_follow() {
    let bus = Bus::start();
    let keyring = Keyring::start(&bus);
    let marker = unique_secret("life-delete-mail");
    let dovecot = dovecot(&marker);
    let mut d = facteurd(&bus, &dovecot, false);
    let path = bus
        .create_account(&alice(&dovecot))
        .unwrap_or_else(|e| panic!("CreateAccount failed: {e}\n{}", d.log()));
    let id = names::account_id(&path)
        .expect("an account path")
        .to_owned();
    synced(&bus, &d, &path);
    assert!(
        !message_files(&d).is_empty(),
        "the message was not stored before the Delete"
    );
    assert_eq!(
        keyring.lookup(&[("account-id", &id), ("service", "incoming")]),
        Some(PASSWORD.to_owned())
    );
    let file = d.accounts_dir().join(format!("{id}.json"));
    assert!(file.is_file());

    keyring.lock(&bus);
    bus.delete_account(&path)
        .unwrap_or_else(|e| panic!("Delete with a locked keyring failed: {e}\n{}", d.log()));

    // Gone at once: the object, the settings file, the mail.
    assert!(bus.list_accounts().is_empty());
    assert!(
        bus.properties(&path, names::ACCOUNT_INTERFACE).is_err(),
        "the account object is still there"
    );
    assert!(!file.exists(), "the settings file is still there");
    assert_eq!(
        message_files(&d),
        Vec::<std::path::PathBuf>::new(),
        "the account's mail is still stored"
    );
    // The passwords wait for the keyring, noted durably.
    let note = d.config_dir().join("secrets-to-remove.json");
    let noted = fs::read_to_string(&note).unwrap_or_default();
    assert!(
        noted.contains(&id),
        "no durable note of the passwords to remove: {noted:?}"
    );

    // A restart (keyring still locked) does not bring the account back.
    d.restart();
    assert!(bus.list_accounts().is_empty(), "the account came back");
    assert!(!file.exists());
    assert!(
        fs::read_to_string(&note).unwrap_or_default().contains(&id),
        "the note was dropped while the keyring is locked"
    );

    // Once the keyring is unlocked, the passwords go.
    unlock_keyring(&bus);
    let gone = wait_until(DEADLINE, || {
        keyring
            .lookup(&[("account-id", &id)])
            .is_none()
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "the deleted account's password is still in the keyring; log:\n{}",
        last_lines(&d.log(), 40)
    );
    let cleared = wait_until(DEADLINE, || (!note.exists()).then_some(()));
    assert!(cleared.is_some(), "the note is still there: {note:?}");
    assert!(bus.list_accounts().is_empty());
    assert!(!d.log().contains(PASSWORD));
}

#[test]
fn a_new_account_never_gets_the_id_of_one_whose_passwords_are_still_to_remove() {
    let bus = Bus::start();
    let keyring = Keyring::start(&bus);
    let marker = unique_secret("life-reuse");
    let dovecot = dovecot(&marker);
    let d = facteurd(&bus, &dovecot, false);
    let first = bus.create_account(&alice(&dovecot)).expect("create");
    keyring.lock(&bus);
    bus.delete_account(&first)
        .expect("Delete with a locked keyring");
    // The same mailbox again, while the old passwords wait.
    let second = bus
        .create_account(&alice(&dovecot))
        .unwrap_or_else(|e| panic!("second CreateAccount failed: {e}\n{}", d.log()));
    assert_ne!(
        first,
        second,
        "the new account took the old id; log:\n{}",
        last_lines(&d.log(), 30)
    );
    unlock_keyring(&bus);
    let old = names::account_id(&first).expect("a path").to_owned();
    let gone = wait_until(DEADLINE, || {
        keyring
            .lookup(&[("account-id", &old)])
            .is_none()
            .then_some(())
    });
    assert!(gone.is_some(), "the old password is still there");
    assert_eq!(bus.list_accounts(), vec![second]);
}

#[test]
fn update_of_the_name_only_does_not_reconnect() {
    let bus = Bus::start();
    let marker = unique_secret("life-rename");
    let dovecot = dovecot(&marker);
    let d = facteurd(&bus, &dovecot, true);
    let (path, before) = create_and_sync(&bus, &d, &dovecot);
    let signals = bus.signals();

    bus.update_account(&path, &Settings::new().s("name", "Alice renamed"))
        .expect("Update of the name");
    signals.wait_property_changed(&path, "Name");
    assert_eq!(bus.account(&path).str("Name"), "Alice renamed");
    // A restart would log in again at once; give it time to show.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        logins(&dovecot),
        before,
        "renaming the account logged in again; facteurd log:\n{}",
        last_lines(&d.log(), 40)
    );
    let syncing = signals.all().iter().any(|s| {
        s.path == path
            && s.properties_changed().is_some_and(|(_, changed, _)| {
                changed
                    .get("State")
                    .is_some_and(|v| v.downcast_ref::<&str>().ok() == Some("syncing"))
            })
    });
    assert!(!syncing, "State went to syncing after a rename");
    assert_eq!(bus.account(&path).str("State"), "idle");
}

#[test]
fn update_of_the_port_reconnects() {
    let bus = Bus::start();
    let marker = unique_secret("life-port");
    let dovecot = dovecot(&marker);
    let d = facteurd(&bus, &dovecot, true);
    let (path, before) = create_and_sync(&bus, &d, &dovecot);

    bus.update_account(
        &path,
        &Settings::new()
            .q("incoming-port", dovecot.imap_port())
            .s("incoming-security", "starttls"),
    )
    .expect("Update of the port");
    let again = wait_until(DEADLINE, || (logins(&dovecot) > before).then_some(()));
    assert!(
        again.is_some(),
        "no new login after the port changed; facteurd log:\n{}",
        last_lines(&d.log(), 40)
    );
    let p = wait_account(&bus, &d, &path, "idle on the new port", DEADLINE, |p| {
        p.str("State") == "idle" && p.u16("IncomingPort") == dovecot.imap_port()
    });
    assert_eq!(p.u32("MessageCount"), 1);
}

#[test]
fn a_new_smtp_password_restarts_nothing_and_a_first_incoming_one_starts_the_engine() {
    let bus = Bus::start();
    let marker = unique_secret("life-passwords");
    let dovecot = dovecot(&marker);
    let d = facteurd(&bus, &dovecot, true);
    // No incoming password: the account waits for one.
    let start = logins(&dovecot);
    let path = bus
        .create_account(&alice(&dovecot).without("incoming-password"))
        .expect("create without a password");
    wait_account(&bus, &d, &path, "needs-credentials", DEADLINE, |p| {
        p.str("State") == "needs-credentials" && p.bool("AttentionNeeded")
    });
    assert_eq!(logins(&dovecot), start, "logged in without a password");

    // Giving it starts the engine with it.
    bus.update_account(&path, &Settings::new().s("incoming-password", PASSWORD))
        .expect("Update with the password");
    synced(&bus, &d, &path);
    let before = wait_until(DEADLINE, || {
        let n = logins(&dovecot);
        (n > start).then_some(n)
    })
    .expect("Dovecot logged Alice's login");

    // A new SMTP password touches no engine.
    let signals = bus.signals();
    bus.update_account(&path, &Settings::new().s("smtp-password", "pw-smtp-only"))
        .expect("Update of the SMTP password");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        logins(&dovecot),
        before,
        "a new SMTP password reconnected the account; facteurd log:\n{}",
        last_lines(&d.log(), 40)
    );
    assert!(
        !signals
            .changed_properties(&path)
            .contains(&"State".to_owned()),
        "State changed after a new SMTP password"
    );
    assert_eq!(bus.account(&path).str("State"), "idle");
    assert!(!d.log().contains(PASSWORD) && !d.log().contains("pw-smtp-only"));
}

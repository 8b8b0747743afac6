//! # Passwords
//!
//! Where passwords go and where they must never be: in gnome-keyring on the
//! private bus (found with `secret-tool`, gone after Delete), otherwise in a
//! 0600 secrets file that a looser mode makes the daemon refuse; never in
//! the settings files, the sled index, the message store, the daemon's log,
//! a property or an error message. A locked keyring or a missing password is
//! the `needs-credentials` state, not a crash.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use facteur_dbus::names;
use facteur_tests::*;

/// Assert that `secret` is nowhere a password must not be.
fn assert_nowhere(bus: &Bus, d: &Facteurd<'_>, path: &str, secret: &str, also_config: bool) {
    let in_data = files_containing(&d.data_dir(), secret);
    assert!(
        in_data.is_empty(),
        "a password is in the data dir: {in_data:?}"
    );
    let in_accounts = files_containing(&d.accounts_dir(), secret);
    assert!(
        in_accounts.is_empty(),
        "a password is in the settings files: {in_accounts:?}"
    );
    if also_config {
        let in_config = files_containing(&d.config_dir(), secret);
        assert!(
            in_config.is_empty(),
            "a password is in the config dir: {in_config:?}"
        );
    }
    let in_home = files_containing(&d.home(), secret);
    assert!(
        in_home.is_empty(),
        "a password is in the daemon's HOME: {in_home:?}"
    );
    assert!(
        !d.log().contains(secret),
        "a password is in the daemon's log:\n{}",
        d.log()
    );
    assert!(!bus.log().contains(secret), "a password is in the bus log");
    let props = bus.account(path);
    assert!(
        !format!("{:?}", props.0).contains(secret),
        "a password is in a property"
    );
}

#[test]
fn keyring_holds_the_passwords_and_nothing_else_does() {
    let bus = Bus::start();
    let keyring = Keyring::start(&bus);
    let mut d = Facteurd::start(&bus);
    let store = bus.manager_property("SecretStore");
    assert_eq!(store.downcast_ref::<&str>().ok(), Some("secret-service"));

    let incoming = unique_secret("in");
    let smtp = unique_secret("out");
    let path = bus
        .create_account(
            &Settings::unreachable("hana@example.org")
                .s("incoming-password", &incoming)
                .s("smtp-password", &smtp),
        )
        .expect("create an account with passwords");
    let id = names::account_id(&path)
        .expect("an account path")
        .to_owned();

    // libsecret-compatible items that secret-tool finds.
    let found = keyring.search(&[("account-id", &id)]);
    assert!(
        found.contains(&incoming),
        "secret-tool does not find the incoming password:\n{found}"
    );
    assert!(
        found.contains(&smtp),
        "secret-tool does not find the SMTP password:\n{found}"
    );
    assert_eq!(
        keyring.lookup(&[
            ("xdg:schema", "org.facteur.Facteur1.Password"),
            ("account-id", &id),
            ("service", "incoming"),
        ]),
        Some(incoming.clone())
    );
    assert_eq!(
        keyring.lookup(&[("account-id", &id), ("service", "smtp")]),
        Some(smtp.clone())
    );
    // The password is usable: any state but needs-credentials (the server
    // is a closed port, so "offline" is likely).
    wait_for_credentials(&bus, &path);
    assert_nowhere(&bus, &d, &path, &incoming, true);
    assert_nowhere(&bus, &d, &path, &smtp, true);
    assert!(
        !d.secrets_file().exists(),
        "a secrets file was written beside a keyring"
    );

    // A new password replaces the old one.
    let newer = unique_secret("in2");
    bus.update_account(&path, &Settings::new().s("incoming-password", &newer))
        .expect("change the password");
    assert_eq!(
        keyring.lookup(&[("account-id", &id), ("service", "incoming")]),
        Some(newer.clone())
    );
    assert!(!keyring.search(&[("account-id", &id)]).contains(&incoming));

    // After a restart the password is read back from the keyring.
    d.restart();
    wait_for_credentials(&bus, &path);
    assert_nowhere(&bus, &d, &path, &newer, true);

    // Delete takes the secrets with it.
    bus.delete_account(&path).expect("delete the account");
    let left = keyring.search(&[("account-id", &id)]);
    assert!(
        !left.contains(&newer) && !left.contains(&smtp) && !left.contains("account-id"),
        "secrets survived Delete:\n{left}"
    );
    assert_eq!(
        keyring.lookup(&[("account-id", &id), ("service", "incoming")]),
        None
    );
}

#[test]
fn an_account_without_password_needs_credentials_until_one_is_set() {
    let bus = Bus::start();
    let keyring = Keyring::start(&bus);
    let _d = Facteurd::start(&bus);
    let path = bus
        .create_account(&Settings::unreachable("ivan@example.org"))
        .expect("create an account without password");
    let p = bus.account(&path);
    assert_eq!(p.str("State"), "needs-credentials");
    assert!(
        !p.str("LastError").is_empty(),
        "needs-credentials without a LastError"
    );

    let signals = bus.signals();
    let pw = unique_secret("late");
    bus.update_account(&path, &Settings::new().s("incoming-password", &pw))
        .expect("set the password");
    let state = signals
        .wait_property_changed(&path, "State")
        .expect("PropertiesChanged carries State");
    assert_ne!(state.downcast_ref::<&str>().ok(), Some("needs-credentials"));
    let p = wait_for_credentials(&bus, &path);
    assert!(
        !p.str("LastError").to_lowercase().contains("password"),
        "LastError still talks about the password: {}",
        p.str("LastError")
    );
    let id = names::account_id(&path).expect("an account path");
    assert_eq!(
        keyring.lookup(&[("account-id", id), ("service", "incoming")]),
        Some(pw)
    );
}

#[test]
fn a_locked_keyring_means_needs_credentials_not_a_crash() {
    let bus = Bus::start();
    let keyring = Keyring::start(&bus);
    let mut d = Facteurd::start(&bus);
    let pw = unique_secret("locked");
    let path = bus
        .create_account(&Settings::unreachable("judy@example.org").s("incoming-password", &pw))
        .expect("create an account");
    let status = d.stop();
    assert_eq!(exit_code(status), 0, "log:\n{}", d.log());

    // Lock the keyring: unlocking needs a prompt, and this bus has no
    // prompter, so gnome-keyring dismisses it at once.
    keyring.lock(&bus);
    d.launch();
    let state = wait_until(DEADLINE, || {
        let p = bus.account(&path);
        (p.str("State") == "needs-credentials").then_some(p)
    });
    let p = state.unwrap_or_else(|| {
        panic!(
            "the account is {:?} with a locked keyring, want needs-credentials; log:\n{}",
            bus.account(&path).str("State"),
            d.log()
        )
    });
    let err = p.str("LastError").to_lowercase();
    assert!(
        err.contains("lock") || err.contains("dismiss"),
        "LastError does not say the keyring is locked: {err}"
    );
    // Still alive and answering, not crash-looping.
    assert!(d.try_wait().is_none(), "facteurd exited; log:\n{}", d.log());
    assert_eq!(bus.list_accounts(), vec![path.clone()]);
    assert!(!d.log().contains(&pw));
}

#[test]
fn without_a_keyring_passwords_go_to_a_0600_file() {
    let bus = Bus::start();
    let mut d = Facteurd::start(&bus);
    let store = bus.manager_property("SecretStore");
    assert_eq!(store.downcast_ref::<&str>().ok(), Some("file"));

    let incoming = unique_secret("filein");
    let smtp = unique_secret("fileout");
    let path = bus
        .create_account(
            &Settings::unreachable("kim@example.org")
                .s("incoming-password", &incoming)
                .s("smtp-password", &smtp),
        )
        .expect("create an account with passwords");
    let file = d.secrets_file();
    assert!(file.is_file(), "no secrets file at {}", file.display());
    assert_eq!(mode(&file), 0o600, "the secrets file is not 0600");
    let content = fs::read_to_string(&file).expect("read the secrets file");
    assert!(content.contains(&incoming) && content.contains(&smtp));
    assert_nowhere(&bus, &d, &path, &incoming, false);
    assert_nowhere(&bus, &d, &path, &smtp, false);
    // Only the secrets file holds it in the config dir.
    assert_eq!(
        files_containing(&d.config_dir(), &incoming),
        vec![file.clone()]
    );
    wait_for_credentials(&bus, &path);
    // The daemon says which store it uses (and that it is a plain file).
    assert!(
        d.log().contains("secrets.json"),
        "the log does not name the secrets file:\n{}",
        d.log()
    );

    d.restart();
    wait_for_credentials(&bus, &path);
    assert_eq!(mode(&file), 0o600);

    bus.delete_account(&path).expect("delete the account");
    let content = fs::read_to_string(&file).unwrap_or_default();
    assert!(
        !content.contains(&incoming) && !content.contains(&smtp),
        "Delete left the passwords in the secrets file"
    );
}

#[test]
fn a_secrets_file_readable_by_others_is_refused() {
    let bus = Bus::start();
    let mut d = Facteurd::start(&bus);
    let pw = unique_secret("loose");
    let path = bus
        .create_account(&Settings::unreachable("lena@example.org").s("incoming-password", &pw))
        .expect("create an account");
    let status = d.stop();
    assert_eq!(exit_code(status), 0, "log:\n{}", d.log());

    let file = d.secrets_file();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod 0644");
    let before = fs::read(&file).expect("read the secrets file");
    d.launch();
    let p = bus.account(&path);
    assert_eq!(
        p.str("State"),
        "needs-credentials",
        "a 0644 secrets file was used"
    );
    let err = p.str("LastError");
    assert!(
        err.contains(&file.display().to_string()),
        "LastError does not name the file: {err}"
    );
    assert!(!err.contains(&pw));
    // Refused, not silently repaired or rewritten.
    assert_eq!(mode(&file), 0o644);
    assert_eq!(fs::read(&file).expect("read"), before);
    assert!(!d.log().contains(&pw));
}

#[test]
fn secret_store_file_can_be_forced_beside_a_keyring() {
    let bus = Bus::start();
    let keyring = Keyring::start(&bus);
    let mut d = Facteurd::new(&bus);
    d.arg("--secret-store").arg("file");
    d.launch();
    let store = bus.manager_property("SecretStore");
    assert_eq!(store.downcast_ref::<&str>().ok(), Some("file"));
    let pw = unique_secret("forced");
    let path = bus
        .create_account(&Settings::unreachable("mia@example.org").s("incoming-password", &pw))
        .expect("create an account");
    let id = names::account_id(&path).expect("an account path");
    assert!(!keyring.search(&[("account-id", id)]).contains(&pw));
    assert!(fs::read_to_string(d.secrets_file())
        .expect("a secrets file")
        .contains(&pw));
}

#[test]
fn secret_store_secret_service_without_one_is_not_silently_a_file() {
    let bus = Bus::start();
    let mut d = Facteurd::new(&bus);
    d.arg("--secret-store").arg("secret-service");
    d.spawn();
    // Either it refuses to start, or it runs and leaves accounts needing
    // credentials; it must never write the password to a file.
    let exited = wait_until(DEADLINE, || {
        if bus.name_has_owner(names::BUS_NAME) {
            return Some(None);
        }
        d.try_wait().map(Some)
    })
    .expect("facteurd neither started nor exited");
    match exited {
        None => {
            let pw = unique_secret("nostore");
            let r = bus.create_account(
                &Settings::unreachable("noa@example.org").s("incoming-password", &pw),
            );
            if let Ok(path) = r {
                assert_eq!(bus.account(&path).str("State"), "needs-credentials");
            }
            assert!(files_containing(&d.config_dir(), &pw).is_empty());
            assert!(!d.secrets_file().exists(), "a secrets file was written");
            assert!(!d.log().contains(&pw));
        }
        Some(status) => assert_ne!(status.code(), Some(0), "log:\n{}", d.log()),
    }
}

#[test]
fn delete_with_a_locked_keyring_is_all_or_nothing() {
    let bus = Bus::start();
    let keyring = Keyring::start(&bus);
    let d = Facteurd::start(&bus);
    let pw = unique_secret("lockdel");
    let path = bus
        .create_account(&Settings::unreachable("ola@example.org").s("incoming-password", &pw))
        .expect("create an account");
    let id = names::account_id(&path)
        .expect("an account path")
        .to_owned();
    let file = d.accounts_dir().join(format!("{id}.json"));
    keyring.lock(&bus);

    match bus.delete_account(&path) {
        // Deleted: the account is gone everywhere (the secret may only be
        // left for the keyring's next unlock if the daemon says so).
        Ok(()) => {
            assert!(bus.list_accounts().is_empty());
            assert!(
                !file.exists(),
                "Delete succeeded but the settings file is still there"
            );
        }
        // Refused: nothing is half-deleted, and the reason is one a person
        // can act on (it names the keyring).
        Err(e) => {
            assert!(e.name.starts_with(names::ERROR_PREFIX), "{e}");
            assert!(
                e.message.to_lowercase().contains("keyring")
                    || e.message.to_lowercase().contains("lock"),
                "{e}"
            );
            assert_eq!(
                bus.list_accounts(),
                vec![path.clone()],
                "refused but half-deleted"
            );
            assert!(file.is_file(), "refused but the settings file is gone");
        }
    }
    assert!(!d.log().contains(&pw));
}

//! # A keyring locked at start does not leave the account dead
//!
//! Against gnome-keyring and facteurd on a private bus: an account whose
//! password cannot be read at start (the keyring locked) shows
//! `needs-credentials` with `keyring-locked`; `Sync` while it is still
//! locked answers an error after the state says why; once the keyring is
//! unlocked, `Sync` reads the password again and starts the engine (the
//! server is unreachable, so the pass fails for the network, not for the
//! password).

use facteur_dbus::names;
use facteur_tests::keyring_unlock::unlock_keyring;
use facteur_tests::*;

fn sync(bus: &Bus, path: &str) -> Result<u32, CallError> {
    bus.call_facteur(path, names::ACCOUNT_INTERFACE, "Sync", &())
        .map(|m| m.body().deserialize::<u32>().unwrap_or(0))
}

#[test]
fn sync_after_the_keyring_is_unlocked_starts_the_engine() {
    let bus = Bus::start();
    let keyring = Keyring::start(&bus);
    let mut d = Facteurd::start(&bus);
    let pw = unique_secret("locked-start");
    let path = bus
        .create_account(&Settings::unreachable("lena@example.org").s("incoming-password", &pw))
        .expect("create an account");
    let status = d.stop();
    assert_eq!(exit_code(status), 0, "log:\n{}", d.log());

    keyring.lock(&bus);
    d.launch();
    wait_account(&bus, &d, &path, "needs-credentials", DEADLINE, |p| {
        p.str("State") == "needs-credentials" && p.str("LastErrorCode") == "keyring-locked"
    });
    let refused = sync(&bus, &path).expect_err("Sync with the keyring still locked");
    assert_eq!(refused.short_name(), "AuthenticationFailed", "{refused}");
    let p = bus.account(&path);
    assert_eq!(p.str("State"), "needs-credentials");
    assert!(!p.str("LastError").is_empty());

    unlock_keyring(&bus);
    let answer = sync(&bus, &path);
    if let Err(e) = &answer {
        // The engine runs now: the pass fails on the unreachable server.
        assert_ne!(e.short_name(), "AuthenticationFailed", "{e}");
    }
    let p = bus.account(&path);
    assert_ne!(
        p.str("State"),
        "needs-credentials",
        "{}",
        last_lines(&d.log(), 40)
    );
    assert_ne!(p.str("LastErrorCode"), "keyring-locked");
    assert!(!d.log().contains(&pw));
}

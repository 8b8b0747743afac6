//! # Unlocking gnome-keyring without a prompter
//!
//! The private bus has no prompter, so the Secret Service's `Unlock`
//! answers with a prompt that is dismissed at once. gnome-keyring's own
//! `UnlockWithMasterPassword` unlocks a collection with its password over a
//! plain session instead, as a login manager would.

use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

use crate::Bus;

/// The login keyring's password ([`crate::Keyring::start`] gives it to
/// `gnome-keyring-daemon --unlock`).
const PASSWORD: &str = "facteur-test-keyring\n";

const SERVICE: &str = "org.freedesktop.secrets";
const ROOT: &str = "/org/freedesktop/secrets";

/// Unlock the default collection again (as logging in to the desktop
/// session would), after [`crate::Keyring::lock`].
pub fn unlock_keyring(bus: &Bus) {
    let conn = bus.connection().clone();
    let unlocked: zbus::Result<()> = bus.block_on(async move {
        let reply = conn
            .call_method(
                Some(SERVICE),
                ROOT,
                Some("org.freedesktop.Secret.Service"),
                "OpenSession",
                &("plain", Value::from("")),
            )
            .await?;
        let (_, session): (OwnedValue, OwnedObjectPath) = reply.body().deserialize()?;
        let reply = conn
            .call_method(
                Some(SERVICE),
                ROOT,
                Some("org.freedesktop.Secret.Service"),
                "ReadAlias",
                &("default",),
            )
            .await?;
        let collection: OwnedObjectPath = reply.body().deserialize()?;
        let secret = (
            session,
            Vec::<u8>::new(),
            PASSWORD.as_bytes().to_vec(),
            "text/plain",
        );
        conn.call_method(
            Some(SERVICE),
            ROOT,
            Some("org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface"),
            "UnlockWithMasterPassword",
            &(collection, secret),
        )
        .await?;
        Ok(())
    });
    if let Err(e) = unlocked {
        panic!("cannot unlock the keyring: {e}");
    }
}

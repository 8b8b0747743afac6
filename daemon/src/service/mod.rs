//! # D-Bus service
//!
//! The objects of the contract: the Manager and the ObjectManager at
//! `/org/facteur/Facteur1` ([`manager`]), one object per account under
//! `/org/facteur/Facteur1/accounts/` ([`account`]). Every failure is turned
//! into the contract's [`Error`] here, at the edge, by the functions below;
//! the modules behind it never build D-Bus errors themselves.

pub mod account;
pub mod manager;

use std::sync::Arc;

use facteur_dbus::{names, Error};
use tracing::error;

use crate::accounts::Change;
use crate::secrets::SecretError;
use crate::Daemon;

/// Serve the ObjectManager, the Manager and every loaded account. Called
/// before the bus name is taken, so a client that sees the name sees them.
pub async fn serve(conn: &zbus::Connection, daemon: &Arc<Daemon>) -> zbus::Result<()> {
    let server = conn.object_server();
    server.at(names::ROOT_PATH, zbus::fdo::ObjectManager).await?;
    server
        .at(names::ROOT_PATH, manager::Manager::new(daemon.clone()))
        .await?;
    for account in daemon.accounts.all() {
        server
            .at(
                names::account_path(&account.id),
                account::AccountObject::new(daemon.clone(), account),
            )
            .await?;
    }
    Ok(())
}

/// Map a refused settings change.
pub fn change_error(e: Change) -> Error {
    match e {
        Change::Invalid(m) => Error::InvalidArgument(m),
        Change::AlreadyExists(m) => Error::AlreadyExists(m),
        Change::Internal(e) => internal(e),
    }
}

/// Map an unexpected failure: logged with its whole chain, answered as
/// `Internal` carrying the chain.
pub fn internal(e: anyhow::Error) -> Error {
    error!("Request failed: {e:#}");
    Error::Internal(format!("{e:#}"))
}

/// Map a secret store failure.
pub fn secret_error(e: SecretError) -> Error {
    match e {
        SecretError::Timeout => Error::Timeout(e.to_string()),
        SecretError::Locked | SecretError::Insecure(..) | SecretError::Store(_) => {
            Error::Internal(e.to_string())
        }
    }
}

/// The answer of a method whose engine has not landed yet: an honest
/// refusal, never a fake result.
pub fn not_yet(what: &str) -> Error {
    Error::NotSupported(format!(
        "{what} is not available in facteurd {} yet",
        env!("CARGO_PKG_VERSION")
    ))
}

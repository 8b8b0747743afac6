//! # D-Bus service
//!
//! The objects of the contract: the Manager and the ObjectManager at
//! `/org/facteur/Facteur1` ([`manager`]), one object per account under
//! `/org/facteur/Facteur1/accounts/` ([`account`]). Every failure is turned
//! into the contract's [`Error`] here, at the edge, by one `From` per
//! internal error type ([`errors`]); the modules behind it never build
//! D-Bus errors themselves. The dictionaries returned are built in
//! [`dicts`], what a change did is announced by [`changes`], property
//! values come from [`status`], and [`tree`] serves the standard interfaces as clients expect
//! them (read-only properties, parent nodes).

pub mod account;
pub mod changes;
pub mod dicts;
pub mod errors;
pub mod events;
pub mod manager;
pub mod status;
pub mod text;
pub mod tree;

pub use dicts::summary_dict;
pub use errors::internal;

use std::collections::HashMap;
use std::sync::Arc;

use facteur_dbus::{names, Error};
use tracing::error;
use zbus::zvariant::{OwnedValue, Value};

use crate::accounts::Change;
use crate::net::Failure;
use crate::secrets::SecretError;
use crate::Daemon;

/// Serve the ObjectManager, the Manager and every loaded account. Called
/// before the bus name is taken, so a client that sees the name sees them.
pub async fn serve(conn: &zbus::Connection, daemon: &Arc<Daemon>) -> zbus::Result<()> {
    let server = conn.object_server();
    server
        .at(
            names::ROOT_PATH,
            tree::Served::new(manager::Manager::new(daemon.clone())),
        )
        .await?;
    tree::serve_parents(server, daemon).await?;
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

/// A settings dictionary as the accounts layer reads it: any integer type
/// is an integer (its range is checked per key there), a variant inside
/// the variant is looked through, anything else keeps its signature so the
/// refusal can name it.
pub fn settings_input(dict: &HashMap<String, OwnedValue>) -> crate::accounts::Input {
    use crate::accounts::Given;
    fn given(v: &Value<'_>) -> Given {
        match v {
            Value::Str(s) => Given::Str(s.as_str().to_owned()),
            Value::Bool(b) => Given::Bool(*b),
            Value::U8(n) => Given::Int(i128::from(*n)),
            Value::I16(n) => Given::Int(i128::from(*n)),
            Value::U16(n) => Given::Int(i128::from(*n)),
            Value::I32(n) => Given::Int(i128::from(*n)),
            Value::U32(n) => Given::Int(i128::from(*n)),
            Value::I64(n) => Given::Int(i128::from(*n)),
            Value::U64(n) => Given::Int(i128::from(*n)),
            Value::Value(inner) => given(inner),
            other => Given::Other(other.value_signature().to_string()),
        }
    }
    dict.iter().map(|(k, v)| (k.clone(), given(v))).collect()
}

/// Map a refused settings change (kept for the method bodies that still
/// call it: the same as `Error::from`).
pub fn change_error(e: Change) -> Error {
    e.into()
}

/// Map a secret store failure (the same as `Error::from`).
pub fn secret_error(e: SecretError) -> Error {
    e.into()
}

/// The answer of a method whose engine has not landed yet: an honest
/// refusal, never a fake result.
pub fn not_yet(what: &str) -> Error {
    Error::NotSupported(format!(
        "{what} is not available in facteurd {} yet",
        env!("CARGO_PKG_VERSION")
    ))
}

/// Map an engine failure (the same as `Error::from`).
pub fn failure_error(f: Failure) -> Error {
    f.into()
}

/// An `a{sv}` under construction.
#[derive(Default)]
pub struct Dict(pub HashMap<String, OwnedValue>);

impl Dict {
    /// An empty dictionary.
    pub fn new() -> Self {
        Dict::default()
    }

    /// Add one entry. Values that cannot be owned (file descriptors) are
    /// never put here, so a failure is only logged.
    /// Strings are passed through [`text::dbus_text`]: much of what is
    /// put here comes from servers and messages.
    pub fn put<'a>(&mut self, key: &str, value: impl Into<Value<'a>>) {
        match OwnedValue::try_from(text::clean_value(value.into())) {
            Ok(v) => {
                self.0.insert(key.to_owned(), v);
            }
            Err(e) => error!("Cannot encode {key}: {e}"),
        }
    }
}

//! # D-Bus service
//!
//! The objects of the contract: the Manager and the ObjectManager at
//! `/org/facteur/Facteur1` ([`manager`]), one object per account under
//! `/org/facteur/Facteur1/accounts/` ([`account`]). Every failure is turned
//! into the contract's [`Error`] here, at the edge, by the functions below;
//! the modules behind it never build D-Bus errors themselves.

pub mod account;
pub mod events;
pub mod manager;
pub mod text;
pub mod tree;

use std::collections::HashMap;
use std::sync::Arc;

use facteur_dbus::{names, Error};
use tracing::error;
use zbus::zvariant::{OwnedValue, Value};

use crate::accounts::Change;
use crate::net::{Failure, FailureKind};
use crate::secrets::SecretError;
use crate::store::Summary;
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
    Error::Internal(text::dbus_string(format!("{e:#}")))
}

/// Map a secret store failure.
pub fn secret_error(e: SecretError) -> Error {
    match e {
        SecretError::Timeout => Error::Timeout(e.to_string()),
        // The keyring refused to open: a person must unlock it first.
        SecretError::Locked => Error::AuthenticationFailed(e.to_string()),
        SecretError::Insecure(..) | SecretError::Store(_) => Error::Internal(e.to_string()),
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

/// Map an engine failure to the error a client branches on.
pub fn failure_error(f: Failure) -> Error {
    // The message may quote a server.
    let f = Failure {
        message: text::dbus_string(f.message),
        ..f
    };
    match f.kind {
        FailureKind::Connection | FailureKind::Protocol => Error::ConnectionFailed(f.message),
        FailureKind::Tls | FailureKind::Certificate => Error::TlsFailed(f.message),
        FailureKind::ServerLimit => Error::ConnectionFailed(f.message),
        FailureKind::Timeout => Error::Timeout(f.message),
        FailureKind::Auth | FailureKind::Credentials => Error::AuthenticationFailed(f.message),
        FailureKind::NotSupported => Error::NotSupported(f.message),
        FailureKind::Local | FailureKind::DiskFull => Error::Internal(f.message),
    }
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

/// The contract's message summary.
pub fn summary_dict(s: &Summary) -> HashMap<String, OwnedValue> {
    let mut d = Dict::new();
    let r = &s.record;
    d.put("id", s.id.to_string());
    if let Ok(path) = zbus::zvariant::ObjectPath::try_from(names::account_path(&s.id.account)) {
        d.put("account", path);
    }
    d.put("folder", s.folder.clone());
    d.put("from", r.meta.from.clone());
    d.put("to", r.meta.to.clone());
    d.put("subject", r.meta.subject.clone());
    d.put("date", r.meta.date);
    d.put("size", r.size);
    d.put("seen", r.flags.has(crate::store::Flags::SEEN));
    d.put("flagged", r.flags.has(crate::store::Flags::FLAGGED));
    d.put("has-attachments", r.meta.has_attachments);
    d.put("message-id", r.meta.message_id.clone());
    d.0
}

//! # Account properties as values
//!
//! The D-Bus names and values of an account's properties (settings and
//! run-time status), and the PropertiesChanged signals that announce them.

use std::collections::HashMap;
use std::sync::Arc;

use facteur_dbus::{keys::FOLDER_ROLES, names};
use tracing::warn;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::Value;

use super::text::dbus_string;
use crate::accounts::{Account, Field, Settings, State, Status};

/// The role → folder map shown as `Folders`: what the server's
/// SPECIAL-USE attributes (or folder names) say, overridden by the user's
/// `folder-*` choices.
pub fn folders(s: &Settings, detected: &HashMap<String, String>) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = detected
        .iter()
        .filter(|(role, _)| FOLDER_ROLES.iter().any(|(r, _)| r == role))
        .map(|(role, folder)| (role.clone(), dbus_string(folder.clone())))
        .collect();
    for (role, folder) in &s.folders {
        map.insert(role.clone(), dbus_string(folder.clone()));
    }
    map
}

/// The settings-derived properties, by D-Bus name, as values.
pub fn settings_properties(
    s: &Settings,
    detected: &HashMap<String, String>,
) -> Vec<(&'static str, Value<'static>)> {
    vec![
        ("Name", Value::from(s.name().to_owned())),
        ("EmailAddress", Value::from(s.email.clone())),
        ("DisplayName", Value::from(s.display_name.clone())),
        ("UseUnified", Value::from(s.use_unified)),
        (
            "IncomingProtocol",
            Value::from(s.incoming_protocol.as_str()),
        ),
        ("IncomingHost", Value::from(s.incoming_host.clone())),
        ("IncomingPort", Value::from(s.incoming_port())),
        (
            "IncomingSecurity",
            Value::from(s.incoming_security.as_str()),
        ),
        ("IncomingLogin", Value::from(s.incoming_login().to_owned())),
        ("PollIntervalMinutes", Value::from(s.poll_interval_minutes)),
        ("LeaveOnServer", Value::from(s.leave_on_server)),
        ("DeleteOnServer", Value::from(s.delete_on_server)),
        ("SmtpHost", Value::from(s.smtp_host.clone())),
        ("SmtpPort", Value::from(s.smtp_port())),
        ("SmtpSecurity", Value::from(s.smtp_security.as_str())),
        ("SmtpLogin", Value::from(s.smtp_login().to_owned())),
        ("Folders", Value::from(folders(s, detected))),
        ("AcceptInvalidCerts", Value::from(s.accept_invalid_certs)),
    ]
}

/// The contract's spelling of a state.
pub fn state_name(state: State) -> &'static str {
    use facteur_dbus::state;
    match state {
        State::Idle => state::IDLE,
        State::Syncing => state::SYNCING,
        State::Offline => state::OFFLINE,
        State::Error => state::ERROR,
        State::NeedsCredentials => state::NEEDS_CREDENTIALS,
        State::Disabled => state::DISABLED,
    }
}

/// The D-Bus name and value of one status field.
fn status_property(
    account: &Account,
    status: &Status,
    field: Field,
) -> (&'static str, Value<'static>) {
    match field {
        Field::State => ("State", Value::from(state_name(status.state))),
        Field::LastError => (
            "LastError",
            Value::from(dbus_string(status.last_error.clone())),
        ),
        Field::LastErrorCode => ("LastErrorCode", Value::from(status.last_error_code.clone())),
        Field::AttentionNeeded => ("AttentionNeeded", Value::from(status.attention_needed)),
        Field::NextRetry => ("NextRetry", Value::from(status.next_retry)),
        Field::Progress => ("Progress", Value::from(status.progress)),
        Field::LastSync => ("LastSync", Value::from(status.last_sync)),
        Field::MessageCount => ("MessageCount", Value::from(status.message_count)),
        Field::UnreadCount => ("UnreadCount", Value::from(status.unread_count)),
        Field::PendingChanges => ("PendingChanges", Value::from(status.pending_changes)),
        Field::OutboxCount => ("OutboxCount", Value::from(status.outbox_count)),
        Field::OutboxFailedCount => ("OutboxFailedCount", Value::from(status.outbox_failed_count)),
        Field::Folders => (
            "Folders",
            Value::from(folders(&account.settings(), &status.detected_folders)),
        ),
    }
}

/// Emit one PropertiesChanged for the changed status fields of `account`.
pub async fn emit_status(emitter: &SignalEmitter<'_>, account: &Account, changed: &[Field]) {
    if changed.is_empty() {
        return;
    }
    let status = account.status();
    let values: HashMap<&str, Value<'_>> = changed
        .iter()
        .map(|&f| status_property(account, &status, f))
        .collect();
    emit(emitter, &account.id, values).await;
}

/// Emit, on `conn`, one PropertiesChanged per account for its changed
/// status fields (changes made outside a method call: the store coming
/// back).
pub async fn emit_changes(conn: &zbus::Connection, changes: &[(Arc<Account>, Vec<Field>)]) {
    for (account, changed) in changes {
        if changed.is_empty() {
            continue;
        }
        match SignalEmitter::new(conn, names::account_path(&account.id)) {
            Ok(emitter) => emit_status(&emitter, account, changed).await,
            Err(e) => warn!(
                "Cannot announce property changes of account {}: {e}",
                account.id
            ),
        }
    }
}

/// Emit one PropertiesChanged on the Account interface with these values.
pub async fn emit(emitter: &SignalEmitter<'_>, id: &str, values: HashMap<&str, Value<'_>>) {
    let Ok(iface) = zbus::names::InterfaceName::try_from(names::ACCOUNT_INTERFACE) else {
        return;
    };
    if let Err(e) =
        zbus::fdo::Properties::properties_changed(emitter, iface, values, (&[][..]).into()).await
    {
        warn!("Cannot announce property changes of account {id}: {e}");
    }
}

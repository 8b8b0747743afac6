//! # Failures and exit codes
//!
//! Every way a command can end badly, reduced to one line on standard error
//! and an exit code. This module also turns what the bus and the daemon
//! answer ([`facteur_dbus::Error`], which wraps zbus errors) into lines a
//! person can act on: "facteurd is not running", "no account with id 'x'",
//! or the daemon's own `Name: sentence`. Which call is being made, and so
//! what "not found" means, is told by the caller through [`On`].

use facteur_dbus::Error as DaemonError;

/// Exit code of a command that did its work.
pub const EXIT_OK: u8 = 0;
/// Exit code when the daemon, the bus or the system said no.
pub const EXIT_FAILED: u8 = 1;
/// Exit code of a usage error: the command line, or input it asked for, is
/// wrong and nothing was sent. clap uses the same code for its own errors.
pub const EXIT_USAGE: u8 = 2;

/// Advice printed when nobody owns the bus name.
pub const NOT_RUNNING: &str = "facteurd is not running on this session bus \
     (start it with 'systemctl --user start facteurd' or run 'facteurd')";

/// Why a command stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Local usage error (exit 2); the text is the line without prefix.
    Usage(String),
    /// The daemon, the bus or the system refused (exit 1).
    Failed(String),
    /// Stop with this exit code and print nothing more: what went wrong has
    /// already been shown (a failed verification report), or nobody is
    /// listening any more (a closed pipe on standard output).
    Quiet(u8),
}

impl Failure {
    /// The exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Failed(_) => EXIT_FAILED,
            Failure::Quiet(code) => *code,
        }
    }

    /// The line for standard error, without the `facteurctl: ` prefix.
    pub fn line(&self) -> Option<&str> {
        match self {
            Failure::Usage(m) | Failure::Failed(m) => Some(m),
            Failure::Quiet(_) => None,
        }
    }
}

/// What a failed call was aimed at, which decides how "no such object" and
/// `NotFound` read.
#[derive(Debug, Clone, Copy)]
pub enum On<'a> {
    /// The Manager (or the bus itself).
    Manager,
    /// An account object, where `NotFound` can only mean the account.
    Account(&'a str),
    /// Something inside an account (a folder): the bus saying "no such
    /// object" means the account, but the daemon's `NotFound` may be about
    /// the folder and is passed on as it is.
    AccountItem(&'a str),
}

impl On<'_> {
    fn account(self) -> Option<String> {
        match self {
            On::Manager => None,
            On::Account(id) | On::AccountItem(id) => Some(id.to_owned()),
        }
    }
}

/// The line for an account id that names no account.
pub fn no_such_account(id: &str) -> Failure {
    Failure::Failed(format!("NotFound: no account with id '{id}'"))
}

/// Standard D-Bus error names this module branches on.
mod fdo_names {
    pub const SERVICE_UNKNOWN: &str = "org.freedesktop.DBus.Error.ServiceUnknown";
    pub const NAME_HAS_NO_OWNER: &str = "org.freedesktop.DBus.Error.NameHasNoOwner";
    pub const UNKNOWN_OBJECT: &str = "org.freedesktop.DBus.Error.UnknownObject";
    pub const UNKNOWN_INTERFACE: &str = "org.freedesktop.DBus.Error.UnknownInterface";
    pub const UNKNOWN_METHOD: &str = "org.freedesktop.DBus.Error.UnknownMethod";
}

/// The D-Bus error name and message of a method error, whichever way zbus
/// wrapped it.
pub fn method_error(e: &zbus::Error) -> Option<(String, String)> {
    use zbus::DBusError;
    match e {
        zbus::Error::MethodError(name, msg, _) => {
            Some((name.to_string(), msg.clone().unwrap_or_default()))
        }
        zbus::Error::FDO(fdo) => match fdo.as_ref() {
            zbus::fdo::Error::ZBus(inner) => method_error(inner),
            other => Some((
                other.name().to_string(),
                other.description().unwrap_or_default().to_owned(),
            )),
        },
        _ => None,
    }
}

/// Whether the error says the object or interface does not exist.
pub fn is_unknown_object(e: &DaemonError) -> bool {
    matches!(
        dbus_error_name(e).as_deref(),
        Some(fdo_names::UNKNOWN_OBJECT | fdo_names::UNKNOWN_INTERFACE)
    )
}

/// Whether the error says the method does not exist, on an object that
/// may or may not exist.
pub fn is_unknown_method(e: &DaemonError) -> bool {
    dbus_error_name(e).as_deref() == Some(fdo_names::UNKNOWN_METHOD)
}

fn dbus_error_name(e: &DaemonError) -> Option<String> {
    match e {
        DaemonError::ZBus(z) => method_error(z).map(|(name, _)| name),
        _ => None,
    }
}

/// Turns an error of a call into the failure to report.
pub fn from_daemon(e: DaemonError, on: On<'_>) -> Failure {
    match e {
        DaemonError::ZBus(z) => from_zbus(z, on),
        DaemonError::NotFound(_) if matches!(on, On::Account(_)) => {
            no_such_account(&on.account().unwrap_or_default())
        }
        other => Failure::Failed(format!("{}: {}", other.short_name(), other.message())),
    }
}

/// Turns a bus-level error into the failure to report.
pub fn from_zbus(e: zbus::Error, on: On<'_>) -> Failure {
    if let Some((name, message)) = method_error(&e) {
        return match (name.as_str(), on.account()) {
            (fdo_names::SERVICE_UNKNOWN | fdo_names::NAME_HAS_NO_OWNER, _) => {
                Failure::Failed(NOT_RUNNING.to_owned())
            }
            (fdo_names::UNKNOWN_OBJECT | fdo_names::UNKNOWN_INTERFACE, Some(id)) => {
                no_such_account(&id)
            }
            _ => {
                // Errors of the daemon's own family read as `Name: sentence`,
                // like the typed variants; foreign ones keep their full name.
                let shown = name
                    .strip_prefix(facteur_dbus::names::ERROR_PREFIX)
                    .and_then(|n| n.strip_prefix('.'))
                    .unwrap_or(&name);
                if message.is_empty() {
                    Failure::Failed(shown.to_owned())
                } else {
                    Failure::Failed(format!("{shown}: {message}"))
                }
            }
        };
    }
    match e {
        zbus::Error::InputOutput(io) => {
            Failure::Failed(format!("lost the connection to the bus: {io}"))
        }
        other => Failure::Failed(format!("D-Bus error: {other}")),
    }
}

/// Turns an `fdo` error (from the standard Properties and ObjectManager
/// proxies) into the failure to report.
pub fn from_fdo(e: zbus::fdo::Error, on: On<'_>) -> Failure {
    from_daemon(DaemonError::from(zbus::Error::from(e)), on)
}

#[cfg(test)]
mod tests;

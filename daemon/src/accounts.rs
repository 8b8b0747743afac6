//! # Accounts
//!
//! Owns account settings: their validation (one code path for
//! `CreateAccount`, `Update` and `VerifySettings`), their storage (one JSON
//! file per account under `<config-dir>/accounts/`, written atomically), the
//! runtime status each account shows on D-Bus, and each account's life
//! ([`lifecycle`]: create, update, delete, credentials, engine starts).
//! Passwords pass through here on their way to [`crate::secrets`] and to
//! the engines, and are never kept.
//!
//! It does not talk to D-Bus; below it are [`crate::sync`], the protocols
//! and the stores.

pub mod cleanup;
pub mod lifecycle;
pub mod mail;
pub mod outbox;
mod registry;
pub mod retired;
pub mod validate;

use std::sync::RwLock;

use zeroize::Zeroizing;

pub use lifecycle::{DeleteFailed, Engine, Lifecycle, Ready, Updated};
pub use mail::{Done, Failed, Mail, Refused};
pub use outbox::Outbox;
pub use registry::{Registry, Reservation};
pub use validate::{apply, Change, Given, Input, Invalid};

pub use crate::settings::{valid_id, Protocol, Security, Settings};
pub use crate::sync::state::{Field, State, Status};

/// Password changes carried by a settings dictionary. `Some("")` clears.
#[derive(Default)]
pub struct Passwords {
    /// New incoming password.
    pub incoming: Option<Zeroizing<String>>,
    /// New SMTP password.
    pub smtp: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("incoming", &self.incoming.as_ref().map(|_| "[redacted]"))
            .field("smtp", &self.smtp.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// One account: its stable id, settings and status.
#[derive(Debug)]
pub struct Account {
    /// Stable id, also the last element of the object path.
    pub id: String,
    settings: RwLock<Settings>,
    status: RwLock<Status>,
}

impl Account {
    pub(crate) fn new(id: String, settings: Settings) -> Self {
        Account {
            id,
            settings: RwLock::new(settings),
            status: RwLock::new(Status::default()),
        }
    }

    /// A copy of the current settings.
    pub fn settings(&self) -> Settings {
        match self.settings.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A copy of the current status.
    pub fn status(&self) -> Status {
        match self.status.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn replace_settings(&self, new: Settings) {
        match self.settings.write() {
            Ok(mut s) => *s = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// Change the status; returns the fields that changed, for
    /// PropertiesChanged.
    pub fn set_status(&self, change: impl FnOnce(&mut Status)) -> Vec<Field> {
        let mut guard = match self.status.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let before = guard.clone();
        change(&mut guard);
        before.diff(&guard)
    }
}

/// A readable id from an address (`alice@example.org` →
/// `alice_example_org`), made unique with `_2`, `_3`, … when `taken`.
pub fn unique_id(email: &str, taken: impl Fn(&str) -> bool) -> String {
    let mut base: String = email
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .take(56)
        .collect();
    if base.is_empty() {
        base.push_str("account");
    }
    if !taken(&base) {
        return base;
    }
    (2u32..)
        .map(|n| format!("{base}_{n}"))
        .find(|id| !taken(id))
        .unwrap_or(base)
}

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod tests;

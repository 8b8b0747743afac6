//! # Internal failures as the contract's errors
//!
//! One `From` per internal error type, so a method body ends in `?` (or
//! `.map_err(Error::from)`) and every failure of a kind is answered the
//! same way everywhere:
//!
//! | internal                         | contract error                 |
//! |----------------------------------|--------------------------------|
//! | `accounts::Change::Invalid`      | `InvalidArgument`              |
//! | `accounts::Change::AlreadyExists`| `AlreadyExists`                |
//! | `accounts::Change::NotFound`     | `NotFound` (deleted meanwhile) |
//! | `accounts::Change::Internal`     | `Internal` (chain logged)      |
//! | `net::Failure` Connection, Protocol, ServerLimit | `ConnectionFailed` |
//! | `net::Failure` Tls, Certificate  | `TlsFailed`                    |
//! | `net::Failure` Timeout           | `Timeout`                      |
//! | `net::Failure` Auth, Credentials | `AuthenticationFailed`         |
//! | `net::Failure` NotSupported      | `NotSupported`                 |
//! | `net::Failure` Local, DiskFull   | `Internal`                     |
//! | `secrets::SecretError::Locked`   | `AuthenticationFailed` (the contract has no keyring error; the sentence says to unlock it) |
//! | `secrets::SecretError::Timeout`  | `Timeout`                      |
//! | `secrets::SecretError` other     | `Internal`                     |
//! | `store::Damaged` (a message read)| `NotFound` (the file is named) |
//! | `anyhow::Error`                  | `Internal` via [`internal`], chain logged |
//!
//! `anyhow::Error` gets a function, not a `From`: both it and the
//! contract's error are foreign to this crate, so the orphan rule forbids
//! the impl.

use facteur_dbus::Error;
use tracing::error;

use super::text;
use crate::accounts::Change;
use crate::net::{Failure, FailureKind};
use crate::secrets::SecretError;
use crate::store::Damaged;

impl From<Change> for Error {
    fn from(e: Change) -> Error {
        match e {
            Change::Invalid(m) => Error::InvalidArgument(text::dbus_string(m)),
            Change::AlreadyExists(m) => Error::AlreadyExists(text::dbus_string(m)),
            Change::NotFound(m) => Error::NotFound(text::dbus_string(m)),
            Change::Internal(e) => internal(e),
        }
    }
}

impl From<crate::accounts::Refused> for Error {
    fn from(e: crate::accounts::Refused) -> Error {
        use crate::accounts::Refused;
        match e {
            Refused::Invalid(m) => Error::InvalidArgument(text::dbus_string(m)),
            Refused::NotFound(m) => Error::NotFound(text::dbus_string(m)),
            Refused::NotSupported(m) => Error::NotSupported(text::dbus_string(m)),
            Refused::AlreadyExists(m) => Error::AlreadyExists(text::dbus_string(m)),
            Refused::Internal(e) => internal(e),
        }
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Error {
        // The message may quote a server.
        let m = text::dbus_string(f.message);
        match f.kind {
            FailureKind::Connection | FailureKind::Protocol | FailureKind::ServerLimit => {
                Error::ConnectionFailed(m)
            }
            FailureKind::Tls | FailureKind::Certificate => Error::TlsFailed(m),
            FailureKind::Timeout => Error::Timeout(m),
            FailureKind::Auth | FailureKind::Credentials => Error::AuthenticationFailed(m),
            FailureKind::NotSupported => Error::NotSupported(m),
            FailureKind::Local | FailureKind::DiskFull => Error::Internal(m),
        }
    }
}

impl From<SecretError> for Error {
    fn from(e: SecretError) -> Error {
        match e {
            SecretError::Timeout => Error::Timeout(e.to_string()),
            // The keyring refused to open: a person must unlock it first.
            SecretError::Locked => Error::AuthenticationFailed(e.to_string()),
            SecretError::Insecure(..) | SecretError::Store(_) => {
                error!("Secret store failure: {e}");
                Error::Internal(e.to_string())
            }
        }
    }
}

impl From<Damaged> for Error {
    fn from(d: Damaged) -> Error {
        Error::NotFound(text::dbus_string(d.to_string()))
    }
}

/// An unexpected failure: logged with its whole chain, answered as
/// `Internal` carrying the chain. A damaged message file inside it is
/// `NotFound` instead.
pub fn internal(e: anyhow::Error) -> Error {
    match e.downcast::<Damaged>() {
        Ok(d) => d.into(),
        Err(e) => {
            error!("Request failed: {e:#}");
            Error::Internal(text::dbus_string(format!("{e:#}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(e: &Error) -> String {
        e.short_name()
    }

    #[test]
    fn every_failure_kind_has_its_error() {
        use FailureKind::*;
        let cases = [
            (Connection, "ConnectionFailed"),
            (Protocol, "ConnectionFailed"),
            (ServerLimit, "ConnectionFailed"),
            (Tls, "TlsFailed"),
            (Certificate, "TlsFailed"),
            (Timeout, "Timeout"),
            (Auth, "AuthenticationFailed"),
            (Credentials, "AuthenticationFailed"),
            (NotSupported, "NotSupported"),
            (Local, "Internal"),
            (DiskFull, "Internal"),
        ];
        for (kind, want) in cases {
            let f = Failure::new(kind, "said \0 this");
            assert!(
                facteur_dbus::error_code::ALL.contains(&f.code()),
                "{kind:?}: code {:?} is not in the documented list",
                f.code()
            );
            let e = Error::from(f);
            assert_eq!(name(&e), want, "{kind:?}");
            assert_eq!(e.message(), "said \u{2400} this");
        }
    }

    #[test]
    fn changes_and_secrets_map() {
        assert_eq!(
            name(&Change::Invalid("port".into()).into()),
            "InvalidArgument"
        );
        assert_eq!(
            name(&Change::AlreadyExists("a".into()).into()),
            "AlreadyExists"
        );
        assert_eq!(
            name(&Change::Internal(anyhow::anyhow!("disk")).into()),
            "Internal"
        );
        assert_eq!(name(&SecretError::Locked.into()), "AuthenticationFailed");
        assert_eq!(name(&SecretError::Timeout.into()), "Timeout");
        assert_eq!(name(&SecretError::Store("x".into()).into()), "Internal");
    }

    #[test]
    fn a_damaged_file_is_not_found_even_inside_anyhow() {
        let d = Damaged {
            path: "/data/x.eml".into(),
            other: None,
            missing: true,
            why: "missing".into(),
            quarantined: None,
        };
        let e = internal(anyhow::Error::new(d));
        assert_eq!(name(&e), "NotFound");
        let e = internal(anyhow::anyhow!("sled broke").context("reading"));
        assert_eq!(name(&e), "Internal");
        assert_eq!(e.message(), "reading: sled broke");
    }
}

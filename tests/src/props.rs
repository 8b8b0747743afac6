//! Object properties as `GetAll` returns them, and waits on an account's status.

use std::collections::HashMap;
use std::time::Duration;

use zbus::zvariant::{OwnedValue, Value};

use crate::{last_lines, wait_until, Bus, Facteurd, DEADLINE};

/// Account properties that describe run-time status rather than settings.
pub const STATUS_PROPERTIES: &[&str] = &[
    "State",
    "LastError",
    "LastErrorCode",
    "LastSync",
    "MessageCount",
    "UnreadCount",
    "AttentionNeeded",
    "NextRetry",
    "Progress",
];

/// Wait until the account at `path` is in a state other than
/// `needs-credentials` (its password is usable: `idle`, `syncing`,
/// `offline`, …) and return its properties; fail the test with the state and
/// `LastError` after [`DEADLINE`].
pub fn wait_for_credentials(bus: &Bus, path: &str) -> Props {
    wait_until(DEADLINE, || {
        let p = bus.account(path);
        (p.str("State") != "needs-credentials").then_some(p)
    })
    .unwrap_or_else(|| {
        let p = bus.account(path);
        panic!(
            "{path} still needs credentials after {DEADLINE:?}: {}",
            p.str("LastError")
        )
    })
}

/// The properties of an object, as `GetAll` returned them.
#[derive(Debug, Clone)]
pub struct Props(pub HashMap<String, OwnedValue>);

impl PartialEq for Props {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .all(|(k, v)| other.0.get(k).is_some_and(|w| **w == **v))
    }
}

impl Props {
    /// The raw value of a property; fails the test when it is missing.
    pub fn get(&self, name: &str) -> &Value<'static> {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("no property {name} in {:?}", self.names()))
    }

    /// The sorted property names.
    pub fn names(&self) -> Vec<&str> {
        let mut n: Vec<&str> = self.0.keys().map(String::as_str).collect();
        n.sort_unstable();
        n
    }

    /// A string property.
    pub fn str(&self, name: &str) -> String {
        match self.get(name) {
            Value::Str(s) => s.to_string(),
            other => panic!("property {name} is not a string: {other:?}"),
        }
    }

    /// A boolean property.
    pub fn bool(&self, name: &str) -> bool {
        match self.get(name) {
            Value::Bool(b) => *b,
            other => panic!("property {name} is not a boolean: {other:?}"),
        }
    }

    /// A `q` property.
    pub fn u16(&self, name: &str) -> u16 {
        match self.get(name) {
            Value::U16(v) => *v,
            other => panic!("property {name} is not a uint16: {other:?}"),
        }
    }

    /// A `u` property.
    pub fn u32(&self, name: &str) -> u32 {
        match self.get(name) {
            Value::U32(v) => *v,
            other => panic!("property {name} is not a uint32: {other:?}"),
        }
    }

    /// A `t` property.
    pub fn u64(&self, name: &str) -> u64 {
        match self.get(name) {
            Value::U64(v) => *v,
            other => panic!("property {name} is not a uint64: {other:?}"),
        }
    }

    /// The properties without the ones that describe run-time status
    /// (`State`, `LastError`, `LastSync`, counts, `Progress`, …), i.e. the
    /// settings.
    pub fn settings_only(&self) -> Props {
        Props(
            self.0
                .iter()
                .filter(|(k, _)| !STATUS_PROPERTIES.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }
}

/// A password no file, log or property could contain by accident.
pub fn unique_secret(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{tag}-Pw{}x{nanos:09}", std::process::id())
}

/// Wait until the properties of account `path` satisfy `pred`, and return
/// them; fail the test after `limit` with the account's status and the end
/// of facteurd's log.
pub fn wait_account(
    bus: &Bus,
    d: &Facteurd<'_>,
    path: &str,
    what: &str,
    limit: Duration,
    pred: impl Fn(&Props) -> bool,
) -> Props {
    if let Some(p) = wait_until(limit, || {
        let p = bus.account(path);
        pred(&p).then_some(p)
    }) {
        return p;
    }
    let p = bus.account(path);
    panic!(
        "{path}: not {what} within {limit:?}: State={:?} LastError={:?} LastErrorCode={:?} \
         LastSync={} MessageCount={} UnreadCount={}\nfacteurd log:\n{}",
        p.str("State"),
        p.str("LastError"),
        p.str("LastErrorCode"),
        p.u64("LastSync"),
        p.u32("MessageCount"),
        p.u32("UnreadCount"),
        last_lines(&d.log(), 80)
    );
}

//! A recorder of the signals the daemon emits.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use facteur_dbus::names;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use crate::{wait_until, Bus, DEADLINE, STATUS_PROPERTIES};

/// One signal facteurd emitted.
#[derive(Debug, Clone)]
pub struct Signal {
    /// Object path of the emitter.
    pub path: String,
    /// Interface of the signal.
    pub interface: String,
    /// Signal name.
    pub member: String,
    /// The whole message, to read the body from.
    pub message: zbus::Message,
}

/// The body of a `PropertiesChanged` signal.
pub type PropertiesChanged = (String, HashMap<String, OwnedValue>, Vec<String>);

impl Signal {
    /// `(interface, changed, invalidated)` if this is `PropertiesChanged`.
    pub fn properties_changed(&self) -> Option<PropertiesChanged> {
        (self.interface == "org.freedesktop.DBus.Properties" && self.member == "PropertiesChanged")
            .then(|| self.message.body().deserialize().ok())
            .flatten()
    }

    /// `(object, interfaces)` if this is ObjectManager's `InterfacesAdded`.
    pub fn interfaces_added(&self) -> Option<(String, Vec<String>)> {
        if self.interface != "org.freedesktop.DBus.ObjectManager"
            || self.member != "InterfacesAdded"
        {
            return None;
        }
        let (path, ifaces): (
            OwnedObjectPath,
            HashMap<String, HashMap<String, OwnedValue>>,
        ) = self.message.body().deserialize().ok()?;
        let mut names: Vec<String> = ifaces.into_keys().collect();
        names.sort();
        Some((path.as_str().to_owned(), names))
    }

    /// `(object, interfaces)` if this is ObjectManager's `InterfacesRemoved`.
    pub fn interfaces_removed(&self) -> Option<(String, Vec<String>)> {
        if self.interface != "org.freedesktop.DBus.ObjectManager"
            || self.member != "InterfacesRemoved"
        {
            return None;
        }
        let (path, mut names): (OwnedObjectPath, Vec<String>) =
            self.message.body().deserialize().ok()?;
        names.sort();
        Some((path.as_str().to_owned(), names))
    }
}

/// A recorder of facteurd's signals, started by [`Bus::signals`].
pub struct Signals {
    /// Everything received so far, in order. Filled by `task`.
    seen: Arc<Mutex<Vec<Signal>>>,
    /// Drains the match-rule stream; aborted on drop.
    task: tokio::task::JoinHandle<()>,
}

impl Signals {
    /// Every signal received so far.
    pub fn all(&self) -> Vec<Signal> {
        self.seen
            .lock()
            .expect("the signal list is not poisoned")
            .clone()
    }

    /// Wait for the first signal matching `pred`; fail the test with what
    /// was seen instead after [`DEADLINE`].
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Signal) -> bool) -> Signal {
        if let Some(s) = wait_until(DEADLINE, || self.all().into_iter().find(|s| pred(s))) {
            return s;
        }
        let mut seen = String::new();
        for s in self.all() {
            let _ = writeln!(seen, "  {} {}.{}", s.path, s.interface, s.member);
        }
        panic!("no signal {what} within {DEADLINE:?}; seen:\n{seen}");
    }

    /// Wait for a `PropertiesChanged` on `path` that carries `property` in
    /// its changed (or invalidated) properties; returns the new value when
    /// it was sent.
    pub fn wait_property_changed(&self, path: &str, property: &str) -> Option<OwnedValue> {
        let sig = self.wait_for(&format!("PropertiesChanged({property}) on {path}"), |s| {
            s.path == path
                && s.properties_changed().is_some_and(|(_, changed, inval)| {
                    changed.contains_key(property) || inval.iter().any(|p| p == property)
                })
        });
        let (_, changed, _) = sig.properties_changed().expect("checked above");
        changed.get(property).cloned()
    }

    /// The settings properties (not `State`, `LastError`, `LastSync` or the
    /// counts, which the sync engine changes on its own) announced as
    /// changed on `path` so far.
    pub fn changed_settings(&self, path: &str) -> Vec<String> {
        let mut names = self.changed_properties(path);
        names.retain(|n| !STATUS_PROPERTIES.contains(&n.as_str()));
        names
    }

    /// The names of every property announced as changed on `path` so far.
    pub fn changed_properties(&self, path: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .all()
            .iter()
            .filter(|s| s.path == path)
            .filter_map(Signal::properties_changed)
            .flat_map(|(_, changed, inval)| changed.into_keys().chain(inval))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Bus {
    /// Start recording every signal under `/org/facteur/Facteur1`. Returns
    /// once the match rule is in place, so nothing emitted afterwards is
    /// missed.
    pub fn signals(&self) -> Signals {
        let conn = self.connection().clone();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let mut stream = self.block_on(async move {
            let rule = zbus::MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .path_namespace(names::ROOT_PATH)
                .expect("the root path is a valid namespace")
                .build();
            zbus::MessageStream::for_match_rule(rule, &conn, Some(4096))
                .await
                .expect("add a match rule for facteur's signals")
        });
        let task = self.rt.spawn(async move {
            use futures_lite::StreamExt;
            while let Some(Ok(msg)) = stream.next().await {
                let h = msg.header();
                let signal = Signal {
                    path: h.path().map(|p| p.to_string()).unwrap_or_default(),
                    interface: h.interface().map(|i| i.to_string()).unwrap_or_default(),
                    member: h.member().map(|m| m.to_string()).unwrap_or_default(),
                    message: msg.clone(),
                };
                sink.lock()
                    .expect("the signal list is not poisoned")
                    .push(signal);
            }
        });
        Signals { seen, task }
    }
}

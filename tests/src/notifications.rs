//! # A desktop notification server for tests
//!
//! Owns `org.freedesktop.Notifications` on a test's private bus and records
//! every `Notify` call, so a test can check what facteurd showed the user.

// The zbus interface macro generates items without documentation.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use zbus::zvariant::{OwnedValue, Value};

use crate::{wait_until, Bus, Facteurd, DEADLINE};

/// One `Notify` call.
#[derive(Debug, Clone)]
pub struct Notice {
    /// The application name.
    pub app_name: String,
    /// The summary line.
    pub summary: String,
    /// The body.
    pub body: String,
    /// The `category` hint.
    pub category: Option<String>,
}

/// Owns `org.freedesktop.Notifications` and records every `Notify`.
pub struct NotificationServer {
    seen: Arc<Mutex<Vec<Notice>>>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl NotificationServer {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        hints: HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let category = hints.get("category").and_then(|v| match &**v {
            Value::Str(s) => Some(s.to_string()),
            _ => None,
        });
        let mut seen = self.seen.lock().expect("the notice list is not poisoned");
        seen.push(Notice {
            app_name,
            summary,
            body,
            category,
        });
        u32::try_from(seen.len()).unwrap_or(u32::MAX)
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".to_owned()]
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        (
            "facteur-tests".to_owned(),
            "facteur".to_owned(),
            "1".to_owned(),
            "1.2".to_owned(),
        )
    }

    fn close_notification(&self, _id: u32) {}
}

/// A running [`NotificationServer`] on a bus.
pub struct Notifications {
    seen: Arc<Mutex<Vec<Notice>>>,
    /// Keeps the name; dropped with the test.
    _conn: zbus::Connection,
}

impl Notifications {
    /// Serve on `bus` and wait until the name is owned.
    pub fn start(bus: &Bus) -> Notifications {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let server = NotificationServer { seen: seen.clone() };
        let address = bus.address().to_owned();
        let conn = bus
            .block_on(async move {
                zbus::connection::Builder::address(address.as_str())?
                    .serve_at("/org/freedesktop/Notifications", server)?
                    .name("org.freedesktop.Notifications")?
                    .build()
                    .await
            })
            .expect("serve org.freedesktop.Notifications on the private bus");
        assert!(bus.wait_for_name("org.freedesktop.Notifications", true, DEADLINE));
        Notifications { seen, _conn: conn }
    }

    /// Every notification so far.
    pub fn all(&self) -> Vec<Notice> {
        self.seen
            .lock()
            .expect("the notice list is not poisoned")
            .clone()
    }

    /// Wait until at least `n` notifications arrived; all of them.
    pub fn wait_for(&self, n: usize, d: &Facteurd<'_>) -> Vec<Notice> {
        wait_until(DEADLINE, || {
            let all = self.all();
            (all.len() >= n).then_some(all)
        })
        .unwrap_or_else(|| {
            panic!(
                "{n} notification(s) expected within {DEADLINE:?}, got {:?}\nfacteurd log:\n{}",
                self.all(),
                crate::last_lines(&d.log(), 60)
            )
        })
    }
}

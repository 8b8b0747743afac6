//! Settings dictionaries for `CreateAccount` and `Update`, and where tests point accounts.

use std::collections::HashMap;

use zbus::zvariant::{OwnedValue, Value};

/// Where tests point accounts that the daemon will try to reach (those with
/// a password): loopback, so that no test sends a packet off this machine
/// and no name needs a resolver.
pub const LOOPBACK: &str = "127.0.0.1";

/// A TCP port on 127.0.0.1 where nothing listens: bound, then released, so a
/// connection is refused at once.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind((LOOPBACK, 0)).expect("bind a port on 127.0.0.1");
    listener.local_addr().expect("a bound address").port()
}

/// A settings dictionary (`a{sv}`) under construction, for `CreateAccount`
/// and `Update`.
#[derive(Debug, Clone, Default)]
pub struct Settings(Vec<(String, OwnedValue)>);

impl Settings {
    /// No settings.
    pub fn new() -> Settings {
        Settings::default()
    }

    /// The minimal valid settings: an address and an incoming host.
    pub fn minimal(email: &str, host: &str) -> Settings {
        Settings::new().s("email", email).s("incoming-host", host)
    }

    /// Valid settings whose servers refuse connections at once (127.0.0.1
    /// on a closed port, incoming and SMTP): for accounts that get a
    /// password, so that the sync engine fails fast and locally.
    pub fn unreachable(email: &str) -> Settings {
        Settings::minimal(email, LOOPBACK)
            .q("incoming-port", closed_port())
            .s("smtp-host", LOOPBACK)
            .q("smtp-port", closed_port())
    }

    /// Add a string value.
    pub fn s(self, key: &str, v: &str) -> Settings {
        self.value(key, Value::from(v))
    }

    /// Add a boolean value.
    pub fn b(self, key: &str, v: bool) -> Settings {
        self.value(key, Value::from(v))
    }

    /// Add a `q` (uint16) value.
    pub fn q(self, key: &str, v: u16) -> Settings {
        self.value(key, Value::from(v))
    }

    /// Add a `u` (uint32) value.
    pub fn u(self, key: &str, v: u32) -> Settings {
        self.value(key, Value::from(v))
    }

    /// Add an `i` (int32) value: the wrong type for every key.
    pub fn i(self, key: &str, v: i32) -> Settings {
        self.value(key, Value::from(v))
    }

    /// Add any value.
    pub fn value(mut self, key: &str, v: Value<'_>) -> Settings {
        let owned = OwnedValue::try_from(v).expect("a value without file descriptors");
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_owned(), owned));
        self
    }

    /// Remove a key.
    pub fn without(mut self, key: &str) -> Settings {
        self.0.retain(|(k, _)| k != key);
        self
    }

    /// The dictionary to send.
    pub fn as_dict(&self) -> HashMap<&str, &Value<'static>> {
        self.0.iter().map(|(k, v)| (k.as_str(), &**v)).collect()
    }
}

/// The account id the daemon derives from an address: lowercased, every
/// character outside `[a-z0-9]` replaced by `_`.
pub fn slug(email: &str) -> String {
    email
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_daemon_rule() {
        assert_eq!(
            slug("Alice.Smith+x@Example.org"),
            "alice_smith_x_example_org"
        );
    }

    #[test]
    fn settings_replace_a_key_given_twice() {
        let s = Settings::minimal("a@example.org", "h").s("email", "b@example.org");
        let d = s.as_dict();
        assert_eq!(d.len(), 2);
        assert_eq!(
            d["email"].downcast_ref::<&str>().ok(),
            Some("b@example.org")
        );
    }
}

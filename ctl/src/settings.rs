//! # Settings values
//!
//! Turns command-line text into the typed values of the `a{sv}` settings
//! dictionary that `CreateAccount` and `Update` take. The keys and their
//! D-Bus types come from [`facteur_dbus::KEYS`]; this module only parses and
//! checks text against a key's [`KeyKind`], so that a port travels as `q`, a
//! poll interval as `u` and a switch as `b`. Whether a value makes sense (a
//! port of 0, an unknown protocol) is the daemon's call, not ours.

use std::fmt;

use facteur_dbus::keys::{self, Key, KeyKind, KEYS};
use facteur_dbus::proxy::Dict;
use zbus::zvariant::Value;

/// One settings value, already of the type its key demands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingValue {
    /// `s`
    Str(String),
    /// `b`
    Bool(bool),
    /// `q`
    U16(u16),
    /// `u`
    U32(u32),
}

impl SettingValue {
    /// The value as it goes on the wire.
    pub fn to_value(&self) -> Value<'_> {
        match self {
            SettingValue::Str(s) => Value::from(s.as_str()),
            SettingValue::Bool(b) => Value::Bool(*b),
            SettingValue::U16(n) => Value::U16(*n),
            SettingValue::U32(n) => Value::U32(*n),
        }
    }
}

/// Parses a switch: `true`/`false`, `yes`/`no`, `1`/`0` (any case).
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(format!(
            "'{text}' is not a yes/no value (use true/false, yes/no or 1/0)"
        )),
    }
}

/// Parses `text` as a value of `kind`. The error is a phrase about the value
/// alone; callers prefix the key or flag it belongs to.
pub fn parse_value(kind: KeyKind, text: &str) -> Result<SettingValue, String> {
    match kind {
        KeyKind::Str | KeyKind::Secret => Ok(SettingValue::Str(text.to_owned())),
        KeyKind::Bool => parse_bool(text).map(SettingValue::Bool),
        KeyKind::U16 => text
            .trim()
            .parse::<u16>()
            .map(SettingValue::U16)
            .map_err(|_| format!("'{text}' is not a port number (0 to {})", u16::MAX)),
        KeyKind::U32 => text
            .trim()
            .parse::<u32>()
            .map(SettingValue::U32)
            .map_err(|_| format!("'{text}' is not a whole number (0 to {})", u32::MAX)),
    }
}

/// The keys a person may set on the command line (every key but passwords),
/// comma-separated, for error messages.
pub fn settable_key_names() -> String {
    KEYS.iter()
        .filter(|k| k.kind != KeyKind::Secret)
        .map(|k| k.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The flag that reads the password of a secret key from standard input.
pub fn stdin_flag_for(key: &str) -> &'static str {
    if key == keys::SMTP_PASSWORD {
        "--smtp-password-stdin"
    } else {
        "--password-stdin"
    }
}

/// Why a password cannot be given in argv, and what to do instead. The value
/// itself is never repeated.
pub fn secret_refusal(key: &str, account: Option<&str>) -> String {
    let flag = stdin_flag_for(key);
    let smtp = if flag == "--smtp-password-stdin" {
        " --smtp"
    } else {
        ""
    };
    match account {
        Some(id) => format!(
            "{key} is not accepted on the command line, where other users and your shell \
             history can read it; pipe it in with 'facteurctl account set {id} {flag}' \
             or type it at the prompt of 'facteurctl account password {id}{smtp}'"
        ),
        None if flag == "--smtp-password-stdin" => format!(
            "{key} is not accepted on the command line, where other users and your shell \
             history can read it; pipe it in with {flag} (after the incoming password when \
             --password-stdin is given too), or set it later at the prompt of \
             'facteurctl account password ID --smtp'"
        ),
        None => format!(
            "{key} is not accepted on the command line, where other users and your shell \
             history can read it; pipe it in with {flag}, or leave the flag out and type \
             it at the prompt"
        ),
    }
}

/// A settings dictionary being built from the command line. Each key at most
/// once, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    entries: Vec<(&'static str, SettingValue)>,
}

impl Settings {
    /// Adds a key; a key given twice is refused.
    pub fn insert(&mut self, key: &'static Key, value: SettingValue) -> Result<(), SettingError> {
        if self.get(key.name).is_some() {
            return Err(SettingError::Duplicate(key.name));
        }
        self.entries.push((key.name, value));
        Ok(())
    }

    /// Adds a password read from standard input or a prompt.
    pub fn insert_secret(&mut self, key_name: &str, password: String) -> Result<(), SettingError> {
        let key = keys::find(key_name).ok_or_else(|| SettingError::UnknownKey(key_name.into()))?;
        self.insert(key, SettingValue::Str(password))
    }

    /// The value given for a key, if any.
    pub fn get(&self, name: &str) -> Option<&SettingValue> {
        self.entries
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// Whether nothing was given.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The names of the keys given, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|(k, _)| *k).collect()
    }

    /// The `a{sv}` dictionary to send.
    pub fn to_dict(&self) -> Dict<'_> {
        self.entries
            .iter()
            .map(|(k, v)| (*k, v.to_value()))
            .collect()
    }
}

/// A `KEY=VALUE` argument that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingError {
    /// No `=` in the argument.
    NotAssignment(String),
    /// The key is not a settings key.
    UnknownKey(String),
    /// A password key given in argv; carries the key.
    Secret(&'static str),
    /// The value does not parse as the key's type.
    BadValue {
        /// The key.
        key: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
    /// The same key twice.
    Duplicate(&'static str),
}

impl SettingError {
    /// One line for a person; `account` names the account in the advice given
    /// for password keys.
    pub fn describe(&self, account: Option<&str>) -> String {
        match self {
            SettingError::Secret(key) => secret_refusal(key, account),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingError::NotAssignment(arg) => {
                write!(
                    f,
                    "'{arg}' is not KEY=VALUE (for example incoming-port=993)"
                )
            }
            SettingError::UnknownKey(key) => write!(
                f,
                "unknown settings key '{key}'; valid keys: {}",
                settable_key_names()
            ),
            SettingError::Secret(key) => f.write_str(&secret_refusal(key, None)),
            SettingError::BadValue { key, reason } => write!(f, "{key}: {reason}"),
            SettingError::Duplicate(key) => write!(f, "{key} is given more than once"),
        }
    }
}

/// Parses one `KEY=VALUE` argument. The value is split at the first `=`, so
/// it may itself contain `=`.
pub fn parse_assignment(arg: &str) -> Result<(&'static Key, SettingValue), SettingError> {
    let Some((name, text)) = arg.split_once('=') else {
        // A bare password key name is still a password key: say so rather
        // than "not KEY=VALUE".
        if let Some(key) = keys::find(arg).filter(|k| k.kind == KeyKind::Secret) {
            return Err(SettingError::Secret(key.name));
        }
        return Err(SettingError::NotAssignment(arg.to_owned()));
    };
    let name = name.trim();
    let key = keys::find(name).ok_or_else(|| SettingError::UnknownKey(name.to_owned()))?;
    if key.kind == KeyKind::Secret {
        return Err(SettingError::Secret(key.name));
    }
    let value = parse_value(key.kind, text).map_err(|reason| SettingError::BadValue {
        key: key.name,
        reason,
    })?;
    Ok((key, value))
}

/// Parses every `KEY=VALUE` argument into one dictionary.
pub fn parse_assignments<S: AsRef<str>>(args: &[S]) -> Result<Settings, SettingError> {
    let mut settings = Settings::default();
    for arg in args {
        let (key, value) = parse_assignment(arg.as_ref())?;
        settings.insert(key, value)?;
    }
    Ok(settings)
}

#[cfg(test)]
mod tests;

//! # One JSON style
//!
//! Every `--json` output of facteurctl has the same shape, whatever the
//! D-Bus names it came from:
//!
//! - keys are lower kebab-case (`EmailAddress` → `email-address`);
//! - an account is always `account` (its id) plus `account-path` (its
//!   object path), never a bare path;
//! - a time is an RFC 3339 string in UTC under its own key (`date`,
//!   `queued`, `last-sync`, `next-retry`), `null` when the daemon says
//!   "none" (0), plus the unix seconds under `KEY-unix`;
//! - `Progress` is `{"done": N, "total": N}`.
//!
//! The functions here are pure, so the shape is tested without a daemon.

use chrono::{SecondsFormat, TimeZone as _, Utc};
use facteur_dbus::names;
use facteur_dbus::proxy::OwnedDict;
use serde_json::{Map, Value as Json};

use crate::output;

/// Keys (after [`kebab`]) that hold unix seconds.
pub const TIME_KEYS: &[&str] = &["date", "queued", "last-sync", "next-retry"];

/// Keys whose 0 means "none" rather than 1970.
const ZERO_IS_NONE: &[&str] = &["last-sync", "next-retry"];

/// `EmailAddress` → `email-address`; a name already in kebab-case is
/// kept. A run of capitals is one word (`SMTPHost` → `smtp-host`).
pub fn kebab(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' || c == ' ' {
            out.push('-');
            continue;
        }
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push('-');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Unix seconds as RFC 3339 in UTC (`2026-12-02T19:05:02Z`); `None` when
/// out of range.
pub fn rfc3339(secs: i64) -> Option<String> {
    Utc.timestamp_opt(secs, 0)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// The `account` and `account-path` pair of an account id.
pub fn account_pair(id: &str) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("account".to_owned(), Json::from(id));
    m.insert(
        "account-path".to_owned(),
        Json::from(names::account_path(id)),
    );
    m
}

/// An object that starts with `account` and `account-path` of `id`, then
/// the fields of `rest` (an object; anything else is left out).
pub fn with_account(id: &str, rest: Json) -> Json {
    let mut m = account_pair(id);
    if let Json::Object(rest) = rest {
        m.extend(rest);
    }
    Json::Object(m)
}

/// Reshapes a JSON object from the daemon in the one style: kebab-case
/// keys, `account` as id plus `account-path`, times as RFC 3339 plus
/// `-unix`, `progress` as an object. `id_is_account` says that the object
/// is an account (its `Id` property is the account id).
pub fn reshape(value: Json, id_is_account: bool) -> Json {
    let Json::Object(map) = value else {
        return value;
    };
    let mut out = Map::new();
    for (key, v) in map {
        let key = kebab(&key);
        match key.as_str() {
            "id" if id_is_account => {
                if let Some(id) = v.as_str() {
                    out.extend(account_pair(id));
                }
            }
            "account" => match v.as_str() {
                Some(path) if path.starts_with('/') => {
                    let id = names::account_id(path).unwrap_or(path);
                    out.insert("account".to_owned(), Json::from(id));
                    out.insert("account-path".to_owned(), Json::from(path));
                }
                _ => {
                    out.insert(key, v);
                }
            },
            "progress" => {
                let pair = v.as_array().and_then(|a| match a.as_slice() {
                    [d, t] => Some((d.as_u64()?, t.as_u64()?)),
                    _ => None,
                });
                let shaped = match pair {
                    Some((done, total)) => serde_json::json!({ "done": done, "total": total }),
                    None => v,
                };
                out.insert(key, shaped);
            }
            k if TIME_KEYS.contains(&k) => match v.as_i64() {
                Some(secs) => {
                    let none = secs == 0 && ZERO_IS_NONE.contains(&k);
                    let text = if none { None } else { rfc3339(secs) };
                    out.insert(format!("{key}-unix"), Json::from(secs));
                    out.insert(key, text.map_or(Json::Null, Json::from));
                }
                None => {
                    out.insert(key, v);
                }
            },
            _ => {
                out.insert(key, v);
            }
        }
    }
    Json::Object(out)
}

/// A dictionary from the daemon (summary, folder, outbox entry, report)
/// in the one style.
pub fn dict(d: &OwnedDict) -> Json {
    reshape(output::dict_to_json(d), false)
}

/// An account's properties in the one style (`Id` → `account` +
/// `account-path`).
pub fn account(props: &OwnedDict) -> Json {
    reshape(output::dict_to_json(props), true)
}

#[cfg(test)]
mod tests;

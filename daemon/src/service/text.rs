//! # Text that is valid on D-Bus
//!
//! A D-Bus string is valid UTF-8 without NUL: a message carrying a NUL is
//! invalid and dbus-daemon drops the connection that sent it, taking
//! facteurd off the bus. Much of what facteurd sends comes from servers —
//! folder names (a literal may hold any byte; modified UTF-7 `&AAA-` decodes
//! to NUL), subjects and addresses decoded by mail-parser, error texts
//! quoting a server, Verify reports — so every string leaves through
//! [`dbus_text`], here at the edge, and the modules behind keep the bytes
//! as they came (a folder's key stays its raw name).
//!
//! Rust strings are UTF-8 already (invalid bytes and lone surrogates were
//! replaced or kept encoded where they were decoded), so what remains is
//! NUL and the other control characters, shown as their visible Control
//! Pictures (U+2400…) so that a person can tell them apart. Tab and line
//! feed stay as they are.

use std::borrow::Cow;
use std::collections::HashMap;

use zbus::zvariant::{Array, OwnedValue, Value};

/// Whether `c` is replaced.
fn escaped(c: char) -> bool {
    c.is_control() && c != '\t' && c != '\n'
}

/// `s` with NUL and control characters made visible: valid in any D-Bus
/// string.
pub fn dbus_text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(escaped) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| match c {
                c if !escaped(c) => c,
                '\u{7f}' => '\u{2421}',
                c if (c as u32) < 0x20 => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
                _ => '\u{fffd}',
            })
            .collect(),
    )
}

/// [`dbus_text`] on an owned string.
pub fn dbus_string(s: String) -> String {
    match dbus_text(&s) {
        Cow::Borrowed(_) => s,
        Cow::Owned(o) => o,
    }
}

/// A value with every string in it passed through [`dbus_text`] (strings,
/// arrays and dictionaries of them, variants, at any depth).
pub fn clean_value(v: Value<'_>) -> Value<'_> {
    match v {
        Value::Str(s) => match dbus_text(s.as_str()) {
            Cow::Borrowed(_) => Value::Str(s),
            Cow::Owned(o) => Value::from(o),
        },
        Value::Array(a) => {
            let mut out = Array::new(a.element_signature());
            for e in a.inner() {
                let Ok(e) = e.try_clone() else {
                    return Value::Array(a);
                };
                if out.append(clean_value(e)).is_err() {
                    return Value::Array(a);
                }
            }
            Value::Array(out)
        }
        Value::Dict(mut d) => {
            for (_, v) in d.iter_mut() {
                let Ok(owned) = v.try_clone() else {
                    continue;
                };
                *v = clean_value(owned);
            }
            Value::Dict(d)
        }
        Value::Value(inner) => Value::Value(Box::new(clean_value(*inner))),
        other => other,
    }
}

/// An `a{sv}` with every string in it passed through [`dbus_text`].
pub fn clean_dict(d: HashMap<String, OwnedValue>) -> HashMap<String, OwnedValue> {
    d.into_iter()
        .map(|(k, v)| {
            let cleaned = v
                .try_clone()
                .ok()
                .and_then(|c| OwnedValue::try_from(clean_value(Value::from(c))).ok());
            (dbus_string(k), cleaned.unwrap_or(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_control_characters_are_made_visible() {
        assert_eq!(dbus_text("a\0b"), "a\u{2400}b");
        assert_eq!(
            dbus_text("bell\u{7}\u{1b}[31m\u{7f}"),
            "bell\u{2407}\u{241b}[31m\u{2421}"
        );
        assert_eq!(dbus_text("c1 \u{85} \u{9b}"), "c1 \u{fffd} \u{fffd}");
        assert_eq!(dbus_text("tab\tline\n"), "tab\tline\n");
        assert!(matches!(dbus_text("Café ✓"), Cow::Borrowed("Café ✓")));
        assert_eq!(dbus_text("cr\r"), "cr\u{240d}");
    }

    #[test]
    fn folder_names_from_modified_utf7() {
        // U+0000 in modified UTF-7.
        let nul = crate::imap::utf7::decode("A&AAA-B");
        assert_eq!(nul, "A\0B");
        assert_eq!(dbus_text(&nul), "A\u{2400}B");
        // A lone high surrogate is not valid UTF-16: the name is shown as
        // the server spells it, which is plain ASCII.
        let lone = crate::imap::utf7::decode("&2AA-x");
        assert_eq!(dbus_text(&lone), "&2AA-x");
        assert!(!dbus_text(&lone).contains('\0'));
    }

    #[test]
    fn values_are_cleaned_at_any_depth() {
        let v = clean_value(Value::from(vec!["ok".to_owned(), "n\0l".to_owned()]));
        let back: Vec<String> = v.try_into().expect("as");
        assert_eq!(back, ["ok", "n\u{2400}l"]);
        let mut d = HashMap::new();
        d.insert(
            "subject".to_owned(),
            OwnedValue::from(zbus::zvariant::Str::from("x\0")),
        );
        let d = clean_dict(d);
        let s: String = d["subject"]
            .try_clone()
            .expect("str")
            .try_into()
            .expect("s");
        assert_eq!(s, "x\u{2400}");
    }
}

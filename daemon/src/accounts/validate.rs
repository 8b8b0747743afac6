//! # Settings validation
//!
//! Turns a settings dictionary ([`Input`], converted from D-Bus by the
//! service layer) into [`Settings`] changes. One function,
//! [`apply`], serves CreateAccount, Update and VerifySettings, so the same
//! input is refused the same way everywhere. Every refusal names the key and
//! the problem; a password's value never appears in a message.

use std::collections::HashMap;
use std::net::IpAddr;

use facteur_dbus::keys::{self, KeyKind, FOLDER_ROLES};
use zeroize::Zeroizing;

use super::{Passwords, Protocol, Security, Settings};

/// A value that is not acceptable; the message names the key.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid(pub String);

/// Why a create or update was refused.
#[derive(Debug)]
pub enum Change {
    /// A key, type or value is wrong (`InvalidArgument`).
    Invalid(String),
    /// The same mailbox is already configured (`AlreadyExists`).
    AlreadyExists(String),
    /// The account is gone (deleted meanwhile) (`NotFound`).
    NotFound(String),
    /// Storing failed (`Internal`).
    Internal(anyhow::Error),
}

impl From<Invalid> for Change {
    fn from(e: Invalid) -> Self {
        Change::Invalid(e.0)
    }
}

const MAX_NAME: usize = 256;
const MAX_PASSWORD: usize = 4096;
const MAX_FOLDER: usize = 1024;
const MAX_LOGIN: usize = 1024;
/// A day, the longest poll interval that still means "poll".
const MAX_POLL_MINUTES: u32 = 24 * 60;

fn invalid(key: &str, problem: impl std::fmt::Display) -> Invalid {
    Invalid(format!("{key}: {problem}"))
}

/// One value of a settings dictionary, as the caller sent it.
#[derive(Clone, PartialEq)]
pub enum Given {
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// An integer of any width or signedness; its range is checked
    /// against the key's.
    Int(i128),
    /// Anything else, by its D-Bus signature (always refused).
    Other(String),
}

impl std::fmt::Debug for Given {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Strings may be passwords: never printed.
        match self {
            Given::Str(_) => f.write_str("Str(..)"),
            Given::Bool(b) => write!(f, "Bool({b})"),
            Given::Int(n) => write!(f, "Int({n})"),
            Given::Other(sig) => write!(f, "Other({sig})"),
        }
    }
}

/// A settings dictionary: key → value.
pub type Input = HashMap<String, Given>;

/// A typed view of one value, after its type was checked.
enum Typed<'a> {
    Str(&'a str),
    Bool(bool),
    U16(u16),
    U32(u32),
}

fn typed<'a>(key: &keys::Key, value: &'a Given) -> Result<Typed<'a>, Invalid> {
    let example = match key.kind {
        KeyKind::Str | KeyKind::Secret => "<'…'>",
        KeyKind::Bool => "<true>",
        KeyKind::U16 => "<uint16 993>",
        KeyKind::U32 => "<uint32 15>",
    };
    let got = match (key.kind, value) {
        (KeyKind::Str | KeyKind::Secret, Given::Str(s)) => return Ok(Typed::Str(s.as_str())),
        (KeyKind::Bool, Given::Bool(b)) => return Ok(Typed::Bool(*b)),
        (KeyKind::U16 | KeyKind::U32, Given::Int(n)) => {
            let fits = match key.kind {
                KeyKind::U16 => u16::try_from(*n).map(Typed::U16).ok(),
                _ => u32::try_from(*n).map(Typed::U32).ok(),
            };
            return fits.ok_or_else(|| {
                invalid(
                    key.name,
                    format!(
                        "{n} does not fit a {} (0 to {})",
                        key.kind.type_name(),
                        if key.kind == KeyKind::U16 {
                            u64::from(u16::MAX)
                        } else {
                            u64::from(u32::MAX)
                        }
                    ),
                )
            });
        }
        (_, Given::Str(_)) => "s".to_owned(),
        (_, Given::Bool(_)) => "b".to_owned(),
        (_, Given::Int(_)) => "an integer".to_owned(),
        (_, Given::Other(sig)) => sig.clone(),
    };
    Err(invalid(
        key.name,
        format!(
            "expected a {} ('{}'), got '{got}' (with gdbus write {example})",
            key.kind.type_name(),
            key.kind.signature()
        ),
    ))
}

fn text<'a>(key: &str, v: Typed<'a>) -> &'a str {
    match v {
        Typed::Str(s) => s,
        // typed() already checked the kind against the key table.
        _ => {
            debug_assert!(false, "{key} is not a string key");
            ""
        }
    }
}

/// Apply `dict` to `base`. With `creating`, the keys a new account needs
/// must be there. Returns the new settings and any passwords given; checks
/// the result as a whole ([`check_settings`]).
pub fn apply(
    mut s: Settings,
    dict: &Input,
    creating: bool,
) -> Result<(Settings, Passwords), Change> {
    let mut passwords = Passwords::default();
    // Sorted, so that with several bad keys the message is always the same.
    let mut entries: Vec<_> = dict.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (name, value) in entries {
        let key = keys::find(name).ok_or_else(|| {
            invalid(
                name,
                format!(
                    "unknown settings key; known keys are {}",
                    keys::KEYS
                        .iter()
                        .map(|k| k.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        let v = typed(key, value)?;
        match (key.name, v) {
            (keys::NAME, v) => {
                let t = text(key.name, v);
                s.name = (!t.is_empty()).then(|| t.to_owned());
            }
            (keys::EMAIL, v) => s.email = text(key.name, v).trim().to_owned(),
            (keys::DISPLAY_NAME, v) => s.display_name = text(key.name, v).to_owned(),
            (keys::USE_UNIFIED, Typed::Bool(b)) => s.use_unified = b,
            (keys::INCOMING_PROTOCOL, v) => {
                s.incoming_protocol = match text(key.name, v) {
                    "imap" => Protocol::Imap,
                    "pop3" => Protocol::Pop3,
                    other => {
                        return Err(invalid(
                            key.name,
                            format!("{other:?} is not one of imap, pop3"),
                        )
                        .into())
                    }
                }
            }
            (keys::INCOMING_HOST, v) => s.incoming_host = text(key.name, v).trim().to_owned(),
            (keys::INCOMING_PORT, Typed::U16(p)) => s.incoming_port = Some(port(key.name, p)?),
            (keys::INCOMING_SECURITY, v) => {
                s.incoming_security = security(key.name, text(key.name, v))?
            }
            (keys::INCOMING_LOGIN, v) => {
                let t = text(key.name, v);
                s.incoming_login = (!t.is_empty()).then(|| t.to_owned());
            }
            (keys::INCOMING_PASSWORD, v) => {
                passwords.incoming = Some(password(key.name, text(key.name, v))?)
            }
            (keys::POLL_INTERVAL_MINUTES, Typed::U32(m)) => {
                if m == 0 || m > MAX_POLL_MINUTES {
                    return Err(invalid(
                        key.name,
                        format!("{m} is outside 1 to {MAX_POLL_MINUTES} minutes"),
                    )
                    .into());
                }
                s.poll_interval_minutes = m;
            }
            (keys::LEAVE_ON_SERVER, Typed::Bool(b)) => s.leave_on_server = b,
            (keys::DELETE_ON_SERVER, Typed::Bool(b)) => s.delete_on_server = b,
            (keys::SMTP_HOST, v) => s.smtp_host = text(key.name, v).trim().to_owned(),
            (keys::SMTP_PORT, Typed::U16(p)) => s.smtp_port = Some(port(key.name, p)?),
            (keys::SMTP_SECURITY, v) => s.smtp_security = security(key.name, text(key.name, v))?,
            (keys::SMTP_LOGIN, v) => {
                let t = text(key.name, v);
                s.smtp_login = (!t.is_empty()).then(|| t.to_owned());
            }
            (keys::SMTP_PASSWORD, v) => {
                passwords.smtp = Some(password(key.name, text(key.name, v))?)
            }
            (keys::ACCEPT_INVALID_CERTS, Typed::Bool(b)) => s.accept_invalid_certs = b,
            (name, v) => {
                let role = FOLDER_ROLES
                    .iter()
                    .find(|(_, k)| *k == name)
                    .map(|(role, _)| *role)
                    .ok_or_else(|| invalid(name, "not handled by this daemon version"))?;
                let folder = text(name, v);
                if folder.is_empty() {
                    s.folders.remove(role);
                } else {
                    s.folders.insert(role.to_owned(), folder.to_owned());
                }
            }
        }
    }
    if creating {
        if s.email.is_empty() {
            return Err(invalid(keys::EMAIL, "required: the account's e-mail address").into());
        }
        if s.incoming_host.is_empty() {
            return Err(invalid(
                keys::INCOMING_HOST,
                "required: the IMAP or POP3 server's host name",
            )
            .into());
        }
    }
    check_settings(&s)?;
    Ok((s, passwords))
}

/// Check settings as a whole: what [`apply`] produces and what is read back
/// from a file edited by hand.
pub fn check_settings(s: &Settings) -> Result<(), Invalid> {
    if let Some(name) = &s.name {
        bounded_text(keys::NAME, name, MAX_NAME)?;
    }
    email(keys::EMAIL, &s.email)?;
    bounded_text(keys::DISPLAY_NAME, &s.display_name, MAX_NAME)?;
    host(keys::INCOMING_HOST, &s.incoming_host)?;
    if let Some(p) = s.incoming_port {
        port(keys::INCOMING_PORT, p)?;
    }
    if let Some(login) = &s.incoming_login {
        bounded_text(keys::INCOMING_LOGIN, login, MAX_LOGIN)?;
    }
    if s.poll_interval_minutes == 0 || s.poll_interval_minutes > MAX_POLL_MINUTES {
        return Err(invalid(
            keys::POLL_INTERVAL_MINUTES,
            format!(
                "{} is outside 1 to {MAX_POLL_MINUTES}",
                s.poll_interval_minutes
            ),
        ));
    }
    if !s.smtp_host.is_empty() {
        host(keys::SMTP_HOST, &s.smtp_host)?;
    }
    if let Some(p) = s.smtp_port {
        port(keys::SMTP_PORT, p)?;
    }
    if let Some(login) = &s.smtp_login {
        bounded_text(keys::SMTP_LOGIN, login, MAX_LOGIN)?;
    }
    for (role, folder) in &s.folders {
        let key = FOLDER_ROLES
            .iter()
            .find(|(r, _)| r == role)
            .map(|(_, k)| *k)
            .ok_or_else(|| invalid("folders", format!("{role:?} is not a folder role")))?;
        bounded_text(key, folder, MAX_FOLDER)?;
    }
    Ok(())
}

fn bounded_text(key: &str, value: &str, max: usize) -> Result<(), Invalid> {
    let n = value.chars().count();
    if n > max {
        return Err(invalid(key, format!("{n} characters is longer than {max}")));
    }
    // Control characters would end up in mail headers or file names.
    if value.chars().any(char::is_control) {
        return Err(invalid(key, "contains control characters"));
    }
    Ok(())
}

fn port(key: &str, p: u16) -> Result<u16, Invalid> {
    if p == 0 {
        return Err(invalid(key, "0 is not a valid port (1 to 65535)"));
    }
    Ok(p)
}

fn security(key: &str, value: &str) -> Result<Security, Invalid> {
    match value {
        "tls" => Ok(Security::Tls),
        "starttls" => Ok(Security::Starttls),
        "none" => Ok(Security::None),
        other => Err(invalid(
            key,
            format!("{other:?} is not one of tls, starttls, none"),
        )),
    }
}

fn password(key: &str, value: &str) -> Result<Zeroizing<String>, Invalid> {
    // Never echo the value: only its shape.
    if value.len() > MAX_PASSWORD {
        return Err(invalid(key, format!("longer than {MAX_PASSWORD} bytes")));
    }
    if value.contains(['\0', '\r', '\n']) {
        return Err(invalid(key, "contains NUL or line-break characters"));
    }
    Ok(Zeroizing::new(value.to_owned()))
}

/// Check a host name (RFC 1123 labels) or an IP address literal.
pub fn host(key: &str, value: &str) -> Result<(), Invalid> {
    if value.is_empty() {
        return Err(invalid(key, "empty host name"));
    }
    let bare = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(value);
    if bare.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let name = value.strip_suffix('.').unwrap_or(value);
    let bad = |why: &str| {
        Err(invalid(
            key,
            format!("{value:?} is not a valid host name: {why}"),
        ))
    };
    if name.len() > 253 {
        return bad("longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return bad("empty label");
        }
        if label.len() > 63 {
            return bad("a label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad("only letters, digits, '-' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label starts or ends with '-'");
        }
    }
    if name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad("looks like a malformed IP address");
    }
    Ok(())
}

/// Check an address `local@domain` (RFC 5321 sizes, RFC 5322 dot-atom
/// local part, or a quoted one; the domain a host name or `[ip]`).
pub fn email(key: &str, value: &str) -> Result<(), Invalid> {
    let bad = |why: &str| {
        Err(invalid(
            key,
            format!("{value:?} is not an e-mail address: {why}"),
        ))
    };
    if value.is_empty() {
        return bad("empty");
    }
    if value.len() > 254 {
        return bad("longer than 254 characters");
    }
    let Some((local, domain)) = value.rsplit_once('@') else {
        return bad("no '@'");
    };
    if local.is_empty() || local.len() > 64 {
        return bad("the part before '@' must have 1 to 64 characters");
    }
    let quoted = local.len() >= 2 && local.starts_with('"') && local.ends_with('"');
    if quoted {
        if local.chars().any(|c| c.is_control()) {
            return bad("control characters in the quoted local part");
        }
    } else {
        const SPECIALS: &str = "!#$%&'*+/=?^_`{|}~-";
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return bad("misplaced '.' before '@'");
        }
        if !local
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || SPECIALS.contains(c))
        {
            return bad("characters not allowed before '@'");
        }
    }
    if domain.is_empty() {
        return bad("no domain after '@'");
    }
    host(key, domain).map_err(|_| {
        invalid(
            key,
            format!("{value:?} is not an e-mail address: bad domain {domain:?}"),
        )
    })
}

//! Checking what a caller names: message ids, flags and folders.
//!
//! Folder names use `/` between levels. For an IMAP account they are
//! mapped to the server's hierarchy delimiter (the one its stored folders
//! use) and its personal-namespace prefix (inferred from the stored
//! folders: when every folder but INBOX lives under `INBOX<delimiter>`, as
//! on Courier, that prefix is added), then encoded in modified UTF-7. A
//! name is looked up by display name, by raw name, then by that mapping;
//! `INBOX` in any case is INBOX. POP3 folders are local: the name is kept
//! as given, with `/` as the delimiter.

use super::Refused;
use crate::imap::utf7;
use crate::store::{Flag, FolderInfo, MessageId};

/// Parse message ids; the first malformed one is refused.
pub fn parse_ids(ids: &[String]) -> Result<Vec<MessageId>, Refused> {
    ids.iter()
        .map(|s| {
            s.parse::<MessageId>()
                .map_err(|()| Refused::Invalid(format!("{s:?} is not a message id")))
        })
        .collect()
}

/// Parse a flag name: a system flag (`seen`, `\Seen`, any case) or an IMAP
/// keyword atom.
pub fn parse_flag(name: &str) -> Result<Flag, Refused> {
    let bare = name.strip_prefix('\\').unwrap_or(name);
    let system = match bare.to_ascii_lowercase().as_str() {
        "seen" => Some(Flag::Seen),
        "flagged" => Some(Flag::Flagged),
        "answered" => Some(Flag::Answered),
        "draft" => Some(Flag::Draft),
        "deleted" => Some(Flag::Deleted),
        _ => None,
    };
    if let Some(f) = system {
        return Ok(f);
    }
    let atom = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('\\')
        && name
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && !b"(){ %*\"\\]".contains(&b));
    if atom {
        Ok(Flag::Keyword(name.to_owned()))
    } else {
        Err(Refused::Invalid(format!(
            "{name:?} is not a flag: use seen, flagged, answered, draft, deleted or an IMAP keyword \
             (1-255 printable ASCII characters, none of ( ) {{ space % * \" \\ ])"
        )))
    }
}

/// Parse the flags to add and remove; the same flag in both is refused.
pub fn parse_flags(add: &[String], remove: &[String]) -> Result<(Vec<Flag>, Vec<Flag>), Refused> {
    let add: Vec<Flag> = add
        .iter()
        .map(|f| parse_flag(f))
        .collect::<Result<_, _>>()?;
    let remove: Vec<Flag> = remove
        .iter()
        .map(|f| parse_flag(f))
        .collect::<Result<_, _>>()?;
    for a in &add {
        if remove.iter().any(|r| same(a, r)) {
            return Err(Refused::Invalid(format!(
                "{} is both added and removed",
                flag_name(a)
            )));
        }
    }
    Ok((add, remove))
}

fn same(a: &Flag, b: &Flag) -> bool {
    match (a, b) {
        (Flag::Keyword(x), Flag::Keyword(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

fn flag_name(f: &Flag) -> String {
    match f {
        Flag::Seen => "seen".into(),
        Flag::Answered => "answered".into(),
        Flag::Flagged => "flagged".into(),
        Flag::Deleted => "deleted".into(),
        Flag::Draft => "draft".into(),
        Flag::Keyword(k) => k.clone(),
    }
}

/// How an account spells folder names.
pub struct Naming {
    /// The hierarchy delimiter.
    pub delimiter: String,
    /// The personal-namespace prefix (`INBOX.` on Courier), or empty.
    pub prefix: String,
    /// Whether names go to an IMAP server (modified UTF-7).
    pub imap: bool,
}

impl Naming {
    /// The naming of an account with these stored folders.
    pub fn infer(folders: &[FolderInfo], imap: bool) -> Self {
        if !imap {
            return Naming {
                delimiter: "/".into(),
                prefix: String::new(),
                imap,
            };
        }
        let mut counts: Vec<(String, usize)> = Vec::new();
        for d in folders.iter().filter_map(|f| f.delimiter.clone()) {
            match counts.iter_mut().find(|(x, _)| *x == d) {
                Some((_, n)) => *n += 1,
                None => counts.push((d, 1)),
            }
        }
        let delimiter = counts
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(d, _)| d)
            .unwrap_or_else(|| "/".into());
        let under = format!("INBOX{delimiter}");
        let others: Vec<&FolderInfo> = folders
            .iter()
            .filter(|f| !f.name.eq_ignore_ascii_case("INBOX"))
            .collect();
        let prefixed = !others.is_empty()
            && others
                .iter()
                .all(|f| f.name.len() > under.len() && starts_with_ignore_case(&f.name, &under));
        Naming {
            prefix: if prefixed { under } else { String::new() },
            delimiter,
            imap,
        }
    }

    /// The raw and display names of a `/`-separated name.
    pub fn raw(&self, name: &str) -> Result<(String, String), Refused> {
        let bad = |why: &str| Refused::Invalid(format!("{name:?} is not a folder name: {why}"));
        if name.is_empty() || name.len() > 1000 {
            return Err(bad("it must have 1 to 1000 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(bad("it has control characters"));
        }
        let levels: Vec<&str> = name.split('/').collect();
        if levels.iter().any(|l| l.is_empty()) {
            return Err(bad("a level is empty"));
        }
        if !self.imap {
            return Ok((name.to_owned(), name.to_owned()));
        }
        if self.delimiter != "/" && levels.iter().any(|l| l.contains(self.delimiter.as_str())) {
            return Err(bad(&format!(
                "a level contains the server's delimiter {:?}",
                self.delimiter
            )));
        }
        if levels.len() == 1 && levels[0].eq_ignore_ascii_case("INBOX") {
            return Ok(("INBOX".into(), "INBOX".into()));
        }
        let joined = levels.join(&self.delimiter);
        let raw = if let Some(rest) = strip_prefix_ignore_case(&joined, "INBOX") {
            format!("INBOX{rest}")
        } else {
            format!("{}{joined}", self.prefix)
        };
        let raw = utf7::encode(&raw);
        Ok((raw.clone(), utf7::decode(&raw)))
    }
}

/// `s` without its first `prefix.len()` bytes when they are `prefix` in
/// any ASCII case (never slicing inside a character of a non-ASCII name).
fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// Whether `s` starts with `prefix` in any ASCII case.
fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    strip_prefix_ignore_case(s, prefix).is_some()
}

/// Whether a raw name is INBOX.
pub fn is_inbox(raw: &str) -> bool {
    raw.eq_ignore_ascii_case("INBOX")
}

/// Look a folder up by display name, raw name, or mapped name.
pub fn find<'a>(folders: &'a [FolderInfo], naming: &Naming, name: &str) -> Option<&'a FolderInfo> {
    if is_inbox(name) {
        return folders.iter().find(|f| is_inbox(&f.name));
    }
    if let Some(f) = folders
        .iter()
        .find(|f| f.display == name)
        .or_else(|| folders.iter().find(|f| f.name == name))
    {
        return Some(f);
    }
    let (raw, _) = naming.raw(name).ok()?;
    folders.iter().find(|f| f.name == raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str, delimiter: &str) -> FolderInfo {
        FolderInfo {
            no: 1,
            name: name.into(),
            display: utf7::decode(name),
            delimiter: Some(delimiter.into()),
            role: None,
            selectable: true,
            state: None,
        }
    }

    #[test]
    fn flags_parse_and_refuse() {
        assert_eq!(parse_flag("Seen").ok(), Some(Flag::Seen));
        assert_eq!(parse_flag("\\Flagged").ok(), Some(Flag::Flagged));
        assert_eq!(
            parse_flag("$Junk").ok(),
            Some(Flag::Keyword("$Junk".into()))
        );
        for bad in [
            "",
            "\\Recent",
            "a b",
            "x(",
            "q\"",
            "a]",
            "%",
            "*",
            "é",
            &"k".repeat(256),
        ] {
            assert!(
                matches!(parse_flag(bad), Err(Refused::Invalid(_))),
                "{bad:?} accepted"
            );
        }
        assert!(matches!(
            parse_flags(&["work".into()], &["WORK".into()]),
            Err(Refused::Invalid(_))
        ));
        assert!(matches!(
            parse_flags(&["seen".into()], &["\\seen".into()]),
            Err(Refused::Invalid(_))
        ));
    }

    #[test]
    fn ids_parse_or_name_the_bad_one() {
        let r = parse_ids(&["a.1.2.3".into(), "nope".into()]);
        assert!(matches!(r, Err(Refused::Invalid(m)) if m.contains("nope")));
    }

    #[test]
    fn names_map_to_the_server_spelling() -> Result<(), String> {
        let dovecot = [
            folder("INBOX", "."),
            folder("Sent", "."),
            folder("Trash", "."),
        ];
        let n = Naming::infer(&dovecot, true);
        assert_eq!(n.prefix, "");
        let (raw, display) = n.raw("Work/Été").map_err(|_| "refused")?;
        assert_eq!(raw, "Work.&AMk-t&AOk-");
        assert_eq!(display, "Work.Été");
        assert!(n.raw("a.b/c").is_err());
        assert!(n.raw("a//c").is_err());
        let courier = [
            folder("INBOX", "."),
            folder("INBOX.Sent", "."),
            folder("INBOX.Trash", "."),
        ];
        let n = Naming::infer(&courier, true);
        assert_eq!(n.prefix, "INBOX.");
        assert_eq!(n.raw("Work").map_err(|_| "refused")?.0, "INBOX.Work");
        assert_eq!(n.raw("INBOX/Work").map_err(|_| "refused")?.0, "INBOX.Work");
        assert_eq!(n.raw("inbox").map_err(|_| "refused")?.0, "INBOX");
        assert!(find(&courier, &n, "Sent").is_some());
        assert!(find(&courier, &n, "inbox").is_some());
        assert!(find(&courier, &n, "INBOX.Trash").is_some());
        assert!(find(&courier, &n, "Nope").is_none());
        Ok(())
    }

    #[test]
    fn non_ascii_raw_names_do_not_panic() -> Result<(), String> {
        // Raw names as a server may send them (8-bit, not modified UTF-7):
        // the 6th byte of "INBOXéx" is inside "é".
        let odd = [
            folder("INBOX", "."),
            folder("INBOXéx", "."),
            folder("INBOé", "."),
            folder("é", "."),
        ];
        let plain = Naming::infer(&odd, true);
        assert_eq!(plain.prefix, "");
        assert!(plain.raw("INBOé/x").is_ok());
        assert!(plain.raw("inbox/é").is_ok());
        let all_under = [
            folder("INBOX", "é"),
            folder("INBOXéx", "é"),
            folder("INBOXéy", "é"),
        ];
        let n = Naming::infer(&all_under, true);
        assert_eq!(n.prefix, "INBOXé");
        assert!(find(&odd, &n, "INBOXéx").is_some());
        assert_eq!(strip_prefix_ignore_case("INBé", "INBOX"), None);
        assert_eq!(strip_prefix_ignore_case("inboxé", "INBOX"), Some("é"));
        Ok(())
    }
}

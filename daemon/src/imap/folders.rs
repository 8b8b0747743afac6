//! # IMAP folder list
//!
//! `LIST "" "*"` read to its tagged `OK` (a list cut short must not drop
//! the local copy of the folders it left out), SPECIAL-USE roles (RFC 6154)
//! or name heuristics when the server has none, names decoded from
//! modified UTF-7 for display and kept byte for byte (as the server spells
//! them) for the protocol and the store.
//!
//! Display names are unique per account: two server names that decode to
//! the same text (`&AOk-` and a raw UTF-8 `é`) both stay, the second shown
//! with its server spelling beside it. A name that cannot be sent back in a
//! command as the server spelled it (CR or LF; bytes that are not UTF-8,
//! which imap-proto hands over as U+FFFD) is listed but not selected.

use std::collections::{BTreeMap, BTreeSet};

use tokio::time::Instant;
use tracing::{info, warn};

use super::command::{self, Listed};
use super::{utf7, Engine, LIST_RETRY};
use crate::net::Failure;
use crate::store::FolderInfo;

use super::session::ImapSession;

fn local(e: anyhow::Error) -> Failure {
    Failure::from(e)
}

/// Role of a folder from its name, for servers without SPECIAL-USE.
pub fn role_from_name(display: &str, delimiter: Option<&str>) -> Option<&'static str> {
    let leaf = match delimiter {
        Some(d) if !d.is_empty() => display.rsplit(d).next().unwrap_or(display),
        _ => display,
    };
    let leaf = leaf.to_lowercase();
    let table: &[(&str, &[&str])] = &[
        (
            "sent",
            &[
                "sent",
                "sent items",
                "sent messages",
                "sent mail",
                "envoyés",
                "éléments envoyés",
                "gesendet",
            ],
        ),
        ("drafts", &["drafts", "draft", "brouillons", "entwürfe"]),
        (
            "trash",
            &[
                "trash",
                "deleted items",
                "deleted messages",
                "corbeille",
                "papierkorb",
                "bin",
            ],
        ),
        (
            "spam",
            &[
                "spam",
                "junk",
                "junk e-mail",
                "junk mail",
                "courrier indésirable",
                "indésirables",
            ],
        ),
        ("archive", &["archive", "archives"]),
    ];
    table
        .iter()
        .find(|(_, names)| names.contains(&leaf.as_str()))
        .map(|(role, _)| *role)
}

/// The display name of each raw name: decoded, and made unique. Of names
/// that decode alike, the one spelled as its display (raw UTF-8) or else
/// the first by raw name keeps the plain text; the others get their server
/// spelling in brackets.
pub fn display_names(raw: &[String]) -> BTreeMap<String, String> {
    let decode = |r: &str| {
        if r.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_owned()
        } else {
            utf7::decode(r)
        }
    };
    let mut groups: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for r in raw {
        groups.entry(decode(r)).or_default().push(r);
    }
    let mut out = BTreeMap::new();
    let mut taken: BTreeSet<String> = groups.keys().cloned().collect();
    for (display, mut names) in groups {
        names.sort();
        names.dedup();
        let keeper = names.iter().position(|n| **n == display).unwrap_or(0);
        for (i, n) in names.iter().enumerate() {
            if i == keeper {
                out.insert((*n).clone(), display.clone());
                continue;
            }
            let mut alt = format!("{display} [{n}]");
            while !taken.insert(alt.clone()) {
                alt.push('\'');
            }
            out.insert((*n).clone(), alt);
        }
    }
    out
}

impl Engine {
    /// LIST every folder, record them, forget the ones the server dropped.
    /// Returns the selectable folders, INBOX first.
    pub(super) async fn sync_folder_list(
        &self,
        session: &mut ImapSession,
    ) -> Result<Vec<FolderInfo>, Failure> {
        let mut names: Vec<Listed> = Vec::new();
        command::run(session, "LIST", "LIST \"\" \"*\"", |r| {
            if let Some(l) = command::listed(r) {
                names.push(l);
            }
        })
        .await?;
        let any_special = names.iter().any(|n| n.role.is_some());
        let displays = display_names(&names.iter().map(|n| n.name.clone()).collect::<Vec<_>>());
        let mut seen = BTreeSet::new();
        let mut folders = Vec::new();
        for n in &names {
            if !seen.insert(n.name.clone()) {
                continue;
            }
            let raw = n.name.as_str();
            let shown = displays.get(raw).cloned().unwrap_or_else(|| raw.to_owned());
            // A line break cannot be sent back in a command; a name that
            // was not UTF-8 reaches us with U+FFFD in place of its bytes
            // (imap-proto decodes lossily), so it cannot be named back
            // exactly. Both are listed, and not opened.
            let sendable = !raw.contains(['\r', '\n', '\u{fffd}']);
            if !sendable {
                warn!(
                    "Account {}: the server lists a folder whose name cannot be sent back \
                     as it is spelled ({:?}: a line break, or bytes that are not UTF-8); \
                     it is listed but not synced.",
                    self.id, shown
                );
            }
            let selectable = !n.noselect && sendable;
            let role = if raw.eq_ignore_ascii_case("INBOX") {
                Some("inbox")
            } else if any_special {
                n.role
            } else {
                role_from_name(&shown, n.delimiter.as_deref())
            };
            let (id, raw_name, display) = (self.id.clone(), raw.to_owned(), shown.clone());
            let (delimiter, role) = (n.delimiter.clone(), role.map(str::to_owned));
            let info = self
                .blocking(move |store| {
                    store.upsert_folder(&id, &raw_name, &display, delimiter, role, selectable)
                })
                .await?;
            if selectable {
                folders.push(info);
            }
        }
        let id = self.id.clone();
        for old in self.blocking(move |store| store.folders(&id)).await? {
            if !seen.contains(&old.name) {
                info!(
                    "Account {}: folder {:?} is gone from the server; dropping its local copy.",
                    self.id, old.display
                );
                self.store
                    .clear_folder(&self.id, &old, true)
                    .await
                    .map_err(local)?;
                self.reporter.counts();
            }
        }
        folders.sort_by_key(|f| (f.role.as_deref() != Some("inbox"), f.display.clone()));
        Ok(folders)
    }

    /// The folders of a full pass: LIST, or the folders known so far while
    /// LIST is set aside after an answer the parser refused.
    pub(super) async fn list_or_known(
        &mut self,
        session: &mut ImapSession,
    ) -> Result<Vec<FolderInfo>, Failure> {
        let list_ok = self
            .list_unreadable_until
            .is_none_or(|until| Instant::now() >= until);
        if list_ok {
            return match self.sync_folder_list(session).await {
                Ok(f) => {
                    self.list_unreadable_until = None;
                    Ok(f)
                }
                Err(f) if command::is_unreadable(&f) => {
                    // One entry the parser refuses fails the whole LIST
                    // and the connection with it. Do not get stuck on it: sync the folders known so far
                    // for a while, and try LIST again later.
                    self.list_unreadable_until = Some(Instant::now() + LIST_RETRY);
                    Err(Failure::new(
                        f.kind,
                        format!(
                            "{}; syncing the folders known so far, listing again in {} min",
                            f.message,
                            LIST_RETRY.as_secs() / 60
                        ),
                    ))
                }
                Err(f) => Err(f),
            };
        }
        let id = self.id.clone();
        let mut known: Vec<_> = self
            .blocking(move |store| store.folders(&id))
            .await?
            .into_iter()
            .filter(|f| f.selectable)
            .collect();
        if !known.iter().any(|f| f.name.eq_ignore_ascii_case("INBOX")) {
            let id = self.id.clone();
            known.push(
                self.blocking(move |store| {
                    store.upsert_folder(&id, "INBOX", "INBOX", None, Some("inbox".into()), true)
                })
                .await?,
            );
        }
        Ok(known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_from_names() {
        assert_eq!(role_from_name("INBOX/Sent Items", Some("/")), Some("sent"));
        assert_eq!(role_from_name("Corbeille", Some(".")), Some("trash"));
        assert_eq!(role_from_name("Work", Some("/")), None);
    }

    #[test]
    fn names_that_decode_alike_stay_distinct() {
        let raw = vec!["Caf&AOk-".to_owned(), "Café".to_owned(), "Work".to_owned()];
        let d = display_names(&raw);
        assert_eq!(d["Café"], "Café");
        assert_eq!(d["Caf&AOk-"], "Café [Caf&AOk-]");
        assert_eq!(d["Work"], "Work");
        let raw = vec!["&AOk-".to_owned(), "&AOk".to_owned()];
        let d = display_names(&raw);
        let shown: BTreeSet<_> = d.values().collect();
        assert_eq!(shown.len(), 2);
    }
}

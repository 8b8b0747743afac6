//! Folding a manifest into the messages, unique-ids and highest UIDs it
//! describes, and compacting it back into lines.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead as _;
use std::path::Path;

use anyhow::{Context as _, Result};
use tracing::warn;

use crate::store::pop3::UidlEntry;

use super::Line;

/// The folded state of one manifest.
#[derive(Default)]
pub(super) struct Fold {
    /// (folder, uidvalidity, uid) → the `add` line.
    pub(super) adds: BTreeMap<(String, u32, u32), Line>,
    pub(super) uidls: BTreeMap<String, UidlEntry>,
    /// (folder, uidvalidity) → the highest UID of any `add` or `remove`.
    pub(super) highest: BTreeMap<(String, u32), u32>,
    /// (folder, uidvalidity, uid) → keywords set locally (`flags` lines).
    pub(super) keywords: BTreeMap<(String, u32, u32), Vec<String>>,
    pub(super) lines: usize,
}

impl Fold {
    pub(super) fn apply(&mut self, line: Line) {
        self.lines += 1;
        match line {
            Line::Add {
                ref folder,
                uidvalidity,
                uid,
                ref uidl,
                first_seen,
                ..
            } => {
                if let Some(u) = uidl {
                    self.uidls.insert(
                        u.clone(),
                        UidlEntry {
                            first_seen,
                            uid,
                            pending_delete: false,
                        },
                    );
                }
                self.note_uid(folder, uidvalidity, uid);
                let key = (folder.clone(), uidvalidity, uid);
                self.keywords.remove(&key);
                self.adds.insert(key, line);
            }
            Line::Flags {
                folder,
                uidvalidity,
                uid,
                flags: now,
                keywords,
            } => {
                let key = (folder, uidvalidity, uid);
                if let Some(Line::Add { flags, .. }) = self.adds.get_mut(&key) {
                    *flags = now;
                    if keywords.is_empty() {
                        self.keywords.remove(&key);
                    } else {
                        self.keywords.insert(key, keywords);
                    }
                }
            }
            Line::Remove {
                folder,
                uidvalidity,
                uid,
            } => {
                self.note_uid(&folder, uidvalidity, uid);
                let key = (folder, uidvalidity, uid);
                self.keywords.remove(&key);
                self.adds.remove(&key);
            }
            Line::Uidl { uidl, entry } => {
                self.uidls.insert(uidl, entry);
            }
            Line::ForgetUidl { uidl } => {
                self.uidls.remove(&uidl);
            }
        }
    }

    pub(super) fn note_uid(&mut self, folder: &str, uidvalidity: u32, uid: u32) {
        let highest = self
            .highest
            .entry((folder.to_owned(), uidvalidity))
            .or_default();
        *highest = (*highest).max(uid);
    }

    /// At most as many lines as [`Fold::compacted`] gives, without making
    /// them.
    pub(super) fn compacted_bound(&self) -> usize {
        self.adds.len() + self.uidls.len() + self.highest.len() + self.keywords.len()
    }

    /// The lines that give this state again.
    pub(super) fn compacted(&self) -> Vec<Line> {
        let mut out = Vec::new();
        // The highest UID of a folder no `add` carries any more stays as its
        // `remove` line, so that UIDs are never given twice.
        for ((folder, uidvalidity), uid) in &self.highest {
            if !self
                .adds
                .contains_key(&(folder.clone(), *uidvalidity, *uid))
            {
                out.push(Line::Remove {
                    folder: folder.clone(),
                    uidvalidity: *uidvalidity,
                    uid: *uid,
                });
            }
        }
        // An `add` keeps its unique-id only when that is still known as the
        // `add` would set it; otherwise a forgotten unique-id would come back.
        let mut carried = BTreeSet::new();
        for line in self.adds.values() {
            let mut line = line.clone();
            if let Line::Add {
                uid,
                uidl,
                first_seen,
                ..
            } = &mut line
            {
                if let Some(u) = uidl.take() {
                    let same = UidlEntry {
                        first_seen: *first_seen,
                        uid: *uid,
                        pending_delete: false,
                    };
                    if self.uidls.get(&u) == Some(&same) {
                        carried.insert(u.clone());
                        *uidl = Some(u);
                    } else {
                        *first_seen = 0;
                    }
                }
            }
            out.push(line);
        }
        for ((folder, uidvalidity, uid), keywords) in &self.keywords {
            if let Some(Line::Add { flags, .. }) =
                self.adds.get(&(folder.clone(), *uidvalidity, *uid))
            {
                out.push(Line::Flags {
                    folder: folder.clone(),
                    uidvalidity: *uidvalidity,
                    uid: *uid,
                    flags: *flags,
                    keywords: keywords.clone(),
                });
            }
        }
        for (uidl, entry) in &self.uidls {
            if !carried.contains(uidl) {
                out.push(Line::Uidl {
                    uidl: uidl.clone(),
                    entry: entry.clone(),
                });
            }
        }
        out
    }
}

/// Read a manifest; a line that does not parse (the torn end of a write cut
/// short) is skipped with a warning.
pub(super) fn read_fold(path: &Path) -> Result<Fold> {
    let file =
        std::fs::File::open(path).with_context(|| format!("Cannot open {}", path.display()))?;
    let mut fold = Fold::default();
    let mut bad = 0usize;
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line.with_context(|| format!("Cannot read {}", path.display()))?;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Line>(&line) {
            Ok(l) => fold.apply(l),
            Err(_) => bad += 1,
        }
    }
    if bad > 0 {
        warn!(
            "{}: skipped {bad} unreadable line(s) (a write cut short?).",
            path.display()
        );
    }
    Ok(fold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::manifest::encode;

    fn add(uid: u32, uidl: Option<&str>) -> Line {
        Line::Add {
            folder: "INBOX".into(),
            display: "INBOX".into(),
            no: 4,
            role: None,
            uidvalidity: 1,
            uid,
            flags: 0,
            hash: format!("h{uid}"),
            date: 0,
            uidl: uidl.map(str::to_owned),
            first_seen: 5,
        }
    }

    fn remove(uid: u32) -> Line {
        Line::Remove {
            folder: "INBOX".into(),
            uidvalidity: 1,
            uid,
        }
    }

    fn fold(lines: impl IntoIterator<Item = Line>) -> Fold {
        let mut fold = Fold::default();
        for l in lines {
            fold.apply(l);
        }
        fold
    }

    #[test]
    fn fold_applies_removals_and_compacts() -> Result<()> {
        let mut fold = Fold::default();
        for l in [
            add(1, Some("a")),
            add(2, Some("b")),
            Line::Remove {
                folder: "INBOX".into(),
                uidvalidity: 1,
                uid: 1,
            },
            Line::ForgetUidl { uidl: "a".into() },
        ] {
            // Round trip through the text form too.
            let bytes = encode(std::slice::from_ref(&l))?;
            fold.apply(serde_json::from_slice(&bytes[..bytes.len() - 1])?);
        }
        assert_eq!(fold.adds.len(), 1);
        assert_eq!(fold.uidls.keys().collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(fold.compacted(), vec![add(2, Some("b"))]);
        Ok(())
    }

    /// A unique-id forgotten while its message stays is not brought back by
    /// compaction.
    #[test]
    fn compaction_keeps_forgotten_uidls_forgotten() {
        let before = fold([
            add(1, Some("u")),
            add(2, Some("v")),
            Line::ForgetUidl { uidl: "u".into() },
        ]);
        let live = before.compacted();
        assert!(live.len() <= before.compacted_bound());
        let after = fold(live);
        assert_eq!(after.uidls.keys().collect::<Vec<_>>(), vec!["v"]);
        assert_eq!(after.adds.len(), 2);
        assert_eq!(after.compacted(), before.compacted());
    }

    /// The highest UID of a folder survives compaction when its message was
    /// removed, so a rebuilt folder's uidnext is past it.
    #[test]
    fn compaction_keeps_the_highest_removed_uid() {
        let before = fold([add(1, None), add(2, None), add(3, None), remove(3)]);
        let after = fold(before.compacted());
        assert_eq!(after.adds.len(), 2);
        assert_eq!(after.highest.get(&("INBOX".to_owned(), 1)), Some(&3));
        assert_eq!(after.compacted(), before.compacted());
    }
}

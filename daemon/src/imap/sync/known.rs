//! # The messages already stored: flags and expunges, by comparison
//!
//! Without QRESYNC (or when its resync does not add up), the server's UIDs
//! below the mark are listed (`UID FETCH 1:n (UID)`, with FLAGS unless
//! CONDSTORE tells which changed) and compared with the stored ones.

use std::collections::{BTreeMap, BTreeSet};

use tracing::debug;

use super::{flags_of, keywords_of, local};
use crate::imap::command::{self, Fetched};
use crate::imap::session::ImapSession;
use crate::imap::Engine;
use crate::net::Failure;
use crate::store::{Flags, FolderInfo, FolderState, Pending};

impl Engine {
    /// Flags and expunges of the messages we already have. Returns the UIDs
    /// the server has below the mark that are not stored here.
    pub(super) async fn sync_known(
        &self,
        session: &mut ImapSession,
        folder: &FolderInfo,
        state: FolderState,
        (modseq, exists): (u64, u32),
        pending: &Pending,
    ) -> Result<Vec<u32>, Failure> {
        let (id, no) = (self.id.clone(), folder.no);
        let mut local_uids = self.blocking(move |store| store.flag_sets(&id, no)).await?;
        // Below the mark, and over every stored UID (some may lie above a
        // mark held back by a UID the server left out).
        let top = state
            .uidnext
            .saturating_sub(1)
            .max(local_uids.keys().next_back().copied().unwrap_or(0))
            .max(1);
        let range = format!("1:{top}");
        // What the server still has there, as one FETCH response per
        // message (a SEARCH answer is one line that grows with the mailbox,
        // past any bound on a line; see `bounded`), with the flags unless
        // CONDSTORE tells which changed. Only a complete answer counts (see
        // `command`): a partial one would take stored messages for
        // expunged.
        let condstore = self.caps.condstore && state.highestmodseq > 0;
        let mut on_server = BTreeSet::new();
        let mut server_flags: BTreeMap<u32, (Flags, Vec<String>)> = BTreeMap::new();
        if exists > 0 {
            let items = if condstore { "(UID)" } else { "(UID FLAGS)" };
            command::run(
                session,
                "UID FETCH",
                &format!("UID FETCH {range} {items}"),
                |r| {
                    if let Some(Fetched {
                        uid: Some(uid),
                        flags,
                        ..
                    }) = command::fetched(r)
                    {
                        on_server.insert(uid);
                        if !condstore {
                            server_flags.insert(uid, (flags_of(&flags), keywords_of(&flags)));
                        }
                    }
                },
            )
            .await?;
        }
        on_server.retain(|u| *u <= top);
        let gone: Vec<u32> = local_uids
            .keys()
            .copied()
            .filter(|u| !on_server.contains(u))
            .collect();
        if !gone.is_empty() {
            debug!(
                "Account {}: {} message(s) expunged from {}.",
                self.id,
                gone.len(),
                folder.display
            );
            let removed = self
                .store
                .remove_uids(&self.id, folder.no, &gone)
                .await
                .map_err(local)?;
            self.reporter.removed(
                &folder.display,
                removed.iter().map(|i| i.to_string()).collect(),
            );
            self.reporter.counts();
            for u in &gone {
                local_uids.remove(u);
            }
        }
        let missing: Vec<u32> = on_server
            .iter()
            .copied()
            .filter(|u| {
                *u < state.uidnext && !local_uids.contains_key(u) && !pending.removed.contains(u)
            })
            .collect();
        // Flags with CONDSTORE: only what changed since the last
        // HIGHESTMODSEQ, and nothing when it did not move.
        if condstore && modseq != state.highestmodseq {
            command::run(
                session,
                "UID FETCH FLAGS",
                &format!(
                    "UID FETCH {range} (UID FLAGS) (CHANGEDSINCE {})",
                    state.highestmodseq
                ),
                |r| {
                    if let Some(Fetched {
                        uid: Some(uid),
                        flags,
                        ..
                    }) = command::fetched(r)
                    {
                        server_flags.insert(uid, (flags_of(&flags), keywords_of(&flags)));
                    }
                },
            )
            .await?;
        }
        self.apply_server_flags(folder, server_flags, &local_uids, pending)
            .await?;
        Ok(missing)
    }
}

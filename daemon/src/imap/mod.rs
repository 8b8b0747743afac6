//! # IMAP accounts
//!
//! The operations the sync layer (the `sync` module) drives to keep one IMAP
//! account in sync: connect and log in ([`Engine::connect`], through
//! [`session`]), a pass over the folders ([`Engine::pass`], through
//! [`sync`]), a wait for new mail with IDLE on INBOX or NOOP polling when
//! the server has no IDLE ([`Engine::wait`], ended early by any future the
//! caller gives), the deletion of one message ([`Engine::delete`]), and the
//! replay of the account's journal of local changes ([`Engine::replay`],
//! through [`replay`]).
//! The loop around them (backoff, requests, state) is the sync layer's.
//!
//! It owns no D-Bus code and does not know the sync layer: it tells what it
//! stores through an [`Observer`].

pub mod bounded;
pub mod command;
pub mod folders;
pub mod replay;
pub mod session;
pub mod sync;
pub mod utf7;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::net::{Failure, FailureKind};
use crate::settings::Settings;
use crate::store::{MessageId, Store};
pub use session::{drain, ImapSession};
use session::{step, step_within, Caps};
use zeroize::Zeroizing;

/// How long one IDLE lasts before it is re-issued. RFC 2177 allows 29
/// minutes, but NAT gateways and some servers drop idle flows after about
/// 10 (Geary re-issues at 9.5, Delta Chat times out at 5), and a silent dead
/// connection is only noticed when DONE gets no answer.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(9 * 60);
/// How long DONE (and LOGOUT) may take before the connection is considered
/// dead.
pub const DONE_TIMEOUT: Duration = Duration::from_secs(15);
/// Polling interval of INBOX on servers without IDLE.
const NOOP_INTERVAL: Duration = Duration::from_secs(60);
/// How long the known folders are synced without LIST after the server
/// sent a folder list that cannot be read.
pub(crate) const LIST_RETRY: Duration = Duration::from_secs(30 * 60);

pub use crate::store::Observer;

/// One account's IMAP operations, with what they remember between passes.
pub struct Engine {
    id: String,
    settings: Settings,
    password: Zeroizing<String>,
    store: Store,
    reporter: Arc<dyn Observer>,
    caps: Caps,
    /// The UIDNEXT of INBOX at its last pass, as the server announced it.
    inbox_next: std::sync::atomic::AtomicU32,
    /// Until when LIST is not tried again after the server sent a folder
    /// list that cannot be read (see [`Engine::pass`]).
    list_unreadable_until: Option<Instant>,
    /// Journal entries (by sequence) and how many sessions ended while
    /// replaying them: one that keeps ending the session is dropped (see
    /// [`replay`]).
    ending: std::collections::HashMap<u64, u32>,
}

/// What ended a wait.
pub enum Wake<T> {
    /// The server has news for INBOX.
    NewData,
    /// The time given passed.
    Timeout,
    /// The caller's future finished first.
    Other(T),
}

impl Engine {
    /// An engine for an account.
    pub fn new(
        id: String,
        settings: Settings,
        password: Zeroizing<String>,
        store: Store,
        reporter: Arc<dyn Observer>,
    ) -> Self {
        Engine {
            id,
            settings,
            password,
            store,
            reporter,
            caps: Caps::default(),
            inbox_next: std::sync::atomic::AtomicU32::new(0),
            ending: std::collections::HashMap::new(),
            list_unreadable_until: None,
        }
    }

    /// The account's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Take settings that need no new connection (see
    /// [`Settings::same_connection`]); used from the next pass or wait.
    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    /// Run a blocking store call off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, Failure> {
        self.store.blocking(f).await.map_err(Failure::from)
    }

    /// Connect and log in; what the server can do is kept for the session.
    pub async fn connect(&mut self) -> Result<ImapSession, Failure> {
        let (session, caps) = session::connect(&self.settings, &self.password).await?;
        self.caps = caps;
        Ok(session)
    }

    /// Log out, bounded: the connection goes either way.
    pub async fn logout(mut session: ImapSession) {
        let _ = tokio::time::timeout(DONE_TIMEOUT, session.logout()).await;
    }

    /// A pass: every folder when `full`, else INBOX only. INBOX is left
    /// selected, ready for IDLE.
    pub async fn pass(&mut self, session: &mut ImapSession, full: bool) -> Result<u32, Failure> {
        let mut samples = Vec::new();
        let folders = if full {
            self.list_or_known(session).await?
        } else {
            let id = self.id.clone();
            match self
                .blocking(move |store| store.folder(&id, "INBOX"))
                .await?
            {
                Some(f) => vec![f],
                None => self.sync_folder_list(session).await?,
            }
        };
        let (mut new, mut announced) = (0u32, 0u32);
        let inbox = folders
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case("INBOX"))
            .cloned();
        let others = folders
            .iter()
            .filter(|f| !f.name.eq_ignore_ascii_case("INBOX"));
        // INBOX last, so it stays selected for IDLE.
        for folder in others.chain(inbox.as_ref()) {
            // Mail landing in Sent, Drafts, Trash, Spam or Archive is not
            // news to the user: no notification for it.
            let quiet = matches!(
                folder.role.as_deref(),
                Some("sent" | "drafts" | "trash" | "spam" | "archive")
            );
            let mut ignored = Vec::new();
            let sink = if quiet { &mut ignored } else { &mut samples };
            let n = match self.sync_folder(session, folder, sink).await {
                Ok(n) => n,
                Err(f) => {
                    // The folders synced before are stored: announced
                    // even though the pass fails.
                    self.reporter.notify(announced as usize, samples);
                    return Err(f);
                }
            };
            new += n;
            if !quiet {
                announced += n;
            }
        }
        self.reporter.notify(announced as usize, samples);
        Ok(new)
    }

    /// Wait on the selected INBOX until new data, `limit`, or `other`
    /// finishing, whichever comes first: IDLE when the server has it (its
    /// limit [`IDLE_TIMEOUT`]), else a NOOP every minute. Every step is
    /// bounded, so a dead connection ends the wait with a failure. When
    /// `other` had finished before the wait failed (a request woke IDLE and
    /// DONE then failed), its output comes back with the failure, so that
    /// the caller still answers it.
    pub async fn wait<T>(
        &self,
        session: ImapSession,
        limit: Duration,
        other: impl Future<Output = T>,
    ) -> Result<(ImapSession, Wake<T>), WaitFailed<T>> {
        if self.caps.idle {
            self.idle(session, limit.min(IDLE_TIMEOUT), other).await
        } else {
            self.noop_wait(session, limit.min(NOOP_INTERVAL), other)
                .await
                .map_err(|failure| WaitFailed {
                    failure,
                    woke: None,
                })
        }
    }

    /// IDLE on the selected INBOX until new data, the timeout, or `other`.
    async fn idle<T>(
        &self,
        session: ImapSession,
        limit: Duration,
        other: impl Future<Output = T>,
    ) -> Result<(ImapSession, Wake<T>), WaitFailed<T>> {
        let lost = |failure| WaitFailed {
            failure,
            woke: None,
        };
        // Check UIDNEXT right before IDLE: mail that arrived between the
        // last FETCH and now must not wait for the next wake-up.
        let mut session = session;
        let id = self.id.clone();
        if let Some(inbox) = self
            .blocking(move |store| store.folder(&id, "INBOX"))
            .await
            .map_err(lost)?
        {
            let status = step("STATUS", session.status("INBOX", "(UIDNEXT)"))
                .await
                .map_err(lost)?;
            drain(&mut session);
            let known = inbox
                .state
                .map(|s| s.uidnext)
                .unwrap_or(0)
                .max(self.inbox_next.load(std::sync::atomic::Ordering::Relaxed));
            if status.uid_next.is_some_and(|n| n > known) {
                return Ok((session, Wake::NewData));
            }
        }
        let mut handle = session.idle();
        step("IDLE", handle.init()).await.map_err(lost)?;
        let wake = {
            let (fut, stop) = handle.wait_with_timeout(limit);
            let wake = tokio::select! {
                r = fut => match r {
                    Ok(async_imap::extensions::idle::IdleResponse::NewData(resp)) => {
                        if let imap_proto::Response::Data {
                            status: imap_proto::Status::Bye,
                            outcome,
                        } = resp.parsed()
                        {
                            // The server is leaving (shutdown, kick):
                            // say so rather than fail later on DONE.
                            return Err(lost(Failure::new(
                                FailureKind::Connection,
                                format!(
                                    "The server {} closed the connection: {}",
                                    self.settings.incoming_host,
                                    outcome.information.as_deref().unwrap_or("BYE")
                                ),
                            )));
                        }
                        Wake::NewData
                    }
                    Ok(async_imap::extensions::idle::IdleResponse::Timeout) => Wake::Timeout,
                    // async-imap reports a dropped connection as a manual
                    // interrupt; DONE below tells which it was.
                    Ok(async_imap::extensions::idle::IdleResponse::ManualInterrupt) => Wake::NewData,
                    Err(e) => return Err(lost(session::imap_failure("IDLE", e))),
                },
                _ = tokio::time::sleep(limit) => Wake::Timeout,
                t = other => Wake::Other(t),
            };
            drop(stop);
            wake
        };
        match step_within(DONE_TIMEOUT, "DONE", handle.done()).await {
            Ok(session) => Ok((session, wake)),
            Err(failure) => Err(WaitFailed {
                failure,
                woke: match wake {
                    Wake::Other(t) => Some(t),
                    Wake::NewData | Wake::Timeout => None,
                },
            }),
        }
    }

    /// Servers without IDLE: NOOP on INBOX when `limit` passes.
    async fn noop_wait<T>(
        &self,
        mut session: ImapSession,
        limit: Duration,
        other: impl Future<Output = T>,
    ) -> Result<(ImapSession, Wake<T>), Failure> {
        let wake = tokio::select! {
            _ = tokio::time::sleep(limit) => Wake::Timeout,
            t = other => Wake::Other(t),
        };
        if matches!(wake, Wake::Timeout) {
            step("NOOP", session.noop()).await?;
            let wake = if drain(&mut session) {
                Wake::NewData
            } else {
                Wake::Timeout
            };
            return Ok((session, wake));
        }
        Ok((session, wake))
    }

    /// Delete a message on the server (flag, expunge), then locally, only
    /// once the server said OK to each step: async-imap's STORE and EXPUNGE
    /// streams end on a tagged NO as on OK (see [`command`]), and a refused
    /// delete taken for done would drop the local record of a message the
    /// server still has (fetched again, and announced, at the next pass).
    ///
    /// A refusal that leaves the connection usable (a tagged NO: no
    /// permission, the folder gone) is returned after INBOX is selected
    /// again, so the session carries on; a failure of the connection
    /// (Connection, Timeout) is returned as is and ends the session.
    ///
    /// A placeholder (a message still being moved here) is refused: its
    /// journal entry would bring it back.
    pub async fn delete(&self, session: &mut ImapSession, id: &MessageId) -> Result<(), Failure> {
        refuse_placeholder(id)?;
        let r = self.delete_selected(session, id).await;
        match r {
            Err(f) if !ends_session(&f) => {
                select(session, "INBOX").await?;
                Err(f)
            }
            other => other,
        }
    }

    async fn delete_selected(
        &self,
        session: &mut ImapSession,
        id: &MessageId,
    ) -> Result<(), Failure> {
        let wanted = id.clone();
        let folder = self
            .blocking(move |store| store.folder_of(&wanted))
            .await?
            .ok_or_else(|| Failure::new(FailureKind::Local, "The message's folder is gone"))?;
        let uidvalidity = select(session, &folder.name).await?;
        if uidvalidity == Some(id.uidvalidity) {
            let uid = id.uid.to_string();
            command::run(
                session,
                "UID STORE",
                &format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"),
                |_| {},
            )
            .await?;
            if self.caps.uidplus {
                command::run(
                    session,
                    "UID EXPUNGE",
                    &format!("UID EXPUNGE {uid}"),
                    |_| {},
                )
                .await?;
            } else {
                command::run(session, "EXPUNGE", "EXPUNGE", |_| {}).await?;
            }
        } else if uidvalidity.is_none() {
            return Err(Failure::new(
                FailureKind::Protocol,
                format!("The server gave no UIDVALIDITY for {}", folder.display),
            ));
        }
        // Deleted on the server (or the record is of an older UIDVALIDITY,
        // which the server no longer has).
        let removed = self
            .store
            .remove_uids(&self.id, folder.no, &[id.uid])
            .await
            .map_err(Failure::from)?;
        self.reporter.removed(
            &folder.display,
            removed.iter().map(|i| i.to_string()).collect(),
        );
        self.reporter.counts();
        // Leave INBOX selected for IDLE.
        select(session, "INBOX").await?;
        Ok(())
    }
}

/// A delete of a placeholder id (UIDVALIDITY 0, a UID from
/// [`crate::store::PLACEHOLDER_BASE`]) is refused: the move is still in the
/// journal, and would bring the message back.
fn refuse_placeholder(id: &MessageId) -> Result<(), Failure> {
    if id.uidvalidity == 0 && id.uid >= crate::store::PLACEHOLDER_BASE {
        return Err(Failure::new(
            FailureKind::NotSupported,
            "This message is still being moved; try again once the account is online and the move is done",
        ));
    }
    Ok(())
}

/// Whether `failure` leaves the connection in doubt, so the session ends.
pub fn ends_session(failure: &Failure) -> bool {
    matches!(failure.kind, FailureKind::Connection | FailureKind::Timeout)
}

/// A wait that failed: the failure, and what ended the wait before it
/// failed (a request that woke IDLE before DONE failed), to be answered.
pub struct WaitFailed<T> {
    /// What went wrong.
    pub failure: Failure,
    /// The output of the wait's `other` future, when it had finished.
    pub woke: Option<T>,
}

/// SELECT `name` through [`command::run`] (only a tagged OK counts);
/// returns the UIDVALIDITY the server gave.
async fn select(session: &mut ImapSession, name: &str) -> Result<Option<u32>, Failure> {
    let mut uidvalidity = None;
    command::run(
        session,
        "SELECT",
        &format!("SELECT {}", command::quoted(name)?),
        |r| {
            if let imap_proto::Response::Data {
                status: imap_proto::Status::Ok,
                outcome,
            } = r
            {
                if let Some(imap_proto::ResponseCode::UidValidity(v)) = &outcome.code {
                    uidvalidity = Some(*v);
                }
            }
        },
    )
    .await?;
    drain(session);
    Ok(uidvalidity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placeholder_is_not_deleted() {
        let mut id = MessageId {
            account: "a".into(),
            folder: 3,
            uidvalidity: 0,
            uid: crate::store::PLACEHOLDER_BASE + 2,
        };
        assert!(matches!(
            refuse_placeholder(&id),
            Err(f) if f.kind == FailureKind::NotSupported
        ));
        id.uidvalidity = 7;
        id.uid = 12;
        assert!(refuse_placeholder(&id).is_ok());
    }
}

//! # Replay commands whose tagged answer matters
//!
//! [`command::run`](super::super::command::run) succeeds on a tagged `OK`
//! and hands on only the untagged responses; the replay also needs what
//! the tagged `OK` says (`[COPYUID …]` after UID COPY, `[APPENDUID …]`
//! after APPEND, `[MODIFIED set]` after a conditional STORE, which
//! imap-proto does not parse and leaves in the text), and an APPEND sends
//! a literal. [`run`] and [`append`] read the answers the same strict way:
//! only the tagged `OK` of the command counts; `NO`/`BAD` is a refusal in
//! words, a `BYE`, a closed connection or a stall is a failure of the
//! connection.

use imap_proto::rfc4315::UidSetMember;
use imap_proto::{MailboxDatum, Response, ResponseCode, Status};
use tokio::io::AsyncWriteExt as _;

use super::super::command::{closed, read_failure, refused, timeout};
use super::super::session::{imap_failure, ImapSession};
use crate::net::{self, Failure};

/// What the tagged `OK` of a command said.
#[derive(Debug, Default)]
pub struct Tagged {
    /// `[COPYUID v src dst]`: the target's UIDVALIDITY and the (source,
    /// target) UID pairs.
    pub copyuid: Option<(u32, Vec<(u32, u32)>)>,
    /// `[APPENDUID v uid]`: the target's UIDVALIDITY and the new UID.
    pub appenduid: Option<(u32, u32)>,
    /// Its text (an unparsed code such as `[MODIFIED 7,9]` stays here).
    pub text: String,
}

/// Run `command` and hand every untagged response to `each`; the tagged
/// `OK`'s code and text come back.
pub async fn run(
    session: &mut ImapSession,
    what: &str,
    command: &str,
    each: impl FnMut(&Response<'_>),
) -> Result<Tagged, Failure> {
    let limit = net::command_timeout();
    let tag = tokio::time::timeout(limit, session.run_command(command))
        .await
        .map_err(|_| timeout(what, limit))?
        .map_err(|e| imap_failure(what, e))?;
    finish(session, what, &tag, each).await
}

/// APPEND `content` to `mailbox` (already quoted) with `flags` (the
/// parenthesised list, maybe empty).
pub async fn append(
    session: &mut ImapSession,
    mailbox: &str,
    flags: &str,
    content: &[u8],
) -> Result<Tagged, Failure> {
    let what = "APPEND";
    let limit = net::command_timeout();
    let command = format!("APPEND {mailbox} ({flags}) {{{}}}", content.len());
    let tag = tokio::time::timeout(limit, session.run_command(&command))
        .await
        .map_err(|_| timeout(what, limit))?
        .map_err(|e| imap_failure(what, e))?;
    // The server asks for the literal, or refuses at once.
    loop {
        let next = tokio::time::timeout(limit, session.read_response())
            .await
            .map_err(|_| timeout(what, limit))?
            .map_err(|e| read_failure(what, e))?;
        let Some(resp) = next else {
            return Err(closed(what, None));
        };
        match resp.parsed() {
            Response::Continue { .. } => break,
            Response::Done {
                tag: t,
                status,
                outcome,
            } if *t == tag => {
                let text = net::server_text(outcome.information.as_deref().unwrap_or_default());
                return Err(refused(what, status, &text));
            }
            Response::Data {
                status: Status::Bye,
                outcome,
            } => {
                return Err(closed(what, outcome.information.as_deref()));
            }
            _ => {}
        }
    }
    let write = async {
        let stream = session.get_mut();
        stream.write_all(content).await?;
        stream.write_all(b"\r\n").await?;
        stream.flush().await
    };
    // Writing a large message may take longer than one reply: bounded by
    // the command deadline per started megabyte.
    let megabytes = u32::try_from(content.len() / (1 << 20) + 1).unwrap_or(u32::MAX);
    let write_limit = limit.saturating_mul(megabytes);
    tokio::time::timeout(write_limit, write)
        .await
        .map_err(|_| timeout(what, write_limit))?
        .map_err(|e| imap_failure(what, async_imap::error::Error::Io(e)))?;
    finish(session, what, &tag, |_| {}).await
}

/// Read the answers to the command tagged `tag` up to its tagged response.
async fn finish(
    session: &mut ImapSession,
    what: &str,
    tag: &imap_proto::RequestId,
    mut each: impl FnMut(&Response<'_>),
) -> Result<Tagged, Failure> {
    let limit = net::command_timeout();
    let mut bye: Option<String> = None;
    loop {
        let next = tokio::time::timeout(limit, session.read_response())
            .await
            .map_err(|_| timeout(what, limit))?
            .map_err(|e| read_failure(what, e))?;
        let Some(resp) = next else {
            return Err(closed(what, bye.as_deref()));
        };
        match resp.parsed() {
            Response::Done {
                tag: t,
                status,
                outcome,
            } if t == tag => {
                let text = outcome.information.as_deref().unwrap_or_default();
                return match status {
                    Status::Ok => Ok(Tagged {
                        copyuid: outcome.code.as_ref().and_then(copyuid),
                        appenduid: match &outcome.code {
                            Some(ResponseCode::AppendUid(v, set)) => {
                                uids_of(set).first().map(|u| (*v, *u))
                            }
                            _ => None,
                        },
                        text: text.to_owned(),
                    }),
                    _ => Err(refused(what, status, &net::server_text(text))),
                };
            }
            Response::Data {
                status: Status::Bye,
                outcome,
            } => {
                bye = Some(outcome.information.as_deref().unwrap_or("BYE").to_owned());
            }
            other => each(other),
        }
    }
}

/// The UIDs a UID SEARCH answered.
pub fn searched(resp: &Response<'_>, into: &mut Vec<u32>) {
    if let Response::MailboxData(MailboxDatum::Search(uids)) = resp {
        into.extend(uids.iter().copied());
    }
}

/// Most UIDs taken from one server answer (a batch sends at most a few
/// hundred): a server's silly set never makes a huge list.
const MOST_UIDS: usize = 100_000;

/// The members of a UID set as UIDs (bounded, see [`MOST_UIDS`]).
pub fn uids_of(set: &[UidSetMember]) -> Vec<u32> {
    let mut out = Vec::new();
    for m in set {
        if out.len() >= MOST_UIDS {
            break;
        }
        match m {
            UidSetMember::Uid(u) => out.push(*u),
            UidSetMember::UidRange(r) => {
                let (a, b) = (*r.start(), *r.end());
                out.extend((a.min(b)..=a.max(b)).take(MOST_UIDS.saturating_sub(out.len())));
            }
        }
    }
    out
}

/// `(source, target)` UID pairs of a `[COPYUID v src dst]` code, with its
/// UIDVALIDITY.
pub fn copyuid(code: &ResponseCode<'_>) -> Option<(u32, Vec<(u32, u32)>)> {
    let ResponseCode::CopyUid(v, src, dst) = code else {
        return None;
    };
    let (src, dst) = (uids_of(src), uids_of(dst));
    if src.len() != dst.len() {
        return None;
    }
    Some((*v, src.into_iter().zip(dst).collect()))
}

/// The UIDs of a `[MODIFIED set]` at the start of a tagged `OK`'s text
/// (RFC 7162 §3.1.3; imap-proto leaves the code unparsed).
pub fn modified(text: &str) -> Vec<u32> {
    let t = text.trim_start();
    let Some(rest) = t
        .get(..10)
        .filter(|p| p.eq_ignore_ascii_case("[MODIFIED "))
        .and_then(|_| t.get(10..))
    else {
        return Vec::new();
    };
    let Some(end) = rest.find(']') else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for part in rest[..end].split(',') {
        if out.len() >= MOST_UIDS {
            break;
        }
        match part.split_once(':') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
                    let (lo, hi) = (a.min(b), a.max(b));
                    out.extend((lo..=hi).take(MOST_UIDS.saturating_sub(out.len())));
                }
            }
            None => {
                if let Ok(u) = part.trim().parse() {
                    out.push(u);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modified_sets_are_read_from_the_text() {
        assert_eq!(
            modified("[MODIFIED 7,9:11] Conditional STORE failed"),
            vec![7, 9, 10, 11]
        );
        assert_eq!(modified("[modified 3]"), vec![3]);
        assert!(modified("Store completed").is_empty());
        assert!(modified("[MODIFIED").is_empty());
        let silly = format!("[MODIFIED {}]", vec!["1:4294967295"; 50].join(","));
        assert_eq!(modified(&silly).len(), MOST_UIDS);
    }

    #[test]
    fn copyuid_pairs_sources_and_targets() {
        let code = ResponseCode::CopyUid(
            38505,
            vec![UidSetMember::Uid(304), UidSetMember::UidRange(319..=320)],
            vec![UidSetMember::UidRange(3956..=3958)],
        );
        assert_eq!(
            copyuid(&code),
            Some((38505, vec![(304, 3956), (319, 3957), (320, 3958)]))
        );
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = vec![UidSetMember::UidRange(5..=3)];
        assert_eq!(uids_of(&reversed), vec![3, 4, 5]);
        let uneven = ResponseCode::CopyUid(1, vec![UidSetMember::Uid(1)], vec![]);
        assert_eq!(copyuid(&uneven), None);
    }
}

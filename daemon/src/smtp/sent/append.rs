//! # APPEND with the UID the server gave
//!
//! async-imap's `append` drops the tagged `OK`'s response code, and with
//! it the `[APPENDUID uidvalidity uid]` of a UIDPLUS server (RFC 4315
//! §3). [`append`] sends the command and its literal itself and hands the
//! code back, so the copy can be stored locally under the UID the server
//! gave it.

use imap_proto::rfc4315::UidSetMember;
use imap_proto::{Response, ResponseCode, Status};
use tokio::io::AsyncWriteExt as _;

use crate::imap::command::{self, Refusal};
use crate::imap::session::{imap_failure, ImapSession};
use crate::net::{self, Failure};

/// Where the server put an appended message (APPENDUID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendUid {
    /// The folder's UIDVALIDITY.
    pub uidvalidity: u32,
    /// The message's UID.
    pub uid: u32,
}

/// APPEND `message` to `folder` (wire name) with `flags` (`(\Seen)`).
/// `Ok(Ok(uid))`: appended, with the APPENDUID when the server said it;
/// `Ok(Err(refusal))`: a tagged `NO`/`BAD` (a folder that does not exist:
/// `TRYCREATE`), the connection still usable; `Err`: the connection failed
/// or stalled.
pub async fn append(
    session: &mut ImapSession,
    folder: &str,
    flags: &str,
    message: &[u8],
) -> Result<Result<Option<AppendUid>, Refusal>, Failure> {
    const WHAT: &str = "APPEND";
    let limit = net::command_timeout();
    let line = format!(
        "APPEND {} {flags} {{{}}}",
        command::quoted(folder)?,
        message.len()
    );
    let tag = tokio::time::timeout(limit, session.run_command(&line))
        .await
        .map_err(|_| command::timeout(WHAT, limit))?
        .map_err(|e| imap_failure(WHAT, e))?;
    let mut bye: Option<String> = None;
    let mut literal_sent = false;
    loop {
        let next = tokio::time::timeout(limit, session.read_response())
            .await
            .map_err(|_| command::timeout(WHAT, limit))?
            .map_err(|e| command::read_failure(WHAT, e))?;
        let Some(resp) = next else {
            return Err(command::closed(WHAT, bye.as_deref()));
        };
        match resp.parsed() {
            Response::Continue { .. } if !literal_sent => {
                literal_sent = true;
                let stream = session.get_mut();
                let written = async {
                    stream.write_all(message).await?;
                    stream.write_all(b"\r\n").await?;
                    stream.flush().await
                };
                tokio::time::timeout(limit, written)
                    .await
                    .map_err(|_| command::timeout(WHAT, limit))?
                    .map_err(|e| imap_failure(WHAT, async_imap::error::Error::Io(e)))?;
            }
            Response::Done {
                tag: t,
                status,
                outcome,
            } if *t == tag => {
                let text = net::server_text(outcome.information.as_deref().unwrap_or_default());
                return Ok(match status {
                    Status::Ok if literal_sent => Ok(outcome.code.as_ref().and_then(append_uid)),
                    Status::Ok => Err(Refusal {
                        bad: true,
                        text: "OK before the message was sent".to_owned(),
                    }),
                    Status::No => Err(Refusal { bad: false, text }),
                    _ => Err(Refusal { bad: true, text }),
                });
            }
            Response::Data {
                status: Status::Bye,
                outcome,
            } => bye = Some(outcome.information.as_deref().unwrap_or("BYE").to_owned()),
            // Untagged EXISTS and the like: the sync engine's own session
            // sees them too.
            _ => {}
        }
    }
}

/// The (UIDVALIDITY, UID) of an `APPENDUID` code naming one message.
fn append_uid(code: &ResponseCode<'_>) -> Option<AppendUid> {
    let ResponseCode::AppendUid(uidvalidity, set) = code else {
        return None;
    };
    let uid = match set.as_slice() {
        [UidSetMember::Uid(u)] => *u,
        [UidSetMember::UidRange(r)] if r.start() == r.end() => *r.start(),
        _ => return None,
    };
    (*uidvalidity > 0 && uid > 0).then_some(AppendUid {
        uidvalidity: *uidvalidity,
        uid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appenduid_names_one_message() {
        let one = ResponseCode::AppendUid(38505, vec![UidSetMember::Uid(3955)]);
        assert_eq!(
            append_uid(&one),
            Some(AppendUid {
                uidvalidity: 38505,
                uid: 3955
            })
        );
        let range = ResponseCode::AppendUid(7, vec![UidSetMember::UidRange(4..=4)]);
        assert_eq!(
            append_uid(&range),
            Some(AppendUid {
                uidvalidity: 7,
                uid: 4
            })
        );
        // Several messages, a zero, or another code: not ours to store.
        let many = ResponseCode::AppendUid(7, vec![UidSetMember::UidRange(4..=5)]);
        assert_eq!(append_uid(&many), None);
        assert_eq!(
            append_uid(&ResponseCode::AppendUid(0, vec![UidSetMember::Uid(1)])),
            None
        );
        assert_eq!(append_uid(&ResponseCode::ReadOnly), None);
    }
}

//! # IMAP commands whose answer must be complete
//!
//! async-imap's streams for FETCH, SEARCH and LIST end on the first tagged
//! response whatever its status, and also when the connection closes: a
//! FETCH cut short by `* BYE` or a TCP close, or a `NO` to UID SEARCH,
//! looks like a complete answer. Taken at its word, that records mail as
//! fetched that never arrived, or takes messages (or whole folders) the
//! server still has for expunged.
//!
//! [`run`] sends a command and reads its responses itself: it succeeds only
//! on the tagged `OK` of that command; `NO`/`BAD`, a `BYE`, the end of the
//! stream or a stall of the command deadline ([`net::command_timeout`])
//! between two responses is a [`Failure`]: a server limit
//! ([`FailureKind::ServerLimit`], see [`super::session::is_limit`]) or a
//! refusal in words. The helpers below take what the sync needs out of the
//! untagged responses (FETCH attributes, LIST entries).

use std::borrow::Cow;

use imap_proto::{AttributeValue, MailboxDatum, Response, Status};

use super::session::{imap_failure, is_limit, ImapSession};
use crate::net::timeouts::shown;
use crate::net::{self, Failure, FailureKind};

/// Run `command` (`what` names it in errors) and hand every untagged
/// response to `each`. Returns whether the server announced new or removed
/// mail on the way (EXISTS, EXPUNGE, RECENT).
pub async fn run(
    session: &mut ImapSession,
    what: &str,
    command: &str,
    each: impl FnMut(&Response<'_>),
) -> Result<bool, Failure> {
    match run_answer(session, what, command, each).await? {
        Ok(changed) => Ok(changed),
        Err(no) => {
            let status = if no.bad { Status::Bad } else { Status::No };
            Err(refused(what, &status, &no.text))
        }
    }
}

/// A tagged `NO` or `BAD`: the server's answer about the command, the
/// connection still usable.
#[derive(Debug)]
pub struct Refusal {
    /// `BAD` rather than `NO`.
    pub bad: bool,
    /// The server's text.
    pub text: String,
}

/// [`run`], with a tagged `NO` or `BAD` handed back as a [`Refusal`]
/// (a SELECT refused is an answer about one folder, not a failure of the
/// pass). Untagged `EXISTS`, `RECENT`, `EXPUNGE` and `VANISHED` (without
/// `EARLIER`) count as announced changes; every untagged response but
/// `BYE` also goes to `each` (a SELECT reads its EXISTS there).
pub async fn run_answer(
    session: &mut ImapSession,
    what: &str,
    command: &str,
    mut each: impl FnMut(&Response<'_>),
) -> Result<Result<bool, Refusal>, Failure> {
    let limit = net::command_timeout();
    let tag = tokio::time::timeout(limit, session.run_command(command))
        .await
        .map_err(|_| timeout(what, limit))?
        .map_err(|e| imap_failure(what, e))?;
    let mut bye: Option<String> = None;
    let mut changed = false;
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
            } if *t == tag => {
                let text = net::server_text(outcome.information.as_deref().unwrap_or_default());
                return Ok(match status {
                    Status::Ok => Ok(changed),
                    Status::No => Err(Refusal { bad: false, text }),
                    _ => Err(Refusal { bad: true, text }),
                });
            }
            Response::Data {
                status: Status::Bye,
                outcome,
            } => {
                bye = Some(outcome.information.as_deref().unwrap_or("BYE").to_owned());
            }
            other => {
                if matches!(
                    other,
                    Response::MailboxData(MailboxDatum::Exists(_) | MailboxDatum::Recent(_))
                        | Response::Expunge(_)
                        | Response::Vanished { earlier: false, .. }
                ) {
                    changed = true;
                }
                each(other)
            }
        }
    }
}

/// `name` as an IMAP quoted string, as async-imap quotes it (`\\` and `"`
/// escaped, other bytes as they are); a CR or LF cannot be sent.
pub fn quoted(name: &str) -> Result<String, Failure> {
    if name.contains(['\r', '\n']) {
        return Err(Failure::new(
            FailureKind::Local,
            format!("The folder name {name:?} holds a line break and cannot be sent"),
        ));
    }
    Ok(format!(
        "\"{}\"",
        name.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// How a failure from a response the parser refused begins.
const UNREADABLE: &str = "The server sent a response facteur cannot read";

/// Whether `f` is a response the parser refused (the connection is of no
/// further use: async-imap reads nothing after it).
pub fn is_unreadable(f: &Failure) -> bool {
    f.message.starts_with(UNREADABLE)
}

/// A failed read; async-imap's parse errors quote the whole buffer, so
/// only its start is kept.
pub(crate) fn read_failure(what: &str, e: std::io::Error) -> Failure {
    let text = e.to_string();
    if e.kind() == std::io::ErrorKind::Other && text.contains(" during parsing of ") {
        let quoted: String = text
            .split_once(" during parsing of ")
            .map(|(_, q)| q)
            .unwrap_or(&text)
            .chars()
            .take(120)
            .collect();
        return Failure::new(
            FailureKind::Protocol,
            format!("{UNREADABLE} during {what}: {quoted}…"),
        );
    }
    imap_failure(what, async_imap::error::Error::Io(e))
}

/// The connection ended in the middle of `what`, after the server's `BYE`
/// text when it sent one (a limit named there is a server limit).
pub(crate) fn closed(what: &str, bye: Option<&str>) -> Failure {
    let why = bye
        .map(|b| format!(" ({})", net::server_text(b)))
        .unwrap_or_default();
    let kind = if bye.is_some_and(is_limit) {
        FailureKind::ServerLimit
    } else {
        FailureKind::Connection
    };
    Failure::new(
        kind,
        format!("The server closed the connection in the middle of {what}{why}"),
    )
}

/// `what` got no answer within `limit`.
pub(crate) fn timeout(what: &str, limit: std::time::Duration) -> Failure {
    Failure::new(
        FailureKind::Timeout,
        format!(
            "The server stalled for {} during {what}: timed out",
            shown(limit)
        ),
    )
}

/// A tagged `NO` or `BAD` as a failure: a server limit or a refusal.
pub(crate) fn refused(what: &str, status: &Status, text: &str) -> Failure {
    let word = match status {
        Status::No => "NO",
        Status::Bad => "BAD",
        Status::Bye => "BYE",
        _ => "an unexpected status",
    };
    let kind = if is_limit(text) {
        FailureKind::ServerLimit
    } else {
        FailureKind::Protocol
    };
    let said = if text.is_empty() {
        String::new()
    } else {
        format!(" {text}")
    };
    Failure::new(kind, format!("The server refused {what} ({word}{said})"))
}

/// What a FETCH response said about one message.
#[derive(Debug, Default)]
pub struct Fetched {
    /// UID.
    pub uid: Option<u32>,
    /// RFC822.SIZE.
    pub size: Option<u32>,
    /// FLAGS, as sent.
    pub flags: Vec<String>,
    /// INTERNALDATE as unix seconds.
    pub internal_date: Option<i64>,
    /// `BODY[]`.
    pub body: Option<Vec<u8>>,
}

/// The attributes of a FETCH response, or `None` for another response.
pub fn fetched(resp: &Response<'_>) -> Option<Fetched> {
    let Response::Fetch(_, attrs) = resp else {
        return None;
    };
    let mut f = Fetched::default();
    for a in attrs {
        match a {
            AttributeValue::Uid(u) => f.uid = Some(*u),
            AttributeValue::Rfc822Size(s) => f.size = Some(*s),
            AttributeValue::Flags(flags) => f.flags = flags.iter().map(|c| c.to_string()).collect(),
            AttributeValue::InternalDate(d) => f.internal_date = internal_date(d),
            AttributeValue::BodySection {
                section: None,
                data: Some(data),
                ..
            }
            | AttributeValue::Rfc822(Some(data)) => f.body = Some(data.to_vec()),
            _ => {}
        }
    }
    Some(f)
}

/// One LIST entry.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The raw name.
    pub name: String,
    /// The hierarchy delimiter.
    pub delimiter: Option<String>,
    /// `\Noselect` or `\NonExistent`.
    pub noselect: bool,
    /// A SPECIAL-USE role.
    pub role: Option<&'static str>,
}

/// The entry of a LIST response, or `None` for another response.
pub fn listed(resp: &Response<'_>) -> Option<Listed> {
    use imap_proto::NameAttribute as A;
    let Response::MailboxData(MailboxDatum::List(l)) = resp else {
        return None;
    };
    let role = l.name_attributes.iter().find_map(|a| match a {
        A::Sent => Some("sent"),
        A::Drafts => Some("drafts"),
        A::Trash => Some("trash"),
        A::Junk => Some("spam"),
        A::Archive => Some("archive"),
        _ => None,
    });
    let noselect = l.name_attributes.iter().any(|a| match a {
        A::NoSelect => true,
        A::Extension(e) => e.eq_ignore_ascii_case("\\NonExistent"),
        _ => false,
    });
    Some(Listed {
        name: Cow::to_string(&l.name),
        delimiter: l.delimiter.as_deref().map(str::to_owned),
        noselect,
        role,
    })
}

/// `dd-Mon-yyyy hh:mm:ss +zzzz` (RFC 3501 date-time) as unix seconds.
pub fn internal_date(s: &str) -> Option<i64> {
    // RFC 3501 pads the day with a space (`date-day-fixed`): trimmed, chrono
    // reads one or two digits.
    chrono::DateTime::parse_from_str(s.trim(), "%d-%b-%Y %H:%M:%S %z")
        .ok()
        .map(|d| d.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_sentences_and_limits_their_own_kind() {
        let f = refused("UID FETCH", &Status::No, "[OVERQUOTA] Quota exceeded");
        assert_eq!(f.kind, FailureKind::ServerLimit);
        assert_eq!(
            f.message,
            "The server refused UID FETCH (NO [OVERQUOTA] Quota exceeded)"
        );
        let f = refused("LIST", &Status::Bad, "Error in IMAP command");
        assert_eq!(f.kind, FailureKind::Protocol);
        assert!(!f.message.contains("Bad"), "{f}");
        let f = timeout("SELECT", std::time::Duration::from_secs(60));
        assert_eq!(f.kind, FailureKind::Timeout);
        assert!(f.message.contains("60 s"), "{f}");
    }

    #[test]
    fn internal_dates() {
        assert_eq!(
            internal_date("01-Jan-2026 00:00:00 +0000"),
            Some(1_767_225_600)
        );
        assert_eq!(
            internal_date(" 1-Jan-2026 02:00:00 +0200"),
            Some(1_767_225_600)
        );
        assert_eq!(
            internal_date("29-Feb-2024 12:30:15 -0130"),
            Some(1_709_209_815 + 5400)
        );
        assert_eq!(internal_date("garbage"), None);
    }
}

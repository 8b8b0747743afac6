//! # Message metadata
//!
//! Extracts what the index shows about a message (decoded subject, from,
//! to, date, Message-ID, whether it has attachments) from its raw bytes
//! with mail-parser. Broken or hostile headers never make a message
//! disappear: whatever cannot be parsed is left empty and the message is
//! stored and listed all the same.

use serde::{Deserialize, Serialize};

/// Longest header value kept in the index; the raw message keeps the rest.
const MAX_FIELD: usize = 1000;

/// What the index keeps about one message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Decoded subject.
    pub subject: String,
    /// `Name <address>` of the first sender.
    pub from: String,
    /// The recipients, comma separated.
    pub to: String,
    /// Unix seconds: the Date header, else the server's arrival time.
    pub date: i64,
    /// The Message-ID, without angle brackets.
    pub message_id: String,
    /// Whether there are attachments.
    pub has_attachments: bool,
}

fn clip(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match clean.char_indices().nth(MAX_FIELD) {
        Some((i, _)) => clean[..i].to_owned(),
        None => clean,
    }
}

fn addr(a: &mail_parser::Addr<'_>) -> String {
    match (a.name(), a.address()) {
        (Some(n), Some(e)) if !n.is_empty() => format!("{n} <{e}>"),
        (_, Some(e)) => e.to_owned(),
        (Some(n), None) => n.to_owned(),
        (None, None) => String::new(),
    }
}

/// Parse `raw`; `fallback_date` (the server's INTERNALDATE or the time of
/// download) is used when the Date header is missing or unreadable.
pub fn meta(raw: &[u8], fallback_date: i64) -> Meta {
    // One full parse gives the headers and the attachment count.
    let Some(msg) = mail_parser::MessageParser::default().parse(raw) else {
        return Meta {
            date: fallback_date,
            ..Meta::default()
        };
    };
    let has_attachments = msg.attachment_count() > 0;
    let date = msg
        .date()
        .map(|d| d.to_timestamp())
        .filter(|d| *d > 0)
        .unwrap_or(fallback_date);
    Meta {
        subject: clip(msg.subject().unwrap_or_default()),
        from: clip(
            &msg.from()
                .and_then(|a| a.first())
                .map(addr)
                .unwrap_or_default(),
        ),
        to: clip(
            &msg.to()
                .map(|a| a.iter().map(addr).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
        ),
        date,
        message_id: clip(msg.message_id().unwrap_or_default()),
        has_attachments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_headers() {
        let raw = b"From: =?UTF-8?Q?Andr=C3=A9?= <andre@example.org>\r\n\
To: a@example.org, B <b@example.org>\r\n\
Subject: =?UTF-8?B?w4l0w6k=?=\r\n\
Date: Tue, 1 Jul 2025 10:00:00 +0000\r\n\
Message-ID: <x1@example.org>\r\n\r\nbody\r\n";
        let m = meta(raw, 5);
        assert_eq!(m.from, "André <andre@example.org>");
        assert_eq!(m.to, "a@example.org, B <b@example.org>");
        assert_eq!(m.subject, "Été");
        assert_eq!(m.date, 1_751_364_000);
        assert_eq!(m.message_id, "x1@example.org");
        assert!(!m.has_attachments);
    }

    #[test]
    fn broken_input_still_gives_a_record() {
        for raw in [
            &b""[..],
            b"\xff\xfe\x00garbage",
            b"Subject\r\n\r\n",
            b"Date: never\r\n\r\nx",
        ] {
            let m = meta(raw, 42);
            assert_eq!(m.date, 42);
        }
    }
}

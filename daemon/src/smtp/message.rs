//! # Preparing a message for submission
//!
//! Turns the RFC 5322 bytes a client hands to `Send` into what goes over
//! SMTP and what is kept in the Sent folder:
//!
//! - line ends become CRLF (RFC 5322 §2.1; a file written on Linux has bare
//!   LF);
//! - a message without `From` gets the account's display name and address,
//!   one without `Date` or `Message-ID` gets them (RFC 5322 §3.6 requires
//!   the first two; the third is what threads hang on);
//! - the envelope comes from the headers: the sender from `Sender`, else
//!   `From`; the recipients from `To`, `Cc` and `Bcc`, each once;
//! - `Bcc` is removed from the bytes sent (RFC 5322 §3.6.3), and kept in
//!   the Sent copy so its owner still sees who got it, as Thunderbird does.
//!
//! Dot-stuffing is lettre's job.

use std::time::{SystemTime, UNIX_EPOCH};

use lettre::address::Envelope;
use lettre::Address;

/// A message ready for submission.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Envelope sender and recipients.
    pub envelope: Envelope,
    /// The bytes to send (no `Bcc`).
    pub wire: Vec<u8>,
    /// The bytes for the Sent folder (with `Bcc`).
    pub copy: Vec<u8>,
}

/// Why a message cannot be sent as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

/// Prepare `raw` for sending from `email` (with `display_name`).
pub fn prepare(
    raw: &[u8],
    email: &str,
    display_name: &str,
    now: SystemTime,
) -> Result<Prepared, Invalid> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(Invalid("The message is empty".to_owned()));
    }
    let text = crlf(raw);
    let (head, body) = split(&text);
    let mut fields = fields(head)?;
    let has = |fields: &[Field], name: &str| fields.iter().any(|f| f.is(name));
    let mut added = Vec::new();
    if !has(&fields, "From") {
        added.push(format!("From: {}", mailbox(display_name, email)));
    }
    if !has(&fields, "Date") {
        added.push(format!("Date: {}", rfc5322_date(now)));
    }
    if !has(&fields, "Message-ID") {
        let domain = email.rsplit_once('@').map_or("localhost", |(_, d)| d);
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        added.push(format!(
            "Message-ID: <{:016x}.{secs}@{domain}>",
            rand::random::<u64>()
        ));
    }
    let mut new_fields: Vec<Field> = added
        .into_iter()
        .map(|s| Field {
            bytes: format!("{s}\r\n").into_bytes(),
        })
        .collect();
    new_fields.append(&mut fields);
    let fields = new_fields;

    let mut copy = Vec::with_capacity(text.len() + 200);
    let mut wire = Vec::with_capacity(text.len() + 200);
    for f in &fields {
        copy.extend_from_slice(&f.bytes);
        if !f.is("Bcc") {
            wire.extend_from_slice(&f.bytes);
        }
    }
    for out in [&mut copy, &mut wire] {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }

    let parsed = mail_parser::MessageParser::new()
        .parse_headers(&copy)
        .ok_or_else(|| Invalid("The message headers cannot be read".to_owned()))?;
    let first = |a: Option<&mail_parser::Address<'_>>| {
        a.and_then(|a| a.iter().find_map(|x| x.address().map(str::to_owned)))
    };
    let sender = first(parsed.sender())
        .or_else(|| first(parsed.from()))
        .unwrap_or_else(|| email.to_owned());
    let from: Address = sender.parse().map_err(|e| {
        Invalid(format!(
            "The sender address {sender:?} is not valid ({e}); fix the From header"
        ))
    })?;
    let mut recipients: Vec<Address> = Vec::new();
    for header in [parsed.to(), parsed.cc(), parsed.bcc()]
        .into_iter()
        .flatten()
    {
        for addr in header.iter().filter_map(|a| a.address()) {
            let parsed: Address = addr.parse().map_err(|e| {
                Invalid(format!("The recipient address {addr:?} is not valid ({e})"))
            })?;
            let dup = recipients.iter().any(|r: &Address| {
                let (a, b): (&str, &str) = (r.as_ref(), parsed.as_ref());
                a.eq_ignore_ascii_case(b)
            });
            if !dup {
                recipients.push(parsed);
            }
        }
    }
    if recipients.is_empty() {
        return Err(Invalid(
            "The message has no recipient: add a To, Cc or Bcc header".to_owned(),
        ));
    }
    let envelope = Envelope::new(Some(from), recipients)
        .map_err(|e| Invalid(format!("The envelope cannot be built: {e}")))?;
    Ok(Prepared {
        envelope,
        wire,
        copy,
    })
}

/// One header field with its continuation lines, CRLF-terminated.
struct Field {
    bytes: Vec<u8>,
}

impl Field {
    /// Whether this is the field `name` (case-insensitive; RFC 5322 §4.5.1
    /// tolerates spaces before the colon).
    fn is(&self, name: &str) -> bool {
        let Some(colon) = self.bytes.iter().position(|&b| b == b':') else {
            return false;
        };
        self.bytes[..colon]
            .trim_ascii_end()
            .eq_ignore_ascii_case(name.as_bytes())
    }
}

fn fields(head: &[u8]) -> Result<Vec<Field>, Invalid> {
    let mut out: Vec<Field> = Vec::new();
    for line in head.split_inclusive(|&b| b == b'\n') {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            match out.last_mut() {
                Some(f) => f.bytes.extend_from_slice(line),
                None => {
                    return Err(Invalid(
                        "The message starts with a folded line instead of a header".to_owned(),
                    ))
                }
            }
        } else {
            let name_ok = line
                .iter()
                .position(|&b| b == b':')
                .is_some_and(|i| i > 0 && line[..i].iter().all(|b| b.is_ascii_graphic()));
            if !name_ok {
                return Err(Invalid(format!(
                    "The message does not start with headers (line {:?})",
                    String::from_utf8_lossy(line)
                        .trim_end()
                        .chars()
                        .take(60)
                        .collect::<String>()
                )));
            }
            out.push(Field {
                bytes: line.to_vec(),
            });
        }
    }
    Ok(out)
}

/// Header block (with its final CRLF) and body, split at the first empty
/// line. Without one, the whole message is headers.
fn split(text: &[u8]) -> (&[u8], &[u8]) {
    if text.starts_with(b"\r\n") {
        return (&[], &text[2..]);
    }
    match text.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&text[..i + 2], &text[i + 4..]),
        None if text.ends_with(b"\r\n") => (text, &[]),
        None => (text, &[]),
    }
}

/// Every bare LF becomes CRLF; the text ends with CRLF.
fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40 + 2);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `Name <address>`, the name quoted or encoded as RFC 5322 and RFC 2047
/// require.
pub fn mailbox(display_name: &str, email: &str) -> String {
    let name = display_name.trim();
    if name.is_empty() {
        return email.to_owned();
    }
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~ ".contains(c);
    let shown = if name.chars().all(atext) {
        name.to_owned()
    } else if name.is_ascii() && !name.chars().any(|c| c.is_ascii_control()) {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        format!("=?UTF-8?B?{}?=", base64(name.as_bytes()))
    };
    format!("{shown} <{email}>")
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An RFC 5322 date in UTC: `Sun, 29 Nov 2026 02:20:00 +0000`.
pub fn rfc5322_date(now: SystemTime) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = WEEKDAYS[days.rem_euclid(7) as usize];
    let month = MONTHS[(m as usize).saturating_sub(1).min(11)];
    format!(
        "{weekday}, {d} {month} {y} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(at(0)), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(at(1_700_000_000)),
            "Tue, 14 Nov 2023 22:13:20 +0000"
        );
    }

    #[test]
    fn names_are_quoted_or_encoded() {
        assert_eq!(mailbox("", "a@b.c"), "a@b.c");
        assert_eq!(mailbox("Alice Doe", "a@b.c"), "Alice Doe <a@b.c>");
        assert_eq!(mailbox("Doe, Alice", "a@b.c"), "\"Doe, Alice\" <a@b.c>");
        assert_eq!(mailbox("Zoé", "a@b.c"), "=?UTF-8?B?Wm/DqQ==?= <a@b.c>");
    }

    #[test]
    fn envelope_from_headers_and_bcc_stripped() {
        let raw = b"From: Alice <alice@example.test>\nTo: bob@example.test, Carol <carol@example.test>\nCc: BOB@example.test\nBcc: dave@example.test,\n  erin@example.test\nSubject: hi\n\nBody line\n.leading dot\n";
        let p = prepare(raw, "alice@example.test", "Alice", at(0)).expect("prepared");
        let rcpts: Vec<String> = p.envelope.to().iter().map(|a| a.to_string()).collect();
        assert_eq!(
            rcpts,
            [
                "bob@example.test",
                "carol@example.test",
                "dave@example.test",
                "erin@example.test"
            ]
        );
        assert_eq!(
            p.envelope.from().map(|a| a.to_string()).as_deref(),
            Some("alice@example.test")
        );
        let wire = String::from_utf8_lossy(&p.wire);
        assert!(!wire.contains("Bcc"), "{wire}");
        assert!(!wire.contains("erin"), "{wire}");
        assert!(wire.contains("\r\nBody line\r\n.leading dot\r\n"));
        assert!(wire.contains("Date: Thu, 1 Jan 1970"));
        assert!(wire.contains("Message-ID: <"));
        let copy = String::from_utf8_lossy(&p.copy);
        assert!(copy.contains("Bcc: dave@example.test,\r\n  erin@example.test\r\n"));
    }

    #[test]
    fn missing_from_gets_the_account() {
        let raw = b"To: bob@example.test\r\nSubject: x\r\n\r\nhi\r\n";
        let p = prepare(raw, "alice@example.test", "Alice Doe", at(0)).expect("prepared");
        let wire = String::from_utf8_lossy(&p.wire);
        assert!(wire.starts_with("From: Alice Doe <alice@example.test>\r\n"));
        assert_eq!(
            p.envelope.from().map(|a| a.to_string()).as_deref(),
            Some("alice@example.test")
        );
    }

    #[test]
    fn sender_wins_and_no_recipient_is_refused() {
        let raw = b"From: a@x.test\r\nSender: s@x.test\r\nTo: b@x.test\r\n\r\n";
        let p = prepare(raw, "me@x.test", "", at(0)).expect("prepared");
        assert_eq!(
            p.envelope.from().map(|a| a.to_string()).as_deref(),
            Some("s@x.test")
        );
        let raw = b"From: a@x.test\r\nSubject: nobody\r\n\r\nhi\r\n";
        assert!(prepare(raw, "me@x.test", "", at(0)).is_err());
        assert!(prepare(b"not a header\r\n\r\n", "me@x.test", "", at(0)).is_err());
        // "Bccx:" is not Bcc.
        let f = Field {
            bytes: b"Bccx: y\r\n".to_vec(),
        };
        assert!(!f.is("Bcc"));
    }
}

//! Building one message: people, subjects, bodies, attachments and headers.

use std::fmt::Write as _;

use super::encoding::{base64_line, q_word, quoted_printable, rfc5322_date};
use super::words::{
    ACCENTED, ATTACHMENTS, DOMAINS, FIRST_NAMES, LAST_NAMES, MAILERS, WORDS, ZONES,
};
use super::{Rng, OWNER};

fn person(rng: &mut Rng) -> (String, String) {
    let first = *rng.pick(FIRST_NAMES);
    let last = *rng.pick(LAST_NAMES);
    let domain = *rng.pick(DOMAINS);
    let local: String = format!("{first}.{last}")
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                'x'
            }
        })
        .collect();
    (format!("{first} {last}"), format!("{local}@{domain}"))
}

/// A display name as a header value: plain ASCII, or RFC 2047 when it is not.
fn display(name: &str, rng: &mut Rng) -> String {
    if name.is_ascii() {
        format!("\"{name}\"")
    } else if rng.chance(0.5) {
        format!("=?UTF-8?B?{}?=", base64_line(name.as_bytes()))
    } else {
        format!("=?UTF-8?Q?{}?=", q_word(name))
    }
}

fn sentence(rng: &mut Rng, accented: bool) -> String {
    let n = rng.range(6, 18);
    let mut s = String::new();
    for k in 0..n {
        let w = if accented && rng.chance(0.2) {
            *rng.pick(ACCENTED)
        } else {
            *rng.pick(WORDS)
        };
        if k == 0 {
            let mut cs = w.chars();
            if let Some(c) = cs.next() {
                s.extend(c.to_uppercase());
                s.push_str(cs.as_str());
            }
        } else {
            s.push(' ');
            s.push_str(w);
        }
    }
    s.push(if rng.chance(0.1) { '?' } else { '.' });
    s
}

fn subject(rng: &mut Rng) -> String {
    let n = rng.range(3, 9);
    let mut s = String::new();
    for k in 0..n {
        if k > 0 {
            s.push(' ');
        }
        s.push_str(rng.pick::<&str>(WORDS));
    }
    let mut cs = s.chars();
    match cs.next() {
        Some(c) => c.to_uppercase().chain(cs).collect(),
        None => s,
    }
}

/// Text paragraphs wrapped at 72 columns, about `target` bytes, CRLF.
fn text_body(rng: &mut Rng, target: usize, accented: bool) -> String {
    let mut out = String::new();
    let greeting = ["Hi,", "Hello all,", "Dear team,", "Bonjour,", "Hallo,"];
    out.push_str(rng.pick::<&str>(&greeting));
    out.push_str("\r\n\r\n");
    while out.len() < target {
        let mut line = String::new();
        let quoted = rng.chance(0.08);
        for _ in 0..rng.range(2, 6) {
            for word in sentence(rng, accented).split(' ') {
                if line.len() + word.len() + 1 > 72 {
                    if quoted {
                        out.push_str("> ");
                    }
                    out.push_str(&line);
                    out.push_str("\r\n");
                    line.clear();
                }
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(word);
            }
        }
        if quoted {
            out.push_str("> ");
        }
        out.push_str(&line);
        out.push_str("\r\n\r\n");
        if rng.chance(0.03) {
            // A line starting with a dot: POP3 must byte-stuff it.
            out.push_str(".. and so on, as discussed.\r\n\r\n");
        }
    }
    let (name, _) = person(rng);
    let _ = write!(out, "-- \r\n{name}\r\n");
    out
}

/// The same text as simple HTML, lines under 80 columns.
fn html_body(text: &str) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"></head>\r\n\
         <body style=\"font-family: sans-serif\">\r\n",
    );
    for para in text.split("\r\n\r\n").filter(|p| !p.trim().is_empty()) {
        out.push_str("<p>");
        let mut col = 3;
        for word in para.split_whitespace() {
            let escaped = word
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            if col + escaped.len() + 1 > 76 {
                out.push_str("\r\n");
                col = 0;
            } else if col > 3 {
                out.push(' ');
                col += 1;
            }
            out.push_str(&escaped);
            col += escaped.len();
        }
        out.push_str("</p>\r\n");
    }
    out.push_str("</body></html>\r\n");
    out
}

/// Attachment content: random bytes, or text that compresses like a log.
fn attachment_bytes(rng: &mut Rng, len: usize, compressible: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 128);
    if compressible {
        let mut row = 0u64;
        while out.len() < len {
            row += 1;
            let line = format!(
                "{row},{},{},{:.3},{}\n",
                rng.pick(WORDS),
                rng.pick(WORDS),
                rng.unit() * 1000.0,
                rng.range(1, 99_999)
            );
            out.extend_from_slice(line.as_bytes());
        }
    } else {
        while out.len() < len {
            out.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

pub(super) fn build(rng: &mut Rng, i: u32, folder: &str, date: i64) -> Vec<u8> {
    let (sender_name, sender) = if folder == "Sent" {
        ("Camille Martin".to_owned(), "camille@bench.test".to_owned())
    } else {
        person(rng)
    };
    let domain = sender
        .rsplit('@')
        .next()
        .unwrap_or("example.com")
        .to_owned();
    let zone = *rng.pick(ZONES);
    let kind = rng.below(100);
    let accented = (30..34).contains(&kind) || rng.chance(0.05);
    let mut h = String::new();
    let relay = rng.range(1, 254);
    let _ = write!(
        h,
        "Return-Path: <{sender}>\r\n\
         Received: from mx{n}.{domain} (mx{n}.{domain} [192.0.2.{relay}])\r\n\
         \tby mail.bench.test with ESMTPS id {id:016x}\r\n\
         \tfor <camille@bench.test>; {date}\r\n",
        n = rng.range(1, 4),
        id = rng.next_u64(),
        date = rfc5322_date(date + rng.range(1, 30) as i64, zone),
    );
    let _ = write!(h, "Date: {}\r\n", rfc5322_date(date, zone));
    let from_display = if rng.chance(0.05) && folder != "Sent" {
        // A non-ASCII display name, encoded (RFC 2047).
        format!(
            "{} {}",
            rng.pick(&["Zoë", "Inès", "Chloé", "Jürgen", "Ærøskøbing"]),
            "Ünal"
        )
    } else {
        sender_name
    };
    let _ = write!(h, "From: {} <{sender}>\r\n", display(&from_display, rng));
    if folder == "Sent" {
        let (n, a) = person(rng);
        let _ = write!(h, "To: {} <{a}>\r\n", display(&n, rng));
    } else {
        let _ = write!(h, "To: {OWNER}\r\n");
    }
    if rng.chance(0.2) {
        let (n, a) = person(rng);
        let _ = write!(h, "Cc: {} <{a}>\r\n", display(&n, rng));
    }
    let mut subj = subject(rng);
    let reply = rng.chance(0.3);
    if reply {
        subj = format!("Re: {subj}");
    }
    if folder == "Lists/dev" {
        subj = format!("[dev] {subj}");
    }
    if accented || rng.chance(0.03) {
        let word = *rng.pick(ACCENTED);
        let full = format!("{subj} — {word}");
        let _ = write!(h, "Subject: =?UTF-8?Q?{}?=\r\n", q_word(&full));
    } else {
        let _ = write!(h, "Subject: {subj}\r\n");
    }
    let _ = write!(h, "Message-ID: <{:016x}.{i}@{domain}>\r\n", rng.next_u64());
    if reply {
        let parent = format!("<{:016x}.{}@{domain}>", rng.next_u64(), i / 2);
        let _ = write!(h, "In-Reply-To: {parent}\r\nReferences: {parent}\r\n");
    }
    if folder == "Lists/dev" {
        h.push_str("List-Id: Developers <dev.lists.example.org>\r\n");
        h.push_str("List-Unsubscribe: <mailto:dev-leave@lists.example.org>\r\n");
    }
    if rng.chance(0.5) {
        h.push_str(rng.pick::<&str>(MAILERS));
        h.push_str("\r\n");
    }
    h.push_str("MIME-Version: 1.0\r\n");

    let target = rng.log_uniform(2_000, 20_000) as usize;
    let boundary = format!("=_bench_{:012x}", rng.next_u64() & 0xFFFF_FFFF_FFFF);
    let mut body = String::new();
    if kind < 10 {
        // multipart/mixed with attachments.
        let text = text_body(rng, target / 2, accented);
        let _ = write!(
            h,
            "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n"
        );
        body.push_str("This is a multi-part message in MIME format.\r\n\r\n");
        let _ = write!(
            body,
            "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n"
        );
        let total = rng.log_uniform(50_000, 1_000_000) as usize;
        let parts = if rng.chance(0.25) { 2 } else { 1 };
        for p in 0..parts {
            let (ctype, suffix, compressible) = *rng.pick(ATTACHMENTS);
            let bytes = attachment_bytes(rng, total / parts, compressible);
            let _ = write!(
                body,
                "--{boundary}\r\nContent-Type: {ctype}; name=\"file-{i}-{p}.{suffix}\"\r\n\
                 Content-Disposition: attachment; filename=\"file-{i}-{p}.{suffix}\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n"
            );
            for chunk in bytes.chunks(57) {
                body.push_str(&base64_line(chunk));
                body.push_str("\r\n");
            }
        }
        let _ = write!(body, "--{boundary}--\r\n");
    } else if kind < 30 {
        // multipart/alternative: text and HTML.
        let text = text_body(rng, target * 2 / 5, accented);
        let html = html_body(&text);
        let _ = write!(
            h,
            "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n"
        );
        let _ = write!(
            body,
            "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n\
             --{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n--{boundary}--\r\n",
            quoted_printable(&html)
        );
    } else if kind < 34 {
        let text = text_body(rng, target, true);
        h.push_str(
            "Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n",
        );
        body.push_str(&quoted_printable(&text));
    } else {
        let text = text_body(rng, target, accented);
        if text.is_ascii() {
            h.push_str(
                "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n",
            );
        } else {
            h.push_str(
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
            );
        }
        body.push_str(&text);
    }
    let mut raw = h.into_bytes();
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(body.as_bytes());
    raw
}

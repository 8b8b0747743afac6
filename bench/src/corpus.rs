//! # The generated mailbox
//!
//! A deterministic corpus of realistic RFC 5322 messages: the same seed and
//! count give the same bytes on every machine, with no network and no data
//! file. Message `i` depends only on the seed and `i` (each has its own
//! PRNG stream), so a message can be regenerated alone.
//!
//! The mix, by design close to a real mailbox:
//!
//! - about 66 % plain text (`text/plain`, 7bit or 8bit), 2–20 KB;
//! - about 20 % `multipart/alternative` (text and HTML);
//! - about 4 % quoted-printable text with accented words;
//! - about 10 % `multipart/mixed` with one or two base64 attachments of
//!   50 KB–1 MB in all (log-uniform), most of them incompressible binary
//!   (PDF, JPEG, ZIP), some compressible text (CSV, logs);
//! - a few percent with RFC 2047 encoded, non-ASCII `Subject` or `From`;
//!   replies with `In-Reply-To`/`References`; occasional lines starting with
//!   a dot (POP3 must byte-stuff them).
//!
//! Every line ends in CRLF and stays under 998 octets. Dates rise with `i`
//! over two years from 2023-01-01, in several time zones.
//!
//! What this module leaves to others: where the messages go
//! ([`crate::load`]).

use std::fmt::Write as _;

/// The default seed (any value works; this one is printed in the report).
pub const DEFAULT_SEED: u64 = 0x0FAC_7E0B_E4C4_2026;

/// 2023-01-01T00:00:00Z, the date of the first message.
const FIRST_DATE: i64 = 1_672_531_200;
/// The dates span two years.
const DATE_SPAN: i64 = 2 * 365 * 86_400;

/// SplitMix64: tiny, fast, and good enough for test data (not crypto).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for one stream.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Log-uniform in `lo..=hi` (sizes: many small, a few large).
    pub fn log_uniform(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
        ((l + (h - l) * self.unit()).exp() as u64).clamp(lo, hi)
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The user the mailbox belongs to, in `To:` and as `From:` of sent mail.
pub const OWNER: &str = "Camille Martin <camille@bench.test>";

/// IMAP folders and the share of messages each gets; INBOX is the rest.
/// Names use `/` as the hierarchy separator, as the test Dovecot does.
pub const FOLDERS: &[(&str, f64)] = &[("Archive", 0.08), ("Lists/dev", 0.07), ("Sent", 0.05)];

/// One generated message.
#[derive(Debug, Clone)]
pub struct Message {
    /// The IMAP folder it belongs to (`INBOX` or one of [`FOLDERS`]).
    pub folder: &'static str,
    /// Maildir flags (`S`, `F`, `R`), sorted as Maildir wants them.
    pub flags: String,
    /// The `Date:` as unix seconds (also the file's mtime, Dovecot's
    /// INTERNALDATE).
    pub date: i64,
    /// The exact bytes, CRLF line ends.
    pub raw: Vec<u8>,
}

/// The corpus: a seed and a message count.
#[derive(Debug, Clone, Copy)]
pub struct Corpus {
    /// The seed every message stream derives from.
    pub seed: u64,
    /// How many messages.
    pub count: u32,
}

impl Corpus {
    /// Message `i` (`i < count`).
    pub fn message(&self, i: u32) -> Message {
        let mut rng = Rng::new(self.seed ^ u64::from(i).wrapping_mul(0xD1B5_4A32_D192_ED03));
        // Burn a few values so nearby seeds do not start alike.
        for _ in 0..3 {
            rng.next_u64();
        }
        let folder = {
            let roll = rng.unit();
            let mut acc = 0.0;
            FOLDERS
                .iter()
                .find(|(_, share)| {
                    acc += share;
                    roll < acc
                })
                .map(|(name, _)| *name)
                .unwrap_or("INBOX")
        };
        let step = DATE_SPAN / i64::from(self.count.max(1));
        let date = FIRST_DATE + step * i64::from(i) + rng.below(step.max(1) as u64) as i64;
        let mut flags = String::new();
        if rng.chance(0.04) {
            flags.push('F');
        }
        if folder == "Sent" || rng.chance(0.15) {
            flags.push('R');
        }
        // Older mail is read; the newest tenth mostly not.
        if folder == "Sent" || i < self.count / 10 * 9 || rng.chance(0.3) {
            flags.push('S');
        }
        let raw = build(&mut rng, i, folder, date);
        Message {
            folder,
            flags,
            date,
            raw,
        }
    }
}

// ---------------------------------------------------------------------------
// Building one message
// ---------------------------------------------------------------------------

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "meeting",
    "release",
    "budget",
    "review",
    "draft",
    "schedule",
    "server",
    "deploy",
    "customer",
    "invoice",
    "report",
    "quarter",
    "update",
    "proposal",
    "contract",
    "feedback",
    "question",
    "answer",
    "thanks",
    "please",
    "attached",
    "tomorrow",
    "yesterday",
    "morning",
    "afternoon",
    "week",
    "month",
    "project",
    "team",
    "design",
    "change",
    "issue",
    "ticket",
    "build",
    "test",
    "failure",
    "success",
    "version",
    "branch",
    "merge",
    "patch",
    "kernel",
    "network",
    "latency",
    "storage",
    "backup",
    "index",
    "cache",
    "queue",
    "thread",
    "memory",
    "disk",
    "office",
    "travel",
    "hotel",
    "flight",
    "train",
    "lunch",
    "dinner",
    "coffee",
    "weekend",
    "holiday",
    "family",
    "garden",
    "weather",
    "rain",
    "sunny",
    "football",
    "concert",
    "ticket",
    "book",
    "chapter",
    "notes",
    "minutes",
    "agenda",
    "decision",
    "priority",
    "deadline",
    "estimate",
    "risk",
    "plan",
    "roadmap",
    "milestone",
    "launch",
    "metrics",
    "dashboard",
    "revenue",
    "margin",
    "forecast",
    "hiring",
    "interview",
    "candidate",
    "onboarding",
    "training",
    "policy",
    "security",
    "audit",
    "compliance",
    "vendor",
    "license",
    "support",
    "migration",
    "database",
    "query",
    "schema",
    "table",
    "column",
    "record",
    "field",
    "value",
    "result",
    "error",
    "warning",
    "log",
    "trace",
    "really",
    "quite",
    "very",
    "probably",
    "certainly",
    "maybe",
    "again",
    "soon",
    "later",
    "already",
    "still",
    "just",
    "also",
    "only",
    "even",
    "however",
    "therefore",
    "meanwhile",
    "good",
    "new",
    "first",
    "last",
    "long",
    "great",
    "little",
    "own",
    "other",
    "old",
    "right",
    "big",
    "high",
    "different",
    "small",
    "large",
    "next",
    "early",
    "young",
    "important",
    "few",
    "public",
    "bad",
    "same",
    "able",
    "send",
    "check",
    "think",
    "know",
    "want",
    "look",
    "use",
    "find",
    "give",
    "tell",
    "work",
    "call",
    "try",
    "ask",
    "need",
    "feel",
    "leave",
    "put",
    "mean",
    "keep",
    "let",
    "begin",
    "seem",
    "help",
    "show",
    "hear",
    "play",
    "run",
    "move",
    "live",
];

const ACCENTED: &[&str] = &[
    "réunion",
    "été",
    "déjà",
    "très",
    "à",
    "où",
    "garçon",
    "français",
    "hôtel",
    "fenêtre",
    "naïve",
    "Noël",
    "forêt",
    "Grüße",
    "schön",
    "Straße",
    "über",
    "Mädchen",
    "Größe",
    "müssen",
    "señor",
    "año",
    "mañana",
    "niño",
    "café",
    "crème",
    "brûlée",
    "Zürich",
    "Malmö",
    "Kraków",
];

const FIRST_NAMES: &[&str] = &[
    "Alice", "Bruno", "Chloé", "David", "Emma", "Farid", "Grace", "Hugo", "Inès", "Jonas", "Karin",
    "Léa", "Marco", "Nadia", "Oscar", "Paula", "Quentin", "Rosa", "Sven", "Tomás", "Ursula",
    "Victor", "Wen", "Yasmin", "Zoë",
];

const LAST_NAMES: &[&str] = &[
    "Dubois",
    "Schmidt",
    "García",
    "Rossi",
    "Nowak",
    "Jensen",
    "Müller",
    "Lefèvre",
    "Silva",
    "Kowalski",
    "Novák",
    "Andersson",
    "Papadopoulos",
    "Costa",
    "Moreau",
    "Brown",
    "Tanaka",
    "Kim",
];

const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example.co.uk",
    "lists.example.org",
    "corp.example.com",
];

const MAILERS: &[&str] = &[
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0",
    "X-Mailer: Apple Mail (2.3731.700.6)",
    "User-Agent: Mutt/2.2.9 (2022-11-12)",
    "X-Mailer: Microsoft Outlook 16.0",
    "User-Agent: Evolution 3.46.4-2",
];

const ZONES: &[(i64, &str)] = &[
    (0, "+0000"),
    (3600, "+0100"),
    (7200, "+0200"),
    (-18000, "-0500"),
    (-28800, "-0800"),
    (19800, "+0530"),
    (32400, "+0900"),
];

/// The kinds of attachment: (content type, file suffix, compressible).
const ATTACHMENTS: &[(&str, &str, bool)] = &[
    ("application/pdf", "pdf", false),
    ("image/jpeg", "jpg", false),
    ("image/png", "png", false),
    ("application/zip", "zip", false),
    ("text/csv", "csv", true),
    ("text/plain", "log", true),
];

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

fn build(rng: &mut Rng, i: u32, folder: &str, date: i64) -> Vec<u8> {
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

// ---------------------------------------------------------------------------
// Encodings and dates
// ---------------------------------------------------------------------------

/// Standard base64 of a short input, padded, on one line.
fn base64_line(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(ABC[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Quoted-printable (RFC 2045) of CRLF text, soft line breaks at 76.
fn quoted_printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 11 / 10);
    for line in text.split("\r\n") {
        let mut col = 0;
        let bytes = line.as_bytes();
        for (k, &b) in bytes.iter().enumerate() {
            let last = k + 1 == bytes.len();
            let plain = (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let piece = if plain {
                char::from(b).to_string()
            } else {
                format!("={b:02X}")
            };
            if col + piece.len() > 75 {
                out.push_str("=\r\n");
                col = 0;
            }
            out.push_str(&piece);
            col += piece.len();
        }
        out.push_str("\r\n");
    }
    // split() gave one extra empty piece after the final CRLF.
    out.truncate(out.len().saturating_sub(2));
    out
}

/// The text of an RFC 2047 Q encoded word (spaces as `_`).
fn q_word(s: &str) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        match b {
            b' ' => out.push('_'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "={b:02X}");
            }
        }
    }
    out
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's
/// `civil_from_days`.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `Tue, 05 Mar 2024 14:03:22 +0100` for unix time `t` in zone `zone`.
fn rfc5322_date(t: i64, zone: (i64, &str)) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let local = t + zone.0;
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        zone.1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_deterministic_and_crlf() {
        let c = Corpus {
            seed: DEFAULT_SEED,
            count: 300,
        };
        for i in 0..300 {
            let m = c.message(i);
            assert_eq!(m.raw, c.message(i).raw, "message {i} is not deterministic");
            let mut prev = 0u8;
            let mut line = 0usize;
            for &b in &m.raw {
                if b == b'\n' {
                    assert_eq!(prev, b'\r', "message {i} has a bare LF");
                    line = 0;
                } else {
                    line += 1;
                    assert!(line <= 998, "message {i} has a line over 998 octets");
                }
                prev = b;
            }
            assert!(m.raw.ends_with(b"\r\n"), "message {i} does not end in CRLF");
        }
    }

    #[test]
    fn the_mix_has_attachments_html_and_folders() {
        let c = Corpus {
            seed: DEFAULT_SEED,
            count: 1000,
        };
        let msgs: Vec<Message> = (0..1000).map(|i| c.message(i)).collect();
        let has = |m: &Message, s: &str| m.raw.windows(s.len()).any(|w| w == s.as_bytes());
        let attach = msgs
            .iter()
            .filter(|m| has(m, "Content-Disposition: attachment"))
            .count();
        let html = msgs.iter().filter(|m| has(m, "text/html")).count();
        let inbox = msgs.iter().filter(|m| m.folder == "INBOX").count();
        assert!((60..=140).contains(&attach), "{attach} with attachments");
        assert!((140..=260).contains(&html), "{html} with HTML");
        assert!((720..=880).contains(&inbox), "{inbox} in INBOX");
        let big = msgs.iter().filter(|m| m.raw.len() > 500_000).count();
        assert!(big > 0, "no large message");
    }

    #[test]
    fn dates_and_encodings() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(
            rfc5322_date(1_709_643_802, (3600, "+0100")),
            "Tue, 05 Mar 2024 14:03:22 +0100"
        );
        assert_eq!(base64_line(b"ab"), "YWI=");
        assert_eq!(base64_line(b"abc"), "YWJj");
        assert_eq!(q_word("Zoë a"), "Zo=C3=AB_a");
        assert_eq!(quoted_printable("é=\r\nx \r\n"), "=C3=A9=3D\r\nx=20\r\n");
    }
}

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

mod build;
mod encoding;
mod words;

pub use encoding::civil_from_days;

use build::build;

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
}

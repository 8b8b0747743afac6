//! Encodings and dates: base64, quoted-printable, RFC 2047 words, RFC 5322 dates.

use std::fmt::Write as _;

/// Standard base64 of a short input, padded, on one line.
pub(super) fn base64_line(bytes: &[u8]) -> String {
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
pub(super) fn quoted_printable(text: &str) -> String {
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
pub(super) fn q_word(s: &str) -> String {
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
pub(super) fn rfc5322_date(t: i64, zone: (i64, &str)) -> String {
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

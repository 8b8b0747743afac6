//! Encodings: base64 variants and IMAP mailbox names.

/// Base64 with the given two last alphabet characters, padded or not.
pub(super) fn base64(bytes: &[u8], last: &[u8; 2], pad: bool) -> String {
    const ABC: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let sym = |v: u32| -> char {
        let v = (v & 63) as usize;
        char::from(if v < 62 { ABC[v] } else { last[v - 62] })
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(sym(n >> (18 - 6 * i)));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// A folder name in IMAP's modified UTF-7 (RFC 3501 section 5.1.3), as it
/// goes on the wire: `Reçus/Été` → `Re&AOc-us/&AMk-t&AOk-`.
pub fn encode_mailbox_name(name: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&base64(&bytes, b"+,", false));
        out.push('-');
        pending.clear();
    };
    for ch in name.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut pending, &mut out);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(ch.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// A folder name as an IMAP command argument: modified UTF-7, quoted.
pub fn mailbox_arg(name: &str) -> String {
    quote(&encode_mailbox_name(name))
}

/// An IMAP quoted string.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modified_utf7() {
        assert_eq!(encode_mailbox_name("INBOX"), "INBOX");
        assert_eq!(encode_mailbox_name("Reçus/Été"), "Re&AOc-us/&AMk-t&AOk-");
        assert_eq!(encode_mailbox_name("A&B"), "A&-B");
        assert_eq!(encode_mailbox_name("日本語"), "&ZeVnLIqe-");
        assert_eq!(mailbox_arg("a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn base64_standard() {
        assert_eq!(base64(b"p:\xc3\xbc s", b"+/", true), "cDrDvCBz");
        assert_eq!(base64(b"ab", b"+/", true), "YWI=");
        assert_eq!(base64(b"a", b"+/", true), "YQ==");
    }
}

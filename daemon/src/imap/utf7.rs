//! # Modified UTF-7 (RFC 3501 §5.1.3)
//!
//! IMAP mailbox names travel in modified UTF-7: printable ASCII as itself,
//! `&` as `&-`, anything else as `&` + modified base64 of UTF-16BE + `-`.
//! We decode for display and keep the server's spelling for the protocol.

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn b64_value(c: u8) -> Option<u32> {
    B64.iter().position(|&b| b == c).map(|p| p as u32)
}

/// Decode a mailbox name. A name that is not valid modified UTF-7 is
/// returned unchanged (some servers send raw UTF-8).
pub fn decode(name: &str) -> String {
    decode_strict(name).unwrap_or_else(|| name.to_owned())
}

fn decode_strict(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c != b'&' {
            out.push(char::from(c));
            if !c.is_ascii() {
                return None;
            }
            i += 1;
            continue;
        }
        let end = i + 1 + bytes.get(i + 1..)?.iter().position(|&b| b == b'-')?;
        let chunk = &bytes[i + 1..end];
        i = end + 1;
        if chunk.is_empty() {
            out.push('&');
            continue;
        }
        let (mut acc, mut nbits, mut units) = (0u32, 0u32, Vec::new());
        for &b in chunk {
            acc = (acc << 6) | b64_value(b)?;
            nbits += 6;
            if nbits >= 16 {
                nbits -= 16;
                units.push(((acc >> nbits) & 0xffff) as u16);
            }
        }
        out.push_str(&String::from_utf16(&units).ok()?);
    }
    Some(out)
}

/// Encode a name for the protocol.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let (mut acc, mut nbits) = (0u32, 0u32);
        for unit in pending.drain(..) {
            acc = (acc << 16) | u32::from(unit);
            nbits += 16;
            while nbits >= 6 {
                nbits -= 6;
                out.push(char::from(B64[((acc >> nbits) & 63) as usize]));
            }
        }
        if nbits > 0 {
            out.push(char::from(B64[((acc << (6 - nbits)) & 63) as usize]));
        }
        out.push('-');
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples_and_round_trips() {
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            "~peter/mail/台北/日本語"
        );
        assert_eq!(decode("&-Tom &- Jerry"), "&Tom & Jerry");
        assert_eq!(decode("Re&AOc-us/&AMk-t&AOk-"), "Reçus/Été");
        for s in ["INBOX", "Reçus/Été", "台北", "A&B", "😀 emoji", ""] {
            assert_eq!(decode(&encode(s)), s, "{s}");
        }
        assert_eq!(encode("Reçus/Été"), "Re&AOc-us/&AMk-t&AOk-");
    }

    #[test]
    fn broken_input_is_kept() {
        for s in ["&", "&zz", "&!!-", "Ünïcode"] {
            assert_eq!(decode(s), s);
        }
    }
}

//! Parsing and encoding helpers for the scripted server: literals, astrings, sequence sets.

/// `{n}` (or `{n+}`) at the end of a line.
pub(super) fn trailing_literal(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|b| *b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A name as an IMAP astring: quoted when it is plain printable ASCII,
/// else a literal.
pub(super) fn astring(name: &[u8]) -> Vec<u8> {
    if name
        .iter()
        .all(|b| (0x20..0x7f).contains(b) && *b != b'"' && *b != b'\\')
    {
        let mut r = b"\"".to_vec();
        r.extend_from_slice(name);
        r.push(b'"');
        r
    } else {
        let mut r = format!("{{{}}}\r\n", name.len()).into_bytes();
        r.extend_from_slice(name);
        r
    }
}

/// Whether `uid` is in an IMAP sequence set (`*` is `max`).
pub(super) fn in_set(set: &str, uid: u32, max: u32) -> bool {
    let num = |s: &str| {
        if s == "*" {
            Some(max)
        } else {
            s.parse::<u32>().ok()
        }
    };
    set.split(',').any(|part| match part.split_once(':') {
        Some((a, b)) => match (num(a), num(b)) {
            (Some(a), Some(b)) => (a.min(b)..=a.max(b)).contains(&uid),
            _ => false,
        },
        None => num(part) == Some(uid),
    })
}

/// A cursor over a command line.
pub(super) struct Words<'a>(pub(super) &'a [u8]);

impl<'a> Words<'a> {
    pub(super) fn skip_spaces(&mut self) {
        while self.0.first() == Some(&b' ') {
            self.0 = &self.0[1..];
        }
    }

    /// The next space-delimited word.
    pub(super) fn atom(&mut self) -> &'a [u8] {
        self.skip_spaces();
        let end = self
            .0
            .iter()
            .position(|b| *b == b' ')
            .unwrap_or(self.0.len());
        let (w, rest) = self.0.split_at(end);
        self.0 = rest;
        w
    }

    /// The next astring: quoted (with `\` escapes), a literal already
    /// inlined by [`Conn::read_command`] (`{n}` followed by n bytes), or an
    /// atom.
    pub(super) fn astring(&mut self) -> Vec<u8> {
        self.skip_spaces();
        match self.0.first() {
            Some(b'"') => {
                let mut out = Vec::new();
                let mut i = 1;
                while i < self.0.len() {
                    match self.0[i] {
                        b'\\' if i + 1 < self.0.len() => {
                            out.push(self.0[i + 1]);
                            i += 2;
                        }
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b => {
                            out.push(b);
                            i += 1;
                        }
                    }
                }
                self.0 = &self.0[i.min(self.0.len())..];
                out
            }
            Some(b'{') => {
                let close = self.0.iter().position(|b| *b == b'}').unwrap_or(0);
                let digits = String::from_utf8_lossy(&self.0[1..close]).replace('+', "");
                let len: usize = digits.parse().unwrap_or(0);
                let start = close + 1;
                let end = (start + len).min(self.0.len());
                let out = self.0[start..end].to_vec();
                self.0 = &self.0[end..];
                out
            }
            _ => self.atom().to_vec(),
        }
    }

    pub(super) fn rest(&mut self) -> &'a [u8] {
        self.skip_spaces();
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets() {
        assert!(in_set("1:3,5", 2, 9));
        assert!(in_set("4:*", 9, 9));
        assert!(!in_set("1:3,5", 4, 9));
    }

    #[test]
    fn names() {
        assert_eq!(astring(b"INBOX"), b"\"INBOX\"");
        assert_eq!(astring(b"a\0b"), b"{3}\r\na\0b");
        assert_eq!(Words(b"\"a\\\"b\" x").astring(), b"a\"b");
        assert_eq!(Words(b"{3}a\0b").astring(), b"a\0b");
    }
}

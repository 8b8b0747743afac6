//! A minimal LMTP client, delivering like an MTA.

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Instant;

use super::imap_client::read_line;
use crate::DEADLINE;

/// One LMTP connection over a unix socket.
pub(super) struct Lmtp {
    reader: BufReader<UnixStream>,
}

impl Lmtp {
    pub(super) fn connect(path: &Path) -> Lmtp {
        let stream = UnixStream::connect(path)
            .unwrap_or_else(|e| panic!("cannot connect to LMTP at {}: {e}", path.display()));
        let mut lmtp = Lmtp {
            reader: BufReader::new(stream),
        };
        let (code, text) = lmtp.reply();
        assert_eq!(code, 220, "unexpected LMTP greeting: {text}");
        lmtp
    }

    /// A reply: its code and all its lines.
    fn reply(&mut self) -> (u16, String) {
        let deadline = Instant::now() + DEADLINE;
        let mut all = Vec::new();
        loop {
            let start = all.len();
            assert!(
                read_line(&mut self.reader, &mut all, deadline, "LMTP"),
                "the LMTP server closed the connection: {}",
                crate::text(&all)
            );
            let line = &all[start..];
            // "250-more" continues, "250 last" ends.
            if line.len() < 4 || line[3] != b'-' {
                let code = std::str::from_utf8(&line[..line.len().min(3)])
                    .ok()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                return (code, crate::text(&all));
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.reader
            .get_mut()
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("LMTP write failed: {e}"));
    }

    /// One transaction: LHLO, MAIL, RCPT, DATA (CRLF line ends, dot-stuffed).
    pub(super) fn deliver(&mut self, from: &str, to: &str, raw: &[u8]) -> Result<(), String> {
        let step = |lmtp: &mut Lmtp, cmd: &str, want: u16| -> Result<(), String> {
            lmtp.send(format!("{cmd}\r\n").as_bytes());
            let (code, text) = lmtp.reply();
            if code == want {
                Ok(())
            } else {
                Err(format!("`{cmd}` answered {text}"))
            }
        };
        step(self, "LHLO facteur-tests", 250)?;
        step(self, &format!("MAIL FROM:<{from}>"), 250)?;
        step(self, &format!("RCPT TO:<{to}>"), 250)?;
        step(self, "DATA", 354)?;
        let mut data = Vec::with_capacity(raw.len() + 64);
        let mut at_line_start = true;
        let mut prev = 0u8;
        for &b in raw {
            if at_line_start && b == b'.' {
                data.push(b'.');
            }
            if b == b'\n' && prev != b'\r' {
                data.push(b'\r');
            }
            data.push(b);
            at_line_start = b == b'\n';
            prev = b;
        }
        if !data.ends_with(b"\r\n") {
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(b".\r\n");
        self.send(&data);
        // One reply per recipient.
        let (code, text) = self.reply();
        if code != 250 {
            return Err(format!("the message was refused: {text}"));
        }
        let _ = step(self, "QUIT", 221);
        Ok(())
    }
}

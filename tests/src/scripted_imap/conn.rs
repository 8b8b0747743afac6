//! One client connection of the scripted server: reading commands and answering them, faults included.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::words::{astring, in_set, trailing_literal, Words};
use super::{Message, State};

/// One client connection.
pub(super) struct Conn {
    n: usize,
    reader: BufReader<TcpStream>,
    out: TcpStream,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    selected: Option<usize>,
}

/// The answer to give after handling a command.
enum Next {
    Continue,
    Close,
}

impl Conn {
    pub(super) fn new(
        stream: TcpStream,
        n: usize,
        state: Arc<Mutex<State>>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<Conn> {
        let out = stream.try_clone()?;
        Ok(Conn {
            n,
            reader: BufReader::new(stream),
            out,
            state,
            stop,
            selected: None,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn endless_on(&self, what: &str) -> bool {
        let s = self.lock();
        [&s.faults.endless_on, &s.faults.fake_literal_on]
            .iter()
            .any(|f| f.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(what)))
    }

    /// Send bytes without a CRLF until the client goes away, the fault is
    /// switched off or the server stops.
    fn endless(&mut self, what: &str) {
        let chunk = vec![b'x'; 64 * 1024];
        let fake = self
            .lock()
            .faults
            .fake_literal_on
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(what));
        if fake {
            let _ = self.out.write_all(b"* OK x {268435455}\r\n");
        }
        let _ = self.out.write_all(b"* OK ");
        while self.endless_on(what) && !self.stop.load(Ordering::SeqCst) {
            if self.out.write_all(&chunk).is_err() {
                return;
            }
        }
    }

    pub(super) fn serve(&mut self) {
        if self.endless_on("GREETING") {
            self.endless("GREETING");
            return;
        }
        if self
            .out
            .write_all(b"* OK [CAPABILITY IMAP4rev1 IDLE] scripted server ready\r\n")
            .is_err()
        {
            return;
        }
        loop {
            let Some(line) = self.read_command() else {
                return;
            };
            let text = String::from_utf8_lossy(&line).into_owned();
            self.lock().commands.push((self.n, text));
            match self.handle(&line) {
                Ok(Next::Continue) => {}
                Ok(Next::Close) | Err(_) => return,
            }
        }
    }

    /// One command line, with any `{n}` literals the client sent inline
    /// (after answering `+` to each).
    fn read_command(&mut self) -> Option<Vec<u8>> {
        let mut line = Vec::new();
        loop {
            let mut part = Vec::new();
            let n = self.reader.read_until(b'\n', &mut part).ok()?;
            if n == 0 {
                return None;
            }
            while part.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                part.pop();
            }
            line.extend_from_slice(&part);
            // A synchronising literal at the end of the line.
            if let Some(len) = trailing_literal(&part) {
                self.out.write_all(b"+ go ahead\r\n").ok()?;
                let mut buf = vec![0u8; len];
                std::io::Read::read_exact(&mut self.reader, &mut buf).ok()?;
                line.extend_from_slice(&buf);
                continue;
            }
            return Some(line);
        }
    }

    fn handle(&mut self, line: &[u8]) -> std::io::Result<Next> {
        let mut words = Words(line);
        let tag = String::from_utf8_lossy(words.atom()).into_owned();
        let mut cmd = String::from_utf8_lossy(words.atom()).to_ascii_uppercase();
        if cmd == "UID" {
            cmd = format!(
                "UID {}",
                String::from_utf8_lossy(words.atom()).to_ascii_uppercase()
            );
        }
        if self.endless_on(&cmd) {
            self.endless(&cmd);
            return Ok(Next::Close);
        }
        let ok = |out: &mut TcpStream, what: &str| {
            out.write_all(format!("{tag} OK {what} completed\r\n").as_bytes())
        };
        match cmd.as_str() {
            "CAPABILITY" => {
                self.out.write_all(b"* CAPABILITY IMAP4rev1 IDLE\r\n")?;
                ok(&mut self.out, "CAPABILITY")?;
            }
            "LOGIN" | "NOOP" | "CHECK" => ok(&mut self.out, &cmd)?,
            "LOGOUT" => {
                self.out.write_all(b"* BYE see you\r\n")?;
                ok(&mut self.out, "LOGOUT")?;
                return Ok(Next::Close);
            }
            "LIST" | "LSUB" => {
                let names: Vec<Vec<u8>> = self
                    .lock()
                    .mailboxes
                    .iter()
                    .map(|m| m.name.clone())
                    .collect();
                for name in names {
                    let mut r = format!("* {cmd} () \"/\" ").into_bytes();
                    r.extend_from_slice(&astring(&name));
                    r.extend_from_slice(b"\r\n");
                    self.out.write_all(&r)?;
                }
                if self.lock().faults.garbage_list {
                    self.out.write_all(b"* LIST ((( \"/\" )\r\n")?;
                }
                ok(&mut self.out, &cmd)?;
            }
            "SELECT" | "EXAMINE" | "STATUS" => {
                let name = words.astring();
                let found = self.lock().mailboxes.iter().position(|m| m.name == name);
                let Some(i) = found else {
                    self.out
                        .write_all(format!("{tag} NO no such mailbox\r\n").as_bytes())?;
                    return Ok(Next::Continue);
                };
                let mb = self.lock().mailboxes[i].clone();
                if cmd == "STATUS" {
                    let mut r = b"* STATUS ".to_vec();
                    r.extend_from_slice(&astring(&mb.name));
                    r.extend_from_slice(
                        format!(
                            " (MESSAGES {} UIDNEXT {} UIDVALIDITY {})\r\n",
                            mb.messages.len(),
                            mb.uidnext,
                            mb.uidvalidity
                        )
                        .as_bytes(),
                    );
                    self.out.write_all(&r)?;
                } else {
                    self.selected = Some(i);
                    self.out.write_all(
                        format!(
                            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
                             * {} EXISTS\r\n* 0 RECENT\r\n\
                             * OK [UIDVALIDITY {}] UIDs valid\r\n\
                             * OK [UIDNEXT {}] Predicted next UID\r\n",
                            mb.messages.len(),
                            mb.uidvalidity,
                            mb.uidnext
                        )
                        .as_bytes(),
                    )?;
                }
                ok(&mut self.out, &cmd)?;
            }
            "UID SEARCH" => {
                let msgs = self.selected_messages();
                let rest = String::from_utf8_lossy(words.rest()).to_ascii_uppercase();
                let set = rest.trim().strip_prefix("UID ").unwrap_or("1:*").trim();
                let max = msgs.last().map(|m| m.uid).unwrap_or(0);
                let mut r = String::from("* SEARCH");
                for m in &msgs {
                    if in_set(set, m.uid, max) {
                        r.push_str(&format!(" {}", m.uid));
                    }
                }
                r.push_str("\r\n");
                self.out.write_all(r.as_bytes())?;
                ok(&mut self.out, "SEARCH")?;
            }
            "UID FETCH" => {
                let set = String::from_utf8_lossy(words.atom()).into_owned();
                let items = String::from_utf8_lossy(words.rest()).to_ascii_uppercase();
                return self.fetch(&tag, &set, &items);
            }
            "UID STORE" => {
                if self.lock().faults.refuse_store {
                    self.out
                        .write_all(format!("{tag} NO [CANNOT] refused by policy\r\n").as_bytes())?;
                    return Ok(Next::Continue);
                }
                let set = String::from_utf8_lossy(words.atom()).into_owned();
                let item = String::from_utf8_lossy(words.atom()).to_ascii_uppercase();
                let flags: Vec<String> = String::from_utf8_lossy(words.rest())
                    .trim_matches(|c| c == '(' || c == ')' || c == ' ')
                    .split(' ')
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect();
                let mut answers = Vec::new();
                if let Some(i) = self.selected {
                    let mut s = self.lock();
                    let mb = &mut s.mailboxes[i];
                    let max = mb.messages.last().map(|m| m.uid).unwrap_or(0);
                    for (n, m) in mb.messages.iter_mut().enumerate() {
                        if !in_set(&set, m.uid, max) {
                            continue;
                        }
                        if item.starts_with('-') {
                            m.flags.retain(|f| !flags.contains(f));
                        } else if item.starts_with('+') {
                            for f in &flags {
                                if !m.flags.contains(f) {
                                    m.flags.push(f.clone());
                                }
                            }
                        } else {
                            m.flags = flags.clone();
                        }
                        if !item.ends_with(".SILENT") {
                            answers.push(format!(
                                "* {} FETCH (UID {} FLAGS ({}))\r\n",
                                n + 1,
                                m.uid,
                                m.flags.join(" ")
                            ));
                        }
                    }
                }
                for a in answers {
                    self.out.write_all(a.as_bytes())?;
                }
                ok(&mut self.out, "STORE")?;
            }
            "EXPUNGE" | "UID EXPUNGE" => {
                let set = if cmd == "EXPUNGE" {
                    "1:*".to_owned()
                } else {
                    String::from_utf8_lossy(words.atom()).into_owned()
                };
                let mut gone = Vec::new();
                if let Some(i) = self.selected {
                    let mut s = self.lock();
                    let mb = &mut s.mailboxes[i];
                    let max = mb.messages.last().map(|m| m.uid).unwrap_or(0);
                    let mut n = 0;
                    mb.messages.retain(|m| {
                        n += 1;
                        let drop =
                            in_set(&set, m.uid, max) && m.flags.iter().any(|f| f == "\\Deleted");
                        if drop {
                            // Sequence numbers shift down after each.
                            gone.push(n - gone.len());
                        }
                        !drop
                    });
                }
                for n in gone {
                    self.out
                        .write_all(format!("* {n} EXPUNGE\r\n").as_bytes())?;
                }
                ok(&mut self.out, &cmd)?;
            }
            "IDLE" => {
                self.out.write_all(b"+ idling\r\n")?;
                let mut l = Vec::new();
                loop {
                    l.clear();
                    if self.reader.read_until(b'\n', &mut l)? == 0 {
                        return Ok(Next::Close);
                    }
                    if l.trim_ascii().eq_ignore_ascii_case(b"DONE") {
                        break;
                    }
                }
                ok(&mut self.out, "IDLE")?;
            }
            _ => {
                self.out
                    .write_all(format!("{tag} BAD unknown command\r\n").as_bytes())?;
            }
        }
        Ok(Next::Continue)
    }

    fn selected_messages(&self) -> Vec<Message> {
        let s = self.lock();
        self.selected
            .and_then(|i| s.mailboxes.get(i))
            .map(|m| m.messages.clone())
            .unwrap_or_default()
    }

    fn fetch(&mut self, tag: &str, set: &str, items: &str) -> std::io::Result<Next> {
        let msgs = self.selected_messages();
        let faults = self.lock().faults.clone();
        let body = items.contains("BODY.PEEK[]") || items.contains("BODY[]");
        let max = msgs.last().map(|m| m.uid).unwrap_or(0);
        let mut chosen: Vec<(usize, &Message)> = msgs
            .iter()
            .enumerate()
            .filter(|(_, m)| in_set(set, m.uid, max))
            .collect();
        // "n:*" with n past the last UID still names the last message.
        if chosen.is_empty() && set.ends_with(":*") {
            if let Some(last) = msgs.last() {
                chosen.push((msgs.len() - 1, last));
            }
        }
        let mut sent = 0usize;
        for (i, m) in chosen {
            if body {
                if faults.bye_after == Some(sent) {
                    self.out.write_all(b"* BYE going away mid-fetch\r\n")?;
                    return Ok(Next::Close);
                }
                if faults.close_after == Some(sent) {
                    return Ok(Next::Close);
                }
                if faults.omit_uid == Some(m.uid) {
                    continue;
                }
            }
            let mut parts = vec![format!("UID {}", m.uid)];
            if items.contains("FLAGS") {
                parts.push(format!("FLAGS ({})", m.flags.join(" ")));
            }
            if items.contains("RFC822.SIZE") {
                parts.push(format!("RFC822.SIZE {}", m.body.len()));
            }
            if items.contains("INTERNALDATE") {
                parts.push("INTERNALDATE \"01-Jan-2026 00:00:00 +0000\"".to_owned());
            }
            let mut r = format!("* {} FETCH ({}", i + 1, parts.join(" ")).into_bytes();
            if body {
                r.extend_from_slice(format!(" BODY[] {{{}}}\r\n", m.body.len()).as_bytes());
                r.extend_from_slice(&m.body);
            }
            r.extend_from_slice(b")\r\n");
            self.out.write_all(&r)?;
            sent += 1;
        }
        self.out
            .write_all(format!("{tag} OK FETCH completed\r\n").as_bytes())?;
        Ok(Next::Continue)
    }
}

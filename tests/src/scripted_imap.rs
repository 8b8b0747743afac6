//! # A scripted IMAP server for fault tests
//!
//! A small IMAP4rev1 server on `127.0.0.1:0`, plain text (accounts use
//! security `none`), one std thread per connection. It speaks what
//! facteurd uses: the greeting, CAPABILITY, LOGIN (any password),
//! `LIST "" "*"`, SELECT/EXAMINE, STATUS, `UID SEARCH UID a:b`, UID FETCH
//! of UID, FLAGS, RFC822.SIZE, INTERNALDATE and `BODY.PEEK[]` (literals),
//! UID STORE, EXPUNGE and UID EXPUNGE, NOOP, IDLE/DONE and LOGOUT. Mailboxes and messages are set by the test
//! and can be changed while it runs.
//!
//! Unlike Dovecot it misbehaves on request ([`Faults`]), and each switch
//! can be turned off while running, so "the server behaves again" can be
//! tested:
//!
//! - `* BYE` then close, or a bare TCP close, after N FETCH responses of a
//!   body FETCH;
//! - a body FETCH that leaves out one UID and still answers `OK`;
//! - an endless line (bytes without CRLF) instead of an answer;
//! - an endless line after `* OK x {268435455}` (a `{N}` that is no
//!   literal);
//! - a LIST entry that no parser can read;
//! - a `NO` to `UID STORE`;
//! - folder names are raw bytes, sent as literals when they are not plain
//!   ASCII: a NUL, invalid UTF-8, two names that decode to the same text.
//!
//! Everything the client sends is recorded ([`ScriptedImap::commands`]) and
//! connections are counted, so tests can check what facteurd asked for.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// One message of a mailbox.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its UID.
    pub uid: u32,
    /// Its flags, e.g. `\Seen`.
    pub flags: Vec<String>,
    /// Its raw bytes.
    pub body: Vec<u8>,
}

/// One mailbox: a raw name (any bytes) and its messages in UID order.
#[derive(Debug, Clone)]
pub struct Mailbox {
    /// The name as sent on the wire.
    pub name: Vec<u8>,
    /// UIDVALIDITY.
    pub uidvalidity: u32,
    /// UIDNEXT; kept past the highest UID by [`ScriptedImap::add_message`].
    pub uidnext: u32,
    /// Messages, by ascending UID.
    pub messages: Vec<Message>,
}

/// The misbehaviour switches. All off by default.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// After this many FETCH responses of a body FETCH, send `* BYE` and
    /// close.
    pub bye_after: Option<usize>,
    /// After this many FETCH responses of a body FETCH, close the TCP
    /// connection without a word.
    pub close_after: Option<usize>,
    /// Leave this UID out of body FETCH answers (and still say OK).
    pub omit_uid: Option<u32>,
    /// Answer this command (upper case, e.g. `LIST`; `GREETING` for the
    /// greeting) with an endless line.
    pub endless_on: Option<String>,
    /// Put a LIST line no parser can read among the LIST answers.
    pub garbage_list: bool,
    /// Answer `UID STORE` with a tagged `NO` (and change no flag).
    pub refuse_store: bool,
    /// Send `* OK x {268435455}` (a `{N}` that is text, not a literal)
    /// then an endless line instead of answering this command (upper case,
    /// e.g. `LIST`; `GREETING` for the greeting).
    pub fake_literal_on: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    mailboxes: Vec<Mailbox>,
    faults: Faults,
    /// (connection number, command line as text).
    commands: Vec<(usize, String)>,
}

/// The server. Stops accepting when dropped.
pub struct ScriptedImap {
    port: u16,
    state: Arc<Mutex<State>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

/// A test message with a Subject, a Message-ID and a body that make it
/// unique.
pub fn message(uid: u32, subject: &str) -> Message {
    let body = format!(
        "From: Bob <bob@example.test>\r\nTo: alice@example.test\r\n\
         Subject: {subject}\r\nMessage-ID: <m{uid}.{subject_len}@example.test>\r\n\
         Date: Thu, 01 Jan 2026 00:{min:02}:00 +0000\r\n\r\nBody of {subject}.\r\n",
        subject_len = subject.len(),
        min = uid % 60
    );
    Message {
        uid,
        flags: Vec::new(),
        body: body.into_bytes(),
    }
}

impl ScriptedImap {
    /// Start with an empty INBOX.
    pub fn start() -> ScriptedImap {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the scripted IMAP server");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(Mutex::new(State {
            mailboxes: vec![Mailbox {
                name: b"INBOX".to_vec(),
                uidvalidity: 7,
                uidnext: 1,
                messages: Vec::new(),
            }],
            ..State::default()
        }));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        {
            let (state, connections, stop) = (state.clone(), connections.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let n = connections.fetch_add(1, Ordering::SeqCst) + 1;
                            let (state, stop) = (state.clone(), stop.clone());
                            thread::spawn(move || {
                                let _ = stream.set_nonblocking(false);
                                let _ = Conn::new(stream, n, state, stop).map(|mut c| c.serve());
                            });
                        }
                        Err(_) => thread::sleep(Duration::from_millis(20)),
                    }
                }
            });
        }
        ScriptedImap {
            port,
            state,
            connections,
            stop,
        }
    }

    /// The port it listens on (host `127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.port
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a mailbox with a raw name.
    pub fn add_mailbox(&self, name: &[u8]) {
        let mut s = self.lock();
        s.mailboxes.push(Mailbox {
            name: name.to_vec(),
            uidvalidity: 11,
            uidnext: 1,
            messages: Vec::new(),
        });
    }

    /// Add a message to the mailbox named `mailbox`; its UID becomes the
    /// mailbox's UIDNEXT if it is not set. Returns the UID.
    pub fn add_message(&self, mailbox: &[u8], mut m: Message) -> u32 {
        let mut s = self.lock();
        let mb = s
            .mailboxes
            .iter_mut()
            .find(|b| b.name == mailbox)
            .expect("add_message: no such mailbox");
        if m.uid == 0 {
            m.uid = mb.uidnext.max(1);
        }
        mb.uidnext = mb.uidnext.max(m.uid + 1);
        let uid = m.uid;
        mb.messages.push(m);
        mb.messages.sort_by_key(|m| m.uid);
        uid
    }

    /// Set the faults (replacing all switches).
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Turn every fault off.
    pub fn behave(&self) {
        self.set_faults(Faults::default());
    }

    /// The UIDs the mailbox named `mailbox` holds now.
    pub fn uids(&self, mailbox: &[u8]) -> Vec<u32> {
        self.lock()
            .mailboxes
            .iter()
            .find(|b| b.name == mailbox)
            .map(|b| b.messages.iter().map(|m| m.uid).collect())
            .unwrap_or_default()
    }

    /// Every command received so far, with its connection number.
    pub fn commands(&self) -> Vec<(usize, String)> {
        self.lock().commands.clone()
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for ScriptedImap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One client connection.
struct Conn {
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
    fn new(
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

    fn serve(&mut self) {
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

/// `{n}` (or `{n+}`) at the end of a line.
fn trailing_literal(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|b| *b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A name as an IMAP astring: quoted when it is plain printable ASCII,
/// else a literal.
fn astring(name: &[u8]) -> Vec<u8> {
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
fn in_set(set: &str, uid: u32, max: u32) -> bool {
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
struct Words<'a>(&'a [u8]);

impl<'a> Words<'a> {
    fn skip_spaces(&mut self) {
        while self.0.first() == Some(&b' ') {
            self.0 = &self.0[1..];
        }
    }

    /// The next space-delimited word.
    fn atom(&mut self) -> &'a [u8] {
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
    fn astring(&mut self) -> Vec<u8> {
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

    fn rest(&mut self) -> &'a [u8] {
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

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

mod conn;
mod words;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use conn::Conn;

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

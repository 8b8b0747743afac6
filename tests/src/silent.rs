//! # A server that greets and then goes silent
//!
//! [`SilentServer`] listens on `127.0.0.1:0`, writes a greeting to every
//! connection (an IMAP `* OK`, a POP3 `+OK`, …), reads and drops whatever
//! the client sends, and never answers. Connections are held open until
//! the server is dropped, so the client sees neither an answer nor a close:
//! only its own deadlines can end the wait.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// The IMAP greeting.
pub const IMAP_GREETING: &str = "* OK [CAPABILITY IMAP4rev1] Silent IMAP ready\r\n";
/// The POP3 greeting.
pub const POP3_GREETING: &str = "+OK Silent POP3 ready\r\n";

/// A server that greets and then never answers.
pub struct SilentServer {
    port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl SilentServer {
    /// Listen on a free loopback port; send `greeting` on each connection.
    pub fn start(greeting: &str) -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("a local address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(Mutex::new(Vec::new()));
        let greeting = greeting.as_bytes().to_vec();
        {
            let (stop, accepted, open) = (stop.clone(), accepted.clone(), open.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut conn) = conn else { continue };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let _ = conn.write_all(&greeting);
                    if let Ok(mut reader) = conn.try_clone() {
                        // Swallow what the client sends, answer nothing.
                        thread::spawn(move || {
                            let mut buf = [0u8; 1024];
                            while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
                        });
                    }
                    if let Ok(mut held) = open.lock() {
                        held.push(conn);
                    }
                }
            });
        }
        SilentServer {
            port,
            stop,
            accepted,
            open,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many connections it accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Ok(mut held) = self.open.lock() {
            for c in held.drain(..) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

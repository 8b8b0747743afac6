//! # POP3 client tests
//!
//! Drive [`Client`] against scripted servers over `tokio::io::duplex`:
//! transcripts recorded from Dovecot 2.3 (`daemon/test-data/pop3/`) and
//! hand-written broken servers (dot-stuffing edge cases, bare LF, 8-bit
//! bytes, overlong lines, early EOF, silence, STLS response injection).
//! Timeouts run on tokio's paused clock.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;

use super::*;
use crate::pop3::wire::base64_encode;

/// Bound on every real-time test.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on paused-clock tests: virtual time, far above the client's own.
const VIRTUAL_TEST_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
const PASSWORD: &str = "correct horse";
const NO_LIMIT: u64 = u64::MAX;

/// One step of a scripted server.
#[derive(Debug, Clone)]
enum Step {
    /// Send these bytes, exactly.
    Send(Vec<u8>),
    /// Send these bytes in pieces of the given sizes (cycled), flushing
    /// each, so that lines straddle the client's reads.
    SendInPieces(Vec<u8>, Vec<usize>),
    /// Expect exactly these bytes from the client.
    Expect(Vec<u8>),
    /// Wait this long (paused-clock tests).
    Sleep(Duration),
    /// Close the connection now.
    Close,
    /// Never answer again, but keep the connection open.
    Hang,
}

fn send(bytes: &[u8]) -> Step {
    Step::Send(bytes.to_vec())
}

/// A client command line; the CRLF is added here.
fn expect(line: &str) -> Step {
    Step::Expect(format!("{line}\r\n").into_bytes())
}

fn test_data(name: &str) -> Vec<u8> {
    let path = format!("{}/test-data/pop3/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Load a recorded transcript: `S: ` lines are sent (consecutive ones in
/// one write, as a server answers), `C: ` lines are expected; each line
/// gets back the CRLF the file format drops.
fn transcript(name: &str) -> Vec<Step> {
    let text = test_data(name);
    let mut steps: Vec<Step> = Vec::new();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let (kind, content) = line.split_at(3);
        let mut bytes = content.to_vec();
        bytes.extend_from_slice(b"\r\n");
        match (kind, steps.last_mut()) {
            (b"S: ", Some(Step::Send(previous))) => previous.extend_from_slice(&bytes),
            (b"S: ", _) => steps.push(Step::Send(bytes)),
            (b"C: ", _) => steps.push(Step::Expect(bytes)),
            _ => panic!(
                "{name}: bad transcript line {:?}",
                line.escape_ascii().to_string()
            ),
        }
    }
    steps
}

/// Start a scripted server; returns the client's end of the connection.
/// The server fails if the client sends something unexpected, and, once
/// the script is done, if the client sends anything more before EOF.
fn serve(steps: Vec<Step>) -> (DuplexStream, JoinHandle<Result<(), String>>) {
    serve_with_buffer(steps, 64 * 1024)
}

fn serve_with_buffer(
    steps: Vec<Step>,
    buffer: usize,
) -> (DuplexStream, JoinHandle<Result<(), String>>) {
    let (client, mut server) = tokio::io::duplex(buffer);
    let task = tokio::spawn(async move {
        for step in steps {
            match step {
                Step::Send(bytes) => write(&mut server, &bytes).await?,
                Step::SendInPieces(bytes, sizes) => {
                    let mut rest = bytes.as_slice();
                    for size in sizes.iter().cycle() {
                        if rest.is_empty() {
                            break;
                        }
                        let (piece, after) = rest.split_at((*size).clamp(1, rest.len()));
                        write(&mut server, piece).await?;
                        rest = after;
                    }
                }
                Step::Expect(want) => {
                    let mut got = vec![0; want.len()];
                    server.read_exact(&mut got).await.map_err(|e| {
                        format!("expected {:?}: {e}", want.escape_ascii().to_string())
                    })?;
                    if got != want {
                        return Err(format!(
                            "expected {:?}, got {:?}",
                            want.escape_ascii().to_string(),
                            got.escape_ascii().to_string()
                        ));
                    }
                }
                Step::Sleep(d) => tokio::time::sleep(d).await,
                Step::Close => return Ok(()),
                Step::Hang => std::future::pending::<()>().await,
            }
        }
        let mut rest = Vec::new();
        server
            .read_to_end(&mut rest)
            .await
            .map_err(|e| format!("reading after the script: {e}"))?;
        if rest.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the client sent more than the script expects: {:?}",
                rest.escape_ascii().to_string()
            ))
        }
    });
    (client, task)
}

async fn write(server: &mut DuplexStream, bytes: &[u8]) -> Result<(), String> {
    server
        .write_all(bytes)
        .await
        .map_err(|e| format!("server write: {e}"))?;
    server
        .flush()
        .await
        .map_err(|e| format!("server flush: {e}"))
}

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("the test took too long")
}

async fn within_virtual<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(VIRTUAL_TEST_TIMEOUT, f)
        .await
        .expect("the test took too long (virtual time)")
}

/// Wait for the scripted server and fail the test on its complaint.
async fn server_ok(task: JoinHandle<Result<(), String>>) {
    match task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("scripted server: {e}"),
        Err(e) => panic!("scripted server panicked: {e}"),
    }
}

fn config() -> Config {
    Config {
        timeout: Duration::from_secs(5),
        ..Config::default()
    }
}

/// A greeting, then the given steps.
fn greeted(steps: Vec<Step>) -> Vec<Step> {
    let mut all = vec![send(b"+OK POP3 ready\r\n")];
    all.extend(steps);
    all
}

/// RETR 1 against a server that answers `reply` (status line included),
/// with the given limits. Returns the result and what reached the sink.
async fn retr_against(
    reply: &[u8],
    config: Config,
    max_size: u64,
) -> (Result<u64, Error>, Vec<u8>) {
    let (stream, server) = serve(greeted(vec![expect("RETR 1"), send(reply), Step::Close]));
    let mut client = Client::connect(stream, config).await.expect("greeting");
    let mut sink = Vec::new();
    let result = client.retr(1, &mut sink, max_size).await;
    drop(client);
    server_ok(server).await;
    (result, sink)
}

/// Byte-stuff a message for a multi-line reply (RFC 1939 §3): a `.` that
/// starts a line (after CRLF) gets another one, and the terminator goes
/// after the last line. `body` is empty or ends in CRLF.
fn stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 16 + 3);
    let mut at_line_start = true;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n' && i > 0 && body.get(i - 1) == Some(&b'\r');
        i += 1;
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// A tiny deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random message of CRLF-ended lines, rich in the bytes that matter:
/// dots, lone dots, `..`, bare CR and LF, NUL and 8-bit bytes.
fn random_body(rng: &mut Rng) -> Vec<u8> {
    const INTERESTING: &[u8] = b"..\r\n\0\xff\x80 aZ.";
    let lines = rng.below(40);
    let mut body = Vec::new();
    for _ in 0..lines {
        match rng.below(6) {
            0 => body.extend_from_slice(b"."),
            1 => body.extend_from_slice(b".."),
            _ => {
                let len = rng.below(120);
                for _ in 0..len {
                    let b = if rng.below(3) == 0 {
                        INTERESTING[rng.below(INTERESTING.len() as u64) as usize]
                    } else {
                        rng.below(256) as u8
                    };
                    body.push(b);
                }
            }
        }
        body.extend_from_slice(b"\r\n");
    }
    body
}

// ----- recorded Dovecot sessions -----

#[tokio::test]
async fn dovecot_session_end_to_end() {
    within(async {
        let (stream, server) = serve(transcript("dovecot-2.3-session.txt"));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        assert_eq!(client.greeting(), "Dovecot (Debian) ready.");

        let caps = client.capa().await.expect("CAPA");
        assert!(caps.advertised());
        assert!(caps.stls() && caps.uidl() && caps.user() && caps.top());
        assert!(caps.pipelining() && caps.resp_codes());
        assert!(caps.has("auth-resp-code"), "names are case-insensitive");
        assert_eq!(caps.sasl_mechanisms(), ["PLAIN", "LOGIN"]);
        assert!(caps.sasl_plain());
        assert_eq!(caps.expire(), None);
        assert_eq!(caps.lines().len(), 9);
        caps.require_stls().expect("STLS is offered");

        client.user_pass("alice", PASSWORD).await.expect("login");
        let caps = client.capa().await.expect("CAPA after login");
        assert!(!caps.stls(), "Dovecot drops STLS after login");

        assert_eq!(
            client.stat().await.expect("STAT"),
            Stat {
                count: 3,
                size: 703
            }
        );
        let list = client.list().await.expect("LIST");
        assert_eq!(
            list,
            [(1, 271), (2, 290), (3, 142)].map(|(number, size)| ListEntry { number, size })
        );
        let uidl = client.uidl().await.expect("UIDL");
        let uids: Vec<_> = uidl.iter().map(|e| (e.number, e.uid.as_str())).collect();
        assert_eq!(
            uids,
            [
                (1, "000000016b0b883d"),
                (2, "000000026b0b883d"),
                (3, "000000036b0b883d")
            ]
        );

        for (number, file) in [(1, "dots.eml"), (2, "latin1.eml"), (3, "short.eml")] {
            let mut sink = Vec::new();
            let n = client
                .retr(number, &mut sink, NO_LIMIT)
                .await
                .expect("RETR");
            let want = test_data(file);
            assert_eq!(sink, want, "RETR {number} must give {file} byte for byte");
            assert_eq!(n, want.len() as u64);
            assert_eq!(
                n,
                list[number as usize - 1].size,
                "LIST size is the CRLF size"
            );
        }

        let mut top = Vec::new();
        client.top(1, 2, &mut top, NO_LIMIT).await.expect("TOP");
        assert!(top.ends_with(b"\r\nFirst line.\r\n.leading dot\r\n"));

        client.dele(3).await.expect("DELE");
        client.rset().await.expect("RSET");
        client.noop().await.expect("NOOP");

        let mut sink = Vec::new();
        let err = client
            .retr(9, &mut sink, NO_LIMIT)
            .await
            .expect_err("must fail");
        match &err {
            Error::Server {
                command,
                code,
                message,
            } => {
                assert_eq!(command, "RETR 9");
                assert_eq!(*code, None);
                assert_eq!(message, "There's no message 9.");
            }
            other => panic!("expected a server error, got {other:?}"),
        }
        assert!(sink.is_empty());
        // A -ERR leaves the session usable.
        client.quit().await.expect("QUIT");
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn dovecot_wrong_password_is_authentication_failed() {
    within(async {
        let (stream, server) = serve(transcript("dovecot-2.3-wrong-password.txt"));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        let err = client
            .user_pass("alice", "wrong")
            .await
            .expect_err("must fail");
        match &err {
            Error::AuthenticationFailed { code, message } => {
                assert_eq!(*code, Some(ResponseCode::Auth));
                assert_eq!(message, "Authentication failed.");
            }
            other => panic!("expected AuthenticationFailed, got {other:?}"),
        }
        assert!(!err.is_transient());
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("wrong"), "the password leaked: {shown}");
        client.quit().await.expect("QUIT after a refused login");
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn dovecot_auth_plain_initial_response() {
    within(async {
        let (stream, server) = serve(transcript("dovecot-2.3-auth-plain-ir.txt"));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        client
            .auth_plain("alice", PASSWORD)
            .await
            .expect("AUTH PLAIN");
        assert_eq!(client.stat().await.expect("STAT").count, 3);
        client.quit().await.expect("QUIT");
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn dovecot_auth_plain_continuation() {
    within(async {
        let (stream, server) = serve(transcript("dovecot-2.3-auth-plain-continuation.txt"));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        client
            .auth_plain_with("alice", PASSWORD, SaslMode::Continuation)
            .await
            .expect("AUTH PLAIN");
        client.quit().await.expect("QUIT");
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn dovecot_auth_plain_wrong_password() {
    within(async {
        let (stream, server) = serve(transcript("dovecot-2.3-auth-plain-wrong.txt"));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        let err = client
            .auth_plain("alice", "nope")
            .await
            .expect_err("must fail");
        assert!(
            matches!(
                &err,
                Error::AuthenticationFailed {
                    code: Some(ResponseCode::Auth),
                    ..
                }
            ),
            "{err:?}"
        );
        client.quit().await.expect("QUIT");
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn dovecot_in_use_is_a_transient_server_error() {
    within(async {
        let mut steps = transcript("dovecot-2.3-in-use.txt");
        steps.push(Step::Close);
        let (stream, server) = serve(steps);
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        let err = client
            .user_pass("alice", PASSWORD)
            .await
            .expect_err("must fail");
        match &err {
            Error::Server {
                command,
                code,
                message,
            } => {
                assert_eq!(command, "PASS");
                assert_eq!(*code, Some(ResponseCode::InUse));
                assert_eq!(message, "Mailbox is locked by another POP3 session.");
            }
            other => panic!("expected [IN-USE], got {other:?}"),
        }
        assert!(err.is_transient());
        assert_eq!(err.response_code(), Some(&ResponseCode::InUse));
        assert!(!format!("{err:?}").contains(PASSWORD));
        // Dovecot hangs up after this reply.
        assert!(matches!(
            client.noop().await,
            Err(Error::Closed | Error::Io(_))
        ));
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn dovecot_stls_hands_back_the_stream() {
    within(async {
        let mut steps = transcript("dovecot-2.3-stls.txt");
        // After the handshake (not simulated) the client must ask CAPA again.
        steps.extend([
            expect("CAPA"),
            send(b"+OK\r\nCAPA\r\nUSER\r\nSASL PLAIN\r\n.\r\n"),
            expect("QUIT"),
            send(b"+OK Logging out.\r\n"),
        ]);
        let (stream, server) = serve(steps);
        let client = Client::connect(stream, config()).await.expect("greeting");
        let stream = client.stls().await.expect("STLS");
        let mut client = Client::after_stls(stream, config());
        assert_eq!(client.greeting(), "");
        let caps = client.capa().await.expect("CAPA after TLS");
        assert!(caps.sasl_plain() && !caps.stls());
        client.quit().await.expect("QUIT");
        server_ok(server).await;
    })
    .await;
}

// ----- STLS and capabilities -----

#[tokio::test]
async fn stls_with_injected_response_is_refused() {
    within(async {
        // The attacker appends a fake reply to the +OK, hoping the client
        // reads it after the handshake as if it came over TLS.
        let (stream, server) = serve(greeted(vec![
            expect("STLS"),
            send(b"+OK Begin TLS negotiation now.\r\n+OK Logged in.\r\n"),
            Step::Close,
        ]));
        let client = Client::connect(stream, config()).await.expect("greeting");
        let err = client.stls().await.expect_err("must fail");
        assert!(matches!(err, Error::StlsInjection), "{err:?}");
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn stls_refused_by_the_server() {
    within(async {
        let (stream, server) = serve(greeted(vec![
            expect("STLS"),
            send(b"-ERR TLS support isn't enabled.\r\n"),
            Step::Close,
        ]));
        let client = Client::connect(stream, config()).await.expect("greeting");
        let err = client.stls().await.expect_err("must fail");
        assert!(
            matches!(&err, Error::Server { command, .. } if command == "STLS"),
            "{err:?}"
        );
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn tls_required_when_stls_not_offered_or_no_capa() {
    within(async {
        let (stream, server) = serve(greeted(vec![
            expect("CAPA"),
            send(b"+OK\r\nUSER\r\nUIDL\r\n.\r\n"),
            expect("CAPA"),
            send(b"-ERR unknown command\r\n"),
        ]));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        let caps = client.capa().await.expect("CAPA");
        assert!(matches!(caps.require_stls(), Err(Error::TlsRequired)));
        // An RFC 1939-only server: no CAPA, so no STLS either.
        let caps = client.capa().await.expect("CAPA -ERR is not an error");
        assert!(!caps.advertised());
        assert!(matches!(caps.require_stls(), Err(Error::TlsRequired)));
        drop(client);
        server_ok(server).await;
    })
    .await;
}

#[test]
fn capabilities_expire_login_delay_implementation() {
    let caps = Capabilities::from_lines([
        &b"EXPIRE 0"[..],
        b"LOGIN-DELAY 900",
        b"IMPLEMENTATION Shlemazle-Plotz-v302",
        b"sasl plain xoauth2",
        b"",
    ]);
    assert_eq!(caps.expire(), Some(Expire::Days(0)));
    assert_eq!(caps.login_delay(), Some(900));
    assert_eq!(
        caps.implementation().as_deref(),
        Some("Shlemazle-Plotz-v302")
    );
    assert_eq!(caps.sasl_mechanisms(), ["PLAIN", "XOAUTH2"]);
    assert_eq!(caps.lines().len(), 4, "empty lines are dropped");

    let caps = Capabilities::from_lines([&b"EXPIRE NEVER"[..], b"LOGIN-DELAY x"]);
    assert_eq!(caps.expire(), Some(Expire::Never));
    assert_eq!(caps.login_delay(), None);
    let caps = Capabilities::from_lines([&b"EXPIRE 30 USER"[..]]);
    assert_eq!(caps.expire(), Some(Expire::Days(30)));
}

// ----- greeting and login -----

#[tokio::test]
async fn greeting_must_be_ok() {
    within(async {
        let (stream, server) = serve(vec![send(b"* OK IMAP4rev1 ready\r\n"), Step::Close]);
        let err = Client::connect(stream, config())
            .await
            .err()
            .expect("not POP3");
        assert!(matches!(err, Error::Protocol(_)), "{err:?}");
        server_ok(server).await;

        let (stream, server) = serve(vec![
            send(b"-ERR [SYS/TEMP] Too many connections\r\n"),
            Step::Close,
        ]);
        let err = Client::connect(stream, config()).await.err().expect("-ERR");
        assert_eq!(err.response_code(), Some(&ResponseCode::SysTemp));
        assert!(err.is_transient());
        server_ok(server).await;

        let (stream, server) = serve(vec![Step::Close]);
        let err = Client::connect(stream, config()).await.err().expect("EOF");
        assert!(matches!(err, Error::Closed), "{err:?}");
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn greeting_with_8bit_text_does_not_panic() {
    within(async {
        let (stream, server) = serve(vec![send(b"+OK \xff\xfe\x1b[31m caf\xc3\xa9\r\n")]);
        let client = Client::connect(stream, config()).await.expect("greeting");
        assert_eq!(client.greeting(), "\u{FFFD}\u{FFFD}\u{FFFD}[31m caf\u{e9}");
        drop(client);
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn login_error_codes_are_classified() {
    within(async {
        let (stream, server) = serve(greeted(vec![
            expect("USER alice"),
            send(b"-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n"),
            expect("USER alice"),
            send(b"+OK\r\n"),
            expect(&format!("PASS {PASSWORD}")),
            send(b"-ERR [SYS/TEMP] Temporary authentication failure.\r\n"),
            expect("USER alice"),
            send(b"+OK\r\n"),
            expect(&format!("PASS {PASSWORD}")),
            send(b"-ERR [LOGIN-DELAY] Wait a while\r\n"),
            expect("USER alice"),
            send(b"+OK\r\n"),
            expect(&format!("PASS {PASSWORD}")),
            send(b"-ERR no\r\n"),
        ]));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        let err = client.user_pass("alice", PASSWORD).await.expect_err("must fail");
        assert!(matches!(err, Error::AuthenticationFailed { code: Some(ResponseCode::Auth), .. }));
        let err = client.user_pass("alice", PASSWORD).await.expect_err("must fail");
        assert!(matches!(&err, Error::Server { code: Some(ResponseCode::SysTemp), .. }), "{err:?}");
        assert!(err.is_transient());
        let err = client.user_pass("alice", PASSWORD).await.expect_err("must fail");
        assert!(matches!(&err, Error::Server { code: Some(ResponseCode::LoginDelay), .. }), "{err:?}");
        let err = client.user_pass("alice", PASSWORD).await.expect_err("must fail");
        assert!(matches!(&err, Error::AuthenticationFailed { code: None, .. }), "{err:?}");
        drop(client);
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn credentials_with_line_breaks_are_not_sent() {
    within(async {
        let (stream, server) = serve(greeted(vec![]));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        for (user, password) in [
            ("alice\r\nDELE 1", "x"),
            ("alice", "x\r\nDELE 1"),
            ("", "x"),
            ("alice", ""),
        ] {
            let err = client
                .user_pass(user, password)
                .await
                .expect_err("must fail");
            assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
        }
        let err = client
            .auth_plain("al\0ice", "x")
            .await
            .expect_err("must fail");
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
        drop(client);
        // The server's script expects nothing: not a byte was sent.
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn auth_plain_too_long_for_one_line_uses_continuation() {
    within(async {
        let password = "p".repeat(300);
        let response = base64_encode(format!("\0alice\0{password}").as_bytes());
        let response = String::from_utf8(response).expect("base64 is ASCII");
        let (stream, server) = serve(greeted(vec![
            expect("AUTH PLAIN"),
            send(b"+ \r\n"),
            expect(&response),
            send(b"+OK Logged in.\r\n"),
        ]));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        client
            .auth_plain("alice", &password)
            .await
            .expect("AUTH PLAIN");
        drop(client);
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn auth_plain_challenge_after_initial_response_is_cancelled() {
    within(async {
        let response = String::from_utf8(base64_encode(b"\0alice\0correct horse")).expect("ASCII");
        let (stream, server) = serve(greeted(vec![
            expect(&format!("AUTH PLAIN {response}")),
            send(b"+ \r\n"),
            expect("*"),
            send(b"-ERR Authentication cancelled\r\n"),
            expect("NOOP"),
            send(b"+OK\r\n"),
        ]));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        let err = client
            .auth_plain("alice", PASSWORD)
            .await
            .expect_err("must fail");
        assert!(matches!(err, Error::Protocol(_)), "{err:?}");
        client.noop().await.expect("the session is still in step");
        drop(client);
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn login_picks_sasl_plain_when_offered() {
    within(async {
        let response = String::from_utf8(base64_encode(b"\0alice\0correct horse")).expect("ASCII");
        let (stream, server) = serve(greeted(vec![
            expect(&format!("AUTH PLAIN {response}")),
            send(b"+OK\r\n"),
        ]));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        let caps = Capabilities::from_lines([&b"SASL PLAIN"[..], b"USER"]);
        client.login(&caps, "alice", PASSWORD).await.expect("login");
        drop(client);
        server_ok(server).await;

        let (stream, server) = serve(greeted(vec![
            expect("USER alice"),
            send(b"+OK\r\n"),
            expect(&format!("PASS {PASSWORD}")),
            send(b"+OK\r\n"),
        ]));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        client
            .login(&Capabilities::not_advertised(), "alice", PASSWORD)
            .await
            .expect("login");
        drop(client);
        server_ok(server).await;
    })
    .await;
}

/// Collects what a tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn trace_log_redacts_credentials_and_survives_8bit() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The current-thread runtime of this test runs the server task on this
    // thread too, so a thread-local default sees every event.
    let _guard = tracing::subscriber::set_default(subscriber);
    // tracing caches one interest per call site for the whole process. With
    // a single dispatcher it computes it on whichever thread meets the site
    // first, such as another test's thread without a subscriber, and caches
    // "never". A second, silent dispatcher makes it ask each thread's own
    // subscriber per event instead; then recompute what was cached.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    tracing::callsite::rebuild_interest_cache();
    let response = String::from_utf8(base64_encode(b"\0alice\0correct horse")).expect("ASCII");
    within(async {
        let (stream, server) = serve(greeted(vec![
            expect("USER alice"),
            send(b"+OK\r\n"),
            expect(&format!("PASS {PASSWORD}")),
            send(b"-ERR [AUTH] \xff\xfe bad\r\n"),
            expect(&format!("AUTH PLAIN {response}")),
            send(b"+OK\r\n"),
            expect("UIDL"),
            send(b"+OK\r\n1 \xc3\r\n.\r\n"),
        ]));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        let err = client
            .user_pass("alice", PASSWORD)
            .await
            .expect_err("must fail");
        assert!(matches!(err, Error::AuthenticationFailed { .. }));
        client.auth_plain("alice", PASSWORD).await.expect("AUTH");
        let err = client.uidl().await.expect_err("must fail");
        assert!(matches!(err, Error::Protocol(_)), "{err:?}");
        drop(client);
        server_ok(server).await;
    })
    .await;
    let log = String::from_utf8_lossy(&captured.0.lock().expect("log lock")).into_owned();
    assert!(log.contains("USER alice"), "{log}");
    assert!(log.contains("PASS <redacted>"), "{log}");
    assert!(log.contains("AUTH PLAIN <redacted>"), "{log}");
    assert!(log.contains(r"\xff\xfe"), "8-bit bytes are escaped: {log}");
    assert!(!log.contains(PASSWORD), "the password leaked: {log}");
    assert!(!log.contains(&response), "the SASL response leaked: {log}");
}

// ----- listings -----

#[tokio::test]
async fn uidl_rejects_bad_lines_but_stays_in_step() {
    within(async {
        let long = "a".repeat(71);
        let ok70 = "b".repeat(70);
        let bad_replies: Vec<Vec<u8>> = vec![
            format!("+OK\r\n1 {long}\r\n.\r\n").into_bytes(),
            b"+OK\r\n1 has space\r\n.\r\n".to_vec(),
            b"+OK\r\n1 ctl\x7f\r\n.\r\n".to_vec(),
            b"+OK\r\n0 zero\r\n.\r\n".to_vec(),
            b"+OK\r\n-1 neg\r\n.\r\n".to_vec(),
            b"+OK\r\n1\r\n.\r\n".to_vec(),
            b"+OK\r\nx abc\r\n.\r\n".to_vec(),
            b"+OK\r\n99999999999 abc\r\n.\r\n".to_vec(),
        ];
        let mut steps = Vec::new();
        for reply in &bad_replies {
            steps.push(expect("UIDL"));
            steps.push(send(reply));
        }
        steps.push(expect("UIDL"));
        steps.push(send(
            format!("+OK\r\n1 {ok70}\r\n2 x\t\r\n3 ~!\r\n.\r\n").as_bytes(),
        ));
        let (stream, server) = serve(greeted(steps));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        for reply in &bad_replies {
            let err = client.uidl().await.expect_err("must fail");
            assert!(
                matches!(err, Error::Protocol(_)),
                "{:?} gave {err:?}",
                reply.escape_ascii().to_string()
            );
        }
        let uidl = client.uidl().await.expect("valid UIDL");
        let uids: Vec<_> = uidl.iter().map(|e| e.uid.as_str()).collect();
        assert_eq!(uids, [ok70.as_str(), "x", "~!"]);
        drop(client);
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn list_and_stat_parsing() {
    within(async {
        let (stream, server) = serve(greeted(vec![
            expect("LIST"),
            send(b"+OK 2 messages (320 octets)\r\n1 120 extra words\r\n2 200\r\n.\r\n"),
            expect("LIST"),
            send(b"+OK\r\n1 big\r\n.\r\n"),
            expect("STAT"),
            send(b"+OK 0 0\r\n"),
            expect("STAT"),
            send(b"+OK nothing\r\n"),
            expect("LIST"),
            send(b"+OK\r\n.\r\n"),
        ]));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        let list = client.list().await.expect("LIST");
        assert_eq!(
            list,
            [
                ListEntry {
                    number: 1,
                    size: 120
                },
                ListEntry {
                    number: 2,
                    size: 200
                }
            ]
        );
        assert!(matches!(client.list().await, Err(Error::Protocol(_))));
        assert_eq!(
            client.stat().await.expect("STAT"),
            Stat { count: 0, size: 0 }
        );
        assert!(matches!(client.stat().await, Err(Error::Protocol(_))));
        assert!(client.list().await.expect("empty LIST").is_empty());
        drop(client);
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn listing_longer_than_the_bound_is_refused() {
    within(async {
        let (stream, server) = serve(greeted(vec![
            expect("UIDL"),
            send(b"+OK\r\n1 a\r\n2 b\r\n3 c\r\n.\r\n"),
            Step::Close,
        ]));
        let config = Config {
            max_list_entries: 2,
            ..config()
        };
        let mut client = Client::connect(stream, config).await.expect("greeting");
        assert!(matches!(
            client.uidl().await,
            Err(Error::TooLarge { limit: 2 })
        ));
        assert!(matches!(client.noop().await, Err(Error::Desynchronized)));
        drop(client);
        server_ok(server).await;
    })
    .await;
}

// ----- RETR -----

#[tokio::test]
async fn retr_unstuffs_dots() {
    within(async {
        let (result, sink) = retr_against(
            b"+OK 60 octets\r\n..leading\r\n..\r\n...\r\n.x\r\nmid.dle\r\n.. \r\n\r\n.\r\n",
            config(),
            NO_LIMIT,
        )
        .await;
        assert_eq!(result.expect("RETR"), sink.len() as u64);
        assert_eq!(sink, b".leading\r\n.\r\n..\r\n.x\r\nmid.dle\r\n. \r\n\r\n");
    })
    .await;
}

#[tokio::test]
async fn retr_empty_message_then_more_commands() {
    within(async {
        let (stream, server) = serve(greeted(vec![
            expect("RETR 1"),
            send(b"+OK\r\n.\r\n"),
            expect("DELE 1"),
            send(b"+OK\r\n"),
        ]));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        let mut sink = Vec::new();
        assert_eq!(client.retr(1, &mut sink, NO_LIMIT).await.expect("RETR"), 0);
        assert!(sink.is_empty());
        client.dele(1).await.expect("DELE");
        drop(client);
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn retr_keeps_8bit_bytes_and_bare_lf() {
    within(async {
        // A broken server passes an LF-only stored message through: the bare
        // LFs stay, and a dot after a bare LF is neither stuffing nor the end.
        let body: &[u8] = b"Subject: \xe9t\xe9\r\n\r\n\xff\xfe\x00\x80\r\nline\nwith bare LF\r\nx\n.\r\ny\n..\r\nbare CR\r here\r\r\n";
        let mut reply = b"+OK\r\n".to_vec();
        reply.extend_from_slice(body);
        reply.extend_from_slice(b".\r\n");
        let (result, sink) = retr_against(&reply, config(), NO_LIMIT).await;
        assert_eq!(result.expect("RETR"), body.len() as u64);
        assert_eq!(sink, body);
    })
    .await;
}

#[tokio::test]
async fn retr_line_too_long() {
    within(async {
        let config = Config {
            max_line: 64,
            ..config()
        };
        let mut reply = b"+OK\r\nshort\r\n".to_vec();
        reply.extend(std::iter::repeat_n(b'x', 200));
        reply.extend_from_slice(b"\r\n.\r\n");
        let (stream, server) = serve(greeted(vec![expect("RETR 1"), send(&reply), Step::Close]));
        let mut client = Client::connect(stream, config).await.expect("greeting");
        let mut sink = Vec::new();
        let err = client
            .retr(1, &mut sink, NO_LIMIT)
            .await
            .expect_err("must fail");
        assert!(matches!(err, Error::LineTooLong { limit: 64 }), "{err:?}");
        assert_eq!(sink, b"short\r\n");
        // The rest of the reply is still on the wire: no further command.
        assert!(matches!(client.noop().await, Err(Error::Desynchronized)));
        drop(client);
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn endless_line_without_lf_is_bounded() {
    within(async {
        let config = Config {
            max_line: 100_000,
            ..config()
        };
        let flood = vec![b'y'; 300_000];
        let (stream, server) = serve(vec![Step::SendInPieces(flood, vec![4096, 7]), Step::Hang]);
        let err = Client::connect(stream, config)
            .await
            .err()
            .expect("overlong greeting");
        assert!(
            matches!(err, Error::LineTooLong { limit: 100_000 }),
            "{err:?}"
        );
        server.abort();
    })
    .await;
}

#[tokio::test]
async fn retr_too_large() {
    within(async {
        let (result, sink) =
            retr_against(b"+OK\r\n0123456789\r\nmore\r\n.\r\n", config(), 12).await;
        assert!(
            matches!(result, Err(Error::TooLarge { limit: 12 })),
            "{result:?}"
        );
        assert!(sink.len() <= 12);
        // Exactly at the limit is fine.
        let (result, sink) = retr_against(b"+OK\r\n0123456789\r\n.\r\n", config(), 12).await;
        assert_eq!(result.expect("RETR"), 12);
        assert_eq!(sink, b"0123456789\r\n");
    })
    .await;
}

#[tokio::test]
async fn retr_connection_closed_mid_message_is_an_error() {
    within(async {
        for reply in [
            &b"+OK\r\nFrom: a\r\n\r\nbody"[..],
            b"+OK\r\nFrom: a\r\n",
            b"+OK\r\n..\r\n.",
            b"+OK",
        ] {
            let (result, _) = retr_against(reply, config(), NO_LIMIT).await;
            assert!(
                matches!(result, Err(Error::Closed)),
                "{:?}: {result:?}",
                reply.escape_ascii().to_string()
            );
        }
    })
    .await;
}

#[tokio::test]
async fn retr_minus_err_and_sink_failure() {
    within(async {
        let (result, sink) =
            retr_against(b"-ERR [SYS/PERM] message is gone\r\n", config(), NO_LIMIT).await;
        let err = result.expect_err("must fail");
        assert!(
            matches!(
                &err,
                Error::Server {
                    code: Some(ResponseCode::SysPerm),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.is_transient());
        assert!(sink.is_empty());

        // A sink that refuses (a full disk) is told apart from the network.
        let (stream, server) = serve(greeted(vec![
            expect("RETR 1"),
            send(b"+OK\r\nline\r\n.\r\n"),
            Step::Close,
        ]));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        let mut two_bytes = [0u8; 2];
        let mut full = std::io::Cursor::new(&mut two_bytes[..]);
        let err = client
            .retr(1, &mut full, NO_LIMIT)
            .await
            .expect_err("must fail");
        assert!(matches!(err, Error::Sink(_)), "{err:?}");
        drop(client);
        server_ok(server).await;
    })
    .await;
}

#[tokio::test]
async fn quit_minus_err_is_reported() {
    within(async {
        let (stream, server) = serve(greeted(vec![
            expect("QUIT"),
            send(b"-ERR some deleted messages not removed\r\n"),
            Step::Close,
        ]));
        let client = Client::connect(stream, config()).await.expect("greeting");
        let err = client.quit().await.expect_err("must fail");
        assert!(
            matches!(&err, Error::Server { command, .. } if command == "QUIT"),
            "{err:?}"
        );
        server_ok(server).await;
    })
    .await;
}

/// Random bodies, stuffed as a server would, come out of RETR unchanged,
/// whatever the sizes of the pieces the server writes them in.
#[tokio::test]
async fn stuffing_round_trip_random_bodies() {
    within(async {
        let mut rng = Rng(0x5eed_f00d_dead_beef);
        for round in 0..300 {
            let body = random_body(&mut rng);
            let mut reply = b"+OK message follows\r\n".to_vec();
            reply.extend(stuff(&body));
            let pieces: Vec<usize> = (0..4).map(|_| 1 + rng.below(300) as usize).collect();
            // A small pipe and small pieces make lines straddle reads.
            let (stream, server) = serve_with_buffer(
                greeted(vec![
                    expect("RETR 7"),
                    Step::SendInPieces(reply, pieces),
                    expect("QUIT"),
                    send(b"+OK\r\n"),
                ]),
                1 + rng.below(512) as usize,
            );
            let mut client = Client::connect(stream, config()).await.expect("greeting");
            let mut sink = Vec::new();
            let n = client.retr(7, &mut sink, NO_LIMIT).await.expect("RETR");
            assert_eq!(
                sink,
                body,
                "round {round}: {:?}",
                body.escape_ascii().to_string()
            );
            assert_eq!(n, body.len() as u64);
            client.quit().await.expect("QUIT");
            server_ok(server).await;
        }
    })
    .await;
}

#[test]
fn stuff_helper_follows_rfc1939() {
    assert_eq!(stuff(b""), b".\r\n");
    assert_eq!(stuff(b".\r\n..\r\na.b\r\n"), b"..\r\n...\r\na.b\r\n.\r\n");
    assert_eq!(stuff(b"a\n.\r\n"), b"a\n.\r\n.\r\n");
}

// ----- timeouts and cancellation -----

#[tokio::test(start_paused = true)]
async fn silent_server_times_out() {
    within_virtual(async {
        let (stream, _server) = serve(vec![Step::Hang]);
        let start = tokio::time::Instant::now();
        let err = Client::connect(stream, config())
            .await
            .err()
            .expect("silence");
        assert!(
            matches!(err, Error::Timeout(d) if d == config().timeout),
            "{err:?}"
        );
        assert_eq!(start.elapsed(), config().timeout);

        let (stream, _server) = serve(greeted(vec![expect("NOOP"), Step::Hang]));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        assert!(matches!(client.noop().await, Err(Error::Timeout(_))));
        assert!(matches!(client.noop().await, Err(Error::Desynchronized)));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn status_line_trickled_byte_by_byte_times_out_as_a_whole() {
    within_virtual(async {
        let mut steps = Vec::new();
        for b in b"+OK slow" {
            steps.push(send(&[*b]));
            steps.push(Step::Sleep(Duration::from_secs(4)));
        }
        steps.push(Step::Hang);
        let (stream, _server) = serve(steps);
        let err = Client::connect(stream, config())
            .await
            .err()
            .expect("too slow");
        assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn retr_timeout_applies_per_read() {
    within_virtual(async {
        // Each line arrives 4 s after the last, under the 5 s timeout, for
        // a transfer far longer than 5 s in total.
        let mut steps = greeted(vec![expect("RETR 1"), send(b"+OK\r\n")]);
        for _ in 0..20 {
            steps.push(Step::Sleep(Duration::from_secs(4)));
            steps.push(send(b"slow line\r\n"));
        }
        steps.push(send(b".\r\n"));
        steps.extend([expect("RETR 2"), send(b"+OK\r\nfirst\r\n"), Step::Hang]);
        let (stream, _server) = serve(steps);
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        let start = tokio::time::Instant::now();
        let mut sink = Vec::new();
        client
            .retr(1, &mut sink, NO_LIMIT)
            .await
            .expect("slow but steady");
        assert_eq!(sink.len(), 20 * 11);
        assert!(start.elapsed() >= Duration::from_secs(80));

        let mut sink = Vec::new();
        let err = client
            .retr(2, &mut sink, NO_LIMIT)
            .await
            .expect_err("must fail");
        assert!(
            matches!(err, Error::Timeout(_)),
            "a stalled transfer fails: {err:?}"
        );
        assert_eq!(sink, b"first\r\n");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn cancelled_command_desynchronizes_the_session() {
    within_virtual(async {
        let (stream, _server) = serve(greeted(vec![
            expect("RETR 1"),
            send(b"+OK\r\nhalf a message\r\n"),
            Step::Hang,
        ]));
        let mut client = Client::connect(stream, config()).await.expect("greeting");
        let mut sink = Vec::new();
        let cancelled =
            tokio::time::timeout(Duration::from_secs(1), client.retr(1, &mut sink, NO_LIMIT)).await;
        assert!(cancelled.is_err(), "the caller gave up first");
        assert!(matches!(client.noop().await, Err(Error::Desynchronized)));
    })
    .await;
}

// ----- small parts -----

#[test]
fn response_codes() {
    use super::error::split_response_code;
    let cases: &[(&[u8], Option<ResponseCode>, &str)] = &[
        (b"[IN-USE] locked", Some(ResponseCode::InUse), "locked"),
        (
            b"[LOGIN-DELAY] wait",
            Some(ResponseCode::LoginDelay),
            "wait",
        ),
        (
            b"[sys/temp] try later",
            Some(ResponseCode::SysTemp),
            "try later",
        ),
        (b"[SYS/PERM]", Some(ResponseCode::SysPerm), ""),
        (b"[AUTH] no", Some(ResponseCode::Auth), "no"),
        (
            b"[X-VENDOR/THING] hm",
            Some(ResponseCode::Other("X-VENDOR/THING".into())),
            "hm",
        ),
        (b"[unterminated code", None, "[unterminated code"),
        (b"[] empty", None, "[] empty"),
        (b"plain text", None, "plain text"),
        (b"", None, ""),
    ];
    for (text, code, message) in cases {
        let (got_code, got_message) = split_response_code(text);
        assert_eq!(&got_code, code, "{:?}", text.escape_ascii().to_string());
        assert_eq!(&got_message, message);
    }
    let long = vec![b'z'; 10_000];
    assert!(split_response_code(&long).1.len() <= 512);
}

#[test]
fn base64_matches_rfc4648_vectors() {
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64_encode(plain.as_bytes()), encoded.as_bytes());
    }
    // The recorded Dovecot AUTH PLAIN line.
    assert_eq!(
        base64_encode(b"\0alice\0correct horse"),
        b"AGFsaWNlAGNvcnJlY3QgaG9yc2U="
    );
}

//! # The Dovecot harness, checked against the real server
//!
//! Starts private Dovecots through `facteur_tests::dovecot` and checks,
//! with clients written here rather than the harness's own, that what the
//! harness promises is what a mail client sees: delivered bytes come back
//! identical over IMAP and POP3, STARTTLS/STLS and implicit TLS work with the
//! test CA as the only root (and the bad certificates fail), non-ASCII
//! folders, UIDVALIDITY changes, kicks and restarts behave like a real
//! server's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use facteur_tests::dovecot::{encode_mailbox_name, Dovecot, DovecotOptions, ServerTls};
use facteur_tests::tls::TestCa;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// Every async test's limit.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

const USER: &str = "alice@example.test";
/// A password with a colon and non-ASCII, which the passwd-file must keep.
const PASSWORD: &str = "pä:ss wörd";

/// A message with CRLF line ends, a line starting with a dot (POP3 must
/// byte-stuff it) and 8-bit bytes.
fn message(n: u32) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.test>\r\n\
         To: Alice <{USER}>\r\n\
         Subject: test message {n}\r\n\
         Message-ID: <m{n}@example.test>\r\n\
         Date: Mon, 2 Nov 2026 10:00:0{n} +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         Grüße, message {n}.\r\n\
         .a line that starts with a dot\r\n\
         ..and one with two\r\n"
    )
    .into_bytes()
}

fn start(options: DovecotOptions) -> Dovecot {
    let dovecot = Dovecot::start(options);
    eprintln!(
        "Dovecot ({:?}) answered on every port after {:?}",
        dovecot.tls(),
        dovecot.startup_time()
    );
    dovecot.add_user(USER, PASSWORD);
    dovecot
}

// ---------------------------------------------------------------------------
// A raw IMAP exchange on a std TcpStream, independent of the harness client
// ---------------------------------------------------------------------------

struct Raw {
    r: BufReader<TcpStream>,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Raw {
            r: BufReader::new(s),
        }
    }

    fn line(&mut self) -> Vec<u8> {
        let mut l = Vec::new();
        self.r.read_until(b'\n', &mut l).expect("read a line");
        assert!(!l.is_empty(), "the server closed the connection");
        l
    }

    /// Send `tag cmd` and return every response (literals inline) up to and
    /// including the tagged one.
    fn cmd(&mut self, tag: &str, cmd: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut w = Vec::new();
        w.extend_from_slice(tag.as_bytes());
        w.push(b' ');
        w.extend_from_slice(cmd);
        w.extend_from_slice(b"\r\n");
        self.r.get_mut().write_all(&w).expect("write");
        loop {
            let mut unit = self.line();
            while let Some(n) = literal(&unit) {
                let mut buf = vec![0; n];
                self.r.read_exact(&mut buf).expect("read a literal");
                unit.extend_from_slice(&buf);
                let rest = self.line();
                unit.extend_from_slice(&rest);
            }
            let done = unit.starts_with(format!("{tag} ").as_bytes());
            out.push(unit);
            if done {
                return out;
            }
        }
    }
}

fn literal(unit: &[u8]) -> Option<usize> {
    let body = unit.strip_suffix(b"}\r\n")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&body[open + 1..]).ok()?.parse().ok()
}

fn text(units: &[Vec<u8>]) -> String {
    units.iter().map(|u| String::from_utf8_lossy(u)).collect()
}

fn tagged_ok(units: &[Vec<u8>], tag: &str) -> bool {
    units
        .last()
        .is_some_and(|l| l.starts_with(format!("{tag} OK").as_bytes()))
}

/// `LOGIN` with literals (the password has a space and non-ASCII).
fn raw_login(raw: &mut Raw) {
    let mut full = format!(
        "LOGIN {{{}+}}\r\n{USER} {{{}+}}\r\n",
        USER.len(),
        PASSWORD.len()
    )
    .into_bytes();
    full.extend_from_slice(PASSWORD.as_bytes());
    let reply = raw.cmd("l", &full);
    assert!(tagged_ok(&reply, "l"), "LOGIN failed: {}", text(&reply));
}

/// The body literal of a `UID FETCH … BODY.PEEK[]` reply.
fn body_of(units: &[Vec<u8>]) -> Vec<u8> {
    for u in units {
        let Some(at) = u.windows(8).position(|w| w == b"BODY[] {") else {
            continue;
        };
        let rest = &u[at + 8..];
        let close = rest
            .windows(3)
            .position(|w| w == b"}\r\n")
            .expect("literal");
        let n: usize = std::str::from_utf8(&rest[..close])
            .expect("digits")
            .parse()
            .expect("a length");
        return rest[close + 3..close + 3 + n].to_vec();
    }
    panic!("no BODY[] in {}", text(units));
}

#[test]
fn delivered_mail_comes_back_byte_for_byte_over_imap() {
    let dovecot = start(DovecotOptions::default());
    let mut uids = Vec::new();
    for n in 1..=3 {
        uids.push(dovecot.deliver(USER, &message(n)));
    }
    assert_eq!(uids, [1, 2, 3], "deliveries get consecutive UIDs");
    assert_eq!(dovecot.list_uids(USER, "INBOX"), uids);

    let mut raw = Raw::connect(dovecot.imap_port());
    let greeting = raw.line();
    assert!(greeting.starts_with(b"* OK"), "{greeting:?}");
    raw_login(&mut raw);
    let select = raw.cmd("s", b"SELECT INBOX");
    assert!(tagged_ok(&select, "s"), "{}", text(&select));
    assert!(text(&select).contains("* 3 EXISTS"), "{}", text(&select));
    for (n, uid) in (1..=3).zip(&uids) {
        let fetch = raw.cmd("f", format!("UID FETCH {uid} BODY.PEEK[]").as_bytes());
        assert!(tagged_ok(&fetch, "f"), "{}", text(&fetch));
        assert_eq!(body_of(&fetch), message(n), "message {n} changed");
        assert_eq!(dovecot.fetch_raw(USER, "INBOX", *uid), message(n));
    }
    // PEEK left them unseen.
    assert!(dovecot.flags(USER, "INBOX", 1).is_empty());
    assert_eq!(dovecot.status(USER, "INBOX").unseen, 3);
    raw.cmd("o", b"LOGOUT");
}

#[test]
fn pop3_lists_the_messages_with_uidls() {
    let dovecot = start(DovecotOptions::default());
    for n in 1..=3 {
        dovecot.deliver(USER, &message(n));
    }
    let uidvalidity = dovecot.uidvalidity(USER, "INBOX");

    let s = TcpStream::connect(("127.0.0.1", dovecot.pop3_port())).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut pop = Pop3 {
        r: BufReader::new(s),
    };
    assert!(pop.line().starts_with(b"+OK"));
    let capa = pop.multi("CAPA");
    assert!(capa.iter().any(|l| l == "STLS"), "{capa:?}");
    assert!(capa.iter().any(|l| l == "UIDL"), "{capa:?}");
    assert!(pop.single(&format!("USER {USER}")).starts_with("+OK"));
    let pass = pop.single(&format!("PASS {PASSWORD}"));
    assert!(pass.starts_with("+OK"), "{pass}");
    assert!(pop.single("STAT").starts_with("+OK 3 "));
    let uidl = pop.multi("UIDL");
    let want: Vec<String> = (1..=3)
        .map(|n| format!("{n} {n:08x}{uidvalidity:08x}"))
        .collect();
    assert_eq!(
        uidl, want,
        "pop3_uidl_format = %08Xu%08Xv (Dovecot writes lowercase hex)"
    );
    for n in 1..=3u32 {
        let lines = pop.multi_raw(&format!("RETR {n}"));
        assert_eq!(unstuff(&lines), message(n), "RETR {n}");
    }
    assert!(pop.single("QUIT").starts_with("+OK"));
}

struct Pop3 {
    r: BufReader<TcpStream>,
}

impl Pop3 {
    fn send(&mut self, cmd: &str) {
        self.r
            .get_mut()
            .write_all(format!("{cmd}\r\n").as_bytes())
            .expect("write");
    }
    fn line(&mut self) -> Vec<u8> {
        let mut l = Vec::new();
        self.r.read_until(b'\n', &mut l).expect("read");
        assert!(!l.is_empty(), "the POP3 server closed the connection");
        l
    }
    fn single(&mut self, cmd: &str) -> String {
        self.send(cmd);
        String::from_utf8_lossy(&self.line()).trim_end().to_owned()
    }
    /// The lines of a multi-line reply, still byte-stuffed, with CRLF.
    fn multi_raw(&mut self, cmd: &str) -> Vec<Vec<u8>> {
        self.send(cmd);
        let first = self.line();
        assert!(first.starts_with(b"+OK"), "{cmd}: {first:?}");
        let mut lines = Vec::new();
        loop {
            let l = self.line();
            if l == b".\r\n" {
                return lines;
            }
            lines.push(l);
        }
    }
    fn multi(&mut self, cmd: &str) -> Vec<String> {
        self.multi_raw(cmd)
            .iter()
            .map(|l| String::from_utf8_lossy(l).trim_end().to_owned())
            .collect()
    }
}

/// Undo POP3 byte-stuffing.
fn unstuff(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        let l = l.strip_prefix(b".").unwrap_or(l);
        out.extend_from_slice(l);
    }
    out
}

// ---------------------------------------------------------------------------
// TLS, with tokio-rustls and the test CA as the only root
// ---------------------------------------------------------------------------

fn client_config(ca: &TestCa) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.cert_der().to_vec()))
        .expect("the test CA is a valid root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// One line, read byte by byte so nothing after it is buffered (a STARTTLS
/// client must not keep plaintext bytes across the handshake).
async fn read_line<R: AsyncRead + Unpin>(r: &mut R) -> String {
    let mut line = Vec::new();
    loop {
        let b = r.read_u8().await.expect("read a byte");
        line.push(b);
        if b == b'\n' {
            return String::from_utf8_lossy(&line).into_owned();
        }
    }
}

async fn tls_connect<IO>(
    config: Arc<ClientConfig>,
    io: IO,
) -> std::io::Result<tokio_rustls::client::TlsStream<IO>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let name = ServerName::try_from("localhost").expect("a valid name");
    TlsConnector::from(config).connect(name, io).await
}

async fn tcp(port: u16) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect")
}

/// STARTTLS on the plain IMAP port; returns the TLS result.
async fn imap_starttls(
    port: u16,
    config: Arc<ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut s = tcp(port).await;
    let greeting = read_line(&mut s).await;
    assert!(greeting.contains("STARTTLS"), "{greeting}");
    s.write_all(b"t STARTTLS\r\n").await.expect("write");
    let ok = read_line(&mut s).await;
    assert!(ok.starts_with("t OK"), "{ok}");
    tls_connect(config, s).await
}

#[tokio::test]
async fn starttls_and_implicit_tls_work_with_the_test_ca() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dovecot = tokio::task::spawn_blocking(|| start(DovecotOptions::default()))
            .await
            .expect("start Dovecot");
        let config = client_config(dovecot.ca());

        // STARTTLS, then a login inside TLS.
        let mut tls = imap_starttls(dovecot.imap_port(), config.clone())
            .await
            .expect("the CA-signed certificate verifies");
        let mut login = format!(
            "a LOGIN {{{}+}}\r\n{USER} {{{}+}}\r\n",
            USER.len(),
            PASSWORD.len()
        )
        .into_bytes();
        login.extend_from_slice(PASSWORD.as_bytes());
        login.extend_from_slice(b"\r\n");
        tls.write_all(&login).await.expect("write");
        let reply = read_line(&mut tls).await;
        assert!(reply.starts_with("a OK"), "{reply}");

        // Implicit TLS.
        let mut imaps = tls_connect(config.clone(), tcp(dovecot.imaps_port()).await)
            .await
            .expect("IMAPS verifies");
        let greeting = read_line(&mut imaps).await;
        assert!(greeting.starts_with("* OK"), "{greeting}");
        assert!(!greeting.contains("STARTTLS"), "{greeting}");
        let mut pop3s = tls_connect(config.clone(), tcp(dovecot.pop3s_port()).await)
            .await
            .expect("POP3S verifies");
        let greeting = read_line(&mut pop3s).await;
        assert!(greeting.starts_with("+OK"), "{greeting}");

        // STLS on plain POP3.
        let mut s = tcp(dovecot.pop3_port()).await;
        assert!(read_line(&mut s).await.starts_with("+OK"));
        s.write_all(b"STLS\r\n").await.expect("write");
        assert!(read_line(&mut s).await.starts_with("+OK"));
        let mut stls = tls_connect(config, s).await.expect("STLS verifies");
        stls.write_all(b"CAPA\r\n").await.expect("write");
        assert!(read_line(&mut stls).await.starts_with("+OK"));

        tokio::task::spawn_blocking(move || drop(dovecot))
            .await
            .expect("stop Dovecot");
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test]
async fn bad_certificates_are_refused_and_tls_can_be_off() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let ca = Arc::new(TestCa::new());
        let config = client_config(&ca);
        for (tls, why) in [
            (ServerTls::SelfSigned, "UnknownIssuer"),
            (ServerTls::WrongHost, "not valid for name"),
            (ServerTls::Expired, "certificate expired"),
        ] {
            let ca = ca.clone();
            let dovecot = tokio::task::spawn_blocking(move || {
                start(DovecotOptions {
                    tls,
                    ca: Some(ca),
                    ..DovecotOptions::default()
                })
            })
            .await
            .expect("start Dovecot");
            let err = tls_connect(config.clone(), tcp(dovecot.imaps_port()).await)
                .await
                .expect_err("a bad certificate must be refused");
            assert!(err.to_string().contains(why), "{tls:?}: {err}");
            let err = imap_starttls(dovecot.imap_port(), config.clone())
                .await
                .expect_err("a bad certificate must be refused after STARTTLS too");
            assert!(err.to_string().contains(why), "{tls:?}: {err}");
            tokio::task::spawn_blocking(move || drop(dovecot))
                .await
                .expect("stop Dovecot");
        }

        let dovecot = tokio::task::spawn_blocking(|| {
            start(DovecotOptions {
                tls: ServerTls::Off,
                ..DovecotOptions::default()
            })
        })
        .await
        .expect("start Dovecot");
        assert_eq!(dovecot.ports().imaps, None);
        assert_eq!(dovecot.ports().pop3s, None);
        let mut s = tcp(dovecot.imap_port()).await;
        let greeting = read_line(&mut s).await;
        assert!(greeting.starts_with("* OK"), "{greeting}");
        assert!(!greeting.contains("STARTTLS"), "{greeting}");
        let mut s = tcp(dovecot.pop3_port()).await;
        assert!(read_line(&mut s).await.starts_with("+OK"));
        s.write_all(b"CAPA\r\n").await.expect("write");
        let mut capa = String::new();
        loop {
            let l = read_line(&mut s).await;
            if l == ".\r\n" {
                break;
            }
            capa.push_str(&l);
        }
        assert!(!capa.contains("STLS"), "{capa}");
        tokio::task::spawn_blocking(move || drop(dovecot))
            .await
            .expect("stop Dovecot");
    })
    .await
    .expect("the test finishes in time");
}

// ---------------------------------------------------------------------------
// Folders, UIDVALIDITY, flags, sessions, restarts
// ---------------------------------------------------------------------------

#[test]
fn non_ascii_folders_round_trip() {
    let dovecot = start(DovecotOptions::default());
    let folder = "Reçus/Été";
    dovecot.create_folder(USER, folder);
    assert!(
        dovecot.folders(USER).iter().any(|f| f == folder),
        "{:?}",
        dovecot.folders(USER)
    );
    // On the wire: modified UTF-7 with the '/' separator.
    let mut imap = dovecot.imap_client(USER);
    let list = imap.command_ok("LIST \"\" \"*\"");
    assert!(
        list.untagged_text()
            .contains("\"/\" Re&AOc-us/&AMk-t&AOk-\r\n"),
        "{}",
        list.untagged_text()
    );
    imap.logout();
    // On disk: Maildir++ with '.' between levels.
    assert!(dovecot
        .maildir(USER)
        .join(format!(
            ".{}",
            encode_mailbox_name(folder).replace('/', ".")
        ))
        .is_dir());

    let uid = dovecot.append(USER, folder, &message(1), &["\\Seen", "$Label1"]);
    assert_eq!(dovecot.list_uids(USER, folder), [uid]);
    assert_eq!(dovecot.fetch_raw(USER, folder, uid), message(1));
    let mut flags = dovecot.flags(USER, folder, uid);
    flags.sort();
    assert_eq!(flags, ["$Label1", "\\Seen"]);

    dovecot.rename_folder(USER, folder, "Reçus/Archivé");
    assert_eq!(dovecot.list_uids(USER, "Reçus/Archivé"), [uid]);
    dovecot.delete_folder(USER, "Reçus/Archivé");
    assert!(!dovecot.folders(USER).iter().any(|f| f == "Reçus/Archivé"));
}

#[test]
fn uidvalidity_changes_are_seen_by_clients() {
    let dovecot = start(DovecotOptions::default());
    dovecot.deliver(USER, &message(1));
    let old = dovecot.uidvalidity(USER, "INBOX");

    // A session with INBOX selected when it changes is told to go away.
    let mut watcher = dovecot.imap_client(USER);
    watcher.command_ok("SELECT INBOX");
    let new = dovecot.change_uidvalidity(USER, "INBOX");
    assert_ne!(old, new);
    let reply = watcher.command("NOOP");
    assert_eq!(reply.status, "BYE", "{reply:?}");

    // A new session sees the new value; the message kept its UID.
    let mut imap = dovecot.imap_client(USER);
    let select = imap.command_ok("SELECT INBOX");
    assert!(
        select
            .untagged_text()
            .contains(&format!("[UIDVALIDITY {new}]")),
        "{}",
        select.untagged_text()
    );
    imap.logout();
    assert_eq!(dovecot.list_uids(USER, "INBOX"), [1]);

    // A recreated folder is empty and has a new UIDVALIDITY.
    dovecot.create_folder(USER, "Projets");
    dovecot.append(USER, "Projets", &message(2), &[]);
    let before = dovecot.uidvalidity(USER, "Projets");
    let after = dovecot.recreate_folder(USER, "Projets");
    assert_ne!(before, after);
    assert!(dovecot.list_uids(USER, "Projets").is_empty());
}

#[test]
fn flags_expunge_lmtp_and_kicks() {
    let dovecot = start(DovecotOptions::default());
    let a = dovecot.deliver(USER, &message(1));
    let b = dovecot.deliver(USER, &message(2));
    dovecot.set_flags(USER, "INBOX", a, &["\\Seen", "\\Flagged"]);
    let mut flags = dovecot.flags(USER, "INBOX", a);
    flags.sort();
    assert_eq!(flags, ["\\Flagged", "\\Seen"]);
    dovecot.set_flags(USER, "INBOX", a, &[]);
    assert!(dovecot.flags(USER, "INBOX", a).is_empty());
    dovecot.expunge(USER, "INBOX", a);
    assert_eq!(dovecot.list_uids(USER, "INBOX"), [b]);

    // LMTP: a real delivery, with the headers Dovecot adds.
    dovecot.deliver_lmtp(USER, &message(3));
    let uids = dovecot.list_uids(USER, "INBOX");
    assert_eq!(uids, [b, b + 1]);
    let stored = dovecot.fetch_raw(USER, "INBOX", b + 1);
    let stored_text = String::from_utf8_lossy(&stored);
    assert!(stored_text.contains("Delivered-To: "), "{stored_text}");
    assert!(stored.ends_with(&message(3)[message(3).len() - 40..]));

    // A graceful kick: the client is told BYE.
    let mut imap = dovecot.imap_client(USER);
    imap.command_ok("SELECT INBOX");
    assert_eq!(dovecot.sessions(USER).len(), 1);
    assert_eq!(dovecot.kick(USER), 1);
    let reply = imap.command("NOOP");
    assert_eq!(reply.status, "BYE", "{reply:?}");
    assert!(reply.text.contains("shutting down"), "{reply:?}");

    // An abrupt drop: the connection just ends.
    let mut imap2 = Raw::connect(dovecot.imap_port());
    imap2.line();
    raw_login(&mut imap2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while dovecot.sessions(USER).is_empty() {
        assert!(Instant::now() < deadline, "the session never showed up");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(dovecot.kill_sessions(USER), 1);
    let mut rest = Vec::new();
    let n = imap2.r.read_to_end(&mut rest).unwrap_or(0);
    assert_eq!(n, 0, "no BYE after SIGKILL: {rest:?}");
}

#[test]
fn a_restart_keeps_ports_users_and_mail() {
    let dovecot = start(DovecotOptions::default());
    let first = dovecot.deliver(USER, &message(1));
    let ports = dovecot.ports();
    let mut session = Raw::connect(dovecot.imap_port());
    session.line();
    raw_login(&mut session);
    assert!(tagged_ok(&session.cmd("s", b"SELECT INBOX"), "s"));

    dovecot.stop();
    assert!(!dovecot.is_running());
    assert!(
        TcpStream::connect(("127.0.0.1", ports.imap)).is_err(),
        "nothing listens while stopped"
    );
    dovecot.start_again();
    eprintln!("Dovecot restarted in {:?}", dovecot.startup_time());
    assert_eq!(dovecot.ports(), ports);

    // The old session was told and closed by the shutdown.
    let mut rest = Vec::new();
    session.r.read_to_end(&mut rest).expect("read to the end");
    assert_eq!(rest, b"* BYE Server shutting down.\r\n");

    assert_eq!(dovecot.list_uids(USER, "INBOX"), [first]);
    assert_eq!(dovecot.fetch_raw(USER, "INBOX", first), message(1));
    let second = dovecot.deliver(USER, &message(2));
    assert_eq!(second, first + 1);
}

#[test]
fn wrong_passwords_fail_fast_and_password_changes_apply() {
    let dovecot = start(DovecotOptions::default());
    for attempt in 0..3 {
        let started = Instant::now();
        let mut raw = Raw::connect(dovecot.imap_port());
        raw.line();
        let reply = raw.cmd("l", format!("LOGIN {USER} wrong{attempt}").as_bytes());
        assert!(
            text(&reply).contains("l NO"),
            "a wrong password logged in: {}",
            text(&reply)
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "failure {attempt} took {:?}: the auth penalty is not off",
            started.elapsed()
        );
    }
    // The right one still works at once.
    dovecot.imap_client(USER).logout();

    let started = Instant::now();
    dovecot.add_user(USER, "new password");
    eprintln!("a password change took {:?}", started.elapsed());
    let mut raw = Raw::connect(dovecot.imap_port());
    raw.line();
    let reply = raw.cmd("l", format!("LOGIN {USER} \"new password\"").as_bytes());
    assert!(tagged_ok(&reply, "l"), "{}", text(&reply));

    // A second user added while running can log in at once.
    dovecot.add_user("bob@example.test", "b0b");
    let mut raw = Raw::connect(dovecot.imap_port());
    raw.line();
    let reply = raw.cmd("l", b"LOGIN bob@example.test b0b");
    assert!(tagged_ok(&reply, "l"), "{}", text(&reply));
}

#[test]
fn start_again_names_a_port_taken_meanwhile() {
    let dovecot = start(DovecotOptions::default());
    dovecot.stop();
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", dovecot.pop3_port()))
        .expect("take Dovecot's POP3 port while it is stopped");
    let failure = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        dovecot.start_again();
    }))
    .expect_err("start_again must fail when a port is taken");
    let message = failure
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("was taken"), "{message}");
    assert!(!dovecot.is_running());
}

#[test]
fn options_reach_the_configuration() {
    let dovecot = start(DovecotOptions {
        idle_notify_interval: Duration::from_secs(5),
        max_userip_connections: 7,
        separator: '.',
        auto_special_folders: true,
        ..DovecotOptions::default()
    });
    let out = std::process::Command::new("doveconf")
        .arg("-c")
        .arg(dovecot.conf_path())
        .args(["-f", "protocol=imap", "-h"])
        .args(["mail_max_userip_connections", "imap_idle_notify_interval"])
        .output()
        .expect("run doveconf");
    let values = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        values,
        "7\n5 secs\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The special folders exist at first login, with their flags, and the
    // separator is '.'.
    let mut imap = dovecot.imap_client(USER);
    let list = imap.command_ok("LIST \"\" \"*\"").untagged_text();
    imap.logout();
    for (name, flag) in [("Sent", "\\Sent"), ("Trash", "\\Trash"), ("Junk", "\\Junk")] {
        assert!(
            list.lines()
                .any(|l| l.contains(flag) && l.ends_with(&format!("\".\" {name}"))),
            "{list}"
        );
    }
}

//! # Faults of the daemon's own life (issue 13, findings 9, 11 and 12)
//!
//! - No log level holds a secret: facteurd under `RUST_LOG=trace` (and
//!   target-specific variants) syncs IMAP (SASL PLAIN and the LOGIN
//!   command) and POP3 (AUTH PLAIN and USER/PASS) accounts from real
//!   Dovecots and sends over the harness's Postfix (SMTP AUTH); the log
//!   holds no password, in clear or in any base64 form.
//! - `Sync` answers with a real pass: right after the bus name appears,
//!   while the engine is offline (a TCP path the test cuts and restores),
//!   and while it is connecting (the path delays the connection).
//! - kill -9 during `CreateAccount` (strace injects SIGKILL at the rename
//!   that writes the secrets file, or the settings file) leaves either no
//!   account or one whose password works.
//! - A skipped account file keeps its id and its bytes.
//! - A secrets file that is loose, damaged, a directory or a dangling link
//!   is logged with its path and named for what it is.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use facteur_dbus::names;
use facteur_tests::dovecot::{Dovecot, DovecotOptions};
use facteur_tests::*;
use support::{message, Mail, ALICE, BOB};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Every form a password of `user` could take in a log: clear, SASL PLAIN
/// with and without authzid, and base64 alone (SASL LOGIN).
fn secret_forms(user: &str, password: &str) -> Vec<String> {
    vec![
        password.to_owned(),
        base64(format!("\0{user}\0{password}").as_bytes()),
        base64(format!("{user}\0{user}\0{password}").as_bytes()),
        base64(password.as_bytes()),
    ]
}

/// A facteurd with the file secret store, trusting `ca`, with extra
/// environment, started and ready.
fn daemon<'b>(bus: &'b Bus, ca: &std::path::Path, env: &[(&str, &str)]) -> Facteurd<'b> {
    let mut d = prepared(bus, ca);
    for (k, v) in env {
        d.env(*k, *v);
    }
    d.launch();
    d
}

/// [`daemon`] not started yet.
fn prepared<'b>(bus: &'b Bus, ca: &std::path::Path) -> Facteurd<'b> {
    let mut d = Facteurd::new(bus);
    d.arg("--secret-store").arg("file");
    d.env("SSL_CERT_FILE", ca);
    let no_dir = d.home().join("no-cert-dir");
    d.env("SSL_CERT_DIR", no_dir);
    d
}

fn create(bus: &Bus, d: &Facteurd<'_>, settings: &Settings) -> String {
    bus.create_account(settings)
        .unwrap_or_else(|e| panic!("CreateAccount failed: {e}\n{}", last_lines(&d.log(), 40)))
}

/// Wait until the account finished a pass without error.
fn wait_synced(bus: &Bus, d: &Facteurd<'_>, path: &str) -> Props {
    wait_until(DEADLINE, || {
        let p = bus.account(path);
        (p.u64("LastSync") > 0 && p.str("LastError").is_empty() && p.str("State") == "idle")
            .then_some(p)
    })
    .unwrap_or_else(|| {
        let p = bus.account(path);
        panic!(
            "{path} did not sync: State={} LastError={}\n{}",
            p.str("State"),
            p.str("LastError"),
            last_lines(&d.log(), 40)
        )
    })
}

fn wait_state(bus: &Bus, d: &Facteurd<'_>, path: &str, states: &[&str]) {
    wait_until(DEADLINE, || {
        states
            .contains(&bus.account(path).str("State").as_str())
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "{path} never became {states:?}: {}\n{}",
            bus.account(path).str("State"),
            last_lines(&d.log(), 40)
        )
    });
}

fn try_sync(bus: &Bus, path: &str) -> Result<u32, CallError> {
    bus.call_facteur(path, names::ACCOUNT_INTERFACE, "Sync", &())
        .map(|r| r.body().deserialize::<u32>().expect("Sync returns u"))
}

fn mail(to: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.test>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
         Message-ID: <{}@example.test>\r\n\r\nBody of {subject}.\r\n",
        subject.replace(' ', "-")
    )
    .into_bytes()
}

/// A TCP path to a server that the test can cut (open connections are shut
/// down, new ones closed at once), restore, and slow down (each new
/// connection waits before it reaches the server). Stops on drop.
struct Path {
    port: u16,
    open: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
    accepted: Arc<AtomicUsize>,
    live: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    /// A pause after every chunk forwarded, in ms (0: none).
    throttle_ms: Arc<AtomicU64>,
}

impl Path {
    fn to(target: u16) -> Path {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a port");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("an address").port();
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, target));
        let path = Path {
            port,
            open: Arc::new(AtomicBool::new(true)),
            delay_ms: Arc::new(AtomicU64::new(0)),
            accepted: Arc::new(AtomicUsize::new(0)),
            live: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
            throttle_ms: Arc::new(AtomicU64::new(0)),
        };
        let (open, delay, accepted, live, stop, throttle) = (
            path.open.clone(),
            path.delay_ms.clone(),
            path.accepted.clone(),
            path.live.clone(),
            path.stop.clone(),
            path.throttle_ms.clone(),
        );
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                if !open.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let (delay, live, throttle) =
                    (delay.load(Ordering::SeqCst), live.clone(), throttle.clone());
                thread::spawn(move || {
                    let _ = client.set_nonblocking(false);
                    thread::sleep(Duration::from_millis(delay));
                    let Ok(server) = TcpStream::connect(target) else {
                        return;
                    };
                    if let (Ok(c), Ok(s), Ok(mut l)) =
                        (client.try_clone(), server.try_clone(), live.lock())
                    {
                        l.push(c);
                        l.push(s);
                    }
                    pipe(&client, &server, None);
                    pipe(&server, &client, Some(throttle));
                });
            }
        });
        path
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        if let Ok(mut live) = self.live.lock() {
            for s in live.drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    fn restore(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
        self.open.store(true, Ordering::SeqCst);
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Path {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}

fn pipe(from: &TcpStream, to: &TcpStream, throttle: Option<Arc<AtomicU64>>) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    let pause = throttle.as_ref().map_or(0, |t| t.load(Ordering::SeqCst));
                    thread::sleep(Duration::from_millis(pause));
                }
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

fn imap_via(path: &Path, user: &str, password: &str) -> Settings {
    Settings::new()
        .s("email", user)
        .s("incoming-protocol", "imap")
        .s("incoming-host", LOOPBACK)
        .q("incoming-port", path.port)
        .s("incoming-security", "tls")
        .s("incoming-password", password)
}

fn pop3_via(path: &Path, user: &str, password: &str) -> Settings {
    imap_via(path, user, password).s("incoming-protocol", "pop3")
}

// ---------------------------------------------------------------------------
// 9: no log level holds a secret
// ---------------------------------------------------------------------------

#[test]
fn no_log_level_holds_a_password_or_its_base64() {
    let mail = Mail::start();
    // Servers that offer no SASL PLAIN: facteur then logs in with the IMAP
    // LOGIN command and POP3 USER/PASS (Dovecot maps both onto PLAIN and
    // refuses them without it, so these are scripted; VerifySettings logs
    // in through the same code as the engines).
    let (carol, dave) = ("carol@example.test", "dave@example.test");
    let (carol_pw, dave_pw) = (unique_secret("carol"), unique_secret("dave"));
    let imap_login = scripted(imap_reply);
    let pop3_user = scripted(pop3_reply);
    for (user, n) in [(ALICE, 1), (BOB, 2)] {
        mail.dovecot.deliver(user, &mail_to(user, n));
    }
    let mut forbidden = Vec::new();
    for (user, pw) in [
        (ALICE, &mail.alice_password),
        (BOB, &mail.bob_password),
        (carol, &carol_pw),
        (dave, &dave_pw),
    ] {
        forbidden.extend(secret_forms(user, pw));
    }

    let bus = Bus::start();
    for filter in [
        "trace",
        "async_imap=trace,lettre=trace",
        "async_imap::imap_stream=trace,async_imap::client=trace,facteurd=trace",
    ] {
        let mut d = daemon(&bus, mail.ca.cert_path(), &[("RUST_LOG", filter)]);
        let alice = create(
            &bus,
            &d,
            &mail.alice().s("incoming-password", &mail.alice_password),
        );
        let pop3 = |dovecot: &Dovecot, user: &str, pw: &str| {
            Settings::new()
                .s("email", user)
                .s("incoming-protocol", "pop3")
                .s("incoming-host", dovecot.host())
                .q("incoming-port", dovecot.pop3s_port())
                .s("incoming-security", "tls")
                .s("incoming-password", pw)
        };
        let bob = create(&bus, &d, &pop3(&mail.dovecot, BOB, &mail.bob_password));
        for path in [&alice, &bob] {
            let p = wait_synced(&bus, &d, path);
            assert!(p.u32("MessageCount") >= 1, "{path} fetched nothing");
        }
        for (protocol, port, user, pw) in [
            ("imap", imap_login.port, carol, &carol_pw),
            ("pop3", pop3_user.port, dave, &dave_pw),
        ] {
            let settings = Settings::new()
                .s("email", user)
                .s("incoming-protocol", protocol)
                .s("incoming-host", LOOPBACK)
                .q("incoming-port", port)
                .s("incoming-security", "none")
                .s("incoming-password", pw);
            let report = support::verify_settings(&bus, &settings)
                .unwrap_or_else(|e| panic!("VerifySettings failed: {e}"));
            assert!(report.bool("incoming-ok"), "{protocol}: {report}");
        }
        let logins = imap_login.seen();
        assert!(
            logins.iter().any(|l| l.contains(" LOGIN "))
                && !logins.iter().any(|l| l.contains("AUTHENTICATE")),
            "facteur did not use IMAP LOGIN: {logins:?}"
        );
        let pop3_seen = pop3_user.seen();
        assert!(
            pop3_seen.iter().any(|l| l.starts_with("PASS ")),
            "facteur did not use USER/PASS: {pop3_seen:?}"
        );
        let raw = message(BOB, &format!("Log check {filter}"));
        bus.call_facteur(&alice, names::ACCOUNT_INTERFACE, "Send", &(raw,))
            .unwrap_or_else(|e| panic!("Send failed: {e}\n{}", mail.mta.log()));
        d.stop();
        let log = d.log();
        let traces = filter == "trace" || filter.contains("facteurd=trace");
        assert!(
            !traces || log.contains("TRACE"),
            "{filter}: nothing was traced, the test proves nothing:\n{}",
            last_lines(&log, 20)
        );
        for secret in &forbidden {
            if let Some(line) = log.lines().find(|l| l.contains(secret.as_str())) {
                panic!("RUST_LOG={filter}: the log holds a secret ({secret}):\n{line}");
            }
        }
    }
}

/// A scripted line server on 127.0.0.1 (plain TCP): `reply` answers each
/// line (`None` ends the connection); the greeting is `reply("")`. Records
/// every line it reads.
struct Scripted {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    fn seen(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn scripted(reply: fn(&str) -> Option<String>) -> Scripted {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a port");
    let port = listener.local_addr().expect("an address").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let seen = seen2.clone();
            thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(reader) = stream.try_clone() else {
                    return;
                };
                let mut reader = std::io::BufReader::new(reader);
                if let Some(greeting) = reply("") {
                    let _ = stream.write_all(greeting.as_bytes());
                }
                loop {
                    let mut line = String::new();
                    match std::io::BufRead::read_line(&mut reader, &mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let line = line.trim_end().to_owned();
                    if let Ok(mut s) = seen.lock() {
                        s.push(line.clone());
                    }
                    match reply(&line) {
                        Some(answer) => {
                            if stream.write_all(answer.as_bytes()).is_err() {
                                return;
                            }
                        }
                        None => return,
                    }
                }
            });
        }
    });
    Scripted { port, seen }
}

/// An IMAP server without AUTH=PLAIN that accepts any LOGIN.
fn imap_reply(line: &str) -> Option<String> {
    if line.is_empty() {
        return Some("* OK [CAPABILITY IMAP4rev1 ID IDLE] ready\r\n".into());
    }
    let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
    let command = rest.split(' ').next().unwrap_or("").to_ascii_uppercase();
    Some(match command.as_str() {
        "CAPABILITY" => format!("* CAPABILITY IMAP4rev1 ID IDLE\r\n{tag} OK done\r\n"),
        "ID" => format!("* ID NIL\r\n{tag} OK done\r\n"),
        "LIST" => format!("* LIST () \"/\" INBOX\r\n{tag} OK done\r\n"),
        "LOGOUT" => format!("* BYE bye\r\n{tag} OK done\r\n"),
        _ => format!("{tag} OK done\r\n"),
    })
}

/// A POP3 server without SASL that accepts any USER/PASS.
fn pop3_reply(line: &str) -> Option<String> {
    if line.is_empty() {
        return Some("+OK ready\r\n".into());
    }
    let command = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
    Some(match command.as_str() {
        "CAPA" => "+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n".into(),
        "UIDL" | "LIST" => "+OK\r\n.\r\n".into(),
        "STAT" => "+OK 0 0\r\n".into(),
        _ => "+OK\r\n".into(),
    })
}

fn mail_to(user: &str, n: usize) -> Vec<u8> {
    mail(user, &format!("Message {n} for the log test"))
}

// ---------------------------------------------------------------------------
// 11: Sync answers with a real pass
// ---------------------------------------------------------------------------

const USER: &str = "alice@example.test";

fn one_user_dovecot() -> (Dovecot, String) {
    let password = unique_secret("alice");
    let dovecot = support::dovecot(DovecotOptions::default(), USER, &password);
    (dovecot, password)
}

#[test]
fn sync_right_after_the_name_appears_runs_a_real_pass() {
    let (dovecot, password) = one_user_dovecot();
    dovecot.deliver(USER, &mail(USER, "First"));
    let path = Path::to(dovecot.imaps_port());
    let bus = Bus::start();
    let mut d = daemon(&bus, dovecot.ca_cert_path(), &[]);
    let account = create(&bus, &d, &imap_via(&path, USER, &password));
    wait_synced(&bus, &d, &account);
    d.stop();

    dovecot.deliver(USER, &mail(USER, "Second"));
    dovecot.deliver(USER, &mail(USER, "Third"));
    // The engine is still connecting when the Sync comes.
    path.restore(Duration::from_millis(1500));
    d.spawn();
    assert!(
        bus.wait_for_name(names::BUS_NAME, true, DEADLINE),
        "facteurd did not take its name:\n{}",
        d.log()
    );
    let got = try_sync(&bus, &account);
    assert_eq!(
        got.as_ref().ok(),
        Some(&2),
        "Sync right after the start answered {got:?}, not the pass that fetched 2\n{}",
        last_lines(&d.log(), 30)
    );
}

/// Cut the path and wait until the engine is offline after a failed try.
fn go_offline(bus: &Bus, d: &Facteurd<'_>, account: &str, path: &Path, pop3: bool) {
    path.cut();
    if pop3 {
        // POP3 holds no connection: the next Sync finds the path cut.
        let got = try_sync(bus, account);
        assert!(got.is_err(), "Sync over a cut path answered {got:?}");
    }
    // A path cut during the TLS handshake reads as a TLS failure (`error`).
    wait_state(bus, d, account, &["offline", "error"]);
}

/// While offline, a Sync reconnects at once and reports what that pass
/// fetched; two Syncs sent while it connects are answered by the same pass.
fn sync_while_offline_and_connecting(pop3: bool) {
    let (dovecot, password) = one_user_dovecot();
    dovecot.deliver(USER, &mail(USER, "Before"));
    let port = if pop3 {
        dovecot.pop3s_port()
    } else {
        dovecot.imaps_port()
    };
    let path = Path::to(port);
    let bus = Bus::start();
    let d = daemon(&bus, dovecot.ca_cert_path(), &[]);
    let settings = if pop3 {
        pop3_via(&path, USER, &password)
    } else {
        imap_via(&path, USER, &password)
    };
    let account = create(&bus, &d, &settings);
    wait_synced(&bus, &d, &account);

    go_offline(&bus, &d, &account, &path, pop3);
    dovecot.deliver(USER, &mail(USER, "While down 1"));
    dovecot.deliver(USER, &mail(USER, "While down 2"));
    path.restore(Duration::ZERO);
    let started = Instant::now();
    let got = try_sync(&bus, &account);
    assert_eq!(
        got.as_ref().ok(),
        Some(&2),
        "Sync after the server came back answered {got:?} in {:?}, not the real pass\n{}",
        started.elapsed(),
        last_lines(&d.log(), 30)
    );

    go_offline(&bus, &d, &account, &path, pop3);
    dovecot.deliver(USER, &mail(USER, "While down 3"));
    path.restore(Duration::from_millis(1500));
    let before = path.accepted();
    let (first, second) = thread::scope(|s| {
        let first = s.spawn(|| try_sync(&bus, &account));
        // The second comes while the engine is connecting.
        wait_until(DEADLINE, || (path.accepted() > before).then_some(()))
            .expect("the Sync did not reconnect");
        let second = s.spawn(|| try_sync(&bus, &account));
        (
            first.join().expect("first Sync"),
            second.join().expect("second Sync"),
        )
    });
    assert_eq!(
        (first.as_ref().ok(), second.as_ref().ok()),
        (Some(&1), Some(&1)),
        "Syncs sent before and while connecting: {first:?}, {second:?}\n{}",
        last_lines(&d.log(), 30)
    );
}

/// A Sync that comes while a pass runs (here: one started by IDLE for a
/// large message that the path slows down) reports what that pass stored.
#[test]
fn imap_sync_during_a_pass_reports_what_that_pass_fetched() {
    let (dovecot, password) = one_user_dovecot();
    let path = Path::to(dovecot.imaps_port());
    let bus = Bus::start();
    let d = daemon(&bus, dovecot.ca_cert_path(), &[]);
    let account = create(&bus, &d, &imap_via(&path, USER, &password));
    wait_synced(&bus, &d, &account);
    path.throttle_ms.store(40, Ordering::SeqCst);
    let mut big = mail(USER, "Large");
    for _ in 0..12_000 {
        big.extend_from_slice(
            b"0123456789012345678901234567890123456789012345678901234567890123456789012\r\n",
        );
    }
    dovecot.deliver(USER, &big);
    wait_state(&bus, &d, &account, &["syncing"]);
    let got = try_sync(&bus, &account);
    assert_eq!(
        got.as_ref().ok(),
        Some(&1),
        "Sync during the pass that fetched the message answered {got:?}\n{}",
        last_lines(&d.log(), 30)
    );
}

#[test]
fn imap_sync_while_offline_or_connecting_waits_for_the_real_pass() {
    sync_while_offline_and_connecting(false);
}

#[test]
fn pop3_sync_while_offline_or_connecting_waits_for_the_real_pass() {
    sync_while_offline_and_connecting(true);
}

// ---------------------------------------------------------------------------
// 12a: kill -9 during CreateAccount
// ---------------------------------------------------------------------------

/// Attach strace to the running facteurd so that it sends SIGKILL at the
/// rename of the temporary file of `target` (`.NAME.PID.tmp`, see
/// `fsutil::write_atomic`) onto it: the moment the atomic write would take
/// effect. strace 6.1 matches `-P` against rename's first path only, hence
/// the temporary name, which holds the pid and so needs the running
/// process. Returns strace, once every thread is traced.
fn kill_at_rename(d: &Facteurd<'_>, target: &std::path::Path) -> std::process::Child {
    let strace = tool("strace", "strace");
    let pid = d.pid();
    let name = target
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    let tmp = target.with_file_name(format!(".{name}.{pid}.tmp"));
    let child = std::process::Command::new(strace)
        .args(["-f", "-qq", "-o", "/dev/null", "-p", &pid.to_string(), "-P"])
        .arg(&tmp)
        .args([
            "-e",
            "trace=rename,renameat,renameat2",
            "-e",
            "inject=rename,renameat,renameat2:signal=KILL",
        ])
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("start strace");
    let traced = wait_until(DEADLINE, || {
        let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        tasks
            .filter_map(|t| t.ok())
            .all(|t| {
                fs::read_to_string(t.path().join("status")).is_ok_and(|s| {
                    s.lines()
                        .any(|l| l.starts_with("TracerPid:") && l.trim_end() != "TracerPid:\t0")
                })
            })
            .then_some(())
    });
    assert!(traced.is_some(), "strace did not attach to facteurd");
    child
}

#[test]
fn kill_9_during_create_account_leaves_no_account_without_its_password() {
    let bus = Bus::start();
    let ca = facteur_tests::tls::TestCa::new();
    let mut d = prepared(&bus, ca.cert_path());
    fs::write(d.secrets_file(), b"{\"accounts\":{}}").expect("write secrets.json");
    fs::set_permissions(d.secrets_file(), fs::Permissions::from_mode(0o600)).expect("chmod");
    let cases = [
        ("secrets", d.secrets_file(), "kill1@example.org"),
        (
            "settings",
            d.accounts_dir().join("kill2_example_org.json"),
            "kill2@example.org",
        ),
    ];
    d.launch();
    for (what, target, email) in cases {
        let mut strace = kill_at_rename(&d, &target);
        let password = unique_secret("kill");
        let got =
            bus.create_account(&Settings::unreachable(email).s("incoming-password", &password));
        assert!(
            got.is_err(),
            "{what}: CreateAccount survived the kill: {got:?}"
        );
        assert!(
            wait_until(DEADLINE, || d.try_wait()).is_some(),
            "{what}: facteurd was not killed at the rename of {}",
            target.display()
        );
        wait_child(&mut strace, DEADLINE, "strace");
        bus.wait_for_name(names::BUS_NAME, false, DEADLINE);
        d.launch();
        let accounts = bus.list_accounts();
        for account in &accounts {
            wait_for_credentials(&bus, account);
        }
        let secrets = fs::read_to_string(d.secrets_file()).unwrap_or_default();
        let id = slug(email);
        assert!(
            accounts.iter().all(|a| !a.ends_with(&id)),
            "{what}: an account without its password came back: {accounts:?}"
        );
        assert!(
            !secrets.contains(&id),
            "{what}: the password of an account that does not exist is kept: {secrets}"
        );
    }

    // Killed right after the reply: the account and its password are there.
    let path = bus
        .create_account(&Settings::unreachable("kill3@example.org").s("incoming-password", "pw-3"))
        .expect("CreateAccount");
    d.kill();
    bus.wait_for_name(names::BUS_NAME, false, DEADLINE);
    d.launch();
    assert_eq!(bus.list_accounts(), std::slice::from_ref(&path));
    let props = wait_for_credentials(&bus, &path);
    assert_ne!(props.str("State"), "needs-credentials");
}

// ---------------------------------------------------------------------------
// 12b: a skipped settings file keeps its id
// ---------------------------------------------------------------------------

#[test]
fn a_skipped_account_file_is_neither_overwritten_nor_reused() {
    let bus = Bus::start();
    let mut d = Facteurd::new(&bus);
    let dir = private_dir(&d.accounts_dir());
    let garbage = dir.join("alice_example_org.json");
    let bytes = b"{\"version\": 1, \"id\": \"alice_example_org\", garbage".to_vec();
    fs::write(&garbage, &bytes).expect("write the garbage file");
    d.launch();
    let path = create(
        &bus,
        &d,
        &Settings::minimal("alice@example.org", "imap.example.org"),
    );
    assert!(
        !path.ends_with("/alice_example_org"),
        "the new account took the id of the skipped file: {path}"
    );
    assert_eq!(fs::read(&garbage).expect("read it back"), bytes);
    d.restart();
    assert_eq!(bus.list_accounts(), [path]);
    assert_eq!(fs::read(&garbage).expect("read it back"), bytes);
}

// ---------------------------------------------------------------------------
// 12c, 12d: a refused or damaged secrets file is logged and named truly
// ---------------------------------------------------------------------------

#[test]
fn a_refused_damaged_or_odd_secrets_file_is_logged_and_named_truly() {
    let bus = Bus::start();
    let ca = facteur_tests::tls::TestCa::new();
    let mut d = daemon(&bus, ca.cert_path(), &[]);
    let path = create(
        &bus,
        &d,
        &Settings::unreachable("odd@example.org").s("incoming-password", "pw-odd"),
    );
    wait_for_credentials(&bus, &path);
    d.stop();
    let file = d.secrets_file();
    let good = fs::read(&file).expect("the secrets file");
    let shown = file.display().to_string();
    type Damage = fn(&std::path::Path, &[u8]);
    let cases: [(&str, Damage, &str); 4] = [
        (
            "loose",
            |f, good| {
                fs::write(f, good).expect("write");
                fs::set_permissions(f, fs::Permissions::from_mode(0o644)).expect("chmod");
            },
            "readable by other users",
        ),
        (
            "garbage",
            |f, _| {
                fs::write(f, b"{ this is not json").expect("write");
                fs::set_permissions(f, fs::Permissions::from_mode(0o600)).expect("chmod");
            },
            "damaged",
        ),
        (
            "directory",
            |f, _| fs::create_dir(f).expect("mkdir"),
            "is a directory",
        ),
        (
            "dangling",
            |f, _| std::os::unix::fs::symlink("/nonexistent/secrets.json", f).expect("symlink"),
            "symbolic link",
        ),
    ];
    for (what, damage, reason) in cases {
        let _ = fs::remove_file(&file);
        let _ = fs::remove_dir(&file);
        damage(&file, &good);
        let from = d.log().len();
        d.launch();
        let props = wait_until(DEADLINE, || {
            let p = bus.account(&path);
            (p.str("State") == "needs-credentials").then_some(p)
        })
        .unwrap_or_else(|| panic!("{what}: the account is not needs-credentials"));
        let log = d.log()[from..].to_owned();
        let warned = log
            .lines()
            .find(|l| l.contains("WARN") && l.contains(&shown) && l.contains(reason));
        assert!(
            warned.is_some(),
            "{what}: no warning naming {shown} and saying {reason:?}:\n{log}"
        );
        assert!(
            props.str("LastError").contains(reason),
            "{what}: LastError is {:?}",
            props.str("LastError")
        );
        assert!(
            !log.contains("pw-odd"),
            "{what}: the password is in the log"
        );
        d.stop();
    }
    let _ = fs::remove_file(&file);
    fs::write(&file, &good).expect("restore");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).expect("chmod");
    d.launch();
    wait_for_credentials(&bus, &path);
}

// ---------------------------------------------------------------------------
// 12a, 12b: passwords without an account are removed, those of skipped
// files are kept
// ---------------------------------------------------------------------------

#[test]
fn passwords_of_removed_accounts_go_and_those_of_skipped_files_stay() {
    let bus = Bus::start();
    let keyring = Keyring::start(&bus);
    let mut d = Facteurd::start(&bus);
    let gone = create(
        &bus,
        &d,
        &Settings::unreachable("gone@example.org").s("incoming-password", "pw-gone"),
    );
    let skipped = create(
        &bus,
        &d,
        &Settings::unreachable("skip@example.org").s("incoming-password", "pw-skip"),
    );
    for path in [&gone, &skipped] {
        wait_for_credentials(&bus, path);
    }
    d.stop();
    let id = |path: &str| path.rsplit('/').next().unwrap_or_default().to_owned();
    let (gone_id, skipped_id) = (id(&gone), id(&skipped));
    // The settings file of one is gone (as after a crash before it was
    // written), the other is damaged.
    fs::remove_file(d.accounts_dir().join(format!("{gone_id}.json"))).expect("remove");
    fs::write(
        d.accounts_dir().join(format!("{skipped_id}.json")),
        b"{ damaged",
    )
    .expect("damage");
    let lookup = |id: &str| keyring.lookup(&[("account-id", id), ("service", "incoming")]);
    assert!(
        lookup(&gone_id).is_some(),
        "the test's premise: the password is stored"
    );
    d.launch();
    let removed = wait_until(DEADLINE, || lookup(&gone_id).is_none().then_some(()));
    assert!(
        removed.is_some(),
        "the password of an account without settings file is still in the keyring\n{}",
        last_lines(&d.log(), 20)
    );
    assert_eq!(
        lookup(&skipped_id).as_deref(),
        Some("pw-skip"),
        "the password of a skipped (damaged) account file was removed"
    );
    assert!(d
        .log()
        .contains(&format!("Removed the stored password(s) of {gone_id}")));
}

//! # Shared helpers of the verify, send, discover and wizard tests
//!
//! - [`Mail`]: a Dovecot (IMAP, POP3, LMTP) and a Postfix (submission)
//!   sharing one test CA, with two users, `alice@example.test` (who sends)
//!   and `bob@example.test` (who receives).
//! - [`facteurd`]: the daemon on a private bus, trusting the test CA.
//! - [`Report`]: a Verify report read back.
//! - [`HttpServer`]: serves config-v1.1 documents for
//!   `--discovery-http-base`.
//! - [`DnsServer`]: a tiny UDP DNS server with SRV, MX and A records for
//!   `--discovery-dns`.
//!
//! Each test file uses only part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use facteur_dbus::names;
use facteur_tests::dovecot::{Dovecot, DovecotOptions, ServerTls};
use facteur_tests::mta::{self, Mta};
use facteur_tests::tls::TestCa;
use facteur_tests::{Bus, CallError, Facteurd, Settings};
use zbus::zvariant::{OwnedValue, Value};

/// The sender's address and login.
pub const ALICE: &str = "alice@example.test";
/// The recipient's address and login.
pub const BOB: &str = "bob@example.test";

/// A Dovecot and a Postfix delivering into it.
pub struct Mail {
    /// The CA both servers' certificate comes from.
    pub ca: Arc<TestCa>,
    /// IMAP, POP3, LMTP.
    pub dovecot: Dovecot,
    /// Submission.
    pub mta: Mta,
    /// Alice's password.
    pub alice_password: String,
    /// Bob's password.
    pub bob_password: String,
}

impl Mail {
    /// Start both servers with Alice and Bob.
    pub fn start() -> Mail {
        let ca = Arc::new(TestCa::new());
        let dovecot = Dovecot::start(mta::dovecot_options(DovecotOptions {
            ca: Some(ca.clone()),
            auto_special_folders: true,
            ..DovecotOptions::default()
        }));
        let alice_password = facteur_tests::unique_secret("alice");
        let bob_password = facteur_tests::unique_secret("bob");
        dovecot.add_user(ALICE, &alice_password);
        dovecot.add_user(BOB, &bob_password);
        let mta = Mta::start(&dovecot, &[ALICE, BOB]);
        Mail {
            ca,
            dovecot,
            mta,
            alice_password,
            bob_password,
        }
    }

    /// Alice's account: IMAP over implicit TLS, SMTP over implicit TLS.
    pub fn alice(&self) -> Settings {
        Settings::new()
            .s("email", ALICE)
            .s("display-name", "Alice Test")
            .s("incoming-host", "localhost")
            .q("incoming-port", self.dovecot.imaps_port())
            .s("incoming-security", "tls")
            .s("smtp-host", "localhost")
            .q("smtp-port", self.mta.submissions_port())
            .s("smtp-security", "tls")
    }
}

/// A Dovecot alone (no MTA) with one user, for tests that need no SMTP.
pub fn dovecot(options: DovecotOptions, user: &str, password: &str) -> Dovecot {
    let dovecot = Dovecot::start(options);
    dovecot.add_user(user, password);
    dovecot
}

/// facteurd on `bus`, trusting `ca`, with extra arguments.
pub fn facteurd<'b>(bus: &'b Bus, ca: &TestCa, args: &[&str]) -> Facteurd<'b> {
    let mut d = Facteurd::new(bus);
    d.arg("--secret-store").arg("file");
    for a in args {
        d.arg(*a);
    }
    d.env("SSL_CERT_FILE", ca.cert_path());
    // rustls-native-certs also loads SSL_CERT_DIR when it is set, and on
    // Debian /etc/ssl/certs holds ssl-cert-snakeoil.pem, a self-signed
    // certificate for "localhost": the test CA must be the only root.
    let no_dir = d.home().join("no-cert-dir");
    d.env("SSL_CERT_DIR", no_dir);
    d.launch();
    d
}

/// A Verify report.
#[derive(Debug, Clone)]
pub struct Report(pub HashMap<String, OwnedValue>);

/// One step of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// incoming or smtp.
    pub service: String,
    /// dns, connect, …
    pub step: String,
    /// Whether it worked.
    pub ok: bool,
    /// What happened.
    pub detail: String,
}

fn str_of(v: &Value<'_>) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        other => panic!("not a string: {other:?}"),
    }
}

impl Report {
    /// A boolean entry.
    pub fn bool(&self, key: &str) -> bool {
        match &*self.0[key] {
            Value::Bool(b) => *b,
            other => panic!("{key} is not a boolean: {other:?}"),
        }
    }

    /// A string entry.
    pub fn str(&self, key: &str) -> String {
        str_of(&self.0[key])
    }

    /// The capabilities.
    pub fn capabilities(&self) -> Vec<String> {
        match &*self.0["capabilities"] {
            Value::Array(a) => a.inner().iter().map(str_of).collect(),
            other => panic!("capabilities is not an array: {other:?}"),
        }
    }

    /// The steps, in order.
    pub fn steps(&self) -> Vec<Step> {
        let Value::Array(a) = &*self.0["steps"] else {
            panic!("steps is not an array");
        };
        a.inner()
            .iter()
            .map(|v| {
                let d: HashMap<String, OwnedValue> = v
                    .try_clone()
                    .expect("clone a step")
                    .try_into()
                    .expect("a step is a{sv}");
                let b = |k: &str| matches!(&*d[k], Value::Bool(true));
                Step {
                    service: str_of(&d["service"]),
                    step: str_of(&d["step"]),
                    ok: b("ok"),
                    detail: str_of(&d["detail"]),
                }
            })
            .collect()
    }

    /// The first failed step of `service`.
    pub fn failed_step(&self, service: &str) -> Step {
        self.steps()
            .into_iter()
            .find(|s| s.service == service && !s.ok)
            .unwrap_or_else(|| panic!("no failed {service} step in {self}"))
    }

    /// The names of the steps of `service` that worked.
    pub fn ok_steps(&self, service: &str) -> Vec<String> {
        self.steps()
            .into_iter()
            .filter(|s| s.service == service && s.ok)
            .map(|s| s.step)
            .collect()
    }

    /// The elapsed time it reports.
    pub fn elapsed_ms(&self) -> u32 {
        match &*self.0["elapsed-ms"] {
            Value::U32(n) => *n,
            other => panic!("elapsed-ms is not a u32: {other:?}"),
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "incoming-ok={} ({}) smtp-ok={} ({})",
            self.bool("incoming-ok"),
            self.str("incoming-error"),
            self.bool("smtp-ok"),
            self.str("smtp-error")
        )?;
        for s in self.steps() {
            writeln!(
                f,
                "  {} {} {} {}",
                s.service,
                s.step,
                if s.ok { "ok" } else { "FAILED" },
                s.detail
            )?;
        }
        Ok(())
    }
}

/// `Manager.VerifySettings(settings)`.
pub fn verify_settings(bus: &Bus, settings: &Settings) -> Result<Report, CallError> {
    let reply = bus.call_facteur(
        names::ROOT_PATH,
        names::MANAGER_INTERFACE,
        "VerifySettings",
        &(settings.as_dict(),),
    )?;
    Ok(Report(
        reply
            .body()
            .deserialize()
            .expect("VerifySettings returns a{sv}"),
    ))
}

/// `Account.Verify()` on the account at `path`.
pub fn verify_account(bus: &Bus, path: &str) -> Report {
    let reply = bus
        .call_facteur(path, names::ACCOUNT_INTERFACE, "Verify", &())
        .unwrap_or_else(|e| panic!("Verify failed: {e}"));
    Report(reply.body().deserialize().expect("Verify returns a{sv}"))
}

/// `Manager.Discover(address)`.
pub fn discover(bus: &Bus, address: &str) -> Vec<HashMap<String, OwnedValue>> {
    let reply = bus
        .call_facteur(
            names::ROOT_PATH,
            names::MANAGER_INTERFACE,
            "Discover",
            &(address,),
        )
        .unwrap_or_else(|e| panic!("Discover({address}) failed: {e}"));
    reply.body().deserialize().expect("Discover returns aa{sv}")
}

/// A string value of a candidate.
pub fn cand_str(c: &HashMap<String, OwnedValue>, key: &str) -> String {
    c.get(key).map(|v| str_of(v)).unwrap_or_default()
}

/// A `q` value of a candidate.
pub fn cand_u16(c: &HashMap<String, OwnedValue>, key: &str) -> u16 {
    match c.get(key).map(|v| &**v) {
        Some(Value::U16(n)) => *n,
        other => panic!("{key} is not a uint16: {other:?}"),
    }
}

/// A `b` value of a candidate.
pub fn cand_bool(c: &HashMap<String, OwnedValue>, key: &str) -> bool {
    matches!(c.get(key).map(|v| &**v), Some(Value::Bool(true)))
}

/// A message from Alice to `to`, with `subject`.
pub fn message(to: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Alice Test <{ALICE}>\r\nTo: {to}\r\nSubject: {subject}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nHello from facteur.\r\n.dot line\r\n"
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// A tiny HTTP/1.1 server on 127.0.0.1 serving fixed documents by path
/// (`/HOST/PATH`, query ignored), 404 for the rest. Stops on drop.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Every request path seen, in order.
    pub seen: Arc<std::sync::Mutex<Vec<String>>>,
}

impl HttpServer {
    /// Serve `files` (path → body).
    pub fn start(files: Vec<(String, String)>) -> HttpServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an HTTP port");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("an address");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let files: HashMap<String, String> = files.into_iter().collect();
        thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => serve(stream, &files, &seen2),
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        HttpServer { addr, stop, seen }
    }

    /// The base URL for `--discovery-http-base`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(stream: TcpStream, files: &HashMap<String, String>, seen: &std::sync::Mutex<Vec<String>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let target = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
    if let Ok(mut s) = seen.lock() {
        s.push(target.clone());
    }
    let path = target.split('?').next().unwrap_or("/");
    let (status, body) = match files.get(path) {
        Some(b) => ("200 OK", b.as_str()),
        None => ("404 Not Found", "not here\n"),
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

/// A config-v1.1 document for `domain` with an IMAP server and an SMTP
/// server (`smtp` may be `None`).
pub fn config_xml(
    domain: &str,
    imap: (&str, u16, &str),
    smtp: Option<(&str, u16, &str)>,
) -> String {
    let mut s = format!(
        "<?xml version=\"1.0\"?>\n<clientConfig version=\"1.1\">\n\
         <emailProvider id=\"{domain}\">\n<domain>{domain}</domain>\n\
         <displayName>Test provider</displayName>\n\
         <incomingServer type=\"imap\"><hostname>{}</hostname><port>{}</port>\
         <socketType>{}</socketType><authentication>password-cleartext</authentication>\
         <username>%EMAILADDRESS%</username></incomingServer>\n",
        imap.0, imap.1, imap.2
    );
    if let Some((host, port, socket)) = smtp {
        s.push_str(&format!(
            "<outgoingServer type=\"smtp\"><hostname>{host}</hostname><port>{port}</port>\
             <socketType>{socket}</socketType><authentication>password-cleartext</authentication>\
             <username>%EMAILADDRESS%</username></outgoingServer>\n"
        ));
    }
    s.push_str("</emailProvider>\n</clientConfig>\n");
    s
}

// ---------------------------------------------------------------------------
// DNS
// ---------------------------------------------------------------------------

/// A record the test DNS server answers with.
#[derive(Debug, Clone)]
pub enum Record {
    /// name, priority, weight, port, target.
    Srv(String, u16, u16, u16, String),
    /// name, preference, exchange.
    Mx(String, u16, String),
    /// name, address.
    A(String, Ipv4Addr),
}

impl Record {
    fn name(&self) -> &str {
        match self {
            Record::Srv(n, ..) | Record::Mx(n, ..) | Record::A(n, _) => n,
        }
    }

    fn rtype(&self) -> u16 {
        match self {
            Record::A(..) => 1,
            Record::Mx(..) => 15,
            Record::Srv(..) => 33,
        }
    }

    fn rdata(&self) -> Vec<u8> {
        match self {
            Record::A(_, ip) => ip.octets().to_vec(),
            Record::Mx(_, pref, host) => {
                let mut v = pref.to_be_bytes().to_vec();
                v.extend(encode_name(host));
                v
            }
            Record::Srv(_, prio, weight, port, target) => {
                let mut v = Vec::new();
                v.extend(prio.to_be_bytes());
                v.extend(weight.to_be_bytes());
                v.extend(port.to_be_bytes());
                v.extend(encode_name(target));
                v
            }
        }
    }
}

fn encode_name(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        v.push(label.len() as u8);
        v.extend(label.as_bytes());
    }
    v.push(0);
    v
}

/// A UDP DNS server on 127.0.0.1 answering from a fixed list of records:
/// NXDOMAIN for names it does not know, an empty answer for known names
/// without records of the type asked. Stops on drop.
pub struct DnsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Every query seen: (name, type).
    pub seen: Arc<std::sync::Mutex<Vec<(String, u16)>>>,
}

impl DnsServer {
    /// Serve `records`.
    pub fn start(records: Vec<Record>) -> DnsServer {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a DNS port");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("a read timeout");
        let addr = socket.local_addr().expect("an address");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some((reply, q)) = answer(&buf[..n], &records) {
                    if let Ok(mut s) = seen2.lock() {
                        s.push(q);
                    }
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        DnsServer { addr, stop, seen }
    }

    /// `ADDR:PORT` for `--discovery-dns`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn answer(query: &[u8], records: &[Record]) -> Option<(Vec<u8>, (String, u16))> {
    if query.len() < 12 {
        return None;
    }
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(pos..pos + len)?).to_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let question_end = pos + 4;
    let name = labels.join(".");
    let known: Vec<&Record> = records
        .iter()
        .filter(|r| r.name().trim_end_matches('.').eq_ignore_ascii_case(&name))
        .collect();
    let answers: Vec<&Record> = known
        .iter()
        .copied()
        .filter(|r| r.rtype() == qtype)
        .collect();
    let mut out = Vec::new();
    out.extend_from_slice(&query[..2]);
    let rcode: u16 = if known.is_empty() { 3 } else { 0 };
    out.extend((0x8400u16 | 0x0100 | 0x0080 | rcode).to_be_bytes());
    out.extend(1u16.to_be_bytes());
    out.extend((answers.len() as u16).to_be_bytes());
    out.extend(0u16.to_be_bytes());
    out.extend(0u16.to_be_bytes());
    out.extend_from_slice(query.get(12..question_end)?);
    for r in answers {
        out.extend(0xC00Cu16.to_be_bytes());
        out.extend(r.rtype().to_be_bytes());
        out.extend(1u16.to_be_bytes());
        out.extend(60u32.to_be_bytes());
        let data = r.rdata();
        out.extend((data.len() as u16).to_be_bytes());
        out.extend(data);
    }
    Some((out, (name, qtype)))
}

/// A TCP forwarder from `listen` to `target`, for the guessing test (which
/// needs a server on a standard port). Stops on drop.
pub struct Forwarder {
    stop: Arc<AtomicBool>,
}

impl Forwarder {
    /// Forward `listen` to `target`.
    pub fn start(listen: SocketAddr, target: SocketAddr) -> std::io::Result<Forwarder> {
        let listener = TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(target) else {
                            continue;
                        };
                        pipe(&client, &server);
                        pipe(&server, &client);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Forwarder { stop })
    }
}

fn pipe(from: &TcpStream, to: &TcpStream) {
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
                }
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Dovecot options presenting a certificate (from `ca`) for `names` as
/// well as localhost.
pub fn dovecot_with_names(ca: &Arc<TestCa>, names: &[&str], tls: ServerTls) -> DovecotOptions {
    let mut all: Vec<&str> = names.to_vec();
    all.extend(facteur_tests::tls::LOCAL_NAMES);
    let pair = ca.issue(&all);
    DovecotOptions {
        ca: Some(ca.clone()),
        tls,
        extra_config: format!(
            "ssl_cert = <{}\nssl_key = <{}\n",
            pair.cert_path.display(),
            pair.key_path.display()
        ),
        ..DovecotOptions::default()
    }
}

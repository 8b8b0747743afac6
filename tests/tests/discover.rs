//! Discover against local servers only: an HTTP server serving config-v1.1
//! documents (`--discovery-http-base`), a DNS server with SRV, MX and A
//! records (`--discovery-dns`), a provider file (`--provider-db`), and the
//! harness's Dovecot, reached directly or, for the guessing path, through a
//! forwarder on the standard port 993 of a loopback address.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use facteur_tests::closed_port;
use facteur_tests::dovecot::{DovecotOptions, ServerTls};
use facteur_tests::tls::TestCa;
use facteur_tests::Bus;
use support::{
    cand_bool, cand_str, cand_u16, config_xml, discover, facteurd, DnsServer, Forwarder,
    HttpServer, Record,
};

#[test]
fn autoconfig_well_known_and_provider_file() {
    let user = "erin@example.test";
    let dovecot = support::dovecot(DovecotOptions::default(), user, "pw");
    let imaps = dovecot.imaps_port();
    let closed = closed_port();
    // example.test: autoconfig.<domain> serves IMAP (and a plain-text IMAP
    // server that must never be proposed) and an SMTP server that does
    // not answer.
    let mut autoconfig = config_xml("example.test", ("localhost", imaps, "SSL"), None);
    autoconfig = autoconfig.replace(
        "</emailProvider>",
        &format!(
            "<incomingServer type=\"imap\"><hostname>localhost</hostname><port>{}</port>\
             <socketType>plain</socketType><username>%EMAILADDRESS%</username></incomingServer>\n\
             <incomingServer type=\"pop3\"><hostname>localhost</hostname><port>{}</port>\
             <socketType>SSL</socketType><username>%EMAILLOCALPART%</username></incomingServer>\n\
             <outgoingServer type=\"smtp\"><hostname>localhost</hostname><port>{closed}</port>\
             <socketType>SSL</socketType><username>%EMAILADDRESS%</username></outgoingServer>\n\
             </emailProvider>",
            dovecot.imap_port(),
            dovecot.pop3s_port()
        ),
    );
    // example2.test: only the .well-known document, IMAP only.
    let well_known = config_xml("example2.test", ("localhost", imaps, "SSL"), None);
    let http = HttpServer::start(vec![
        (
            "/autoconfig.example.test/mail/config-v1.1.xml".to_owned(),
            autoconfig,
        ),
        (
            "/example2.test/.well-known/autoconfig/mail/config-v1.1.xml".to_owned(),
            well_known,
        ),
    ]);
    // The provider file: example.test at a STARTTLS server.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("providers.xml");
    std::fs::write(
        &db,
        config_xml(
            "example.test",
            ("localhost", dovecot.imap_port(), "STARTTLS"),
            None,
        ),
    )
    .expect("write the provider file");
    let dns = DnsServer::start(Vec::new());
    let bus = Bus::start();
    let d = facteurd(
        &bus,
        dovecot.ca(),
        &[
            "--discovery-http-base",
            &http.base(),
            "--discovery-dns",
            &dns.addr(),
            "--provider-db",
            &db.display().to_string(),
        ],
    );

    let start = Instant::now();
    let c = discover(&bus, "erin@example.test");
    assert!(
        start.elapsed().as_secs() < 10,
        "Discover took {:?}",
        start.elapsed()
    );
    let summary: Vec<String> = c
        .iter()
        .map(|c| {
            format!(
                "{} {} {}:{} {}",
                cand_str(c, "source"),
                cand_str(c, "incoming-protocol"),
                cand_str(c, "incoming-host"),
                cand_u16(c, "incoming-port"),
                cand_str(c, "incoming-security")
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            format!("autoconfig imap localhost:{imaps} tls"),
            format!("autoconfig pop3 localhost:{} tls", dovecot.pop3s_port()),
            format!(
                "provider-db imap localhost:{} starttls",
                dovecot.imap_port()
            ),
        ],
        "{}",
        d.log()
    );
    assert_eq!(cand_str(&c[0], "email"), "erin@example.test");
    assert_eq!(cand_str(&c[0], "smtp-host"), "localhost");
    assert_eq!(cand_u16(&c[0], "smtp-port"), closed);
    // The SMTP server does not answer: not verified.
    assert!(!cand_bool(&c[0], "verified"));
    // The POP3 login is the local part; the SMTP one stays the address.
    assert_eq!(cand_str(&c[1], "incoming-login"), "erin");
    assert_eq!(cand_str(&c[1], "smtp-login"), "erin@example.test");
    // IMAP only, and it answers: verified.
    assert!(cand_bool(&c[2], "verified"), "{:?}", c[2]);
    for cand in &c {
        assert_ne!(cand_str(cand, "incoming-security"), "none");
        assert!(!cand.contains_key("incoming-password"));
    }
    let seen = http.seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(
        seen.iter()
            .any(|p| p.contains("?emailaddress=erin%40example.test")),
        "{seen:?}"
    );

    let c = discover(&bus, "erin@example2.test");
    assert_eq!(cand_str(&c[0], "source"), "well-known", "{c:?}");
    assert_eq!(cand_u16(&c[0], "incoming-port"), imaps);
    assert!(cand_bool(&c[0], "verified"), "{c:?}");
    assert!(!c[0].contains_key("smtp-host"));
}

#[test]
fn srv_records_and_mx_matched_to_a_provider() {
    let user = "finn@srv.test";
    let dovecot = support::dovecot(DovecotOptions::default(), user, "pw");
    let dns = DnsServer::start(vec![
        Record::Srv(
            "_imaps._tcp.srv.test".into(),
            0,
            1,
            dovecot.imaps_port(),
            "localhost".into(),
        ),
        Record::Srv(
            "_pop3s._tcp.srv.test".into(),
            0,
            1,
            dovecot.pop3s_port(),
            "localhost".into(),
        ),
        // RFC 2782: a target of "." says the service is not offered.
        Record::Srv("_imap._tcp.srv.test".into(), 0, 0, 143, ".".into()),
        Record::Mx("mx.test".into(), 10, "in1-smtp.messagingengine.com".into()),
    ]);
    let http = HttpServer::start(Vec::new());
    let bus = Bus::start();
    let _d = facteurd(
        &bus,
        dovecot.ca(),
        &[
            "--discovery-http-base",
            &http.base(),
            "--discovery-dns",
            &dns.addr(),
        ],
    );
    let c = discover(&bus, user);
    assert!(c.len() >= 2, "{c:?}");
    assert_eq!(cand_str(&c[0], "source"), "srv");
    assert_eq!(cand_str(&c[0], "incoming-protocol"), "imap");
    assert_eq!(cand_u16(&c[0], "incoming-port"), dovecot.imaps_port());
    assert_eq!(cand_str(&c[0], "incoming-security"), "tls");
    assert!(cand_bool(&c[0], "verified"), "{c:?}");
    assert_eq!(cand_str(&c[1], "source"), "srv");
    assert_eq!(cand_str(&c[1], "incoming-protocol"), "pop3");
    assert!(c
        .iter()
        .all(|x| cand_str(x, "incoming-security") != "starttls"));

    // The MX host is Fastmail's: the provider database answers.
    let c = discover(&bus, "gus@mx.test");
    assert_eq!(cand_str(&c[0], "source"), "mx", "{c:?}");
    assert_eq!(cand_str(&c[0], "incoming-host"), "imap.fastmail.com");
    assert_eq!(cand_u16(&c[0], "incoming-port"), 993);
    assert_eq!(cand_str(&c[0], "smtp-host"), "smtp.fastmail.com");
    assert_eq!(cand_u16(&c[0], "smtp-port"), 465);
    // Nothing here answers for fastmail.com: not verified.
    assert!(!cand_bool(&c[0], "verified"));
    let seen = dns.seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(
        seen.iter()
            .any(|(n, t)| n == "_submissions._tcp.srv.test" && *t == 33),
        "{seen:?}"
    );
}

#[test]
fn guessing_finds_the_server_on_the_standard_port() {
    assert!(
        facteur_tests::running_as_root(),
        "this test binds port 993 on a loopback address, which needs root (CI runs as root)"
    );
    let ca = std::sync::Arc::new(TestCa::new());
    let options = support::dovecot_with_names(&ca, &["imap.guess.test"], ServerTls::CaSigned);
    let dovecot = support::dovecot(options, "hana@guess.test", "pw");
    // A loopback address of its own, so that parallel runs do not collide.
    let ip = Ipv4Addr::new(127, 77, (std::process::id() % 250) as u8 + 1, 9);
    let _forward = Forwarder::start(
        SocketAddr::from((ip, 993)),
        SocketAddr::from((Ipv4Addr::LOCALHOST, dovecot.imaps_port())),
    )
    .unwrap_or_else(|e| panic!("cannot listen on {ip}:993: {e}"));
    let dns = DnsServer::start(vec![Record::A("imap.guess.test".into(), ip)]);
    let http = HttpServer::start(Vec::new());
    let bus = Bus::start();
    let d = facteurd(
        &bus,
        &ca,
        &[
            "--discovery-http-base",
            &http.base(),
            "--discovery-dns",
            &dns.addr(),
        ],
    );
    let start = Instant::now();
    let c = discover(&bus, "hana@guess.test");
    assert!(start.elapsed().as_secs() < 10);
    assert_eq!(c.len(), 1, "{c:?}\n{}", d.log());
    assert_eq!(cand_str(&c[0], "source"), "guess");
    assert_eq!(cand_str(&c[0], "incoming-host"), "imap.guess.test");
    assert_eq!(cand_u16(&c[0], "incoming-port"), 993);
    assert_eq!(cand_str(&c[0], "incoming-security"), "tls");
    assert!(cand_bool(&c[0], "verified"));
    assert!(!c[0].contains_key("smtp-host"));
}

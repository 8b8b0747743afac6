//! The wizard end to end through `facteurctl`: an address and a password
//! on standard input become a working account (discovered from a local
//! autoconfig server, verified against the harness's Dovecot and Postfix,
//! created, then used to send). Also `account verify` in both forms, as
//! text and as JSON.

mod support;

use facteur_dbus::names;
use facteur_tests::{closed_port, wait_for_credentials, Bus};
use support::{config_xml, facteurd, DnsServer, HttpServer, Mail, ALICE, BOB};

fn wizard_setup(mail: &Mail, imap: (&str, u16, &str)) -> (HttpServer, DnsServer) {
    // The first candidate (autoconfig) points at a port where nothing
    // listens; the second (.well-known) is right: the wizard must go on.
    let broken = config_xml(
        "example.test",
        ("localhost", closed_port(), "SSL"),
        Some(("localhost", mail.mta.submissions_port(), "SSL")),
    );
    let good = config_xml(
        "example.test",
        imap,
        Some(("localhost", mail.mta.submission_port(), "STARTTLS")),
    );
    let http = HttpServer::start(vec![
        (
            "/autoconfig.example.test/mail/config-v1.1.xml".to_owned(),
            broken,
        ),
        (
            "/example.test/.well-known/autoconfig/mail/config-v1.1.xml".to_owned(),
            good,
        ),
    ]);
    (http, DnsServer::start(Vec::new()))
}

#[test]
fn wizard_creates_a_working_account_from_address_and_password() {
    let mail = Mail::start();
    let (http, dns) = wizard_setup(&mail, ("localhost", mail.dovecot.imaps_port(), "SSL"));
    let bus = Bus::start();
    let d = facteurd(
        &bus,
        &mail.ca,
        &[
            "--discovery-http-base",
            &http.base(),
            "--discovery-dns",
            &dns.addr(),
        ],
    );
    let stdin = format!("{}\n", mail.alice_password);
    let out = bus.ctl(
        &[
            "account",
            "add",
            "--wizard",
            ALICE,
            "--password-stdin",
            "--yes",
            "--display-name",
            "Alice Test",
        ],
        Some(&stdin),
    );
    let stderr = facteur_tests::text(&out.stderr);
    assert!(
        out.status.success(),
        "the wizard failed:\n{stderr}\n{}",
        d.log()
    );
    let id = facteur_tests::text(&out.stdout).trim().to_owned();
    assert_eq!(id, facteur_tests::slug(ALICE));
    // It said what it tried, what failed, what it found and where from.
    assert!(stderr.contains("from autoconfig"), "{stderr}");
    assert!(stderr.contains("Nothing listens"), "{stderr}");
    assert!(stderr.contains("Source: well-known"), "{stderr}");
    assert!(!stderr.contains(&mail.alice_password));

    let path = names::account_path(&id);
    let props = wait_for_credentials(&bus, &path);
    assert_eq!(props.u16("IncomingPort"), mail.dovecot.imaps_port());
    assert_eq!(props.str("SmtpSecurity"), "starttls");
    assert_eq!(props.str("DisplayName"), "Alice Test");

    // The account works: it sends.
    let out = bus.ctl(
        &["send", "--account", &id],
        Some(&format!("To: {BOB}\nSubject: from the wizard\n\nhi\n")),
    );
    assert!(
        out.status.success(),
        "send failed: {}",
        facteur_tests::text(&out.stderr)
    );

    // account verify ID, readable and JSON.
    let text = bus.ctl_ok(&["account", "verify", &id], None);
    assert!(text.contains("Incoming server: ok"), "{text}");
    assert!(text.contains("SMTP server:"), "{text}");
    assert!(text.contains("starttls"), "{text}");
    let json = bus.ctl_ok(&["--json", "account", "verify", &id], None);
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(v["incoming-ok"], true, "{json}");
    assert_eq!(v["smtp-ok"], true, "{json}");
    assert!(
        v["steps"].as_array().is_some_and(|s| s.len() >= 10),
        "{json}"
    );
}

#[test]
fn wizard_with_a_wrong_password_creates_nothing_and_verify_settings() {
    let mail = Mail::start();
    let (http, dns) = wizard_setup(&mail, ("localhost", mail.dovecot.imaps_port(), "SSL"));
    let bus = Bus::start();
    let _d = facteurd(
        &bus,
        &mail.ca,
        &[
            "--discovery-http-base",
            &http.base(),
            "--discovery-dns",
            &dns.addr(),
        ],
    );
    let out = bus.ctl(
        &[
            "account",
            "add",
            "--wizard",
            ALICE,
            "--password-stdin",
            "--yes",
        ],
        Some("not-the-password\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = facteur_tests::text(&out.stderr);
    assert!(stderr.contains("refused the password"), "{stderr}");
    assert!(bus.list_accounts().is_empty());

    // Without --yes and without a terminal, nothing is created either.
    let out = bus.ctl(
        &["account", "add", "--wizard", ALICE, "--password-stdin"],
        Some(&format!("{}\n", mail.alice_password)),
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        facteur_tests::text(&out.stderr)
    );
    assert!(bus.list_accounts().is_empty());

    // account verify --settings, with the password on stdin.
    let imaps = mail.dovecot.imaps_port().to_string();
    let smtp = mail.mta.submissions_port().to_string();
    let args = [
        "account",
        "verify",
        "--password-stdin",
        "--settings",
        "email=alice@example.test",
        "incoming-host=localhost",
    ];
    let incoming_port = format!("incoming-port={imaps}");
    let smtp_port = format!("smtp-port={smtp}");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["smtp-host=localhost", &incoming_port, &smtp_port]);
    let text = bus.ctl_ok(&all, Some(&format!("{}\n", mail.alice_password)));
    assert!(text.contains("Incoming server: ok"), "{text}");
    assert!(text.contains("SMTP server:     ok"), "{text}");
    assert!(text.contains("imap:IDLE"), "{text}");
    // A wrong one: exit status 1 and the failing step shown.
    let out = bus.ctl(&all, Some("wrong\n"));
    assert_eq!(out.status.code(), Some(1));
    let text = facteur_tests::text(&out.stdout);
    assert!(text.contains("FAILED"), "{text}");
    assert!(text.contains("auth"), "{text}");
}

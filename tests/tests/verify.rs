//! Verify against real servers: the harness's Dovecot (IMAP, POP3) and
//! Postfix (submission), started for each test on loopback ports.
//!
//! Covered: the right password (IMAP and POP3, implicit TLS and STARTTLS,
//! SMTP on both), the wrong one, a port where nothing listens, a name that
//! does not resolve, a self-signed certificate refused and then accepted
//! with `accept-invalid-certs`, a certificate for another host, STARTTLS
//! configured on servers that do not offer it, and `Account.Verify` on
//! saved settings. Every report is also checked for the password.

mod support;

use facteur_tests::dovecot::{DovecotOptions, ServerTls};
use facteur_tests::tls::TestCa;
use facteur_tests::{closed_port, Bus, Settings};
use support::{facteurd, verify_account, verify_settings, Mail, Report, ALICE};

fn assert_no_secret(report: &Report, log: &str, secret: &str) {
    assert!(
        !format!("{:?}", report.0).contains(secret),
        "the password leaked into the report"
    );
    assert!(!log.contains(secret), "the password leaked into the log");
}

#[test]
fn right_password_imap_pop3_and_smtp() {
    let mail = Mail::start();
    let bus = Bus::start();
    let d = facteurd(&bus, &mail.ca, &[]);
    let pw = mail.alice_password.as_str();

    // IMAP and SMTP over implicit TLS.
    let r = verify_settings(&bus, &mail.alice().s("incoming-password", pw)).expect("a report");
    assert!(r.bool("incoming-ok"), "{r}");
    assert!(r.bool("smtp-ok"), "{r}");
    assert_eq!(r.str("incoming-error"), "");
    assert_eq!(
        r.ok_steps("incoming"),
        ["dns", "connect", "tls", "greeting", "auth", "capabilities"],
        "{r}"
    );
    assert_eq!(
        r.ok_steps("smtp"),
        ["dns", "connect", "tls", "greeting", "capabilities", "auth"],
        "{r}"
    );
    let caps = r.capabilities();
    for c in [
        "imap:IDLE",
        "imap:CONDSTORE",
        "imap:QRESYNC",
        "imap:UIDPLUS",
        "imap:MOVE",
    ] {
        assert!(caps.contains(&c.to_owned()), "{c} missing from {caps:?}");
    }
    assert!(caps.iter().any(|c| c.starts_with("smtp:SIZE=")), "{caps:?}");
    assert!(caps.contains(&"smtp:AUTH=PLAIN".to_owned()), "{caps:?}");
    let auth = r
        .steps()
        .into_iter()
        .find(|s| s.service == "smtp" && s.step == "auth")
        .expect("an SMTP auth step");
    assert!(auth.detail.contains("used PLAIN"), "{}", auth.detail);
    assert!(r.elapsed_ms() < 25_000);
    assert_no_secret(&r, &d.log(), pw);

    // IMAP and SMTP with STARTTLS.
    let starttls = mail
        .alice()
        .s("incoming-password", pw)
        .q("incoming-port", mail.dovecot.imap_port())
        .s("incoming-security", "starttls")
        .q("smtp-port", mail.mta.submission_port())
        .s("smtp-security", "starttls");
    let r = verify_settings(&bus, &starttls).expect("a report");
    assert!(r.bool("incoming-ok") && r.bool("smtp-ok"), "{r}");
    assert!(r.bool("smtp-set"), "{r}");
    assert!(
        r.ok_steps("incoming").contains(&"starttls".to_owned()),
        "{r}"
    );
    assert!(r.ok_steps("smtp").contains(&"starttls".to_owned()), "{r}");

    // POP3 over implicit TLS and with STLS.
    for (port, security) in [
        (mail.dovecot.pop3s_port(), "tls"),
        (mail.dovecot.pop3_port(), "starttls"),
    ] {
        let pop = mail
            .alice()
            .s("incoming-password", pw)
            .s("incoming-protocol", "pop3")
            .q("incoming-port", port)
            .s("incoming-security", security);
        let r = verify_settings(&bus, &pop).expect("a report");
        assert!(r.bool("incoming-ok"), "POP3 {security}: {r}");
        let caps = r.capabilities();
        assert!(caps.contains(&"pop3:UIDL".to_owned()), "{caps:?}");
        assert!(caps.contains(&"pop3:TOP".to_owned()), "{caps:?}");
    }

    // Saved settings: Account.Verify reads the password from the store.
    let path = bus
        .create_account(&mail.alice().s("incoming-password", pw))
        .expect("create Alice's account");
    let r = verify_account(&bus, &path);
    assert!(r.bool("incoming-ok") && r.bool("smtp-ok"), "{r}");
    assert_no_secret(&r, &d.log(), pw);
}

#[test]
fn wrong_password_is_named_for_each_server() {
    let mail = Mail::start();
    let bus = Bus::start();
    let d = facteurd(&bus, &mail.ca, &[]);
    let wrong = facteur_tests::unique_secret("wrong");
    let r = verify_settings(&bus, &mail.alice().s("incoming-password", &wrong)).expect("a report");
    assert!(!r.bool("incoming-ok"), "{r}");
    assert!(!r.bool("smtp-ok"), "{r}");
    let step = r.failed_step("incoming");
    assert_eq!(step.step, "auth", "{r}");
    assert!(
        r.str("incoming-error")
            .contains(&format!("refused the password for login {ALICE}")),
        "{r}"
    );
    let step = r.failed_step("smtp");
    assert_eq!(step.step, "auth", "{r}");
    assert!(
        r.str("smtp-error")
            .contains(&format!("refused the password for login {ALICE}")),
        "{r}"
    );
    assert_no_secret(&r, &d.log(), &wrong);
}

#[test]
fn nothing_listening_and_unknown_host() {
    let ca = TestCa::new();
    let bus = Bus::start();
    let _d = facteurd(&bus, &ca, &[]);
    let (a, b) = (closed_port(), closed_port());
    let settings = Settings::minimal("nobody@example.test", "localhost")
        .q("incoming-port", a)
        .s("incoming-password", "x")
        .s("smtp-host", "localhost")
        .q("smtp-port", b);
    let r = verify_settings(&bus, &settings).expect("a report");
    let step = r.failed_step("incoming");
    assert_eq!(step.step, "connect", "{r}");
    assert!(
        r.str("incoming-error")
            .contains(&format!("Nothing listens on localhost:{a}")),
        "{r}"
    );
    assert_eq!(r.failed_step("smtp").step, "connect", "{r}");
    assert!(r.elapsed_ms() < 10_000, "{r}");

    // No SMTP host: SMTP fails with a sentence, without steps.
    let settings = Settings::minimal("nobody@example.test", "no-such-host.invalid")
        .s("incoming-password", "x");
    let r = verify_settings(&bus, &settings).expect("a report");
    assert_eq!(r.failed_step("incoming").step, "dns", "{r}");
    assert!(
        r.str("incoming-error").contains("no-such-host.invalid"),
        "{r}"
    );
    assert!(!r.bool("smtp-ok"));
    assert!(
        r.str("smtp-error").contains("No outgoing (SMTP) server"),
        "{r}"
    );
    // …and says that SMTP is not set, so that a client does not call it a
    // failure of a receive-only account.
    assert!(!r.bool("smtp-set"), "{r}");
    assert!(r.steps().iter().all(|s| s.service == "incoming"), "{r}");
}

#[test]
fn self_signed_refused_then_accepted_and_wrong_host() {
    let user = "carol@example.test";
    let pw = facteur_tests::unique_secret("carol");
    let dovecot = support::dovecot(
        DovecotOptions {
            tls: ServerTls::SelfSigned,
            ..DovecotOptions::default()
        },
        user,
        &pw,
    );
    let bus = Bus::start();
    let _d = facteurd(&bus, dovecot.ca(), &[]);
    let settings = Settings::minimal(user, "localhost")
        .q("incoming-port", dovecot.imaps_port())
        .s("incoming-password", &pw);
    let r = verify_settings(&bus, &settings).expect("a report");
    assert_eq!(r.failed_step("incoming").step, "tls", "{r}");
    assert!(
        r.str("incoming-error")
            .contains("self-signed or issued by an unknown authority"),
        "{r}"
    );
    let r =
        verify_settings(&bus, &settings.clone().b("accept-invalid-certs", true)).expect("a report");
    assert!(r.bool("incoming-ok"), "{r}");
    let tls = r
        .steps()
        .into_iter()
        .find(|s| s.step == "tls")
        .expect("a tls step");
    assert!(tls.detail.contains("not checked"), "{}", tls.detail);

    let wrong = support::dovecot(
        DovecotOptions {
            tls: ServerTls::WrongHost,
            ca: Some(dovecot.ca().clone()),
            ..DovecotOptions::default()
        },
        user,
        &pw,
    );
    let settings = Settings::minimal(user, "localhost")
        .q("incoming-port", wrong.imaps_port())
        .s("incoming-password", &pw);
    let r = verify_settings(&bus, &settings).expect("a report");
    assert_eq!(r.failed_step("incoming").step, "tls", "{r}");
    assert!(
        r.str("incoming-error")
            .contains("it is for wrong-host.invalid, not localhost"),
        "{r}"
    );
}

#[test]
fn starttls_on_servers_that_do_not_offer_it() {
    // IMAP and POP3: a Dovecot without TLS.
    let user = "dan@example.test";
    let pw = facteur_tests::unique_secret("dan");
    let dovecot = support::dovecot(
        DovecotOptions {
            tls: ServerTls::Off,
            ..DovecotOptions::default()
        },
        user,
        &pw,
    );
    let bus = Bus::start();
    let d = facteurd(&bus, dovecot.ca(), &[]);
    for (protocol, port, word) in [
        ("imap", dovecot.imap_port(), "STARTTLS"),
        ("pop3", dovecot.pop3_port(), "STLS"),
    ] {
        let settings = Settings::minimal(user, "localhost")
            .s("incoming-protocol", protocol)
            .q("incoming-port", port)
            .s("incoming-security", "starttls")
            .s("incoming-password", &pw);
        let r = verify_settings(&bus, &settings).expect("a report");
        assert_eq!(
            r.failed_step("incoming").step,
            "starttls",
            "{protocol}: {r}"
        );
        assert!(
            r.str("incoming-error")
                .contains(&format!("does not offer {word}")),
            "{protocol}: {r}"
        );
        // The password was never sent: no auth step at all.
        assert!(r.steps().iter().all(|s| s.step != "auth"), "{r}");
    }
    assert!(!d.log().contains(&pw));
    assert!(
        !dovecot.log().contains(&format!("user=<{user}>")),
        "Dovecot saw a login attempt:\n{}",
        dovecot.log()
    );

    // SMTP: Postfix's port without TLS.
    let mail = Mail::start();
    let bus = Bus::start();
    let _d = facteurd(&bus, &mail.ca, &[]);
    let settings = mail
        .alice()
        .s("incoming-password", &mail.alice_password)
        .q("smtp-port", mail.mta.plain_port())
        .s("smtp-security", "starttls");
    let r = verify_settings(&bus, &settings).expect("a report");
    assert!(r.bool("incoming-ok"), "{r}");
    assert_eq!(r.failed_step("smtp").step, "starttls", "{r}");
    assert!(
        r.str("smtp-error").contains("does not offer STARTTLS"),
        "{r}"
    );
    assert!(
        !mail.mta.log().contains("sasl_method"),
        "{}",
        mail.mta.log()
    );
}

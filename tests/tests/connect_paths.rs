//! The one connect/login path of each protocol, end to end: every step
//! under a deadline, and failures a person can act on.
//!
//! - A server that accepts TCP, greets (IMAP `* OK`, POP3 `+OK`) and then
//!   never answers: `VerifySettings` comes back within its budget with a
//!   failed step that says it timed out, and an account on it ends
//!   `offline` with LastErrorCode `timeout` (never stuck in `syncing`).
//!   facteurd runs with `FACTEUR_COMMAND_TIMEOUT_MS` small so that this
//!   takes seconds; one Verify runs without it, to show the budget alone
//!   bounds it.
//! - Dovecot's TLS with a certificate from a CA facteurd does not trust:
//!   LastErrorCode `certificate-untrusted`, and a sentence naming the host
//!   and the way out.
//! - The wrong password on Dovecot: Verify's `incoming-error` and the
//!   account's LastError are sentences, with no Rust debug text.

mod support;

use std::time::{Duration, Instant};

use facteur_tests::dovecot::DovecotOptions;
use facteur_tests::silent::{SilentServer, IMAP_GREETING, POP3_GREETING};
use facteur_tests::tls::TestCa;
use facteur_tests::{wait_account, Bus, Facteurd, Props, Settings, LOOPBACK};
use support::{verify_settings, Mail, Report};

/// The command deadline the daemon gets in these tests.
const COMMAND_TIMEOUT_MS: &str = "1500";
/// How long an account may take to reach the state a test waits for.
const DEADLINE: Duration = Duration::from_secs(60);

/// facteurd with the file secret store, trusting only `ca`, with `env`.
fn facteurd<'b>(bus: &'b Bus, ca: &TestCa, env: &[(&str, &str)]) -> Facteurd<'b> {
    let mut d = Facteurd::new(bus);
    d.arg("--secret-store").arg("file");
    d.env("SSL_CERT_FILE", ca.cert_path());
    // Debian's /etc/ssl/certs holds a self-signed "localhost" certificate:
    // the given CA must be the only root.
    let no_dir = d.home().join("no-cert-dir");
    d.env("SSL_CERT_DIR", no_dir);
    for (k, v) in env {
        d.env(*k, *v);
    }
    d.launch();
    d
}

/// Settings for `protocol` on the loopback `port`, in clear text.
fn plain(protocol: &str, port: u16) -> Settings {
    Settings::minimal("silent@example.test", LOOPBACK)
        .s("incoming-protocol", protocol)
        .q("incoming-port", port)
        .s("incoming-security", "none")
        .s("incoming-login", "silent")
        .s("incoming-password", "not-a-real-password")
}

/// Debug text that must never reach a person.
fn assert_no_debug_text(what: &str, text: &str) {
    for bad in ["Some(", "None", "code:", "info:", "Error {", "Kind"] {
        assert!(!text.contains(bad), "{what} holds {bad:?}: {text}");
    }
}

/// The failed incoming step of a report says it timed out.
fn assert_timed_out(r: &Report) {
    assert!(!r.bool("incoming-ok"), "{r}");
    let step = r.failed_step("incoming");
    assert!(
        step.step == "auth" || step.step == "capabilities",
        "the step after the greeting fails: {r}"
    );
    assert!(step.detail.contains("timed out"), "{r}");
    assert!(r.str("incoming-error").contains("timed out"), "{r}");
    assert!(
        r.str("incoming-error").contains(LOOPBACK),
        "names the host: {r}"
    );
    assert!(
        r.ok_steps("incoming").contains(&"greeting".to_owned()),
        "the greeting was read: {r}"
    );
}

/// The account reaches `offline` with LastErrorCode `timeout`.
fn assert_account_times_out(bus: &Bus, d: &Facteurd<'_>, settings: &Settings) -> Props {
    let path = bus
        .create_account(settings)
        .unwrap_or_else(|e| panic!("CreateAccount failed: {e}"));
    let p = wait_account(bus, d, &path, "offline after a timeout", DEADLINE, |p| {
        p.str("State") == "offline" && p.str("LastErrorCode") == "timeout"
    });
    assert!(
        p.str("LastError").contains("timed out"),
        "{}",
        p.str("LastError")
    );
    assert_no_debug_text("LastError", &p.str("LastError"));
    p
}

/// A server that greets with `greeting` and then never answers: Verify
/// comes back within its budget with a timed-out step, and an account on it
/// ends `offline` with `timeout`, never stuck at `syncing`.
fn silent_server_times_out(protocol: &str, greeting: &str) {
    let server = SilentServer::start(greeting);
    let ca = TestCa::new();
    let bus = Bus::start();
    let d = facteurd(
        &bus,
        &ca,
        &[("FACTEUR_COMMAND_TIMEOUT_MS", COMMAND_TIMEOUT_MS)],
    );
    let settings = plain(protocol, server.port());

    let start = Instant::now();
    let r = verify_settings(&bus, &settings).expect("a report");
    assert_timed_out(&r);
    assert!(r.elapsed_ms() < 20_000, "{r}");
    assert!(start.elapsed() < Duration::from_secs(25), "{r}");

    let name = format!("silent-{protocol}");
    assert_account_times_out(&bus, &d, &settings.clone().s("name", &name));
    assert!(server.accepted() >= 2, "the account connected");
}

#[test]
fn silent_imap_server_times_out() {
    silent_server_times_out("imap", IMAP_GREETING);
}

#[test]
fn silent_pop3_server_times_out() {
    silent_server_times_out("pop3", POP3_GREETING);
}

#[test]
fn silent_server_without_the_override_ends_within_the_verify_budget() {
    let server = SilentServer::start(IMAP_GREETING);
    let ca = TestCa::new();
    let bus = Bus::start();
    let _d = facteurd(&bus, &ca, &[]);
    let start = Instant::now();
    let r = verify_settings(&bus, &plain("imap", server.port())).expect("a report");
    assert_timed_out(&r);
    // The service budget is 20 s; the D-Bus caller waits 25 s.
    assert!(r.elapsed_ms() <= 21_000, "{r}");
    assert!(start.elapsed() < Duration::from_secs(25), "{r}");
}

#[test]
fn untrusted_certificate_is_named_and_coded() {
    let user = "dave@example.test";
    let pw = facteur_tests::unique_secret("dave");
    let dovecot_ca = std::sync::Arc::new(TestCa::new());
    let dovecot = support::dovecot(
        DovecotOptions {
            ca: Some(dovecot_ca),
            ..DovecotOptions::default()
        },
        user,
        &pw,
    );
    // facteurd trusts another CA only.
    let other = TestCa::new();
    let bus = Bus::start();
    let d = facteurd(&bus, &other, &[]);
    let settings = Settings::minimal(user, "localhost")
        .s("name", "untrusted")
        .q("incoming-port", dovecot.imaps_port())
        .s("incoming-security", "tls")
        .s("incoming-password", &pw);

    let r = verify_settings(&bus, &settings).expect("a report");
    assert_eq!(r.failed_step("incoming").step, "tls", "{r}");
    let error = r.str("incoming-error");
    assert!(error.contains("localhost"), "{r}");
    assert!(error.contains("not trusted"), "{r}");
    assert!(error.contains("accept-invalid-certs"), "{r}");

    let path = bus
        .create_account(&settings)
        .unwrap_or_else(|e| panic!("CreateAccount failed: {e}"));
    let p = wait_account(&bus, &d, &path, "refusing the certificate", DEADLINE, |p| {
        p.str("State") == "error" && p.str("LastErrorCode") == "certificate-untrusted"
    });
    let last = p.str("LastError");
    assert!(last.contains("localhost"), "{last}");
    assert!(last.contains("accept-invalid-certs"), "{last}");
    assert_no_debug_text("LastError", &last);
    assert!(
        !dovecot.log().contains(&format!("user=<{user}>")),
        "no login was tried over a refused certificate"
    );
}

#[test]
fn wrong_password_reads_as_a_sentence() {
    let user = "erin@example.test";
    let pw = facteur_tests::unique_secret("erin");
    let wrong = facteur_tests::unique_secret("wrong");
    let dovecot = support::dovecot(DovecotOptions::default(), user, &pw);
    let bus = Bus::start();
    let d = facteurd(&bus, dovecot.ca(), &[]);
    let settings = Settings::minimal(user, "localhost")
        .s("name", "wrong-password")
        .q("incoming-port", dovecot.imaps_port())
        .s("incoming-security", "tls")
        .s("incoming-password", &wrong);

    let r = verify_settings(&bus, &settings).expect("a report");
    assert_eq!(r.failed_step("incoming").step, "auth", "{r}");
    let error = r.str("incoming-error");
    assert!(
        error.contains(&format!("refused the password for login {user}")),
        "{r}"
    );
    assert!(error.contains("Authentication failed"), "{r}");
    assert_no_debug_text("incoming-error", &error);

    let path = bus
        .create_account(&settings)
        .unwrap_or_else(|e| panic!("CreateAccount failed: {e}"));
    let p = wait_account(&bus, &d, &path, "refused the password", DEADLINE, |p| {
        p.str("LastErrorCode") == "auth-failed"
    });
    let last = p.str("LastError");
    assert!(
        last.contains(&format!("refused the password for login {user}")),
        "{last}"
    );
    assert_no_debug_text("LastError", &last);
    assert!(!last.contains(&wrong), "the password leaked into LastError");
    assert!(
        !d.log().contains(&wrong),
        "the password leaked into the log"
    );
}

#[test]
fn pop3_and_smtp_refusals_read_as_sentences() {
    let mail = Mail::start();
    let bus = Bus::start();
    let d = facteurd(&bus, &mail.ca, &[]);
    let wrong = facteur_tests::unique_secret("wrong");
    let login = support::ALICE;
    let pop = mail
        .alice()
        .s("incoming-password", &wrong)
        .s("incoming-protocol", "pop3")
        .q("incoming-port", mail.dovecot.pop3s_port())
        .s("incoming-security", "tls");
    let r = verify_settings(&bus, &pop).expect("a report");
    for service in ["incoming", "smtp"] {
        assert!(!r.bool(&format!("{service}-ok")), "{r}");
        assert_eq!(r.failed_step(service).step, "auth", "{r}");
        let error = r.str(&format!("{service}-error"));
        assert!(
            error.contains(&format!("refused the password for login {login} (")),
            "{service}: {r}"
        );
        assert_no_debug_text(service, &error);
        assert!(!error.contains("permanent error"), "{service}: {error}");
        assert!(!error.contains(&wrong), "the password leaked: {error}");
    }
    assert!(
        !d.log().contains(&wrong),
        "the password leaked into the log"
    );
}

#[test]
fn too_many_connections_is_a_server_limit() {
    let user = "frank@example.test";
    let pw = facteur_tests::unique_secret("frank");
    let dovecot = support::dovecot(
        DovecotOptions {
            max_userip_connections: 1,
            ..DovecotOptions::default()
        },
        user,
        &pw,
    );
    let bus = Bus::start();
    let d = facteurd(&bus, dovecot.ca(), &[]);
    let settings = Settings::minimal(user, "localhost")
        .s("name", "limited")
        .q("incoming-port", dovecot.imaps_port())
        .s("incoming-security", "tls")
        .s("incoming-password", &pw);
    // The account's engine holds the one connection allowed (IDLE).
    let path = bus
        .create_account(&settings)
        .unwrap_or_else(|e| panic!("CreateAccount failed: {e}"));
    wait_account(&bus, &d, &path, "idle", DEADLINE, |p| {
        p.str("State") == "idle"
    });
    let r = verify_settings(&bus, &settings).expect("a report");
    assert!(!r.bool("incoming-ok"), "{r}");
    let error = r.str("incoming-error");
    assert!(error.contains("limit of its own"), "{r}");
    assert!(error.contains("[LIMIT]"), "{r}");
    assert!(error.contains("localhost"), "{r}");
    assert_no_debug_text("incoming-error", &error);

    // A second account on the same login: server-limit, retried (offline).
    let second = Settings::minimal("frank.two@example.test", "localhost")
        .s("name", "limited-two")
        .s("incoming-login", user)
        .q("incoming-port", dovecot.imaps_port())
        .s("incoming-security", "tls")
        .s("incoming-password", &pw);
    let path = bus
        .create_account(&second)
        .unwrap_or_else(|e| panic!("CreateAccount failed: {e}"));
    let p = wait_account(&bus, &d, &path, "at the server's limit", DEADLINE, |p| {
        p.str("LastErrorCode") == "server-limit"
    });
    assert_eq!(p.str("State"), "offline");
    assert_no_debug_text("LastError", &p.str("LastError"));
}

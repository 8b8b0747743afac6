//! Sending through a real MTA: `Account.Send` submits to the harness's
//! Postfix (implicit TLS and STARTTLS, AUTH checked by Dovecot), Postfix
//! delivers to Dovecot over LMTP, and the message is read back from the
//! recipient's INBOX over IMAP; the sender's copy is read back from its
//! Sent folder. Refusals come back as typed D-Bus errors with the server's
//! reply. `facteurctl send` is exercised too.

mod support;

use std::time::Duration;

use facteur_dbus::names;
use facteur_tests::dovecot::Dovecot;
use facteur_tests::{closed_port, wait_for_credentials, wait_until, Bus, CallError, Settings};
use support::{facteurd, message, Mail, ALICE, BOB};

fn send(bus: &Bus, path: &str, raw: &[u8]) -> Result<(), CallError> {
    bus.call_facteur(path, names::ACCOUNT_INTERFACE, "Send", &(raw.to_vec(),))
        .map(|_| ())
}

/// The raw bytes of the message in `user`'s `folder` whose bytes contain
/// `needle`, waiting for it to arrive.
fn arrived(dovecot: &Dovecot, user: &str, folder: &str, needle: &str) -> (u32, Vec<u8>) {
    wait_until(Duration::from_secs(20), || {
        if !dovecot.folders(user).iter().any(|f| f == folder) {
            return None;
        }
        dovecot
            .list_uids(user, folder)
            .into_iter()
            .map(|uid| (uid, dovecot.fetch_raw(user, folder, uid)))
            .find(|(_, raw)| facteur_tests::contains(raw, needle.as_bytes()))
    })
    .unwrap_or_else(|| panic!("no message with {needle:?} arrived in {user}'s {folder}"))
}

#[test]
fn sent_mail_arrives_and_is_copied_to_sent() {
    let mail = Mail::start();
    let bus = Bus::start();
    let d = facteurd(&bus, &mail.ca, &[]);
    let path = bus
        .create_account(&mail.alice().s("incoming-password", &mail.alice_password))
        .expect("create Alice's account");
    wait_for_credentials(&bus, &path);

    let subject = format!("Hello Bob {}", std::process::id());
    let mut raw = message(BOB, &subject);
    // A Bcc: Alice gets a copy, Bob must not see it.
    raw.splice(0..0, format!("Bcc: {ALICE}\r\n").into_bytes());
    send(&bus, &path, &raw).unwrap_or_else(|e| panic!("Send failed: {e}\n{}", mail.mta.log()));

    let (_, got) = arrived(&mail.dovecot, BOB, "INBOX", &subject);
    let got = facteur_tests::text(&got);
    assert!(
        got.contains("From: Alice Test <alice@example.test>"),
        "{got}"
    );
    assert!(!got.contains("Bcc"), "Bcc leaked to the recipient:\n{got}");
    // Dot-stuffing survived the round trip.
    assert!(got.contains("\r\n.dot line\r\n"), "{got}");
    assert!(got.contains("Message-ID: <"), "{got}");
    let (_, bcc_copy) = arrived(&mail.dovecot, ALICE, "INBOX", &subject);
    assert!(!facteur_tests::contains(&bcc_copy, b"Bcc:"));

    let (uid, sent) = arrived(&mail.dovecot, ALICE, "Sent", &subject);
    assert!(
        facteur_tests::contains(&sent, format!("Bcc: {ALICE}").as_bytes()),
        "the Sent copy keeps Bcc"
    );
    let flags = mail.dovecot.flags(ALICE, "Sent", uid);
    assert!(flags.iter().any(|f| f == "\\Seen"), "{flags:?}");
    assert!(
        d.log().contains("copy of the sent message saved in Sent"),
        "{}",
        d.log()
    );
    assert!(!d.log().contains(&mail.alice_password));
}

#[test]
fn starttls_submission_and_facteurctl_send_without_from() {
    let mail = Mail::start();
    let bus = Bus::start();
    let d = facteurd(&bus, &mail.ca, &[]);
    let settings = mail
        .alice()
        .s("incoming-password", &mail.alice_password)
        .q("smtp-port", mail.mta.submission_port())
        .s("smtp-security", "starttls");
    let path = bus.create_account(&settings).expect("create the account");
    wait_for_credentials(&bus, &path);
    let id = names::account_id(&path)
        .expect("an account path")
        .to_owned();

    let subject = format!("No From {}", std::process::id());
    let raw = format!("To: {BOB}\nSubject: {subject}\n\nBare LF lines.\n");
    let out = bus.ctl(&["send", "--account", &id], Some(&raw));
    assert!(
        out.status.success(),
        "facteurctl send failed: {}\n{}",
        facteur_tests::text(&out.stderr),
        d.log()
    );
    let (_, got) = arrived(&mail.dovecot, BOB, "INBOX", &subject);
    let got = facteur_tests::text(&got);
    assert!(
        got.contains("From: Alice Test <alice@example.test>"),
        "{got}"
    );
    assert!(got.contains("Bare LF lines.\r\n"), "{got}");
    assert!(
        mail.mta.log().contains("postfix/submission/smtpd"),
        "{}",
        mail.mta.log()
    );
}

#[test]
fn refusals_are_typed_errors_with_the_server_reply() {
    let mail = Mail::start();
    let bus = Bus::start();
    let _d = facteurd(&bus, &mail.ca, &[]);
    let path = bus
        .create_account(&mail.alice().s("incoming-password", &mail.alice_password))
        .expect("create Alice's account");
    wait_for_credentials(&bus, &path);

    // A recipient the MTA does not know.
    let e = send(&bus, &path, &message("nobody@example.test", "to nobody"))
        .expect_err("an unknown recipient is refused");
    assert_eq!(e.short_name(), "InvalidArgument", "{e}");
    assert!(e.message.contains("550"), "{e}");
    assert!(e.message.contains("nobody@example.test"), "{e}");

    // No recipient at all: refused before anything is sent.
    let e = send(
        &bus,
        &path,
        b"From: a@example.test\r\nSubject: x\r\n\r\nhi\r\n",
    )
    .expect_err("a message without recipient is refused");
    assert_eq!(e.short_name(), "InvalidArgument", "{e}");
    assert!(e.message.contains("no recipient"), "{e}");

    // A wrong SMTP password.
    let wrong = facteur_tests::unique_secret("wrong");
    bus.update_account(&path, &Settings::new().s("smtp-password", &wrong))
        .expect("set a wrong SMTP password");
    let e = send(&bus, &path, &message(BOB, "wrong password"))
        .expect_err("a wrong password is refused");
    assert_eq!(e.short_name(), "AuthenticationFailed", "{e}");
    assert!(e.message.contains(ALICE), "{e}");
    assert!(!e.message.contains(&wrong));

    // Nothing listens.
    bus.update_account(
        &path,
        &Settings::new()
            .q("smtp-port", closed_port())
            .s("smtp-password", &mail.alice_password),
    )
    .expect("point SMTP at a closed port");
    let e = send(&bus, &path, &message(BOB, "closed")).expect_err("nothing listens");
    assert_eq!(e.short_name(), "ConnectionFailed", "{e}");
    assert!(e.message.contains("Nothing listens"), "{e}");
}

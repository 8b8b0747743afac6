use super::*;
use std::collections::HashMap;
use zbus::zvariant::OwnedValue;

fn owned(v: Value<'_>) -> OwnedValue {
    OwnedValue::try_from(v).unwrap()
}

/// The properties of a named test account.
fn alice() -> OwnedDict {
    let mut folders = HashMap::new();
    folders.insert("trash".to_owned(), "Trash".to_owned());
    folders.insert("sent".to_owned(), "Sent Items".to_owned());
    let mut p: OwnedDict = HashMap::new();
    p.insert("Id".into(), owned(Value::from("alice")));
    p.insert("Name".into(), owned(Value::from("Alice at work")));
    p.insert(
        "EmailAddress".into(),
        owned(Value::from("alice@example.org")),
    );
    p.insert("IncomingProtocol".into(), owned(Value::from("imap")));
    p.insert("IncomingPort".into(), owned(Value::U16(993)));
    p.insert("UseUnified".into(), owned(Value::Bool(true)));
    p.insert("State".into(), owned(Value::from("idle")));
    p.insert("LastError".into(), owned(Value::from("")));
    p.insert("LastSync".into(), owned(Value::U64(1_700_000_000)));
    p.insert("MessageCount".into(), owned(Value::U32(120)));
    p.insert("UnreadCount".into(), owned(Value::U32(3)));
    p.insert("Folders".into(), owned(Value::from(folders)));
    p.insert("LastErrorCode".into(), owned(Value::from("")));
    p.insert("AttentionNeeded".into(), owned(Value::Bool(false)));
    p.insert("NextRetry".into(), owned(Value::U64(0)));
    p.insert("Progress".into(), owned(Value::from((40u32, 120u32))));
    p.insert("ZNewProperty".into(), owned(Value::from("later")));
    p
}

/// A POP3 account with only some properties.
fn bob() -> OwnedDict {
    let mut p: OwnedDict = HashMap::new();
    p.insert("Name".into(), owned(Value::from("Bob")));
    p.insert("IncomingProtocol".into(), owned(Value::from("pop3")));
    p.insert("State".into(), owned(Value::from("needs-credentials")));
    p.insert("LastSync".into(), owned(Value::U64(0)));
    p
}

#[test]
fn the_list_table() {
    let table = list_table(&[("alice".into(), alice()), ("bob".into(), bob())]);
    assert_eq!(
        table,
        "ID     NAME           EMAIL              PROTOCOL  STATE              MESSAGES/UNREAD\n\
         alice  Alice at work  alice@example.org  imap      idle               120/3\n\
         bob    Bob            ?                  pop3      needs-credentials  ?/?\n"
    );
}

#[test]
fn show_puts_known_properties_first_and_keeps_new_ones() {
    let text = show_text(&alice());
    let keys: Vec<&str> = text.lines().filter_map(|l| l.split(':').next()).collect();
    assert_eq!(keys.first(), Some(&"Id"));
    assert_eq!(keys.last(), Some(&"ZNewProperty"));
    assert!(
        text.contains("Folders:          sent=Sent Items, trash=Trash\n"),
        "{text}"
    );
    assert!(
        text.contains("LastSync:         2023-11-14 22:13:20 UTC\n"),
        "{text}"
    );
    assert!(text.contains("UseUnified:       yes\n"), "{text}");
    assert!(text.contains("LastError:        -\n"), "{text}");
    assert!(text.contains("LastErrorCode:    -\n"), "{text}");
    assert!(text.contains("AttentionNeeded:  no\n"), "{text}");
    assert!(text.contains("NextRetry:        -\n"), "{text}");
    assert!(
        text.contains("Progress:         40/120 messages\n"),
        "{text}"
    );
    // The health properties come right after State, in this order.
    let at = |k: &str| keys.iter().position(|n| *n == k);
    assert!(at("State") < at("AttentionNeeded"), "{text}");
    assert!(at("AttentionNeeded") < at("LastErrorCode"), "{text}");
    assert!(at("LastError") < at("NextRetry"), "{text}");
    assert!(at("NextRetry") < at("Progress"), "{text}");
    assert!(at("Progress") < at("LastSync"), "{text}");
    assert!(show_text(&bob()).contains("LastSync:         never"));
}

#[test]
fn folders_follow_the_role_order() {
    let f = serde_json::json!({"archive": "A", "zzz": "Z", "sent": "S", "drafts": "D"});
    assert_eq!(folders_text(&f), "sent=S, drafts=D, archive=A, zzz=Z");
    assert_eq!(folders_text(&serde_json::json!({})), "-");
}

fn report(incoming_ok: bool) -> Json {
    serde_json::json!({
        "incoming-ok": incoming_ok,
        "incoming-error": if incoming_ok { "" } else { "authentication failed" },
        "smtp-ok": true,
        "smtp-error": "",
        "capabilities": ["IMAP4rev1", "IDLE"],
        "elapsed-ms": 412,
        "steps": [
            {"service": "incoming", "step": "dns", "ok": true, "detail": "127.0.0.1", "elapsed-ms": 1},
            {"service": "incoming", "step": "auth", "ok": incoming_ok, "detail": "NO [AUTHENTICATIONFAILED]", "elapsed-ms": 40},
        ],
    })
}

#[test]
fn verify_reports_read_well() {
    let text = report_text(&report(false));
    assert_eq!(
        text,
        "Incoming server: FAILED: authentication failed\n\
         SMTP server:     ok\n\
         Capabilities:    IMAP4rev1 IDLE\n\
         Time:            412 ms\n\
         Steps:\n  \
           SERVICE   STEP  RESULT  TIME   DETAIL\n  \
           incoming  dns   ok      1 ms   127.0.0.1\n  \
           incoming  auth  FAILED  40 ms  NO [AUTHENTICATIONFAILED]\n"
    );
    assert!(!report_ok(&report(false)));
    assert!(report_ok(&report(true)));
    // Keys not reported are not failures.
    assert!(report_ok(&serde_json::json!({})));
    assert_eq!(report_text(&serde_json::json!({})), "");
}

#[test]
fn passwords_are_added_as_their_keys() {
    let mut s = Settings::default();
    add_passwords(
        &mut s,
        Passwords {
            incoming: Some("a".into()),
            smtp: Some("b".into()),
        },
    )
    .unwrap();
    let d = s.to_dict();
    assert_eq!(d[keys::INCOMING_PASSWORD], Value::from("a"));
    assert_eq!(d[keys::SMTP_PASSWORD], Value::from("b"));
}

#[test]
fn a_receive_only_report_is_not_a_failure() {
    let mut r = report(true);
    r["smtp-ok"] = Json::from(false);
    r["smtp-error"] = Json::from("No outgoing (SMTP) server is set");
    // An SMTP failure…
    assert!(!report_ok(&r));
    assert!(report_text(&r).contains("SMTP server:     FAILED"));
    // …unless no SMTP server is set at all.
    r["smtp-set"] = Json::from(false);
    assert!(report_ok(&r));
    let text = report_text(&r);
    assert!(
        text.contains("SMTP server:     not set (a receive-only account"),
        "{text}"
    );
    assert!(!text.contains("SMTP server:     FAILED"), "{text}");
    report_verdicts(&mut r);
    assert_eq!(r["incoming"], "ok");
    assert_eq!(r["smtp"], "not-set");
}

#[test]
fn set_names_the_keys_changed_never_the_values() {
    assert_eq!(
        set_line("alice", &["name", "incoming-password"]),
        "Changed name, incoming-password of account alice."
    );
}

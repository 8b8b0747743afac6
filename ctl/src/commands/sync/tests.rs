use super::*;
use std::collections::HashMap;
use zbus::zvariant::OwnedValue;

fn owned(v: Value<'_>) -> OwnedValue {
    OwnedValue::try_from(v).unwrap()
}

fn account(
    state: &str,
    code: &str,
    attention: bool,
    retry: u64,
    progress: (u32, u32),
) -> OwnedDict {
    let mut p: OwnedDict = HashMap::new();
    p.insert("State".into(), owned(Value::from(state)));
    p.insert("LastErrorCode".into(), owned(Value::from(code)));
    p.insert("AttentionNeeded".into(), owned(Value::Bool(attention)));
    p.insert("NextRetry".into(), owned(Value::U64(retry)));
    p.insert("Progress".into(), owned(Value::from(progress)));
    p.insert("LastError".into(), owned(Value::from("")));
    p.insert("LastSync".into(), owned(Value::U64(0)));
    p
}

#[test]
fn the_status_table() {
    let mut bob = account("needs-credentials", "auth-failed", true, 0, (0, 0));
    bob.insert(
        "LastError".into(),
        owned(Value::from("The server refused the password for bob.")),
    );
    let table = status_table(&[
        ("alice".into(), account("syncing", "", false, 0, (40, 120))),
        ("bob".into(), bob),
    ]);
    assert_eq!(
        table,
        "ID     STATE              ATTENTION  ERROR        NEXT RETRY  PROGRESS         LAST ERROR\n\
         alice  syncing            no         -            -           40/120 messages  -\n\
         bob    needs-credentials  yes        auth-failed  -           -                The server refused the password for bob.\n"
    );
}

#[test]
fn a_daemon_without_the_health_properties_shows_question_marks() {
    let mut p: OwnedDict = HashMap::new();
    p.insert("State".into(), owned(Value::from("idle")));
    let table = status_table(&[("old".into(), p)]);
    assert_eq!(
        lines_of(&table)[1],
        "old  idle   ?          ?      ?           ?         ?"
    );
}

#[test]
fn next_retry_is_a_local_time() {
    let shown = status_value("NextRetry", &Value::U64(1_700_000_000));
    assert_eq!(shown, output::local_time(1_700_000_000));
    // `YYYY-MM-DD HH:MM:SS +HHMM`
    assert_eq!(shown.len(), 25, "{shown}");
    assert!(shown.starts_with("2023-11-1"), "{shown}");
    assert_eq!(status_value("NextRetry", &Value::U64(0)), "-");
}

#[test]
fn status_json_is_in_the_one_style() {
    let j = status_json(
        "alice",
        &account("backoff", "timeout", false, 1_700_000_000, (0, 0)),
    );
    assert_eq!(j["account"], "alice");
    assert_eq!(
        j["account-path"],
        facteur_dbus::names::account_path("alice")
    );
    assert_eq!(j["state"], "backoff");
    assert_eq!(j["last-error-code"], "timeout");
    assert_eq!(j["attention-needed"], false);
    assert_eq!(j["next-retry"], "2023-11-14T22:13:20Z");
    assert_eq!(j["next-retry-unix"], 1_700_000_000u64);
    assert_eq!(j["progress"], serde_json::json!({ "done": 0, "total": 0 }));
}

fn lines_of(s: &str) -> Vec<&str> {
    s.lines().collect()
}

use super::*;
use std::collections::HashMap;
use zbus::zvariant::OwnedValue;

#[test]
fn tables_align_columns_and_leave_the_last_unpadded() {
    let mut t = Table::new(["ID", "NAME", "STATE"]);
    t.row(["alice", "Alice", "idle"]);
    t.row(["b", "Bob Example", "needs-credentials"]);
    assert_eq!(
        t.render(),
        "ID     NAME         STATE\n\
         alice  Alice        idle\n\
         b      Bob Example  needs-credentials\n"
    );
}

#[test]
fn table_cells_are_one_line_and_scrubbed() {
    let mut t = Table::new(["A", "B"]).indent(2);
    t.row(["x\ny", "\u{1b}[2Jz"]);
    assert_eq!(t.render(), "  A    B\n  x y  \u{fffd}[2Jz\n");
}

#[test]
fn key_values_align() {
    let s = key_values(&[("Id", "a"), ("IncomingHost", "imap.example.org")]);
    assert_eq!(s, "Id:           a\nIncomingHost: imap.example.org\n");
}

#[test]
fn utc_times() {
    assert_eq!(utc_time(0), "1970-01-01 00:00:00");
    assert_eq!(utc_time(951_782_400), "2000-02-29 00:00:00");
    assert_eq!(utc_time(1_700_000_000), "2023-11-14 22:13:20");
    assert_eq!(utc_time(-1), "1969-12-31 23:59:59");
}

#[test]
fn truncation_marks_the_cut() {
    assert_eq!(truncate("abcdef", 4), "abc…");
    assert_eq!(truncate("abc", 4), "abc");
    assert_eq!(truncate("ééééé", 3), "éé…");
}

fn owned(v: Value<'_>) -> OwnedValue {
    OwnedValue::try_from(v).unwrap()
}

#[test]
fn dbus_values_become_json() {
    let mut folders = HashMap::new();
    folders.insert("sent".to_owned(), "Sent".to_owned());
    let mut dict: OwnedDict = HashMap::new();
    dict.insert("IncomingPort".into(), owned(Value::U16(993)));
    dict.insert("UseUnified".into(), owned(Value::Bool(true)));
    dict.insert("Name".into(), owned(Value::from("Alice")));
    dict.insert("LastSync".into(), owned(Value::U64(5)));
    dict.insert("Folders".into(), owned(Value::from(folders)));
    dict.insert("caps".into(), owned(Value::from(vec!["IDLE", "UIDPLUS"])));
    assert_eq!(
        dict_to_json(&dict),
        serde_json::json!({
            "IncomingPort": 993,
            "UseUnified": true,
            "Name": "Alice",
            "LastSync": 5,
            "Folders": {"sent": "Sent"},
            "caps": ["IDLE", "UIDPLUS"],
        })
    );
}

#[test]
fn dbus_values_display_for_people() {
    assert_eq!(display(&Value::Bool(false)), "no");
    assert_eq!(display(&Value::from("")), "-");
    assert_eq!(display(&Value::U32(7)), "7");
    assert_eq!(display(&Value::from(vec!["a", "b"])), "a, b");
}

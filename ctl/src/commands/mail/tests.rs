use super::*;

const MESSAGE: &str = concat!(
    "From: =?UTF-8?Q?Ren=C3=A9e?= <renee@example.org>\r\n",
    "To: alice@example.org, Bob <bob@example.org>\r\n",
    "Date: Tue, 14 Nov 2023 22:13:20\r\n +0000\r\n",
    "Subject: =?UTF-8?B?SGVsbG8g8J+MjQ==?=\r\n and more\r\n",
    "Content-Type: text/plain; charset=utf-8\r\n",
    "\r\n",
    "Hi Alice,\r\n\x1b[31mred\x1b[0m\r\n",
);

#[test]
fn messages_are_decoded_and_unfolded() {
    let m = parse_message("m1", MESSAGE.as_bytes()).unwrap();
    assert_eq!(m.from, "Renée <renee@example.org>");
    assert_eq!(m.to, "alice@example.org, Bob <bob@example.org>");
    assert_eq!(m.date, "Tue, 14 Nov 2023 22:13:20 +0000");
    assert_eq!(m.subject, "Hello 🌍 and more");
    assert!(m.text.starts_with("Hi Alice,\n"), "{:?}", m.text);
    assert!(!m.text.contains('\r'));
    let text = m.to_text();
    assert!(
        text.starts_with("From:    Renée <renee@example.org>\n"),
        "{text}"
    );
    assert!(text.contains("\n\nHi Alice,"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape sequences must be scrubbed"
    );
    assert_eq!(m.to_json()["subject"], "Hello 🌍 and more");
}

#[test]
fn messages_without_text_say_so() {
    let m = parse_message("m2", b"Subject: x\r\nContent-Type: image/png\r\n\r\nAAAA").unwrap();
    assert!(m.to_text().contains("(no text part)") || !m.text.is_empty());
}

#[test]
fn the_messages_table_without_a_terminal() {
    let list = vec![
        serde_json::json!({"id": "u1", "date-unix": 1_700_000_000, "from": "Renée <r@x>",
            "subject": "Hello\nthere", "seen": false, "flagged": true}),
        serde_json::json!({"id": "u2", "from": "", "subject": "x".repeat(80), "seen": true,
            "answered": true}),
    ];
    let table = messages_table(&list, None, false);
    let lines: Vec<&str> = table.lines().collect();
    let date = crate::output::local_time(1_700_000_000)[..16].to_owned();
    assert!(lines[0].starts_with("FLAGS  DATE  "), "{}", lines[0]);
    assert!(
        lines[1].starts_with(&format!("N!     {date}  Renée <r@x>  Hello there  ")),
        "{}",
        lines[1]
    );
    assert!(lines[1].ends_with("u1"), "{}", lines[1]);
    assert!(lines[2].starts_with("  r    -  "), "{}", lines[2]);
    // Without a terminal the subject is cut at its usual cap.
    assert!(
        lines[2].contains(&format!("{}…", "x".repeat(59))),
        "{}",
        lines[2]
    );
    assert!(lines[2].ends_with("u2"), "{}", lines[2]);
}

#[test]
fn the_messages_table_fits_the_terminal() {
    let list: Vec<_> = (0..3)
        .map(|i| {
            serde_json::json!({"id": format!("acct:1:2:{i}"), "date-unix": 1_700_000_000,
                "account": "a_very_long_account_id_example_org",
                "from": "Somebody With A Long Name <somebody@example.org>",
                "subject": "語".repeat(60), "seen": true})
        })
        .collect();
    for width in [60, 80, 120, 200] {
        let table = messages_table(&list, Some(width), false);
        let unified = messages_table(&list, Some(width), true);
        assert!(unified.starts_with("FLAGS  DATE  "), "{unified}");
        // Only where it leaves room for the sender and the subject.
        assert_eq!(
            unified.lines().next().unwrap().contains("  ACCOUNT  "),
            width >= 120,
            "{unified}"
        );
        for line in unified.lines() {
            assert!(crate::output::width(line) <= width, "{width}: {line}");
        }
        for line in table.lines() {
            assert!(
                crate::output::width(line) <= width,
                "{width}: {} columns: {line}",
                crate::output::width(line)
            );
        }
        // The ids are never cut.
        assert!(table.contains("acct:1:2:2"), "{table}");
    }
    // A wide terminal shows more of the subject than a narrow one.
    let narrow = messages_table(&list, Some(80), false);
    let wide = messages_table(&list, Some(200), false);
    assert!(wide.matches('語').count() > narrow.matches('語').count());
}

#[test]
fn the_flags_column_is_like_mutts() {
    let f = |v: serde_json::Value| flags_cell(&v);
    assert_eq!(f(serde_json::json!({"seen": false})), "N  ");
    assert_eq!(f(serde_json::json!({"seen": true})), "   ");
    assert_eq!(
        f(serde_json::json!({"seen": true, "flagged": true, "answered": true})),
        " !r"
    );
    assert_eq!(
        f(serde_json::json!({"seen": false, "deleted": true})),
        "D  "
    );
}

#[test]
fn watch_lines_put_the_id_first() {
    assert_eq!(
        watch_line("m1", "alice", "INBOX", "Bob <b@x>", "Hi"),
        "m1\talice\tINBOX\tBob <b@x>\tHi"
    );
    assert_eq!(
        watch_line("m1", "alice", "a\u{1b}b", "x\ty", "two\nlines"),
        "m1\talice\ta\u{fffd}b\tx y\ttwo lines"
    );
}

#[test]
fn watch_json_has_the_account_and_the_summary() {
    let s = serde_json::json!({"id": "m1", "from": "Bob", "subject": "Hi"});
    let j = watch_json("m1", "alice", "INBOX", Some(&s));
    assert_eq!(j["account"], "alice");
    assert_eq!(
        j["account-path"],
        facteur_dbus::names::account_path("alice")
    );
    assert_eq!(j["folder"], "INBOX");
    assert_eq!(j["from"], "Bob");
    let j = watch_json("m2", "alice", "INBOX", None);
    assert_eq!(j["id"], "m2");
}

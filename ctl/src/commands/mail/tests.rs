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
fn the_messages_table() {
    let list = vec![
        serde_json::json!({"id": "u1", "date": 1_700_000_000, "from": "Renée <r@x>", "subject": "Hello\nthere"}),
        serde_json::json!({"id": "u2", "from": "", "subject": "x".repeat(80)}),
    ];
    let table = messages_table(&list);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "DATE (UTC)        FROM         SUBJECT                                                       ID");
    assert_eq!(lines[1], "2023-11-14 22:13  Renée <r@x>  Hello there                                                   u1");
    assert!(
        lines[2].starts_with("-                            "),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].contains('…') && lines[2].ends_with("u2"),
        "{}",
        lines[2]
    );
}

#[test]
fn watch_lines_put_the_id_first() {
    assert_eq!(watch_line("m1", "alice", "INBOX"), "m1\talice\tINBOX");
    assert_eq!(
        watch_line("m1", "alice", "a\u{1b}b"),
        "m1\talice\ta\u{fffd}b"
    );
}

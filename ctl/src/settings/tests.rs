use super::*;

#[test]
fn values_parse_per_kind() {
    assert_eq!(
        parse_value(KeyKind::Str, " a b "),
        Ok(SettingValue::Str(" a b ".into()))
    );
    assert_eq!(parse_value(KeyKind::U16, "993"), Ok(SettingValue::U16(993)));
    assert_eq!(parse_value(KeyKind::U16, "0"), Ok(SettingValue::U16(0)));
    assert_eq!(
        parse_value(KeyKind::U32, "1440"),
        Ok(SettingValue::U32(1440))
    );
    for (text, want) in [
        ("true", true),
        ("YES", true),
        ("1", true),
        ("false", false),
        ("No", false),
        ("0", false),
    ] {
        assert_eq!(
            parse_value(KeyKind::Bool, text),
            Ok(SettingValue::Bool(want)),
            "{text}"
        );
    }
}

#[test]
fn bad_values_say_why() {
    let e = parse_value(KeyKind::U16, "70000").unwrap_err();
    assert!(e.contains("'70000'") && e.contains("port"), "{e}");
    assert!(parse_value(KeyKind::U16, "-1").is_err());
    assert!(parse_value(KeyKind::U16, "").is_err());
    assert!(parse_value(KeyKind::U32, "4294967296").is_err());
    assert!(parse_value(KeyKind::U32, "1.5").is_err());
    let e = parse_value(KeyKind::Bool, "maybe").unwrap_err();
    assert!(e.contains("'maybe'"), "{e}");
}

#[test]
fn values_carry_the_dbus_type_of_their_key() {
    for key in KEYS.iter().filter(|k| k.kind != KeyKind::Secret) {
        let sample = match key.kind {
            KeyKind::Bool => "yes",
            KeyKind::U16 | KeyKind::U32 => "7",
            _ => "x",
        };
        let (k, v) = parse_assignment(&format!("{}={sample}", key.name)).unwrap();
        assert_eq!(k.name, key.name);
        assert_eq!(
            v.to_value().value_signature().to_string(),
            key.kind.signature(),
            "{}",
            key.name
        );
    }
}

#[test]
fn assignments_build_a_typed_dictionary() {
    let s = parse_assignments(&[
        "incoming-port=1993",
        "use-unified=false",
        "poll-interval-minutes=5",
        "folder-sent=",
        "name=a=b",
    ])
    .unwrap();
    assert_eq!(
        s.names(),
        [
            "incoming-port",
            "use-unified",
            "poll-interval-minutes",
            "folder-sent",
            "name"
        ]
    );
    let dict = s.to_dict();
    assert_eq!(dict["incoming-port"], Value::U16(1993));
    assert_eq!(dict["use-unified"], Value::Bool(false));
    assert_eq!(dict["poll-interval-minutes"], Value::U32(5));
    assert_eq!(dict["folder-sent"], Value::from(""));
    // Split at the first '=' only.
    assert_eq!(dict["name"], Value::from("a=b"));
}

#[test]
fn assignment_errors_name_the_problem() {
    assert_eq!(
        parse_assignment("incoming-port").unwrap_err(),
        SettingError::NotAssignment("incoming-port".into())
    );
    let e = parse_assignment("bogus=1").unwrap_err();
    assert_eq!(e, SettingError::UnknownKey("bogus".into()));
    let line = e.to_string();
    assert!(line.contains("'bogus'"), "{line}");
    assert!(
        line.contains("incoming-port") && line.contains("use-unified"),
        "{line}"
    );
    assert!(!line.contains("incoming-password"), "{line}");
    let e = parse_assignment("incoming-port=abc").unwrap_err();
    assert!(e.to_string().starts_with("incoming-port: 'abc'"), "{e}");
    let e = parse_assignments(&["name=a", "name=b"]).unwrap_err();
    assert_eq!(e, SettingError::Duplicate("name"));
    assert!(!e.to_string().is_empty());
}

#[test]
fn passwords_are_refused_in_argv_without_echo() {
    for arg in [
        "incoming-password=hunter2",
        "smtp-password=hunter2",
        "incoming-password",
    ] {
        let e = parse_assignment(arg).unwrap_err();
        assert!(matches!(e, SettingError::Secret(_)), "{arg}: {e:?}");
        let line = e.describe(Some("alice"));
        assert!(!line.contains("hunter2"), "{line}");
        assert!(line.contains("--password-stdin") || line.contains("--smtp-password-stdin"));
        assert!(line.contains("facteurctl account password alice"), "{line}");
    }
    let line = parse_assignment("smtp-password=x")
        .unwrap_err()
        .describe(Some("alice"));
    assert!(
        line.contains("account set alice --smtp-password-stdin"),
        "{line}"
    );
    assert!(line.contains("account password alice --smtp"), "{line}");
}

#[test]
fn secrets_from_stdin_go_in_as_strings() {
    let mut s = Settings::default();
    s.insert_secret(keys::INCOMING_PASSWORD, "pw".into())
        .unwrap();
    assert_eq!(s.to_dict()[keys::INCOMING_PASSWORD], Value::from("pw"));
    assert!(s.insert_secret("nope", "pw".into()).is_err());
}

//! Unit tests of validation, defaults, ids and the registry files.

use super::*;

/// What the D-Bus edge would make of a value.
struct Value;

impl Value {
    fn from(v: impl Into<Any>) -> Given {
        v.into().0
    }
}

struct Any(Given);

impl From<&str> for Any {
    fn from(v: &str) -> Self {
        Any(Given::Str(v.to_owned()))
    }
}

impl From<bool> for Any {
    fn from(v: bool) -> Self {
        Any(Given::Bool(v))
    }
}

macro_rules! ints {
    ($($t:ty),*) => {$(
        impl From<$t> for Any {
            fn from(v: $t) -> Self {
                Any(Given::Int(i128::from(v)))
            }
        }
    )*};
}
ints!(u8, i16, u16, i32, u32, i64, u64);

fn dict(pairs: &[(&str, Given)]) -> Input {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn alice() -> Input {
    dict(&[
        ("email", Value::from("alice@example.org")),
        ("incoming-host", Value::from("imap.example.org")),
        ("incoming-password", Value::from("s3cret")),
    ])
}

fn refused(d: Input) -> String {
    match apply(Settings::default(), &d, true) {
        Err(Change::Invalid(m)) => m,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn defaults_follow_protocol_and_security() {
    let (s, pw) = apply(Settings::default(), &alice(), true).expect("valid");
    assert_eq!(s.name(), "alice@example.org");
    assert_eq!(s.incoming_port(), 993);
    assert_eq!(s.incoming_login(), "alice@example.org");
    assert_eq!(s.smtp_port(), 465);
    assert_eq!(s.smtp_login(), "alice@example.org");
    assert_eq!(pw.incoming.as_deref().map(String::as_str), Some("s3cret"));
    assert!(s.use_unified);
    assert!(s.leave_on_server && !s.delete_on_server);

    let mut d = alice();
    d.extend(dict(&[
        ("incoming-protocol", Value::from("pop3")),
        ("incoming-security", Value::from("starttls")),
        ("smtp-security", Value::from("starttls")),
        ("incoming-login", Value::from("alice")),
    ]));
    let (s, _) = apply(Settings::default(), &d, true).expect("valid");
    assert_eq!(s.incoming_port(), 110);
    assert_eq!(s.smtp_port(), 587);
    assert_eq!(s.smtp_login(), "alice");
    let d = dict(&[("incoming-security", Value::from("tls"))]);
    let (s, _) = apply(s, &d, false).expect("valid");
    assert_eq!(s.incoming_port(), 995);
}

#[test]
fn any_integer_type_that_fits_is_accepted() {
    for v in [
        Value::from(993i32),
        Value::from(993u16),
        Value::from(993i64),
        Value::from(993u64),
    ] {
        let mut d = alice();
        d.extend(dict(&[
            ("incoming-port", v),
            ("poll-interval-minutes", Value::from(5u8)),
        ]));
        let (s, _) = apply(Settings::default(), &d, true).expect("valid");
        assert_eq!(s.incoming_port(), 993);
        assert_eq!(s.poll_interval_minutes, 5);
    }
}

#[test]
fn every_bad_input_names_its_key() {
    let cases: Vec<(&str, Given)> = vec![
        ("bogus-key", Value::from("x")),
        ("incoming-port", Value::from(-1i32)),
        ("incoming-port", Value::from(65536u32)),
        ("incoming-port", Value::from("993")),
        ("incoming-port", Value::from(0u16)),
        ("incoming-port", Given::Other("d".into())),
        ("incoming-host", Value::from("")),
        ("incoming-host", Value::from("bad host!")),
        ("incoming-host", Value::from("-lead.example.org")),
        ("smtp-host", Value::from("a..b")),
        ("email", Value::from("not-an-address")),
        ("email", Value::from("a@")),
        ("email", Value::from("a b@example.org")),
        ("incoming-security", Value::from("ssl")),
        ("smtp-security", Value::from("TLS")),
        ("incoming-protocol", Value::from("smtp")),
        ("poll-interval-minutes", Value::from(0u32)),
        ("poll-interval-minutes", Value::from(1441u32)),
        ("name", Value::from("n".repeat(257).as_str())),
        ("use-unified", Value::from("yes")),
        ("display-name", Value::from("Evil\r\nBcc: x@y")),
    ];
    for (key, value) in cases {
        let mut d = alice();
        d.extend(dict(&[(key, value)]));
        let message = refused(d);
        assert!(message.starts_with(&format!("{key}: ")), "{key}: {message}");
    }
}

#[test]
fn required_keys_and_passwords_stay_out_of_messages() {
    let m = refused(dict(&[("incoming-host", Value::from("h.example.org"))]));
    assert!(m.starts_with("email: required"), "{m}");
    let m = refused(dict(&[("email", Value::from("a@example.org"))]));
    assert!(m.starts_with("incoming-host: required"), "{m}");
    let mut d = alice();
    d.extend(dict(&[("incoming-password", Value::from("hunter2\nx"))]));
    let m = refused(d);
    assert!(
        m.starts_with("incoming-password:") && !m.contains("hunter2"),
        "{m}"
    );
    let mut d = alice();
    d.extend(dict(&[("smtp-password", Value::from(7u32))]));
    assert!(refused(d).starts_with("smtp-password:"));
}

#[test]
fn good_hosts_and_addresses() {
    for h in [
        "imap.example.org",
        "localhost",
        "127.0.0.1",
        "::1",
        "[::1]",
        "mail.example.org.",
    ] {
        validate::host("h", h).expect(h);
    }
    for e in [
        "a@b",
        "first.last+tag@example.org",
        "\"odd one\"@example.org",
        "élodie@example.fr",
    ] {
        validate::email("e", e).expect(e);
    }
    for h in ["1.2.3", "a_b..c", "x y"] {
        assert!(validate::host("h", h).is_err(), "{h}");
    }
}

#[test]
fn ids_are_readable_and_unique() {
    assert_eq!(
        unique_id("Alice@Example.org", |_| false),
        "alice_example_org"
    );
    assert_eq!(unique_id("a@b", |id| id == "a_b" || id == "a_b_2"), "a_b_3");
    assert!(valid_id("a_b_3"));
    assert!(!valid_id("A"));
    assert!(!valid_id(""));
}

#[test]
fn registry_persists_refuses_duplicates_and_skips_bad_files() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let reg = Registry::load(dir.path())?;
    let (account, _) = reg.create(&alice()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(account.id, "alice_example_org");
    match reg.create(&alice()) {
        Err(Change::AlreadyExists(m)) => assert!(m.contains("alice_example_org"), "{m}"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // The same address on another server is another mailbox.
    let mut other = alice();
    other.extend(dict(&[("incoming-host", Value::from("imap2.example.org"))]));
    let (second, _) = reg.create(&other).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(second.id, "alice_example_org_2");
    // An update that would make it a duplicate is refused and changes nothing.
    let back = dict(&[("incoming-host", Value::from("imap.example.org"))]);
    assert!(matches!(
        reg.update(&second, &back),
        Err(Change::AlreadyExists(_))
    ));
    assert_eq!(second.settings().incoming_host, "imap2.example.org");

    std::fs::write(dir.path().join("accounts/broken.json"), b"{ not json")?;
    let reloaded = Registry::load(dir.path())?;
    assert_eq!(reloaded.len(), 2);
    assert!(dir.path().join("accounts/broken.json").exists());
    assert_eq!(
        reloaded
            .get("alice_example_org_2")
            .map(|a| a.settings().incoming_host),
        Some("imap2.example.org".to_owned())
    );
    // No password in any settings file.
    for entry in std::fs::read_dir(dir.path().join("accounts"))? {
        let text = std::fs::read_to_string(entry?.path())?;
        assert!(!text.contains("s3cret"));
    }
    reloaded.remove("alice_example_org")?;
    assert!(!dir.path().join("accounts/alice_example_org.json").exists());
    Ok(())
}

#[test]
fn a_skipped_file_keeps_its_id_and_its_bytes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("accounts"))?;
    let garbage = dir.path().join("accounts/alice_example_org.json");
    std::fs::write(&garbage, b"\x00garbage, not an account")?;
    let reg = Registry::load(dir.path())?;
    assert!(reg.is_empty());
    assert!(
        reg.knows("alice_example_org"),
        "the skipped id is forgotten"
    );
    let (account, _) = reg.create(&alice()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(account.id, "alice_example_org_2");
    assert_eq!(std::fs::read(&garbage)?, b"\x00garbage, not an account");
    Ok(())
}

#[test]
fn a_reservation_writes_nothing_until_committed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let reg = Registry::load(dir.path())?;
    let (first, _) = reg
        .reserve(&alice())
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(!dir.path().join("accounts/alice_example_org.json").exists());
    assert!(reg.knows(&first.id) && reg.get(&first.id).is_none());
    // The same mailbox cannot be reserved twice.
    assert!(matches!(
        reg.reserve(&alice()),
        Err(Change::AlreadyExists(_))
    ));
    reg.release(first);
    assert!(!reg.knows("alice_example_org"));
    let (again, _) = reg
        .reserve(&alice())
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let account = reg.commit(again).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(account.id, "alice_example_org");
    assert!(dir.path().join("accounts/alice_example_org.json").is_file());
    Ok(())
}

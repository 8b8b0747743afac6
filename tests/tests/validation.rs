//! # Bad input is refused and nothing is stored
//!
//! Every class of bad input from issue 2, point 4, for CreateAccount and for
//! Update (the same checks): the error name, a message that starts with the
//! key it is about, and afterwards the config dir byte for byte as before,
//! the account list and every setting unchanged. One case each through
//! `gdbus` too, since its literal syntax is how people will get types wrong.

use facteur_dbus::names;
use facteur_tests::*;

const INVALID: &str = "org.facteur.Facteur1.Error.InvalidArgument";
const EXISTS: &str = "org.facteur.Facteur1.Error.AlreadyExists";

/// A bad settings case: what is wrong, the key the message must start with
/// (empty when no key is to blame), and the settings.
struct Case {
    what: &'static str,
    key: &'static str,
    settings: Settings,
}

fn case(what: &'static str, key: &'static str, settings: Settings) -> Case {
    Case {
        what,
        key,
        settings,
    }
}

/// Valid settings on loopback (the daemon may try to connect to an account
/// that has a password).
fn valid() -> Settings {
    Settings::minimal("erin@example.org", LOOPBACK)
}

/// Bad values for keys, each applied on top of valid settings.
fn bad_values() -> Vec<(&'static str, &'static str, Settings)> {
    let long_name = "n".repeat(257);
    let s = Settings::new;
    vec![
        ("unknown key", "bogus-key", s().s("bogus-key", "x")),
        ("misspelt key", "incoming_port", s().q("incoming_port", 993)),
        (
            "negative int32 port",
            "incoming-port",
            s().i("incoming-port", -993),
        ),
        (
            "string port",
            "incoming-port",
            s().s("incoming-port", "993"),
        ),
        (
            "uint32 port over 65535",
            "smtp-port",
            s().u("smtp-port", 70000),
        ),
        (
            "string boolean",
            "use-unified",
            s().s("use-unified", "true"),
        ),
        (
            "uint16 poll interval of 0",
            "poll-interval-minutes",
            s().q("poll-interval-minutes", 0),
        ),
        ("boolean address", "email", s().b("email", true)),
        (
            "int32 password",
            "incoming-password",
            s().i("incoming-password", 1234),
        ),
        ("empty host", "incoming-host", s().s("incoming-host", "")),
        (
            "host with a space",
            "incoming-host",
            s().s("incoming-host", "imap example.org"),
        ),
        (
            "host with a slash",
            "incoming-host",
            s().s("incoming-host", "imap.example.org/x"),
        ),
        (
            "host with empty label",
            "incoming-host",
            s().s("incoming-host", "imap..example.org"),
        ),
        (
            "host with a scheme",
            "incoming-host",
            s().s("incoming-host", "imaps://imap.example.org"),
        ),
        (
            "bad smtp host",
            "smtp-host",
            s().s("smtp-host", "smtp example.org"),
        ),
        (
            "incoming port 0",
            "incoming-port",
            s().q("incoming-port", 0),
        ),
        ("smtp port 0", "smtp-port", s().q("smtp-port", 0)),
        (
            "address without @",
            "email",
            s().s("email", "erin.example.org"),
        ),
        ("address without domain", "email", s().s("email", "erin@")),
        (
            "address without local part",
            "email",
            s().s("email", "@example.org"),
        ),
        (
            "address with a space",
            "email",
            s().s("email", "erin smith@example.org"),
        ),
        ("empty address", "email", s().s("email", "")),
        (
            "unknown protocol",
            "incoming-protocol",
            s().s("incoming-protocol", "pop4"),
        ),
        (
            "upper-case protocol",
            "incoming-protocol",
            s().s("incoming-protocol", "IMAP"),
        ),
        (
            "unknown security",
            "incoming-security",
            s().s("incoming-security", "ssl"),
        ),
        (
            "unknown smtp security",
            "smtp-security",
            s().s("smtp-security", "yes"),
        ),
        (
            "poll interval 0",
            "poll-interval-minutes",
            s().u("poll-interval-minutes", 0),
        ),
        (
            "poll interval over a day",
            "poll-interval-minutes",
            s().u("poll-interval-minutes", 1441),
        ),
        (
            "name over 256 characters",
            "name",
            s().s("name", &long_name),
        ),
    ]
}

fn merged(base: &Settings, extra: &Settings) -> Settings {
    let mut out = base.clone();
    for (k, v) in extra.as_dict() {
        out = out.value(k, v.try_clone().expect("a plain value"));
    }
    out
}

fn check(
    failures: &mut Vec<String>,
    what: &str,
    key: &str,
    want: &str,
    result: Result<impl std::fmt::Debug, CallError>,
) {
    match result {
        Ok(v) => failures.push(format!("{what}: accepted ({v:?}), want {want}")),
        Err(e) if e.name != want => failures.push(format!("{what}: {e}, want {want}")),
        Err(e) if !key.is_empty() && !e.message.starts_with(key) => failures.push(format!(
            "{what}: the message does not start with the key `{key}`: {:?}",
            e.message
        )),
        Err(e) if e.message.contains("hunter2") => failures.push(format!(
            "{what}: the message echoes a password: {:?}",
            e.message
        )),
        Err(_) => {}
    }
}

#[test]
fn create_refuses_every_bad_input_and_stores_nothing() {
    let bus = Bus::start();
    let d = Facteurd::start(&bus);
    // One valid account first, so that "nothing stored" is checked against
    // a non-empty store and duplicates can be tried.
    let existing = bus
        .create_account(
            &valid()
                .q("incoming-port", closed_port())
                .s("incoming-password", "hunter2"),
        )
        .expect("create a valid account");
    let before_files = snapshot(&d.config_dir());
    let before_props = bus.account(&existing);

    let mut cases: Vec<Case> = bad_values()
        .into_iter()
        .map(|(what, key, extra)| {
            case(
                what,
                key,
                merged(
                    &Settings::minimal("frank@example.org", "imap.example.org"),
                    &extra,
                ),
            )
        })
        .collect();
    cases.push(case("missing email", "email", valid().without("email")));
    cases.push(case(
        "missing incoming host",
        "incoming-host",
        valid().without("incoming-host"),
    ));
    cases.push(case("no settings at all", "", Settings::new()));

    let mut failures = Vec::new();
    for c in &cases {
        let r = bus.create_account(&c.settings);
        check(&mut failures, c.what, c.key, INVALID, r);
    }

    // Duplicates: same address, incoming host and effective login.
    let dups = [
        ("exact duplicate", valid()),
        (
            "duplicate with the default login spelt out",
            valid().s("incoming-login", "erin@example.org"),
        ),
        (
            "duplicate with other non-identity settings",
            valid().s("name", "Other name").q("incoming-port", 1993),
        ),
    ];
    for (what, s) in dups {
        let r = bus.create_account(&s);
        check(&mut failures, what, "", EXISTS, r);
    }

    assert!(
        failures.is_empty(),
        "{} of {} bad inputs were not refused as they should be:\n{}",
        failures.len(),
        cases.len() + 3,
        failures.join("\n")
    );
    assert_eq!(bus.list_accounts(), vec![existing.clone()]);
    assert_eq!(
        before_files.keys().collect::<Vec<_>>(),
        snapshot(&d.config_dir()).keys().collect::<Vec<_>>(),
        "a refused CreateAccount left files behind"
    );
    assert_eq!(before_files, snapshot(&d.config_dir()), "files changed");
    assert_eq!(
        before_props.settings_only(),
        bus.account(&existing).settings_only()
    );
}

#[test]
fn boundaries_are_accepted() {
    let bus = Bus::start();
    let _d = Facteurd::start(&bus);
    let ok = [
        (
            "poll interval 1",
            Settings::new().u("poll-interval-minutes", 1),
        ),
        (
            "poll interval 1440",
            Settings::new().u("poll-interval-minutes", 1440),
        ),
        (
            "name of 256 characters",
            Settings::new().s("name", &"n".repeat(256)),
        ),
        ("port 65535", Settings::new().q("incoming-port", 65535)),
        (
            "IP address host",
            Settings::new().s("incoming-host", "127.0.0.1"),
        ),
        (
            "single-label host",
            Settings::new().s("incoming-host", "localhost"),
        ),
    ];
    let mut failures = Vec::new();
    for (i, (what, extra)) in ok.into_iter().enumerate() {
        let base = Settings::minimal(&format!("ok{i}@example.org"), "imap.example.org");
        if let Err(e) = bus.create_account(&merged(&base, &extra)) {
            failures.push(format!("{what}: refused: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn update_refuses_every_bad_input_and_changes_nothing() {
    let bus = Bus::start();
    let d = Facteurd::start(&bus);
    let path = bus
        .create_account(&valid().s("name", "Erin"))
        .expect("create a valid account");
    let other = bus
        .create_account(&Settings::minimal("erin@example.org", "imap.other.example"))
        .expect("create a second account");
    let before_files = snapshot(&d.config_dir());
    let before = bus.account(&path);
    let signals = bus.signals();

    let mut cases: Vec<Case> = bad_values()
        .into_iter()
        .map(|(what, key, extra)| case(what, key, extra))
        .collect();
    // A bad key next to a good one: the good one is not applied either.
    cases.push(case(
        "good name with a bad port",
        "incoming-port",
        Settings::new().s("name", "Changed").q("incoming-port", 0),
    ));

    let mut failures = Vec::new();
    for c in &cases {
        let r = bus.update_account(&path, &c.settings);
        check(&mut failures, c.what, c.key, INVALID, r);
    }
    // Turning the second account into a copy of the first.
    let r = bus.update_account(&other, &Settings::new().s("incoming-host", LOOPBACK));
    check(&mut failures, "update into a duplicate", "", EXISTS, r);

    assert!(
        failures.is_empty(),
        "{} bad updates were not refused as they should be:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        before.settings_only(),
        bus.account(&path).settings_only(),
        "a refused Update changed settings"
    );
    assert_eq!(
        before_files,
        snapshot(&d.config_dir()),
        "a refused Update wrote files"
    );
    assert!(
        signals.changed_settings(&path).is_empty(),
        "a refused Update announced changes: {:?}",
        signals.changed_settings(&path)
    );
    // Update on an account that does not exist.
    let r = bus.update_account(
        &names::account_path("nobody_example_org"),
        &Settings::new().s("name", "x"),
    );
    assert!(r.is_err(), "Update on a missing account succeeded");
}

#[test]
fn gdbus_type_mistakes_are_named() {
    let bus = Bus::start();
    let d = Facteurd::start(&bus);
    let before = snapshot(&d.config_dir());
    let cases = [
        (
            "incoming-port",
            "{'email': <'gina@example.org'>, 'incoming-host': <'imap.example.org'>, 'incoming-port': <-993>}",
        ),
        (
            "incoming-port",
            "{'email': <'gina@example.org'>, 'incoming-host': <'imap.example.org'>, 'incoming-port': <'993'>}",
        ),
        (
            "incoming-port",
            "{'email': <'gina@example.org'>, 'incoming-host': <'imap.example.org'>, 'incoming-port': <uint16 0>}",
        ),
        (
            "bogus",
            "{'email': <'gina@example.org'>, 'incoming-host': <'imap.example.org'>, 'bogus': <'x'>}",
        ),
        ("incoming-host", "{'email': <'gina@example.org'>}"),
    ];
    for (key, dict) in cases {
        let out = bus.gdbus_call(
            names::ROOT_PATH,
            "org.facteur.Facteur1.Manager.CreateAccount",
            &[dict],
        );
        assert!(!out.status.success(), "gdbus accepted {dict}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("{INVALID}: {key}")),
            "gdbus {dict}: expected {INVALID}: {key}…, got: {err}"
        );
    }
    assert_eq!(before, snapshot(&d.config_dir()));
    assert!(bus.list_accounts().is_empty());
}

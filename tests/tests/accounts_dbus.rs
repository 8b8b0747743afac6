//! # Accounts over D-Bus
//!
//! The account life cycle driven by plain `gdbus call` (an outside client
//! that knows nothing of facteur's crates) and observed through the
//! harness's own connection: CreateAccount, ListAccounts, GetAll,
//! GetManagedObjects, Update with PropertiesChanged, Delete with
//! InterfacesRemoved, the defaults DESIGN.md promises, and account ids.

use facteur_dbus::names;
use facteur_tests::*;

const ACCOUNT_IFACE: &str = "org.facteur.Facteur1.Account";

fn gdbus_ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed with {}: {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn gdbus_create_list_show_update_delete() {
    let bus = Bus::start();
    let d = Facteurd::start(&bus);
    let signals = bus.signals();

    // Create.
    let out = bus.gdbus_call(
        names::ROOT_PATH,
        "org.facteur.Facteur1.Manager.CreateAccount",
        &[
            "{'email': <'alice@example.org'>, 'incoming-host': <'imap.example.org'>, \
            'name': <'Alice at work'>, 'incoming-port': <uint16 1993>}",
        ],
    );
    let created = gdbus_ok(&out, "CreateAccount");
    let path = names::account_path("alice_example_org");
    assert_eq!(created.trim(), format!("(objectpath '{path}',)"));

    // InterfacesAdded from the ObjectManager at the root.
    let added = signals.wait_for("InterfacesAdded", |s| {
        s.interfaces_added().is_some_and(|(p, _)| p == path)
    });
    assert_eq!(added.path, names::ROOT_PATH);
    let (_, ifaces) = added.interfaces_added().expect("checked");
    assert!(ifaces.iter().any(|i| i == ACCOUNT_IFACE), "{ifaces:?}");

    // List.
    let listed = gdbus_ok(
        &bus.gdbus_call(
            names::ROOT_PATH,
            "org.facteur.Facteur1.Manager.ListAccounts",
            &[],
        ),
        "ListAccounts",
    );
    assert_eq!(listed.trim(), format!("([objectpath '{path}'],)"));

    // GetManagedObjects lists the account with its properties.
    let managed = gdbus_ok(
        &bus.gdbus_call(
            names::ROOT_PATH,
            "org.freedesktop.DBus.ObjectManager.GetManagedObjects",
            &[],
        ),
        "GetManagedObjects",
    );
    assert!(managed.contains(&format!("'{path}'")), "{managed}");
    assert!(
        managed.contains("'EmailAddress': <'alice@example.org'>"),
        "{managed}"
    );

    // Show: every property, with the values given and the defaults.
    let all = gdbus_ok(
        &bus.gdbus_call(
            &path,
            "org.freedesktop.DBus.Properties.GetAll",
            &[ACCOUNT_IFACE],
        ),
        "GetAll",
    );
    for expected in [
        "'Id': <'alice_example_org'>",
        "'Name': <'Alice at work'>",
        "'EmailAddress': <'alice@example.org'>",
        "'IncomingHost': <'imap.example.org'>",
        "'IncomingPort': <uint16 1993>",
        "'IncomingProtocol': <'imap'>",
        "'IncomingSecurity': <'tls'>",
        "'IncomingLogin': <'alice@example.org'>",
        "'UseUnified': <true>",
        "'PollIntervalMinutes': <uint32 15>",
        "'LeaveOnServer': <true>",
        "'DeleteOnServer': <false>",
        "'AcceptInvalidCerts': <false>",
    ] {
        assert!(all.contains(expected), "GetAll lacks {expected}:\n{all}");
    }
    let one = gdbus_ok(
        &bus.gdbus_call(
            &path,
            "org.freedesktop.DBus.Properties.Get",
            &[ACCOUNT_IFACE, "IncomingHost"],
        ),
        "Get IncomingHost",
    );
    assert_eq!(one.trim(), "(<'imap.example.org'>,)");

    // Update, with PropertiesChanged for each change.
    gdbus_ok(
        &bus.gdbus_call(
            &path,
            "org.facteur.Facteur1.Account.Update",
            &[
                "{'name': <'Alice, private'>, 'incoming-port': <uint16 993>, \
                'poll-interval-minutes': <uint32 5>, 'use-unified': <false>}",
            ],
        ),
        "Update",
    );
    let name = signals
        .wait_property_changed(&path, "Name")
        .expect("PropertiesChanged carries the new Name");
    assert_eq!(name.downcast_ref::<&str>().ok(), Some("Alice, private"));
    for prop in ["IncomingPort", "PollIntervalMinutes", "UseUnified"] {
        signals.wait_property_changed(&path, prop);
    }
    let props = bus.account(&path);
    assert_eq!(props.str("Name"), "Alice, private");
    assert_eq!(props.u16("IncomingPort"), 993);
    assert_eq!(props.u32("PollIntervalMinutes"), 5);
    assert!(!props.bool("UseUnified"));
    // Unchanged settings are not announced as changed.
    let changed = signals.changed_properties(&path);
    assert!(
        !changed
            .iter()
            .any(|p| p == "IncomingHost" || p == "EmailAddress"),
        "unchanged properties were announced: {changed:?}"
    );

    // Delete: InterfacesRemoved, the object is gone, the file too.
    assert!(d.accounts_dir().join("alice_example_org.json").is_file());
    gdbus_ok(
        &bus.gdbus_call(&path, "org.facteur.Facteur1.Account.Delete", &[]),
        "Delete",
    );
    let removed = signals.wait_for("InterfacesRemoved", |s| {
        s.interfaces_removed().is_some_and(|(p, _)| p == path)
    });
    let (_, ifaces) = removed.interfaces_removed().expect("checked");
    assert!(ifaces.iter().any(|i| i == ACCOUNT_IFACE), "{ifaces:?}");
    assert!(bus.list_accounts().is_empty());
    let gone = bus.gdbus_call(
        &path,
        "org.freedesktop.DBus.Properties.GetAll",
        &[ACCOUNT_IFACE],
    );
    assert!(!gone.status.success(), "the deleted object still answers");
    let err = bus
        .properties(&path, ACCOUNT_IFACE)
        .expect_err("GetAll on a deleted account fails");
    assert!(
        err.name.contains("UnknownObject") || err.name.contains("UnknownInterface"),
        "unexpected error for a deleted object: {err}"
    );
    assert!(
        !d.accounts_dir().join("alice_example_org.json").exists(),
        "the settings file survived Delete"
    );
    let managed = gdbus_ok(
        &bus.gdbus_call(
            names::ROOT_PATH,
            "org.freedesktop.DBus.ObjectManager.GetManagedObjects",
            &[],
        ),
        "GetManagedObjects",
    );
    assert!(!managed.contains("alice"), "{managed}");
}

#[test]
fn defaults_follow_protocol_and_security() {
    let bus = Bus::start();
    let _d = Facteurd::start(&bus);
    // (protocol, incoming security, smtp security, incoming port, smtp port)
    let cases = [
        ("imap", "tls", "tls", 993, 465),
        ("imap", "starttls", "starttls", 143, 587),
        ("pop3", "tls", "tls", 995, 465),
        ("pop3", "starttls", "starttls", 110, 587),
    ];
    let mut failures = Vec::new();
    for (i, (proto, sec, smtp_sec, port, smtp_port)) in cases.into_iter().enumerate() {
        let email = format!("user{i}@example.org");
        let path = bus
            .create_account(
                &Settings::minimal(&email, "mail.example.org")
                    .s("incoming-protocol", proto)
                    .s("incoming-security", sec)
                    .s("smtp-host", "smtp.example.org")
                    .s("smtp-security", smtp_sec)
                    .s("incoming-login", &format!("login{i}")),
            )
            .expect("create an account");
        let p = bus.account(&path);
        let got = (
            p.str("IncomingProtocol"),
            p.u16("IncomingPort"),
            p.u16("SmtpPort"),
            p.str("IncomingLogin"),
            p.str("SmtpLogin"),
            p.str("Name"),
        );
        let want = (
            proto.to_owned(),
            port,
            smtp_port,
            format!("login{i}"),
            format!("login{i}"),
            email.clone(),
        );
        if got != want {
            failures.push(format!(
                "{proto}/{sec}/{smtp_sec}: got {got:?}, want {want:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "wrong defaults:\n{}",
        failures.join("\n")
    );
}

#[test]
fn minimal_account_gets_documented_defaults() {
    let bus = Bus::start();
    let _d = Facteurd::start(&bus);
    let path = bus
        .create_account(&Settings::minimal(
            "Bob.Smith+news@Example.ORG",
            "imap.example.org",
        ))
        .expect("create an account");
    assert_eq!(path, names::account_path("bob_smith_news_example_org"));
    let p = bus.account(&path);
    assert_eq!(p.str("Id"), "bob_smith_news_example_org");
    assert_eq!(p.str("IncomingProtocol"), "imap");
    assert_eq!(p.str("IncomingSecurity"), "tls");
    assert_eq!(p.u16("IncomingPort"), 993);
    assert_eq!(p.str("IncomingLogin"), p.str("EmailAddress"));
    assert_eq!(p.str("SmtpLogin"), p.str("IncomingLogin"));
    assert_eq!(p.str("Name"), p.str("EmailAddress"));
    assert!(p.bool("UseUnified"));
    assert_eq!(p.u32("PollIntervalMinutes"), 15);
    assert!(p.bool("LeaveOnServer"));
    assert!(!p.bool("DeleteOnServer"));
    assert!(!p.bool("AcceptInvalidCerts"));
    assert_eq!(p.u64("LastSync"), 0);
    assert_eq!(p.u32("MessageCount"), 0);
    assert_eq!(p.u32("UnreadCount"), 0);
    // Every property DESIGN.md lists is there.
    for name in names::ACCOUNT_PROPERTIES {
        p.get(name);
    }
    // No password-like property, whatever its name.
    assert!(
        !p.names()
            .iter()
            .any(|n| n.to_lowercase().contains("password")),
        "{:?}",
        p.names()
    );
}

#[test]
fn same_address_elsewhere_gets_a_numbered_id() {
    let bus = Bus::start();
    let mut d = Facteurd::start(&bus);
    let first = bus
        .create_account(&Settings::minimal("carol@example.org", "imap.one.example"))
        .expect("create the first account");
    let second = bus
        .create_account(&Settings::minimal("carol@example.org", "imap.two.example"))
        .expect("the same address on another server is a different account");
    let third = bus
        .create_account(
            &Settings::minimal("carol@example.org", "imap.one.example")
                .s("incoming-login", "carol2"),
        )
        .expect("the same address and server with another login is a different account");
    assert_eq!(first, names::account_path("carol_example_org"));
    assert_eq!(second, names::account_path("carol_example_org_2"));
    assert_eq!(third, names::account_path("carol_example_org_3"));
    // Ids are stable across restarts, and a deleted id is not reused by a
    // restart reshuffling the others.
    bus.delete_account(&first).expect("delete the first");
    d.restart();
    assert_eq!(bus.list_accounts(), vec![second.clone(), third.clone()]);
    assert_eq!(bus.account(&second).str("IncomingHost"), "imap.two.example");
}

#[test]
fn object_manager_lists_only_accounts_with_interfaces() {
    let bus = Bus::start();
    let _d = Facteurd::start(&bus);
    let path = bus
        .create_account(&Settings::minimal("dave@example.org", "imap.example.org"))
        .expect("create an account");
    let reply = bus
        .call_facteur(
            names::ROOT_PATH,
            "org.freedesktop.DBus.ObjectManager",
            "GetManagedObjects",
            &(),
        )
        .expect("GetManagedObjects answers");
    type Managed = std::collections::HashMap<
        zbus::zvariant::OwnedObjectPath,
        std::collections::HashMap<
            String,
            std::collections::HashMap<String, zbus::zvariant::OwnedValue>,
        >,
    >;
    let managed: Managed = reply.body().deserialize().expect("a{oa{sa{sv}}}");
    let account = managed
        .iter()
        .find(|(p, _)| p.as_str() == path)
        .map(|(_, ifaces)| ifaces)
        .expect("the account is a managed object");
    let props = account
        .get(ACCOUNT_IFACE)
        .expect("with the Account interface");
    assert!(props.contains_key("EmailAddress"));
    // zbus 5 also lists intermediate nodes (…/accounts) with no interface;
    // a client must ignore those. Nothing else may appear.
    for (p, ifaces) in &managed {
        assert!(
            p.as_str() == path || (ifaces.is_empty() && p.as_str() == names::ACCOUNTS_PATH),
            "unexpected managed object {p:?} with {:?}",
            ifaces.keys().collect::<Vec<_>>()
        );
    }
}

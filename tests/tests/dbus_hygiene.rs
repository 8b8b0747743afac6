//! # D-Bus hygiene: what generic tools see
//!
//! facteurd as `gdbus`, `busctl` and D-Feet-like tools see it, without any
//! facteur crate on the client side: `Properties.Set` on a read-only
//! property answers `PropertyReadOnly` (an unknown one `UnknownProperty`);
//! parent nodes introspect as a list of child names, not whole subtrees;
//! `busctl tree` and `busctl introspect` run without a warning; the
//! ObjectManager lists account objects only; and any integer type whose
//! value fits a settings key is accepted (gdbus writes a bare `993` as
//! int32), while strings and values out of range are still refused.

use std::process::{Command, Output};

use facteur_dbus::names;
use facteur_tests::xml::{find_interface, parse, Element};
use facteur_tests::*;

const READ_ONLY: &str = "org.freedesktop.DBus.Error.PropertyReadOnly";
const UNKNOWN_PROPERTY: &str = "org.freedesktop.DBus.Error.UnknownProperty";
const INVALID: &str = "org.facteur.Facteur1.Error.InvalidArgument";

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed with {}: {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `Properties.Set(iface, name, value)` through gdbus; its stderr.
fn set_property(bus: &Bus, path: &str, iface: &str, name: &str, value: &str) -> String {
    let out = bus.gdbus_call(
        path,
        "org.freedesktop.DBus.Properties.Set",
        &[iface, name, value],
    );
    assert!(
        !out.status.success(),
        "Set {iface}.{name} succeeded: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

#[test]
fn set_answers_property_read_only_or_unknown_property() {
    let bus = Bus::start();
    let _d = Facteurd::start(&bus);
    let path = bus
        .create_account(&Settings::unreachable("ro@example.org"))
        .expect("create an account");
    let cases = [
        (
            names::ROOT_PATH,
            names::MANAGER_INTERFACE,
            "Version",
            "<'9.9'>",
        ),
        (
            names::ROOT_PATH,
            names::MANAGER_INTERFACE,
            "SecretStore",
            "<'file'>",
        ),
        (path.as_str(), names::ACCOUNT_INTERFACE, "State", "<'idle'>"),
        (
            path.as_str(),
            names::ACCOUNT_INTERFACE,
            "Name",
            "<'renamed'>",
        ),
        (
            path.as_str(),
            names::ACCOUNT_INTERFACE,
            "IncomingPort",
            "<uint16 1>",
        ),
        (
            path.as_str(),
            names::ACCOUNT_INTERFACE,
            "Progress",
            "<(uint32 1, uint32 2)>",
        ),
    ];
    for (path, iface, name, value) in cases {
        let err = set_property(&bus, path, iface, name, value);
        assert!(
            err.contains(READ_ONLY),
            "Set {iface}.{name}: expected {READ_ONLY}, got: {err}"
        );
    }
    // Every property is read-only, not only those tried above.
    for name in names::ACCOUNT_PROPERTIES {
        let err = set_property(&bus, &path, names::ACCOUNT_INTERFACE, name, "<'x'>");
        assert!(err.contains(READ_ONLY), "Set Account.{name}: {err}");
    }
    for (path, iface) in [
        (names::ROOT_PATH, names::MANAGER_INTERFACE),
        (path.as_str(), names::ACCOUNT_INTERFACE),
    ] {
        let err = set_property(&bus, path, iface, "MadeUp", "<'x'>");
        assert!(
            err.contains(UNKNOWN_PROPERTY),
            "Set {iface}.MadeUp: expected {UNKNOWN_PROPERTY}, got: {err}"
        );
    }
    // Nothing was changed by the refused calls.
    let props = bus.account(&path);
    assert_eq!(props.str("Name"), "ro@example.org");
    assert_ne!(props.u16("IncomingPort"), 1);
    let version = bus.manager_property("Version");
    assert_eq!(
        version.downcast_ref::<&str>().ok(),
        Some(env!("CARGO_PKG_VERSION"))
    );
}

/// The `<node>` children of an introspection document.
fn child_nodes(doc: &Element) -> Vec<&Element> {
    doc.children_named("node").collect()
}

#[test]
fn parent_nodes_list_their_children_by_name_only() {
    let bus = Bus::start();
    let _d = Facteurd::start(&bus);
    let a = bus
        .create_account(&Settings::unreachable("one@example.org"))
        .expect("create the first account");
    let b = bus
        .create_account(&Settings::unreachable("two@example.org"))
        .expect("create the second account");
    let expected: [(&str, Vec<&str>); 5] = [
        ("/", vec!["org"]),
        ("/org", vec!["facteur"]),
        ("/org/facteur", vec!["Facteur1"]),
        (names::ROOT_PATH, vec!["accounts"]),
        (
            names::ACCOUNTS_PATH,
            vec!["one_example_org", "two_example_org"],
        ),
    ];
    for (path, children) in expected {
        let xml = bus.introspect(path);
        let doc = parse(&xml).unwrap_or_else(|e| panic!("introspection of {path}: {e}\n{xml}"));
        let nodes = child_nodes(&doc);
        let mut got: Vec<&str> = nodes.iter().filter_map(|n| n.attr("name")).collect();
        got.sort_unstable();
        assert_eq!(got, children, "children of {path}:\n{xml}");
        for n in nodes {
            assert!(
                n.children.is_empty(),
                "{path} lists child {:?} with content, not by name only:\n{xml}",
                n.attr("name")
            );
        }
        // The standard interfaces are there; the helper that holds a parent
        // node in the tree is not listed.
        for iface in [
            "org.freedesktop.DBus.Introspectable",
            "org.freedesktop.DBus.Properties",
            "org.freedesktop.DBus.Peer",
        ] {
            assert!(
                find_interface(&doc, iface).is_some(),
                "{path} lacks {iface}"
            );
        }
        assert!(
            !xml.contains("Internal"),
            "{path} lists an internal interface:\n{xml}"
        );
    }
    // The root object serves the Manager and the ObjectManager; parents
    // above it serve neither.
    let root = parse(&bus.introspect(names::ROOT_PATH)).expect("root parses");
    assert!(find_interface(&root, names::MANAGER_INTERFACE).is_some());
    assert!(find_interface(&root, "org.freedesktop.DBus.ObjectManager").is_some());
    let top = parse(&bus.introspect("/")).expect("/ parses");
    assert!(find_interface(&top, names::MANAGER_INTERFACE).is_none());
    // An account object is a leaf with its interface.
    let leaf = parse(&bus.introspect(&a)).expect("account parses");
    assert!(find_interface(&leaf, names::ACCOUNT_INTERFACE).is_some());
    assert!(child_nodes(&leaf).is_empty());

    // GetManagedObjects lists the account objects, not the nodes between.
    let managed = ok(
        &bus.gdbus_call(
            names::ROOT_PATH,
            "org.freedesktop.DBus.ObjectManager.GetManagedObjects",
            &[],
        ),
        "GetManagedObjects",
    );
    assert!(managed.contains(&format!("'{a}'")), "{managed}");
    assert!(managed.contains(&format!("'{b}'")), "{managed}");
    assert!(
        !managed.contains(&format!("'{}'", names::ACCOUNTS_PATH)),
        "the accounts node is listed as an object: {managed}"
    );

    // After a delete the parent lists the one left, and still answers.
    bus.delete_account(&a).expect("delete the first account");
    let doc = parse(&bus.introspect(names::ACCOUNTS_PATH)).expect("accounts parses");
    let got: Vec<&str> = child_nodes(&doc)
        .iter()
        .filter_map(|n| n.attr("name"))
        .collect();
    assert_eq!(got, ["two_example_org"]);
    bus.delete_account(&b).expect("delete the second account");
    let doc = parse(&bus.introspect(names::ACCOUNTS_PATH)).expect("accounts parses");
    assert!(child_nodes(&doc).is_empty());
    let doc = parse(&bus.introspect(names::ROOT_PATH)).expect("root parses");
    let got: Vec<&str> = child_nodes(&doc)
        .iter()
        .filter_map(|n| n.attr("name"))
        .collect();
    assert_eq!(got, ["accounts"]);
}

/// busctl, if installed.
fn busctl() -> Option<std::path::PathBuf> {
    let dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    dirs.into_iter()
        .chain(["/usr/bin".into(), "/bin".into()])
        .map(|d| d.join("busctl"))
        .find(|p| p.is_file())
}

#[test]
fn busctl_tree_and_introspect_print_no_warning() {
    let Some(busctl) = busctl() else {
        eprintln!("SKIPPED: busctl is not installed (Debian package `systemd`)");
        return;
    };
    let bus = Bus::start();
    let _d = Facteurd::start(&bus);
    let path = bus
        .create_account(&Settings::unreachable("tree@example.org"))
        .expect("create an account");
    let address = format!("--address={}", bus.address());
    let run_busctl = |args: &[&str]| -> Output {
        let mut cmd = Command::new(&busctl);
        cmd.arg(&address).arg("--no-pager").args(args);
        run(&mut cmd, None)
    };
    let tree = run_busctl(&["tree", names::BUS_NAME]);
    let out = ok(&tree, "busctl tree");
    assert_eq!(text(&tree.stderr), "", "busctl tree warned");
    for p in [
        "/org/facteur",
        names::ROOT_PATH,
        names::ACCOUNTS_PATH,
        &path,
    ] {
        assert!(out.contains(p), "busctl tree lacks {p}:\n{out}");
    }
    for p in [
        "/",
        "/org",
        "/org/facteur",
        names::ROOT_PATH,
        names::ACCOUNTS_PATH,
        &path,
    ] {
        let r = run_busctl(&["introspect", names::BUS_NAME, p]);
        let out = ok(&r, &format!("busctl introspect {p}"));
        assert_eq!(text(&r.stderr), "", "busctl introspect {p} warned");
        assert!(
            out.contains("org.freedesktop.DBus.Properties"),
            "busctl introspect {p}:\n{out}"
        );
    }
    let r = run_busctl(&["introspect", names::BUS_NAME, &path]);
    let out = text(&r.stdout);
    assert!(out.contains(".AttentionNeeded"), "{out}");
    assert!(out.contains(".Progress"), "{out}");
}

/// CreateAccount through gdbus with a raw dictionary literal.
fn gdbus_create(bus: &Bus, dict: &str) -> Output {
    bus.gdbus_call(
        names::ROOT_PATH,
        "org.facteur.Facteur1.Manager.CreateAccount",
        &[dict],
    )
}

fn gdbus_update(bus: &Bus, path: &str, dict: &str) -> Output {
    bus.gdbus_call(path, "org.facteur.Facteur1.Account.Update", &[dict])
}

fn refused(out: &Output, key: &str) {
    assert!(!out.status.success(), "accepted: {}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{INVALID}: {key}")),
        "expected {INVALID}: {key}…, got: {err}"
    );
}

#[test]
fn any_integer_type_that_fits_is_accepted() {
    let bus = Bus::start();
    let _d = Facteurd::start(&bus);
    // gdbus writes a bare number as int32. No password: nothing connects.
    let out = gdbus_create(
        &bus,
        "{'email': <'int@example.org'>, 'incoming-host': <'imap.example.invalid'>, \
         'incoming-port': <993>, 'poll-interval-minutes': <int64 30>, \
         'smtp-port': <byte 25>}",
    );
    let created = ok(&out, "CreateAccount with <993>");
    let path = names::account_path("int_example_org");
    assert_eq!(created.trim(), format!("(objectpath '{path}',)"));
    let p = bus.account(&path);
    assert_eq!(p.u16("IncomingPort"), 993);
    assert_eq!(p.u32("PollIntervalMinutes"), 30);
    assert_eq!(p.u16("SmtpPort"), 25);

    ok(
        &gdbus_update(&bus, &path, "{'incoming-port': <int32 995>}"),
        "Update with <int32 995>",
    );
    assert_eq!(bus.account(&path).u16("IncomingPort"), 995);
    ok(
        &gdbus_update(
            &bus,
            &path,
            "{'smtp-port': <uint64 587>, 'poll-interval-minutes': <int16 5>}",
        ),
        "Update with uint64 and int16",
    );
    let p = bus.account(&path);
    assert_eq!(p.u16("SmtpPort"), 587);
    assert_eq!(p.u32("PollIntervalMinutes"), 5);

    // Strings and values out of range are still refused, naming the key,
    // and change nothing.
    refused(
        &gdbus_update(&bus, &path, "{'incoming-port': <'993'>}"),
        "incoming-port",
    );
    refused(
        &gdbus_update(&bus, &path, "{'incoming-port': <70000>}"),
        "incoming-port",
    );
    refused(
        &gdbus_update(&bus, &path, "{'incoming-port': <int32 -1>}"),
        "incoming-port",
    );
    refused(
        &gdbus_update(&bus, &path, "{'poll-interval-minutes': <int64 5000000000>}"),
        "poll-interval-minutes",
    );
    refused(
        &gdbus_create(
            &bus,
            "{'email': <'str@example.org'>, 'incoming-host': <'imap.example.org'>, \
             'incoming-port': <'993'>}",
        ),
        "incoming-port",
    );
    refused(
        &gdbus_create(
            &bus,
            "{'email': <'big@example.org'>, 'incoming-host': <'imap.example.org'>, \
             'incoming-port': <uint32 65536>}",
        ),
        "incoming-port",
    );
    let p = bus.account(&path);
    assert_eq!(p.u16("IncomingPort"), 995);
    assert_eq!(p.u32("PollIntervalMinutes"), 5);
    assert_eq!(bus.list_accounts(), [path]);
}

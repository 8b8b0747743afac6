//! # The checked-in interface XML is what the daemon serves
//!
//! `dbus/org.facteur.Facteur1.xml` is the contract outside clients read.
//! Compared, after normalisation (see `facteur_tests::xml`), with the
//! `Introspect()` of the running daemon's root object (Manager) and of an
//! account object (Account): every method with its arguments' names, types
//! and directions, every signal, every property with type, access and
//! change signalling. Also checked against DESIGN.md's member list, so the
//! file cannot drift from the design either.

use std::collections::BTreeSet;
use std::fs;

use facteur_dbus::names;
use facteur_tests::xml::{find_interface, interface_facts, parse};
use facteur_tests::*;

fn checked_in() -> String {
    let path = repo_root().join("dbus/org.facteur.Facteur1.xml");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn diff(what: &str, file: &BTreeSet<String>, served: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for f in file.difference(served) {
        out.push(format!("{what}: in the XML file but not served: {f}"));
    }
    for f in served.difference(file) {
        out.push(format!("{what}: served but not in the XML file: {f}"));
    }
    out
}

#[test]
fn the_xml_file_matches_what_facteurd_introspects() {
    let file = parse(&checked_in()).expect("dbus/org.facteur.Facteur1.xml parses");
    let bus = Bus::start();
    let _d = Facteurd::start(&bus);
    let path = bus
        .create_account(&Settings::minimal("xml@example.org", "imap.example.org"))
        .expect("create an account to introspect");

    let root = parse(&bus.introspect(names::ROOT_PATH)).expect("the root introspection parses");
    let account = parse(&bus.introspect(&path)).expect("the account introspection parses");

    let mut problems = Vec::new();
    for (iface, served_doc) in [
        (names::MANAGER_INTERFACE, &root),
        (names::ACCOUNT_INTERFACE, &account),
    ] {
        let in_file = find_interface(&file, iface)
            .unwrap_or_else(|| panic!("{iface} is not in dbus/org.facteur.Facteur1.xml"));
        let served = find_interface(served_doc, iface)
            .unwrap_or_else(|| panic!("the daemon does not serve {iface}"));
        let served = interface_facts(served);
        assert!(
            served.len() > 3,
            "{iface} serves almost nothing: {served:?}"
        );
        problems.extend(diff(iface, &interface_facts(in_file), &served));
    }
    // The file describes exactly these two interfaces.
    let mut in_file: Vec<&str> = facteur_tests::xml::interfaces(&file)
        .iter()
        .filter_map(|i| i.attr("name"))
        .collect();
    in_file.sort_unstable();
    assert_eq!(
        in_file,
        vec![names::ACCOUNT_INTERFACE, names::MANAGER_INTERFACE],
        "unexpected interfaces in the XML file"
    );
    assert!(
        problems.is_empty(),
        "dbus/org.facteur.Facteur1.xml and the daemon disagree:\n{}",
        problems.join("\n")
    );

    // The standard interfaces a client relies on are served too.
    assert!(
        find_interface(&root, "org.freedesktop.DBus.ObjectManager").is_some(),
        "no ObjectManager at the root"
    );
    assert!(find_interface(&account, "org.freedesktop.DBus.Properties").is_some());
}

#[test]
fn the_xml_file_has_every_member_of_the_design() {
    let file = parse(&checked_in()).expect("dbus/org.facteur.Facteur1.xml parses");
    let names_of = |iface: &str, kind: &str| -> BTreeSet<String> {
        find_interface(&file, iface)
            .unwrap_or_else(|| panic!("{iface} is missing"))
            .children_named(kind)
            .filter_map(|e| e.attr("name").map(str::to_owned))
            .collect()
    };
    let want = |list: &[&str]| -> BTreeSet<String> { list.iter().map(|s| s.to_string()).collect() };
    let manager_methods = names_of(names::MANAGER_INTERFACE, "method");
    let missing: Vec<_> = want(&[
        "CreateAccount",
        "VerifySettings",
        "Discover",
        "ListAccounts",
        "ListUnified",
        "GetMessage",
        "DeleteMessage",
        "SetFlags",
        "MoveMessages",
        "CopyMessages",
        "GetSummaries",
    ])
    .difference(&manager_methods)
    .cloned()
    .collect();
    assert!(missing.is_empty(), "Manager methods missing: {missing:?}");
    let manager_signals = names_of(names::MANAGER_INTERFACE, "signal");
    for s in [
        "NewMessages",
        "MessagesAdded",
        "MessagesChanged",
        "MessagesRemoved",
    ] {
        assert!(manager_signals.contains(s), "Manager signal {s} missing");
    }
    let manager_props = names_of(names::MANAGER_INTERFACE, "property");
    for p in ["Version", "SecretStore"] {
        assert!(manager_props.contains(p), "Manager property {p} missing");
    }
    let account_methods = names_of(names::ACCOUNT_INTERFACE, "method");
    let missing: Vec<_> = want(&[
        "Update",
        "Delete",
        "Verify",
        "Sync",
        "ListFolders",
        "ListMessages",
        "Send",
        "CreateFolder",
        "RenameFolder",
        "DeleteFolder",
        "Enqueue",
        "ListOutbox",
        "CancelOutbox",
    ])
    .difference(&account_methods)
    .cloned()
    .collect();
    assert!(missing.is_empty(), "Account methods missing: {missing:?}");
    let account_props = names_of(names::ACCOUNT_INTERFACE, "property");
    let missing: Vec<_> = want(names::ACCOUNT_PROPERTIES)
        .difference(&account_props)
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "Account properties missing: {missing:?}"
    );
    assert!(
        names_of(names::ACCOUNT_INTERFACE, "signal").contains("FoldersChanged"),
        "Account signal FoldersChanged missing"
    );
}

#[test]
fn other_methods_answer_results_or_contract_errors() {
    let bus = Bus::start();
    let _d = Facteurd::start(&bus);
    let path = bus
        .create_account(&Settings::unreachable("ns@example.org"))
        .expect("create an account");
    let settings = Settings::unreachable("ns2@example.org");
    let calls: Vec<(&str, Result<zbus::Message, CallError>)> = vec![
        (
            "VerifySettings",
            bus.call_facteur(
                names::ROOT_PATH,
                names::MANAGER_INTERFACE,
                "VerifySettings",
                &(settings.as_dict(),),
            ),
        ),
        (
            "ListUnified",
            bus.call_facteur(
                names::ROOT_PATH,
                names::MANAGER_INTERFACE,
                "ListUnified",
                &(0u32, 10u32),
            ),
        ),
        (
            "Verify",
            bus.call_facteur(&path, names::ACCOUNT_INTERFACE, "Verify", &()),
        ),
        (
            "Sync",
            bus.call_facteur(&path, names::ACCOUNT_INTERFACE, "Sync", &()),
        ),
        (
            "ListFolders",
            bus.call_facteur(&path, names::ACCOUNT_INTERFACE, "ListFolders", &()),
        ),
    ];
    // Not faked: either a real answer or an error with a name from the
    // contract (NotSupported until an engine lands). A generic zbus failure
    // (unknown method, wrong signature) is neither. Discover is left out: it
    // may look names up on the network.
    for (what, r) in calls {
        if let Err(e) = r {
            assert!(
                e.name.starts_with(names::ERROR_PREFIX),
                "{what} answered an error outside the contract: {e}"
            );
            assert!(!e.message.is_empty(), "{what}: an error without a sentence");
        }
    }
}

/// The doc comment (`<!-- Name: … -->`) right before each member.
fn doc_before<'a>(file: &'a str, tag: &str, name: &str) -> Option<&'a str> {
    let at = file.find(&format!("<{tag} name=\"{name}\""))?;
    let before = file[..at].trim_end();
    let body = before.strip_suffix("-->")?;
    let start = body.rfind("<!--")?;
    Some(body[start + 4..].trim())
}

#[test]
fn the_xml_file_documents_every_member_key_and_value() {
    let text = checked_in();
    let file = parse(&text).expect("dbus/org.facteur.Facteur1.xml parses");
    let mut undocumented = Vec::new();
    for iface in facteur_tests::xml::interfaces(&file) {
        for tag in ["method", "signal", "property"] {
            for m in iface.children_named(tag) {
                let name = m.attr("name").unwrap_or("?");
                match doc_before(&text, tag, name) {
                    Some(doc)
                        if doc.starts_with(&format!("{name}:")) && doc.len() > name.len() + 8 => {}
                    _ => undocumented.push(format!("{tag} {name}")),
                }
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "no doc comment before: {undocumented:?}"
    );
    // The values a client branches on, and every dictionary key.
    let mut missing = Vec::new();
    let mut want = |what: &str, s: String| {
        if !text.contains(&s) {
            missing.push(format!("{what} {s}"));
        }
    };
    for code in facteur_dbus::error_code::ALL
        .iter()
        .filter(|c| !c.is_empty())
    {
        want("LastErrorCode", format!(" {code} "));
    }
    want("LastErrorCode", "''".into());
    use facteur_dbus::state;
    for s in [
        state::IDLE,
        state::SYNCING,
        state::OFFLINE,
        state::ERROR,
        state::NEEDS_CREDENTIALS,
        state::DISABLED,
    ] {
        want("State", format!(" {s} "));
    }
    for e in [
        "InvalidArgument",
        "NotFound",
        "AlreadyExists",
        "AuthenticationFailed",
        "ConnectionFailed",
        "TlsFailed",
        "Timeout",
        "NotSupported",
        "Internal",
    ] {
        want("error", format!("{}.{e} ", names::ERROR_PREFIX));
    }
    for k in facteur_dbus::KEYS {
        want("settings key", format!("{} {}", k.name, k.kind.signature()));
    }
    for k in [
        "id s",
        "account o",
        "folder s",
        "from s",
        "subject s",
        "date x",
        "size t",
        "seen b",
        "flagged b",
        "answered b",
        "draft b",
        "deleted b",
        "keywords as",
        "has-attachments b",
        "message-id s",
    ] {
        want("summary key", k.to_owned());
    }
    for k in [
        "id s",
        "subject s",
        "to s",
        "state s",
        "queued | sending | failed",
        "attempts u",
        "last-error s",
        "queued x",
    ] {
        want("outbox key", k.to_owned());
    }
    for k in [
        "name s",
        "role s",
        "delimiter s",
        "selectable b",
        "messages u",
        "unread u",
    ] {
        want("folder key", k.to_owned());
    }
    for k in ["source s", "verified b"] {
        want("candidate key", k.to_owned());
    }
    assert!(missing.is_empty(), "not documented in the XML: {missing:?}");
}

#[test]
fn every_key_of_a_verify_report_is_documented() {
    let text = checked_in();
    let bus = Bus::start();
    let _d = Facteurd::start(&bus);
    let settings = Settings::unreachable("doc@example.org").s("incoming-password", "pw");
    let reply = bus
        .call_facteur(
            names::ROOT_PATH,
            names::MANAGER_INTERFACE,
            "VerifySettings",
            &(settings.as_dict(),),
        )
        .expect("VerifySettings answers");
    let report: std::collections::HashMap<String, zbus::zvariant::OwnedValue> =
        reply.body().deserialize().expect("an a{sv}");
    assert!(report.len() >= 7, "{report:?}");
    let mut keys: BTreeSet<String> = report.keys().cloned().collect();
    let steps: Vec<std::collections::HashMap<String, zbus::zvariant::OwnedValue>> = report["steps"]
        .try_clone()
        .expect("clone")
        .try_into()
        .expect("steps is aa{sv}");
    assert!(!steps.is_empty(), "no step tried: {report:?}");
    for s in &steps {
        keys.extend(s.keys().cloned());
    }
    let undocumented: Vec<_> = keys
        .iter()
        .filter(|k| !text.contains(&format!(" {k} ")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "report keys not in the XML: {undocumented:?}"
    );
}

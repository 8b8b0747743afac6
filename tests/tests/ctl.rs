//! # facteurctl against the real daemon
//!
//! The account commands a person types, end to end: `account add` (with the
//! password on standard input, never in argv), `list`, `show` (text and
//! `--json`), `set`, `set --password-stdin`, `remove`; daemon errors as one
//! `facteurctl: <Name>: <message>` line with exit 1, usage errors with exit
//! 2, a clear line when facteurd or the bus is not there; completions and
//! manual pages.

use facteur_dbus::names;
use facteur_tests::*;
use serde_json::Value as Json;

fn json(s: &str) -> Json {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}):\n{s}"))
}

#[test]
fn add_list_show_set_remove() {
    let bus = Bus::start();
    let keyring = Keyring::start(&bus);
    let d = Facteurd::start(&bus);
    let pw = unique_secret("ctl");
    // Loopback on a closed port: the daemon may try to log in at once.
    let port = closed_port().to_string();

    let id = bus.ctl_ok(
        &[
            "account",
            "add",
            "--email",
            "olga@example.org",
            "--incoming-host",
            LOOPBACK,
            "--incoming-port",
            &port,
            "--name",
            "Olga",
            "--password-stdin",
        ],
        Some(&format!("{pw}\n")),
    );
    let id = id.trim();
    assert_eq!(id, "olga_example_org");
    let path = names::account_path(id);
    assert_eq!(bus.list_accounts(), vec![path.clone()]);
    // The password went to the keyring, without the newline.
    assert_eq!(
        keyring.lookup(&[("account-id", id), ("service", "incoming")]),
        Some(pw.clone())
    );
    wait_for_credentials(&bus, &path);

    // list: a table with the account, and JSON.
    let table = bus.ctl_ok(&["account", "list"], None);
    assert!(
        table.contains(id) && table.contains("olga@example.org"),
        "{table}"
    );
    let listed = json(&bus.ctl_ok(&["--json", "account", "list"], None));
    let listed = listed.as_array().expect("account list --json is an array");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["account"], id);
    assert_eq!(listed[0]["account-path"], path.as_str());

    // show: text and JSON.
    let shown = bus.ctl_ok(&["account", "show", id], None);
    assert!(shown.contains(LOOPBACK) && shown.contains(&port), "{shown}");
    let shown = json(&bus.ctl_ok(&["--json", "account", "show", id], None));
    assert_eq!(shown["email-address"], "olga@example.org");
    assert_eq!(shown["incoming-port"].to_string(), port);
    assert_eq!(shown["name"], "Olga");
    assert!(!shown.to_string().contains(&pw));

    // set: KEY=VALUE pairs, observed as PropertiesChanged.
    let signals = bus.signals();
    let port2 = closed_port();
    bus.ctl_ok(
        &[
            "account",
            "set",
            id,
            "name=Olga at work",
            &format!("incoming-port={port2}"),
            "use-unified=no",
            "poll-interval-minutes=30",
        ],
        None,
    );
    signals.wait_property_changed(&path, "Name");
    signals.wait_property_changed(&path, "IncomingPort");
    let p = bus.account(&path);
    assert_eq!(p.str("Name"), "Olga at work");
    assert_eq!(p.u16("IncomingPort"), port2);
    assert!(!p.bool("UseUnified"));
    assert_eq!(p.u32("PollIntervalMinutes"), 30);

    // set --password-stdin replaces the password.
    let pw2 = unique_secret("ctl2");
    bus.ctl_ok(
        &["account", "set", id, "--password-stdin"],
        Some(&format!("{pw2}\n")),
    );
    assert_eq!(
        keyring.lookup(&[("account-id", id), ("service", "incoming")]),
        Some(pw2.clone())
    );
    for secret in [&pw, &pw2] {
        assert!(
            !d.log().contains(secret.as_str()),
            "a password is in the log"
        );
        assert!(files_containing(&d.config_dir(), secret).is_empty());
        assert!(files_containing(&d.data_dir(), secret).is_empty());
    }

    // remove: the object, the file and the secret are gone.
    bus.ctl_ok(&["account", "remove", id], None);
    assert!(bus.list_accounts().is_empty());
    assert!(!d.accounts_dir().join(format!("{id}.json")).exists());
    assert_eq!(
        keyring.lookup(&[("account-id", id), ("service", "incoming")]),
        None
    );
    let empty = json(&bus.ctl_ok(&["--json", "account", "list"], None));
    assert_eq!(empty, Json::Array(vec![]));
}

#[test]
fn daemon_errors_are_one_line_with_the_error_name() {
    let bus = Bus::start();
    let d = Facteurd::start(&bus);
    bus.ctl_ok(
        &[
            "account",
            "add",
            "--email",
            "pia@example.org",
            "--incoming-host",
            "imap.example.org",
        ],
        Some(""),
    );
    let before = snapshot(&d.config_dir());

    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "account",
                "add",
                "--email",
                "new@example.org",
                "--incoming-host",
                "imap.example.org",
                "--incoming-port",
                "0",
            ],
            "facteurctl: InvalidArgument: incoming-port",
        ),
        (
            &[
                "account",
                "add",
                "--email",
                "not-an-address",
                "--incoming-host",
                "imap.example.org",
            ],
            "facteurctl: InvalidArgument: email",
        ),
        (
            &[
                "account",
                "add",
                "--email",
                "pia@example.org",
                "--incoming-host",
                "imap.example.org",
            ],
            "facteurctl: AlreadyExists:",
        ),
        (
            &[
                "account",
                "set",
                "pia_example_org",
                "poll-interval-minutes=0",
            ],
            "facteurctl: InvalidArgument: poll-interval-minutes",
        ),
    ];
    for (args, prefix) in cases {
        let out = bus.ctl(args, Some(""));
        assert_eq!(
            out.status.code(),
            Some(1),
            "facteurctl {args:?}: want exit 1; stderr: {}",
            text(&out.stderr)
        );
        let line = one_stderr_line(&out, &format!("facteurctl {args:?}"));
        assert!(
            line.starts_with(prefix),
            "facteurctl {args:?}: want {prefix}…, got: {line}"
        );
        assert!(
            text(&out.stdout).trim().is_empty(),
            "output on stdout after an error"
        );
    }
    assert_eq!(
        before,
        snapshot(&d.config_dir()),
        "a refused command changed the store"
    );

    // An id that names no account.
    let out = bus.ctl(&["account", "show", "nobody_example_org"], None);
    assert_eq!(out.status.code(), Some(1));
    let line = one_stderr_line(&out, "account show of a missing id");
    assert!(line.contains("nobody_example_org"), "{line}");
}

#[test]
fn usage_errors_exit_2_and_passwords_never_come_from_argv() {
    let bus = Bus::start();
    let d = Facteurd::start(&bus);
    let secret = unique_secret("argv");
    let cases: [&[&str]; 4] = [
        &[
            "account",
            "add",
            "--email",
            "q@example.org",
            "--incoming-host",
            "h.example.org",
            "--incoming-port",
            "nope",
        ],
        &[
            "account",
            "add",
            "--email",
            "q@example.org",
            "--incoming-host",
            "h.example.org",
            "--incoming-password",
            &secret,
        ],
        &[
            "account",
            "set",
            "x",
            &format!("incoming-password={secret}"),
        ],
        &["account", "frobnicate"],
    ];
    for args in cases {
        let out = bus.ctl(args, Some(""));
        assert_eq!(
            out.status.code(),
            Some(2),
            "facteurctl {args:?}: want exit 2; stderr: {}",
            text(&out.stderr)
        );
        assert!(
            !text(&out.stderr).contains(&secret) && !text(&out.stdout).contains(&secret),
            "facteurctl echoed a password given in argv"
        );
    }
    assert!(
        bus.list_accounts().is_empty(),
        "a usage error created an account"
    );
    assert!(files_containing(&d.config_dir(), &secret).is_empty());
}

#[test]
fn a_missing_daemon_or_bus_is_one_clear_line() {
    let bus = Bus::start();
    // The bus is there, facteurd is not.
    let out = bus.ctl(&["account", "list"], None);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let line = one_stderr_line(&out, "facteurctl without facteurd");
    assert!(line.contains("not running"), "{line}");

    // No bus at all.
    let dir = short_tempdir("facteurctl-nobus-");
    let mut cmd = std::process::Command::new(workspace_binary("facteurctl"));
    cmd.args(["account", "list"]).env(
        "DBUS_SESSION_BUS_ADDRESS",
        format!("unix:path={}/none", dir.path().display()),
    );
    let out = run(&mut cmd, None);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    one_stderr_line(&out, "facteurctl without a bus");
}

#[test]
fn completions_and_manual_pages_are_generated() {
    let bus = Bus::start();
    let script = bus.ctl_ok(&["completions", "bash"], None);
    assert!(
        script.contains("facteurctl") && script.contains("complete"),
        "{script}"
    );
    let dir = short_tempdir("facteurctl-man-");
    let mandir = dir.path().join("man1");
    bus.ctl_ok(&["man", &mandir.display().to_string()], None);
    let page =
        std::fs::read_to_string(mandir.join("facteurctl.1")).expect("facteurctl.1 is written");
    assert!(page.contains(".TH"), "not a man page:\n{page}");
}

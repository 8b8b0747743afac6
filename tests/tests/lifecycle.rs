//! # Process behaviour of facteurd
//!
//! Start-up and shutdown as a service manager and a user see them: the name
//! is taken and READY=1 follows, SIGTERM ends the process with status 0 and
//! releases the name, a second instance is refused in one line, a missing
//! session bus is explained in one line, accounts survive a restart and a
//! crash, and an account file that cannot be read is skipped, reported and
//! left in place.

use std::fs;
use std::time::Instant;

use facteur_dbus::names;
use facteur_tests::*;

#[test]
fn sigterm_exits_zero_and_releases_the_name() {
    let bus = Bus::start();
    let mut d = Facteurd::start(&bus);
    bus.create_account(&Settings::minimal("term@example.org", "imap.example.org"))
        .expect("create an account");
    let status = d.stop();
    assert_eq!(
        exit_code(status),
        0,
        "facteurd did not exit 0 on SIGTERM; its log:\n{}",
        d.log()
    );
    assert!(
        bus.wait_for_name(names::BUS_NAME, false, DEADLINE),
        "{} is still owned after facteurd exited",
        names::BUS_NAME
    );
    // Whatever was written before SIGTERM is on disk.
    assert!(
        d.accounts_dir().join("term_example_org.json").is_file(),
        "the account file is missing after a clean shutdown: {:?}",
        snapshot(&d.config_dir()).keys().collect::<Vec<_>>()
    );
}

#[test]
fn sigint_exits_zero_too() {
    let bus = Bus::start();
    let mut d = Facteurd::start(&bus);
    send_signal(d.pid(), "INT");
    let status = wait_until(DEADLINE, || d.try_wait())
        .unwrap_or_else(|| panic!("facteurd did not exit on SIGINT; log:\n{}", d.log()));
    assert_eq!(exit_code(status), 0, "log:\n{}", d.log());
    assert!(bus.wait_for_name(names::BUS_NAME, false, DEADLINE));
}

#[test]
fn a_second_instance_is_refused_in_one_line() {
    let bus = Bus::start();
    let first = Facteurd::start(&bus);
    let first_pid = bus.name_owner_pid(names::BUS_NAME);

    // A second daemon on the same bus, with directories of its own so that
    // only the bus name can be what stops it.
    let second = Facteurd::new(&bus);
    let out = run(&mut second.command(), None);
    assert_ne!(
        out.status.code(),
        Some(0),
        "a second facteurd on the same bus exited 0; stderr:\n{}",
        text(&out.stderr)
    );
    assert_eq!(
        exit_code(out.status),
        1,
        "expected exit status 1; stderr:\n{}",
        text(&out.stderr)
    );
    let line = one_stderr_line(&out, "second facteurd");
    assert!(
        line.contains("already"),
        "the refusal does not say the name is already taken: {line}"
    );
    // The first one is untouched.
    assert_eq!(bus.name_owner_pid(names::BUS_NAME), first_pid);
    assert!(bus.list_accounts().is_empty());
    drop(first);
}

#[test]
fn no_session_bus_is_one_clear_line() {
    let bus = Bus::start();
    let d = Facteurd::new(&bus);
    let missing = d.home().join("no-such-socket");
    let address = format!("unix:path={}", missing.display());

    // An address that points nowhere.
    let out = run(d.command().env("DBUS_SESSION_BUS_ADDRESS", &address), None);
    assert_ne!(
        out.status.code(),
        Some(0),
        "facteurd exited 0 without a bus"
    );
    let line = one_stderr_line(&out, "facteurd with a dead bus address");
    assert!(
        line.contains("DBUS_SESSION_BUS_ADDRESS") || line.contains("dbus-run-session"),
        "the message does not say how to get a session bus: {line}"
    );

    // No address at all (and an empty runtime dir, so no $XDG_RUNTIME_DIR/bus).
    let out = run(d.command().env_remove("DBUS_SESSION_BUS_ADDRESS"), None);
    assert_ne!(
        out.status.code(),
        Some(0),
        "facteurd exited 0 without a bus"
    );
    let line = one_stderr_line(&out, "facteurd without DBUS_SESSION_BUS_ADDRESS");
    assert!(
        line.contains("DBUS_SESSION_BUS_ADDRESS") || line.contains("dbus-run-session"),
        "the message does not say how to get a session bus: {line}"
    );
}

#[test]
fn ready_is_notified_once_the_name_is_taken() {
    let bus = Bus::start();
    let mut d = Facteurd::new(&bus);
    d.with_notify_socket();
    let start = Instant::now();
    d.spawn();
    let mut received = Vec::new();
    let ready = wait_until(DEADLINE, || {
        let new = d.notifications();
        let got_ready = new.iter().any(|l| l == "READY=1");
        received.extend(new);
        if got_ready {
            // Sampled right when READY=1 arrived: the name must already be
            // owned and the objects served.
            return Some(bus.name_has_owner(names::BUS_NAME));
        }
        if let Some(status) = d.try_wait() {
            panic!(
                "facteurd exited with {status} before READY=1; log:\n{}",
                d.log()
            );
        }
        None
    });
    let owned_at_ready = ready.unwrap_or_else(|| {
        panic!(
            "no READY=1 on NOTIFY_SOCKET within {DEADLINE:?} (got {received:?}); log:\n{}",
            d.log()
        )
    });
    assert!(
        owned_at_ready,
        "READY=1 arrived before {} was owned",
        names::BUS_NAME
    );
    assert!(bus.list_accounts().is_empty());
    assert!(start.elapsed() < DEADLINE);
    let status = d.stop();
    assert_eq!(exit_code(status), 0, "log:\n{}", d.log());
}

#[test]
fn accounts_survive_a_restart() {
    let bus = Bus::start();
    let mut d = Facteurd::start(&bus);
    let settings = Settings::minimal("keep@example.org", "imap.example.org")
        .s("name", "Kept")
        .s("display-name", "Keep Er")
        .s("incoming-protocol", "pop3")
        .s("incoming-security", "starttls")
        .u("poll-interval-minutes", 42)
        .b("leave-on-server", false)
        .b("use-unified", false)
        .s("smtp-host", "smtp.example.org")
        .s("folder-sent", "Sent Items");
    let path = bus.create_account(&settings).expect("create an account");
    let before = bus.account(&path).settings_only();

    d.restart();
    assert_eq!(bus.list_accounts(), vec![path.clone()]);
    let after = bus.account(&path).settings_only();
    assert_eq!(before, after, "settings changed across a restart");
    assert_eq!(after.str("Name"), "Kept");
    assert_eq!(after.u32("PollIntervalMinutes"), 42);
    assert_eq!(after.u16("IncomingPort"), 110);
}

#[test]
fn accounts_survive_a_crash() {
    let bus = Bus::start();
    let mut d = Facteurd::start(&bus);
    let path = bus
        .create_account(&Settings::minimal("crash@example.org", "imap.example.org"))
        .expect("create an account");
    bus.update_account(&path, &Settings::new().s("name", "After update"))
        .expect("update the account");
    // SIGKILL right after the reply: the settings were written (temp file,
    // fsync, rename) before CreateAccount/Update answered.
    d.kill();
    assert!(bus.wait_for_name(names::BUS_NAME, false, DEADLINE));
    d.launch();
    assert_eq!(bus.list_accounts(), vec![path.clone()]);
    assert_eq!(bus.account(&path).str("Name"), "After update");
    // No temporary files left behind where a person would look.
    let leftovers: Vec<_> = snapshot(&d.accounts_dir())
        .into_keys()
        .filter(|p| p.extension().is_none_or(|e| e != "json"))
        .collect();
    assert!(leftovers.is_empty(), "stray files: {leftovers:?}");
}

#[test]
fn an_unreadable_account_file_is_skipped_and_kept() {
    let bus = Bus::start();
    let mut d = Facteurd::start(&bus);
    let good = bus
        .create_account(&Settings::minimal("good@example.org", "imap.example.org"))
        .expect("create an account");
    let status = d.stop();
    assert_eq!(exit_code(status), 0, "log:\n{}", d.log());

    let corrupt = d.accounts_dir().join("corrupt_example_org.json");
    fs::write(&corrupt, b"{ this is not json").expect("write a corrupt file");
    let truncated = d.accounts_dir().join("truncated_example_org.json");
    fs::write(&truncated, b"").expect("write an empty file");
    // A directory where a file should be: unreadable even for root.
    let dir_entry = d.accounts_dir().join("dir_example_org.json");
    fs::create_dir(&dir_entry).expect("make a directory");
    let mut locked = None;
    if !running_as_root() {
        let p = d.accounts_dir().join("locked_example_org.json");
        fs::copy(d.accounts_dir().join("good_example_org.json"), &p).expect("copy");
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o000))
            .expect("chmod 000");
        locked = Some(p);
    }
    let before = snapshot(&d.accounts_dir());

    d.launch();
    assert_eq!(
        bus.list_accounts(),
        vec![good.clone()],
        "only the good account should load; log:\n{}",
        d.log()
    );
    assert_eq!(bus.account(&good).str("EmailAddress"), "good@example.org");
    let log = d.log();
    for name in ["corrupt_example_org.json", "truncated_example_org.json"] {
        assert!(log.contains(name), "the log does not name {name}:\n{log}");
    }
    if let Some(p) = &locked {
        let name = p.file_name().and_then(|n| n.to_str()).expect("a name");
        assert!(log.contains(name), "the log does not name {name}:\n{log}");
    }
    // Nothing was deleted or rewritten.
    assert!(corrupt.is_file() && truncated.is_file() && dir_entry.is_dir());
    assert_eq!(before, snapshot(&d.accounts_dir()), "account files changed");

    // The daemon still works: a new account next to the broken files.
    bus.create_account(&Settings::minimal("new@example.org", "imap.example.org"))
        .expect("create an account next to broken files");
    assert_eq!(fs::read(&corrupt).expect("read"), b"{ this is not json");
}

#[test]
fn version_property_is_the_daemon_version() {
    let bus = Bus::start();
    let _d = Facteurd::start(&bus);
    let version = bus.manager_property("Version");
    let version = version.downcast_ref::<&str>().expect("Version is a string");
    // The workspace shares one version, so this crate's is the daemon's.
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
}

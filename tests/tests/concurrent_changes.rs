//! # Changes that race a Delete
//!
//! zbus runs method calls concurrently; the lifecycle serialises them.
//! Against a real facteurd on a private bus (file secret store, a server
//! that is never reached):
//!
//! - two `Delete` calls at once: one succeeds, the other succeeds or
//!   answers `NotFound`, never `Internal`, and nothing is logged as an
//!   error;
//! - an `Update` queued behind a `Delete` answers `NotFound` and never
//!   writes the account back (no settings file, no object after a
//!   restart).

use facteur_tests::*;

/// An account on a port nothing listens on (it never needs to sync).
fn carol(n: u32) -> Settings {
    Settings::new()
        .s("email", &format!("carol{n}@example.test"))
        .s("incoming-protocol", "imap")
        .s("incoming-host", "127.0.0.1")
        .q("incoming-port", 1)
        .s("incoming-security", "none")
        .s("incoming-password", "pw-carol")
}

fn daemon(bus: &Bus) -> Facteurd<'_> {
    let mut d = Facteurd::new(bus);
    d.arg("--secret-store").arg("file");
    d.launch();
    d
}

fn settings_files(d: &Facteurd<'_>) -> usize {
    std::fs::read_dir(d.config_dir().join("accounts"))
        .map(|r| {
            r.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn two_deletes_at_once_never_answer_internal() {
    let bus = Bus::start();
    let d = daemon(&bus);
    for n in 0..5 {
        let path = bus.create_account(&carol(n)).expect("create");
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| bus.delete_account(&path));
            let b = s.spawn(|| bus.delete_account(&path));
            (
                a.join().expect("first Delete thread"),
                b.join().expect("second Delete thread"),
            )
        });
        let answers = [&a, &b];
        assert!(
            answers.iter().any(|r| r.is_ok()),
            "no Delete succeeded: {a:?} {b:?}"
        );
        for r in answers {
            if let Err(e) = r {
                assert_eq!(e.short_name(), "NotFound", "{e}");
            }
        }
    }
    assert_eq!(settings_files(&d), 0);
    let log = d.log();
    assert!(!log.contains("ERROR"), "{}", last_lines(&log, 40));
}

#[test]
fn an_update_queued_behind_a_delete_does_not_bring_the_account_back() {
    let bus = Bus::start();
    let mut d = daemon(&bus);
    for n in 0..5 {
        let path = bus.create_account(&carol(n)).expect("create");
        let (deleted, updated) = std::thread::scope(|s| {
            let del = s.spawn(|| bus.delete_account(&path));
            let upd =
                s.spawn(|| bus.update_account(&path, &Settings::new().s("display-name", "Back")));
            (
                del.join().expect("Delete thread"),
                upd.join().expect("Update thread"),
            )
        });
        deleted.expect("Delete");
        if let Err(e) = &updated {
            // Ran after the Delete (else it ran first and succeeded).
            assert!(
                matches!(
                    e.short_name(),
                    "NotFound" | "UnknownObject" | "UnknownMethod"
                ),
                "{e}"
            );
        }
    }
    assert_eq!(settings_files(&d), 0, "{}", last_lines(&d.log(), 40));
    d.restart();
    let accounts = bus.list_accounts();
    assert!(
        accounts.is_empty(),
        "accounts back after restart: {accounts:?}"
    );
}

//! # `facteurctl sync` and `facteurctl status` (issue 8)
//!
//! End to end against the scripted IMAP server and the real facteurd:
//!
//! - `facteurctl sync ACCOUNT` without a terminal prints the number of new
//!   messages on standard output and exits 0; whatever it shows on standard
//!   error while the pass runs is plain progress lines (`ID: DONE/TOTAL
//!   messages`), never a terminal bar's escapes or carriage returns;
//! - `facteurctl sync` with no account syncs every account (`ID: N`);
//! - `facteurctl status` shows each account's health (state, attention,
//!   error code, next retry, progress), as a table and as JSON;
//! - `account show` lists the health properties;
//! - every `Progress` the pass announces has done ≤ total, and it is back to
//!   (0, 0) once the account is idle.
//!
//! A progress line itself is not required: how many `Progress` changes a
//! pass of a few messages emits is the daemon's business.

use facteur_tests::scripted_imap::{message, ScriptedImap};
use facteur_tests::*;
use serde_json::Value as Json;

/// A facteurd on `bus` keeping passwords in its file store.
fn facteurd(bus: &Bus) -> Facteurd<'_> {
    let mut d = Facteurd::new(bus);
    d.arg("--secret-store").arg("file");
    d.launch();
    d
}

/// An account on `server` (plain text): its path.
fn create(bus: &Bus, server: &ScriptedImap, email: &str) -> String {
    let settings = Settings::new()
        .s("name", "Progress")
        .s("email", email)
        .s("incoming-protocol", "imap")
        .s("incoming-host", LOOPBACK)
        .q("incoming-port", server.port())
        .s("incoming-security", "none")
        .s("incoming-login", "alice")
        .s("incoming-password", "secret");
    bus.create_account(&settings)
        .unwrap_or_else(|e| panic!("CreateAccount failed: {e}"))
}

/// Every line of a non-terminal sync's standard error is a progress line
/// of account `id`.
fn assert_plain_progress(stderr: &str, id: &str) {
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "terminal control characters without a terminal: {stderr:?}"
    );
    for line in lines(stderr) {
        // `sync --all` (or no account) names each account before its pass.
        if line.starts_with(&format!("{id}: syncing (")) {
            continue;
        }
        let counts = line
            .strip_prefix(&format!("{id}: "))
            .and_then(|l| l.strip_suffix(" messages"))
            .and_then(|l| l.split_once('/'));
        assert!(
            counts.is_some_and(|(d, t)| d.parse::<u32>().is_ok() && t.parse::<u32>().is_ok()),
            "not a progress line: {line:?}\nstderr: {stderr}"
        );
    }
}

#[test]
fn sync_prints_the_result_without_a_terminal_and_status_shows_health() {
    let server = ScriptedImap::start();
    for uid in 1..=3 {
        server.add_message(b"INBOX", message(uid, &format!("First {uid}")));
    }
    let bus = Bus::start();
    let d = facteurd(&bus);
    let email = "progress@example.test";
    let path = create(&bus, &server, email);
    let id = slug(email);
    wait_account(&bus, &d, &path, "synced", DEADLINE, |p| {
        p.str("State") == "idle" && p.u32("MessageCount") == 3
    });

    // Two new messages: the pass finds them, the result is on stdout.
    for uid in 4..=5 {
        server.add_message(b"INBOX", message(uid, &format!("Second {uid}")));
    }
    let signals = bus.signals();
    let out = bus.ctl(&["sync", &id], None);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(
        exit_code(out.status),
        0,
        "facteurctl sync failed\nstdout: {stdout}\nstderr: {stderr}\nfacteurd log:\n{}",
        last_lines(&d.log(), 40)
    );
    assert_eq!(
        stdout.trim(),
        "2",
        "the result line: {stdout:?} (stderr {stderr:?})"
    );
    assert_plain_progress(&stderr, &id);
    assert_eq!(bus.account(&path).u32("MessageCount"), 5);
    // Whatever Progress the pass announced counted within its total, and
    // once idle it is back to (0, 0).
    for (done, total) in signals.progress_values(&path) {
        assert!(done <= total, "Progress ({done}, {total})");
    }
    wait_account(
        &bus,
        &d,
        &path,
        "idle with Progress (0, 0)",
        DEADLINE,
        |p| p.str("State") == "idle" && p.u32_pair("Progress") == (0, 0),
    );

    // No account named: every account, one `ID: N` line each.
    let out = bus.ctl(&["sync"], None);
    let stdout = text(&out.stdout);
    assert_eq!(exit_code(out.status), 0, "{stdout}{}", text(&out.stderr));
    assert_eq!(lines(&stdout), vec![format!("{id}: 0")], "{stdout}");
    assert_plain_progress(&text(&out.stderr), &id);

    // status: the health of the account, as a table and as JSON.
    let table = bus.ctl_ok(&["status"], None);
    let rows = lines(&table);
    assert_eq!(rows.len(), 2, "{table}");
    for column in ["STATE", "ATTENTION", "ERROR", "NEXT RETRY", "PROGRESS"] {
        assert!(rows[0].contains(column), "no {column} column: {table}");
    }
    let p = bus.account(&path);
    assert!(rows[1].starts_with(&id), "{table}");
    assert!(rows[1].contains(&p.str("State")), "{table}");
    let json: Json = serde_json::from_str(&bus.ctl_ok(&["--json", "status", &id], None))
        .expect("status --json is JSON");
    let entry = &json[0];
    assert_eq!(entry["account"], id.as_str(), "{json}");
    assert_eq!(entry["account-path"], path.as_str(), "{json}");
    assert_eq!(entry["state"], p.str("State").as_str(), "{json}");
    assert_eq!(
        entry["attention-needed"],
        p.bool("AttentionNeeded"),
        "{json}"
    );
    assert_eq!(
        entry["last-error-code"],
        p.str("LastErrorCode").as_str(),
        "{json}"
    );
    assert_eq!(entry["next-retry-unix"], p.u64("NextRetry"), "{json}");
    assert!(
        entry["progress"]["done"].is_u64() && entry["progress"]["total"].is_u64(),
        "progress is {{done, total}}: {json}"
    );

    // account show: the health properties, by name.
    let shown = bus.ctl_ok(&["account", "show", &id], None);
    for key in [
        "AttentionNeeded:",
        "LastErrorCode:",
        "NextRetry:",
        "Progress:",
    ] {
        assert!(shown.contains(key), "no {key} in account show: {shown}");
    }
}

#[test]
fn sync_of_a_missing_account_fails_with_one_line() {
    let bus = Bus::start();
    let _d = facteurd(&bus);
    let out = bus.ctl(&["sync", "nobody_example_org"], None);
    assert_eq!(exit_code(out.status), 1);
    let line = one_stderr_line(&out, "facteurctl sync of a missing account");
    assert!(line.contains("nobody_example_org"), "{line}");
    assert!(text(&out.stdout).is_empty());
}

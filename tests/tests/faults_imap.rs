//! # Faults of an IMAP server (issue 13)
//!
//! End-to-end tests against the scripted IMAP server
//! (`facteur_tests::scripted_imap`), each a finding of issue 13 that lost
//! mail or took facteurd out of service:
//!
//! - a FETCH cut short (`* BYE` or a TCP close after 2 of 5 messages, a UID
//!   left out with `OK`): once the server behaves and `Sync` runs, all five
//!   are stored, byte for byte; the same with kill -9 of facteurd during
//!   cut-short fetches, ending with every message exactly once;
//! - hostile folder names (a NUL, invalid UTF-8, two names that decode
//!   alike) and a Subject that decodes to a NUL: facteurd stays on the bus,
//!   ListFolders and ListMessages work, across a restart;
//! - an endless response line (also after a `{N}` that is no literal):
//!   bounded CPU, a clear LastError, retries with backoff;
//! - a `NO` to the `UID STORE` of DeleteMessage: an error, the message
//!   kept and not announced again; once the server agrees, it is deleted.
//!
//! Every wait polls with a deadline; nothing sleeps for a fixed time except
//! where a duration is what is measured.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use facteur_dbus::names;
use facteur_tests::scripted_imap::{message, Faults, Message, ScriptedImap};
use facteur_tests::*;
use zbus::zvariant::{OwnedValue, Value};

/// Longer than [`DEADLINE`]: a retry after a failed pass waits out a
/// backoff of a few seconds.
const LONG: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------

/// A facteurd on `bus` keeping passwords in its file store.
fn facteurd(bus: &Bus) -> Facteurd<'_> {
    let mut d = Facteurd::new(bus);
    d.arg("--secret-store").arg("file");
    d.launch();
    d
}

/// Create an account on `server` (plain text, no TLS) and return its path.
fn create(bus: &Bus, server: &ScriptedImap) -> String {
    let settings = Settings::new()
        .s("name", "Faults")
        .s("email", "alice@example.test")
        .s("incoming-protocol", "imap")
        .s("incoming-host", "127.0.0.1")
        .q("incoming-port", server.port())
        .s("incoming-security", "none")
        .s("incoming-login", "alice")
        .s("incoming-password", "secret");
    bus.create_account(&settings)
        .unwrap_or_else(|e| panic!("CreateAccount failed: {e}"))
}

/// Five messages, UIDs 1 to 5, in INBOX.
fn five(server: &ScriptedImap) -> Vec<Message> {
    (1..=5)
        .map(|u| {
            let m = message(u, &format!("Message {u}"));
            server.add_message(b"INBOX", m.clone());
            m
        })
        .collect()
}

fn tail(d: &Facteurd<'_>, n: usize) -> String {
    let log = d.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.contains("sled")).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `Account.Sync()`, repeated until it succeeds (a Sync during a backoff
/// may answer the failure that caused it).
fn sync_until_ok(bus: &Bus, d: &Facteurd<'_>, path: &str) -> u32 {
    let start = Instant::now();
    loop {
        match bus.call_facteur(path, names::ACCOUNT_INTERFACE, "Sync", &()) {
            Ok(r) => return r.body().deserialize::<u32>().expect("Sync returns u"),
            Err(e) if start.elapsed() < LONG => {
                eprintln!("Sync failed ({e}); trying again");
                std::thread::sleep(Duration::from_millis(300));
            }
            Err(e) => panic!("Sync never succeeded: {e}\n{}", tail(d, 60)),
        }
    }
}

/// `ListMessages(folder)`: the summaries.
fn try_list(
    bus: &Bus,
    path: &str,
    folder: &str,
) -> Result<Vec<HashMap<String, OwnedValue>>, CallError> {
    bus.call_facteur(
        path,
        names::ACCOUNT_INTERFACE,
        "ListMessages",
        &(folder, 0u32, 10_000u32),
    )
    .map(|r| {
        r.body()
            .deserialize::<Vec<HashMap<String, OwnedValue>>>()
            .expect("ListMessages is aa{sv}")
    })
}

fn list(bus: &Bus, path: &str, folder: &str) -> Vec<HashMap<String, OwnedValue>> {
    try_list(bus, path, folder).unwrap_or_else(|e| panic!("ListMessages({folder:?}) failed: {e}"))
}

/// `ListFolders()`: the folder names.
fn folder_names(bus: &Bus, path: &str) -> Vec<String> {
    bus.call_facteur(path, names::ACCOUNT_INTERFACE, "ListFolders", &())
        .unwrap_or_else(|e| panic!("ListFolders failed: {e}"))
        .body()
        .deserialize::<Vec<HashMap<String, OwnedValue>>>()
        .expect("ListFolders is aa{sv}")
        .iter()
        .map(|f| field(f, "name"))
        .collect()
}

fn field(d: &HashMap<String, OwnedValue>, key: &str) -> String {
    match d.get(key).map(|v| &**v) {
        Some(Value::Str(s)) => s.to_string(),
        other => panic!("{key} is not a string: {other:?}"),
    }
}

/// `GetMessage(id)`.
fn get(bus: &Bus, id: &str) -> Vec<u8> {
    bus.call_facteur(
        names::ROOT_PATH,
        names::MANAGER_INTERFACE,
        "GetMessage",
        &(id,),
    )
    .unwrap_or_else(|e| panic!("GetMessage({id}) failed: {e}"))
    .body()
    .deserialize::<&[u8]>()
    .expect("GetMessage is ay")
    .to_vec()
}

/// INBOX holds exactly `expected`, once each, byte for byte.
fn assert_stored(bus: &Bus, d: &Facteurd<'_>, path: &str, expected: &[Message]) {
    let props = bus.account(path);
    assert_eq!(
        props.u32("MessageCount") as usize,
        expected.len(),
        "MessageCount\n{}",
        tail(d, 60)
    );
    let listed = list(bus, path, "INBOX");
    assert_eq!(listed.len(), expected.len(), "ListMessages(INBOX)");
    let subjects: Vec<String> = listed.iter().map(|m| field(m, "subject")).collect();
    let unique: BTreeSet<&String> = subjects.iter().collect();
    assert_eq!(
        unique.len(),
        subjects.len(),
        "a message is listed twice: {subjects:?}"
    );
    for m in expected {
        let subject = String::from_utf8_lossy(&m.body)
            .lines()
            .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
            .expect("test messages have a Subject");
        let entry = listed
            .iter()
            .find(|s| field(s, "subject") == subject)
            .unwrap_or_else(|| panic!("{subject:?} is not listed: {subjects:?}"));
        assert_eq!(
            get(bus, &field(entry, "id")),
            m.body,
            "GetMessage of {subject:?} is not what the server sent"
        );
    }
}

/// Body FETCH commands the server received, with their connection.
fn body_fetches(server: &ScriptedImap) -> Vec<(usize, String)> {
    server
        .commands()
        .into_iter()
        .filter(|(_, c)| c.contains("BODY.PEEK[]"))
        .collect()
}

// ---------------------------------------------------------------------------
// Finding 1: a cut-short FETCH is not a complete one
// ---------------------------------------------------------------------------

/// A server that cuts a body FETCH short with `faults`, then behaves: all
/// five messages end up stored, and the second pass asked for the rest.
fn cut_short_then_behaves(faults: Faults) {
    let server = ScriptedImap::start();
    let msgs = five(&server);
    server.set_faults(faults);
    let bus = Bus::start();
    let d = facteurd(&bus);
    let path = create(&bus, &server);
    wait_until(DEADLINE, || {
        (!body_fetches(&server).is_empty()).then_some(())
    })
    .unwrap_or_else(|| panic!("no body FETCH within {DEADLINE:?}\n{}", tail(&d, 40)));
    // The pass either failed (the fix) or claimed success with 2 (the bug).
    let after = wait_account(&bus, &d, &path, "done with the cut pass", DEADLINE, |p| {
        p.str("State") != "syncing" && p.u32("MessageCount") >= 2
    });
    eprintln!(
        "after the cut: State={} LastError={:?} MessageCount={}",
        after.str("State"),
        after.str("LastError"),
        after.u32("MessageCount")
    );
    let fetches_before = body_fetches(&server).len();
    server.behave();
    sync_until_ok(&bus, &d, &path);
    wait_account(&bus, &d, &path, "holding all 5", LONG, |p| {
        p.u32("MessageCount") == 5
    });
    let later: Vec<_> = body_fetches(&server)
        .into_iter()
        .skip(fetches_before)
        .collect();
    assert!(
        later
            .iter()
            .any(|(_, c)| c.contains("3:5") || c.contains(" 3 ")),
        "no later FETCH asked for UIDs 3 to 5: {later:?}"
    );
    assert_stored(&bus, &d, &path, &msgs);
}

#[test]
fn a_bye_after_two_of_five_loses_nothing() {
    cut_short_then_behaves(Faults {
        bye_after: Some(2),
        ..Faults::default()
    });
}

#[test]
fn a_tcp_close_after_two_of_five_loses_nothing() {
    cut_short_then_behaves(Faults {
        close_after: Some(2),
        ..Faults::default()
    });
}

#[test]
fn a_uid_left_out_of_an_ok_fetch_is_fetched_again() {
    let server = ScriptedImap::start();
    let msgs = five(&server);
    server.set_faults(Faults {
        omit_uid: Some(3),
        ..Faults::default()
    });
    let bus = Bus::start();
    let d = facteurd(&bus);
    let path = create(&bus, &server);
    wait_account(&bus, &d, &path, "synced with 4 of 5", DEADLINE, |p| {
        p.str("State") == "idle" && p.u32("MessageCount") == 4
    });
    // The server keeps leaving it out: asked for again at each pass, but
    // not in a loop.
    let before = body_fetches(&server).len();
    std::thread::sleep(Duration::from_secs(2));
    let during = body_fetches(&server).len() - before;
    assert!(
        during <= 1,
        "{during} body FETCHes in 2 s while idle: a loop"
    );
    sync_until_ok(&bus, &d, &path);
    assert_eq!(bus.account(&path).u32("MessageCount"), 4);
    let asked_again = body_fetches(&server)
        .iter()
        .skip(before)
        .any(|(_, c)| c.contains("FETCH 3 "));
    assert!(
        asked_again,
        "the Sync did not ask for UID 3 again: {:?}",
        body_fetches(&server)
    );
    server.behave();
    sync_until_ok(&bus, &d, &path);
    wait_account(&bus, &d, &path, "holding all 5", DEADLINE, |p| {
        p.u32("MessageCount") == 5
    });
    assert_stored(&bus, &d, &path, &msgs);
    // Nothing fetched twice: 4 and 5 were stored already.
    let last = body_fetches(&server);
    let (_, last) = last.last().expect("a body fetch");
    assert!(last.contains("FETCH 3 "), "last body FETCH: {last}");
}

/// kill -9 of facteurd during fetches a server keeps cutting short, several
/// times; then the server behaves: every message is stored exactly once.
#[test]
fn kill_rounds_during_cut_short_fetches_end_with_every_message_once() {
    let server = ScriptedImap::start();
    let msgs: Vec<Message> = (1..=14)
        .map(|u| {
            let m = message(u, &format!("Round message {u}"));
            server.add_message(b"INBOX", m.clone());
            m
        })
        .collect();
    let bus = Bus::start();
    let mut d = facteurd(&bus);
    let path = create(&bus, &server);
    for round in 0..5usize {
        server.set_faults(Faults {
            close_after: Some(if round % 2 == 0 { 2 } else { 1 }),
            bye_after: None,
            ..Faults::default()
        });
        let seen = body_fetches(&server).len();
        wait_until(LONG, || (body_fetches(&server).len() > seen).then_some(()))
            .unwrap_or_else(|| panic!("round {round}: no body FETCH\n{}", tail(&d, 40)));
        // Somewhere in the middle of storing what arrived.
        std::thread::sleep(Duration::from_millis(5 * round as u64));
        d.kill();
        assert!(
            bus.wait_for_name(names::BUS_NAME, false, DEADLINE),
            "the name is still owned after kill -9"
        );
        d.launch();
    }
    server.behave();
    sync_until_ok(&bus, &d, &path);
    wait_account(&bus, &d, &path, "holding all 14", LONG, |p| {
        p.u32("MessageCount") == 14
    });
    assert_stored(&bus, &d, &path, &msgs);
}

// ---------------------------------------------------------------------------
// Finding 8: an endless line is bounded, and retried with backoff
// ---------------------------------------------------------------------------

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/pid/stat");
    // The command name may hold spaces: fields count from after its ')'.
    let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

#[test]
fn an_endless_line_costs_little_cpu_and_is_retried_with_backoff() {
    endless_line_on("LIST", false);
}

#[test]
fn an_endless_greeting_costs_little_cpu_and_is_retried_with_backoff() {
    endless_line_on("GREETING", false);
}

/// `* OK x {268435455}` is resp-text, no literal: the endless line after it
/// is bounded like any other (it once passed as 256 MiB of "literal").
#[test]
fn an_endless_line_after_a_fake_literal_costs_little_cpu() {
    endless_line_on("LIST", true);
}

/// The server answers `command` with an endless line (after a `{N}` that
/// is text when `fake_literal`) for 10 s, then behaves.
fn endless_line_on(command: &str, fake_literal: bool) {
    let server = ScriptedImap::start();
    let msgs = vec![message(1, "After the endless line")];
    server.add_message(b"INBOX", msgs[0].clone());
    server.set_faults(if fake_literal {
        Faults {
            fake_literal_on: Some(command.into()),
            ..Faults::default()
        }
    } else {
        Faults {
            endless_on: Some(command.into()),
            ..Faults::default()
        }
    });
    let bus = Bus::start();
    let d = facteurd(&bus);
    let path = create(&bus, &server);
    wait_until(DEADLINE, || (server.connections() >= 1).then_some(())).expect("facteurd connects");
    let (pid, cpu0, conns0, t0) = (
        d.pid(),
        cpu_seconds(d.pid()),
        server.connections(),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(10));
    let (cpu, conns) = (cpu_seconds(pid) - cpu0, server.connections() - conns0);
    eprintln!(
        "{:?}: {cpu:.2} CPU-seconds, {conns} new connection(s)",
        t0.elapsed()
    );
    assert!(
        cpu < 2.0,
        "facteurd used {cpu:.2} CPU-seconds in 10 s of an endless line\n{}",
        tail(&d, 30)
    );
    assert!(
        conns <= 4,
        "{conns} connections in 10 s: not backing off\n{}",
        tail(&d, 30)
    );
    let p = wait_account(
        &bus,
        &d,
        &path,
        "offline with a clear error",
        DEADLINE,
        |p| p.str("State") == "offline" && p.str("LastError").contains("line"),
    );
    let error = p.str("LastError");
    assert!(error.contains("longer than"), "LastError: {error:?}");
    assert!(
        error.len() < 400,
        "LastError is not a sentence: {} bytes",
        error.len()
    );
    server.behave();
    sync_until_ok(&bus, &d, &path);
    wait_account(
        &bus,
        &d,
        &path,
        "synced after the server behaves",
        LONG,
        |p| p.u32("MessageCount") == 1 && p.str("LastError").is_empty(),
    );
    assert_stored(&bus, &d, &path, &msgs);
}

// ---------------------------------------------------------------------------
// Finding 7: what a server names must not take facteurd off the bus
// ---------------------------------------------------------------------------

/// A message in `mailbox` with this raw Subject header.
fn add_raw(server: &ScriptedImap, mailbox: &[u8], uid: u32, subject: &str) -> Message {
    let m = message(uid, subject);
    server.add_message(mailbox, m.clone());
    m
}

/// ListMessages of `folder` returns exactly `expected`, byte for byte.
fn assert_folder(bus: &Bus, path: &str, folder: &str, expected: &[&Message]) {
    let listed = list(bus, path, folder);
    assert_eq!(listed.len(), expected.len(), "ListMessages({folder:?})");
    let mut got: Vec<Vec<u8>> = listed.iter().map(|m| get(bus, &field(m, "id"))).collect();
    let mut want: Vec<Vec<u8>> = expected.iter().map(|m| m.body.clone()).collect();
    got.sort();
    want.sort();
    assert!(
        got == want,
        "the messages of {folder:?} are not what the server sent"
    );
}

#[test]
fn a_nul_in_a_folder_name_or_a_subject_keeps_facteurd_on_the_bus() {
    let server = ScriptedImap::start();
    let inbox = add_raw(&server, b"INBOX", 1, "Plain");
    let nul_subject = add_raw(&server, b"INBOX", 2, "=?utf-8?q?nul=00here?=");
    server.add_mailbox(b"Bad\0Name");
    let in_nul = add_raw(&server, b"Bad\0Name", 1, "In the NUL folder");
    // Modified UTF-7 for U+0000, and two spellings of "Café".
    server.add_mailbox(b"Utf7&AAA-Nul");
    let in_utf7 = add_raw(&server, b"Utf7&AAA-Nul", 1, "In the UTF-7 NUL folder");
    server.add_mailbox(b"Caf&AOk-");
    let in_utf7_cafe = add_raw(&server, b"Caf&AOk-", 1, "Cafe in modified UTF-7");
    server.add_mailbox("Café".as_bytes());
    let in_raw_cafe = add_raw(&server, "Café".as_bytes(), 1, "Cafe in raw UTF-8");
    let bus = Bus::start();
    let mut d = facteurd(&bus);
    let path = create(&bus, &server);
    wait_account(&bus, &d, &path, "synced", DEADLINE, |p| {
        p.str("State") == "idle" && p.u32("MessageCount") == 6
    });
    for round in ["before", "after"] {
        assert!(
            bus.name_has_owner(names::BUS_NAME),
            "facteurd left the bus {round} a restart"
        );
        let names: BTreeSet<String> = folder_names(&bus, &path).into_iter().collect();
        let expected: BTreeSet<String> = [
            "INBOX",
            "Bad\u{2400}Name",
            "Utf7\u{2400}Nul",
            "Café",
            "Café [Caf&AOk-]",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(names, expected, "ListFolders {round} a restart");
        assert_folder(&bus, &path, "INBOX", &[&inbox, &nul_subject]);
        let subjects: Vec<String> = list(&bus, &path, "INBOX")
            .iter()
            .map(|m| field(m, "subject"))
            .collect();
        // mail-parser turns that NUL into a space; either way it is not
        // sent raw (D-Bus would refuse it) and the list stays readable.
        assert!(
            subjects
                .iter()
                .any(|s| s.starts_with("nul") && s.ends_with("here")),
            "the Subject with a NUL is not listed: {subjects:?}"
        );
        assert_folder(&bus, &path, "Bad\u{2400}Name", &[&in_nul]);
        assert_folder(&bus, &path, "Utf7\u{2400}Nul", &[&in_utf7]);
        assert_folder(&bus, &path, "Café", &[&in_raw_cafe]);
        assert_folder(&bus, &path, "Café [Caf&AOk-]", &[&in_utf7_cafe]);
        if round == "before" {
            d.restart();
            sync_until_ok(&bus, &d, &path);
        }
    }
    // What facteurd asked for is the server's spelling, byte for byte.
    let commands = server.commands();
    assert!(
        commands
            .iter()
            .any(|(_, c)| c.contains("SELECT \"Bad\0Name\"")),
        "the NUL folder was not selected by its raw name"
    );
}

#[test]
fn an_invalid_utf8_folder_name_does_not_stop_the_sync() {
    let server = ScriptedImap::start();
    let inbox = add_raw(&server, b"INBOX", 1, "Inbox mail");
    server.add_mailbox(b"Bad\xffName");
    add_raw(&server, b"Bad\xffName", 1, "Behind an invalid name");
    server.add_mailbox(b"Work");
    let work = add_raw(&server, b"Work", 1, "Work mail");
    let bus = Bus::start();
    let mut d = facteurd(&bus);
    let path = create(&bus, &server);
    wait_account(&bus, &d, &path, "synced", DEADLINE, |p| {
        p.str("State") == "idle" && p.u32("MessageCount") == 2 && p.str("LastError").is_empty()
    });
    for round in ["before", "after"] {
        assert!(
            bus.name_has_owner(names::BUS_NAME),
            "facteurd left the bus {round} a restart"
        );
        let names: BTreeSet<String> = folder_names(&bus, &path).into_iter().collect();
        let expected: BTreeSet<String> = ["INBOX", "Bad\u{fffd}Name", "Work"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(names, expected, "ListFolders {round} a restart");
        assert_folder(&bus, &path, "INBOX", &[&inbox]);
        assert_folder(&bus, &path, "Work", &[&work]);
        assert_folder(&bus, &path, "Bad\u{fffd}Name", &[]);
        if round == "before" {
            d.restart();
            assert_eq!(sync_until_ok(&bus, &d, &path), 0);
        }
    }
}

#[test]
fn a_folder_list_that_cannot_be_read_does_not_stop_the_known_folders() {
    let server = ScriptedImap::start();
    let mut inbox = vec![add_raw(&server, b"INBOX", 1, "Inbox one")];
    server.add_mailbox(b"Work");
    let mut work = vec![add_raw(&server, b"Work", 1, "Work one")];
    let bus = Bus::start();
    let d = facteurd(&bus);
    let path = create(&bus, &server);
    wait_account(&bus, &d, &path, "synced", DEADLINE, |p| {
        p.str("State") == "idle" && p.u32("MessageCount") == 2
    });
    server.set_faults(Faults {
        garbage_list: true,
        ..Faults::default()
    });
    inbox.push(add_raw(&server, b"INBOX", 2, "Inbox two"));
    work.push(add_raw(&server, b"Work", 2, "Work two"));
    // The first full pass meets the unreadable LIST and fails; the next
    // ones sync the folders known so far.
    sync_until_ok(&bus, &d, &path);
    wait_account(&bus, &d, &path, "holding all 4", LONG, |p| {
        p.u32("MessageCount") == 4
    });
    assert!(bus.name_has_owner(names::BUS_NAME));
    assert_folder(&bus, &path, "INBOX", &inbox.iter().collect::<Vec<_>>());
    assert_folder(&bus, &path, "Work", &work.iter().collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------
// A refused delete is not a delete
// ---------------------------------------------------------------------------

/// `Manager.DeleteMessage(id)`.
fn delete(bus: &Bus, id: &str) -> Result<(), CallError> {
    bus.call_facteur(
        names::ROOT_PATH,
        names::MANAGER_INTERFACE,
        "DeleteMessage",
        &(id,),
    )
    .map(|_| ())
}

/// Every id announced by `NewMessages`.
fn announced(signals: &Signals) -> Vec<String> {
    signals
        .all()
        .iter()
        .filter(|s| s.interface == names::MANAGER_INTERFACE && s.member == "NewMessages")
        .flat_map(|s| {
            let (_, _, ids): (zbus::zvariant::OwnedObjectPath, String, Vec<String>) = s
                .message
                .body()
                .deserialize()
                .expect("NewMessages is (o, s, as)");
            ids
        })
        .collect()
}

#[test]
fn a_refused_delete_fails_keeps_the_message_and_announces_nothing() {
    let server = ScriptedImap::start();
    let msgs = vec![message(1, "Keep me"), message(2, "Neighbour")];
    for m in &msgs {
        server.add_message(b"INBOX", m.clone());
    }
    let bus = Bus::start();
    let d = facteurd(&bus);
    let path = create(&bus, &server);
    wait_account(&bus, &d, &path, "synced", DEADLINE, |p| {
        p.str("State") == "idle" && p.u32("MessageCount") == 2
    });
    let id = list(&bus, &path, "INBOX")
        .iter()
        .find(|m| field(m, "subject") == "Keep me")
        .map(|m| field(m, "id"))
        .expect("Keep me is listed");
    let signals = bus.signals();
    server.set_faults(Faults {
        refuse_store: true,
        ..Faults::default()
    });
    let err = delete(&bus, &id).expect_err("DeleteMessage succeeded though the server said NO");
    eprintln!("DeleteMessage: {err}");
    assert!(
        server
            .commands()
            .iter()
            .any(|(_, c)| c.contains("UID STORE 1 ")),
        "no UID STORE was sent"
    );
    // Still listed now, and after the passes that follow.
    assert_stored(&bus, &d, &path, &msgs);
    assert_eq!(server.uids(b"INBOX"), [1, 2], "UIDs on the server");
    server.behave();
    sync_until_ok(&bus, &d, &path);
    sync_until_ok(&bus, &d, &path);
    assert_stored(&bus, &d, &path, &msgs);
    assert!(
        announced(&signals).is_empty(),
        "a message was announced again after the refused delete: {:?}",
        announced(&signals)
    );
    // The server agrees now: deleted there and here.
    delete(&bus, &id).unwrap_or_else(|e| panic!("DeleteMessage failed: {e}\n{}", tail(&d, 40)));
    let left: Vec<String> = list(&bus, &path, "INBOX")
        .iter()
        .map(|m| field(m, "subject"))
        .collect();
    assert_eq!(left, ["Neighbour"], "ListMessages after the delete");
    sync_until_ok(&bus, &d, &path);
    assert_stored(&bus, &d, &path, &msgs[1..]);
    assert_eq!(
        server.uids(b"INBOX"),
        [2],
        "UIDs on the server after the delete"
    );
    let expunged = server
        .commands()
        .iter()
        .any(|(_, c)| c.ends_with(" EXPUNGE") || c.contains(" UID EXPUNGE "));
    assert!(expunged, "no EXPUNGE was sent");
    assert!(announced(&signals).is_empty(), "{:?}", announced(&signals));
}

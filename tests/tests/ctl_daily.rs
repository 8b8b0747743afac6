//! # facteurctl for daily use (issue 11, point 7)
//!
//! The real `facteurctl` against the real facteurd and Dovecot:
//!
//! - `sync --all` syncs every account and names each one on standard error;
//! - `folders ID` is a table (name, role, total, unread) and JSON;
//! - `messages` shows a flags column and `--limit 0` lists everything;
//! - `watch` prints id, account, folder, sender and subject (and one JSON
//!   object per line with `--json`);
//! - `account set`, `account password` and `account remove` print what they
//!   did, also as JSON;
//! - `account verify` of a receive-only account exits 0 and says SMTP is
//!   not set;
//! - every `--json` shape is parsed and its keys checked: lower kebab-case,
//!   `account` (the id) with `account-path`, dates as RFC 3339 with
//!   `date-unix`;
//! - a facteurctl started just before facteurd waits for it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;

use facteur_dbus::names;
use facteur_tests::dovecot::Dovecot;
use facteur_tests::two_way_fixture::*;
use facteur_tests::*;
use serde_json::Value as Json;

/// The Date of [`message`]: Thu, 01 Jan 2026 10:00:00 +0000.
const MESSAGE_DATE: i64 = 1_767_261_600;

fn json(s: &str) -> Json {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}):\n{s}"))
}

fn account_id(path: &str) -> String {
    names::account_id(path).expect("an account path").to_owned()
}

/// Every key of `v`, at every depth, is lower kebab-case.
fn assert_kebab(v: &Json, what: &str) {
    match v {
        Json::Object(m) => {
            for (k, inner) in m {
                let ok = !k.is_empty()
                    && !k.starts_with('-')
                    && !k.ends_with('-')
                    && !k.contains("--")
                    && k.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                assert!(ok, "{what}: key {k:?} is not lower kebab-case: {v}");
                assert_kebab(inner, what);
            }
        }
        Json::Array(a) => a.iter().for_each(|i| assert_kebab(i, what)),
        _ => {}
    }
}

/// `v` names account `path` as `account` (its id) and `account-path`.
fn assert_account(v: &Json, path: &str, what: &str) {
    assert_eq!(v["account"], account_id(path).as_str(), "{what}: {v}");
    assert_eq!(v["account-path"], path, "{what}: {v}");
}

/// `YYYY-MM-DDTHH:MM:SSZ`
fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
        && [0..4, 5..7, 8..10, 11..13, 14..16, 17..19]
            .iter()
            .all(|r| b[r.clone()].iter().all(u8::is_ascii_digit))
}

/// facteurctl running in the background, its output lines arriving on
/// channels.
struct Running {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

fn lines_of(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn spawn_ctl(bus: &Bus, args: &[&str]) -> Running {
    let mut child = Command::new(workspace_binary("facteurctl"))
        .args(args)
        .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
        .env_remove("DBUS_STARTER_ADDRESS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start facteurctl");
    let stdout = lines_of(child.stdout.take().expect("stdout"));
    let stderr = lines_of(child.stderr.take().expect("stderr"));
    Running {
        child,
        stdout,
        stderr,
    }
}

impl Running {
    /// The next line on `rx` that satisfies `want`, within the deadline.
    fn line(rx: &Receiver<String>, want: impl Fn(&str) -> bool, what: &str) -> String {
        let start = std::time::Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(start.elapsed());
            match rx.recv_timeout(left) {
                Ok(line) if want(&line) => return line,
                Ok(_) => continue,
                Err(e) => panic!("{what}: no such line within {DEADLINE:?} ({e})"),
            }
        }
    }

    fn stop(mut self) {
        send_signal(self.child.id(), "TERM");
        let status = wait_child(&mut self.child, DEADLINE, "facteurctl watch");
        assert!(status.success(), "watch ended with {status} on SIGTERM");
    }
}

/// `watch` (text or `--json`): started, a message delivered and synced,
/// the message's line.
fn watch_one(bus: &Bus, dovecot: &Dovecot, path: &str, json: bool, subject: &str) -> String {
    let args: &[&str] = if json {
        &["--json", "watch"]
    } else {
        &["watch"]
    };
    let watch = spawn_ctl(bus, args);
    Running::line(
        &watch.stderr,
        |l| l.starts_with("Watching for new messages"),
        "watch is ready",
    );
    dovecot.deliver(IMAP_USER, &message(subject));
    // IDLE may announce it first; a pass finds it in any case.
    bus.ctl_ok(&["sync", &account_id(path)], None);
    let line = Running::line(&watch.stdout, |l| l.contains(subject), "watch line");
    watch.stop();
    line
}

#[test]
fn daily_commands_and_their_json_shapes() {
    let dovecot = dovecot();
    dovecot.deliver(IMAP_USER, &message("Plain one"));
    dovecot.append(IMAP_USER, "INBOX", &message("Starred"), &["\\Flagged"]);
    dovecot.append(IMAP_USER, "INBOX", &message("Read one"), &["\\Seen"]);
    dovecot.deliver(POP3_USER, &message("Pop mail"));
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    // Neither account has an SMTP server: both are receive-only.
    let imap = imap_account(&bus, &d, &dovecot, 3);
    let pop3 = pop3_account(&bus, &d, &dovecot, 1);
    let (imap_id, pop3_id) = (account_id(&imap), account_id(&pop3));

    // sync --all: every account, a result line each, each named on stderr.
    let out = bus.ctl(&["sync", "--all"], None);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "sync --all: {stdout}{stderr}");
    let mut want = vec![format!("{imap_id}: 0"), format!("{pop3_id}: 0")];
    want.sort();
    assert_eq!(lines(&stdout), want, "{stdout}");
    for id in [&imap_id, &pop3_id] {
        assert!(
            stderr.contains(&format!("{id}: syncing (")),
            "{id} not named: {stderr}"
        );
    }
    assert!(stderr.contains("of 2)"), "{stderr}");
    let all = json(&bus.ctl_ok(&["--json", "sync", "--all"], None));
    assert_kebab(&all, "sync --all --json");
    let all = all.as_array().expect("an array");
    assert_eq!(all.len(), 2, "{all:?}");
    for entry in all {
        let path = if entry["account"] == imap_id.as_str() {
            &imap
        } else {
            &pop3
        };
        assert_account(entry, path, "sync --all --json");
        assert_eq!(entry["new-messages"], 0, "{entry}");
    }

    // folders ID: a table and JSON.
    let table = bus.ctl_ok(&["folders", &imap_id], None);
    let rows = lines(&table);
    assert!(
        rows[0].starts_with("NAME") && rows[0].contains("ROLE") && rows[0].contains("TOTAL"),
        "{table}"
    );
    assert!(rows[0].contains("UNREAD"), "{table}");
    let inbox = rows
        .iter()
        .find(|r| r.starts_with("INBOX "))
        .unwrap_or_else(|| panic!("no INBOX row: {table}"));
    let cells: Vec<&str> = inbox.split_whitespace().collect();
    // INBOX, inbox, 3 messages of which 2 unread.
    assert_eq!(cells, ["INBOX", "inbox", "3", "2"], "{table}");
    let folders = json(&bus.ctl_ok(&["--json", "folders", &imap_id], None));
    assert_kebab(&folders, "folders --json");
    let inbox = folders
        .as_array()
        .expect("an array")
        .iter()
        .find(|f| f["name"] == "INBOX")
        .unwrap_or_else(|| panic!("no INBOX: {folders}"))
        .clone();
    assert_eq!(inbox["messages"], 3, "{inbox}");
    assert_eq!(inbox["unread"], 2, "{inbox}");

    // messages: --limit, --limit 0, JSON with dates, the flags column.
    let listed = |limit: &str| {
        json(&bus.ctl_ok(
            &[
                "--json",
                "messages",
                "--account",
                &imap_id,
                "--limit",
                limit,
            ],
            None,
        ))
    };
    assert_eq!(listed("1").as_array().map(Vec::len), Some(1));
    let every = listed("0");
    assert_kebab(&every, "messages --json");
    let every = every.as_array().expect("an array").clone();
    assert_eq!(every.len(), 3, "--limit 0 lists every message: {every:?}");
    for m in &every {
        assert_account(m, &imap, "messages --json");
        assert_eq!(m["date-unix"], MESSAGE_DATE, "{m}");
        assert_eq!(m["date"], "2026-01-01T10:00:00Z", "{m}");
    }
    let table = bus.ctl_ok(&["messages", "--account", &imap_id, "--limit", "0"], None);
    let rows = lines(&table);
    assert_eq!(rows.len(), 4, "{table}");
    assert!(rows[0].starts_with("FLAGS  DATE"), "{table}");
    let row = |subject: &str| {
        *rows
            .iter()
            .find(|r| r.contains(subject))
            .unwrap_or_else(|| panic!("no {subject}: {table}"))
    };
    assert!(row("Plain one").starts_with("N  "), "{table}");
    assert!(row("Starred").starts_with("N! "), "{table}");
    assert!(row("Read one").starts_with("   "), "{table}");
    assert!(
        row("Read one").contains("2026-01-01"),
        "local date: {table}"
    );

    // show --json: the account and the date.
    let starred = every
        .iter()
        .find(|m| m["subject"] == "Starred")
        .expect("Starred listed");
    let id = starred["id"].as_str().expect("an id");
    let shown = json(&bus.ctl_ok(&["--json", "show", id], None));
    assert_kebab(&shown, "show --json");
    assert_account(&shown, &imap, "show --json");
    assert_eq!(shown["date"], "2026-01-01T10:00:00Z", "{shown}");
    assert_eq!(shown["date-unix"], MESSAGE_DATE, "{shown}");

    // account list / show / status: kebab-case, account + account-path,
    // times in RFC 3339.
    let list = json(&bus.ctl_ok(&["--json", "account", "list"], None));
    assert_kebab(&list, "account list --json");
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    let shown = json(&bus.ctl_ok(&["--json", "account", "show", &imap_id], None));
    assert_kebab(&shown, "account show --json");
    assert_account(&shown, &imap, "account show --json");
    assert_eq!(shown["email-address"], IMAP_USER, "{shown}");
    assert!(shown["last-sync-unix"].as_i64() > Some(0), "{shown}");
    let last_sync = shown["last-sync"].as_str().unwrap_or_default();
    assert!(is_rfc3339_utc(last_sync), "last-sync: {shown}");
    let status = json(&bus.ctl_ok(&["--json", "status", &imap_id], None));
    assert_kebab(&status, "status --json");
    assert_account(&status[0], &imap, "status --json");

    // account set / password print what they did.
    let out = bus.ctl_ok(&["account", "set", &imap_id, "name=Tess at home"], None);
    assert_eq!(
        out.trim(),
        format!("Changed name of account {imap_id}."),
        "{out}"
    );
    let set = json(&bus.ctl_ok(
        &[
            "--json",
            "account",
            "set",
            &imap_id,
            "name=Tess",
            "use-unified=yes",
        ],
        None,
    ));
    assert_kebab(&set, "account set --json");
    assert_account(&set, &imap, "account set --json");
    assert_eq!(set["changed"], serde_json::json!(["name", "use-unified"]));
    assert_eq!(bus.account(&imap).str("Name"), "Tess");
    let pw = format!("{PASSWORD}\n");
    let out = bus.ctl_ok(&["account", "password", &pop3_id], Some(&pw));
    assert_eq!(
        out.trim(),
        format!("Incoming password of account {pop3_id} set.")
    );
    let set = json(&bus.ctl_ok(&["--json", "account", "password", &pop3_id], Some(&pw)));
    assert_kebab(&set, "account password --json");
    assert_account(&set, &pop3, "account password --json");
    assert_eq!(set["password"], "incoming", "{set}");
    assert!(!set.to_string().contains(PASSWORD), "{set}");

    // account verify of a receive-only account: exit 0, SMTP not set.
    let out = bus.ctl(&["account", "verify", &imap_id], None);
    let report = text(&out.stdout);
    assert_eq!(exit_code(out.status), 0, "{report}{}", text(&out.stderr));
    assert!(report.contains("Incoming server: ok"), "{report}");
    let smtp = lines(&report)
        .into_iter()
        .find(|l| l.starts_with("SMTP server:"))
        .unwrap_or_else(|| panic!("no SMTP line: {report}"));
    assert!(smtp.contains("not set"), "{report}");
    assert!(!smtp.contains("FAILED"), "{report}");
    let report = json(&bus.ctl_ok(&["--json", "account", "verify", &imap_id], None));
    assert_kebab(&report, "account verify --json");
    assert_account(&report, &imap, "account verify --json");
    assert_eq!(report["incoming"], "ok", "{report}");
    assert_eq!(report["smtp"], "not-set", "{report}");
    assert_eq!(report["smtp-set"], false, "{report}");

    // watch: the sender and subject, then one JSON object per line.
    let line = watch_one(&bus, &dovecot, &imap, false, "Watched text");
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields.len(), 5, "{line:?}");
    assert_eq!(
        &fields[1..],
        [
            imap_id.as_str(),
            "INBOX",
            "Sender <sender@example.test>",
            "Watched text"
        ]
    );
    assert!(!fields[0].is_empty(), "{line:?}");
    let line = watch_one(&bus, &dovecot, &imap, true, "Watched json");
    let v = json(&line);
    assert_kebab(&v, "watch --json");
    assert_account(&v, &imap, "watch --json");
    assert_eq!(v["folder"], "INBOX", "{v}");
    assert_eq!(v["subject"], "Watched json", "{v}");
    assert_eq!(v["from"], "Sender <sender@example.test>", "{v}");
    assert_eq!(v["date-unix"], MESSAGE_DATE, "{v}");

    // account remove prints what it did.
    let removed = json(&bus.ctl_ok(&["--json", "account", "remove", &pop3_id], None));
    assert_kebab(&removed, "account remove --json");
    assert_account(&removed, &pop3, "account remove --json");
    assert_eq!(removed["removed"], true);
    let out = bus.ctl_ok(&["account", "remove", &imap_id], None);
    assert!(
        out.starts_with(&format!("Removed account {imap_id}")),
        "{out}"
    );
    assert!(bus.list_accounts().is_empty());
}

#[test]
fn facteurctl_started_just_before_facteurd_finds_it() {
    let bus = Bus::start();
    let ctl = spawn_ctl(&bus, &["--json", "account", "list"]);
    let _d = Facteurd::start(&bus);
    let mut child = ctl.child;
    let status = wait_child(&mut child, DEADLINE, "facteurctl account list");
    let out: Vec<String> = ctl.stdout.try_iter().collect();
    let err: Vec<String> = ctl.stderr.try_iter().collect();
    assert!(
        status.success(),
        "facteurctl did not wait for facteurd: {status}\n{}",
        err.join("\n")
    );
    // The output thread may still be reading the last line.
    let mut out = out.join("\n");
    if out.is_empty() {
        out = ctl.stdout.recv_timeout(DEADLINE).unwrap_or_default();
    }
    assert_eq!(json(&out), Json::Array(vec![]), "{out}");
}

//! # facteurctl's two-way sync commands
//!
//! Each new command through the real `facteurctl` binary against a real
//! facteurd and Dovecot: `read`, `unread`, `flag`, `unflag`, `flags`,
//! `move` and `copy` (`--to FOLDER` of the message's own account and
//! `--to ACCOUNT:FOLDER`), `folder list|create|rename|delete`, `outbox`
//! (list, `--json`, `cancel`) and `send --queue`; a `move` over two
//! accounts that fails half-way prints what it moved. Results are read back
//! over D-Bus; refusals must exit non-zero with the daemon's sentence.

use std::process::Output;

use facteur_dbus::names;
use facteur_tests::two_way_fixture::*;
use facteur_tests::*;
use serde_json::Value as Json;

fn account_id(path: &str) -> String {
    names::account_id(path).expect("an account path").to_owned()
}

/// The summary of the message with this subject in `folder`.
fn summary(bus: &Bus, path: &str, folder: &str, subject: &str) -> Summary {
    let list = list(bus, path, folder).expect("ListMessages");
    by_subject(&list, subject).clone()
}

/// A failed run: its exit code and its one line on standard error.
fn failed(out: &Output, what: &str) -> (i32, String) {
    assert!(!out.status.success(), "{what} succeeded");
    (exit_code(out.status), one_stderr_line(out, what))
}

#[test]
fn flags_moves_and_folders_through_facteurctl() {
    let dovecot = dovecot();
    dovecot.deliver(IMAP_USER, &message("One"));
    dovecot.deliver(IMAP_USER, &message("Two"));
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = imap_account(&bus, &d, &dovecot, 2);
    let account = account_id(&path);
    let one = string(&summary(&bus, &path, "INBOX", "One"), "id");
    let two = string(&summary(&bus, &path, "INBOX", "Two"), "id");

    // Flags: quiet on success, true at once.
    assert_eq!(bus.ctl_ok(&["read", &one, &two], None), "");
    assert_eq!(bus.account(&path).u32("UnreadCount"), 0);
    bus.ctl_ok(&["unread", &one], None);
    assert_eq!(bus.account(&path).u32("UnreadCount"), 1);
    assert!(!flag(&summary(&bus, &path, "INBOX", "One"), "seen"));
    bus.ctl_ok(&["flag", &one], None);
    assert!(flag(&summary(&bus, &path, "INBOX", "One"), "flagged"));
    bus.ctl_ok(&["unflag", &one], None);
    assert!(!flag(&summary(&bus, &path, "INBOX", "One"), "flagged"));
    let out = bus.ctl_ok(
        &[
            "--json", "flags", &two, "--add", "$Junk", "--remove", "seen",
        ],
        None,
    );
    let json: Json = serde_json::from_str(&out).expect("flags --json prints JSON");
    assert_eq!(json["ids"], serde_json::json!([two]));
    assert_eq!(json["add"], serde_json::json!(["$Junk"]));
    let s = summary(&bus, &path, "INBOX", "Two");
    assert!(keywords(&s).contains(&"$Junk".to_owned()), "{s:?}");
    assert!(!flag(&s, "seen"));
    assert_eq!(bus.account(&path).u32("UnreadCount"), 2);

    // Refusals: the daemon's sentence and exit 1; a usage error exit 2.
    let (code, line) = failed(&bus.ctl(&["read", "not-an-id"], None), "read not-an-id");
    assert_eq!(code, 1);
    assert!(line.starts_with("facteurctl: InvalidArgument: "), "{line}");
    let (code, line) = failed(
        &bus.ctl(&["flags", &one, "--add", "a b"], None),
        "flags --add 'a b'",
    );
    assert_eq!(code, 1);
    assert!(line.contains("InvalidArgument"), "{line}");
    let (code, _) = failed(
        &bus.ctl(&["flags", &one, "--add", "seen", "--remove", "seen"], None),
        "the same flag added and removed",
    );
    assert_eq!(code, 2);
    let out = bus.ctl(&["flags", &one], None);
    assert_eq!(exit_code(out.status), 2, "flags without a change");
    assert!(text(&out.stderr).contains("--add"), "{}", text(&out.stderr));
    assert_eq!(bus.account(&path).u32("UnreadCount"), 2);

    // Folders.
    bus.ctl_ok(&["folder", "create", &account, "Projects", "Later"], None);
    let listed: Json =
        serde_json::from_str(&bus.ctl_ok(&["--json", "folder", "list", &account], None))
            .expect("folder list --json prints JSON");
    let names_listed: Vec<&str> = listed
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    for want in ["INBOX", "Projects", "Later"] {
        assert!(names_listed.contains(&want), "{want}: {names_listed:?}");
    }
    let table = bus.ctl_ok(&["folder", "list", &account], None);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("Projects ")), "{table}");
    bus.ctl_ok(&["folder", "rename", &account, "Projects", "Done"], None);
    let now = folder_names(&bus, &path);
    assert!(now.contains("Done") && !now.contains("Projects"), "{now:?}");
    let (code, line) = failed(
        &bus.ctl(&["folder", "rename", &account, "Nope", "X"], None),
        "rename of an unknown folder",
    );
    assert_eq!(code, 1);
    assert!(line.contains("NotFound"), "{line}");

    // Moves: into the message's own account, and with ACCOUNT: given.
    bus.ctl_ok(&["move", &one, "--to", "Done"], None);
    summary(&bus, &path, "Done", "One");
    let inbox = list(&bus, &path, "INBOX").expect("INBOX");
    assert!(inbox.iter().all(|m| string(m, "subject") != "One"));
    let target = format!("{account}:Done");
    let out = bus.ctl_ok(&["--json", "copy", &two, "--to", &target], None);
    let json: Json = serde_json::from_str(&out).expect("copy --json prints JSON");
    assert_eq!(json["copied"][0]["folder"], "Done", "{json}");
    assert_eq!(json["copied"][0]["account"], account.as_str(), "{json}");
    assert_eq!(json["copied"][0]["account-path"], path.as_str(), "{json}");
    summary(&bus, &path, "Done", "Two");
    summary(&bus, &path, "INBOX", "Two");
    assert_eq!(bus.account(&path).u32("MessageCount"), 3);
    // "nobody:Done" names no account: all of it is a folder name, and no
    // such folder exists.
    let (code, line) = failed(
        &bus.ctl(&["move", &two, "--to", "nobody:Done"], None),
        "move to an unknown folder",
    );
    assert_eq!(code, 1);
    assert!(line.contains("NotFound"), "{line}");
    summary(&bus, &path, "INBOX", "Two");

    bus.ctl_ok(&["folder", "delete", &account, "Done", "Later"], None);
    let now = folder_names(&bus, &path);
    assert!(!now.contains("Done") && !now.contains("Later"), "{now:?}");
    assert_eq!(bus.account(&path).u32("MessageCount"), 1);

    // The server follows.
    let done = wait_until(DEADLINE, || {
        let f = dovecot.folders(IMAP_USER);
        let uids = dovecot.list_uids(IMAP_USER, "INBOX");
        (!f.iter()
            .any(|n| n == "Done" || n == "Later" || n == "Projects")
            && uids.len() == 1)
            .then_some(())
    });
    assert!(
        done.is_some(),
        "server folders {:?}, INBOX {:?}\n{}",
        dovecot.folders(IMAP_USER),
        dovecot.list_uids(IMAP_USER, "INBOX"),
        last_lines(&d.log(), 60)
    );
}

#[test]
fn outbox_and_send_queue_through_facteurctl() {
    let dovecot = dovecot();
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = imap_account(&bus, &d, &dovecot, 0);
    let account = account_id(&path);
    // An SMTP server that refuses connections: the message stays queued.
    bus.update_account(
        &path,
        &Settings::new()
            .s("smtp-host", LOOPBACK)
            .q("smtp-port", closed_port())
            .s("smtp-security", "none"),
    )
    .expect("Update with an SMTP server");

    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("mail.eml");
    std::fs::write(
        &file,
        b"From: tess@example.test\r\nTo: bob@example.test\r\nSubject: Queued hello\r\n\r\nHi.\r\n",
    )
    .expect("write the message");
    let file = file.to_str().expect("a UTF-8 path");
    let out = bus.ctl_ok(&["send", "--queue", "--account", &account, file], None);
    let queued = out.trim().to_owned();
    assert!(
        !queued.is_empty() && !queued.contains('\n'),
        "send --queue prints the outbox id: {out:?}"
    );
    assert_eq!(bus.account(&path).u32("OutboxCount"), 1);

    let table = bus.ctl_ok(&["outbox", &account], None);
    assert!(table.starts_with("ID"), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with(&queued))
        .unwrap_or_else(|| panic!("{queued} not listed:\n{table}"));
    assert!(row.contains("Queued hello"), "{row}");
    assert!(row.contains("bob@example.test"), "{row}");
    // Wait until a delivery was tried (and refused): the message is then
    // waiting for its next attempt, not being sent.
    let entry = wait_until(DEADLINE, || {
        let out = bus.ctl_ok(&["--json", "outbox", "list", &account], None);
        let json: Json = serde_json::from_str(&out).expect("outbox --json prints JSON");
        let e = json.as_array().and_then(|a| a.first()).cloned()?;
        (e["attempts"].as_u64() >= Some(1) && e["state"] == "queued").then_some(e)
    })
    .unwrap_or_else(|| panic!("no attempt made\n{}", last_lines(&d.log(), 40)));
    assert_eq!(entry["id"], queued.as_str());
    assert_eq!(entry["subject"], "Queued hello");
    assert!(!entry["last-error"].as_str().unwrap_or_default().is_empty());
    assert!(entry["queued-unix"].as_i64() > Some(0));
    assert!(
        entry["queued"].as_str().is_some_and(|t| t.ends_with('Z')),
        "queued is RFC 3339: {entry}"
    );

    // The sender may be trying it again right now (its backoff ended):
    // CancelOutbox refuses only that moment, so ask until it is past.
    let cancelled = wait_until(DEADLINE, || {
        let out = bus.ctl(&["outbox", "cancel", &account, &queued], None);
        if out.status.success() {
            return Some(());
        }
        let (_, line) = failed(&out, "outbox cancel");
        assert!(line.contains("NotSupported"), "{line}");
        None
    });
    assert!(
        cancelled.is_some(),
        "outbox cancel kept being refused\n{}",
        last_lines(&d.log(), 40)
    );
    assert_eq!(bus.account(&path).u32("OutboxCount"), 0);
    assert_eq!(
        bus.ctl_ok(&["outbox", &account], None).trim(),
        "The outbox is empty."
    );
    let (code, line) = failed(
        &bus.ctl(&["outbox", "cancel", &account, &queued], None),
        "a second cancel",
    );
    assert_eq!(code, 1);
    assert!(line.contains("NotFound"), "{line}");
    let (code, line) = failed(&bus.ctl(&["outbox", "nobody"], None), "an unknown account");
    assert_eq!(code, 1);
    assert!(line.contains("no account with id 'nobody'"), "{line}");
}

#[test]
fn a_move_over_two_accounts_that_fails_half_way_says_what_was_moved() {
    let dovecot = dovecot();
    dovecot.deliver(IMAP_USER, &message("Here"));
    dovecot.deliver(IMAP_USER, &message("Also here"));
    dovecot.deliver(POP3_USER, &message("There"));
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let imap = imap_account(&bus, &d, &dovecot, 2);
    let pop3 = pop3_account(&bus, &d, &dovecot, 1);
    let imap_id = account_id(&imap);
    // A folder only the IMAP account has: the POP3 account's call fails.
    bus.ctl_ok(&["folder", "create", &imap_id, "Only Here"], None);
    let here = string(&summary(&bus, &imap, "INBOX", "Here"), "id");
    let also = string(&summary(&bus, &imap, "INBOX", "Also here"), "id");
    let there = string(&summary(&bus, &pop3, "INBOX", "There"), "id");

    let out = bus.ctl(&["move", &here, &there, "--to", "Only Here"], None);
    let (code, line) = failed(&out, "a move into a folder of one account only");
    assert_eq!(code, 1);
    assert!(line.contains("NotFound"), "{line}");
    let said = text(&out.stdout);
    assert_eq!(
        said.trim(),
        format!("moved 1 message(s) of account {imap_id} to 'Only Here'"),
        "what was moved before the failure"
    );
    summary(&bus, &imap, "Only Here", "Here");
    summary(&bus, &pop3, "INBOX", "There");

    let out = bus.ctl(
        &["--json", "move", &also, &there, "--to", "Only Here"],
        None,
    );
    assert_eq!(exit_code(out.status), 1, "{}", text(&out.stderr));
    let json: Json = serde_json::from_str(&text(&out.stdout)).expect("--json prints JSON");
    assert_eq!(json["moved"][0]["account"], imap_id.as_str(), "{json}");
    assert_eq!(json["moved"][0]["ids"], serde_json::json!([also]), "{json}");
    assert_eq!(json["moved"].as_array().map(Vec::len), Some(1), "{json}");
    assert!(
        json["error"]
            .as_str()
            .is_some_and(|e| e.contains("NotFound")),
        "{json}"
    );
    summary(&bus, &imap, "Only Here", "Also here");
}

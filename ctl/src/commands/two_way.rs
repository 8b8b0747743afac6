//! # Two-way sync commands
//!
//! `read`, `unread`, `flag`, `unflag` and `flags` (Manager.SetFlags),
//! `move` and `copy` (Manager.MoveMessages and CopyMessages; without an
//! account in `--to`, each message goes to the folder of its own account,
//! read from Manager.GetSummaries), `folder list|create|rename|delete`
//! (Account.ListFolders, CreateFolder, RenameFolder, DeleteFolder) and
//! `outbox [list]|cancel` (Account.ListOutbox, CancelOutbox). Changes print
//! nothing on success (`--json`: what was done); the daemon applies them
//! locally at once and to the server when the account is connected. A
//! `move`/`copy` without an account makes one call per account of the
//! messages; when one fails, what the calls before it did is printed (in
//! `--json` too) before the error.

use std::collections::HashMap;

use facteur_dbus::names;
use facteur_dbus::proxy::{ManagerProxy, OwnedDict};
use serde_json::{json, Value as Json};
use zbus::zvariant::ObjectPath;

use super::Ctx;
use crate::bus::Bus;
use crate::cli::{FlagsArgs, FolderCommand, MoveArgs, OutboxArgs, OutboxCommand};
use crate::error::{from_daemon, no_such_account, Failure, On};
use crate::output::{self, Table};
use crate::shape;

/// Widest SUBJECT and TO cells in the `outbox` table.
const CELL_WIDTH: usize = 40;

/// The flag names of the contract for `read` and `flag`.
pub const SEEN: &str = "seen";
/// See [`SEEN`].
pub const FLAGGED: &str = "flagged";

/// `read`/`unread`/`flag`/`unflag`/`flags`: one SetFlags call.
pub async fn set_flags(
    ctx: &Ctx,
    ids: &[String],
    add: &[String],
    remove: &[String],
) -> Result<(), Failure> {
    if let Some(both) = add.iter().find(|f| remove.contains(f)) {
        return Err(Failure::Usage(format!(
            "'{both}' is both added and removed; give it once"
        )));
    }
    let bus = ctx.connect().await?;
    let manager = bus.manager().await?;
    manager
        .set_flags(&refs(ids), &refs(add), &refs(remove))
        .await
        .map_err(|e| from_daemon(e, On::Manager))?;
    if ctx.json {
        return output::json(&json!({ "ids": ids, "add": add, "remove": remove }), false);
    }
    Ok(())
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `flags ID… --add X --remove Y`
pub async fn flags(ctx: &Ctx, args: FlagsArgs) -> Result<(), Failure> {
    set_flags(ctx, &args.ids, &args.add, &args.remove).await
}

/// `--to [ACCOUNT:]FOLDER` split: the account part only when it could be
/// an account id (the caller checks that it is one).
pub fn split_target(to: &str) -> (Option<&str>, &str) {
    match to.split_once(':') {
        Some((account, folder))
            if !account.is_empty()
                && account
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            (Some(account), folder)
        }
        _ => (None, to),
    }
}

/// Whether an account with this id exists.
async fn account_exists(manager: &ManagerProxy<'_>, id: &str) -> Result<bool, Failure> {
    let paths = manager
        .list_accounts()
        .await
        .map_err(|e| from_daemon(e, On::Manager))?;
    Ok(paths
        .iter()
        .any(|p| names::account_id(p.as_str()) == Some(id)))
}

/// The ids grouped by the path of their account, in the order given, from
/// their summaries; an id without a summary is refused.
async fn by_account(
    manager: &ManagerProxy<'_>,
    ids: &[String],
) -> Result<Vec<(String, Vec<String>)>, Failure> {
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let summaries = manager
        .get_summaries(&refs)
        .await
        .map_err(|e| from_daemon(e, On::Manager))?;
    // Each summary read once: id → account path.
    let accounts: HashMap<String, String> = summaries
        .iter()
        .map(output::dict_to_json)
        .filter_map(|s| {
            let id = s.get("id").and_then(Json::as_str)?.to_owned();
            let account = s.get("account").and_then(Json::as_str)?.to_owned();
            Some((id, account))
        })
        .collect();
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for id in ids {
        let account = accounts
            .get(id)
            .cloned()
            .ok_or_else(|| Failure::Failed(format!("NotFound: no message with id '{id}'")))?;
        match groups.iter_mut().find(|(a, _)| *a == account) {
            Some((_, list)) => list.push(id.clone()),
            None => groups.push((account, vec![id.clone()])),
        }
    }
    Ok(groups)
}

/// `move` (`copy` false) and `copy`.
pub async fn move_or_copy(ctx: &Ctx, args: MoveArgs, copy: bool) -> Result<(), Failure> {
    let (named, folder) = split_target(&args.to);
    if folder.is_empty() {
        return Err(Failure::Usage(format!(
            "--to '{}': no folder named; give [ACCOUNT:]FOLDER",
            args.to
        )));
    }
    let bus = ctx.connect().await?;
    let manager = bus.manager().await?;
    let (groups, folder) = match named {
        Some(id) if account_exists(&manager, id).await? => (
            vec![(names::account_path(id), args.ids.clone())],
            folder.to_owned(),
        ),
        // Not an account: the whole text names a folder.
        _ => (by_account(&manager, &args.ids).await?, args.to.clone()),
    };
    let mut done = Vec::new();
    for (path, ids) in &groups {
        let id = names::account_id(path).unwrap_or(path).to_owned();
        let answer = match ObjectPath::try_from(path.as_str()) {
            Err(_) => Err(no_such_account(&id)),
            Ok(target) => {
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                let answer = if copy {
                    manager.copy_messages(&refs, &target, &folder).await
                } else {
                    manager.move_messages(&refs, &target, &folder).await
                };
                answer.map_err(|e| from_daemon(e, On::Manager))
            }
        };
        if let Err(e) = answer {
            // One call per account: say what the calls before this one did.
            if !done.is_empty() {
                report_moved(ctx, copy, &done, Some(&e))?;
            }
            return Err(e);
        }
        done.push(shape::with_account(
            &id,
            json!({ "folder": folder, "ids": ids }),
        ));
    }
    if ctx.json {
        return report_moved(ctx, copy, &done, None);
    }
    Ok(())
}

/// What `move`/`copy` did: `--json` `{"moved"|"copied": [...]}` (with
/// `"error"` when a later call failed); in text, only after a failure, one
/// line per account done.
fn report_moved(
    ctx: &Ctx,
    copy: bool,
    done: &[Json],
    error: Option<&Failure>,
) -> Result<(), Failure> {
    let what = if copy { "copied" } else { "moved" };
    if ctx.json {
        let mut doc = json!({ what: done });
        if let Some(line) = error.and_then(Failure::line) {
            doc["error"] = Json::String(line.to_owned());
        }
        return output::json(&doc, false);
    }
    let lines: Vec<String> = done.iter().map(|d| moved_line(what, d)).collect();
    output::text(&lines.join("\n"))
}

/// `moved 2 message(s) of account bob_example_org to 'Archive'`, for the
/// part of a `move` that was done before a failure.
fn moved_line(what: &str, done: &Json) -> String {
    let n = done.get("ids").and_then(Json::as_array).map_or(0, Vec::len);
    let account = done.get("account").and_then(Json::as_str).unwrap_or("?");
    let folder = done.get("folder").and_then(Json::as_str).unwrap_or("?");
    format!("{what} {n} message(s) of account {account} to '{folder}'")
}

/// `folder list|create|rename|delete`
pub async fn folder(ctx: &Ctx, cmd: FolderCommand) -> Result<(), Failure> {
    let bus = ctx.connect().await?;
    match cmd {
        FolderCommand::List { account } => list_folders(ctx, &bus, &account).await,
        FolderCommand::Create { account, names } => {
            let proxy = bus.account(&account).await?;
            for name in &names {
                if let Err(e) = proxy.create_folder(name).await {
                    return Err(bus
                        .account_failure(&account, e, On::AccountItem(&account))
                        .await);
                }
            }
            done(
                ctx,
                shape::with_account(&account, json!({ "created": names })),
            )
        }
        FolderCommand::Rename { account, from, to } => {
            let proxy = bus.account(&account).await?;
            if let Err(e) = proxy.rename_folder(&from, &to).await {
                return Err(bus
                    .account_failure(&account, e, On::AccountItem(&account))
                    .await);
            }
            done(
                ctx,
                shape::with_account(&account, json!({ "renamed": { "from": from, "to": to } })),
            )
        }
        FolderCommand::Delete { account, names } => {
            let proxy = bus.account(&account).await?;
            for name in &names {
                if let Err(e) = proxy.delete_folder(name).await {
                    return Err(bus
                        .account_failure(&account, e, On::AccountItem(&account))
                        .await);
                }
            }
            done(
                ctx,
                shape::with_account(&account, json!({ "deleted": names })),
            )
        }
    }
}

/// Nothing on success, or the JSON of what was done.
fn done(ctx: &Ctx, what: Json) -> Result<(), Failure> {
    if ctx.json {
        output::json(&what, false)
    } else {
        Ok(())
    }
}

async fn list_folders(ctx: &Ctx, bus: &Bus, account: &str) -> Result<(), Failure> {
    let proxy = bus.account(account).await?;
    let list = match proxy.list_folders().await {
        Ok(list) => list,
        Err(e) => return Err(bus.account_failure(account, e, On::Account(account)).await),
    };
    let list: Vec<Json> = list.iter().map(shape::dict).collect();
    if ctx.json {
        return output::json(&Json::Array(list), false);
    }
    if list.is_empty() {
        return output::text("No folders yet (the account has not synced).");
    }
    output::text(&folders_table(&list))
}

/// `folders ID`: the same as `folder list ID`.
pub async fn folders(ctx: &Ctx, account: &str) -> Result<(), Failure> {
    let bus = ctx.connect().await?;
    list_folders(ctx, &bus, account).await
}

/// The `folders` / `folder list` table: name, role, total, unread.
pub fn folders_table(folders: &[Json]) -> String {
    let mut table = Table::new(["NAME", "ROLE", "TOTAL", "UNREAD"]);
    for f in folders {
        let text = |k: &str| f.get(k).and_then(Json::as_str).unwrap_or_default();
        let number = |k: &str| f.get(k).and_then(Json::as_u64).unwrap_or(0).to_string();
        table.row([
            text("name").to_owned(),
            match text("role") {
                "" => "-".to_owned(),
                role => role.to_owned(),
            },
            number("messages"),
            number("unread"),
        ]);
    }
    table.render()
}

/// `outbox [list] ACCOUNT`, `outbox cancel ACCOUNT ID`
pub async fn outbox(ctx: &Ctx, args: OutboxArgs) -> Result<(), Failure> {
    let command = match (args.command, args.account) {
        (Some(c), _) => c,
        (None, Some(account)) => OutboxCommand::List { account },
        (None, None) => {
            return Err(Failure::Usage(
                "outbox: give an account id ('facteurctl outbox ACCOUNT')".to_owned(),
            ))
        }
    };
    let bus = ctx.connect().await?;
    match command {
        OutboxCommand::List { account } => {
            let proxy = bus.account(&account).await?;
            let list: Vec<OwnedDict> = match proxy.list_outbox().await {
                Ok(list) => list,
                Err(e) => {
                    return Err(bus
                        .account_failure(&account, e, On::Account(&account))
                        .await)
                }
            };
            let list: Vec<Json> = list.iter().map(shape::dict).collect();
            if ctx.json {
                return output::json(&Json::Array(list), false);
            }
            if list.is_empty() {
                return output::text("The outbox is empty.");
            }
            output::text(&outbox_table(&list))
        }
        OutboxCommand::Cancel { account, id } => {
            let proxy = bus.account(&account).await?;
            if let Err(e) = proxy.cancel_outbox(&id).await {
                return Err(bus
                    .account_failure(&account, e, On::AccountItem(&account))
                    .await);
            }
            done(
                ctx,
                shape::with_account(&account, json!({ "cancelled": id })),
            )
        }
    }
}

/// The `outbox` table: id, state, attempts, when queued, recipients,
/// subject, and the last error.
pub fn outbox_table(list: &[Json]) -> String {
    let mut table = Table::new([
        "ID",
        "STATE",
        "ATTEMPTS",
        "QUEUED",
        "TO",
        "SUBJECT",
        "LAST ERROR",
    ]);
    for m in list {
        let text = |k: &str| m.get(k).and_then(Json::as_str).unwrap_or_default();
        let queued = m
            .get("queued-unix")
            .and_then(Json::as_i64)
            .map(|t| output::local_time(t).chars().take(16).collect())
            .unwrap_or_else(|| "-".to_owned());
        table.row([
            text("id").to_owned(),
            text("state").to_owned(),
            m.get("attempts")
                .and_then(Json::as_u64)
                .unwrap_or(0)
                .to_string(),
            queued,
            output::truncate(&output::one_line(text("to")), CELL_WIDTH),
            output::truncate(&output::one_line(text("subject")), CELL_WIDTH),
            output::one_line(text("last-error")),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_only_at_an_account_like_prefix() {
        assert_eq!(split_target("Archive"), (None, "Archive"));
        assert_eq!(
            split_target("bob_example_org:INBOX/Work"),
            (Some("bob_example_org"), "INBOX/Work")
        );
        // Not an account id (capitals, a space): all of it is the folder.
        assert_eq!(split_target("Work:2026"), (None, "Work:2026"));
        assert_eq!(split_target("a b:c"), (None, "a b:c"));
        assert_eq!(split_target(":x"), (None, ":x"));
        assert_eq!(split_target("bob:"), (Some("bob"), ""));
    }

    #[test]
    fn a_partial_move_names_what_was_done() {
        let d = json!({ "account": "bob_example_org", "folder": "Archive", "ids": ["a", "b"] });
        assert_eq!(
            moved_line("moved", &d),
            "moved 2 message(s) of account bob_example_org to 'Archive'"
        );
    }

    #[test]
    fn the_outbox_table_shows_each_entry() {
        let list = vec![json!({
            "id": "q1", "state": "failed", "attempts": 3, "queued-unix": 0,
            "to": "bob@example.org", "subject": "Hi\nthere",
            "last-error": "550 no such user",
        })];
        let t = outbox_table(&list);
        let row = t.lines().nth(1).unwrap();
        assert!(row.starts_with("q1  "), "{t}");
        for cell in [
            "failed",
            "3",
            &output::local_time(0).chars().take(16).collect::<String>(),
            "Hi there",
            "550 no such user",
        ] {
            assert!(row.contains(cell), "{cell} missing: {t}");
        }
    }
}

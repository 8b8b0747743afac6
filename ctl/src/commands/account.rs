//! # Account commands
//!
//! `account add|list|show|set|password|verify|remove`. Settings
//! arrive already typed from [`crate::cli`] and [`crate::settings`];
//! passwords come from [`crate::password`]. The rendering of lists, property
//! blocks and verify reports is kept in pure functions so it can be tested
//! without a daemon.

use facteur_dbus::keys::{self, FOLDER_ROLES};
use facteur_dbus::names;
use facteur_dbus::proxy::OwnedDict;
use serde_json::{json, Value as Json};
use zbus::zvariant::Value;

use super::Ctx;
use crate::bus::Bus;
use crate::cli::{AddArgs, SetArgs, VerifyArgs};
use crate::error::{from_daemon, Failure, On, EXIT_FAILED};
use crate::output::{self, Table};
use crate::password::{self, Input, Passwords, Stdin};
use crate::settings::{parse_assignments, Settings};
use crate::shape;
use crate::wire::{prop, report};

/// `account add`: CreateAccount with the flags given and the passwords read.
pub async fn add(ctx: &Ctx, args: AddArgs) -> Result<(), Failure> {
    let bus = ctx.connect().await?;
    let mut input = Stdin;
    if password::will_prompt(args.passwords, &input) {
        // Do not ask for a password the daemon is not there to take.
        bus.ping().await?;
    }
    let passwords = password::collect(args.passwords, true, &mut input)?;
    let mut settings = args.settings.settings;
    add_passwords(&mut settings, passwords)?;
    let manager = bus.manager().await?;
    let path = manager
        .create_account(settings.to_dict())
        .await
        .map_err(|e| from_daemon(e, On::Manager))?;
    let id = names::account_id(path.as_str()).unwrap_or(path.as_str());
    if ctx.json {
        output::json(&shape::with_account(id, json!({})), false)
    } else {
        output::text(id)
    }
}

/// Put the passwords read into the settings to send.
pub fn add_passwords(settings: &mut Settings, passwords: Passwords) -> Result<(), Failure> {
    let pairs = [
        (keys::INCOMING_PASSWORD, passwords.incoming),
        (keys::SMTP_PASSWORD, passwords.smtp),
    ];
    for (key, password) in pairs {
        if let Some(p) = password {
            settings
                .insert_secret(key, p)
                .map_err(|e| Failure::Usage(e.to_string()))?;
        }
    }
    Ok(())
}

/// `account list`: every account, as a table or a JSON array.
pub async fn list(ctx: &Ctx) -> Result<(), Failure> {
    let bus = ctx.connect().await?;
    let accounts = bus.accounts().await?;
    if ctx.json {
        let all = accounts
            .iter()
            .map(|(_, props)| shape::account(props))
            .collect();
        return output::json(&Json::Array(all), false);
    }
    if accounts.is_empty() {
        return output::text("No accounts. Add one with 'facteurctl account add'.");
    }
    output::text(&list_table(&accounts))
}

/// The `account list` table.
pub fn list_table(accounts: &[(String, OwnedDict)]) -> String {
    let mut table = Table::new([
        "ID",
        "NAME",
        "EMAIL",
        "PROTOCOL",
        "STATE",
        "MESSAGES/UNREAD",
    ]);
    for (id, props) in accounts {
        let get = |name: &str| {
            props
                .get(name)
                .map_or("?".to_owned(), |v| output::display(v))
        };
        table.row([
            id.clone(),
            get(prop::NAME),
            get(prop::EMAIL_ADDRESS),
            get(prop::INCOMING_PROTOCOL),
            get(prop::STATE),
            format!("{}/{}", get(prop::MESSAGE_COUNT), get(prop::UNREAD_COUNT)),
        ]);
    }
    table.render()
}

/// `account show`: every property.
pub async fn show(ctx: &Ctx, id: &str) -> Result<(), Failure> {
    let bus = ctx.connect().await?;
    let props = bus.account_properties(id).await?;
    if ctx.json {
        output::json(&shape::account(&props), false)
    } else {
        output::text(&show_text(&props))
    }
}

/// The `account show` block: known properties in a fixed order, then any
/// others sorted by name.
pub fn show_text(props: &OwnedDict) -> String {
    let mut names: Vec<&str> = prop::SHOW_ORDER
        .iter()
        .copied()
        .filter(|n| props.contains_key(*n))
        .collect();
    let mut rest: Vec<&str> = props
        .keys()
        .map(String::as_str)
        .filter(|n| !prop::SHOW_ORDER.contains(n))
        .collect();
    rest.sort_unstable();
    names.extend(rest);
    let pairs: Vec<(&str, String)> = names
        .into_iter()
        .filter_map(|n| props.get(n).map(|v| (n, show_value(n, v))))
        .collect();
    output::key_values(&pairs)
}

fn show_value(name: &str, value: &Value<'_>) -> String {
    match (name, value) {
        (prop::FOLDERS, Value::Dict(_)) => folders_text(&output::to_json(value)),
        (prop::LAST_SYNC, Value::U64(0)) => "never".to_owned(),
        (prop::LAST_SYNC, Value::U64(t)) => match i64::try_from(*t) {
            Ok(t) => format!("{} UTC", output::utc_time(t)),
            Err(_) => t.to_string(),
        },
        (prop::NEXT_RETRY | prop::PROGRESS, _) => super::sync::status_value(name, value),
        _ => output::display(value),
    }
}

/// `role=folder` pairs, the known roles first in their usual order.
pub fn folders_text(folders: &Json) -> String {
    let Some(map) = folders.as_object() else {
        return "-".to_owned();
    };
    let rank = |role: &str| {
        FOLDER_ROLES
            .iter()
            .position(|(r, _)| *r == role)
            .unwrap_or(FOLDER_ROLES.len())
    };
    let mut roles: Vec<&String> = map.keys().collect();
    roles.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    let pairs: Vec<String> = roles
        .into_iter()
        .map(|role| {
            let folder = map.get(role).and_then(Json::as_str).unwrap_or_default();
            output::one_line(&format!("{role}={folder}"))
        })
        .collect();
    if pairs.is_empty() {
        "-".to_owned()
    } else {
        pairs.join(", ")
    }
}

/// `account set`: Update with the KEY=VALUE pairs and passwords given.
pub async fn set(ctx: &Ctx, args: SetArgs) -> Result<(), Failure> {
    let mut settings =
        parse_assignments(&args.changes).map_err(|e| Failure::Usage(e.describe(Some(&args.id))))?;
    if settings.is_empty() && !args.passwords.password_stdin && !args.passwords.smtp_password_stdin
    {
        return Err(Failure::Usage(
            "nothing to change: give KEY=VALUE settings (see 'facteurctl account set \
             --help'), --password-stdin or --smtp-password-stdin"
                .to_owned(),
        ));
    }
    let bus = ctx.connect().await?;
    let passwords = password::collect(args.passwords, false, &mut Stdin)?;
    add_passwords(&mut settings, passwords)?;
    update(&bus, &args.id, &settings).await?;
    let changed = settings.names();
    if ctx.json {
        return output::json(
            &shape::with_account(&args.id, json!({ "changed": changed })),
            false,
        );
    }
    output::text(&set_line(&args.id, &changed))
}

/// What `account set` prints: the keys changed (never a value: passwords
/// are among them).
pub fn set_line(id: &str, changed: &[&str]) -> String {
    format!("Changed {} of account {id}.", changed.join(", "))
}

async fn update(bus: &Bus, id: &str, settings: &Settings) -> Result<(), Failure> {
    let account = bus.account(id).await?;
    match account.update(settings.to_dict()).await {
        Ok(()) => Ok(()),
        Err(e) => Err(bus.account_failure(id, e, On::Account(id)).await),
    }
}

/// `account password`: one password, typed twice at a hidden prompt, or
/// the first line of standard input.
pub async fn password(ctx: &Ctx, id: &str, smtp: bool) -> Result<(), Failure> {
    let key = if smtp {
        keys::SMTP_PASSWORD
    } else {
        keys::INCOMING_PASSWORD
    };
    let bus = ctx.connect().await?;
    // Do not ask for the password of an account that is not there.
    bus.account_properties(id).await?;
    let mut input = Stdin;
    let label = format!("account password {id}");
    let prompt = if smtp {
        format!("SMTP password for {id}: ")
    } else {
        format!("Incoming password for {id}: ")
    };
    let secret = password::required(&mut input, &label, &prompt)?;
    if input.is_terminal() {
        let again = input
            .prompt_hidden("Once more: ")
            .map_err(|e| Failure::Failed(format!("cannot read the password: {e}")))?;
        if again != secret {
            return Err(Failure::Usage(
                "the two passwords differ; nothing was changed".to_owned(),
            ));
        }
    }
    let mut settings = Settings::default();
    settings
        .insert_secret(key, secret)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    update(&bus, id, &settings).await?;
    let which = if smtp { "smtp" } else { "incoming" };
    if ctx.json {
        return output::json(
            &shape::with_account(id, json!({ "password": which, "set": true })),
            false,
        );
    }
    let which = if smtp { "SMTP" } else { "Incoming" };
    output::text(&format!("{which} password of account {id} set."))
}

/// `account remove`: Delete, and a line (or JSON) saying so.
pub async fn remove(ctx: &Ctx, id: &str) -> Result<(), Failure> {
    let bus = ctx.connect().await?;
    let account = bus.account(id).await?;
    if let Err(e) = account.delete().await {
        return Err(bus.account_failure(id, e, On::Account(id)).await);
    }
    if ctx.json {
        return output::json(&shape::with_account(id, json!({ "removed": true })), false);
    }
    output::text(&format!(
        "Removed account {id}, its passwords and its local messages."
    ))
}

/// `account verify`: the report of Verify (saved settings) or
/// VerifySettings (`--settings`); exit 1 when a server failed.
pub async fn verify(ctx: &Ctx, args: VerifyArgs) -> Result<(), Failure> {
    let bus = ctx.connect().await?;
    let report = match &args.id {
        Some(id) => {
            let account = bus.account(id).await?;
            match account.verify().await {
                Ok(r) => r,
                Err(e) => return Err(bus.account_failure(id, e, On::Account(id)).await),
            }
        }
        None => {
            let mut settings =
                parse_assignments(&args.settings).map_err(|e| Failure::Usage(e.describe(None)))?;
            let mut input = Stdin;
            if password::will_prompt(args.passwords, &input) {
                bus.ping().await?;
            }
            let passwords = password::collect(args.passwords, true, &mut input)?;
            add_passwords(&mut settings, passwords)?;
            let manager = bus.manager().await?;
            manager
                .verify_settings(settings.to_dict())
                .await
                .map_err(|e| from_daemon(e, On::Manager))?
        }
    };
    print_report(ctx, args.id.as_deref(), &report)
}

/// Print a verify report (text or JSON, with the account when one was
/// verified); exit 1 when a server failed.
pub fn print_report(ctx: &Ctx, id: Option<&str>, report: &OwnedDict) -> Result<(), Failure> {
    let report = shape::dict(report);
    if ctx.json {
        let mut report = match id {
            Some(id) => shape::with_account(id, report.clone()),
            None => report.clone(),
        };
        report_verdicts(&mut report);
        output::json(&report, false)?;
    } else {
        output::text(&report_text(&report))?;
    }
    if report_ok(&report) {
        Ok(())
    } else {
        Err(Failure::Quiet(EXIT_FAILED))
    }
}

/// Whether no server in a verify report failed (a missing `*-ok` key
/// counts as not tried, not as failed).
pub fn report_ok(report: &Json) -> bool {
    let incoming = report.get(report::INCOMING_OK).and_then(Json::as_bool) != Some(false);
    let smtp =
        smtp_not_set(report) || report.get(report::SMTP_OK).and_then(Json::as_bool) != Some(false);
    incoming && smtp
}

/// Whether the report is of settings without an SMTP server (a
/// receive-only account): `smtp-set` false. SMTP is then neither ok nor
/// failed.
pub fn smtp_not_set(report: &Json) -> bool {
    report.get(report::SMTP_SET).and_then(Json::as_bool) == Some(false)
}

/// What `--json` adds to a report: `incoming` and `smtp` as `ok`,
/// `failed` (or, for SMTP, `not-set`).
pub fn report_verdicts(report: &mut Json) {
    let verdict = |ok: &str| match report.get(ok).and_then(Json::as_bool) {
        Some(true) => Some("ok"),
        Some(false) => Some("failed"),
        None => None,
    };
    let incoming = verdict(report::INCOMING_OK);
    let smtp = if smtp_not_set(report) {
        Some("not-set")
    } else {
        verdict(report::SMTP_OK)
    };
    if let Json::Object(m) = report {
        for (k, v) in [("incoming", incoming), ("smtp", smtp)] {
            if let Some(v) = v {
                m.insert(k.to_owned(), Json::from(v));
            }
        }
    }
}

/// A verify report for a person: one line per server, the capabilities,
/// the time taken, and the steps as a table.
pub fn report_text(report: &Json) -> String {
    let server = |ok: &str, err: &str| -> Option<String> {
        let error = report
            .get(err)
            .and_then(Json::as_str)
            .filter(|e| !e.is_empty());
        match (report.get(ok).and_then(Json::as_bool), error) {
            (Some(true), _) => Some("ok".to_owned()),
            (Some(false), Some(e)) => Some(format!("FAILED: {}", output::one_line(e))),
            (Some(false), None) => Some("FAILED".to_owned()),
            (None, Some(e)) => Some(output::one_line(e)),
            (None, None) => None,
        }
    };
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(s) = server(report::INCOMING_OK, report::INCOMING_ERROR) {
        pairs.push(("Incoming server", s));
    }
    if smtp_not_set(report) {
        pairs.push((
            "SMTP server",
            "not set (a receive-only account: it cannot send mail)".to_owned(),
        ));
    } else if let Some(s) = server(report::SMTP_OK, report::SMTP_ERROR) {
        pairs.push(("SMTP server", s));
    }
    if let Some(caps) = report.get(report::CAPABILITIES).and_then(Json::as_array) {
        let caps: Vec<&str> = caps.iter().filter_map(Json::as_str).collect();
        let caps = if caps.is_empty() {
            "-".to_owned()
        } else {
            output::one_line(&caps.join(" "))
        };
        pairs.push(("Capabilities", caps));
    }
    if let Some(ms) = report.get(report::ELAPSED_MS).and_then(Json::as_u64) {
        pairs.push(("Time", format!("{ms} ms")));
    }
    let mut out = output::key_values(&pairs);
    let steps = report
        .get(report::STEPS)
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !steps.is_empty() {
        out.push_str("Steps:\n");
        let mut table = Table::new(["SERVICE", "STEP", "RESULT", "TIME", "DETAIL"]).indent(2);
        for step in steps {
            let text = |k: &str| {
                step.get(k)
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let result = match step.get(report::OK).and_then(Json::as_bool) {
                Some(true) => "ok",
                Some(false) => "FAILED",
                None => "?",
            };
            let time = step
                .get(report::ELAPSED_MS)
                .and_then(Json::as_u64)
                .map_or_else(String::new, |ms| format!("{ms} ms"));
            table.row([
                text(report::SERVICE),
                text(report::STEP),
                result.to_owned(),
                time,
                text(report::DETAIL),
            ]);
        }
        out.push_str(&table.render());
    }
    out
}

#[cfg(test)]
mod tests;

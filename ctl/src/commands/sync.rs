//! # Sync and status commands
//!
//! `sync [ACCOUNT]` runs `Account.Sync` and, while it runs, shows the
//! account's `Progress` through [`crate::progress`]; the result (the number
//! of new messages) goes to standard output. `status [ACCOUNT]` is the health
//! of each account in one table: state, whether only the user can fix it
//! (`AttentionNeeded`), `LastErrorCode`, the next retry as a local time, and
//! the progress of a pass under way.

use std::io::IsTerminal as _;

use facteur_dbus::names;
use facteur_dbus::proxy::OwnedDict;
use futures_util::StreamExt as _;
use serde_json::{json, Value as Json};
use zbus::zvariant::Value;

use super::Ctx;
use crate::bus::Bus;
use crate::error::{Failure, On, EXIT_FAILED};
use crate::output::{self, Table};
use crate::progress::{self, Display};
use crate::shape;
use crate::wire::prop;

/// `sync [ACCOUNT]` / `sync --all`: one sync pass of the account, or of
/// every account in turn; prints the number of new messages.
pub async fn sync(ctx: &Ctx, id: Option<&str>) -> Result<(), Failure> {
    let bus = ctx.connect().await?;
    let Some(id) = id else {
        return sync_all(ctx, &bus).await;
    };
    let count = sync_one(&bus, id).await?;
    if ctx.json {
        output::json(
            &shape::with_account(id, json!({ "new-messages": count })),
            false,
        )
    } else {
        output::text(&count.to_string())
    }
}

/// Every account, one after the other; a failure is reported and the others
/// still run, and the exit status says that one failed.
async fn sync_all(ctx: &Ctx, bus: &Bus) -> Result<(), Failure> {
    let accounts = bus.accounts().await?;
    if accounts.is_empty() && !ctx.json {
        return output::text("No accounts. Add one with 'facteurctl account add'.");
    }
    let mut failed = false;
    let mut results = Vec::new();
    let terminal = std::io::stderr().is_terminal();
    for (n, (id, _)) in accounts.iter().enumerate() {
        if !terminal {
            // Which account the progress lines that follow are about.
            eprintln!("{}", progress::start_line(id, n + 1, accounts.len()));
        }
        match sync_one(bus, id).await {
            Ok(count) => {
                if !ctx.json {
                    output::text(&format!("{id}: {count}"))?;
                }
                results.push(shape::with_account(id, json!({ "new-messages": count })));
            }
            Err(f) => {
                failed = true;
                let line = f.line().unwrap_or("sync failed");
                eprintln!("facteurctl: {id}: {line}");
                results.push(shape::with_account(id, json!({ "error": line })));
            }
        }
    }
    if ctx.json {
        output::json(&Json::Array(results), false)?;
    }
    if failed {
        Err(Failure::Quiet(EXIT_FAILED))
    } else {
        Ok(())
    }
}

/// `Account.Sync` on one account, following its `Progress` meanwhile.
async fn sync_one(bus: &Bus, id: &str) -> Result<u32, Failure> {
    let account = bus.account(id).await?;
    // Subscribe before the call, so no signal of this pass is missed.
    let mut changes = bus.account_changes(id).await?;
    let mut display = Display::new(id, std::io::stderr().is_terminal());
    let call = account.sync();
    let mut call = std::pin::pin!(call);
    let result = loop {
        tokio::select! {
            result = &mut call => break result,
            Some(signal) = changes.next() => {
                let Ok(args) = signal.args() else { continue };
                if args.interface_name().as_str() != names::ACCOUNT_INTERFACE {
                    continue;
                }
                if let Some((done, total)) = args
                    .changed_properties()
                    .get(prop::PROGRESS)
                    .and_then(progress::progress_value)
                {
                    display.update(done, total);
                }
            }
        }
    };
    display.finish();
    match result {
        Ok(count) => Ok(count),
        Err(e) => Err(bus.account_failure(id, e, On::Account(id)).await),
    }
}

/// `status [ACCOUNT]`: the health of every account, or of one.
pub async fn status(ctx: &Ctx, id: Option<&str>) -> Result<(), Failure> {
    let bus = ctx.connect().await?;
    let accounts = match id {
        Some(id) => vec![(id.to_owned(), bus.account_properties(id).await?)],
        None => bus.accounts().await?,
    };
    if ctx.json {
        let all = accounts
            .iter()
            .map(|(id, props)| status_json(id, props))
            .collect();
        return output::json(&Json::Array(all), false);
    }
    if accounts.is_empty() {
        return output::text("No accounts. Add one with 'facteurctl account add'.");
    }
    output::text(&status_table(&accounts))
}

/// The status properties, by name.
const STATUS: &[&str] = &[
    prop::STATE,
    prop::ATTENTION_NEEDED,
    prop::LAST_ERROR_CODE,
    prop::LAST_ERROR,
    prop::NEXT_RETRY,
    prop::PROGRESS,
    prop::LAST_SYNC,
];

/// One account's status as JSON: the status properties in the one style
/// (see [`crate::shape`]).
pub fn status_json(id: &str, props: &OwnedDict) -> Json {
    let mut out = serde_json::Map::new();
    for name in STATUS {
        if let Some(v) = props.get(*name) {
            out.insert((*name).to_owned(), output::to_json(v));
        }
    }
    shape::with_account(id, shape::reshape(Json::Object(out), false))
}

/// The `status` table; a property the daemon does not serve shows `?`.
pub fn status_table(accounts: &[(String, OwnedDict)]) -> String {
    let mut table = Table::new([
        "ID",
        "STATE",
        "ATTENTION",
        "ERROR",
        "NEXT RETRY",
        "PROGRESS",
        "LAST ERROR",
    ]);
    for (id, props) in accounts {
        let get = |name: &str| {
            props
                .get(name)
                .map_or("?".to_owned(), |v| status_value(name, v))
        };
        table.row([
            id.clone(),
            get(prop::STATE),
            get(prop::ATTENTION_NEEDED),
            get(prop::LAST_ERROR_CODE),
            get(prop::NEXT_RETRY),
            get(prop::PROGRESS),
            output::truncate(&get(prop::LAST_ERROR), 60),
        ]);
    }
    table.render()
}

/// A status property for a person: times as local times, `Progress` as
/// counts, `-` for none.
pub fn status_value(name: &str, value: &Value<'_>) -> String {
    match (name, value) {
        (prop::NEXT_RETRY, Value::U64(0)) => "-".to_owned(),
        (prop::NEXT_RETRY, Value::U64(t)) => match i64::try_from(*t) {
            Ok(t) => output::local_time(t),
            Err(_) => t.to_string(),
        },
        (prop::PROGRESS, v) => match progress::progress_value(v) {
            Some((done, total)) => progress::progress_text(done, total),
            None => output::display(v),
        },
        _ => output::display(value),
    }
}

#[cfg(test)]
mod tests;

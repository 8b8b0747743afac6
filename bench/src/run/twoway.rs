//! # After facteurd's first IMAP sync: the no-change resync and 1,000 flag
//! changes
//!
//! - [`resync`]: `Sync()` on the account right after its first sync, the
//!   server unchanged. Every folder has stored state by then, so on a
//!   Dovecot (which offers QRESYNC) each folder costs one
//!   `SELECT … (QRESYNC …)`; compared with mbsync run a second time on its
//!   own state ([`super::mbsync`]).
//! - [`flags_1000`]: `SetFlags` on 1,000 INBOX ids over D-Bus (a keyword no
//!   corpus message has), timed from the call until the account's
//!   `PendingChanges` is 0 again, that is until the server confirmed every
//!   change; doveadm then checks that Dovecot has the keyword on exactly
//!   those 1,000 messages.

use std::collections::HashMap;

use zbus::zvariant::{OwnedValue, Value};

use super::*;

/// The keyword [`flags_1000`] sets.
const KEYWORD: &str = "$FacteurBench";
/// How many messages [`flags_1000`] changes.
const FLAG_CHANGES: u32 = 1000;

/// Milliseconds of one `Sync()` on `path`.
pub(super) fn resync(bus: &Bus, path: &str) -> Result<f64> {
    let started = Instant::now();
    let reply = bus
        .call_facteur(path, names::ACCOUNT_INTERFACE, "Sync", &())
        .map_err(|e| anyhow!("Sync on {path} failed: {e}"))?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let new: u32 = reply
        .body()
        .deserialize()
        .map_err(|e| anyhow!("Sync did not return u: {e}"))?;
    ensure!(new == 0, "the no-change resync found {new} new message(s)");
    Ok(ms)
}

/// Milliseconds from `SetFlags` on 1,000 INBOX ids until `PendingChanges`
/// is 0, checked on the server with doveadm.
pub(super) fn flags_1000(ctx: &Ctx<'_>, bus: &Bus, path: &str, mb: &Mailbox) -> Result<f64> {
    let reply = bus
        .call_facteur(
            path,
            names::ACCOUNT_INTERFACE,
            "ListMessages",
            &("INBOX", 0u32, FLAG_CHANGES),
        )
        .map_err(|e| anyhow!("ListMessages failed: {e}"))?;
    let list: Vec<HashMap<String, OwnedValue>> = reply
        .body()
        .deserialize()
        .map_err(|e| anyhow!("ListMessages is not aa{{sv}}: {e}"))?;
    let ids: Vec<String> = list
        .iter()
        .filter_map(|m| match m.get("id").map(|v| &**v) {
            Some(Value::Str(s)) => Some(s.to_string()),
            _ => None,
        })
        .collect();
    ensure!(
        ids.len() == FLAG_CHANGES as usize,
        "INBOX has {} messages; the flag row needs {FLAG_CHANGES} (use -n 1300 or more)",
        ids.len()
    );
    let started = Instant::now();
    bus.call_facteur(
        names::ROOT_PATH,
        names::MANAGER_INTERFACE,
        "SetFlags",
        &(&ids, vec![KEYWORD], Vec::<&str>::new()),
    )
    .map_err(|e| anyhow!("SetFlags failed: {e}"))?;
    loop {
        let props = bus
            .properties(path, names::ACCOUNT_INTERFACE)
            .map_err(|e| anyhow!("GetAll on {path} failed: {e}"))?;
        if props.u32("PendingChanges") == 0 {
            break;
        }
        ensure!(
            started.elapsed() < ctx.timeout,
            "{} flag change(s) still pending after {:?} (LastError {:?})",
            props.u32("PendingChanges"),
            ctx.timeout,
            props.str("LastError")
        );
        thread::sleep(POLL);
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let found = ctx.dovecot.doveadm_ok(
        &[
            "search", "-u", &mb.user, "mailbox", "INBOX", "keyword", KEYWORD,
        ],
        None,
    );
    let on_server = found.lines().filter(|l| !l.trim().is_empty()).count();
    ensure!(
        on_server == FLAG_CHANGES as usize,
        "Dovecot has {KEYWORD} on {on_server} messages, not {FLAG_CHANGES}"
    );
    Ok(ms)
}

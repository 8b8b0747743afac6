//! # Mail commands
//!
//! `messages` (the Unified folder through Manager.ListUnified, or one folder
//! of one account through Account.ListMessages), `show` (Manager.GetMessage,
//! raw or as headers and text, parsed with `mail-parser`, which also decodes
//! RFC 2047 encoded words), and `watch` (the NewMessages signal, one line per
//! message until interrupted, with the sender and subject from
//! Manager.GetSummaries).

use std::io::Write as _;

use facteur_dbus::names;
use facteur_dbus::proxy::OwnedDict;
use futures_util::StreamExt;
use mail_parser::{Address, MessageParser, MimeHeaders};
use serde_json::{json, Value as Json};

use super::Ctx;
use crate::bus::Bus;
use crate::cli::MessagesArgs;
use crate::error::{from_daemon, from_zbus, Failure, On};
use crate::output::{self, Table};
use crate::shape;
use crate::wire::summary;

/// The folder `messages --account` lists when `--folder` is not given.
pub const DEFAULT_FOLDER: &str = "INBOX";

/// Widest FROM cell in the `messages` table.
const FROM_WIDTH: usize = 30;
/// Widest SUBJECT cell in the `messages` table when standard output is no
/// terminal (on a terminal, the subject takes the rest of the line).
const SUBJECT_WIDTH: usize = 60;
/// Narrowest FROM and SUBJECT cells, however narrow the terminal.
const MIN_CELL: usize = 8;
/// `YYYY-MM-DD HH:MM`
const DATE_WIDTH: usize = 16;
/// The header of the flags column, as wide as the column.
const FLAGS_HEADER: &str = "FLAGS";
/// How many summaries `--limit 0` asks for per call.
const PAGE: u32 = 500;

/// `messages`: a page of summaries, newest first (`--limit 0`: all).
pub async fn messages(ctx: &Ctx, args: MessagesArgs) -> Result<(), Failure> {
    let bus = ctx.connect().await?;
    let unlimited = args.limit == 0;
    let mut offset = args.offset;
    let mut list = Vec::new();
    loop {
        let limit = if unlimited { PAGE } else { args.limit };
        let page = list_page(&bus, &args, offset, limit).await?;
        let got = u32::try_from(page.len()).unwrap_or(u32::MAX);
        list.extend(page);
        if !unlimited || got < PAGE {
            break;
        }
        offset = offset.saturating_add(got);
    }
    let list: Vec<Json> = list.iter().map(shape::dict).collect();
    if ctx.json {
        return output::json(&Json::Array(list), false);
    }
    if list.is_empty() {
        return output::text("No messages.");
    }
    let unified = args.account.is_none();
    output::text(&messages_table(&list, output::terminal_width(), unified))
}

/// One ListUnified or ListMessages call.
async fn list_page(
    bus: &Bus,
    args: &MessagesArgs,
    offset: u32,
    limit: u32,
) -> Result<Vec<OwnedDict>, Failure> {
    match &args.account {
        None => {
            let manager = bus.manager().await?;
            manager
                .list_unified(offset, limit)
                .await
                .map_err(|e| from_daemon(e, On::Manager))
        }
        Some(id) => {
            let folder = args.folder.as_deref().unwrap_or(DEFAULT_FOLDER);
            let account = bus.account(id).await?;
            match account.list_messages(folder, offset, limit).await {
                Ok(list) => Ok(list),
                Err(e) => Err(bus.account_failure(id, e, On::AccountItem(id)).await),
            }
        }
    }
}

/// The flags column, like mutt's: `N` new (unread) or `D` deleted, `!`
/// flagged, `r` answered, a space for each flag not set.
pub fn flags_cell(m: &Json) -> String {
    let set = |k: &str| m.get(k).and_then(Json::as_bool).unwrap_or(false);
    let first = if set("deleted") {
        'D'
    } else if m.get("seen").and_then(Json::as_bool) == Some(false) {
        'N'
    } else {
        ' '
    };
    let flagged = if set("flagged") { '!' } else { ' ' };
    let answered = if set("answered") { 'r' } else { ' ' };
    format!("{first}{flagged}{answered}")
}

/// The FROM and SUBJECT widths for a line of `width` columns (`None`: no
/// terminal, the usual caps), with the widest id taking `id_width` and the
/// ACCOUNT column (0: none) `account_width`.
pub fn column_widths(
    width: Option<usize>,
    id_width: usize,
    account_width: usize,
) -> (usize, usize) {
    let Some(width) = width else {
        return (FROM_WIDTH, SUBJECT_WIDTH);
    };
    // Five columns, four gaps of two spaces (and the account's, if any).
    let account = if account_width == 0 {
        0
    } else {
        account_width + 2
    };
    let fixed = FLAGS_HEADER.len() + DATE_WIDTH + id_width + 4 * 2 + account;
    let rest = width.saturating_sub(fixed);
    let from = (rest / 3).clamp(MIN_CELL, FROM_WIDTH);
    let subject = rest.saturating_sub(from).max(MIN_CELL);
    (from, subject)
}

/// Widest ACCOUNT cell of the Unified table.
const ACCOUNT_WIDTH: usize = 20;

/// The `messages` table: flags, local date, the account (`with_account`:
/// the Unified folder mixes accounts), sender, subject, id, fitted to
/// `width` columns when standard output is a terminal that wide.
pub fn messages_table(summaries: &[Json], width: Option<usize>, with_account: bool) -> String {
    let text = |m: &Json, k: &str| {
        m.get(k)
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let id_width = summaries
        .iter()
        .map(|m| output::width(&output::one_line(&text(m, summary::ID))))
        .chain([2])
        .max()
        .unwrap_or(2);
    let account_width = if with_account {
        summaries
            .iter()
            .map(|m| output::width(&output::one_line(&text(m, "account"))))
            .chain([7])
            .max()
            .unwrap_or(7)
            .min(ACCOUNT_WIDTH)
    } else {
        0
    };
    // On a terminal too narrow for it, the account column goes first.
    let fixed = FLAGS_HEADER.len() + DATE_WIDTH + id_width + 4 * 2;
    let with_account = with_account
        && width.is_none_or(|w| w >= fixed + account_width + 2 + 2 * MIN_CELL + FROM_WIDTH);
    let account_width = if with_account { account_width } else { 0 };
    let (from_width, subject_width) = column_widths(width, id_width, account_width);
    let mut headers = vec![FLAGS_HEADER, "DATE"];
    if with_account {
        headers.push("ACCOUNT");
    }
    headers.extend(["FROM", "SUBJECT", "ID"]);
    let mut table = Table::new(headers);
    for m in summaries {
        let date = m
            .get(summary::DATE_UNIX)
            .and_then(Json::as_i64)
            .map(|t| output::local_time(t).chars().take(DATE_WIDTH).collect())
            .unwrap_or_else(|| "-".to_owned());
        let from = output::one_line(&text(m, summary::FROM));
        let subject = output::one_line(&text(m, summary::SUBJECT));
        let mut row = vec![flags_cell(m), date];
        if with_account {
            let account = output::one_line(&text(m, "account"));
            row.push(output::truncate(&account, account_width));
        }
        row.extend([
            output::truncate(if from.is_empty() { "-" } else { &from }, from_width),
            output::truncate(&subject, subject_width),
            output::one_line(&text(m, summary::ID)),
        ]);
        table.raw_row(row);
    }
    table.render()
}

/// `show`: one message, raw or readable.
pub async fn show(ctx: &Ctx, id: &str, raw: bool) -> Result<(), Failure> {
    let bus = ctx.connect().await?;
    let manager = bus.manager().await?;
    let bytes = manager
        .get_message(id)
        .await
        .map_err(|e| from_daemon(e, On::Manager))?;
    if raw {
        return output::bytes(&bytes);
    }
    let message = parse_message(id, &bytes)?;
    if ctx.json {
        // The account the message belongs to, from its summary.
        let account = manager
            .get_summaries(&[id])
            .await
            .ok()
            .and_then(|list| list.first().map(shape::dict))
            .and_then(|s| s.get("account").and_then(Json::as_str).map(str::to_owned));
        let shown = message.to_json();
        let shown = match account {
            Some(account) => shape::with_account(&account, shown),
            None => shown,
        };
        output::json(&shown, false)
    } else {
        output::text(&message.to_text())
    }
}

/// What `show` prints of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShownMessage {
    /// The id asked for.
    pub id: String,
    /// `From`, decoded.
    pub from: String,
    /// `To`, decoded.
    pub to: String,
    /// `Cc`, decoded.
    pub cc: String,
    /// `Date`, as written in the message.
    pub date: String,
    /// `Date` as unix seconds, when it parses.
    pub date_unix: Option<i64>,
    /// `Subject`, decoded.
    pub subject: String,
    /// The text bodies (HTML-only mail converted to text).
    pub text: String,
    /// File names of the attachments.
    pub attachments: Vec<String>,
}

/// Parses the raw bytes of a message.
pub fn parse_message(id: &str, bytes: &[u8]) -> Result<ShownMessage, Failure> {
    let message = MessageParser::default().parse(bytes).ok_or_else(|| {
        Failure::Failed(format!(
            "message '{id}' could not be parsed; see it with 'facteurctl show --raw {id}'"
        ))
    })?;
    let date = message
        .header_raw("Date")
        .map(unfold)
        .or_else(|| message.date().map(|d| d.to_rfc822()))
        .unwrap_or_default();
    let text: Vec<String> = (0..message.text_body_count())
        .filter_map(|i| message.body_text(i).map(|t| t.into_owned()))
        .collect();
    let attachments = message
        .attachments()
        .map(|a| a.attachment_name().unwrap_or("(unnamed)").to_owned())
        .collect();
    Ok(ShownMessage {
        id: id.to_owned(),
        from: addresses(message.from()),
        to: addresses(message.to()),
        cc: addresses(message.cc()),
        date,
        date_unix: message.date().map(|d| d.to_timestamp()),
        subject: message.subject().map(unfold).unwrap_or_default(),
        // Bodies keep the CRLF of the wire; a terminal wants LF.
        text: text.join("\n").replace("\r\n", "\n"),
        attachments,
    })
}

/// Joins folded header lines into one.
fn unfold(s: &str) -> String {
    s.split(['\r', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `Name <address>, …`
fn addresses(list: Option<&Address<'_>>) -> String {
    let Some(list) = list else {
        return String::new();
    };
    list.iter()
        .map(|a| match (a.name(), a.address()) {
            (Some(n), Some(addr)) => format!("{} <{addr}>", unfold(n)),
            (Some(n), None) => unfold(n),
            (None, Some(addr)) => addr.to_owned(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

impl ShownMessage {
    /// The JSON shape of `show --json`: `date` in RFC 3339 (null when the
    /// header does not parse), `date-unix`, and `date-header` as written.
    pub fn to_json(&self) -> Json {
        json!({
            "id": self.id,
            "from": self.from,
            "to": self.to,
            "cc": self.cc,
            "date": self.date_unix.and_then(shape::rfc3339),
            "date-unix": self.date_unix,
            "date-header": self.date,
            "subject": self.subject,
            "text": self.text,
            "attachments": self.attachments,
        })
    }

    /// Headers, a blank line, and the text, scrubbed of control characters.
    pub fn to_text(&self) -> String {
        let mut pairs = vec![("From", self.from.as_str()), ("To", self.to.as_str())];
        if !self.cc.is_empty() {
            pairs.push(("Cc", &self.cc));
        }
        pairs.push(("Date", &self.date));
        pairs.push(("Subject", &self.subject));
        let attachments = self.attachments.join(", ");
        if !attachments.is_empty() {
            pairs.push(("Attachments", &attachments));
        }
        let pairs: Vec<(&str, String)> = pairs
            .into_iter()
            .map(|(k, v)| (k, output::one_line(v)))
            .collect();
        let mut out = output::key_values(&pairs);
        out.push('\n');
        if self.text.is_empty() {
            out.push_str("(no text part)\n");
        } else {
            out.push_str(&output::scrub(&self.text));
        }
        out
    }
}

/// `watch`: one line per new message, until Ctrl-C or SIGTERM.
pub async fn watch(ctx: &Ctx) -> Result<(), Failure> {
    let bus = ctx.connect().await?;
    let manager = bus.manager().await?;
    let mut stream = manager
        .receive_new_messages()
        .await
        .map_err(|e| from_zbus(e, On::Manager))?;
    // Subscribed first, so nothing is missed between the check and the
    // first signal; the check says so if nobody will ever send one.
    bus.ping().await?;
    // On standard error, so that standard output keeps only the messages:
    // from here on, no new message is missed.
    let _ = writeln!(
        std::io::stderr(),
        "Watching for new messages (Ctrl-C to stop)…"
    );
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        let signal = tokio::select! {
            _ = &mut stop => return Ok(()),
            signal = stream.next() => signal,
        };
        let Some(signal) = signal else {
            return Err(Failure::Failed(
                "the connection to the bus was closed".to_owned(),
            ));
        };
        let args = match signal.args() {
            Ok(args) => args,
            // A malformed signal is the sender's bug; keep watching.
            Err(_) => continue,
        };
        let account = args.account.as_str();
        let account_id = names::account_id(account).unwrap_or(account);
        // Sender and subject from the summaries; a message gone meanwhile
        // (or a daemon that fails the call) still gets its line.
        let refs: Vec<&str> = args.ids.to_vec();
        let summaries: Vec<Json> = manager
            .get_summaries(&refs)
            .await
            .map(|list| list.iter().map(shape::dict).collect())
            .unwrap_or_default();
        for id in &args.ids {
            let found = summaries
                .iter()
                .find(|s| s.get(summary::ID).and_then(Json::as_str) == Some(*id));
            let line = if ctx.json {
                watch_json(id, account_id, args.folder, found).to_string()
            } else {
                let text = |k: &str| {
                    found
                        .and_then(|s| s.get(k))
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                };
                watch_line(
                    id,
                    account_id,
                    args.folder,
                    text(summary::FROM),
                    text(summary::SUBJECT),
                )
            };
            output::text(&line)?;
        }
    }
}

/// The object `watch --json` prints for one message: its summary in the
/// one style, or at least its id, account and folder.
pub fn watch_json(id: &str, account: &str, folder: &str, summary: Option<&Json>) -> Json {
    let mut out = shape::with_account(account, json!({ "id": id, "folder": folder }));
    if let (Json::Object(out), Some(Json::Object(s))) = (&mut out, summary) {
        for (k, v) in s {
            out.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    out
}

/// The line `watch` prints for one message: id, account id, folder, sender
/// and subject, tab-separated, so `cut -f1` gives the id.
pub fn watch_line(id: &str, account: &str, folder: &str, from: &str, subject: &str) -> String {
    [id, account, folder, from, subject]
        .iter()
        .map(|f| output::one_line(f).replace('\t', " "))
        .collect::<Vec<_>>()
        .join("\t")
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    // Without a handler, wait for Ctrl-C alone; if even that cannot be set
    // up, the default disposition still ends the process.
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests;

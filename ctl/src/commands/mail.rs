//! # Mail commands
//!
//! `messages` (the Unified folder through Manager.ListUnified, or one folder
//! of one account through Account.ListMessages), `show` (Manager.GetMessage,
//! raw or as headers and text, parsed with `mail-parser`, which also decodes
//! RFC 2047 encoded words), and `watch` (the NewMessages signal, one line per
//! message until interrupted).

use facteur_dbus::names;
use futures_util::StreamExt;
use mail_parser::{Address, MessageParser, MimeHeaders};
use serde_json::{json, Value as Json};

use super::Ctx;
use crate::cli::MessagesArgs;
use crate::error::{from_daemon, from_zbus, Failure, On};
use crate::output::{self, Table};
use crate::wire::summary;

/// The folder `messages --account` lists when `--folder` is not given.
pub const DEFAULT_FOLDER: &str = "INBOX";

/// Widest FROM cell in the `messages` table.
const FROM_WIDTH: usize = 30;
/// Widest SUBJECT cell in the `messages` table.
const SUBJECT_WIDTH: usize = 60;

/// `messages`: a page of summaries, newest first.
pub async fn messages(ctx: &Ctx, args: MessagesArgs) -> Result<(), Failure> {
    let bus = ctx.connect().await?;
    let list = match &args.account {
        None => {
            let manager = bus.manager().await?;
            manager
                .list_unified(args.offset, args.limit)
                .await
                .map_err(|e| from_daemon(e, On::Manager))?
        }
        Some(id) => {
            let folder = args.folder.as_deref().unwrap_or(DEFAULT_FOLDER);
            let account = bus.account(id).await?;
            match account.list_messages(folder, args.offset, args.limit).await {
                Ok(list) => list,
                Err(e) => return Err(bus.account_failure(id, e, On::AccountItem(id)).await),
            }
        }
    };
    let list: Vec<Json> = list.iter().map(output::dict_to_json).collect();
    if ctx.json {
        return output::json(&Json::Array(list), false);
    }
    if list.is_empty() {
        return output::text("No messages.");
    }
    output::text(&messages_table(&list))
}

/// The `messages` table: date (UTC), sender, subject, id.
pub fn messages_table(summaries: &[Json]) -> String {
    let mut table = Table::new(["DATE (UTC)", "FROM", "SUBJECT", "ID"]);
    for m in summaries {
        let text = |k: &str| m.get(k).and_then(Json::as_str).unwrap_or_default();
        let date = m
            .get(summary::DATE)
            .and_then(Json::as_i64)
            .map(|t| output::utc_time(t).chars().take(16).collect())
            .unwrap_or_else(|| "-".to_owned());
        table.row([
            date,
            output::truncate(&output::one_line(text(summary::FROM)), FROM_WIDTH),
            output::truncate(&output::one_line(text(summary::SUBJECT)), SUBJECT_WIDTH),
            text(summary::ID).to_owned(),
        ]);
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
        output::json(&message.to_json(), false)
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
    /// The JSON shape of `show --json`.
    pub fn to_json(&self) -> Json {
        json!({
            "id": self.id,
            "from": self.from,
            "to": self.to,
            "cc": self.cc,
            "date": self.date,
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
        for id in &args.ids {
            let line = if ctx.json {
                json!({
                    "id": id,
                    "account": account_id,
                    "path": account,
                    "folder": args.folder,
                })
                .to_string()
            } else {
                watch_line(id, account_id, args.folder)
            };
            output::text(&line)?;
        }
    }
}

/// The line `watch` prints for one message: id, account id and folder,
/// tab-separated, so `cut -f1` gives the id.
pub fn watch_line(id: &str, account: &str, folder: &str) -> String {
    output::scrub(&format!("{id}\t{account}\t{folder}")).replace('\n', " ")
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

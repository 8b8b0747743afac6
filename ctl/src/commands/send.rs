//! # Sending
//!
//! `send --account ID [FILE]`: reads an RFC 5322 message from FILE or
//! standard input and hands it to the account's `Send` (with `--queue`, to
//! its `Enqueue`, and prints the outbox id). The daemon fills in
//! a missing From, Date and Message-ID, takes the envelope from the headers,
//! drops Bcc from what it sends and keeps the copy in the Sent folder; this
//! command only moves bytes. It prints nothing on success (`--json`: the
//! account and the size sent).

use std::io::Read;
use std::path::Path;

use serde_json::json;

use super::Ctx;
use crate::cli::SendArgs;
use crate::error::{Failure, On};
use crate::output;
use crate::shape;

/// Largest message read: far above what any SMTP server accepts, well
/// below what a D-Bus message may carry (128 MiB).
const MAX_MESSAGE: u64 = 64 * 1024 * 1024;

/// The message bytes from `file`, or standard input for `None` and `-`.
pub fn read_message(file: Option<&Path>) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    let (what, result) = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => (
            path.display().to_string(),
            std::fs::File::open(path).and_then(|f| f.take(MAX_MESSAGE + 1).read_to_end(&mut bytes)),
        ),
        None => (
            "standard input".to_owned(),
            std::io::stdin()
                .lock()
                .take(MAX_MESSAGE + 1)
                .read_to_end(&mut bytes),
        ),
    };
    result.map_err(|e| Failure::Usage(format!("cannot read the message from {what}: {e}")))?;
    if bytes.len() as u64 > MAX_MESSAGE {
        return Err(Failure::Usage(format!(
            "the message in {what} is larger than {} MiB",
            MAX_MESSAGE / 1024 / 1024
        )));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Failure::Usage(format!("the message in {what} is empty")));
    }
    Ok(bytes)
}

/// `send`: Account.Send with the message read.
pub async fn send(ctx: &Ctx, args: SendArgs) -> Result<(), Failure> {
    let message = read_message(args.file.as_deref())?;
    let bus = ctx.connect().await?;
    let account = bus.account(&args.account).await?;
    if args.queue {
        let id = match account.enqueue(&message).await {
            Ok(id) => id,
            Err(e) => {
                return Err(bus
                    .account_failure(&args.account, e, On::Account(&args.account))
                    .await)
            }
        };
        return if ctx.json {
            output::json(
                &shape::with_account(
                    &args.account,
                    json!({ "queued": id, "bytes": message.len() }),
                ),
                false,
            )
        } else {
            output::text(&id)
        };
    }
    if let Err(e) = account.send(&message).await {
        return Err(bus
            .account_failure(&args.account, e, On::Account(&args.account))
            .await);
    }
    if ctx.json {
        output::json(
            &shape::with_account(
                &args.account,
                json!({ "sent": true, "bytes": message.len() }),
            ),
            false,
        )
    } else {
        Ok(())
    }
}

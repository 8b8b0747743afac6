//! # Desktop notifications
//!
//! One notification per batch of new mail, through notify-rust
//! (`org.freedesktop.Notifications` on the session bus). Without a
//! notification server the failure is logged and nothing else happens.

use tracing::debug;

/// Show "N new messages" for an account, with the first senders and
/// subjects in the body.
pub async fn new_mail(account_name: &str, count: usize, samples: &[(String, String)]) {
    let summary = if count == 1 {
        format!("New mail for {account_name}")
    } else {
        format!("{count} new messages for {account_name}")
    };
    let mut body: Vec<String> = samples
        .iter()
        .take(3)
        .map(|(from, subject)| {
            let subject = if subject.is_empty() {
                "(no subject)"
            } else {
                subject
            };
            format!("{from}: {subject}")
        })
        .collect();
    if count > body.len() && !body.is_empty() {
        body.push(format!("and {} more", count - body.len()));
    }
    let result = notify_rust::Notification::new()
        .appname("facteur")
        .summary(&summary)
        .body(&body.join("\n"))
        .icon("mail-unread")
        .hint(notify_rust::Hint::Category("email.arrived".to_owned()))
        .show_async()
        .await;
    if let Err(e) = result {
        debug!("No desktop notification shown: {e}");
    }
}

/// Show "Message … could not be sent" for a queued message the server
/// refused for good (the outbox), with the reason in the body.
pub async fn send_failed(account_name: &str, subject: &str, reason: &str) {
    let subject = if subject.is_empty() {
        "(no subject)"
    } else {
        subject
    };
    let result = notify_rust::Notification::new()
        .appname("facteur")
        .summary(&format!("Message “{subject}” could not be sent"))
        .body(&format!("{account_name}: {reason}"))
        .icon("mail-mark-important")
        .hint(notify_rust::Hint::Category("email".to_owned()))
        .show_async()
        .await;
    if let Err(e) = result {
        debug!("No desktop notification shown: {e}");
    }
}

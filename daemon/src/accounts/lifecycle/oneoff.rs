//! # One-off sessions with an account's credentials
//!
//! Send and Verify: read the stored passwords, open one session through the
//! protocol's connect path, and keep nothing (but the Sent copy).

use super::Lifecycle;
use crate::accounts::{Account, Change, Input, Settings};
use crate::secrets::{SecretError, Which};

impl Lifecycle {
    /// Send `raw` through the account (SMTP AUTH with its SMTP password,
    /// else its incoming one), then keep the Sent copy of an IMAP account.
    pub async fn send(&self, account: &Account, raw: &[u8]) -> crate::smtp::Outcome {
        // The one submit path, shared with the outbox's sender.
        crate::accounts::outbox::send_with(
            &self.secrets,
            &self.store,
            &self.scheduler,
            account,
            raw,
        )
        .await
    }

    /// Verify the saved settings with the stored passwords.
    pub async fn verify(&self, account: &Account) -> Result<crate::verify::Report, SecretError> {
        let id = &account.id;
        let incoming = self
            .secrets
            .get(id, Which::Incoming)
            .await?
            .filter(|p| !p.is_empty());
        let smtp = self
            .secrets
            .get(id, Which::Smtp)
            .await?
            .filter(|p| !p.is_empty());
        let incoming = incoming.as_deref().map(String::as_str);
        let smtp = smtp.as_deref().map(String::as_str).or(incoming);
        Ok(crate::verify::verify(&account.settings(), incoming, smtp).await)
    }

    /// Verify settings that are not saved: refused exactly as `create`
    /// would refuse them; nothing is stored.
    pub async fn verify_settings(&self, input: &Input) -> Result<crate::verify::Report, Change> {
        let (settings, passwords) = crate::accounts::apply(Settings::default(), input, true)?;
        let incoming = passwords
            .incoming
            .as_deref()
            .map(String::as_str)
            .filter(|p| !p.is_empty());
        // Without a separate SMTP password, SMTP logs in with the incoming one.
        let smtp = passwords
            .smtp
            .as_deref()
            .map(String::as_str)
            .filter(|p| !p.is_empty())
            .or(incoming);
        Ok(crate::verify::verify(&settings, incoming, smtp).await)
    }
}

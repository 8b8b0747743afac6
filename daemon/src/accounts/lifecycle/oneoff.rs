//! # One-off sessions with an account's credentials
//!
//! Send and Verify: read the stored passwords, open one session through the
//! protocol's connect path, and keep nothing (but the Sent copy).

use super::Lifecycle;
use crate::accounts::{Account, Change, Input, Settings};
use crate::net::{Failure, FailureKind};
use crate::secrets::{SecretError, Which};

impl Lifecycle {
    /// Send `raw` through the account (SMTP AUTH with its SMTP password,
    /// else its incoming one), then keep the Sent copy of an IMAP account.
    pub async fn send(&self, account: &Account, raw: &[u8]) -> crate::smtp::Outcome {
        use crate::smtp::{Outcome, SendError};
        let id = &account.id;
        let refused = |e: SecretError| {
            let f = Failure::new(
                FailureKind::Credentials,
                format!("Cannot read the password: {e}"),
            );
            Outcome::Failed(SendError {
                cause: crate::smtp::Cause::Net(f.kind),
                message: f.message,
            })
        };
        let smtp = match self.secrets.get(id, Which::Smtp).await {
            Ok(p) => p.filter(|p| !p.is_empty()),
            Err(e) => return refused(e),
        };
        let incoming = match self.secrets.get(id, Which::Incoming).await {
            Ok(p) => p.filter(|p| !p.is_empty()),
            Err(e) if smtp.is_none() => return refused(e),
            Err(_) => None,
        };
        let passwords = crate::smtp::Passwords {
            smtp: smtp.as_deref().or(incoming.as_deref()).map(String::as_str),
            incoming: incoming.as_deref().map(String::as_str),
        };
        crate::smtp::submit(id, &account.settings(), passwords, &self.store, raw).await
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

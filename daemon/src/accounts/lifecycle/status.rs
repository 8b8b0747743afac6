//! # What a credential verdict does to an account's status
//!
//! The status changes the lifecycle makes itself (the engines make the
//! others through the sync layer): a password refused by the store, none
//! stored, or one that can be read again.

use crate::accounts::{State, Status};
use crate::secrets::SecretError;

/// The code shown for a secret store that refused.
fn secret_code(e: &SecretError) -> &'static str {
    match e {
        SecretError::Locked | SecretError::Timeout => facteur_dbus::error_code::KEYRING_LOCKED,
        SecretError::Insecure(..) | SecretError::Store(_) => facteur_dbus::error_code::INTERNAL,
    }
}

/// The secret store refused to give or keep the incoming password: the
/// account waits for the user.
pub(super) fn secret_refused(s: &mut Status, e: &SecretError) {
    s.state = State::NeedsCredentials;
    s.last_error = e.to_string();
    s.last_error_code = secret_code(e).to_owned();
    s.attention_needed = true;
    s.next_retry = 0;
}

/// The SMTP password could not be stored: said in `LastError`; the
/// incoming side, and so the state, is untouched.
pub(super) fn smtp_refused(s: &mut Status, e: &SecretError) {
    s.last_error = format!("The SMTP password was not stored: {e}");
    s.last_error_code = secret_code(e).to_owned();
}

/// No incoming password is stored: the account waits for one.
pub(super) fn no_password(s: &mut Status, id: &str) {
    s.state = State::NeedsCredentials;
    s.last_error = format!(
        "No password is stored for this account; set one with \
         `facteurctl account set {id} --password-stdin` or Update({{'incoming-password': ...}})"
    );
    s.last_error_code = facteur_dbus::error_code::NO_PASSWORD.to_owned();
    s.attention_needed = true;
    s.next_retry = 0;
}

/// A usable password again: leave `needs-credentials` (a running engine
/// owns every other state).
pub(super) fn credentials_restored(s: &mut Status) {
    if s.state == State::NeedsCredentials {
        s.state = State::Idle;
        s.last_error.clear();
        s.last_error_code.clear();
        s.attention_needed = false;
    }
}

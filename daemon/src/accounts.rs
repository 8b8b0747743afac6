//! # Accounts
//!
//! Owns account settings: their validation (one code path for
//! `CreateAccount`, `Update` and `VerifySettings`), their storage (one JSON
//! file per account under `<config-dir>/accounts/`, written atomically), and
//! the runtime status each account shows on D-Bus. Passwords pass through
//! here on their way to [`crate::secrets`] and are never kept.
//!
//! It does not talk to D-Bus or to mail servers.

pub mod validate;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context as _, Result};
use facteur_dbus::state;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use zbus::zvariant::OwnedValue;
use zeroize::Zeroizing;

pub use validate::{apply, Change, Invalid};

/// Incoming protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// IMAP4rev1.
    Imap,
    /// POP3.
    Pop3,
}

impl Protocol {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
        }
    }
}

/// Transport security of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Implicit TLS (RFC 8314), the default.
    Tls,
    /// STARTTLS / STLS, required: never falls back to plain text.
    Starttls,
    /// Plain text; only when the user says so.
    None,
}

impl Security {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Security::Tls => "tls",
            Security::Starttls => "starttls",
            Security::None => "none",
        }
    }
}

/// The settings of one account, as stored. Values the user did not set are
/// `None` and derived when read (ports from the security mode, logins from
/// the address), so a later change of security or address moves them along.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    /// Account name; `None` shows the address.
    pub name: Option<String>,
    /// E-mail address.
    pub email: String,
    /// Display name for sent mail.
    pub display_name: String,
    /// Feeds the Unified folder.
    pub use_unified: bool,
    /// IMAP or POP3.
    pub incoming_protocol: Protocol,
    /// Incoming server.
    pub incoming_host: String,
    /// Explicit incoming port.
    pub incoming_port: Option<u16>,
    /// Incoming security.
    pub incoming_security: Security,
    /// Explicit incoming login.
    pub incoming_login: Option<String>,
    /// Minutes between polls.
    pub poll_interval_minutes: u32,
    /// POP3: leave messages on the server.
    pub leave_on_server: bool,
    /// POP3: local deletion also deletes on the server.
    pub delete_on_server: bool,
    /// SMTP server; empty when the account sends nothing.
    pub smtp_host: String,
    /// Explicit SMTP port.
    pub smtp_port: Option<u16>,
    /// SMTP security.
    pub smtp_security: Security,
    /// Explicit SMTP login.
    pub smtp_login: Option<String>,
    /// Folder role (`sent`, …) → folder chosen by the user.
    pub folders: BTreeMap<String, String>,
    /// Accept certificates that fail verification.
    pub accept_invalid_certs: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            name: None,
            email: String::new(),
            display_name: String::new(),
            use_unified: true,
            incoming_protocol: Protocol::Imap,
            incoming_host: String::new(),
            incoming_port: None,
            incoming_security: Security::Tls,
            incoming_login: None,
            poll_interval_minutes: 15,
            leave_on_server: true,
            delete_on_server: false,
            smtp_host: String::new(),
            smtp_port: None,
            smtp_security: Security::Tls,
            smtp_login: None,
            folders: BTreeMap::new(),
            accept_invalid_certs: false,
        }
    }
}

impl Settings {
    /// The name shown to the user.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.email)
    }

    /// The incoming port, explicit or from protocol and security.
    pub fn incoming_port(&self) -> u16 {
        self.incoming_port
            .unwrap_or(match (self.incoming_protocol, self.incoming_security) {
                (Protocol::Imap, Security::Tls) => 993,
                (Protocol::Imap, _) => 143,
                (Protocol::Pop3, Security::Tls) => 995,
                (Protocol::Pop3, _) => 110,
            })
    }

    /// The incoming login, explicit or the address.
    pub fn incoming_login(&self) -> &str {
        self.incoming_login.as_deref().unwrap_or(&self.email)
    }

    /// The SMTP port, explicit or from the security mode (RFC 8314: 465 for
    /// implicit TLS, 587 for submission with STARTTLS).
    pub fn smtp_port(&self) -> u16 {
        self.smtp_port.unwrap_or(match self.smtp_security {
            Security::Tls => 465,
            Security::Starttls => 587,
            Security::None => 25,
        })
    }

    /// The SMTP login, explicit or the incoming login.
    pub fn smtp_login(&self) -> &str {
        self.smtp_login
            .as_deref()
            .unwrap_or_else(|| self.incoming_login())
    }

    /// Whether `other` is the same mailbox: same address, incoming host and
    /// login (compared as a server would, case-insensitively for names).
    pub fn same_mailbox(&self, other: &Settings) -> bool {
        self.email.eq_ignore_ascii_case(&other.email)
            && self
                .incoming_host
                .eq_ignore_ascii_case(&other.incoming_host)
            && self.incoming_login() == other.incoming_login()
    }
}

/// Password changes carried by a settings dictionary. `Some("")` clears.
#[derive(Default)]
pub struct Passwords {
    /// New incoming password.
    pub incoming: Option<Zeroizing<String>>,
    /// New SMTP password.
    pub smtp: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("incoming", &self.incoming.as_ref().map(|_| "[redacted]"))
            .field("smtp", &self.smtp.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// What an account shows about itself at run time.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// One of [`facteur_dbus::state`].
    pub state: String,
    /// The last error, empty when none.
    pub last_error: String,
    /// The stable code of the last error (`disk-full`, …), empty when none.
    pub last_error_code: String,
    /// Unix seconds of the last successful sync.
    pub last_sync: u64,
    /// Messages stored.
    pub message_count: u32,
    /// Unread messages stored.
    pub unread_count: u32,
    /// Folder roles found on the server (role → display name).
    pub detected_folders: HashMap<String, String>,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            state: state::IDLE.to_owned(),
            last_error: String::new(),
            last_error_code: String::new(),
            last_sync: 0,
            message_count: 0,
            unread_count: 0,
            detected_folders: HashMap::new(),
        }
    }
}

/// One account: its stable id, settings and status.
#[derive(Debug)]
pub struct Account {
    /// Stable id, also the last element of the object path.
    pub id: String,
    settings: RwLock<Settings>,
    status: RwLock<Status>,
}

impl Account {
    fn new(id: String, settings: Settings) -> Self {
        Account {
            id,
            settings: RwLock::new(settings),
            status: RwLock::new(Status::default()),
        }
    }

    /// A copy of the current settings.
    pub fn settings(&self) -> Settings {
        match self.settings.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A copy of the current status.
    pub fn status(&self) -> Status {
        match self.status.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace_settings(&self, new: Settings) {
        match self.settings.write() {
            Ok(mut s) => *s = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// Change the status; returns the D-Bus names of the properties that
    /// changed, for PropertiesChanged.
    pub fn set_status(&self, change: impl FnOnce(&mut Status)) -> Vec<&'static str> {
        let mut guard = match self.status.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let before = guard.clone();
        change(&mut guard);
        let after = &*guard;
        let mut changed = Vec::new();
        if before.state != after.state {
            changed.push("State");
        }
        if before.last_error != after.last_error {
            changed.push("LastError");
        }
        if before.last_error_code != after.last_error_code {
            changed.push("LastErrorCode");
        }
        if before.last_sync != after.last_sync {
            changed.push("LastSync");
        }
        if before.message_count != after.message_count {
            changed.push("MessageCount");
        }
        if before.unread_count != after.unread_count {
            changed.push("UnreadCount");
        }
        if before.detected_folders != after.detected_folders {
            changed.push("Folders");
        }
        changed
    }
}

/// The stored form of an account file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountFile {
    version: u32,
    id: String,
    settings: Settings,
}

const FILE_VERSION: u32 = 1;

/// Every account, by id, and the directory their files live in.
pub struct Registry {
    dir: PathBuf,
    accounts: Mutex<BTreeMap<String, Arc<Account>>>,
}

impl Registry {
    /// Load every `*.json` account file of `<config_dir>/accounts`. A file
    /// that cannot be read or parsed is reported by name and skipped, never
    /// deleted.
    pub fn load(config_dir: &Path) -> Result<Self> {
        let dir = config_dir.join("accounts");
        crate::fsutil::create_private_dir(&dir)?;
        let mut accounts = BTreeMap::new();
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("Cannot list {}", dir.display()))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        paths.sort();
        for path in paths {
            match read_account_file(&path) {
                Ok(file) => {
                    if accounts.contains_key(&file.id) {
                        warn!(
                            "Skipping account file {}: its id {} is already used by another file.",
                            path.display(),
                            file.id
                        );
                        continue;
                    }
                    accounts.insert(
                        file.id.clone(),
                        Arc::new(Account::new(file.id, file.settings)),
                    );
                }
                Err(e) => warn!(
                    "Skipping account file {} (left in place): {e:#}",
                    path.display()
                ),
            }
        }
        info!(
            "Loaded {} account(s) from {}.",
            accounts.len(),
            dir.display()
        );
        Ok(Registry {
            dir,
            accounts: Mutex::new(accounts),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Account>>> {
        match self.accounts.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there is no account.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Every account, by id order.
    pub fn all(&self) -> Vec<Arc<Account>> {
        self.lock().values().cloned().collect()
    }

    /// The account with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Account>> {
        self.lock().get(id).cloned()
    }

    fn path_of(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Validate `dict` as a new account, store it and register it. Nothing
    /// is stored when validation fails.
    pub fn create(
        &self,
        dict: &HashMap<String, OwnedValue>,
    ) -> Result<(Arc<Account>, Passwords), Change> {
        let (settings, passwords) = apply(Settings::default(), dict, true)?;
        let mut accounts = self.lock();
        if let Some(other) = accounts
            .values()
            .find(|a| a.settings().same_mailbox(&settings))
        {
            return Err(Change::AlreadyExists(format!(
                "An account for {} with login {} on {} already exists: {}",
                settings.email,
                settings.incoming_login(),
                settings.incoming_host,
                other.id
            )));
        }
        let id = unique_id(&settings.email, |id| accounts.contains_key(id));
        self.write(&id, &settings).map_err(Change::Internal)?;
        let account = Arc::new(Account::new(id.clone(), settings));
        accounts.insert(id, account.clone());
        Ok((account, passwords))
    }

    /// Validate `dict` as changes to `account`, store and apply them.
    /// Returns the settings before the change and the passwords given.
    pub fn update(
        &self,
        account: &Account,
        dict: &HashMap<String, OwnedValue>,
    ) -> Result<(Settings, Passwords), Change> {
        let before = account.settings();
        let (settings, passwords) = apply(before.clone(), dict, false)?;
        let accounts = self.lock();
        if let Some(other) = accounts
            .values()
            .find(|a| a.id != account.id && a.settings().same_mailbox(&settings))
        {
            return Err(Change::AlreadyExists(format!(
                "Another account for {} with login {} on {} already exists: {}",
                settings.email,
                settings.incoming_login(),
                settings.incoming_host,
                other.id
            )));
        }
        if settings != before {
            self.write(&account.id, &settings)
                .map_err(Change::Internal)?;
            account.replace_settings(settings);
        }
        Ok((before, passwords))
    }

    /// Forget the account and remove its file.
    pub fn remove(&self, id: &str) -> Result<()> {
        crate::fsutil::remove_durably(&self.path_of(id))?;
        self.lock().remove(id);
        Ok(())
    }

    fn write(&self, id: &str, settings: &Settings) -> Result<()> {
        let file = AccountFile {
            version: FILE_VERSION,
            id: id.to_owned(),
            settings: settings.clone(),
        };
        let mut json = serde_json::to_vec_pretty(&file).context("Cannot serialize settings")?;
        json.push(b'\n');
        crate::fsutil::write_atomic(&self.path_of(id), &json, 0o600)
    }
}

fn read_account_file(path: &Path) -> Result<AccountFile> {
    let bytes = std::fs::read(path).context("Cannot read the file")?;
    let file: AccountFile = serde_json::from_slice(&bytes).context("Not a valid account file")?;
    if file.version != FILE_VERSION {
        anyhow::bail!("Unsupported account file version {}", file.version);
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    if stem.as_deref() != Some(file.id.as_str()) || !valid_id(&file.id) {
        anyhow::bail!("The id {:?} in the file does not match its name", file.id);
    }
    // A file edited by hand must pass the same checks as D-Bus input.
    validate::check_settings(&file.settings).map_err(|e| anyhow::anyhow!(e.0))?;
    Ok(file)
}

/// Whether `id` can be an object path element and a file name.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A readable id from an address (`alice@example.org` →
/// `alice_example_org`), made unique with `_2`, `_3`, … when `taken`.
pub fn unique_id(email: &str, taken: impl Fn(&str) -> bool) -> String {
    let mut base: String = email
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .take(56)
        .collect();
    if base.is_empty() {
        base.push_str("account");
    }
    if !taken(&base) {
        return base;
    }
    (2u32..)
        .map(|n| format!("{base}_{n}"))
        .find(|id| !taken(id))
        .unwrap_or(base)
}

#[cfg(test)]
mod tests;

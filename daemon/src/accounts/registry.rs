//! # The account registry
//!
//! Every account by id, loaded from and stored to one JSON file per account
//! under `<config-dir>/accounts/` (written atomically). A new account is
//! first reserved (id chosen, nothing written), so that its passwords can be
//! stored before its settings file, which is what makes it exist: a crash in
//! between leaves no account without a password. Files that cannot be read
//! are skipped, left in place and remembered, so their ids are never reused.
//!
//! Its methods do file I/O (write and fsync): [`super::lifecycle`] calls
//! them off the async workers, one change at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{apply, unique_id, valid_id, validate, Account, Change, Passwords, Settings};

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
    /// Ids of account files skipped at load (unreadable, damaged, a
    /// duplicate id): never given to a new account, their secrets kept.
    skipped: BTreeSet<String>,
    /// Accounts being created: id → settings, between [`Registry::reserve`]
    /// and [`Registry::commit`] (their passwords are being stored).
    reserved: Mutex<BTreeMap<String, Settings>>,
}

/// A new account whose id is taken but whose settings file is not written
/// yet: the file is what makes an account exist, so it is written last.
#[derive(Debug)]
pub struct Reservation {
    /// The id the account will have.
    pub id: String,
    settings: Settings,
}

impl Reservation {
    /// The settings that will be stored.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
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
        let mut skipped = BTreeSet::new();
        for path in paths {
            match read_account_file(&path) {
                Ok(file) => {
                    if accounts.contains_key(&file.id) {
                        warn!(
                            "Skipping account file {}: its id {} is already used by another file.",
                            path.display(),
                            file.id
                        );
                        skipped.extend(stem_of(&path));
                        continue;
                    }
                    accounts.insert(
                        file.id.clone(),
                        Arc::new(Account::new(file.id, file.settings)),
                    );
                }
                Err(e) => {
                    warn!(
                        "Skipping account file {} (left in place): {e:#}",
                        path.display()
                    );
                    skipped.extend(stem_of(&path));
                }
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
            skipped,
            reserved: Mutex::new(BTreeMap::new()),
        })
    }

    /// Whether `id` is an account, one being created, or one whose file
    /// was skipped at load: its secrets must stay.
    pub fn knows(&self, id: &str) -> bool {
        self.lock().contains_key(id)
            || lock(&self.reserved).contains_key(id)
            || self.skipped.contains(id)
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
    pub fn create(&self, dict: &super::Input) -> Result<(Arc<Account>, Passwords), Change> {
        let (reservation, passwords) = self.reserve(dict)?;
        Ok((self.commit(reservation)?, passwords))
    }

    /// Validate `dict` as a new account and pick its id, without writing
    /// anything: the caller stores the passwords, then [`Registry::commit`]s
    /// (or [`Registry::release`]s). An id is never one of an existing,
    /// reserved or skipped account, nor that of a file already there.
    pub fn reserve(&self, dict: &super::Input) -> Result<(Reservation, Passwords), Change> {
        self.reserve_avoiding(dict, |_| false)
    }

    /// [`Registry::reserve`], never picking an id for which `taken` is true
    /// (the ids of deleted accounts whose secrets are still to be removed).
    pub fn reserve_avoiding(
        &self,
        dict: &super::Input,
        taken: impl Fn(&str) -> bool,
    ) -> Result<(Reservation, Passwords), Change> {
        let (settings, passwords) = apply(Settings::default(), dict, true)?;
        let accounts = self.lock();
        let mut reserved = lock(&self.reserved);
        let existing = accounts
            .values()
            .map(|a| (a.id.clone(), a.settings()))
            .chain(reserved.iter().map(|(id, s)| (id.clone(), s.clone())));
        for (id, other) in existing {
            if other.same_mailbox(&settings) {
                return Err(Change::AlreadyExists(format!(
                    "An account for {} with login {} on {} already exists: {id}",
                    settings.email,
                    settings.incoming_login(),
                    settings.incoming_host,
                )));
            }
        }
        let id = unique_id(&settings.email, |id| {
            taken(id)
                || accounts.contains_key(id)
                || reserved.contains_key(id)
                || self.skipped.contains(id)
                || std::fs::symlink_metadata(self.path_of(id)).is_ok()
        });
        reserved.insert(id.clone(), settings.clone());
        Ok((Reservation { id, settings }, passwords))
    }

    /// Write the settings file of a reserved account and register it.
    pub fn commit(&self, reservation: Reservation) -> Result<Arc<Account>, Change> {
        let Reservation { id, settings } = reservation;
        if let Err(e) = self.write(&id, &settings) {
            lock(&self.reserved).remove(&id);
            return Err(Change::Internal(e));
        }
        let account = Arc::new(Account::new(id.clone(), settings));
        // Registered before the reservation goes, so the id is known at
        // every moment (the orphan sweep never sees its passwords as
        // belonging to no account).
        self.lock().insert(id.clone(), account.clone());
        lock(&self.reserved).remove(&id);
        Ok(account)
    }

    /// Give up a reservation (nothing was written).
    pub fn release(&self, reservation: Reservation) {
        lock(&self.reserved).remove(&reservation.id);
    }

    /// Validate `dict` as changes to `account`, store and apply them.
    /// Returns the settings before the change and the passwords given.
    pub fn update(
        &self,
        account: &Account,
        dict: &super::Input,
    ) -> Result<(Settings, Passwords), Change> {
        let before = account.settings();
        let (settings, passwords) = apply(before.clone(), dict, false)?;
        let accounts = self.lock();
        // Deleted meanwhile (or replaced by a new account of the same id):
        // writing would bring it back.
        if !accounts
            .get(&account.id)
            .is_some_and(|a| std::ptr::eq(a.as_ref(), account))
        {
            return Err(Change::NotFound(format!(
                "Account {} no longer exists",
                account.id
            )));
        }
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
        // Under the lock: an update never sees the account registered
        // with its file gone.
        let mut accounts = self.lock();
        crate::fsutil::remove_durably(&self.path_of(id))?;
        accounts.remove(id);
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The id a file name stands for (`alice_example_org.json` →
/// `alice_example_org`).
fn stem_of(path: &Path) -> Option<String> {
    path.file_stem().map(|s| s.to_string_lossy().into_owned())
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

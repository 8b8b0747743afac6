//! # Secrets
//!
//! Owns passwords. They go to the Secret Service (gnome-keyring, KWallet,
//! oo7-daemon) with libsecret-compatible attributes, so `secret-tool search
//! account-id <id>` finds them; when no Secret Service is on the session bus,
//! to a 0600 JSON file beside the account settings, which is refused when its
//! permissions are looser. The choice is made once at start, logged once and
//! shown as the Manager's `SecretStore` property.
//!
//! A password never leaves this module except to a caller that logs in with
//! it; errors describe the store, never the secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use facteur_dbus::secret_store;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::{info, warn};
use zeroize::Zeroizing;

/// The libsecret schema name of facteur's items.
pub const SCHEMA: &str = "org.facteur.Facteur1.Password";
/// How long a Secret Service call may take. Unlocking can show a prompt;
/// a person who does not answer must not hang account creation forever.
const SECRET_SERVICE_TIMEOUT: Duration = Duration::from_secs(20);

/// Which password of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The incoming (IMAP or POP3) password.
    Incoming,
    /// The SMTP password.
    Smtp,
}

impl Which {
    fn as_str(self) -> &'static str {
        match self {
            Which::Incoming => "incoming",
            Which::Smtp => "smtp",
        }
    }
}

/// The `--secret-store` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Choice {
    /// The Secret Service when one is on the bus, else the file.
    Auto,
    /// Always the Secret Service.
    SecretService,
    /// Always the file.
    File,
}

/// Why a password could not be stored or read. The messages are meant for
/// `LastError` and D-Bus errors: they never contain a password.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The keyring is locked and unlocking was refused or dismissed.
    #[error("The keyring is locked or the unlock prompt was dismissed; unlock it, then set the password again")]
    Locked,
    /// The Secret Service did not answer in time.
    #[error("The Secret Service did not answer within {} seconds; is the keyring waiting for a prompt?", SECRET_SERVICE_TIMEOUT.as_secs())]
    Timeout,
    /// The secrets file is readable by others.
    #[error("The secrets file {0} is readable by other users (mode {1:o}); run `chmod 600 {0}` and restart facteurd")]
    Insecure(String, u32),
    /// Any other failure of the store.
    #[error("{0}")]
    Store(String),
}

/// Where passwords live for this run of the daemon.
pub enum SecretStore {
    /// The Secret Service; the session is opened on first use.
    Service(Mutex<Option<Arc<oo7::dbus::Service>>>),
    /// The fallback file.
    File(PathBuf),
}

impl SecretStore {
    /// Pick the store per `choice`, and log once which one it is.
    pub async fn choose(
        conn: &zbus::Connection,
        choice: Choice,
        config_dir: &Path,
    ) -> anyhow::Result<Self> {
        let file = config_dir.join("secrets.json");
        let use_service = match choice {
            Choice::SecretService => true,
            Choice::File => false,
            Choice::Auto => secret_service_on_bus(conn).await,
        };
        if use_service {
            info!("Passwords are kept in the Secret Service (org.freedesktop.secrets).");
            Ok(SecretStore::Service(Mutex::new(None)))
        } else {
            warn!(
                "No Secret Service on the session bus: passwords are kept in {} (mode 0600).",
                file.display()
            );
            // Said once here, with the file and the reason, not only in each
            // account's LastError.
            let probe = file.clone();
            if let Err(e) = blocking(move || read_file(&probe).map(drop)).await {
                warn!("Cannot use the secrets file: {e}");
            }
            Ok(SecretStore::File(file))
        }
    }

    /// `secret-service` or `file`, for the Manager's `SecretStore` property.
    pub fn kind(&self) -> &'static str {
        match self {
            SecretStore::Service(_) => secret_store::SECRET_SERVICE,
            SecretStore::File(_) => secret_store::FILE,
        }
    }

    /// Store (or, with an empty value, remove) one password.
    pub async fn set(
        &self,
        account: &str,
        label: &str,
        which: Which,
        password: &str,
    ) -> Result<(), SecretError> {
        match self {
            SecretStore::Service(service) => {
                let attrs = attributes(account, Some(which));
                with_service(service, |svc| async move {
                    let collection = svc.default_collection().await?;
                    if password.is_empty() {
                        for item in collection.search_items(&attrs).await? {
                            item.delete(None).await?;
                        }
                    } else {
                        let label = format!("facteur: {label} ({})", which.as_str());
                        collection
                            .create_item(&label, &attrs, password, true, None)
                            .await?;
                    }
                    Ok(())
                })
                .await
            }
            SecretStore::File(path) => {
                let path = path.clone();
                let (account, password) = (account.to_owned(), Zeroizing::new(password.to_owned()));
                blocking(move || {
                    let mut file = read_file(&path)?;
                    let entry = file.accounts.entry(account.clone()).or_default();
                    let slot = match which {
                        Which::Incoming => &mut entry.incoming,
                        Which::Smtp => &mut entry.smtp,
                    };
                    *slot = (!password.is_empty()).then(|| password.to_string());
                    if entry.incoming.is_none() && entry.smtp.is_none() {
                        file.accounts.remove(&account);
                    }
                    write_file(&path, &file)
                })
                .await
            }
        }
    }

    /// Read one password; `None` when none is stored.
    pub async fn get(
        &self,
        account: &str,
        which: Which,
    ) -> Result<Option<Zeroizing<String>>, SecretError> {
        match self {
            SecretStore::Service(service) => {
                let attrs = attributes(account, Some(which));
                with_service(service, |svc| async move {
                    let collection = svc.default_collection().await?;
                    if collection.is_locked().await? {
                        collection.unlock(None).await?;
                    }
                    let Some(item) = collection.search_items(&attrs).await?.into_iter().next()
                    else {
                        return Ok(None);
                    };
                    if item.is_locked().await? {
                        item.unlock(None).await?;
                    }
                    let secret = item.secret().await?;
                    let text = String::from_utf8(secret.as_bytes().to_vec()).map_err(|_| {
                        SecretError::Store("The stored password is not UTF-8".into())
                    })?;
                    Ok(Some(Zeroizing::new(text)))
                })
                .await
            }
            SecretStore::File(path) => {
                let path = path.clone();
                let account = account.to_owned();
                blocking(move || {
                    let file = read_file(&path)?;
                    Ok(file.accounts.get(&account).and_then(|e| match which {
                        Which::Incoming => e.incoming.clone().map(Zeroizing::new),
                        Which::Smtp => e.smtp.clone().map(Zeroizing::new),
                    }))
                })
                .await
            }
        }
    }

    /// Remove every password of an account. Never prompts: a locked
    /// collection answers [`SecretError::Locked`] at once, so a caller can
    /// try again once it is unlocked instead of showing a dialog.
    pub async fn delete_account(&self, account: &str) -> Result<(), SecretError> {
        match self {
            SecretStore::Service(service) => {
                let attrs = attributes(account, None);
                with_service(service, |svc| async move {
                    let collection = svc.default_collection().await?;
                    if collection.is_locked().await? {
                        return Err(SecretError::Locked);
                    }
                    for item in collection.search_items(&attrs).await? {
                        item.delete(None).await?;
                    }
                    Ok(())
                })
                .await
            }
            SecretStore::File(path) => {
                let path = path.clone();
                let account = account.to_owned();
                blocking(move || {
                    if !path.exists() {
                        return Ok(());
                    }
                    let mut file = read_file(&path)?;
                    if file.accounts.remove(&account).is_some() {
                        write_file(&path, &file)?;
                    }
                    Ok(())
                })
                .await
            }
        }
    }
}

impl SecretStore {
    /// Remove the passwords of accounts that `keep` does not know (left by
    /// a crash between storing them and writing the settings file of a new
    /// account, or by a deleted account whose passwords could not be
    /// removed then). Returns the ids whose passwords were removed. Like
    /// [`SecretStore::delete_account`], never prompts.
    pub async fn remove_orphans(
        &self,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, SecretError> {
        match self {
            SecretStore::Service(service) => {
                let attrs = BTreeMap::from([(oo7::XDG_SCHEMA_ATTRIBUTE, SCHEMA.to_owned())]);
                with_service(service, |svc| async move {
                    let collection = svc.default_collection().await?;
                    if collection.is_locked().await? {
                        return Err(SecretError::Locked);
                    }
                    let mut removed = Vec::new();
                    for item in collection.search_items(&attrs).await? {
                        let id = item.attributes().await?.get("account-id").cloned();
                        if let Some(id) = id.filter(|id| !keep(id)) {
                            item.delete(None).await?;
                            if !removed.contains(&id) {
                                removed.push(id);
                            }
                        }
                    }
                    Ok(removed)
                })
                .await
            }
            SecretStore::File(path) => {
                let probe = path.clone();
                let ids = blocking(move || {
                    Ok(read_file(&probe)?
                        .accounts
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>())
                })
                .await?;
                let orphans: Vec<String> = ids.into_iter().filter(|id| !keep(id)).collect();
                if orphans.is_empty() {
                    return Ok(orphans);
                }
                let path = path.clone();
                blocking(move || {
                    let mut file = read_file(&path)?;
                    for id in &orphans {
                        file.accounts.remove(id);
                    }
                    write_file(&path, &file)?;
                    Ok(orphans)
                })
                .await
            }
        }
    }
}

fn attributes(account: &str, which: Option<Which>) -> BTreeMap<&'static str, String> {
    let mut attrs = BTreeMap::from([
        (oo7::XDG_SCHEMA_ATTRIBUTE, SCHEMA.to_owned()),
        ("account-id", account.to_owned()),
    ]);
    if let Some(which) = which {
        attrs.insert("service", which.as_str().to_owned());
    }
    attrs
}

/// Whether `org.freedesktop.secrets` is owned or activatable.
async fn secret_service_on_bus(conn: &zbus::Connection) -> bool {
    const NAME: &str = "org.freedesktop.secrets";
    let Ok(dbus) = zbus::fdo::DBusProxy::new(conn).await else {
        return false;
    };
    let Ok(name) = zbus::names::BusName::try_from(NAME) else {
        return false;
    };
    if dbus.name_has_owner(name).await.unwrap_or(false) {
        return true;
    }
    dbus.list_activatable_names()
        .await
        .map(|names| names.iter().any(|n| n.as_str() == NAME))
        .unwrap_or(false)
}

impl From<oo7::dbus::Error> for SecretError {
    fn from(e: oo7::dbus::Error) -> Self {
        match e {
            oo7::dbus::Error::Dismissed => SecretError::Locked,
            other => SecretError::Store(format!("Secret Service: {other}")),
        }
    }
}

/// Run `f` with the (lazily opened) Secret Service session, under a timeout.
/// A session that failed is dropped, so the next call opens a fresh one.
async fn with_service<T, F, Fut>(
    slot: &Mutex<Option<Arc<oo7::dbus::Service>>>,
    f: F,
) -> Result<T, SecretError>
where
    F: FnOnce(Arc<oo7::dbus::Service>) -> Fut,
    Fut: std::future::Future<Output = Result<T, SecretError>>,
{
    let run = async {
        let svc = {
            let mut guard = slot.lock().await;
            match guard.as_ref() {
                Some(svc) => svc.clone(),
                None => {
                    let svc = Arc::new(oo7::dbus::Service::new().await?);
                    *guard = Some(svc.clone());
                    svc
                }
            }
        };
        f(svc).await
    };
    let result = match tokio::time::timeout(SECRET_SERVICE_TIMEOUT, run).await {
        Ok(r) => r,
        Err(_) => Err(SecretError::Timeout),
    };
    if result.is_err() {
        *slot.lock().await = None;
    }
    result
}

/// The fallback file: account id → passwords.
#[derive(Default, Serialize, Deserialize)]
struct SecretsFile {
    accounts: BTreeMap<String, FileEntry>,
}

#[derive(Default, Serialize, Deserialize)]
struct FileEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    incoming: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    smtp: Option<String>,
}

impl Drop for FileEntry {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.incoming.zeroize();
        self.smtp.zeroize();
    }
}

/// Refuse a secrets file that others can read or that is not ours (as ssh
/// refuses a private key with loose permissions).
fn check_private(path: &Path) -> Result<bool, SecretError> {
    use std::os::unix::fs::MetadataExt as _;
    let cannot =
        |e: std::io::Error| SecretError::Store(format!("Cannot read {}: {e}", path.display()));
    let link = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(cannot(e)),
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && link.is_symlink() => {
            // Never taken for "no file": a write would replace the link.
            let target = std::fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "an unreadable target".to_owned());
            return Err(SecretError::Store(format!(
                "The secrets file {} is a symbolic link to {target}, which does not exist; \
                 restore its target or remove the link, then restart facteurd",
                path.display()
            )));
        }
        Err(e) => return Err(cannot(e)),
    };
    if meta.is_dir() {
        return Err(SecretError::Store(format!(
            "The secrets file {} is a directory, not a file; move it away and restart facteurd",
            path.display()
        )));
    }
    if !meta.is_file() {
        return Err(SecretError::Store(format!(
            "The secrets file {} is not a regular file; move it away and restart facteurd",
            path.display()
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::Insecure(path.display().to_string(), mode));
    }
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(SecretError::Store(format!(
            "The secrets file {} belongs to another user",
            path.display()
        )));
    }
    Ok(true)
}

fn read_file(path: &Path) -> Result<SecretsFile, SecretError> {
    if !check_private(path)? {
        return Ok(SecretsFile::default());
    }
    let bytes = Zeroizing::new(
        std::fs::read(path)
            .map_err(|e| SecretError::Store(format!("Cannot read {}: {e}", path.display())))?,
    );
    serde_json::from_slice(&bytes).map_err(|e| {
        // serde's message carries a position, never the content.
        SecretError::Store(format!(
            "The secrets file {} is damaged: {e}",
            path.display()
        ))
    })
}

fn write_file(path: &Path, file: &SecretsFile) -> Result<(), SecretError> {
    check_private(path)?;
    let json = Zeroizing::new(
        serde_json::to_vec_pretty(file)
            .map_err(|e| SecretError::Store(format!("Cannot encode the secrets file: {e}")))?,
    );
    crate::fsutil::write_atomic(path, &json, 0o600)
        .map_err(|e| SecretError::Store(format!("{e:#}")))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SecretError> + Send + 'static,
) -> Result<T, SecretError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SecretError::Store(format!("The secrets task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[tokio::test]
    async fn file_store_round_trip_and_mode() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("secrets.json");
        let store = SecretStore::File(path.clone());
        assert_eq!(store.kind(), "file");
        assert!(store.get("a", Which::Incoming).await?.is_none());
        store.set("a", "a@x", Which::Incoming, "pw-one").await?;
        store.set("a", "a@x", Which::Smtp, "pw-two").await?;
        store.set("b", "b@x", Which::Incoming, "pw-three").await?;
        assert_eq!(
            std::fs::metadata(&path)?.permissions().mode() & 0o777,
            0o600
        );
        let got = store.get("a", Which::Smtp).await?;
        assert_eq!(got.as_deref().map(String::as_str), Some("pw-two"));
        store.delete_account("a").await?;
        assert!(store.get("a", Which::Incoming).await?.is_none());
        assert!(store.get("b", Which::Incoming).await?.is_some());
        store.set("b", "b@x", Which::Incoming, "").await?;
        assert!(store.get("b", Which::Incoming).await?.is_none());

        store.set("c", "c@x", Which::Incoming, "pw").await?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        let err = store.get("c", Which::Incoming).await.err();
        assert!(
            matches!(err, Some(SecretError::Insecure(_, 0o644))),
            "{err:?}"
        );
        let err = store
            .set("c", "c@x", Which::Incoming, "new-secret")
            .await
            .err();
        assert!(matches!(err, Some(SecretError::Insecure(..))));
        // The refusal message names the file and the fix, not the password.
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("chmod 600") && !text.contains("new-secret"),
            "{text}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_directory_or_a_dangling_link_is_named_for_what_it_is() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("secrets.json");
        std::fs::create_dir(&path)?;
        let store = SecretStore::File(path.clone());
        let text = store
            .get("a", Which::Incoming)
            .await
            .err()
            .map(|e| e.to_string());
        assert!(
            text.as_deref()
                .is_some_and(|t| t.contains("is a directory")),
            "{text:?}"
        );
        std::fs::remove_dir(&path)?;
        std::os::unix::fs::symlink(dir.path().join("gone.json"), &path)?;
        let text = store
            .get("a", Which::Incoming)
            .await
            .err()
            .map(|e| e.to_string());
        assert!(
            text.as_deref()
                .is_some_and(|t| t.contains("symbolic link") && t.contains("gone.json")),
            "{text:?}"
        );
        // Refused for writing too: the link is not replaced by a file.
        assert!(store.set("a", "a@x", Which::Incoming, "pw").await.is_err());
        assert!(std::fs::symlink_metadata(&path)?.is_symlink());
        Ok(())
    }

    #[tokio::test]
    async fn orphaned_passwords_are_removed() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = SecretStore::File(dir.path().join("secrets.json"));
        store.set("kept", "k@x", Which::Incoming, "pw-kept").await?;
        store
            .set("orphan", "o@x", Which::Incoming, "pw-orphan")
            .await?;
        let removed = store.remove_orphans(|id| id == "kept").await?;
        assert_eq!(removed, ["orphan"]);
        assert!(store.get("orphan", Which::Incoming).await?.is_none());
        assert!(store.get("kept", Which::Incoming).await?.is_some());
        assert!(store.remove_orphans(|id| id == "kept").await?.is_empty());
        Ok(())
    }
}

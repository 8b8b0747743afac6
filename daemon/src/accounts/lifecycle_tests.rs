//! Unit tests of the lifecycle with the file secret store: passwords read
//! once into the engine, Delete that always completes, passwords that
//! follow once the store can be written, ids never reused meanwhile.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;

use super::cleanup::Cleanup;
use super::retired::{Retired, FILE_NAME};
use super::*;
use crate::secrets::{SecretStore, Which};

struct Setup {
    dir: tempfile::TempDir,
    life: Lifecycle,
    cleanup: Cleanup,
    secrets: Arc<SecretStore>,
}

fn setup() -> anyhow::Result<Setup> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config");
    let store = crate::store::Store::open(&dir.path().join("data"))?;
    let registry = Arc::new(Registry::load(&config)?);
    let secrets = Arc::new(SecretStore::File(config.join("secrets.json")));
    let (events, _rx) = tokio::sync::mpsc::unbounded_channel();
    let scheduler = Arc::new(crate::sync::Scheduler::new(store.clone(), events));
    let retired = Retired::load(&config);
    let life = Lifecycle::new(registry.clone(), secrets.clone(), scheduler, store, retired);
    let cleanup = life.cleanup();
    Ok(Setup {
        dir,
        life,
        cleanup,
        secrets,
    })
}

fn input(pairs: &[(&str, &str)]) -> Input {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Given::Str((*v).to_owned())))
        .collect()
}

fn bob() -> Input {
    input(&[
        ("email", "bob@example.org"),
        ("incoming-host", "127.0.0.1"),
        ("incoming-port", "1"),
    ])
}

/// Bob's account (on a port where nothing listens) with this password.
async fn create_with_password(s: &Setup, password: &str) -> anyhow::Result<Arc<Account>> {
    let mut dict = bob();
    dict.insert("incoming-port".into(), Given::Int(1));
    dict.insert("incoming-password".into(), Given::Str(password.into()));
    s.life
        .create(&dict)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}

#[tokio::test]
async fn create_without_a_password_needs_credentials_and_an_update_gives_one() -> anyhow::Result<()>
{
    let s = setup()?;
    let mut without = bob();
    without.insert("incoming-port".into(), Given::Int(1));
    let account = s
        .life
        .create(&without)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(account.status().state, State::NeedsCredentials);
    assert!(account.status().attention_needed);
    let updated = s
        .life
        .update(&account, &input(&[("incoming-password", "pw-bob")]))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(updated.status.contains(&Field::State), "{updated:?}");
    assert_ne!(account.status().state, State::NeedsCredentials);
    let stored = s.secrets.get(&account.id, Which::Incoming).await?;
    assert_eq!(stored.as_deref().map(String::as_str), Some("pw-bob"));
    Ok(())
}

#[tokio::test]
async fn delete_completes_when_the_store_fails_and_the_passwords_follow() -> anyhow::Result<()> {
    let s = setup()?;
    let account = create_with_password(&s, "pw-gone").await?;
    let id = account.id.clone();
    let config = s.dir.path().join("config");
    let settings_file = config.join("accounts").join(format!("{id}.json"));
    assert!(settings_file.is_file());

    // A secrets file others can read: the store refuses every write.
    let secrets_file = config.join("secrets.json");
    std::fs::set_permissions(&secrets_file, std::fs::Permissions::from_mode(0o644))?;
    assert!(s.life.delete(&account).await.map_err(|f| f.error)?);
    assert!(s.life.registry().get(&id).is_none());
    assert!(!settings_file.exists());
    let note = std::fs::read_to_string(config.join(FILE_NAME))?;
    assert!(note.contains(&id), "{note}");

    assert!(
        !s.cleanup.remove_retired().await,
        "removed through a refusing store"
    );
    std::fs::set_permissions(&secrets_file, std::fs::Permissions::from_mode(0o600))?;
    // The same mailbox again gets another id while the old passwords wait.
    let again = create_with_password(&s, "pw-gone").await?;
    assert_ne!(again.id, id);

    assert!(s.cleanup.remove_retired().await);
    assert!(s.secrets.get(&id, Which::Incoming).await?.is_none());
    // The new account's password is its own and stays.
    assert!(s.secrets.get(&again.id, Which::Incoming).await?.is_some());
    assert!(!config.join(FILE_NAME).exists());
    Ok(())
}

#[tokio::test]
async fn a_noted_id_that_is_an_account_keeps_its_passwords() -> anyhow::Result<()> {
    let s = setup()?;
    let account = create_with_password(&s, "pw-live").await?;
    // As after a crash between the note and the settings file's removal.
    s.cleanup.retired.add(&account.id).await?;
    // While running, a known id is one being deleted: it waits.
    assert!(!s.cleanup.remove_retired().await);
    assert!(s.secrets.get(&account.id, Which::Incoming).await?.is_some());
    // At start, it is one whose Delete never finished: the note goes.
    s.cleanup.reconcile().await;
    assert!(s.cleanup.retired.ids().await.is_empty());
    assert!(s.cleanup.remove_retired().await);
    assert!(s.secrets.get(&account.id, Which::Incoming).await?.is_some());
    assert!(s.cleanup.remove_orphans().await);
    assert!(s.secrets.get(&account.id, Which::Incoming).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn a_change_queued_behind_a_delete_finds_the_account_gone() -> anyhow::Result<()> {
    let s = setup()?;
    let account = create_with_password(&s, "pw").await?;
    let id = account.id.clone();
    let settings_file = s
        .dir
        .path()
        .join("config/accounts")
        .join(format!("{id}.json"));
    assert!(s.life.delete(&account).await.map_err(|f| f.error)?);
    // A second Delete does nothing and says so.
    assert!(!s.life.delete(&account).await.map_err(|f| f.error)?);
    // An Update of the deleted account never writes it back.
    let updated = s
        .life
        .update(&account, &input(&[("display-name", "Back")]))
        .await;
    assert!(matches!(updated, Err(Change::NotFound(_))), "{updated:?}");
    assert!(!settings_file.exists());
    assert!(s.life.registry().get(&id).is_none());
    // Nor does the registry, asked directly.
    let direct = s
        .life
        .registry()
        .update(&account, &input(&[("display-name", "Back")]));
    assert!(matches!(direct, Err(Change::NotFound(_))), "{direct:?}");
    assert!(!settings_file.exists());
    let engine = s.life.ensure_engine(&account).await;
    assert!(engine.gone);
    Ok(())
}

#[tokio::test]
async fn a_sync_starts_the_engine_once_the_password_can_be_read() -> anyhow::Result<()> {
    let s = setup()?;
    let mut without = bob();
    without.insert("incoming-port".into(), Given::Int(1));
    let account = s
        .life
        .create(&without)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(account.status().state, State::NeedsCredentials);
    // Never an empty code beside a reason.
    assert_eq!(account.status().last_error_code, "no-password");
    let engine = s.life.ensure_engine(&account).await;
    let refused = engine.refused.map(|f| f.kind);
    assert_eq!(refused, Some(crate::net::FailureKind::Credentials));
    assert_eq!(account.status().state, State::NeedsCredentials);

    // The password appears (as when the keyring is unlocked).
    let label = account.settings().email;
    s.secrets
        .set(&account.id, &label, Which::Incoming, "pw-late")
        .await?;
    let engine = s.life.ensure_engine(&account).await;
    assert!(engine.refused.is_none(), "{engine:?}");
    assert!(engine.status.contains(&Field::State), "{engine:?}");
    assert_ne!(account.status().state, State::NeedsCredentials);
    assert!(account.status().last_error_code.is_empty());
    assert!(s.life.scheduler_runs(&account.id).await);
    Ok(())
}

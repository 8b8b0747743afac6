//! # The connection to facteurd
//!
//! Opens the bus (`--address`, else the session bus), builds the proxies of
//! [`facteur_dbus::proxy`] and the standard Properties and ObjectManager
//! proxies at the names of [`facteur_dbus::names`], and reads account
//! properties. When facteurd is not on the bus yet, a command waits a few
//! seconds for it ([`DAEMON_WAIT`]). It knows nothing about output; every error leaves here as a
//! [`Failure`] already worded for a person.

use std::env;
use std::time::Duration;

use facteur_dbus::names;
use facteur_dbus::proxy::{AccountProxy, ManagerProxy, OwnedDict};
use futures_util::StreamExt as _;
use zbus::fdo::{DBusProxy, ObjectManagerProxy, PropertiesChangedStream, PropertiesProxy};
use zbus::names::{BusName, InterfaceName};
use zbus::proxy::CacheProperties;
use zbus::zvariant::ObjectPath;
use zbus::Connection;

use crate::error::{self, from_daemon, from_fdo, from_zbus, no_such_account, Failure, On};

/// An open connection to the bus that facteurd is on.
pub struct Bus {
    conn: Connection,
}

/// Where the session bus is looked for when no address is given.
const SESSION_ENV: &str = "DBUS_SESSION_BUS_ADDRESS";

impl Bus {
    /// Connects to `address`, or to the session bus.
    pub async fn connect(address: Option<&str>) -> Result<Bus, Failure> {
        let conn = match address {
            Some(addr) => {
                let builder = zbus::connection::Builder::address(addr)
                    .map_err(|e| Failure::Usage(format!("--address: '{addr}': {e}")))?;
                builder.build().await.map_err(|e| {
                    Failure::Failed(format!(
                        "cannot connect to the bus at '{addr}': {}",
                        connect_error(&e)
                    ))
                })?
            }
            None => Connection::session()
                .await
                .map_err(|e| session_failure(&e))?,
        };
        wait_for_daemon(&conn, DAEMON_WAIT).await;
        Ok(Bus { conn })
    }

    /// The Manager at the root object.
    pub async fn manager(&self) -> Result<ManagerProxy<'static>, Failure> {
        ManagerProxy::builder(&self.conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| from_zbus(e, On::Manager))
    }

    /// The account with this id. An id that cannot be part of an object
    /// path names no account.
    pub async fn account(&self, id: &str) -> Result<AccountProxy<'static>, Failure> {
        let path = account_path(id)?;
        AccountProxy::builder(&self.conn)
            .path(path)
            .map_err(|e| from_zbus(e, On::Account(id)))?
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| from_zbus(e, On::Account(id)))
    }

    /// Fails if facteurd is not on the bus, so that nobody types a password
    /// for nothing.
    pub async fn ping(&self) -> Result<(), Failure> {
        let manager = self.manager().await?;
        manager
            .version()
            .await
            .map(drop)
            .map_err(|e| from_zbus(e, On::Manager))
    }

    /// Every property of one account (Properties.GetAll).
    pub async fn account_properties(&self, id: &str) -> Result<OwnedDict, Failure> {
        self.account_properties_proxy(id)
            .await?
            .get_all(account_interface()?)
            .await
            .map_err(|e| from_fdo(e, On::Account(id)))
    }

    /// The PropertiesChanged signals of one account, from now on: the
    /// match rule is in place when this returns.
    pub async fn account_changes(&self, id: &str) -> Result<PropertiesChangedStream, Failure> {
        self.account_properties_proxy(id)
            .await?
            .receive_properties_changed()
            .await
            .map_err(|e| from_zbus(e, On::Account(id)))
    }

    async fn account_properties_proxy(
        &self,
        id: &str,
    ) -> Result<PropertiesProxy<'static>, Failure> {
        let path = account_path(id)?;
        PropertiesProxy::builder(&self.conn)
            .destination(names::BUS_NAME)
            .and_then(|b| b.path(path))
            .map_err(|e| from_zbus(e, On::Account(id)))?
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| from_zbus(e, On::Account(id)))
    }

    /// Every account with every property, sorted by id: one
    /// GetManagedObjects call, or ListAccounts and a GetAll per account
    /// where the daemon has no ObjectManager.
    pub async fn accounts(&self) -> Result<Vec<(String, OwnedDict)>, Failure> {
        let om = ObjectManagerProxy::builder(&self.conn)
            .destination(names::BUS_NAME)
            .and_then(|b| b.path(names::ROOT_PATH))
            .map_err(|e| from_zbus(e, On::Manager))?
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| from_zbus(e, On::Manager))?;
        let mut accounts = match om.get_managed_objects().await {
            Ok(objects) => objects
                .into_iter()
                .filter_map(|(path, mut ifaces)| {
                    let id = names::account_id(path.as_str())?.to_owned();
                    // zbus lists intermediate nodes with no interface (the
                    // accounts folder itself): skip anything that is not an
                    // account.
                    let props = ifaces
                        .iter()
                        .find(|(name, _)| name.as_str() == names::ACCOUNT_INTERFACE)
                        .map(|(name, _)| name.clone())
                        .and_then(|name| ifaces.remove(&name))?;
                    Some((id, props))
                })
                .collect(),
            Err(e) => {
                let e = facteur_dbus::Error::from(zbus::Error::from(e));
                if !error::is_unknown_method(&e) && !error::is_unknown_object(&e) {
                    return Err(from_daemon(e, On::Manager));
                }
                self.accounts_one_by_one().await?
            }
        };
        accounts.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(accounts)
    }

    async fn accounts_one_by_one(&self) -> Result<Vec<(String, OwnedDict)>, Failure> {
        let manager = self.manager().await?;
        let paths = manager
            .list_accounts()
            .await
            .map_err(|e| from_daemon(e, On::Manager))?;
        let mut accounts = Vec::with_capacity(paths.len());
        for path in paths {
            let Some(id) = names::account_id(path.as_str()) else {
                continue;
            };
            match self.account_properties(id).await {
                Ok(props) => accounts.push((id.to_owned(), props)),
                // Removed between the two calls.
                Err(f) if f == no_such_account(id) => {}
                Err(f) => return Err(f),
            }
        }
        Ok(accounts)
    }

    /// The failure for a call on an account that failed with `e`. A bus
    /// that answers "unknown method" might mean a missing account (an
    /// object server without the path) or a daemon that lacks the method:
    /// asking for the account's properties tells them apart.
    pub async fn account_failure(&self, id: &str, e: facteur_dbus::Error, on: On<'_>) -> Failure {
        if error::is_unknown_method(&e) {
            if let Err(f) = self.account_properties(id).await {
                if f == no_such_account(id) {
                    return f;
                }
            }
        }
        from_daemon(e, on)
    }
}

/// How long a command waits for facteurd to take its name when it is not
/// on the bus yet (`facteurd & facteurctl …` in one script).
pub const DAEMON_WAIT: Duration = Duration::from_secs(5);

/// Waits up to `wait` for `org.facteur.Facteur1` to have an owner, so that
/// a command started just after facteurd finds it. Returns at once when the
/// name is owned, or when the bus can start facteurd itself (D-Bus
/// activation: the first call starts it). Anything the bus refuses here is
/// left for the command's own call to report.
async fn wait_for_daemon(conn: &Connection, wait: Duration) {
    let Ok(dbus) = DBusProxy::new(conn).await else {
        return;
    };
    let Ok(name) = BusName::try_from(names::BUS_NAME) else {
        return;
    };
    // Subscribed before the check, so an owner that arrives in between is
    // not missed.
    let Ok(mut owners) = dbus
        .receive_name_owner_changed_with_args(&[(0, names::BUS_NAME)])
        .await
    else {
        return;
    };
    if dbus.name_has_owner(name.clone()).await.unwrap_or(true) {
        return;
    }
    let activatable = dbus
        .list_activatable_names()
        .await
        .map(|list| list.iter().any(|n| n.as_str() == names::BUS_NAME))
        .unwrap_or(true);
    if activatable {
        return;
    }
    let owned = async {
        while let Some(signal) = owners.next().await {
            if signal.args().is_ok_and(|a| a.new_owner().is_some()) {
                return;
            }
        }
    };
    // A timeout is no error: the command's call then says facteurd is not
    // running.
    let _ = tokio::time::timeout(wait, owned).await;
}

/// The object path of an account, refusing ids that cannot be one.
fn account_path(id: &str) -> Result<ObjectPath<'static>, Failure> {
    let path = names::account_path(id);
    if names::account_id(&path) != Some(id) {
        return Err(no_such_account(id));
    }
    ObjectPath::try_from(path).map_err(|_| no_such_account(id))
}

fn account_interface() -> Result<InterfaceName<'static>, Failure> {
    InterfaceName::try_from(names::ACCOUNT_INTERFACE)
        .map_err(|e| Failure::Failed(format!("internal error: {e}")))
}

/// Words the failure to reach the session bus.
fn session_failure(e: &zbus::Error) -> Failure {
    match env::var(SESSION_ENV) {
        Ok(addr) if !addr.is_empty() => Failure::Failed(format!(
            "cannot connect to the session bus at '{addr}' (from {SESSION_ENV}): {}",
            connect_error(e)
        )),
        _ => {
            let tried = match e {
                zbus::Error::Connection(_, addr) => format!(" at '{addr}'"),
                _ => String::new(),
            };
            Failure::Failed(format!(
                "no session bus ({SESSION_ENV} is not set, and none answers{tried}: {}); \
                 run inside a desktop session or 'dbus-run-session', or pass --address",
                connect_error(e)
            ))
        }
    }
}

/// The cause of a failed connection, without zbus repeating the address.
fn connect_error(e: &zbus::Error) -> String {
    match e {
        zbus::Error::Connection(io, _) => io.to_string(),
        other => other.to_string(),
    }
}

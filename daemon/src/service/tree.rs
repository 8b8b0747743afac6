//! # The object tree as a D-Bus client sees it
//!
//! zbus 5.19 gets three things about the standard interfaces wrong for us,
//! and this module puts them right without patching zbus:
//!
//! - **`Properties.Set` on a read-only property.** zbus's `Properties`
//!   answers `UnknownProperty` whenever the interface has no setter for the
//!   name, because the generated `Interface::set` cannot tell "no such
//!   property" from "no setter". [`Served`] wraps each of our interfaces and
//!   answers `PropertyReadOnly` for the properties it does have.
//! - **Introspection of parent nodes.** zbus's `Introspectable` writes the
//!   whole subtree below a node, every child's interfaces included, where
//!   the specification (and every other implementation) lists child nodes
//!   by name only. systemd's busctl misreads those nested interfaces (its
//!   parser keeps a method argument's `direction="in"` and reports it for
//!   the next signal's arguments: `Unexpected signal <arg> direction value
//!   'in'.`, three per `NewMessages` nested under `/`, `/org` and
//!   `/org/facteur`). Every parent node — `/`, `/org`, `/org/facteur`, the
//!   root object and `/org/facteur/Facteur1/accounts` — therefore gets
//!   [`Introspection`] instead: its own interfaces, then `<node name="…"/>`
//!   for each child. Account objects are leaves, and zbus's own answer for
//!   a leaf is right.
//! - zbus drops a node whose only interfaces are the standard ones as soon
//!   as one of them is removed, so the plain parent nodes keep a member-less
//!   [`Keep`] interface that holds them in the tree. It is never listed:
//!   not in introspection, and not by [`Objects`], the ObjectManager, which
//!   lists account objects only (zbus's listed the `accounts` node too, as
//!   an object without interfaces).

// zbus generates a public signal-emitter trait for the ObjectManager's
// signals without docs.
#![allow(missing_docs)]

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use facteur_dbus::names;
use zbus::fdo;
use zbus::message::Header;
use zbus::names::{InterfaceName, OwnedInterfaceName};
use zbus::object_server::{DispatchResult2, Interface, ObjectServer, SignalEmitter};
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};
use zbus::Connection;

use super::account::AccountObject;
use super::manager::Manager;
use crate::Daemon;

/// The nodes above the objects, each of which lists its children by name.
pub const PARENTS: &[&str] = &["/", "/org", "/org/facteur", names::ACCOUNTS_PATH];

/// One of our interfaces as served: every call and property read goes to
/// the interface; a `Set` of one of its (read-only) properties answers
/// `org.freedesktop.DBus.Error.PropertyReadOnly`, of any other name
/// `UnknownProperty`.
pub struct Served<T> {
    inner: T,
    /// The names of the interface's properties, from its introspection.
    properties: BTreeSet<String>,
}

impl<T: Interface> Served<T> {
    /// Serve `inner`.
    pub fn new(inner: T) -> Self {
        let mut xml = String::new();
        inner.introspect_to_writer(&mut xml, 0);
        Served {
            inner,
            properties: property_names(&xml),
        }
    }

    /// The interface itself.
    pub fn inner(&self) -> &T {
        &self.inner
    }
}

/// The `name` of every `<property>` element of an introspection fragment.
fn property_names(xml: &str) -> BTreeSet<String> {
    xml.split("<property name=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

impl<T> Served<T> {
    fn read_only(&self, name: &str) -> Option<fdo::Error> {
        self.properties
            .contains(name)
            .then(|| fdo::Error::PropertyReadOnly(format!("Property '{name}' is read-only")))
    }
}

#[zbus::export::async_trait::async_trait]
impl<T: Interface> Interface for Served<T> {
    fn name() -> InterfaceName<'static> {
        T::name()
    }

    fn spawn_tasks_for_methods(&self) -> bool {
        self.inner.spawn_tasks_for_methods()
    }

    async fn get(
        &self,
        property_name: &str,
        server: &ObjectServer,
        connection: &Connection,
        header: Option<&Header<'_>>,
        emitter: &SignalEmitter<'_>,
    ) -> Option<fdo::Result<OwnedValue>> {
        self.inner
            .get(property_name, server, connection, header, emitter)
            .await
    }

    async fn get_all(
        &self,
        server: &ObjectServer,
        connection: &Connection,
        header: Option<&Header<'_>>,
        emitter: &SignalEmitter<'_>,
    ) -> fdo::Result<HashMap<String, OwnedValue>> {
        self.inner
            .get_all(server, connection, header, emitter)
            .await
    }

    fn set<'call>(
        &'call self,
        property_name: &'call str,
        value: &'call Value<'_>,
        server: &'call ObjectServer,
        connection: &'call Connection,
        header: Option<&'call Header<'_>>,
        emitter: &'call SignalEmitter<'_>,
    ) -> DispatchResult2<'call> {
        match self
            .inner
            .set(property_name, value, server, connection, header, emitter)
        {
            DispatchResult2::NotFound => match self.read_only(property_name) {
                Some(e) => DispatchResult2::Async(Box::pin(async move { Err(e) })),
                None => DispatchResult2::NotFound,
            },
            other => other,
        }
    }

    async fn set_mut(
        &mut self,
        property_name: &str,
        value: &Value<'_>,
        server: &ObjectServer,
        connection: &Connection,
        header: Option<&Header<'_>>,
        emitter: &SignalEmitter<'_>,
    ) -> Option<fdo::Result<()>> {
        match self
            .inner
            .set_mut(property_name, value, server, connection, header, emitter)
            .await
        {
            Some(r) => Some(r),
            None => self.read_only(property_name).map(Err),
        }
    }

    fn call<'call>(
        &'call self,
        server: &'call ObjectServer,
        connection: &'call Connection,
        msg: &'call zbus::Message,
        name: zbus::names::MemberName<'call>,
    ) -> DispatchResult2<'call> {
        self.inner.call(server, connection, msg, name)
    }

    fn call_mut<'call>(
        &'call mut self,
        server: &'call ObjectServer,
        connection: &'call Connection,
        msg: &'call zbus::Message,
        name: zbus::names::MemberName<'call>,
    ) -> DispatchResult2<'call> {
        self.inner.call_mut(server, connection, msg, name)
    }

    fn introspect_to_writer(&self, writer: &mut dyn std::fmt::Write, level: usize) {
        self.inner.introspect_to_writer(writer, level);
    }
}

/// Holds a parent node in zbus's tree (see the module documentation).
pub struct Keep;

#[zbus::interface(
    name = "org.facteur.Facteur1.Internal.Node",
    introspection_docs = false
)]
impl Keep {}

/// `org.freedesktop.DBus.Introspectable` of a parent node.
pub struct Introspection {
    path: String,
    daemon: Arc<Daemon>,
}

impl Introspection {
    /// The introspection of the node at `path`.
    pub fn new(path: &str, daemon: Arc<Daemon>) -> Self {
        Introspection {
            path: path.to_owned(),
            daemon,
        }
    }

    /// The names of the children of this node, sorted.
    fn children(&self) -> BTreeSet<String> {
        let mut paths: Vec<String> = vec![names::ROOT_PATH.to_owned(), names::ACCOUNTS_PATH.into()];
        paths.extend(
            self.daemon
                .accounts
                .all()
                .iter()
                .map(|a| names::account_path(&a.id)),
        );
        children_of(&self.path, &paths)
    }
}

/// The first segment below `parent` of each path that lies below it.
fn children_of(parent: &str, paths: &[String]) -> BTreeSet<String> {
    let prefix = if parent == "/" {
        "/".to_owned()
    } else {
        format!("{parent}/")
    };
    paths
        .iter()
        .filter_map(|p| p.strip_prefix(&prefix))
        .filter_map(|rest| rest.split('/').next())
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

const DOCTYPE: &str = "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection \
                       1.0//EN\"\n \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n";

/// `org.freedesktop.DBus.Peer`, served by zbus on every node.
const PEER: &str = r#"  <interface name="org.freedesktop.DBus.Peer">
    <method name="Ping">
    </method>
    <method name="GetMachineId">
      <arg type="s" direction="out"/>
    </method>
  </interface>
"#;

#[zbus::interface(
    name = "org.freedesktop.DBus.Introspectable",
    introspection_docs = false
)]
impl Introspection {
    /// This node's interfaces and the names of its children.
    async fn introspect(
        &self,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> fdo::Result<String> {
        let mut xml = String::from(DOCTYPE);
        xml.push_str("<node>\n");
        xml.push_str(PEER);
        <Self as Interface>::introspect_to_writer(self, &mut xml, 2);
        fdo::Properties.introspect_to_writer(&mut xml, 2);
        if self.path == names::ROOT_PATH {
            <Objects as Interface>::introspect_to_writer(
                &Objects {
                    daemon: self.daemon.clone(),
                },
                &mut xml,
                2,
            );
            let manager = server
                .interface::<_, Served<Manager>>(names::ROOT_PATH)
                .await
                .map_err(|e| fdo::Error::Failed(format!("The Manager is not served: {e}")))?;
            manager.get().await.introspect_to_writer(&mut xml, 2);
        }
        for child in self.children() {
            // Node names are path segments: [A-Za-z0-9_] only.
            let _ = writeln!(xml, "  <node name=\"{child}\"/>");
        }
        xml.push_str("</node>\n");
        Ok(xml)
    }
}

/// A path's object, with the properties of each of its interfaces.
type ManagedObjects =
    HashMap<OwnedObjectPath, HashMap<OwnedInterfaceName, HashMap<String, OwnedValue>>>;

/// `org.freedesktop.DBus.ObjectManager` at the root: the account objects.
/// zbus still emits `InterfacesAdded` and `InterfacesRemoved` itself (it
/// recognises the interface by its name).
pub struct Objects {
    daemon: Arc<Daemon>,
}

impl Objects {
    /// The ObjectManager over the daemon's accounts.
    pub fn new(daemon: Arc<Daemon>) -> Self {
        Objects { daemon }
    }
}

#[zbus::interface(
    name = "org.freedesktop.DBus.ObjectManager",
    introspection_docs = false
)]
impl Objects {
    /// Every account object with the properties of its Account interface.
    async fn get_managed_objects(
        &self,
        #[zbus(object_server)] server: &ObjectServer,
        #[zbus(connection)] connection: &Connection,
    ) -> fdo::Result<ManagedObjects> {
        let mut out = ManagedObjects::new();
        for account in self.daemon.accounts.all() {
            let path = names::account_path(&account.id);
            // An account between its creation and its export, or being
            // deleted, has no object: it is not listed.
            let Ok(iface) = server
                .interface::<_, Served<AccountObject>>(path.as_str())
                .await
            else {
                continue;
            };
            let emitter = iface.signal_emitter().clone();
            let props = iface
                .get()
                .await
                .get_all(server, connection, None, &emitter)
                .await?;
            let (Ok(p), Ok(name)) = (
                OwnedObjectPath::try_from(path),
                OwnedInterfaceName::try_from(names::ACCOUNT_INTERFACE),
            ) else {
                continue;
            };
            out.insert(p, HashMap::from([(name, props)]));
        }
        Ok(out)
    }

    /// An object was added, or gained interfaces.
    #[zbus(signal)]
    async fn interfaces_added(
        emitter: &SignalEmitter<'_>,
        object_path: ObjectPath<'_>,
        interfaces_and_properties: HashMap<InterfaceName<'_>, HashMap<&str, Value<'_>>>,
    ) -> zbus::Result<()>;

    /// An object was removed, or lost interfaces.
    #[zbus(signal)]
    async fn interfaces_removed(
        emitter: &SignalEmitter<'_>,
        object_path: ObjectPath<'_>,
        interfaces: Vec<InterfaceName<'_>>,
    ) -> zbus::Result<()>;
}

/// Set up the parent nodes around the Manager (already served at the root
/// path): each gets [`Keep`] and [`Introspection`]; then the ObjectManager.
/// Called before any account is served and before the name is taken, so no
/// `InterfacesAdded` is emitted for any of it.
pub async fn serve_parents(server: &ObjectServer, daemon: &Arc<Daemon>) -> zbus::Result<()> {
    let introspectable =
        InterfaceName::from_static_str_unchecked("org.freedesktop.DBus.Introspectable");
    for &path in PARENTS {
        server.at(path, Keep).await?;
    }
    for &path in PARENTS.iter().chain([&names::ROOT_PATH]) {
        server.remove_named(path, introspectable.clone()).await?;
        server
            .at(path, Introspection::new(path, daemon.clone()))
            .await?;
    }
    server
        .at(names::ROOT_PATH, Objects::new(daemon.clone()))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_the_next_segment() {
        let paths: Vec<String> = vec![
            names::ROOT_PATH.into(),
            names::ACCOUNTS_PATH.into(),
            names::account_path("a_example_org"),
            names::account_path("b_example_org"),
        ];
        let list = |p: &str| children_of(p, &paths).into_iter().collect::<Vec<_>>();
        assert_eq!(list("/"), ["org"]);
        assert_eq!(list("/org"), ["facteur"]);
        assert_eq!(list("/org/facteur"), ["Facteur1"]);
        assert_eq!(list(names::ROOT_PATH), ["accounts"]);
        assert_eq!(
            list(names::ACCOUNTS_PATH),
            ["a_example_org", "b_example_org"]
        );
        assert!(list(&names::account_path("a_example_org")).is_empty());
    }

    #[test]
    fn property_names_come_from_the_introspection() {
        let xml = r#"<interface name="x"><property name="State" type="s" access="read"/>
            <method name="Sync"/><property name="Progress" type="(uu)" access="read">
            </property></interface>"#;
        let names: Vec<_> = property_names(xml).into_iter().collect();
        assert_eq!(names, ["Progress", "State"]);
    }
}

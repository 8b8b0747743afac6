//! The private `dbus-daemon` and calls on it: [`Bus`], [`BusOptions`], [`CallError`].

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use facteur_dbus::names;
use tempfile::TempDir;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use crate::{
    run, short_tempdir, text, tool, wait_until, workspace_binary, Props, Settings, DEADLINE,
};

/// A private `dbus-daemon` of type session, killed on drop.
///
/// Its configuration lists one service directory, [`Bus::services_dir`], and
/// nothing else: no system service is activatable on it.
pub struct Bus {
    /// The `dbus-daemon` process; killed and reaped on drop.
    child: Child,
    /// Holds the configuration, the socket, `services/` and the log.
    dir: TempDir,
    address: String,
    /// Runs the harness's own zbus connection and signal recorders. Dropped
    /// last, after the connection.
    pub(crate) rt: tokio::runtime::Runtime,
    /// The harness's client connection; `None` only while dropping.
    conn: Option<zbus::Connection>,
}

/// Options for [`Bus::start_with`].
#[derive(Default)]
pub struct BusOptions {
    /// `.service` files to put into the service directory, by file name.
    pub services: Vec<(String, String)>,
    /// Environment for the dbus-daemon, and so for the services it activates.
    pub env: Vec<(OsString, OsString)>,
}

impl Bus {
    /// Start a private bus with an empty service directory.
    pub fn start() -> Bus {
        Bus::start_with(BusOptions::default())
    }

    /// Start a private bus with the given activatable services and
    /// environment.
    pub fn start_with(options: BusOptions) -> Bus {
        let daemon = tool("dbus-daemon", "dbus-daemon");
        let dir = short_tempdir("facteur-bus-");
        let services = dir.path().join("services");
        fs::create_dir_all(&services).expect("create the service directory");
        for (name, contents) in &options.services {
            fs::write(services.join(name), contents).expect("write a .service file");
        }
        let config = dir.path().join("bus.conf");
        fs::write(
            &config,
            bus_config(&dir.path().join("bus"), &services).as_bytes(),
        )
        .expect("write the bus configuration");
        let log = fs::File::create(dir.path().join("bus.log")).expect("create the bus log");

        let mut cmd = Command::new(daemon);
        cmd.arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (k, v) in &options.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start dbus-daemon");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let address = match rx.recv_timeout(DEADLINE) {
            Ok(line) if !line.trim().is_empty() => line.trim().to_owned(),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "dbus-daemon printed no address: {}",
                    fs::read_to_string(dir.path().join("bus.log")).unwrap_or_default()
                );
            }
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("build a tokio runtime");
        let conn = rt.block_on(async {
            tokio::time::timeout(DEADLINE, async {
                zbus::connection::Builder::address(address.as_str())?
                    .build()
                    .await
            })
            .await
        });
        let conn = match conn {
            Ok(Ok(c)) => c,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("cannot connect to the private bus at {address}: {other:?}");
            }
        };
        Bus {
            child,
            dir,
            address,
            rt,
            conn: Some(conn),
        }
    }

    /// The bus address, as for `DBUS_SESSION_BUS_ADDRESS`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The directory dbus-daemon activates services from.
    pub fn services_dir(&self) -> PathBuf {
        self.dir.path().join("services")
    }

    /// What dbus-daemon (and the services it activated) wrote on stderr.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("bus.log")).unwrap_or_default()
    }

    /// The harness's own connection to the bus.
    pub fn connection(&self) -> &zbus::Connection {
        self.conn.as_ref().expect("the bus connection is open")
    }

    /// Run a future on the harness's runtime, failing after [`DEADLINE`].
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt
            .block_on(async { tokio::time::timeout(DEADLINE, f).await })
            .unwrap_or_else(|_| panic!("a D-Bus call did not finish within {DEADLINE:?}"))
    }

    /// Whether `name` has an owner on the bus right now.
    pub fn name_has_owner(&self, name: &str) -> bool {
        let reply = self.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            &(name,),
        );
        reply
            .expect("NameHasOwner answers")
            .body()
            .deserialize::<bool>()
            .expect("NameHasOwner returns a boolean")
    }

    /// The pid of the process owning `name`, if it is owned.
    pub fn name_owner_pid(&self, name: &str) -> Option<u32> {
        self.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "GetConnectionUnixProcessID",
            &(name,),
        )
        .ok()
        .and_then(|m| m.body().deserialize::<u32>().ok())
    }

    /// Wait until `name` is owned (`owned = true`) or released; `false` when
    /// the deadline passed first.
    pub fn wait_for_name(&self, name: &str, owned: bool, limit: Duration) -> bool {
        wait_until(limit, || (self.name_has_owner(name) == owned).then_some(())).is_some()
    }

    /// Call a method with a body and return the reply, or the D-Bus error.
    pub fn call<B>(
        &self,
        dest: &str,
        path: &str,
        iface: &str,
        method: &str,
        body: &B,
    ) -> Result<zbus::Message, CallError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        let conn = self.connection().clone();
        self.block_on(async move {
            conn.call_method(Some(dest), path, Some(iface), method, body)
                .await
        })
        .map_err(CallError::from)
    }

    /// Call a method of facteurd (`org.facteur.Facteur1`).
    pub fn call_facteur<B>(
        &self,
        path: &str,
        iface: &str,
        method: &str,
        body: &B,
    ) -> Result<zbus::Message, CallError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        self.call(names::BUS_NAME, path, iface, method, body)
    }

    /// `Manager.CreateAccount(settings)`, the path of the new account or the
    /// error.
    pub fn create_account(&self, settings: &Settings) -> Result<String, CallError> {
        let reply = self.call_facteur(
            names::ROOT_PATH,
            names::MANAGER_INTERFACE,
            "CreateAccount",
            &(settings.as_dict(),),
        )?;
        let path: OwnedObjectPath = reply
            .body()
            .deserialize()
            .expect("CreateAccount returns an object path");
        Ok(path.as_str().to_owned())
    }

    /// `Account.Update(changes)` on the account at `path`.
    pub fn update_account(&self, path: &str, changes: &Settings) -> Result<(), CallError> {
        self.call_facteur(
            path,
            names::ACCOUNT_INTERFACE,
            "Update",
            &(changes.as_dict(),),
        )
        .map(|_| ())
    }

    /// `Account.Delete()` on the account at `path`.
    pub fn delete_account(&self, path: &str) -> Result<(), CallError> {
        self.call_facteur(path, names::ACCOUNT_INTERFACE, "Delete", &())
            .map(|_| ())
    }

    /// `Manager.ListAccounts()`, sorted.
    pub fn list_accounts(&self) -> Vec<String> {
        let reply = self
            .call_facteur(
                names::ROOT_PATH,
                names::MANAGER_INTERFACE,
                "ListAccounts",
                &(),
            )
            .expect("ListAccounts answers");
        let mut paths: Vec<String> = reply
            .body()
            .deserialize::<Vec<OwnedObjectPath>>()
            .expect("ListAccounts returns ao")
            .into_iter()
            .map(|p| p.as_str().to_owned())
            .collect();
        paths.sort();
        paths
    }

    /// `Properties.GetAll(iface)` on one of facteurd's objects.
    pub fn properties(&self, path: &str, iface: &str) -> Result<Props, CallError> {
        let reply =
            self.call_facteur(path, "org.freedesktop.DBus.Properties", "GetAll", &(iface,))?;
        Ok(Props(
            reply
                .body()
                .deserialize::<HashMap<String, OwnedValue>>()
                .expect("GetAll returns a{sv}"),
        ))
    }

    /// Every property of the account at `path`.
    pub fn account(&self, path: &str) -> Props {
        self.properties(path, names::ACCOUNT_INTERFACE)
            .unwrap_or_else(|e| panic!("GetAll on {path} failed: {e}"))
    }

    /// One property of the Manager.
    pub fn manager_property(&self, name: &str) -> OwnedValue {
        let reply = self
            .call_facteur(
                names::ROOT_PATH,
                "org.freedesktop.DBus.Properties",
                "Get",
                &(names::MANAGER_INTERFACE, name),
            )
            .unwrap_or_else(|e| panic!("Get Manager.{name} failed: {e}"));
        reply
            .body()
            .deserialize::<OwnedValue>()
            .expect("Get returns a variant")
    }

    /// `Introspect()` of one of facteurd's objects.
    pub fn introspect(&self, path: &str) -> String {
        let reply = self
            .call_facteur(
                path,
                "org.freedesktop.DBus.Introspectable",
                "Introspect",
                &(),
            )
            .unwrap_or_else(|e| panic!("Introspect {path} failed: {e}"));
        reply
            .body()
            .deserialize::<String>()
            .expect("Introspect returns a string")
    }

    /// Run `facteurctl` against this bus, with `stdin` as its input.
    pub fn ctl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(workspace_binary("facteurctl"));
        cmd.args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env_remove("DBUS_STARTER_ADDRESS");
        run(&mut cmd, stdin.map(str::as_bytes))
    }

    /// [`Bus::ctl`] that must succeed; returns its standard output.
    pub fn ctl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.ctl(args, stdin);
        assert!(
            out.status.success(),
            "facteurctl {args:?} failed with {}\nstdout: {}\nstderr: {}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Run the real `gdbus` against this bus: `args[0]` is the subcommand
    /// (`call`, `introspect`, …); `--address` is inserted after it.
    pub fn gdbus(&self, args: &[&str]) -> Output {
        let gdbus = tool("gdbus", "libglib2.0-bin");
        let (sub, rest) = args.split_first().expect("a gdbus subcommand");
        let mut cmd = Command::new(gdbus);
        cmd.arg(sub).args(["--address", &self.address]).args(rest);
        run(&mut cmd, None)
    }

    /// `gdbus call --dest org.facteur.Facteur1 --object-path PATH --method
    /// METHOD ARGS…`.
    pub fn gdbus_call(&self, path: &str, method: &str, args: &[&str]) -> Output {
        let mut all = vec![
            "call",
            "--dest",
            names::BUS_NAME,
            "--object-path",
            path,
            "--method",
            method,
        ];
        all.extend_from_slice(args);
        self.gdbus(&all)
    }

    /// A command for a tool that talks to this bus (its address in the
    /// environment).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("DBUS_SESSION_BUS_ADDRESS", &self.address);
        cmd
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Close inside the runtime: zbus's socket tasks live there.
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(2), conn.close()).await
            });
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bus_config(socket: &Path, services: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<!-- A private session bus for one facteur test. Only services in the one
     servicedir below are activatable: never the system's. -->
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{services}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <limit name="service_start_timeout">15000</limit>
</busconfig>
"#,
        socket = socket.display(),
        services = services.display(),
    )
}

/// A D-Bus error answer, or a failure to talk to the bus at all.
#[derive(Debug, Clone)]
pub struct CallError {
    /// The full error name (`org.facteur.Facteur1.Error.InvalidArgument`), or
    /// `zbus` for a failure that is not an error reply.
    pub name: String,
    /// The message carried by the error.
    pub message: String,
}

impl CallError {
    /// The last component of the error name (`InvalidArgument`).
    pub fn short_name(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or(&self.name)
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl From<zbus::Error> for CallError {
    fn from(e: zbus::Error) -> Self {
        match e {
            zbus::Error::MethodError(name, msg, _) => CallError {
                name: name.to_string(),
                message: msg.unwrap_or_default(),
            },
            zbus::Error::FDO(fdo) => {
                let name = {
                    use zbus::DBusError;
                    fdo.name().to_string()
                };
                CallError {
                    name,
                    message: fdo.to_string(),
                }
            }
            other => CallError {
                name: "zbus".into(),
                message: other.to_string(),
            },
        }
    }
}

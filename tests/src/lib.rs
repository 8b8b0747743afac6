//! # facteur end-to-end test harness
//!
//! Starts the real parts a test needs and tears them down on drop:
//!
//! - [`Bus`]: a private `dbus-daemon` with its own configuration file (type
//!   session, a unix socket in a temporary directory, and a service directory
//!   of its own, so that only what a test puts there can be bus-activated:
//!   the system's gnome-keyring is never activated behind a test's back).
//! - [`Keyring`]: `gnome-keyring-daemon --foreground --unlock
//!   --components=secrets` on that bus, with a throwaway home.
//! - [`Facteurd`]: the real `facteurd` binary from this cargo target directory,
//!   with temporary `--config-dir` and `--data-dir`, its output in a log file.
//! - [`Signals`]: a recorder of every signal the daemon emits
//!   (`PropertiesChanged`, `InterfacesAdded`, `InterfacesRemoved`, …).
//! - [`Bus::ctl`] and [`Bus::gdbus`] run `facteurctl` and the real `gdbus` (an
//!   outside client) against the private bus.
//! - [`xml`]: introspection XML, normalised for comparison.
//! - [`dovecot`] and [`tls`]: a disposable Dovecot and a test CA for the
//!   mail-server tests (see those modules).
//!
//! The harness is synchronous: it owns a small tokio runtime per bus for its
//! own zbus connection, and every wait in it has a deadline. A tool that is
//! missing makes the test fail with the Debian package to install and the
//! README's test command; nothing here ever skips a test silently.
//!
//! What the harness leaves to the tests: what to assert. It only starts,
//! observes and stops.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use facteur_dbus::names;
use tempfile::TempDir;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

pub mod dovecot;
pub mod keyring_unlock;
pub mod mta;
pub mod notifications;
pub mod scripted_imap;
pub mod tls;
pub mod xml;

/// The command that installs what the tests need and runs the whole suite,
/// as the README says.
pub const TEST_COMMAND: &str = "scripts/test.sh";

/// The last `n` lines of a log, for failure messages.
pub fn last_lines(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How long any single wait in the harness may take before the test fails.
///
/// Generous on purpose: CI machines have two cores and run two tests at once,
/// each with its own dbus-daemon and facteurd.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// How often a wait polls its condition.
const POLL: Duration = Duration::from_millis(20);

/// The password the harness gives gnome-keyring for its login keyring.
const KEYRING_PASSWORD: &str = "facteur-test-keyring";

// ---------------------------------------------------------------------------
// Tools and binaries
// ---------------------------------------------------------------------------

/// The absolute path of an external tool, or a test failure that names the
/// Debian package providing it and the README's test command.
pub fn tool(name: &str, package: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for extra in ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        dirs.push(PathBuf::from(extra));
    }
    for dir in dirs {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return candidate;
        }
    }
    panic!(
        "`{name}` is not installed: install the Debian package `{package}` \
         (`sudo apt-get install {package}`), or run `{TEST_COMMAND}`, which \
         installs every package the tests need and then runs them"
    );
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `target/<profile>/`, the directory the workspace binaries are built into.
///
/// Integration tests run from `target/<profile>/deps/`, so this is the parent
/// of the directory of the running test executable.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let deps = exe.parent().expect("the test executable is in a directory");
    if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("deps/ has a parent").to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

/// The path of a workspace binary (`facteurd`, `facteurctl`) built for the
/// same profile as the running test, or a failure saying how to build it.
pub fn workspace_binary(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        is_executable(&path),
        "{} does not exist: build the workspace first with `cargo build --workspace` \
         (`{TEST_COMMAND}` does), then run the tests again",
        path.display()
    );
    path
}

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// Whether the tests run as root (file modes do not stop root from reading).
pub fn running_as_root() -> bool {
    // The owner of a file we create is our effective uid.
    let dir = tempfile::tempdir().expect("create a temporary directory");
    use std::os::unix::fs::MetadataExt;
    fs::metadata(dir.path())
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A temporary directory whose socket paths stay under the 108-byte limit of
/// `sockaddr_un`, even when `TMPDIR` is long.
pub fn short_tempdir(prefix: &str) -> TempDir {
    let base = std::env::temp_dir();
    let base = if base.as_os_str().len() > 60 {
        PathBuf::from("/tmp")
    } else {
        base
    };
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .expect("create a temporary directory")
}

/// Create a directory (and its parents) with mode 0700.
pub fn private_dir(path: &Path) -> PathBuf {
    fs::create_dir_all(path).expect("create a private directory");
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).expect("chmod 0700");
    path.to_path_buf()
}

// ---------------------------------------------------------------------------
// Running commands with a deadline
// ---------------------------------------------------------------------------

/// Run a command to completion with `stdin` as its standard input (or none),
/// failing the test if it takes longer than [`DEADLINE`].
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    run_with_deadline(cmd, stdin, DEADLINE)
}

/// [`run`] with an explicit deadline.
pub fn run_with_deadline(cmd: &mut Command, stdin: Option<&[u8]>, limit: Duration) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let writer = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let bytes = bytes.to_vec();
        thread::spawn(move || {
            // The child may exit without reading: a broken pipe is its answer.
            let _ = pipe.write_all(&bytes);
        })
    });
    let out = Collector::start(child.stdout.take().expect("stdout is piped"));
    let err = Collector::start(child.stderr.take().expect("stderr is piped"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                text(&out.finish(Duration::from_millis(200))),
                text(&err.finish(Duration::from_millis(200)))
            );
        }
        thread::sleep(POLL);
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Output {
        status,
        stdout: out.finish(Duration::from_secs(2)),
        stderr: err.finish(Duration::from_secs(2)),
    }
}

/// Reads a pipe to its end on a thread of its own, keeping what it read
/// where [`Collector::finish`] can take it even if the pipe never closes (a
/// grandchild may still hold it).
struct Collector {
    buf: Arc<Mutex<Vec<u8>>>,
    reader: thread::JoinHandle<()>,
}

impl Collector {
    fn start<R: Read + Send + 'static>(mut r: R) -> Collector {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let reader = thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = r.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("the output buffer is not poisoned")
                    .extend_from_slice(&chunk[..n]);
            }
        });
        Collector { buf, reader }
    }

    /// What was read, after waiting up to `grace` for the end of the pipe.
    fn finish(self, grace: Duration) -> Vec<u8> {
        let _ = wait_until(grace, || self.reader.is_finished().then_some(()));
        let out = self
            .buf
            .lock()
            .expect("the output buffer is not poisoned")
            .clone();
        out
    }
}

/// Wait for a child to exit, killing it and failing the test after `limit`.
pub fn wait_child(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {limit:?}");
        }
        thread::sleep(POLL);
    }
}

/// Poll `cond` until it returns `Some`, or give up after `limit`.
pub fn wait_until<T>(limit: Duration, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        thread::sleep(POLL);
    }
}

/// Send a signal (`TERM`, `KILL`, …) to a process, with the shell's `kill`.
///
/// The workspace forbids `unsafe`, so no `libc::kill`.
pub fn send_signal(pid: u32, signal: &str) {
    let out = run(
        Command::new("/bin/sh").args(["-c", &format!("kill -s {signal} {pid}")]),
        None,
    );
    assert!(
        out.status.success(),
        "kill -s {signal} {pid} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Lossy UTF-8 of a byte buffer, for assertions and messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The non-empty lines of a text.
pub fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.trim().is_empty()).collect()
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

/// Every regular file under `dir`, recursively, with its contents.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                // A file we cannot read is recorded as empty: snapshots are
                // compared, and a change of readability is a change.
                out.insert(path.clone(), fs::read(&path).unwrap_or_default());
            }
        }
    }
    out
}

/// The files under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    snapshot(dir)
        .into_iter()
        .filter(|(_, bytes)| contains(bytes, needle.as_bytes()))
        .map(|(p, _)| p)
        .collect()
}

/// Whether `hay` contains `needle`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// The permission bits of a file (`0o600`, …).
pub fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

// ---------------------------------------------------------------------------
// The private bus
// ---------------------------------------------------------------------------

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
    rt: tokio::runtime::Runtime,
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

    /// Start recording every signal under `/org/facteur/Facteur1`. Returns
    /// once the match rule is in place, so nothing emitted afterwards is
    /// missed.
    pub fn signals(&self) -> Signals {
        let conn = self.connection().clone();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let mut stream = self.block_on(async move {
            let rule = zbus::MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .path_namespace(names::ROOT_PATH)
                .expect("the root path is a valid namespace")
                .build();
            zbus::MessageStream::for_match_rule(rule, &conn, Some(4096))
                .await
                .expect("add a match rule for facteur's signals")
        });
        let task = self.rt.spawn(async move {
            use futures_lite::StreamExt;
            while let Some(Ok(msg)) = stream.next().await {
                let h = msg.header();
                let signal = Signal {
                    path: h.path().map(|p| p.to_string()).unwrap_or_default(),
                    interface: h.interface().map(|i| i.to_string()).unwrap_or_default(),
                    member: h.member().map(|m| m.to_string()).unwrap_or_default(),
                    message: msg.clone(),
                };
                sink.lock()
                    .expect("the signal list is not poisoned")
                    .push(signal);
            }
        });
        Signals { seen, task }
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

// ---------------------------------------------------------------------------
// Settings and properties
// ---------------------------------------------------------------------------

/// Where tests point accounts that the daemon will try to reach (those with
/// a password): loopback, so that no test sends a packet off this machine
/// and no name needs a resolver.
pub const LOOPBACK: &str = "127.0.0.1";

/// A TCP port on 127.0.0.1 where nothing listens: bound, then released, so a
/// connection is refused at once.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind((LOOPBACK, 0)).expect("bind a port on 127.0.0.1");
    listener.local_addr().expect("a bound address").port()
}

/// A settings dictionary (`a{sv}`) under construction, for `CreateAccount`
/// and `Update`.
#[derive(Debug, Clone, Default)]
pub struct Settings(Vec<(String, OwnedValue)>);

impl Settings {
    /// No settings.
    pub fn new() -> Settings {
        Settings::default()
    }

    /// The minimal valid settings: an address and an incoming host.
    pub fn minimal(email: &str, host: &str) -> Settings {
        Settings::new().s("email", email).s("incoming-host", host)
    }

    /// Valid settings whose servers refuse connections at once (127.0.0.1
    /// on a closed port, incoming and SMTP): for accounts that get a
    /// password, so that the sync engine fails fast and locally.
    pub fn unreachable(email: &str) -> Settings {
        Settings::minimal(email, LOOPBACK)
            .q("incoming-port", closed_port())
            .s("smtp-host", LOOPBACK)
            .q("smtp-port", closed_port())
    }

    /// Add a string value.
    pub fn s(self, key: &str, v: &str) -> Settings {
        self.value(key, Value::from(v))
    }

    /// Add a boolean value.
    pub fn b(self, key: &str, v: bool) -> Settings {
        self.value(key, Value::from(v))
    }

    /// Add a `q` (uint16) value.
    pub fn q(self, key: &str, v: u16) -> Settings {
        self.value(key, Value::from(v))
    }

    /// Add a `u` (uint32) value.
    pub fn u(self, key: &str, v: u32) -> Settings {
        self.value(key, Value::from(v))
    }

    /// Add an `i` (int32) value: the wrong type for every key.
    pub fn i(self, key: &str, v: i32) -> Settings {
        self.value(key, Value::from(v))
    }

    /// Add any value.
    pub fn value(mut self, key: &str, v: Value<'_>) -> Settings {
        let owned = OwnedValue::try_from(v).expect("a value without file descriptors");
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_owned(), owned));
        self
    }

    /// Remove a key.
    pub fn without(mut self, key: &str) -> Settings {
        self.0.retain(|(k, _)| k != key);
        self
    }

    /// The dictionary to send.
    pub fn as_dict(&self) -> HashMap<&str, &Value<'static>> {
        self.0.iter().map(|(k, v)| (k.as_str(), &**v)).collect()
    }
}

/// Account properties that describe run-time status rather than settings.
pub const STATUS_PROPERTIES: &[&str] = &[
    "State",
    "LastError",
    "LastErrorCode",
    "LastSync",
    "MessageCount",
    "UnreadCount",
];

/// Wait until the account at `path` is in a state other than
/// `needs-credentials` (its password is usable: `idle`, `syncing`,
/// `offline`, …) and return its properties; fail the test with the state and
/// `LastError` after [`DEADLINE`].
pub fn wait_for_credentials(bus: &Bus, path: &str) -> Props {
    wait_until(DEADLINE, || {
        let p = bus.account(path);
        (p.str("State") != "needs-credentials").then_some(p)
    })
    .unwrap_or_else(|| {
        let p = bus.account(path);
        panic!(
            "{path} still needs credentials after {DEADLINE:?}: {}",
            p.str("LastError")
        )
    })
}

/// The properties of an object, as `GetAll` returned them.
#[derive(Debug, Clone)]
pub struct Props(pub HashMap<String, OwnedValue>);

impl PartialEq for Props {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .all(|(k, v)| other.0.get(k).is_some_and(|w| **w == **v))
    }
}

impl Props {
    /// The raw value of a property; fails the test when it is missing.
    pub fn get(&self, name: &str) -> &Value<'static> {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("no property {name} in {:?}", self.names()))
    }

    /// The sorted property names.
    pub fn names(&self) -> Vec<&str> {
        let mut n: Vec<&str> = self.0.keys().map(String::as_str).collect();
        n.sort_unstable();
        n
    }

    /// A string property.
    pub fn str(&self, name: &str) -> String {
        match self.get(name) {
            Value::Str(s) => s.to_string(),
            other => panic!("property {name} is not a string: {other:?}"),
        }
    }

    /// A boolean property.
    pub fn bool(&self, name: &str) -> bool {
        match self.get(name) {
            Value::Bool(b) => *b,
            other => panic!("property {name} is not a boolean: {other:?}"),
        }
    }

    /// A `q` property.
    pub fn u16(&self, name: &str) -> u16 {
        match self.get(name) {
            Value::U16(v) => *v,
            other => panic!("property {name} is not a uint16: {other:?}"),
        }
    }

    /// A `u` property.
    pub fn u32(&self, name: &str) -> u32 {
        match self.get(name) {
            Value::U32(v) => *v,
            other => panic!("property {name} is not a uint32: {other:?}"),
        }
    }

    /// A `t` property.
    pub fn u64(&self, name: &str) -> u64 {
        match self.get(name) {
            Value::U64(v) => *v,
            other => panic!("property {name} is not a uint64: {other:?}"),
        }
    }

    /// The properties without the ones that describe run-time status
    /// (`State`, `LastError`, `LastSync`, counts), i.e. the settings.
    pub fn settings_only(&self) -> Props {
        Props(
            self.0
                .iter()
                .filter(|(k, _)| !STATUS_PROPERTIES.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }
}

/// A password no file, log or property could contain by accident.
pub fn unique_secret(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{tag}-Pw{}x{nanos:09}", std::process::id())
}

// ---------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------

/// One signal facteurd emitted.
#[derive(Debug, Clone)]
pub struct Signal {
    /// Object path of the emitter.
    pub path: String,
    /// Interface of the signal.
    pub interface: String,
    /// Signal name.
    pub member: String,
    /// The whole message, to read the body from.
    pub message: zbus::Message,
}

/// The body of a `PropertiesChanged` signal.
pub type PropertiesChanged = (String, HashMap<String, OwnedValue>, Vec<String>);

impl Signal {
    /// `(interface, changed, invalidated)` if this is `PropertiesChanged`.
    pub fn properties_changed(&self) -> Option<PropertiesChanged> {
        (self.interface == "org.freedesktop.DBus.Properties" && self.member == "PropertiesChanged")
            .then(|| self.message.body().deserialize().ok())
            .flatten()
    }

    /// `(object, interfaces)` if this is ObjectManager's `InterfacesAdded`.
    pub fn interfaces_added(&self) -> Option<(String, Vec<String>)> {
        if self.interface != "org.freedesktop.DBus.ObjectManager"
            || self.member != "InterfacesAdded"
        {
            return None;
        }
        let (path, ifaces): (
            OwnedObjectPath,
            HashMap<String, HashMap<String, OwnedValue>>,
        ) = self.message.body().deserialize().ok()?;
        let mut names: Vec<String> = ifaces.into_keys().collect();
        names.sort();
        Some((path.as_str().to_owned(), names))
    }

    /// `(object, interfaces)` if this is ObjectManager's `InterfacesRemoved`.
    pub fn interfaces_removed(&self) -> Option<(String, Vec<String>)> {
        if self.interface != "org.freedesktop.DBus.ObjectManager"
            || self.member != "InterfacesRemoved"
        {
            return None;
        }
        let (path, mut names): (OwnedObjectPath, Vec<String>) =
            self.message.body().deserialize().ok()?;
        names.sort();
        Some((path.as_str().to_owned(), names))
    }
}

/// A recorder of facteurd's signals, started by [`Bus::signals`].
pub struct Signals {
    /// Everything received so far, in order. Filled by `task`.
    seen: Arc<Mutex<Vec<Signal>>>,
    /// Drains the match-rule stream; aborted on drop.
    task: tokio::task::JoinHandle<()>,
}

impl Signals {
    /// Every signal received so far.
    pub fn all(&self) -> Vec<Signal> {
        self.seen
            .lock()
            .expect("the signal list is not poisoned")
            .clone()
    }

    /// Wait for the first signal matching `pred`; fail the test with what
    /// was seen instead after [`DEADLINE`].
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Signal) -> bool) -> Signal {
        if let Some(s) = wait_until(DEADLINE, || self.all().into_iter().find(|s| pred(s))) {
            return s;
        }
        let mut seen = String::new();
        for s in self.all() {
            let _ = writeln!(seen, "  {} {}.{}", s.path, s.interface, s.member);
        }
        panic!("no signal {what} within {DEADLINE:?}; seen:\n{seen}");
    }

    /// Wait for a `PropertiesChanged` on `path` that carries `property` in
    /// its changed (or invalidated) properties; returns the new value when
    /// it was sent.
    pub fn wait_property_changed(&self, path: &str, property: &str) -> Option<OwnedValue> {
        let sig = self.wait_for(&format!("PropertiesChanged({property}) on {path}"), |s| {
            s.path == path
                && s.properties_changed().is_some_and(|(_, changed, inval)| {
                    changed.contains_key(property) || inval.iter().any(|p| p == property)
                })
        });
        let (_, changed, _) = sig.properties_changed().expect("checked above");
        changed.get(property).cloned()
    }

    /// The settings properties (not `State`, `LastError`, `LastSync` or the
    /// counts, which the sync engine changes on its own) announced as
    /// changed on `path` so far.
    pub fn changed_settings(&self, path: &str) -> Vec<String> {
        let mut names = self.changed_properties(path);
        names.retain(|n| !STATUS_PROPERTIES.contains(&n.as_str()));
        names
    }

    /// The names of every property announced as changed on `path` so far.
    pub fn changed_properties(&self, path: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .all()
            .iter()
            .filter(|s| s.path == path)
            .filter_map(Signal::properties_changed)
            .flat_map(|(_, changed, inval)| changed.into_keys().chain(inval))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------
// gnome-keyring
// ---------------------------------------------------------------------------

/// `gnome-keyring-daemon` serving the Secret Service on a [`Bus`], with an
/// unlocked login keyring in a throwaway home. Killed on drop.
pub struct Keyring {
    child: Child,
    /// HOME, XDG_RUNTIME_DIR, XDG_DATA_HOME and the log live here.
    dir: TempDir,
    address: String,
}

impl Keyring {
    /// Start gnome-keyring on `bus` and wait until it owns
    /// `org.freedesktop.secrets`.
    pub fn start(bus: &Bus) -> Keyring {
        let daemon = tool("gnome-keyring-daemon", "gnome-keyring");
        let dir = short_tempdir("facteur-keyring-");
        let home = dir.path().join("home");
        let runtime = private_dir(&dir.path().join("run"));
        private_dir(&home.join(".local/share"));
        private_dir(&home.join(".config"));
        let log = fs::File::create(dir.path().join("keyring.log")).expect("create a log");
        let log2 = log.try_clone().expect("clone the log handle");
        let mut child = Command::new(daemon)
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .expect("start gnome-keyring-daemon");
        {
            // --unlock reads the login keyring's password from stdin, up to
            // end of file: close it after writing.
            let mut stdin = child.stdin.take().expect("stdin is piped");
            stdin
                .write_all(format!("{KEYRING_PASSWORD}\n").as_bytes())
                .expect("give gnome-keyring its password");
        }
        let keyring = Keyring {
            child,
            dir,
            address: bus.address().to_owned(),
        };
        if !bus.wait_for_name("org.freedesktop.secrets", true, DEADLINE) {
            panic!(
                "gnome-keyring-daemon did not take org.freedesktop.secrets within \
                 {DEADLINE:?}; its log:\n{}",
                keyring.log()
            );
        }
        keyring
    }

    /// What gnome-keyring wrote.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("keyring.log")).unwrap_or_default()
    }

    /// The keyring's home (its keyrings are under `.local/share/keyrings`).
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `secret-tool search --all ATTR VALUE …`: the standard output and
    /// standard error together (secret-tool prints attributes on stderr).
    pub fn search(&self, attrs: &[(&str, &str)]) -> String {
        let secret_tool = tool("secret-tool", "libsecret-tools");
        let mut cmd = Command::new(secret_tool);
        cmd.args(["search", "--all"])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address);
        for (k, v) in attrs {
            cmd.args([k, v]);
        }
        let out = run(&mut cmd, None);
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    }

    /// `secret-tool lookup ATTR VALUE …`: the secret, if one matches.
    pub fn lookup(&self, attrs: &[(&str, &str)]) -> Option<String> {
        let secret_tool = tool("secret-tool", "libsecret-tools");
        let mut cmd = Command::new(secret_tool);
        cmd.arg("lookup")
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address);
        for (k, v) in attrs {
            cmd.args([k, v]);
        }
        let out = run(&mut cmd, None);
        (out.status.success() && !out.stdout.is_empty()).then(|| text(&out.stdout))
    }

    /// Lock every collection (as a screen locker would).
    pub fn lock(&self, bus: &Bus) {
        let collections: Vec<OwnedObjectPath> = bus
            .call(
                "org.freedesktop.secrets",
                "/org/freedesktop/secrets",
                "org.freedesktop.DBus.Properties",
                "Get",
                &("org.freedesktop.Secret.Service", "Collections"),
            )
            .expect("read the keyring's collections")
            .body()
            .deserialize::<OwnedValue>()
            .expect("Get returns a variant")
            .try_into()
            .expect("Collections is ao");
        let paths: Vec<zbus::zvariant::ObjectPath<'_>> =
            collections.iter().map(|p| p.as_ref()).collect();
        bus.call(
            "org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service",
            "Lock",
            &(paths,),
        )
        .expect("lock the keyring");
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// facteurd
// ---------------------------------------------------------------------------

/// The real `facteurd` on a [`Bus`], with its own temporary config dir, data
/// dir, home and runtime dir. Killed on drop; the directories survive
/// restarts.
pub struct Facteurd<'b> {
    bus: &'b Bus,
    /// Root of `config/`, `data/`, `home/`, `run/` and `facteurd.log`.
    dir: TempDir,
    /// Arguments besides `--config-dir` and `--data-dir`.
    args: Vec<OsString>,
    /// Extra environment.
    env: Vec<(OsString, OsString)>,
    /// A program (and its arguments) that runs facteurd, e.g. strace.
    wrapper: Vec<OsString>,
    /// The running process, if any. Reaped by `stop`, `kill` or drop.
    child: Option<Child>,
    /// Receives sd_notify datagrams when [`Facteurd::with_notify_socket`]
    /// was called.
    notify: Option<UnixDatagram>,
}

impl<'b> Facteurd<'b> {
    /// Prepare a facteurd on `bus` without starting it (so a test can put
    /// files into its directories first). `--log-level debug`, so that a
    /// password leaking into a debug line is caught.
    pub fn new(bus: &'b Bus) -> Facteurd<'b> {
        let dir = short_tempdir("facteurd-");
        for sub in ["config", "data", "home"] {
            fs::create_dir_all(dir.path().join(sub)).expect("create a daemon directory");
        }
        private_dir(&dir.path().join("run"));
        Facteurd {
            bus,
            dir,
            args: vec!["--log-level".into(), "debug".into()],
            env: Vec::new(),
            wrapper: Vec::new(),
            child: None,
            notify: None,
        }
    }

    /// Start a facteurd on `bus` with default options and wait until it is
    /// ready.
    pub fn start(bus: &'b Bus) -> Facteurd<'b> {
        let mut d = Facteurd::new(bus);
        d.launch();
        d
    }

    /// Add command-line arguments (e.g. `--secret-store file`).
    pub fn arg(&mut self, a: impl Into<OsString>) -> &mut Self {
        self.args.push(a.into());
        self
    }

    /// Add an environment variable.
    pub fn env(&mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> &mut Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Run facteurd under another program: `program args… facteurd …`.
    /// [`Facteurd::stop`] then signals facteurd itself (the owner of the bus
    /// name), not the wrapper.
    pub fn wrap(&mut self, program: impl Into<OsString>, args: &[&str]) -> &mut Self {
        self.wrapper = std::iter::once(program.into())
            .chain(args.iter().map(OsString::from))
            .collect();
        self
    }

    /// Give the daemon a `NOTIFY_SOCKET` that the test can read with
    /// [`Facteurd::notifications`].
    pub fn with_notify_socket(&mut self) -> &mut Self {
        let path = self.dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        sock.set_nonblocking(true)
            .expect("non-blocking notify socket");
        self.notify = Some(sock);
        let p: OsString = path.into();
        self.env("NOTIFY_SOCKET", p)
    }

    /// Every sd_notify datagram received so far, split into `KEY=VALUE`
    /// lines.
    pub fn notifications(&self) -> Vec<String> {
        let Some(sock) = &self.notify else {
            panic!("with_notify_socket() was not called");
        };
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            out.extend(text(&buf[..n]).lines().map(str::to_owned));
        }
        out
    }

    /// `--config-dir`.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `<config-dir>/accounts`.
    pub fn accounts_dir(&self) -> PathBuf {
        self.config_dir().join("accounts")
    }

    /// `<config-dir>/secrets.json`, the fallback secret store.
    pub fn secrets_file(&self) -> PathBuf {
        self.config_dir().join("secrets.json")
    }

    /// The daemon's HOME (with XDG_CONFIG_HOME and XDG_DATA_HOME under it).
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Everything the daemon wrote on stdout and stderr, over all its runs.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("facteurd.log")
    }

    /// A command line for this daemon (same directories and environment),
    /// not started: for tests of how it fails.
    pub fn command(&self) -> Command {
        let binary = workspace_binary("facteurd");
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        cmd.arg("--config-dir")
            .arg(self.config_dir())
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&self.args)
            .env("DBUS_SESSION_BUS_ADDRESS", self.bus.address())
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.home().join(".config"))
            .env("XDG_DATA_HOME", self.home().join(".local/share"))
            .env("XDG_STATE_HOME", self.home().join(".local/state"))
            .env("XDG_CACHE_HOME", self.home().join(".cache"))
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            // RUST_LOG would override --log-level: keep runs comparable.
            .env_remove("RUST_LOG")
            .env_remove("DBUS_STARTER_ADDRESS")
            .env_remove("DBUS_STARTER_BUS_TYPE")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Start the process without waiting for it to be ready.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "facteurd is already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the daemon log");
        let log2 = log.try_clone().expect("clone the log handle");
        let child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .expect("start facteurd");
        self.child = Some(child);
    }

    /// Start the process and wait until it owns `org.facteur.Facteur1`;
    /// fail the test with the daemon's log if it exits or times out first.
    pub fn launch(&mut self) {
        self.spawn();
        let start = Instant::now();
        loop {
            if self.bus.name_has_owner(names::BUS_NAME) {
                return;
            }
            let child = self.child.as_mut().expect("just spawned");
            if let Some(status) = child.try_wait().expect("wait for facteurd") {
                self.child = None;
                panic!(
                    "facteurd exited with {status} before taking {}; its log:\n{}",
                    names::BUS_NAME,
                    self.log()
                );
            }
            if start.elapsed() > DEADLINE {
                panic!(
                    "facteurd did not take {} within {DEADLINE:?}; its log:\n{}",
                    names::BUS_NAME,
                    self.log()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// The pid of the running daemon.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("facteurd is running").id()
    }

    /// Whether the process has exited (reaping it if so), with its status.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let status = child.try_wait().expect("wait for facteurd")?;
        self.child = None;
        Some(status)
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("facteurd is running");
        let pid = if self.wrapper.is_empty() {
            child.id()
        } else {
            self.bus
                .name_owner_pid(names::BUS_NAME)
                .expect("the wrapped facteurd owns its name")
        };
        send_signal(pid, "TERM");
        wait_child(&mut child, DEADLINE, "facteurd after SIGTERM")
    }

    /// SIGKILL, as a crash or an OOM kill would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop with SIGTERM (which must succeed) and start again with the same
    /// directories; waits until the new process owns the name.
    pub fn restart(&mut self) {
        let status = self.stop();
        assert!(
            status.success(),
            "facteurd exited with {status} after SIGTERM; its log:\n{}",
            self.log()
        );
        assert!(
            self.bus.wait_for_name(names::BUS_NAME, false, DEADLINE),
            "the name is still owned after facteurd exited"
        );
        self.launch();
    }
}

impl Drop for Facteurd<'_> {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// Misc helpers for tests
// ---------------------------------------------------------------------------

/// The account id the daemon derives from an address: lowercased, every
/// character outside `[a-z0-9]` replaced by `_`.
pub fn slug(email: &str) -> String {
    email
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Assert that a failed command printed exactly one non-empty line on
/// stderr, and return it.
pub fn one_stderr_line(out: &Output, what: &str) -> String {
    let err = text(&out.stderr);
    let l = lines(&err);
    assert_eq!(
        l.len(),
        1,
        "{what}: expected one line on stderr, got {}:\n{err}",
        l.len()
    );
    l[0].to_owned()
}

/// The exit code of a finished process, failing the test if it was killed
/// by a signal instead.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| panic!("the process was killed by a signal: {status}"))
}

/// Standard base64 without line breaks.
pub fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Wait until the properties of account `path` satisfy `pred`, and return
/// them; fail the test after `limit` with the account's status and the end
/// of facteurd's log.
pub fn wait_account(
    bus: &Bus,
    d: &Facteurd<'_>,
    path: &str,
    what: &str,
    limit: Duration,
    pred: impl Fn(&Props) -> bool,
) -> Props {
    if let Some(p) = wait_until(limit, || {
        let p = bus.account(path);
        pred(&p).then_some(p)
    }) {
        return p;
    }
    let p = bus.account(path);
    panic!(
        "{path}: not {what} within {limit:?}: State={:?} LastError={:?} LastErrorCode={:?} \
         LastSync={} MessageCount={} UnreadCount={}\nfacteurd log:\n{}",
        p.str("State"),
        p.str("LastError"),
        p.str("LastErrorCode"),
        p.u64("LastSync"),
        p.u32("MessageCount"),
        p.u32("UnreadCount"),
        last_lines(&d.log(), 80)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_fails_with_the_package_and_the_test_command() {
        let panic = std::panic::catch_unwind(|| tool("facteur-no-such-tool", "facteur-pkg"))
            .expect_err("a missing tool must fail the test");
        let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("apt-get install facteur-pkg"), "{msg}");
        assert!(msg.contains(TEST_COMMAND), "{msg}");
    }

    #[test]
    fn a_present_tool_is_found() {
        assert!(tool("sh", "dash").is_absolute());
    }

    #[test]
    fn slugs_follow_the_daemon_rule() {
        assert_eq!(
            slug("Alice.Smith+x@Example.org"),
            "alice_smith_x_example_org"
        );
    }

    #[test]
    fn run_enforces_its_deadline() {
        let r = std::panic::catch_unwind(|| {
            run_with_deadline(
                Command::new("/bin/sh").args(["-c", "sleep 5"]),
                None,
                Duration::from_millis(100),
            )
        });
        assert!(r.is_err(), "a command past its deadline must fail the test");
    }

    #[test]
    fn settings_replace_a_key_given_twice() {
        let s = Settings::minimal("a@example.org", "h").s("email", "b@example.org");
        let d = s.as_dict();
        assert_eq!(d.len(), 2);
        assert_eq!(
            d["email"].downcast_ref::<&str>().ok(),
            Some("b@example.org")
        );
    }
}

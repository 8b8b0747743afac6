//! The real `facteurd` on a private bus.

use std::ffi::OsString;
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::Instant;

use facteur_dbus::names;
use tempfile::TempDir;

use crate::{
    private_dir, send_signal, short_tempdir, text, wait_child, workspace_binary, Bus, DEADLINE,
    POLL,
};

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

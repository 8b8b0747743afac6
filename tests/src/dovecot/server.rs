//! Starting, stopping and restarting Dovecot, and where it listens.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::process::{connect, find_program, free_ports, greets, group_alive, signal_group};
use super::{
    Dovecot, DovecotOptions, Identity, Ports, ServerTls, Setup, HOST, POLL, START_ATTEMPTS,
    STOP_GRACE,
};
use crate::tls::{CertPair, TestCa, LOCAL_NAMES};
use crate::DEADLINE;

impl Dovecot {
    /// Start a Dovecot with `options`, and wait until every listener
    /// answers. Fails the test if Dovecot is not installed or does not come
    /// up within [`DEADLINE`], with its log.
    pub fn start(options: DovecotOptions) -> Dovecot {
        let dovecot = find_program("dovecot");
        let doveadm = find_program("doveadm");
        let identity = Identity::current();
        let dir = if identity.root {
            // Mail processes run as nobody and must reach their Maildir: a
            // TMPDIR under /root would not be traversable.
            tempfile::Builder::new()
                .prefix("facteur-dovecot-")
                .tempdir_in("/tmp")
                .expect("create a temporary directory for Dovecot")
        } else {
            crate::short_tempdir("facteur-dovecot-")
        };
        let root = dir.path();
        fs::set_permissions(root, fs::Permissions::from_mode(0o755))
            .expect("chmod the Dovecot directory");
        let instance = format!(
            "facteur-{}",
            root.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.rsplit('-').next())
                .unwrap_or("test")
        );
        let setup = Setup {
            dovecot,
            doveadm,
            identity,
            conf: root.join("dovecot.conf"),
            run: root.join("run"),
            users: root.join("users"),
            home: root.join("home"),
            log: root.join("dovecot.log"),
            stderr: root.join("dovecot.stderr"),
            instance,
            options,
        };
        for d in [&setup.run, &setup.users, &setup.home, &root.join("state")] {
            fs::create_dir_all(d).expect("create a Dovecot directory");
            // The auth process (user `dovecot` under root) reads users/.
            fs::set_permissions(d, fs::Permissions::from_mode(0o755))
                .expect("chmod a Dovecot directory");
        }
        if setup.identity.root {
            std::os::unix::fs::chown(
                &setup.home,
                Some(setup.identity.mail_uid),
                Some(setup.identity.mail_gid),
            )
            .expect("give home/ to the mail user");
        }

        let ca = setup
            .options
            .ca
            .clone()
            .unwrap_or_else(|| Arc::new(TestCa::new()));
        let tls = setup.options.tls;
        let server_cert = match tls {
            ServerTls::CaSigned => Some(ca.leaf().clone()),
            ServerTls::SelfSigned => Some(ca.self_signed(LOCAL_NAMES)),
            ServerTls::WrongHost => Some(ca.issue(&["wrong-host.invalid"])),
            ServerTls::Expired => Some(ca.issue_expired(LOCAL_NAMES)),
            ServerTls::Off => None,
        };
        if let Some(pair) = &server_cert {
            // Copies, so the server does not depend on the CA's lifetime.
            fs::write(root.join("server.pem"), &pair.cert_pem).expect("write server.pem");
            fs::write(root.join("server.key"), &pair.key_pem).expect("write server.key");
            fs::set_permissions(root.join("server.key"), fs::Permissions::from_mode(0o600))
                .expect("chmod server.key");
        }

        let mut dovecot = Dovecot {
            ports: Ports {
                imap: 0,
                imaps: None,
                pop3: 0,
                pop3s: None,
                lmtp: 0,
            },
            dir,
            setup,
            ca,
            server_cert,
            tls,
            users: Mutex::new(BTreeMap::new()),
            master: Mutex::new(None),
            last_start: Mutex::new(Duration::ZERO),
        };

        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            dovecot.ports = free_ports(tls != ServerTls::Off);
            let conf = dovecot.render_config();
            fs::write(&dovecot.setup.conf, conf).expect("write dovecot.conf");
            match dovecot.spawn_and_wait() {
                Ok(()) => return dovecot,
                Err(StartFailure::PortTaken(log)) => failures.push(log),
                Err(StartFailure::Other(message)) => panic!("{message}"),
            }
        }
        panic!(
            "Dovecot could not bind its ports in {START_ATTEMPTS} attempts (another \
             process took them each time). Last log:\n{}",
            failures.pop().unwrap_or_default()
        );
    }

    /// Stop the server (see the module documentation). Mail, users and
    /// ports are kept for [`Dovecot::start_again`]. Does nothing if it is
    /// not running.
    pub fn stop(&self) {
        if let Err(e) = self.stop_inner() {
            panic!("{e}\n{}", self.log());
        }
    }

    /// Start the server again after [`Dovecot::stop`], on the same ports and
    /// with the same mail. Fails the test if a port was taken meanwhile.
    pub fn start_again(&self) {
        assert!(
            !self.is_running(),
            "Dovecot::start_again called while Dovecot is running"
        );
        match self.spawn_and_wait() {
            Ok(()) => {}
            Err(StartFailure::PortTaken(log)) => panic!(
                "Dovecot could not start again: one of its ports ({:?}) was taken \
                 while it was stopped. Log:\n{log}",
                self.ports
            ),
            Err(StartFailure::Other(message)) => panic!("{message}"),
        }
    }

    /// Whether the master process is running.
    pub fn is_running(&self) -> bool {
        let mut master = self.master();
        match master.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The master process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.master().as_ref().map(Child::id)
    }

    /// How long the last start took, from spawning `dovecot` until every
    /// listener answered.
    pub fn startup_time(&self) -> Duration {
        *self.last_start.lock().unwrap_or_else(|e| e.into_inner())
    }

    // -- where it is ---------------------------------------------------------

    /// The host name for clients, [`HOST`].
    pub fn host(&self) -> &'static str {
        HOST
    }

    /// All listener ports.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// IMAP with STARTTLS (or plain only when TLS is off).
    pub fn imap_port(&self) -> u16 {
        self.ports.imap
    }

    /// IMAP over implicit TLS. Fails the test when TLS is off.
    pub fn imaps_port(&self) -> u16 {
        self.ports
            .imaps
            .expect("this Dovecot runs with ServerTls::Off: it has no IMAPS port")
    }

    /// POP3 with STLS (or plain only when TLS is off).
    pub fn pop3_port(&self) -> u16 {
        self.ports.pop3
    }

    /// POP3 over implicit TLS. Fails the test when TLS is off.
    pub fn pop3s_port(&self) -> u16 {
        self.ports
            .pop3s
            .expect("this Dovecot runs with ServerTls::Off: it has no POP3S port")
    }

    /// LMTP over TCP on [`LISTEN_IP`].
    pub fn lmtp_port(&self) -> u16 {
        self.ports.lmtp
    }

    /// LMTP over a unix socket (mode 0666), for an MTA on this machine.
    pub fn lmtp_socket(&self) -> PathBuf {
        self.setup.run.join("lmtp")
    }

    /// The CA the server certificate comes from.
    pub fn ca(&self) -> &Arc<TestCa> {
        &self.ca
    }

    /// The CA certificate file to trust (for example as `SSL_CERT_FILE`).
    pub fn ca_cert_path(&self) -> &Path {
        self.ca.cert_path()
    }

    /// The certificate the TLS listeners present (`None` when TLS is off).
    pub fn server_cert(&self) -> Option<&CertPair> {
        self.server_cert.as_ref()
    }

    /// Which certificate the server presents.
    pub fn tls(&self) -> ServerTls {
        self.tls
    }

    /// The instance's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The configuration file (for `doveadm -c`, `doveconf -c`).
    pub fn conf_path(&self) -> &Path {
        &self.setup.conf
    }

    /// A user's Maildir (Maildir++ layout: subfolders are `.Name` inside).
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.setup
            .home
            .join(user.to_ascii_lowercase())
            .join("Maildir")
    }

    /// Dovecot's log so far, followed by anything the master printed itself.
    pub fn log(&self) -> String {
        let mut out = fs::read_to_string(&self.setup.log).unwrap_or_default();
        let stderr = fs::read_to_string(&self.setup.stderr).unwrap_or_default();
        if !stderr.trim().is_empty() {
            let _ = write!(out, "\n--- dovecot stdout/stderr ---\n{stderr}");
        }
        out
    }

    // -- internals -----------------------------------------------------------

    fn master(&self) -> MutexGuard<'_, Option<Child>> {
        self.master.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn users_lock(&self) -> MutexGuard<'_, BTreeMap<String, String>> {
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spawn the master and wait until every listener answers.
    fn spawn_and_wait(&self) -> Result<(), StartFailure> {
        let s = &self.setup;
        // Leftovers of a previous run: a stale penalty socket would make the
        // auth process retry it for 5 s; a stale pid file could name a live
        // unrelated process after pid reuse.
        let _ = fs::remove_file(s.run.join("anvil-auth-penalty"));
        let _ = fs::remove_file(s.run.join("master.pid"));
        let log_offset = fs::metadata(&s.log).map(|m| m.len()).unwrap_or(0);
        let stderr = fs::File::options()
            .create(true)
            .append(true)
            .open(&s.stderr)
            .expect("open dovecot.stderr");
        let stdout = stderr.try_clone().expect("clone a file handle");
        let started = Instant::now();
        let child = Command::new(&s.dovecot)
            .arg("-F")
            .arg("-c")
            .arg(&s.conf)
            // Its own process group, so stop() can signal every process of
            // this instance (and only those) at once.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", s.dovecot.display()));
        *self.master() = Some(child);

        let deadline = started + DEADLINE;
        loop {
            let exited = {
                let mut guard = self.master();
                let child = guard.as_mut().expect("the master was just stored");
                match child.try_wait() {
                    Ok(Some(status)) => {
                        *guard = None;
                        Some(status)
                    }
                    Ok(None) => None,
                    Err(e) => panic!("cannot wait for Dovecot: {e}"),
                }
            };
            if let Some(status) = exited {
                // Let the log process flush the fatal error.
                thread::sleep(Duration::from_millis(100));
                return Err(self.start_failure(status, log_offset));
            }
            if self.listeners_ready() {
                *self.last_start.lock().unwrap_or_else(|e| e.into_inner()) = started.elapsed();
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.stop_inner();
                return Err(StartFailure::Other(format!(
                    "Dovecot did not answer on all of {:?} and {} within {DEADLINE:?}.\n{}",
                    self.ports,
                    self.lmtp_socket().display(),
                    self.log()
                )));
            }
            thread::sleep(POLL);
        }
    }

    /// Classify a master that exited while starting, from the log it wrote
    /// after `log_offset`.
    fn start_failure(&self, status: ExitStatus, log_offset: u64) -> StartFailure {
        let log = self.log();
        let fresh = fs::read(&self.setup.log)
            .ok()
            .and_then(|l| l.get(log_offset as usize..).map(crate::text))
            .unwrap_or_default();
        let stderr = fs::read_to_string(&self.setup.stderr).unwrap_or_default();
        if fresh.contains("Address already in use")
            || (fresh.is_empty() && stderr.contains("Address already in use"))
        {
            StartFailure::PortTaken(log)
        } else {
            StartFailure::Other(format!(
                "Dovecot exited during startup ({status}).\nConfiguration {}:\n{}\nLog:\n{log}",
                self.setup.conf.display(),
                fs::read_to_string(&self.setup.conf).unwrap_or_default()
            ))
        }
    }

    /// Whether every listener accepts a connection, and the plain IMAP and
    /// POP3 ones greet (so their login processes are up).
    fn listeners_ready(&self) -> bool {
        let p = self.ports;
        for port in [p.imaps, p.pop3s, Some(p.lmtp)].into_iter().flatten() {
            if connect(port, Duration::from_millis(500)).is_err() {
                return false;
            }
        }
        if UnixStream::connect(self.lmtp_socket()).is_err() {
            return false;
        }
        greets(p.imap, b"* OK") && greets(p.pop3, b"+OK")
    }

    /// SIGTERM the process group, reap the master, SIGKILL what lingers.
    fn stop_inner(&self) -> Result<(), String> {
        let Some(mut child) = self.master().take() else {
            return Ok(());
        };
        let pgid = child.id();
        signal_group(pgid, "TERM");
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
                _ => {
                    signal_group(pgid, "KILL");
                    let _ = child.wait();
                    break;
                }
            }
        }
        // Mail processes outlive the master when it alone is signalled; the
        // group signal reached them too, wait until they are all gone.
        let deadline = Instant::now() + STOP_GRACE;
        while group_alive(pgid) {
            if Instant::now() > deadline {
                signal_group(pgid, "KILL");
                thread::sleep(Duration::from_millis(200));
                if group_alive(pgid) {
                    return Err(format!(
                        "processes of Dovecot's group {pgid} survived SIGKILL"
                    ));
                }
                break;
            }
            thread::sleep(POLL);
        }
        Ok(())
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            eprintln!("facteur-tests: stopping Dovecot: {e}");
        }
    }
}

/// Why a start did not succeed.
enum StartFailure {
    /// Another process bound one of the ports first: try other ports.
    PortTaken(String),
    /// Anything else: the message for the test failure.
    Other(String),
}

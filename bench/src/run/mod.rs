//! # Running each client against the loaded Dovecot
//!
//! - [`facteurd`]: the release `facteurd` on a private bus (the harness's
//!   [`Facteurd`]), a fresh data directory, an account created over D-Bus;
//!   timed from `CreateAccount` until `MessageCount` reaches the corpus
//!   size, sampling its CPU and memory from `/proc` meanwhile.
//! - [`mbsync`] (isync): a whole-account pull into a fresh Maildir.
//! - [`fetchmail`]: every message over POP3, kept on the server, delivered
//!   either through a minimal MDA into a Maildir or appended to a BSMTP
//!   file (fetchmail's cheapest way to store mail).
//! - [`getmail`] (getmail6): every message over POP3 into a Maildir.
//!
//! The reference clients run under `/usr/bin/time -v`; each gets its own
//! Dovecot user with an identical mailbox. Each function returns a [`Row`];
//! a failure is a row with `ok = false` and the reason, never a panic, so
//! one broken client does not hide the others' figures.
//!
//! What this module leaves to others: loading the mailbox
//! ([`crate::load`]) and printing ([`crate::report`]).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _, Result};
use facteur_dbus::names;
use facteur_tests::dovecot::Dovecot;
use facteur_tests::{Bus, Facteurd, Settings, LOOPBACK};

use crate::load::Mailbox;
use crate::measure::{self, Cpu, DiskUsage, MIB};
use crate::report::{mib, Row, Sample};

/// How often facteurd's `MessageCount` is read while it syncs.
const POLL: Duration = Duration::from_millis(50);
/// How often a progress sample is kept (and printed).
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How long to wait, after the last message, for the account to leave
/// `syncing`.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// What every run shares.
pub struct Ctx<'a> {
    /// The server.
    pub dovecot: &'a Dovecot,
    /// Implicit TLS everywhere (IMAPS, POP3S) with the test CA, or plain.
    pub tls: bool,
    /// Messages each client must end up with.
    pub expected: u32,
    /// The corpus's raw size.
    pub raw_bytes: u64,
    /// Where logs are kept.
    pub log_dir: PathBuf,
    /// The limit for one client.
    pub timeout: Duration,
    /// facteurd fails when its count has not moved for this long.
    pub stall: Duration,
    /// `RUST_LOG` for facteurd.
    pub facteurd_log: String,
    /// Extra environment for facteurd.
    pub facteurd_env: Vec<(String, String)>,
    /// A program and arguments to run facteurd under (empty: none).
    pub facteurd_wrapper: Vec<String>,
    /// The workspace commit, facteurd's version.
    pub commit: String,
    /// The getmail program (getmail6).
    pub getmail: PathBuf,
}

impl Ctx<'_> {
    fn imap_port(&self) -> u16 {
        if self.tls {
            self.dovecot.imaps_port()
        } else {
            self.dovecot.imap_port()
        }
    }

    fn pop3_port(&self) -> u16 {
        if self.tls {
            self.dovecot.pop3s_port()
        } else {
            self.dovecot.pop3_port()
        }
    }

    fn security(&self) -> &'static str {
        if self.tls {
            "implicit TLS"
        } else {
            "plain"
        }
    }
}

/// Fill a row's store and size columns.
fn set_store(row: &mut Row, usage: DiskUsage, raw_bytes: u64) {
    row.store_mib = mib(usage.disk);
    row.store_apparent_mib = mib(usage.apparent);
    row.store_files = usage.files;
    row.raw_mib = mib(raw_bytes);
}

/// Fill a row's time and memory columns.
fn set_cpu(row: &mut Row, wall: f64, cpu: Cpu, peak_kib: u64) {
    row.wall_s = wall;
    row.cpu_s = cpu.total();
    row.cpu_user_s = cpu.user;
    row.cpu_sys_s = cpu.sys;
    row.peak_rss_mib = peak_kib as f64 * 1024.0 / MIB;
}

/// Turn a run's result into its row, recording a failure as such.
fn finish(mut row: Row, result: Result<()>) -> Row {
    match result {
        Ok(()) => row.ok = true,
        Err(e) => {
            eprintln!("  {} ({}) failed: {e:#}", row.tool, row.protocol);
            row.ok = false;
            row.error = Some(format!("{e:#}"));
        }
    }
    row
}

/// The Debian version of a package, or `unknown`.
pub fn package_version(package: &str) -> String {
    std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| facteur_tests::text(&o.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The last `n` lines of a text.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Write a file only its owner can read (clients refuse others, and it
/// holds a password).
fn write_private(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).with_context(|| format!("Cannot write {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("Cannot chmod {}", path.display()))
}

/// A fresh work directory for one client, removed on drop.
fn workdir(prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .context("Cannot create a work directory in /tmp")
}

/// The log of the client that syncs `mb`: named after its user
/// (`imap-mbsync-2.log`), which is unique per client and run.
fn log_path(ctx: &Ctx<'_>, mb: &Mailbox) -> PathBuf {
    let name = mb.user.split('@').next().unwrap_or(&mb.user);
    ctx.log_dir.join(format!("{name}.log"))
}

/// The uid and gid of `nobody`.
fn nobody() -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = std::process::Command::new("id")
            .args([flag, "nobody"])
            .output()
            .context("Cannot run id")?;
        facteur_tests::text(&out.stdout)
            .trim()
            .parse()
            .with_context(|| format!("`id {flag} nobody` did not print a number"))
    };
    Ok((id("-u")?, id("-g")?))
}

/// An empty Maildir (`cur`, `new`, `tmp`) at `dir`.
fn make_maildir(dir: &Path) -> Result<()> {
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("Cannot create {}", dir.join(sub).display()))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// facteurd
// ---------------------------------------------------------------------------

/// facteurd's first full sync (IMAP) or first download (POP3, messages left
/// on the server) of `mb`.
pub fn facteurd(ctx: &Ctx<'_>, bus: &Bus, protocol: &'static str, mb: &Mailbox) -> Row {
    let mut setup = format!(
        "{protocol} {}, sled + message files, RUST_LOG={}",
        ctx.security(),
        ctx.facteurd_log
    );
    for (k, v) in &ctx.facteurd_env {
        setup.push_str(&format!(", {k}={v}"));
    }
    let mut daemon = Facteurd::new(bus);
    daemon
        .arg("--secret-store")
        .arg("file")
        // RUST_LOG wins over the harness's `--log-level debug`.
        .env("RUST_LOG", ctx.facteurd_log.as_str());
    if ctx.tls {
        daemon.env("SSL_CERT_FILE", ctx.dovecot.ca_cert_path());
    }
    for (k, v) in &ctx.facteurd_env {
        daemon.env(k.as_str(), v.as_str());
    }
    if let Some((program, rest)) = ctx.facteurd_wrapper.split_first() {
        let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
        daemon.wrap(program.as_str(), &rest);
        setup.push_str(&format!(", under {program}"));
    }
    let mut row = Row::new(protocol, "facteurd", &ctx.commit, &setup);
    let result = facteurd_inner(ctx, bus, protocol, mb, &mut daemon, &mut row);
    if daemon.try_wait().is_none() {
        let status = daemon.stop();
        if !status.success() && result.is_ok() {
            eprintln!("  facteurd exited with {status} after SIGTERM");
        }
    }
    let log = log_path(ctx, mb);
    if fs::write(&log, daemon.log()).is_ok() {
        row.log = Some(log);
    }
    let store = measure::disk_usage(&[daemon.data_dir()]);
    match store {
        Ok(usage) => set_store(&mut row, usage, ctx.raw_bytes),
        Err(e) => eprintln!("  cannot measure facteurd's store: {e:#}"),
    }
    finish(row, result)
}

/// The measured part of [`facteurd`]: start it, create the account, poll
/// `MessageCount` until the whole mailbox is in, then take the figures.
fn facteurd_inner(
    ctx: &Ctx<'_>,
    bus: &Bus,
    protocol: &'static str,
    mb: &Mailbox,
    daemon: &mut Facteurd<'_>,
    row: &mut Row,
) -> Result<()> {
    daemon.launch();
    let pid = daemon.pid();
    let master = ctx
        .dovecot
        .pid()
        .ok_or_else(|| anyhow!("Dovecot is not running"))?;
    let port = if protocol == "imap" {
        ctx.imap_port()
    } else {
        ctx.pop3_port()
    };
    let security = if ctx.tls { "tls" } else { "none" };
    let mut settings = Settings::minimal(&mb.user, LOOPBACK)
        .s("name", &format!("bench {protocol}"))
        .s("incoming-protocol", protocol)
        .q("incoming-port", port)
        .s("incoming-security", security)
        .s("incoming-login", &mb.user)
        .s("incoming-password", &mb.password)
        // Never used: keeps every address the account knows on loopback.
        .s("smtp-host", LOOPBACK)
        .q("smtp-port", facteur_tests::closed_port());
    if protocol == "pop3" {
        settings = settings
            .b("leave-on-server", true)
            .u("poll-interval-minutes", 60);
    }

    let cpu0 = measure::process_cpu(pid)?;
    let faults0 = measure::minor_faults(pid)?;
    let server0 = measure::server_cpu(master);
    let busy0 = measure::machine_busy();
    let started = Instant::now();
    let path = bus
        .create_account(&settings)
        .map_err(|e| anyhow!("CreateAccount failed: {e}"))?;
    let mut last_count = 0u32;
    let mut last_change = Instant::now();
    let mut next_sample = Duration::ZERO;
    let (count, state) = loop {
        if let Some(status) = daemon.try_wait() {
            bail!(
                "facteurd exited with {status} during the sync; its log ends:\n{}",
                tail(&daemon.log(), 20)
            );
        }
        let props = bus
            .properties(&path, names::ACCOUNT_INTERFACE)
            .map_err(|e| anyhow!("GetAll on {path} failed: {e}"))?;
        let count = props.u32("MessageCount");
        let state = props.str("State");
        let now = started.elapsed();
        if count != last_count {
            last_count = count;
            last_change = Instant::now();
        }
        if count >= ctx.expected {
            break (count, state);
        }
        if now >= next_sample {
            next_sample = now + SAMPLE_EVERY;
            let cpu = measure::process_cpu(pid)?.since(cpu0);
            let rss = measure::status_kib(pid, "VmRSS")?;
            row.progress.push(Sample {
                t_s: now.as_secs_f64(),
                messages: count,
                cpu_s: cpu.total(),
                rss_mib: rss as f64 * 1024.0 / MIB,
                state: state.clone(),
            });
            eprintln!(
                "  facteurd {protocol}: {count}/{} messages after {:.1} s, CPU {:.1} s, RSS {:.1} MiB, {state}",
                ctx.expected,
                now.as_secs_f64(),
                cpu.total(),
                rss as f64 * 1024.0 / MIB
            );
        }
        if last_change.elapsed() > ctx.stall {
            bail!(
                "facteurd stalled at {count}/{} messages for {:?} (State {state}, LastError {:?}); its log ends:\n{}",
                ctx.expected,
                ctx.stall,
                props.str("LastError"),
                tail(&daemon.log(), 20)
            );
        }
        if now > ctx.timeout {
            bail!(
                "facteurd had {count}/{} messages after {:?} (State {state})",
                ctx.expected,
                ctx.timeout
            );
        }
        thread::sleep(POLL);
    };
    let wall = started.elapsed().as_secs_f64();
    let cpu = measure::process_cpu(pid)?.since(cpu0);
    let server = measure::server_cpu(master) - server0;
    let busy = measure::machine_busy() - busy0;
    let peak = measure::status_kib(pid, "VmHWM")?;
    set_cpu(row, wall, cpu, peak);
    row.minor_faults = measure::minor_faults(pid)?.saturating_sub(faults0);
    let kib_to_mib = |k: u64| k as f64 * 1024.0 / MIB;
    row.rss_anon_mib = measure::status_kib(pid, "RssAnon").ok().map(kib_to_mib);
    row.rss_file_mib = measure::status_kib(pid, "RssFile").ok().map(kib_to_mib);
    row.server_cpu_s = server;
    row.other_cpu_s = (busy - cpu.total() - server).max(0.0);
    row.messages = u64::from(count);
    row.progress.push(Sample {
        t_s: wall,
        messages: count,
        cpu_s: cpu.total(),
        rss_mib: measure::status_kib(pid, "VmRSS")? as f64 * 1024.0 / MIB,
        state: state.clone(),
    });
    // Not part of the figures: how long the pass still took to finish.
    let settle = Instant::now();
    while settle.elapsed() < SETTLE_LIMIT {
        let props = bus
            .properties(&path, names::ACCOUNT_INTERFACE)
            .map_err(|e| anyhow!("GetAll on {path} failed: {e}"))?;
        if props.str("State") != "syncing" {
            row.settled_s = Some(settle.elapsed().as_secs_f64());
            break;
        }
        thread::sleep(POLL);
    }
    ensure!(
        count == ctx.expected,
        "facteurd has {count} messages, the mailbox {}",
        ctx.expected
    );
    if protocol == "imap" {
        let ms = twoway::resync(bus, &path)?;
        eprintln!("  facteurd imap: no-change resync {ms:.0} ms");
        row.resync_ms = Some(ms);
        let ms = twoway::flags_1000(ctx, bus, &path, mb)?;
        eprintln!("  facteurd imap: 1,000 flag changes on the server after {ms:.0} ms");
        row.flags_1000_ms = Some(ms);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// mbsync
// ---------------------------------------------------------------------------

mod peers;
mod twoway;
pub use peers::{fetchmail, getmail, mbsync, FetchmailSink};

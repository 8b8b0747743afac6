//! # Results: the table and the JSON file
//!
//! One [`Row`] per client run, printed as a table on standard output and
//! written with the run's context ([`Report`]: corpus, machine, versions)
//! as JSON, by default to `target/bench-results/`.
//!
//! What this module leaves to others: producing the figures
//! ([`crate::run`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::corpus::civil_from_days;
use crate::measure::MIB;

/// One point of facteurd's progress during its sync.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since CreateAccount.
    pub t_s: f64,
    /// `MessageCount` then.
    pub messages: u32,
    /// facteurd's CPU seconds since CreateAccount.
    pub cpu_s: f64,
    /// facteurd's resident set, MiB.
    pub rss_mib: f64,
    /// The account's `State`.
    pub state: String,
}

/// The figures of one client.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `imap` or `pop3`.
    pub protocol: &'static str,
    /// The client (`facteurd`, `mbsync`, …).
    pub tool: String,
    /// Which repetition (from 1); 0 in a summary row.
    pub run: u32,
    /// Its version (git commit for facteurd, the Debian package otherwise).
    pub version: String,
    /// How it was set up, in a few words.
    pub setup: String,
    /// Whether it finished with every message.
    pub ok: bool,
    /// Why not, when it did not.
    pub error: Option<String>,
    /// The messages it ended up with.
    pub messages: u64,
    /// Wall seconds from start (CreateAccount for facteurd) to the last
    /// message stored.
    pub wall_s: f64,
    /// User + system CPU seconds of the client.
    pub cpu_s: f64,
    /// User CPU seconds.
    pub cpu_user_s: f64,
    /// System CPU seconds.
    pub cpu_sys_s: f64,
    /// Peak resident set, MiB (`VmHWM`, or `time -v`'s maximum).
    pub peak_rss_mib: f64,
    /// facteurd's resident set when the last message was in, split as the
    /// kernel counts it: anonymous memory (heap), MiB.
    pub rss_anon_mib: Option<f64>,
    /// … and pages of mapped files (the binary, libraries), MiB.
    pub rss_file_mib: Option<f64>,
    /// Minor page faults: pages the kernel mapped and zeroed on first touch
    /// (much of the system time of an allocator that keeps returning and
    /// taking back memory).
    pub minor_faults: u64,
    /// The store's size on disk (allocated blocks), MiB.
    pub store_mib: f64,
    /// The store's files added up, MiB.
    pub store_apparent_mib: f64,
    /// Files in the store.
    pub store_files: u64,
    /// The raw messages, MiB.
    pub raw_mib: f64,
    /// CPU seconds Dovecot spent meanwhile.
    pub server_cpu_s: f64,
    /// CPU seconds the rest of the machine used meanwhile (busy time of
    /// every CPU minus the client's and Dovecot's): interference.
    pub other_cpu_s: f64,
    /// In a summary row: the shortest wall time of the runs, the least
    /// disturbed by anything else on the machine.
    pub best_wall_s: Option<f64>,
    /// Seconds from the last message stored until facteurd's account left
    /// `syncing` (facteurd only; `None` if it did not within a while).
    pub settled_s: Option<f64>,
    /// A no-change resync right after the first sync, ms: facteurd's
    /// `Sync()` on the unchanged account (QRESYNC where Dovecot offers it),
    /// mbsync run again on its own state (IMAP only).
    pub resync_ms: Option<f64>,
    /// 1,000 flag changes applied to the server, ms: facteurd's `SetFlags`
    /// on 1,000 ids over D-Bus until `PendingChanges` is 0, checked with
    /// doveadm afterwards (facteurd, IMAP only).
    pub flags_1000_ms: Option<f64>,
    /// facteurd's progress, about once a second.
    pub progress: Vec<Sample>,
    /// The client's log, kept beside the JSON file.
    pub log: Option<PathBuf>,
}

impl Row {
    /// A row with the tool's identity and nothing measured yet.
    pub fn new(protocol: &'static str, tool: &str, version: &str, setup: &str) -> Row {
        Row {
            protocol,
            tool: tool.to_owned(),
            run: 1,
            version: version.to_owned(),
            setup: setup.to_owned(),
            ok: false,
            error: None,
            messages: 0,
            wall_s: 0.0,
            cpu_s: 0.0,
            cpu_user_s: 0.0,
            cpu_sys_s: 0.0,
            peak_rss_mib: 0.0,
            rss_anon_mib: None,
            rss_file_mib: None,
            minor_faults: 0,
            store_mib: 0.0,
            store_apparent_mib: 0.0,
            store_files: 0,
            raw_mib: 0.0,
            server_cpu_s: 0.0,
            other_cpu_s: 0.0,
            best_wall_s: None,
            settled_s: None,
            resync_ms: None,
            flags_1000_ms: None,
            progress: Vec::new(),
            log: None,
        }
    }
}

/// The generated mailbox.
#[derive(Debug, Clone, Serialize)]
pub struct CorpusInfo {
    /// The PRNG seed.
    pub seed: String,
    /// Messages.
    pub messages: u32,
    /// Their bytes added up.
    pub raw_bytes: u64,
    /// FNV-1a 64 of all messages in order, to compare runs.
    pub digest: String,
    /// Messages per IMAP folder.
    pub per_folder: BTreeMap<String, u32>,
    /// Seconds to generate, write and index it for every user.
    pub load_s: f64,
}

/// Everything one run wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When the run started, UTC (`2026-05-04T10:11:12Z`).
    pub date: String,
    /// The command line.
    pub command: String,
    /// The workspace commit (`-dirty` when the tree has changes).
    pub commit: String,
    /// The facteurd binary that ran: path, size and build time, since the
    /// commit alone does not say whether it was rebuilt.
    pub facteurd_binary: String,
    /// CPU model, cores, memory, kernel.
    pub machine: BTreeMap<String, String>,
    /// Dovecot's version.
    pub dovecot: String,
    /// Whether every client used implicit TLS.
    pub tls: bool,
    /// facteurd's log filter.
    pub facteurd_log_level: String,
    /// Extra environment given to facteurd.
    pub facteurd_env: Vec<String>,
    /// The mailbox.
    pub corpus: CorpusInfo,
    /// One per client run.
    pub rows: Vec<Row>,
    /// With several runs: per client, the median of each figure (the
    /// maximum for peak RSS), without progress samples.
    pub summary: Vec<Row>,
}

/// `2026-05-04T10:11:12Z` for now.
pub fn utc_now() -> String {
    utc_at(SystemTime::now())
}

/// `2026-05-04T10:11:12Z` for a point in time.
pub fn utc_at(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

/// The table, one line per row.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<5} {:<16} {:>3} {:>7} {:>9} {:>8} {:>9} {:>10} {:>9} {:>11} {:>10}  note",
        "proto",
        "tool",
        "run",
        "msgs",
        "wall s",
        "CPU s",
        "RSS MiB",
        "store MiB",
        "raw MiB",
        "server CPU",
        "other CPU",
    );
    for r in rows {
        let note = match &r.error {
            Some(e) => format!("FAILED: {}", e.lines().next().unwrap_or_default()),
            None => r.setup.clone(),
        };
        let _ = writeln!(
            out,
            "{:<5} {:<16} {:>3} {:>7} {:>9.2} {:>8.2} {:>9.1} {:>10.1} {:>9.1} {:>11.2} {:>10.2}  {}",
            r.protocol,
            r.tool,
            if r.run == 0 {
                "med".to_owned()
            } else {
                r.run.to_string()
            },
            r.messages,
            r.wall_s,
            r.cpu_s,
            r.peak_rss_mib,
            r.store_mib,
            r.raw_mib,
            r.server_cpu_s,
            r.other_cpu_s,
            note
        );
    }
    out
}

/// The median of some numbers (the mean of the middle two for an even
/// count); 0 for none.
fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// One row per (protocol, tool) over its successful runs: medians, and the
/// highest peak RSS. A client with a failed run keeps the failure.
pub fn summarize(rows: &[Row]) -> Vec<Row> {
    let mut keys: Vec<(&'static str, String)> = Vec::new();
    for r in rows {
        if !keys.iter().any(|(p, t)| *p == r.protocol && *t == r.tool) {
            keys.push((r.protocol, r.tool.clone()));
        }
    }
    keys.into_iter()
        .filter_map(|(protocol, tool)| {
            let runs: Vec<&Row> = rows
                .iter()
                .filter(|r| r.protocol == protocol && r.tool == tool)
                .collect();
            let first = *runs.first()?;
            let ok: Vec<&Row> = runs.iter().copied().filter(|r| r.ok).collect();
            let med = |f: fn(&Row) -> f64| median(ok.iter().map(|r| f(r)).collect());
            let mut s = Row::new(protocol, &tool, &first.version, &first.setup);
            s.run = 0;
            s.ok = ok.len() == runs.len();
            s.error = runs.iter().find_map(|r| r.error.clone());
            s.messages = ok.iter().map(|r| r.messages).min().unwrap_or(0);
            s.wall_s = med(|r| r.wall_s);
            s.best_wall_s = ok.iter().map(|r| r.wall_s).reduce(f64::min);
            s.cpu_s = med(|r| r.cpu_s);
            s.cpu_user_s = med(|r| r.cpu_user_s);
            s.cpu_sys_s = med(|r| r.cpu_sys_s);
            s.peak_rss_mib = ok.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max);
            s.store_mib = med(|r| r.store_mib);
            s.minor_faults = med(|r| r.minor_faults as f64) as u64;
            s.store_apparent_mib = med(|r| r.store_apparent_mib);
            s.store_files = ok.iter().map(|r| r.store_files).max().unwrap_or(0);
            s.raw_mib = first.raw_mib;
            s.server_cpu_s = med(|r| r.server_cpu_s);
            s.other_cpu_s = med(|r| r.other_cpu_s);
            let some = |f: fn(&Row) -> Option<f64>| {
                let xs: Vec<f64> = ok.iter().filter_map(|r| f(r)).collect();
                (!xs.is_empty()).then(|| median(xs))
            };
            s.resync_ms = some(|r| r.resync_ms);
            s.flags_1000_ms = some(|r| r.flags_1000_ms);
            Some(s)
        })
        .collect()
}

/// facteurd against each other client of the same protocol: how many times
/// faster (wall; also on the best runs when there were several) and how
/// its memory and store compare with the targets.
pub fn verdicts(rows: &[Row]) -> String {
    let mut out = String::new();
    let ratio = |f: f64, o: f64| {
        if f < o {
            format!("{:.2}x faster", o / f.max(1e-9))
        } else {
            format!("{:.2}x SLOWER", f / o.max(1e-9))
        }
    };
    for f in rows.iter().filter(|r| r.tool == "facteurd" && r.ok) {
        for o in rows
            .iter()
            .filter(|o| o.protocol == f.protocol && o.tool != "facteurd" && o.ok)
        {
            let _ = write!(
                out,
                "{}: facteurd {:.2} s vs {} {:.2} s: facteurd is {}",
                f.protocol,
                f.wall_s,
                o.tool,
                o.wall_s,
                ratio(f.wall_s, o.wall_s)
            );
            if let (Some(fb), Some(ob)) = (f.best_wall_s, o.best_wall_s) {
                let _ = write!(out, "; best runs {fb:.2} s vs {ob:.2} s: {}", ratio(fb, ob));
            }
            out.push('\n');
            if let (Some(fr), Some(or)) = (f.resync_ms, o.resync_ms) {
                let _ = writeln!(
                    out,
                    "{}: no-change resync: facteurd {fr:.0} ms vs {} {or:.0} ms: facteurd/{} = {:.2} ({})",
                    f.protocol,
                    o.tool,
                    o.tool,
                    fr / or.max(1e-9),
                    ratio(fr, or)
                );
            }
        }
        if let Some(ms) = f.flags_1000_ms {
            let _ = writeln!(
                out,
                "{}: 1,000 flag changes applied to the server: {ms:.0} ms",
                f.protocol
            );
        }
        let _ = writeln!(
            out,
            "{}: facteurd peak RSS {:.1} MiB (target < 100: {}); store {:.1} MiB vs raw {:.1} MiB (target: no larger: {})",
            f.protocol,
            f.peak_rss_mib,
            if f.peak_rss_mib < 100.0 { "met" } else { "MISSED" },
            f.store_mib,
            f.raw_mib,
            if f.store_mib <= f.raw_mib { "met" } else { "MISSED" },
        );
    }
    out
}

/// Write the report as pretty JSON to `path`.
pub fn write_json(report: &Report, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("Cannot create {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(report).context("Cannot serialize the report")?;
    fs::write(path, json + "\n").with_context(|| format!("Cannot write {}", path.display()))
}

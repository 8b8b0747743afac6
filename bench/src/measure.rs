//! # Measuring processes and stores
//!
//! - CPU time and memory of a live process from `/proc/<pid>/stat` and
//!   `/proc/<pid>/status` (utime + stime, `VmHWM`, `VmRSS`), for facteurd,
//!   which keeps running after its sync.
//! - The same figures for a command that runs to its end, from GNU
//!   `/usr/bin/time -v` (its `getrusage` of the children: user and system
//!   time and the largest resident set), for mbsync, fetchmail and getmail.
//! - The CPU Dovecot spent: every live process of its process group plus
//!   what the master reaped (`cutime + cstime`), so a client that makes the
//!   server work harder shows it.
//! - How busy the whole machine was (`/proc/stat`), so that a run disturbed
//!   by other work shows it; and minor page faults.
//! - The size on disk of a store: allocated blocks of every file and
//!   directory, each inode counted once, as `du` does; and the apparent
//!   size.
//!
//! What this module leaves to others: when to measure ([`crate::run`]).

use std::collections::BTreeSet;
use std::fs;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};

/// One mebibyte.
pub const MIB: f64 = 1024.0 * 1024.0;

/// Clock ticks per second for `/proc/<pid>/stat` (`getconf CLK_TCK`; 100
/// on every Linux we know, and the fallback).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The fields of `/proc/<pid>/stat` after the command name, from field 3
/// (`state`) on.
fn stat_fields(pid: u32) -> Result<Vec<u64>> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).with_context(|| format!("Cannot read {path}"))?;
    // The command name is in parentheses and may hold spaces or ')'.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("{path} has no command name"))?;
    // `state` is a letter: keep its place with a 0.
    Ok(rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect())
}

/// User and system CPU seconds of a live process (all its threads).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cpu {
    /// utime, seconds.
    pub user: f64,
    /// stime, seconds.
    pub sys: f64,
}

impl Cpu {
    /// Both together.
    pub fn total(&self) -> f64 {
        self.user + self.sys
    }

    /// What was spent between `earlier` and `self`.
    pub fn since(&self, earlier: Cpu) -> Cpu {
        Cpu {
            user: self.user - earlier.user,
            sys: self.sys - earlier.sys,
        }
    }
}

/// The CPU a live process has used so far.
pub fn process_cpu(pid: u32) -> Result<Cpu> {
    let f = stat_fields(pid)?;
    // Fields 14 and 15 (utime, stime) are at 11 and 12 counted from field 3.
    let get = |i: usize| f.get(i).copied().unwrap_or(0) as f64 / clock_ticks();
    Ok(Cpu {
        user: get(11),
        sys: get(12),
    })
}

/// Minor page faults of a live process so far (`minflt`): each is a page
/// the kernel had to map, and zero, on first touch.
pub fn minor_faults(pid: u32) -> Result<u64> {
    // Field 10 (minflt) is at 7 counted from field 3.
    Ok(stat_fields(pid)?.get(7).copied().unwrap_or(0))
}

/// A `kB` line of `/proc/<pid>/status` (`VmHWM`, `VmRSS`), in KiB.
pub fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).with_context(|| format!("Cannot read {path}"))?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(':')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| anyhow!("{path} has no {key}"))
}

/// CPU seconds used by Dovecot so far: every process in the master's
/// process group, plus the children the master has reaped.
pub fn server_cpu(master: u32) -> f64 {
    let mut total = 0.0;
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0.0;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit while we look: skip it.
        let Ok(f) = stat_fields(pid) else { continue };
        // Field 5 (pgrp) is at 2 counted from field 3.
        if f.get(2).copied() != Some(u64::from(master)) {
            continue;
        }
        let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
        let reaped = if pid == master {
            f.get(13).copied().unwrap_or(0) + f.get(14).copied().unwrap_or(0)
        } else {
            0
        };
        total += (ticks + reaped) as f64 / clock_ticks();
    }
    total
}

/// CPU seconds the whole machine has been busy so far (every CPU, from
/// the `cpu` line of `/proc/stat`: all but idle and iowait). The part of a
/// run's busy time that neither the client nor Dovecot used shows how much
/// else ran meanwhile.
pub fn machine_busy() -> f64 {
    let text = fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let busy: u64 = [0usize, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| f.get(i).copied().unwrap_or(0))
        .sum();
    busy as f64 / clock_ticks()
}

/// The size of a store.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiskUsage {
    /// Allocated bytes (`du`): blocks of every file and directory.
    pub disk: u64,
    /// The files' lengths added up (`du --apparent-size`, files only).
    pub apparent: u64,
    /// Regular files.
    pub files: u64,
}

/// The disk usage of everything under `paths` (files or directories), each
/// inode once.
pub fn disk_usage(paths: &[PathBuf]) -> Result<DiskUsage> {
    let mut seen = BTreeSet::new();
    let mut usage = DiskUsage::default();
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        let meta =
            fs::symlink_metadata(&p).with_context(|| format!("Cannot stat {}", p.display()))?;
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        usage.disk += meta.blocks() * 512;
        if meta.is_dir() {
            for entry in fs::read_dir(&p).with_context(|| format!("Cannot list {}", p.display()))? {
                stack.push(
                    entry
                        .with_context(|| format!("Cannot list {}", p.display()))?
                        .path(),
                );
            }
        } else if meta.is_file() {
            usage.apparent += meta.len();
            usage.files += 1;
        }
    }
    Ok(usage)
}

/// How many regular files are in the `cur/` and `new/` directories under
/// `root`: the messages of a Maildir tree.
pub fn count_maildir_messages(root: &Path) -> Result<u64> {
    let mut n = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("Cannot list {}", dir.display()))? {
            let entry = entry.with_context(|| format!("Cannot list {}", dir.display()))?;
            let ty = entry.file_type()?;
            if ty.is_dir() {
                stack.push(entry.path());
            } else if ty.is_file() && dir.file_name().is_some_and(|d| d == "cur" || d == "new") {
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Write every dirty page to disk (`sync`), so that a client's first
/// fsync does not pay for data someone else wrote: on ext4 (data=ordered)
/// an fsync commits the journal, which waits for all pending data.
pub fn sync_disks() -> Result<()> {
    let status = Command::new("sync").status().context("Cannot run sync")?;
    if !status.success() {
        bail!("sync failed with {status}");
    }
    Ok(())
}

/// What `/usr/bin/time -v` and our own clock say about one command.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timed {
    /// Wall seconds, measured here around the command.
    pub wall: f64,
    /// User and system CPU of the command and the children it waited for.
    pub cpu: Cpu,
    /// The largest resident set of the command or any of its children, KiB.
    pub max_rss_kib: u64,
    /// Minor page faults of the command and its children.
    pub minor_faults: u64,
    /// Its exit code (`None` when killed by a signal).
    pub exit: Option<i32>,
}

/// Run `argv` under `/usr/bin/time -v` in its own process group, its
/// output appended to `log`, killed (the whole group) after `limit`.
pub fn run_timed(
    argv: &[String],
    env: &[(&str, String)],
    log: &Path,
    limit: Duration,
) -> Result<Timed> {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        bail!("/usr/bin/time is missing: install the Debian package `time` (apt-get install time)");
    }
    let report = log.with_extension("time");
    let out = fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("Cannot open {}", log.display()))?;
    let err = out.try_clone().context("Cannot clone a file handle")?;
    let mut cmd = Command::new(time);
    cmd.arg("-v")
        .arg("-o")
        .arg(&report)
        .args(argv)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("Cannot run {}", argv.join(" ")))?;
    let status = loop {
        if let Some(status) = child.try_wait().context("Cannot wait for a child")? {
            break status;
        }
        if started.elapsed() > limit {
            let pgid = child.id();
            let _ = Command::new("/bin/sh")
                .args(["-c", &format!("kill -s KILL -- -{pgid} 2>/dev/null")])
                .status();
            let _ = child.wait();
            bail!(
                "{} did not finish within {limit:?} (killed); see {}",
                argv.join(" "),
                log.display()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    let wall = started.elapsed().as_secs_f64();
    let mut text = String::new();
    fs::File::open(&report)
        .and_then(|mut f| f.read_to_string(&mut text))
        .with_context(|| format!("Cannot read {}", report.display()))?;
    let mut timed = parse_time_v(&text);
    timed.wall = wall;
    timed.exit = status.code().or(timed.exit);
    Ok(timed)
}

/// The figures in the report of GNU `time -v` (wall time left at 0: the
/// caller measures it).
fn parse_time_v(text: &str) -> Timed {
    let field = |name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name)?.trim().parse().ok())
    };
    Timed {
        wall: 0.0,
        cpu: Cpu {
            user: field("User time (seconds):").unwrap_or(0.0),
            sys: field("System time (seconds):").unwrap_or(0.0),
        },
        max_rss_kib: field("Maximum resident set size (kbytes):").unwrap_or(0.0) as u64,
        minor_faults: field("Minor (reclaiming a frame) page faults:").unwrap_or(0.0) as u64,
        exit: field("Exit status:").map(|c| c as i32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_figures() {
        let pid = std::process::id();
        assert!(process_cpu(pid).is_ok());
        assert!(status_kib(pid, "VmHWM").expect("VmHWM") > 0);
    }

    #[test]
    fn time_v_is_parsed() {
        // Recorded from GNU time 1.9 (Debian 12), abridged.
        let report = "\tCommand being timed: \"mbsync -c rc -a\"\n\
            \tUser time (seconds): 1.21\n\
            \tSystem time (seconds): 8.91\n\
            \tPercent of CPU this job got: 67%\n\
            \tElapsed (wall clock) time (h:mm:ss or m:ss): 0:15.02\n\
            \tMaximum resident set size (kbytes): 10752\n\
            \tMajor (requiring I/O) page faults: 0\n\
            \tMinor (reclaiming a frame) page faults: 9172\n\
            \tExit status: 3\n";
        let t = parse_time_v(report);
        assert_eq!(
            t.cpu,
            Cpu {
                user: 1.21,
                sys: 8.91
            }
        );
        assert_eq!(t.max_rss_kib, 10_752);
        assert_eq!(t.minor_faults, 9172);
        assert_eq!(t.exit, Some(3));
    }

    #[test]
    fn disk_usage_counts_hard_links_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("a"), vec![1u8; 10_000]).expect("write");
        fs::hard_link(dir.path().join("a"), dir.path().join("b")).expect("link");
        let u = disk_usage(&[dir.path().to_path_buf()]).expect("du");
        assert_eq!(u.files, 1);
        assert_eq!(u.apparent, 10_000);
        assert!(u.disk >= 10_000);
    }
}

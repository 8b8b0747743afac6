//! # facteur-bench: facteurd against mbsync, fetchmail and getmail
//!
//! A command, not a test: it generates a deterministic mailbox
//! ([`corpus`]), loads it into a private Dovecot started by the test harness
//! ([`load`]), then times facteurd's first full IMAP sync against mbsync,
//! and facteurd's first POP3 download against fetchmail and getmail6, on
//! the same data in the same run ([`run`]). It reports wall time, CPU time,
//! peak RSS and the store's size on disk against the raw messages
//! ([`measure`], [`report`]): a table on standard output and a JSON file.
//!
//! ```text
//! cargo build --release -p facteurd
//! cargo run --release -p facteur-bench -- all --messages 10000
//! ```
//!
//! See bench/README.md for what is measured and how to read it.

mod corpus;
mod load;
mod measure;
mod report;
mod run;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, ValueEnum};
use facteur_tests::dovecot::{Dovecot, DovecotOptions, ServerTls};
use facteur_tests::Bus;

use crate::corpus::Corpus;
use crate::load::{Layout, Mailbox};
use crate::report::{CorpusInfo, Report, Row};
use crate::run::{Ctx, FetchmailSink};

/// Which protocols to benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// facteurd against mbsync.
    Imap,
    /// facteurd against fetchmail (and getmail6).
    Pop3,
    /// Both.
    All,
}

/// The clients that can be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Tool {
    /// facteurd (IMAP and POP3).
    Facteurd,
    /// mbsync, from isync (IMAP).
    Mbsync,
    /// fetchmail through a minimal MDA into a Maildir (POP3).
    Fetchmail,
    /// fetchmail appending to a BSMTP file (POP3).
    FetchmailBsmtp,
    /// getmail6 into a Maildir (POP3); in the default set only with
    /// --getmail.
    Getmail,
}

/// Benchmark facteurd's first sync against mbsync (IMAP) and fetchmail /
/// getmail6 (POP3) on a generated mailbox in a private Dovecot.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// imap, pop3 or all.
    #[arg(value_enum)]
    mode: Mode,
    /// Run every client this many times, each on a fresh identical
    /// mailbox, alternating their order; the summary takes medians.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    runs: u32,
    /// Run facteurd under a wrapper, such as
    /// "valgrind --tool=massif --massif-out-file=/tmp/massif.out" (split on
    /// spaces); figures are then the wrapper's, not facteurd's own.
    #[arg(long)]
    facteurd_wrapper: Option<String>,
    /// How many messages the mailbox has.
    #[arg(long, short = 'n', default_value_t = 10_000)]
    messages: u32,
    /// The PRNG seed of the mailbox (decimal, or hexadecimal with 0x;
    /// default 0x0fac7e0be4c42026).
    #[arg(long, value_parser = parse_seed)]
    seed: Option<u64>,
    /// The clients to run (comma-separated); default: every one that fits
    /// the mode.
    #[arg(long, value_enum, value_delimiter = ',')]
    tools: Vec<Tool>,
    /// Every client over implicit TLS (IMAPS, POP3S) trusting the test CA,
    /// instead of plain connections.
    #[arg(long)]
    tls: bool,
    /// facteurd's log filter (RUST_LOG); `debug` shows where the time goes.
    #[arg(long, default_value = "info")]
    facteurd_log: String,
    /// The getmail6 program. Debian 12's getmail6 6.18 loses deliveries to
    /// a SIGCHLD race (getmail6 issues #52, #226) and stops after a 60 s
    /// wait; 6.19 and later (`pip install getmail6` in a venv) work. Given,
    /// getmail joins the default clients.
    #[arg(long)]
    getmail: Option<PathBuf>,
    /// Extra environment for facteurd, KEY=VALUE (repeatable): for
    /// diagnosis, such as MALLOC_ARENA_MAX=1. Recorded in the report.
    #[arg(long = "facteurd-env", value_parser = parse_env)]
    facteurd_env: Vec<(String, String)>,
    /// Where the JSON report and the logs go (default: <target>/bench-results).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The limit for one client, in seconds.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
    /// facteurd fails when its message count has not moved for this many
    /// seconds.
    #[arg(long, default_value_t = 120)]
    stall: u64,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

fn parse_seed(s: &str) -> Result<u64, String> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => s.replace('_', "").parse(),
    }
    .map_err(|e| format!("not a seed: {e}"))
}

fn main() -> ExitCode {
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("facteur-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The selected clients of one protocol.
fn selected(args: &Args, protocol: &str) -> Vec<Tool> {
    let all: &[Tool] = match protocol {
        "imap" => &[Tool::Facteurd, Tool::Mbsync],
        _ => &[
            Tool::Facteurd,
            Tool::Fetchmail,
            Tool::FetchmailBsmtp,
            Tool::Getmail,
        ],
    };
    all.iter()
        .copied()
        .filter(|t| {
            if args.tools.is_empty() {
                *t != Tool::Getmail || args.getmail.is_some()
            } else {
                args.tools.contains(t)
            }
        })
        .collect()
}

/// Fail early, with the packages to install, when a client is missing.
fn preflight(tools: &[Tool], facteurd: &std::path::Path, getmail: &std::path::Path) -> Result<()> {
    let mut missing: Vec<&str> = Vec::new();
    let have = |p: &str| std::path::Path::new(p).exists();
    let needs: &[(&str, &str)] = &[
        (
            "/usr/sbin/dovecot",
            "dovecot-imapd dovecot-pop3d dovecot-lmtpd",
        ),
        ("/usr/bin/doveadm", "dovecot-core"),
        ("/usr/bin/time", "time"),
    ];
    for (path, pkg) in needs {
        if !have(path) {
            missing.push(pkg);
        }
    }
    for t in tools {
        let (path, pkg) = match t {
            Tool::Facteurd => ("/usr/bin/dbus-daemon", "dbus-daemon"),
            Tool::Mbsync => ("/usr/bin/mbsync", "isync"),
            Tool::Fetchmail | Tool::FetchmailBsmtp => ("/usr/bin/fetchmail", "fetchmail"),
            Tool::Getmail => (getmail.to_str().unwrap_or_default(), "getmail6"),
        };
        if !have(path) && !missing.contains(&pkg) {
            missing.push(pkg);
        }
    }
    if !missing.is_empty() {
        bail!(
            "missing programs: install them with `apt-get install {}` (or leave a client out with --tools)",
            missing.join(" ")
        );
    }
    if tools.contains(&Tool::Facteurd) && !facteurd.exists() {
        bail!(
            "{} does not exist: build it first with `cargo build --release -p facteurd`",
            facteurd.display()
        );
    }
    Ok(())
}

/// A command's first line of output, or `unknown`.
pub fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let mut text = facteur_tests::text(&o.stdout);
            text.push_str(&facteur_tests::text(&o.stderr));
            text.lines().next().unwrap_or_default().trim().to_owned()
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The workspace commit, `-dirty` when the tree has changes.
fn commit() -> String {
    let root = facteur_tests::repo_root();
    let root = root.display().to_string();
    let head = first_line("git", &["-C", &root, "rev-parse", "--short=12", "HEAD"]);
    let dirty = Command::new("git")
        .args(["-C", &root, "status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty {
        format!("{head}-dirty")
    } else {
        head
    }
}

/// A binary's path, size and modification time.
fn binary_identity(path: &std::path::Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!(
            "{}, {} bytes, built {}",
            path.display(),
            m.len(),
            m.modified()
                .map(report::utc_at)
                .unwrap_or_else(|_| "at an unknown time".into())
        ),
        Err(e) => format!("{}: {e}", path.display()),
    }
}

/// CPU model, cores, memory and kernel.
fn machine() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim())
        })
        .unwrap_or("unknown");
    m.insert("cpu".into(), model.to_owned());
    m.insert(
        "cores".into(),
        std::thread::available_parallelism()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "unknown".into()),
    );
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    m.insert("memory".into(), mem);
    m.insert("kernel".into(), first_line("uname", &["-r"]));
    m
}

fn real_main() -> Result<bool> {
    let args = Args::parse();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let protocols: &[&'static str] = match args.mode {
        Mode::Imap => &["imap"],
        Mode::Pop3 => &["pop3"],
        Mode::All => &["imap", "pop3"],
    };
    // Each run alternates the order of the clients, so none is always
    // first (on a cold server) or always last.
    let mut plan: Vec<(u32, &'static str, Tool)> = Vec::new();
    for run in 1..=args.runs {
        for p in protocols {
            let mut tools = selected(&args, p);
            if run % 2 == 0 {
                tools.reverse();
            }
            plan.extend(tools.into_iter().map(|t| (run, *p, t)));
        }
    }
    if plan.is_empty() {
        bail!("--tools left nothing to run for this mode");
    }
    let profile = facteur_tests::profile_dir();
    let facteurd_bin = profile.join("facteurd");
    let tools: Vec<Tool> = plan.iter().map(|(_, _, t)| *t).collect();
    let getmail = args
        .getmail
        .clone()
        .unwrap_or_else(|| PathBuf::from("/usr/bin/getmail"));
    preflight(&tools, &facteurd_bin, &getmail)?;
    if profile.file_name().is_some_and(|n| n != "release") {
        eprintln!(
            "warning: this is a {} build: facteurd is {}; run with `cargo run --release` for real figures",
            profile
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            facteurd_bin.display()
        );
    }

    let date = report::utc_now();
    let mode = format!("{:?}", args.mode).to_lowercase();
    let out_dir = match &args.out {
        Some(d) => d.clone(),
        None => profile
            .parent()
            .map(|t| t.join("bench-results"))
            .unwrap_or_else(|| PathBuf::from("bench-results")),
    };
    let stem = format!("{}-{mode}-{}", date.replace(':', ""), args.messages);
    let log_dir = out_dir.join(&stem);
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("Cannot create {}", log_dir.display()))?;

    eprintln!("Starting Dovecot…");
    let dovecot = Dovecot::start(DovecotOptions {
        tls: if args.tls {
            ServerTls::CaSigned
        } else {
            ServerTls::Off
        },
        ..DovecotOptions::default()
    });
    let mailboxes: Vec<(u32, &'static str, Tool, Mailbox)> = plan
        .iter()
        .map(|(run, p, t)| {
            let name = format!("{t:?}").to_lowercase();
            let mb = Mailbox {
                user: format!("{p}-{name}-{run}@bench.test"),
                password: format!("bench-{name}-password"),
                layout: if *p == "imap" {
                    Layout::Folders
                } else {
                    Layout::InboxOnly
                },
            };
            (*run, *p, *t, mb)
        })
        .collect();
    let seed = args.seed.unwrap_or(corpus::DEFAULT_SEED);
    let corpus = Corpus {
        seed,
        count: args.messages,
    };
    eprintln!(
        "Generating {} messages (seed {:#x}) for {} mailbox(es)…",
        args.messages,
        seed,
        mailboxes.len()
    );
    let all: Vec<Mailbox> = mailboxes.iter().map(|(_, _, _, m)| m.clone()).collect();
    let loaded = load::load(&dovecot, &corpus, &all)?;
    eprintln!(
        "Loaded {} messages, {:.1} MiB, digest {:016x}, in {:.1} s: {:?}",
        args.messages,
        report::mib(loaded.raw_bytes),
        loaded.digest,
        loaded.seconds,
        loaded.per_folder
    );

    let bus = tools.contains(&Tool::Facteurd).then(Bus::start);
    let ctx = Ctx {
        dovecot: &dovecot,
        tls: args.tls,
        expected: args.messages,
        raw_bytes: loaded.raw_bytes,
        log_dir: log_dir.clone(),
        timeout: Duration::from_secs(args.timeout),
        stall: Duration::from_secs(args.stall),
        facteurd_log: args.facteurd_log.clone(),
        facteurd_env: args.facteurd_env.clone(),
        facteurd_wrapper: args
            .facteurd_wrapper
            .as_deref()
            .map(|w| w.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        commit: commit(),
        getmail,
    };
    let mut rows: Vec<Row> = Vec::new();
    for (run, protocol, tool, mb) in &mailboxes {
        // Not timed: flush what loading or the previous client wrote.
        measure::sync_disks()?;
        eprintln!("Running {tool:?} ({protocol}, run {run}/{})…", args.runs);
        let mut row = match tool {
            Tool::Facteurd => match &bus {
                Some(bus) => run::facteurd(&ctx, bus, protocol, mb),
                None => bail!("no bus for facteurd"),
            },
            Tool::Mbsync => run::mbsync(&ctx, mb),
            Tool::Fetchmail => run::fetchmail(&ctx, mb, FetchmailSink::Maildir),
            Tool::FetchmailBsmtp => run::fetchmail(&ctx, mb, FetchmailSink::Bsmtp),
            Tool::Getmail => run::getmail(&ctx, mb),
        };
        row.run = *run;
        eprint!("{}", report::table(std::slice::from_ref(&row)));
        rows.push(row);
    }

    let ok = rows.iter().all(|r| r.ok);
    let summary = if args.runs > 1 {
        report::summarize(&rows)
    } else {
        Vec::new()
    };
    let report = Report {
        date,
        command,
        commit: ctx.commit.clone(),
        facteurd_binary: binary_identity(&facteurd_bin),
        machine: machine(),
        dovecot: first_line("/usr/sbin/dovecot", &["--version"]),
        tls: args.tls,
        facteurd_log_level: args.facteurd_log.clone(),
        facteurd_env: args
            .facteurd_env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        corpus: CorpusInfo {
            seed: format!("{seed:#x}"),
            messages: args.messages,
            raw_bytes: loaded.raw_bytes,
            digest: format!("{:016x}", loaded.digest),
            per_folder: loaded.per_folder.clone(),
            load_s: loaded.seconds,
        },
        rows,
        summary,
    };
    let json = out_dir.join(format!("{stem}.json"));
    report::write_json(&report, &json)?;
    println!();
    print!("{}", report::table(&report.rows));
    let headline = if report.summary.is_empty() {
        &report.rows
    } else {
        println!("\nmedians of {} runs (peak RSS: the highest):", args.runs);
        print!("{}", report::table(&report.summary));
        &report.summary
    };
    println!();
    print!("{}", report::verdicts(headline));
    println!(
        "\nmailbox: {} messages, {:.1} MiB raw, seed {}, digest {}",
        report.corpus.messages,
        report::mib(report.corpus.raw_bytes),
        report.corpus.seed,
        report.corpus.digest
    );
    println!("facteurd: {}", report.facteurd_binary);
    println!("report: {}", json.display());
    println!("logs:   {}", log_dir.display());
    Ok(ok)
}

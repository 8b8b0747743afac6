//! # The systemd user unit and the D-Bus activation file
//!
//! `systemd-analyze verify --user` exits 0 even for unknown keys, so the unit
//! (alone, and with the optional hardening drop-in) must produce no output
//! at all. The hardening score must not regress. The unit's
//! `SystemCallFilter=` must allow every system call facteurd really makes
//! (traced with strace through start, account changes with both secret
//! stores, and SIGTERM). The activation file, used as shipped, must start
//! facteurd on a private bus when a client calls it.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use facteur_dbus::names;
use facteur_tests::*;
use tempfile::TempDir;

fn unit_path() -> PathBuf {
    repo_root().join("systemd/facteurd.service")
}

fn dropin_path() -> PathBuf {
    repo_root().join("systemd/facteurd.service.d/hardening.conf")
}

fn activation_path() -> PathBuf {
    repo_root().join("systemd/org.facteur.Facteur1.service")
}

/// A HOME where `~/.local/bin/facteurd` is the built binary (as the README's
/// install makes it), a private runtime dir, and a units dir.
struct UnitEnv {
    dir: TempDir,
}

impl UnitEnv {
    fn new() -> UnitEnv {
        let dir = short_tempdir("facteur-unit-");
        let bin = dir.path().join("home/.local/bin");
        fs::create_dir_all(&bin).expect("create ~/.local/bin");
        symlink(workspace_binary("facteurd"), bin.join("facteurd")).expect("link facteurd");
        private_dir(&dir.path().join("run"));
        fs::create_dir_all(dir.path().join("units")).expect("create the units dir");
        UnitEnv { dir }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Copy the unit (and the drop-in) into the units dir; returns the unit.
    fn install(&self, with_dropin: bool) -> PathBuf {
        let units = self.dir.path().join("units");
        let unit = units.join("facteurd.service");
        fs::copy(unit_path(), &unit).expect("copy the unit");
        if with_dropin {
            let d = units.join("facteurd.service.d");
            fs::create_dir_all(&d).expect("create the drop-in dir");
            fs::copy(dropin_path(), d.join("hardening.conf")).expect("copy the drop-in");
        }
        unit
    }

    fn analyze(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(tool("systemd-analyze", "systemd"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env("XDG_CONFIG_HOME", self.home().join(".config"))
            .env("XDG_DATA_HOME", self.home().join(".local/share"))
            .env("SYSTEMD_COLORS", "0")
            .env("SYSTEMD_PAGER", "");
        cmd
    }

    /// `systemd-analyze verify --user --man=no UNIT`: (exit ok, output).
    fn verify(&self, unit: &Path) -> (bool, String) {
        let out = run(
            &mut self.analyze(&["verify", "--user", "--man=no", &unit.display().to_string()]),
            None,
        );
        (
            out.status.success(),
            format!("{}{}", text(&out.stdout), text(&out.stderr)),
        )
    }
}

fn assert_verifies_silently(with_dropin: bool) {
    let env = UnitEnv::new();
    let unit = env.install(with_dropin);
    let (ok, output) = env.verify(&unit);
    assert!(
        ok && output.trim().is_empty(),
        "systemd-analyze verify --user --man=no {} (drop-in: {with_dropin}) is not silent \
         (exit ok: {ok}):\n{output}",
        unit.display()
    );
}

#[test]
fn the_unit_verifies_without_any_output() {
    assert_verifies_silently(false);
}

#[test]
fn the_unit_with_the_hardening_dropin_verifies_without_any_output() {
    assert_verifies_silently(true);
}

#[test]
fn verify_does_catch_mistakes() {
    // The check above is only worth something if verify speaks up.
    let env = UnitEnv::new();
    let unit = env.install(true);
    let d = unit.with_file_name("facteurd.service.d");
    fs::write(d.join("zz-bogus.conf"), "[Service]\nBogusKey=1\n").expect("write a bad drop-in");
    let (_, output) = env.verify(&unit);
    assert!(
        output.contains("BogusKey"),
        "verify missed an unknown key:\n{output}"
    );

    let env = UnitEnv::new();
    let unit = env.install(false);
    fs::remove_file(env.home().join(".local/bin/facteurd")).expect("unlink");
    let (ok, output) = env.verify(&unit);
    assert!(
        !ok && !output.trim().is_empty(),
        "verify missed a missing ExecStart binary"
    );
}

#[test]
fn the_hardening_score_does_not_regress() {
    // Exposure (0 = locked down, 10 = none) as systemd 252 rates it: the
    // unit alone scored 6.4, with the drop-in 4.0 (docs/ecosystem notes).
    for (with_dropin, threshold) in [(false, 65), (true, 45)] {
        let env = UnitEnv::new();
        let unit = env.install(with_dropin);
        let out = run(
            &mut env.analyze(&[
                "security",
                "--user",
                "--offline=true",
                &format!("--threshold={threshold}"),
                &unit.display().to_string(),
            ]),
            None,
        );
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        let overall = all
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or("(no overall line)");
        assert!(
            out.status.success(),
            "exposure above {threshold} (drop-in: {with_dropin}): {overall}"
        );
    }
}

/// `KEY=VALUE` lines of a unit-style file (comments and sections dropped).
fn entries(path: &Path) -> Vec<(String, String)> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn values<'a>(entries: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    entries
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn the_unit_says_what_the_design_says() {
    let unit = entries(&unit_path());
    let one = |k: &str| -> &str {
        let v = values(&unit, k);
        assert_eq!(v.len(), 1, "{k}= should be set once in the unit: {v:?}");
        v[0]
    };
    assert_eq!(one("Type"), "notify");
    assert_eq!(one("BusName"), names::BUS_NAME);
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("WantedBy"), "default.target");
    assert_eq!(one("UMask"), "0077");
    assert!(
        one("ExecStart").ends_with("/.local/bin/facteurd"),
        "ExecStart differs from the README's install"
    );
    let families: BTreeSet<&str> = one("RestrictAddressFamilies").split_whitespace().collect();
    for f in ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"] {
        assert!(families.contains(f), "RestrictAddressFamilies lacks {f}");
    }
    // Namespace-based options stop a user unit where user namespaces are
    // blocked: they belong in the drop-in only. And nothing cuts the network.
    for k in [
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "PrivateUsers",
        "PrivateNetwork",
        "ProtectKernelTunables",
        "ProtectHostname",
        "ProtectClock",
        "IPAddressDeny",
    ] {
        assert!(
            values(&unit, k).is_empty(),
            "{k}= must not be in the default unit"
        );
    }
    let dropin = entries(&dropin_path());
    for k in ["ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateUsers"] {
        assert_eq!(values(&dropin, k).len(), 1, "{k}= missing from the drop-in");
    }
    assert!(values(&dropin, "PrivateNetwork").is_empty());
    let rw = values(&dropin, "ReadWritePaths").join(" ");
    for dir in ["%h/.config/facteur", "%h/.local/share/facteur"] {
        assert!(
            rw.contains(dir),
            "the drop-in does not let facteurd write {dir}"
        );
    }

    let act = entries(&activation_path());
    assert_eq!(values(&act, "Name"), vec![names::BUS_NAME]);
    assert_eq!(values(&act, "SystemdService"), vec!["facteurd.service"]);
    let exec = values(&act, "Exec");
    assert_eq!(exec.len(), 1);
    assert!(
        exec[0].contains(".local/bin/facteurd"),
        "Exec= differs from the unit: {}",
        exec[0]
    );
}

/// The allowed system calls of a list of `SystemCallFilter=` values, as
/// systemd resolves them: the union of the allow-lists minus the deny-lists
/// (`~…`).
fn allowed_syscalls(env: &UnitEnv, filters: &[&str]) -> BTreeSet<String> {
    let mut allow = BTreeSet::new();
    let mut deny = BTreeSet::new();
    for f in filters {
        let (target, list) = match f.strip_prefix('~') {
            Some(rest) => (&mut deny, rest),
            None => (&mut allow, *f),
        };
        for item in list.split_whitespace() {
            target.extend(expand_syscall_set(env, item));
        }
    }
    allow.difference(&deny).cloned().collect()
}

fn expand_syscall_set(env: &UnitEnv, item: &str) -> BTreeSet<String> {
    if !item.starts_with('@') {
        return BTreeSet::from([item.to_owned()]);
    }
    let out = run(&mut env.analyze(&["syscall-filter", item]), None);
    assert!(
        out.status.success(),
        "systemd-analyze syscall-filter {item} failed"
    );
    let mut set = BTreeSet::new();
    for line in text(&out.stdout).lines().skip(1) {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if t.starts_with('@') {
            set.extend(expand_syscall_set(env, t));
        } else {
            set.insert(t.to_owned());
        }
    }
    set
}

/// The system call names in an `strace -c` summary.
fn traced_syscalls(summary: &str) -> BTreeSet<String> {
    summary
        .lines()
        .filter(|l| !l.starts_with('%') && !l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().last())
        .filter(|n| {
            *n != "total"
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

fn exercise(bus: &Bus, email: &str) {
    // A password and a loopback server on a closed port: the daemon tries to
    // connect, so the trace covers the sync engine's start too.
    let path = bus
        .create_account(&Settings::unreachable(email).s("incoming-password", &unique_secret("sc")))
        .expect("create an account");
    bus.update_account(
        &path,
        &Settings::new()
            .s("name", "Traced")
            .s("incoming-password", "x2"),
    )
    .expect("update the account");
    let _ = bus.list_accounts();
    // Let the engine try (and fail) to reach the server once.
    std::thread::sleep(std::time::Duration::from_millis(300));
    bus.delete_account(&path).expect("delete the account");
}

#[test]
fn the_syscall_filter_allows_every_call_facteurd_makes() {
    let strace = tool("strace", "strace");
    let env = UnitEnv::new();
    let unit = entries(&unit_path());
    let filters = values(&unit, "SystemCallFilter");
    if filters.is_empty() {
        return; // No filter, nothing to check.
    }
    let allowed = allowed_syscalls(&env, &filters);
    assert!(
        allowed.contains("read") && !allowed.contains("reboot"),
        "the filter expansion looks wrong"
    );

    let mut used = BTreeSet::new();
    for with_keyring in [true, false] {
        let bus = Bus::start();
        let _keyring = with_keyring.then(|| Keyring::start(&bus));
        let mut d = Facteurd::new(&bus);
        let summary = d.home().join("strace.txt");
        let summary_arg = summary.display().to_string();
        d.wrap(&strace, &["-f", "-c", "-o", &summary_arg]);
        d.launch();
        exercise(&bus, "trace@example.org");
        // A second start reads what the first wrote (index, settings, secrets).
        let status = d.stop();
        assert_eq!(exit_code(status), 0, "log:\n{}", d.log());
        d.launch();
        exercise(&bus, "trace2@example.org");
        let status = d.stop();
        assert_eq!(exit_code(status), 0, "log:\n{}", d.log());
        let s = fs::read_to_string(&summary).unwrap_or_else(|e| {
            panic!(
                "no strace summary ({e}); is ptrace allowed here? log:\n{}",
                d.log()
            )
        });
        used.extend(traced_syscalls(&s));
    }
    assert!(
        used.len() > 20 && used.contains("openat"),
        "the trace looks empty: {used:?}"
    );
    let refused: Vec<&String> = used.difference(&allowed).collect();
    assert!(
        refused.is_empty(),
        "facteurd makes system calls that SystemCallFilter= {filters:?} refuses: {refused:?}"
    );
}

/// Kills a process by pid on drop (an activated facteurd is the bus's
/// child, not ours).
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = Command::new("/bin/sh")
                .args(["-c", &format!("kill -s KILL {pid} 2>/dev/null")])
                .status();
        }
    }
}

#[test]
fn the_activation_file_starts_facteurd_on_first_call() {
    let env = UnitEnv::new();
    let home = env.home();
    let config = home.join(".config");
    let data = home.join(".local/share");
    let service = fs::read_to_string(activation_path()).expect("read the activation file");
    let bus = Bus::start_with(BusOptions {
        services: vec![("org.facteur.Facteur1.service".into(), service)],
        env: vec![
            ("HOME".into(), home.clone().into()),
            ("XDG_CONFIG_HOME".into(), config.clone().into()),
            ("XDG_DATA_HOME".into(), data.clone().into()),
            ("XDG_RUNTIME_DIR".into(), env.dir.path().join("run").into()),
        ],
    });
    assert!(!bus.name_has_owner(names::BUS_NAME));

    // Any client call starts it: here plain gdbus.
    let out = bus.gdbus_call(
        names::ROOT_PATH,
        "org.facteur.Facteur1.Manager.ListAccounts",
        &[],
    );
    let mut guard = KillOnDrop(bus.name_owner_pid(names::BUS_NAME));
    assert!(
        out.status.success(),
        "activation failed: {}{}\nbus log:\n{}",
        text(&out.stdout),
        text(&out.stderr),
        bus.log()
    );
    assert_eq!(text(&out.stdout).trim(), "(@ao [],)");
    assert!(bus.name_has_owner(names::BUS_NAME));
    let pid = guard.0.expect("the activated daemon owns the name");

    // It uses the XDG directories of the environment it was started in.
    let path = bus
        .create_account(&Settings::minimal("act@example.org", "imap.example.org"))
        .expect("create an account on the activated daemon");
    assert!(
        config
            .join("facteur/accounts/act_example_org.json")
            .is_file(),
        "the settings are not under $XDG_CONFIG_HOME/facteur: {:?}",
        snapshot(&home).keys().collect::<Vec<_>>()
    );
    assert!(
        data.join("facteur").is_dir(),
        "no data dir under $XDG_DATA_HOME/facteur"
    );
    assert_eq!(bus.list_accounts(), vec![path]);

    send_signal(pid, "TERM");
    assert!(
        bus.wait_for_name(names::BUS_NAME, false, DEADLINE),
        "the activated facteurd did not release its name on SIGTERM"
    );
    guard.0 = None;
}

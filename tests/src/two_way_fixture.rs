//! # Two-way sync through the contract: the shared setup
//!
//! What `two_way_dbus.rs` and `ctl_two_way.rs` both need: a Dovecot with
//! one IMAP user and one POP3 user, a facteurd trusting its CA, accounts
//! created and synced over D-Bus, test messages, and readers of message
//! summaries and of the `Messages*` signals. Only setup and reading: what
//! to assert is in the tests.

use std::collections::{BTreeSet, HashMap};

use facteur_dbus::names;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use crate::dovecot::{Dovecot, DovecotOptions};
use crate::{wait_account, Bus, CallError, Facteurd, Settings, Signal, DEADLINE};

/// The IMAP user.
pub const IMAP_USER: &str = "tess@example.test";
/// The POP3 user (a mailbox of its own on the same Dovecot).
pub const POP3_USER: &str = "paul@example.test";
/// Both users' password.
pub const PASSWORD: &str = "two-way pw";

/// A message summary as the contract returns it.
pub type Summary = HashMap<String, OwnedValue>;

/// A Dovecot with [`IMAP_USER`] and [`POP3_USER`].
pub fn dovecot() -> Dovecot {
    let dovecot = Dovecot::start(DovecotOptions::default());
    dovecot.add_user(IMAP_USER, PASSWORD);
    dovecot.add_user(POP3_USER, PASSWORD);
    dovecot
}

/// A facteurd on `bus` trusting the Dovecot's CA, passwords in its file.
pub fn facteurd<'b>(bus: &'b Bus, dovecot: &Dovecot) -> Facteurd<'b> {
    let mut d = Facteurd::new(bus);
    d.env(
        "SSL_CERT_FILE",
        dovecot.ca_cert_path().as_os_str().to_owned(),
    )
    .env("SSL_CERT_DIR", "")
    .arg("--secret-store")
    .arg("file");
    d.launch();
    d
}

/// An RFC 5322 message with this subject (CRLF line ends).
pub fn message(subject: &str) -> Vec<u8> {
    format!(
        "From: Sender <sender@example.test>\r\nTo: tess@example.test\r\n\
         Subject: {subject}\r\nDate: Thu, 01 Jan 2026 10:00:00 +0000\r\n\
         Message-ID: <{}@example.test>\r\n\r\nBody of {subject}.\r\n",
        subject.replace(' ', "-")
    )
    .into_bytes()
}

/// Create the IMAP account (implicit TLS) and wait until its first pass
/// stored `count` messages; its path.
pub fn imap_account(bus: &Bus, d: &Facteurd<'_>, dovecot: &Dovecot, count: u32) -> String {
    let settings = Settings::new()
        .s("email", IMAP_USER)
        .s("incoming-protocol", "imap")
        .s("incoming-host", dovecot.host())
        .q("incoming-port", dovecot.imaps_port())
        .s("incoming-security", "tls")
        .s("incoming-password", PASSWORD);
    let path = bus
        .create_account(&settings)
        .unwrap_or_else(|e| panic!("CreateAccount failed: {e}\n{}", d.log()));
    synced(bus, d, &path, count);
    path
}

/// Create the POP3 account (implicit TLS, mail left on the server) and
/// wait until it stored `count` messages; its path.
pub fn pop3_account(bus: &Bus, d: &Facteurd<'_>, dovecot: &Dovecot, count: u32) -> String {
    let settings = Settings::new()
        .s("email", POP3_USER)
        .s("incoming-protocol", "pop3")
        .s("incoming-host", dovecot.host())
        .q("incoming-port", dovecot.pop3s_port())
        .s("incoming-security", "tls")
        .s("incoming-password", PASSWORD);
    let path = bus
        .create_account(&settings)
        .unwrap_or_else(|e| panic!("CreateAccount failed: {e}\n{}", d.log()));
    synced(bus, d, &path, count);
    path
}

/// Wait until the account finished a pass with `count` messages stored.
pub fn synced(bus: &Bus, d: &Facteurd<'_>, path: &str, count: u32) {
    wait_account(
        bus,
        d,
        path,
        &format!("synced with {count} messages"),
        DEADLINE,
        |p| p.str("State") == "idle" && p.u64("LastSync") > 0 && p.u32("MessageCount") == count,
    );
}

/// `ListMessages(folder, 0, 1000)`.
pub fn list(bus: &Bus, path: &str, folder: &str) -> Result<Vec<Summary>, CallError> {
    let reply = bus.call_facteur(
        path,
        names::ACCOUNT_INTERFACE,
        "ListMessages",
        &(folder, 0u32, 1000u32),
    )?;
    Ok(reply
        .body()
        .deserialize()
        .expect("ListMessages returns aa{sv}"))
}

/// `ListFolders()`, the names only.
pub fn folder_names(bus: &Bus, path: &str) -> BTreeSet<String> {
    let reply = bus
        .call_facteur(path, names::ACCOUNT_INTERFACE, "ListFolders", &())
        .expect("ListFolders answers");
    let list: Vec<Summary> = reply.body().deserialize().expect("aa{sv}");
    list.iter().map(|f| string(f, "name")).collect()
}

/// The summary whose subject is `subject` in a list; fails the test when
/// there is none.
pub fn by_subject<'a>(list: &'a [Summary], subject: &str) -> &'a Summary {
    list.iter()
        .find(|m| string(m, "subject") == subject)
        .unwrap_or_else(|| {
            let subjects: Vec<String> = list.iter().map(|m| string(m, "subject")).collect();
            panic!("no message {subject:?} among {subjects:?}")
        })
}

/// A string entry of a dictionary (an object path reads as its text).
pub fn string(d: &Summary, key: &str) -> String {
    let v = d
        .get(key)
        .unwrap_or_else(|| panic!("no key {key} in {d:?}"));
    if let Ok(p) = OwnedObjectPath::try_from(v.try_clone().expect("clone")) {
        return p.as_str().to_owned();
    }
    String::try_from(v.try_clone().expect("clone"))
        .unwrap_or_else(|_| panic!("{key} is not a string: {v:?}"))
}

/// A boolean entry of a dictionary.
pub fn flag(d: &Summary, key: &str) -> bool {
    let v = d
        .get(key)
        .unwrap_or_else(|| panic!("no key {key} in {d:?}"));
    bool::try_from(v.try_clone().expect("clone"))
        .unwrap_or_else(|_| panic!("{key} is not a boolean: {v:?}"))
}

/// The `keywords` of a summary.
pub fn keywords(d: &Summary) -> Vec<String> {
    let v = d
        .get("keywords")
        .unwrap_or_else(|| panic!("no keywords in {d:?}"));
    Vec::<String>::try_from(v.try_clone().expect("clone"))
        .unwrap_or_else(|_| panic!("keywords is not as: {v:?}"))
}

/// `Manager.SetFlags`.
pub fn set_flags(bus: &Bus, ids: &[&str], add: &[&str], remove: &[&str]) -> Result<(), CallError> {
    bus.call_facteur(
        names::ROOT_PATH,
        names::MANAGER_INTERFACE,
        "SetFlags",
        &(ids, add, remove),
    )
    .map(drop)
}

/// `Manager.MoveMessages` (or `CopyMessages` when `copy`) into `folder` of
/// the account at `account` (any text: a bad path is the test's point).
pub fn move_messages(
    bus: &Bus,
    ids: &[&str],
    account: &str,
    folder: &str,
    copy: bool,
) -> Result<(), CallError> {
    let method = if copy { "CopyMessages" } else { "MoveMessages" };
    let path = zbus::zvariant::ObjectPath::try_from(account).expect("a valid object path");
    bus.call_facteur(
        names::ROOT_PATH,
        names::MANAGER_INTERFACE,
        method,
        &(ids, path, folder),
    )
    .map(drop)
}

/// `Manager.GetSummaries`.
pub fn get_summaries(bus: &Bus, ids: &[&str]) -> Result<Vec<Summary>, CallError> {
    let reply = bus.call_facteur(
        names::ROOT_PATH,
        names::MANAGER_INTERFACE,
        "GetSummaries",
        &(ids,),
    )?;
    Ok(reply
        .body()
        .deserialize()
        .expect("GetSummaries returns aa{sv}"))
}

/// A method of the Account interface with a body.
pub fn account_call<B>(bus: &Bus, path: &str, method: &str, body: &B) -> Result<(), CallError>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
{
    bus.call_facteur(path, names::ACCOUNT_INTERFACE, method, body)
        .map(drop)
}

/// `(account path, folder, ids)` of a `MessagesAdded`, `MessagesChanged`
/// or `MessagesRemoved` (`member`) signal of the Manager.
pub fn messages_signal(s: &Signal, member: &str) -> Option<(String, String, Vec<String>)> {
    if s.interface != names::MANAGER_INTERFACE || s.member != member {
        return None;
    }
    let (account, folder, ids): (OwnedObjectPath, String, Vec<String>) =
        s.message.body().deserialize().ok()?;
    Some((account.as_str().to_owned(), folder, ids))
}

/// A real `dbus-monitor` on the test bus, watching the Manager's signals:
/// an outside observer of what facteurd emits. Stopped on drop.
pub struct Monitor {
    child: std::process::Child,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// One signal as `dbus-monitor` printed it: its member and the values of
/// its arguments (object paths and strings, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitored {
    /// `MessagesChanged`, …
    pub member: String,
    /// The quoted values printed below it.
    pub values: Vec<String>,
}

impl Monitor {
    /// Start it and wait until it is monitoring (it prints the loss of its
    /// own name when it becomes a monitor).
    pub fn start(bus: &Bus) -> Monitor {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let out = dir.path().join("monitor.txt");
        let file = std::fs::File::create(&out).expect("create the monitor's output");
        let child = std::process::Command::new(crate::tool("dbus-monitor", "dbus-bin"))
            .args([
                "--address",
                bus.address(),
                &format!("type='signal',interface='{}'", names::MANAGER_INTERFACE),
            ])
            .stdout(file)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start dbus-monitor");
        let m = Monitor {
            child,
            out,
            _dir: dir,
        };
        let ready = crate::wait_until(DEADLINE, || {
            m.text().contains("member=NameLost").then_some(())
        });
        assert!(ready.is_some(), "dbus-monitor did not start: {}", m.text());
        m
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Every Manager signal printed so far.
    pub fn signals(&self) -> Vec<Monitored> {
        let mut out: Vec<Monitored> = Vec::new();
        for line in self.text().lines() {
            if line.starts_with("signal ") {
                let member = line
                    .split("member=")
                    .nth(1)
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                out.push(Monitored {
                    member,
                    values: Vec::new(),
                });
            } else if let (Some(last), Some(start)) = (out.last_mut(), line.find('"')) {
                let quoted = &line[start + 1..];
                if let Some(end) = quoted.rfind('"') {
                    last.values.push(quoted[..end].to_owned());
                }
            }
        }
        out.retain(|s| s.member != "NameAcquired" && s.member != "NameLost");
        out
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        // The child this monitor started, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! # IMAP sync against a real Dovecot
//!
//! End-to-end tests of issue 3: each test starts its own private bus, its
//! own Dovecot (free loopback ports, a certificate from a throwaway CA that
//! facteurd trusts through `SSL_CERT_FILE`) and its own facteurd, creates
//! IMAP accounts over D-Bus and checks what a client of the contract sees:
//!
//! - the first sync (counts, folders and roles, bodies byte for byte equal
//!   to what Dovecot serves), IDLE push, flags and expunges, UIDVALIDITY
//!   changes, a Dovecot restart with mail delivered while it was down;
//! - non-ASCII folder names, a 5 MB message, malformed headers;
//! - the desktop notification (a listener owning
//!   `org.freedesktop.Notifications` on the private bus), the Unified folder
//!   across accounts, `DeleteMessage`, a facteurd restart;
//! - STARTTLS refused when not offered, a self-signed certificate refused
//!   and then accepted with `accept-invalid-certs`;
//! - `facteurctl sync`, `messages` and `show`.
//!
//! Every wait polls D-Bus (or Dovecot) with a deadline; nothing sleeps for a
//! fixed time. The harness (`facteur_tests`) starts and stops the parts;
//! what is asserted is here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use facteur_dbus::names;
use facteur_tests::dovecot::{Dovecot, DovecotOptions, ServerTls};
use facteur_tests::notifications::Notifications;
/// The harness's wait, with an explicit limit (a local [`wait_account`]
/// uses the default one).
use facteur_tests::wait_account as wait_account_within;
use facteur_tests::*;
use serde_json::Value as Json;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

/// The first user of every Dovecot.
const USER: &str = "alice@example.test";
/// Alice's password: a space and non-ASCII, so a login that quotes it
/// wrongly fails.
const PASSWORD: &str = "pä ss-alice";
/// The name of Alice's account (shown in notifications).
const NAME: &str = "Alice Test";
/// The folder besides INBOX that most tests use.
const WORK: &str = "Work";
/// How long a message delivered to an idling INBOX may take to be announced.
/// Generous: this is a correctness test, speed is the benchmark's business.
const PUSH_BOUND: Duration = Duration::from_secs(5);
/// 2026-01-01T00:00:00Z: the base of the Date headers of test messages.
const T0: i64 = 1_767_225_600;

// ---------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------

/// A Dovecot with Alice as a user. `verbose_proctitle` shows the running
/// IMAP command in the process title, so a test can wait until facteurd is
/// really in IDLE.
fn dovecot(options: DovecotOptions) -> Dovecot {
    let mut options = options;
    options.extra_config.push_str("\nverbose_proctitle = yes\n");
    let dovecot = Dovecot::start(options);
    dovecot.add_user(USER, PASSWORD);
    dovecot
}

/// A facteurd on `bus` that trusts the Dovecot's test CA and keeps
/// passwords in its file store (no keyring needed).
fn facteurd<'b>(bus: &'b Bus, dovecot: &Dovecot) -> Facteurd<'b> {
    let mut d = Facteurd::new(bus);
    // The test CA is the only root: an SSL_CERT_DIR inherited from the
    // environment (often /etc/ssl/certs, with Debian's snakeoil certificate
    // for "localhost") would be read as well.
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

/// Settings of an IMAP account for `user` on `dovecot` with `security`
/// (`tls` → the IMAPS port, else the plain port).
fn imap_settings(dovecot: &Dovecot, user: &str, password: &str, security: &str) -> Settings {
    let port = if security == "tls" {
        dovecot.imaps_port()
    } else {
        dovecot.imap_port()
    };
    Settings::new()
        .s("name", NAME)
        .s("email", user)
        .s("incoming-protocol", "imap")
        .s("incoming-host", dovecot.host())
        .q("incoming-port", port)
        .s("incoming-security", security)
        .s("incoming-login", user)
        .s("incoming-password", password)
}

/// Create Alice's account (implicit TLS) and return its object path.
fn create_alice(bus: &Bus, dovecot: &Dovecot) -> String {
    create(bus, &imap_settings(dovecot, USER, PASSWORD, "tls"))
}

/// CreateAccount that must succeed; the account's path.
fn create(bus: &Bus, settings: &Settings) -> String {
    bus.create_account(settings)
        .unwrap_or_else(|e| panic!("CreateAccount failed: {e}"))
}

/// The last `n` lines of facteurd's log that say something about accounts
/// (sled's own debug lines left out), for failure messages.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains(" DEBUG ") || l.contains("Account") || l.contains("Logged in"))
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Wait until the account's properties satisfy `pred`; fail with the
/// properties and facteurd's log after [`DEADLINE`].
fn wait_account(
    bus: &Bus,
    d: &Facteurd<'_>,
    path: &str,
    what: &str,
    pred: impl Fn(&Props) -> bool,
) -> Props {
    wait_account_within(bus, d, path, what, DEADLINE, pred)
}

/// Wait until the account finished a pass (`idle`, `LastSync` set, no
/// error) with `count` messages stored.
fn wait_synced(bus: &Bus, d: &Facteurd<'_>, path: &str, count: u32) -> Props {
    wait_account(
        bus,
        d,
        path,
        &format!("synced with {count} messages"),
        |p| {
            p.str("State") == "idle"
                && p.u64("LastSync") > 0
                && p.str("LastError").is_empty()
                && p.u32("MessageCount") == count
        },
    )
}

/// Wait until one of `user`'s IMAP sessions on `dovecot` is in IDLE (the
/// process title names the running command).
fn wait_idling(dovecot: &Dovecot, d: &Facteurd<'_>, user: &str) {
    let idling = wait_until(DEADLINE, || {
        dovecot
            .sessions(user)
            .iter()
            .any(|(proto, pid)| {
                proto == "imap"
                    && fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|t| text(&t).contains(" IDLE]"))
            })
            .then_some(())
    });
    assert!(
        idling.is_some(),
        "facteurd never went into IDLE on {user}'s INBOX within {DEADLINE:?}; sessions {:?}\n\
         facteurd log:\n{}",
        dovecot.sessions(user),
        tail(&d.log(), 60)
    );
}

/// How Dovecot logs a connection that ended before any login: "no auth
/// attempts", or, when its auth process was not ready yet, "disconnected
/// before auth was ready" (which one depends on timing).
const NO_LOGIN: &[&str] = &["no auth attempts", "disconnected before auth was ready"];

/// Wait until Dovecot's log, from byte `start` on, contains one of
/// `needles`; returns that part of the log.
fn wait_for_log(dovecot: &Dovecot, start: usize, needles: &[&str]) -> String {
    wait_until(DEADLINE, || {
        let log = dovecot.log();
        let new = log.get(start..).unwrap_or_default().to_owned();
        needles.iter().any(|n| new.contains(n)).then_some(new)
    })
    .unwrap_or_else(|| {
        panic!(
            "Dovecot logged none of {needles:?} within {DEADLINE:?}:\n{}",
            dovecot.log().get(start..).unwrap_or_default()
        )
    })
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// An RFC 5322 date (with weekday) for unix seconds, in UTC.
fn rfc5322_date(t: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day} {} {year} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A well-formed message with CRLF line ends, 8-bit UTF-8 text and a line
/// starting with a dot, dated `date` (unix seconds).
fn mail(to: &str, subject: &str, date: i64) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.test>\r\n\
         To: <{to}>\r\n\
         Subject: {subject}\r\n\
         Date: {}\r\n\
         Message-ID: <{}@example.test>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         Grüße — the text of «{subject}».\r\n\
         .a line that starts with a dot\r\n",
        rfc5322_date(date),
        subject.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    )
    .into_bytes()
}

/// A message to Alice.
fn mail_to_alice(subject: &str, date: i64) -> Vec<u8> {
    mail(USER, subject, date)
}

/// Standard base64 with line breaks every 76 characters.
fn base64_lines(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 4 / 3 + data.len() / 57 * 2 + 4);
    for line in data.chunks(57) {
        out.push_str(&base64(line));
        out.push_str("\r\n");
    }
    out
}

/// Write a message straight into `user`'s INBOX Maildir (`new/`), as a local
/// delivery agent would: works while Dovecot is stopped.
fn deliver_to_maildir(dovecot: &Dovecot, user: &str, raw: &[u8]) {
    let maildir = dovecot.maildir(user);
    let owner = fs::metadata(&maildir)
        .unwrap_or_else(|e| panic!("{} is not there: {e}", maildir.display()));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    let name = format!(
        "{}.M{}P{}.facteur-tests",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id()
    );
    let tmp = maildir.join("tmp").join(&name);
    fs::write(&tmp, raw).expect("write a message into Maildir tmp/");
    std::os::unix::fs::chown(&tmp, Some(owner.uid()), Some(owner.gid()))
        .expect("give the message to the mail user");
    fs::rename(&tmp, maildir.join("new").join(&name)).expect("move the message into new/");
}

/// The number of message files in facteurd's store.
fn message_files(d: &Facteurd<'_>) -> usize {
    snapshot(&d.data_dir().join("messages")).len()
}

// ---------------------------------------------------------------------------
// D-Bus calls
// ---------------------------------------------------------------------------

/// One message summary, as `ListMessages`/`ListUnified` return it.
#[derive(Debug, Clone, PartialEq)]
struct Msg {
    id: String,
    account: String,
    folder: String,
    from: String,
    to: String,
    subject: String,
    date: i64,
    size: u64,
    seen: bool,
    flagged: bool,
    has_attachments: bool,
    message_id: String,
}

impl Msg {
    /// The UIDVALIDITY and UID in the id (`<account>.<folder>.<uidvalidity>.<uid>`).
    fn uidvalidity_uid(&self) -> (u32, u32) {
        let mut parts = self.id.rsplitn(3, '.');
        let uid = parts.next().and_then(|p| p.parse().ok());
        let uidvalidity = parts.next().and_then(|p| p.parse().ok());
        match (uidvalidity, uid) {
            (Some(v), Some(u)) => (v, u),
            _ => panic!("message id {:?} does not end in .UIDVALIDITY.UID", self.id),
        }
    }

    fn uid(&self) -> u32 {
        self.uidvalidity_uid().1
    }
}

fn field<'a>(d: &'a HashMap<String, OwnedValue>, key: &str) -> &'a Value<'static> {
    d.get(key)
        .unwrap_or_else(|| panic!("no {key:?} in {:?}", d.keys().collect::<Vec<_>>()))
}

fn field_str(d: &HashMap<String, OwnedValue>, key: &str) -> String {
    match field(d, key) {
        Value::Str(s) => s.to_string(),
        Value::ObjectPath(p) => p.to_string(),
        other => panic!("{key} is not a string: {other:?}"),
    }
}

fn field_bool(d: &HashMap<String, OwnedValue>, key: &str) -> bool {
    match field(d, key) {
        Value::Bool(b) => *b,
        other => panic!("{key} is not a boolean: {other:?}"),
    }
}

/// Any integer field, widened.
fn field_int(d: &HashMap<String, OwnedValue>, key: &str) -> i128 {
    match field(d, key) {
        Value::U8(v) => (*v).into(),
        Value::U16(v) => (*v).into(),
        Value::U32(v) => (*v).into(),
        Value::U64(v) => (*v).into(),
        Value::I16(v) => (*v).into(),
        Value::I32(v) => (*v).into(),
        Value::I64(v) => (*v).into(),
        other => panic!("{key} is not an integer: {other:?}"),
    }
}

fn msg_of(d: &HashMap<String, OwnedValue>) -> Msg {
    assert!(
        matches!(field(d, "date"), Value::I64(_)),
        "date must be x: {:?}",
        field(d, "date")
    );
    assert!(
        matches!(field(d, "size"), Value::U64(_)),
        "size must be t: {:?}",
        field(d, "size")
    );
    assert!(
        matches!(field(d, "account"), Value::ObjectPath(_)),
        "account must be o: {:?}",
        field(d, "account")
    );
    Msg {
        id: field_str(d, "id"),
        account: field_str(d, "account"),
        folder: field_str(d, "folder"),
        from: field_str(d, "from"),
        to: field_str(d, "to"),
        subject: field_str(d, "subject"),
        date: field_int(d, "date") as i64,
        size: field_int(d, "size") as u64,
        seen: field_bool(d, "seen"),
        flagged: field_bool(d, "flagged"),
        has_attachments: field_bool(d, "has-attachments"),
        message_id: field_str(d, "message-id"),
    }
}

fn msgs_of(reply: zbus::Message) -> Vec<Msg> {
    reply
        .body()
        .deserialize::<Vec<HashMap<String, OwnedValue>>>()
        .expect("a list of summaries is aa{sv}")
        .iter()
        .map(msg_of)
        .collect()
}

/// `Account.ListMessages(folder, 0, 10000)`.
fn try_list(bus: &Bus, path: &str, folder: &str) -> Result<Vec<Msg>, CallError> {
    bus.call_facteur(
        path,
        names::ACCOUNT_INTERFACE,
        "ListMessages",
        &(folder, 0u32, 10_000u32),
    )
    .map(msgs_of)
}

/// [`try_list`] that must succeed.
fn list(bus: &Bus, path: &str, folder: &str) -> Vec<Msg> {
    try_list(bus, path, folder)
        .unwrap_or_else(|e| panic!("ListMessages({folder:?}) on {path} failed: {e}"))
}

/// `Manager.ListUnified(offset, limit)`.
fn unified(bus: &Bus, offset: u32, limit: u32) -> Vec<Msg> {
    bus.call_facteur(
        names::ROOT_PATH,
        names::MANAGER_INTERFACE,
        "ListUnified",
        &(offset, limit),
    )
    .map(msgs_of)
    .unwrap_or_else(|e| panic!("ListUnified failed: {e}"))
}

/// `Manager.GetMessage(id)`.
fn try_get(bus: &Bus, id: &str) -> Result<Vec<u8>, CallError> {
    bus.call_facteur(
        names::ROOT_PATH,
        names::MANAGER_INTERFACE,
        "GetMessage",
        &(id,),
    )
    .map(|r| {
        // Borrowed, then copied once: element-wise deserialisation of a
        // 5 MB `ay` takes seconds in a debug build.
        r.body()
            .deserialize::<&[u8]>()
            .expect("GetMessage is ay")
            .to_vec()
    })
}

/// [`try_get`] that must succeed.
fn get(bus: &Bus, id: &str) -> Vec<u8> {
    try_get(bus, id).unwrap_or_else(|e| panic!("GetMessage({id}) failed: {e}"))
}

/// `Account.Sync()`.
fn try_sync(bus: &Bus, path: &str) -> Result<u32, CallError> {
    bus.call_facteur(path, names::ACCOUNT_INTERFACE, "Sync", &())
        .map(|r| r.body().deserialize::<u32>().expect("Sync returns u"))
}

/// [`try_sync`] that must succeed.
fn sync(bus: &Bus, d: &Facteurd<'_>, path: &str) -> u32 {
    try_sync(bus, path)
        .unwrap_or_else(|e| panic!("Sync on {path} failed: {e}\n{}", tail(&d.log(), 60)))
}

/// One entry of `ListFolders`.
#[derive(Debug, Clone, PartialEq)]
struct Folder {
    name: String,
    role: String,
    delimiter: String,
    selectable: bool,
    messages: i128,
    unread: i128,
}

/// `Account.ListFolders()`, by name.
fn folders(bus: &Bus, path: &str) -> BTreeMap<String, Folder> {
    let reply = bus
        .call_facteur(path, names::ACCOUNT_INTERFACE, "ListFolders", &())
        .unwrap_or_else(|e| panic!("ListFolders on {path} failed: {e}"));
    reply
        .body()
        .deserialize::<Vec<HashMap<String, OwnedValue>>>()
        .expect("ListFolders is aa{sv}")
        .iter()
        .map(|d| {
            let f = Folder {
                name: field_str(d, "name"),
                role: field_str(d, "role"),
                delimiter: field_str(d, "delimiter"),
                selectable: field_bool(d, "selectable"),
                messages: field_int(d, "messages"),
                unread: field_int(d, "unread"),
            };
            (f.name.clone(), f)
        })
        .collect()
}

/// The `Folders` property (role → folder).
fn folder_roles(props: &Props) -> BTreeMap<String, String> {
    let map: HashMap<String, String> = props
        .get("Folders")
        .try_clone()
        .expect("Folders holds no file descriptors")
        .try_into()
        .expect("Folders is a{ss}");
    map.into_iter().collect()
}

/// The `NewMessages` signals seen so far: (account path, folder, ids).
fn new_messages(signals: &Signals) -> Vec<(String, String, Vec<String>)> {
    signals
        .all()
        .iter()
        .filter(|s| s.interface == names::MANAGER_INTERFACE && s.member == "NewMessages")
        .map(|s| {
            let (account, folder, ids): (OwnedObjectPath, String, Vec<String>) = s
                .message
                .body()
                .deserialize()
                .expect("NewMessages is (o, s, as)");
            (account.as_str().to_owned(), folder, ids)
        })
        .collect()
}

/// Every id announced by `NewMessages`, in order.
fn announced_ids(signals: &Signals) -> Vec<String> {
    new_messages(signals)
        .into_iter()
        .flat_map(|(_, _, ids)| ids)
        .collect()
}

/// Wait until at least `n` message ids were announced (the signal recorder
/// runs on its own task, a little behind the method replies); all of them.
fn wait_announced(signals: &Signals, n: usize, d: &Facteurd<'_>) -> Vec<String> {
    wait_until(DEADLINE, || {
        let ids = announced_ids(signals);
        (ids.len() >= n).then_some(ids)
    })
    .unwrap_or_else(|| {
        panic!(
            "{n} message id(s) expected in NewMessages within {DEADLINE:?}, got {:?}\n\
             facteurd log:\n{}",
            new_messages(signals),
            tail(&d.log(), 60)
        )
    })
}

/// Assert that every listed message's bytes are exactly what Dovecot serves
/// for its UID in `folder` (UTF-8 name).
fn assert_bodies_match(bus: &Bus, dovecot: &Dovecot, user: &str, folder: &str, listed: &[Msg]) {
    for m in listed {
        let ours = get(bus, &m.id);
        let theirs = dovecot.fetch_raw(user, folder, m.uid());
        assert!(
            ours == theirs,
            "GetMessage({}) differs from Dovecot's {folder} UID {}: {} bytes vs {}\n\
             ours:   {:?}\ntheirs: {:?}",
            m.id,
            m.uid(),
            ours.len(),
            theirs.len(),
            text(&ours[..ours.len().min(300)]),
            text(&theirs[..theirs.len().min(300)])
        );
        assert_eq!(m.size, theirs.len() as u64, "size of {}", m.id);
    }
}

fn subjects(list: &[Msg]) -> Vec<&str> {
    list.iter().map(|m| m.subject.as_str()).collect()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn first_sync_downloads_every_folder_byte_for_byte() {
    let dovecot = dovecot(DovecotOptions {
        auto_special_folders: true,
        ..DovecotOptions::default()
    });
    let inbox: Vec<u32> = (1..=3)
        .map(|n| {
            let flags: &[&str] = if n == 2 { &["\\Seen"] } else { &[] };
            dovecot.append(
                USER,
                "INBOX",
                &mail_to_alice(&format!("Inbox {n}"), T0 + n * 3600),
                flags,
            )
        })
        .collect();
    dovecot.create_folder(USER, WORK);
    for n in 1..=2 {
        dovecot.append(
            USER,
            WORK,
            &mail_to_alice(&format!("Work {n}"), T0 + 100 + n * 3600),
            &["\\Flagged"],
        );
    }
    dovecot.append(
        USER,
        "Sent",
        &mail("carol@example.test", "Sent 1", T0),
        &["\\Seen"],
    );

    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let signals = bus.signals();
    let path = create_alice(&bus, &dovecot);
    assert_eq!(path, names::account_path(&slug(USER)));
    let props = wait_synced(&bus, &d, &path, 6);
    // Inbox 2 and Sent 1 were read on the server.
    assert_eq!(props.u32("UnreadCount"), 4);

    // Folders and roles, from SPECIAL-USE.
    let roles = folder_roles(&props);
    let want: BTreeMap<String, String> = [
        ("archive", "Archive"),
        ("drafts", "Drafts"),
        ("sent", "Sent"),
        ("spam", "Junk"),
        ("trash", "Trash"),
    ]
    .iter()
    .map(|(r, f)| (r.to_string(), f.to_string()))
    .collect();
    assert_eq!(roles, want, "the Folders property");
    let listed = folders(&bus, &path);
    assert_eq!(
        listed.keys().map(String::as_str).collect::<Vec<_>>(),
        ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash", WORK],
        "{listed:?}"
    );
    assert_eq!(listed["INBOX"].role, "inbox");
    assert_eq!(listed["Sent"].role, "sent");
    assert_eq!(listed[WORK].role, "");
    assert!(listed.values().all(|f| f.selectable && f.delimiter == "/"));
    let counts: Vec<(&str, i128, i128)> = listed
        .values()
        .map(|f| (f.name.as_str(), f.messages, f.unread))
        .collect();
    assert_eq!(
        counts,
        [
            ("Archive", 0, 0),
            ("Drafts", 0, 0),
            ("INBOX", 3, 2),
            ("Junk", 0, 0),
            ("Sent", 1, 0),
            ("Trash", 0, 0),
            (WORK, 2, 2),
        ]
    );

    // INBOX: newest first, decoded headers, flags, ids with the UIDVALIDITY.
    let uidvalidity = dovecot.uidvalidity(USER, "INBOX");
    let msgs = list(&bus, &path, "INBOX");
    assert_eq!(subjects(&msgs), ["Inbox 3", "Inbox 2", "Inbox 1"]);
    assert_eq!(
        msgs.iter().map(Msg::uidvalidity_uid).collect::<Vec<_>>(),
        inbox
            .iter()
            .rev()
            .map(|u| (uidvalidity, *u))
            .collect::<Vec<_>>()
    );
    let m = &msgs[1];
    assert_eq!(m.account, path);
    assert_eq!(m.folder, "INBOX");
    assert_eq!(m.from, "Bob <bob@example.test>");
    assert_eq!(m.to, USER);
    assert_eq!(m.date, T0 + 2 * 3600);
    assert_eq!(m.message_id, "Inbox-2@example.test");
    assert!(m.seen && !m.flagged && !m.has_attachments, "{m:?}");
    assert!(!msgs[0].seen && !msgs[2].seen);
    assert_bodies_match(&bus, &dovecot, USER, "INBOX", &msgs);

    let work = list(&bus, &path, WORK);
    assert_eq!(subjects(&work), ["Work 2", "Work 1"]);
    assert!(work
        .iter()
        .all(|m| m.flagged && !m.seen && m.folder == WORK));
    assert_bodies_match(&bus, &dovecot, USER, WORK, &work);
    let sent = list(&bus, &path, "Sent");
    assert_eq!(subjects(&sent), ["Sent 1"]);
    assert_bodies_match(&bus, &dovecot, USER, "Sent", &sent);
    assert!(list(&bus, &path, "Trash").is_empty());

    // Every stored message was announced exactly once.
    let mut all_ids: Vec<String> = msgs
        .iter()
        .chain(&work)
        .chain(&sent)
        .map(|m| m.id.clone())
        .collect();
    all_ids.sort();
    let mut announced = wait_announced(&signals, all_ids.len(), &d);
    announced.sort();
    assert_eq!(announced, all_ids, "NewMessages ids");
    assert!(new_messages(&signals)
        .iter()
        .all(|(account, _, _)| *account == path));

    // The Unified folder has all of them, newest first; one file each.
    let u = unified(&bus, 0, 100);
    assert_eq!(u.len(), 6);
    assert!(u.windows(2).all(|w| w[0].date >= w[1].date), "{u:?}");
    assert_eq!(message_files(&d), 6);
    // The password was used, never written down.
    assert!(!d.log().contains(PASSWORD), "the password is in the log");
    assert!(
        files_containing(&d.data_dir(), PASSWORD).is_empty(),
        "the password is in the store"
    );
}

#[test]
fn idle_push_announces_a_delivered_message() {
    let dovecot = dovecot(DovecotOptions::default());
    dovecot.deliver(USER, &mail_to_alice("Before", T0));
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = create_alice(&bus, &dovecot);
    wait_synced(&bus, &d, &path, 1);
    wait_idling(&dovecot, &d, USER);

    let signals = bus.signals();
    let started = Instant::now();
    let uid = dovecot.deliver(USER, &mail_to_alice("Pushed", T0 + 60));
    let announced = wait_until(PUSH_BOUND, || new_messages(&signals).into_iter().next())
        .unwrap_or_else(|| {
            panic!(
                "no NewMessages within {PUSH_BOUND:?} of a delivery to the idling INBOX\n\
             facteurd log:\n{}",
                tail(&d.log(), 60)
            )
        });
    eprintln!("pushed message announced after {:?}", started.elapsed());
    let (account, folder, ids) = announced;
    assert_eq!(account, path);
    assert_eq!(folder, "INBOX");
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(
        ids[0].ends_with(&format!(".{}.{uid}", dovecot.uidvalidity(USER, "INBOX"))),
        "{ids:?} for UID {uid}"
    );
    // The counts follow, announced with PropertiesChanged.
    let props = wait_account_within(&bus, &d, &path, "counting 2", PUSH_BOUND, |p| {
        p.u32("MessageCount") == 2 && p.u32("UnreadCount") == 2
    });
    assert_eq!(props.u32("MessageCount"), 2);
    let count = signals.wait_property_changed(&path, "MessageCount");
    assert_eq!(count.map(|v| u32::try_from(v).ok()), Some(Some(2)));
    assert_eq!(get(&bus, &ids[0]), dovecot.fetch_raw(USER, "INBOX", uid));
    assert_eq!(subjects(&list(&bus, &path, "INBOX")), ["Pushed", "Before"]);
}

#[test]
fn flags_and_expunges_on_the_server_are_reflected_after_sync() {
    let dovecot = dovecot(DovecotOptions::default());
    let a = dovecot.deliver(USER, &mail_to_alice("A", T0 + 1));
    let b = dovecot.deliver(USER, &mail_to_alice("B", T0 + 2));
    let c = dovecot.deliver(USER, &mail_to_alice("C", T0 + 3));
    dovecot.create_folder(USER, WORK);
    let w1 = dovecot.append(USER, WORK, &mail_to_alice("W1", T0 + 4), &[]);
    let w2 = dovecot.append(USER, WORK, &mail_to_alice("W2", T0 + 5), &[]);
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = create_alice(&bus, &dovecot);
    wait_synced(&bus, &d, &path, 5);
    assert_eq!(bus.account(&path).u32("UnreadCount"), 5);
    let c_id = list(&bus, &path, "INBOX")
        .into_iter()
        .find(|m| m.uid() == c)
        .expect("C is listed")
        .id;

    dovecot.set_flags(USER, "INBOX", a, &["\\Seen", "\\Flagged"]);
    dovecot.set_flags(USER, "INBOX", b, &["\\Seen"]);
    dovecot.expunge(USER, "INBOX", c);
    dovecot.set_flags(USER, WORK, w1, &["\\Flagged"]);
    dovecot.expunge(USER, WORK, w2);
    assert_eq!(
        sync(&bus, &d, &path),
        0,
        "flags and expunges are not new mail"
    );

    let state = |m: &Msg| (m.subject.clone(), m.seen, m.flagged);
    let inbox = list(&bus, &path, "INBOX");
    assert_eq!(
        inbox.iter().map(state).collect::<Vec<_>>(),
        [("B".into(), true, false), ("A".into(), true, true)]
    );
    let work = list(&bus, &path, WORK);
    assert_eq!(
        work.iter().map(state).collect::<Vec<_>>(),
        [("W1".into(), false, true)]
    );
    assert_eq!(work[0].uid(), w1);
    let err = try_get(&bus, &c_id).expect_err("an expunged message is gone");
    assert_eq!(err.short_name(), "NotFound", "{err}");
    assert!(unified(&bus, 0, 100).iter().all(|m| m.id != c_id));
    wait_account(&bus, &d, &path, "counting 3, 1 unread", |p| {
        p.u32("MessageCount") == 3 && p.u32("UnreadCount") == 1
    });
    let f = folders(&bus, &path);
    assert_eq!((f["INBOX"].messages, f["INBOX"].unread), (2, 0));
    assert_eq!((f[WORK].messages, f[WORK].unread), (1, 1));

    // Flags removed on the server are removed here too.
    dovecot.set_flags(USER, "INBOX", a, &[]);
    dovecot.set_flags(USER, WORK, w1, &["\\Seen"]);
    assert_eq!(sync(&bus, &d, &path), 0);
    let a_now = list(&bus, &path, "INBOX")
        .into_iter()
        .find(|m| m.uid() == a)
        .expect("A is still listed");
    assert!(!a_now.seen && !a_now.flagged, "{a_now:?}");
    let w1_now = &list(&bus, &path, WORK)[0];
    assert!(w1_now.seen && !w1_now.flagged, "{w1_now:?}");
    wait_account(&bus, &d, &path, "counting 3, 1 unread", |p| {
        p.u32("MessageCount") == 3 && p.u32("UnreadCount") == 1
    });
}

#[test]
fn a_uidvalidity_change_refetches_without_stale_entries() {
    let dovecot = dovecot(DovecotOptions::default());
    for n in 1..=2 {
        dovecot.deliver(USER, &mail_to_alice(&format!("Inbox {n}"), T0 + n));
    }
    dovecot.create_folder(USER, WORK);
    for n in 1..=2 {
        dovecot.append(
            USER,
            WORK,
            &mail_to_alice(&format!("Old work {n}"), T0 + 10 + n),
            &[],
        );
    }
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = create_alice(&bus, &dovecot);
    wait_synced(&bus, &d, &path, 4);
    let old_ids: Vec<String> = list(&bus, &path, "INBOX")
        .iter()
        .chain(&list(&bus, &path, WORK))
        .map(|m| m.id.clone())
        .collect();
    assert_eq!(old_ids.len(), 4);
    assert_eq!(message_files(&d), 4);

    // Work is deleted and created again with other mail; INBOX keeps its
    // messages and UIDs under a new UIDVALIDITY. Dovecot tells an idling
    // client nothing of either: the next pass must find out.
    let work_validity = dovecot.recreate_folder(USER, WORK);
    dovecot.append(USER, WORK, &mail_to_alice("New work", T0 + 20), &[]);
    let inbox_validity = dovecot.change_uidvalidity(USER, "INBOX");
    let refetched = sync(&bus, &d, &path);
    // Refetched mail is not new mail: only "New work" counts.
    assert_eq!(
        refetched, 1,
        "the pass after the UIDVALIDITY changes must count only the really new message"
    );

    let inbox = list(&bus, &path, "INBOX");
    let work = list(&bus, &path, WORK);
    let validities =
        |list: &[Msg]| -> Vec<u32> { list.iter().map(|m| m.uidvalidity_uid().0).collect() };
    assert_eq!(validities(&inbox), [inbox_validity; 2], "{inbox:?}");
    assert_eq!(validities(&work), [work_validity], "{work:?}");
    assert_eq!(subjects(&inbox), ["Inbox 2", "Inbox 1"]);
    assert_eq!(subjects(&work), ["New work"]);
    assert_bodies_match(&bus, &dovecot, USER, "INBOX", &inbox);
    assert_bodies_match(&bus, &dovecot, USER, WORK, &work);
    // A further pass finds nothing new and changes nothing.
    wait_synced(&bus, &d, &path, 3);
    assert_eq!(sync(&bus, &d, &path), 0);
    assert_eq!(list(&bus, &path, "INBOX"), inbox);

    for id in &old_ids {
        let err = try_get(&bus, id).expect_err("an id of the old UIDVALIDITY is gone");
        assert_eq!(err.short_name(), "NotFound", "{id}: {err}");
    }
    let u = unified(&bus, 0, 100);
    assert_eq!(u.len(), 3, "{u:?}");
    assert!(u.iter().all(|m| !old_ids.contains(&m.id)), "{u:?}");
    assert_eq!(
        message_files(&d),
        3,
        "the old Work messages' files are left behind"
    );
}

#[test]
fn a_dovecot_restart_goes_offline_then_catches_up() {
    let dovecot = dovecot(DovecotOptions::default());
    dovecot.deliver(USER, &mail_to_alice("Before the restart", T0));
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = create_alice(&bus, &dovecot);
    wait_synced(&bus, &d, &path, 1);
    wait_idling(&dovecot, &d, USER);

    dovecot.stop();
    let offline = wait_account(&bus, &d, &path, "offline", |p| p.str("State") == "offline");
    assert!(
        !offline.str("LastError").is_empty(),
        "offline without a LastError"
    );
    eprintln!("offline: {}", offline.str("LastError"));
    deliver_to_maildir(
        &dovecot,
        USER,
        &mail_to_alice("While the server was down", T0 + 60),
    );
    // Still offline: nothing can have been fetched.
    assert_eq!(bus.account(&path).u32("MessageCount"), 1);
    dovecot.start_again();

    let props = wait_synced(&bus, &d, &path, 2);
    assert_eq!(props.str("State"), "idle");
    let inbox = list(&bus, &path, "INBOX");
    assert_eq!(
        subjects(&inbox),
        ["While the server was down", "Before the restart"]
    );
    assert_eq!(inbox[0].uid(), 2);
    assert_bodies_match(&bus, &dovecot, USER, "INBOX", &inbox);
    // And it idles again: the next delivery is pushed.
    wait_idling(&dovecot, &d, USER);
    dovecot.deliver(USER, &mail_to_alice("After the restart", T0 + 120));
    wait_account_within(&bus, &d, &path, "counting 3", PUSH_BOUND, |p| {
        p.u32("MessageCount") == 3
    });
}

#[test]
fn non_ascii_folder_names_are_listed_decoded() {
    let dovecot = dovecot(DovecotOptions::default());
    let ete = "Reçus/Été";
    let cafe = "Café & Thé";
    dovecot.create_folder(USER, ete);
    dovecot.create_folder(USER, cafe);
    let uid = dovecot.append(USER, ete, &mail_to_alice("Dans Été", T0), &[]);
    dovecot.append(USER, cafe, &mail_to_alice("Au café", T0 + 1), &["\\Seen"]);
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let signals = bus.signals();
    let path = create_alice(&bus, &dovecot);
    wait_synced(&bus, &d, &path, 2);

    let f = folders(&bus, &path);
    for name in ["INBOX", "Reçus", ete, cafe] {
        assert!(f.contains_key(name), "{name} is not in {:?}", f.keys());
    }
    assert_eq!(f.len(), 4, "{:?}", f.keys());
    assert_eq!((f[ete].messages, f[ete].unread), (1, 1));
    assert_eq!((f[cafe].messages, f[cafe].unread), (1, 0));
    assert_eq!(f[ete].delimiter, "/");

    let msgs = list(&bus, &path, ete);
    assert_eq!(subjects(&msgs), ["Dans Été"]);
    assert_eq!(msgs[0].folder, ete);
    assert_eq!(msgs[0].uid(), uid);
    assert_bodies_match(&bus, &dovecot, USER, ete, &msgs);
    assert_eq!(subjects(&list(&bus, &path, cafe)), ["Au café"]);
    // The wire name is not a display name.
    let err = try_list(&bus, &path, "Re&AOc-us/&AMk-t&AOk-")
        .expect_err("the modified UTF-7 name is not listed");
    assert_eq!(err.short_name(), "NotFound", "{err}");
    wait_announced(&signals, 2, &d);
    let folders_announced: BTreeSet<String> = new_messages(&signals)
        .into_iter()
        .map(|(_, folder, _)| folder)
        .collect();
    assert_eq!(
        folders_announced,
        [ete.to_owned(), cafe.to_owned()].into_iter().collect()
    );

    // Deleting there selects the folder by its wire name.
    bus.call_facteur(
        names::ROOT_PATH,
        names::MANAGER_INTERFACE,
        "DeleteMessage",
        &(msgs[0].id.as_str(),),
    )
    .unwrap_or_else(|e| panic!("DeleteMessage in {ete} failed: {e}"));
    assert!(dovecot.list_uids(USER, ete).is_empty());
    assert!(list(&bus, &path, ete).is_empty());
}

#[test]
fn a_five_megabyte_message_is_stored_byte_for_byte() {
    let dovecot = dovecot(DovecotOptions::default());
    // A deterministic, incompressible attachment of 5 MiB.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let payload: Vec<u8> = (0..5 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let mut raw = format!(
        "From: Bob <bob@example.test>\r\n\
         To: <{USER}>\r\n\
         Subject: Big one\r\n\
         Date: {}\r\n\
         Message-ID: <big@example.test>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b0undary\"\r\n\
         \r\n\
         --b0undary\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         See the attachment.\r\n\
         --b0undary\r\n\
         Content-Type: application/octet-stream\r\n\
         Content-Disposition: attachment; filename=\"noise.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n",
        rfc5322_date(T0)
    )
    .into_bytes();
    raw.extend_from_slice(base64_lines(&payload).as_bytes());
    raw.extend_from_slice(b"--b0undary--\r\n");
    assert!(raw.len() > 5 * 1024 * 1024);
    let uid = dovecot.deliver(USER, &raw);
    dovecot.deliver(USER, &mail_to_alice("Small one", T0 + 1));

    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = create_alice(&bus, &dovecot);
    wait_synced(&bus, &d, &path, 2);
    let msgs = list(&bus, &path, "INBOX");
    assert_eq!(subjects(&msgs), ["Small one", "Big one"]);
    let big = &msgs[1];
    assert_eq!(big.uid(), uid);
    assert!(big.has_attachments, "{big:?}");
    assert!(!msgs[0].has_attachments);
    let ours = get(&bus, &big.id);
    assert_eq!(ours.len(), raw.len());
    assert_eq!(big.size, raw.len() as u64);
    assert!(ours == raw, "the 5 MB message changed on the way");
    assert!(
        ours == dovecot.fetch_raw(USER, "INBOX", uid),
        "the 5 MB message differs from Dovecot's copy"
    );
    assert_bodies_match(&bus, &dovecot, USER, "INBOX", &msgs[..1]);
}

#[test]
fn messages_with_malformed_headers_are_stored_and_listed() {
    let dovecot = dovecot(DovecotOptions::default());
    let long_subject = format!("Subject: {}\r\n", "x".repeat(100_000));
    let broken: Vec<Vec<u8>> = vec![
        // Garbage in every header a summary shows.
        b"From: <<<@@@ not an address\r\n\
          To: ,,,;;; <\r\n\
          Subject: =?UTF-8?B?!!!not-base64?= and =?bogus?Q?x?=\r\n\
          Date: the day after tomorrow\r\n\
          Message-ID: no brackets here\r\n\
          This header line has no colon at all\r\n\
          X-Binary: \xff\xfe\xfd 8-bit junk\r\n\
          \r\n\
          Body survives.\r\n"
            .to_vec(),
        // No header block at all.
        b"\r\nOnly a body, no headers.\r\n".to_vec(),
        // Headers and no body, no final line end.
        b"Subject: no body\r\nX-Trailing: yes".to_vec(),
        // A 100 kB subject.
        [long_subject.as_bytes(), b"\r\nbody\r\n"].concat(),
        // A multipart without its boundary.
        b"Subject: lost boundary\r\n\
          MIME-Version: 1.0\r\n\
          Content-Type: multipart/mixed\r\n\
          \r\n\
          --x\r\nContent-Type: text/plain\r\n\r\nbroken\r\n"
            .to_vec(),
    ];
    let uids: Vec<u32> = broken
        .iter()
        .map(|raw| dovecot.deliver(USER, raw))
        .collect();
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let signals = bus.signals();
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64;
    let path = create_alice(&bus, &dovecot);
    wait_synced(&bus, &d, &path, broken.len() as u32);

    let msgs = list(&bus, &path, "INBOX");
    let mut listed_uids: Vec<u32> = msgs.iter().map(Msg::uid).collect();
    listed_uids.sort_unstable();
    assert_eq!(listed_uids, uids);
    assert_eq!(
        wait_announced(&signals, broken.len(), &d).len(),
        broken.len()
    );
    assert_bodies_match(&bus, &dovecot, USER, "INBOX", &msgs);
    let by_uid: HashMap<u32, &Msg> = msgs.iter().map(|m| (m.uid(), m)).collect();
    // An unreadable Date falls back to the server's arrival time.
    let bad_date = by_uid[&uids[0]];
    assert!(
        (bad_date.date - started).abs() < 3600,
        "an unreadable Date gave {} (now is {started})",
        bad_date.date
    );
    // A summary keeps a bounded subject; the raw message keeps all of it.
    let long = by_uid[&uids[3]];
    assert!(
        long.subject.starts_with("xxx") && long.subject.len() <= 4096,
        "a {} byte subject in a summary",
        long.subject.len()
    );
    assert_eq!(long.size as usize, broken[3].len());
    assert_eq!(by_uid[&uids[4]].subject, "lost boundary");
}

#[test]
fn a_desktop_notification_is_shown_once_per_batch() {
    let dovecot = dovecot(DovecotOptions {
        auto_special_folders: true,
        ..DovecotOptions::default()
    });
    for n in 1..=3 {
        dovecot.deliver(USER, &mail_to_alice(&format!("First {n}"), T0 + n));
    }
    dovecot.create_folder(USER, WORK);
    dovecot.append(USER, WORK, &mail_to_alice("Work mail", T0 + 5), &[]);
    dovecot.append(
        USER,
        "Sent",
        &mail("carol@example.test", "Sent by me", T0),
        &[],
    );
    let bus = Bus::start();
    let notifications = Notifications::start(&bus);
    let d = facteurd(&bus, &dovecot);
    let path = create_alice(&bus, &dovecot);
    wait_synced(&bus, &d, &path, 5);

    // The first sync: one notification for the 4 messages outside Sent.
    let first = notifications.wait_for(1, &d);
    let n = &first[0];
    assert_eq!(n.app_name, "facteur");
    assert_eq!(n.summary, format!("4 new messages for {NAME}"), "{n:?}");
    assert!(n.body.contains("Bob <bob@example.test>: "), "{n:?}");
    assert!(n.body.contains("and 1 more"), "{n:?}");
    assert!(!n.body.contains("Sent by me"), "{n:?}");
    assert_eq!(n.category.as_deref(), Some("email.arrived"));

    // A pushed message: one more, naming it.
    wait_idling(&dovecot, &d, USER);
    dovecot.deliver(USER, &mail_to_alice("Pushed news", T0 + 10));
    let second = notifications.wait_for(2, &d);
    assert_eq!(second[1].summary, format!("New mail for {NAME}"));
    assert!(
        second[1]
            .body
            .contains("Bob <bob@example.test>: Pushed news"),
        "{:?}",
        second[1]
    );

    // Mail landing in Sent is no news: a pass that only finds it is silent.
    dovecot.append(
        USER,
        "Sent",
        &mail("carol@example.test", "Sent again", T0),
        &[],
    );
    assert_eq!(sync(&bus, &d, &path), 1);
    dovecot.deliver(USER, &mail_to_alice("Last one", T0 + 20));
    let third = notifications.wait_for(3, &d);
    assert!(third[2].body.contains("Last one"), "{:?}", third[2]);
    wait_synced(&bus, &d, &path, 8);
    let all = notifications.all();
    assert_eq!(
        all.len(),
        3,
        "one notification per batch with news: {all:#?}"
    );
    assert!(all.iter().all(|n| !n.body.contains("Sent again")));
}

#[test]
fn the_unified_folder_interleaves_accounts_newest_first() {
    let dovecot = dovecot(DovecotOptions::default());
    let bob = "bob@example.test";
    let carol = "carol@example.test";
    dovecot.add_user(bob, "bob-pw");
    dovecot.add_user(carol, "carol-pw");
    for h in [1, 3, 5] {
        dovecot.deliver(USER, &mail(USER, &format!("alice {h}"), T0 + h * 3600));
    }
    for h in [2, 4, 6] {
        dovecot.deliver(bob, &mail(bob, &format!("bob {h}"), T0 + h * 3600));
    }
    dovecot.create_folder(bob, WORK);
    dovecot.append(bob, WORK, &mail(bob, "bob 4.5", T0 + 4 * 3600 + 1800), &[]);
    // Carol's account stays out of the Unified folder, however new her mail.
    dovecot.deliver(carol, &mail(carol, "carol 10", T0 + 10 * 3600));

    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let alice_path = create_alice(&bus, &dovecot);
    let bob_path = create(&bus, &imap_settings(&dovecot, bob, "bob-pw", "tls"));
    let carol_path = create(
        &bus,
        &imap_settings(&dovecot, carol, "carol-pw", "tls").b("use-unified", false),
    );
    wait_synced(&bus, &d, &alice_path, 3);
    wait_synced(&bus, &d, &bob_path, 4);
    wait_synced(&bus, &d, &carol_path, 1);

    let u = unified(&bus, 0, 100);
    let seen: Vec<(&str, &str)> = u
        .iter()
        .map(|m| (m.account.as_str(), m.subject.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (bob_path.as_str(), "bob 6"),
            (alice_path.as_str(), "alice 5"),
            (bob_path.as_str(), "bob 4.5"),
            (bob_path.as_str(), "bob 4"),
            (alice_path.as_str(), "alice 3"),
            (bob_path.as_str(), "bob 2"),
            (alice_path.as_str(), "alice 1"),
        ]
    );
    assert_eq!(u[2].folder, WORK);
    // Paging is a window onto the same order.
    assert_eq!(unified(&bus, 2, 3), u[2..5].to_vec());
    assert!(unified(&bus, 7, 10).is_empty());
    // Carol's mail is still hers to list.
    assert_eq!(subjects(&list(&bus, &carol_path, "INBOX")), ["carol 10"]);
    assert_bodies_match(&bus, &dovecot, bob, WORK, &u[2..3]);
}

#[test]
fn delete_message_removes_it_on_the_server() {
    let dovecot = dovecot(DovecotOptions::default());
    let keep = dovecot.deliver(USER, &mail_to_alice("Keep", T0));
    let gone = dovecot.deliver(USER, &mail_to_alice("Delete me", T0 + 1));
    dovecot.create_folder(USER, WORK);
    let w_keep = dovecot.append(USER, WORK, &mail_to_alice("Work keep", T0 + 2), &[]);
    dovecot.append(USER, WORK, &mail_to_alice("Work delete", T0 + 3), &[]);
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = create_alice(&bus, &dovecot);
    wait_synced(&bus, &d, &path, 4);

    let delete = |id: &str| {
        bus.call_facteur(
            names::ROOT_PATH,
            names::MANAGER_INTERFACE,
            "DeleteMessage",
            &(id,),
        )
    };
    let victim = list(&bus, &path, "INBOX")
        .into_iter()
        .find(|m| m.uid() == gone)
        .expect("the message to delete is listed");
    delete(&victim.id).unwrap_or_else(|e| panic!("DeleteMessage failed: {e}"));
    assert_eq!(dovecot.list_uids(USER, "INBOX"), [keep]);
    assert_eq!(subjects(&list(&bus, &path, "INBOX")), ["Keep"]);
    let err = try_get(&bus, &victim.id).expect_err("a deleted message is gone");
    assert_eq!(err.short_name(), "NotFound", "{err}");

    let w_victim = list(&bus, &path, WORK)
        .into_iter()
        .find(|m| m.subject == "Work delete")
        .expect("listed");
    delete(&w_victim.id).unwrap_or_else(|e| panic!("DeleteMessage in {WORK} failed: {e}"));
    assert_eq!(dovecot.list_uids(USER, WORK), [w_keep]);
    assert_eq!(subjects(&list(&bus, &path, WORK)), ["Work keep"]);
    let u = unified(&bus, 0, 100);
    assert_eq!(subjects(&u), ["Work keep", "Keep"]);
    wait_account(&bus, &d, &path, "counting 2", |p| {
        p.u32("MessageCount") == 2
    });
    // A second delete of the same id is refused, and an unknown id too.
    let err = delete(&victim.id).expect_err("the message was already deleted");
    assert_eq!(err.short_name(), "NotFound", "{err}");
    let err = delete("not-an-id").expect_err("a malformed id");
    assert_eq!(err.short_name(), "InvalidArgument", "{err}");
    // Still idling on INBOX afterwards: a new delivery is pushed.
    wait_idling(&dovecot, &d, USER);
    dovecot.deliver(USER, &mail_to_alice("After deleting", T0 + 9));
    wait_account_within(&bus, &d, &path, "counting 3", PUSH_BOUND, |p| {
        p.u32("MessageCount") == 3
    });
}

#[test]
fn starttls_is_required_when_configured() {
    let dovecot = dovecot(DovecotOptions {
        tls: ServerTls::Off,
        ..DovecotOptions::default()
    });
    dovecot.deliver(USER, &mail_to_alice("Never fetched", T0));
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    // What Dovecot logs from here on is facteurd's doing.
    let log_start = dovecot.log().len();
    let path = create(&bus, &imap_settings(&dovecot, USER, PASSWORD, "starttls"));
    let props = wait_account(&bus, &d, &path, "in error", |p| p.str("State") == "error");
    let error = props.str("LastError");
    assert!(error.contains("STARTTLS"), "LastError: {error}");
    assert_eq!(props.u32("MessageCount"), 0);
    let err = try_sync(&bus, &path).expect_err("Sync cannot work without TLS");
    assert_eq!(err.short_name(), "TlsFailed", "{err}");

    // Dovecot saw the connection end without any login attempt.
    let log = wait_for_log(&dovecot, log_start, NO_LOGIN);
    assert!(
        !log.contains(&format!("user=<{USER}>")) && !log.contains("auth failed"),
        "facteurd sent its login in plain text:\n{log}"
    );
}

#[test]
fn a_self_signed_certificate_is_refused_unless_accepted() {
    let dovecot = dovecot(DovecotOptions {
        tls: ServerTls::SelfSigned,
        ..DovecotOptions::default()
    });
    dovecot.deliver(USER, &mail_to_alice("Behind a self-signed certificate", T0));
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let log_start = dovecot.log().len();
    let path = create_alice(&bus, &dovecot);
    let props = wait_account(&bus, &d, &path, "in error", |p| p.str("State") == "error");
    let error = props.str("LastError");
    assert!(
        error.contains("certificate") && error.contains("self-signed"),
        "LastError does not name the certificate problem: {error}"
    );
    assert_eq!(props.u32("MessageCount"), 0);
    let log = wait_for_log(&dovecot, log_start, NO_LOGIN);
    assert!(!log.contains(&format!("user=<{USER}>")), "{log}");

    bus.update_account(&path, &Settings::new().b("accept-invalid-certs", true))
        .unwrap_or_else(|e| panic!("Update failed: {e}"));
    assert!(bus.account(&path).bool("AcceptInvalidCerts"));
    wait_synced(&bus, &d, &path, 1);
    let msgs = list(&bus, &path, "INBOX");
    assert_bodies_match(&bus, &dovecot, USER, "INBOX", &msgs);
}

#[test]
fn the_account_survives_a_facteurd_restart_without_downloading_again() {
    let dovecot = dovecot(DovecotOptions::default());
    for n in 1..=3 {
        dovecot.deliver(USER, &mail_to_alice(&format!("Inbox {n}"), T0 + n));
    }
    dovecot.create_folder(USER, WORK);
    dovecot.append(USER, WORK, &mail_to_alice("Work 1", T0 + 10), &["\\Seen"]);
    let bus = Bus::start();
    let mut d = facteurd(&bus, &dovecot);
    let path = create_alice(&bus, &dovecot);
    wait_synced(&bus, &d, &path, 4);
    let inbox_before = list(&bus, &path, "INBOX");
    let work_before = list(&bus, &path, WORK);
    let files_before = message_files(&d);
    assert_eq!(files_before, 4);

    let status = d.stop();
    assert!(status.success(), "facteurd exited with {status}");
    let uid = dovecot.deliver(USER, &mail_to_alice("While facteurd was down", T0 + 20));
    let signals = bus.signals();
    d.launch();
    assert_eq!(bus.list_accounts(), std::slice::from_ref(&path));
    wait_synced(&bus, &d, &path, 5);

    // Only the new message was downloaded and announced.
    let announced = wait_announced(&signals, 1, &d);
    assert_eq!(
        announced.len(),
        1,
        "announced after the restart: {announced:?}"
    );
    assert!(announced[0].ends_with(&format!(".{uid}")), "{announced:?}");
    let inbox = list(&bus, &path, "INBOX");
    assert_eq!(inbox[0].subject, "While facteurd was down");
    assert_eq!(inbox[1..], inbox_before[..]);
    assert_eq!(list(&bus, &path, WORK), work_before);
    assert_eq!(message_files(&d), files_before + 1);
    assert_eq!(sync(&bus, &d, &path), 0);
    assert_eq!(announced_ids(&signals).len(), 1);
    assert_bodies_match(&bus, &dovecot, USER, "INBOX", &inbox);
}

#[test]
fn facteurctl_syncs_lists_and_shows_messages() {
    let dovecot = dovecot(DovecotOptions::default());
    dovecot.deliver(USER, &mail_to_alice("Inbox one", T0));
    dovecot.deliver(USER, &mail_to_alice("Inbox two", T0 + 60));
    dovecot.create_folder(USER, WORK);
    let bus = Bus::start();
    let d = facteurd(&bus, &dovecot);
    let path = create_alice(&bus, &dovecot);
    let id = slug(USER);
    wait_synced(&bus, &d, &path, 2);

    // Work is not watched with IDLE: only a pass finds its new mail.
    let uid = dovecot.append(USER, WORK, &mail_to_alice("Work news", T0 + 120), &[]);
    let out = bus.ctl_ok(&["sync", &id], None);
    assert_eq!(out.trim(), "1", "facteurctl sync prints the new messages");
    let out = bus.ctl_ok(&["--json", "sync", &id], None);
    let json: Json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(json["new-messages"], 0, "{json}");

    // The Unified folder, as a table: newest first.
    let table = bus.ctl_ok(&["messages"], None);
    let rows: Vec<&str> = lines(&table);
    assert_eq!(rows.len(), 4, "{table}");
    assert!(rows[1].contains("Work news"), "{table}");
    assert!(rows[2].contains("Inbox two"), "{table}");
    assert!(rows[3].contains("Inbox one"), "{table}");
    assert!(rows[3].contains("Bob <bob@example.test>"), "{table}");

    // One folder, as JSON.
    let out = bus.ctl_ok(
        &["--json", "messages", "--account", &id, "--folder", WORK],
        None,
    );
    let json: Json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let listed = json
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {out}"));
    assert_eq!(listed.len(), 1, "{out}");
    assert_eq!(listed[0]["subject"], "Work news");
    let message_id = listed[0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {out}"))
        .to_owned();
    assert!(message_id.ends_with(&format!(".{uid}")), "{message_id}");
    assert!(rows[1].contains(&message_id), "{table}");

    // show: headers and the text; --raw: the exact bytes.
    let shown = bus.ctl_ok(&["show", &message_id], None);
    assert!(shown.contains("Work news"), "{shown}");
    assert!(shown.contains("Bob <bob@example.test>"), "{shown}");
    assert!(
        shown.contains("Grüße — the text of «Work news»."),
        "{shown}"
    );
    let raw = bus.ctl(&["show", "--raw", &message_id], None);
    assert!(raw.status.success(), "{}", text(&raw.stderr));
    assert_eq!(raw.stdout, dovecot.fetch_raw(USER, WORK, uid));

    // A message that does not exist: one line, exit 1.
    let missing = bus.ctl(&["show", &format!("{id}.1.1.999")], None);
    assert_eq!(exit_code(missing.status), 1);
    let line = one_stderr_line(&missing, "show of a missing message");
    assert!(line.contains("NotFound"), "{line}");
}

/// The date formatting the messages rely on.
#[test]
fn dates_are_formatted_like_rfc_5322() {
    assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
    assert_eq!(rfc5322_date(T0), "Thu, 1 Jan 2026 00:00:00 +0000");
    assert_eq!(
        rfc5322_date(1_751_364_000),
        "Tue, 1 Jul 2025 10:00:00 +0000"
    );
    assert_eq!(base64_lines(b"ab"), "YWI=\r\n");
    assert_eq!(base64_lines(b"p:\xc3\xbc s"), "cDrDvCBz\r\n");
}

//! Changing and reading mailboxes the way another client or the MTA would.

use std::process::{Command, Output};

use super::encoding::mailbox_arg;
use super::lmtp::Lmtp;
use super::{Dovecot, FolderStatus};
use crate::{run_with_deadline, DEADLINE};

impl Dovecot {
    /// A new message in `user`'s INBOX, as a delivery makes it (no flags,
    /// `\Recent`, the next UID). The bytes are stored as given: with CRLF
    /// line ends they come back byte for byte from `FETCH BODY[]`. Returns
    /// the new UID.
    pub fn deliver(&self, user: &str, raw: &[u8]) -> u32 {
        self.append(user, "INBOX", raw, &[])
    }

    /// APPEND `raw` to `folder` (UTF-8 name) with `flags` (such as
    /// `\Seen`, `$Label1`). Returns the new UID.
    pub fn append(&self, user: &str, folder: &str, raw: &[u8], flags: &[&str]) -> u32 {
        let mut imap = self.imap_client(user);
        let uid = imap.append(folder, flags, raw);
        imap.logout();
        uid
    }

    /// Deliver through LMTP (the unix socket), as an MTA does. Dovecot adds
    /// `Return-Path`, `Delivered-To` and `Received` headers, so the stored
    /// bytes differ from `raw`; bare LF line ends are sent as CRLF.
    pub fn deliver_lmtp(&self, user: &str, raw: &[u8]) {
        let mut lmtp = Lmtp::connect(&self.lmtp_socket());
        if let Err(e) = lmtp.deliver("facteur-tests@localhost", user, raw) {
            panic!("LMTP delivery to {user} failed: {e}\n{}", self.log());
        }
    }

    /// Create a folder (UTF-8 name, such as `Reçus/Été`; Dovecot stores it
    /// in modified UTF-7). Parents are created too.
    pub fn create_folder(&self, user: &str, name: &str) {
        self.doveadm_ok(&["mailbox", "create", "-u", user, name], None);
    }

    /// Delete a folder and the messages in it.
    pub fn delete_folder(&self, user: &str, name: &str) {
        self.doveadm_ok(&["mailbox", "delete", "-u", user, name], None);
    }

    /// Rename a folder.
    pub fn rename_folder(&self, user: &str, from: &str, to: &str) {
        self.doveadm_ok(&["mailbox", "rename", "-u", user, from, to], None);
    }

    /// Every folder of `user` (UTF-8 names), as `doveadm mailbox list` says.
    pub fn folders(&self, user: &str) -> Vec<String> {
        self.doveadm_ok(&["mailbox", "list", "-u", user], None)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Replace a message's flags (`\Seen`, `\Flagged`, `$Label1`, …; empty
    /// clears them).
    pub fn set_flags(&self, user: &str, folder: &str, uid: u32, flags: &[&str]) {
        let flags = flags.join(" ");
        let uid = uid.to_string();
        self.doveadm_ok(
            &[
                "flags", "replace", "-u", user, &flags, "mailbox", folder, "uid", &uid,
            ],
            None,
        );
    }

    /// A message's flags, without `\Recent` (which belongs to a session).
    /// Fails the test if there is no such message.
    pub fn flags(&self, user: &str, folder: &str, uid: u32) -> Vec<String> {
        let uid_s = uid.to_string();
        let out = self.doveadm_ok(
            &[
                "-f", "tab", "fetch", "-u", user, "flags", "mailbox", folder, "uid", &uid_s,
            ],
            None,
        );
        let row = out
            .lines()
            .nth(1)
            .unwrap_or_else(|| panic!("{user}: no message with UID {uid} in {folder}"));
        row.split_whitespace()
            .filter(|f| *f != "\\Recent")
            .map(str::to_owned)
            .collect()
    }

    /// Expunge one message.
    pub fn expunge(&self, user: &str, folder: &str, uid: u32) {
        let uid = uid.to_string();
        self.doveadm_ok(
            &["expunge", "-u", user, "mailbox", folder, "uid", &uid],
            None,
        );
    }

    /// The UIDs in a folder, ascending.
    pub fn list_uids(&self, user: &str, folder: &str) -> Vec<u32> {
        let out = self.doveadm_ok(&["search", "-u", user, "mailbox", folder, "all"], None);
        let mut uids: Vec<u32> = out
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .map(|u| {
                u.parse()
                    .unwrap_or_else(|_| panic!("doveadm search printed a bad UID: {out}"))
            })
            .collect();
        uids.sort_unstable();
        uids
    }

    /// The exact bytes a client gets for `UID FETCH <uid> BODY.PEEK[]`.
    /// Fails the test if there is no such message.
    pub fn fetch_raw(&self, user: &str, folder: &str, uid: u32) -> Vec<u8> {
        let mut imap = self.imap_client(user);
        imap.command_ok(&format!("EXAMINE {}", mailbox_arg(folder)));
        let body = imap
            .uid_fetch_body(uid)
            .unwrap_or_else(|| panic!("{user}: no message with UID {uid} in {folder}"));
        imap.logout();
        body
    }

    /// `doveadm mailbox status` for a folder.
    pub fn status(&self, user: &str, folder: &str) -> FolderStatus {
        let out = self.doveadm_ok(
            &[
                "-f",
                "tab",
                "mailbox",
                "status",
                "-u",
                user,
                "messages unseen uidnext uidvalidity highestmodseq",
                folder,
            ],
            None,
        );
        let mut lines = out.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
        let values: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
        let get = |name: &str| -> u64 {
            header
                .iter()
                .position(|h| *h == name)
                .and_then(|i| values.get(i))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("doveadm mailbox status has no {name}: {out}"))
        };
        let small = |name: &str| -> u32 {
            u32::try_from(get(name)).unwrap_or_else(|_| panic!("{name} does not fit 32 bits"))
        };
        FolderStatus {
            messages: small("messages"),
            unseen: small("unseen"),
            uidnext: small("uidnext"),
            uidvalidity: small("uidvalidity"),
            highestmodseq: get("highestmodseq"),
        }
    }

    /// A folder's UIDVALIDITY.
    pub fn uidvalidity(&self, user: &str, folder: &str) -> u32 {
        self.status(user, folder).uidvalidity
    }

    /// Give a folder a new, larger UIDVALIDITY while keeping its messages
    /// and their UID numbers: the case where a client must throw away what
    /// it knows about the folder and fetch it again. Works for INBOX. A
    /// session that has the folder selected gets `* BYE` and is closed.
    /// Returns the new UIDVALIDITY.
    pub fn change_uidvalidity(&self, user: &str, folder: &str) -> u32 {
        let old = self.uidvalidity(user, folder);
        let new = old.checked_add(1).unwrap_or(1);
        let new_s = new.to_string();
        self.doveadm_ok(
            &[
                "mailbox",
                "update",
                "-u",
                user,
                "--uid-validity",
                &new_s,
                folder,
            ],
            None,
        );
        let now = self.uidvalidity(user, folder);
        assert_eq!(
            now, new,
            "doveadm did not change the UIDVALIDITY of {folder}"
        );
        now
    }

    /// Delete a folder and create it again, empty, with a new UIDVALIDITY
    /// (not INBOX, which cannot be deleted). Returns the new UIDVALIDITY.
    pub fn recreate_folder(&self, user: &str, folder: &str) -> u32 {
        let old = self.uidvalidity(user, folder);
        self.delete_folder(user, folder);
        self.create_folder(user, folder);
        let new = self.uidvalidity(user, folder);
        assert_ne!(old, new, "recreating {folder} kept its UIDVALIDITY");
        new
    }

    /// Disconnect every session of `user` gracefully (`doveadm kick`: the
    /// client gets `* BYE`). Returns how many sessions there were.
    pub fn kick(&self, user: &str) -> usize {
        let sessions = self.sessions(user).len();
        let out = self.doveadm(&["kick", user], None);
        // 68 (EX_NOUSER) means "no users kicked".
        assert!(
            out.status.success() || out.status.code() == Some(68),
            "doveadm kick {user} failed: {}",
            crate::text(&out.stderr)
        );
        sessions
    }

    /// Kill every IMAP and POP3 process of `user` with SIGKILL: the client
    /// sees the connection drop without a BYE. Returns how many there were.
    pub fn kill_sessions(&self, user: &str) -> usize {
        let pids = self.sessions(user);
        for (_, pid) in &pids {
            // The process may have exited meanwhile: that is fine.
            let _ = Command::new("/bin/sh")
                .args(["-c", &format!("kill -s KILL {pid} 2>/dev/null")])
                .status();
        }
        pids.len()
    }

    /// The live sessions of `user`: (protocol, process id).
    pub fn sessions(&self, user: &str) -> Vec<(String, u32)> {
        let out = self.doveadm_ok(&["-f", "tab", "who", "-1", user], None);
        out.lines()
            .skip(1)
            .filter_map(|l| {
                let cols: Vec<&str> = l.split('\t').collect();
                Some((cols.get(1)?.to_string(), cols.get(2)?.trim().parse().ok()?))
            })
            .collect()
    }

    // -- doveadm -------------------------------------------------------------

    /// Run `doveadm -c <conf> <args>` with a deadline. User commands (`-u`)
    /// need the server running: they look the user up through its auth
    /// socket.
    pub fn doveadm(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(&self.setup.doveadm);
        cmd.arg("-c").arg(&self.setup.conf).args(args);
        run_with_deadline(&mut cmd, stdin, DEADLINE)
    }

    /// [`Dovecot::doveadm`], failing the test unless it succeeds; returns
    /// its standard output.
    pub fn doveadm_ok(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        let out = self.doveadm(args, stdin);
        if !out.status.success() {
            let hint = if self.is_running() {
                ""
            } else {
                " (Dovecot is stopped: user commands need it running)"
            };
            panic!(
                "doveadm {} failed with {}{hint}\nstdout:\n{}\nstderr:\n{}\nDovecot log:\n{}",
                args.join(" "),
                out.status,
                crate::text(&out.stdout),
                crate::text(&out.stderr),
                self.log()
            );
        }
        crate::text(&out.stdout)
    }
}

//! # The peers, run on the same mailbox
//!
//! mbsync for IMAP; fetchmail (and getmail, where installed) for POP3.
//! Each returns one [`Row`] measured exactly like facteurd's.

use super::*;

/// mbsync pulling every folder of `mb` into a fresh Maildir.
pub fn mbsync(ctx: &Ctx<'_>, mb: &Mailbox) -> Row {
    let setup = format!("imap {}, Maildir, Sync Pull, Create Near", ctx.security());
    let mut row = Row::new("imap", "mbsync", &package_version("isync"), &setup);
    let result = (|| -> Result<()> {
        let work = workdir("bench-mbsync-")?;
        let maildir = work.path().join("Maildir");
        fs::create_dir_all(&maildir).context("Cannot create the Maildir")?;
        let security = if ctx.tls {
            format!(
                "SSLType IMAPS\nCertificateFile {}\nSystemCertificates no\n",
                ctx.dovecot.ca_cert_path().display()
            )
        } else {
            "SSLType None\n".to_owned()
        };
        // A host name in the certificate for TLS; the address otherwise.
        let host = if ctx.tls {
            ctx.dovecot.host()
        } else {
            LOOPBACK
        };
        let rc = work.path().join("mbsyncrc");
        write_private(
            &rc,
            &format!(
                "IMAPAccount bench\nHost {host}\nPort {port}\nUser {user}\nPass {pass}\n\
                 {security}AuthMechs LOGIN PLAIN\n\n\
                 IMAPStore remote\nAccount bench\n\n\
                 MaildirStore local\nPath {md}/\nInbox {md}/INBOX\nSubFolders Verbatim\n\n\
                 Channel bench\nFar :remote:\nNear :local:\nPatterns *\nCreate Near\n\
                 Sync Pull\nSyncState *\n",
                port = ctx.imap_port(),
                user = mb.user,
                pass = mb.password,
                md = maildir.display(),
            ),
        )?;
        let argv = vec![
            "mbsync".to_owned(),
            "-c".to_owned(),
            rc.display().to_string(),
            "-a".to_owned(),
        ];
        run_maildir_peer(ctx, mb, "mbsync", &mut row, &argv, work.path(), &maildir)?;
        // Again, on its own state and an unchanged server: its no-change
        // resync.
        let started = Instant::now();
        let out = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env("HOME", work.path())
            .output()
            .context("Cannot run mbsync again")?;
        ensure!(
            out.status.success(),
            "mbsync's resync failed: {}",
            tail(&facteur_tests::text(&out.stderr), 5)
        );
        row.resync_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        Ok(())
    })();
    finish(row, result)
}

// ---------------------------------------------------------------------------
// fetchmail
// ---------------------------------------------------------------------------

/// How fetchmail stores what it fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchmailSink {
    /// One `sh -c 'cat > new/<pid>'` per message: the least an MDA costs.
    Maildir,
    /// Every message appended to one BSMTP file, no process per message.
    Bsmtp,
}

/// fetchmail downloading every message of `mb` over POP3, keeping them on
/// the server.
pub fn fetchmail(ctx: &Ctx<'_>, mb: &Mailbox, sink: FetchmailSink) -> Row {
    let (tool, setup) = match sink {
        FetchmailSink::Maildir => (
            "fetchmail",
            format!(
                "pop3 {}, keep, mda `sh -c cat` into a Maildir",
                ctx.security()
            ),
        ),
        FetchmailSink::Bsmtp => (
            "fetchmail-bsmtp",
            format!("pop3 {}, keep, appended to a BSMTP file", ctx.security()),
        ),
    };
    let mut row = Row::new("pop3", tool, &package_version("fetchmail"), &setup);
    let result = (|| -> Result<()> {
        let work = workdir("bench-fetchmail-")?;
        let maildir = work.path().join("Maildir");
        make_maildir(&maildir)?;
        let bsmtp = work.path().join("mail.bsmtp");
        let deliver = match sink {
            // noclobber: a reused pid fails the delivery instead of
            // overwriting a message (the count check would then say so).
            FetchmailSink::Maildir => format!(
                "mda \"set -C; exec cat > {}/new/$$.fetchmail\"",
                maildir.display()
            ),
            FetchmailSink::Bsmtp => format!("bsmtp \"{}\"", bsmtp.display()),
        };
        let (host, security) = if ctx.tls {
            (
                ctx.dovecot.host(),
                format!(
                    " ssl sslcertck sslcertfile \"{}\"",
                    ctx.dovecot.ca_cert_path().display()
                ),
            )
        } else {
            (LOOPBACK, " sslproto ''".to_owned())
        };
        let rc = work.path().join("fetchmailrc");
        write_private(
            &rc,
            &format!(
                "set no bouncemail\nset no syslog\n\
                 poll {host} protocol pop3 port {port} auth password timeout 300\n  \
                 user \"{user}\" with password \"{pass}\"\n  \
                 options keep fetchall no rewrite{security}\n  {deliver}\n",
                port = ctx.pop3_port(),
                user = mb.user,
                pass = mb.password,
            ),
        )?;
        let argv = vec![
            "fetchmail".to_owned(),
            "--silent".to_owned(),
            "-f".to_owned(),
            rc.display().to_string(),
            "--idfile".to_owned(),
            work.path().join("fetchids").display().to_string(),
        ];
        let home = work.path().display().to_string();
        let env = [("HOME", home.clone()), ("FETCHMAILHOME", home)];
        run_peer(ctx, mb, "fetchmail", &mut row, &argv, &env, || match sink {
            FetchmailSink::Maildir => Ok((measure::count_maildir_messages(&maildir)?, maildir)),
            FetchmailSink::Bsmtp => {
                let text =
                    fs::read(&bsmtp).with_context(|| format!("Cannot read {}", bsmtp.display()))?;
                let messages = text
                    .split(|&b| b == b'\n')
                    .filter(|l| l.strip_suffix(b"\r").unwrap_or(l) == b"DATA")
                    .count() as u64;
                Ok((messages, bsmtp))
            }
        })
    })();
    finish(row, result)
}

// ---------------------------------------------------------------------------
// getmail
// ---------------------------------------------------------------------------

/// getmail6 downloading every message of `mb` over POP3 into a Maildir,
/// keeping them on the server.
pub fn getmail(ctx: &Ctx<'_>, mb: &Mailbox) -> Row {
    let setup = format!("pop3 {}, delete = false, Maildir", ctx.security());
    let version = crate::first_line(&ctx.getmail.display().to_string(), &["--version"]);
    let mut row = Row::new("pop3", "getmail", &version, &setup);
    let result = (|| -> Result<()> {
        let work = workdir("bench-getmail-")?;
        let maildir = work.path().join("Maildir");
        make_maildir(&maildir)?;
        let state = work.path().join("state");
        fs::create_dir_all(&state).context("Cannot create getmail's state directory")?;
        let retriever = if ctx.tls {
            format!(
                "type = SimplePOP3SSLRetriever\nserver = {}\nca_certs = {}\n",
                ctx.dovecot.host(),
                ctx.dovecot.ca_cert_path().display()
            )
        } else {
            format!("type = SimplePOP3Retriever\nserver = {LOOPBACK}\n")
        };
        // getmail refuses to deliver as root: as root, it delivers as
        // nobody, who must be able to reach and write the Maildir.
        let deliver_as = if facteur_tests::running_as_root() {
            let (uid, gid) = nobody()?;
            fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755))
                .context("Cannot chmod getmail's work directory")?;
            for dir in [maildir.clone()]
                .into_iter()
                .chain(["cur", "new", "tmp"].map(|s| maildir.join(s)))
            {
                std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                    .with_context(|| format!("Cannot chown {}", dir.display()))?;
            }
            "user = nobody\n"
        } else {
            ""
        };
        let rc = work.path().join("getmailrc");
        write_private(
            &rc,
            &format!(
                "[retriever]\n{retriever}port = {port}\nusername = {user}\npassword = {pass}\n\n\
                 [destination]\ntype = Maildir\npath = {md}/\n{deliver_as}\n\
                 [options]\nread_all = true\ndelete = false\ndelivered_to = false\n\
                 received = false\nverbose = 0\n",
                port = ctx.pop3_port(),
                user = mb.user,
                pass = mb.password,
                md = maildir.display(),
            ),
        )?;
        let argv = vec![
            ctx.getmail.display().to_string(),
            "--getmaildir".to_owned(),
            state.display().to_string(),
            "--rcfile".to_owned(),
            rc.display().to_string(),
        ];
        run_maildir_peer(ctx, mb, "getmail", &mut row, &argv, work.path(), &maildir)
    })();
    finish(row, result)
}

/// Run a peer and measure it exactly as facteurd is measured: wall and CPU
/// time, peak RSS, the server's and the rest of the machine's CPU, then
/// `stored` (how many messages it stored, and where, for the disk they
/// take); an exit other than 0, or another number of messages than the
/// mailbox holds, is an error.
fn run_peer(
    ctx: &Ctx<'_>,
    mb: &Mailbox,
    name: &str,
    row: &mut Row,
    argv: &[String],
    env: &[(&str, String)],
    stored: impl FnOnce() -> Result<(u64, PathBuf)>,
) -> Result<()> {
    let log = log_path(ctx, mb);
    row.log = Some(log.clone());
    let master = ctx
        .dovecot
        .pid()
        .ok_or_else(|| anyhow!("Dovecot is not running"))?;
    let server0 = measure::server_cpu(master);
    let busy0 = measure::machine_busy();
    let t = measure::run_timed(argv, env, &log, ctx.timeout)?;
    row.server_cpu_s = measure::server_cpu(master) - server0;
    row.other_cpu_s = (measure::machine_busy() - busy0 - t.cpu.total() - row.server_cpu_s).max(0.0);
    set_cpu(row, t.wall, t.cpu, t.max_rss_kib);
    row.minor_faults = t.minor_faults;
    let (messages, store) = stored()?;
    row.messages = messages;
    set_store(row, measure::disk_usage(&[store])?, ctx.raw_bytes);
    ensure!(
        t.exit == Some(0),
        "{name} exited with {:?}; its log ends:\n{}",
        t.exit,
        tail(&fs::read_to_string(&log).unwrap_or_default(), 10)
    );
    ensure!(
        row.messages == u64::from(ctx.expected),
        "{name} stored {} messages, not {}",
        row.messages,
        ctx.expected
    );
    Ok(())
}

/// [`run_peer`] for a peer that delivers into `maildir`, with `HOME` at
/// `home`.
fn run_maildir_peer(
    ctx: &Ctx<'_>,
    mb: &Mailbox,
    name: &str,
    row: &mut Row,
    argv: &[String],
    home: &Path,
    maildir: &Path,
) -> Result<()> {
    let env = [("HOME", home.display().to_string())];
    run_peer(ctx, mb, name, row, argv, &env, || {
        Ok((
            measure::count_maildir_messages(maildir)?,
            maildir.to_path_buf(),
        ))
    })
}

//! The Dovecot configuration file a test server runs with.

use std::fmt::Write as _;

use super::{Dovecot, ServerTls, LISTEN_IP};

impl Dovecot {
    /// The configuration file for the current ports.
    pub(super) fn render_config(&self) -> String {
        let s = &self.setup;
        let o = &s.options;
        let id = &s.identity;
        let root = self.dir.path().display();
        let mut c = String::new();
        let _ = writeln!(
            c,
            "# Written by facteur-tests (tests/src/dovecot.rs) for one test run.\n\
             # Nothing here reads /etc/dovecot or touches a system service.\n\
             instance_name = {instance}\n\
             base_dir = {run}\n\
             state_dir = {root}/state\n\
             log_path = {log}\n\
             auth_verbose = yes\n\
             protocols = imap pop3 lmtp\n\
             listen = {LISTEN_IP}\n\
             auth_mechanisms = plain login\n\
             # Loopback counts as secured for Dovecot anyway; this also covers\n\
             # logins on the plain ports from anywhere else.\n\
             disable_plaintext_auth = no\n\
             first_valid_uid = 1\n\
             mail_location = maildir:~/Maildir\n\
             mail_max_userip_connections = {maxconn}\n\
             imap_idle_notify_interval = {idle} secs\n\
             pop3_uidl_format = %08Xu%08Xv\n",
            instance = s.instance,
            run = s.run.display(),
            log = s.log.display(),
            maxconn = o.max_userip_connections,
            idle = o.idle_notify_interval.as_secs().max(1),
        );
        match self.tls {
            ServerTls::Off => c.push_str("ssl = no\n"),
            _ => {
                let _ = writeln!(
                    c,
                    "ssl = yes\nssl_cert = <{root}/server.pem\nssl_key = <{root}/server.key"
                );
            }
        }
        let auto = if o.auto_special_folders {
            "subscribe"
        } else {
            "no"
        };
        let _ = writeln!(
            c,
            "namespace inbox {{\n  inbox = yes\n  separator = {}",
            o.separator
        );
        for (name, flag) in [
            ("Drafts", "\\Drafts"),
            ("Sent", "\\Sent"),
            ("Trash", "\\Trash"),
            ("Junk", "\\Junk"),
            ("Archive", "\\Archive"),
        ] {
            let _ = writeln!(
                c,
                "  mailbox {name} {{\n    special_use = {flag}\n    auto = {auto}\n  }}"
            );
        }
        c.push_str("}\n");
        // One passwd-file per user: a new user's file is read at its first
        // lookup, without waiting for Dovecot's once-a-second re-check.
        let _ = writeln!(
            c,
            "passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {users}/%u\n}}\n\
             userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={home}/%u\n}}",
            users = s.users.display(),
            uid = id.mail_uid,
            gid = id.mail_gid,
            home = s.home.display(),
        );
        let chroot = if id.root { "" } else { "  chroot =\n" };
        let _ = writeln!(
            c,
            "service imap-login {{\n{chroot}  inet_listener imap {{\n    port = {}\n  }}",
            self.ports.imap
        );
        if let Some(p) = self.ports.imaps {
            let _ = writeln!(
                c,
                "  inet_listener imaps {{\n    port = {p}\n    ssl = yes\n  }}"
            );
        }
        c.push_str("}\n");
        let _ = writeln!(
            c,
            "service pop3-login {{\n{chroot}  inet_listener pop3 {{\n    port = {}\n  }}",
            self.ports.pop3
        );
        if let Some(p) = self.ports.pop3s {
            let _ = writeln!(
                c,
                "  inet_listener pop3s {{\n    port = {p}\n    ssl = yes\n  }}"
            );
        }
        c.push_str("}\n");
        let _ = writeln!(
            c,
            "service lmtp {{\n  unix_listener lmtp {{\n    mode = 0666\n  }}\n  \
             inet_listener lmtp {{\n    address = {LISTEN_IP}\n    port = {}\n  }}\n}}",
            self.ports.lmtp
        );
        c.push_str("service anvil {\n");
        c.push_str(chroot);
        if !o.auth_delays {
            // Without this listener the auth process finds no penalty socket
            // (ENOENT) and keeps no per-IP penalty: otherwise every failed
            // login from 127.0.0.1 delays the next ones by up to 15 s.
            c.push_str("  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n");
        }
        c.push_str("}\n");
        if !o.auth_delays {
            c.push_str("auth_failure_delay = 0\n");
        }
        if !id.root {
            // Dovecot's "rootless" setup: every service runs as us.
            let _ = writeln!(
                c,
                "default_login_user = {u}\ndefault_internal_user = {u}\n\
                 default_internal_group = {g}\n\
                 service auth-worker {{\n  user = $default_internal_user\n}}",
                u = id.user,
                g = id.group,
            );
        }
        if !o.extra_config.is_empty() {
            c.push_str(&o.extra_config);
            c.push('\n');
        }
        c
    }
}

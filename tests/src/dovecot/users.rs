//! Users and their passwords, and IMAP sessions as them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use super::encoding::base64;
use super::imap_client::ImapClient;
use super::process::wait_for_next_second;
use super::Dovecot;

impl Dovecot {
    /// Add a user, or change a user's password, before or after start.
    ///
    /// `name` is the login (an address such as `alice@example.test` is
    /// fine: ASCII letters, digits and `.-_@+`). Dovecot lowercases logins,
    /// so `Alice` and `alice` are one user. Any password works, colons and
    /// non-ASCII included (it is stored base64-encoded).
    ///
    /// A new user can log in at once. A password *change* on a running
    /// server waits for the next wall-clock second: Dovecot re-reads a
    /// passwd-file at most once a second and only when its mtime or size
    /// changed.
    pub fn add_user(&self, name: &str, password: &str) {
        assert!(
            !name.is_empty()
                && name.len() <= 100
                && !name.starts_with('.')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b)),
            "add_user: `{name}` is not a login this harness accepts \
             (ASCII letters, digits and .-_@+, not starting with a dot)"
        );
        let login = name.to_ascii_lowercase();
        let path = self.setup.users.join(&login);
        let old_mtime = fs::metadata(&path).and_then(|m| m.modified()).ok();
        let line = format!(
            "{login}:{{PLAIN.b64}}{}\n",
            base64(password.as_bytes(), b"+/", true)
        );
        let tmp = self.setup.users.join(format!(".{login}.tmp"));
        fs::write(&tmp, line).expect("write a passwd-file");
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).expect("chmod a passwd-file");
        if let Some(old) = old_mtime {
            // Same size and same second would look unchanged to Dovecot.
            let bumped = old + Duration::from_secs(1);
            let mtime = SystemTime::now().max(bumped);
            fs::File::options()
                .write(true)
                .open(&tmp)
                .and_then(|f| f.set_modified(mtime))
                .expect("set a passwd-file's mtime");
        }
        fs::rename(&tmp, &path).expect("install a passwd-file");
        self.users_lock().insert(login, password.to_owned());
        if old_mtime.is_some() && self.is_running() {
            wait_for_next_second();
        }
    }

    /// The password the harness knows for `user`.
    fn password(&self, user: &str) -> String {
        self.users_lock()
            .get(&user.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(|| {
                panic!("`{user}` is not a user of this Dovecot: call add_user first")
            })
    }

    /// A logged-in IMAP session for `user` on the plain port.
    pub fn imap_client(&self, user: &str) -> ImapClient {
        let password = self.password(user);
        let mut client = ImapClient::connect(self.ports.imap);
        client.login(user, &password);
        client
    }
}

//! A disposable `gnome-keyring-daemon` on the private bus.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use tempfile::TempDir;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use crate::{private_dir, run, short_tempdir, text, tool, Bus, DEADLINE};

/// The password the harness gives gnome-keyring for its login keyring.
const KEYRING_PASSWORD: &str = "facteur-test-keyring";

/// `gnome-keyring-daemon` serving the Secret Service on a [`Bus`], with an
/// unlocked login keyring in a throwaway home. Killed on drop.
pub struct Keyring {
    child: Child,
    /// HOME, XDG_RUNTIME_DIR, XDG_DATA_HOME and the log live here.
    dir: TempDir,
    address: String,
}

impl Keyring {
    /// Start gnome-keyring on `bus` and wait until it owns
    /// `org.freedesktop.secrets`.
    pub fn start(bus: &Bus) -> Keyring {
        let daemon = tool("gnome-keyring-daemon", "gnome-keyring");
        let dir = short_tempdir("facteur-keyring-");
        let home = dir.path().join("home");
        let runtime = private_dir(&dir.path().join("run"));
        private_dir(&home.join(".local/share"));
        private_dir(&home.join(".config"));
        let log = fs::File::create(dir.path().join("keyring.log")).expect("create a log");
        let log2 = log.try_clone().expect("clone the log handle");
        let mut child = Command::new(daemon)
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .expect("start gnome-keyring-daemon");
        {
            // --unlock reads the login keyring's password from stdin, up to
            // end of file: close it after writing.
            let mut stdin = child.stdin.take().expect("stdin is piped");
            stdin
                .write_all(format!("{KEYRING_PASSWORD}\n").as_bytes())
                .expect("give gnome-keyring its password");
        }
        let keyring = Keyring {
            child,
            dir,
            address: bus.address().to_owned(),
        };
        if !bus.wait_for_name("org.freedesktop.secrets", true, DEADLINE) {
            panic!(
                "gnome-keyring-daemon did not take org.freedesktop.secrets within \
                 {DEADLINE:?}; its log:\n{}",
                keyring.log()
            );
        }
        keyring
    }

    /// What gnome-keyring wrote.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("keyring.log")).unwrap_or_default()
    }

    /// The keyring's home (its keyrings are under `.local/share/keyrings`).
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `secret-tool search --all ATTR VALUE …`: the standard output and
    /// standard error together (secret-tool prints attributes on stderr).
    pub fn search(&self, attrs: &[(&str, &str)]) -> String {
        let secret_tool = tool("secret-tool", "libsecret-tools");
        let mut cmd = Command::new(secret_tool);
        cmd.args(["search", "--all"])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address);
        for (k, v) in attrs {
            cmd.args([k, v]);
        }
        let out = run(&mut cmd, None);
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    }

    /// `secret-tool lookup ATTR VALUE …`: the secret, if one matches.
    pub fn lookup(&self, attrs: &[(&str, &str)]) -> Option<String> {
        let secret_tool = tool("secret-tool", "libsecret-tools");
        let mut cmd = Command::new(secret_tool);
        cmd.arg("lookup")
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address);
        for (k, v) in attrs {
            cmd.args([k, v]);
        }
        let out = run(&mut cmd, None);
        (out.status.success() && !out.stdout.is_empty()).then(|| text(&out.stdout))
    }

    /// Lock every collection (as a screen locker would).
    pub fn lock(&self, bus: &Bus) {
        let collections: Vec<OwnedObjectPath> = bus
            .call(
                "org.freedesktop.secrets",
                "/org/freedesktop/secrets",
                "org.freedesktop.DBus.Properties",
                "Get",
                &("org.freedesktop.Secret.Service", "Collections"),
            )
            .expect("read the keyring's collections")
            .body()
            .deserialize::<OwnedValue>()
            .expect("Get returns a variant")
            .try_into()
            .expect("Collections is ao");
        let paths: Vec<zbus::zvariant::ObjectPath<'_>> =
            collections.iter().map(|p| p.as_ref()).collect();
        bus.call(
            "org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service",
            "Lock",
            &(paths,),
        )
        .expect("lock the keyring");
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

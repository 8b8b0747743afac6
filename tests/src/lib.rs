//! # facteur end-to-end test harness
//!
//! Starts the real parts a test needs and tears them down on drop:
//!
//! - [`Bus`]: a private `dbus-daemon` with its own configuration file (type
//!   session, a unix socket in a temporary directory, and a service directory
//!   of its own, so that only what a test puts there can be bus-activated:
//!   the system's gnome-keyring is never activated behind a test's back).
//! - [`Keyring`]: `gnome-keyring-daemon --foreground --unlock
//!   --components=secrets` on that bus, with a throwaway home.
//! - [`Facteurd`]: the real `facteurd` binary from this cargo target directory,
//!   with temporary `--config-dir` and `--data-dir`, its output in a log file.
//! - [`Signals`]: a recorder of every signal the daemon emits
//!   (`PropertiesChanged`, `InterfacesAdded`, `InterfacesRemoved`, …).
//! - [`Bus::ctl`] and [`Bus::gdbus`] run `facteurctl` and the real `gdbus` (an
//!   outside client) against the private bus.
//! - [`xml`]: introspection XML, normalised for comparison.
//! - [`dovecot`] and [`tls`]: a disposable Dovecot and a test CA for the
//!   mail-server tests (see those modules).
//!
//! The harness is synchronous: it owns a small tokio runtime per bus for its
//! own zbus connection, and every wait in it has a deadline. A tool that is
//! missing makes the test fail with the Debian package to install and the
//! README's test command; nothing here ever skips a test silently.
//!
//! One module per thing it starts or observes, all re-exported here so that
//! `use facteur_tests::*;` gives every helper: `process` (tools, binaries,
//! commands with a deadline, `wait_until`), `files` (snapshots, modes),
//! `bus` ([`Bus`], [`CallError`]), `signals` ([`Signals`]), `props`
//! ([`Props`], waits on an account's status), `settings` (the [`Settings`]
//! builder), `keyring` ([`Keyring`]), `daemon` ([`Facteurd`]), and the public
//! modules [`dovecot`], [`mta`], [`scripted_imap`], [`tls`], [`notifications`]
//! and [`xml`].
//!
//! What the harness leaves to the tests: what to assert. It only starts,
//! observes and stops.

mod bus;
mod daemon;
mod files;
mod keyring;
mod process;
mod props;
mod settings;
mod signals;

pub mod dovecot;
pub mod keyring_unlock;
pub mod mta;
pub mod notifications;
pub mod scripted_imap;
pub mod silent;
pub mod tls;
pub mod two_way;
pub mod two_way_fixture;
pub mod xml;

pub use bus::*;
pub use daemon::*;
pub use files::*;
pub use keyring::*;
pub use process::*;
pub use props::*;
pub use settings::*;
pub use signals::*;

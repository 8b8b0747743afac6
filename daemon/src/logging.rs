//! # Logging
//!
//! tracing to the systemd journal when stderr is connected to it (checked as
//! systemd.exec(5) says: `$JOURNAL_STREAM` must name the device and inode of
//! our stderr), to stderr otherwise. The filter comes from `--log-level` or
//! `RUST_LOG`.
//!
//! Whatever that filter says, a second filter that no directive can widen
//! caps the dependencies whose verbose output carries credentials (see
//! [`CAPPED`]): `trace`, `async_imap=trace` or `lettre=debug` never put a
//! password, a SASL response or a token into the log. facteur's own
//! protocol traces (POP3) redact credentials where they are written.

use std::io::IsTerminal as _;
use std::os::fd::AsFd;

use tracing::{Level, Metadata};
use tracing_subscriber::{
    filter::filter_fn, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter,
};

/// Log targets (crates, with their modules) whose logging at a verbose level
/// holds secrets, and the most verbose level let through from each.
///
/// - `async_imap` logs every command it writes at TRACE (`encode: input:
///   …`), `LOGIN user password` and the base64 SASL PLAIN response of
///   AUTHENTICATE included, and every line it reads.
/// - `lettre` logs every SMTP line it writes at DEBUG (`Wrote: AUTH PLAIN
///   …`) when its `tracing` feature is on; capped in case a feature change
///   ever turns it on.
pub const CAPPED: &[(&str, Level)] = &[("async_imap", Level::INFO), ("lettre", Level::INFO)];

/// Whether a log record may be written: false for the verbose levels of the
/// [`CAPPED`] targets, true for everything else (the user's filter decides).
pub fn secret_safe(meta: &Metadata<'_>) -> bool {
    let target = meta.target();
    !CAPPED
        .iter()
        .any(|(prefix, max)| under(target, prefix) && *meta.level() > *max)
}

/// Whether `target` is `module` or one of its submodules.
fn under(target: &str, module: &str) -> bool {
    target
        .strip_prefix(module)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// Install the global subscriber. Never fails: a bad filter falls back to
/// `info`, a missing journal socket to stderr.
pub fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Both are global filters: a record is written only when each lets it
    // through, so the user's directives can narrow but never widen the cap.
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(filter_fn(secret_safe));
    if stderr_is_journal() {
        if let Ok(journald) = tracing_journald::layer() {
            registry.with(journald).init();
            return;
        }
    }
    registry
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false),
        )
        .init();
}

fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    let Ok(stat) = rustix::fs::fstat(std::io::stderr().as_fd()) else {
        return false;
    };
    dev.parse::<u64>().ok() == Some(stat.st_dev) && ino.parse::<u64>().ok() == Some(stat.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer into a shared buffer, for a scoped subscriber.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(data);
            }
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn targets_are_matched_by_module_not_by_prefix() {
        assert!(under("async_imap", "async_imap"));
        assert!(under("async_imap::imap_stream", "async_imap"));
        assert!(!under("async_imapx", "async_imap"));
        assert!(!under("facteurd::imap", "async_imap"));
    }

    #[test]
    fn no_directive_lets_the_capped_targets_trace() {
        for directives in [
            "trace",
            "async_imap=trace",
            "async_imap::imap_stream=trace",
            "lettre=trace,async_imap=debug",
        ] {
            let buffer = Buffer::default();
            let writer = buffer.clone();
            let subscriber = tracing_subscriber::registry()
                .with(EnvFilter::new(directives))
                .with(filter_fn(secret_safe))
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(move || writer.clone())
                        .with_ansi(false),
                );
            tracing::subscriber::with_default(subscriber, || {
                tracing::trace!(target: "async_imap::imap_stream", "encode: SECRET-1");
                tracing::debug!(target: "async_imap", "SECRET-2");
                tracing::debug!(target: "lettre::transport::smtp", "Wrote: SECRET-3");
                tracing::info!(target: "async_imap::imap_stream", "kept-info");
                tracing::trace!(target: "facteurd::pop3", "kept-trace");
            });
            let text =
                String::from_utf8_lossy(&buffer.0.lock().map(|b| b.clone()).unwrap_or_default())
                    .into_owned();
            assert!(!text.contains("SECRET"), "{directives}: {text}");
            assert!(text.contains("kept-info"), "{directives}: {text}");
            if directives == "trace" {
                assert!(text.contains("kept-trace"), "{directives}: {text}");
            }
        }
    }
}

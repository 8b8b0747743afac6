//! Running tools and binaries: where they are, with a deadline, and their output.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The command that installs what the tests need and runs the whole suite,
/// as the README says.
pub const TEST_COMMAND: &str = "scripts/test.sh";

/// The last `n` lines of a log, for failure messages.
pub fn last_lines(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How long any single wait in the harness may take before the test fails.
///
/// Generous on purpose: CI machines have two cores and run two tests at once,
/// each with its own dbus-daemon and facteurd.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// How often a wait polls its condition.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// The absolute path of an external tool, or a test failure that names the
/// Debian package providing it and the README's test command.
pub fn tool(name: &str, package: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for extra in ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        dirs.push(PathBuf::from(extra));
    }
    for dir in dirs {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return candidate;
        }
    }
    panic!(
        "`{name}` is not installed: install the Debian package `{package}` \
         (`sudo apt-get install {package}`), or run `{TEST_COMMAND}`, which \
         installs every package the tests need and then runs them"
    );
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `target/<profile>/`, the directory the workspace binaries are built into.
///
/// Integration tests run from `target/<profile>/deps/`, so this is the parent
/// of the directory of the running test executable.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let deps = exe.parent().expect("the test executable is in a directory");
    if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("deps/ has a parent").to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

/// The path of a workspace binary (`facteurd`, `facteurctl`) built for the
/// same profile as the running test, or a failure saying how to build it.
pub fn workspace_binary(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        is_executable(&path),
        "{} does not exist: build the workspace first with `cargo build --workspace` \
         (`{TEST_COMMAND}` does), then run the tests again",
        path.display()
    );
    path
}

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// Whether the tests run as root (file modes do not stop root from reading).
pub fn running_as_root() -> bool {
    // The owner of a file we create is our effective uid.
    let dir = tempfile::tempdir().expect("create a temporary directory");
    use std::os::unix::fs::MetadataExt;
    fs::metadata(dir.path())
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A temporary directory whose socket paths stay under the 108-byte limit of
/// `sockaddr_un`, even when `TMPDIR` is long.
pub fn short_tempdir(prefix: &str) -> TempDir {
    let base = std::env::temp_dir();
    let base = if base.as_os_str().len() > 60 {
        PathBuf::from("/tmp")
    } else {
        base
    };
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .expect("create a temporary directory")
}

/// Create a directory (and its parents) with mode 0700.
pub fn private_dir(path: &Path) -> PathBuf {
    fs::create_dir_all(path).expect("create a private directory");
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).expect("chmod 0700");
    path.to_path_buf()
}

/// Run a command to completion with `stdin` as its standard input (or none),
/// failing the test if it takes longer than [`DEADLINE`].
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    run_with_deadline(cmd, stdin, DEADLINE)
}

/// [`run`] with an explicit deadline.
pub fn run_with_deadline(cmd: &mut Command, stdin: Option<&[u8]>, limit: Duration) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let writer = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let bytes = bytes.to_vec();
        thread::spawn(move || {
            // The child may exit without reading: a broken pipe is its answer.
            let _ = pipe.write_all(&bytes);
        })
    });
    let out = Collector::start(child.stdout.take().expect("stdout is piped"));
    let err = Collector::start(child.stderr.take().expect("stderr is piped"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                text(&out.finish(Duration::from_millis(200))),
                text(&err.finish(Duration::from_millis(200)))
            );
        }
        thread::sleep(POLL);
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Output {
        status,
        stdout: out.finish(Duration::from_secs(2)),
        stderr: err.finish(Duration::from_secs(2)),
    }
}

/// Reads a pipe to its end on a thread of its own, keeping what it read
/// where [`Collector::finish`] can take it even if the pipe never closes (a
/// grandchild may still hold it).
struct Collector {
    buf: Arc<Mutex<Vec<u8>>>,
    reader: thread::JoinHandle<()>,
}

impl Collector {
    fn start<R: Read + Send + 'static>(mut r: R) -> Collector {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let reader = thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = r.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("the output buffer is not poisoned")
                    .extend_from_slice(&chunk[..n]);
            }
        });
        Collector { buf, reader }
    }

    /// What was read, after waiting up to `grace` for the end of the pipe.
    fn finish(self, grace: Duration) -> Vec<u8> {
        let _ = wait_until(grace, || self.reader.is_finished().then_some(()));
        let out = self
            .buf
            .lock()
            .expect("the output buffer is not poisoned")
            .clone();
        out
    }
}

/// Wait for a child to exit, killing it and failing the test after `limit`.
pub fn wait_child(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {limit:?}");
        }
        thread::sleep(POLL);
    }
}

/// Poll `cond` until it returns `Some`, or give up after `limit`.
pub fn wait_until<T>(limit: Duration, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        thread::sleep(POLL);
    }
}

/// Send a signal (`TERM`, `KILL`, …) to a process, with the shell's `kill`.
///
/// The workspace forbids `unsafe`, so no `libc::kill`.
pub fn send_signal(pid: u32, signal: &str) {
    let out = run(
        Command::new("/bin/sh").args(["-c", &format!("kill -s {signal} {pid}")]),
        None,
    );
    assert!(
        out.status.success(),
        "kill -s {signal} {pid} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Lossy UTF-8 of a byte buffer, for assertions and messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The non-empty lines of a text.
pub fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// Assert that a failed command printed exactly one non-empty line on
/// stderr, and return it.
pub fn one_stderr_line(out: &Output, what: &str) -> String {
    let err = text(&out.stderr);
    let l = lines(&err);
    assert_eq!(
        l.len(),
        1,
        "{what}: expected one line on stderr, got {}:\n{err}",
        l.len()
    );
    l[0].to_owned()
}

/// The exit code of a finished process, failing the test if it was killed
/// by a signal instead.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| panic!("the process was killed by a signal: {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_fails_with_the_package_and_the_test_command() {
        let panic = std::panic::catch_unwind(|| tool("facteur-no-such-tool", "facteur-pkg"))
            .expect_err("a missing tool must fail the test");
        let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("apt-get install facteur-pkg"), "{msg}");
        assert!(msg.contains(TEST_COMMAND), "{msg}");
    }

    #[test]
    fn a_present_tool_is_found() {
        assert!(tool("sh", "dash").is_absolute());
    }

    #[test]
    fn run_enforces_its_deadline() {
        let r = std::panic::catch_unwind(|| {
            run_with_deadline(
                Command::new("/bin/sh").args(["-c", "sleep 5"]),
                None,
                Duration::from_millis(100),
            )
        });
        assert!(r.is_err(), "a command past its deadline must fail the test");
    }
}

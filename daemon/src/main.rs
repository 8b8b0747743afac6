//! `facteurd`: parses the command line, sets up logging and hands over to
//! [`facteurd::run`]. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

use facteurd::{Options, StartError};

/// glibc's malloc gives each thread that allocates its own arena and keeps
/// freed blocks in them; with message bodies of up to a few MiB passing
/// through several threads, that retained memory is most of the peak RSS.
/// Two arenas keep it down. glibc reads `MALLOC_ARENA_MAX` only when the
/// process starts, so set it and start again (same PID, same arguments).
fn limit_malloc_arenas() {
    use std::os::unix::process::CommandExt as _;
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("MALLOC_ARENA_MAX", "2")
        .exec();
    // exec() returns only on failure: run as we are.
    eprintln!("facteurd: cannot restart with MALLOC_ARENA_MAX=2 ({error}); continuing");
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let options = Options::parse();
    facteurd::logging::init(&options.log_level);
    // Few threads: the work is I/O bound, and every thread that allocates
    // gets its own malloc arena, which is what peak memory is made of.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("facteurd: Cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = async {
        facteurd::shutdown_signal().await;
    };
    match runtime.block_on(facteurd::run(options, shutdown)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError::Fatal(e)) => {
            // One line a person can act on, the whole chain in it.
            eprintln!("facteurd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! `facteurd`: parses the command line, sets up logging and hands over to
//! [`facteurd::run`]. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

use facteurd::{Options, StartError};

fn main() -> ExitCode {
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

//! `facteurd`: parses the command line, sets up logging and hands over to
//! [`facteurd::run`]. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use facteurd::{Options, StartError};

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    facteurd::logging::init(&options.log_level);
    let shutdown = async {
        facteurd::shutdown_signal().await;
    };
    match facteurd::run(options, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError::Fatal(e)) => {
            // One line a person can act on, the whole chain in it.
            eprintln!("facteurd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

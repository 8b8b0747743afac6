//! # facteurctl
//!
//! The command line of facteur: a thin client of `facteurd` over D-Bus,
//! using only the names and proxies of the `facteur-dbus` crate.
//!
//! Modules, in the order a command flows through them: [`cli`] (the clap
//! definition), [`settings`] and [`password`] (typed settings and passwords
//! from the command line and standard input), [`commands`] (one function
//! per subcommand), [`bus`] (the connection and proxies), [`error`] (what
//! went wrong, as one line and an exit code), [`output`] (tables, JSON,
//! scrubbing), [`progress`] (the progress of a sync), [`shape`] (the one style of every
//! `--json` output), and [`wire`] (the property and dictionary key names read
//! here).
//!
//! Exit status: 0 on success, 1 when the daemon or the bus fails or
//! refuses, 2 on a usage error (clap's, or one found before anything was
//! sent).

// Tests may unwrap: a panic is how they fail. The non-test build is still
// checked without this.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod bus;
mod cli;
mod commands;
mod error;
mod output;
mod password;
mod progress;
mod settings;
mod shape;
mod wire;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::error::Failure;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Failed(format!("cannot start the async runtime: {e}")))
        .and_then(|runtime| runtime.block_on(commands::run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if let Some(line) = failure.line() {
                // Nothing more can be done if standard error is gone too.
                let _ = writeln!(std::io::stderr(), "facteurctl: {line}");
            }
            ExitCode::from(failure.exit_code())
        }
    }
}

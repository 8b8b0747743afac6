//! # Generated documentation
//!
//! The `completions` and `man` subcommands: shell completion scripts
//! (clap_complete) and manual pages (clap_mangen), both generated from the
//! clap definition in [`crate::cli`], so they never drift from the real
//! command line.

use std::fs;
use std::path::Path;

use clap_complete::Shell;

use crate::cli::command_for_docs;
use crate::error::Failure;
use crate::output;

/// The program name used in generated files.
const BIN: &str = "facteurctl";

/// The completion script for `shell`.
pub fn completion_script(shell: Shell) -> Vec<u8> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut command_for_docs(), BIN, &mut buf);
    buf
}

/// `completions SHELL`: prints the script.
pub fn completions(shell: Shell) -> Result<(), Failure> {
    output::bytes(&completion_script(shell))
}

/// The main manual page, facteurctl(1).
pub fn main_page() -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(command_for_docs())
        .render(&mut buf)
        .map_err(|e| Failure::Failed(format!("cannot render the manual page: {e}")))?;
    Ok(buf)
}

/// Writes facteurctl.1 and one page per visible subcommand
/// (facteurctl-account-add.1, …) into `dir`.
pub fn write_pages(dir: &Path) -> Result<(), Failure> {
    let failed = |e: std::io::Error| {
        Failure::Failed(format!(
            "cannot write manual pages into '{}': {e}",
            dir.display()
        ))
    };
    fs::create_dir_all(dir).map_err(failed)?;
    clap_mangen::generate_to(command_for_docs(), dir).map_err(failed)
}

/// `man [DIR]`: writes every page into DIR, or prints the main page.
pub fn man(dir: Option<&Path>) -> Result<(), Failure> {
    match dir {
        Some(dir) => write_pages(dir),
        None => output::bytes(&main_page()?),
    }
}

#[cfg(test)]
mod tests;

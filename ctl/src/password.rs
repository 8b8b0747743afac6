//! # Passwords
//!
//! Passwords never come from argv, where other users (`ps`) and the shell
//! history can read them. They come from standard input (`--password-stdin`,
//! `--smtp-password-stdin`: one per line, incoming first), or from a prompt
//! that does not echo when standard input is a terminal. Standard input is
//! reached through [`Input`] so the rules can be tested without a terminal.

use std::io::{self, BufRead, IsTerminal};

use crate::error::Failure;

/// The password flags shared by `account add` and `account set`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::Args)]
pub struct PasswordFlags {
    /// Read the incoming server's password from the first line of standard input
    #[arg(long)]
    pub password_stdin: bool,
    /// Read the SMTP password from standard input (the second line when
    /// --password-stdin is given too, else the first)
    #[arg(long)]
    pub smtp_password_stdin: bool,
}

/// Where passwords are read from.
pub trait Input {
    /// Whether a person is typing (standard input is a terminal).
    fn is_terminal(&self) -> bool;
    /// The next line, without its line ending; `None` at end of input.
    fn read_line(&mut self) -> io::Result<Option<String>>;
    /// Asks on the terminal without echo.
    fn prompt_hidden(&mut self, prompt: &str) -> io::Result<String>;
}

/// The process's standard input and terminal.
pub struct Stdin;

impl Input for Stdin {
    fn is_terminal(&self) -> bool {
        io::stdin().is_terminal()
    }

    fn read_line(&mut self) -> io::Result<Option<String>> {
        let mut line = String::new();
        if io::stdin().lock().read_line(&mut line)? == 0 {
            return Ok(None);
        }
        Ok(Some(strip_line_ending(line)))
    }

    fn prompt_hidden(&mut self, prompt: &str) -> io::Result<String> {
        rpassword::prompt_password(prompt)
    }
}

/// Removes one trailing `\n` or `\r\n`, and nothing else: spaces may be
/// part of a password.
pub fn strip_line_ending(mut line: String) -> String {
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    line
}

/// The passwords to send; `None` sends no key at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Passwords {
    /// `incoming-password`
    pub incoming: Option<String>,
    /// `smtp-password`
    pub smtp: Option<String>,
}

/// Whether [`collect`] will prompt: no flag, and a terminal to ask on.
pub fn will_prompt(flags: PasswordFlags, input: &dyn Input) -> bool {
    !flags.password_stdin && !flags.smtp_password_stdin && input.is_terminal()
}

/// Reads the passwords the flags ask for. With neither flag and `prompt`
/// set, a terminal gets a hidden prompt for the incoming password (an empty
/// answer means none); otherwise nothing is read.
pub fn collect(
    flags: PasswordFlags,
    prompt: bool,
    input: &mut dyn Input,
) -> Result<Passwords, Failure> {
    let mut passwords = Passwords::default();
    if flags.password_stdin {
        passwords.incoming = Some(required(
            input,
            "--password-stdin",
            "Password for the incoming server: ",
        )?);
    }
    if flags.smtp_password_stdin {
        passwords.smtp = Some(required(
            input,
            "--smtp-password-stdin",
            "Password for the SMTP server: ",
        )?);
    }
    if prompt && will_prompt(flags, input) {
        let answer = input
            .prompt_hidden("Password for the incoming server (empty for none): ")
            .map_err(|e| Failure::Failed(format!("cannot read the password: {e}")))?;
        if !answer.is_empty() {
            passwords.incoming = Some(answer);
        }
    }
    Ok(passwords)
}

/// One password that must be there: from a hidden prompt on a terminal,
/// else the next line of standard input.
pub fn required(input: &mut dyn Input, flag: &str, prompt: &str) -> Result<String, Failure> {
    let read = if input.is_terminal() {
        input.prompt_hidden(prompt).map(Some)
    } else {
        input.read_line()
    };
    match read {
        Ok(Some(p)) if !p.is_empty() => Ok(p),
        Ok(Some(_)) => Err(Failure::Usage(format!(
            "{flag}: the password line on standard input is empty"
        ))),
        Ok(None) => Err(Failure::Usage(format!(
            "{flag}: standard input ended before the password line"
        ))),
        Err(e) => Err(Failure::Failed(format!(
            "{flag}: cannot read standard input: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests;

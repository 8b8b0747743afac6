//! # The command line
//!
//! The clap definition of facteurctl: global flags, subcommands and their
//! arguments. The `account add` flags are not written out one by one: they
//! are generated from [`facteur_dbus::KEYS`] (one `--KEY` per settings key,
//! typed by its [`KeyKind`]), so a key added to the contract shows up here
//! without a second spelling. Password keys get hidden flags whose only job
//! is to refuse, with advice, a password given in argv.
//!
//! Manual pages and shell completions are generated from this definition
//! (see `commands::docs`).

use std::cell::Cell;
use std::ffi::OsStr;
use std::path::PathBuf;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, CommandFactory, Parser, Subcommand};
use facteur_dbus::keys::{self, Key, KeyKind, KEYS};

use crate::password::PasswordFlags;

mod two_way;
use crate::settings::{parse_value, secret_refusal, SettingValue, Settings};
pub use two_way::{FlagsArgs, FolderCommand, IdsArgs, MoveArgs, OutboxArgs, OutboxCommand};

/// Control facteurd, the facteur mail-sync daemon, over D-Bus.
#[derive(Debug, Parser)]
#[command(
    name = "facteurctl",
    version,
    about = "Control facteurd, the facteur mail-sync daemon",
    long_about = "Control facteurd, the facteur mail-sync daemon, over D-Bus: add, change, \
                  verify and remove mail accounts, sync them, and read the mail they \
                  bring in.\n\nExit status: 0 on success, 1 when the daemon or the bus \
                  refuses or fails (or a verification reports a failure), 2 on a usage \
                  error."
)]
pub struct Cli {
    /// Print machine-readable JSON on standard output
    ///
    /// One style for every command: lower kebab-case keys, an account as
    /// `account` (its id) plus `account-path` (its object path), times as
    /// RFC 3339 strings in UTC plus their unix seconds (`date-unix`, …).
    #[arg(long, global = true)]
    pub json: bool,
    /// D-Bus address of the bus facteurd is on (default: the session bus,
    /// from DBUS_SESSION_BUS_ADDRESS)
    #[arg(long, global = true, value_name = "ADDR")]
    pub address: Option<String>,
    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add, list, show, change, verify and remove mail accounts
    #[command(subcommand)]
    Account(AccountCommand),
    /// Run one sync pass of an account (or of every account) now and print
    /// the number of new messages; progress is shown on standard error
    Sync {
        /// Account id (see 'facteurctl account list'); every account when
        /// left out
        #[arg(conflicts_with = "all")]
        id: Option<String>,
        /// Every account, one after the other, with the progress of each
        #[arg(long)]
        all: bool,
    },
    /// Show the health of every account (or of one): state, whether only
    /// you can fix it, the error code, the next retry and the progress
    Status {
        /// Account id (see 'facteurctl account list')
        id: Option<String>,
    },
    /// List messages: the Unified folder, or one folder of one account
    Messages(MessagesArgs),
    /// Send an RFC 5322 message (from FILE, or standard input) through an
    /// account's SMTP server; IMAP accounts keep a copy in their Sent folder
    Send(SendArgs),
    /// Print one message: its main headers and text, or the raw bytes
    Show {
        /// Message id (see 'facteurctl messages')
        message_id: String,
        /// Write the message exactly as fetched (RFC 5322 bytes)
        #[arg(long)]
        raw: bool,
    },
    /// List an account's folders: name, role, messages and unread
    Folders {
        /// Account id (see 'facteurctl account list')
        id: String,
    },
    /// Print a line for every new message until interrupted: id, account,
    /// folder, sender and subject, tab-separated (--json: one JSON object
    /// per line)
    Watch,
    /// Mark messages read
    Read(IdsArgs),
    /// Mark messages unread
    Unread(IdsArgs),
    /// Flag messages (starred, important)
    Flag(IdsArgs),
    /// Remove the flag from messages
    Unflag(IdsArgs),
    /// Add and remove flags and keywords of messages
    Flags(FlagsArgs),
    /// Move messages into a folder (of their account or of another)
    Move(MoveArgs),
    /// Copy messages into a folder (of their account or of another)
    Copy(MoveArgs),
    /// Create, rename and delete folders of an account
    #[command(subcommand)]
    Folder(FolderCommand),
    /// List an account's outbox, or cancel a queued message
    Outbox(OutboxArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish,
    /// powershell)
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Write the manual pages into DIR (facteurctl.1 and one per
    /// subcommand), or print the main page
    Man {
        /// Directory to write the pages into; created if missing
        dir: Option<PathBuf>,
    },
}

/// `facteurctl account …`
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Add an account; only the settings given are sent, the daemon fills in
    /// the rest
    #[command(after_long_help = add_after_help())]
    Add(AddArgs),
    /// List the accounts with their state and message counts
    List,
    /// Show every property of an account
    Show {
        /// Account id
        id: String,
    },
    /// Change settings of an account
    #[command(after_long_help = set_after_help())]
    Set(SetArgs),
    /// Set an account's password at a prompt that does not echo (or from
    /// the first line of standard input when it is not a terminal)
    Password {
        /// Account id
        id: String,
        /// Set the SMTP password instead of the incoming one
        #[arg(long)]
        smtp: bool,
    },
    /// Log in to the account's servers with its saved settings (or with the
    /// settings given by --settings, saving nothing) and report each step
    #[command(after_long_help = verify_after_help())]
    Verify(VerifyArgs),
    /// Remove an account, its passwords and its local messages
    Remove {
        /// Account id
        id: String,
    },
}

/// `facteurctl account add`
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Find the settings for ADDRESS (autoconfig, provider database, DNS,
    /// guessing), verify them with the password, show them and create the
    /// account; settings flags given too override what was found
    #[arg(long, value_name = "ADDRESS", conflicts_with = "email")]
    pub wizard: Option<String>,
    /// With --wizard: create the account without asking for confirmation
    #[arg(long, short = 'y', requires = "wizard")]
    pub yes: bool,
    /// The settings
    #[command(flatten)]
    pub settings: SettingsFlags,
    /// Where passwords come from
    #[command(flatten, next_help_heading = "Passwords")]
    pub passwords: PasswordFlags,
}

/// `facteurctl account verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Account id (verifies its saved settings)
    #[arg(required_unless_present = "settings", conflicts_with = "settings")]
    pub id: Option<String>,
    /// Verify these settings instead of a saved account, e.g.
    /// email=alice@example.org incoming-host=imap.example.org
    #[arg(long, value_name = "KEY=VALUE", num_args = 1..)]
    pub settings: Vec<String>,
    /// Where passwords come from (with --settings)
    #[command(flatten, next_help_heading = "Passwords")]
    pub passwords: PasswordFlags,
}

/// `facteurctl send`
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The account to send through
    #[arg(long, value_name = "ID")]
    pub account: String,
    /// The message (RFC 5322); standard input when absent or `-`
    pub file: Option<PathBuf>,
    /// Queue the message in the account's outbox instead of sending it now
    /// (it is sent as soon as the SMTP server is reachable); prints its
    /// outbox id
    #[arg(long)]
    pub queue: bool,
}

/// `facteurctl account set`
#[derive(Debug, Args)]
pub struct SetArgs {
    /// Account id
    pub id: String,
    /// Settings to change, e.g. incoming-port=993 use-unified=no
    #[arg(value_name = "KEY=VALUE")]
    pub changes: Vec<String>,
    /// Where passwords come from
    #[command(flatten, next_help_heading = "Passwords")]
    pub passwords: PasswordFlags,
}

/// `facteurctl messages`
#[derive(Debug, Args)]
pub struct MessagesArgs {
    /// List a folder of this account instead of the Unified folder
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
    /// The folder of --account to list [default: INBOX]
    #[arg(long, value_name = "FOLDER", requires = "account")]
    pub folder: Option<String>,
    /// At most this many messages; 0 for no limit
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: u32,
    /// Skip this many of the newest messages first
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub offset: u32,
}

/// The `--KEY VALUE` flags of `account add`, one per settings key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsFlags {
    /// The settings given, typed.
    pub settings: Settings,
}

/// Help heading of the generated settings flags.
const SETTINGS_HEADING: &str = "Settings";

/// The placeholder shown after a settings flag: `BOOL` for switches,
/// `FOLDER` for folders, else the key's last word (`--incoming-port PORT`).
pub fn value_name(key: &Key) -> String {
    if key.kind == KeyKind::Bool {
        return "BOOL".to_owned();
    }
    if key.name.starts_with("folder-") {
        return "FOLDER".to_owned();
    }
    key.name
        .rsplit('-')
        .next()
        .unwrap_or(key.name)
        .to_ascii_uppercase()
}

fn settings_arg(key: &'static Key) -> Arg {
    let arg = Arg::new(key.name).long(key.name);
    if key.kind == KeyKind::Secret {
        // Present only to refuse with advice instead of "unexpected
        // argument"; the value is swallowed, never echoed.
        let arg = arg
            .hide(true)
            .num_args(0..=1)
            .action(ArgAction::Append)
            .value_parser(clap::builder::OsStringValueParser::new());
        return if key.name == keys::INCOMING_PASSWORD {
            arg.alias("password")
        } else {
            arg
        };
    }
    arg.help(key.help)
        .help_heading(SETTINGS_HEADING)
        .value_name(value_name(key))
        .action(ArgAction::Set)
        .value_parser(KeyParser { key })
}

thread_local! {
    /// Set while [`command_for_docs`] builds the command: the hidden flags
    /// that refuse passwords are left out, because clap_complete offers
    /// hidden flags too and nobody should be invited to type a password.
    static FOR_DOCS: Cell<bool> = const { Cell::new(false) };
}

/// The command as completions and manual pages describe it: without the
/// hidden password-refusing flags.
pub fn command_for_docs() -> clap::Command {
    FOR_DOCS.with(|d| d.set(true));
    let cmd = Cli::command();
    FOR_DOCS.with(|d| d.set(false));
    cmd
}

impl Args for SettingsFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let for_docs = FOR_DOCS.with(Cell::get);
        KEYS.iter()
            .filter(|key| !(for_docs && key.kind == KeyKind::Secret))
            .fold(cmd, |cmd, key| cmd.arg(settings_arg(key)))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for SettingsFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = SettingsFlags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for key in KEYS {
            if key.kind == KeyKind::Secret {
                if matches.value_source(key.name) == Some(ValueSource::CommandLine) {
                    return Err(clap::Error::raw(
                        ErrorKind::ArgumentConflict,
                        secret_refusal(key.name, None),
                    ));
                }
                continue;
            }
            if let Some(value) = matches.get_one::<SettingValue>(key.name) {
                self.settings
                    .insert(key, value.clone())
                    .map_err(|e| clap::Error::raw(ErrorKind::ArgumentConflict, e.to_string()))?;
            }
        }
        Ok(())
    }
}

/// Parses a flag's value per its key's [`KeyKind`]; a bad value is a usage
/// error naming the flag.
#[derive(Debug, Clone, Copy)]
struct KeyParser {
    key: &'static Key,
}

impl TypedValueParser for KeyParser {
    type Value = SettingValue;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<SettingValue, clap::Error> {
        let flag = format!("--{}", self.key.name);
        let text = value.to_str().ok_or_else(|| {
            clap::Error::raw(
                ErrorKind::InvalidUtf8,
                format!("invalid value for '{flag}': not valid UTF-8\n"),
            )
            .with_cmd(cmd)
        })?;
        parse_value(self.key.kind, text).map_err(|reason| {
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("invalid value for '{flag}': {reason}\n"),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        let names: &[&'static str] = match (self.key.kind, self.key.name) {
            (KeyKind::Bool, _) => &["true", "false"],
            (_, keys::INCOMING_PROTOCOL) => keys::PROTOCOLS,
            (_, keys::INCOMING_SECURITY | keys::SMTP_SECURITY) => keys::SECURITIES,
            _ => return None,
        };
        Some(Box::new(names.iter().map(|n| PossibleValue::new(*n))))
    }
}

fn add_after_help() -> String {
    "Passwords are never taken from the command line. Without --password-stdin, \
     facteurctl asks for the incoming password when standard input is a terminal \
     (an empty answer sets none) and sends none otherwise. BOOL is true/false, \
     yes/no or 1/0.\n\nExamples:\n  printf '%s\\n' \"$PASSWORD\" | facteurctl account add \
     --email alice@example.org --incoming-host imap.example.org --password-stdin\n  \
     facteurctl account add --wizard alice@example.org\n  \
     printf '%s\\n' \"$PASSWORD\" | facteurctl account add --wizard alice@example.org \
     --password-stdin --yes"
        .to_owned()
}

fn verify_after_help() -> String {
    "Exit status 1 when a server failed a step. With --settings, passwords come \
     from --password-stdin / --smtp-password-stdin or, on a terminal, a prompt; \
     SMTP uses the incoming password unless an SMTP one is given.\n\nExample:\n  \
     printf '%s\\n' \"$PASSWORD\" | facteurctl account verify --password-stdin \
     --settings email=alice@example.org incoming-host=imap.example.org \
     smtp-host=smtp.example.org"
        .to_owned()
}

fn set_after_help() -> String {
    let mut s = String::from("Keys (and their value types):\n");
    for key in KEYS.iter().filter(|k| k.kind != KeyKind::Secret) {
        s.push_str(&format!(
            "  {:<24}{:<9}{}\n",
            key.name,
            kind_label(key.kind),
            key.help
        ));
    }
    s.push_str(
        "\nBOOL values are true/false, yes/no or 1/0. Passwords are not accepted as \
         KEY=VALUE: use --password-stdin / --smtp-password-stdin, or 'facteurctl \
         account password ID'.",
    );
    s
}

/// A short name of a key's value type, for help texts.
pub fn kind_label(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Str | KeyKind::Secret => "text",
        KeyKind::Bool => "BOOL",
        KeyKind::U16 => "0-65535",
        KeyKind::U32 => "number",
    }
}

#[cfg(test)]
mod tests;

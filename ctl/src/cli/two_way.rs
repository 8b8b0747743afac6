//! The arguments of the two-way sync commands: flags (`read`, `unread`,
//! `flag`, `unflag`, `flags`), `move` and `copy`, `folder` and `outbox`.

use clap::{ArgGroup, Args, Subcommand};

/// `read`, `unread`, `flag`, `unflag`: the messages.
#[derive(Debug, Args)]
pub struct IdsArgs {
    /// Message ids (see 'facteurctl messages'); several accounts may be
    /// mixed
    #[arg(value_name = "ID", required = true, num_args = 1..)]
    pub ids: Vec<String>,
}

/// `flags ID… --add X --remove Y`
#[derive(Debug, Args)]
#[command(
    after_long_help = FLAGS_HELP,
    group(ArgGroup::new("change").required(true).multiple(true).args(["add", "remove"]))
)]
pub struct FlagsArgs {
    /// Message ids (see 'facteurctl messages')
    #[arg(value_name = "ID", required = true, num_args = 1..)]
    pub ids: Vec<String>,
    /// Flag or keyword to add (repeat for several)
    #[arg(long, value_name = "FLAG")]
    pub add: Vec<String>,
    /// Flag or keyword to remove (repeat for several)
    #[arg(long, value_name = "FLAG")]
    pub remove: Vec<String>,
}

const FLAGS_HELP: &str = "FLAG is seen, answered, flagged, deleted, draft, or an IMAP \
     keyword such as $Junk, $Important or work.\n\nExample:\n  facteurctl flags ID \
     --add '$Junk' --remove seen";

/// `move` and `copy`
#[derive(Debug, Args)]
#[command(after_long_help = MOVE_HELP)]
pub struct MoveArgs {
    /// Message ids (see 'facteurctl messages')
    #[arg(value_name = "ID", required = true, num_args = 1..)]
    pub ids: Vec<String>,
    /// The target folder, as 'facteurctl folder list' names it, optionally
    /// after an account id and a colon
    #[arg(long, value_name = "[ACCOUNT:]FOLDER", required = true)]
    pub to: String,
}

const MOVE_HELP: &str = "Without ACCOUNT: the folder of each message's own account. \
     ACCOUNT: is read as an account only when an account with that id exists, so a \
     folder named 'a:b' is still found.\n\nExamples:\n  facteurctl move ID --to \
     Archive\n  facteurctl copy ID1 ID2 --to bob_example_org:INBOX/Projects";

/// `facteurctl folder …`
#[derive(Debug, Subcommand)]
pub enum FolderCommand {
    /// List the account's folders with their roles and counts
    List {
        /// Account id
        account: String,
    },
    /// Create folders ('/' between levels)
    Create {
        /// Account id
        account: String,
        /// Folder names, e.g. Projects/2026
        #[arg(value_name = "NAME", required = true, num_args = 1..)]
        names: Vec<String>,
    },
    /// Rename a folder (and the folders below it)
    Rename {
        /// Account id
        account: String,
        /// The folder's name now
        from: String,
        /// Its new name
        to: String,
    },
    /// Delete folders and the messages in them
    Delete {
        /// Account id
        account: String,
        /// Folder names
        #[arg(value_name = "NAME", required = true, num_args = 1..)]
        names: Vec<String>,
    },
}

/// `facteurctl outbox [list] ACCOUNT`, `facteurctl outbox cancel ACCOUNT ID`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct OutboxArgs {
    /// What to do (list when left out)
    #[command(subcommand)]
    pub command: Option<OutboxCommand>,
    /// Account id (for the list). An account whose id is `list` or
    /// `cancel` is listed with `outbox list ID` (which always works)
    #[arg(required = true)]
    pub account: Option<String>,
}

/// `facteurctl outbox …`
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List the account's queued and failed messages, oldest first
    List {
        /// Account id
        account: String,
    },
    /// Drop a queued or failed message
    Cancel {
        /// Account id
        account: String,
        /// Outbox id (from 'send --queue' or the list)
        id: String,
    },
}

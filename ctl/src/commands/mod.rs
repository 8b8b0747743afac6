//! # Commands
//!
//! One function per subcommand, dispatched from [`run`]. Each connects to
//! the bus only once its own arguments are known to be good, calls the
//! daemon through [`crate::bus`], and prints through [`crate::output`],
//! human-readable or, with `--json`, as JSON. Submodules: [`account`] (the
//! `account` family), [`sync`] (`sync` and `status`), [`wizard`] (`account add --wizard`),
//! [`mail`] (`messages`, `show`, `watch`), [`send`] (`send`), [`two_way`]
//! (flags, `move`, `copy`, `folder`, `outbox`) and [`docs`] (completions
//! and manual pages).

pub mod account;
pub mod docs;
pub mod mail;
pub mod send;
pub mod sync;
pub mod two_way;
pub mod wizard;

use crate::bus::Bus;
use crate::cli::{AccountCommand, Cli, Command};
use crate::error::Failure;

/// What every command needs from the global flags.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `--json`
    pub json: bool,
    /// `--address`
    pub address: Option<String>,
}

impl Ctx {
    /// Connects to the bus named by `--address`, or the session bus.
    pub async fn connect(&self) -> Result<Bus, Failure> {
        Bus::connect(self.address.as_deref()).await
    }
}

/// Runs the command the command line names.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    let ctx = Ctx {
        json: cli.json,
        address: cli.address,
    };
    match cli.command {
        Command::Account(cmd) => match cmd {
            AccountCommand::Add(args) if args.wizard.is_some() => wizard::run(&ctx, args).await,
            AccountCommand::Add(args) => account::add(&ctx, args).await,
            AccountCommand::List => account::list(&ctx).await,
            AccountCommand::Show { id } => account::show(&ctx, &id).await,
            AccountCommand::Set(args) => account::set(&ctx, args).await,
            AccountCommand::Password { id, smtp } => account::password(&ctx, &id, smtp).await,
            AccountCommand::Verify(args) => account::verify(&ctx, args).await,
            AccountCommand::Remove { id } => account::remove(&ctx, &id).await,
        },
        Command::Sync { id, all: _ } => sync::sync(&ctx, id.as_deref()).await,
        Command::Status { id } => sync::status(&ctx, id.as_deref()).await,
        Command::Messages(args) => mail::messages(&ctx, args).await,
        Command::Send(args) => send::send(&ctx, args).await,
        Command::Show { message_id, raw } => mail::show(&ctx, &message_id, raw).await,
        Command::Folders { id } => two_way::folders(&ctx, &id).await,
        Command::Watch => mail::watch(&ctx).await,
        Command::Read(a) => two_way::set_flags(&ctx, &a.ids, &[two_way::SEEN.into()], &[]).await,
        Command::Unread(a) => two_way::set_flags(&ctx, &a.ids, &[], &[two_way::SEEN.into()]).await,
        Command::Flag(a) => two_way::set_flags(&ctx, &a.ids, &[two_way::FLAGGED.into()], &[]).await,
        Command::Unflag(a) => {
            two_way::set_flags(&ctx, &a.ids, &[], &[two_way::FLAGGED.into()]).await
        }
        Command::Flags(args) => two_way::flags(&ctx, args).await,
        Command::Move(args) => two_way::move_or_copy(&ctx, args, false).await,
        Command::Copy(args) => two_way::move_or_copy(&ctx, args, true).await,
        Command::Folder(cmd) => two_way::folder(&ctx, cmd).await,
        Command::Outbox(args) => two_way::outbox(&ctx, args).await,
        Command::Completions { shell } => docs::completions(shell),
        Command::Man { dir } => docs::man(dir.as_deref()),
    }
}

use super::*;
use clap::CommandFactory;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("facteurctl").chain(args.iter().copied()))
}

#[test]
fn the_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn add_has_one_flag_per_key_except_passwords() {
    let cmd = Cli::command();
    let add = cmd
        .find_subcommand("account")
        .and_then(|a| a.find_subcommand("add"))
        .unwrap();
    for key in KEYS {
        let arg = add
            .get_arguments()
            .find(|a| a.get_long() == Some(key.name))
            .unwrap_or_else(|| panic!("no --{}", key.name));
        assert_eq!(
            arg.is_hide_set(),
            key.kind == KeyKind::Secret,
            "{}",
            key.name
        );
    }
}

#[test]
fn add_sends_only_the_flags_given_with_their_types() {
    let cli = parse(&[
        "account",
        "add",
        "--email",
        "a@example.org",
        "--incoming-port",
        "993",
        "--use-unified",
        "no",
        "--poll-interval-minutes",
        "5",
    ])
    .unwrap();
    let Command::Account(AccountCommand::Add(add)) = cli.command else {
        panic!("not account add");
    };
    let s = add.settings.settings;
    assert_eq!(
        s.names(),
        [
            "email",
            "use-unified",
            "incoming-port",
            "poll-interval-minutes"
        ]
    );
    assert_eq!(s.get("incoming-port"), Some(&SettingValue::U16(993)));
    assert_eq!(s.get("use-unified"), Some(&SettingValue::Bool(false)));
    assert_eq!(s.get("poll-interval-minutes"), Some(&SettingValue::U32(5)));
    assert_eq!(add.passwords, PasswordFlags::default());
}

#[test]
fn a_bad_port_is_a_usage_error_naming_the_flag() {
    let e = parse(&["account", "add", "--incoming-port", "99999"]).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let msg = e.to_string();
    assert!(msg.contains("--incoming-port"), "{msg}");
    assert!(msg.contains("99999"), "{msg}");
    let e = parse(&["account", "add", "--smtp-port=x"]).unwrap_err();
    assert!(e.to_string().contains("--smtp-port"), "{e}");
}

#[test]
fn password_flags_refuse_argv_without_echoing() {
    for args in [
        &["account", "add", "--incoming-password", "hunter2"][..],
        &["account", "add", "--incoming-password=hunter2"],
        &["account", "add", "--password", "hunter2"],
        &["account", "add", "--smtp-password", "hunter2"],
        &["account", "add", "--email", "a@b", "--smtp-password"],
    ] {
        let e = parse(args).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{args:?}");
        let msg = e.to_string();
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("-stdin"), "{msg}");
    }
}

#[test]
fn passwords_come_from_stdin_flags() {
    let cli = parse(&[
        "account",
        "add",
        "--password-stdin",
        "--smtp-password-stdin",
    ])
    .unwrap();
    let Command::Account(AccountCommand::Add(add)) = cli.command else {
        panic!("not account add");
    };
    assert!(add.passwords.password_stdin && add.passwords.smtp_password_stdin);
    assert!(add.settings.settings.is_empty());
}

#[test]
fn global_flags_go_anywhere() {
    let cli = parse(&["account", "list", "--json", "--address", "unix:path=/x"]).unwrap();
    assert!(cli.json);
    assert_eq!(cli.address.as_deref(), Some("unix:path=/x"));
}

#[test]
fn messages_folder_needs_an_account() {
    assert!(parse(&["messages", "--folder", "INBOX"]).is_err());
    let cli = parse(&[
        "messages",
        "--account",
        "a",
        "--folder",
        "Sent",
        "--limit",
        "5",
    ])
    .unwrap();
    let Command::Messages(m) = cli.command else {
        panic!("not messages");
    };
    assert_eq!((m.limit, m.offset), (5, 0));
}

#[test]
fn value_names_read_well() {
    let name = |n: &str| value_name(keys::find(n).unwrap());
    assert_eq!(name("incoming-port"), "PORT");
    assert_eq!(name("use-unified"), "BOOL");
    assert_eq!(name("folder-sent"), "FOLDER");
    assert_eq!(name("poll-interval-minutes"), "MINUTES");
}

#[test]
fn the_generators_are_listed_in_help() {
    let mut cmd = Cli::command();
    for name in ["completions", "man", "folders"] {
        assert!(!cmd.find_subcommand(name).unwrap().is_hide_set(), "{name}");
    }
    let help = cmd.render_help().to_string();
    for name in ["completions", "man", "folders", "watch"] {
        assert!(
            help.contains(&format!("  {name}")),
            "{name} not in:\n{help}"
        );
    }
}

#[test]
fn sync_takes_all_or_an_id_not_both() {
    assert!(Cli::try_parse_from(["facteurctl", "sync", "--all"]).is_ok());
    assert!(Cli::try_parse_from(["facteurctl", "sync", "a"]).is_ok());
    assert!(Cli::try_parse_from(["facteurctl", "sync", "a", "--all"]).is_err());
}

#[test]
fn docs_leave_out_the_refusing_flags() {
    let docs = command_for_docs();
    let add = docs
        .find_subcommand("account")
        .and_then(|a| a.find_subcommand("add"))
        .unwrap();
    assert!(add
        .get_arguments()
        .all(|a| a.get_long() != Some("incoming-password")));
    assert!(add
        .get_arguments()
        .any(|a| a.get_long() == Some("incoming-port")));
    // Parsing still refuses them afterwards.
    assert!(parse(&["account", "add", "--incoming-password", "x"]).is_err());
}

#[test]
fn two_way_commands_parse() {
    let cli = parse(&["outbox", "alice"]).unwrap();
    let Command::Outbox(o) = cli.command else {
        panic!("not outbox");
    };
    assert!(o.command.is_none());
    assert_eq!(o.account.as_deref(), Some("alice"));
    let cli = parse(&["outbox", "cancel", "alice", "q1"]).unwrap();
    let Command::Outbox(OutboxArgs {
        command: Some(OutboxCommand::Cancel { account, id }),
        ..
    }) = cli.command
    else {
        panic!("not outbox cancel");
    };
    assert_eq!((account.as_str(), id.as_str()), ("alice", "q1"));
    // Accounts named like the subcommands: `outbox list ID` always works.
    for id in ["list", "cancel", "alice"] {
        let cli = parse(&["outbox", "list", id]).unwrap();
        let Command::Outbox(OutboxArgs {
            command: Some(OutboxCommand::List { account }),
            ..
        }) = cli.command
        else {
            panic!("not outbox list {id}");
        };
        assert_eq!(account, id);
    }
    let cli = parse(&["flags", "a.1.2.3", "--remove", "seen"]).unwrap();
    let Command::Flags(f) = cli.command else {
        panic!("not flags");
    };
    assert!(f.add.is_empty());
    assert_eq!(f.remove, ["seen"]);
    assert!(parse(&["flags", "a.1.2.3"]).is_err());
    assert!(parse(&["read"]).is_err());
    let cli = parse(&["send", "--queue", "--account", "alice"]).unwrap();
    let Command::Send(s) = cli.command else {
        panic!("not send");
    };
    assert!(s.queue);
    let cli = parse(&["move", "x", "y", "--to", "bob:INBOX"]).unwrap();
    let Command::Move(m) = cli.command else {
        panic!("not move");
    };
    assert_eq!(m.ids, ["x", "y"]);
    assert_eq!(m.to, "bob:INBOX");
}

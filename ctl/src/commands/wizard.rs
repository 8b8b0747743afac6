//! # The setup wizard
//!
//! `account add --wizard ADDRESS`: from an address and a password to a
//! working account. Asks for the password (or reads it with
//! `--password-stdin`), asks the daemon for candidate settings
//! (`Manager.Discover`), verifies the best one with the password
//! (`Manager.VerifySettings`) and the next ones if it fails, shows what it
//! found and where it came from, and creates the account after a
//! confirmation (`--yes` skips it). Settings flags given with `--wizard`
//! (`--display-name`, `--name`, …) override what was found.
//!
//! Progress goes to standard error, so standard output carries only the
//! result (the account id, or JSON with `--json`).

use std::io::{BufRead, Write};

use facteur_dbus::keys::{self, KeyKind};
use facteur_dbus::names;
use facteur_dbus::proxy::OwnedDict;
use serde_json::{json, Value as Json};
use zbus::zvariant::Value;

use super::account::{add_passwords, report_text};
use super::Ctx;
use crate::cli::AddArgs;
use crate::error::{from_daemon, Failure, On};
use crate::output;
use crate::password::{self, Input, Stdin};
use crate::settings::{SettingValue, Settings};
use crate::shape;
use crate::wire::report;

/// How many candidates are verified at most before giving up.
const MAX_TRIES: usize = 4;

/// Keys of a Discover candidate that are not settings.
const SOURCE: &str = "source";
const VERIFIED: &str = "verified";

fn say(line: &str) {
    // Progress only: nothing more can be done if standard error is gone.
    let _ = writeln!(std::io::stderr(), "{}", output::scrub(line));
}

/// The settings of a candidate, with the flags given winning.
pub fn candidate_settings(candidate: &OwnedDict, flags: &Settings) -> Settings {
    let mut settings = flags.clone();
    let mut names: Vec<&String> = candidate.keys().collect();
    names.sort();
    for name in names {
        let Some(key) = keys::find(name) else {
            continue;
        };
        if key.kind == KeyKind::Secret || settings.get(key.name).is_some() {
            continue;
        }
        let value = match (key.kind, &*candidate[name]) {
            (KeyKind::Str, Value::Str(s)) => SettingValue::Str(s.to_string()),
            (KeyKind::Bool, Value::Bool(b)) => SettingValue::Bool(*b),
            (KeyKind::U16, Value::U16(n)) => SettingValue::U16(*n),
            (KeyKind::U32, Value::U32(n)) => SettingValue::U32(*n),
            _ => continue,
        };
        // The key is not there yet (checked above).
        let _ = settings.insert(key, value);
    }
    settings
}

fn text_of(d: &OwnedDict, key: &str) -> String {
    match d.get(key).map(|v| &**v) {
        Some(Value::Str(s)) => s.to_string(),
        Some(Value::U16(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// One line for a candidate: `imap imap.example.org:993 (tls), SMTP
/// smtp.example.org:465 (tls), from autoconfig`.
pub fn describe(c: &OwnedDict) -> String {
    let mut s = format!(
        "{} {}:{} ({})",
        text_of(c, keys::INCOMING_PROTOCOL),
        text_of(c, keys::INCOMING_HOST),
        text_of(c, keys::INCOMING_PORT),
        text_of(c, keys::INCOMING_SECURITY)
    );
    if c.contains_key(keys::SMTP_HOST) {
        s.push_str(&format!(
            ", SMTP {}:{} ({})",
            text_of(c, keys::SMTP_HOST),
            text_of(c, keys::SMTP_PORT),
            text_of(c, keys::SMTP_SECURITY)
        ));
    } else {
        s.push_str(", no SMTP server");
    }
    s.push_str(&format!(", from {}", text_of(c, SOURCE)));
    s
}

fn failed_step(report: &Json, service: &str) -> Option<String> {
    report
        .get(report::STEPS)?
        .as_array()?
        .iter()
        .find(|s| {
            s.get(report::SERVICE).and_then(Json::as_str) == Some(service)
                && s.get(report::OK).and_then(Json::as_bool) == Some(false)
        })
        .and_then(|s| s.get(report::STEP)?.as_str().map(str::to_owned))
}

/// `account add --wizard ADDRESS`.
pub async fn run(ctx: &Ctx, args: AddArgs) -> Result<(), Failure> {
    let address = args.wizard.clone().unwrap_or_default();
    let address = address.trim().to_owned();
    if !address.contains('@') {
        return Err(Failure::Usage(format!(
            "--wizard: '{address}' is not an e-mail address"
        )));
    }
    let bus = ctx.connect().await?;
    let mut input = Stdin;
    let mut passwords = password::collect(args.passwords, false, &mut input)?;
    if passwords.incoming.is_none() {
        if !input.is_terminal() {
            return Err(Failure::Usage(
                "--wizard needs the password: pipe it in with --password-stdin, or run on a \
                 terminal to be asked"
                    .to_owned(),
            ));
        }
        bus.ping().await?;
        passwords.incoming = Some(password::required(
            &mut input,
            "--wizard",
            &format!("Password for {address}: "),
        )?);
    }
    let manager = bus.manager().await?;
    say(&format!("Looking for the settings of {address}…"));
    let candidates = manager
        .discover(&address)
        .await
        .map_err(|e| from_daemon(e, On::Manager))?;
    if candidates.is_empty() {
        return Err(Failure::Failed(format!(
            "no settings found for {address}; add the account by hand with 'facteurctl account \
             add --email {address} --incoming-host HOST --smtp-host HOST'"
        )));
    }
    let mut flags = args.settings.settings.clone();
    if flags.get(keys::EMAIL).is_none() {
        if let Some(key) = keys::find(keys::EMAIL) {
            let _ = flags.insert(key, SettingValue::Str(address.clone()));
        }
    }
    let mut last: Option<(String, Json)> = None;
    let mut chosen = None;
    for candidate in candidates.iter().take(MAX_TRIES) {
        let line = describe(candidate);
        say(&format!("Trying {line}…"));
        let mut settings = candidate_settings(candidate, &flags);
        add_passwords(&mut settings, passwords.clone())?;
        let report = manager
            .verify_settings(settings.to_dict())
            .await
            .map_err(|e| from_daemon(e, On::Manager))?;
        let report = output::dict_to_json(&report);
        let has_smtp = candidate.contains_key(keys::SMTP_HOST);
        let incoming_ok = report.get(report::INCOMING_OK).and_then(Json::as_bool) == Some(true);
        let smtp_ok = report.get(report::SMTP_OK).and_then(Json::as_bool) == Some(true);
        if incoming_ok && (smtp_ok || !has_smtp) {
            if !has_smtp {
                say("  works, but no SMTP server was found: this account cannot send mail");
            } else {
                say("  works");
            }
            chosen = Some((candidate, settings, line));
            break;
        }
        for (ok, err) in [
            (report::INCOMING_OK, report::INCOMING_ERROR),
            (report::SMTP_OK, report::SMTP_ERROR),
        ] {
            if report.get(ok).and_then(Json::as_bool) == Some(false) {
                let e = report.get(err).and_then(Json::as_str).unwrap_or_default();
                say(&format!("  failed: {e}"));
            }
        }
        let wrong_password = failed_step(&report, "incoming").as_deref() == Some("auth");
        last = Some((line, report));
        if wrong_password {
            // The server answered and refused the password: another
            // candidate will not make it right.
            break;
        }
    }
    let Some((candidate, settings, line)) = chosen else {
        let (line, report) = last.unwrap_or_default();
        say("The last attempt, step by step:");
        say(report_text(&report).trim_end());
        return Err(Failure::Failed(format!(
            "none of the settings found for {address} worked (last tried: {line})"
        )));
    };

    if !ctx.json || !args.yes {
        say(&format!("Found: {line}."));
        let verified = text_of(candidate, VERIFIED) == "true";
        say(&format!(
            "Source: {}{}",
            text_of(candidate, SOURCE),
            if verified {
                " (its servers answered before the login, and the login worked)"
            } else {
                " (the login worked)"
            }
        ));
    }
    if !args.yes {
        if !input.is_terminal() {
            return Err(Failure::Usage(
                "nothing was created: confirm on a terminal, or pass --yes".to_owned(),
            ));
        }
        let _ = write!(std::io::stderr(), "Create this account? [y/N] ");
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| Failure::Failed(format!("cannot read the answer: {e}")))?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Err(Failure::Failed("nothing was created".to_owned()));
        }
    }
    // The passwords were added for VerifySettings already.
    let path = manager
        .create_account(settings.to_dict())
        .await
        .map_err(|e| from_daemon(e, On::Manager))?;
    let id = names::account_id(path.as_str()).unwrap_or(path.as_str());
    if ctx.json {
        output::json(
            &shape::with_account(
                id,
                json!({
                    "source": text_of(candidate, SOURCE),
                    "settings": output::dict_to_json(candidate),
                }),
            ),
            false,
        )
    } else {
        say(&format!("Account {id} created."));
        output::text(id)
    }
}

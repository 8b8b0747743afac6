use super::*;

/// Standard input made of fixed lines; a "terminal" answers prompts from
/// the same lines and records the prompts.
struct Fake {
    terminal: bool,
    lines: Vec<String>,
    prompts: Vec<String>,
}

impl Fake {
    fn new(terminal: bool, lines: &[&str]) -> Fake {
        Fake {
            terminal,
            lines: lines.iter().rev().map(|s| s.to_string()).collect(),
            prompts: Vec::new(),
        }
    }
}

impl Input for Fake {
    fn is_terminal(&self) -> bool {
        self.terminal
    }
    fn read_line(&mut self) -> io::Result<Option<String>> {
        Ok(self.lines.pop())
    }
    fn prompt_hidden(&mut self, prompt: &str) -> io::Result<String> {
        self.prompts.push(prompt.to_owned());
        Ok(self.lines.pop().unwrap_or_default())
    }
}

const NONE: PasswordFlags = PasswordFlags {
    password_stdin: false,
    smtp_password_stdin: false,
};
const INCOMING: PasswordFlags = PasswordFlags {
    password_stdin: true,
    smtp_password_stdin: false,
};
const SMTP: PasswordFlags = PasswordFlags {
    password_stdin: false,
    smtp_password_stdin: true,
};
const BOTH: PasswordFlags = PasswordFlags {
    password_stdin: true,
    smtp_password_stdin: true,
};

#[test]
fn line_endings_are_stripped_but_spaces_kept() {
    assert_eq!(strip_line_ending("a b \r\n".into()), "a b ");
    assert_eq!(strip_line_ending("pw\n".into()), "pw");
    assert_eq!(strip_line_ending("pw".into()), "pw");
    assert_eq!(strip_line_ending("pw\r".into()), "pw\r");
}

#[test]
fn stdin_flags_read_lines_in_order() {
    let p = collect(BOTH, true, &mut Fake::new(false, &["in", "out"])).unwrap();
    assert_eq!(p.incoming.as_deref(), Some("in"));
    assert_eq!(p.smtp.as_deref(), Some("out"));
    let p = collect(SMTP, true, &mut Fake::new(false, &["out"])).unwrap();
    assert_eq!(
        p,
        Passwords {
            incoming: None,
            smtp: Some("out".into())
        }
    );
    let p = collect(INCOMING, true, &mut Fake::new(false, &["in", "extra"])).unwrap();
    assert_eq!(
        p,
        Passwords {
            incoming: Some("in".into()),
            smtp: None
        }
    );
}

#[test]
fn missing_or_empty_lines_are_usage_errors() {
    let e = collect(BOTH, true, &mut Fake::new(false, &["in"])).unwrap_err();
    assert!(
        matches!(&e, Failure::Usage(m) if m.starts_with("--smtp-password-stdin")),
        "{e:?}"
    );
    let e = collect(INCOMING, true, &mut Fake::new(false, &[""])).unwrap_err();
    assert!(
        matches!(&e, Failure::Usage(m) if m.contains("empty")),
        "{e:?}"
    );
    let e = collect(INCOMING, true, &mut Fake::new(false, &[])).unwrap_err();
    assert!(
        matches!(&e, Failure::Usage(m) if m.contains("ended")),
        "{e:?}"
    );
}

#[test]
fn no_flag_and_no_terminal_sends_no_password() {
    let mut input = Fake::new(false, &["not a password"]);
    assert_eq!(
        collect(NONE, true, &mut input).unwrap(),
        Passwords::default()
    );
    assert_eq!(input.lines.len(), 1, "stdin must not be read");
}

#[test]
fn a_terminal_gets_a_hidden_prompt_and_empty_means_none() {
    let mut input = Fake::new(true, &["secret"]);
    assert!(will_prompt(NONE, &input));
    let p = collect(NONE, true, &mut input).unwrap();
    assert_eq!(p.incoming.as_deref(), Some("secret"));
    assert_eq!(input.prompts.len(), 1);

    let p = collect(NONE, true, &mut Fake::new(true, &[""])).unwrap();
    assert_eq!(p, Passwords::default());

    // `account set` does not prompt.
    let mut input = Fake::new(true, &["secret"]);
    assert_eq!(
        collect(NONE, false, &mut input).unwrap(),
        Passwords::default()
    );
    assert!(input.prompts.is_empty());
}

#[test]
fn stdin_flags_on_a_terminal_ask_without_echo() {
    let mut input = Fake::new(true, &["in", "out"]);
    assert!(!will_prompt(BOTH, &input));
    let p = collect(BOTH, true, &mut input).unwrap();
    assert_eq!(p.incoming.as_deref(), Some("in"));
    assert_eq!(p.smtp.as_deref(), Some("out"));
    assert_eq!(input.prompts.len(), 2);
}

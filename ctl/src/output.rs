//! # Output
//!
//! Everything facteurctl writes on standard output goes through here: plain
//! tables, `Key: value` blocks, JSON, and raw bytes. It also turns D-Bus
//! values into JSON and into text, formats unix times, and scrubs control
//! characters out of text that came from a mail server, so that a subject
//! cannot repaint the terminal. A closed pipe (`facteurctl … | head`) ends
//! the command quietly instead of panicking.

use std::io::{self, Write};

use facteur_dbus::proxy::OwnedDict;
use serde_json::{Map, Value as Json};
use zbus::zvariant::Value;

use crate::error::{Failure, EXIT_OK};

/// Writes raw bytes to standard output.
pub fn bytes(data: &[u8]) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    out.write_all(data)
        .and_then(|()| out.flush())
        .map_err(write_failure)
}

/// Writes text to standard output, adding a final newline if missing.
pub fn text(s: &str) -> Result<(), Failure> {
    if s.is_empty() || s.ends_with('\n') {
        bytes(s.as_bytes())
    } else {
        bytes(format!("{s}\n").as_bytes())
    }
}

/// Writes one JSON document (pretty unless `compact`) and a newline.
pub fn json(value: &Json, compact: bool) -> Result<(), Failure> {
    let s = if compact {
        serde_json::to_string(value)
    } else {
        serde_json::to_string_pretty(value)
    }
    .map_err(|e| Failure::Failed(format!("cannot write JSON: {e}")))?;
    text(&s)
}

fn write_failure(e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Failure::Quiet(EXIT_OK)
    } else {
        Failure::Failed(format!("cannot write to standard output: {e}"))
    }
}

/// A D-Bus value as JSON: numbers, booleans and strings as themselves,
/// object paths and signatures as strings, arrays as arrays, dictionaries
/// as objects (keys as text), structures as arrays.
pub fn to_json(value: &Value<'_>) -> Json {
    match value {
        Value::U8(n) => Json::from(*n),
        Value::Bool(b) => Json::from(*b),
        Value::I16(n) => Json::from(*n),
        Value::U16(n) => Json::from(*n),
        Value::I32(n) => Json::from(*n),
        Value::U32(n) => Json::from(*n),
        Value::I64(n) => Json::from(*n),
        Value::U64(n) => Json::from(*n),
        Value::F64(n) => Json::from(*n),
        Value::Str(s) => Json::from(s.as_str()),
        Value::Signature(s) => Json::from(s.to_string()),
        Value::ObjectPath(p) => Json::from(p.as_str()),
        Value::Value(inner) => to_json(inner),
        Value::Array(a) => Json::Array(a.inner().iter().map(to_json).collect()),
        Value::Dict(d) => Json::Object(
            d.iter()
                .map(|(k, v)| (key_text(k), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Structure(s) => Json::Array(s.fields().iter().map(to_json).collect()),
        #[allow(unreachable_patterns)]
        other => Json::from(format!("{other:?}")),
    }
}

/// A dictionary of D-Bus values (`a{sv}`) as a JSON object, keys sorted.
pub fn dict_to_json(dict: &OwnedDict) -> Json {
    Json::Object(dict.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
}

fn key_text(k: &Value<'_>) -> String {
    match k {
        Value::Str(s) => s.as_str().to_owned(),
        Value::ObjectPath(p) => p.as_str().to_owned(),
        other => match to_json(other) {
            Json::String(s) => s,
            j => j.to_string(),
        },
    }
}

/// A D-Bus value as text for a person: booleans as yes/no, lists
/// comma-separated, dictionaries as `key=value` pairs, empty text as `-`.
pub fn display(value: &Value<'_>) -> String {
    let s = match value {
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        Value::Str(s) => s.as_str().to_owned(),
        Value::ObjectPath(p) => p.as_str().to_owned(),
        Value::Value(inner) => display(inner),
        Value::Array(a) => a.inner().iter().map(display).collect::<Vec<_>>().join(", "),
        Value::Dict(d) => {
            let mut pairs: Vec<String> = d
                .iter()
                .map(|(k, v)| format!("{}={}", key_text(k), display(v)))
                .collect();
            pairs.sort();
            pairs.join(", ")
        }
        other => match to_json(other) {
            Json::String(s) => s,
            j => j.to_string(),
        },
    };
    if s.is_empty() {
        "-".to_owned()
    } else {
        scrub(&s)
    }
}

/// Replaces control characters (escape sequences, carriage returns, …) by
/// U+FFFD, keeping newlines and tabs.
pub fn scrub(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// Like [`scrub`], and also puts a multi-line value on one line, for table
/// cells.
pub fn one_line(s: &str) -> String {
    scrub(s)
        .split(['\n', '\t'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Cuts `s` to at most `max` columns of a terminal (wide characters count
/// two), marking the cut with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_owned();
    }
    console::truncate_str(s, max, "…").into_owned()
}

/// The columns `s` takes on a terminal.
pub fn width(s: &str) -> usize {
    console::measure_text_width(s)
}

/// The width of the terminal standard output is, `None` when it is no
/// terminal.
pub fn terminal_width() -> Option<usize> {
    let term = console::Term::stdout();
    if !term.is_term() {
        return None;
    }
    term.size_checked().map(|(_, cols)| usize::from(cols))
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn utc_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS +HHMM` in the local time zone
/// (`TZ`, else `/etc/localtime`); UTC when the time is out of range.
pub fn local_time(secs: i64) -> String {
    use chrono::TimeZone as _;
    match chrono::Local.timestamp_opt(secs, 0).single() {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S %z").to_string(),
        None => format!("{} UTC", utc_time(secs)),
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // d is in 1..=31 and m in 1..=12 by construction.
    (y, m as u32, d as u32)
}

/// A plain text table: a header row and rows, columns separated by two
/// spaces, the last column not padded.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    indent: usize,
}

impl Table {
    /// A table with these column headers.
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Table {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            ..Table::default()
        }
    }

    /// Indents every line by `n` spaces.
    pub fn indent(mut self, n: usize) -> Table {
        self.indent = n;
        self
    }

    /// Adds a row; cells are put on one line and scrubbed.
    pub fn row<S: AsRef<str>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows
            .push(cells.into_iter().map(|c| one_line(c.as_ref())).collect());
    }

    /// Adds a row whose cells are kept as they are (spaces included): for
    /// cells made here, never for text from a server.
    pub fn raw_row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders the table, one line per row, each ending in a newline.
    pub fn render(&self) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(width(cell));
            }
        }
        let mut out = String::new();
        let header = (!self.headers.is_empty()).then_some(&self.headers);
        for row in header.into_iter().chain(&self.rows) {
            let mut line = " ".repeat(self.indent);
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i].saturating_sub(width(cell));
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `Key: value` lines with the values aligned.
pub fn key_values<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.as_ref().chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        let k = k.as_ref();
        let pad = width - k.chars().count();
        out.push_str(&format!("{k}:{} {}\n", " ".repeat(pad), v.as_ref()));
    }
    out
}

#[cfg(test)]
mod tests;

//! # POP3 client
//!
//! Owns one POP3 session over any byte stream: the greeting, CAPA, STLS,
//! login (USER/PASS or AUTH PLAIN), and the transaction commands STAT,
//! UIDL, LIST, RETR, TOP, DELE, RSET, NOOP and QUIT (RFC 1939, RFC 2449,
//! RFC 2595, RFC 5034).
//!
//! It leaves to its callers: opening the TCP connection and the TLS
//! handshake (the `net` module), deciding which security an account needs,
//! what to download, when to DELE (only after the store is flushed), and
//! how often to poll. It keeps no state across sessions and never keys
//! anything on message numbers beyond the session that issued them.
//!
//! Every command is under the configured timeout; a failure in the middle
//! of a reply (or a dropped future) marks the session out of step, and
//! every later call fails with [`Error::Desynchronized`] instead of reading
//! a stale reply as the answer to a new command.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

use super::capabilities::Capabilities;
use super::error::{server_text, split_response_code, Error, ResponseCode};
use super::wire::{base64_encode, trim_line_end, Shown, Status, Wire};

/// Default time allowed for one network step.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default bound on one line. RFC 1939 has no limit for message lines and
/// RFC 5322 §2.1.1 allows 998 octets, but real mail carries longer ones
/// (unwrapped HTML, base64 without breaks); 1 MiB keeps all of those and
/// still bounds memory.
pub const DEFAULT_MAX_LINE: usize = 1024 * 1024;
/// Default bound on the entries of a listing (UIDL, LIST, CAPA): a large
/// mailbox fits, a server streaming lines forever does not.
pub const DEFAULT_MAX_LIST_ENTRIES: usize = 1_000_000;
/// RFC 2449 §4: a command line is at most 255 octets, CRLF included.
const MAX_COMMAND_LINE: usize = 255;
/// RFC 1939 §7: a unique-id is 1 to 70 characters.
const MAX_UID_LEN: usize = 70;

/// Limits of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Time allowed for one network step: one write, one status line, one
    /// read of a multi-line reply. A long RETR may take longer in total as
    /// long as data keeps coming.
    pub timeout: Duration,
    /// Longest line accepted, line end included.
    pub max_line: usize,
    /// Most entries accepted in a UIDL, LIST or CAPA reply.
    pub max_list_entries: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            timeout: DEFAULT_TIMEOUT,
            max_line: DEFAULT_MAX_LINE,
            max_list_entries: DEFAULT_MAX_LIST_ENTRIES,
        }
    }
}

/// How AUTH PLAIN sends its credentials (RFC 5034 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMode {
    /// `AUTH PLAIN <base64>` in one line when it fits in 255 octets, else
    /// the continuation form.
    InitialResponse,
    /// `AUTH PLAIN`, wait for `+ `, then the base64 line.
    Continuation,
}

/// The reply to STAT: the number of messages and their total size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Number of messages in the maildrop.
    pub count: u32,
    /// Total size in octets, as the server counts it.
    pub size: u64,
}

/// One line of the UIDL listing (RFC 1939 §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidlEntry {
    /// The message number, valid for this session only.
    pub number: u32,
    /// The unique-id: 1–70 characters in 0x21–0x7E, stable across sessions.
    pub uid: String,
}

/// One line of the LIST scan listing (RFC 1939 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListEntry {
    /// The message number, valid for this session only.
    pub number: u32,
    /// The size in octets, as the server counts it (with CRLF line ends).
    pub size: u64,
}

/// A POP3 session over the stream `S` (TCP, or TLS over TCP).
pub struct Client<S> {
    wire: Wire<S>,
    config: Config,
    greeting: String,
    /// Set while a command is in flight; still set afterwards if the reply
    /// was not read to its end (an error, or the future was dropped).
    in_flight: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Client<S> {
    /// Start a session: read the server's greeting (RFC 1939 §4).
    pub async fn connect(stream: S, config: Config) -> Result<Client<S>, Error> {
        let mut client = Client::after_stls(stream, config);
        client.in_flight = true;
        match client.wire.status().await? {
            Status::Ok(text) => client.greeting = server_text(&text),
            Status::Err(text) => {
                let (code, message) = split_response_code(&text);
                return Err(Error::Server {
                    command: "the connection (greeting)".to_owned(),
                    code,
                    message,
                });
            }
            Status::Continue => {
                return Err(Error::Protocol("the greeting is not +OK".to_owned()));
            }
        }
        client.in_flight = false;
        Ok(client)
    }

    /// Continue a session on the TLS stream after [`Client::stls`] and the
    /// handshake. No greeting follows STLS; capabilities must be asked for
    /// again with [`Client::capa`] (RFC 2595 §4).
    pub fn after_stls(stream: S, config: Config) -> Client<S> {
        Client {
            wire: Wire::new(stream, config.timeout, config.max_line),
            config,
            greeting: String::new(),
            in_flight: false,
        }
    }

    /// Change the time allowed for one network step from now on (a login
    /// may be given longer than a greeting, the commands after it longer
    /// still).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.config.timeout = timeout;
        self.wire.set_timeout(timeout);
    }

    /// The text of the server's `+OK` greeting (empty after STLS).
    pub fn greeting(&self) -> &str {
        &self.greeting
    }

    /// Ask for the capabilities (RFC 2449 §5). A server that answers `-ERR`
    /// predates RFC 2449; that is not an error, and the result offers
    /// nothing (so STLS is then not offered either).
    pub async fn capa(&mut self) -> Result<Capabilities, Error> {
        self.begin()?;
        self.wire.send(b"CAPA", Shown::AsSent).await?;
        let caps = match self.wire.status().await? {
            Status::Ok(_) => {
                let lines = self.read_listing(|line| Ok(line.to_vec())).await?;
                Capabilities::from_lines(lines.iter().map(Vec::as_slice))
            }
            Status::Err(_) => Capabilities::not_advertised(),
            Status::Continue => return Err(unexpected_continue("CAPA")),
        };
        self.finish();
        Ok(caps)
    }

    /// Send STLS (RFC 2595 §4) and, on `+OK`, hand back the raw stream for
    /// the TLS handshake. Fails with [`Error::StlsInjection`] if the server
    /// sent anything after its `+OK`: those bytes came in cleartext and must
    /// not be read as if they came over TLS. After the handshake, build a
    /// new client with [`Client::after_stls`] and ask CAPA again.
    ///
    /// Whether STLS is offered is the caller's check, with
    /// [`Capabilities::require_stls`].
    pub async fn stls(mut self) -> Result<S, Error> {
        self.begin()?;
        self.wire.send(b"STLS", Shown::AsSent).await?;
        self.expect_ok("STLS").await?;
        self.wire.into_inner_if_drained()
    }

    /// Log in with USER and PASS (RFC 1939 §7). The password is never
    /// logged or put into an error.
    pub async fn user_pass(&mut self, user: &str, password: &str) -> Result<(), Error> {
        check_argument(user, "the user name is empty or holds a line break")?;
        check_argument(password, "the password is empty or holds a line break")?;
        self.begin()?;
        let mut line = Vec::with_capacity(5 + user.len());
        line.extend_from_slice(b"USER ");
        line.extend_from_slice(user.as_bytes());
        self.wire.send(&line, Shown::AsSent).await?;
        self.expect_login_ok("USER").await?;

        self.begin()?;
        let mut line = Zeroizing::new(Vec::with_capacity(5 + password.len()));
        line.extend_from_slice(b"PASS ");
        line.extend_from_slice(password.as_bytes());
        self.wire
            .send(&line, Shown::Redacted("PASS <redacted>"))
            .await?;
        self.expect_login_ok("PASS").await
    }

    /// Log in with SASL PLAIN (RFC 4616, RFC 5034), sending the credentials
    /// with the command when the line fits in 255 octets.
    pub async fn auth_plain(&mut self, user: &str, password: &str) -> Result<(), Error> {
        self.auth_plain_with(user, password, SaslMode::InitialResponse)
            .await
    }

    /// Log in with SASL PLAIN in the given form.
    pub async fn auth_plain_with(
        &mut self,
        user: &str,
        password: &str,
        mode: SaslMode,
    ) -> Result<(), Error> {
        // RFC 4616 §2: authzid NUL authcid NUL passwd; no NUL inside. An
        // empty authzid means "act as the authenticated user".
        if user.is_empty() || user.contains('\0') {
            return Err(Error::InvalidInput("the user name is empty or holds a NUL"));
        }
        if password.is_empty() || password.contains('\0') {
            return Err(Error::InvalidInput("the password is empty or holds a NUL"));
        }
        let mut message = Zeroizing::new(Vec::with_capacity(2 + user.len() + password.len()));
        message.push(0);
        message.extend_from_slice(user.as_bytes());
        message.push(0);
        message.extend_from_slice(password.as_bytes());
        let response = Zeroizing::new(base64_encode(&message));

        self.begin()?;
        let initial = b"AUTH PLAIN ".len() + response.len() + 2 <= MAX_COMMAND_LINE;
        if mode == SaslMode::InitialResponse && initial {
            let mut line = Zeroizing::new(Vec::with_capacity(11 + response.len()));
            line.extend_from_slice(b"AUTH PLAIN ");
            line.extend_from_slice(&response);
            self.wire
                .send(&line, Shown::Redacted("AUTH PLAIN <redacted>"))
                .await?;
            match self.wire.status().await? {
                Status::Ok(_) => {}
                Status::Err(text) => return Err(self.login_refused("AUTH", &text)),
                Status::Continue => {
                    // PLAIN has nothing to ask after an initial response.
                    // Cancel the exchange (RFC 5034 §4) to stay in step.
                    self.wire.send(b"*", Shown::AsSent).await?;
                    let _ = self.wire.status().await?;
                    self.finish();
                    return Err(Error::Protocol(
                        "the server asked for more after AUTH PLAIN's initial response".to_owned(),
                    ));
                }
            }
        } else {
            self.wire.send(b"AUTH PLAIN", Shown::AsSent).await?;
            match self.wire.status().await? {
                Status::Continue => {}
                Status::Err(text) => return Err(self.login_refused("AUTH", &text)),
                Status::Ok(_) => {
                    return Err(Error::Protocol(
                        "the server accepted AUTH PLAIN without credentials".to_owned(),
                    ))
                }
            }
            self.wire
                .send(&response, Shown::Redacted("<redacted SASL response>"))
                .await?;
            match self.wire.status().await? {
                Status::Ok(_) => {}
                Status::Err(text) => return Err(self.login_refused("AUTH", &text)),
                Status::Continue => return Err(unexpected_continue("AUTH PLAIN")),
            }
        }
        self.finish();
        Ok(())
    }

    /// Log in with the best method the capabilities offer: SASL PLAIN when
    /// announced, else USER/PASS (also for a server without CAPA, as RFC
    /// 1939 has nothing else). Call this only on a protected connection.
    pub async fn login(
        &mut self,
        capabilities: &Capabilities,
        user: &str,
        password: &str,
    ) -> Result<(), Error> {
        if capabilities.sasl_plain() {
            self.auth_plain(user, password).await
        } else {
            self.user_pass(user, password).await
        }
    }

    /// STAT (RFC 1939 §5): message count and total size.
    pub async fn stat(&mut self) -> Result<Stat, Error> {
        self.begin()?;
        self.wire.send(b"STAT", Shown::AsSent).await?;
        let text = self.expect_ok("STAT").await?;
        let mut words = words(&text);
        let count = words.next().and_then(parse_number);
        let size = words.next().and_then(parse_number);
        match (count, size) {
            (Some(count), Some(size)) => Ok(Stat { count, size }),
            _ => Err(Error::Protocol(format!(
                "STAT reply \"{}\" is not \"count size\"",
                server_text(&text)
            ))),
        }
    }

    /// UIDL without argument (RFC 1939 §7): every message's unique-id.
    /// A malformed line fails the whole listing (after it was read to its
    /// end, so the session stays usable): skipping it would make that
    /// message look new at every poll.
    pub async fn uidl(&mut self) -> Result<Vec<UidlEntry>, Error> {
        self.begin()?;
        self.wire.send(b"UIDL", Shown::AsSent).await?;
        self.expect_ok("UIDL").await?;
        self.in_flight = true;
        let entries = self.read_listing(parse_uidl_line).await?;
        self.finish();
        Ok(entries)
    }

    /// LIST without argument (RFC 1939 §5): every message's size.
    pub async fn list(&mut self) -> Result<Vec<ListEntry>, Error> {
        self.begin()?;
        self.wire.send(b"LIST", Shown::AsSent).await?;
        self.expect_ok("LIST").await?;
        self.in_flight = true;
        let entries = self.read_listing(parse_list_line).await?;
        self.finish();
        Ok(entries)
    }

    /// RETR (RFC 1939 §5): stream message `number` into `sink`, byte for
    /// byte as the server holds it (CRLF line ends, stuffing removed).
    /// Returns the number of bytes written. The sink is flushed at the end;
    /// making it durable is the caller's job.
    ///
    /// Memory stays bounded: lines go to the sink one by one. More than
    /// `max_size` bytes fail with [`Error::TooLarge`]; a connection that
    /// drops before the terminator fails with [`Error::Closed`]. In both
    /// cases the sink holds a partial message that the caller must discard.
    pub async fn retr<W: AsyncWrite + Unpin>(
        &mut self,
        number: u32,
        sink: &mut W,
        max_size: u64,
    ) -> Result<u64, Error> {
        self.fetch(format!("RETR {number}"), sink, max_size).await
    }

    /// TOP (RFC 1939 §7): the header and the first `lines` body lines of
    /// message `number`, streamed like [`Client::retr`].
    pub async fn top<W: AsyncWrite + Unpin>(
        &mut self,
        number: u32,
        lines: u32,
        sink: &mut W,
        max_size: u64,
    ) -> Result<u64, Error> {
        self.fetch(format!("TOP {number} {lines}"), sink, max_size)
            .await
    }

    /// DELE (RFC 1939 §5): mark message `number` deleted. The server removes
    /// it only at a successful QUIT (RFC 1939 §6); a dropped connection
    /// undoes the mark.
    pub async fn dele(&mut self, number: u32) -> Result<(), Error> {
        self.simple(&format!("DELE {number}")).await
    }

    /// RSET (RFC 1939 §5): unmark every message marked deleted.
    pub async fn rset(&mut self) -> Result<(), Error> {
        self.simple("RSET").await
    }

    /// NOOP (RFC 1939 §5): check that the server is still there.
    pub async fn noop(&mut self) -> Result<(), Error> {
        self.simple("NOOP").await
    }

    /// QUIT (RFC 1939 §6): end the session. After login, `Ok` means the
    /// server has removed the messages marked with DELE; `-ERR` means some
    /// were not removed.
    pub async fn quit(mut self) -> Result<(), Error> {
        self.simple("QUIT").await?;
        self.wire.shutdown().await;
        Ok(())
    }

    /// Send a one-line command and expect `+OK`.
    async fn simple(&mut self, command: &str) -> Result<(), Error> {
        self.begin()?;
        self.wire.send(command.as_bytes(), Shown::AsSent).await?;
        self.expect_ok(command).await?;
        Ok(())
    }

    /// RETR or TOP: stream the multi-line reply into `sink`.
    async fn fetch<W: AsyncWrite + Unpin>(
        &mut self,
        command: String,
        sink: &mut W,
        max_size: u64,
    ) -> Result<u64, Error> {
        self.begin()?;
        self.wire.send(command.as_bytes(), Shown::AsSent).await?;
        self.expect_ok(&command).await?;
        self.in_flight = true;
        let mut written: u64 = 0;
        while let Some(skip) = self.wire.body_segment(true).await? {
            let content = self.wire.current().get(skip..).unwrap_or_default();
            written = written.saturating_add(content.len() as u64);
            if written > max_size {
                return Err(Error::TooLarge { limit: max_size });
            }
            sink.write_all(content).await.map_err(Error::Sink)?;
        }
        sink.flush().await.map_err(Error::Sink)?;
        self.finish();
        Ok(written)
    }

    /// Read a listing to its terminator, parsing each line. The first parse
    /// error is kept and returned once the listing has been read through.
    async fn read_listing<T>(
        &mut self,
        parse: impl Fn(&[u8]) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error> {
        let mut entries = Vec::new();
        let mut first_error = None;
        let mut count: usize = 0;
        while let Some(skip) = self.wire.body_segment(false).await? {
            count += 1;
            if count > self.config.max_list_entries {
                return Err(Error::TooLarge {
                    limit: self.config.max_list_entries as u64,
                });
            }
            let line = trim_line_end(self.wire.current().get(skip..).unwrap_or_default());
            tracing::trace!("POP3 S: {}", line.escape_ascii());
            if first_error.is_some() {
                continue;
            }
            match parse(line) {
                Ok(entry) => entries.push(entry),
                Err(e) => first_error = Some(e),
            }
        }
        match first_error {
            Some(e) => {
                // The listing was read to its end: the session is in step.
                self.finish();
                Err(e)
            }
            None => Ok(entries),
        }
    }

    /// Read a status line and require `+OK`; returns the text after it.
    /// A `-ERR` is a [`Error::Server`] naming `command`.
    async fn expect_ok(&mut self, command: &str) -> Result<Vec<u8>, Error> {
        match self.wire.status().await? {
            Status::Ok(text) => {
                self.finish();
                Ok(text)
            }
            Status::Err(text) => {
                self.finish();
                let (code, message) = split_response_code(&text);
                Err(Error::Server {
                    command: command.to_owned(),
                    code,
                    message,
                })
            }
            Status::Continue => Err(unexpected_continue(command)),
        }
    }

    /// Like [`Client::expect_ok`] for USER and PASS, where a `-ERR` is
    /// usually a refused login.
    async fn expect_login_ok(&mut self, command: &'static str) -> Result<(), Error> {
        match self.wire.status().await? {
            Status::Ok(_) => {
                self.finish();
                Ok(())
            }
            Status::Err(text) => Err(self.login_refused(command, &text)),
            Status::Continue => Err(unexpected_continue(command)),
        }
    }

    /// Classify a `-ERR` to a login command. RFC 3206 §4–5 and RFC 2449 §8
    /// say when the credentials are not the cause: `[SYS/TEMP]`,
    /// `[SYS/PERM]`, `[IN-USE]` and `[LOGIN-DELAY]`. Those stay server
    /// errors (to back off, not to ask for a password); `[AUTH]`, a bare
    /// `-ERR` or an unknown code is a refused login.
    fn login_refused(&mut self, command: &'static str, text: &[u8]) -> Error {
        self.finish();
        let (code, message) = split_response_code(text);
        match code {
            Some(
                code @ (ResponseCode::SysTemp
                | ResponseCode::SysPerm
                | ResponseCode::InUse
                | ResponseCode::LoginDelay),
            ) => Error::Server {
                command: command.to_owned(),
                code: Some(code),
                message,
            },
            code => Error::AuthenticationFailed { code, message },
        }
    }

    /// Mark a command as started, refusing if an earlier one was not read
    /// to its end.
    fn begin(&mut self) -> Result<(), Error> {
        if self.in_flight {
            return Err(Error::Desynchronized);
        }
        self.in_flight = true;
        Ok(())
    }

    /// Mark the reply as fully read.
    fn finish(&mut self) {
        self.in_flight = false;
    }
}

fn unexpected_continue(command: &str) -> Error {
    Error::Protocol(format!(
        "unexpected \"+\" continuation in reply to {command}"
    ))
}

/// USER and PASS arguments: not empty, and no CR, LF or NUL, which would
/// end the line early and let the rest be read as another command.
fn check_argument(value: &str, problem: &'static str) -> Result<(), Error> {
    if value.is_empty() || value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        Err(Error::InvalidInput(problem))
    } else {
        Ok(())
    }
}

/// Split on ASCII white space, skipping empty words.
fn words(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(u8::is_ascii_whitespace)
        .filter(|word| !word.is_empty())
}

/// A decimal number of ASCII digits only (no sign, no white space).
fn parse_number<T: std::str::FromStr>(word: &[u8]) -> Option<T> {
    if word.is_empty() || !word.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(word).ok()?.parse().ok()
}

/// `n uid` (RFC 1939 §7).
fn parse_uidl_line(line: &[u8]) -> Result<UidlEntry, Error> {
    let bad = |why: &str| Error::Protocol(format!("UIDL line \"{}\": {why}", server_text(line)));
    let mut parts = words(line);
    let (Some(number), Some(uid), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("not \"number unique-id\""));
    };
    let number = parse_number::<u32>(number)
        .filter(|n| *n > 0)
        .ok_or_else(|| bad("the message number is not a positive number"))?;
    // RFC 1939 §7: 1 to 70 characters in the range 0x21 to 0x7E.
    if uid.len() > MAX_UID_LEN || !uid.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(bad("the unique-id is not 1-70 printable ASCII characters"));
    }
    let uid = String::from_utf8(uid.to_vec()).map_err(|_| bad("the unique-id is not ASCII"))?;
    Ok(UidlEntry { number, uid })
}

/// `n size`, possibly followed by more words (RFC 1939 §5 allows servers
/// to add information after the size).
fn parse_list_line(line: &[u8]) -> Result<ListEntry, Error> {
    let mut parts = words(line);
    let number = parts
        .next()
        .and_then(parse_number::<u32>)
        .filter(|n| *n > 0);
    let size = parts.next().and_then(parse_number::<u64>);
    match (number, size) {
        (Some(number), Some(size)) => Ok(ListEntry { number, size }),
        _ => Err(Error::Protocol(format!(
            "LIST line \"{}\" is not \"number size\"",
            server_text(line)
        ))),
    }
}

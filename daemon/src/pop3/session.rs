//! # POP3 connection and login
//!
//! The one connect/login path of POP3, for the sync engine ([`login`]) and
//! Verify alike ([`open`]): connects per the account's security (implicit
//! TLS, STLS that is required — the client refuses bytes injected before
//! the handshake — or plain only when the account says `none`), reads the
//! greeting and logs in with SASL PLAIN when offered and USER/PASS
//! otherwise. Each step is recorded in a [`Steps`] and runs under a
//! deadline from [`crate::net::timeouts`], as does every command the client
//! sends afterwards ([`config`]).
//!
//! [`failure`] tells a client error in words: a refused password names the
//! host and the login with the server's text, and the response codes of a
//! server's own limit (`[IN-USE]`, `[LOGIN-DELAY]`, `[SYS/TEMP]`, RFC 2449 and
//! RFC 3206) are [`FailureKind::ServerLimit`].

use super::capabilities::Capabilities;
use super::client::{Client, Config};
use super::error::{Error, ResponseCode};
use crate::net::steps::{self, clean, SESSION_BUDGET};
use crate::net::timeouts::shown;
use crate::net::{self, Failure, FailureKind, Service, StepKind, Steps, Stream, Transport};
use crate::settings::{Security, Settings};

/// The client limits of a POP3 session until login: each reply under the
/// reply deadline. [`open`] gives the login the login deadline and the
/// commands after it the command deadline.
pub fn config() -> Config {
    Config {
        timeout: net::reply_timeout(),
        ..Config::default()
    }
}

/// `The POP3 server` in a client error's sentence, with the host named.
fn with_host(e: &Error, host: &str) -> String {
    let text = e.to_string();
    match text.strip_prefix("The POP3 server ") {
        Some(rest) => format!("The POP3 server {host} {rest}"),
        None => format!("{text} (POP3 server {host})"),
    }
}

/// Why a response code means the server's own limit, in words.
fn limit_reason(code: &ResponseCode) -> Option<&'static str> {
    match code {
        ResponseCode::InUse => Some("the mailbox is in use by another session"),
        ResponseCode::LoginDelay => Some("it does not allow logging in again so soon"),
        ResponseCode::SysTemp => Some("it has a temporary problem"),
        _ => None,
    }
}

/// A POP3 client error as a failure a person can act on, naming the host
/// and (for a refused login) the login; never a password.
pub fn failure(host: &str, login: &str, e: Error) -> Failure {
    match &e {
        Error::AuthenticationFailed {
            code: None,
            message,
        } if net::mentions_limit(message) => Failure::new(
            FailureKind::ServerLimit,
            format!(
                "The server {host} refused the login for {login} for now, for a limit of its \
                     own ({}); facteur tries again later",
                clean(message)
            ),
        ),
        Error::AuthenticationFailed { code, message } => {
            let said = match code {
                Some(c) => clean(&format!("[{c}] {message}")),
                None => clean(message),
            };
            let said = if said.is_empty() {
                String::new()
            } else {
                format!(" ({said})")
            };
            Failure::new(
                FailureKind::Auth,
                format!("The server {host} refused the password for login {login}{said}"),
            )
        }
        Error::Server {
            command,
            code,
            message,
        } => {
            let reason = code.as_ref().and_then(limit_reason).or_else(|| {
                net::mentions_limit(message).then_some("it has reached a limit of its own")
            });
            let said = match code {
                Some(c) => clean(&format!("[{c}] {message}")),
                None => clean(message),
            };
            match reason {
                Some(why) => Failure::new(
                    FailureKind::ServerLimit,
                    format!(
                        "The server {host} refused {command} for now: {why} ({said}); facteur \
                         tries again later"
                    ),
                ),
                None => Failure::new(
                    FailureKind::Protocol,
                    format!("The POP3 server {host} refused {command} ({said})"),
                ),
            }
        }
        Error::Timeout(d) => Failure::new(
            FailureKind::Timeout,
            format!(
                "The POP3 server {host} did not answer within {}: timed out",
                shown(*d)
            ),
        ),
        Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => Failure::new(
            FailureKind::Timeout,
            format!("The POP3 server {host} went silent: timed out"),
        ),
        Error::Io(_) | Error::Closed | Error::Desynchronized => {
            Failure::new(FailureKind::Connection, with_host(&e, host))
        }
        Error::StlsInjection | Error::TlsRequired => {
            Failure::new(FailureKind::Tls, with_host(&e, host))
        }
        Error::Sink(_) => Failure::new(FailureKind::Local, e.to_string()),
        Error::InvalidInput(_) => Failure::new(
            FailureKind::NotSupported,
            format!("{e} (login {login} on {host})"),
        ),
        Error::Protocol(_) | Error::LineTooLong { .. } | Error::TooLarge { .. } => {
            Failure::new(FailureKind::Protocol, with_host(&e, host))
        }
    }
}

/// The login methods a server announced, in words.
fn offered(caps: &Capabilities) -> String {
    let mut methods = Vec::new();
    let sasl = caps.sasl_mechanisms();
    if !sasl.is_empty() {
        methods.push(format!("SASL {}", sasl.join(" ")));
    }
    if caps.user() || !caps.advertised() {
        methods.push("USER".to_owned());
    }
    if methods.is_empty() {
        "no login method announced".to_owned()
    } else {
        format!("methods offered: {}", methods.join(", "))
    }
}

/// Connect, secure and log in per the account's settings, for the sync
/// engine: [`open`] with a recorder of its own, whose failed step is
/// logged. Returns the client and the capabilities (asked again after
/// login when UIDL was not announced before, RFC 2449 §5).
pub async fn login(
    settings: &Settings,
    password: &str,
) -> Result<(Client<Stream>, Capabilities), Failure> {
    let host = settings.incoming_host.as_str();
    let port = settings.incoming_port();
    let mut steps = Steps::new(Service::Incoming, format!("{host}:{port}"), SESSION_BUDGET);
    let (mut client, mut caps) = match open(settings, Some(password), &mut steps).await {
        Ok(v) => v,
        Err(f) => {
            steps.log_last_failed("POP3");
            return Err(f);
        }
    };
    if caps.advertised() && !caps.uidl() {
        caps = client
            .capa()
            .await
            .map_err(|e| failure(host, settings.incoming_login(), e))?;
    }
    Ok((client, caps))
}

/// The one POP3 connect and login, step by step into `steps`: `dns`,
/// `connect`, `tls` (implicit TLS), `greeting`, `starttls` (STLS, when the
/// account asks for it) and `auth`. Without a password the `auth` step
/// fails with [`FailureKind::Credentials`]. Returns the client and the
/// capabilities the login was chosen by (asked for on the final
/// transport).
pub async fn open(
    settings: &Settings,
    password: Option<&str>,
    steps: &mut Steps,
) -> Result<(Client<Stream>, Capabilities), Failure> {
    let host = settings.incoming_host.as_str();
    let port = settings.incoming_port();
    let insecure = settings.accept_invalid_certs;
    let login = settings.incoming_login();
    let tcp = steps::open_tcp(steps, host, port).await?;
    let transport = if settings.incoming_security == Security::Tls {
        steps::handshake(steps, StepKind::Tls, tcp, host, insecure, "").await?
    } else {
        Transport::Plain(tcp)
    };
    let mut client: Client<Stream> = steps
        .run(StepKind::Greeting, net::reply_timeout(), async {
            let client = Client::connect(net::timed(transport), config())
                .await
                .map_err(|e| failure(host, login, e))?;
            let detail = format!("+OK {}", clean(client.greeting()));
            Ok((client, detail))
        })
        .await?;

    if settings.incoming_security == Security::Starttls {
        let limit = net::reply_timeout() * 2 + net::tls_timeout();
        client = steps
            .run(StepKind::Starttls, limit, async move {
                let caps = client.capa().await.map_err(|e| failure(host, login, e))?;
                if !caps.stls() {
                    return Err(Failure::new(
                        FailureKind::Tls,
                        format!(
                            "{host}:{port} does not offer STLS, so the password would travel in \
                             clear text; use security tls (port 995), or ask the provider"
                        ),
                    ));
                }
                // stls() refuses anything the server sent after its +OK.
                let plain = client.stls().await.map_err(|e| failure(host, login, e))?;
                let Transport::Plain(tcp) = net::untimed(plain) else {
                    return Err(Failure::new(FailureKind::Protocol, "STLS on TLS"));
                };
                let transport = net::upgrade(tcp, host, insecure).await?;
                let detail = format!(
                    "STLS offered and accepted; {}",
                    steps::tls_summary(&transport, insecure)
                );
                Ok((Client::after_stls(net::timed(transport), config()), detail))
            })
            .await?;
    }

    let Some(password) = password else {
        return Err(steps.fail(
            StepKind::Auth,
            Failure::new(
                FailureKind::Credentials,
                format!("No password is known for login {login}"),
            ),
        ));
    };
    let limit = net::reply_timeout() + net::auth_timeout();
    let caps = steps
        .run(StepKind::Auth, limit, async {
            // RFC 2595 §4: capabilities from before STLS are not used.
            let caps = client.capa().await.map_err(|e| failure(host, login, e))?;
            let used = if caps.sasl_plain() {
                "AUTH PLAIN"
            } else {
                "USER/PASS"
            };
            client.set_timeout(net::auth_timeout());
            client
                .login(&caps, login, password)
                .await
                .map_err(|e| failure(host, login, e))?;
            client.set_timeout(net::command_timeout());
            let detail = format!("{}; used {used}; logged in as {login}", offered(&caps));
            Ok((caps, detail))
        })
        .await?;
    Ok((client, caps))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: Option<ResponseCode>, message: &str) -> Error {
        Error::Server {
            command: "PASS".to_owned(),
            code,
            message: message.to_owned(),
        }
    }

    #[test]
    fn a_refused_password_is_a_sentence() {
        let e = Error::AuthenticationFailed {
            code: Some(ResponseCode::Auth),
            message: "Authentication failed.".to_owned(),
        };
        let f = failure("127.0.0.1", "bench1", e);
        assert_eq!(f.kind, FailureKind::Auth);
        assert_eq!(
            f.message,
            "The server 127.0.0.1 refused the password for login bench1 \
             ([AUTH] Authentication failed.)"
        );
    }

    #[test]
    fn server_limits_are_their_own_kind() {
        for (code, words) in [
            (ResponseCode::InUse, "in use"),
            (ResponseCode::LoginDelay, "so soon"),
            (ResponseCode::SysTemp, "temporary"),
        ] {
            let shown = code.to_string();
            let f = failure("pop.example.net", "u", server(Some(code), "try later"));
            assert_eq!(f.kind, FailureKind::ServerLimit, "{f}");
            assert_eq!(f.code(), "server-limit");
            assert!(f.is_transient());
            assert!(f.message.contains(words), "{f}");
            assert!(f.message.contains(&format!("[{shown}]")), "{f}");
            assert!(f.message.contains("pop.example.net"), "{f}");
        }
        let f = failure("h", "u", server(None, "Too many connections"));
        assert_eq!(f.kind, FailureKind::ServerLimit);
        let e = Error::AuthenticationFailed {
            code: None,
            message: "Maximum number of connections from user+IP exceeded".to_owned(),
        };
        assert_eq!(failure("h", "u", e).kind, FailureKind::ServerLimit);
        let f = failure("h", "u", server(Some(ResponseCode::SysPerm), "broken"));
        assert_eq!(f.kind, FailureKind::Protocol);
    }

    #[test]
    fn timeouts_and_closes_name_the_host() {
        let f = failure(
            "h.example",
            "u",
            Error::Timeout(std::time::Duration::from_secs(2)),
        );
        assert_eq!(f.kind, FailureKind::Timeout);
        assert_eq!(f.code(), "timeout");
        assert!(f.message.contains("h.example"), "{f}");
        assert!(f.message.contains("timed out"), "{f}");
        let f = failure("h.example", "u", Error::Closed);
        assert_eq!(f.kind, FailureKind::Connection);
        assert_eq!(f.message, "The POP3 server h.example closed the connection");
    }
}

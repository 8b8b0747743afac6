//! # Probing a server without logging in
//!
//! A candidate is `verified` when its servers answer a probe: TCP connect,
//! then for implicit TLS a handshake with the certificate checked and the
//! protocol's greeting; for STARTTLS the greeting, the capability that
//! offers STARTTLS/STLS, the upgrade itself (refusing bytes sent before the
//! handshake) and a valid certificate. No password is sent: that is
//! Verify's job, once the user has chosen.

use std::time::Duration;

use tokio::net::TcpStream;

use super::config::{Kind, Server};
use super::dns::Dns;
use crate::net::{self, Transport};
use crate::settings::Security;
use crate::smtp::wire::Lines;

/// Time allowed for one probe, from name resolution to the last answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether `server` answers as it should.
pub async fn probe(server: &Server, dns: &Dns) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, attempt(server, dns)).await,
        Ok(Ok(()))
    )
}

async fn attempt(server: &Server, dns: &Dns) -> Result<(), String> {
    let addrs = dns.addresses(&server.host, server.port).await;
    let mut tcp = None;
    for addr in addrs {
        if let Ok(s) = TcpStream::connect(addr).await {
            tcp = Some(s);
            break;
        }
    }
    let tcp = tcp.ok_or_else(|| format!("{}:{} does not answer", server.host, server.port))?;
    match server.security {
        Security::Tls => {
            let transport = net::upgrade(tcp, &server.host, false)
                .await
                .map_err(|f| f.message)?;
            let mut lines = Lines::new(transport);
            greeting(server.kind, &mut lines).await
        }
        Security::Starttls => {
            let mut lines = Lines::new(Transport::Plain(tcp));
            greeting(server.kind, &mut lines).await?;
            starttls(server.kind, &mut lines).await?;
            let Ok(Transport::Plain(tcp)) = lines.into_inner() else {
                return Err("data sent before the TLS handshake".to_owned());
            };
            net::upgrade(tcp, &server.host, false)
                .await
                .map(drop)
                .map_err(|f| f.message)
        }
        Security::None => Err("clear text is never proposed".to_owned()),
    }
}

fn io(e: std::io::Error) -> String {
    e.to_string()
}

async fn greeting(kind: Kind, lines: &mut Lines<Transport>) -> Result<(), String> {
    match kind {
        Kind::Imap => {
            let l = lines.line().await.map_err(io)?;
            starts(&l, "* OK")
        }
        Kind::Pop3 => {
            let l = lines.line().await.map_err(io)?;
            starts(&l, "+OK")
        }
        Kind::Smtp => {
            let r = lines.smtp_reply().await.map_err(io)?;
            (r.code == 220)
                .then_some(())
                .ok_or_else(|| format!("greeting {}", r.text()))
        }
    }
}

fn starts(line: &str, prefix: &str) -> Result<(), String> {
    line.get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))
        .map(drop)
        .ok_or_else(|| {
            format!(
                "unexpected answer {:?}",
                line.chars().take(60).collect::<String>()
            )
        })
}

async fn starttls(kind: Kind, lines: &mut Lines<Transport>) -> Result<(), String> {
    match kind {
        Kind::Imap => {
            lines.send("p1 CAPABILITY").await.map_err(io)?;
            let mut offered = false;
            loop {
                let l = lines.line().await.map_err(io)?;
                if l.starts_with("p1 ") {
                    starts(&l, "p1 OK")?;
                    break;
                }
                offered |= l
                    .split_ascii_whitespace()
                    .any(|w| w.eq_ignore_ascii_case("STARTTLS"));
            }
            if !offered {
                return Err("STARTTLS not offered".to_owned());
            }
            lines.send("p2 STARTTLS").await.map_err(io)?;
            let l = lines.line().await.map_err(io)?;
            starts(&l, "p2 OK")
        }
        Kind::Pop3 => {
            lines.send("CAPA").await.map_err(io)?;
            starts(&lines.line().await.map_err(io)?, "+OK")?;
            let mut offered = false;
            for _ in 0..200 {
                let l = lines.line().await.map_err(io)?;
                if l == "." {
                    break;
                }
                offered |= l.trim().eq_ignore_ascii_case("STLS");
            }
            if !offered {
                return Err("STLS not offered".to_owned());
            }
            lines.send("STLS").await.map_err(io)?;
            starts(&lines.line().await.map_err(io)?, "+OK")
        }
        Kind::Smtp => {
            lines
                .send(&format!("EHLO {}", crate::smtp::connect::client_id()))
                .await
                .map_err(io)?;
            let r = lines.smtp_reply().await.map_err(io)?;
            if r.code != 250 || !r.keywords().iter().any(|(k, _)| k == "STARTTLS") {
                return Err("STARTTLS not offered".to_owned());
            }
            lines.send("STARTTLS").await.map_err(io)?;
            let r = lines.smtp_reply().await.map_err(io)?;
            (r.code == 220)
                .then_some(())
                .ok_or_else(|| format!("STARTTLS refused: {}", r.text()))
        }
    }
}

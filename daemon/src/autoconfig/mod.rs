//! # Autoconfig: settings from an address
//!
//! `Manager.Discover(address)`: candidate settings, best first, each with
//! the `source` it came from, in the order Thunderbird and Delta Chat have
//! proven:
//!
//! 1. `autoconfig`: `https://autoconfig.<domain>/mail/config-v1.1.xml?emailaddress=<address>`,
//!    then the same over http;
//! 2. `well-known`: `https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml`,
//!    then over http;
//! 3. `provider-db`: the built-in database of large providers
//!    (`daemon/providers.xml`, same format) plus `--provider-db FILE`;
//! 4. `srv`: RFC 6186 / RFC 8314 SRV records (`_imaps._tcp`, `_imap._tcp`,
//!    `_pop3s._tcp`, `_pop3._tcp`, `_submissions._tcp`, `_submission._tcp`);
//! 5. `mx`: the domain's MX host matched to a provider of the database
//!    (custom domains at Google, Microsoft 365, Fastmail, …);
//! 6. `guess`: `imap.`, `pop.`, `pop3.`, `smtp.` and `mail.<domain>` probed
//!    on 993/995/465, then 143/110/587.
//!
//! Within a source, IMAP comes before POP3 and implicit TLS before STARTTLS
//! (RFC 8314); clear text is never proposed. All lookups run at once, each
//! with a short timeout; then every server of every candidate is probed
//! without logging in ([`probe`]) and the candidate marked `verified` when
//! its servers answered, so the answer comes within about seven seconds.
//!
//! Three daemon options point discovery elsewhere, for tests and private
//! deployments: `--discovery-http-base`, `--discovery-dns` and
//! `--provider-db` (see [`crate::Options`]).
//!
//! It owns no D-Bus code (the service turns a [`Candidate`] into its
//! settings dictionary) and never stores anything.

pub mod config;
pub mod dns;
pub mod http;
pub mod probe;

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use futures_util::future::join_all;
use tracing::info;

use crate::settings::Security;
use config::{AddressParts, Kind, Provider, Server};

/// The built-in provider database.
pub const BUILTIN_PROVIDERS: &str = include_str!("../../providers.xml");

/// Where a candidate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `autoconfig.<domain>`.
    Autoconfig,
    /// `<domain>/.well-known/autoconfig`.
    WellKnown,
    /// The provider database, by the address's domain.
    ProviderDb,
    /// SRV records.
    Srv,
    /// The MX host, matched to the provider database.
    Mx,
    /// Host names guessed and probed.
    Guess,
}

impl Source {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Autoconfig => "autoconfig",
            Source::WellKnown => "well-known",
            Source::ProviderDb => "provider-db",
            Source::Srv => "srv",
            Source::Mx => "mx",
            Source::Guess => "guess",
        }
    }
}

/// One candidate: an incoming server and, usually, an SMTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Where it came from.
    pub source: Source,
    /// IMAP or POP3.
    pub incoming: Server,
    /// SMTP, when the source named one.
    pub smtp: Option<Server>,
    /// Whether its servers answered a probe.
    pub verified: bool,
}

/// What discovery needs, set once at daemon start.
pub struct Discovery {
    http: http::Http,
    dns: dns::Dns,
    /// Extra providers first, then the built-in ones.
    providers: Vec<Provider>,
}

impl Discovery {
    /// Set up discovery: `http_base` replaces the autoconfig hosts, `dns`
    /// the resolver, and `provider_db` adds providers (which win over the
    /// built-in ones).
    pub fn new(
        http_base: Option<String>,
        dns: Option<SocketAddr>,
        provider_db: Option<&Path>,
    ) -> anyhow::Result<Discovery> {
        let mut providers = Vec::new();
        if let Some(path) = provider_db {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("Cannot read the provider database {}", path.display()))?;
            let extra = config::parse(&text).map_err(|e| {
                anyhow::anyhow!(
                    "The provider database {} is not usable config-v1.1: {}",
                    path.display(),
                    e.0
                )
            })?;
            info!(
                "Loaded {} provider(s) from {}.",
                extra.len(),
                path.display()
            );
            providers.extend(extra);
        }
        let builtin = config::parse(BUILTIN_PROVIDERS)
            .map_err(|e| anyhow::anyhow!("The built-in provider database is broken: {}", e.0))?;
        providers.extend(builtin);
        Ok(Discovery {
            http: http::Http::new(http_base),
            dns: dns::Dns::new(dns),
            providers,
        })
    }

    /// The provider serving `domain` exactly.
    fn provider(&self, domain: &str) -> Option<&Provider> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.providers.iter().find(|p| p.domains.contains(&domain))
    }

    /// Candidates for `address`, best first.
    pub async fn discover(&self, address: &str) -> Vec<Candidate> {
        let Some(parts) = AddressParts::new(address) else {
            return Vec::new();
        };
        let domain = parts.domain.to_ascii_lowercase();
        let query = format!("?emailaddress={}", http::query_value(address));
        let autoconfig_host = format!("autoconfig.{domain}");
        let autoconfig_path = format!("/mail/config-v1.1.xml{query}");
        let well_known_path = "/.well-known/autoconfig/mail/config-v1.1.xml";
        let autoconfig_urls = [
            self.http.url("https", &autoconfig_host, &autoconfig_path),
            self.http.url("http", &autoconfig_host, &autoconfig_path),
        ];
        let well_known_urls = [
            self.http.url("https", &domain, well_known_path),
            self.http.url("http", &domain, well_known_path),
        ];
        let autoconfig = self.fetch_first(&autoconfig_urls, &parts, Source::Autoconfig);
        let well_known = self.fetch_first(&well_known_urls, &parts, Source::WellKnown);
        let (autoconfig, well_known, srv, mx, guessed) = tokio::join!(
            autoconfig,
            well_known,
            self.srv(&parts, &domain),
            self.mx(&parts, &domain),
            self.guess(&parts, &domain),
        );
        let from_db = self
            .provider(&domain)
            .map(|p| from_provider(p, &parts, Source::ProviderDb))
            .unwrap_or_default();

        let mut all: Vec<Candidate> = Vec::new();
        for c in [autoconfig, well_known, from_db, srv, mx, guessed]
            .into_iter()
            .flatten()
        {
            let dup = all
                .iter()
                .any(|o| o.incoming == c.incoming && o.smtp == c.smtp);
            if !dup {
                all.push(c);
            }
        }
        self.verify(&mut all).await;
        info!(
            "Discovered {} candidate(s) for {address} ({}).",
            all.len(),
            all.iter()
                .map(|c| format!(
                    "{} {}:{}{}",
                    c.source.as_str(),
                    c.incoming.host,
                    c.incoming.port,
                    if c.verified { "" } else { " unverified" }
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        all
    }

    /// The first of `urls` that serves a usable document.
    async fn fetch_first(
        &self,
        urls: &[String],
        parts: &AddressParts<'_>,
        source: Source,
    ) -> Vec<Candidate> {
        let mut unique: Vec<&String> = Vec::new();
        for u in urls {
            if !unique.contains(&u) {
                unique.push(u);
            }
        }
        // All at once; the first in order that answered wins (https
        // before http).
        let results = join_all(unique.iter().map(|u| self.http.providers(u))).await;
        for providers in results.into_iter().flatten() {
            let found: Vec<Candidate> = providers
                .iter()
                .flat_map(|p| from_provider(p, parts, source))
                .collect();
            if !found.is_empty() {
                return found;
            }
        }
        Vec::new()
    }

    async fn srv(&self, parts: &AddressParts<'_>, domain: &str) -> Vec<Candidate> {
        let lookups = [
            ("_imaps._tcp", Kind::Imap, Security::Tls),
            ("_imap._tcp", Kind::Imap, Security::Starttls),
            ("_pop3s._tcp", Kind::Pop3, Security::Tls),
            ("_pop3._tcp", Kind::Pop3, Security::Starttls),
            ("_submissions._tcp", Kind::Smtp, Security::Tls),
            ("_submission._tcp", Kind::Smtp, Security::Starttls),
        ];
        let names: Vec<String> = lookups
            .iter()
            .map(|(service, _, _)| format!("{service}.{domain}"))
            .collect();
        let found = join_all(names.iter().map(|n| self.dns.srv(n))).await;
        let servers: Vec<Server> = lookups
            .iter()
            .zip(found)
            .filter_map(|((_, kind, security), records)| {
                records.into_iter().next().map(|r| Server {
                    kind: *kind,
                    host: r.target,
                    port: r.port,
                    security: *security,
                    login: parts.address.to_owned(),
                })
            })
            .collect();
        let smtp = servers.iter().find(|s| s.kind == Kind::Smtp).cloned();
        servers
            .into_iter()
            .filter(|s| s.kind != Kind::Smtp)
            .map(|incoming| Candidate {
                source: Source::Srv,
                incoming,
                smtp: smtp.clone(),
                verified: false,
            })
            .collect()
    }

    async fn mx(&self, parts: &AddressParts<'_>, domain: &str) -> Vec<Candidate> {
        for host in self.dns.mx(domain).await {
            // aspmx.l.google.com → l.google.com → google.com: the first
            // suffix the database knows.
            let labels: Vec<&str> = host.split('.').collect();
            for i in 0..labels.len().saturating_sub(1) {
                let suffix = labels[i..].join(".");
                if let Some(p) = self.provider(&suffix) {
                    return from_provider(p, parts, Source::Mx);
                }
            }
        }
        Vec::new()
    }

    async fn guess(&self, parts: &AddressParts<'_>, domain: &str) -> Vec<Candidate> {
        let server = |kind, prefix: &str, port, security| Server {
            kind,
            host: format!("{prefix}.{domain}"),
            port,
            security,
            login: parts.address.to_owned(),
        };
        use Kind::{Imap, Pop3, Smtp};
        use Security::{Starttls, Tls};
        // Best first within each kind: implicit TLS, then STARTTLS; the
        // protocol's own name, then mail.
        let tries = [
            server(Imap, "imap", 993, Tls),
            server(Imap, "mail", 993, Tls),
            server(Imap, "imap", 143, Starttls),
            server(Imap, "mail", 143, Starttls),
            server(Pop3, "pop", 995, Tls),
            server(Pop3, "pop3", 995, Tls),
            server(Pop3, "mail", 995, Tls),
            server(Pop3, "pop", 110, Starttls),
            server(Pop3, "pop3", 110, Starttls),
            server(Pop3, "mail", 110, Starttls),
            server(Smtp, "smtp", 465, Tls),
            server(Smtp, "mail", 465, Tls),
            server(Smtp, "smtp", 587, Starttls),
            server(Smtp, "mail", 587, Starttls),
        ];
        let answered = join_all(tries.iter().map(|s| probe::probe(s, &self.dns))).await;
        let ok: Vec<&Server> = tries
            .iter()
            .zip(answered)
            .filter_map(|(s, ok)| ok.then_some(s))
            .collect();
        let smtp = ok.iter().find(|s| s.kind == Smtp).map(|s| (*s).clone());
        [Imap, Pop3]
            .into_iter()
            .filter_map(|kind| ok.iter().find(|s| s.kind == kind))
            .map(|incoming| Candidate {
                source: Source::Guess,
                incoming: (*incoming).clone(),
                verified: true,
                smtp: smtp.clone(),
            })
            .collect()
    }

    /// Probe the servers of every candidate not probed yet.
    async fn verify(&self, candidates: &mut [Candidate]) {
        let mut servers: Vec<Server> = Vec::new();
        for c in candidates.iter().filter(|c| c.source != Source::Guess) {
            for s in std::iter::once(&c.incoming).chain(c.smtp.as_ref()) {
                if !servers.contains(s) {
                    servers.push(s.clone());
                }
            }
        }
        let answers = join_all(servers.iter().map(|s| probe::probe(s, &self.dns))).await;
        let ok: Vec<(Server, bool)> = servers.into_iter().zip(answers).collect();
        for c in candidates.iter_mut().filter(|c| c.source != Source::Guess) {
            let answered = |s: &Server| ok.iter().any(|(o, yes)| *yes && o == s);
            c.verified = answered(&c.incoming) && c.smtp.as_ref().is_none_or(answered);
        }
    }
}

/// The candidates a provider's document gives for an address: one per
/// usable incoming server (IMAP first, then implicit TLS first), each with
/// the best outgoing server.
pub fn from_provider(p: &Provider, parts: &AddressParts<'_>, source: Source) -> Vec<Candidate> {
    let rank = |s: &Server| {
        (
            match s.kind {
                Kind::Imap => 0,
                Kind::Pop3 => 1,
                Kind::Smtp => 2,
            },
            match s.security {
                Security::Tls => 0,
                Security::Starttls => 1,
                Security::None => 2,
            },
        )
    };
    let mut incoming: Vec<Server> = p
        .incoming
        .iter()
        .filter(|t| t.kind != Kind::Smtp)
        .filter_map(|t| t.fill(parts))
        .collect();
    incoming.sort_by_key(rank);
    let mut outgoing: Vec<Server> = p
        .outgoing
        .iter()
        .filter(|t| t.kind == Kind::Smtp)
        .filter_map(|t| t.fill(parts))
        .collect();
    outgoing.sort_by_key(rank);
    let smtp = outgoing.into_iter().next();
    incoming
        .into_iter()
        .map(|incoming| Candidate {
            source,
            incoming,
            smtp: smtp.clone(),
            verified: false,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_candidates_prefer_imap_and_implicit_tls() {
        let db = config::parse(BUILTIN_PROVIDERS).expect("parses");
        let posteo = db
            .iter()
            .find(|p| p.domains.iter().any(|d| d == "posteo.de"))
            .expect("posteo is in the database");
        let parts = AddressParts::new("kim@posteo.de").expect("an address");
        let c = from_provider(posteo, &parts, Source::ProviderDb);
        assert_eq!(c[0].incoming.kind, Kind::Imap);
        assert_eq!(c[0].incoming.port, 993);
        assert_eq!(c[1].incoming.port, 143);
        assert_eq!(c[2].incoming.kind, Kind::Pop3);
        let smtp = c[0].smtp.as_ref().expect("an SMTP server");
        assert_eq!((smtp.port, smtp.security), (465, Security::Tls));
    }

    #[test]
    fn icloud_logs_in_with_the_local_part() {
        let db = config::parse(BUILTIN_PROVIDERS).expect("parses");
        let icloud = db
            .iter()
            .find(|p| p.domains.iter().any(|d| d == "me.com"))
            .expect("iCloud is in the database");
        let parts = AddressParts::new("emily@me.com").expect("an address");
        let c = &from_provider(icloud, &parts, Source::ProviderDb)[0];
        assert_eq!(c.incoming.login, "emily");
        // Apple's SMTP wants the whole address.
        let smtp = c.smtp.as_ref().expect("an SMTP server");
        assert_eq!(smtp.login, "emily@me.com");
    }
}

//! # DNS for discovery
//!
//! SRV (RFC 6186, RFC 8314 §5.1) and MX lookups with hickory, against the
//! system's resolvers or, with `--discovery-dns ADDR:PORT`, against that
//! server only; and the addresses of the hosts discovery probes. With a
//! discovery server set, probed hosts are resolved there too (only
//! `localhost` goes to the system), so tests and private deployments stay
//! self-contained. Every query has a short timeout and one attempt:
//! discovery must answer within seconds, and a lookup that fails only means
//! fewer candidates.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};
use tracing::warn;

/// Time allowed for one DNS query.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// One SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    /// Lower is preferred.
    pub priority: u16,
    /// Higher is preferred among equal priorities.
    pub weight: u16,
    /// Port.
    pub port: u16,
    /// Host, lower-cased, without the final dot.
    pub target: String,
}

/// The resolver of discovery.
pub struct Dns {
    resolver: Option<TokioResolver>,
    custom: bool,
}

impl Dns {
    /// Use `server` for every query, or the system's resolvers.
    pub fn new(server: Option<SocketAddr>) -> Dns {
        let mut opts = ResolverOpts::default();
        opts.timeout = QUERY_TIMEOUT;
        opts.attempts = 1;
        let resolver = match server {
            Some(addr) => {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                let config = ResolverConfig::from_parts(None, Vec::new(), vec![ns]);
                Resolver::builder_with_config(config, TokioRuntimeProvider::default())
                    .with_options(opts)
                    .build()
                    .map_err(|e| warn!("Cannot set up the discovery resolver {addr}: {e}"))
                    .ok()
            }
            None => match TokioResolver::builder_tokio() {
                Ok(mut builder) => {
                    let o = builder.options_mut();
                    o.timeout = QUERY_TIMEOUT;
                    o.attempts = 1;
                    builder
                        .build()
                        .map_err(|e| warn!("Cannot set up the system resolver: {e}"))
                        .ok()
                }
                Err(e) => {
                    warn!("No system DNS configuration ({e}); discovery skips SRV and MX lookups.");
                    None
                }
            },
        };
        Dns {
            resolver,
            custom: server.is_some(),
        }
    }

    /// The SRV records of `name`, best first; a target of `.` (service
    /// not provided, RFC 2782) is left out.
    pub async fn srv(&self, name: &str) -> Vec<Srv> {
        let Some(resolver) = &self.resolver else {
            return Vec::new();
        };
        let Ok(lookup) = resolver.srv_lookup(fqdn(name)).await else {
            return Vec::new();
        };
        let mut out: Vec<Srv> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => Some(Srv {
                    priority: srv.priority,
                    weight: srv.weight,
                    port: srv.port,
                    target: host_of(&srv.target.to_ascii()),
                }),
                _ => None,
            })
            .filter(|s| !s.target.is_empty() && s.port != 0)
            .collect();
        out.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
        out
    }

    /// The MX hosts of `domain`, most preferred first.
    pub async fn mx(&self, domain: &str) -> Vec<String> {
        let Some(resolver) = &self.resolver else {
            return Vec::new();
        };
        let Ok(lookup) = resolver.mx_lookup(fqdn(domain)).await else {
            return Vec::new();
        };
        let mut out: Vec<(u16, String)> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(mx) => Some((mx.preference, host_of(&mx.exchange.to_ascii()))),
                _ => None,
            })
            .filter(|(_, h)| !h.is_empty())
            .collect();
        out.sort();
        out.into_iter().map(|(_, h)| h).collect()
    }

    /// The addresses of `host`: through the discovery resolver when one was
    /// given (`localhost` excepted), else the system's.
    pub async fn addresses(&self, host: &str, port: u16) -> Vec<SocketAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return vec![SocketAddr::new(ip, port)];
        }
        let local = host.eq_ignore_ascii_case("localhost") || host.ends_with(".localhost");
        if self.custom && !local {
            let Some(resolver) = &self.resolver else {
                return Vec::new();
            };
            return match resolver.lookup_ip(fqdn(host)).await {
                Ok(ips) => ips.iter().map(|ip| SocketAddr::new(ip, port)).collect(),
                Err(_) => Vec::new(),
            };
        }
        match tokio::time::timeout(QUERY_TIMEOUT, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addrs)) => addrs.collect(),
            _ => Vec::new(),
        }
    }
}

/// `name.` so that no search domain is appended.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

/// A DNS name as a host: lower-case, no final dot (`.` alone becomes
/// empty).
fn host_of(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

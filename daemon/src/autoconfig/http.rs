//! # Fetching autoconfig documents
//!
//! GETs config-v1.1 documents with reqwest on facteur's rustls setup (ring,
//! the system's roots, `SSL_CERT_FILE` honoured), with a short timeout, a
//! size cap and at most a few redirects. With `--discovery-http-base URL`,
//! every `SCHEME://HOST/PATH?QUERY` is fetched as `URL/HOST/PATH?QUERY`
//! instead, so tests and private deployments can serve them from one place.

use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls::{self, ClientConfig};
use tracing::{debug, warn};

use super::config::{self, Provider};

/// Time allowed for one fetch, redirects included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(4);
/// Largest document accepted. Real ones are a few kilobytes.
const MAX_BODY: usize = 256 * 1024;

/// The HTTP side of discovery.
pub struct Http {
    client: Option<reqwest::Client>,
    base: Option<String>,
}

fn tls_config() -> Result<ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        warn!("No trusted root certificates found: autoconfig over https will fail.");
    }
    Ok(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

impl Http {
    /// An HTTP client fetching from the real hosts, or from `base`.
    pub fn new(base: Option<String>) -> Http {
        let client = tls_config().and_then(|tls| {
            reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .timeout(FETCH_TIMEOUT)
                .connect_timeout(FETCH_TIMEOUT)
                .redirect(reqwest::redirect::Policy::limited(5))
                .user_agent(concat!("facteur/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| e.to_string())
        });
        let client = match client {
            Ok(c) => Some(c),
            Err(e) => {
                warn!("Cannot set up the HTTP client for autoconfig ({e}); discovery skips it.");
                None
            }
        };
        Http {
            client,
            base: base.map(|b| b.trim_end_matches('/').to_owned()),
        }
    }

    /// The URL to fetch for `scheme://host/path_and_query`.
    pub fn url(&self, scheme: &str, host: &str, path_and_query: &str) -> String {
        match &self.base {
            Some(base) => format!("{base}/{host}{path_and_query}"),
            None => format!("{scheme}://{host}{path_and_query}"),
        }
    }

    /// Fetch and parse one document.
    pub async fn providers(&self, url: &str) -> Result<Vec<Provider>, String> {
        let client = self.client.as_ref().ok_or("no HTTP client")?;
        let fetch = async {
            let mut resp = client.get(url).send().await.map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("HTTP {}", resp.status()));
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_BODY {
                    return Err(format!("larger than {MAX_BODY} bytes"));
                }
            }
            let text = String::from_utf8(body).map_err(|_| "not UTF-8".to_owned())?;
            config::parse(&text).map_err(|e| e.0)
        };
        let result = tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .unwrap_or_else(|_| Err("timed out".to_owned()));
        if let Err(e) = &result {
            debug!("No autoconfig from {url}: {e}.");
        }
        result
    }
}

/// `text` with everything but unreserved characters percent-encoded, for
/// a query value (RFC 3986 §2.3).
pub fn query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

//! # config-v1.1 documents
//!
//! Parses Thunderbird's autoconfig format
//! (<https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat>):
//! a `clientConfig` with `emailProvider` entries, each with its domains and
//! its incoming (IMAP, POP3) and outgoing (SMTP) servers. Fills in the
//! placeholders `%EMAILADDRESS%`, `%EMAILLOCALPART%` and `%EMAILDOMAIN%`,
//! and drops what facteur must not or cannot use: plain-text servers
//! (RFC 8314), other protocols, and servers that only allow logins facteur
//! does not do (OAuth2 only, Kerberos, client certificates).

use crate::settings::Security;

/// What a server is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// IMAP.
    Imap,
    /// POP3.
    Pop3,
    /// SMTP submission.
    Smtp,
}

impl Kind {
    /// The contract's spelling of an incoming protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Imap => "imap",
            Kind::Pop3 => "pop3",
            Kind::Smtp => "smtp",
        }
    }
}

/// One server of a provider, placeholders still in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTemplate {
    /// IMAP, POP3 or SMTP.
    pub kind: Kind,
    /// Host name (may hold `%EMAILDOMAIN%`).
    pub hostname: String,
    /// Port.
    pub port: u16,
    /// Implicit TLS or STARTTLS (plain text is never kept).
    pub security: Security,
    /// Login (may hold placeholders).
    pub username: String,
}

/// A server for one address: placeholders filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// IMAP, POP3 or SMTP.
    pub kind: Kind,
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Implicit TLS or STARTTLS.
    pub security: Security,
    /// Login.
    pub login: String,
}

/// One `emailProvider`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// Its `id`.
    pub id: String,
    /// Its domains, lower-cased.
    pub domains: Vec<String>,
    /// Incoming servers, in the provider's order.
    pub incoming: Vec<ServerTemplate>,
    /// Outgoing servers, in the provider's order.
    pub outgoing: Vec<ServerTemplate>,
}

/// The parts of an address the placeholders stand for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressParts<'a> {
    /// The whole address.
    pub address: &'a str,
    /// What comes before the last `@`.
    pub local: &'a str,
    /// What comes after it.
    pub domain: &'a str,
}

impl<'a> AddressParts<'a> {
    /// Split `address`; `None` without an `@`.
    pub fn new(address: &'a str) -> Option<AddressParts<'a>> {
        let (local, domain) = address.rsplit_once('@')?;
        Some(AddressParts {
            address,
            local,
            domain,
        })
    }

    fn fill(&self, text: &str) -> String {
        text.replace("%EMAILADDRESS%", self.address)
            .replace("%EMAILLOCALPART%", self.local)
            .replace("%EMAILDOMAIN%", self.domain)
    }
}

impl ServerTemplate {
    /// The server for `parts`, or `None` when a placeholder facteur does
    /// not know is left (such as `%REALNAME%` in a host name).
    pub fn fill(&self, parts: &AddressParts<'_>) -> Option<Server> {
        let host = parts.fill(&self.hostname).trim().to_ascii_lowercase();
        let login = parts.fill(&self.username).trim().to_owned();
        if host.is_empty() || host.contains('%') || login.contains('%') {
            return None;
        }
        Some(Server {
            kind: self.kind,
            host,
            port: self.port,
            security: self.security,
            login: if login.is_empty() {
                parts.address.to_owned()
            } else {
                login
            },
        })
    }
}

/// Why a document cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable(pub String);

/// Parse a config-v1.1 document: every `emailProvider` in it.
pub fn parse(text: &str) -> Result<Vec<Provider>, Unusable> {
    let doc = roxmltree::Document::parse(text)
        .map_err(|e| Unusable(format!("not well-formed XML: {e}")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "clientConfig" {
        return Err(Unusable(format!(
            "the root element is <{}>, not <clientConfig>",
            root.tag_name().name()
        )));
    }
    let providers: Vec<Provider> = root
        .children()
        .filter(|n| n.has_tag_name("emailProvider"))
        .map(|p| Provider {
            id: p.attribute("id").unwrap_or_default().to_owned(),
            domains: p
                .children()
                .filter(|n| n.has_tag_name("domain"))
                .filter_map(|n| n.text())
                .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
            incoming: p
                .children()
                .filter(|n| n.has_tag_name("incomingServer"))
                .filter_map(server)
                .collect(),
            outgoing: p
                .children()
                .filter(|n| n.has_tag_name("outgoingServer"))
                .filter_map(server)
                .collect(),
        })
        .collect();
    if providers.is_empty() {
        return Err(Unusable("no <emailProvider> in the document".to_owned()));
    }
    Ok(providers)
}

fn child_text<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.children()
        .find(|n| n.has_tag_name(name))
        .and_then(|n| n.text())
        .map(str::trim)
}

/// One `incomingServer` or `outgoingServer`, if facteur can use it.
fn server(node: roxmltree::Node<'_, '_>) -> Option<ServerTemplate> {
    let kind = match node.attribute("type")? {
        "imap" => Kind::Imap,
        "pop3" => Kind::Pop3,
        "smtp" => Kind::Smtp,
        _ => return None,
    };
    let security = match child_text(node, "socketType")?
        .to_ascii_uppercase()
        .as_str()
    {
        "SSL" | "TLS" => Security::Tls,
        "STARTTLS" => Security::Starttls,
        // RFC 8314: never propose clear text.
        _ => return None,
    };
    // A password login facteur can do: cleartext (inside TLS) or none
    // stated. OAuth2-only, Kerberos, NTLM and client certificates are not.
    let auths: Vec<String> = node
        .children()
        .filter(|n| n.has_tag_name("authentication"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let password_ok = auths.is_empty()
        || auths
            .iter()
            .any(|a| matches!(a.as_str(), "password-cleartext" | "plain" | "secure"));
    if !password_ok {
        return None;
    }
    let port = child_text(node, "port")?.parse::<u16>().ok()?;
    if port == 0 {
        return None;
    }
    Some(ServerTemplate {
        kind,
        hostname: child_text(node, "hostname")?.to_owned(),
        port,
        security,
        username: child_text(node, "username")
            .unwrap_or("%EMAILADDRESS%")
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<?xml version="1.0"?>
<clientConfig version="1.1">
  <emailProvider id="example.org">
    <domain>Example.org</domain>
    <incomingServer type="imap">
      <hostname>imap.%EMAILDOMAIN%</hostname><port>143</port>
      <socketType>plain</socketType><username>%EMAILADDRESS%</username>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>imap.%EMAILDOMAIN%</hostname><port>993</port>
      <socketType>SSL</socketType>
      <authentication>OAuth2</authentication>
      <authentication>password-cleartext</authentication>
      <username>%EMAILLOCALPART%</username>
    </incomingServer>
    <incomingServer type="exchange"><hostname>x</hostname><port>443</port><socketType>SSL</socketType></incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.org</hostname><port>587</port>
      <socketType>STARTTLS</socketType><authentication>OAuth2</authentication>
    </outgoingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.org</hostname><port>465</port><socketType>SSL</socketType>
    </outgoingServer>
  </emailProvider>
</clientConfig>"#;

    #[test]
    fn plain_text_oauth_only_and_other_protocols_are_dropped() {
        let providers = parse(DOC).expect("parses");
        let p = &providers[0];
        assert_eq!(p.domains, ["example.org"]);
        assert_eq!(p.incoming.len(), 1);
        assert_eq!(p.outgoing.len(), 1);
        let parts = AddressParts::new("jo@example.org").expect("an address");
        let imap = p.incoming[0].fill(&parts).expect("filled");
        assert_eq!(imap.host, "imap.example.org");
        assert_eq!(imap.port, 993);
        assert_eq!(imap.security, Security::Tls);
        assert_eq!(imap.login, "jo");
        let smtp = p.outgoing[0].fill(&parts).expect("filled");
        assert_eq!(smtp.login, "jo@example.org");
    }

    #[test]
    fn the_builtin_database_parses() {
        let providers = parse(super::super::BUILTIN_PROVIDERS).expect("providers.xml parses");
        assert!(providers.len() >= 12);
        for p in &providers {
            assert!(!p.domains.is_empty(), "{} has no domain", p.id);
            assert!(
                !p.incoming.is_empty(),
                "{} has no usable incoming server",
                p.id
            );
            assert!(
                !p.outgoing.is_empty(),
                "{} has no usable outgoing server",
                p.id
            );
        }
    }

    #[test]
    fn not_a_config() {
        assert!(parse("<html><body>404</body></html>").is_err());
        assert!(parse("not xml").is_err());
    }
}

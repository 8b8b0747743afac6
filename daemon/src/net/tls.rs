//! # TLS
//!
//! rustls with the system's roots (`SSL_CERT_FILE`/`SSL_CERT_DIR` are
//! honoured), certificate and host name verification unless the account
//! opted into `accept-invalid-certs`, and a failed handshake told apart: a
//! certificate that is not trusted is [`FailureKind::Certificate`] (only
//! the user can decide), anything else [`FailureKind::Tls`].

use std::io;
use std::sync::{Arc, OnceLock};

use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types::ServerName, ClientConfig};

use super::{tls_timeout, Failure, FailureKind, Transport};

fn verified_config() -> Result<Arc<ClientConfig>, Failure> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(format!(
                    "No trusted root certificates found ({:?}); install ca-certificates or set SSL_CERT_FILE",
                    found.errors.first().map(|e| e.to_string())
                ));
            }
            let config = ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(|e| Failure::new(FailureKind::Tls, e))
}

fn unverified_config() -> Result<Arc<ClientConfig>, Failure> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::new(FailureKind::Tls, e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The verifier of `accept-invalid-certs`: any certificate is accepted, but
/// the handshake signatures are still checked, so the connection is at
/// least encrypted to whoever holds the key.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Start TLS on a connected TCP stream.
pub async fn upgrade(
    tcp: TcpStream,
    host: &str,
    accept_invalid_certs: bool,
) -> Result<Transport, Failure> {
    let config = if accept_invalid_certs {
        unverified_config()?
    } else {
        verified_config()?
    };
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let name = ServerName::try_from(bare.to_owned()).map_err(|e| {
        Failure::new(
            FailureKind::Tls,
            format!("{host} cannot be checked against a certificate: {e}"),
        )
    })?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let limit = tls_timeout();
    let tls = tokio::time::timeout(limit, connector.connect(name, tcp))
        .await
        .map_err(|_| {
            Failure::new(
                FailureKind::Timeout,
                format!(
                    "The TLS handshake with {host} took more than {}",
                    super::timeouts::shown(limit)
                ),
            )
        })?
        .map_err(|e| handshake_failure(&e, host))?;
    Ok(Transport::Tls(Box::new(tls)))
}

/// A failed handshake as a failure: [`FailureKind::Certificate`] when the
/// certificate was refused, [`FailureKind::Connection`] when the network
/// dropped the connection before TLS said anything (a reset, an early end:
/// retrying helps), [`FailureKind::Tls`] otherwise.
pub fn handshake_failure(e: &io::Error, host: &str) -> Failure {
    let tls = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    let kind = match tls {
        Some(rustls::Error::InvalidCertificate(_)) => FailureKind::Certificate,
        Some(_) => FailureKind::Tls,
        None if matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::BrokenPipe
        ) =>
        {
            FailureKind::Connection
        }
        None => FailureKind::Tls,
    };
    Failure::new(kind, describe_tls_error(e, host))
}

/// A sentence for a failed handshake that names the certificate problem.
pub fn describe_tls_error(e: &io::Error, host: &str) -> String {
    use rustls::CertificateError as C;
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return format!("The TLS handshake with {host} failed: {e}");
    };
    match tls {
        rustls::Error::InvalidCertificate(cert) => {
            let why = match cert {
                C::Expired | C::ExpiredContext { .. } => "it has expired".to_owned(),
                C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".to_owned(),
                C::NotValidForName => format!("it is not valid for {host}"),
                C::NotValidForNameContext { presented, .. } => format!(
                    "it is for {}, not {host}",
                    if presented.is_empty() {
                        "no host name".to_owned()
                    } else {
                        presented
                            .iter()
                            .map(|p| bare_name(p))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
                C::UnknownIssuer => {
                    "it is self-signed or issued by an unknown authority".to_owned()
                }
                C::Revoked => "it has been revoked".to_owned(),
                C::BadSignature => "its signature does not verify against the trusted authorities \
                                     (it was signed by an authority this system does not trust, \
                                     or altered)"
                    .to_owned(),
                C::UnsupportedSignatureAlgorithmContext { .. }
                | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                    "its signature does not match the key of any trusted authority \
                     (self-signed, or signed by an unknown authority)"
                        .to_owned()
                }
                C::BadEncoding => "it cannot be decoded".to_owned(),
                C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                    "it is not meant for a server".to_owned()
                }
                other => {
                    // The debug form can be long; keep its name only.
                    let name = format!("{other:?}");
                    let short = name
                        .split([' ', '(', '{'])
                        .next()
                        .unwrap_or(&name)
                        .to_owned();
                    format!("it could not be verified ({short})")
                }
            };
            format!(
                "The server {host} presented a certificate that is not trusted: {why}. If you \
                 trust this server, set accept-invalid-certs on this account, or add the \
                 authority that issued the certificate to the system's trusted certificates"
            )
        }
        other => format!("The TLS handshake with {host} failed: {other}"),
    }
}

/// rustls lists the names of a certificate in their debug form
/// (`DnsName("mail.example.net")`); a person wants just the name.
fn bare_name(presented: &str) -> &str {
    for prefix in ["DnsName(\"", "IpAddress(\""] {
        if let Some(inner) = presented
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("\")"))
        {
            return inner;
        }
    }
    presented
        .strip_prefix("IpAddress(")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(presented)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CertificateError as C;

    fn refused(cert: C) -> Failure {
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(cert),
        );
        handshake_failure(&e, "mail.example.net")
    }

    #[test]
    fn certificate_names_are_shown_bare() {
        assert_eq!(
            bare_name("DnsName(\"mail.example.net\")"),
            "mail.example.net"
        );
        assert_eq!(bare_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(bare_name("other"), "other");
    }

    #[test]
    fn untrusted_certificates_are_their_own_kind() {
        for (cert, why) in [
            (
                C::UnknownIssuer,
                "self-signed or issued by an unknown authority",
            ),
            (C::Expired, "it has expired"),
            (C::NotValidForName, "it is not valid for mail.example.net"),
            (
                C::BadSignature,
                "does not verify against the trusted authorities",
            ),
        ] {
            let f = refused(cert);
            assert_eq!(f.kind, FailureKind::Certificate, "{f}");
            assert_eq!(f.code(), "certificate-untrusted");
            assert!(f.attention_needed());
            assert!(f.message.contains("mail.example.net"), "{f}");
            assert!(f.message.contains(why), "{f}");
            assert!(f.message.contains("accept-invalid-certs"), "{f}");
        }
    }

    #[test]
    fn other_handshake_failures_stay_tls() {
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::PeerIncompatible(rustls::PeerIncompatible::NoCipherSuitesInCommon),
        );
        let f = handshake_failure(&e, "mail.example.net");
        assert_eq!(f.kind, FailureKind::Tls);
        assert_eq!(f.code(), "tls-failed");
        // The network dropping the connection is not a TLS problem.
        let reset = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(handshake_failure(&reset, "h").kind, FailureKind::Connection);
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert_eq!(handshake_failure(&eof, "h").kind, FailureKind::Connection);
        let other = io::Error::other("odd");
        assert_eq!(handshake_failure(&other, "h").kind, FailureKind::Tls);
    }
}

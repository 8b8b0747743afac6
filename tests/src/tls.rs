//! # Test certificates
//!
//! A throwaway certificate authority per test run ([`TestCa`]) and the
//! server certificates the test servers present ([`CertPair`]):
//!
//! - a leaf for `localhost`, `127.0.0.1` and `::1` signed by the CA, the
//!   normal case a client must accept once it trusts the CA;
//! - a self-signed leaf, which a client must refuse unless told to accept
//!   invalid certificates;
//! - a CA-signed leaf for another host name, and an expired one, for the
//!   other ways verification must fail.
//!
//! The CA and the leaves are separate certificates on purpose: rustls refuses
//! a CA certificate presented as the end-entity certificate
//! (`CaUsedAsEndEntity`), so "the server presents the CA" does not work.
//!
//! Everything is written as PEM into a temporary directory owned by the
//! [`TestCa`]; a process under test is told to trust the CA through
//! [`TestCa::cert_path`] (for example with `SSL_CERT_FILE`). What this module
//! leaves to others: configuring servers (see [`crate::dovecot`]) and clients.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tempfile::TempDir;

/// The names every normal test server certificate is valid for.
pub const LOCAL_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// A certificate and its private key, as PEM text and as files.
#[derive(Debug, Clone)]
pub struct CertPair {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key (PKCS#8), PEM.
    pub key_pem: String,
    /// A file holding [`CertPair::cert_pem`].
    pub cert_path: PathBuf,
    /// A file holding [`CertPair::key_pem`], mode 0600.
    pub key_path: PathBuf,
}

/// A throwaway certificate authority and the certificates it issued.
///
/// Made fresh for each test run (or each test): nothing outside the temporary
/// directory trusts it. Share one between servers with an `Arc` so that the
/// process under test needs to trust a single CA file.
pub struct TestCa {
    /// Holds every PEM file; removed on drop.
    dir: TempDir,
    /// Signs the leaves.
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    cert_pem: String,
    /// The CA certificate, DER.
    cert_der: Vec<u8>,
    /// The CA certificate file.
    cert_path: PathBuf,
    /// The default server leaf, for [`LOCAL_NAMES`].
    leaf: CertPair,
    /// Numbers the files of further certificates.
    counter: AtomicUsize,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// Create a CA and its default leaf for `localhost`, `127.0.0.1` and
    /// `::1`.
    pub fn new() -> TestCa {
        let dir = tempfile::Builder::new()
            .prefix("facteur-ca-")
            .tempdir()
            .expect("create a temporary directory for the test CA");
        let key = KeyPair::generate().expect("generate the test CA key");
        let mut params = CertificateParams::new(Vec::<String>::new())
            .expect("empty subject alternative names are valid");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "facteur test CA (throwaway)");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "facteur tests");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .expect("self-sign the test CA certificate");
        let cert_pem = cert.pem();
        let cert_der = cert.der().to_vec();
        let cert_path = dir.path().join("ca.pem");
        fs::write(&cert_path, &cert_pem).expect("write the test CA certificate");
        let issuer = Issuer::new(params, key);
        let mut ca = TestCa {
            dir,
            issuer,
            cert_pem,
            cert_der,
            cert_path,
            leaf: CertPair {
                cert_pem: String::new(),
                key_pem: String::new(),
                cert_path: PathBuf::new(),
                key_path: PathBuf::new(),
            },
            counter: AtomicUsize::new(0),
        };
        ca.leaf = ca.issue(LOCAL_NAMES);
        ca
    }

    /// The CA certificate file (PEM): what a client is told to trust, for
    /// example through `SSL_CERT_FILE`.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER, for a client's root store.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The default server certificate: signed by this CA, valid for
    /// `localhost`, `127.0.0.1` and `::1`.
    pub fn leaf(&self) -> &CertPair {
        &self.leaf
    }

    /// A new server certificate signed by this CA for `names` (host names or
    /// IP addresses).
    pub fn issue(&self, names: &[&str]) -> CertPair {
        let (params, key) = leaf_params(names);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign a leaf certificate with the test CA");
        self.write_pair("leaf", &cert.pem(), &key.serialize_pem())
    }

    /// A server certificate for `names`, signed by this CA, that expired a
    /// year ago.
    pub fn issue_expired(&self, names: &[&str]) -> CertPair {
        let (mut params, key) = leaf_params(names);
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign an expired leaf certificate with the test CA");
        self.write_pair("expired", &cert.pem(), &key.serialize_pem())
    }

    /// A self-signed server certificate for `names`, trusted by nobody
    /// (not by this CA either): a client must refuse it unless it accepts
    /// invalid certificates.
    pub fn self_signed(&self, names: &[&str]) -> CertPair {
        let (params, key) = leaf_params(names);
        let cert = params
            .self_signed(&key)
            .expect("self-sign a leaf certificate");
        self.write_pair("self-signed", &cert.pem(), &key.serialize_pem())
    }

    /// Write a certificate and key into the CA's directory under fresh names.
    fn write_pair(&self, kind: &str, cert_pem: &str, key_pem: &str) -> CertPair {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let cert_path = self.dir.path().join(format!("{kind}-{n}.pem"));
        let key_path = self.dir.path().join(format!("{kind}-{n}.key"));
        fs::write(&cert_path, cert_pem).expect("write a test certificate");
        fs::write(&key_path, key_pem).expect("write a test key");
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600))
            .expect("chmod 0600 a test key");
        CertPair {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            cert_path,
            key_path,
        }
    }
}

impl Default for TestCa {
    fn default() -> TestCa {
        TestCa::new()
    }
}

/// Parameters and a fresh key for a server (end-entity) certificate.
fn leaf_params(names: &[&str]) -> (CertificateParams, KeyPair) {
    let key = KeyPair::generate().expect("generate a leaf key");
    let mut params = CertificateParams::new(Vec::<String>::new())
        .expect("empty subject alternative names are valid");
    params.subject_alt_names = names.iter().map(|n| san(n)).collect();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("facteur test server"),
    );
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    (params, key)
}

/// A subject alternative name: an IP address when it parses as one.
fn san(name: &str) -> SanType {
    match name.parse::<IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(
            name.to_owned()
                .try_into()
                .unwrap_or_else(|e| panic!("`{name}` is not a valid DNS name: {e}")),
        ),
    }
}

//! TLS for every connection, as libpq defines it: `sslmode` (`disable`, `prefer`,
//! `require`, `verify-ca`, `verify-full`; default `prefer`) and `sslrootcert`, over rustls
//! with the ring provider.
//!
//! The driver (`tokio_postgres::Config`) knows only disable/prefer/require and refuses
//! `sslrootcert`, so [`take_ssl_params`] takes both out of the connection string first;
//! the certificate checks are the connector's job ([`TlsSettings::connector`]):
//!
//! | sslmode | TLS | certificate check |
//! |---|---|---|
//! | disable | never | - |
//! | prefer | if the server offers it, else plain | none |
//! | require | always | none; the chain, like verify-ca, when a root file is given |
//! | verify-ca | always | chain to a trusted root |
//! | verify-full | always | chain, and the host name |
//!
//! Trusted roots: the PEM file named by `sslrootcert` (libpq's default
//! `~/.postgresql/root.crt` when it exists), or the system's roots (`sslrootcert=system`,
//! or verify-ca/verify-full with no root file, where libpq would refuse to connect).
//! A root file replaces the system roots; it never adds to them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};

use crate::error::PgError;

/// The connector every connection of the workspace uses (pools take it too).
pub type TlsConnector = tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, plain otherwise; no certificate check.
    Prefer,
    /// Always TLS; the certificate is checked only against a given root file.
    Require,
    /// Always TLS; the certificate must chain to a trusted root (any host name).
    VerifyCa,
    /// Always TLS; the certificate must chain to a trusted root and name the host.
    VerifyFull,
}

impl SslMode {
    /// The name libpq uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Result<Self, String> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(
                    "sslmode=allow is not supported; use sslmode=prefer (tries TLS \
                            first, then plain) or sslmode=disable"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "sslmode={other:?} is not one of disable, prefer, require, verify-ca, \
                     verify-full"
                ));
            }
        })
    }

    /// What the driver must do: the verify modes require TLS (never fall back to plain).
    pub(crate) fn driver_mode(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Driver;
        match self {
            SslMode::Disable => Driver::Disable,
            SslMode::Prefer => Driver::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Driver::Require,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where trusted root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// A PEM file (`sslrootcert=FILE`, or libpq's default `~/.postgresql/root.crt`).
    File(PathBuf),
    /// The operating system's trusted roots.
    System,
}

impl fmt::Display for RootCerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootCerts::File(path) => write!(f, "roots from sslrootcert={}", path.display()),
            RootCerts::System => f.write_str("the system's trusted roots"),
        }
    }
}

/// `sslmode` and `sslrootcert` as written in a connection string, before defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SslParams {
    /// `sslmode`, as written.
    pub mode: Option<String>,
    /// `sslrootcert`, as written.
    pub root_cert: Option<String>,
}

/// A target's TLS behaviour: the mode and the roots its certificate check uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    mode: SslMode,
    /// The roots the certificate is checked against; `None`: no check.
    roots: Option<RootCerts>,
    /// Whether `sslmode`/`sslrootcert` were given (and belong in a displayed URL).
    explicit: SslParams,
}

impl TlsSettings {
    /// Plain connections only (the embedded cluster, on loopback).
    pub fn disabled() -> Self {
        Self {
            mode: SslMode::Disable,
            roots: None,
            explicit: SslParams::default(),
        }
    }

    /// libpq's rules. `given` comes from the connection string or, for what it lacks,
    /// from `PGSSLMODE` / `PGSSLROOTCERT`; `default_root` is `~/.postgresql/root.crt`
    /// when that file exists.
    pub fn resolve(given: SslParams, default_root: Option<PathBuf>) -> Result<Self, String> {
        let mode = given.mode.as_deref().map(SslMode::parse).transpose()?;
        let (mode, root) = match given.root_cert.as_deref() {
            // libpq 16: the system's roots only ever with a host-name check.
            Some("system") => match mode {
                None | Some(SslMode::VerifyFull) => (SslMode::VerifyFull, RootCerts::System),
                Some(weak) => {
                    return Err(format!(
                        "sslmode={weak} may not be used with sslrootcert=system (any \
                         certificate a public CA issued would pass); use sslmode=verify-full"
                    ));
                }
            },
            Some("") => return Err("sslrootcert is empty; name a PEM file".into()),
            Some(path) => (
                mode.unwrap_or(SslMode::Prefer),
                RootCerts::File(PathBuf::from(path)),
            ),
            None => {
                let mode = mode.unwrap_or(SslMode::Prefer);
                match default_root {
                    Some(path) => (mode, RootCerts::File(path)),
                    None => (mode, RootCerts::System),
                }
            }
        };
        let root_file_given = matches!(root, RootCerts::File(_));
        let roots = match mode {
            SslMode::Disable | SslMode::Prefer => None,
            // libpq: require with a root file checks like verify-ca.
            SslMode::Require => root_file_given.then_some(root),
            SslMode::VerifyCa | SslMode::VerifyFull => Some(root),
        };
        Ok(Self {
            mode,
            roots,
            explicit: given,
        })
    }

    /// The `sslmode` in effect.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The roots the server's certificate is checked against (`None`: not checked).
    pub fn roots(&self) -> Option<&RootCerts> {
        self.roots.as_ref()
    }

    /// `sslmode` / `sslrootcert` as they were given (none for the defaults).
    pub fn explicit(&self) -> &SslParams {
        &self.explicit
    }

    /// Whether the host name is checked too.
    fn checks_name(&self) -> bool {
        self.mode == SslMode::VerifyFull
    }

    /// Builds the rustls connector: loads the roots (a missing or empty file is an error
    /// here, before any connection) and picks the certificate check.
    pub fn connector(&self) -> Result<TlsConnector, PgError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let trust = self.roots.as_ref().map(load_roots).transpose()?;
        let verifier = Arc::new(PgVerifier {
            trust,
            check_name: self.checks_name(),
            provider: provider.clone(),
        });
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PgError::TlsRoots {
                roots: "the TLS provider".into(),
                cause: e.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(TlsConnector::new(config))
    }
}

/// libpq's default root file, `~/.postgresql/root.crt`, when it exists.
pub fn default_root_file() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let path = Path::new(&home).join(".postgresql/root.crt");
    path.is_file().then_some(path)
}

/// Trusted roots: the store webpki builds chains to, and the certificates as given (a
/// self-signed server certificate named by sslrootcert is trusted as itself, as libpq
/// does; webpki alone refuses a CA certificate as the server's).
#[derive(Debug)]
struct Trust {
    store: RootCertStore,
    certs: Vec<CertificateDer<'static>>,
}

fn load_roots(roots: &RootCerts) -> Result<Trust, PgError> {
    let failed = |cause: String| PgError::TlsRoots {
        roots: roots.to_string(),
        cause,
    };
    let mut store = RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = match roots {
        RootCerts::File(path) => CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| failed(e.to_string()))?,
        RootCerts::System => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let why: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                return Err(failed(format!("none found ({})", why.join("; "))));
            }
            found.certs
        }
    };
    let (added, _unparsable) = store.add_parsable_certificates(certs.iter().cloned());
    if added == 0 {
        return Err(failed("no usable CERTIFICATE block in it".into()));
    }
    Ok(Trust { store, certs })
}

/// The certificate check of every mode: none (prefer, require), the chain (verify-ca,
/// require with a root file), the chain and the host name (verify-full). Handshake
/// signatures are always verified.
#[derive(Debug)]
struct PgVerifier {
    /// `None`: the certificate is not checked.
    trust: Option<Trust>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PgVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(trust) = &self.trust else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        let fields = CertFields::parse(end_entity);
        if trust
            .certs
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            // Trusted as itself: only its validity period is left to check.
            fields.check_validity(now)?;
        } else if fields.self_signed {
            // A self-signed certificate chains only to itself, and it is not a root.
            return Err(CertificateError::UnknownIssuer.into());
        } else {
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                &trust.store,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        // libpq: with no subjectAltName of the host's kind, the Common Name counts.
        if self.check_name
            && let Err(e) = verify_server_name(&cert, server_name)
            && !fields.common_name_matches(server_name)
        {
            return Err(fields.name_mismatch(e));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What the name check and the pinned-certificate check need beyond webpki: the
/// subject's Common Names, the subjectAltName kinds present, self-signedness, validity.
#[derive(Debug, Default)]
struct CertFields {
    common_names: Vec<String>,
    has_dns_san: bool,
    has_ip_san: bool,
    self_signed: bool,
    /// notBefore and notAfter, seconds since the epoch.
    validity: Option<(u64, u64)>,
}

impl CertFields {
    /// Best effort: a certificate x509-cert cannot read yields no fields (webpki has
    /// parsed it already and decides the rest).
    fn parse(der: &CertificateDer<'_>) -> Self {
        use x509_cert::der::Decode;
        use x509_cert::der::oid::db::{rfc4519, rfc5280};
        use x509_cert::ext::pkix::SubjectAltName;
        use x509_cert::ext::pkix::name::GeneralName;

        let Ok(cert) = x509_cert::Certificate::from_der(der.as_ref()) else {
            return Self::default();
        };
        let tbs = &cert.tbs_certificate;
        let mut fields = CertFields {
            self_signed: tbs.issuer == tbs.subject,
            validity: Some((
                tbs.validity.not_before.to_unix_duration().as_secs(),
                tbs.validity.not_after.to_unix_duration().as_secs(),
            )),
            ..Self::default()
        };
        for attr in tbs.subject.0.iter().flat_map(|rdn| rdn.0.iter()) {
            if attr.oid == rfc4519::CN
                && let Ok(name) = std::str::from_utf8(attr.value.value())
            {
                fields.common_names.push(name.to_string());
            }
        }
        let extensions = tbs.extensions.iter().flatten();
        for ext in extensions.filter(|e| e.extn_id == rfc5280::ID_CE_SUBJECT_ALT_NAME) {
            if let Ok(SubjectAltName(names)) = SubjectAltName::from_der(ext.extn_value.as_bytes()) {
                for name in names {
                    match name {
                        GeneralName::DnsName(_) => fields.has_dns_san = true,
                        GeneralName::IpAddress(_) => fields.has_ip_san = true,
                        _ => {}
                    }
                }
            }
        }
        fields
    }

    fn check_validity(&self, now: UnixTime) -> Result<(), rustls::Error> {
        match self.validity {
            Some((not_before, _)) if now.as_secs() < not_before => {
                Err(CertificateError::NotValidYet.into())
            }
            Some((_, not_after)) if now.as_secs() > not_after => {
                Err(CertificateError::Expired.into())
            }
            _ => Ok(()),
        }
    }

    /// webpki lists only subjectAltNames as presented; with none, the Common Names are
    /// what the certificate names.
    fn name_mismatch(&self, e: rustls::Error) -> rustls::Error {
        match e {
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                expected,
                presented,
            }) if presented.is_empty() => CertificateError::NotValidForNameContext {
                expected,
                presented: self
                    .common_names
                    .iter()
                    .map(|cn| format!("CN={cn}"))
                    .collect(),
            }
            .into(),
            other => other,
        }
    }

    /// libpq's fallback: the Common Name, when no subjectAltName of the host's kind
    /// exists (a leading `*.` matches one label).
    fn common_name_matches(&self, server_name: &ServerName<'_>) -> bool {
        let host = match server_name {
            ServerName::DnsName(name) if !self.has_dns_san => name.as_ref().to_ascii_lowercase(),
            ServerName::IpAddress(ip) if !self.has_ip_san => {
                std::net::IpAddr::from(*ip).to_string()
            }
            _ => return false,
        };
        self.common_names.iter().any(|cn| {
            let cn = cn.to_ascii_lowercase();
            match cn.strip_prefix("*.") {
                Some(suffix) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
                None => cn == host,
            }
        })
    }
}

/// Why a TLS connection failed, when it did for a TLS reason the user can act on.
#[derive(Debug)]
pub(crate) enum TlsFailure {
    /// The server answered the TLS request with "no".
    NotOffered,
    /// The server's certificate failed the check.
    Rejected(CertificateError),
}

/// Finds the TLS cause in a driver error's source chain.
pub(crate) fn classify(e: &tokio_postgres::Error) -> Option<TlsFailure> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        // tokio-rustls wraps the rustls error in an io::Error, whose `source` skips it.
        let inner = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|e| e as &(dyn std::error::Error + 'static));
        for candidate in [Some(s), inner].into_iter().flatten() {
            if let Some(rustls::Error::InvalidCertificate(cert)) =
                candidate.downcast_ref::<rustls::Error>()
            {
                return Some(TlsFailure::Rejected(cert.clone()));
            }
        }
        // tokio-postgres' own words when the server answers 'N' to SSLRequest.
        if s.to_string() == "server does not support TLS" {
            return Some(TlsFailure::NotOffered);
        }
        src = s.source();
    }
    None
}

/// Why a certificate was refused and what fixes it, in the user's terms.
pub(crate) fn explain(
    settings: &TlsSettings,
    host: &str,
    cert: &CertificateError,
) -> (String, String) {
    let trust_fix = if settings.mode == SslMode::Require {
        "set sslrootcert to the CA certificate that signed the server's certificate, or \
         leave sslrootcert out to encrypt without checking the certificate"
    } else {
        "set sslrootcert to the CA certificate that signed the server's certificate, or use \
         sslmode=require to encrypt without checking the certificate"
    };
    match cert {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => (
            "its certificate is not signed by a trusted root (unknown issuer)".into(),
            trust_fix.into(),
        ),
        CertificateError::NotValidForName => (
            format!("its certificate is not valid for the host name {host} (name mismatch)"),
            name_fix(),
        ),
        CertificateError::NotValidForNameContext { presented, .. } => (
            format!(
                "its certificate is not valid for the host name {host} (name mismatch; it \
                 names {})",
                presented
                    .iter()
                    .map(|name| presented_name(name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            name_fix(),
        ),
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => (
            format!("its certificate is outside its validity period ({cert:?})"),
            "renew the server's certificate (and check this machine's clock)".into(),
        ),
        other => (
            format!("its certificate was refused: {other}"),
            trust_fix.into(),
        ),
    }
}

/// rustls shows presented names as `DnsName("localhost")` / `IpAddress(127.0.0.1)`.
fn presented_name(name: &str) -> &str {
    name.strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
        .or_else(|| {
            name.strip_prefix("IpAddress(")
                .and_then(|n| n.strip_suffix(')'))
        })
        .unwrap_or(name)
}

fn name_fix() -> String {
    "connect with a host name the certificate names, or use sslmode=verify-ca to check the \
     issuer but not the name"
        .into()
}

/// Takes `sslmode` and `sslrootcert` out of a URL or `key=value` connection string and
/// returns the rest for the driver. Errors never repeat the string (it may hold a
/// password).
pub fn take_ssl_params(conn: &str) -> Result<(String, SslParams), String> {
    for prefix in ["postgres://", "postgresql://"] {
        if conn.starts_with(prefix) {
            return Ok(take_from_url(conn, prefix.len()));
        }
    }
    take_from_key_values(conn)
}

fn take_from_url(url: &str, prefix_len: usize) -> (String, SslParams) {
    let mut params = SslParams::default();
    // Like the driver: credentials run to the first '@', so a '?' in a password is no
    // query.
    let rest = &url[prefix_len..];
    let after_credentials = rest.find('@').map_or(0, |i| i + 1);
    let Some(q) = rest[after_credentials..].find('?') else {
        return (url.to_string(), params);
    };
    let q = prefix_len + after_credentials + q;
    let mut kept = Vec::new();
    for pair in url[q + 1..].split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        match decode(key).as_str() {
            "sslmode" => params.mode = Some(decode(value)),
            "sslrootcert" => params.root_cert = Some(decode(value)),
            _ => kept.push(pair),
        }
    }
    let mut rest = url[..q].to_string();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    (rest, params)
}

/// `key = value` pairs with the driver's quoting (`'...'`, backslash escapes); the kept
/// ones are written back quoted.
fn take_from_key_values(s: &str) -> Result<(String, SslParams), String> {
    let mut params = SslParams::default();
    let mut kept = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        if key.is_empty() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("expected `=` after `{key}`"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let quoted = chars.next_if_eq(&'\'').is_some();
        let mut value = String::new();
        let mut closed = !quoted;
        while let Some(c) = chars.next() {
            match c {
                '\'' if quoted => {
                    closed = true;
                    break;
                }
                c if !quoted && c.is_whitespace() => break,
                '\\' => value.extend(chars.next()),
                c => value.push(c),
            }
        }
        if !closed {
            return Err(format!("the value of `{key}` has no closing quote"));
        }
        match key.as_str() {
            "sslmode" => params.mode = Some(value),
            "sslrootcert" => params.root_cert = Some(value),
            _ => kept.push(format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            )),
        }
    }
    Ok((kept.join(" "), params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(mode: Option<&str>, root: Option<&str>) -> SslParams {
        SslParams {
            mode: mode.map(str::to_string),
            root_cert: root.map(str::to_string),
        }
    }

    #[test]
    fn takes_ssl_params_out_of_urls() {
        let (rest, p) = take_ssl_params(
            "postgres://u:p%3Fw@h:6/db?application_name=x&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca%20x.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p%3Fw@h:6/db?application_name=x");
        assert_eq!(p, given(Some("verify-full"), Some("/tmp/ca x.pem")));
        let (rest, p) = take_ssl_params("postgresql://h/db?sslmode=require").unwrap();
        assert_eq!(rest, "postgresql://h/db");
        assert_eq!(p, given(Some("require"), None));
        // A '?' inside the password is not the start of the query, as for the driver.
        let (rest, p) = take_ssl_params("postgres://u:a?b@h/db").unwrap();
        assert_eq!(rest, "postgres://u:a?b@h/db");
        assert_eq!(p, SslParams::default());
    }

    #[test]
    fn takes_ssl_params_out_of_key_values() {
        let (rest, p) = take_ssl_params(
            "host=h  user=u password='a \\'b\\' \\\\c' sslmode = verify-ca sslrootcert='/a b/c.pem'",
        )
        .unwrap();
        assert_eq!(p, given(Some("verify-ca"), Some("/a b/c.pem")));
        let config: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(config.get_user(), Some("u"));
        assert_eq!(config.get_password(), Some(&b"a 'b' \\c"[..]));
        let err = take_ssl_params("host=h password='open").unwrap_err();
        assert!(
            err.contains("closing quote") && !err.contains("open"),
            "{err}"
        );
    }

    #[test]
    fn resolves_modes_like_libpq() {
        let s = TlsSettings::resolve(SslParams::default(), None).unwrap();
        assert_eq!((s.mode(), s.roots()), (SslMode::Prefer, None));
        let s = TlsSettings::resolve(given(Some("require"), None), None).unwrap();
        assert_eq!((s.mode(), s.roots()), (SslMode::Require, None));
        // require with a root file checks the chain, like verify-ca.
        let ca = RootCerts::File("/ca.pem".into());
        let s = TlsSettings::resolve(given(Some("require"), Some("/ca.pem")), None).unwrap();
        assert_eq!(s.roots(), Some(&ca));
        let s = TlsSettings::resolve(given(Some("require"), None), Some("/ca.pem".into())).unwrap();
        assert_eq!(s.roots(), Some(&ca));
        let s = TlsSettings::resolve(given(Some("verify-full"), None), None).unwrap();
        assert_eq!(s.roots(), Some(&RootCerts::System));
        let s = TlsSettings::resolve(given(None, Some("system")), None).unwrap();
        assert_eq!(s.mode(), SslMode::VerifyFull);
        let err = TlsSettings::resolve(given(Some("verify-ca"), Some("system")), None).unwrap_err();
        assert!(err.contains("verify-full"), "{err}");
        let err = TlsSettings::resolve(given(Some("allow"), None), None).unwrap_err();
        assert!(err.contains("prefer"), "{err}");
        let err = TlsSettings::resolve(given(Some("verify_full"), None), None).unwrap_err();
        assert!(err.contains("verify-full"), "{err}");
        assert_eq!(
            SslMode::VerifyCa.driver_mode(),
            tokio_postgres::config::SslMode::Require,
            "a verify mode never falls back to plain"
        );
    }

    /// A self-signed certificate, as `openssl req -x509 -subj /CN=...` makes them (CA:TRUE)
    /// when `ca`, with these subjectAltNames.
    fn self_signed(cn: &str, sans: &[&str], ca: bool) -> CertificateDer<'static> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        if ca {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    fn verifier(trusted: &[&CertificateDer<'static>], check_name: bool) -> PgVerifier {
        let certs: Vec<CertificateDer<'static>> = trusted.iter().map(|c| (*c).clone()).collect();
        let mut store = RootCertStore::empty();
        store.add_parsable_certificates(certs.iter().cloned());
        PgVerifier {
            trust: Some(Trust { store, certs }),
            check_name,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }

    fn check(v: &PgVerifier, cert: &CertificateDer<'_>, host: &str) -> Result<(), rustls::Error> {
        let name = ServerName::try_from(host.to_string()).unwrap();
        v.verify_server_cert(cert, &[], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn a_self_signed_certificate_in_sslrootcert_is_trusted_as_itself() {
        // The PostgreSQL manual's recipe: CA:TRUE, a Common Name, no subjectAltName.
        let server = self_signed("localhost", &[], true);
        let full = verifier(&[&server], true);
        assert_eq!(check(&full, &server, "localhost"), Ok(()));
        assert_eq!(check(&full, &server, "LocalHost"), Ok(()));
        let Err(rustls::Error::InvalidCertificate(mismatch)) = check(&full, &server, "127.0.0.1")
        else {
            panic!("verify-full accepted a name the certificate does not carry");
        };
        let settings =
            TlsSettings::resolve(given(Some("verify-full"), Some("/ca.pem")), None).unwrap();
        let (reason, _) = explain(&settings, "127.0.0.1", &mismatch);
        assert!(
            reason.ends_with("(name mismatch; it names CN=localhost)"),
            "{reason}"
        );
        // verify-ca: the name does not matter.
        assert_eq!(
            check(&verifier(&[&server], false), &server, "db.example"),
            Ok(())
        );
        // Someone else's self-signed certificate is not trusted.
        let other = self_signed("localhost", &[], true);
        assert_eq!(
            check(&full, &other, "localhost"),
            Err(CertificateError::UnknownIssuer.into())
        );
    }

    #[test]
    fn the_common_name_counts_only_without_a_subject_alt_name_of_the_hosts_kind() {
        let wildcard = self_signed("*.example.com", &[], false);
        let v = verifier(&[&wildcard], true);
        assert_eq!(check(&v, &wildcard, "db.example.com"), Ok(()));
        assert!(check(&v, &wildcard, "example.com").is_err());
        assert!(check(&v, &wildcard, "a.db.example.com").is_err());
        // A DNS subjectAltName present: the Common Name is ignored for DNS names.
        let with_san = self_signed("localhost", &["db.example"], false);
        let v = verifier(&[&with_san], true);
        assert_eq!(check(&v, &with_san, "db.example"), Ok(()));
        assert!(check(&v, &with_san, "localhost").is_err());
        // ... but an IP address may still match the Common Name (no IP subjectAltName).
        let ip_cn = self_signed("127.0.0.1", &["db.example"], false);
        assert_eq!(
            check(&verifier(&[&ip_cn], true), &ip_cn, "127.0.0.1"),
            Ok(())
        );
    }

    #[test]
    fn a_pinned_certificate_past_its_validity_is_refused() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let old = params.self_signed(&key).unwrap().der().clone();
        assert_eq!(
            check(&verifier(&[&old], true), &old, "localhost"),
            Err(CertificateError::Expired.into())
        );
    }

    #[test]
    fn a_missing_root_file_is_refused_before_connecting() {
        let s = TlsSettings::resolve(
            given(Some("verify-full"), Some("/nonexistent/root.crt")),
            None,
        )
        .unwrap();
        let Err(err) = s.connector() else {
            panic!("a missing root file was accepted");
        };
        let err = err.to_string();
        assert!(
            err.contains("/nonexistent/root.crt") && err.contains("fix:"),
            "{err}"
        );
    }
}

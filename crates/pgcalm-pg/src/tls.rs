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
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
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
        let verifier: Arc<dyn ServerCertVerifier> = match &self.roots {
            None => Arc::new(ChainVerifier {
                roots: None,
                provider: provider.clone(),
            }),
            Some(roots) => {
                let store = Arc::new(load_roots(roots)?);
                if self.checks_name() {
                    WebPkiServerVerifier::builder_with_provider(store, provider.clone())
                        .build()
                        .map_err(|e| PgError::TlsRoots {
                            roots: roots.to_string(),
                            cause: e.to_string(),
                        })?
                } else {
                    Arc::new(ChainVerifier {
                        roots: Some(store),
                        provider: provider.clone(),
                    })
                }
            }
        };
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

fn load_roots(roots: &RootCerts) -> Result<RootCertStore, PgError> {
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
    let (added, _unparsable) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(failed("no usable CERTIFICATE block in it".into()));
    }
    Ok(store)
}

/// The check of require (none) and verify-ca (chain only, any host name); handshake
/// signatures are always verified.
#[derive(Debug)]
struct ChainVerifier {
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
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

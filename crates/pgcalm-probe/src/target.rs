//! Probe targets: `[NAME=][METHOD ]URL` arguments and the loopback rule.
//!
//! A name is loopback only if every address it resolves to is (`localhost` included: it
//! is resolved like any other name, never trusted by its spelling). The addresses that
//! were checked are the ones the probe connects to ([`CheckedTargets::pinned`]), so a
//! name that resolves differently later (DNS rebinding) cannot send it elsewhere.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::{Method, Url};
use serde::Serialize;

use crate::error::ProbeError;

/// One endpoint to probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeTarget {
    /// Name shown in lines and summaries: the `NAME=` prefix, else the URL's path.
    pub name: String,
    /// HTTP method (GET unless given).
    #[serde(serialize_with = "method_str")]
    pub method: Method,
    /// Full URL.
    #[serde(serialize_with = "url_str")]
    pub url: Url,
}

fn method_str<S: serde::Serializer>(m: &Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

fn url_str<S: serde::Serializer>(u: &Url, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(u.as_str())
}

impl ProbeTarget {
    /// Parses `[NAME=][METHOD ]URL`: `list=http://127.0.0.1:8001/list_large/`,
    /// `add=POST http://127.0.0.1:8001/add_large/`, `http://localhost:8001/`.
    pub fn parse(arg: &str) -> Result<Self, ProbeError> {
        let bad = |why: &str| ProbeError::BadTarget {
            target: arg.to_string(),
            why: why.to_string(),
        };
        let trimmed = arg.trim();
        // NAME= only when what precedes the first `=` cannot be part of a URL or method
        // (a query string such as `?a=b` contains `:` and `/` before its `=`).
        let (name, rest) = match trimmed.split_once('=') {
            Some((name, rest))
                if !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.')) =>
            {
                (Some(name.to_string()), rest.trim())
            }
            Some(("", _)) => return Err(bad("the name before `=` is empty")),
            _ => (None, trimmed),
        };
        let (method, url) = match rest.split_once(char::is_whitespace) {
            Some((method, url)) => {
                if !method.chars().all(|c| c.is_ascii_uppercase()) {
                    return Err(bad(&format!(
                        "`{method}` is not an HTTP method (GET, POST, ...)"
                    )));
                }
                let method = Method::from_bytes(method.as_bytes())
                    .map_err(|_| bad(&format!("`{method}` is not an HTTP method")))?;
                (method, url.trim())
            }
            None => (Method::GET, rest),
        };
        if url.is_empty() {
            return Err(bad("the URL is missing"));
        }
        let url = Url::parse(url).map_err(|e| bad(&format!("`{url}` is not a URL ({e})")))?;
        match url.scheme() {
            "http" => {}
            "https" => {
                return Err(bad(
                    "https is not supported (probes watch local services over plain http)",
                ));
            }
            other => return Err(bad(&format!("scheme `{other}` is not http"))),
        }
        if url.host().is_none() {
            return Err(bad("the URL has no host"));
        }
        let name = name.unwrap_or_else(|| url.path().to_string());
        Ok(Self { name, method, url })
    }

    /// The URL's host, for messages.
    pub fn host(&self) -> String {
        self.url.host_str().unwrap_or_default().to_string()
    }
}

/// Longest wait for a name to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What [`check_targets`] found: the addresses each host name was checked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckedTargets {
    /// Host name and the addresses it resolved to, all loopback (port 0: the URL's port
    /// applies). The probe connects to these, never resolving the name again. Empty with
    /// `allow_remote` (nothing to hold a remote name to) and for IP literals.
    pub pinned: Vec<(String, Vec<SocketAddr>)>,
}

/// Refuses duplicate names, and, unless `allow_remote`, any target that is not
/// loopback: an IP literal outside `127.0.0.0/8` and `::1`, or a host name that does not
/// resolve, or resolves to any address that is not loopback.
pub async fn check_targets(
    targets: &[ProbeTarget],
    allow_remote: bool,
) -> Result<CheckedTargets, ProbeError> {
    if targets.is_empty() {
        return Err(ProbeError::BadConfig(
            "no target to probe; give at least one URL, e.g. http://127.0.0.1:8001/list_large/"
                .into(),
        ));
    }
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].iter().any(|o| o.name == t.name) {
            return Err(ProbeError::DuplicateName(t.name.clone()));
        }
    }
    let mut checked = CheckedTargets::default();
    if allow_remote {
        return Ok(checked);
    }
    for t in targets {
        let not_loopback = |host: String| ProbeError::NotLoopback {
            target: t.name.clone(),
            host,
        };
        match t.url.host() {
            Some(url::Host::Ipv4(ip)) if is_loopback(IpAddr::V4(ip)) => {}
            Some(url::Host::Ipv6(ip)) if is_loopback(IpAddr::V6(ip)) => {}
            Some(url::Host::Domain(name)) => {
                if checked.pinned.iter().any(|(n, _)| n == name) {
                    continue;
                }
                let addrs = resolve(&t.name, name).await?;
                if !addrs.iter().all(|a| is_loopback(a.ip())) {
                    let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
                    return Err(not_loopback(format!(
                        "{name} (resolves to {})",
                        list.join(", ")
                    )));
                }
                checked.pinned.push((name.to_string(), addrs));
            }
            _ => return Err(not_loopback(t.host())),
        }
    }
    Ok(checked)
}

/// Loopback, IPv4-mapped IPv6 (`::ffff:127.0.0.1`) included.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The addresses `name` resolves to now (the system resolver: /etc/hosts, DNS, ...),
/// with port 0, without duplicates.
async fn resolve(target: &str, name: &str) -> Result<Vec<SocketAddr>, ProbeError> {
    let failed = |why: String| ProbeError::Resolve {
        target: target.to_string(),
        host: name.to_string(),
        why,
    };
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, 0)))
        .await
        .map_err(|_| failed(format!("no answer within {}s", RESOLVE_TIMEOUT.as_secs())))?
        .map_err(|e| failed(e.to_string()))?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in found {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(failed("it has no address".into()));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_method_url() {
        let t = ProbeTarget::parse("add=POST http://127.0.0.1:8001/add_large/").unwrap();
        assert_eq!(t.name, "add");
        assert_eq!(t.method, Method::POST);
        assert_eq!(t.url.as_str(), "http://127.0.0.1:8001/add_large/");
        let t = ProbeTarget::parse("http://localhost:8001/lookup/?email=a=b").unwrap();
        assert_eq!(t.name, "/lookup/");
        assert_eq!(t.method, Method::GET);
        assert_eq!(t.url.query(), Some("email=a=b"));
        let t = ProbeTarget::parse("list=http://127.0.0.1:8001/list_large/").unwrap();
        assert_eq!(t.name, "list");
    }

    #[test]
    fn rejects_bad_targets_with_the_expected_form() {
        for bad in [
            "list=",
            "=http://127.0.0.1/",
            "post http://127.0.0.1/",
            "ftp://127.0.0.1/",
            "https://127.0.0.1/",
            "127.0.0.1:8001/list_large/",
        ] {
            let e = ProbeTarget::parse(bad).unwrap_err().to_string();
            assert!(e.contains("expected [NAME=][METHOD ]URL"), "{bad}: {e}");
        }
    }

    fn targets(args: &[&str]) -> Vec<ProbeTarget> {
        args.iter()
            .map(|a| ProbeTarget::parse(a).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn ip_literals_are_loopback_only_unless_allowed() {
        let local = targets(&[
            "a=http://[::1]:1/",
            "b=http://127.0.0.2:1/",
            "c=http://[::ffff:127.0.0.1]:1/",
        ]);
        assert_eq!(
            check_targets(&local, false).await.unwrap(),
            CheckedTargets::default()
        );
        for remote in [
            "r=http://10.1.2.3/",
            "r=http://[2001:db8::1]:8001/",
            "r=http://0.0.0.0:8001/",
        ] {
            let mut all = local.clone();
            all.extend(targets(&[remote]));
            let e = check_targets(&all, false).await.unwrap_err();
            assert!(matches!(e, ProbeError::NotLoopback { .. }), "{remote}: {e}");
            assert!(e.to_string().contains("--allow-remote"), "{e}");
            assert!(check_targets(&all, true).await.is_ok());
        }
        let dup = check_targets(&targets(&["a=http://[::1]:1/", "a=http://[::1]:2/"]), false)
            .await
            .unwrap_err();
        assert!(matches!(dup, ProbeError::DuplicateName(_)));
    }

    #[tokio::test]
    async fn localhost_is_resolved_and_pinned_to_the_loopback_addresses_it_has() {
        let checked = check_targets(
            &targets(&["http://localhost:8001/", "x=http://LOCALHOST/"]),
            false,
        )
        .await
        .unwrap();
        assert_eq!(checked.pinned.len(), 1, "one entry per name: {checked:?}");
        let (name, addrs) = &checked.pinned[0];
        assert_eq!(name, "localhost");
        assert!(!addrs.is_empty());
        assert!(
            addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 0),
            "{addrs:?}"
        );
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_a_clear_error() {
        // RFC 6761: .invalid names never resolve.
        let e = check_targets(&targets(&["api=http://example.invalid:8001/"]), false)
            .await
            .unwrap_err();
        assert!(matches!(e, ProbeError::Resolve { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.starts_with("target `api`: cannot resolve example.invalid"),
            "{msg}"
        );
        // With --allow-remote nothing is resolved up front: the request will say.
        assert!(
            check_targets(&targets(&["api=http://example.invalid:8001/"]), true)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_localhost_subdomain_is_trusted_only_for_what_it_resolves_to() {
        // Resolvers differ: systemd-resolved answers loopback for *.localhost, plain
        // glibc asks DNS and fails. Either way the suffix alone proves nothing.
        match check_targets(&targets(&["http://foo.localhost:8001/"]), false).await {
            Ok(checked) => {
                let (name, addrs) = &checked.pinned[0];
                assert_eq!(name, "foo.localhost");
                assert!(addrs.iter().all(|a| is_loopback(a.ip())), "{addrs:?}");
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    matches!(
                        e,
                        ProbeError::Resolve { .. } | ProbeError::NotLoopback { .. }
                    ),
                    "{msg}"
                );
                assert!(msg.contains("foo.localhost"), "{msg}");
            }
        }
    }
}

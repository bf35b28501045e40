//! Probe targets: `[NAME=][METHOD ]URL` arguments and the loopback rule.

use std::net::IpAddr;

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

    /// Whether the URL's host is loopback (`127.0.0.0/8`, `::1`, `localhost`).
    pub fn is_loopback(&self) -> bool {
        match self.url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            Some(url::Host::Domain(d)) => {
                d.eq_ignore_ascii_case("localhost")
                    || d.to_ascii_lowercase().ends_with(".localhost")
            }
            None => false,
        }
    }

    /// The URL's host, for messages.
    pub fn host(&self) -> String {
        self.url.host_str().unwrap_or_default().to_string()
    }
}

/// Refuses non-loopback targets unless `allow_remote`, and duplicate names.
pub fn check_targets(targets: &[ProbeTarget], allow_remote: bool) -> Result<(), ProbeError> {
    if targets.is_empty() {
        return Err(ProbeError::BadConfig(
            "no target to probe; give at least one URL, e.g. http://127.0.0.1:8001/list_large/"
                .into(),
        ));
    }
    for (i, t) in targets.iter().enumerate() {
        if !allow_remote && !t.is_loopback() {
            return Err(ProbeError::NotLoopback {
                target: t.name.clone(),
                host: t.host(),
            });
        }
        if targets[..i].iter().any(|o| o.name == t.name) {
            return Err(ProbeError::DuplicateName(t.name.clone()));
        }
    }
    Ok(())
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

    #[test]
    fn loopback_only_unless_allowed() {
        let local = ProbeTarget::parse("http://[::1]:1/").unwrap();
        let remote = ProbeTarget::parse("r=http://example.com/").unwrap();
        assert!(check_targets(std::slice::from_ref(&local), false).is_ok());
        let e = check_targets(&[local.clone(), remote.clone()], false).unwrap_err();
        assert!(e.to_string().contains("example.com"), "{e}");
        assert!(check_targets(&[local.clone(), remote], true).is_ok());
        let dup = check_targets(&[local.clone(), local], false).unwrap_err();
        assert!(matches!(dup, ProbeError::DuplicateName(_)));
    }
}

//! What a request says about where it comes from, for policy conditions
//! (`aws:SourceIp`, `aws:SecureTransport`, `aws:UserAgent`) and the audit log.
//!
//! A middleware on the whole router resolves them once per request and runs the
//! request inside a task-local scope, so every authorization of the request (on
//! `/v2/`, the JSON APIs and the console) sees the same values without threading
//! them through each call. The client address is the TCP peer's, unless the peer is
//! a configured trusted proxy: then `X-Forwarded-For` is walked from the right,
//! past trusted proxies, to the first address that is not one (what the proxy
//! nearest to berth saw). `X-Forwarded-Proto: https` from a trusted proxy makes the
//! transport secure. Outside a request scope (background tasks) the keys are
//! absent, so conditions on them fail closed as AWS evaluates absent keys.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use berth_iam::policy::CidrBlock;

use crate::App;

/// The request attributes of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAttrs {
    /// The client's address (see the module comment).
    pub source_ip: IpAddr,
    /// Whether the client's connection is TLS (to berth, or to a trusted proxy).
    pub secure_transport: bool,
    /// `User-Agent`, when sent (and visible ASCII); shared with the request's
    /// headers, not copied.
    pub user_agent: Option<axum::http::HeaderValue>,
}

tokio::task_local! {
    static ATTRS: RequestAttrs;
}

/// The attributes of the request being served, if any.
pub fn current() -> Option<RequestAttrs> {
    ATTRS.try_with(Clone::clone).ok()
}

/// Runs `f` with `attrs` as the current request's attributes.
pub async fn scope<F: std::future::Future>(attrs: RequestAttrs, f: F) -> F::Output {
    ATTRS.scope(attrs, f).await
}

/// Parsed trusted-proxy blocks; an entry that does not parse is refused at start.
pub fn parse_proxies(list: &[String]) -> Result<Vec<CidrBlock>, String> {
    list.iter()
        .map(|s| {
            CidrBlock::parse(s).ok_or_else(|| format!("{s:?} is not an address or CIDR block"))
        })
        .collect()
}

/// Resolves the attributes of a request from `peer` with `headers`.
pub fn resolve(
    peer: IpAddr,
    tls: bool,
    headers: &HeaderMap,
    trusted: &[CidrBlock],
) -> RequestAttrs {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|b| b.contains(ip));
    let mut source_ip = peer;
    let mut secure_transport = tls;
    if is_trusted(peer) {
        // Every X-Forwarded-For header, in order, as one list.
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().parse::<IpAddr>())
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        for hop in hops.iter().rev() {
            source_ip = *hop;
            if !is_trusted(*hop) {
                break;
            }
        }
        if let Some(proto) = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
        {
            secure_transport = proto
                .rsplit(',')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
        }
    }
    RequestAttrs {
        source_ip,
        secure_transport,
        user_agent: headers
            .get("user-agent")
            .filter(|v| v.to_str().is_ok())
            .cloned(),
    }
}

/// The length of `v`'s `Display` text, without building it.
fn display_len(v: &dyn std::fmt::Display) -> usize {
    struct Count(usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = std::fmt::write(&mut c, format_args!("{v}"));
    c.0
}

/// The middleware: resolves the attributes and serves the request in their scope.
pub async fn middleware(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let limit = app.hardening().max_header_bytes;
    if limit > 0 {
        let size = display_len(req.uri())
            + req
                .headers()
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 4)
                .sum::<usize>();
        if size > limit {
            let mut r = (
                axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request header fields too large",
            )
                .into_response();
            if req.uri().path().starts_with("/v2") {
                // Every /v2/ response carries it (Distribution Spec).
                r.headers_mut().insert(
                    "docker-distribution-api-version",
                    axum::http::HeaderValue::from_static("registry/2.0"),
                );
            }
            return r;
        }
    }
    let Some(peer) = peer else {
        return next.run(req).await;
    };
    let attrs = resolve(
        peer,
        app.config.scheme == "https",
        req.headers(),
        &app.hardening().trusted_proxies,
    );
    scope(attrs, next.run(req)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let trusted = parse_proxies(&["10.0.0.0/8".into(), "192.0.2.1".into()]).unwrap();
        let xff = headers(&[
            ("x-forwarded-for", "203.0.113.9, 198.51.100.7"),
            ("x-forwarded-for", "10.1.1.1"),
            ("x-forwarded-proto", "https"),
        ]);
        // An untrusted peer: its headers are ignored.
        let a = resolve("198.51.100.50".parse().unwrap(), false, &xff, &trusted);
        assert_eq!(a.source_ip, "198.51.100.50".parse::<IpAddr>().unwrap());
        assert!(!a.secure_transport);
        // A trusted peer: walk right to left past trusted hops.
        let a = resolve("192.0.2.1".parse().unwrap(), false, &xff, &trusted);
        assert_eq!(a.source_ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert!(a.secure_transport);
        // No proxies configured: never believed.
        let a = resolve("10.0.0.1".parse().unwrap(), true, &xff, &[]);
        assert_eq!(a.source_ip, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert!(a.secure_transport);
        // A malformed list is not believed at all.
        let bad = headers(&[("x-forwarded-for", "203.0.113.9, nonsense")]);
        let a = resolve("10.0.0.1".parse().unwrap(), false, &bad, &trusted);
        assert_eq!(a.source_ip, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert!(parse_proxies(&["10.0.0.0/99".into()]).is_err());
    }

    #[test]
    fn display_len_is_the_length_of_the_text() {
        let uri: axum::http::Uri = "/v2/team/app/manifests/v1?n=10&last=a%2Fb".parse().unwrap();
        assert_eq!(display_len(&uri), uri.to_string().len());
        let a = resolve(
            "10.0.0.1".parse().unwrap(),
            false,
            &headers(&[("user-agent", "containerd/1.7")]),
            &[],
        );
        assert_eq!(
            a.user_agent.as_ref().and_then(|v| v.to_str().ok()),
            Some("containerd/1.7")
        );
    }
}

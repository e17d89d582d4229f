//! A client of an upstream OCI Distribution registry, for pull-through caches:
//! `host[:port]` over HTTPS or an explicit `http://host:port`, anonymous or with a
//! username and token. It answers the upstream's challenge as Docker clients do —
//! `WWW-Authenticate: Bearer realm=…` (the token flow, with Basic credentials to the
//! realm when it has them) or `Basic` (another berth or ECR: `AWS` and its token) —
//! and keeps the bearer token for the scope it was issued for. Credentials never
//! appear in a URL or a log line.

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

/// The manifest media types a pull accepts, as docker and podman send them.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream registry could not be reached: {0}")]
    Unreachable(String),
    #[error("the upstream registry refused the credentials (HTTP {0})")]
    Unauthorized(u16),
    #[error("the upstream registry has no {0}")]
    NotFound(String),
    #[error("the upstream registry answered HTTP {0}")]
    Status(u16),
    #[error("the upstream registry sent {0}")]
    Invalid(String),
}

/// How the upstream wants to be authenticated, once it has said so.
#[derive(Clone)]
enum Auth {
    Unknown,
    Basic,
    /// A bearer token and the scope it was issued for.
    Bearer(String, String),
}

pub struct Upstream {
    base: String,
    http: reqwest::Client,
    creds: Option<(String, String)>,
    auth: Mutex<Auth>,
}

/// `key="value"` pairs of a challenge (`realm`, `service`, `scope`).
fn challenge_params(v: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = v;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_string();
        rest = &rest[eq + 1..];
        let value;
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            value = r[..end].to_string();
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        out.push((key.to_ascii_lowercase(), value));
    }
    out
}

impl Upstream {
    /// A client of `url` (`host[:port]`, `https://…` or `http://host:port`), with
    /// `(username, token)` when the upstream needs them.
    pub fn new(url: &str, creds: Option<(String, String)>) -> Result<Upstream, UpstreamError> {
        let base = if url.starts_with("http://") || url.starts_with("https://") {
            url.trim_end_matches('/').to_string()
        } else {
            format!("https://{}", url.trim_end_matches('/'))
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!(
                "berth/",
                env!("CARGO_PKG_VERSION"),
                " (pull-through cache)"
            ))
            .build()
            .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
        Ok(Upstream {
            base,
            http,
            creds,
            auth: Mutex::new(Auth::Unknown),
        })
    }

    fn basic(&self) -> Option<HeaderValue> {
        let (u, p) = self.creds.as_ref()?;
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        let mut v = HeaderValue::from_str(&format!("Basic {enc}")).ok()?;
        v.set_sensitive(true);
        Some(v)
    }

    fn auth_header(&self, scope: &str) -> Option<HeaderValue> {
        let auth = self.auth.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match auth {
            Auth::Unknown => None,
            Auth::Basic => self.basic(),
            Auth::Bearer(s, t) if s == scope => {
                let mut v = HeaderValue::from_str(&format!("Bearer {t}")).ok()?;
                v.set_sensitive(true);
                Some(v)
            }
            Auth::Bearer(..) => None,
        }
    }

    /// Fetches a token from the challenge's realm for `scope`.
    async fn bearer_token(&self, challenge: &str, scope: &str) -> Result<String, UpstreamError> {
        let params = challenge_params(challenge);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let realm = get("realm")
            .ok_or_else(|| UpstreamError::Invalid("a challenge without a realm".into()))?;
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(s) = get("service") {
            query.push(("service", s));
        }
        if !scope.is_empty() {
            query.push(("scope", scope.to_string()));
        } else if let Some(s) = get("scope") {
            query.push(("scope", s));
        }
        let url = reqwest::Url::parse_with_params(&realm, &query)
            .map_err(|_| UpstreamError::Invalid("a challenge with an invalid realm".into()))?;
        let mut req = self.http.get(url);
        if let Some(b) = self.basic() {
            req = req.header(AUTHORIZATION, b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| UpstreamError::Unreachable(e.without_url().to_string()))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(UpstreamError::Unauthorized(status.as_u16()));
        }
        if !status.is_success() {
            return Err(UpstreamError::Status(status.as_u16()));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| UpstreamError::Unreachable(e.without_url().to_string()))?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| UpstreamError::Invalid("a token answer that is not JSON".into()))?;
        v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .map(str::to_string)
            .ok_or_else(|| UpstreamError::Invalid("a token answer without a token".into()))
    }

    /// Sends `method path` (with `accept`), answering one authentication
    /// challenge. `scope` is the token scope the path needs (`""` for `/v2/`).
    async fn send(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
        scope: &str,
    ) -> Result<reqwest::Response, UpstreamError> {
        let url = format!("{}{path}", self.base);
        let build = |auth: Option<HeaderValue>| {
            let mut h = HeaderMap::new();
            if let Some(a) = accept.and_then(|a| HeaderValue::from_str(a).ok()) {
                h.insert(ACCEPT, a);
            }
            if let Some(a) = auth {
                h.insert(AUTHORIZATION, a);
            }
            self.http.request(method.clone(), &url).headers(h)
        };
        let net = |e: reqwest::Error| UpstreamError::Unreachable(e.without_url().to_string());
        let resp = build(self.auth_header(scope)).send().await.map_err(net)?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let lower = challenge.to_ascii_lowercase();
        let next = if lower.starts_with("bearer") {
            let token = self
                .bearer_token(&challenge["bearer".len()..], scope)
                .await?;
            *self.auth.lock().unwrap_or_else(|e| e.into_inner()) =
                Auth::Bearer(scope.to_string(), token);
            self.auth_header(scope)
        } else if lower.starts_with("basic") && self.creds.is_some() {
            *self.auth.lock().unwrap_or_else(|e| e.into_inner()) = Auth::Basic;
            self.basic()
        } else {
            return Err(UpstreamError::Unauthorized(401));
        };
        let resp = build(next).send().await.map_err(net)?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            return Err(UpstreamError::Unauthorized(resp.status().as_u16()));
        }
        Ok(resp)
    }

    /// `GET /v2/` with authentication: whether the upstream speaks the
    /// Distribution API and accepts the credentials.
    pub async fn ping(&self) -> Result<(), UpstreamError> {
        let resp = self.send(Method::GET, "/v2/", None, "").await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            s => Err(UpstreamError::Status(s.as_u16())),
        }
    }

    fn scope(repo: &str) -> String {
        format!("repository:{repo}:pull")
    }

    /// A manifest: its bytes and Content-Type.
    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(Bytes, Option<String>), UpstreamError> {
        let resp = self
            .send(
                Method::GET,
                &format!("/v2/{repo}/manifests/{reference}"),
                Some(MANIFEST_ACCEPT),
                &Self::scope(repo),
            )
            .await?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                return Err(UpstreamError::NotFound(format!(
                    "manifest {repo}:{reference}"
                )))
            }
            s => return Err(UpstreamError::Status(s.as_u16())),
        }
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if resp
            .content_length()
            .is_some_and(|n| n as usize > berth_oci::manifest::MAX_MANIFEST_BYTES)
        {
            return Err(UpstreamError::Invalid(
                "a manifest that is too large".into(),
            ));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| UpstreamError::Unreachable(e.without_url().to_string()))?;
        if body.len() > berth_oci::manifest::MAX_MANIFEST_BYTES {
            return Err(UpstreamError::Invalid(
                "a manifest that is too large".into(),
            ));
        }
        Ok((body, ct))
    }

    /// A blob's length (when the upstream says it) and its bytes as a stream
    /// (never buffered whole).
    pub async fn blob(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<
        (
            Option<u64>,
            impl Stream<Item = Result<Bytes, String>> + Send + Unpin + use<>,
        ),
        UpstreamError,
    > {
        let resp = self
            .send(
                Method::GET,
                &format!("/v2/{repo}/blobs/{digest}"),
                None,
                &Self::scope(repo),
            )
            .await?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                return Err(UpstreamError::NotFound(format!("blob {digest} in {repo}")))
            }
            s => return Err(UpstreamError::Status(s.as_u16())),
        }
        let len = resp.content_length();
        let stream = Box::pin(futures_util::stream::unfold(
            Some(resp),
            |resp| async move {
                let mut resp = resp?;
                match resp.chunk().await {
                    Ok(Some(b)) => Some((Ok(b), Some(resp))),
                    Ok(None) => None,
                    Err(e) => Some((Err(e.without_url().to_string()), None)),
                }
            },
        ));
        Ok((len, stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let p = challenge_params(
            r#" realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(
            p,
            vec![
                ("realm".into(), "https://auth.docker.io/token".into()),
                ("service".into(), "registry.docker.io".into()),
                ("scope".into(), "repository:library/alpine:pull".into()),
            ]
        );
        let p = challenge_params(r#" realm="x", service=y"#);
        assert_eq!(p[1], ("service".into(), "y".into()));
    }
}

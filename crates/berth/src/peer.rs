//! The replication client of peer deployments (`[[peer]]`; `docs/architecture.md`,
//! "Replication"): the ECR calls are SigV4-signed with the peer's access key,
//! `/v2/` carries the token `GetAuthorizationToken` returned, and the destination
//! account is addressed as `<account>.<peer host>` (how berth selects an account's
//! registry). What to send and in which order is the core's
//! (`berth_registry::replication`); this only speaks HTTP.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_iam::sigv4::{self, Flavor, SigningParams};
use berth_registry::replication::{
    PeerConnector, PeerError, PeerResult, PeerSession, SentManifest, ACCESS_DENIED,
    PEER_AUTHENTICATION_FAILED, REPOSITORY_NOT_FOUND,
};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::Stream;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::config::{Config, PeerConfig};

/// Sent with every manifest a replication pushes (`berth_api` checks it).
const REPLICATED_FROM: &str = "x-berth-replicated-from";
const ECR_TARGET: &str = "AmazonEC2ContainerRegistry_V20150921";
/// Every manifest type a HEAD may be answered with.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

struct Peer {
    /// Its own client: a peer may name the CA its certificate chains to.
    client: reqwest::Client,
    /// The base URL without a trailing slash.
    endpoint: String,
    /// The endpoint's `host[:port]`.
    authority: String,
    region: String,
    /// The `[[peer]]` section's principal: every destination account without its
    /// own.
    default: Arc<PeerPrincipal>,
    /// `[[peer.account]]` principals, by destination account.
    accounts: HashMap<String, Arc<PeerPrincipal>>,
}

/// A principal of the peer deployment, and the registry token its
/// `GetAuthorizationToken` returned, kept until shortly before it expires (one
/// token serves every job; dropped when the peer answers 401).
struct PeerPrincipal {
    access_key_id: String,
    secret_access_key: String,
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

#[derive(Clone)]
struct CachedToken {
    /// `Basic <token>`, marked sensitive.
    auth: HeaderValue,
    /// When to fetch a new one.
    renew_at: Instant,
}

impl PeerPrincipal {
    fn new(access_key_id: &str, secret_access_key: String) -> Arc<Self> {
        Arc::new(PeerPrincipal {
            access_key_id: access_key_id.to_string(),
            secret_access_key,
            token: tokio::sync::Mutex::new(None),
        })
    }
}

/// How long before a token's `expiresAt` it is renewed.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

/// When a token that expires at `expires_at` (unix seconds; `None`: not given)
/// should be renewed: [`TOKEN_MARGIN`] before it expires, or halfway through a
/// shorter life; a token without an expiry is not kept.
fn renew_at(now: Instant, unix_now: f64, expires_at: Option<f64>) -> Instant {
    let Some(exp) = expires_at else {
        return now;
    };
    let left = Duration::from_secs_f64((exp - unix_now).max(0.0));
    let keep = if left > TOKEN_MARGIN * 2 {
        left - TOKEN_MARGIN
    } else {
        left / 2
    };
    now + keep
}

/// The configured peers, by region.
pub struct Peers {
    own_region: String,
    peers: HashMap<String, Arc<Peer>>,
}

impl Peers {
    pub fn new(cfg: &Config) -> Result<Self, String> {
        let mut peers = HashMap::new();
        for p in &cfg.peers {
            peers.insert(p.region.clone(), Arc::new(Peer::new(p)?));
        }
        Ok(Peers {
            own_region: cfg.region.clone(),
            peers,
        })
    }
}

impl Peer {
    fn new(p: &PeerConfig) -> Result<Self, String> {
        let endpoint = p.endpoint.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&endpoint)
            .map_err(|e| format!("[[peer]] {}: endpoint: {e}", p.region))?;
        let host = url
            .host_str()
            .ok_or_else(|| format!("[[peer]] {}: endpoint has no host", p.region))?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let mut client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120));
        if let Some(ca) = &p.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("[[peer]] {}: ca_file {}: {e}", p.region, ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("[[peer]] {}: ca_file {}: {e}", p.region, ca.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "[[peer]] {}: ca_file {} holds no PEM certificate",
                    p.region,
                    ca.display()
                ));
            }
            client = client.tls_certs_only(certs);
        }
        let client = client
            .build()
            .map_err(|e| format!("[[peer]] {}: HTTP client: {e}", p.region))?;
        let mut accounts = HashMap::new();
        for a in &p.accounts {
            let secret = a.secret(&p.region).map_err(|e| e.to_string())?;
            accounts.insert(
                a.registry_id.clone(),
                PeerPrincipal::new(&a.access_key_id, secret),
            );
        }
        Ok(Peer {
            client,
            endpoint,
            authority,
            region: p.region.clone(),
            default: PeerPrincipal::new(&p.access_key_id, p.secret().map_err(|e| e.to_string())?),
            accounts,
        })
    }

    /// The principal that replicates into `registry_id`: its own
    /// `[[peer.account]]`, else the section's.
    fn principal(&self, registry_id: &str) -> Arc<PeerPrincipal> {
        self.accounts
            .get(registry_id)
            .unwrap_or(&self.default)
            .clone()
    }
}

/// An error with its causes (a reqwest error's own text omits the TLS or I/O cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn retry(what: &str, e: impl std::fmt::Display) -> PeerError {
    PeerError::Retry(format!("{what}: {e}"))
}

fn retry_req(what: &str, e: reqwest::Error) -> PeerError {
    PeerError::Retry(format!("{what}: {}", chain(&e)))
}

/// An ECR call that did not answer 200.
enum EcrFailure {
    /// The AWS error type (`__type`) the peer answered.
    Refused(String),
    Other(PeerError),
}

/// What an ECR refusal (`__type`) by the peer means for the copy: a refusal of
/// the credentials or of the permission ends it FAILED at once (retrying cannot
/// help until someone changes the configuration or the policies); anything else
/// (throttling, …) is retried.
fn refusal(op: &str, t: &str) -> PeerError {
    match t {
        "AccessDeniedException" => PeerError::Refused(ACCESS_DENIED),
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "MissingAuthenticationTokenException"
        | "IncompleteSignatureException" => PeerError::Refused(PEER_AUTHENTICATION_FAILED),
        _ => PeerError::Retry(format!("{op}: {t}")),
    }
}

impl Peer {
    /// One SigV4-signed ECR JSON call as `principal`; `origin` (`<region>/<account>`)
    /// declares it part of a replication from there (the peer then creates a
    /// missing repository with its REPLICATION creation template).
    async fn ecr(
        &self,
        principal: &PeerPrincipal,
        op: &str,
        input: &Value,
        origin: Option<&HeaderValue>,
    ) -> Result<Value, EcrFailure> {
        let body = serde_json::to_vec(input).expect("JSON");
        let target = format!("{ECR_TARGET}.{op}");
        let content_type = "application/x-amz-json-1.1";
        let headers = [
            ("host", self.authority.as_str()),
            ("content-type", content_type),
            ("x-amz-target", target.as_str()),
        ];
        let payload = hex::encode(ring::digest::digest(&ring::digest::SHA256, &body));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let signed = sigv4::sign_request(
            &sigv4::Request {
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
            },
            &payload,
            &SigningParams {
                access_key_id: &principal.access_key_id,
                secret_access_key: &principal.secret_access_key,
                region: &self.region,
                service: "ecr",
                time: now,
                flavor: Flavor::Standard,
            },
        )
        .map_err(|e| EcrFailure::Other(retry(op, e)))?;
        let mut req = self.client.post(format!("{}/", self.endpoint));
        if let Some(o) = origin {
            req = req.header(REPLICATED_FROM, o.clone());
        }
        let resp = req
            .header(CONTENT_TYPE, content_type)
            .header("x-amz-target", &target)
            .header("x-amz-date", &signed.amz_date)
            .header(AUTHORIZATION, &signed.authorization)
            .body(body)
            .send()
            .await
            .map_err(|e| EcrFailure::Other(retry_req(op, e)))?;
        let status = resp.status();
        let text = resp
            .bytes()
            .await
            .map_err(|e| EcrFailure::Other(retry(op, e)))?;
        let v: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
        if status == StatusCode::OK {
            return Ok(v);
        }
        match v.get("__type").and_then(Value::as_str) {
            Some(t) if status.is_client_error() => Err(EcrFailure::Refused(t.to_string())),
            _ => Err(EcrFailure::Other(PeerError::Retry(format!(
                "{op}: HTTP {status}"
            )))),
        }
    }

    /// `principal`'s registry token (`Basic …`): the kept one while it is fresh,
    /// else a new one from `GetAuthorizationToken` (one call at a time per
    /// principal, so concurrent jobs share it).
    async fn token(&self, principal: &PeerPrincipal) -> PeerResult<HeaderValue> {
        let mut slot = principal.token.lock().await;
        if let Some(t) = slot.as_ref() {
            if Instant::now() < t.renew_at {
                return Ok(t.auth.clone());
            }
        }
        let op = "GetAuthorizationToken";
        let v = match self.ecr(principal, op, &json!({}), None).await {
            Ok(v) => v,
            Err(EcrFailure::Refused(t)) => return Err(refusal(op, &t)),
            Err(EcrFailure::Other(e)) => return Err(e),
        };
        let data = &v["authorizationData"][0];
        let token = data["authorizationToken"]
            .as_str()
            .ok_or_else(|| PeerError::Retry(format!("{op}: no token")))?;
        let mut auth = HeaderValue::from_str(&format!("Basic {token}"))
            .map_err(|_| PeerError::Retry(format!("{op}: bad token")))?;
        // The token is sensitive: never printed by a header dump.
        auth.set_sensitive(true);
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        *slot = Some(CachedToken {
            auth: auth.clone(),
            renew_at: renew_at(Instant::now(), unix_now, data["expiresAt"].as_f64()),
        });
        Ok(auth)
    }

    /// Drops `principal`'s kept token if it is still `used` (the peer refused it).
    async fn forget_token(&self, principal: &PeerPrincipal, used: &HeaderValue) {
        let mut slot = principal.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.auth == *used) {
            *slot = None;
        }
    }
}

impl Peers {
    async fn open_session(
        &self,
        source_account: &str,
        region: &str,
        registry_id: &str,
        name: &str,
        create: bool,
    ) -> PeerResult<Box<dyn PeerSession>> {
        let Some(peer) = self.peers.get(region) else {
            return Err(PeerError::Retry(format!(
                "no [[peer]] serves region {region}"
            )));
        };
        let principal = peer.principal(registry_id);
        // First, so that refused credentials end the copy before anything else.
        peer.token(&principal).await?;
        let origin = HeaderValue::from_str(&format!("{}/{source_account}", self.own_region))
            .map_err(|e| retry("origin", e))?;
        let describe = json!({ "registryId": registry_id, "repositoryNames": [name] });
        match peer
            .ecr(&principal, "DescribeRepositories", &describe, None)
            .await
        {
            Ok(_) => {}
            Err(EcrFailure::Refused(t)) if t == "RepositoryNotFoundException" && !create => {
                return Err(PeerError::Refused(REPOSITORY_NOT_FOUND));
            }
            Err(EcrFailure::Refused(t)) if t == "RepositoryNotFoundException" => {
                let create = json!({ "registryId": registry_id, "repositoryName": name });
                match peer
                    .ecr(&principal, "CreateRepository", &create, Some(&origin))
                    .await
                {
                    Ok(_) => {}
                    Err(EcrFailure::Refused(t)) if t == "RepositoryAlreadyExistsException" => {}
                    // The peer checks ecr:ReplicateImage (AccessDenied) before
                    // ecr:CreateRepository (RepositoryNotFound), and creates
                    // nothing when either is refused.
                    Err(EcrFailure::Refused(t)) if t == "RepositoryNotFoundException" => {
                        return Err(PeerError::Refused(REPOSITORY_NOT_FOUND));
                    }
                    Err(EcrFailure::Refused(t)) => return Err(refusal("CreateRepository", &t)),
                    Err(EcrFailure::Other(e)) => return Err(e),
                }
            }
            Err(EcrFailure::Refused(t)) => return Err(refusal("DescribeRepositories", &t)),
            Err(EcrFailure::Other(e)) => return Err(e),
        }
        let host = HeaderValue::from_str(&format!("{registry_id}.{}", peer.authority))
            .map_err(|e| retry("host", e))?;
        Ok(Box::new(Session {
            peer: peer.clone(),
            principal,
            host,
            origin,
            name: name.to_string(),
        }))
    }
}

impl PeerConnector for Peers {
    fn open<'a>(
        &'a self,
        source_account: &'a str,
        region: &'a str,
        registry_id: &'a str,
        name: &'a str,
        create: bool,
    ) -> BoxFuture<'a, PeerResult<Box<dyn PeerSession>>> {
        Box::pin(self.open_session(source_account, region, registry_id, name, create))
    }
}

struct Session {
    peer: Arc<Peer>,
    principal: Arc<PeerPrincipal>,
    /// `<destination account>.<peer authority>`.
    host: HeaderValue,
    origin: HeaderValue,
    name: String,
}

type Body = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

impl Session {
    /// A `/v2/` request without its credentials.
    fn request(&self, method: Method, path_and_query: &str) -> reqwest::RequestBuilder {
        self.peer
            .client
            .request(method, format!("{}{path_and_query}", self.peer.endpoint))
            .header(HOST, self.host.clone())
    }

    /// Sends the request `build` makes with the principal's token; a 401 (the
    /// token expired, or the peer's key changed) drops the token and sends it once
    /// more with a new one.
    async fn send(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> PeerResult<reqwest::Response> {
        let auth = self.peer.token(&self.principal).await?;
        let resp = build()
            .header(AUTHORIZATION, auth.clone())
            .send()
            .await
            .map_err(|e| retry_req(what, e))?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        self.peer.forget_token(&self.principal, &auth).await;
        let auth = self.peer.token(&self.principal).await?;
        build()
            .header(AUTHORIZATION, auth)
            .send()
            .await
            .map_err(|e| retry_req(what, e))
    }

    /// A `/v2/` answer that is neither success nor absence.
    fn failure(what: &str, status: StatusCode) -> PeerError {
        match status {
            StatusCode::UNAUTHORIZED => PeerError::Refused(PEER_AUTHENTICATION_FAILED),
            StatusCode::FORBIDDEN => PeerError::Refused(ACCESS_DENIED),
            s => PeerError::Retry(format!("{what}: HTTP {s}")),
        }
    }

    async fn exists(&self, path: String, accept: Option<&str>) -> PeerResult<bool> {
        let resp = self
            .send("HEAD", || {
                let req = self.request(Method::HEAD, &path);
                match accept {
                    Some(a) => req.header("accept", a),
                    None => req,
                }
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(Self::failure(&path, s)),
        }
    }

    async fn upload(&self, digest: &str, size: u64, body: Body) -> PeerResult<()> {
        let start = format!("/v2/{}/blobs/uploads/", self.name);
        let resp = self
            .send("upload", || {
                self.request(Method::POST, &start)
                    .header(CONTENT_LENGTH, "0")
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(Self::failure(&start, resp.status()));
        }
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| PeerError::Retry("upload: no Location".into()))?;
        // Relative, or absolute on the peer: keep the path and query.
        let path = match reqwest::Url::parse(location) {
            Ok(u) => match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_string(),
            },
            Err(_) => location.to_string(),
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        // A streamed body cannot be sent twice: a refused token is dropped and
        // the attempt retried (the upload starts over with a new one).
        let auth = self.peer.token(&self.principal).await?;
        let resp = self
            .request(Method::PUT, &format!("{path}{sep}digest={digest}"))
            .header(AUTHORIZATION, auth.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size.to_string())
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map_err(|e| retry_req("blob upload", e))?;
        match resp.status() {
            StatusCode::CREATED => Ok(()),
            StatusCode::UNAUTHORIZED => {
                self.peer.forget_token(&self.principal, &auth).await;
                Err(PeerError::Retry(format!(
                    "blob {digest}: the registry token was refused"
                )))
            }
            s => Err(Self::failure(&format!("blob {digest}"), s)),
        }
    }

    async fn manifest(
        &self,
        reference: &str,
        media_type: &str,
        body: Bytes,
    ) -> PeerResult<SentManifest> {
        let path = format!("/v2/{}/manifests/{reference}", self.name);
        let resp = self
            .send("manifest", || {
                self.request(Method::PUT, &path)
                    .header(CONTENT_TYPE, media_type)
                    .header(REPLICATED_FROM, self.origin.clone())
                    .body(body.clone())
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::CREATED {
            return Ok(SentManifest::Stored);
        }
        let text = resp.bytes().await.unwrap_or_default();
        let v: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
        let code = v["errors"][0]["code"].as_str().unwrap_or("");
        // A tag valid here is valid there: TAG_INVALID on a tag is its immutability.
        if status == StatusCode::BAD_REQUEST && code == "TAG_INVALID" && !reference.contains(':') {
            return Ok(SentManifest::TagImmutable);
        }
        Err(match Self::failure(&path, status) {
            PeerError::Retry(m) => PeerError::Retry(format!("{m} {code}")),
            e => e,
        })
    }
}

impl Session {
    async fn digest_of(&self, reference: &str) -> PeerResult<Option<String>> {
        let path = format!("/v2/{}/manifests/{reference}", self.name);
        let resp = self
            .send("HEAD", || {
                self.request(Method::HEAD, &path)
                    .header("accept", MANIFEST_ACCEPT)
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(Self::failure(&path, s)),
        }
    }

    async fn delete(&self, reference: &str) -> PeerResult<bool> {
        let path = format!("/v2/{}/manifests/{reference}", self.name);
        let resp = self
            .send("DELETE", || {
                self.request(Method::DELETE, &path)
                    .header(REPLICATED_FROM, self.origin.clone())
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(Self::failure(&path, s)),
        }
    }
}

impl PeerSession for Session {
    fn manifest_digest<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, PeerResult<Option<String>>> {
        Box::pin(self.digest_of(reference))
    }

    fn delete_manifest<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, PeerResult<bool>> {
        Box::pin(self.delete(reference))
    }

    fn has_blob<'a>(&'a self, digest: &'a str) -> BoxFuture<'a, PeerResult<bool>> {
        Box::pin(self.exists(format!("/v2/{}/blobs/{digest}", self.name), None))
    }

    fn put_blob<'a>(
        &'a self,
        digest: &'a str,
        size: u64,
        body: Body,
    ) -> BoxFuture<'a, PeerResult<()>> {
        Box::pin(self.upload(digest, size, body))
    }

    fn has_manifest<'a>(&'a self, digest: &'a str) -> BoxFuture<'a, PeerResult<bool>> {
        Box::pin(self.exists(
            format!("/v2/{}/manifests/{digest}", self.name),
            Some(MANIFEST_ACCEPT),
        ))
    }

    fn put_manifest<'a>(
        &'a self,
        reference: &'a str,
        media_type: &'a str,
        body: Bytes,
    ) -> BoxFuture<'a, PeerResult<SentManifest>> {
        Box::pin(self.manifest(reference, media_type, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_authority_keeps_the_port_and_drops_the_slash() {
        let p = Peer::new(&PeerConfig {
            region: "us-west-2".into(),
            endpoint: "http://127.0.0.1:5001/".into(),
            access_key_id: "AKID".into(),
            secret_access_key: Some("s".into()),
            access_key_file: None,
            ca_file: None,
            accounts: vec![],
        })
        .unwrap();
        assert_eq!(p.endpoint, "http://127.0.0.1:5001");
        assert_eq!(p.authority, "127.0.0.1:5001");
        let p = Peer::new(&PeerConfig {
            region: "us-west-2".into(),
            endpoint: "https://registry-west.example.com".into(),
            access_key_id: "AKID".into(),
            secret_access_key: Some("s".into()),
            access_key_file: None,
            ca_file: None,
            accounts: vec![],
        })
        .unwrap();
        assert_eq!(p.authority, "registry-west.example.com");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("berth-peer-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "not a certificate\n").unwrap();
        let cfg = |ca_file| PeerConfig {
            region: "us-west-2".into(),
            endpoint: "https://127.0.0.1:5001".into(),
            access_key_id: "AKID".into(),
            secret_access_key: Some("s".into()),
            access_key_file: None,
            ca_file,
            accounts: vec![],
        };
        let err = Peer::new(&cfg(Some(ca.clone()))).err().expect("refused");
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let err = Peer::new(&cfg(Some(dir.join("missing.pem"))))
            .err()
            .expect("refused");
        assert!(err.contains("missing.pem"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tokens_are_kept_until_shortly_before_they_expire() {
        let now = Instant::now();
        let unix = 1_000_000.0;
        // A 12-hour token: renewed five minutes before it expires.
        let at = renew_at(now, unix, Some(unix + 43_200.0));
        assert_eq!(at - now, Duration::from_secs(43_200 - 300));
        // A short-lived one: halfway through; an expired or undated one: at once.
        assert_eq!(
            renew_at(now, unix, Some(unix + 200.0)) - now,
            Duration::from_secs(100)
        );
        assert_eq!(renew_at(now, unix, Some(unix - 5.0)), now);
        assert_eq!(renew_at(now, unix, None), now);
    }

    #[test]
    fn a_destination_account_uses_its_own_principal_else_the_peers() {
        let p = Peer::new(&PeerConfig {
            region: "us-west-2".into(),
            endpoint: "http://127.0.0.1:5001".into(),
            access_key_id: "AKDEFAULT".into(),
            secret_access_key: Some("s".into()),
            access_key_file: None,
            ca_file: None,
            accounts: vec![crate::config::PeerAccountConfig {
                registry_id: "210987654321".into(),
                access_key_id: "AKPARTNER".into(),
                secret_access_key: Some("p".into()),
                access_key_file: None,
            }],
        })
        .unwrap();
        assert_eq!(p.principal("210987654321").access_key_id, "AKPARTNER");
        assert_eq!(p.principal("210987654321").secret_access_key, "p");
        assert_eq!(p.principal("123456789012").access_key_id, "AKDEFAULT");
    }

    /// A stand-in for a peer's HTTP front end (the client logic under test is the
    /// token's life): `GetAuthorizationToken` issues `tok1`, `tok2`, …; `/v2/`
    /// accepts only the tokens `accept` allows and answers 401 to the others.
    /// Returns the endpoint and the number of tokens issued.
    async fn fake_peer(accept: fn(&str) -> bool) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = issued.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let count = count.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let header = |name: &str| {
                        head.lines().find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                        })
                    };
                    let len: usize = header("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let target = header("x-amz-target").unwrap_or_default();
                    let (status, body) = if target.ends_with(".GetAuthorizationToken") {
                        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                        let exp = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .unwrap()
                            .as_secs()
                            + 43_200;
                        let body = json!({ "authorizationData": [{
                            "authorizationToken": format!("tok{n}"),
                            "expiresAt": exp
                        }] });
                        ("200 OK", body.to_string())
                    } else if target.ends_with(".DescribeRepositories") {
                        ("200 OK", json!({ "repositories": [] }).to_string())
                    } else {
                        let token = header("authorization").unwrap_or_default();
                        match token.strip_prefix("Basic ") {
                            Some(t) if accept(t) => ("200 OK", String::new()),
                            _ => ("401 Unauthorized", String::new()),
                        }
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        (format!("http://{addr}"), issued)
    }

    fn peers_of(endpoint: &str) -> Peers {
        let cfg = Config {
            peers: vec![PeerConfig {
                region: "us-west-2".into(),
                endpoint: endpoint.into(),
                access_key_id: "AKID".into(),
                secret_access_key: Some("s".into()),
                access_key_file: None,
                ca_file: None,
                accounts: vec![],
            }],
            ..Config::default()
        };
        Peers::new(&cfg).unwrap()
    }

    const BLOB: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    #[tokio::test]
    async fn a_refused_token_is_dropped_and_the_request_sent_once_more() {
        use std::sync::atomic::Ordering;
        // The peer refuses the first token it issued (as after its key changed).
        let (endpoint, issued) = fake_peer(|t| t != "tok1").await;
        let peers = peers_of(&endpoint);
        let open = || peers.open("123456789012", "us-west-2", "123456789012", "app", false);
        let session = open().await.map_err(|e| format!("{e:?}")).unwrap();
        assert_eq!(issued.load(Ordering::SeqCst), 1);
        assert!(session
            .has_blob(BLOB)
            .await
            .map_err(|e| format!("{e:?}"))
            .unwrap());
        assert_eq!(
            issued.load(Ordering::SeqCst),
            2,
            "one new token after the 401"
        );
        // The new token is kept: more requests and sessions fetch none.
        assert!(session
            .has_blob(BLOB)
            .await
            .map_err(|e| format!("{e:?}"))
            .unwrap());
        let again = open().await.map_err(|e| format!("{e:?}")).unwrap();
        assert!(again
            .has_blob(BLOB)
            .await
            .map_err(|e| format!("{e:?}"))
            .unwrap());
        assert_eq!(issued.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_token_refused_twice_fails_the_copy_without_retrying() {
        use std::sync::atomic::Ordering;
        let (endpoint, issued) = fake_peer(|_| false).await;
        let peers = peers_of(&endpoint);
        let session = peers
            .open("123456789012", "us-west-2", "123456789012", "app", false)
            .await
            .map_err(|e| format!("{e:?}"))
            .unwrap();
        match session.has_blob(BLOB).await {
            Err(PeerError::Refused(code)) => assert_eq!(code, PEER_AUTHENTICATION_FAILED),
            other => panic!(
                "expected a refusal, got {:?}",
                other.map_err(|e| format!("{e:?}"))
            ),
        }
        // The first token, and one more after the 401: no loop.
        assert_eq!(issued.load(Ordering::SeqCst), 2);
    }
}

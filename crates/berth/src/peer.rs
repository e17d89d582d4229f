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
use std::time::Duration;

use berth_iam::sigv4::{self, Flavor, SigningParams};
use berth_registry::replication::{
    PeerConnector, PeerError, PeerResult, PeerSession, SentManifest, ACCESS_DENIED,
    REPOSITORY_NOT_FOUND,
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
    access_key_id: String,
    secret_access_key: String,
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
        Ok(Peer {
            client,
            endpoint,
            authority,
            region: p.region.clone(),
            access_key_id: p.access_key_id.clone(),
            secret_access_key: p.secret().map_err(|e| e.to_string())?,
        })
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

impl Peers {
    /// One SigV4-signed ECR JSON call to `peer`.
    async fn ecr(&self, peer: &Peer, op: &str, input: &Value) -> Result<Value, EcrFailure> {
        self.ecr_from(peer, op, input, None).await
    }

    /// [`Self::ecr`] that declares the call part of a replication from `origin`
    /// (`<region>/<account>`): the peer then creates a missing repository with its
    /// REPLICATION creation template.
    async fn ecr_from(
        &self,
        peer: &Peer,
        op: &str,
        input: &Value,
        origin: Option<&HeaderValue>,
    ) -> Result<Value, EcrFailure> {
        let body = serde_json::to_vec(input).expect("JSON");
        let target = format!("{ECR_TARGET}.{op}");
        let content_type = "application/x-amz-json-1.1";
        let headers = [
            ("host", peer.authority.as_str()),
            ("content-type", content_type),
            ("x-amz-target", target.as_str()),
        ];
        let payload = hex::encode(ring::digest::digest(&ring::digest::SHA256, &body));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
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
                access_key_id: &peer.access_key_id,
                secret_access_key: &peer.secret_access_key,
                region: &peer.region,
                service: "ecr",
                time: now,
                flavor: Flavor::Standard,
            },
        )
        .map_err(|e| EcrFailure::Other(retry(op, e)))?;
        let mut req = peer.client.post(format!("{}/", peer.endpoint));
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
        let denied = |op: &str, t: String| {
            if t == "AccessDeniedException" {
                PeerError::Refused(ACCESS_DENIED)
            } else {
                PeerError::Retry(format!("{op}: {t}"))
            }
        };
        let token = match self.ecr(peer, "GetAuthorizationToken", &json!({})).await {
            Ok(v) => v["authorizationData"][0]["authorizationToken"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| PeerError::Retry("GetAuthorizationToken: no token".into()))?,
            Err(EcrFailure::Refused(t)) => return Err(denied("GetAuthorizationToken", t)),
            Err(EcrFailure::Other(e)) => return Err(e),
        };
        let origin = HeaderValue::from_str(&format!("{}/{source_account}", self.own_region))
            .map_err(|e| retry("origin", e))?;
        let describe = json!({ "registryId": registry_id, "repositoryNames": [name] });
        match self.ecr(peer, "DescribeRepositories", &describe).await {
            Ok(_) => {}
            Err(EcrFailure::Refused(t)) if t == "RepositoryNotFoundException" && !create => {
                return Err(PeerError::Refused(REPOSITORY_NOT_FOUND));
            }
            Err(EcrFailure::Refused(t)) if t == "RepositoryNotFoundException" => {
                let create = json!({ "registryId": registry_id, "repositoryName": name });
                match self
                    .ecr_from(peer, "CreateRepository", &create, Some(&origin))
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
                    Err(EcrFailure::Refused(t)) => return Err(denied("CreateRepository", t)),
                    Err(EcrFailure::Other(e)) => return Err(e),
                }
            }
            Err(EcrFailure::Refused(t)) => return Err(denied("DescribeRepositories", t)),
            Err(EcrFailure::Other(e)) => return Err(e),
        }
        let auth = HeaderValue::from_str(&format!("Basic {token}"))
            .map_err(|_| PeerError::Retry("GetAuthorizationToken: bad token".into()))?;
        let host = HeaderValue::from_str(&format!("{registry_id}.{}", peer.authority))
            .map_err(|e| retry("host", e))?;
        // The token is sensitive: never printed by a header dump.
        let mut auth = auth;
        auth.set_sensitive(true);
        Ok(Box::new(Session {
            peer: peer.clone(),
            host,
            auth,
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
    /// `<destination account>.<peer authority>`.
    host: HeaderValue,
    auth: HeaderValue,
    origin: HeaderValue,
    name: String,
}

type Body = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

impl Session {
    fn request(&self, method: Method, path_and_query: &str) -> reqwest::RequestBuilder {
        self.peer
            .client
            .request(method, format!("{}{path_and_query}", self.peer.endpoint))
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.auth.clone())
    }

    /// A `/v2/` answer that is neither success nor absence.
    fn failure(what: &str, status: StatusCode) -> PeerError {
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PeerError::Refused(ACCESS_DENIED),
            s => PeerError::Retry(format!("{what}: HTTP {s}")),
        }
    }

    async fn exists(&self, path: String, accept: Option<&str>) -> PeerResult<bool> {
        let mut req = self.request(Method::HEAD, &path);
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let resp = req.send().await.map_err(|e| retry_req("HEAD", e))?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(Self::failure(&path, s)),
        }
    }

    async fn upload(&self, digest: &str, size: u64, body: Body) -> PeerResult<()> {
        let start = format!("/v2/{}/blobs/uploads/", self.name);
        let resp = self
            .request(Method::POST, &start)
            .header(CONTENT_LENGTH, "0")
            .send()
            .await
            .map_err(|e| retry_req("upload", e))?;
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
        let resp = self
            .request(Method::PUT, &format!("{path}{sep}digest={digest}"))
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size.to_string())
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map_err(|e| retry_req("blob upload", e))?;
        match resp.status() {
            StatusCode::CREATED => Ok(()),
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
            .request(Method::PUT, &path)
            .header(CONTENT_TYPE, media_type)
            .header(REPLICATED_FROM, self.origin.clone())
            .body(body)
            .send()
            .await
            .map_err(|e| retry_req("manifest", e))?;
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
            .request(Method::HEAD, &path)
            .header("accept", MANIFEST_ACCEPT)
            .send()
            .await
            .map_err(|e| retry_req("HEAD", e))?;
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
            .request(Method::DELETE, &path)
            .header(REPLICATED_FROM, self.origin.clone())
            .send()
            .await
            .map_err(|e| retry_req("DELETE", e))?;
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
        };
        let err = Peer::new(&cfg(Some(ca.clone()))).err().expect("refused");
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let err = Peer::new(&cfg(Some(dir.join("missing.pem"))))
            .err()
            .expect("refused");
        assert!(err.contains("missing.pem"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! A lean HTTP/1.1 client for the load generator: one keep-alive connection per
//! worker (so "64 connections" means exactly 64 sockets), request bodies served as
//! zero-copy slices of shared buffers, and the OCI Distribution calls the scenarios
//! need (distribution-spec v1.1 §"Pulling", §"Pushing").

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ring::digest;

/// A harness error: what failed, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error(format!("I/O: {e}"))
    }
}

impl From<hyper::Error> for Error {
    fn from(e: hyper::Error) -> Self {
        Error(format!("HTTP: {e}"))
    }
}

impl From<hyper::http::Error> for Error {
    fn from(e: hyper::http::Error) -> Self {
        Error(format!("HTTP request: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

macro_rules! bail {
    ($($t:tt)*) => { return Err(Error(format!($($t)*))) };
}
pub(crate) use bail;

/// A request body that yields a shared buffer in `chunk`-sized frames. With
/// `sized`, hyper sends `Content-Length`; without, `Transfer-Encoding: chunked`
/// (a streamed upload).
pub struct SliceBody {
    data: Bytes,
    pos: usize,
    chunk: usize,
    sized: bool,
}

impl SliceBody {
    pub fn sized(data: Bytes) -> Self {
        SliceBody {
            data,
            pos: 0,
            chunk: 256 * 1024,
            sized: true,
        }
    }

    pub fn streamed(data: Bytes, chunk: usize) -> Self {
        SliceBody {
            data,
            pos: 0,
            chunk: chunk.max(1),
            sized: false,
        }
    }

    pub fn empty() -> Self {
        SliceBody::sized(Bytes::new())
    }
}

impl Body for SliceBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Infallible>>> {
        if self.pos >= self.data.len() {
            return Poll::Ready(None);
        }
        let end = (self.pos + self.chunk).min(self.data.len());
        let frame = self.data.slice(self.pos..end);
        self.pos = end;
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.sized && self.pos >= self.data.len()
    }

    fn size_hint(&self) -> SizeHint {
        if self.sized {
            SizeHint::with_exact((self.data.len() - self.pos) as u64)
        } else {
            SizeHint::default()
        }
    }
}

/// One keep-alive HTTP/1.1 connection to a server, reopened when the server
/// closes it.
pub struct Conn {
    addr: SocketAddr,
    host: String,
    auth: Option<String>,
    sender: Option<SendRequest<SliceBody>>,
    /// Connections opened (1 on a healthy keep-alive run).
    pub connects: u64,
}

impl Conn {
    pub fn new(addr: SocketAddr, auth: Option<String>) -> Self {
        Conn {
            addr,
            host: addr.to_string(),
            auth,
            sender: None,
            connects: 0,
        }
    }

    async fn sender(&mut self) -> Result<&mut SendRequest<SliceBody>> {
        let usable = match &mut self.sender {
            Some(s) => !s.is_closed() && s.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            let tcp = tokio::net::TcpStream::connect(self.addr)
                .await
                .map_err(|e| Error(format!("connect {}: {e}", self.addr)))?;
            tcp.set_nodelay(true)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.connects += 1;
            self.sender = Some(sender);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| Error("no connection".into()))
    }

    /// Opens the connection now (so connecting is not timed).
    pub async fn connect(&mut self) -> Result<()> {
        self.sender().await.map(|_| ())
    }

    /// Sends a request with the server's credential and `Host`.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: SliceBody,
    ) -> Result<Response<Incoming>> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        if let Some(a) = &self.auth {
            b = b.header("authorization", a);
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(body)?;
        let sender = self.sender().await?;
        match sender.send_request(req).await {
            Ok(r) => Ok(r),
            Err(e) => {
                self.sender = None;
                Err(e.into())
            }
        }
    }
}

/// Reads a whole (small) response body.
pub async fn read_body(resp: Response<Incoming>) -> Result<Bytes> {
    Ok(resp.into_body().collect().await?.to_bytes())
}

/// Streams a response body through SHA-256; returns `(length, "sha256:<hex>")`.
pub async fn hash_body(resp: Response<Incoming>) -> Result<(u64, String)> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut len = 0u64;
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            len += data.len() as u64;
            ctx.update(&data);
        }
    }
    Ok((len, format!("sha256:{}", hex::encode(ctx.finish()))))
}

/// `sha256:<hex>` of a buffer.
pub fn sha256_digest(data: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(digest::digest(&digest::SHA256, data))
    )
}

async fn expect(
    resp: Response<Incoming>,
    want: StatusCode,
    what: &str,
) -> Result<Response<Incoming>> {
    if resp.status() == want {
        return Ok(resp);
    }
    let status = resp.status();
    let body = read_body(resp).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    bail!("{what}: expected {want}, got {status}: {text}")
}

fn header<'a>(resp: &'a Response<Incoming>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The path (and query) of an upload `Location`, which may be absolute or relative.
pub fn location_path(location: &str) -> Result<String> {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = location.strip_prefix(scheme) {
            return Ok(match rest.find('/') {
                Some(i) => rest[i..].to_owned(),
                None => "/".to_owned(),
            });
        }
    }
    if location.starts_with('/') {
        Ok(location.to_owned())
    } else {
        bail!("unsupported Location {location:?}")
    }
}

/// Appends `digest=<d>` to an upload location's query.
pub fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={}", digest.replace(':', "%3A"))
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// `HEAD /v2/<repo>/manifests/<reference>`.
pub async fn head_manifest(c: &mut Conn, repo: &str, reference: &str) -> Result<u64> {
    let resp = c
        .send(
            Method::HEAD,
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("accept", ACCEPT_MANIFESTS)],
            SliceBody::empty(),
        )
        .await?;
    let resp = expect(resp, StatusCode::OK, "manifest HEAD").await?;
    read_body(resp).await?;
    Ok(0)
}

/// `GET /v2/<repo>/manifests/<reference>`; returns the manifest bytes.
pub async fn get_manifest(c: &mut Conn, repo: &str, reference: &str) -> Result<Bytes> {
    let resp = c
        .send(
            Method::GET,
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("accept", ACCEPT_MANIFESTS)],
            SliceBody::empty(),
        )
        .await?;
    let resp = expect(resp, StatusCode::OK, "manifest GET").await?;
    read_body(resp).await
}

/// `HEAD /v2/<repo>/blobs/<digest>`.
pub async fn head_blob(c: &mut Conn, repo: &str, digest: &str) -> Result<()> {
    let resp = c
        .send(
            Method::HEAD,
            &format!("/v2/{repo}/blobs/{digest}"),
            &[],
            SliceBody::empty(),
        )
        .await?;
    let resp = expect(resp, StatusCode::OK, "blob HEAD").await?;
    read_body(resp).await?;
    Ok(())
}

/// `GET /v2/<repo>/blobs/<digest>`, hashing the body; fails on a digest or length
/// mismatch. Follows one same-host redirect.
pub async fn get_blob_verified(c: &mut Conn, repo: &str, digest: &str, len: u64) -> Result<u64> {
    get_blob_checked(c, repo, digest, len, false).await
}

/// `GET` a blob, its SHA-256 computed on a blocking thread while the body is
/// still being read (so the connection's reader never waits for the hash, and
/// parallel pulls hash on every core): the client of the parallel-pull scenario,
/// which must not be the bottleneck.
pub async fn get_blob_verified_offloaded(
    c: &mut Conn,
    repo: &str,
    digest: &str,
    len: u64,
) -> Result<u64> {
    get_blob_checked(c, repo, digest, len, true).await
}

/// Hashes the body on a blocking thread fed through a bounded channel (at most
/// 64 frames in flight); returns its length and `sha256:<hex>`.
pub async fn hash_body_offloaded(resp: Response<Incoming>) -> Result<(u64, String)> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(64);
    let hasher = tokio::task::spawn_blocking(move || {
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut len = 0u64;
        for data in rx {
            len += data.len() as u64;
            ctx.update(&data);
        }
        (len, format!("sha256:{}", hex::encode(ctx.finish())))
    });
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            // A full channel blocks this worker only while the hasher is behind:
            // block_in_place keeps the runtime's other connections going.
            match tx.try_send(data) {
                Ok(()) => {}
                Err(std::sync::mpsc::TrySendError::Full(data)) => {
                    if tokio::task::block_in_place(|| tx.send(data)).is_err() {
                        bail!("blob GET: the hashing thread stopped");
                    }
                }
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                    bail!("blob GET: the hashing thread stopped")
                }
            }
        }
    }
    drop(tx);
    hasher
        .await
        .map_err(|e| Error(format!("hashing thread: {e}")))
}

async fn get_blob_checked(
    c: &mut Conn,
    repo: &str,
    digest: &str,
    len: u64,
    offload: bool,
) -> Result<u64> {
    let mut path = format!("/v2/{repo}/blobs/{digest}");
    for _ in 0..2 {
        let resp = c.send(Method::GET, &path, &[], SliceBody::empty()).await?;
        if resp.status().is_redirection() {
            let loc = header(&resp, "location").map(str::to_owned);
            read_body(resp).await?;
            match loc {
                Some(l) => {
                    path = location_path(&l)?;
                    continue;
                }
                None => bail!("blob GET: redirect without Location"),
            }
        }
        let resp = expect(resp, StatusCode::OK, "blob GET").await?;
        let (got_len, got) = if offload {
            hash_body_offloaded(resp).await?
        } else {
            hash_body(resp).await?
        };
        if got != digest || got_len != len {
            bail!("blob GET {digest}: DIGEST MISMATCH (got {got}, {got_len} bytes, want {len})");
        }
        return Ok(got_len);
    }
    bail!("blob GET: too many redirects")
}

/// `POST /v2/<repo>/blobs/uploads/`; returns the upload location path.
pub async fn start_upload(c: &mut Conn, repo: &str) -> Result<String> {
    let resp = c
        .send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/"),
            &[("content-length", "0")],
            SliceBody::empty(),
        )
        .await?;
    let resp = expect(resp, StatusCode::ACCEPTED, "upload POST").await?;
    let loc = header(&resp, "location")
        .ok_or_else(|| Error("upload POST: no Location".into()))?
        .to_owned();
    read_body(resp).await?;
    location_path(&loc)
}

async fn finish_upload(c: &mut Conn, location: &str, digest: &str, body: Bytes) -> Result<()> {
    let len = body.len().to_string();
    let resp = c
        .send(
            Method::PUT,
            &with_digest(location, digest),
            &[
                ("content-type", "application/octet-stream"),
                ("content-length", &len),
            ],
            SliceBody::sized(body),
        )
        .await?;
    let resp = expect(resp, StatusCode::CREATED, "upload PUT").await?;
    if let Some(d) = header(&resp, "docker-content-digest") {
        if d != digest {
            bail!("upload PUT: server stored {d}, sent {digest} (DIGEST MISMATCH)");
        }
    }
    read_body(resp).await?;
    Ok(())
}

/// Monolithic push: POST, then PUT with the whole blob.
pub async fn push_monolithic(c: &mut Conn, repo: &str, data: Bytes, digest: &str) -> Result<u64> {
    let len = data.len() as u64;
    let loc = start_upload(c, repo).await?;
    finish_upload(c, &loc, digest, data).await?;
    Ok(len)
}

/// Chunked push: POST, one PATCH per `chunk` bytes with `Content-Range`, empty PUT.
pub async fn push_chunked(
    c: &mut Conn,
    repo: &str,
    data: Bytes,
    digest: &str,
    chunk: usize,
) -> Result<u64> {
    let mut loc = start_upload(c, repo).await?;
    let mut pos = 0usize;
    while pos < data.len() {
        let end = (pos + chunk).min(data.len());
        let range = format!("{}-{}", pos, end - 1);
        let len = (end - pos).to_string();
        let resp = c
            .send(
                Method::PATCH,
                &loc,
                &[
                    ("content-type", "application/octet-stream"),
                    ("content-range", &range),
                    ("content-length", &len),
                ],
                SliceBody::sized(data.slice(pos..end)),
            )
            .await?;
        let resp = expect(resp, StatusCode::ACCEPTED, "upload PATCH (chunk)").await?;
        if let Some(l) = header(&resp, "location") {
            loc = location_path(l)?;
        }
        read_body(resp).await?;
        pos = end;
    }
    finish_upload(c, &loc, digest, Bytes::new()).await?;
    Ok(data.len() as u64)
}

/// Streamed push: POST, one PATCH with a chunked-encoded body, empty PUT.
pub async fn push_streamed(c: &mut Conn, repo: &str, data: Bytes, digest: &str) -> Result<u64> {
    let len = data.len() as u64;
    let mut loc = start_upload(c, repo).await?;
    let resp = c
        .send(
            Method::PATCH,
            &loc,
            &[("content-type", "application/octet-stream")],
            SliceBody::streamed(data, 1024 * 1024),
        )
        .await?;
    let resp = expect(resp, StatusCode::ACCEPTED, "upload PATCH (stream)").await?;
    if let Some(l) = header(&resp, "location") {
        loc = location_path(l)?;
    }
    read_body(resp).await?;
    finish_upload(c, &loc, digest, Bytes::new()).await?;
    Ok(len)
}

/// `PUT /v2/<repo>/manifests/<tag>` of an OCI image manifest.
pub async fn put_manifest(c: &mut Conn, repo: &str, tag: &str, manifest: Bytes) -> Result<()> {
    let len = manifest.len().to_string();
    let digest = sha256_digest(&manifest);
    let resp = c
        .send(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("content-type", OCI_MANIFEST), ("content-length", &len)],
            SliceBody::sized(manifest),
        )
        .await?;
    let resp = expect(resp, StatusCode::CREATED, "manifest PUT").await?;
    if let Some(d) = header(&resp, "docker-content-digest") {
        if d != digest {
            bail!("manifest PUT: server digest {d}, sent {digest} (DIGEST MISMATCH)");
        }
    }
    read_body(resp).await?;
    Ok(())
}

/// An OCI image manifest over a config and layers (`(digest, size)`).
pub fn image_manifest(config: &(String, u64), layers: &[(String, u64)]) -> Bytes {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(d, s)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": d,
                "size": s,
            })
        })
        .collect();
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config.0,
            "size": config.1,
        },
        "layers": layers,
    });
    Bytes::from(m.to_string())
}

/// An image config whose `diff_ids` are the (uncompressed) layer digests.
pub fn image_config(layer_digests: &[String], nonce: u64) -> Bytes {
    let c = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"berth.bench.nonce": nonce.to_string()}},
        "rootfs": {"type": "layers", "diff_ids": layer_digests},
    });
    Bytes::from(c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            location_path("http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=y").as_deref(),
            Ok("/v2/a/blobs/uploads/x?_state=y")
        );
        assert_eq!(
            location_path("/v2/a/blobs/uploads/x").as_deref(),
            Ok("/v2/a/blobs/uploads/x")
        );
        assert!(location_path("v2/x").is_err());
        assert_eq!(with_digest("/u/x", "sha256:ab"), "/u/x?digest=sha256%3Aab");
        assert_eq!(
            with_digest("/u/x?s=1", "sha256:ab"),
            "/u/x?s=1&digest=sha256%3Aab"
        );
    }

    #[test]
    fn manifest_is_valid_json_with_layers() {
        let m = image_manifest(&("sha256:c".into(), 2), &[("sha256:l".into(), 3)]);
        let v: serde_json::Value = serde_json::from_slice(&m).expect("json");
        assert_eq!(v["layers"][0]["size"], 3);
        assert_eq!(v["config"]["digest"], "sha256:c");
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

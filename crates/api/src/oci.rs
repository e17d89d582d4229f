//! The OCI Distribution data plane (`/v2/…`, Distribution Spec v1.1). Each request is
//! authenticated, routed to its route's handler, authorized there as the ECR action
//! it maps to, then served by the core (`docs/architecture.md`, "The request path").

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_oci::{Digest, Reference, RepositoryName};
use berth_registry::{MountOutcome, Registry, RegistryError, RepositoryRow};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;

use berth_registry::identity::Principal;

use crate::access::Action;
use crate::oci_error::OciError;
use crate::oci_path::{self, Route};
use crate::App;

type Result<T> = std::result::Result<T, OciError>;

const API_VERSION: HeaderValue = HeaderValue::from_static("registry/2.0");
/// Default and maximum page sizes for tag and catalog listings.
const MAX_PAGE: i64 = 10_000;

pub async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let mut resp = match dispatch(&app, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.headers_mut()
        .insert("docker-distribution-api-version", API_VERSION);
    resp
}

/// An authenticated `/v2/` request, as every route handler receives it.
struct Call {
    app: Arc<App>,
    caller: Principal,
    /// The account whose registry the request's host addresses.
    account: String,
    method: Method,
    query: Vec<(String, String)>,
    headers: HeaderMap,
}

impl Call {
    fn query(&self, key: &str) -> Option<&str> {
        query(&self.query, key)
    }

    fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Looks a repository up and authorizes `action` on it.
    async fn repo(&self, action: Action, name: &RepositoryName) -> Result<RepositoryRow> {
        self.app
            .repo_for(&self.caller, action, &self.account, name)
            .await
    }

    /// The repository a push targets, created on first push when allowed.
    async fn push_repo(&self, name: &RepositoryName) -> Result<RepositoryRow> {
        self.app
            .repo_for_push(&self.caller, &self.account, name)
            .await
    }

    /// Only `allowed` methods are served on this route.
    fn only(&self, allowed: &[Method]) -> Result<()> {
        if allowed.contains(&self.method) {
            Ok(())
        } else {
            Err(method_not_allowed())
        }
    }
}

fn method_not_allowed() -> OciError {
    OciError::unsupported("method not allowed")
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn repo_name(s: &str) -> Result<RepositoryName> {
    RepositoryName::parse(s).map_err(|_| OciError::name_invalid())
}

fn digest(s: &str) -> Result<Digest> {
    Digest::parse(&decode(s)).map_err(|e| OciError::digest_invalid(&e.to_string()))
}

/// A manifest reference from the path: a digest (refused at once when malformed)
/// or a tag, whose validation error is left to the caller as a core error.
fn reference(s: &str) -> Result<std::result::Result<Reference, RegistryError>> {
    let s = decode(s);
    if s.contains(':') {
        Digest::parse(&s)
            .map(|d| Ok(Reference::Digest(d)))
            .map_err(|e| OciError::digest_invalid(&e.to_string()))
    } else {
        Ok(Registry::parse_tag(&s).map(Reference::Tag))
    }
}

fn query_map(req: &Request) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn query<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The route table (Distribution Spec v1.1, "Endpoints"; paths in `oci_path.rs`):
/// authenticates, then hands the request to its route's handler.
async fn dispatch(app: &Arc<App>, req: Request) -> Result<Response> {
    let path = req.uri().path().to_string();
    let route = oci_path::parse(&path).ok_or_else(OciError::not_found)?;
    let caller = app.authenticate_data_plane(req.headers()).await?;
    if let Some(op) = throttled_operation(&route, req.method()) {
        if let Err(wait) = app.hardening().throttle.check(&caller.account_id, op) {
            return Err(OciError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                format!("Rate exceeded for {op}; retry later"),
            )
            .header(
                "Retry-After",
                crate::throttle::retry_after_secs(wait).to_string(),
            ));
        }
    }
    let query = query_map(&req);
    let (parts, body) = req.into_parts();
    let call = Call {
        app: app.clone(),
        caller,
        account: app.account_for_host(&parts.headers),
        method: parts.method,
        query,
        headers: parts.headers,
    };
    match route {
        Route::Base => base(call),
        Route::Catalog => catalog(call).await,
        Route::Tags(name) => tags(call, name).await,
        Route::Manifest(name, r) => manifest(call, name, r, body).await,
        Route::Blob(name, d) => blob(call, name, d).await,
        Route::UploadStart(name) => upload_start(call, name, body).await,
        Route::Upload(name, id) => upload(call, name, id, body).await,
        Route::Referrers(name, d) => referrers(call, name, d).await,
    }
}

/// The ECR operation a `/v2/` request counts as for throttling (as ECR's registry
/// endpoint counts them), if any.
fn throttled_operation(route: &Route, method: &Method) -> Option<&'static str> {
    Some(match (route, method.as_str()) {
        (Route::Manifest(..), "GET" | "HEAD") => "BatchGetImage",
        (Route::Manifest(..), "PUT") => "PutImage",
        (Route::Blob(..), "GET") => "GetDownloadUrlForLayer",
        (Route::Blob(..), "HEAD") => "BatchCheckLayerAvailability",
        (Route::UploadStart(..), "POST") => "InitiateLayerUpload",
        (Route::Upload(..), "PATCH") => "UploadLayerPart",
        (Route::Upload(..), "PUT") => "CompleteLayerUpload",
        _ => return None,
    })
}

/// `GET /v2/`: the API version check.
fn base(call: Call) -> Result<Response> {
    call.only(&[Method::GET, Method::HEAD])?;
    Ok(json_response(StatusCode::OK, "{}".into()))
}

/// `GET /v2/_catalog`
async fn catalog(call: Call) -> Result<Response> {
    call.only(&[Method::GET])?;
    let app = &call.app;
    app.authorize_registry(&call.caller, Action::DescribeRepositories, &call.account)
        .await?;
    let n = page_size(&call.query)?;
    let last = call.query("last");
    let mut names = app.registry.catalog(&call.account, last, n + 1).await?;
    let more = names.len() as i64 > n;
    names.truncate(n as usize);
    let mut resp = json_response(
        StatusCode::OK,
        serde_json::json!({ "repositories": names }).to_string(),
    );
    if more {
        if let Some(l) = names.last() {
            link_next(&mut resp, &format!("/v2/_catalog?n={n}&last={l}"));
        }
    }
    Ok(resp)
}

/// `GET /v2/<name>/tags/list`
async fn tags(call: Call, name: &str) -> Result<Response> {
    call.only(&[Method::GET])?;
    let name = repo_name(name)?;
    let repo = call.repo(Action::ListImages, &name).await?;
    let n = page_size(&call.query)?;
    let last = call.query("last");
    let mut tags = if n == 0 {
        Vec::new()
    } else {
        call.app.registry.list_tags(&repo, last, n + 1).await?
    };
    let more = tags.len() as i64 > n;
    tags.truncate(n as usize);
    let mut resp = json_response(
        StatusCode::OK,
        serde_json::json!({ "name": name.as_str(), "tags": tags }).to_string(),
    );
    if more {
        if let Some(l) = tags.last() {
            link_next(&mut resp, &format!("/v2/{name}/tags/list?n={n}&last={l}"));
        }
    }
    Ok(resp)
}

/// `/v2/<name>/manifests/<reference>`: GET, HEAD, PUT, DELETE.
async fn manifest(call: Call, name: &str, r: &str, body: Body) -> Result<Response> {
    let name = repo_name(name)?;
    let r = match reference(r)? {
        Ok(r) => r,
        // A string that cannot be a tag names no manifest: reading or deleting
        // it is MANIFEST_UNKNOWN (the conformance suite asks 404 for
        // `.INVALID_MANIFEST_NAME`); only a push is told TAG_INVALID.
        Err(RegistryError::TagInvalid) if call.method != Method::PUT => {
            return Err(RegistryError::ManifestUnknown.into());
        }
        Err(e) => return Err(e.into()),
    };
    match call.method {
        Method::GET | Method::HEAD => get_manifest(call, &name, &r).await,
        Method::PUT => put_manifest(call, &name, &r, body).await,
        Method::DELETE => {
            let repo = call.repo(Action::BatchDeleteImage, &name).await?;
            match replicated_from(call.headers())? {
                None => {
                    call.app.registry.delete_manifest(&repo, &r).await?;
                }
                Some(origin) => {
                    call.app
                        .authorize_replication(&call.caller, &call.account, &repo, &origin)
                        .await?;
                    call.app
                        .registry
                        .delete_manifest_replicated(&repo, &r, &call.caller.arn(), &origin)
                        .await?;
                }
            }
            Ok(StatusCode::ACCEPTED.into_response())
        }
        _ => Err(method_not_allowed()),
    }
}

async fn get_manifest(call: Call, name: &RepositoryName, r: &Reference) -> Result<Response> {
    let fetched =
        crate::oci_pull_through::fill(&call.app, &call.caller, &call.account, name, r).await?;
    let repo = call.repo(Action::BatchGetImage, name).await?;
    if let Some(m) = fetched {
        // Fetched from the pull-through cache's upstream, not stored until its
        // blobs are: served as fetched (digest verified).
        let len = m.body.len();
        let body = if call.method == Method::HEAD {
            Body::empty()
        } else {
            Body::from(m.body)
        };
        let mut resp = Response::new(body);
        let h = resp.headers_mut();
        set(h, header::CONTENT_TYPE, &m.content_type);
        set(h, header::CONTENT_LENGTH, &len.to_string());
        set(h, "docker-content-digest", m.digest.as_str());
        set(h, header::ETAG, &format!("\"{}\"", m.digest));
        return Ok(resp);
    }
    // Pull-time update exclusions: an excluded principal's pull is not recorded.
    let m = if call
        .app
        .registry
        .records_pulls_by(&call.account, &call.caller)
        .await?
    {
        call.app.registry.pull_served(&repo, r).await?
    } else {
        call.app.registry.manifest_for_serving(&repo, r).await?
    };
    // The body and header values are shared with the cache (reference counts).
    let body = if call.method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(m.body.clone())
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    set_shared(h, header::CONTENT_TYPE, &m.media_type);
    set_shared(h, header::CONTENT_LENGTH, &m.content_length);
    set_shared(h, DOCKER_CONTENT_DIGEST, &m.digest);
    set_shared(h, header::ETAG, &m.etag);
    Ok(resp)
}

const DOCKER_CONTENT_DIGEST: header::HeaderName =
    header::HeaderName::from_static("docker-content-digest");

/// [`set`] for a value prepared as `Bytes` (no copy).
fn set_shared(h: &mut HeaderMap, k: header::HeaderName, v: &bytes::Bytes) {
    if let Ok(v) = HeaderValue::from_maybe_shared(v.clone()) {
        h.insert(k, v);
    }
}

async fn put_manifest(
    call: Call,
    name: &RepositoryName,
    r: &Reference,
    body: Body,
) -> Result<Response> {
    let repo = call.push_repo(name).await?;
    let ct = call
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = read_limited(
        call.headers(),
        body,
        berth_oci::manifest::MAX_MANIFEST_BYTES,
    )
    .await?;
    let put = match replicated_from(call.headers())? {
        None => {
            call.app
                .registry
                .put_manifest(&repo, r, ct.as_deref(), body)
                .await?
        }
        Some(origin) => {
            call.app
                .authorize_replication(&call.caller, &call.account, &repo, &origin)
                .await?;
            call.app
                .registry
                .put_manifest_replicated(&repo, r, ct.as_deref(), body, &call.caller.arn(), &origin)
                .await?
        }
    };
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    set(
        h,
        header::LOCATION,
        &format!("/v2/{name}/manifests/{}", put.digest),
    );
    set(h, "docker-content-digest", put.digest.as_str());
    if let Some(s) = &put.subject {
        set(h, "oci-subject", s.as_str());
    }
    Ok(resp)
}

/// The header a peer deployment's replication sends with each manifest it pushes:
/// `<region>/<account>` of the source (`docs/architecture.md`, "Replication").
pub const REPLICATED_FROM: &str = "x-berth-replicated-from";

/// The source a push declares it is replicated from, when it does.
fn replicated_from(h: &HeaderMap) -> Result<Option<String>> {
    let Some(v) = h.get(REPLICATED_FROM) else {
        return Ok(None);
    };
    let v = v.to_str().unwrap_or("");
    let ok = v.split_once('/').is_some_and(|(r, a)| {
        !r.is_empty()
            && r.len() <= 25
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && berth_iam::arn::is_account_id(a)
    });
    if !ok {
        return Err(OciError::new(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            format!("{REPLICATED_FROM} must be <region>/<account id>"),
        ));
    }
    Ok(Some(v.to_string()))
}

/// `/v2/<name>/blobs/<digest>`: HEAD, GET, DELETE.
async fn blob(call: Call, name: &str, d: &str) -> Result<Response> {
    let name = repo_name(name)?;
    let d = digest(d)?;
    match call.method {
        Method::HEAD => {
            let repo = call
                .repo(Action::BatchCheckLayerAvailability, &name)
                .await?;
            let size = call.app.registry.stat_blob(&repo, &d).await?;
            let mut resp = Response::new(Body::empty());
            blob_headers(resp.headers_mut(), &d, size);
            Ok(resp)
        }
        Method::GET => {
            let repo = call.repo(Action::GetDownloadUrlForLayer, &name).await?;
            match get_blob(&call.app, &repo, &d, call.headers()).await {
                // Not cached yet in a pull-through cache repository: fetched
                // from the upstream while it is served.
                Err(e) if e.code == "BLOB_UNKNOWN" && e.status == StatusCode::NOT_FOUND => {
                    match crate::oci_pull_through::blob(
                        &call.app,
                        &call.caller,
                        &call.account,
                        &repo,
                        &d,
                        call.headers(),
                    )
                    .await?
                    {
                        Some(resp) => Ok(resp),
                        None => get_blob(&call.app, &repo, &d, call.headers()).await,
                    }
                }
                other => other,
            }
        }
        Method::DELETE => {
            let repo = call.repo(Action::BatchDeleteImage, &name).await?;
            call.app.registry.delete_blob(&repo, &d).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        _ => Err(method_not_allowed()),
    }
}

/// `POST /v2/<name>/blobs/uploads/`: opens an upload session, mounts a blob from
/// another repository (`?mount=&from=`), or takes a whole blob at once
/// (`?digest=`).
async fn upload_start(call: Call, name: &str, body: Body) -> Result<Response> {
    call.only(&[Method::POST])?;
    let name = repo_name(name)?;
    let repo = call.push_repo(&name).await?;
    let app = call.app.clone();
    if let Some(m) = call.query("mount") {
        let d = digest(m)?;
        // BLOB_MOUNTING=DISABLED turns every mount into an ordinary upload session.
        let from = match call.query("from").map(repo_name) {
            Some(Ok(f)) if app.registry.blob_mounting_enabled(&call.account).await? => {
                app.readable_source(&call.caller, &call.account, &f).await
            }
            _ => None,
        };
        return match app.registry.mount_blob(&repo, &d, from.as_ref()).await? {
            MountOutcome::Mounted(_) => Ok(created_blob(&name, &d)),
            MountOutcome::Upload(u) => Ok(upload_accepted(&name, &u.id, 0)),
        };
    }
    if let Some(dq) = call.query("digest") {
        // Monolithic upload: POST ?digest= with the whole blob as the body.
        let d = digest(dq)?;
        let u = start_session(&call, &repo).await?;
        let len = content_length(call.headers());
        let body = body_stream(body);
        let res = app
            .registry
            .append_and_complete(&repo, &u.id, None, len, body, &d)
            .await;
        if res.is_err() {
            let _ = app.registry.cancel_upload(&repo, &u.id).await;
        }
        res?;
        return Ok(created_blob(&name, &d));
    }
    let u = start_session(&call, &repo).await?;
    Ok(upload_accepted(&name, &u.id, 0))
}

/// Opens an upload session for the caller within its limit of open sessions
/// (`BERTH_MAX_UPLOADS_PER_PRINCIPAL`): past it, `429 TOOMANYREQUESTS`.
async fn start_session(call: &Call, repo: &RepositoryRow) -> Result<berth_registry::UploadState> {
    let max = call.app.hardening().max_uploads_per_principal;
    match call
        .app
        .registry
        .start_upload_as(repo, &call.caller, max)
        .await?
    {
        Some(u) => Ok(u),
        None => Err(OciError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOOMANYREQUESTS",
            format!("too many open upload sessions (at most {max}); finish or cancel some"),
        )
        .header("Retry-After", "5".to_string())),
    }
}

/// `/v2/<name>/blobs/uploads/<id>`: GET (status), PATCH (a chunk), PUT (the last
/// chunk and the digest), DELETE (cancel).
async fn upload(call: Call, name: &str, id: &str, body: Body) -> Result<Response> {
    let name = repo_name(name)?;
    let id = decode(id);
    match call.method {
        Method::GET => {
            let repo = call.repo(Action::InitiateLayerUpload, &name).await?;
            let u = call.app.registry.upload_status(&repo, &id).await?;
            let mut resp = upload_accepted(&name, &u.id, u.size);
            *resp.status_mut() = StatusCode::NO_CONTENT;
            Ok(resp)
        }
        Method::PATCH => patch_upload(call, &name, &id, body).await,
        Method::PUT => put_upload(call, &name, &id, body).await,
        Method::DELETE => {
            let repo = call.repo(Action::UploadLayerPart, &name).await?;
            call.app.registry.cancel_upload(&repo, &id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(method_not_allowed()),
    }
}

async fn patch_upload(call: Call, name: &RepositoryName, id: &str, body: Body) -> Result<Response> {
    let repo = call.repo(Action::UploadLayerPart, name).await?;
    let (start, len) = content_range(call.headers())?;
    let len = len.or_else(|| content_length(call.headers()));
    let u = call
        .app
        .registry
        .append_upload(&repo, id, start, len, body_stream(body))
        .await?;
    Ok(upload_accepted(name, &u.id, u.size))
}

async fn put_upload(call: Call, name: &RepositoryName, id: &str, body: Body) -> Result<Response> {
    let repo = call.repo(Action::CompleteLayerUpload, name).await?;
    let d = match call.query("digest") {
        Some(d) => digest(d)?,
        None => return Err(OciError::digest_invalid("digest parameter missing")),
    };
    let (start, len) = content_range(call.headers())?;
    let clen = content_length(call.headers());
    let reg = &call.app.registry;
    if start.is_some() || clen.unwrap_or(0) > 0 || is_chunked(call.headers()) {
        // The last chunk goes straight into the blob (one request, one commit).
        reg.append_and_complete(&repo, id, start, len.or(clen), body_stream(body), &d)
            .await?;
    } else {
        reg.complete_upload(&repo, id, &d).await?;
    }
    Ok(created_blob(name, &d))
}

/// `GET /v2/<name>/referrers/<digest>` (`?artifactType=` filters).
async fn referrers(call: Call, name: &str, d: &str) -> Result<Response> {
    call.only(&[Method::GET])?;
    let name = repo_name(name)?;
    let d = digest(d)?;
    let repo = call.repo(Action::BatchGetImage, &name).await?;
    let filter = call.query("artifactType");
    let index = call.app.registry.referrers(&repo, &d, filter).await?;
    let mut resp = Response::new(Body::from(index.to_string()));
    set(
        resp.headers_mut(),
        header::CONTENT_TYPE,
        berth_oci::media::OCI_INDEX,
    );
    if filter.is_some() {
        set(resp.headers_mut(), "oci-filters-applied", "artifactType");
    }
    Ok(resp)
}

fn set<K: header::IntoHeaderName>(h: &mut HeaderMap, k: K, v: &str) {
    if let Ok(v) = HeaderValue::from_str(v) {
        h.insert(k, v);
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    set(r.headers_mut(), header::CONTENT_TYPE, "application/json");
    r
}

fn link_next(resp: &mut Response, url: &str) {
    set(
        resp.headers_mut(),
        header::LINK,
        &format!("<{url}>; rel=\"next\""),
    );
}

fn page_size(q: &[(String, String)]) -> Result<i64> {
    match query(q, "n") {
        None => Ok(MAX_PAGE),
        Some(n) => n
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| n.min(MAX_PAGE))
            .ok_or_else(|| {
                OciError::new(
                    StatusCode::BAD_REQUEST,
                    "PAGINATION_NUMBER_INVALID",
                    "n must be a non-negative integer",
                )
            }),
    }
}

fn blob_headers(h: &mut HeaderMap, d: &Digest, size: u64) {
    set(h, header::CONTENT_LENGTH, &size.to_string());
    set(h, header::CONTENT_TYPE, "application/octet-stream");
    set(h, "docker-content-digest", d.as_str());
    set(h, header::ACCEPT_RANGES, "bytes");
    set(h, header::ETAG, &format!("\"{d}\""));
}

/// `Range: bytes=a-b` (`berth_oci::range`, where the fuzz targets reach it).
fn parse_range(v: &str, size: u64) -> Option<std::result::Result<(u64, u64), ()>> {
    berth_oci::range::parse_range(v, size)
}

async fn get_blob(
    app: &Arc<App>,
    repo: &RepositoryRow,
    d: &Digest,
    headers: &HeaderMap,
) -> Result<Response> {
    let size = app.registry.stat_blob(repo, d).await?;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_range(v, size));
    let range = match range {
        Some(Err(())) => {
            return Err(OciError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UNKNOWN",
                "requested range not satisfiable",
            )
            .header("Content-Range", format!("bytes */{size}")));
        }
        Some(Ok(r)) => Some(r),
        None => None,
    };
    let read = app.registry.read_blob(repo, d, range).await?;
    let mut resp = Response::new(Body::from_stream(read.stream));
    let h = resp.headers_mut();
    blob_headers(h, d, size);
    if let Some((s, e)) = range {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        let h = resp.headers_mut();
        set(h, header::CONTENT_LENGTH, &(e - s + 1).to_string());
        set(h, header::CONTENT_RANGE, &format!("bytes {s}-{e}/{size}"));
    }
    Ok(resp)
}

fn created_blob(name: &RepositoryName, d: &Digest) -> Response {
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    set(h, header::LOCATION, &format!("/v2/{name}/blobs/{d}"));
    set(h, "docker-content-digest", d.as_str());
    set(h, header::CONTENT_LENGTH, "0");
    resp
}

fn upload_accepted(name: &RepositoryName, id: &str, size: u64) -> Response {
    let mut resp = StatusCode::ACCEPTED.into_response();
    let h = resp.headers_mut();
    set(
        h,
        header::LOCATION,
        &format!("/v2/{name}/blobs/uploads/{id}"),
    );
    set(h, "docker-upload-uuid", id);
    let range = if size == 0 {
        "0-0".to_string()
    } else {
        format!("0-{}", size - 1)
    };
    set(h, header::RANGE, &range);
    set(h, header::CONTENT_LENGTH, "0");
    resp
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn is_chunked(h: &HeaderMap) -> bool {
    h.get(header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

/// `Content-Range: <start>-<end>` on chunk uploads → (start, length).
fn content_range(h: &HeaderMap) -> Result<(Option<u64>, Option<u64>)> {
    let Some(v) = h.get(header::CONTENT_RANGE) else {
        return Ok((None, None));
    };
    let bad = || {
        OciError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            "malformed Content-Range",
        )
    };
    let s = v.to_str().map_err(|_| bad())?;
    let (start, len) = berth_oci::range::parse_content_range(s).ok_or_else(bad)?;
    Ok((Some(start), Some(len)))
}

fn body_stream(
    body: Body,
) -> impl futures_util::Stream<Item = std::result::Result<Bytes, String>> + Send + Unpin {
    body.into_data_stream()
        .map(|r| r.map_err(|e| e.to_string()))
}

async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes> {
    if content_length(headers).is_some_and(|l| l > limit as u64) {
        return Err(RegistryError::ManifestTooLarge.into());
    }
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(RegistryError::ManifestTooLarge.into())
        }
        Err(_) => Err(OciError::new(
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
            "failed to read the request body",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Some(Ok((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=5-2", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,4-5", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}

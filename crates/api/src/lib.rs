//! HTTP front end: the OCI Distribution data plane (`/v2/`), the ECR/STS control
//! plane (`POST /`), health and metrics endpoints.
//!
//! This room translates between wire formats and the registry core: it parses and
//! validates requests, authenticates and authorizes them, calls the core, and maps
//! results and errors to each protocol's shape. It holds no storage logic.

pub mod access;
pub mod console;
pub mod ecr;
pub mod hardening;
pub mod metrics;
pub mod oci;
pub mod oci_error;
pub mod oci_path;
pub mod oci_pull_through;
pub mod otel;
pub mod policy;
pub mod request_attrs;
pub mod signin_guard;
pub mod throttle;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use berth_registry::identity::Principal;
use berth_registry::{AuditRecord, Registry};

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The 12-digit account served on the bare public host.
    pub default_account: String,
    pub region: String,
    /// The host name clients use (`repositoryUri` = `<public_host>/<name>`).
    pub public_host: String,
    /// `http` or `https`, for URLs berth hands out.
    pub scheme: &'static str,
    /// The regions of the configured `[[peer]]` deployments: with this one's own
    /// region, the regions a replication destination may name.
    pub peer_regions: Vec<String>,
}

pub struct App {
    pub registry: Arc<Registry>,
    pub config: ApiConfig,
    hardening: hardening::Hardening,
}

impl App {
    pub fn new(registry: Arc<Registry>, config: ApiConfig) -> Self {
        App {
            registry,
            config,
            hardening: hardening::Hardening::default(),
        }
    }

    /// The same front end with these hardening settings (`hardening.rs`).
    pub fn with_hardening(mut self, h: hardening::Hardening) -> Self {
        self.hardening = h;
        self
    }

    /// The hardening settings in force.
    pub fn hardening(&self) -> &hardening::Hardening {
        &self.hardening
    }

    /// Download URLs are signed with the (primary) master key's URL key and
    /// verified under every master key in use, so a URL signed on a node that
    /// switched keys first during a rotation works on all (`rotation.rs`).
    const LAYER_URL_PURPOSE: &'static str = "berth layer download url v1";

    fn layer_url_key(&self) -> ring::hmac::Key {
        let k = self.registry.identity().derive_key(Self::LAYER_URL_PURPOSE);
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &k)
    }

    fn layer_url_msg(account: &str, repo: &str, digest: &str, expires: i64) -> String {
        format!("{account}\n{repo}\n{digest}\n{expires}")
    }

    fn layer_url_mac(&self, account: &str, repo: &str, digest: &str, expires: i64) -> String {
        let msg = Self::layer_url_msg(account, repo, digest, expires);
        hex::encode(ring::hmac::sign(&self.layer_url_key(), msg.as_bytes()).as_ref())
    }

    /// Constant-time check of a download URL's signature.
    fn layer_url_valid(
        &self,
        account: &str,
        repo: &str,
        digest: &str,
        expires: i64,
        sig: &str,
    ) -> bool {
        let Ok(tag) = hex::decode(sig) else {
            return false;
        };
        let msg = Self::layer_url_msg(account, repo, digest, expires);
        self.registry
            .identity()
            .derive_keys(Self::LAYER_URL_PURPOSE)
            .iter()
            .any(|k| {
                let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, k);
                ring::hmac::verify(&k, msg.as_bytes(), &tag).is_ok()
            })
    }

    /// A time-limited, signed URL berth serves a layer from (GetDownloadUrlForLayer).
    pub fn signed_layer_url(
        &self,
        account: &str,
        repo: &str,
        digest: &berth_oci::Digest,
    ) -> String {
        let expires = self.registry.now() / 1000 + LAYER_URL_TTL_SECS;
        let sig = self.layer_url_mac(account, repo, digest.as_str(), expires);
        format!(
            "{}://{}/_berth/layer?account={account}&repository={}&digest={}&expires={expires}&signature={sig}",
            self.config.scheme,
            self.config.public_host,
            percent_encoding::utf8_percent_encode(repo, percent_encoding::NON_ALPHANUMERIC),
            percent_encoding::utf8_percent_encode(digest.as_str(), percent_encoding::NON_ALPHANUMERIC),
        )
    }

    /// Records a control-plane call or a data-plane change in the audit log.
    pub async fn audit_event(
        &self,
        principal: &Principal,
        account: &str,
        action: &str,
        resource: Option<&str>,
        source: &str,
        outcome: &str,
    ) {
        let record = AuditRecord {
            account,
            principal: &principal.arn(),
            action,
            resource,
            source,
            outcome,
        };
        if let Err(e) = self.registry.audit(&record).await {
            tracing::warn!(error = %e, "could not write the audit log");
        }
    }

    pub async fn audit(
        &self,
        ctx: &ecr::Ctx,
        service: &str,
        op: &str,
        input: &ecr::Input,
        err: Option<&ecr::EcrError>,
    ) {
        let resource = input
            .opt_str("repositoryName")
            .ok()
            .flatten()
            .or_else(|| input.opt_str("KeyId").ok().flatten())
            .or_else(|| input.opt_str("SecretId").ok().flatten());
        let account = input
            .opt_str("registryId")
            .ok()
            .flatten()
            .unwrap_or(&ctx.caller.account_id)
            .to_string();
        let outcome = err.map(|e| e.aws_code()).unwrap_or("Success");
        tracing::info!(request_id = %ctx.request_id, principal = %ctx.caller.arn(), service, op, outcome, "api call");
        self.audit_event(
            &ctx.caller,
            &account,
            &format!("{service}:{op}"),
            resource,
            &ctx.source_ip,
            outcome,
        )
        .await;
    }
}

const LAYER_URL_TTL_SECS: i64 = 3600;

/// The complete HTTP router.
pub fn router(app: Arc<App>) -> Router {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/", axum::routing::post(ecr::handle).get(ecr::handle))
        .route("/_berth/layer", get(layer_download))
        .route("/console/", get(console::index))
        .nest("/console", console::router())
        .route("/v2", axum::routing::any(oci::handle))
        .route("/v2/", axum::routing::any(oci::handle))
        .route("/v2/{*rest}", axum::routing::any(oci::handle))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            request_attrs::middleware,
        ))
        // Each request reads the core's cache epoch once (`berth_registry::in_request`).
        .layer(axum::middleware::from_fn(
            |req: axum::extract::Request, next: axum::middleware::Next| {
                berth_registry::in_request(next.run(req))
            },
        ))
        .layer(axum::middleware::from_fn(metrics::middleware));
    // Request spans only when traces are exported (`otel.rs`): nothing per
    // request otherwise.
    let router = if otel::enabled() {
        router.layer(axum::middleware::from_fn(otel::middleware))
    } else {
        router
    };
    router.with_state(app)
}

async fn healthz() -> impl IntoResponse {
    "ok"
}

/// Event and webhook-delivery counters of this process (`docs/architecture.md`,
/// "Events").
fn events_metrics(reg: &berth_registry::Registry) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let d = &berth_registry::events::DELIVERY;
    let delivered = d.delivered.load(Relaxed);
    format!(
        "# HELP berth_events_produced_total Events recorded by this process.\n# TYPE berth_events_produced_total counter\nberth_events_produced_total {}\n\
         # HELP berth_webhook_delivered_total Events acknowledged by webhook receivers.\n# TYPE berth_webhook_delivered_total counter\nberth_webhook_delivered_total {}\n\
         # HELP berth_webhook_retried_total Webhook delivery attempts after a failed one.\n# TYPE berth_webhook_retried_total counter\nberth_webhook_retried_total {}\n\
         # HELP berth_webhook_dead_lettered_total Webhook streams parked after their attempts.\n# TYPE berth_webhook_dead_lettered_total counter\nberth_webhook_dead_lettered_total {}\n\
         # HELP berth_webhook_delivery_latency_seconds From an event's recording to its acknowledgement.\n# TYPE berth_webhook_delivery_latency_seconds summary\nberth_webhook_delivery_latency_seconds_sum {}\nberth_webhook_delivery_latency_seconds_count {}\n",
        reg.events_produced(),
        delivered,
        d.retried.load(Relaxed),
        d.dead_lettered.load(Relaxed),
        d.latency_ms_sum.load(Relaxed) as f64 / 1000.0,
        delivered,
    )
}

/// Prometheus text exposition. It carries counts and times only, nothing secret.
async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    use std::sync::atomic::Ordering::Relaxed;
    let g = &app.registry.gc_stats;
    let pending = app.registry.gc_pending().await.unwrap_or(-1);
    let vulndb = app.registry.vulndb_freshness().await.ok();
    let mut body = format!(
        "# HELP berth_up Whether the process is serving.\n# TYPE berth_up gauge\nberth_up 1\n\
         # HELP berth_gc_reclaimed_bytes_total Bytes reclaimed by garbage collection in this process.\n# TYPE berth_gc_reclaimed_bytes_total counter\nberth_gc_reclaimed_bytes_total {}\n\
         # HELP berth_gc_reclaimed_blobs_total Blobs deleted by garbage collection in this process.\n# TYPE berth_gc_reclaimed_blobs_total counter\nberth_gc_reclaimed_blobs_total {}\n\
         # HELP berth_gc_runs_total Garbage-collection runs in this process.\n# TYPE berth_gc_runs_total counter\nberth_gc_runs_total {}\n\
         # HELP berth_gc_last_run_timestamp_seconds When this process last collected garbage.\n# TYPE berth_gc_last_run_timestamp_seconds gauge\nberth_gc_last_run_timestamp_seconds {}\n\
         # HELP berth_gc_pending_candidates Collection candidates waiting in the metadata store.\n# TYPE berth_gc_pending_candidates gauge\nberth_gc_pending_candidates {}\n",
        g.reclaimed_bytes.load(Relaxed),
        g.reclaimed_blobs.load(Relaxed),
        g.runs.load(Relaxed),
        g.last_run_ms.load(Relaxed) as f64 / 1000.0,
        pending
    ) + &events_metrics(&app.registry);
    if let Some(f) = vulndb {
        // -1: the advisory database never changed (empty).
        body.push_str(&format!(
            "# HELP berth_vulndb_age_seconds Seconds since the advisory database last changed (-1: never).\n# TYPE berth_vulndb_age_seconds gauge\nberth_vulndb_age_seconds {}\n\
             # HELP berth_vulndb_advisories Advisories in the database.\n# TYPE berth_vulndb_advisories gauge\nberth_vulndb_advisories {}\n",
            f.age_secs().unwrap_or(-1),
            f.advisories
        ));
    }
    body.push_str(&replication_metrics(&app).await);
    body.push_str(
        "# HELP berth_object_requests_total Requests this process made to an S3 blob store, per operation.\n# TYPE berth_object_requests_total counter\n",
    );
    for (op, n) in berth_registry::object_requests() {
        body.push_str(&format!("berth_object_requests_total{{op=\"{op}\"}} {n}\n"));
    }
    body.push_str(&format!(
        "# HELP berth_object_bytes_written_total Bytes this process sent to an S3 blob store in object and part bodies.\n# TYPE berth_object_bytes_written_total counter\nberth_object_bytes_written_total {}\n",
        berth_registry::object_bytes_written()
    ));
    body.push_str(&metrics::render(&app).await);
    otel::render(&mut body);
    body.push_str(&format!(
        "# HELP berth_nodes_live Live berth nodes sharing this registry, from their heartbeats.\n# TYPE berth_nodes_live gauge\nberth_nodes_live {}\n",
        app.hardening().throttle.nodes()
    ));
    body.push_str(&format!(
        "# HELP berth_object_bytes_read_total Bytes this process received from an S3 blob store in GET bodies.\n# TYPE berth_object_bytes_read_total counter\nberth_object_bytes_read_total {}\n",
        berth_registry::object_bytes_read()
    ));
    body.push_str(&format!(
        "# HELP berth_upload_rehashed_bytes_total Bytes of finished uploads read back and hashed because no running hash covered them.\n# TYPE berth_upload_rehashed_bytes_total counter\nberth_upload_rehashed_bytes_total {}\n",
        berth_registry::upload_rehashed_bytes()
    ));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}

/// Replication jobs by state, images by replication status, and the lag; a store
/// error shows as `berth_replication_lag_seconds -1`.
async fn replication_metrics(app: &App) -> String {
    use std::fmt::Write;
    let mut out = String::from(
        "# HELP berth_replication_jobs Replication jobs in the metadata store, by state.\n# TYPE berth_replication_jobs gauge\n",
    );
    let m = match app.registry.replication_metrics().await {
        Ok(m) => m,
        Err(_) => {
            out.push_str("# HELP berth_replication_lag_seconds Age of the oldest replication still in progress.\n# TYPE berth_replication_lag_seconds gauge\nberth_replication_lag_seconds -1\n");
            return out;
        }
    };
    for state in ["queued", "running", "parked"] {
        let n = m
            .jobs
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "berth_replication_jobs{{state=\"{state}\"}} {n}");
    }
    out.push_str("# HELP berth_replication_images Image replications to one destination, by status.\n# TYPE berth_replication_images gauge\n");
    for status in ["IN_PROGRESS", "COMPLETE", "FAILED"] {
        let n = m
            .statuses
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "berth_replication_images{{status=\"{status}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP berth_replication_lag_seconds Age of the oldest replication still in progress.\n# TYPE berth_replication_lag_seconds gauge\nberth_replication_lag_seconds {}",
        m.lag_seconds
    );
    out
}

async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    let health = app.registry.check_stores().await;
    match (health.metadata, health.blobs) {
        (Ok(()), Ok(())) => (StatusCode::OK, "ready".to_string()),
        (m, b) => {
            let mut why = Vec::new();
            if let Err(e) = m {
                why.push(format!("metadata store: {e}"));
            }
            if let Err(e) = b {
                why.push(format!("blob store: {e}"));
            }
            (StatusCode::SERVICE_UNAVAILABLE, why.join("; "))
        }
    }
}

/// Serves a layer through a URL from GetDownloadUrlForLayer: the signature and
/// expiry are checked; no other credentials are needed, as with S3 presigned URLs.
async fn layer_download(
    State(app): State<Arc<App>>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let denied = || (StatusCode::FORBIDDEN, "invalid or expired download URL").into_response();
    let (Some(account), Some(repo), Some(digest), Some(expires), Some(sig)) = (
        q.get("account"),
        q.get("repository"),
        q.get("digest"),
        q.get("expires").and_then(|e| e.parse::<i64>().ok()),
        q.get("signature"),
    ) else {
        return denied();
    };
    if !app.layer_url_valid(account, repo, digest, expires, sig)
        || app.registry.now() / 1000 > expires
    {
        return denied();
    }
    let (Ok(name), Ok(d)) = (
        berth_oci::RepositoryName::parse(repo),
        berth_oci::Digest::parse(digest),
    ) else {
        return denied();
    };
    let repo = match app.registry.repository(account, &name).await {
        Ok(r) => r,
        Err(_) => return (StatusCode::NOT_FOUND, "no such layer").into_response(),
    };
    match app.registry.read_blob(&repo, &d, None).await {
        Ok(read) => {
            let mut resp =
                axum::response::Response::new(axum::body::Body::from_stream(read.stream));
            let h = resp.headers_mut();
            if let Ok(v) = axum::http::HeaderValue::from_str(&read.size.to_string()) {
                h.insert(axum::http::header::CONTENT_LENGTH, v);
            }
            h.insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/octet-stream"),
            );
            resp
        }
        Err(_) => (StatusCode::NOT_FOUND, "no such layer").into_response(),
    }
}

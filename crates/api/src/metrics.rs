//! Request metrics and the rest of `/metrics` (`docs/observability.md`).
//!
//! A middleware over the whole router counts every request by API, route
//! template or operation, method and status class, times it until the response
//! head is ready, and counts the body bytes read and written per API. Every label
//! value is a `&'static str` from the code (the `/v2/` route kinds, the operation
//! table, the console's paths), never a repository name, a principal or
//! anything else a client chooses, so the series are bounded. Recording is a read
//! lock on a small map and a few relaxed atomic adds.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use berth_registry::obs::Histogram;
use http_body_util::BodyExt;

use crate::ecr::ops;
use crate::App;

/// The APIs requests are counted by.
pub const APIS: [&str; 11] = [
    "v2",
    "ecr",
    "kms",
    "cloudtrail",
    "secretsmanager",
    "sts",
    "console",
    "layer",
    "health",
    "metrics",
    "other",
];

static BYTES_IN: [AtomicU64; 11] = [const { AtomicU64::new(0) }; 11];
static BYTES_OUT: [AtomicU64; 11] = [const { AtomicU64::new(0) }; 11];

/// The kinds of failed sign-ins counted (`signin_guard.rs`).
pub const AUTH_FAILURES: [&str; 6] = [
    "UnrecognizedClient",
    "InvalidSignature",
    "InvalidToken",
    "ExpiredToken",
    "ConsoleSignIn",
    "other",
];
static AUTH_FAILED: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

/// Counts a failed sign-in of kind `what` (one of [`AUTH_FAILURES`]).
pub fn auth_failed(what: &str) {
    let i = AUTH_FAILURES[..5]
        .iter()
        .position(|k| *k == what)
        .unwrap_or(5);
    AUTH_FAILED[i].fetch_add(1, Relaxed);
}

#[derive(Default)]
struct Series {
    /// Responses by status class: 1xx … 5xx.
    status: [AtomicU64; 5],
    latency: Histogram,
}

type Key = (usize, &'static str, &'static str);

static SERIES: LazyLock<RwLock<HashMap<Key, Arc<Series>>>> = LazyLock::new(Default::default);
/// The console's paths (its route table, `console::router`, has no parameters).
const CONSOLE_ROUTES: [&str; 22] = [
    "/console",
    "/console/",
    "/console/sign-in",
    "/console/sign-out",
    "/console/assets/console.css",
    "/console/assets/console.js",
    "/console/repositories",
    "/console/repositories/create",
    "/console/repositories/delete",
    "/console/repositories/push-commands",
    "/console/images",
    "/console/images/delete",
    "/console/images/scan",
    "/console/image",
    "/console/tags",
    "/console/tags/delete",
    "/console/lifecycle",
    "/console/audit",
    "/console/overview",
    "/console/settings",
    "/console/permissions",
    "unmatched",
];

fn series(key: Key) -> Arc<Series> {
    if let Some(s) = SERIES.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return s.clone();
    }
    SERIES
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_default()
        .clone()
}

pub(crate) fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn v2_route(path: &str) -> &'static str {
    use crate::oci_path::Route;
    match crate::oci_path::parse(path) {
        Some(Route::Base) => "/v2/",
        Some(Route::Catalog) => "/v2/_catalog",
        Some(Route::Tags(_)) => "/v2/<name>/tags/list",
        Some(Route::Manifest(..)) => "/v2/<name>/manifests/<reference>",
        Some(Route::Blob(..)) => "/v2/<name>/blobs/<digest>",
        Some(Route::UploadStart(_)) => "/v2/<name>/blobs/uploads/",
        Some(Route::Upload(..)) => "/v2/<name>/blobs/uploads/<id>",
        Some(Route::Referrers(..)) => "/v2/<name>/referrers/<digest>",
        None => "unmatched",
    }
}

/// The API (index into [`APIS`]) and route of a request.
pub(crate) fn classify(req: &Request) -> (usize, &'static str) {
    let path = req.uri().path();
    if path == "/v2" || path.starts_with("/v2/") {
        return (0, v2_route(path));
    }
    if path == "/" {
        let target = req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok());
        let Some(t) = target else {
            return (5, "query");
        };
        let found = [
            (crate::ecr::TARGET_PREFIX, ops::Service::Ecr, 1),
            (crate::ecr::KMS_TARGET_PREFIX, ops::Service::Kms, 2),
            (
                crate::ecr::CLOUDTRAIL_TARGET_PREFIX,
                ops::Service::CloudTrail,
                3,
            ),
            (
                crate::ecr::SECRETS_TARGET_PREFIX,
                ops::Service::SecretsManager,
                4,
            ),
        ]
        .into_iter()
        .find_map(|(prefix, service, api)| {
            let op = t.strip_prefix(prefix)?;
            Some((api, ops::find(service, op).map_or("unknown", |o| o.name)))
        });
        return found.unwrap_or((1, "unknown"));
    }
    if path == "/console" || path.starts_with("/console/") {
        let route = CONSOLE_ROUTES
            .iter()
            .find(|r| **r == path)
            .copied()
            .unwrap_or("unmatched");
        return (6, route);
    }
    match path {
        "/_berth/layer" => (7, "/_berth/layer"),
        "/healthz" => (8, "/healthz"),
        "/readyz" => (8, "/readyz"),
        "/metrics" => (9, "/metrics"),
        _ => (10, "unmatched"),
    }
}

/// The middleware (outermost over the router): counts, times, and meters bytes.
pub async fn middleware(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let (api, route) = classify(&req);
    let s = series((api, route, method_label(req.method())));
    let req = req.map(|b| {
        axum::body::Body::new(b.map_frame(move |f| {
            if let Some(d) = f.data_ref() {
                BYTES_IN[api].fetch_add(d.len() as u64, Relaxed);
            }
            f
        }))
    });
    let resp = next.run(req).await;
    let class = (resp.status().as_u16() / 100).clamp(1, 5) as usize - 1;
    s.status[class].fetch_add(1, Relaxed);
    s.latency.observe(start.elapsed());
    resp.map(|b| {
        axum::body::Body::new(b.map_frame(move |f| {
            if let Some(d) = f.data_ref() {
                BYTES_OUT[api].fetch_add(d.len() as u64, Relaxed);
            }
            f
        }))
    })
}

fn help(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The request, authentication, throttling, job, upload, database and object-store
/// families of `/metrics`. A figure the metadata store cannot give now is left out
/// and `berth_metrics_scrape_errors_total` says so.
pub async fn render(app: &App) -> String {
    let mut out = String::new();
    let mut keys: Vec<(Key, Arc<Series>)> = SERIES
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));

    help(
        &mut out,
        "berth_http_requests_total",
        "counter",
        "HTTP requests answered, by API, route or operation, method and status class.",
    );
    for ((api, route, method), s) in &keys {
        for (i, c) in s.status.iter().enumerate() {
            let n = c.load(Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "berth_http_requests_total{{api=\"{}\",route=\"{route}\",method=\"{method}\",code=\"{}xx\"}} {n}",
                    APIS[*api],
                    i + 1
                );
            }
        }
    }
    help(
        &mut out,
        "berth_http_request_duration_seconds",
        "histogram",
        "Time from a request's arrival to its response head, by API, route or operation and method.",
    );
    for ((api, route, method), s) in &keys {
        let labels = format!(
            "api=\"{}\",route=\"{route}\",method=\"{method}\"",
            APIS[*api]
        );
        s.latency
            .render(&mut out, "berth_http_request_duration_seconds", &labels);
    }
    help(
        &mut out,
        "berth_http_request_bytes_total",
        "counter",
        "Request body bytes read, by API.",
    );
    for (i, api) in APIS.iter().enumerate() {
        let _ = writeln!(
            out,
            "berth_http_request_bytes_total{{api=\"{api}\"}} {}",
            BYTES_IN[i].load(Relaxed)
        );
    }
    help(
        &mut out,
        "berth_http_response_bytes_total",
        "counter",
        "Response body bytes sent, by API.",
    );
    for (i, api) in APIS.iter().enumerate() {
        let _ = writeln!(
            out,
            "berth_http_response_bytes_total{{api=\"{api}\"}} {}",
            BYTES_OUT[i].load(Relaxed)
        );
    }
    help(
        &mut out,
        "berth_auth_failures_total",
        "counter",
        "Failed sign-ins (bad signatures, unknown keys, invalid or expired tokens, console sign-ins), by kind.",
    );
    for (i, k) in AUTH_FAILURES.iter().enumerate() {
        let _ = writeln!(
            out,
            "berth_auth_failures_total{{kind=\"{k}\"}} {}",
            AUTH_FAILED[i].load(Relaxed)
        );
    }
    help(
        &mut out,
        "berth_throttled_requests_total",
        "counter",
        "Requests refused by the rate limits (ThrottlingException, 429), by ECR operation.",
    );
    for (op, n) in crate::throttle::throttled_counts() {
        let _ = writeln!(
            out,
            "berth_throttled_requests_total{{operation=\"{op}\"}} {n}"
        );
    }

    let mut scrape_errors = 0u64;
    match app.registry.job_queue_stats().await {
        Ok(stats) => {
            help(
                &mut out,
                "berth_jobs",
                "gauge",
                "Durable jobs in the metadata store, by kind and state.",
            );
            for s in &stats {
                let _ = writeln!(
                    out,
                    "berth_jobs{{kind=\"{}\",state=\"{}\"}} {}",
                    label_value(&s.kind),
                    label_value(&s.state),
                    s.count
                );
            }
            help(
                &mut out,
                "berth_jobs_oldest_due_age_seconds",
                "gauge",
                "How long the longest-waiting runnable queued job of each kind has been due (0: none due).",
            );
            let now = app.registry.now();
            let mut kinds: Vec<(&str, i64)> = Vec::new();
            for s in &stats {
                let age = s.oldest_due.map_or(0, |t| (now - t).max(0));
                match kinds.iter_mut().find(|(k, _)| *k == s.kind) {
                    Some((_, a)) => *a = (*a).max(age),
                    None => kinds.push((&s.kind, age)),
                }
            }
            for (k, age) in kinds {
                let _ = writeln!(
                    out,
                    "berth_jobs_oldest_due_age_seconds{{kind=\"{}\"}} {}",
                    label_value(k),
                    age as f64 / 1000.0
                );
            }
        }
        Err(_) => scrape_errors += 1,
    }
    match app.registry.open_upload_count().await {
        Ok(n) => {
            help(
                &mut out,
                "berth_upload_sessions_open",
                "gauge",
                "Upload sessions open in the metadata store (all nodes).",
            );
            let _ = writeln!(out, "berth_upload_sessions_open {n}");
        }
        Err(_) => scrape_errors += 1,
    }
    help(
        &mut out,
        "berth_metrics_scrape_errors_total",
        "counter",
        "Figures of this scrape the metadata store could not give.",
    );
    let total = SCRAPE_ERRORS.fetch_add(scrape_errors, Relaxed) + scrape_errors;
    let _ = writeln!(out, "berth_metrics_scrape_errors_total {total}");

    let pool = app.registry.db_pool_stats();
    help(
        &mut out,
        "berth_db_pool_connections",
        "gauge",
        "This node's metadata-store connections, by state.",
    );
    let _ = writeln!(
        out,
        "berth_db_pool_connections{{state=\"in_use\"}} {}\nberth_db_pool_connections{{state=\"idle\"}} {}",
        pool.size.saturating_sub(pool.idle),
        pool.idle
    );
    help(
        &mut out,
        "berth_db_pool_max_connections",
        "gauge",
        "The bound of this node's metadata-store connection pool.",
    );
    let _ = writeln!(out, "berth_db_pool_max_connections {}", pool.max);
    help(
        &mut out,
        "berth_db_write_wait_seconds",
        "histogram",
        "Time a write transaction waited for its connection (and on SQLite the one writer) and BEGIN.",
    );
    berth_registry::obs::DB_WRITE_WAIT.render(&mut out, "berth_db_write_wait_seconds", "");
    help(
        &mut out,
        "berth_db_statement_duration_seconds",
        "histogram",
        "Metadata-store statement latency, by statement kind.",
    );
    for (kind, h) in berth_registry::obs::statement_latency() {
        h.render(
            &mut out,
            "berth_db_statement_duration_seconds",
            &format!("statement=\"{kind}\""),
        );
    }
    help(
        &mut out,
        "berth_db_errors_total",
        "counter",
        "Metadata-store errors, by class.",
    );
    for (class, n) in berth_registry::obs::db_errors() {
        let _ = writeln!(out, "berth_db_errors_total{{class=\"{class}\"}} {n}");
    }
    help(
        &mut out,
        "berth_object_request_duration_seconds",
        "histogram",
        "S3 object-store call latency by operation (a get until its body starts).",
    );
    for (op, h) in berth_registry::obs::object_latency() {
        h.render(
            &mut out,
            "berth_object_request_duration_seconds",
            &format!("op=\"{op}\""),
        );
    }
    help(
        &mut out,
        "berth_object_errors_total",
        "counter",
        "Failed S3 object-store calls after the client's retries, by operation (a missing object is not one).",
    );
    for (op, n) in berth_registry::obs::object_errors() {
        let _ = writeln!(out, "berth_object_errors_total{{op=\"{op}\"}} {n}");
    }
    out
}

static SCRAPE_ERRORS: AtomicU64 = AtomicU64::new(0);

/// A label value as the exposition format wants it (job kinds and states are the
/// code's own words; this only keeps the output well-formed).
fn label_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

//! Request spans for OpenTelemetry traces (`docs/observability.md`, "Traces").
//!
//! Off by default. When `berth serve` is given an OTLP endpoint it calls
//! [`enable`] before building the router; [`crate::router`] then adds
//! [`middleware`], which opens one `request` span (target [`TARGET`], level
//! TRACE, so the log output never prints it) around each request until its
//! response head is ready. The core's spans and the stores' statements and
//! object-store calls nest under it; the exporter in `crates/berth/src/otlp.rs`
//! turns them into OTLP. A W3C `traceparent` header from the client becomes the
//! trace's parent.
//!
//! Attributes are the method, the route template or operation (the same bounded
//! label as `/metrics`), the path and the status code. Never a header, a query
//! string (presigned URLs carry signatures there) or a body.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The tracing target of every span and event meant for traces.
pub const TARGET: &str = "berth_otel";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Spans handed to the exporter, dropped because its queue was full, and
/// export requests the collector did not accept.
pub static SPANS_EXPORTED: AtomicU64 = AtomicU64::new(0);
pub static SPANS_DROPPED: AtomicU64 = AtomicU64::new(0);
pub static EXPORT_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Turns request spans on for routers built from now on.
pub fn enable() {
    ENABLED.store(true, Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// The request span around the rest of the stack.
pub async fn middleware(req: Request, next: Next) -> Response {
    let (api, route) = crate::metrics::classify(&req);
    let method = crate::metrics::method_label(req.method());
    let api = crate::metrics::APIS[api];
    let traceparent = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let span = tracing::trace_span!(
        target: TARGET,
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        traceparent,
        http.request.method = method,
        http.route = route,
        url.path = req.uri().path(),
        berth.api = api,
        http.response.status_code = tracing::field::Empty,
    );
    let resp = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", resp.status().as_u16() as u64);
    resp
}

/// The exporter's counters for `/metrics`; nothing when tracing is off.
pub fn render(out: &mut String) {
    if !enabled() {
        return;
    }
    for (name, help, v) in [
        (
            "berth_otlp_spans_exported_total",
            "Spans sent to the OTLP collector.",
            &SPANS_EXPORTED,
        ),
        (
            "berth_otlp_spans_dropped_total",
            "Spans dropped because the exporter's queue was full or their batch could not be exported.",
            &SPANS_DROPPED,
        ),
        (
            "berth_otlp_export_failures_total",
            "Export attempts the OTLP collector failed or refused (each retry counts).",
            &EXPORT_FAILURES,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            v.load(Relaxed)
        );
    }
}

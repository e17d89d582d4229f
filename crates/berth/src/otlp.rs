//! OpenTelemetry traces over OTLP/HTTP with JSON bodies (`docs/observability.md`,
//! "Traces"). Off unless an endpoint is configured.
//!
//! A `tracing` layer sees only what is meant for traces: spans of the target
//! `berth_otel` (the front end's `request` span, `crates/api/src/otel.rs`, and the
//! core's `core.*` spans), the object-store calls the stores report as events of
//! `berth_otel::object`, and sqlx's per-statement events (`sqlx::query`), which
//! carry their elapsed time. Spans keep their parent; a request's root takes the
//! client's W3C `traceparent` (trace id, parent span, sampled flag) or starts a
//! trace sampled at `otlp_sample_ratio`. Statements and object-store calls become
//! client spans under the span they ran in, ending when they were reported.
//!
//! Finished spans go through a bounded queue (a full queue drops spans and counts
//! them, it never blocks a request) to one task that posts them in batches to
//! `<endpoint>/v1/traces`, as the OTLP specification's JSON encoding: ids in hex,
//! 64-bit integers as decimal strings, enums as numbers.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_api::otel::{EXPORT_FAILURES, SPANS_DROPPED, SPANS_EXPORTED};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

const QUEUE: usize = 8192;
const BATCH: usize = 512;

/// Where and how traces are exported.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// Full URL of the traces endpoint (`…/v1/traces`).
    pub url: String,
    /// Extra request headers (`key=value,…`, as `OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Vec<(String, String)>,
    pub service_name: String,
    /// Share of new traces recorded (0–1); a client's `traceparent` decides for
    /// its own trace.
    pub sample_ratio: f64,
    /// Longest time a finished span waits before it is sent.
    pub flush: Duration,
}

impl OtlpConfig {
    /// `endpoint` is either a collector's base URL (`http://host:4318`, to which
    /// `/v1/traces` is added) or a full traces URL ending in `/v1/traces`.
    pub fn new(endpoint: &str) -> Result<OtlpConfig, String> {
        let e = endpoint.trim().trim_end_matches('/');
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(format!(
                "OTLP endpoint must be an http:// or https:// URL, got {endpoint:?}"
            ));
        }
        let url = if e.ends_with("/v1/traces") {
            e.to_string()
        } else {
            format!("{e}/v1/traces")
        };
        Ok(OtlpConfig {
            url,
            headers: Vec::new(),
            service_name: "berth".into(),
            sample_ratio: 1.0,
            flush: Duration::from_secs(1),
        })
    }
}

/// `key=value,key2=value2` (values may be percent-encoded, as the OTel
/// environment variables allow).
pub fn parse_headers(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            "OTLP headers must be key=value pairs separated by commas".to_string()
        })?;
        let k = k.trim();
        if k.is_empty()
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("invalid OTLP header name {k:?}"));
        }
        out.push((k.to_string(), percent_decode(v.trim())));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parsed W3C `traceparent`: version 00, non-zero ids.
pub fn parse_traceparent(s: &str) -> Option<([u8; 16], [u8; 8], bool)> {
    let mut it = s.trim().split('-');
    let (ver, tid, sid, flags) = (it.next()?, it.next()?, it.next()?, it.next()?);
    if ver.len() != 2 || ver == "ff" || tid.len() != 32 || sid.len() != 16 || flags.len() != 2 {
        return None;
    }
    if ver == "00" && it.next().is_some() {
        return None;
    }
    let hexish = |x: &str| x.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !hexish(ver) || !hexish(tid) || !hexish(sid) || !hexish(flags) {
        return None;
    }
    let mut t = [0u8; 16];
    let mut p = [0u8; 8];
    hex::decode_to_slice(tid, &mut t).ok()?;
    hex::decode_to_slice(sid, &mut p).ok()?;
    if t == [0; 16] || p == [0; 8] {
        return None;
    }
    let f = u8::from_str_radix(flags, 16).ok()?;
    Some((t, p, f & 1 == 1))
}

#[derive(Debug, Clone)]
enum AttrValue {
    Str(String),
    Int(i64),
    Bool(bool),
    Double(f64),
}

impl AttrValue {
    fn json(&self) -> Value {
        match self {
            AttrValue::Str(s) => json!({ "stringValue": s }),
            AttrValue::Int(i) => json!({ "intValue": i.to_string() }),
            AttrValue::Bool(b) => json!({ "boolValue": b }),
            AttrValue::Double(d) => json!({ "doubleValue": d }),
        }
    }
}

/// A span, finished or in progress.
#[derive(Debug, Clone)]
struct SpanData {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    sampled: bool,
    name: String,
    /// OTLP `SpanKind`: 1 internal, 2 server, 3 client.
    kind: u8,
    start: u64,
    end: u64,
    attrs: Vec<(String, AttrValue)>,
    error: bool,
}

#[derive(Default)]
struct Fields {
    attrs: Vec<(String, AttrValue)>,
    name: Option<String>,
    kind: Option<u8>,
    traceparent: Option<String>,
    // Events: sqlx's statement and the stores' object-store call.
    summary: Option<String>,
    elapsed: Option<Duration>,
    op: Option<String>,
    failed: bool,
}

impl Fields {
    fn put(&mut self, field: &Field, v: AttrValue) {
        let name = field.name();
        match (name, &v) {
            ("otel.name", AttrValue::Str(s)) => self.name = Some(s.clone()),
            ("otel.kind", AttrValue::Str(s)) => {
                self.kind = Some(match s.as_str() {
                    "server" => 2,
                    "client" => 3,
                    _ => 1,
                })
            }
            ("traceparent", AttrValue::Str(s)) => self.traceparent = Some(s.clone()),
            ("summary", AttrValue::Str(s)) => self.summary = Some(s.clone()),
            ("op", AttrValue::Str(s)) => self.op = Some(s.clone()),
            ("elapsed_secs", AttrValue::Double(d)) if d.is_finite() && *d >= 0.0 => {
                self.elapsed = Some(Duration::from_secs_f64(*d))
            }
            ("elapsed_ns", AttrValue::Int(n)) if *n >= 0 => {
                self.elapsed = Some(Duration::from_nanos(*n as u64))
            }
            ("failed", AttrValue::Bool(b)) => self.failed = *b,
            _ => {
                if let Some(pos) = self.attrs.iter().position(|(k, _)| k == name) {
                    self.attrs[pos].1 = v;
                } else {
                    self.attrs.push((name.to_string(), v));
                }
            }
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, AttrValue::Str(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, AttrValue::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, AttrValue::Int(value.min(i64::MAX as u64) as i64));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, AttrValue::Bool(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, AttrValue::Double(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, AttrValue::Str(format!("{value:?}")));
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64)
}

/// Random ids from a per-thread generator seeded by the system's randomness.
fn random_bytes<const N: usize>() -> [u8; N] {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut seed = [0u8; 8];
            let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed);
            u64::from_le_bytes(seed) | 1
        });
    }
    let mut out = [0u8; N];
    STATE.with(|s| {
        for chunk in out.chunks_mut(8) {
            // splitmix64
            let mut z = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            s.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    });
    if out.iter().all(|b| *b == 0) {
        out[0] = 1;
    }
    out
}

/// Whether a new trace is recorded, from its id (the same trace id always gives
/// the same answer, as OTel's TraceIdRatioBased sampler).
fn sample(trace_id: &[u8; 16], ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 || ratio.is_nan() {
        return false;
    }
    let x = u64::from_be_bytes(trace_id[8..16].try_into().unwrap_or([0; 8])) >> 1;
    (x as f64) < ratio * (1u64 << 63) as f64
}

/// The layer; see the module's documentation.
pub struct OtlpLayer {
    tx: mpsc::Sender<SpanData>,
    sample_ratio: f64,
}

impl OtlpLayer {
    fn send(&self, span: SpanData) {
        if self.tx.try_send(span).is_err() {
            SPANS_DROPPED.fetch_add(1, Relaxed);
        }
    }
}

fn wanted(target: &str) -> bool {
    target == berth_api::otel::TARGET
        || target.starts_with("berth_otel::")
        || target == crate::db_metrics::TARGET
}

impl<S> Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut f = Fields::default();
        attrs.record(&mut f);
        let parent = span.parent().and_then(|p| {
            p.extensions()
                .get::<SpanData>()
                .map(|d| (d.trace_id, d.span_id, d.sampled))
        });
        let (trace_id, parent_id, sampled) = match parent {
            Some((t, p, sampled)) => (t, Some(p), sampled),
            None => match f.traceparent.as_deref().and_then(parse_traceparent) {
                Some((t, p, sampled)) => (t, Some(p), sampled),
                None => {
                    let t = random_bytes::<16>();
                    (t, None, sample(&t, self.sample_ratio))
                }
            },
        };
        let data = SpanData {
            trace_id,
            span_id: random_bytes::<8>(),
            parent: parent_id,
            sampled,
            name: f
                .name
                .take()
                .unwrap_or_else(|| attrs.metadata().name().to_string()),
            kind: f.kind.unwrap_or(1),
            start: now_ns(),
            end: 0,
            attrs: f.attrs,
            error: false,
        };
        span.extensions_mut().insert(data);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let Some(data) = ext.get_mut::<SpanData>() else {
            return;
        };
        let mut f = Fields {
            attrs: std::mem::take(&mut data.attrs),
            ..Default::default()
        };
        values.record(&mut f);
        data.attrs = f.attrs;
        if let Some(n) = f.name {
            data.name = n;
        }
        if let Some((_, AttrValue::Int(code))) = data
            .attrs
            .iter()
            .find(|(k, _)| k == "http.response.status_code")
        {
            data.error = *code >= 500;
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(parent) = ctx.event_span(event) else {
            return;
        };
        let Some((trace_id, parent_id)) = parent
            .extensions()
            .get::<SpanData>()
            .filter(|p| p.sampled)
            .map(|p| (p.trace_id, p.span_id))
        else {
            return;
        };
        let mut f = Fields::default();
        event.record(&mut f);
        let Some(elapsed) = f.elapsed else { return };
        let end = now_ns();
        let start = end.saturating_sub(elapsed.as_nanos().min(u64::MAX as u128) as u64);
        let (name, attrs) = if event.metadata().target() == crate::db_metrics::TARGET {
            let summary = f.summary.unwrap_or_default();
            let verb = summary
                .split_whitespace()
                .next()
                .unwrap_or("statement")
                .to_ascii_uppercase();
            let mut text: String = summary.chars().take(120).collect();
            if text.len() < summary.len() {
                text.push('…');
            }
            (
                format!("db {verb}"),
                vec![
                    ("db.operation.name".to_string(), AttrValue::Str(verb)),
                    ("db.query.summary".to_string(), AttrValue::Str(text)),
                ],
            )
        } else {
            let op = f.op.unwrap_or_else(|| "call".into());
            (
                format!("object_store {op}"),
                vec![(
                    "berth.object_store.operation".to_string(),
                    AttrValue::Str(op),
                )],
            )
        };
        self.send(SpanData {
            trace_id,
            span_id: random_bytes::<8>(),
            parent: Some(parent_id),
            sampled: true,
            name,
            kind: 3,
            start,
            end,
            attrs,
            error: f.failed,
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(mut data) = span.extensions_mut().remove::<SpanData>() else {
            return;
        };
        if !data.sampled {
            return;
        }
        data.end = now_ns();
        self.send(data);
    }
}

/// The layer, filtered to what traces use, and the exporter task's handle.
pub fn layer<S>(cfg: OtlpConfig) -> (impl Layer<S>, Exporter)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let (tx, rx) = mpsc::channel(QUEUE);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let sample_ratio = cfg.sample_ratio;
    let task = tokio::spawn(export_loop(cfg, rx, stop_rx));
    let layer =
        OtlpLayer { tx, sample_ratio }.with_filter(tracing_subscriber::filter::filter_fn(|m| {
            wanted(m.target())
        }));
    (
        layer,
        Exporter {
            stop: Some(stop_tx),
            task: Some(task),
        },
    )
}

/// Stops the exporter after sending what is queued (bounded by `within`).
pub struct Exporter {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Exporter {
    pub async fn shutdown(mut self, within: Duration) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(within, t).await;
        }
    }
}

async fn export_loop(
    cfg: OtlpConfig,
    mut rx: mpsc::Receiver<SpanData>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("OTLP exporter disabled: cannot build its HTTP client: {e}");
            return;
        }
    };
    let mut batch: Vec<SpanData> = Vec::with_capacity(BATCH);
    let mut stopping = false;
    loop {
        let deadline = tokio::time::sleep(cfg.flush);
        tokio::pin!(deadline);
        // Gather until the batch is full, the flush interval passed, or stop.
        while batch.len() < BATCH && !stopping {
            tokio::select! {
                s = rx.recv() => match s {
                    Some(s) => batch.push(s),
                    None => { stopping = true; }
                },
                _ = &mut deadline => break,
                _ = &mut stop => { stopping = true; }
            }
        }
        if stopping {
            while let Ok(s) = rx.try_recv() {
                batch.push(s);
            }
        }
        while !batch.is_empty() {
            let n = batch.len().min(BATCH);
            let chunk: Vec<SpanData> = batch.drain(..n).collect();
            post(&client, &cfg, &chunk).await;
        }
        if stopping {
            return;
        }
    }
}

/// Attempts of one batch: the first and up to five retries, after 0.25, 0.5, 1, 2
/// and 4 s (or the collector's `Retry-After`, at most [`MAX_RETRY_AFTER`]), as
/// OTLP/HTTP asks of a retryable failure (a connection error, a timeout, or HTTP
/// 429, 502, 503 or 504). A batch still failing is dropped and its spans counted
/// as dropped; meanwhile new spans wait in the bounded queue.
const ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// What one export attempt came to.
enum Sent {
    Done,
    /// Worth another try, after the collector's `Retry-After` if it gave one.
    Retry(Option<Duration>),
    GiveUp,
}

async fn post(client: &reqwest::Client, cfg: &OtlpConfig, spans: &[SpanData]) {
    let body = bytes::Bytes::from(encode(&cfg.service_name, spans));
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        match post_once(client, cfg, spans.len(), body.clone()).await {
            Sent::Done => {
                SPANS_EXPORTED.fetch_add(spans.len() as u64, Relaxed);
                return;
            }
            Sent::Retry(after) if attempt < ATTEMPTS => {
                tokio::time::sleep(after.unwrap_or(backoff).min(MAX_RETRY_AFTER)).await;
                backoff *= 2;
            }
            Sent::Retry(_) | Sent::GiveUp => break,
        }
    }
    SPANS_DROPPED.fetch_add(spans.len() as u64, Relaxed);
}

async fn post_once(
    client: &reqwest::Client,
    cfg: &OtlpConfig,
    n: usize,
    body: bytes::Bytes,
) -> Sent {
    let mut req = client
        .post(&cfg.url)
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in &cfg.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    match req.send().await {
        Ok(r) if r.status().is_success() => Sent::Done,
        Ok(r) => {
            EXPORT_FAILURES.fetch_add(1, Relaxed);
            let status = r.status().as_u16();
            tracing::warn!("OTLP export of {n} spans refused: HTTP {status}");
            if matches!(status, 429 | 502 | 503 | 504) {
                Sent::Retry(retry_after(r.headers()))
            } else {
                Sent::GiveUp
            }
        }
        Err(e) => {
            EXPORT_FAILURES.fetch_add(1, Relaxed);
            // The error's text names the URL, never the headers.
            tracing::warn!("OTLP export of {n} spans failed: {e}");
            Sent::Retry(None)
        }
    }
}

/// A `Retry-After` of delay-seconds (the HTTP-date form is not used by OTLP
/// collectors and reads as absent).
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let s = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    s.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// An `ExportTraceServiceRequest` in OTLP's JSON encoding.
fn encode(service: &str, spans: &[SpanData]) -> Vec<u8> {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut v = json!({
                "traceId": hex::encode(s.trace_id),
                "spanId": hex::encode(s.span_id),
                "name": s.name,
                "kind": s.kind,
                "startTimeUnixNano": s.start.to_string(),
                "endTimeUnixNano": s.end.max(s.start).to_string(),
                "attributes": s.attrs.iter().map(|(k, v)| json!({"key": k, "value": v.json()})).collect::<Vec<_>>(),
                "status": { "code": if s.error { 2 } else { 0 } },
            });
            if let Some(p) = s.parent {
                v["parentSpanId"] = json!(hex::encode(p));
            }
            v
        })
        .collect();
    let doc = json!({
        "resourceSpans": [{
            "resource": { "attributes": [
                { "key": "service.name", "value": { "stringValue": service } },
                { "key": "service.version", "value": { "stringValue": env!("CARGO_PKG_VERSION") } },
            ]},
            "scopeSpans": [{
                "scope": { "name": "berth", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }],
        }]
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parsing() {
        let (t, p, s) =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(hex::encode(t), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(p), "00f067aa0ba902b7");
        assert!(s);
        assert!(
            !parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .unwrap()
                .2
        );
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?}");
        }
        // A later version may append fields.
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
                .is_some()
        );
    }

    #[test]
    fn retry_after_is_delay_seconds() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, " 3 ".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn headers_and_endpoints() {
        assert_eq!(
            parse_headers("api-key=abc%3D1, x_tenant = t ").unwrap(),
            vec![
                ("api-key".to_string(), "abc=1".to_string()),
                ("x_tenant".to_string(), "t".to_string())
            ]
        );
        assert!(parse_headers("novalue").is_err());
        assert_eq!(parse_headers("k=%é%4").unwrap()[0].1, "%é%4");
        assert!(parse_headers("bad name=1").is_err());
        assert_eq!(
            OtlpConfig::new("http://c:4318/").unwrap().url,
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            OtlpConfig::new("https://c/otlp/v1/traces").unwrap().url,
            "https://c/otlp/v1/traces"
        );
        assert!(OtlpConfig::new("c:4318").is_err());
    }

    #[test]
    fn ratio_sampling_is_by_trace_id() {
        let mut kept = 0;
        for _ in 0..10_000 {
            let t = random_bytes::<16>();
            assert_eq!(sample(&t, 0.25), sample(&t, 0.25));
            kept += sample(&t, 0.25) as u32;
        }
        assert!((2_000..3_000).contains(&kept), "{kept}");
        let t = random_bytes::<16>();
        assert!(sample(&t, 1.0));
        assert!(!sample(&t, 0.0));
    }

    #[test]
    fn encoding_is_otlp_json() {
        let s = SpanData {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent: Some([3; 8]),
            sampled: true,
            name: "GET manifest".into(),
            kind: 2,
            start: 10,
            end: 20,
            attrs: vec![("http.response.status_code".into(), AttrValue::Int(200))],
            error: false,
        };
        let v: Value = serde_json::from_slice(&encode("berth", &[s])).unwrap();
        let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "01010101010101010101010101010101");
        assert_eq!(span["parentSpanId"], "0303030303030303");
        assert_eq!(span["startTimeUnixNano"], "10");
        assert_eq!(span["attributes"][0]["value"]["intValue"], "200");
        assert_eq!(span["kind"], 2);
    }
}

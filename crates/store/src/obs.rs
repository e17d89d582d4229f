//! Process-wide measurements of the stores for `/metrics` (`docs/observability.md`):
//! a lock-free latency histogram, the metadata store's statement latencies and
//! errors, and the object store's call latencies and errors by operation.
//!
//! Everything here is a fixed set of atomics: recording is a few relaxed atomic
//! adds, and no label comes from a request (no repository, no principal), so the
//! number of series is bounded by the code.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::blob::{BoxFut, ByteStream};
use crate::object::{Multipart, ObjectBackend, ObjectInfo};
use crate::StoreError;

/// Upper bounds (seconds) of latency buckets: 0.5 ms to 30 s.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

const NB: usize = LATENCY_BUCKETS.len();

/// A Prometheus histogram over [`LATENCY_BUCKETS`], in seconds.
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    counts: [AtomicU64; NB + 1],
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub const fn new() -> Histogram {
        Histogram {
            counts: [const { AtomicU64::new(0) }; NB + 1],
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS.iter().position(|b| s <= *b).unwrap_or(NB);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of `name` with `labels`
    /// (`a="x",b="y"`, or empty).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cum = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            cum += c.load(Relaxed);
            let le = match LATENCY_BUCKETS.get(i) {
                Some(b) => format!("{b}"),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cum}");
        }
        let sum = self.sum_ns.load(Relaxed) as f64 / 1e9;
        if labels.is_empty() {
            let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cum}");
        } else {
            let _ = writeln!(
                out,
                "{name}_sum{{{labels}}} {sum}\n{name}_count{{{labels}}} {cum}"
            );
        }
    }
}

// ---------------------------------------------------------------- database

/// Statement kinds the metadata store's latencies are kept by.
pub const DB_STATEMENTS: [&str; 7] = [
    "select", "insert", "update", "delete", "begin", "commit", "other",
];

static DB_STATEMENT_LATENCY: [Histogram; 7] = [const { Histogram::new() }; 7];

/// Classes of metadata-store errors, as [`StoreError`] classifies them.
pub const DB_ERROR_CLASSES: [&str; 5] = [
    "unavailable",
    "storage_full",
    "constraint",
    "row_not_found",
    "other",
];

static DB_ERRORS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

/// Waits of write transactions for their connection (and, on SQLite, for the
/// process's one writer).
pub static DB_WRITE_WAIT: Histogram = Histogram::new();

/// Records the latency of one statement whose text starts with `summary`.
pub fn observe_statement(summary: &str, d: Duration) {
    let word = summary.split_whitespace().next().unwrap_or("");
    let i = DB_STATEMENTS[..6]
        .iter()
        .position(|k| word.eq_ignore_ascii_case(k))
        .unwrap_or(6);
    DB_STATEMENT_LATENCY[i].observe(d);
}

/// Statement latencies by kind.
pub fn statement_latency() -> impl Iterator<Item = (&'static str, &'static Histogram)> {
    DB_STATEMENTS
        .iter()
        .copied()
        .zip(DB_STATEMENT_LATENCY.iter())
}

pub(crate) fn count_db_error(e: &sqlx::Error) {
    let class = if crate::db_unavailable(e) {
        0
    } else if matches!(e, sqlx::Error::Io(io) if crate::io_full(io))
        || matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("13"))
    {
        1
    } else if matches!(e, sqlx::Error::Database(d) if d.kind() != sqlx::error::ErrorKind::Other) {
        2
    } else if matches!(e, sqlx::Error::RowNotFound) {
        3
    } else {
        4
    };
    DB_ERRORS[class].fetch_add(1, Relaxed);
}

/// Metadata-store errors so far, by class.
pub fn db_errors() -> impl Iterator<Item = (&'static str, u64)> {
    DB_ERROR_CLASSES
        .iter()
        .copied()
        .zip(DB_ERRORS.iter().map(|c| c.load(Relaxed)))
}

// ---------------------------------------------------------------- object store

/// Object-store operations, in the order of [`crate::counting::OPS`].
pub use crate::counting::OPS as OBJECT_OPS;

static OBJECT_LATENCY: [Histogram; 9] = [const { Histogram::new() }; 9];
static OBJECT_ERRORS: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];

/// Object-store call latencies by operation (for `get`, until the body starts).
pub fn object_latency() -> impl Iterator<Item = (&'static str, &'static Histogram)> {
    OBJECT_OPS.iter().copied().zip(OBJECT_LATENCY.iter())
}

/// Failed object-store calls by operation (a missing object is not a failure).
pub fn object_errors() -> impl Iterator<Item = (&'static str, u64)> {
    OBJECT_OPS
        .iter()
        .copied()
        .zip(OBJECT_ERRORS.iter().map(|c| c.load(Relaxed)))
}

fn record<T>(op: usize, start: Instant, r: &Result<T, StoreError>) {
    let elapsed = start.elapsed();
    OBJECT_LATENCY[op].observe(elapsed);
    let failed = matches!(r, Err(e) if !matches!(e, StoreError::NotFound));
    if failed {
        OBJECT_ERRORS[op].fetch_add(1, Relaxed);
    }
    // One client span of the request's trace when traces are exported
    // (`crates/berth/src/otlp.rs`); a disabled callsite costs nothing more.
    tracing::trace!(
        target: "berth_otel::object",
        op = OBJECT_OPS[op],
        elapsed_ns = elapsed.as_nanos().min(u64::MAX as u128) as u64,
        failed,
    );
}

/// An [`ObjectBackend`] that times each call and counts its failures into the
/// process-wide figures above.
pub struct Timed<B>(pub B);

impl<B: ObjectBackend> ObjectBackend for Timed<B> {
    fn min_part_size(&self) -> usize {
        self.0.min_part_size()
    }

    fn put<'a>(&'a self, key: &'a str, body: ByteStream) -> BoxFut<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.0.put(key, body).await;
            record(0, t, &r);
            r
        })
    }

    fn create_multipart<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<Multipart, StoreError>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.0.create_multipart(key).await;
            record(1, t, &r);
            r
        })
    }

    fn put_part<'a>(
        &'a self,
        mp: &'a Multipart,
        index: usize,
        data: Bytes,
    ) -> BoxFut<'a, Result<String, StoreError>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.0.put_part(mp, index, data).await;
            record(2, t, &r);
            r
        })
    }

    fn complete_multipart<'a>(&'a self, mp: &'a Multipart) -> BoxFut<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.0.complete_multipart(mp).await;
            record(3, t, &r);
            r
        })
    }

    fn abort_multipart<'a>(&'a self, mp: &'a Multipart) -> BoxFut<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.0.abort_multipart(mp).await;
            record(4, t, &r);
            r
        })
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
        range: Range<u64>,
    ) -> BoxFut<'a, Result<ByteStream, StoreError>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.0.get(key, range).await;
            record(5, t, &r);
            r
        })
    }

    fn stat<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<Option<ObjectInfo>, StoreError>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.0.stat(key).await;
            record(6, t, &r);
            r
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.0.delete(key).await;
            record(7, t, &r);
            r
        })
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<ObjectInfo, StoreError>> {
        // A listing is a stream of pages: its failures are counted, not its time.
        Box::pin(futures_util::TryStreamExt::inspect_err(
            self.0.list(prefix),
            |e| {
                if !matches!(e, StoreError::NotFound) {
                    OBJECT_ERRORS[8].fetch_add(1, Relaxed);
                }
            },
        ))
    }

    fn local_root(&self) -> Option<&Path> {
        self.0.local_root()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let mut s = String::new();
        h.render(&mut s, "x_seconds", "a=\"b\"");
        assert!(s.contains("x_seconds_bucket{a=\"b\",le=\"0.0005\"} 1\n"));
        assert!(s.contains("x_seconds_bucket{a=\"b\",le=\"0.005\"} 2\n"));
        assert!(s.contains("x_seconds_bucket{a=\"b\",le=\"30\"} 2\n"));
        assert!(s.contains("x_seconds_bucket{a=\"b\",le=\"+Inf\"} 3\n"));
        assert!(s.contains("x_seconds_count{a=\"b\"} 3\n"));
        assert!(s.contains("x_seconds_sum{a=\"b\"} 60.0031"));
        assert_eq!(h.count(), 3);
    }

    #[test]
    fn statements_are_kept_by_their_first_word() {
        let before = DB_STATEMENT_LATENCY[2].count();
        observe_statement("UPDATE jobs SET …", Duration::from_millis(1));
        assert_eq!(DB_STATEMENT_LATENCY[2].count(), before + 1);
        let other = DB_STATEMENT_LATENCY[6].count();
        observe_statement("WITH x AS …", Duration::from_millis(1));
        assert_eq!(DB_STATEMENT_LATENCY[6].count(), other + 1);
    }
}

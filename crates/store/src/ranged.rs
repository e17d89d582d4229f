//! Reads of large objects from a remote store as several concurrent ranged `GET`s
//! (`docs/architecture.md`, "Blobs: a dumb backend under one pipeline").
//!
//! One `GET` of a large object is served by one stream in the object store
//! (Garage reads the object's blocks one after another for it) and one TCP
//! connection: the pull waits on that stream. Here the range is cut into
//! *windows* of [`WINDOW_SEGMENTS`] sealed segments (8 MiB of plaintext, each
//! window starting on a segment boundary of the sealed layout, `crate::crypt`),
//! fetched by up to [`IN_FLIGHT`] tasks at once and handed on in order. Each
//! window's bytes are handed on **as they arrive** (the consumer never waits for
//! a whole window): the window being consumed streams through, the ones after
//! it fill their queues meanwhile. Memory per download stays bounded: a task
//! fetches one window and no more, at most [`IN_FLIGHT`] windows are held or
//! being fetched (≈ 32 MiB), and a window is fetched only once the consumer has
//! finished the one [`IN_FLIGHT`] places before it. Dropping the stream (the
//! client went away) aborts the fetches still running.
//!
//! Benchmark-only knobs (read once, for tuning runs; `docs/benchmarks.md`,
//! "Large pulls from S3: windows that stream"): [`IN_FLIGHT_ENV`] and
//! [`WINDOW_SEGMENTS_ENV`]; `0` windows in flight reads every range with one `GET`.

use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::blob::ByteStream;
use crate::crypt;
use crate::object::ObjectBackend;
use crate::StoreError;

/// Sealed segments per window: 128 × 64 KiB = 8 MiB of plaintext, the size of an
/// upload's multipart parts (`crate::blob::PART_SIZE`).
pub const WINDOW_SEGMENTS: u64 = 128;

/// Windows fetched or held at once per download.
pub const IN_FLIGHT: usize = 4;

/// The sealed length of one window (segments of `SEGMENT + OVERHEAD` bytes).
pub const WINDOW_BYTES: u64 = WINDOW_SEGMENTS * (crypt::SEGMENT + crypt::OVERHEAD) as u64;

/// A fetch shorter than this is one plain `GET`: below two windows a second
/// request costs more than it brings.
pub const PARALLEL_FROM: u64 = 2 * WINDOW_BYTES;

/// BENCHMARK ONLY: overrides [`IN_FLIGHT`] (`0`: no windows, one `GET`).
pub const IN_FLIGHT_ENV: &str = "BERTH_BENCH_S3_READ_IN_FLIGHT";
/// BENCHMARK ONLY: overrides [`WINDOW_SEGMENTS`].
pub const WINDOW_SEGMENTS_ENV: &str = "BERTH_BENCH_S3_READ_WINDOW_SEGMENTS";

struct Tuning {
    in_flight: usize,
    window_segments: u64,
}

fn tuning() -> &'static Tuning {
    static T: OnceLock<Tuning> = OnceLock::new();
    T.get_or_init(|| {
        let num = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Tuning {
            in_flight: num(IN_FLIGHT_ENV).map_or(IN_FLIGHT, |n| n.min(64) as usize),
            window_segments: num(WINDOW_SEGMENTS_ENV)
                .filter(|&n| n > 0)
                .unwrap_or(WINDOW_SEGMENTS),
        }
    })
}

fn window_bytes() -> u64 {
    tuning().window_segments * (crypt::SEGMENT + crypt::OVERHEAD) as u64
}

/// The length from which a read goes out in windows ([`PARALLEL_FROM`] unless
/// tuned; never with no windows in flight).
pub fn parallel_from() -> u64 {
    if tuning().in_flight == 0 {
        u64::MAX
    } else {
        2 * window_bytes()
    }
}

/// Cuts `range` (of a sealed object) at the window boundaries of the sealed
/// layout: `crypt::segment_offset(k × WINDOW_SEGMENTS)` for every `k`, so each
/// window but the first and last holds exactly [`WINDOW_SEGMENTS`] whole segments.
/// With `sealed == false` (plaintext objects) the boundaries are multiples of
/// [`WINDOW_BYTES`].
pub fn windows(range: Range<u64>, sealed: bool) -> Vec<Range<u64>> {
    let segs = tuning().window_segments;
    let bytes = window_bytes();
    let boundary = |k: u64| {
        if sealed {
            crypt::segment_offset(k * segs)
        } else {
            k * bytes
        }
    };
    let mut out = Vec::new();
    if range.start >= range.end {
        return out;
    }
    // The first boundary after `range.start`.
    let mut k = if sealed {
        range.start.saturating_sub(crypt::HEADER) / bytes + 1
    } else {
        range.start / bytes + 1
    };
    let mut start = range.start;
    while start < range.end {
        let end = boundary(k).min(range.end);
        if end > start {
            out.push(start..end);
            start = end;
        }
        k += 1;
    }
    out
}

/// One window being fetched: its task sends the pieces of the response as
/// they arrive (at most the window's bytes, so the queue needs no other bound).
struct Window {
    task: JoinHandle<()>,
    rx: mpsc::UnboundedReceiver<io::Result<Bytes>>,
    want: u64,
    got: u64,
}

fn store_io(e: StoreError) -> io::Error {
    match e {
        StoreError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// Reads one window on a task of its own into a queue: the response `open`
/// gives, piece by piece as it arrives (the consumer hands each piece on at once).
fn spawn_window<S>(
    want: u64,
    open: impl std::future::Future<Output = io::Result<S>> + Send + 'static,
) -> Window
where
    S: Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut s = match open.await {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        while let Some(piece) = s.next().await {
            let failed = piece.is_err();
            if tx.send(piece).is_err() || failed {
                return;
            }
        }
    });
    Window {
        task,
        rx,
        want,
        got: 0,
    }
}

/// Reads `s` (the response for one window) on a task of its own into a queue.
fn drain(s: ByteStream, want: u64) -> Window {
    spawn_window(want, async move { Ok(s) })
}

fn fetch(backend: &Arc<dyn ObjectBackend>, key: &Arc<str>, range: Range<u64>) -> Window {
    let backend = backend.clone();
    let key = key.clone();
    let want = range.end - range.start;
    spawn_window(want, async move {
        backend.get(&key, range).await.map_err(store_io)
    })
}

/// The windows of one download, consumed in order.
struct Windows {
    backend: Arc<dyn ObjectBackend>,
    key: Arc<str>,
    todo: VecDeque<Range<u64>>,
    running: VecDeque<Window>,
    in_flight: usize,
    failed: bool,
}

impl Drop for Windows {
    fn drop(&mut self) {
        for w in &self.running {
            w.task.abort();
        }
    }
}

impl Windows {
    fn refill(&mut self) {
        while self.running.len() < self.in_flight {
            let Some(r) = self.todo.pop_front() else {
                break;
            };
            let w = fetch(&self.backend, &self.key, r);
            self.running.push_back(w);
        }
    }
}

impl Stream for Windows {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.failed {
                return Poll::Ready(None);
            }
            let Some(w) = this.running.front_mut() else {
                return Poll::Ready(None);
            };
            match w.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(piece))) => {
                    w.got += piece.len() as u64;
                    if w.got > w.want {
                        this.failed = true;
                        return Poll::Ready(Some(Err(io::Error::other(
                            "object store returned more than the range asked",
                        ))));
                    }
                    return Poll::Ready(Some(Ok(piece)));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.failed = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    if w.got != w.want {
                        let msg = format!(
                            "object store returned {} bytes of a {}-byte range",
                            w.got, w.want
                        );
                        this.failed = true;
                        return Poll::Ready(Some(Err(io::Error::other(msg))));
                    }
                    this.running.pop_front();
                    this.refill();
                }
            }
        }
    }
}

/// Streams `range` of `key` in order through concurrent ranged `GET`s of the
/// windows of [`windows`]. The first `GET` is made before this returns, so a
/// missing object is `NotFound` here, as with one `GET`.
pub async fn get(
    backend: Arc<dyn ObjectBackend>,
    key: &str,
    range: Range<u64>,
    sealed: bool,
) -> Result<ByteStream, StoreError> {
    let mut todo: VecDeque<Range<u64>> = windows(range, sealed).into();
    let Some(first) = todo.pop_front() else {
        return Ok(Box::pin(futures_util::stream::empty()));
    };
    // The first window's response is awaited here: a missing object or a store
    // that is down is the caller's error, not a stream cut short.
    let first_want = first.end - first.start;
    let first_stream = backend.get(key, first).await?;
    let mut w = Windows {
        backend,
        key: Arc::from(key),
        todo,
        running: VecDeque::new(),
        in_flight: tuning().in_flight.max(1),
        failed: false,
    };
    w.running.push_back(drain(first_stream, first_want));
    w.refill();
    Ok(Box::pin(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_the_sealed_segment_layout() {
        let seg = (crypt::SEGMENT + crypt::OVERHEAD) as u64;
        // A whole object of 300 segments: the header goes with the first window.
        let end = crypt::segment_offset(300);
        let w = windows(0..end, true);
        assert_eq!(
            w,
            vec![
                0..crypt::segment_offset(128),
                crypt::segment_offset(128)..crypt::segment_offset(256),
                crypt::segment_offset(256)..end,
            ]
        );
        // A range starting inside: the first window ends on the next boundary.
        let a = crypt::segment_offset(5);
        let w = windows(a..crypt::segment_offset(129), true);
        assert_eq!(
            w,
            vec![
                a..crypt::segment_offset(128),
                crypt::segment_offset(128)..crypt::segment_offset(129)
            ]
        );
        // Exactly on a boundary.
        let b = crypt::segment_offset(128);
        assert_eq!(windows(b..b + seg, true), vec![b..b + seg]);
        // Every window is contiguous and within the range, for many ranges.
        for (s, e) in [(0u64, 1u64), (12, 99_999_999), (8_392_203, 8_392_205)] {
            let w = windows(s..e, true);
            assert_eq!(w.first().unwrap().start, s);
            assert_eq!(w.last().unwrap().end, e);
            for pair in w.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
            }
            assert!(w.iter().all(|r| r.end - r.start <= WINDOW_BYTES));
        }
        assert!(windows(5..5, true).is_empty());
        assert_eq!(
            windows(0..3 * WINDOW_BYTES, false),
            vec![
                0..WINDOW_BYTES,
                WINDOW_BYTES..2 * WINDOW_BYTES,
                2 * WINDOW_BYTES..3 * WINDOW_BYTES
            ]
        );
    }
}

//! Reads of large objects from a remote store as several concurrent ranged `GET`s
//! (`docs/architecture.md`, "Blobs: a dumb backend under one pipeline").
//!
//! One `GET` of a large object is served by one stream in the object store
//! (Garage reads the object's blocks one after another for it) and one TCP
//! connection: the pull waits on that stream. Here the range is cut into
//! *windows* of [`WINDOW_SEGMENTS`] sealed segments (8 MiB of plaintext, each
//! window starting on a segment boundary of the sealed layout, `crate::crypt`),
//! fetched by up to [`IN_FLIGHT`] tasks at once, each window read into memory and
//! handed on in order. Memory per download stays bounded: at most [`IN_FLIGHT`]
//! windows are held or being fetched (≈ 32 MiB), and a window is fetched only
//! once the consumer has taken the one [`IN_FLIGHT`] places before it. Dropping
//! the stream (the client went away) aborts the fetches still running.

use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
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

/// Cuts `range` (of a sealed object) at the window boundaries of the sealed
/// layout: `crypt::segment_offset(k × WINDOW_SEGMENTS)` for every `k`, so each
/// window but the first and last holds exactly [`WINDOW_SEGMENTS`] whole segments.
/// With `sealed == false` (plaintext objects) the boundaries are multiples of
/// [`WINDOW_BYTES`].
pub fn windows(range: Range<u64>, sealed: bool) -> Vec<Range<u64>> {
    let boundary = |k: u64| {
        if sealed {
            crypt::segment_offset(k * WINDOW_SEGMENTS)
        } else {
            k * WINDOW_BYTES
        }
    };
    let mut out = Vec::new();
    if range.start >= range.end {
        return out;
    }
    // The first boundary after `range.start`.
    let mut k = if sealed {
        range.start.saturating_sub(crypt::HEADER) / WINDOW_BYTES + 1
    } else {
        range.start / WINDOW_BYTES + 1
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

/// Aborts the fetches still running when the download ends early.
struct Fetches(VecDeque<JoinHandle<io::Result<Vec<Bytes>>>>);

impl Drop for Fetches {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

fn fetch(
    backend: &Arc<dyn ObjectBackend>,
    key: &Arc<str>,
    range: Range<u64>,
) -> JoinHandle<io::Result<Vec<Bytes>>> {
    let backend = backend.clone();
    let key = key.clone();
    tokio::spawn(async move {
        let want = range.end - range.start;
        let s = backend.get(&key, range).await.map_err(|e| match e {
            StoreError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        })?;
        let pieces: Vec<Bytes> = s.try_collect().await?;
        let got: u64 = pieces.iter().map(|p| p.len() as u64).sum();
        if got != want {
            return Err(io::Error::other(format!(
                "object store returned {got} bytes of a {want}-byte range"
            )));
        }
        Ok(pieces)
    })
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
    let key: Arc<str> = Arc::from(key);
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    tokio::spawn(async move {
        let mut running = Fetches(VecDeque::new());
        while running.0.len() + 1 < IN_FLIGHT {
            let Some(r) = todo.pop_front() else { break };
            running.0.push_back(fetch(&backend, &key, r));
        }
        // The first window streams straight through while the others fetch.
        let mut got = 0u64;
        let mut s = first_stream;
        while let Some(piece) = s.next().await {
            let failed = piece.is_err();
            if let Ok(p) = &piece {
                got += p.len() as u64;
            }
            if tx.send(piece).await.is_err() || failed {
                return;
            }
        }
        if got != first_want {
            let _ = tx
                .send(Err(io::Error::other("object store range cut short")))
                .await;
            return;
        }
        while let Some(t) = running.0.pop_front() {
            if let Some(r) = todo.pop_front() {
                running.0.push_back(fetch(&backend, &key, r));
            }
            let pieces = match t.await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            for p in pieces {
                if tx.send(Ok(p)).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut rx = rx;
    Ok(Box::pin(futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
    })))
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

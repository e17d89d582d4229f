//! Counts the requests an [`ObjectBackend`] makes, per operation, for the whole
//! process: with an S3 backend each call is one round trip to the object store
//! (a listing counts once, whatever its pages). `berth serve` wraps its S3 backend
//! in [`Counting`] and exposes the counts at `/metrics`
//! (`berth_object_requests_total{op=…}`); the benchmark harness reads them to state
//! the round trips per push and per pull (docs/benchmarks.md).

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::blob::{BoxFut, ByteStream};
use crate::object::{Multipart, ObjectBackend, ObjectInfo};
use crate::StoreError;

/// The operations counted, in [`object_requests`] order.
pub const OPS: [&str; 9] = [
    "put",
    "create_multipart",
    "put_part",
    "complete_multipart",
    "abort_multipart",
    "get",
    "stat",
    "delete",
    "list",
];

static COUNTS: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];
/// Bytes sent in object and part bodies (`put`, `put_part`).
static WRITTEN: AtomicU64 = AtomicU64::new(0);

/// Bytes every [`Counting`] backend of this process sent in object and part
/// bodies so far: against the bytes pushed, the write amplification of staging.
pub fn object_bytes_written() -> u64 {
    WRITTEN.load(Ordering::Relaxed)
}

/// Bytes received in `get` bodies.
static READ: AtomicU64 = AtomicU64::new(0);

/// Bytes every [`Counting`] backend of this process received in `get` bodies so
/// far (a commit that reads an upload back to hash it shows here).
pub fn object_bytes_read() -> u64 {
    READ.load(Ordering::Relaxed)
}

fn count(op: usize) {
    COUNTS[op].fetch_add(1, Ordering::Relaxed);
}

/// Requests made so far by every [`Counting`] backend of this process, per
/// operation.
pub fn object_requests() -> Vec<(&'static str, u64)> {
    OPS.iter()
        .zip(COUNTS.iter())
        .map(|(op, c)| (*op, c.load(Ordering::Relaxed)))
        .collect()
}

/// An [`ObjectBackend`] that counts each call into the process-wide counters.
pub struct Counting<B>(pub B);

impl<B: ObjectBackend> ObjectBackend for Counting<B> {
    fn min_part_size(&self) -> usize {
        self.0.min_part_size()
    }

    fn put<'a>(&'a self, key: &'a str, body: ByteStream) -> BoxFut<'a, Result<u64, StoreError>> {
        count(0);
        let body: ByteStream = Box::pin(futures_util::TryStreamExt::inspect_ok(body, |b| {
            WRITTEN.fetch_add(b.len() as u64, Ordering::Relaxed);
        }));
        self.0.put(key, body)
    }

    fn create_multipart<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<Multipart, StoreError>> {
        count(1);
        self.0.create_multipart(key)
    }

    fn put_part<'a>(
        &'a self,
        mp: &'a Multipart,
        index: usize,
        data: Bytes,
    ) -> BoxFut<'a, Result<String, StoreError>> {
        count(2);
        WRITTEN.fetch_add(data.len() as u64, Ordering::Relaxed);
        self.0.put_part(mp, index, data)
    }

    fn complete_multipart<'a>(&'a self, mp: &'a Multipart) -> BoxFut<'a, Result<(), StoreError>> {
        count(3);
        self.0.complete_multipart(mp)
    }

    fn abort_multipart<'a>(&'a self, mp: &'a Multipart) -> BoxFut<'a, Result<(), StoreError>> {
        count(4);
        self.0.abort_multipart(mp)
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
        range: Range<u64>,
    ) -> BoxFut<'a, Result<ByteStream, StoreError>> {
        count(5);
        Box::pin(async move {
            let body = self.0.get(key, range).await?;
            Ok(Box::pin(futures_util::TryStreamExt::inspect_ok(body, |b| {
                READ.fetch_add(b.len() as u64, Ordering::Relaxed);
            })) as ByteStream)
        })
    }

    fn stat<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<Option<ObjectInfo>, StoreError>> {
        count(6);
        self.0.stat(key)
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<(), StoreError>> {
        count(7);
        self.0.delete(key)
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<ObjectInfo, StoreError>> {
        count(8);
        self.0.list(prefix)
    }

    fn local_root(&self) -> Option<&Path> {
        self.0.local_root()
    }
}

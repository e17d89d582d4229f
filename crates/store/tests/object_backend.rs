//! The `ObjectBackend` contract (`docs/architecture.md`, "Blobs: a dumb backend
//! under one pipeline"): written once, run against every backend — the filesystem
//! backend always, the S3 backend against a real S3-compatible server (Garage,
//! started by `scripts/garage-start`, which exports the `BERTH_TEST_S3_*`
//! settings). Each S3 test works under its own random key prefix of the test
//! bucket; each filesystem test in its own directory.

use std::ops::Range;
use std::sync::Arc;

use berth_store::object::{FsBackend, Multipart, ObjectBackend};
use berth_store::s3::{S3Backend, S3Config, MIN_PART_SIZE};
use berth_store::{ByteStream, StoreError};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

/// A backend under test and a factory for a second instance over the same storage
/// (another process or node).
struct Subject {
    backend: Arc<dyn ObjectBackend>,
    again: Box<dyn Fn() -> Arc<dyn ObjectBackend> + Send + Sync>,
    _cleanup: Option<RemoveOnDrop>,
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fs_subject(name: &str) -> Option<Subject> {
    let dir = std::env::temp_dir().join(format!("berth-objects-{name}-{}", uuid::Uuid::new_v4()));
    let backend: Arc<dyn ObjectBackend> = Arc::new(FsBackend::open(&dir).expect("open"));
    Some(Subject {
        backend,
        again: Box::new({
            let dir = dir.clone();
            move || Arc::new(FsBackend::open(&dir).expect("reopen"))
        }),
        _cleanup: Some(RemoveOnDrop(dir)),
    })
}

fn s3_config(prefix: &str) -> Option<S3Config> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(endpoint) = var("BERTH_TEST_S3_ENDPOINT") else {
        let hint = "start one with: eval \"$(scripts/garage-start)\"";
        if std::env::var("CI").is_ok_and(|v| !v.is_empty()) {
            panic!("BERTH_TEST_S3_ENDPOINT is not set on CI: {hint}");
        }
        if std::env::var("BERTH_TEST_SKIP_S3").as_deref() == Ok("1") {
            eprintln!("skipping the S3 backend test: BERTH_TEST_SKIP_S3=1");
            return None;
        }
        panic!("BERTH_TEST_S3_ENDPOINT is not set: {hint} (or BERTH_TEST_SKIP_S3=1 to skip)");
    };
    Some(S3Config {
        bucket: var("BERTH_TEST_S3_BUCKET").unwrap_or_else(|| "berth-test".into()),
        prefix: format!("t-{}/{prefix}", uuid::Uuid::new_v4()),
        endpoint: Some(endpoint),
        region: var("BERTH_TEST_S3_REGION"),
        access_key_id: var("BERTH_TEST_S3_ACCESS_KEY_ID"),
        secret_access_key: var("BERTH_TEST_S3_SECRET_ACCESS_KEY"),
        path_style: None,
    })
}

fn s3_subject(name: &str) -> Option<Subject> {
    let cfg = s3_config(name)?;
    let backend: Arc<dyn ObjectBackend> = Arc::new(S3Backend::new(&cfg).expect("s3"));
    Some(Subject {
        backend,
        again: Box::new(move || Arc::new(S3Backend::new(&cfg).expect("s3 again"))),
        _cleanup: None,
    })
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u8)
                .wrapping_mul(31)
                .wrapping_add(seed ^ (i >> 16) as u8)
        })
        .collect()
}

fn body(data: Vec<u8>, chunk: usize) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(chunks))
}

async fn put(b: &dyn ObjectBackend, key: &str, data: &[u8]) {
    let n = b.put(key, body(data.to_vec(), 100_003)).await.expect("put");
    assert_eq!(n, data.len() as u64);
}

async fn read(b: &dyn ObjectBackend, key: &str, range: Range<u64>) -> Vec<u8> {
    let s = b.get(key, range).await.expect("get");
    let parts: Vec<Bytes> = s.try_collect().await.expect("stream");
    parts.concat()
}

async fn size(b: &dyn ObjectBackend, key: &str) -> Option<u64> {
    b.stat(key).await.expect("stat").map(|i| i.size)
}

async fn empty_objects(s: Subject) {
    let b = &*s.backend;
    put(b, "blobs/empty", b"").await;
    assert_eq!(size(b, "blobs/empty").await, Some(0));
    assert!(read(b, "blobs/empty", 0..0).await.is_empty());
    assert!(
        read(b, "blobs/empty", 0..10).await.is_empty(),
        "cut at the end"
    );
}

async fn whole_objects_and_ranges(s: Subject) {
    let b = &*s.backend;
    let data = pattern(100_000, 7);
    put(b, "blobs/a", &data).await;
    assert_eq!(read(b, "blobs/a", 0..100_000).await, data);
    assert_eq!(read(b, "blobs/a", 0..1).await, &data[..1]);
    assert_eq!(read(b, "blobs/a", 4096..70_001).await, &data[4096..70_001]);
    assert_eq!(read(b, "blobs/a", 99_999..100_000).await, &data[99_999..]);
    assert_eq!(
        read(b, "blobs/a", 99_000..200_000).await,
        &data[99_000..],
        "cut at the end"
    );
    assert!(read(b, "blobs/a", 50..50).await.is_empty());
    let info = b.stat("blobs/a").await.unwrap().expect("present");
    assert_eq!((info.key.as_str(), info.size), ("blobs/a", 100_000));
    assert!(info.modified_ms > 1_600_000_000_000);
    // Replacing an object.
    put(b, "blobs/a", b"short").await;
    assert_eq!(read(b, "blobs/a", 0..100).await, b"short");
}

async fn large_objects_stream(s: Subject) {
    // Larger than two S3 parts, written from a stream of odd-sized chunks and read
    // back as a stream: neither side needs the object in memory.
    let b = &*s.backend;
    let n = 2 * MIN_PART_SIZE + 777_777;
    let data = pattern(n, 3);
    let written = b
        .put("blobs/large", body(data.clone(), 65_537))
        .await
        .unwrap();
    assert_eq!(written, n as u64);
    assert_eq!(size(b, "blobs/large").await, Some(n as u64));
    let mut s = b.get("blobs/large", 0..n as u64).await.unwrap();
    let mut at = 0usize;
    let mut pieces = 0;
    while let Some(piece) = s.next().await {
        let piece = piece.unwrap();
        assert_eq!(&piece[..], &data[at..at + piece.len()], "at {at}");
        at += piece.len();
        pieces += 1;
    }
    assert_eq!(at, n);
    assert!(pieces > 1, "a large read arrives in pieces");
    // Ranges across the boundaries of S3's parts.
    let p = MIN_PART_SIZE as u64;
    for r in [p - 1..p + 1, p - 100..2 * p + 100, 2 * p..n as u64] {
        assert_eq!(
            read(b, "blobs/large", r.clone()).await,
            &data[r.start as usize..r.end as usize]
        );
    }
}

async fn failed_bodies_leave_nothing(s: Subject) {
    let b = &*s.backend;
    put(b, "blobs/kept", b"old").await;
    for key in ["blobs/kept", "blobs/never"] {
        let items: Vec<std::io::Result<Bytes>> = vec![
            Ok(Bytes::from(pattern(1000, 1))),
            Err(std::io::Error::other("client went away")),
        ];
        let r = b
            .put(key, Box::pin(futures_util::stream::iter(items)))
            .await;
        assert!(r.is_err(), "a failed body fails the put");
    }
    assert_eq!(
        read(b, "blobs/kept", 0..10).await,
        b"old",
        "the old object stays"
    );
    assert_eq!(size(b, "blobs/never").await, None);
}

async fn missing_objects(s: Subject) {
    let b = &*s.backend;
    assert_eq!(b.stat("nope").await.unwrap(), None);
    assert!(matches!(
        b.get("nope", 0..10).await.err(),
        Some(StoreError::NotFound)
    ));
    assert!(matches!(
        b.get("nope", 0..0).await.err(),
        Some(StoreError::NotFound)
    ));
    b.delete("nope")
        .await
        .expect("deleting a missing object succeeds");
    put(b, "x", b"x").await;
    b.delete("x").await.unwrap();
    b.delete("x").await.unwrap();
    assert_eq!(b.stat("x").await.unwrap(), None);
}

async fn listing_many_keys_and_pages(s: Subject) {
    let b = s.backend.clone();
    // More than one page of S3's ListObjectsV2 (1000 keys).
    let n = 1010;
    futures_util::stream::iter(0..n)
        .map(|i| {
            let b = b.clone();
            async move {
                b.put(
                    &format!("blobs/sha256/{:02x}/{i:06}", i % 256),
                    body(vec![1u8; i % 7], 10),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    put(&*b, "uploads/other", b"u").await;
    put(&*b, "blobsx/not-under-blobs", b"u").await;
    let mut listed: Vec<_> = b.list("blobs/").try_collect().await.unwrap();
    listed.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(listed.len(), n);
    assert!(listed.iter().all(|o| o.key.starts_with("blobs/sha256/")));
    let i = listed
        .iter()
        .find(|o| o.key == "blobs/sha256/05/000005")
        .unwrap();
    assert_eq!(i.size, 5);
    // A prefix that ends inside a segment.
    let mut some: Vec<_> = b.list("blobs/sha256/0").try_collect().await.unwrap();
    some.sort_by(|x, y| x.key.cmp(&y.key));
    let expect = (0..n).filter(|i| i % 256 < 16).count();
    assert_eq!(some.len(), expect);
    let up: Vec<_> = b.list("uploads").try_collect().await.unwrap();
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].key, "uploads/other");
    let none: Vec<_> = b.list("nothing/here/").try_collect().await.unwrap();
    assert!(none.is_empty());
}

async fn multipart_many_parts_resumed_by_another_instance(s: Subject) {
    let a = s.backend.clone();
    let min = a.min_part_size().max(1);
    // Parts of the minimum size (S3: 5 MiB) and a short last one.
    let parts: Vec<Vec<u8>> = (0..5u8)
        .map(|i| pattern(if i == 4 { 12_345 } else { min.max(1000) }, i))
        .collect();
    let mut mp = a.create_multipart("uploads/u1").await.unwrap();
    for (i, p) in parts.iter().enumerate().take(2) {
        let t = a.put_part(&mp, i, Bytes::from(p.clone())).await.unwrap();
        mp.parts.push(t);
    }
    // The state is plain data: stored (say, in an upload row) and continued by a
    // second instance, as another node would.
    let stored = serde_json::to_string(&mp).unwrap();
    let b = (s.again)();
    let mut mp: Multipart = serde_json::from_str(&stored).unwrap();
    for (i, p) in parts.iter().enumerate().skip(2) {
        let t = b.put_part(&mp, i, Bytes::from(p.clone())).await.unwrap();
        mp.parts.push(t);
    }
    assert_eq!(
        size(&*a, "uploads/u1").await,
        None,
        "invisible until complete"
    );
    b.complete_multipart(&mp).await.unwrap();
    let all = parts.concat();
    let n = all.len() as u64;
    assert_eq!(size(&*a, "uploads/u1").await, Some(n));
    let p = parts[0].len() as u64;
    assert_eq!(
        read(&*a, "uploads/u1", p - 100..3 * p + 100).await,
        &all[(p - 100) as usize..(3 * p + 100) as usize]
    );
    assert_eq!(read(&*b, "uploads/u1", 0..n).await, all);
}

async fn multipart_retried_part(s: Subject) {
    // A part uploaded twice (a retry): the token of the second upload counts.
    let b = &*s.backend;
    let min = b.min_part_size().max(1000);
    let mut mp = b.create_multipart("uploads/retry").await.unwrap();
    let _first = b
        .put_part(&mp, 0, Bytes::from(pattern(min, 1)))
        .await
        .unwrap();
    let second = b
        .put_part(&mp, 0, Bytes::from(pattern(min, 2)))
        .await
        .unwrap();
    mp.parts.push(second);
    let last = b
        .put_part(&mp, 1, Bytes::from_static(b"end"))
        .await
        .unwrap();
    mp.parts.push(last);
    b.complete_multipart(&mp).await.unwrap();
    let mut expect = pattern(min, 2);
    expect.extend_from_slice(b"end");
    assert_eq!(
        read(b, "uploads/retry", 0..expect.len() as u64).await,
        expect
    );
}

async fn multipart_abort_and_bad_completion(s: Subject) {
    let b = &*s.backend;
    let mut mp = b.create_multipart("uploads/gone").await.unwrap();
    let t = b
        .put_part(&mp, 0, Bytes::from_static(b"abc"))
        .await
        .unwrap();
    mp.parts.push(t);
    b.abort_multipart(&mp).await.unwrap();
    b.abort_multipart(&mp).await.expect("abort is idempotent");
    assert_eq!(size(b, "uploads/gone").await, None);
    assert!(
        b.complete_multipart(&mp).await.is_err(),
        "an aborted upload cannot complete"
    );
    assert_eq!(size(b, "uploads/gone").await, None);

    // Completing with a part that was never uploaded fails and creates nothing.
    let mut mp = b.create_multipart("uploads/bad").await.unwrap();
    let min = b.min_part_size().max(1000);
    let t = b
        .put_part(&mp, 0, Bytes::from(pattern(min, 4)))
        .await
        .unwrap();
    mp.parts.push(t);
    mp.parts.push("\"not-an-etag\"".into());
    assert!(
        b.complete_multipart(&mp).await.is_err(),
        "completion with a bogus part must fail"
    );
    assert_eq!(size(b, "uploads/bad").await, None);
    b.abort_multipart(&mp).await.unwrap();
}

async fn concurrent_writers_of_one_key(s: Subject) {
    // Content-addressed keys: writers of one key write the same bytes; all succeed
    // and the object is whole.
    let b = s.backend.clone();
    let data = pattern(300_000, 9);
    let writers = (0..4).map(|_| {
        let b = b.clone();
        let data = data.clone();
        tokio::spawn(async move { b.put("blobs/same", body(data, 7_777)).await })
    });
    for w in futures_util::future::join_all(writers).await {
        w.unwrap().unwrap();
    }
    assert_eq!(read(&*b, "blobs/same", 0..300_000).await, data);
    // Whole objects of different content under one key: the reader sees one of
    // them entirely, never a mix.
    let (x, y) = (pattern(200_000, 1), pattern(200_000, 2));
    let (r1, r2) = tokio::join!(
        b.put("blobs/mixed", body(x.clone(), 10_000)),
        b.put("blobs/mixed", body(y.clone(), 10_000))
    );
    r1.unwrap();
    r2.unwrap();
    let got = read(&*b, "blobs/mixed", 0..200_000).await;
    assert!(got == x || got == y, "a torn object");
}

async fn keys_are_checked(s: Subject) {
    let b = &*s.backend;
    for bad in ["", "/abs", "a//b", "a/../b", "./a", "a/.hidden"] {
        assert!(b.put(bad, body(vec![1], 1)).await.is_err(), "{bad:?}");
    }
}

/// Instantiates every contract test for one backend.
macro_rules! contract {
    ($module:ident, $subject:path) => {
        mod $module {
            use super::*;
            contract!(@tests $subject;
                empty_objects, whole_objects_and_ranges, large_objects_stream,
                failed_bodies_leave_nothing, missing_objects, listing_many_keys_and_pages,
                multipart_many_parts_resumed_by_another_instance, multipart_retried_part,
                multipart_abort_and_bad_completion, concurrent_writers_of_one_key,
                keys_are_checked);
        }
    };
    (@tests $subject:path; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(s) = $subject(stringify!($name)) else { return };
                super::$name(s).await;
            }
        )*
    };
}

contract!(fs, fs_subject);
contract!(s3, s3_subject);

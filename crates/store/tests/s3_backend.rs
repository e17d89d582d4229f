//! The S3 backend against a real S3-compatible server (Garage in CI, started by
//! `scripts/garage-start`, which exports the `BERTH_TEST_S3_*` settings). Each test
//! works under its own random key prefix of the test bucket.

use berth_store::s3::{S3Backend, S3Config, MIN_PART_SIZE};
use berth_store::StoreError;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

fn config(prefix: &str) -> Option<S3Config> {
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

async fn read_all(b: &S3Backend, key: &str, range: std::ops::Range<u64>) -> Vec<u8> {
    let s = b.get_range(key, range).await.expect("get");
    let parts: Vec<Bytes> = s.try_collect().await.expect("stream");
    parts.concat()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn whole_objects_and_ranges() {
    let Some(cfg) = config("ranges") else { return };
    let b = S3Backend::new(&cfg).unwrap();
    let data = pattern(100_000, 7);
    b.put("blobs/a", Bytes::from(data.clone())).await.unwrap();
    assert_eq!(read_all(&b, "blobs/a", 0..100_000).await, data);
    assert_eq!(read_all(&b, "blobs/a", 0..1).await, &data[..1]);
    assert_eq!(
        read_all(&b, "blobs/a", 4096..70_001).await,
        &data[4096..70_001]
    );
    assert_eq!(
        read_all(&b, "blobs/a", 99_999..100_000).await,
        &data[99_999..]
    );
    assert!(read_all(&b, "blobs/a", 50..50).await.is_empty());
    let info = b.head("blobs/a").await.unwrap().expect("present");
    assert_eq!(info.size, 100_000);
    assert!(info.modified_ms > 1_600_000_000_000);
    // Empty objects exist and read back empty.
    b.put("blobs/empty", Bytes::new()).await.unwrap();
    assert_eq!(
        b.head("blobs/empty").await.unwrap().map(|i| i.size),
        Some(0)
    );
    // Overwrite (content-addressed keys: last writer wins, both succeed).
    let other = pattern(10, 9);
    let (r1, r2) = tokio::join!(
        b.put("blobs/same", Bytes::from(other.clone())),
        b.put("blobs/same", Bytes::from(other.clone()))
    );
    r1.unwrap();
    r2.unwrap();
    assert_eq!(read_all(&b, "blobs/same", 0..10).await, other);
}

#[tokio::test]
async fn missing_objects() {
    let Some(cfg) = config("missing") else { return };
    let b = S3Backend::new(&cfg).unwrap();
    assert_eq!(b.head("nope").await.unwrap(), None);
    assert!(matches!(
        b.get_range("nope", 0..10).await.err(),
        Some(StoreError::NotFound)
    ));
    b.delete("nope")
        .await
        .expect("deleting a missing object succeeds");
    b.put("x", Bytes::from_static(b"x")).await.unwrap();
    b.delete("x").await.unwrap();
    b.delete("x").await.unwrap();
    assert_eq!(b.head("x").await.unwrap(), None);
}

#[tokio::test]
async fn multipart_continued_by_another_instance() {
    let Some(cfg) = config("multipart") else {
        return;
    };
    let a = S3Backend::new(&cfg).unwrap();
    // A second client over the same bucket and prefix stands for another node.
    let b = S3Backend::new(&cfg).unwrap();
    let p0 = pattern(MIN_PART_SIZE, 1);
    let p1 = pattern(MIN_PART_SIZE, 2);
    let p2 = pattern(12_345, 3);
    let id = a.create_multipart("uploads/u1").await.unwrap();
    let e0 = a
        .put_part("uploads/u1", &id, 0, Bytes::from(p0.clone()))
        .await
        .unwrap();
    let e1 = b
        .put_part("uploads/u1", &id, 1, Bytes::from(p1.clone()))
        .await
        .unwrap();
    let e2 = a
        .put_part("uploads/u1", &id, 2, Bytes::from(p2.clone()))
        .await
        .unwrap();
    assert_eq!(
        a.head("uploads/u1").await.unwrap(),
        None,
        "invisible until complete"
    );
    b.complete_multipart("uploads/u1", &id, vec![e0, e1, e2])
        .await
        .unwrap();
    let all = [p0, p1, p2].concat();
    let n = all.len() as u64;
    assert_eq!(a.head("uploads/u1").await.unwrap().map(|i| i.size), Some(n));
    // A range across the part boundaries fetches only that range.
    let mid = MIN_PART_SIZE as u64;
    assert_eq!(
        read_all(&a, "uploads/u1", mid - 100..2 * mid + 100).await,
        &all[(mid - 100) as usize..(2 * mid + 100) as usize]
    );
    assert_eq!(read_all(&b, "uploads/u1", 0..n).await, all);
}

#[tokio::test]
async fn multipart_abort_and_bad_completion() {
    let Some(cfg) = config("abort") else { return };
    let b = S3Backend::new(&cfg).unwrap();
    let id = b.create_multipart("uploads/gone").await.unwrap();
    b.put_part("uploads/gone", &id, 0, Bytes::from_static(b"abc"))
        .await
        .unwrap();
    b.abort_multipart("uploads/gone", &id).await.unwrap();
    b.abort_multipart("uploads/gone", &id)
        .await
        .expect("abort is idempotent");
    assert_eq!(b.head("uploads/gone").await.unwrap(), None);

    // Completing with a part that was never uploaded fails and creates nothing.
    let id = b.create_multipart("uploads/bad").await.unwrap();
    let e0 = b
        .put_part(
            "uploads/bad",
            &id,
            0,
            Bytes::from(pattern(MIN_PART_SIZE, 4)),
        )
        .await
        .unwrap();
    let r = b
        .complete_multipart("uploads/bad", &id, vec![e0, "\"not-an-etag\"".into()])
        .await;
    assert!(r.is_err(), "completion with a bogus part must fail");
    assert_eq!(b.head("uploads/bad").await.unwrap(), None);
    b.abort_multipart("uploads/bad", &id).await.unwrap();
}

#[tokio::test]
async fn listing_streams_every_object_under_a_prefix() {
    let Some(cfg) = config("list") else { return };
    let b = S3Backend::new(&cfg).unwrap();
    // More than one page of S3's ListObjectsV2 (1000 keys).
    let n = 1010;
    futures_util::stream::iter(0..n)
        .map(|i| {
            let b = b.clone();
            async move {
                b.put(
                    &format!("blobs/sha256/{:02x}/{i:06}", i % 256),
                    Bytes::from(vec![1u8; i % 7]),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    b.put("uploads/other", Bytes::from_static(b"u"))
        .await
        .unwrap();
    let mut listed: Vec<_> = b.list("blobs/").try_collect().await.unwrap();
    listed.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(listed.len(), n);
    assert!(listed.iter().all(|o| o.key.starts_with("blobs/sha256/")));
    let i = listed
        .iter()
        .find(|o| o.key == "blobs/sha256/05/000005")
        .unwrap();
    assert_eq!(i.size, 5);
    let up: Vec<_> = b.list("uploads").try_collect().await.unwrap();
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].key, "uploads/other");
}

//! The blob pipeline (`docs/architecture.md`, "Blobs: a dumb backend under one
//! pipeline") over object backends: uploads staged as parts and a tail, continued
//! from their recorded state by another instance, sealed, verified, published
//! without a rename and read back by range; and a data directory written in the
//! layout from before object keys were recorded stays readable.

use std::sync::Arc;

use berth_oci::{Algorithm, Digest, Hasher};
use berth_store::blob::{BlobMode, PART_SIZE};
use berth_store::crypt::{DataKey, SEGMENT};
use berth_store::object::{FsBackend, ObjectBackend};
use berth_store::s3::{S3Backend, S3Config};
use berth_store::{BlobRef, BlobStore, Chunk, Meta, NewRepository, Staging, StoreError};
use bytes::Bytes;
use futures_util::TryStreamExt;
use tokio::sync::mpsc;

struct Subject {
    backend: Arc<dyn ObjectBackend>,
    again: Box<dyn Fn() -> Arc<dyn ObjectBackend> + Send + Sync>,
    dir: Option<std::path::PathBuf>,
}

impl Drop for Subject {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn fs_subject(name: &str) -> Option<Subject> {
    let dir = std::env::temp_dir().join(format!("berth-pipe-{name}-{}", uuid::Uuid::new_v4()));
    let backend: Arc<dyn ObjectBackend> = Arc::new(FsBackend::open(&dir).unwrap());
    let d2 = dir.clone();
    Some(Subject {
        backend,
        again: Box::new(move || Arc::new(FsBackend::open(&d2).unwrap())),
        dir: Some(dir),
    })
}

fn s3_subject(name: &str) -> Option<Subject> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(endpoint) = var("BERTH_TEST_S3_ENDPOINT") else {
        let hint = "start one with: eval \"$(scripts/garage-start)\"";
        if std::env::var("CI").is_ok_and(|v| !v.is_empty()) {
            panic!("BERTH_TEST_S3_ENDPOINT is not set on CI: {hint}");
        }
        if std::env::var("BERTH_TEST_SKIP_S3").as_deref() == Ok("1") {
            eprintln!("skipping the S3 pipeline test: BERTH_TEST_SKIP_S3=1");
            return None;
        }
        panic!("BERTH_TEST_S3_ENDPOINT is not set: {hint} (or BERTH_TEST_SKIP_S3=1 to skip)");
    };
    let cfg = S3Config {
        bucket: var("BERTH_TEST_S3_BUCKET").unwrap_or_else(|| "berth-test".into()),
        prefix: format!("p-{}/{name}", uuid::Uuid::new_v4()),
        endpoint: Some(endpoint),
        region: var("BERTH_TEST_S3_REGION"),
        access_key_id: var("BERTH_TEST_S3_ACCESS_KEY_ID"),
        secret_access_key: var("BERTH_TEST_S3_SECRET_ACCESS_KEY"),
        path_style: None,
    };
    let backend: Arc<dyn ObjectBackend> = Arc::new(S3Backend::new(&cfg).unwrap());
    Some(Subject {
        backend,
        again: Box::new(move || Arc::new(S3Backend::new(&cfg).unwrap())),
        dir: None,
    })
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u8)
                .wrapping_mul(13)
                .wrapping_add(seed ^ (i >> 12) as u8)
        })
        .collect()
}

fn digest_of(data: &[u8]) -> Digest {
    let mut h = Hasher::new(Algorithm::Sha256);
    h.update(data);
    h.finish()
}

/// Appends `data` in `chunk`-sized pieces; `fail` ends the body with an error.
#[allow(clippy::too_many_arguments)]
async fn append(
    store: &BlobStore,
    st: &Staging,
    offset: u64,
    hasher: Option<Hasher>,
    data: &[u8],
    chunk: usize,
    fail: bool,
    key: &DataKey,
) -> Result<berth_store::Appended, StoreError> {
    let (tx, rx) = mpsc::channel::<Chunk>(1);
    let pieces: Vec<Bytes> = data.chunks(chunk).map(Bytes::copy_from_slice).collect();
    let feeder = async move {
        for p in pieces {
            if tx.send(Ok(p)).await.is_err() {
                return;
            }
        }
        if fail {
            let _ = tx.send(Err(())).await;
        }
    };
    let (r, ()) = tokio::join!(
        store.upload_append(st, offset, hasher, rx, key.clone()),
        feeder
    );
    r
}

async fn read(store: &BlobStore, blob: &BlobRef, offset: u64, len: u64) -> Vec<u8> {
    let s = store.get(blob, offset, len).await.expect("get");
    let parts: Vec<Bytes> = s.try_collect().await.expect("read");
    parts.concat()
}

async fn keys(b: &dyn ObjectBackend, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = b
        .list(prefix)
        .map_ok(|o| o.key)
        .try_collect()
        .await
        .unwrap();
    v.sort();
    v
}

/// A chunked upload larger than two parts, its staging state recorded (JSON)
/// after every append and continued by a fresh pipeline over a second backend
/// instance, as another node would; then verified without a hasher in memory
/// (from the running hash recorded in the state), published without moving
/// anything, and read by ranges.
async fn parts_staging_round_trip(s: Subject) {
    let key = DataKey::generate().unwrap();
    let n = 2 * PART_SIZE + 3 * SEGMENT + 4321;
    let data = pattern(n, 5);
    let digest = digest_of(&data);
    let first = BlobStore::over(s.backend.clone(), BlobMode::Encrypted);
    let mut st = first.upload_create("u1").await.unwrap();
    let mut recorded = st.to_json();
    let mut at = 0usize;
    // Chunk sizes that cross segment and part boundaries unevenly.
    for (i, len) in [1usize, 70_000, SEGMENT, PART_SIZE + 17, 5, PART_SIZE]
        .into_iter()
        .enumerate()
    {
        let store = if i % 2 == 0 {
            BlobStore::over(s.backend.clone(), BlobMode::Encrypted)
        } else {
            BlobStore::over((s.again)(), BlobMode::Encrypted)
        };
        let st_now = Staging::from_row("u1", None, Some(&recorded)).unwrap();
        assert_eq!(st_now, st);
        let end = (at + len).min(n);
        let a = append(
            &store,
            &st_now,
            at as u64,
            None,
            &data[at..end],
            100_003,
            false,
            &key,
        )
        .await
        .unwrap();
        assert_eq!(a.size, end as u64);
        let new = a.staging.expect("a parts append returns its new state");
        store.upload_advanced(&st_now, &new).await;
        recorded = new.to_json();
        st = new;
        at = end;
    }
    // The rest, then a failed append (its parts and tail are not recorded)...
    let store = BlobStore::over((s.again)(), BlobMode::Encrypted);
    let bad = append(
        &store,
        &st,
        at as u64,
        None,
        &pattern(PART_SIZE + 999, 9),
        65_536,
        true,
        &key,
    )
    .await;
    assert!(matches!(bad, Err(StoreError::Aborted)), "{:?}", bad.err());
    // ...so the recorded state still continues.
    let a = append(
        &store,
        &st,
        at as u64,
        None,
        &data[at..],
        77_777,
        false,
        &key,
    )
    .await
    .unwrap();
    assert_eq!(a.size, n as u64);
    let new = a.staging.unwrap();
    store.upload_advanced(&st, &new).await;
    st = new;
    let Staging::Parts { multipart, .. } = &st else {
        panic!("staged as parts: {st:?}")
    };
    assert!(
        multipart.as_ref().is_some_and(|m| m.parts.len() >= 2),
        "the upload went out in parts"
    );
    assert_eq!(
        keys(&*s.backend, "blobs/").await,
        Vec::<String>::new(),
        "nothing visible yet"
    );

    // Verified by reading the completed object back (no running hash here).
    let size = store
        .upload_finish(&st, &digest, None, n as u64, key.clone())
        .await
        .unwrap();
    assert_eq!(size, n as u64);
    let object_key = store.upload_publish(&st, &digest).await.unwrap();
    assert_eq!(object_key, st.object_key());
    store.upload_done(&st).await.unwrap();
    assert_eq!(
        keys(&*s.backend, "uploads/").await,
        Vec::<String>::new(),
        "tails removed"
    );
    assert_eq!(keys(&*s.backend, "blobs/").await, vec![object_key.clone()]);

    let blob = BlobRef {
        object_key: object_key.clone(),
        size: n as u64,
        key: key.clone(),
    };
    assert!(read(&store, &blob, 0, n as u64).await == data, "whole read");
    let p = PART_SIZE as u64;
    for (o, l) in [
        (0u64, 1u64),
        (SEGMENT as u64 - 1, 2),
        (p - 10, 20),
        (p - 100, p + 200),
        (n as u64 - 1, 1),
        (n as u64 - SEGMENT as u64 - 5, SEGMENT as u64 + 5),
    ] {
        assert!(
            read(&store, &blob, o, l).await == data[o as usize..(o + l) as usize],
            "range {o}+{l}"
        );
    }
    // No plaintext at rest.
    let raw: Vec<Bytes> = s
        .backend
        .get(&object_key, 0..u64::MAX)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let raw = raw.concat();
    let needle = &data[1000..1064];
    assert!(!raw.windows(needle.len()).any(|w| w == needle));
    // A wrong key never yields bytes.
    let wrong = BlobRef {
        key: DataKey::generate().unwrap(),
        ..blob.clone()
    };
    let r: Result<Vec<Bytes>, _> = store.get(&wrong, 0, 10).await.unwrap().try_collect().await;
    assert!(r.is_err());
}

/// Small and empty uploads (no part at all: one put), a running hash, a digest
/// mismatch (the completed object is deleted by the abort), and the benchmark
/// plaintext mode.
async fn small_empty_mismatch_and_plaintext(s: Subject) {
    for mode in [BlobMode::Encrypted, BlobMode::PlaintextForBenchmarks] {
        let store = BlobStore::over(s.backend.clone(), mode);
        for (i, n) in [0usize, 1, SEGMENT, SEGMENT + 1, 300_000]
            .into_iter()
            .enumerate()
        {
            let key = DataKey::generate().unwrap();
            let data = pattern(n, i as u8);
            let digest = digest_of(&data);
            let id = format!("s{i}-{mode:?}");
            let st = store.upload_create(&id).await.unwrap();
            let a = append(
                &store,
                &st,
                0,
                Some(Hasher::new(Algorithm::Sha256)),
                &data,
                40_000,
                false,
                &key,
            )
            .await
            .unwrap();
            let st2 = a.staging.unwrap();
            store.upload_advanced(&st, &st2).await;
            store
                .upload_finish(&st2, &digest, a.hasher, n as u64, key.clone())
                .await
                .unwrap();
            let object_key = store.upload_publish(&st2, &digest).await.unwrap();
            store.upload_done(&st2).await.unwrap();
            let blob = BlobRef {
                object_key,
                size: n as u64,
                key,
            };
            assert!(
                read(&store, &blob, 0, n as u64).await == data,
                "{n} bytes, {mode:?}"
            );
        }
        // A mismatch, found by reading back: the object goes with the upload.
        let key = DataKey::generate().unwrap();
        let st = store.upload_create(&format!("bad-{mode:?}")).await.unwrap();
        let a = append(&store, &st, 0, None, b"some bytes", 3, false, &key)
            .await
            .unwrap();
        let st2 = a.staging.unwrap();
        let r = store
            .upload_finish(&st2, &digest_of(b"other bytes"), None, 10, key)
            .await;
        assert!(matches!(r, Err(StoreError::DigestMismatch)));
        store.upload_abort(&st2).await.unwrap();
        store.upload_abort(&st2).await.expect("abort is idempotent");
        assert_eq!(s.backend.stat(st2.object_key()).await.unwrap(), None);
    }
    assert_eq!(keys(&*s.backend, "uploads/").await, Vec::<String>::new());
}

/// Pieces: appends of 1 MiB (and odd sizes) each stage one piece, continued by
/// another instance without this one's copies; the staged bytes never exceed a
/// part and a segment, and each piece once made part of a part is gone. A state
/// recorded before pieces (one whole `tail` object) still continues. The last
/// bytes and the commit in one call (`upload_append_finish`) stage nothing, on
/// a fresh upload and after earlier appends; a wrong digest there leaves nothing.
async fn pieces_and_one_request_finish(s: Subject) {
    let key = DataKey::generate().unwrap();
    let n = 11 * 1024 * 1024 + 3 * SEGMENT + 77;
    let data = pattern(n, 21);
    let digest = digest_of(&data);
    let first = BlobStore::over(s.backend.clone(), BlobMode::Encrypted);
    let st0 = first.upload_create("pc").await.unwrap();
    // A first append, then its state rewritten the way a node before pieces
    // recorded it: one tail object holding all the staged bytes.
    let a = append(&first, &st0, 0, None, &data[..300_001], 65_536, false, &key)
        .await
        .unwrap();
    let Some(Staging::Parts {
        key: k,
        upload,
        multipart,
        parts_len,
        pieces,
        ..
    }) = a.staging
    else {
        panic!("parts staging")
    };
    assert_eq!(pieces.len(), 1, "one append, one piece");
    let legacy = format!(
        r#"{{"kind":"parts","key":"{k}","upload":"{upload}","multipart":null,"parts_len":{parts_len},"tail":"{}"}}"#,
        pieces[0].key
    );
    assert!(multipart.is_none());
    let mut st = Staging::from_row("pc", None, Some(&legacy)).unwrap();
    let mut at = 300_001usize;
    let mut i = 0;
    while at < n - 2 * 1024 * 1024 {
        let store = if i % 2 == 0 {
            BlobStore::over((s.again)(), BlobMode::Encrypted)
        } else {
            BlobStore::over(s.backend.clone(), BlobMode::Encrypted)
        };
        let len = if i == 3 { 4099 } else { 1024 * 1024 };
        let end = at + len;
        let a = append(
            &store,
            &st,
            at as u64,
            None,
            &data[at..end],
            100_000,
            false,
            &key,
        )
        .await
        .unwrap();
        let new = a.staging.unwrap();
        store.upload_advanced(&st, &new).await;
        let Staging::Parts { pieces, .. } = &new else {
            panic!()
        };
        let staged: u64 = pieces.iter().map(|p| p.len).sum();
        assert!(
            staged < (PART_SIZE + 2 * (SEGMENT + 28)) as u64,
            "{staged} bytes staged"
        );
        let mut live: Vec<String> = pieces.iter().map(|p| p.key.clone()).collect();
        live.sort();
        assert_eq!(
            keys(&*s.backend, "uploads/pc/").await,
            live,
            "only recorded pieces"
        );
        st = Staging::from_row("pc", None, Some(&new.to_json())).unwrap();
        at = end;
        i += 1;
    }
    let Staging::Parts { multipart, .. } = &st else {
        panic!()
    };
    assert!(multipart.as_ref().is_some_and(|m| !m.parts.is_empty()));
    // The rest and the commit in one call, on yet another instance.
    let store = BlobStore::over((s.again)(), BlobMode::Encrypted);
    let size = finish_in_one(&store, &st, at as u64, &data[at..], &digest, &key)
        .await
        .unwrap();
    assert_eq!(size, n as u64);
    store.upload_done(&st).await.unwrap();
    assert_eq!(keys(&*s.backend, "uploads/pc/").await, Vec::<String>::new());
    let blob = BlobRef {
        object_key: st.object_key().to_string(),
        size: n as u64,
        key: key.clone(),
    };
    assert!(read(&store, &blob, 0, n as u64).await == data, "whole read");
    let o = 300_001u64 - 5;
    assert!(
        read(&store, &blob, o, 2 * 1024 * 1024).await
            == data[o as usize..o as usize + 2 * 1024 * 1024]
    );

    // A fresh upload in one call: one object, nothing staged.
    for (i, m) in [
        0usize,
        1,
        SEGMENT,
        3 * 1024 * 1024,
        PART_SIZE + 3 * SEGMENT + 1,
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("one{i}");
        let data = pattern(m, 30 + i as u8);
        let digest = digest_of(&data);
        let st = store.upload_create(&id).await.unwrap();
        let size = finish_in_one(&store, &st, 0, &data, &digest, &key)
            .await
            .unwrap();
        assert_eq!(size, m as u64);
        assert_eq!(
            keys(&*s.backend, &format!("uploads/{id}/")).await,
            Vec::<String>::new()
        );
        let blob = BlobRef {
            object_key: st.object_key().to_string(),
            size: m as u64,
            key: key.clone(),
        };
        assert!(read(&store, &blob, 0, m as u64).await == data, "{m} bytes");
    }
    // A wrong digest: nothing is left once the upload is discarded.
    let st = store.upload_create("onebad").await.unwrap();
    let big = pattern(PART_SIZE + 5 * SEGMENT, 3);
    let r = finish_in_one(&store, &st, 0, &big, &digest_of(b"other"), &key).await;
    assert!(
        matches!(r, Err(StoreError::DigestMismatch)),
        "{:?}",
        r.err()
    );
    store.upload_abort(&st).await.unwrap();
    assert_eq!(s.backend.stat(st.object_key()).await.unwrap(), None);
    assert_eq!(
        keys(&*s.backend, "uploads/onebad/").await,
        Vec::<String>::new()
    );
}

/// `upload_append_finish` of `data` in 64 KiB chunks, with a running hash when
/// the upload is fresh.
async fn finish_in_one(
    store: &BlobStore,
    st: &Staging,
    offset: u64,
    data: &[u8],
    digest: &Digest,
    key: &DataKey,
) -> Result<u64, StoreError> {
    let (tx, rx) = mpsc::channel::<Chunk>(1);
    let chunks: Vec<Bytes> = data.chunks(65_536).map(Bytes::copy_from_slice).collect();
    let feeder = async move {
        for c in chunks {
            if tx.send(Ok(c)).await.is_err() {
                return;
            }
        }
    };
    let hasher = (offset == 0).then(|| Hasher::new(Algorithm::Sha256));
    let (r, ()) = tokio::join!(
        store.upload_append_finish(st, offset, hasher, rx, key.clone(), digest),
        feeder
    );
    r
}

/// An upload abandoned with parts in flight leaves nothing behind once aborted.
async fn abort_reclaims_parts(s: Subject) {
    let store = BlobStore::over(s.backend.clone(), BlobMode::Encrypted);
    let key = DataKey::generate().unwrap();
    let st = store.upload_create("gone").await.unwrap();
    let a = append(
        &store,
        &st,
        0,
        None,
        &pattern(PART_SIZE + 8 * SEGMENT, 1),
        1 << 20,
        false,
        &key,
    )
    .await
    .unwrap();
    let st2 = a.staging.unwrap();
    assert!(matches!(
        &st2,
        Staging::Parts {
            multipart: Some(_),
            ..
        }
    ));
    store.upload_abort(&st2).await.unwrap();
    assert_eq!(keys(&*s.backend, "uploads/").await, Vec::<String>::new());
    assert_eq!(keys(&*s.backend, "blobs/").await, Vec::<String>::new());
}

/// Reads of at least two windows (`berth_store::ranged`) go out as concurrent
/// ranged reads of 8 MiB windows on the sealed segment layout, handed on in
/// order: the whole blob, ranges that start and end inside windows or on their
/// boundaries (plaintext offsets), and, below two windows, one plain read. A
/// missing object is `NotFound` before any byte.
async fn large_reads_in_windows(s: Subject) {
    use berth_store::ranged::{PARALLEL_FROM, WINDOW_SEGMENTS};
    let key = DataKey::generate().unwrap();
    let n = 3 * PART_SIZE + 5 * SEGMENT + 999;
    let data = pattern(n, 11);
    let digest = digest_of(&data);
    let store = BlobStore::over(s.backend.clone(), BlobMode::Encrypted);
    let st = store.upload_create("w1").await.unwrap();
    let a = append(&store, &st, 0, None, &data, 300_001, false, &key)
        .await
        .unwrap();
    let st = a.staging.unwrap();
    store
        .upload_finish(&st, &digest, None, n as u64, key.clone())
        .await
        .unwrap();
    let blob = BlobRef {
        object_key: st.object_key().to_string(),
        size: n as u64,
        key: key.clone(),
    };
    let window = WINDOW_SEGMENTS as usize * SEGMENT;
    assert!(read(&store, &blob, 0, n as u64).await == data, "whole blob");
    for (a, b) in [
        (1, n - 1),
        (window - 1, 3 * window + 1),
        (window, 3 * window),
        (SEGMENT + 7, 2 * window + SEGMENT + 8),
        (n - 2 * window - 5, n),
        (window - 10, window + 10),
        (n - 1, n),
    ] {
        let got = read(&store, &blob, a as u64, (b - a) as u64).await;
        assert!(got == data[a..b], "range {a}..{b}");
    }
    assert!(
        PARALLEL_FROM > window as u64,
        "a small read is one plain read"
    );
    // Through a fresh pipeline over another backend instance, as another node.
    let other = BlobStore::over((s.again)(), BlobMode::Encrypted);
    assert!(read(&other, &blob, 0, n as u64).await == data);
    let missing = BlobRef {
        object_key: "blobs/objects/missing".into(),
        size: n as u64,
        key,
    };
    assert!(matches!(
        other.get(&missing, 0, n as u64).await.err(),
        Some(StoreError::NotFound)
    ));
    // A plaintext store (the benchmark mode) reads its windows the same way.
    let plain = BlobStore::over(s.backend.clone(), BlobMode::PlaintextForBenchmarks);
    let st = plain.upload_create("w2").await.unwrap();
    let k2 = DataKey::generate().unwrap();
    let a = append(&plain, &st, 0, None, &data, 300_001, false, &k2)
        .await
        .unwrap();
    let st = a.staging.unwrap();
    plain
        .upload_finish(&st, &digest, None, n as u64, k2.clone())
        .await
        .unwrap();
    let blob = BlobRef {
        object_key: st.object_key().to_string(),
        size: n as u64,
        key: k2,
    };
    assert!(read(&plain, &blob, 0, n as u64).await == data);
    let (a, b) = (window - 3, n - 4);
    assert!(read(&plain, &blob, a as u64, (b - a) as u64).await == data[a..b]);
}

macro_rules! pipeline {
    ($module:ident, $subject:path) => {
        mod $module {
            use super::*;
            pipeline!(@tests $subject; parts_staging_round_trip,
                small_empty_mismatch_and_plaintext, abort_reclaims_parts,
                pieces_and_one_request_finish, large_reads_in_windows);
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

pipeline!(fs, fs_subject);
pipeline!(s3, s3_subject);

/// A data directory written before object keys were recorded: blob files at
/// `blobs/<alg>/<2 hex>/<hex>` and blob rows without a key (before migration 7).
/// Opening it migrates the rows to name that layout, and the blobs read back.
#[tokio::test]
async fn a_data_directory_in_the_old_layout_stays_readable() {
    let mut urls = Vec::new();
    let dir = std::env::temp_dir().join(format!("berth-old-layout-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    urls.push(format!("sqlite://{}/meta.db?mode=rwc", dir.display()));
    if let Ok(url) = std::env::var("BERTH_TEST_POSTGRES_URL") {
        // A plain connection: the admin database itself is never migrated.
        sqlx::any::install_default_drivers();
        let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        let db = format!("berth_old_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let base = url.rsplit_once('/').map(|(b, _)| b).unwrap();
        urls.push(format!("{base}/{db}"));
    }
    for (i, url) in urls.iter().enumerate() {
        let data_dir = dir.join(format!("data-{i}"));
        // The blob, written the way the filesystem store always wrote them.
        let store = BlobStore::open(&data_dir).unwrap();
        let key = DataKey::generate().unwrap();
        let data = pattern(3 * SEGMENT + 99, 3);
        let digest = digest_of(&data);
        let st = store.upload_create("old").await.unwrap();
        assert!(
            matches!(st, Staging::File { .. }),
            "the filesystem fast path"
        );
        let a = append(&store, &st, 0, None, &data, 50_000, false, &key)
            .await
            .unwrap();
        store
            .upload_finish(&st, &digest, None, a.size, key.clone())
            .await
            .unwrap();
        let published = store.upload_publish(&st, &digest).await.unwrap();
        let hex = digest.hex();
        let path = data_dir.join("blobs/sha256").join(&hex[..2]).join(hex);
        assert!(path.is_file(), "today's layout");
        assert_eq!(published, format!("blobs/sha256/{}/{hex}", &hex[..2]));

        // A metadata store from before migration 7 holding the blob's row and link.
        let m = Meta::connect(url).await.unwrap();
        let r = m
            .create_repository(&NewRepository {
                account_id: "123456789012".into(),
                name: "old/app".into(),
                created_at: 1,
                tag_mutability: "MUTABLE".into(),
                mutability_exclusions: "[]".into(),
                scan_on_push: false,
                encryption_type: "AES256".into(),
                kms_key: None,
                tags: vec![],
            })
            .await
            .unwrap()
            .unwrap();
        for stmt in [
            "DROP INDEX blobs_object_key",
            "ALTER TABLE blobs DROP COLUMN object_key",
            "ALTER TABLE uploads DROP COLUMN object_key",
            "ALTER TABLE uploads DROP COLUMN staging",
            "DELETE FROM schema_migrations WHERE version = 7",
        ] {
            sqlx::query(stmt).execute(m.pool()).await.unwrap();
        }
        sqlx::query(
            "INSERT INTO blobs (digest, size, created_at, data_key) VALUES ($1, $2, 1, $3)",
        )
        .bind(digest.as_str())
        .bind(data.len() as i64)
        .bind(b"wrapped".to_vec())
        .execute(m.pool())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO repo_blobs (repo_id, digest, created_at, data_key) VALUES ($1, $2, 1, $3)",
        )
        .bind(r.repo_id)
        .bind(digest.as_str())
        .bind(b"link".to_vec())
        .execute(m.pool())
        .await
        .unwrap();
        m.pool().close().await;

        // Opened again: migrated, and the row names the old file.
        let m = Meta::connect(url).await.unwrap();
        let (size, link_key, object_key) = m
            .linked_blob_object(r.repo_id, digest.as_str())
            .await
            .unwrap()
            .expect("linked");
        assert_eq!(size as usize, data.len());
        assert_eq!(link_key.as_deref(), Some(&b"link"[..]));
        assert_eq!(object_key, published);
        let store = BlobStore::open(&data_dir).unwrap();
        let blob = BlobRef {
            object_key,
            size: size as u64,
            key,
        };
        assert!(read(&store, &blob, 0, data.len() as u64).await == data);
        assert!(read(&store, &blob, 70_000, 100).await == data[70_000..70_100]);
        // The full sweep finds it named by its row.
        assert!(m.object_key_in_use(&blob.object_key).await.unwrap());
        assert!(!m.object_key_in_use("blobs/sha256/00/none").await.unwrap());
        m.pool().close().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! The blob store: one backend-agnostic pipeline over a dumb [`ObjectBackend`]
//! (`docs/architecture.md`, "Blobs: a dumb backend under one pipeline").
//!
//! The pipeline owns sealing (AES-256-GCM segments, `crate::crypt`), hashing,
//! the staging of uploads and their publishing; the backend only stores objects.
//! Whether a blob exists, and who may read it, is the metadata store's business:
//! a blob row names its object's key, so reads go straight to that object and no
//! backend ever renames one.
//!
//! Staging ([`Staging`], kept in the upload row):
//! - **Parts** (any backend): the sealed stream's prefix goes into a multipart
//!   upload in parts of at least [`PART_SIZE`] (S3's 5 MiB minimum is below it)
//!   while OCI chunks may be any size; the rest — at least the last sealed
//!   segment, which is re-sealed as final at commit — waits in staged pieces,
//!   one small object per append ([`Piece`]). Upload id, part tokens and piece
//!   keys are plain data, so any process can continue the upload. A push in one
//!   request stages nothing ([`BlobStore::upload_append_finish`]). Completing the multipart upload makes the blob's
//!   object under a key of its own; the blob row names it, and the loser of a
//!   same-digest race deletes its own object.
//! - **File** (the filesystem fast path, a capability of a backend with
//!   [`ObjectBackend::local_root`]): the upload is a file written in place, its
//!   last segment re-sealed in place at commit, and it is published under the
//!   digest-derived key `blobs/<alg>/<2 hex>/<hex>` (today's layout, which the
//!   blob row then names). The benchmarks' tuned path (`docs/benchmarks.md`).
//!
//! Durability: a blob's object is complete and durable (fsynced, or a completed
//! multipart upload) before the metadata commit acknowledges it. A crash at any
//! instant leaves at most an object without a row or a staged upload, never a row
//! naming a half-written object.

use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use berth_oci::{Digest, Hasher};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::crypt::{self, DataKey, SegmentWriter};
use crate::object::{FsBackend, Multipart, ObjectBackend, ObjectInfo};
use crate::ranged;
use crate::StoreError;

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// One chunk of an upload body as it arrives; `Err` means the client's body failed
/// and everything this append wrote must be discarded.
pub type Chunk = Result<Bytes, ()>;

/// Where an append ended.
pub struct Appended {
    pub size: u64,
    /// The running sha256 state over the whole upload, when the caller gave one.
    pub hasher: Option<Hasher>,
    /// The upload's new staging state, when the append changed it (the caller
    /// records it with the new size, then calls [`BlobStore::upload_advanced`]).
    pub staging: Option<Staging>,
}

/// Bytes of finished uploads read back and hashed because no running hash
/// covered them (a row written before the hash was recorded in it).
static REHASHED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes this process read back and hashed to verify finished uploads (no
/// running hash covered them): `berth_upload_rehashed_bytes_total`.
pub fn upload_rehashed_bytes() -> u64 {
    REHASHED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Bytes a staged upload hands to its multipart upload per part (at least the
/// backend's minimum; S3's is 5 MiB). Bounds the memory an append holds.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Where a stored blob's ciphertext is and how to read it.
#[derive(Debug, Clone)]
pub struct BlobRef {
    pub object_key: String,
    /// Plaintext size.
    pub size: u64,
    pub key: DataKey,
}

/// How an upload is staged (JSON in the upload row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Staging {
    /// The filesystem fast path: a file at `key` (under the backend's local root)
    /// written in place.
    File {
        key: String,
        /// The running SHA-256 of the plaintext so far, as for `Parts`: written
        /// with each append, so that the upload continues or completes after a
        /// restart, or on another node sharing the file store, without reading
        /// its bytes back. Absent in rows written before it: the commit then
        /// reads the file back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hash: Option<String>,
    },
    /// Any backend: the sealed stream's first `parts_len` bytes in `multipart`
    /// (started with the first part), the rest staged in `pieces` (and, in a
    /// state recorded before pieces, in the whole object `tail`, which comes
    /// first); the blob will be the object `key`.
    Parts {
        key: String,
        upload: String,
        multipart: Option<Multipart>,
        parts_len: u64,
        tail: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pieces: Vec<Piece>,
        /// The running SHA-256 of the plaintext so far (`Hasher::export_state`),
        /// written with each append, so that any node continues or completes
        /// the upload without reading its bytes back. Absent in rows written
        /// before it (or by an append that had no hash): the commit then reads
        /// the completed object back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hash: Option<String>,
    },
}

/// A staged piece of a parts-staged upload: the first `len` bytes of the
/// object `key` (`uploads/<id>/tail-…`). Each append writes its sealed bytes as
/// one new piece, starting with the open (partial) last segment of the
/// previous piece re-sealed, which that piece's `len` then leaves out; pieces
/// are concatenated into a part once a part's worth is staged, and at commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    pub key: String,
    pub len: u64,
}

impl Staging {
    /// The keys of the staged objects (pieces, and a tail recorded before them).
    fn staged_keys(&self) -> Vec<&str> {
        match self {
            Staging::File { .. } => Vec::new(),
            Staging::Parts { tail, pieces, .. } => tail
                .iter()
                .map(String::as_str)
                .chain(pieces.iter().map(|p| p.key.as_str()))
                .collect(),
        }
    }
}

impl Staging {
    /// The staging of an upload row: its recorded state, else (an upload staged
    /// before the state was recorded) its file `object_key` or `uploads/<id>`.
    pub fn from_row(
        upload_id: &str,
        object_key: Option<&str>,
        staging: Option<&str>,
    ) -> Result<Staging, StoreError> {
        match staging {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| StoreError::Tampered(format!("upload staging state: {e}"))),
            None => Ok(Staging::File {
                hash: None,
                key: object_key
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("uploads/{upload_id}")),
            }),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!())
    }

    /// The key of the staged object (the blob's, for `Parts`).
    pub fn object_key(&self) -> &str {
        match self {
            Staging::File { key, .. } | Staging::Parts { key, .. } => key,
        }
    }
}

/// A blob moved out of reach for the collector (see [`BlobStore::retire`]).
#[derive(Debug)]
pub enum Retired {
    /// Nothing was there.
    Absent,
    /// Moved aside into the trash (a local backend, whose digest-derived keys a
    /// later publish of the same digest reuses): purge or restore.
    Trashed { token: String, key: String },
    /// A key no publish reuses: deleted once the row's deletion committed.
    Deferred { key: String },
}

/// How a [`BlobStore`] keeps blob bytes at rest. Fixed per data directory (a marker
/// file, [`MODE_MARKER`], records it on first start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobMode {
    /// Sealed with each blob's data key (the default; the only mode for real use).
    Encrypted,
    /// BENCHMARK ONLY: blob bytes stored as plaintext, so the benchmark harness can
    /// measure what encryption costs against the same build (`docs/benchmarks.md`,
    /// "Encryption on/off"). Data keys are
    /// still generated and wrapped; only the blob files are left unsealed. Enabled
    /// solely by [`PLAINTEXT_BLOBS_ENV`]`=1`.
    PlaintextForBenchmarks,
}

/// The environment variable that switches a server to [`BlobMode::PlaintextForBenchmarks`].
pub const PLAINTEXT_BLOBS_ENV: &str = "BERTH_BENCH_PLAINTEXT_BLOBS";

/// The marker file in the data directory that fixes its [`BlobMode`].
pub const MODE_MARKER: &str = "blob-mode";

impl BlobMode {
    fn marker(self) -> &'static str {
        match self {
            BlobMode::Encrypted => "encrypted",
            BlobMode::PlaintextForBenchmarks => "plaintext-benchmark-only",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            BlobMode::Encrypted => "encrypted blobs",
            BlobMode::PlaintextForBenchmarks => "PLAINTEXT blobs (benchmark only)",
        }
    }
}

/// The blob pipeline over an [`ObjectBackend`]; what the registry core uses.
pub struct BlobStore {
    backend: Arc<dyn ObjectBackend>,
    mode: BlobMode,
    /// The filesystem fast path's root (uploads staged in files written in
    /// place), when the backend has one and the fast path is on.
    local: Option<PathBuf>,
    /// Tails this process wrote lately (`crate::tail_cache`).
    tails: crate::tail_cache::TailCache,
}

impl BlobStore {
    /// The embedded default: encrypted blobs on the local filesystem under `root`
    /// (the data directory), with the filesystem fast path.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        Self::open_with_mode(root, BlobMode::Encrypted)
    }

    /// [`Self::open`] in `mode`, which must match the mode the data directory was
    /// first started with.
    pub fn open_with_mode(root: &Path, mode: BlobMode) -> Result<Self, StoreError> {
        fs::create_dir_all(root.join("blobs"))?;
        fs::create_dir_all(root.join("uploads"))?;
        check_mode(root, mode)?;
        if mode == BlobMode::PlaintextForBenchmarks {
            tracing::warn!(
                data_dir = %root.display(),
                "!!! {PLAINTEXT_BLOBS_ENV}=1: BLOBS ARE STORED UNENCRYPTED. This mode exists \
                 only to benchmark the cost of encryption; never use it for real data. !!!"
            );
        }
        let backend = FsBackend::open(root)?;
        Ok(BlobStore {
            backend: Arc::new(backend),
            mode,
            local: Some(root.to_path_buf()),
            tails: Default::default(),
        })
    }

    /// The pipeline over any backend, staging uploads as parts (never through the
    /// filesystem fast path, even on a local backend).
    pub fn over(backend: Arc<dyn ObjectBackend>, mode: BlobMode) -> Self {
        BlobStore {
            backend,
            mode,
            local: None,
            tails: Default::default(),
        }
    }

    pub fn mode(&self) -> BlobMode {
        self.mode
    }

    pub fn backend(&self) -> &Arc<dyn ObjectBackend> {
        &self.backend
    }

    fn local_path(&self, key: &str) -> Result<PathBuf, StoreError> {
        crate::object::check_key(key)?;
        match &self.local {
            Some(root) => Ok(root.join(key)),
            None => Err(StoreError::Config(
                "a file-staged upload on a store without the filesystem fast path".into(),
            )),
        }
    }

    fn part_size(&self) -> usize {
        self.backend.min_part_size().max(PART_SIZE)
    }

    /// Starts staging an upload.
    pub async fn upload_create(&self, id: &str) -> Result<Staging, StoreError> {
        if self.local.is_some() {
            let key = format!("uploads/{id}");
            let path = self.local_path(&key)?;
            blocking(move || {
                File::create(&path)?;
                Ok(())
            })
            .await?;
            return Ok(Staging::File {
                key,
                hash: Hasher::new(berth_oci::Algorithm::Sha256).export_state(),
            });
        }
        Ok(Staging::Parts {
            key: format!("blobs/objects/{id}"),
            upload: id.to_string(),
            multipart: None,
            parts_len: 0,
            tail: None,
            pieces: Vec::new(),
            hash: Hasher::new(berth_oci::Algorithm::Sha256).export_state(),
        })
    }

    /// Appends chunks from `rx` to the upload, which must currently hold exactly
    /// `offset` bytes (the metadata's size is the truth: a half-finished earlier
    /// append is cut back). Hashing and file writes happen off the async threads.
    pub async fn upload_append(
        &self,
        staging: &Staging,
        offset: u64,
        hasher: Option<Hasher>,
        rx: mpsc::Receiver<Chunk>,
        key: DataKey,
    ) -> Result<Appended, StoreError> {
        match staging {
            Staging::File { key: k, .. } => {
                let path = self.local_path(k)?;
                let hasher = hasher.or_else(|| recorded_hash(staging, offset));
                let mut a = match self.mode {
                    BlobMode::Encrypted => append_sealed(path, offset, hasher, rx, key).await?,
                    BlobMode::PlaintextForBenchmarks => {
                        blocking(move || {
                            let f = open_staged(&path)?;
                            append_plain(PlainWriter::open(f, offset)?, hasher, rx)
                        })
                        .await?
                    }
                };
                // The new running hash goes into the row with the new size.
                a.staging = Some(Staging::File {
                    key: k.clone(),
                    hash: a.hasher.as_ref().and_then(Hasher::export_state),
                });
                Ok(a)
            }
            Staging::Parts { .. } => Ok(self
                .append_parts(staging, offset, hasher, rx, key, true)
                .await?
                .0),
        }
    }

    /// After the caller recorded `current` (an append's new staging) in place of
    /// `superseded`, or gave up recording it: deletes the staged objects only the
    /// other one names (pieces made part of a part, or written by a failed
    /// append), concurrently. Best effort: leftovers go with the upload.
    pub async fn upload_advanced(&self, superseded: &Staging, current: &Staging) {
        let keep = current.staged_keys();
        let gone: Vec<&str> = superseded
            .staged_keys()
            .into_iter()
            .filter(|k| !keep.contains(k))
            .collect();
        self.delete_staged_all(&gone).await;
    }

    /// Deletes staged objects, concurrently; failures are logged (the sweeps
    /// reclaim leftovers).
    async fn delete_staged_all(&self, keys: &[&str]) {
        let deletes = keys.iter().map(|k| async move {
            self.tails.forget(k);
            if let Err(e) = self.backend.delete(k).await {
                tracing::warn!(error = %e, key = %k, "could not delete a staged tail");
            }
        });
        futures_util::future::join_all(deletes).await;
    }

    /// Verifies the staged upload against `digest` and makes its bytes the blob's
    /// durable object: the last segment is marked final and the file fsynced (fast
    /// path), or the multipart upload completed. Uses `hasher` when it covers the
    /// whole upload, else reads the upload back. Returns the size; on
    /// `DigestMismatch` the caller discards the upload. Needs no lock (the staged
    /// object is the upload's own), so the caller does it before taking the
    /// digest's lock. Afterwards the upload takes no more data.
    pub async fn upload_finish(
        &self,
        staging: &Staging,
        digest: &Digest,
        hasher: Option<Hasher>,
        size: u64,
        key: DataKey,
    ) -> Result<u64, StoreError> {
        match staging {
            Staging::File { key: k, .. } => {
                let hasher = hasher.or_else(|| recorded_hash(staging, size));
                self.finish_file(k, digest, hasher, false, size, key).await
            }
            Staging::Parts { .. } => {
                self.finish_parts(staging, digest, hasher, size, key, None, false)
                    .await
            }
        }
    }

    /// The fast path's [`Self::upload_finish`]: verifies the staged file against
    /// `digest` (by `hasher`, else by reading it back; not at all when the caller
    /// `verified` the bytes it fed), seals its last segment as final, fsyncs it.
    async fn finish_file(
        &self,
        k: &str,
        digest: &Digest,
        hasher: Option<Hasher>,
        verified: bool,
        size: u64,
        key: DataKey,
    ) -> Result<u64, StoreError> {
        let path = self.local_path(k)?;
        let digest = digest.clone();
        let mode = self.mode;
        blocking(move || {
            let mut f = open_staged(&path)?;
            let computed = match hasher {
                _ if verified => digest.clone(),
                Some(h) if h.algorithm() == digest.algorithm() => h.finish(),
                _ => {
                    REHASHED.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
                    let mut h = Hasher::new(digest.algorithm());
                    if size > 0 && mode == BlobMode::PlaintextForBenchmarks {
                        let mut buf = Vec::new();
                        read_plain(&mut f, 0, size, &mut buf, |b| {
                            h.update(b);
                            Ok(())
                        })?;
                    } else if size > 0 {
                        crypt::read_range(&mut f, &key, 0, size, false, |b| {
                            h.update(b);
                            Ok(())
                        })
                        .map_err(crypt_err)?;
                    }
                    h.finish()
                }
            };
            if computed != digest {
                return Err(StoreError::DigestMismatch);
            }
            if mode == BlobMode::Encrypted {
                crypt::seal_final(&mut f, &key, size).map_err(crypt_err)?;
            }
            f.sync_all()?;
            Ok(size)
        })
        .await
    }

    /// [`Self::upload_append_finish`] of a fresh upload (nothing staged before)
    /// whose bytes the caller hashes itself as it feeds them: the feed ends
    /// without an error only when what it sent is `digest`'s content (otherwise
    /// nothing is stored), so the store does not hash them a second time, on
    /// either staging.
    pub async fn upload_append_finish_verified(
        &self,
        staging: &Staging,
        rx: mpsc::Receiver<Chunk>,
        key: DataKey,
        digest: &Digest,
    ) -> Result<u64, StoreError> {
        match staging {
            Staging::File { key: k, .. } => {
                // No running hash (not even the one the row records).
                let unhashed = Staging::File {
                    key: k.clone(),
                    hash: None,
                };
                let a = self
                    .upload_append(&unhashed, 0, None, rx, key.clone())
                    .await?;
                self.finish_file(k, digest, None, true, a.size, key).await
            }
            Staging::Parts { .. } => {
                // No running hash: neither the one the row records (the empty
                // state of a fresh upload) nor a new one.
                let mut unhashed = staging.clone();
                if let Staging::Parts { hash, .. } = &mut unhashed {
                    *hash = None;
                }
                self.append_finish_parts(&unhashed, 0, None, rx, key, digest, true)
                    .await
            }
        }
    }

    /// The last append of an upload and its [`Self::upload_finish`] in one (a
    /// `PUT` carrying the body, a monolithic push): on parts staging, what the
    /// append leaves beyond whole parts is not staged as a tail object but goes
    /// straight into the blob's object, so a blob pushed in one request costs one
    /// `PUT` to the object store (`docs/benchmarks.md`, "S3 round trips per push
    /// and per pull"). Nothing of it is durable until the upload commits, which is
    /// all a `PUT` promises. Returns the blob's size; the upload row's recorded
    /// staging still names what it named (an earlier tail, for
    /// [`Self::upload_done`]). On an error the caller discards the upload, as
    /// after a failed [`Self::upload_finish`]; a multipart upload this call started
    /// is aborted here, since the row does not name it.
    pub async fn upload_append_finish(
        &self,
        staging: &Staging,
        offset: u64,
        hasher: Option<Hasher>,
        rx: mpsc::Receiver<Chunk>,
        key: DataKey,
        digest: &Digest,
    ) -> Result<u64, StoreError> {
        if let Staging::File { .. } = staging {
            let a = self
                .upload_append(staging, offset, hasher, rx, key.clone())
                .await?;
            return self
                .upload_finish(staging, digest, a.hasher, a.size, key)
                .await;
        }
        self.append_finish_parts(staging, offset, hasher, rx, key, digest, false)
            .await
    }

    /// [`Self::upload_append_finish`] on parts staging; `verified` as in
    /// [`Self::upload_append_finish_verified`] (the bytes are not hashed here).
    #[allow(clippy::too_many_arguments)]
    async fn append_finish_parts(
        &self,
        staging: &Staging,
        offset: u64,
        hasher: Option<Hasher>,
        rx: mpsc::Receiver<Chunk>,
        key: DataKey,
        digest: &Digest,
        verified: bool,
    ) -> Result<u64, StoreError> {
        let (a, rest) = self
            .append_parts(staging, offset, hasher, rx, key.clone(), false)
            .await?;
        let appended = a.staging.unwrap_or_else(|| staging.clone());
        let res = self
            .finish_parts(
                &appended,
                digest,
                a.hasher,
                a.size,
                key,
                Some(rest),
                verified,
            )
            .await;
        if res.is_err() {
            if let (
                Staging::Parts {
                    multipart: None, ..
                },
                Staging::Parts {
                    multipart: Some(m), ..
                },
            ) = (staging, &appended)
            {
                if let Err(e) = self.backend.abort_multipart(m).await {
                    tracing::warn!(error = %e, "could not abort an unrecorded multipart upload");
                }
            }
        }
        res
    }

    /// Makes a finished upload the blob's object under the digest's lock (see
    /// `Meta::begin_digest_tx`) and returns the key the blob row names. Parts:
    /// the completed object already is the blob's (nothing moves). Fast path: the
    /// file goes to the digest-derived key inside the local root (rename, then
    /// fsync of the directory: how a file system publishes).
    pub async fn upload_publish(
        &self,
        staging: &Staging,
        digest: &Digest,
    ) -> Result<String, StoreError> {
        match staging {
            Staging::Parts { key, .. } => Ok(key.clone()),
            Staging::File { key, .. } => {
                let src = self.local_path(key)?;
                let object_key = crate::meta::legacy_object_key(digest.as_str());
                let dst = self.local_path(&object_key)?;
                blocking(move || {
                    let dir = dst
                        .parent()
                        .ok_or_else(|| StoreError::Conflict("bad blob path".into()))?;
                    fs::create_dir_all(dir)?;
                    // A blob already there holds the same plaintext (under another
                    // data key that its links wrap), so the caller only publishes
                    // new digests.
                    fs::rename(&src, &dst).map_err(not_found)?;
                    fsync_dir(dir)?;
                    Ok(())
                })
                .await?;
                Ok(object_key)
            }
        }
    }

    /// Discards a staged upload, and its object if it was completed but not
    /// recorded (idempotent).
    pub async fn upload_abort(&self, staging: &Staging) -> Result<(), StoreError> {
        match staging {
            Staging::File { key, .. } => {
                let path = self.local_path(key)?;
                blocking(move || remove_missing_ok(&path)).await
            }
            Staging::Parts {
                key,
                multipart,
                upload,
                ..
            } => {
                if let Some(mp) = multipart {
                    self.backend.abort_multipart(mp).await?;
                }
                self.backend.delete(key).await?;
                self.drop_tails(upload).await
            }
        }
    }

    /// After the blob row naming a published upload's object committed: removes
    /// what staging left beside the object — the pieces the upload row names,
    /// without listing the upload's prefix (a round trip per push). A
    /// tail a crash left unrecorded is reclaimed by the full sweep
    /// ([`Self::list_staged`]).
    pub async fn upload_done(&self, staging: &Staging) -> Result<(), StoreError> {
        match staging {
            Staging::File { .. } => Ok(()),
            Staging::Parts { .. } => {
                self.delete_staged_all(&staging.staged_keys()).await;
                Ok(())
            }
        }
    }

    /// Objects staged for uploads (`uploads/<id>/…`: tail objects), streamed
    /// from the backend's listing — for the full sweep, which deletes those of
    /// uploads that no longer exist.
    pub fn list_staged(&self) -> BoxStream<'static, Result<ObjectInfo, StoreError>> {
        self.backend.list("uploads/")
    }

    /// Deletes a staged object found without its upload (the full sweep).
    pub async fn delete_staged(&self, key: &str) -> Result<(), StoreError> {
        self.tails.forget(key);
        self.backend.delete(key).await
    }

    async fn drop_tails(&self, upload: &str) -> Result<(), StoreError> {
        let tails: Vec<ObjectInfo> = self
            .backend
            .list(&format!("uploads/{upload}/"))
            .try_collect()
            .await?;
        for t in tails {
            self.tails.forget(&t.key);
            self.backend.delete(&t.key).await?;
        }
        Ok(())
    }

    /// Streams `len` plaintext bytes of the blob from `offset`, decrypting with its
    /// key. A segment that fails authentication ends the stream with an error:
    /// altered bytes are never returned.
    pub async fn get(
        &self,
        blob: &BlobRef,
        offset: u64,
        len: u64,
    ) -> Result<ByteStream, StoreError> {
        if self.local.is_some() {
            let path = self.local_path(&blob.object_key)?;
            return self.get_file(path, offset, len, blob.key.clone()).await;
        }
        self.get_object(blob, offset, len).await
    }

    async fn get_file(
        &self,
        path: PathBuf,
        offset: u64,
        len: u64,
        key: DataKey,
    ) -> Result<ByteStream, StoreError> {
        let f = tokio::fs::File::open(&path).await.map_err(not_found)?;
        let mut f = f.into_std().await;
        // A bounded channel: the reader thread stays at most a few batches ahead.
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(READ_QUEUE);
        let mode = self.mode;
        tokio::task::spawn_blocking(move || {
            // Each batch's buffer becomes the chunk sent (no copy); a fresh one is
            // allocated for the next batch.
            let mut buf = Vec::new();
            let send = |buf: &mut Vec<u8>| {
                let chunk = Bytes::from(std::mem::take(buf));
                tx.blocking_send(Ok(chunk))
                    .map_err(|_| io::Error::other("reader gone"))
            };
            let res = match mode {
                BlobMode::Encrypted => {
                    crypt::read_range_batched(&mut f, &key, offset, len, true, &mut buf, |b| {
                        send(b).map_err(crypt::CryptError::Io)
                    })
                    .map_err(crypt_err)
                }
                BlobMode::PlaintextForBenchmarks => {
                    read_plain(&mut f, offset, len, &mut buf, |b| Ok(send(b)?))
                }
            };
            if let Err(e) = res {
                tracing::error!(error = %e, "blob read failed");
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
        });
        let s = tokio_stream_from(rx);
        Ok(Box::pin(s) as ByteStream)
    }

    /// A ranged read through the backend: only the segments the range touches are
    /// fetched (one ranged `GET`, or for large reads concurrent ranged `GET`s of
    /// 8 MiB windows, `crate::ranged`), opened as they arrive by the stream the response
    /// body polls ([`OpenStream`]).
    async fn get_object(
        &self,
        blob: &BlobRef,
        offset: u64,
        len: u64,
    ) -> Result<ByteStream, StoreError> {
        if self.mode == BlobMode::PlaintextForBenchmarks {
            let end = offset
                .checked_add(len)
                .ok_or_else(|| StoreError::Tampered("range overflows".into()))?;
            if len >= ranged::parallel_from() {
                let b = self.backend.clone();
                return ranged::get(b, &blob.object_key, offset..end, false).await;
            }
            return self.backend.get(&blob.object_key, offset..end).await;
        }
        if len == 0 {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let (opener, range) =
            crypt::Opener::new(&blob.key, blob.size, offset, len).map_err(crypt_err)?;
        let want = range.end - range.start;
        // A read of the whole blob asks for the whole object (no `Range`: S3
        // stores such as Garage serve it with less work before the first byte);
        // the opener still checks its length.
        let sealed = if want >= ranged::parallel_from() {
            // Large reads: several concurrent ranged GETs, in order, bounded
            // (`crate::ranged`).
            ranged::get(self.backend.clone(), &blob.object_key, range, true).await?
        } else {
            let whole = range.start == 0 && offset == 0 && len == blob.size;
            let fetch = if whole { 0..u64::MAX } else { range };
            read_ahead(self.backend.get(&blob.object_key, fetch).await?)
        };
        Ok(Box::pin(OpenStream {
            sealed,
            opener,
            ready: std::collections::VecDeque::new(),
            got: 0,
            want,
            ended: false,
        }) as ByteStream)
    }

    /// Takes a blob's object out of reach before its row's deletion commits (the
    /// collector, under the digest's exclusive lock); then [`Self::retire_commit`]
    /// or, if the transaction failed, [`Self::retire_undo`].
    pub async fn retire(&self, object_key: &str) -> Result<Retired, StoreError> {
        let Some(root) = &self.local else {
            return Ok(Retired::Deferred {
                key: object_key.to_string(),
            });
        };
        // On the fast path a published blob's key is derived from its digest, so
        // a push of the same digest right after the commit would publish to it
        // again: the object is moved aside now, still under the lock.
        let path = self.local_path(object_key)?;
        let trash = root.join("trash");
        let token = format!("{}", uuid::Uuid::new_v4().simple());
        let key = object_key.to_string();
        blocking(move || {
            fs::create_dir_all(&trash)?;
            match fs::rename(&path, trash.join(&token)) {
                Ok(()) => Ok(Retired::Trashed { token, key }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Retired::Absent),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Deletes a retired object for good (after the row's deletion committed).
    pub async fn retire_commit(&self, r: &Retired) -> Result<(), StoreError> {
        match r {
            Retired::Absent => Ok(()),
            Retired::Deferred { key } => self.backend.delete(key).await,
            Retired::Trashed { token, .. } => {
                let path = self.local_trash(token)?;
                blocking(move || remove_missing_ok(&path)).await
            }
        }
    }

    /// Puts a retired object back (the row's deletion did not commit).
    pub async fn retire_undo(&self, r: &Retired) -> Result<(), StoreError> {
        match r {
            Retired::Absent | Retired::Deferred { .. } => Ok(()),
            Retired::Trashed { token, key } => {
                let src = self.local_trash(token)?;
                let dst = self.local_path(key)?;
                blocking(move || {
                    fs::rename(&src, &dst)?;
                    Ok(())
                })
                .await
            }
        }
    }

    fn local_trash(&self, token: &str) -> Result<PathBuf, StoreError> {
        match &self.local {
            Some(root) if token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
                Ok(root.join("trash").join(token))
            }
            _ => Err(StoreError::Config("no trash on this blob store".into())),
        }
    }

    /// Every stored blob object (under `blobs/`, staged uploads included once
    /// their objects are complete), streamed from the backend's listing — for the
    /// full sweep that finds objects a crash left without a row.
    pub fn list(&self) -> BoxStream<'static, Result<ObjectInfo, StoreError>> {
        self.backend.list("blobs/")
    }

    /// Deletes an object found without a row (the full sweep).
    pub async fn delete_object(&self, object_key: &str) -> Result<(), StoreError> {
        let r = self.retire(object_key).await?;
        self.retire_commit(&r).await
    }

    /// Deletes trashed blobs older than `before` (unix ms) that a crash between
    /// trashing and purging left behind; returns how many.
    pub async fn sweep_trash(&self, before: i64) -> Result<u64, StoreError> {
        let Some(root) = &self.local else {
            return Ok(0);
        };
        let trash = root.join("trash");
        blocking(move || {
            let Ok(entries) = fs::read_dir(&trash) else {
                return Ok(0);
            };
            let mut n = 0;
            for e in entries.flatten() {
                let old = e
                    .metadata()?
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .is_some_and(|t| (t.as_millis() as i64) < before);
                if old && fs::remove_file(e.path()).is_ok() {
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
    }

    /// Whether the store can be read and written (for `/readyz`).
    pub async fn check(&self) -> Result<(), StoreError> {
        if let Some(root) = &self.local {
            let probe = root.join("uploads").join(".readyz");
            return blocking(move || {
                fs::write(&probe, b"ok")?;
                fs::remove_file(&probe)?;
                Ok(())
            })
            .await;
        }
        let body: ByteStream =
            Box::pin(futures_util::stream::iter([Ok(Bytes::from_static(b"ok"))]));
        self.backend.put("uploads/readyz", body).await?;
        self.backend.delete("uploads/readyz").await
    }
}

/// Upload chunks queued between the async body reader and the writer thread
/// (registry.rs `pump`) are the caller's; these are the store's own buffers.
/// Read path: batches of [`crypt::READ_BATCH`] segments (256 KiB) in flight.
const READ_QUEUE: usize = 2;

/// Records `mode` in the data directory on first start; refuses a later start in
/// another mode. A directory that already holds blobs but no marker predates the
/// marker and is encrypted.
fn check_mode(root: &Path, mode: BlobMode) -> Result<(), StoreError> {
    let path = root.join(MODE_MARKER);
    let recorded = match fs::read_to_string(&path) {
        Ok(text) => match text.trim() {
            t if t == BlobMode::Encrypted.marker() => BlobMode::Encrypted,
            t if t == BlobMode::PlaintextForBenchmarks.marker() => BlobMode::PlaintextForBenchmarks,
            other => {
                return Err(StoreError::Config(format!(
                    "{} holds an unknown blob mode {other:?}",
                    path.display()
                )))
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let has_blobs = fs::read_dir(root.join("blobs"))?.next().is_some();
            if has_blobs && mode != BlobMode::Encrypted {
                BlobMode::Encrypted
            } else {
                let tmp = root.join(format!("{MODE_MARKER}.tmp"));
                fs::write(&tmp, format!("{}\n", mode.marker()))?;
                File::open(&tmp)?.sync_all()?;
                fs::rename(&tmp, &path)?;
                fsync_dir(root)?;
                mode
            }
        }
        Err(e) => return Err(e.into()),
    };
    if recorded != mode {
        return Err(StoreError::Config(format!(
            "data directory {} was started with {} ({}) and cannot be opened with {}; \
             {PLAINTEXT_BLOBS_ENV}=1 is for fresh benchmark data directories only \
             (unset it, or use another --data-dir)",
            root.display(),
            recorded.describe(),
            path.display(),
            mode.describe(),
        )));
    }
    Ok(())
}

fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> BoxFut<'static, Result<T, StoreError>> {
    Box::pin(async move {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| StoreError::Io(io::Error::other(e.to_string())))?
    })
}

fn not_found(e: io::Error) -> StoreError {
    if e.kind() == io::ErrorKind::NotFound {
        StoreError::NotFound
    } else {
        e.into()
    }
}

fn crypt_err(e: crypt::CryptError) -> StoreError {
    match e {
        crypt::CryptError::Io(e) => StoreError::Io(e),
        other => StoreError::Tampered(other.to_string()),
    }
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<io::Result<Bytes>>,
) -> impl Stream<Item = io::Result<Bytes>> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Benchmark mode: appends chunks to the staged file unchanged.
struct PlainWriter {
    file: File,
    len: u64,
    writeback: crypt::Writeback,
}

impl PlainWriter {
    fn open(mut file: File, offset: u64) -> Result<PlainWriter, StoreError> {
        if file.metadata()?.len() < offset {
            return Err(StoreError::Tampered(
                "staged upload is shorter than recorded".into(),
            ));
        }
        if file.metadata()?.len() != offset {
            file.set_len(offset)?;
        }
        file.seek(SeekFrom::Start(offset))?;
        Ok(PlainWriter {
            file,
            len: offset,
            writeback: crypt::Writeback::new(offset, 0),
        })
    }

    fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.file.write_all(data)?;
        self.len += data.len() as u64;
        self.writeback.wrote(&self.file, data.len() as u64);
        Ok(())
    }
}

/// Benchmark mode: reads `[offset, offset+len)` of a plaintext blob in batches the
/// size of the encrypted path's, handing each to `sink` like
/// [`crypt::read_range_batched`].
fn read_plain(
    f: &mut File,
    offset: u64,
    len: u64,
    buf: &mut Vec<u8>,
    mut sink: impl FnMut(&mut Vec<u8>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let end = offset
        .checked_add(len)
        .ok_or_else(|| StoreError::Tampered("range overflows".into()))?;
    if end > f.metadata()?.len() {
        return Err(StoreError::Tampered(
            "blob file is shorter than recorded".into(),
        ));
    }
    f.seek(SeekFrom::Start(offset))?;
    let batch = crypt::READ_BATCH * crypt::SEGMENT;
    let mut left = len;
    while left > 0 {
        let n = (left as usize).min(batch);
        if buf.capacity() == 0 {
            *buf = Vec::with_capacity(batch);
        }
        buf.clear();
        buf.resize(n, 0);
        f.read_exact(buf)?;
        left -= n as u64;
        sink(buf)?;
    }
    Ok(())
}

/// Sealed buffers in flight per encrypted append: one being filled, one being
/// written, one queued between them.
const SEAL_BUFFERS: usize = 3;

fn stopped(what: &str) -> io::Error {
    io::Error::other(format!("the {what} thread stopped"))
}

fn open_staged(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(not_found)
}

fn joined<T>(r: Result<T, tokio::task::JoinError>, what: &str) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Io(io::Error::other(format!("the {what} thread failed: {e}"))))
}

/// A [`crypt::Flush`] that collects sealed buffers in `out`, swapping in a buffer
/// the writer is done with, else a new one (at most `SEAL_BUFFERS` wait for the
/// writer, so only a few ever exist).
fn collect<'a>(
    free: &'a std::sync::mpsc::Receiver<Vec<u8>>,
    out: &'a mut Vec<(Vec<u8>, usize)>,
) -> impl FnMut(&mut Vec<u8>, usize) -> Result<(), crypt::CryptError> + 'a {
    move |buf, n| {
        let next = free
            .try_recv()
            .unwrap_or_else(|_| crypt::Sealer::new_buffer());
        out.push((std::mem::replace(buf, next), n));
        Ok(())
    }
}

/// Hands the collected sealed buffers to the writing thread; false once it has
/// stopped (on an error, which the append reports).
async fn send_sealed(
    full_tx: &mpsc::Sender<(Vec<u8>, usize)>,
    bufs: &mut Vec<(Vec<u8>, usize)>,
) -> bool {
    for b in bufs.drain(..) {
        if full_tx.send(b).await.is_err() {
            return false;
        }
    }
    true
}

/// An encrypted append. Each chunk is sealed on the runtime thread that just
/// received it, while its bytes are still in that core's cache (AES-256-GCM over
/// a ~300 KiB chunk from cache takes ~20 µs; the socket read before it took
/// longer); a blocking thread hashes the plaintext chunks and another writes the
/// sealed buffers. Hashing is the one stage that cannot be split (SHA-256 is
/// sequential), so it gets a thread of its own exactly as in plaintext mode, and
/// sealing adds neither a stage to that path nor another pass over cold memory.
/// Measured on this project's 2-core machine, the other placements cost more:
/// sealing on the writing thread read every chunk from memory a second time (the
/// pass cost as much as the AES), and sealing on the hashing thread lengthened the
/// sequential stage. Sealed buffers circulate back from the writer, so steady
/// state allocates nothing.
async fn append_sealed(
    path: PathBuf,
    offset: u64,
    hasher: Option<Hasher>,
    mut rx: mpsc::Receiver<Chunk>,
    key: DataKey,
) -> Result<Appended, StoreError> {
    let hashing = hasher.map(|mut h| {
        let (htx, mut hrx) = mpsc::channel::<Bytes>(8);
        let t = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = hrx.blocking_recv() {
                h.update(&chunk);
            }
            h
        });
        (htx, t)
    });
    // The writing thread opens the staged file (file I/O stays off the runtime)
    // and hands the sealer back: one hop to the blocking pool per append, not two.
    let (sealer_tx, sealer_rx) =
        tokio::sync::oneshot::channel::<Result<crypt::Sealer, StoreError>>();
    let (full_tx, mut full_rx) = mpsc::channel::<(Vec<u8>, usize)>(SEAL_BUFFERS);
    let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let writing = tokio::task::spawn_blocking(move || -> Result<(), crypt::CryptError> {
        let opened = open_staged(&path)
            .and_then(|f| SegmentWriter::open(f, &key, offset).map_err(crypt_err));
        let (sealer, mut file, mut writeback) = match opened {
            Ok(w) => w.into_parts(),
            Err(e) => {
                let _ = sealer_tx.send(Err(e));
                return Ok(());
            }
        };
        if sealer_tx.send(Ok(sealer)).is_err() {
            return Ok(());
        }
        while let Some((buf, n)) = full_rx.blocking_recv() {
            crypt::write_out(&mut file, &mut writeback, &buf[..n])?;
            let _ = free_tx.send(buf);
        }
        writeback.kick(&file);
        Ok(())
    });
    let mut sealer = match sealer_rx.await {
        Ok(Ok(sealer)) => sealer,
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            joined(writing.await, "writing")?.map_err(crypt_err)?;
            return Err(StoreError::Io(stopped("writing")));
        }
    };
    let mut sealed_bufs: Vec<(Vec<u8>, usize)> = Vec::new();
    let mut fed: Result<u64, StoreError> = Ok(0);
    loop {
        let chunk = match rx.recv().await {
            Some(Ok(chunk)) => chunk,
            // A failed body: nothing written by this append survives (the next
            // append reopens at the old offset).
            Some(Err(())) => {
                fed = Err(StoreError::Aborted);
                break;
            }
            None => {
                let size = sealer.plain_len;
                fed = sealer
                    .finish(&mut collect(&free_rx, &mut sealed_bufs))
                    .map_err(crypt_err)
                    .map(|()| size);
                break;
            }
        };
        if let Some((htx, _)) = &hashing {
            if htx.send(chunk.clone()).await.is_err() {
                fed = Err(StoreError::Io(stopped("hashing")));
                break;
            }
        }
        if let Err(e) = sealer.write(&chunk, &mut collect(&free_rx, &mut sealed_bufs)) {
            fed = Err(crypt_err(e));
            break;
        }
        if !send_sealed(&full_tx, &mut sealed_bufs).await {
            break;
        }
    }
    if fed.is_ok() {
        send_sealed(&full_tx, &mut sealed_bufs).await;
    }
    drop(full_tx);
    let (htx, hashed) = match hashing {
        Some((htx, t)) => (Some(htx), Some(t)),
        None => (None, None),
    };
    drop(htx);
    let written = joined(writing.await, "writing")?;
    for buf in free_rx
        .try_iter()
        .chain(sealed_bufs.drain(..).map(|(b, _)| b))
    {
        crypt::Sealer::recycle(buf);
    }
    let hasher = match hashed {
        Some(t) => Some(joined(t.await, "hashing")?),
        None => None,
    };
    // A write error explains a stopped feed.
    written.map_err(crypt_err)?;
    let size = fed?;
    Ok(Appended {
        size,
        hasher,
        staging: None,
    })
}

/// A benchmark-mode append: chunks written as they are, hashed on a helper thread
/// beside the writes (a chunk is reference-counted `Bytes`: handing it over copies
/// nothing).
fn append_plain(
    mut w: PlainWriter,
    mut hasher: Option<Hasher>,
    mut rx: mpsc::Receiver<Chunk>,
) -> Result<Appended, StoreError> {
    std::thread::scope(|scope| {
        let (htx, hrx) = std::sync::mpsc::sync_channel::<Bytes>(8);
        let hashing = hasher.take().map(|mut h| {
            scope.spawn(move || {
                while let Ok(chunk) = hrx.recv() {
                    h.update(&chunk);
                }
                h
            })
        });
        let written = (|| {
            while let Some(chunk) = rx.blocking_recv() {
                let chunk = chunk.map_err(|()| StoreError::Aborted)?;
                if hashing.is_some() && htx.send(chunk.clone()).is_err() {
                    return Err(StoreError::Io(stopped("hashing")));
                }
                w.write(&chunk)?;
            }
            w.writeback.kick(&w.file);
            Ok(w.len)
        })();
        drop(htx);
        let hasher = match hashing {
            Some(t) => Some(
                t.join()
                    .map_err(|_| StoreError::Io(io::Error::other("the hashing thread panicked")))?,
            ),
            None => None,
        };
        let size = written?;
        Ok(Appended {
            size,
            hasher,
            staging: None,
        })
    })
}

fn remove_missing_ok(p: &Path) -> Result<(), StoreError> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Pieces of a remote object read ahead of the decryption (a piece is what the
/// HTTP client read at once: tens of KiB, at most a few hundred), so the object
/// store's response keeps flowing while the response to the client waits on its
/// socket. Measured: without it, pulls of 256 MiB from S3 fell from 1.06× to
/// 0.56× the reference (`docs/benchmarks.md`, "Several nodes: PostgreSQL + S3").
const READ_AHEAD: usize = 8;

/// Reads `s` on a task of its own, up to [`READ_AHEAD`] pieces ahead of the
/// consumer.
fn read_ahead(mut s: ByteStream) -> ByteStream {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(READ_AHEAD);
    tokio::spawn(async move {
        while let Some(piece) = s.next().await {
            let failed = piece.is_err();
            if tx.send(piece).await.is_err() || failed {
                return;
            }
        }
    });
    Box::pin(tokio_stream_from(rx))
}

/// The running hash recorded with an upload, when it covers exactly the
/// upload's first `size` bytes (the row's size is the truth).
fn recorded_hash(staging: &Staging, size: u64) -> Option<Hasher> {
    let (Staging::Parts {
        hash: Some(text), ..
    }
    | Staging::File {
        hash: Some(text), ..
    }) = staging
    else {
        return None;
    };
    match Hasher::resume(text) {
        Some((h, len)) if len == size => Some(h),
        _ => None,
    }
}

fn one_chunk(b: Bytes) -> ByteStream {
    Box::pin(futures_util::stream::iter([Ok(b)]))
}

/// Hashes chunks on a blocking thread of its own (SHA-256 is sequential and
/// CPU-bound: never on the async threads).
type Hashing = (mpsc::Sender<Bytes>, tokio::task::JoinHandle<Hasher>);

fn start_hashing(hasher: Option<Hasher>) -> Option<Hashing> {
    hasher.map(|mut h| {
        let (htx, mut hrx) = mpsc::channel::<Bytes>(8);
        let t = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = hrx.blocking_recv() {
                h.update(&chunk);
            }
            h
        });
        (htx, t)
    })
}

async fn finish_hashing(hashing: Option<Hashing>) -> Result<Option<Hasher>, StoreError> {
    match hashing {
        Some((htx, t)) => {
            drop(htx);
            Ok(Some(joined(t.await, "hashing")?))
        }
        None => Ok(None),
    }
}

impl BlobStore {
    /// `[range]` of the staged object `key`: from this node's copy when it has
    /// one, else one ranged read.
    async fn read_staged(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u8>, StoreError> {
        let missing = || StoreError::Tampered("a staged tail is missing or short".into());
        if let Some(b) = self.tails.get(key) {
            let (s, e) = (range.start as usize, range.end as usize);
            return b.get(s..e).map(<[u8]>::to_vec).ok_or_else(missing);
        }
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let want = range.end - range.start;
        let s = self.backend.get(key, range).await.map_err(|e| match e {
            StoreError::NotFound => missing(),
            e => e,
        })?;
        let pieces: Vec<Bytes> = s.try_collect().await?;
        let out = pieces.concat();
        if out.len() as u64 != want {
            return Err(missing());
        }
        Ok(out)
    }

    /// The staged pieces of a parts-staged upload holding `staged` bytes beyond
    /// its parts (a tail recorded before pieces becomes the first piece, its
    /// length what the pieces after it leave).
    fn pieces_of(staging: &Staging, staged: u64) -> Result<Vec<Piece>, StoreError> {
        let Staging::Parts { tail, pieces, .. } = staging else {
            return Err(StoreError::Config("not a parts-staged upload".into()));
        };
        let mut out = Vec::with_capacity(pieces.len() + 1);
        if let Some(t) = tail {
            let rest: u64 = pieces.iter().map(|p| p.len).sum();
            let len = staged.checked_sub(rest).ok_or_else(|| {
                StoreError::Tampered("the staged upload does not match its size".into())
            })?;
            out.push(Piece {
                key: t.clone(),
                len,
            });
        }
        out.extend(pieces.iter().cloned());
        Ok(out)
    }

    /// The staged bytes of `pieces`, concatenated.
    async fn read_pieces(&self, pieces: &[Piece]) -> Result<Vec<u8>, StoreError> {
        let total: u64 = pieces.iter().map(|p| p.len).sum();
        let mut out = Vec::with_capacity(total as usize);
        for p in pieces {
            out.extend_from_slice(&self.read_staged(&p.key, 0..p.len).await?);
        }
        Ok(out)
    }

    /// An append staged as parts: new chunks are sealed on this task as they
    /// arrive (as on the fast path) and staged as one new piece (after the open
    /// last segment of the previous piece, re-sealed: only that segment is read
    /// back); once a part's worth is staged (beyond the last whole segment, which
    /// may be the last and is re-sealed as final at commit), the pieces are
    /// concatenated and go out as a part of the multipart upload. Each byte is
    /// thus written about twice (a piece, then a part) whatever the chunk size,
    /// where one growing tail object rewritten per append wrote it up to
    /// `PART_SIZE / chunk` times. The state returned names the new pieces; the
    /// recorded state still names the old ones until the caller records the new
    /// (a failed append changes nothing it names: parts it uploaded past the
    /// recorded ones are replaced or discarded later). With `put_tail` false (the
    /// upload's last append, [`Self::upload_append_finish`]) the new bytes are not
    /// staged but returned.
    async fn append_parts(
        &self,
        staging: &Staging,
        offset: u64,
        hasher: Option<Hasher>,
        mut rx: mpsc::Receiver<Chunk>,
        key: DataKey,
        put_tail: bool,
    ) -> Result<(Appended, Vec<u8>), StoreError> {
        let Staging::Parts {
            key: object_key,
            upload,
            multipart,
            parts_len,
            ..
        } = staging
        else {
            return Err(StoreError::Config("not a parts-staged upload".into()));
        };
        let hasher = hasher.or_else(|| recorded_hash(staging, offset));
        let mut mp = multipart.clone();
        let mut parts_len = *parts_len;
        let encrypted = self.mode == BlobMode::Encrypted;
        let mismatch = || StoreError::Tampered("the staged upload does not match its size".into());
        let expected = if encrypted {
            crypt::staged_len(offset)
        } else {
            offset
        };
        let mut pieces = Self::pieces_of(staging, expected.saturating_sub(parts_len))?;
        let staged: u64 = pieces.iter().map(|p| p.len).sum();
        let stored = parts_len + staged;
        // The staged bytes that stay as they are (`base`), then what this append
        // seals (`pending`): the reopened open segment first.
        let (mut base, mut pending, mut sealer) = if !encrypted {
            if stored != offset {
                return Err(mismatch());
            }
            (staged, Vec::new(), None)
        } else if stored == 0 && offset == 0 {
            (
                0,
                crypt::header().to_vec(),
                Some(crypt::Sealer::resume(&key, 0, &[]).map_err(crypt_err)?),
            )
        } else {
            if stored != expected {
                return Err(mismatch());
            }
            let rem = (offset % crypt::SEGMENT as u64) as usize;
            let open = if rem > 0 { rem + crypt::OVERHEAD } else { 0 } as u64;
            let seg = if open > 0 {
                // Pieces start at segment boundaries, so the open segment lies
                // whole in the last piece.
                let last = pieces.last_mut().ok_or_else(mismatch)?;
                let cut = last.len.checked_sub(open).ok_or_else(mismatch)?;
                let seg = self.read_staged(&last.key, cut..last.len).await?;
                last.len = cut;
                if cut == 0 {
                    pieces.pop();
                }
                seg
            } else {
                Vec::new()
            };
            let sealer = crypt::Sealer::resume(&key, offset, &seg).map_err(crypt_err)?;
            (staged - open, Vec::new(), Some(sealer))
        };
        // The last whole segment stays out of the parts: it may be the last one,
        // which is re-sealed as final at commit.
        let hold = if encrypted {
            crypt::SEGMENT + crypt::OVERHEAD
        } else {
            0
        };
        let part_size = self.part_size();
        let hashing = start_hashing(hasher);
        let mut size = offset;
        let fed: Result<(), StoreError> = async {
            while let Some(chunk) = rx.recv().await {
                // A failed body: nothing this append wrote is recorded.
                let chunk = chunk.map_err(|()| StoreError::Aborted)?;
                size += chunk.len() as u64;
                if let Some((htx, _)) = &hashing {
                    if htx.send(chunk.clone()).await.is_err() {
                        return Err(StoreError::Io(stopped("hashing")));
                    }
                }
                match &mut sealer {
                    Some(s) => s
                        .write(&chunk, &mut |buf: &mut Vec<u8>, n| {
                            pending.extend_from_slice(&buf[..n]);
                            Ok(())
                        })
                        .map_err(crypt_err)?,
                    None => pending.extend_from_slice(&chunk),
                }
                if base as usize + pending.len() < part_size + hold {
                    continue;
                }
                if !pieces.is_empty() {
                    // A part's worth: the staged pieces join what this append
                    // sealed (and are deleted once the new state is recorded).
                    let mut all = self.read_pieces(&pieces).await?;
                    all.extend_from_slice(&pending);
                    pending = all;
                    pieces.clear();
                    base = 0;
                }
                while pending.len() >= part_size + hold {
                    let rest = pending.split_off(pending.len() - hold);
                    let part = std::mem::replace(&mut pending, rest);
                    if mp.is_none() {
                        mp = Some(self.backend.create_multipart(object_key).await?);
                    }
                    let m = mp.as_mut().unwrap_or_else(|| unreachable!());
                    let n = part.len() as u64;
                    let token = self
                        .backend
                        .put_part(m, m.parts.len(), Bytes::from(part))
                        .await?;
                    m.parts.push(token);
                    parts_len += n;
                }
            }
            if let Some(s) = sealer.take() {
                s.finish(&mut |buf: &mut Vec<u8>, n| {
                    pending.extend_from_slice(&buf[..n]);
                    Ok(())
                })
                .map_err(crypt_err)?;
            }
            Ok(())
        }
        .await;
        let hashed = finish_hashing(hashing).await;
        let hasher = match fed.and(hashed) {
            Ok(h) => h,
            Err(e) => {
                // A multipart upload this append started is recorded nowhere: abort it
                // now (a crash here leaves it to the store's own expiry of incomplete
                // multipart uploads).
                if let (None, Some(m)) = (multipart, &mp) {
                    if let Err(e) = self.backend.abort_multipart(m).await {
                        tracing::warn!(error = %e, "could not abort an unrecorded multipart upload");
                    }
                }
                return Err(e);
            }
        };
        if put_tail && !pending.is_empty() {
            let k = format!("uploads/{upload}/tail-{}", uuid::Uuid::new_v4().simple());
            let bytes = Bytes::from(std::mem::take(&mut pending));
            let len = bytes.len() as u64;
            self.backend.put(&k, one_chunk(bytes.clone())).await?;
            self.tails.put(&k, bytes);
            pieces.push(Piece { key: k, len });
        }
        let hash = hasher.as_ref().and_then(Hasher::export_state);
        Ok((
            Appended {
                size,
                hasher,
                staging: Some(Staging::Parts {
                    key: object_key.clone(),
                    upload: upload.clone(),
                    multipart: mp,
                    parts_len,
                    tail: None,
                    pieces,
                    hash,
                }),
            },
            pending,
        ))
    }

    /// Finishing a parts-staged upload: the last segment is re-sealed as final
    /// and goes out as the last part (or, with no parts yet, the whole object in
    /// one put), and the multipart upload is completed. Without a running hash
    /// covering the upload, the completed object is read back and hashed (the
    /// parts cannot be read before completion); a mismatch deletes it. With
    /// `verified`, the caller has checked the bytes against `digest` itself.
    #[allow(clippy::too_many_arguments)]
    async fn finish_parts(
        &self,
        staging: &Staging,
        digest: &Digest,
        hasher: Option<Hasher>,
        size: u64,
        key: DataKey,
        inline_tail: Option<Vec<u8>>,
        verified: bool,
    ) -> Result<u64, StoreError> {
        let Staging::Parts {
            key: object_key,
            multipart,
            parts_len,
            ..
        } = staging
        else {
            return Err(StoreError::Config("not a parts-staged upload".into()));
        };
        let covered = match hasher.or_else(|| recorded_hash(staging, size)) {
            _ if verified => true,
            Some(h) if h.algorithm() == digest.algorithm() => {
                if h.finish() != *digest {
                    return Err(StoreError::DigestMismatch);
                }
                true
            }
            _ => false,
        };
        let expected = if self.mode == BlobMode::Encrypted {
            crypt::staged_len(size)
        } else {
            size
        };
        let pieces = Self::pieces_of(staging, expected.saturating_sub(*parts_len))?;
        let mut rest = self.read_pieces(&pieces).await?;
        if let Some(inline) = inline_tail {
            rest.extend_from_slice(&inline);
        }
        let stored = parts_len + rest.len() as u64;
        let mismatch = || StoreError::Tampered("the staged upload does not match its size".into());
        if self.mode == BlobMode::Encrypted {
            if stored == 0 && size == 0 {
                rest = crypt::header().to_vec();
            } else if stored != crypt::staged_len(size) {
                return Err(mismatch());
            }
            let last = if size == 0 {
                0
            } else {
                (size - (crypt::segment_count(size) - 1) * crypt::SEGMENT as u64) as usize
                    + crypt::OVERHEAD
            };
            let cut = rest.len().checked_sub(last).ok_or_else(mismatch)?;
            let mut seg = rest.split_off(cut);
            crypt::seal_final_segment(&key, size, &mut seg).map_err(crypt_err)?;
            rest.extend_from_slice(&seg);
        } else if stored != size {
            return Err(mismatch());
        }
        match multipart {
            None => {
                self.backend
                    .put(object_key, one_chunk(Bytes::from(rest)))
                    .await?;
            }
            Some(mp) => {
                let mut mp = mp.clone();
                if !rest.is_empty() || mp.parts.is_empty() {
                    let token = self
                        .backend
                        .put_part(&mp, mp.parts.len(), Bytes::from(rest))
                        .await?;
                    mp.parts.push(token);
                }
                self.backend.complete_multipart(&mp).await?;
            }
        }
        if !covered {
            REHASHED.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
            let blob = BlobRef {
                object_key: object_key.clone(),
                size,
                key,
            };
            let hashing = start_hashing(Some(Hasher::new(digest.algorithm())));
            let read: Result<(), StoreError> = async {
                let mut s = self.get_object(&blob, 0, size).await?;
                while let Some(b) = s.next().await {
                    let b = b.map_err(|e| StoreError::Tampered(e.to_string()))?;
                    if let Some((htx, _)) = &hashing {
                        if htx.send(b).await.is_err() {
                            return Err(StoreError::Io(stopped("hashing")));
                        }
                    }
                }
                Ok(())
            }
            .await;
            let computed = finish_hashing(hashing).await?;
            read?;
            if computed.map(Hasher::finish).as_ref() != Some(digest) {
                self.backend.delete(object_key).await?;
                return Err(StoreError::DigestMismatch);
            }
        }
        Ok(size)
    }
}

/// The plaintext of a ranged read of a sealed object, opened inline as the HTTP
/// body polls it: each completed batch of segments from the read-ahead is
/// authenticated and decrypted (a few hundred microseconds of AES-GCM per
/// 256 KiB batch) and handed out on the task that writes the response, instead
/// of on a decryption task of its own (one hand-off per piece and a queue
/// fewer; `docs/benchmarks.md`, "Several nodes: PostgreSQL + S3"). A segment
/// that fails authentication, or an object shorter or longer than recorded,
/// ends the stream with an error.
struct OpenStream {
    sealed: ByteStream,
    opener: crypt::Opener,
    ready: std::collections::VecDeque<Bytes>,
    got: u64,
    want: u64,
    ended: bool,
}

impl Stream for OpenStream {
    type Item = io::Result<Bytes>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        loop {
            if let Some(b) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(b)));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match this.sealed.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(piece))) => {
                    this.got += piece.len() as u64;
                    match this.opener.push(&piece) {
                        Ok(batches) => this.ready.extend(batches.into_iter().map(Bytes::from)),
                        Err(e) => {
                            tracing::error!(error = %e, "blob read failed");
                            this.ended = true;
                            return Poll::Ready(Some(Err(io::Error::other(e.to_string()))));
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    if this.got != this.want || !this.opener.done() {
                        return Poll::Ready(Some(Err(io::Error::other(
                            "blob object is shorter than recorded",
                        ))));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_mode_is_fixed_per_data_directory() {
        let root = std::env::temp_dir().join(format!("berth-blobmode-{}", uuid::Uuid::new_v4()));
        BlobStore::open_with_mode(&root, BlobMode::PlaintextForBenchmarks).unwrap();
        let marker = fs::read_to_string(root.join(MODE_MARKER)).unwrap();
        assert_eq!(marker.trim(), "plaintext-benchmark-only");
        assert!(BlobStore::open_with_mode(&root, BlobMode::PlaintextForBenchmarks).is_ok());
        let err = BlobStore::open(&root).err().expect("mode mismatch refused");
        assert!(err.to_string().contains(PLAINTEXT_BLOBS_ENV), "{err}");
        fs::remove_dir_all(&root).unwrap();

        // A data directory from before the marker, holding blobs, is encrypted.
        fs::create_dir_all(root.join("blobs/sha256/ab")).unwrap();
        assert!(BlobStore::open_with_mode(&root, BlobMode::PlaintextForBenchmarks).is_err());
        let s = BlobStore::open(&root).unwrap();
        assert_eq!(s.mode(), BlobMode::Encrypted);
        assert_eq!(
            fs::read_to_string(root.join(MODE_MARKER)).unwrap().trim(),
            "encrypted"
        );
        fs::remove_dir_all(&root).unwrap();
    }
}

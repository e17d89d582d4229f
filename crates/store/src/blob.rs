//! The blob store: immutable, content-addressed objects plus staged uploads.
//!
//! The store is dumb on purpose (DESIGN.md, "Object stores are dumb"): put, get,
//! delete. Whether a blob exists, and who may read it, is the metadata store's
//! business; the hot path never asks the blob store.
//!
//! Durability: an upload is staged in its own file, verified, fsynced and renamed into
//! place, and the directory is fsynced, before the metadata commit acknowledges it. A
//! crash at any instant leaves at most an orphan staging file or an unreferenced blob
//! file, never a half blob under a digest's name.

use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use berth_oci::{Digest, Hasher};
use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

use crate::crypt::{self, DataKey, SegmentWriter};
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
}

pub trait BlobStore: Send + Sync + 'static {
    /// Creates an empty staging area for an upload.
    fn upload_create<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<(), StoreError>>;

    /// Appends chunks from `rx` to the upload, which must currently hold exactly
    /// `offset` bytes. Hashing and file writes happen off the async threads.
    fn upload_append<'a>(
        &'a self,
        id: &'a str,
        offset: u64,
        hasher: Option<Hasher>,
        rx: mpsc::Receiver<Chunk>,
        key: DataKey,
    ) -> BoxFut<'a, Result<Appended, StoreError>>;

    /// Verifies the staged upload against `digest` (using `hasher` when it covers the
    /// whole upload, else re-reading it) and makes its bytes durable. Returns the
    /// size; `DigestMismatch` leaves the upload staged.
    fn upload_verify<'a>(
        &'a self,
        id: &'a str,
        digest: &'a Digest,
        hasher: Option<Hasher>,
        size: u64,
        key: DataKey,
    ) -> BoxFut<'a, Result<u64, StoreError>>;

    /// Marks the staged upload's last segment final and atomically moves it into
    /// place under its digest. The caller holds the digest's lock (see
    /// `Meta::begin_digest_tx`).
    fn upload_publish<'a>(
        &'a self,
        id: &'a str,
        digest: &'a Digest,
        size: u64,
        key: DataKey,
    ) -> BoxFut<'a, Result<(), StoreError>>;

    /// Moves a blob aside (for the collector, under the digest's lock); returns a
    /// token for [`Self::restore`] or [`Self::purge`], or None if it was absent.
    fn trash<'a>(&'a self, digest: &'a Digest) -> BoxFut<'a, Result<Option<String>, StoreError>>;

    /// Puts a trashed blob back (the deletion's transaction failed).
    fn restore<'a>(
        &'a self,
        token: &'a str,
        digest: &'a Digest,
    ) -> BoxFut<'a, Result<(), StoreError>>;

    /// Deletes a trashed blob for good.
    fn purge<'a>(&'a self, token: &'a str) -> BoxFut<'a, Result<(), StoreError>>;

    /// Discards a staged upload (idempotent).
    fn upload_abort<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<(), StoreError>>;

    /// Streams `len` plaintext bytes of a blob from `offset`, decrypting with `key`.
    /// A segment that fails authentication ends the stream with an error: altered
    /// bytes are never returned.
    fn get<'a>(
        &'a self,
        digest: &'a Digest,
        offset: u64,
        len: u64,
        key: DataKey,
    ) -> BoxFut<'a, Result<ByteStream, StoreError>>;

    /// Deletes a blob (idempotent).
    fn delete<'a>(&'a self, digest: &'a Digest) -> BoxFut<'a, Result<(), StoreError>>;

    /// Whether the store can be read and written (for `/readyz`).
    fn check(&self) -> BoxFut<'_, Result<(), StoreError>>;
}

/// Blobs on a local filesystem under `root`:
/// `blobs/<alg>/<2 hex>/<hex>` and `uploads/<id>`.
pub struct FsBlobStore {
    root: PathBuf,
}

const READ_CHUNK: usize = 256 * 1024;

impl FsBlobStore {
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(root.join("blobs"))?;
        fs::create_dir_all(root.join("uploads"))?;
        Ok(FsBlobStore {
            root: root.to_path_buf(),
        })
    }

    fn upload_path(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        let hex = d.hex();
        self.root
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }
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

impl BlobStore for FsBlobStore {
    fn upload_create<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<(), StoreError>> {
        let path = self.upload_path(id);
        blocking(move || {
            File::create(&path)?;
            Ok(())
        })
    }

    fn upload_append<'a>(
        &'a self,
        id: &'a str,
        offset: u64,
        mut hasher: Option<Hasher>,
        mut rx: mpsc::Receiver<Chunk>,
        key: DataKey,
    ) -> BoxFut<'a, Result<Appended, StoreError>> {
        let path = self.upload_path(id);
        blocking(move || {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(not_found)?;
            // The metadata's size is the truth: a half-finished earlier append is cut
            // back by reopening at `offset`.
            let mut w = SegmentWriter::open(f, &key, offset).map_err(crypt_err)?;
            while let Some(chunk) = rx.blocking_recv() {
                let Ok(chunk) = chunk else {
                    // Nothing written by this append survives: the next append
                    // reopens at the old offset.
                    return Err(StoreError::Aborted);
                };
                w.write(&chunk).map_err(crypt_err)?;
                if let Some(h) = hasher.as_mut() {
                    h.update(&chunk);
                }
            }
            let size = w.plain_len;
            w.finish().map_err(crypt_err)?;
            Ok(Appended { size, hasher })
        })
    }

    fn upload_verify<'a>(
        &'a self,
        id: &'a str,
        digest: &'a Digest,
        hasher: Option<Hasher>,
        size: u64,
        key: DataKey,
    ) -> BoxFut<'a, Result<u64, StoreError>> {
        let src = self.upload_path(id);
        let digest = digest.clone();
        blocking(move || {
            let mut f = File::open(&src).map_err(not_found)?;
            let computed = match hasher {
                Some(h) if h.algorithm() == digest.algorithm() => h.finish(),
                _ => {
                    let mut h = Hasher::new(digest.algorithm());
                    if size > 0 {
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
            Ok(size)
        })
    }

    fn upload_publish<'a>(
        &'a self,
        id: &'a str,
        digest: &'a Digest,
        size: u64,
        key: DataKey,
    ) -> BoxFut<'a, Result<(), StoreError>> {
        let src = self.upload_path(id);
        let dst = self.blob_path(digest);
        blocking(move || {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&src)
                .map_err(not_found)?;
            crypt::seal_final(&mut f, &key, size).map_err(crypt_err)?;
            f.sync_all()?;
            drop(f);
            let dir = dst
                .parent()
                .ok_or_else(|| StoreError::Conflict("bad blob path".into()))?;
            fs::create_dir_all(dir)?;
            // A blob already there holds the same plaintext (under another data key
            // that its links wrap), so the caller only publishes new digests.
            fs::rename(&src, &dst).map_err(not_found)?;
            fsync_dir(dir)?;
            Ok(())
        })
    }

    fn trash<'a>(&'a self, digest: &'a Digest) -> BoxFut<'a, Result<Option<String>, StoreError>> {
        let path = self.blob_path(digest);
        let trash = self.root.join("trash");
        let token = format!("{}-{}", digest.hex(), uuid::Uuid::new_v4().simple());
        blocking(move || {
            fs::create_dir_all(&trash)?;
            match fs::rename(&path, trash.join(&token)) {
                Ok(()) => Ok(Some(token)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn restore<'a>(
        &'a self,
        token: &'a str,
        digest: &'a Digest,
    ) -> BoxFut<'a, Result<(), StoreError>> {
        let src = self.root.join("trash").join(token);
        let dst = self.blob_path(digest);
        blocking(move || {
            fs::rename(&src, &dst)?;
            Ok(())
        })
    }

    fn purge<'a>(&'a self, token: &'a str) -> BoxFut<'a, Result<(), StoreError>> {
        let path = self.root.join("trash").join(token);
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        })
    }

    fn upload_abort<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<(), StoreError>> {
        let path = self.upload_path(id);
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        })
    }

    fn get<'a>(
        &'a self,
        digest: &'a Digest,
        offset: u64,
        len: u64,
        key: DataKey,
    ) -> BoxFut<'a, Result<ByteStream, StoreError>> {
        let path = self.blob_path(digest);
        Box::pin(async move {
            let f = tokio::fs::File::open(&path).await.map_err(not_found)?;
            let mut f = f.into_std().await;
            // A bounded channel: the reader thread stays at most a few segments ahead.
            let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
            tokio::task::spawn_blocking(move || {
                let mut pending = Vec::with_capacity(READ_CHUNK);
                let res = crypt::read_range(&mut f, &key, offset, len, true, |b| {
                    pending.extend_from_slice(b);
                    if pending.len() >= READ_CHUNK {
                        let chunk = Bytes::from(std::mem::replace(
                            &mut pending,
                            Vec::with_capacity(READ_CHUNK),
                        ));
                        tx.blocking_send(Ok(chunk))
                            .map_err(|_| crypt::CryptError::Io(io::Error::other("reader gone")))?;
                    }
                    Ok(())
                });
                match res {
                    Ok(()) => {
                        if !pending.is_empty() {
                            let _ = tx.blocking_send(Ok(Bytes::from(pending)));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "blob read failed");
                        let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
                    }
                }
            });
            let s = tokio_stream_from(rx);
            Ok(Box::pin(s) as ByteStream)
        })
    }

    fn delete<'a>(&'a self, digest: &'a Digest) -> BoxFut<'a, Result<(), StoreError>> {
        let path = self.blob_path(digest);
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        })
    }

    fn check(&self) -> BoxFut<'_, Result<(), StoreError>> {
        let probe = self.root.join("uploads").join(".readyz");
        blocking(move || {
            fs::write(&probe, b"ok")?;
            fs::remove_file(&probe)?;
            Ok(())
        })
    }
}

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
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;

use berth_oci::{Digest, Hasher};
use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

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
    ) -> BoxFut<'a, Result<Appended, StoreError>>;

    /// Verifies the staged upload against `digest` (using `hasher` when it covers the
    /// whole upload, else re-reading it) and makes its bytes durable. Returns the
    /// size; `DigestMismatch` leaves the upload staged.
    fn upload_verify<'a>(
        &'a self,
        id: &'a str,
        digest: &'a Digest,
        hasher: Option<Hasher>,
    ) -> BoxFut<'a, Result<u64, StoreError>>;

    /// Atomically moves a verified upload into place under its digest. The caller
    /// holds the digest's lock (see `Meta::begin_digest_tx`).
    fn upload_publish<'a>(
        &'a self,
        id: &'a str,
        digest: &'a Digest,
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

    /// Streams `len` bytes of a blob from `offset`.
    fn get<'a>(
        &'a self,
        digest: &'a Digest,
        offset: u64,
        len: u64,
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
    ) -> BoxFut<'a, Result<Appended, StoreError>> {
        let path = self.upload_path(id);
        blocking(move || {
            let mut f = OpenOptions::new().write(true).open(&path).map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    StoreError::NotFound
                } else {
                    e.into()
                }
            })?;
            let len = f.metadata()?.len();
            if len != offset {
                // A previous append failed half-way; the metadata's size is the truth.
                if len > offset {
                    f.set_len(offset)?;
                } else {
                    return Err(StoreError::Conflict(format!(
                        "staged upload holds {len} bytes, expected {offset}"
                    )));
                }
            }
            f.seek(SeekFrom::Start(offset))?;
            let mut size = offset;
            let mut w = io::BufWriter::with_capacity(READ_CHUNK, f);
            while let Some(chunk) = rx.blocking_recv() {
                let Ok(chunk) = chunk else {
                    drop(w);
                    let f = OpenOptions::new().write(true).open(&path)?;
                    f.set_len(offset)?;
                    return Err(StoreError::Aborted);
                };
                w.write_all(&chunk)?;
                if let Some(h) = hasher.as_mut() {
                    h.update(&chunk);
                }
                size += chunk.len() as u64;
            }
            w.flush()?;
            Ok(Appended { size, hasher })
        })
    }

    fn upload_verify<'a>(
        &'a self,
        id: &'a str,
        digest: &'a Digest,
        hasher: Option<Hasher>,
    ) -> BoxFut<'a, Result<u64, StoreError>> {
        let src = self.upload_path(id);
        let digest = digest.clone();
        blocking(move || {
            let mut f = File::open(&src).map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    StoreError::NotFound
                } else {
                    e.into()
                }
            })?;
            let size = f.metadata()?.len();
            let computed = match hasher {
                Some(h) if h.algorithm() == digest.algorithm() => h.finish(),
                _ => {
                    let mut h = Hasher::new(digest.algorithm());
                    let mut buf = vec![0u8; READ_CHUNK];
                    loop {
                        let n = f.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                    }
                    h.finish()
                }
            };
            if computed != digest {
                return Err(StoreError::DigestMismatch);
            }
            f.sync_all()?;
            Ok(size)
        })
    }

    fn upload_publish<'a>(
        &'a self,
        id: &'a str,
        digest: &'a Digest,
    ) -> BoxFut<'a, Result<(), StoreError>> {
        let src = self.upload_path(id);
        let dst = self.blob_path(digest);
        blocking(move || {
            let dir = dst
                .parent()
                .ok_or_else(|| StoreError::Conflict("bad blob path".into()))?;
            fs::create_dir_all(dir)?;
            // Content-addressed: if the blob is already there, the bytes are the same.
            fs::rename(&src, &dst).map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    StoreError::NotFound
                } else {
                    e.into()
                }
            })?;
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
    ) -> BoxFut<'a, Result<ByteStream, StoreError>> {
        let path = self.blob_path(digest);
        Box::pin(async move {
            let mut f = tokio::fs::File::open(&path).await.map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    StoreError::NotFound
                } else {
                    e.into()
                }
            })?;
            if offset > 0 {
                use tokio::io::AsyncSeekExt;
                f.seek(SeekFrom::Start(offset)).await?;
            }
            use tokio::io::AsyncReadExt;
            let reader = f.take(len);
            let s = tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK);
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

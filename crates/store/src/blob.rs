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
    /// whole upload, else re-reading it). Returns the size; `DigestMismatch` leaves
    /// the upload staged.
    fn upload_verify<'a>(
        &'a self,
        id: &'a str,
        digest: &'a Digest,
        hasher: Option<Hasher>,
        size: u64,
        key: DataKey,
    ) -> BoxFut<'a, Result<u64, StoreError>>;

    /// Finishes a verified upload's bytes: marks its last segment final and makes
    /// the file durable (fsync). Needs no lock (the staged file is the upload's
    /// own), so the caller does it before taking the digest's lock. Afterwards the
    /// upload takes no more data: a caller that fails later discards it.
    fn upload_seal<'a>(
        &'a self,
        id: &'a str,
        size: u64,
        key: DataKey,
    ) -> BoxFut<'a, Result<(), StoreError>>;

    /// Atomically moves a sealed upload into place under its digest (rename, then
    /// fsync of the directory). The caller holds the digest's lock (see
    /// `Meta::begin_digest_tx`).
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

    /// Every stored blob with its modification time (unix ms), for the full sweep
    /// that finds files a crash left without a metadata row.
    fn list(&self) -> BoxFut<'_, Result<Vec<(Digest, i64)>, StoreError>>;

    /// Deletes trashed blobs older than `before` (unix ms) that a crash between
    /// trashing and purging left behind; returns how many.
    fn sweep_trash(&self, before: i64) -> BoxFut<'_, Result<u64, StoreError>>;
}

/// How [`FsBlobStore`] keeps blob bytes at rest. Fixed per data directory (a marker
/// file, [`MODE_MARKER`], records it on first start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobMode {
    /// Sealed with each blob's data key (the default; the only mode for real use).
    Encrypted,
    /// BENCHMARK ONLY: blob bytes stored as plaintext, so the benchmark harness can
    /// measure what encryption costs against the same build (issue 6). Data keys are
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

/// Blobs on a local filesystem under `root`:
/// `blobs/<alg>/<2 hex>/<hex>` and `uploads/<id>`.
pub struct FsBlobStore {
    root: PathBuf,
    mode: BlobMode,
}

/// Upload chunks queued between the async body reader and the writer thread
/// (registry.rs `pump`) are the caller's; these are the store's own buffers.
/// Read path: batches of [`crypt::READ_BATCH`] segments (256 KiB) in flight.
const READ_QUEUE: usize = 2;

impl FsBlobStore {
    /// Opens (creating) the store with encrypted blobs.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        Self::open_with_mode(root, BlobMode::Encrypted)
    }

    /// Opens (creating) the store in `mode`, which must match the mode the data
    /// directory was first started with.
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
        Ok(FsBlobStore {
            root: root.to_path_buf(),
            mode,
        })
    }

    pub fn mode(&self) -> BlobMode {
        self.mode
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
    Ok(Appended { size, hasher })
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
        Ok(Appended { size, hasher })
    })
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
        hasher: Option<Hasher>,
        rx: mpsc::Receiver<Chunk>,
        key: DataKey,
    ) -> BoxFut<'a, Result<Appended, StoreError>> {
        let path = self.upload_path(id);
        // The metadata's size is the truth: a half-finished earlier append is cut
        // back by reopening at `offset`.
        match self.mode {
            BlobMode::Encrypted => Box::pin(append_sealed(path, offset, hasher, rx, key)),
            BlobMode::PlaintextForBenchmarks => blocking(move || {
                let f = open_staged(&path)?;
                append_plain(PlainWriter::open(f, offset)?, hasher, rx)
            }),
        }
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
        let mode = self.mode;
        blocking(move || {
            let mut f = File::open(&src).map_err(not_found)?;
            let computed = match hasher {
                Some(h) if h.algorithm() == digest.algorithm() => h.finish(),
                _ => {
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
            Ok(size)
        })
    }

    fn upload_seal<'a>(
        &'a self,
        id: &'a str,
        size: u64,
        key: DataKey,
    ) -> BoxFut<'a, Result<(), StoreError>> {
        let src = self.upload_path(id);
        let mode = self.mode;
        blocking(move || {
            let mut f = open_staged(&src)?;
            if mode == BlobMode::Encrypted {
                crypt::seal_final(&mut f, &key, size).map_err(crypt_err)?;
            }
            f.sync_all()?;
            Ok(())
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
            // A bounded channel: the reader thread stays at most a few batches ahead.
            let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(READ_QUEUE);
            let mode = self.mode;
            tokio::task::spawn_blocking(move || {
                // Each batch's buffer becomes the chunk sent (no copy); a fresh one
                // is allocated for the next batch.
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

    fn list(&self) -> BoxFut<'_, Result<Vec<(Digest, i64)>, StoreError>> {
        let root = self.root.join("blobs");
        blocking(move || {
            let mut out = Vec::new();
            for alg in ["sha256", "sha512"] {
                let Ok(prefixes) = fs::read_dir(root.join(alg)) else {
                    continue;
                };
                for p in prefixes.flatten() {
                    for f in fs::read_dir(p.path())?.flatten() {
                        let name = f.file_name().to_string_lossy().into_owned();
                        let Ok(d) = Digest::parse(&format!("{alg}:{name}")) else {
                            continue;
                        };
                        let mtime = f
                            .metadata()?
                            .modified()
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map(|t| t.as_millis() as i64)
                            .unwrap_or(0);
                        out.push((d, mtime));
                    }
                }
            }
            Ok(out)
        })
    }

    fn sweep_trash(&self, before: i64) -> BoxFut<'_, Result<u64, StoreError>> {
        let trash = self.root.join("trash");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_mode_is_fixed_per_data_directory() {
        let root = std::env::temp_dir().join(format!("berth-blobmode-{}", uuid::Uuid::new_v4()));
        FsBlobStore::open_with_mode(&root, BlobMode::PlaintextForBenchmarks).unwrap();
        let marker = fs::read_to_string(root.join(MODE_MARKER)).unwrap();
        assert_eq!(marker.trim(), "plaintext-benchmark-only");
        assert!(FsBlobStore::open_with_mode(&root, BlobMode::PlaintextForBenchmarks).is_ok());
        let err = FsBlobStore::open(&root)
            .err()
            .expect("mode mismatch refused");
        assert!(err.to_string().contains(PLAINTEXT_BLOBS_ENV), "{err}");
        fs::remove_dir_all(&root).unwrap();

        // A data directory from before the marker, holding blobs, is encrypted.
        fs::create_dir_all(root.join("blobs/sha256/ab")).unwrap();
        assert!(FsBlobStore::open_with_mode(&root, BlobMode::PlaintextForBenchmarks).is_err());
        let s = FsBlobStore::open(&root).unwrap();
        assert_eq!(s.mode(), BlobMode::Encrypted);
        assert_eq!(
            fs::read_to_string(root.join(MODE_MARKER)).unwrap().trim(),
            "encrypted"
        );
        fs::remove_dir_all(&root).unwrap();
    }
}

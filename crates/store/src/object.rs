//! The object backend: the dumb lower layer of blob storage (`docs/architecture.md`,
//! "Blobs: a dumb backend under one pipeline").
//!
//! An [`ObjectBackend`] does only what an object store can do: put a whole object
//! from a stream, a multipart upload whose state ([`Multipart`]: key, upload id,
//! part tokens) is plain data that can be stored in the database and continued by
//! any process, ranged streamed reads, stat, idempotent delete and a streamed
//! listing by prefix. There is no rename, no append and no conditional write: every
//! compare-and-set lives in the metadata store. Sealing, hashing, upload staging and
//! publishing belong to the pipeline above it (`crate::blob`).
//!
//! Implementations: [`FsBackend`] (the embedded default, files under the data
//! directory) and `crate::s3::S3Backend`. Both pass the contract suite in
//! `crates/store/tests/object_backend.rs`.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::blob::{BoxFut, ByteStream};
use crate::StoreError;

/// One object as listed or stat'ed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The key relative to the backend's root or prefix.
    pub key: String,
    pub size: u64,
    /// Last modification, unix milliseconds.
    pub modified_ms: i64,
}

/// A multipart upload in progress: plain data, so it can be kept in a database row
/// and continued (more parts, completion, abort) by another process or node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Multipart {
    /// The key the completed object will have.
    pub key: String,
    /// The backend's id for the upload.
    pub upload_id: String,
    /// Tokens of the parts uploaded so far, in part order (S3's ETags).
    pub parts: Vec<String>,
}

/// The operations every object store offers. Keys are `/`-separated relative
/// paths (no empty, `.` or `..` segments, no segment starting with `.`).
pub trait ObjectBackend: Send + Sync + 'static {
    /// The smallest part a multipart upload accepts, except the last part.
    fn min_part_size(&self) -> usize;

    /// Writes a whole object from `body` (replacing any object under `key`);
    /// durable and visible in full, or not at all, on return. Returns its size.
    fn put<'a>(&'a self, key: &'a str, body: ByteStream) -> BoxFut<'a, Result<u64, StoreError>>;

    /// Starts a multipart upload to `key`; nothing is visible under `key` until
    /// [`Self::complete_multipart`].
    fn create_multipart<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<Multipart, StoreError>>;

    /// Uploads part `index` (0-based, in order) and returns its token, which the
    /// caller appends to `mp.parts`. Every part but the last must be at least
    /// [`Self::min_part_size`] bytes.
    fn put_part<'a>(
        &'a self,
        mp: &'a Multipart,
        index: usize,
        data: Bytes,
    ) -> BoxFut<'a, Result<String, StoreError>>;

    /// Makes the object out of `mp.parts`; durable on return. A token that names
    /// no uploaded part fails and creates nothing.
    fn complete_multipart<'a>(&'a self, mp: &'a Multipart) -> BoxFut<'a, Result<(), StoreError>>;

    /// Discards a multipart upload and its parts (idempotent).
    fn abort_multipart<'a>(&'a self, mp: &'a Multipart) -> BoxFut<'a, Result<(), StoreError>>;

    /// Streams bytes `range` of an object; only that range is read. A range
    /// reaching past the end is cut at the end. `NotFound` when there is no object.
    fn get<'a>(
        &'a self,
        key: &'a str,
        range: Range<u64>,
    ) -> BoxFut<'a, Result<ByteStream, StoreError>>;

    /// Size and modification time, or None when there is no such object.
    fn stat<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<Option<ObjectInfo>, StoreError>>;

    /// Deletes an object; deleting a missing object succeeds.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<(), StoreError>>;

    /// Every object whose key starts with `prefix`, streamed (in no particular
    /// order; the listing may be paged underneath).
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<ObjectInfo, StoreError>>;

    /// A capability, not part of the contract: the directory that holds the
    /// objects as plain files (`<root>/<key>`), for the pipeline's filesystem fast
    /// path (uploads staged in a file written in place). None for remote stores.
    fn local_root(&self) -> Option<&Path> {
        None
    }
}

/// Checks a key's shape (see [`ObjectBackend`]).
pub fn check_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && key
            .split('/')
            .all(|s| !s.is_empty() && !s.starts_with('.') && !s.contains('\\'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(format!("invalid object key {key:?}")))
    }
}

pub(crate) fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> BoxFut<'static, Result<T, StoreError>> {
    Box::pin(async move {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| StoreError::Io(io::Error::other(e.to_string())))?
    })
}

pub(crate) fn not_found(e: io::Error) -> StoreError {
    if e.kind() == io::ErrorKind::NotFound {
        StoreError::NotFound
    } else {
        e.into()
    }
}

pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn mtime_ms(m: &fs::Metadata) -> i64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|t| t.as_millis() as i64)
        .unwrap_or(0)
}

/// Bytes per read of [`FsBackend::get`] (and per listing batch of keys).
const READ_CHUNK: usize = 256 * 1024;

/// Objects as files under `root` (`<root>/<key>`). Writes go to a temporary file
/// in `<root>/.tmp` that is fsynced and renamed into place (a rename inside one
/// backend is how a filesystem makes a whole-object put atomic; nothing above this
/// layer renames). Multipart uploads keep their parts in `<root>/.multipart/<id>/`.
pub struct FsBackend {
    root: PathBuf,
}

impl FsBackend {
    /// Opens (creating) a backend rooted at `root`.
    pub fn open(root: &Path) -> Result<FsBackend, StoreError> {
        fs::create_dir_all(root.join(".tmp"))?;
        fs::create_dir_all(root.join(".multipart"))?;
        Ok(FsBackend {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    fn tmp_path(&self) -> PathBuf {
        self.root
            .join(".tmp")
            .join(uuid::Uuid::new_v4().simple().to_string())
    }

    fn multipart_dir(&self, upload_id: &str) -> Result<PathBuf, StoreError> {
        if upload_id.is_empty() || !upload_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(StoreError::NotFound);
        }
        Ok(self.root.join(".multipart").join(upload_id))
    }
}

/// Fsyncs `tmp` and renames it to `dst` (creating its directory), then fsyncs the
/// directory.
fn install(tmp: &Path, file: &File, dst: &Path) -> Result<(), StoreError> {
    file.sync_all()?;
    let dir = dst
        .parent()
        .ok_or_else(|| StoreError::Config("object path has no parent".into()))?;
    fs::create_dir_all(dir)?;
    fs::rename(tmp, dst)?;
    fsync_dir(dir)?;
    Ok(())
}

fn remove_missing_ok(p: &Path) -> Result<(), StoreError> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl ObjectBackend for FsBackend {
    fn min_part_size(&self) -> usize {
        1
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        mut body: ByteStream,
    ) -> BoxFut<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let dst = self.path(key)?;
            let tmp = self.tmp_path();
            // Chunks go to a writing thread through a short queue: file I/O stays
            // off the async threads and memory stays bounded.
            let (tx, mut rx) = mpsc::channel::<Option<Bytes>>(2);
            let tmp2 = tmp.clone();
            let writer = tokio::task::spawn_blocking(move || -> Result<u64, StoreError> {
                let mut f = File::create(&tmp2)?;
                let mut n = 0u64;
                loop {
                    match rx.blocking_recv() {
                        Some(Some(b)) => {
                            f.write_all(&b)?;
                            n += b.len() as u64;
                        }
                        // The body ended: the object is complete.
                        Some(None) => break,
                        // The body failed (or the caller went away): nothing is
                        // installed.
                        None => return Err(StoreError::Aborted),
                    }
                }
                install(&tmp2, &f, &dst)?;
                Ok(n)
            });
            let mut failed = None;
            while let Some(item) = body.next().await {
                match item {
                    Ok(b) => {
                        if tx.send(Some(b)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if failed.is_none() {
                let _ = tx.send(None).await;
            }
            drop(tx);
            let r = writer
                .await
                .map_err(|e| StoreError::Io(io::Error::other(e.to_string())))
                .and_then(|r| r);
            if r.is_err() {
                let _ = tokio::fs::remove_file(&tmp).await;
            }
            match failed {
                Some(e) => Err(StoreError::Io(e)),
                None => r,
            }
        })
    }

    fn create_multipart<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<Multipart, StoreError>> {
        let checked = self.path(key).map(|_| ());
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.root.join(".multipart").join(&upload_id);
        let key = key.to_string();
        blocking(move || {
            checked?;
            fs::create_dir_all(&dir)?;
            Ok(Multipart {
                key,
                upload_id,
                parts: Vec::new(),
            })
        })
    }

    fn put_part<'a>(
        &'a self,
        mp: &'a Multipart,
        index: usize,
        data: Bytes,
    ) -> BoxFut<'a, Result<String, StoreError>> {
        let dir = self.multipart_dir(&mp.upload_id);
        blocking(move || {
            let dir = dir?;
            if !dir.is_dir() {
                return Err(StoreError::NotFound);
            }
            // Each upload of a part gets its own file: a retried part never
            // changes bytes an earlier token names.
            let token = format!("{index}-{}", uuid::Uuid::new_v4().simple());
            let tmp = dir.join(format!("{token}.tmp"));
            let mut f = File::create(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            fs::rename(&tmp, dir.join(&token))?;
            fsync_dir(&dir)?;
            Ok(token)
        })
    }

    fn complete_multipart<'a>(&'a self, mp: &'a Multipart) -> BoxFut<'a, Result<(), StoreError>> {
        let dir = self.multipart_dir(&mp.upload_id);
        let dst = self.path(&mp.key);
        let tmp = self.tmp_path();
        let parts = mp.parts.clone();
        blocking(move || {
            let (dir, dst) = (dir?, dst?);
            let mut files = Vec::with_capacity(parts.len());
            for p in &parts {
                let ok = !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
                if !ok {
                    return Err(StoreError::Conflict(format!("unknown part {p:?}")));
                }
                match File::open(dir.join(p)) {
                    Ok(f) => files.push(f),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Err(StoreError::Conflict(format!("unknown part {p:?}")))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let mut out = File::create(&tmp)?;
            let copied = (|| {
                for mut f in files {
                    io::copy(&mut f, &mut out)?;
                }
                install(&tmp, &out, &dst)
            })();
            if let Err(e) = copied {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            let _ = fs::remove_dir_all(&dir);
            Ok(())
        })
    }

    fn abort_multipart<'a>(&'a self, mp: &'a Multipart) -> BoxFut<'a, Result<(), StoreError>> {
        let dir = self.multipart_dir(&mp.upload_id);
        blocking(move || match fs::remove_dir_all(dir?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        })
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
        range: Range<u64>,
    ) -> BoxFut<'a, Result<ByteStream, StoreError>> {
        let path = self.path(key);
        Box::pin(async move {
            let path = path?;
            let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(2);
            let opened = blocking(move || {
                let mut f = File::open(&path).map_err(not_found)?;
                let len = f.metadata()?.len();
                let end = range.end.min(len);
                f.seek(SeekFrom::Start(range.start.min(end)))?;
                Ok((f, range.start.min(end), end))
            })
            .await?;
            let (mut f, start, end) = opened;
            tokio::task::spawn_blocking(move || {
                let mut left = end - start;
                while left > 0 {
                    let n = (left as usize).min(READ_CHUNK);
                    let mut buf = vec![0u8; n];
                    let r = f.read_exact(&mut buf).map(|()| Bytes::from(buf));
                    let stop = r.is_err();
                    if tx.blocking_send(r).is_err() || stop {
                        return;
                    }
                    left -= n as u64;
                }
            });
            let s = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            Ok(Box::pin(s) as ByteStream)
        })
    }

    fn stat<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<Option<ObjectInfo>, StoreError>> {
        let path = self.path(key);
        let key = key.to_string();
        blocking(move || match fs::metadata(path?) {
            Ok(m) if m.is_file() => Ok(Some(ObjectInfo {
                key,
                size: m.len(),
                modified_ms: mtime_ms(&m),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<(), StoreError>> {
        let path = self.path(key);
        blocking(move || remove_missing_ok(&path?))
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<ObjectInfo, StoreError>> {
        // Walk the deepest directory the prefix names, on a blocking thread that
        // sends batches of keys through a short queue (the listing streams; a
        // store with millions of blobs is never held in memory at once).
        let root = self.root.clone();
        let prefix = prefix.to_string();
        let (tx, rx) = mpsc::channel::<Result<Vec<ObjectInfo>, StoreError>>(2);
        tokio::task::spawn_blocking(move || {
            let base = match prefix.rfind('/') {
                Some(i) => &prefix[..i],
                None => "",
            };
            let mut stack = vec![base.to_string()];
            let mut batch = Vec::new();
            while let Some(dir) = stack.pop() {
                let entries = match fs::read_dir(root.join(&dir)) {
                    Ok(e) => e,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e.into()));
                        return;
                    }
                };
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') {
                        continue;
                    }
                    let key = if dir.is_empty() {
                        name
                    } else {
                        format!("{dir}/{name}")
                    };
                    let Ok(m) = e.metadata() else { continue };
                    if m.is_dir() {
                        // Descend only where keys can still match the prefix.
                        let k = format!("{key}/");
                        if k.starts_with(&prefix) || prefix.starts_with(&k) {
                            stack.push(key);
                        }
                    } else if m.is_file() && key.starts_with(&prefix) {
                        batch.push(ObjectInfo {
                            key,
                            size: m.len(),
                            modified_ms: mtime_ms(&m),
                        });
                        if batch.len() >= 256
                            && tx.blocking_send(Ok(std::mem::take(&mut batch))).is_err()
                        {
                            return;
                        }
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.blocking_send(Ok(batch));
            }
        });
        futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .flat_map(|batch| {
            let items: Vec<Result<ObjectInfo, StoreError>> = match batch {
                Ok(v) => v.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            futures_util::stream::iter(items)
        })
        .boxed()
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }
}

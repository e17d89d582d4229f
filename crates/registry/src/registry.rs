//! Registry operations (OCI Distribution Spec v1.1: "Pull", "Push", "Content
//! Discovery", "Content Management"; ECR semantics for repositories and tags).

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};

use berth_oci::{
    media, Digest, Hasher, ImageTag, Manifest, ManifestKind, Reference, RepositoryName,
};
use berth_store::{
    BlobRef, BlobStore, ByteStream, Chunk, DeleteManifestOutcome, ManifestRow, ManifestWrite, Meta,
    NewRepository, PutManifestOutcome, RepositoryRow, Staging, StoreError,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::keys::Keyring;
use crate::mutability::{tag_is_immutable, ExclusionFilter, TagMutability};
use crate::{Clock, RegistryError};
use berth_store::crypt::DataKey;

type Result<T> = std::result::Result<T, RegistryError>;

#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Create a repository on first push instead of answering NAME_UNKNOWN.
    pub create_on_push: bool,
    /// Upload sessions idle longer than this expire.
    pub upload_ttl_ms: i64,
    /// This deployment's region (replication destinations here are copied locally).
    pub region: String,
    /// A cached tag of a pull-through cache repository is checked upstream again
    /// once it was last checked longer ago than this.
    pub pull_through_refresh_ms: i64,
    /// What the stores of blobs streamed from pull-through upstreams may hold in
    /// memory, in all, while they are behind their clients (KiB): past it, a blob's
    /// store gives up and the image's completion job fetches the blob again.
    pub pull_through_store_buffer_kib: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            create_on_push: true,
            upload_ttl_ms: 24 * 3600 * 1000,
            region: "us-east-1".into(),
            pull_through_refresh_ms: 24 * 3600 * 1000,
            pull_through_store_buffer_kib: 64 * 1024,
        }
    }
}

/// Settings for a new repository.
#[derive(Debug, Clone)]
pub struct RepoSettings {
    pub tag_mutability: TagMutability,
    pub exclusions: Vec<ExclusionFilter>,
    pub scan_on_push: bool,
    pub encryption_type: String,
    pub kms_key: Option<String>,
    pub tags: Vec<(String, String)>,
}

impl Default for RepoSettings {
    fn default() -> Self {
        RepoSettings {
            tag_mutability: TagMutability::Mutable,
            exclusions: Vec::new(),
            scan_on_push: false,
            encryption_type: "AES256".into(),
            kms_key: None,
            tags: Vec::new(),
        }
    }
}

/// In-memory state of an upload on this node: the running hash over the bytes
/// received so far. Losing it (restart, another node) costs nothing: the upload
/// row records the same state with each append (`Staging`'s `hash`).
struct UploadMemo {
    size: u64,
    hasher: Hasher,
}

pub struct Registry {
    // Private to the core: front ends call core methods (`docs/architecture.md`,
    // "Rooms").
    pub(crate) meta: Meta,
    pub(crate) blobs: Arc<BlobStore>,
    identity: crate::identity::Identity,
    pub clock: Clock,
    pub config: RegistryConfig,
    uploads: StdMutex<HashMap<String, Arc<tokio::sync::Mutex<Option<UploadMemo>>>>>,
    /// Pull times to record, by repository id then digest (two levels, so a
    /// repeated pull finds its entry without building a key).
    pulls: StdMutex<HashMap<i64, HashMap<String, i64>>>,
    pub gc_stats: crate::GcStats,
    pub(crate) keys: Keyring,
    pub(crate) cache: crate::cache::Caches,
}

/// A blob to send: its total size and the requested byte range's stream.
pub struct BlobRead {
    pub size: u64,
    pub stream: ByteStream,
}

pub struct UploadState {
    pub id: String,
    pub size: u64,
}

pub enum MountOutcome {
    Mounted(u64),
    /// The source could not be used; a fresh upload session was opened instead.
    Upload(UploadState),
}

pub struct Completed {
    pub digest: Digest,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageOutcome {
    Created,
    /// The identical manifest and tag were already there.
    Unchanged,
}

/// What a manifest write reads besides the manifest ([`Registry::push_context`]).
pub(crate) struct PushContext {
    scan: bool,
    replication: Option<String>,
    key: crate::keys::RepoKey,
}

pub struct ManifestPut {
    pub digest: Digest,
    pub subject: Option<Digest>,
    pub outcome: ImageOutcome,
    pub media_type: String,
}

pub(crate) fn upload_aad(id: &str) -> String {
    format!("upload:{id}")
}

pub(crate) fn blob_aad(digest: &str) -> String {
    format!("blob:{digest}")
}

fn store_err(e: StoreError) -> RegistryError {
    RegistryError::Store(e)
}

/// A store error on an upload's staged file: a missing one is an unknown upload.
/// Forwards an upload body to the store's writer through `tx`; a failed body
/// is passed on as `Err(())`, after which the writer discards what it wrote.
async fn feed<S>(body: &mut S, tx: mpsc::Sender<Chunk>)
where
    S: Stream<Item = std::result::Result<Bytes, String>> + Send + Unpin,
{
    while let Some(item) = body.next().await {
        match item {
            Ok(b) if b.is_empty() => continue,
            Ok(b) => {
                if tx.send(Ok(b)).await.is_err() {
                    return;
                }
            }
            Err(_) => {
                let _ = tx.send(Err(())).await;
                return;
            }
        }
    }
}

fn upload_store_err(e: StoreError) -> RegistryError {
    match e {
        StoreError::NotFound => RegistryError::UploadUnknown,
        e => store_err(e),
    }
}

impl Registry {
    /// `master` is the registry master key; the keyring derives every key from it.
    pub fn new(
        meta: Meta,
        blobs: Arc<BlobStore>,
        clock: Clock,
        config: RegistryConfig,
        master: [u8; 32],
    ) -> Self {
        let ring = Arc::new(crate::master_ring::MasterRing::new(master));
        Registry {
            cache: crate::cache::Caches::new(),
            keys: Keyring::new(ring.clone(), meta.clone()),
            identity: crate::identity::Identity::new(meta.clone(), ring),
            meta,
            blobs,
            clock,
            config,
            uploads: StdMutex::new(HashMap::new()),
            pulls: StdMutex::new(HashMap::new()),
            gc_stats: crate::GcStats::default(),
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now_millis()
    }

    /// Accounts, users, access keys, identity policies and registry tokens.
    pub fn identity(&self) -> &crate::identity::Identity {
        &self.identity
    }

    // ---- repositories --------------------------------------------------------------

    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.repository",
        skip_all
    )]
    pub async fn repository(&self, account: &str, name: &RepositoryName) -> Result<RepositoryRow> {
        self.meta
            .get_repository(account, name.as_str())
            .await?
            .ok_or_else(|| RegistryError::NameUnknown {
                account: account.to_string(),
                name: name.to_string(),
            })
    }

    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.create_repository",
        skip_all
    )]
    pub async fn create_repository(
        &self,
        account: &str,
        name: &RepositoryName,
        s: &RepoSettings,
    ) -> Result<RepositoryRow> {
        let new = NewRepository {
            account_id: account.to_string(),
            name: name.to_string(),
            created_at: self.now(),
            tag_mutability: s.tag_mutability.as_str().to_string(),
            mutability_exclusions: serde_json::to_string(&s.exclusions)
                .unwrap_or_else(|_| "[]".into()),
            scan_on_push: s.scan_on_push,
            encryption_type: s.encryption_type.clone(),
            kms_key: s.kms_key.clone(),
            tags: s.tags.clone(),
        };
        self.meta.create_repository(&new).await?.ok_or_else(|| {
            RegistryError::RepositoryAlreadyExists {
                account: account.to_string(),
                name: name.to_string(),
            }
        })
    }

    /// The repository a push goes to, created when a push creates it
    /// (`creates_on_push`: a matching `CREATE_ON_PUSH` creation template, or the
    /// deployment's default), with the template's settings.
    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.repository_for_push",
        skip_all
    )]
    pub async fn repository_for_push(
        &self,
        account: &str,
        name: &RepositoryName,
    ) -> Result<RepositoryRow> {
        match self.repository(account, name).await {
            Err(e @ RegistryError::NameUnknown { .. }) => {
                if self.creates_on_push(account, name).await? {
                    self.create_repository_on_behalf(
                        account,
                        name,
                        crate::CreationPurpose::CreateOnPush,
                    )
                    .await
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }

    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.delete_repository",
        skip_all
    )]
    pub async fn delete_repository(&self, repo: &RepositoryRow, force: bool) -> Result<()> {
        if !force && self.meta.count_images(repo.repo_id).await? > 0 {
            return Err(RegistryError::RepositoryNotEmpty {
                account: repo.account_id.clone(),
                name: repo.name.clone(),
            });
        }
        self.meta
            .delete_repository(repo.repo_id, self.now())
            .await?;
        Ok(())
    }

    /// Repository names for `/v2/_catalog`.
    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.catalog",
        skip_all
    )]
    pub async fn catalog(&self, account: &str, last: Option<&str>, n: i64) -> Result<Vec<String>> {
        Ok(self
            .meta
            .list_repositories(account, last, n)
            .await?
            .into_iter()
            .map(|r| r.name)
            .collect())
    }

    // ---- blobs ---------------------------------------------------------------------

    /// Size of a blob readable in `repo`.
    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.stat_blob",
        skip_all
    )]
    pub async fn stat_blob(&self, repo: &RepositoryRow, digest: &Digest) -> Result<u64> {
        match self
            .meta
            .linked_blob_size(repo.repo_id, digest.as_str())
            .await?
        {
            Some(s) => Ok(s as u64),
            None => Err(RegistryError::BlobUnknown),
        }
    }

    /// Opens a blob for reading; `range` is an inclusive byte range already clamped
    /// by the caller against the size.
    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.read_blob",
        skip_all
    )]
    pub async fn read_blob(
        &self,
        repo: &RepositoryRow,
        digest: &Digest,
        range: Option<(u64, u64)>,
    ) -> Result<BlobRead> {
        let blob = self.blob_ref(repo, digest.as_str()).await?;
        let size = blob.size;
        let (start, len) = match range {
            Some((s, e)) => (s, e - s + 1),
            None => (0, size),
        };
        let stream = self
            .blobs
            .get(&blob, start, len)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => RegistryError::BlobUnknown,
                e => store_err(e),
            })?;
        Ok(BlobRead { size, stream })
    }

    pub async fn delete_blob(&self, repo: &RepositoryRow, digest: &Digest) -> Result<()> {
        if self
            .meta
            .unlink_blob(repo.repo_id, digest.as_str(), self.now())
            .await?
        {
            Ok(())
        } else {
            Err(RegistryError::BlobUnknown)
        }
    }

    /// Which of `digests` are linked in the repository (ECR
    /// BatchCheckLayerAvailability): (digest, Some(size)) when available.
    pub async fn check_blobs(
        &self,
        repo: &RepositoryRow,
        digests: &[Digest],
    ) -> Result<Vec<(Digest, Option<u64>)>> {
        let mut out = Vec::with_capacity(digests.len());
        for d in digests {
            let s = self.meta.linked_blob_size(repo.repo_id, d.as_str()).await?;
            out.push((d.clone(), s.map(|s| s as u64)));
        }
        Ok(out)
    }

    // ---- uploads -------------------------------------------------------------------

    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.start_upload",
        skip_all
    )]
    pub async fn start_upload(&self, repo: &RepositoryRow) -> Result<UploadState> {
        // A repository whose KMS key is unusable takes no pushes.
        self.keys.repo_key(repo).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let dek = DataKey::generate().map_err(|e| RegistryError::Kms(e.to_string()))?;
        let wrapped = self.keys.wrap_registry(&dek, &upload_aad(&id))?;
        let staging = self.blobs.upload_create(&id).await?;
        self.meta
            .create_upload(
                &id,
                repo.repo_id,
                self.now(),
                &wrapped,
                staging.object_key(),
                &staging.to_json(),
            )
            .await?;
        self.memo(&id);
        Ok(UploadState { id, size: 0 })
    }

    fn memo(&self, id: &str) -> Arc<tokio::sync::Mutex<Option<UploadMemo>>> {
        let mut map = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(id.to_string())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(Some(UploadMemo {
                    size: 0,
                    hasher: Hasher::new(berth_oci::Algorithm::Sha256),
                })))
            })
            .clone()
    }

    fn forget(&self, id: &str) {
        self.uploads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    async fn upload_row(&self, repo: &RepositoryRow, id: &str) -> Result<berth_store::UploadRow> {
        match self.meta.get_upload(id).await? {
            Some(u) if u.repo_id == repo.repo_id => Ok(u),
            _ => Err(RegistryError::UploadUnknown),
        }
    }

    pub async fn upload_status(&self, repo: &RepositoryRow, id: &str) -> Result<UploadState> {
        let u = self.upload_row(repo, id).await?;
        Ok(UploadState {
            id: u.upload_id,
            size: u.size as u64,
        })
    }

    /// Appends a body to an upload. `start` is the first byte the client says it is
    /// sending (from Content-Range); it must equal the current size. `len` is the
    /// length the client announced, checked against what arrived.
    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.append_upload",
        skip_all
    )]
    pub async fn append_upload<S>(
        &self,
        repo: &RepositoryRow,
        id: &str,
        start: Option<u64>,
        len: Option<u64>,
        body: S,
    ) -> Result<UploadState>
    where
        S: Stream<Item = std::result::Result<Bytes, String>> + Send + Unpin,
    {
        self.append(repo, id, start, len, body, None).await
    }

    /// [`Self::append_upload`] of one ECR layer part, noted in the upload row under
    /// the write lease: a part following one shorter than `min_part` marks the
    /// upload (see [`Self::layer_part_too_small`]).
    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.append_layer_part",
        skip_all
    )]
    pub async fn append_layer_part<S>(
        &self,
        repo: &RepositoryRow,
        id: &str,
        start: u64,
        body: S,
        min_part: u64,
    ) -> Result<UploadState>
    where
        S: Stream<Item = std::result::Result<Bytes, String>> + Send + Unpin,
    {
        self.append(repo, id, Some(start), None, body, Some(min_part))
            .await
    }

    /// Whether the upload's ECR layer parts broke the minimum part size (a part
    /// under it followed by another).
    pub async fn layer_part_too_small(&self, repo: &RepositoryRow, id: &str) -> Result<bool> {
        self.upload_row(repo, id).await?;
        self.meta
            .layer_part_too_small(id)
            .await?
            .ok_or(RegistryError::UploadUnknown)
    }

    async fn append<S>(
        &self,
        repo: &RepositoryRow,
        id: &str,
        start: Option<u64>,
        len: Option<u64>,
        body: S,
        part_min: Option<u64>,
    ) -> Result<UploadState>
    where
        S: Stream<Item = std::result::Result<Bytes, String>> + Send + Unpin,
    {
        let u = self.upload_row(repo, id).await?;
        let size = u.size as u64;
        if let Some(s) = start {
            if s != size {
                return Err(RegistryError::RangeInvalid { size });
            }
        }
        let memo = self.memo(id);
        let Ok(guard) = memo.try_lock() else {
            return Err(RegistryError::UploadInvalid(
                "another request is writing to this upload".into(),
            ));
        };
        let (lease, now) = crate::lease::UploadLease::take(&self.meta, &self.clock, id).await?;
        // The row may have moved between reading it and taking the lease.
        if now.size != u.size {
            lease.release().await;
            return Err(RegistryError::RangeInvalid {
                size: now.size as u64,
            });
        }
        let res = self
            .append_leased(guard, &now, lease.owner(), len, body, part_min)
            .await;
        match res {
            // The statement that recorded the append gave the lease back.
            Ok(_) => lease.given_back(),
            Err(_) => lease.release().await,
        }
        res
    }

    /// [`Self::append_upload`] holding the upload's memo and write lease.
    async fn append_leased<S>(
        &self,
        mut guard: tokio::sync::MutexGuard<'_, Option<UploadMemo>>,
        u: &berth_store::UploadRow,
        lease_owner: &str,
        len: Option<u64>,
        body: S,
        part_min: Option<u64>,
    ) -> Result<UploadState>
    where
        S: Stream<Item = std::result::Result<Bytes, String>> + Send + Unpin,
    {
        let id = u.upload_id.as_str();
        let size = u.size as u64;
        let hasher = match guard.take() {
            Some(m) if m.size == size => Some(m.hasher),
            _ => None,
        };
        let key = self.upload_key(u)?;
        let staging = Self::staging(u)?;
        let appended = self.pump(&staging, size, hasher, body, key).await;
        let appended = match appended {
            Ok(a) => a,
            Err(e) => {
                // The partial append was rolled back to `size`; the hash state is lost.
                return Err(e);
            }
        };
        let new_staging = appended.staging.clone();
        let recorded = async {
            if let Some(l) = len {
                if appended.size - size != l {
                    return Err(RegistryError::UploadInvalid(format!(
                        "Content-Length/Content-Range announced {l} bytes but {} arrived",
                        appended.size - size
                    )));
                }
            }
            let json = new_staging.as_ref().map(Staging::to_json);
            if !self
                .meta
                .advance_upload(
                    id,
                    size as i64,
                    appended.size as i64,
                    self.now(),
                    json.as_deref(),
                    lease_owner,
                    part_min.map(|m| m as i64),
                )
                .await?
            {
                return Err(RegistryError::RangeInvalid { size });
            }
            Ok(())
        }
        .await;
        if let Some(new) = &new_staging {
            // Drop whichever staging the upload row does not name now.
            match &recorded {
                Ok(()) => self.blobs.upload_advanced(&staging, new).await,
                Err(_) => self.blobs.upload_advanced(new, &staging).await,
            }
        }
        recorded?;
        if let Some(h) = appended.hasher {
            *guard = Some(UploadMemo {
                size: appended.size,
                hasher: h,
            });
        }
        Ok(UploadState {
            id: id.to_string(),
            size: appended.size,
        })
    }

    /// Streams `body` into the blob store through a bounded channel, so memory stays
    /// bounded however large the body is.
    async fn pump<S>(
        &self,
        staging: &Staging,
        offset: u64,
        hasher: Option<Hasher>,
        mut body: S,
        key: DataKey,
    ) -> Result<berth_store::Appended>
    where
        S: Stream<Item = std::result::Result<Bytes, String>> + Send + Unpin,
    {
        // One queued body chunk (hyper hands over up to ~400 KiB each): the store
        // takes each chunk as it arrives (the encrypted store seals it on this
        // task, while it is still in cache); a deeper queue only held memory and
        // let the chunks go cold (measured: no throughput change from 4 to 1).
        let (tx, rx) = mpsc::channel::<Chunk>(1);
        let writer = self.blobs.upload_append(staging, offset, hasher, rx, key);
        let (res, ()) = tokio::join!(writer, feed(&mut body, tx));
        res.map_err(|e| match e {
            StoreError::Aborted => RegistryError::UploadInvalid("request body ended early".into()),
            e => upload_store_err(e),
        })
    }

    /// The last bytes of an upload and its completion in one request (a `PUT`
    /// with a body, a monolithic `POST ?digest=`): what [`Self::append_upload`]
    /// then [`Self::complete_upload`] do, except that the bytes go straight into
    /// the blob's object (`BlobStore::upload_append_finish`) instead of being
    /// staged first — on S3, one `PUT` for a blob pushed in one request.
    /// A body that ends early leaves the upload as it was (the client may
    /// retry); a digest or length mismatch, or a store failure, discards it, as
    /// [`Self::complete_upload`] does.
    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.append_and_complete",
        skip_all
    )]
    pub async fn append_and_complete<S>(
        &self,
        repo: &RepositoryRow,
        id: &str,
        start: Option<u64>,
        len: Option<u64>,
        body: S,
        digest: &Digest,
    ) -> Result<Completed>
    where
        S: Stream<Item = std::result::Result<Bytes, String>> + Send + Unpin,
    {
        self.append_and_complete_as(repo, id, start, len, body, digest, false)
            .await
    }

    /// [`Self::append_and_complete`]; with `verified`, the caller hashes the
    /// whole blob as it feeds it and ends `body` with an error unless it is
    /// `digest`'s content, so the store does not hash it again
    /// (`BlobStore::upload_append_finish_verified`; only for an upload that holds
    /// nothing yet).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn append_and_complete_as<S>(
        &self,
        repo: &RepositoryRow,
        id: &str,
        start: Option<u64>,
        len: Option<u64>,
        mut body: S,
        digest: &Digest,
        verified: bool,
    ) -> Result<Completed>
    where
        S: Stream<Item = std::result::Result<Bytes, String>> + Send + Unpin,
    {
        let u = self.upload_row(repo, id).await?;
        if let Some(s) = start {
            if s != u.size as u64 {
                return Err(RegistryError::RangeInvalid {
                    size: u.size as u64,
                });
            }
        }
        let memo = self.memo(id);
        let Ok(mut guard) = memo.try_lock() else {
            return Err(RegistryError::UploadInvalid(
                "another request is writing to this upload".into(),
            ));
        };
        let (lease, u) = crate::lease::UploadLease::take(&self.meta, &self.clock, id).await?;
        if u.repo_id != repo.repo_id {
            return Err(RegistryError::UploadUnknown);
        }
        let size = u.size as u64;
        if start.is_some_and(|s| s != size) {
            lease.release().await;
            return Err(RegistryError::RangeInvalid { size });
        }
        let hasher = match guard.take() {
            Some(m) if m.size == size => Some(m.hasher),
            _ => None,
        };
        let key = self.upload_key(&u)?;
        let staging = Self::staging(&u)?;
        let repo_key = self.keys.repo_key(repo).await?;
        let (tx, rx) = mpsc::channel::<Chunk>(1);
        let writer = async {
            if verified && size == 0 {
                self.blobs
                    .upload_append_finish_verified(&staging, rx, key.clone(), digest)
                    .await
            } else {
                self.blobs
                    .upload_append_finish(&staging, size, hasher, rx, key.clone(), digest)
                    .await
            }
        };
        let (finished, ()) = tokio::join!(writer, feed(&mut body, tx));
        let total = match finished {
            Ok(t) => t,
            Err(StoreError::Aborted) => {
                lease.release().await;
                return Err(RegistryError::UploadInvalid(
                    "request body ended early".into(),
                ));
            }
            Err(e) => {
                drop(guard);
                let _ = self.discard_upload(&u).await;
                return Err(match e {
                    StoreError::DigestMismatch => RegistryError::DigestMismatch,
                    e => upload_store_err(e),
                });
            }
        };
        if let Some(l) = len {
            if total - size != l {
                drop(guard);
                self.discard_upload(&u).await?;
                return Err(RegistryError::UploadInvalid(format!(
                    "Content-Length/Content-Range announced {l} bytes but {} arrived",
                    total - size
                )));
            }
        }
        // The recorded staging names what the upload held before this request
        // (an earlier tail, for `upload_done`); the blob's object key is the same.
        let committed = self
            .commit_sealed(repo, &repo_key, &staging, digest, total, &key)
            .await;
        if let Err(e) = committed {
            drop(guard);
            let _ = self.discard_upload(&u).await;
            return Err(e);
        }
        self.meta.delete_upload(id).await?;
        drop(lease);
        drop(guard);
        self.forget(id);
        if let Err(e) = self.blobs.upload_done(&staging).await {
            tracing::warn!(error = %e, upload = id, "could not remove an upload's staging leftovers");
        }
        Ok(Completed {
            digest: digest.clone(),
            size: total,
        })
    }

    /// Finishes an upload: verifies `digest`, commits the blob and links it.
    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.complete_upload",
        skip_all
    )]
    pub async fn complete_upload(
        &self,
        repo: &RepositoryRow,
        id: &str,
        digest: &Digest,
    ) -> Result<Completed> {
        self.upload_row(repo, id).await?;
        let memo = self.memo(id);
        let Ok(mut guard) = memo.try_lock() else {
            return Err(RegistryError::UploadInvalid(
                "another request is writing to this upload".into(),
            ));
        };
        // Held until the upload row is gone (or, on an error that keeps it, given
        // back when this returns).
        // The row as it stands under the lease: another node may have appended.
        let (_lease, u) = crate::lease::UploadLease::take(&self.meta, &self.clock, id).await?;
        if u.repo_id != repo.repo_id {
            return Err(RegistryError::UploadUnknown);
        }
        let hasher = match guard.take() {
            Some(m) if m.size == u.size as u64 => Some(m.hasher),
            _ => None,
        };
        let key = self.upload_key(&u)?;
        let staging = Self::staging(&u)?;
        let repo_key = self.keys.repo_key(repo).await?;
        // Verification, the final segment and durability outside the lock (the
        // staged object is this upload's own); a failure discards the upload.
        let size = match self
            .blobs
            .upload_finish(&staging, digest, hasher, u.size as u64, key.clone())
            .await
        {
            Ok(s) => s,
            Err(StoreError::DigestMismatch) => {
                drop(guard);
                self.discard_upload(&u).await?;
                return Err(RegistryError::DigestMismatch);
            }
            Err(StoreError::NotFound) => return Err(RegistryError::UploadUnknown),
            Err(e) => {
                drop(guard);
                let _ = self.discard_upload(&u).await;
                return Err(store_err(e));
            }
        };
        let committed = self
            .commit_sealed(repo, &repo_key, &staging, digest, size, &key)
            .await;
        if let Err(e) = committed {
            drop(guard);
            let _ = self.discard_upload(&u).await;
            return Err(e);
        }
        self.meta.delete_upload(id).await?;
        drop(guard);
        self.forget(id);
        if let Err(e) = self.blobs.upload_done(&staging).await {
            tracing::warn!(error = %e, upload = id, "could not remove an upload's staging leftovers");
        }
        Ok(Completed {
            digest: digest.clone(),
            size,
        })
    }

    /// Publishes a sealed upload and records it, under the digest's lock.
    async fn commit_sealed(
        &self,
        repo: &RepositoryRow,
        repo_key: &crate::keys::RepoKey,
        staging: &Staging,
        digest: &Digest,
        size: u64,
        key: &DataKey,
    ) -> Result<()> {
        // Publish under the digest's lock so the collector cannot delete the same
        // digest's file between the rename and the commit.
        // Exclusive: two uploads of the same content would otherwise both publish,
        // and (each sealed with its own data key) the second file would replace the
        // first under a blob row that wraps the first key. Serialised, the second
        // finds the blob stored and links it instead.
        let mut tx = self.meta.begin_digest_tx(digest.as_str(), true).await?;
        let link_aad = Keyring::link_aad(repo, digest.as_str());
        match Meta::blob_key(&mut tx, digest.as_str()).await? {
            // Already stored (another push): keep that ciphertext, give this
            // repository its data key, and drop the staged copy.
            Some((_, Some(blob_key))) => {
                self.link_stored_blob(&mut tx, repo, repo_key, digest.as_str(), &blob_key)
                    .await?;
                tx.commit().await?;
                self.blobs.upload_abort(staging).await?;
            }
            _ => {
                let object_key = self
                    .blobs
                    .upload_publish(staging, digest)
                    .await
                    .map_err(upload_store_err)?;
                let blob_key = self.keys.wrap_registry(key, &blob_aad(digest.as_str()))?;
                let link_key = self.keys.seal_with(repo_key, key.bytes(), &link_aad)?;
                Meta::record_blob_object(
                    &mut tx,
                    repo.repo_id,
                    digest.as_str(),
                    size as i64,
                    self.now(),
                    &blob_key,
                    &link_key,
                    &object_key,
                )
                .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Inside a digest-locked transaction: links an already stored blob into `repo`,
    /// giving the repository its data key (unwrapped from the blob row, sealed under
    /// the repository's key). The ciphertext is shared.
    pub(crate) async fn link_stored_blob(
        &self,
        tx: &mut berth_store::meta::WriteTx<'_>,
        repo: &RepositoryRow,
        repo_key: &crate::keys::RepoKey,
        digest: &str,
        blob_key: &[u8],
    ) -> Result<()> {
        let dek = self.keys.unwrap_registry(blob_key, &blob_aad(digest))?;
        let link_key =
            self.keys
                .seal_with(repo_key, dek.bytes(), &Keyring::link_aad(repo, digest))?;
        Meta::link_in(tx, repo.repo_id, digest, self.now(), &link_key).await?;
        Ok(())
    }

    fn upload_key(&self, u: &berth_store::UploadRow) -> Result<DataKey> {
        let wrapped = u
            .data_key
            .as_deref()
            .ok_or_else(|| RegistryError::UploadInvalid("the upload has no data key".into()))?;
        self.keys
            .unwrap_registry(wrapped, &upload_aad(&u.upload_id))
    }

    /// How the upload's bytes are staged (recorded in its row).
    fn staging(u: &berth_store::UploadRow) -> Result<Staging> {
        Ok(Staging::from_row(
            &u.upload_id,
            u.object_key.as_deref(),
            u.staging.as_deref(),
        )?)
    }

    async fn discard_upload(&self, u: &berth_store::UploadRow) -> Result<()> {
        let staging = Self::staging(u)?;
        self.meta.delete_upload(&u.upload_id).await?;
        self.blobs.upload_abort(&staging).await?;
        self.forget(&u.upload_id);
        Ok(())
    }

    pub async fn cancel_upload(&self, repo: &RepositoryRow, id: &str) -> Result<()> {
        let u = self.upload_row(repo, id).await?;
        self.discard_upload(&u).await
    }

    /// Cross-repository mount: links `digest` from `from` into `repo` when the blob is
    /// readable there (the caller has already checked the caller may read `from`);
    /// otherwise opens an ordinary upload session.
    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.mount_blob",
        skip_all
    )]
    pub async fn mount_blob(
        &self,
        repo: &RepositoryRow,
        digest: &Digest,
        from: Option<&RepositoryRow>,
    ) -> Result<MountOutcome> {
        if let Some(src) = from {
            if self
                .meta
                .linked_blob_size(src.repo_id, digest.as_str())
                .await?
                .is_some()
            {
                let repo_key = self.keys.repo_key(repo).await?;
                let mut tx = self.meta.begin_digest_tx(digest.as_str(), false).await?;
                if let Some((size, Some(blob_key))) =
                    Meta::blob_key(&mut tx, digest.as_str()).await?
                {
                    self.link_stored_blob(&mut tx, repo, &repo_key, digest.as_str(), &blob_key)
                        .await?;
                    tx.commit().await?;
                    return Ok(MountOutcome::Mounted(size as u64));
                }
            }
        }
        Ok(MountOutcome::Upload(self.start_upload(repo).await?))
    }

    /// Removes upload sessions idle longer than the TTL, with their staged data.
    pub async fn expire_uploads(&self) -> Result<usize> {
        let before = self.now() - self.config.upload_ttl_ms;
        let stale = self.meta.stale_uploads(before, 1000).await?;
        let mut n = 0;
        for u in &stale {
            // An upload a request (on any node) is writing right now is not
            // abandoned: skip it. Holding the lease, no append interleaves with
            // the discard, and the row read under it names the current staging.
            let Ok((lease, now)) =
                crate::lease::UploadLease::take(&self.meta, &self.clock, &u.upload_id).await
            else {
                continue;
            };
            let res = if now.updated_at < before {
                self.discard_upload(&now).await.map(|()| 1)
            } else {
                Ok(0)
            };
            lease.release().await;
            n += res?;
        }
        Ok(n)
    }

    // ---- manifests -----------------------------------------------------------------

    fn immutable(repo: &RepositoryRow, tag: &str) -> bool {
        let mode = TagMutability::parse(&repo.tag_mutability).unwrap_or(TagMutability::Mutable);
        let ex: Vec<ExclusionFilter> =
            serde_json::from_str(&repo.mutability_exclusions).unwrap_or_default();
        tag_is_immutable(mode, &ex, tag)
    }

    /// Stores a manifest under a tag or digest reference.
    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.put_manifest",
        skip_all
    )]
    pub async fn put_manifest(
        &self,
        repo: &RepositoryRow,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<ManifestPut> {
        self.put_manifest_inner(repo, reference, content_type, body, false, true)
            .await
    }

    /// [`Self::put_manifest`]; `replicated` marks a push that arrives by replication,
    /// which is not replicated again (no transitive fan-out).
    pub(crate) async fn put_manifest_from(
        &self,
        repo: &RepositoryRow,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
        replicated: bool,
    ) -> Result<ManifestPut> {
        self.put_manifest_inner(repo, reference, content_type, body, replicated, true)
            .await
    }

    /// [`Registry::put_manifest`]; with `scan` false no scan is queued whatever the
    /// scanning configuration (the SBOM referrers a scan pushes, `sbom.rs`).
    pub(crate) async fn put_manifest_scanned(
        &self,
        repo: &RepositoryRow,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
        scan: bool,
    ) -> Result<ManifestPut> {
        self.put_manifest_inner(repo, reference, content_type, body, false, scan)
            .await
    }

    /// Checks and seals one manifest push into the store's write: its digest,
    /// references, size, tag (with its immutability), the jobs it causes (scan on
    /// push, replication) and its events. Shared by [`Registry::put_manifest`] and
    /// the bulk import (`bulk.rs`).
    pub(crate) async fn manifest_write(
        &self,
        repo: &RepositoryRow,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
        replicated: bool,
        scan: bool,
    ) -> Result<(ManifestWrite, Digest, Manifest)> {
        let ctx = self.push_context(repo, replicated, scan).await?;
        self.manifest_write_in(&ctx, repo, reference, content_type, body)
            .await
    }

    /// What every manifest write to `repo` reads besides the manifest: whether
    /// to scan on push (decided before the transaction, enqueued inside it), the
    /// account's replication configuration (none for a replicated write), and
    /// the repository's sealing key. A bulk import reads it once per batch.
    pub(crate) async fn push_context(
        &self,
        repo: &RepositoryRow,
        replicated: bool,
        scan: bool,
    ) -> Result<PushContext> {
        let scan = scan
            && match self.effective_scanning(repo).await {
                Ok(e) => e.scan_on_push(),
                Err(e) => {
                    tracing::warn!(repository = %repo.name, error = %e, "could not read the scanning configuration");
                    false
                }
            };
        let replication = if replicated {
            None
        } else {
            self.meta
                .account_setting(
                    &repo.account_id,
                    berth_store::AccountSetting::ReplicationConfiguration,
                )
                .await?
        };
        Ok(PushContext {
            scan,
            replication,
            key: self.keys.repo_key(repo).await?,
        })
    }

    /// [`Self::manifest_write`] under an already read [`PushContext`].
    pub(crate) async fn manifest_write_in(
        &self,
        ctx: &PushContext,
        repo: &RepositoryRow,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<(ManifestWrite, Digest, Manifest)> {
        if body.len() > berth_oci::manifest::MAX_MANIFEST_BYTES {
            return Err(RegistryError::ManifestTooLarge);
        }
        let digest = match reference {
            Reference::Digest(d) => {
                if !d.verify(&body) {
                    return Err(RegistryError::DigestInvalid(
                        "the manifest does not match the digest in the reference".into(),
                    ));
                }
                d.clone()
            }
            Reference::Tag(_) => Digest::sha256_of(&body),
        };
        let m = Manifest::parse(&body, content_type).map_err(|e| match e {
            berth_oci::ManifestError::TooLarge => RegistryError::ManifestTooLarge,
            berth_oci::ManifestError::UnsupportedMediaType(t) => {
                RegistryError::ManifestUnsupported(t)
            }
            e => RegistryError::ManifestInvalid(e.to_string()),
        })?;
        let blobs: Vec<String> = m.required_blobs().map(|d| d.digest.to_string()).collect();
        let children: Vec<String> = m.manifests.iter().map(|d| d.digest.to_string()).collect();
        let image_size = match m.kind {
            ManifestKind::Image => m.layers_size() as i64,
            ManifestKind::Index => {
                let mut max = 0;
                for c in &m.manifests {
                    if let Some(row) = self
                        .meta
                        .get_manifest(repo.repo_id, c.digest.as_str())
                        .await?
                    {
                        max = max.max(row.image_size);
                    }
                }
                max
            }
        };
        let tag = match reference {
            Reference::Tag(t) => Some((t.to_string(), Self::immutable(repo, t.as_str()))),
            Reference::Digest(_) => None,
        };
        let mut jobs = if ctx.scan {
            vec![berth_store::scans::scan_job(repo.repo_id, digest.as_str())?]
        } else {
            Vec::new()
        };
        let tag_name = tag.as_ref().map(|(t, _)| t.as_str());
        jobs.extend(Self::replication_jobs_for(
            ctx.replication.as_deref(),
            repo,
            digest.as_str(),
            tag_name,
        )?);
        let events = crate::events::push_events(
            repo,
            digest.as_str(),
            reference,
            &m.media_type,
            m.effective_artifact_type(),
            m.subject.as_ref().map(|s| s.digest.as_str()),
        );
        let w = ManifestWrite {
            repo_id: repo.repo_id,
            digest: digest.to_string(),
            media_type: m.media_type.clone(),
            artifact_type: m.effective_artifact_type().map(str::to_string),
            subject: m.subject.as_ref().map(|s| s.digest.to_string()),
            config_digest: m.config.as_ref().map(|c| c.digest.to_string()),
            image_size,
            // Stored sealed under the repository's key.
            body: self.keys.seal_with(
                &ctx.key,
                &body,
                &Keyring::manifest_aad(repo, digest.as_str()),
            )?,
            pushed_at: self.now(),
            blobs,
            children,
            tag,
            jobs,
            events,
        };
        Ok((w, digest, m))
    }

    async fn put_manifest_inner(
        &self,
        repo: &RepositoryRow,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
        replicated: bool,
        scan: bool,
    ) -> Result<ManifestPut> {
        let (w, digest, m) = self
            .manifest_write(repo, reference, content_type, body, replicated, scan)
            .await?;
        let outcome = match self.meta.put_manifest(&w).await? {
            PutManifestOutcome::Stored { .. } => ImageOutcome::Created,
            PutManifestOutcome::Unchanged => ImageOutcome::Unchanged,
            PutManifestOutcome::MissingBlobs(b) => {
                return Err(RegistryError::ManifestBlobUnknown(b))
            }
            PutManifestOutcome::MissingManifests(c) => {
                return Err(RegistryError::ManifestChildUnknown(c))
            }
            PutManifestOutcome::TagImmutable { .. } => {
                return Err(RegistryError::TagImmutable {
                    tag: reference.to_string(),
                    repository: repo.name.clone(),
                })
            }
        };
        Ok(ManifestPut {
            digest,
            subject: m.subject.map(|s| s.digest),
            outcome,
            media_type: m.media_type,
        })
    }

    /// Looks a manifest up without counting a pull.
    pub async fn find_manifest(
        &self,
        repo: &RepositoryRow,
        reference: &Reference,
    ) -> Result<ManifestRow> {
        let row = match reference {
            Reference::Tag(t) => {
                self.meta
                    .get_manifest_by_tag(repo.repo_id, t.as_str())
                    .await?
            }
            Reference::Digest(d) => self.meta.get_manifest(repo.repo_id, d.as_str()).await?,
        };
        let mut row = row.ok_or(RegistryError::ManifestUnknown)?;
        self.open_body(repo, &mut row).await?;
        Ok(row)
    }

    /// [`Registry::find_manifest`] through the manifest cache (`cache.rs`).
    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.find_manifest_for_read",
        skip_all
    )]
    pub async fn find_manifest_for_read(
        &self,
        repo: &RepositoryRow,
        reference: &Reference,
    ) -> Result<ManifestRow> {
        let row = self
            .manifest_row_cached(repo, reference)
            .await?
            .ok_or(RegistryError::ManifestUnknown)?;
        let mut row = ManifestRow::clone(&row);
        self.open_body(repo, &mut row).await?;
        Ok(row)
    }

    /// Decrypts a stored manifest body in place.
    async fn open_body(&self, repo: &RepositoryRow, row: &mut ManifestRow) -> Result<()> {
        row.body = self
            .keys
            .open_for(repo, &row.body, &Keyring::manifest_aad(repo, &row.digest))
            .await?;
        Ok(())
    }

    /// The manifests whose subject is `subject`, bodies decrypted.
    pub async fn referrer_rows(
        &self,
        repo: &RepositoryRow,
        subject: &str,
    ) -> Result<Vec<ManifestRow>> {
        let mut rows = self.meta.referrers(repo.repo_id, subject).await?;
        for r in rows.iter_mut() {
            self.open_body(repo, r).await?;
        }
        Ok(rows)
    }

    /// A repository by id (background workers hold ids, not names).
    pub async fn repository_by_id(&self, repo_id: i64) -> Result<Option<RepositoryRow>> {
        Ok(self.meta.get_repository_by_id(repo_id).await?)
    }

    /// A manifest by digest with its body decrypted, for background workers.
    pub async fn manifest_plain(
        &self,
        repo: &RepositoryRow,
        digest: &str,
    ) -> Result<Option<ManifestRow>> {
        let Some(mut row) = self.meta.get_manifest(repo.repo_id, digest).await? else {
            return Ok(None);
        };
        self.open_body(repo, &mut row).await?;
        Ok(Some(row))
    }

    /// Where a blob linked in `repo` is stored, its size and its data key (for
    /// reads, and readers that stream blobs themselves, such as the scanner).
    pub async fn blob_ref(&self, repo: &RepositoryRow, digest: &str) -> Result<BlobRef> {
        let (size, wrapped, object_key) = self
            .meta
            .linked_blob_object(repo.repo_id, digest)
            .await?
            .ok_or(RegistryError::BlobUnknown)?;
        let key = self.keys.link_key(repo, digest, wrapped.as_deref()).await?;
        Ok(BlobRef {
            object_key,
            size: size as u64,
            key,
        })
    }

    /// Fetches a manifest for a pull and records the pull time (batched).
    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.pull_manifest",
        skip_all
    )]
    pub async fn pull_manifest(
        &self,
        repo: &RepositoryRow,
        reference: &Reference,
    ) -> Result<ManifestRow> {
        let row = self.find_manifest_for_read(repo, reference).await?;
        self.note_pull(repo.repo_id, &row.digest);
        Ok(row)
    }

    /// [`Registry::manifest_for_serving`] for a pull: records the pull time
    /// (batched), as [`Registry::pull_manifest`] does.
    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.pull_manifest",
        skip_all
    )]
    pub async fn pull_served(
        &self,
        repo: &RepositoryRow,
        reference: &Reference,
    ) -> Result<Arc<crate::ServedManifest>> {
        let m = self.manifest_for_serving(repo, reference).await?;
        self.note_pull(repo.repo_id, m.digest_str());
        Ok(m)
    }

    /// Buffers a pull time for [`Registry::flush_pulls`].
    fn note_pull(&self, repo_id: i64, digest: &str) {
        let now = self.now();
        let mut pulls = self.pulls.lock().unwrap_or_else(|e| e.into_inner());
        let of_repo = pulls.entry(repo_id).or_default();
        match of_repo.get_mut(digest) {
            Some(t) => *t = now,
            None => {
                of_repo.insert(digest.to_string(), now);
            }
        }
    }

    /// Writes buffered pull times; called periodically and at shutdown.
    pub async fn flush_pulls(&self) -> Result<()> {
        let batch: Vec<(i64, String, i64)> = {
            let mut p = self.pulls.lock().unwrap_or_else(|e| e.into_inner());
            p.drain()
                .flat_map(|(r, digests)| digests.into_iter().map(move |(d, t)| (r, d, t)))
                .collect()
        };
        self.meta.record_pulls(&batch).await?;
        Ok(())
    }

    /// DELETE by digest removes the manifest and its tags; by tag removes the tag.
    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.delete_manifest",
        skip_all
    )]
    pub async fn delete_manifest(
        &self,
        repo: &RepositoryRow,
        reference: &Reference,
    ) -> Result<Vec<String>> {
        self.delete_manifest_from(repo, reference, false).await
    }

    /// [`Self::delete_manifest`]; `replicated` marks a deletion that arrives by
    /// replication, which is not replicated again. Otherwise the deletion's
    /// replication jobs are enqueued in the deletion's own transaction.
    pub(crate) async fn delete_manifest_from(
        &self,
        repo: &RepositoryRow,
        reference: &Reference,
        replicated: bool,
    ) -> Result<Vec<String>> {
        let tag = match reference {
            Reference::Tag(t) => Some(t.as_str()),
            Reference::Digest(_) => None,
        };
        let replication = if replicated {
            None
        } else {
            self.deletion_replication(repo, tag).await?
        };
        let jobs = |digest: &str| match &replication {
            Some(r) => r.jobs(digest),
            None => Ok(Vec::new()),
        };
        match reference {
            Reference::Tag(t) => match self
                .meta
                .delete_tag(repo.repo_id, t.as_str(), &jobs)
                .await?
            {
                Some(_) => Ok(vec![t.to_string()]),
                None => Err(RegistryError::ManifestUnknown),
            },
            Reference::Digest(d) => {
                match self
                    .meta
                    .delete_manifest(repo.repo_id, d.as_str(), self.now(), &jobs)
                    .await?
                {
                    DeleteManifestOutcome::Deleted { tags } => Ok(tags),
                    DeleteManifestOutcome::NotFound => Err(RegistryError::ManifestUnknown),
                    DeleteManifestOutcome::ReferencedBy(p) => {
                        Err(RegistryError::ReferencedByIndex(p))
                    }
                }
            }
        }
    }

    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.list_tags",
        skip_all
    )]
    pub async fn list_tags(
        &self,
        repo: &RepositoryRow,
        last: Option<&str>,
        n: i64,
    ) -> Result<Vec<String>> {
        Ok(self.meta.list_tags(repo.repo_id, last, n).await?)
    }

    /// The referrers of `subject` as an OCI image index, optionally filtered by
    /// artifact type (Distribution Spec v1.1, "Listing Referrers").
    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.referrers",
        skip_all
    )]
    pub async fn referrers(
        &self,
        repo: &RepositoryRow,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<serde_json::Value> {
        let rows = self.referrer_rows(repo, subject.as_str()).await?;
        let mut manifests = Vec::new();
        for r in rows {
            if let Some(want) = artifact_type {
                if r.artifact_type.as_deref() != Some(want) {
                    continue;
                }
            }
            let mut d = serde_json::json!({
                "mediaType": r.media_type,
                "digest": r.digest,
                "size": r.body.len(),
            });
            if let Some(at) = &r.artifact_type {
                d["artifactType"] = serde_json::Value::String(at.clone());
            }
            if let Ok(serde_json::Value::Object(o)) =
                serde_json::from_slice::<serde_json::Value>(&r.body)
            {
                if let Some(a) = o.get("annotations") {
                    d["annotations"] = a.clone();
                }
            }
            manifests.push(d);
        }
        Ok(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": manifests,
        }))
    }

    /// Validates a tag from a client.
    pub fn parse_tag(s: &str) -> Result<ImageTag> {
        ImageTag::parse(s).map_err(|_| RegistryError::TagInvalid)
    }
}

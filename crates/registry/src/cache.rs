//! Caches of the read path (`docs/architecture.md`, "Caches"): what authorizing a
//! request and answering a manifest read need — whether the principal exists, its
//! identity policies (parsed) and tags, a repository's row and resource tags, the
//! registry policy (parsed), parsed repository policies, pull-through rules,
//! pull-time exclusions, and manifests by (repository, reference).
//!
//! Every entry is valid only under the **cache epoch** it was loaded under: a
//! counter in the metadata store that triggers increment in every transaction
//! changing any of these inputs (schema v20), whichever node, process or code path
//! (`berth admin` included) makes the change. Each request reads the counter once,
//! at its first cached input ([`in_request`] scopes the request), and again after
//! any write transaction of this process, so a change committed anywhere before a
//! request starts is honoured by that request on every node: one indexed
//! single-row read replaces the request's ~8 reads of principals, policies, tags,
//! repositories and manifests.
//!
//! While the counter cannot be read, nothing is cached or served from the caches
//! (every input is read from the store, which then fails closed as before), and
//! outside a request scope (background work) nothing is cached either.
//! Authorization is still evaluated on every request: the caches only save
//! reading and parsing its inputs.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex as StdMutex};

use berth_iam::policy::PolicyDocument;
use berth_store::{ManifestRow, RepositoryRow};

use crate::pull_through::PullThroughRule;

type Result<T> = std::result::Result<T, crate::RegistryError>;

tokio::task_local! {
    /// The epoch this request uses, with this process's write count when read.
    static REQUEST_EPOCH: std::cell::Cell<Option<(i64, u64)>>;
}

/// Runs `f` (one request) with its own cache epoch.
pub async fn in_request<F: std::future::Future>(f: F) -> F::Output {
    REQUEST_EPOCH.scope(std::cell::Cell::new(None), f).await
}

/// Entries per cache before it is emptied (a bound on memory, not an LRU).
const MAX_ENTRIES: usize = 4096;
/// Manifests larger than this are not cached.
const MAX_CACHED_MANIFEST: usize = 16 * 1024;

/// Values loaded under one epoch.
pub(crate) struct Memo<K, V> {
    map: StdMutex<HashMap<K, (i64, V)>>,
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    fn new() -> Self {
        Memo {
            map: StdMutex::new(HashMap::new()),
        }
    }

    pub(crate) fn get<Q>(&self, k: &Q, epoch: i64) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match m.get(k) {
            Some((e, v)) if *e == epoch => Some(v.clone()),
            _ => None,
        }
    }

    pub(crate) fn put(&self, k: K, epoch: i64, v: V) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_ENTRIES {
            m.clear();
        }
        m.insert(k, (epoch, v));
    }

    fn clear(&self) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// A key of two strings looked up without building one: `(String, String)` keys
/// are found by `&(a, b)` of `&str`s (the same hash: a tuple hashes its fields in
/// order, and `String` hashes as `str`).
pub(crate) trait StrPair {
    fn parts(&self) -> (&str, &str);
}

impl StrPair for (String, String) {
    fn parts(&self) -> (&str, &str) {
        (&self.0, &self.1)
    }
}

impl StrPair for (&str, &str) {
    fn parts(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl<'a> Borrow<dyn StrPair + 'a> for (String, String) {
    fn borrow(&self) -> &(dyn StrPair + 'a) {
        self
    }
}

impl Hash for dyn StrPair + '_ {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.parts().hash(h)
    }
}

impl PartialEq for dyn StrPair + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn StrPair + '_ {}

/// [`StrPair`] for `(i64, String)` keys (a repository id and a reference).
pub(crate) trait IdStr {
    fn parts(&self) -> (i64, &str);
}

impl IdStr for (i64, String) {
    fn parts(&self) -> (i64, &str) {
        (self.0, &self.1)
    }
}

impl IdStr for (i64, &str) {
    fn parts(&self) -> (i64, &str) {
        (self.0, self.1)
    }
}

impl<'a> Borrow<dyn IdStr + 'a> for (i64, String) {
    fn borrow(&self) -> &(dyn IdStr + 'a) {
        self
    }
}

impl Hash for dyn IdStr + '_ {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.parts().hash(h)
    }
}

impl PartialEq for dyn IdStr + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn IdStr + '_ {}

/// The text of a reference (a tag or a digest), as `Display` writes it.
fn reference_str(r: &berth_oci::Reference) -> &str {
    match r {
        berth_oci::Reference::Tag(t) => t.as_str(),
        berth_oci::Reference::Digest(d) => d.as_str(),
    }
}

/// A manifest ready to serve: its body opened, its header values prepared once
/// when it is loaded, so a cache hit costs reference counts, not a decryption,
/// copies and formatting.
#[derive(Debug, Clone)]
pub struct ServedManifest {
    /// `sha256:…`.
    pub digest: bytes::Bytes,
    pub media_type: bytes::Bytes,
    /// The body's length in decimal (`Content-Length`, also for `HEAD`).
    pub content_length: bytes::Bytes,
    /// The digest in double quotes (`ETag`).
    pub etag: bytes::Bytes,
    pub body: bytes::Bytes,
}

impl ServedManifest {
    fn new(row: &ManifestRow, body: Vec<u8>) -> Self {
        ServedManifest {
            digest: bytes::Bytes::copy_from_slice(row.digest.as_bytes()),
            media_type: bytes::Bytes::copy_from_slice(row.media_type.as_bytes()),
            content_length: bytes::Bytes::from(body.len().to_string()),
            etag: bytes::Bytes::from(format!("\"{}\"", row.digest)),
            body: bytes::Bytes::from(body),
        }
    }

    /// The digest as text.
    pub fn digest_str(&self) -> &str {
        std::str::from_utf8(&self.digest).unwrap_or_default()
    }
}

/// Identity policies of a principal: (name, parsed document).
pub type IdentityPolicies = Arc<Vec<(String, PolicyDocument)>>;
/// Tags as (key, value) pairs.
pub type Tags = Arc<Vec<(String, String)>>;

pub(crate) struct Caches {
    /// On in `berth serve` ([`crate::Registry::enable_caches`]).
    enabled: std::sync::atomic::AtomicBool,
    /// The highest epoch read; -1: unknown.
    state: StdMutex<i64>,
    /// By (account, user name; empty for the root).
    pub(crate) principals: Memo<(String, String), bool>,
    /// By (account, user name).
    pub(crate) identity_policies: Memo<(String, String), IdentityPolicies>,
    pub(crate) user_tags: Memo<String, Tags>,
    pub(crate) repositories: Memo<(String, String), Option<RepositoryRow>>,
    pub(crate) repository_tags: Memo<(String, String), Tags>,
    pub(crate) registry_policies: Memo<String, Option<Arc<PolicyDocument>>>,
    pub(crate) pull_through_rules: Memo<String, Arc<Vec<PullThroughRule>>>,
    pub(crate) pull_time_exclusions: Memo<String, Arc<Vec<(String, i64)>>>,
    pub(crate) manifests: Memo<(i64, String), Arc<ManifestRow>>,
    /// Opened manifests by (repository, reference), only those sealed under the
    /// registry's own keys: their plaintext is a function of the sealed row
    /// (re-sealing bumps the epoch). Manifests under a KMS key are opened per
    /// request, so the key's state is checked every time.
    pub(crate) served_manifests: Memo<(i64, String), Arc<ServedManifest>>,
    /// Repository policy text → parsed document (a pure function of the text).
    pub(crate) parsed_repository_policies: Memo<String, Arc<PolicyDocument>>,
}

impl Caches {
    pub(crate) fn new() -> Self {
        Caches {
            enabled: std::sync::atomic::AtomicBool::new(false),
            state: StdMutex::new(-1),
            principals: Memo::new(),
            identity_policies: Memo::new(),
            user_tags: Memo::new(),
            repositories: Memo::new(),
            repository_tags: Memo::new(),
            registry_policies: Memo::new(),
            pull_through_rules: Memo::new(),
            pull_time_exclusions: Memo::new(),
            manifests: Memo::new(),
            served_manifests: Memo::new(),
            parsed_repository_policies: Memo::new(),
        }
    }

    fn clear(&self) {
        self.principals.clear();
        self.identity_policies.clear();
        self.user_tags.clear();
        self.repositories.clear();
        self.repository_tags.clear();
        self.registry_policies.clear();
        self.pull_through_rules.clear();
        self.pull_time_exclusions.clear();
        self.manifests.clear();
        self.served_manifests.clear();
    }
}

impl crate::Registry {
    /// The epoch a request may use cached values of (and load new ones under), or
    /// `None` when caching is off (not enabled, outside a request, or the counter
    /// cannot be read).
    pub(crate) async fn cache_epoch(&self) -> Option<i64> {
        if !self
            .cache
            .enabled
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return None;
        }
        let writes = self.meta.local_writes();
        let held = REQUEST_EPOCH.try_with(|c| c.get()).ok()?;
        if let Some((e, seen)) = held {
            if seen == writes {
                return Some(e);
            }
        }
        let e = self.refresh_cache().await?;
        let _ = REQUEST_EPOCH.try_with(|c| c.set(Some((e, writes))));
        Some(e)
    }

    /// Reads the cache epoch from the store; entries of an older epoch are dropped.
    /// On failure the caches are emptied.
    async fn refresh_cache(&self) -> Option<i64> {
        match self.meta.cache_epoch().await {
            Ok(e) => {
                let mut st = self.cache.state.lock().unwrap_or_else(|p| p.into_inner());
                if e > *st {
                    if *st >= 0 {
                        self.cache.clear();
                    }
                    *st = e;
                }
                // A value below the one held (a slower concurrent read) changes
                // nothing: the counter only grows.
                Some(*st)
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the cache epoch; not caching");
                *self.cache.state.lock().unwrap_or_else(|p| p.into_inner()) = -1;
                self.cache.clear();
                None
            }
        }
    }

    /// Turns the caches on (`berth serve`; off elsewhere, e.g. in tools that
    /// embed the core).
    pub fn enable_caches(&self) {
        self.cache
            .enabled
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the principal still exists (cached).
    pub async fn principal_exists(
        &self,
        p: &crate::identity::Principal,
    ) -> std::result::Result<bool, crate::identity::IdentityError> {
        let epoch = self.cache_epoch().await;
        let user = p.user_name.as_deref().unwrap_or("");
        let key: &dyn StrPair = &(p.account_id.as_str(), user);
        if let Some(v) = epoch.and_then(|e| self.cache.principals.get(key, e)) {
            return Ok(v);
        }
        let v = self.identity().principal_exists(p).await?;
        if let Some(e) = epoch {
            let key = (p.account_id.clone(), user.to_string());
            self.cache.principals.put(key, e, v);
        }
        Ok(v)
    }

    /// A repository for a read (cached). Writes read it from the store
    /// ([`crate::Registry::repository`]) inside their own checks.
    pub async fn repository_for_read(
        &self,
        account: &str,
        name: &berth_oci::RepositoryName,
    ) -> Result<RepositoryRow> {
        let epoch = self.cache_epoch().await;
        let key: &dyn StrPair = &(account, name.as_str());
        let row = match epoch.and_then(|e| self.cache.repositories.get(key, e)) {
            Some(row) => row,
            None => {
                let row = self.meta.get_repository(account, name.as_str()).await?;
                if let Some(e) = epoch {
                    let key = (account.to_string(), name.as_str().to_string());
                    self.cache.repositories.put(key, e, row.clone());
                }
                row
            }
        };
        row.ok_or_else(|| crate::RegistryError::NameUnknown {
            account: account.to_string(),
            name: name.to_string(),
        })
    }

    /// A stored manifest by tag or digest, sealed as stored (cached).
    pub(crate) async fn manifest_row_cached(
        &self,
        repo: &RepositoryRow,
        reference: &berth_oci::Reference,
    ) -> Result<Option<Arc<ManifestRow>>> {
        let epoch = self.cache_epoch().await;
        let lookup: &dyn IdStr = &(repo.repo_id, reference_str(reference));
        if let Some(m) = epoch.and_then(|e| self.cache.manifests.get(lookup, e)) {
            return Ok(Some(m));
        }
        let key = (repo.repo_id, reference.to_string());
        let row = match reference {
            berth_oci::Reference::Tag(t) => {
                self.meta
                    .get_manifest_by_tag(repo.repo_id, t.as_str())
                    .await?
            }
            berth_oci::Reference::Digest(d) => {
                self.meta.get_manifest(repo.repo_id, d.as_str()).await?
            }
        };
        let Some(row) = row else { return Ok(None) };
        let row = Arc::new(row);
        if let Some(e) = epoch {
            if row.body.len() <= MAX_CACHED_MANIFEST {
                self.cache.manifests.put(key, e, row.clone());
            }
        }
        Ok(Some(row))
    }

    /// A manifest to serve by tag or digest (cached opened when it is sealed
    /// under the registry's keys; see [`Caches::served_manifests`]).
    #[tracing::instrument(
        target = "berth_otel",
        level = "trace",
        name = "core.find_manifest_for_read",
        skip_all
    )]
    pub async fn manifest_for_serving(
        &self,
        repo: &RepositoryRow,
        reference: &berth_oci::Reference,
    ) -> Result<Arc<ServedManifest>> {
        let epoch = self.cache_epoch().await;
        let lookup: &dyn IdStr = &(repo.repo_id, reference_str(reference));
        if let Some(m) = epoch.and_then(|e| self.cache.served_manifests.get(lookup, e)) {
            return Ok(m);
        }
        let row = self
            .manifest_row_cached(repo, reference)
            .await?
            .ok_or(crate::RegistryError::ManifestUnknown)?;
        let by_registry_key = crate::keys::sealed_by_registry_key(&row.body);
        let body = self
            .keys
            .open_for(
                repo,
                &row.body,
                &crate::keys::Keyring::manifest_aad(repo, &row.digest),
            )
            .await?;
        let served = Arc::new(ServedManifest::new(&row, body));
        if let (Some(e), true) = (epoch, by_registry_key) {
            if served.body.len() <= MAX_CACHED_MANIFEST {
                let key = (repo.repo_id, reference.to_string());
                self.cache.served_manifests.put(key, e, served.clone());
            }
        }
        Ok(served)
    }

    /// The account's pull-through cache rules (cached), for the read path.
    pub async fn pull_through_rules_for_read(
        &self,
        account: &str,
    ) -> Result<Arc<Vec<PullThroughRule>>> {
        let epoch = self.cache_epoch().await;
        if let Some(v) = epoch.and_then(|e| self.cache.pull_through_rules.get(account, e)) {
            return Ok(v);
        }
        let v = Arc::new(self.pull_through_rules(account).await?);
        if let Some(e) = epoch {
            self.cache
                .pull_through_rules
                .put(account.to_string(), e, v.clone());
        }
        Ok(v)
    }

    /// The account's pull-time exclusions (cached), for the read path.
    pub(crate) async fn pull_time_exclusions_for_read(
        &self,
        account: &str,
    ) -> Result<Arc<Vec<(String, i64)>>> {
        let epoch = self.cache_epoch().await;
        if let Some(v) = epoch.and_then(|e| self.cache.pull_time_exclusions.get(account, e)) {
            return Ok(v);
        }
        let v = Arc::new(self.pull_time_exclusions(account).await?);
        if let Some(e) = epoch {
            self.cache
                .pull_time_exclusions
                .put(account.to_string(), e, v.clone());
        }
        Ok(v)
    }
}

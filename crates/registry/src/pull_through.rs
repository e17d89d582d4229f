//! Pull-through cache rules (ECR `PullThroughCacheRule`): which upstream registry a
//! repository prefix of this registry mirrors. The front end validates a rule before
//! it reaches the core; the core stores it as JSON and finds the rule for a name
//! (the longest matching prefix, `ROOT` last). Only the credential and the role of a
//! rule change after it is created.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex, OnceLock};

use berth_oci::manifest::{Manifest, ManifestKind};
use berth_oci::{Digest, Reference};
use berth_store::meta::{DocTable, TemplateRow};
use berth_store::RepositoryRow;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::upstream::{Upstream, UpstreamError};
use crate::{Registry, RegistryError};

type Result<T> = std::result::Result<T, RegistryError>;

/// A pull-through cache rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullThroughRule {
    /// The repository prefix in this registry, or `ROOT`.
    pub ecr_prefix: String,
    /// `host[:port]` reached over HTTPS, or an explicit `http://host:port`.
    pub upstream_url: String,
    /// ECR's `upstreamRegistry` kind (`docker-hub`, `quay`, …).
    pub upstream_registry: String,
    pub credential_arn: Option<String>,
    pub custom_role_arn: Option<String>,
    /// The upstream repository prefix replacing `ecr_prefix`, or `ROOT`; `None`
    /// (read as `ROOT`) when the rule was created without one — ECR then leaves
    /// `upstreamRepositoryPrefix` out of its answers, and Terraform, whose
    /// attribute is not computed, plans clean only that way.
    #[serde(default)]
    pub upstream_prefix: Option<String>,
    #[serde(skip)]
    pub created_at: i64,
    #[serde(skip)]
    pub updated_at: i64,
}

impl PullThroughRule {
    /// The upstream repository `name` (a repository of this registry) mirrors, when
    /// this rule covers it.
    pub fn upstream_name(&self, name: &str) -> Option<String> {
        let rest = if self.ecr_prefix == crate::TEMPLATE_ROOT {
            name
        } else {
            let p = self.ecr_prefix.trim_end_matches('/');
            name.strip_prefix(p)?.strip_prefix('/')?
        };
        if rest.is_empty() {
            return None;
        }
        Some(match self.upstream_prefix.as_deref() {
            None | Some(crate::TEMPLATE_ROOT) => rest.to_string(),
            Some(p) => format!("{}/{rest}", p.trim_end_matches('/')),
        })
    }
}

/// The rule among `all` that covers `name`: the longest prefix, `ROOT` last.
pub fn matching_rule<'a>(all: &'a [PullThroughRule], name: &str) -> Option<&'a PullThroughRule> {
    all.iter()
        .filter(|r| r.upstream_name(name).is_some())
        .max_by_key(|r| {
            if r.ecr_prefix == crate::TEMPLATE_ROOT {
                0
            } else {
                r.ecr_prefix.trim_end_matches('/').len()
            }
        })
}

fn from_row(r: TemplateRow) -> Result<PullThroughRule> {
    let mut rule: PullThroughRule = serde_json::from_str(&r.body).map_err(|e| {
        RegistryError::Store(berth_store::StoreError::Conflict(format!(
            "stored pull-through cache rule {} does not parse: {e}",
            r.prefix
        )))
    })?;
    rule.ecr_prefix = r.prefix;
    rule.created_at = r.created_at;
    rule.updated_at = r.updated_at;
    Ok(rule)
}

fn body(r: &PullThroughRule) -> String {
    serde_json::to_string(r).expect("a rule serializes")
}

impl Registry {
    /// Every pull-through cache rule of `account`, in prefix order.
    pub async fn pull_through_rules(&self, account: &str) -> Result<Vec<PullThroughRule>> {
        self.meta
            .list_templates(DocTable::PullThroughRules, account)
            .await?
            .into_iter()
            .map(from_row)
            .collect()
    }

    /// Stores a new rule; `None` when its prefix already has one.
    pub async fn create_pull_through_rule(
        &self,
        account: &str,
        r: &PullThroughRule,
    ) -> Result<Option<PullThroughRule>> {
        let now = self.now();
        let inserted = self
            .meta
            .insert_template(
                DocTable::PullThroughRules,
                account,
                &r.ecr_prefix,
                &body(r),
                now,
            )
            .await?;
        Ok(inserted.then(|| PullThroughRule {
            created_at: now,
            updated_at: now,
            ..r.clone()
        }))
    }

    /// Replaces a rule; `None` when its prefix has none.
    pub async fn update_pull_through_rule(
        &self,
        account: &str,
        r: &PullThroughRule,
    ) -> Result<Option<PullThroughRule>> {
        let now = self.now();
        let updated = self
            .meta
            .update_template(
                DocTable::PullThroughRules,
                account,
                &r.ecr_prefix,
                &body(r),
                now,
            )
            .await?;
        Ok(updated.then(|| PullThroughRule {
            updated_at: now,
            ..r.clone()
        }))
    }

    /// Deletes a rule and returns it. Cached repositories stay as they are.
    pub async fn delete_pull_through_rule(
        &self,
        account: &str,
        prefix: &str,
    ) -> Result<Option<PullThroughRule>> {
        self.meta
            .delete_template(DocTable::PullThroughRules, account, prefix)
            .await?
            .map(from_row)
            .transpose()
    }
}

/// Why a pull through a rule could not be served from the upstream.
#[derive(Debug, thiserror::Error)]
pub enum PullThroughError {
    #[error("the credential of the pull-through cache rule cannot be used: {0}")]
    Credential(String),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("the upstream registry sent {0}")]
    Invalid(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<berth_store::StoreError> for PullThroughError {
    fn from(e: berth_store::StoreError) -> Self {
        PullThroughError::Registry(RegistryError::Store(e))
    }
}

/// How long a pull-through lease holds without being renewed (a blob transfer
/// renews it as it goes); a node that dies holding one delays the others this long
/// at most — the completion job of an image fetched by a node that crashed
/// mid-transfer, for one.
const LEASE_MS: i64 = 30 * 1000;
/// How often a long blob transfer renews its lease.
pub const LEASE_RENEW_MS: i64 = 10 * 1000;
const LEASE_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Upstream clients by (account, rule, credential), with when they were made.
type Clients = HashMap<String, (std::time::Instant, Arc<Upstream>)>;
const CLIENT_TTL: std::time::Duration = std::time::Duration::from_secs(60);

fn clients() -> &'static StdMutex<Clients> {
    static C: OnceLock<StdMutex<Clients>> = OnceLock::new();
    C.get_or_init(Default::default)
}

/// Imports in progress on this node, one per (repository, reference): a second
/// pull of the same uncached image waits for the first and then reads the cache.
fn inflight() -> &'static StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
    static M: OnceLock<StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    M.get_or_init(Default::default)
}

/// Manifest trees fetched from an upstream on this node but not stored yet, by
/// (repository, reference) — each manifest under the reference it was asked as and
/// under its digest — with when they were fetched, for [`RECENT_TTL`].
struct Recent {
    at: std::time::Instant,
    tree: Arc<Vec<FetchedManifest>>,
    index: usize,
}
const RECENT_TTL: std::time::Duration = std::time::Duration::from_secs(120);
/// [`RECENT_TTL`] in milliseconds: how long the database keeps a fetched tree.
const RECENT_MS: i64 = RECENT_TTL.as_millis() as i64;

fn recent() -> &'static StdMutex<HashMap<(i64, String), Recent>> {
    static R: OnceLock<StdMutex<HashMap<(i64, String), Recent>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

fn recent_put(repo_id: i64, tree: &[FetchedManifest]) {
    let tree = Arc::new(tree.to_vec());
    let mut r = recent().lock().unwrap_or_else(|e| e.into_inner());
    let at = std::time::Instant::now();
    r.retain(|_, e| e.at.elapsed() < RECENT_TTL);
    for (index, m) in tree.iter().enumerate() {
        for key in [m.reference.to_string(), m.digest.to_string()] {
            let tree = tree.clone();
            r.insert((repo_id, key), Recent { at, tree, index });
        }
    }
}

/// The tree fetched for `reference` (as its top manifest) since `since`.
fn recent_tree(
    repo_id: i64,
    reference: &Reference,
    since: std::time::Instant,
) -> Option<Vec<FetchedManifest>> {
    let r = recent().lock().unwrap_or_else(|e| e.into_inner());
    let e = r.get(&(repo_id, reference.to_string()))?;
    (e.at >= since && e.index + 1 == e.tree.len()).then(|| e.tree.to_vec())
}

impl Registry {
    /// A manifest of `repo` fetched from its upstream by this node in the last two
    /// minutes and not stored yet (its blobs are still being fetched): a HEAD
    /// before the GET, or a platform manifest read after its index, is served
    /// again without asking the upstream, whose manifest reads are often
    /// rate-limited.
    pub fn recently_fetched(&self, repo_id: i64, reference: &Reference) -> Option<FetchedManifest> {
        let mut r = recent().lock().unwrap_or_else(|e| e.into_inner());
        r.retain(|_, e| e.at.elapsed() < RECENT_TTL);
        r.get(&(repo_id, reference.to_string()))
            .map(|e| e.tree[e.index].clone())
    }

    /// The tree another node fetched under the import lease `lease` since
    /// `since` (registry time) and recorded for the others; a record that cannot
    /// be read is ignored (the caller fetches).
    async fn fetched_elsewhere(&self, lease: &str, since: i64) -> Option<Vec<FetchedManifest>> {
        let text = match self.meta.pull_through_fetched(lease, since).await {
            Ok(t) => t?,
            Err(e) => {
                tracing::warn!(error = %e, "pull-through cache: could not read the manifests another node fetched");
                return None;
            }
        };
        match crate::pull_through_jobs::decode_tree(&text) {
            Ok(t) if !t.is_empty() => Some(t),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "pull-through cache: ignoring a bad record of fetched manifests");
                None
            }
        }
    }

    /// A client of the rule's upstream, with the credential its secret holds.
    /// Clients are kept for a minute (with the tokens the upstream issued them),
    /// so a pull's manifest and blob reads do not each authenticate anew; a
    /// changed secret takes effect within that minute.
    pub async fn upstream_of(
        &self,
        account: &str,
        rule: &PullThroughRule,
    ) -> std::result::Result<Arc<Upstream>, PullThroughError> {
        let key = format!(
            "{account}\n{}\n{}\n{}",
            rule.ecr_prefix,
            rule.upstream_url,
            rule.credential_arn.as_deref().unwrap_or("")
        );
        {
            let mut c = clients().lock().unwrap_or_else(|e| e.into_inner());
            c.retain(|_, (t, _)| t.elapsed() < CLIENT_TTL);
            if let Some((_, u)) = c.get(&key) {
                return Ok(u.clone());
            }
        }
        let up = Arc::new(self.new_upstream(account, rule).await?);
        clients()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (std::time::Instant::now(), up.clone()));
        Ok(up)
    }

    async fn new_upstream(
        &self,
        account: &str,
        rule: &PullThroughRule,
    ) -> std::result::Result<Upstream, PullThroughError> {
        let creds = match &rule.credential_arn {
            None => None,
            Some(arn) => Some(
                self.pull_through_credentials(account, arn)
                    .await
                    .map_err(|e| PullThroughError::Credential(e.to_string()))?,
            ),
        };
        Ok(Upstream::new(&rule.upstream_url, creds)?)
    }

    /// ValidatePullThroughCacheRule: reads the credential and authenticates to
    /// the upstream (`GET /v2/`). `None` when the rule works, else why not.
    pub async fn validate_pull_through_rule(
        &self,
        account: &str,
        rule: &PullThroughRule,
    ) -> Option<String> {
        // Always a fresh client: validation reads the secret as it is now.
        let up = match self.new_upstream(account, rule).await {
            Ok(u) => u,
            Err(e) => return Some(e.to_string()),
        };
        up.ping().await.err().map(|e| e.to_string())
    }

    /// Whether the cached `tag` of `repo` is due for a check upstream.
    pub async fn pull_through_due(&self, repo: &RepositoryRow, tag: &str) -> Result<bool> {
        let last = self.meta.pull_through_checked(repo.repo_id, tag).await?;
        Ok(last.is_none_or(|t| self.now() - t >= self.config.pull_through_refresh_ms))
    }

    /// Fetches the manifests of `reference` of `upstream_name` from the rule's
    /// upstream (an index with every manifest it lists that the cache lacks),
    /// verifies them, and stores each one whose blobs the cache already holds.
    /// `None` when everything is stored; otherwise the fetched manifests, children
    /// first and `reference` last, for the caller to serve the last one at once and
    /// to complete with [`Registry::complete_upstream_image`] while the client
    /// fetches the blobs (each through [`Registry::take_upstream_blob`]).
    /// Concurrent fetches of the same reference happen once on this node (they
    /// queue on a lock, and the ones that waited take the tree the first one
    /// fetched); across nodes they queue on a lease row in the database.
    ///
    /// Before the tree is handed back, a durable job to complete the image (fetch
    /// the blobs no client reads, then store the manifests) is queued
    /// (`crates/registry/src/pull_through_jobs.rs`), so a node that stops right
    /// after serving the manifest leaves the completion to any node.
    pub async fn import_upstream_image(
        &self,
        account: &str,
        rule: &PullThroughRule,
        repo: &RepositoryRow,
        upstream_name: &str,
        reference: &Reference,
    ) -> std::result::Result<Option<Vec<FetchedManifest>>, PullThroughError> {
        let key = format!("{}/{}", repo.repo_id, reference);
        let lock = inflight()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let started = self.now();
        let started_here = std::time::Instant::now();
        let out = async {
            let _g = lock.lock().await;
            let holder = uuid::Uuid::new_v4().to_string();
            let lease = format!("pull-through:{key}");
            loop {
                if self.imported_since(repo, reference, started).await? {
                    return Ok(None);
                }
                // Fetched by the pull this one waited for: single flight.
                if let Some(tree) = recent_tree(repo.repo_id, reference, started_here) {
                    return Ok(Some(tree));
                }
                let now = self.now();
                if self
                    .meta
                    .take_pull_through_lease(&lease, &holder, now, now + LEASE_MS)
                    .await?
                {
                    // Fetched by a pull on another node in the last two minutes
                    // (while this one waited on the lease, or a HEAD there before
                    // this GET) and not stored yet: served from its record, as
                    // this node serves what it fetched itself.
                    match self.fetched_elsewhere(&lease, started - RECENT_MS).await {
                        Some(tree) => {
                            self.meta.release_pull_through_lease(&lease, &holder).await?;
                            recent_put(repo.repo_id, &tree);
                            return Ok(Some(tree));
                        }
                        None => break,
                    }
                }
                tokio::time::sleep(LEASE_POLL).await;
            }
            let out: std::result::Result<_, PullThroughError> = async {
                let up = self.upstream_of(account, rule).await?;
                let mut tree = Vec::new();
                self.fetch_tree(&up, repo, upstream_name, reference, &mut tree)
                    .await?;
                if self.store_ready(repo, &tree).await? {
                    self.mark_checked(repo, reference).await?;
                    // Synced whole at once (the cache held every blob already).
                    let top = tree.last().map(|m| &m.digest);
                    self.sync_event(rule, repo, reference, top, Ok(())).await;
                    Ok(None)
                } else {
                    self.enqueue_pull_through_completion(account, rule, repo, upstream_name, &tree)
                        .await?;
                    recent_put(repo.repo_id, &tree);
                    // For the other nodes, before the lease goes: a pull there that
                    // waited on it serves this tree instead of asking the upstream.
                    let now = self.now();
                    let text = crate::pull_through_jobs::encode_tree(&tree);
                    if let Err(e) = self
                        .meta
                        .put_pull_through_fetched(&lease, now, &text, now - RECENT_MS)
                        .await
                    {
                        tracing::warn!(error = %e, "pull-through cache: could not record a fetched manifest for the other nodes");
                    }
                    Ok(Some(tree))
                }
            }
            .await;
            if let Err(e) = self.meta.release_pull_through_lease(&lease, &holder).await {
                tracing::warn!(error = %e, "could not release a pull-through lease; it runs out by itself");
            }
            out
        }
        .await;
        inflight()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        if let Err(e) = &out {
            self.sync_event(rule, repo, reference, None, Err(e.to_string()))
                .await;
        }
        out
    }

    /// Records the "ECR Pull Through Cache Action" of a sync of `reference` into
    /// `repo` (`sync-status` SUCCESS or FAILED with its reason) in the
    /// repository's event stream. A failure to record is logged: the image itself
    /// was (or was not) stored either way.
    pub(crate) async fn sync_event(
        &self,
        rule: &PullThroughRule,
        repo: &RepositoryRow,
        reference: &Reference,
        digest: Option<&Digest>,
        result: std::result::Result<(), String>,
    ) {
        let mut d = serde_json::json!({
            "sync-status": if result.is_ok() { "SUCCESS" } else { "FAILED" },
            "ecr-repository-prefix": rule.ecr_prefix,
            "repository-name": repo.name,
            "upstream-registry-url": rule.upstream_url,
        });
        match reference {
            Reference::Tag(t) => d["image-tag"] = serde_json::Value::from(t.as_str()),
            Reference::Digest(x) => d["image-digest"] = serde_json::Value::from(x.as_str()),
        }
        if let Some(x) = digest {
            d["image-digest"] = serde_json::Value::from(x.as_str());
        }
        if let Err(e) = result {
            d["failure-code"] = serde_json::Value::from("SYNC_FAILED");
            d["failure-reason"] = serde_json::Value::from(e);
        }
        let ev = berth_store::events::NewEvent {
            detail_type: berth_store::events::PULL_THROUGH_CACHE_ACTION,
            detail: d,
        };
        if let Err(e) = self
            .record_events(&repo.account_id, &repo.name, &[ev])
            .await
        {
            tracing::warn!(repository = %repo.name, error = %e, "could not record a pull-through cache event");
        }
    }

    /// Fetches every blob of `tree` the cache still lacks (one node at a time per
    /// blob) and stores the manifests; idempotent (what is stored is skipped).
    pub async fn complete_upstream_image(
        &self,
        account: &str,
        rule: &PullThroughRule,
        repo: &RepositoryRow,
        upstream_name: &str,
        tree: &[FetchedManifest],
    ) -> std::result::Result<(), PullThroughError> {
        let up = self.upstream_of(account, rule).await?;
        for m in tree {
            for d in &m.blobs {
                self.import_blob(&up, repo, upstream_name, d).await?;
            }
        }
        if !self.store_ready(repo, tree).await? {
            return Err(PullThroughError::Invalid(
                "an image whose blobs could not all be stored".into(),
            ));
        }
        if let Some(top) = tree.last() {
            self.mark_checked(repo, &top.reference).await?;
        }
        Ok(())
    }

    async fn mark_checked(&self, repo: &RepositoryRow, reference: &Reference) -> Result<()> {
        if let Reference::Tag(t) = reference {
            self.meta
                .set_pull_through_checked(repo.repo_id, t.as_str(), self.now())
                .await?;
        }
        Ok(())
    }

    /// Whether another pull stored `reference` in `repo` since `since`.
    async fn imported_since(
        &self,
        repo: &RepositoryRow,
        reference: &Reference,
        since: i64,
    ) -> Result<bool> {
        Ok(match reference {
            Reference::Tag(t) => self
                .meta
                .pull_through_checked(repo.repo_id, t.as_str())
                .await?
                .is_some_and(|c| c >= since),
            Reference::Digest(_) => self.find_manifest(repo, reference).await.is_ok(),
        })
    }

    fn fetch_tree<'a>(
        &'a self,
        up: &'a Upstream,
        repo: &'a RepositoryRow,
        upstream_name: &'a str,
        reference: &'a Reference,
        out: &'a mut Vec<FetchedManifest>,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<(), PullThroughError>> + Send + 'a>> {
        Box::pin(async move {
            let (body, ct) = up.manifest(upstream_name, &reference.to_string()).await?;
            let digest = Digest::sha256_of(&body);
            if let Reference::Digest(want) = reference {
                if want != &digest {
                    return Err(PullThroughError::Invalid(format!(
                        "manifest {digest} when asked for {want}"
                    )));
                }
            }
            let m = Manifest::parse(&body, ct.as_deref())
                .map_err(|e| PullThroughError::Invalid(format!("an invalid manifest: {e}")))?;
            let mut blobs = Vec::new();
            match m.kind {
                ManifestKind::Index => {
                    for child in &m.manifests {
                        let r = Reference::Digest(child.digest.clone());
                        if self.find_manifest(repo, &r).await.is_err() {
                            self.fetch_tree(up, repo, upstream_name, &r, out).await?;
                        }
                    }
                }
                ManifestKind::Image => {
                    blobs = m.required_blobs().map(|d| d.digest.clone()).collect();
                }
            }
            out.push(FetchedManifest {
                reference: reference.clone(),
                digest,
                content_type: ct.unwrap_or_else(|| m.media_type.clone()),
                body,
                blobs,
            });
            Ok(())
        })
    }

    /// Stores, in order, each manifest of `tree` whose blobs (or, for an index,
    /// manifests) the cache holds; whether all were stored.
    async fn store_ready(
        &self,
        repo: &RepositoryRow,
        tree: &[FetchedManifest],
    ) -> std::result::Result<bool, PullThroughError> {
        let mut all = true;
        for m in tree {
            let mut ready = true;
            for d in &m.blobs {
                if self.stat_blob(repo, d).await.is_err() {
                    ready = false;
                    break;
                }
            }
            if !ready {
                all = false;
                continue;
            }
            match self
                .put_manifest(repo, &m.reference, Some(&m.content_type), m.body.clone())
                .await
            {
                Ok(_) => {}
                Err(
                    RegistryError::ManifestBlobUnknown(_) | RegistryError::ManifestChildUnknown(_),
                ) => all = false,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(all)
    }

    /// Takes the lease to fetch blob `digest` of `repo` from the upstream, waiting
    /// while another pull (on any node) fetches it. `None` when the cache holds the
    /// blob (now); otherwise the lease's holder, for [`Registry::release_upstream_blob`].
    pub async fn take_upstream_blob(
        &self,
        repo: &RepositoryRow,
        digest: &Digest,
    ) -> Result<Option<String>> {
        let holder = uuid::Uuid::new_v4().to_string();
        let lease = blob_lease(repo, digest);
        loop {
            if self.stat_blob(repo, digest).await.is_ok() {
                return Ok(None);
            }
            let now = self.now();
            if self
                .meta
                .take_pull_through_lease(&lease, &holder, now, now + LEASE_MS)
                .await?
            {
                // The previous holder may have stored the blob and let the lease go
                // between the look above and this take: look again under the lease.
                if self.stat_blob(repo, digest).await.is_ok() {
                    self.release_upstream_blob(repo, digest, &holder).await;
                    return Ok(None);
                }
                return Ok(Some(holder));
            }
            tokio::time::sleep(LEASE_POLL).await;
        }
    }

    /// Whether a pull (on any node) is fetching blob `digest` of `repo` now.
    pub async fn upstream_blob_in_flight(
        &self,
        repo: &RepositoryRow,
        digest: &Digest,
    ) -> Result<bool> {
        Ok(self
            .meta
            .pull_through_lease_held(&blob_lease(repo, digest), self.now())
            .await?)
    }

    /// Gives a blob's lease back.
    pub async fn release_upstream_blob(&self, repo: &RepositoryRow, digest: &Digest, holder: &str) {
        if let Err(e) = self
            .meta
            .release_pull_through_lease(&blob_lease(repo, digest), holder)
            .await
        {
            tracing::warn!(error = %e, "could not release a pull-through lease; it runs out by itself");
        }
    }

    /// Fetches blob `digest` into `repo` unless the cache holds it (or gets it
    /// from another pull meanwhile).
    async fn import_blob(
        &self,
        up: &Upstream,
        repo: &RepositoryRow,
        upstream_name: &str,
        digest: &Digest,
    ) -> std::result::Result<(), PullThroughError> {
        let Some(holder) = self.take_upstream_blob(repo, digest).await? else {
            return Ok(());
        };
        let out = async {
            let (_, stream) = up.blob(upstream_name, digest.as_str()).await?;
            // A long transfer renews its lease as it goes.
            let mut last = self.now();
            let holder = holder.as_str();
            let stream = Box::pin(futures_util::StreamExt::then(stream, move |chunk| {
                let renew = self.now() - last >= LEASE_RENEW_MS;
                if renew {
                    last = self.now();
                }
                async move {
                    if renew {
                        self.renew_upstream_blob(repo, digest, holder).await;
                    }
                    chunk
                }
            }));
            self.store_upstream_blob(repo, digest, stream).await
        }
        .await;
        self.release_upstream_blob(repo, digest, &holder).await;
        out
    }

    /// Extends a blob's lease while its holder is still fetching it.
    pub async fn renew_upstream_blob(&self, repo: &RepositoryRow, digest: &Digest, holder: &str) {
        let now = self.now();
        if let Err(e) = self
            .meta
            .take_pull_through_lease(&blob_lease(repo, digest), holder, now, now + LEASE_MS)
            .await
        {
            tracing::warn!(error = %e, "could not renew a pull-through lease");
        }
    }

    /// Stores `stream` as blob `digest` of `repo` through an upload session of its
    /// own, completed as `digest` (which verifies it); the session is cancelled on
    /// failure.
    pub async fn store_upstream_blob<S>(
        &self,
        repo: &RepositoryRow,
        digest: &Digest,
        stream: S,
    ) -> std::result::Result<(), PullThroughError>
    where
        S: futures_util::Stream<Item = std::result::Result<Bytes, String>> + Send + Unpin,
    {
        self.store_upstream_blob_as(repo, digest, stream, false)
            .await
    }

    /// [`Registry::store_upstream_blob`] of a stream whose feeder hashes every
    /// byte it sends and ends the stream with an error unless they are `digest`'s
    /// content: the store does not hash them a second time.
    pub async fn store_verified_upstream_blob<S>(
        &self,
        repo: &RepositoryRow,
        digest: &Digest,
        stream: S,
    ) -> std::result::Result<(), PullThroughError>
    where
        S: futures_util::Stream<Item = std::result::Result<Bytes, String>> + Send + Unpin,
    {
        self.store_upstream_blob_as(repo, digest, stream, true)
            .await
    }

    async fn store_upstream_blob_as<S>(
        &self,
        repo: &RepositoryRow,
        digest: &Digest,
        stream: S,
        verified: bool,
    ) -> std::result::Result<(), PullThroughError>
    where
        S: futures_util::Stream<Item = std::result::Result<Bytes, String>> + Send + Unpin,
    {
        let upload = self.start_upload(repo).await?;
        let upload_id = upload.id.as_str();
        // One request's worth (as a monolithic push): the bytes go straight into
        // the blob's object, under one write lease and one commit — not staged,
        // recorded and then completed.
        let stored = self
            .append_and_complete_as(repo, upload_id, None, None, stream, digest, verified)
            .await;
        if let Err(e) = stored {
            let _ = self.cancel_upload(repo, upload_id).await;
            return Err(match e {
                RegistryError::DigestMismatch | RegistryError::DigestInvalid(_) => {
                    PullThroughError::Invalid(format!("blob content that does not match {digest}"))
                }
                e => e.into(),
            });
        }
        Ok(())
    }
}

fn blob_lease(repo: &RepositoryRow, digest: &Digest) -> String {
    format!("pull-through-blob:{}:{digest}", repo.repo_id)
}

/// A manifest fetched from the upstream and verified: what it was asked as, its
/// digest, its media type and bytes, and the blobs an image manifest needs.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub reference: Reference,
    pub digest: Digest,
    pub content_type: String,
    pub body: Bytes,
    pub blobs: Vec<Digest>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(ecr: &str, up: &str) -> PullThroughRule {
        PullThroughRule {
            ecr_prefix: ecr.into(),
            upstream_url: "registry-1.docker.io".into(),
            upstream_registry: "docker-hub".into(),
            credential_arn: None,
            custom_role_arn: None,
            upstream_prefix: Some(up.into()),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn prefix_mapping_per_ecr_docs() {
        // The table of ECR's documentation (`upstreamRepositoryPrefix`).
        assert_eq!(
            r("ecr-public", "ROOT")
                .upstream_name("ecr-public/my-app/image1")
                .as_deref(),
            Some("my-app/image1")
        );
        assert_eq!(
            r("ROOT", "ROOT").upstream_name("my-app/image1").as_deref(),
            Some("my-app/image1")
        );
        assert_eq!(
            r("team-a", "team-a")
                .upstream_name("team-a/myapp/image1")
                .as_deref(),
            Some("team-a/myapp/image1")
        );
        assert_eq!(
            r("my-app", "upstream-app")
                .upstream_name("my-app/image1")
                .as_deref(),
            Some("upstream-app/image1")
        );
        assert_eq!(r("my-app", "ROOT").upstream_name("my-app").as_deref(), None);
        assert_eq!(
            r("my-app", "ROOT").upstream_name("my-apps/x").as_deref(),
            None
        );
        let all = vec![
            r("ROOT", "ROOT"),
            r("hub", "ROOT"),
            r("hub/library", "library"),
        ];
        let pick = |n: &str| matching_rule(&all, n).map(|r| r.ecr_prefix.as_str());
        assert_eq!(pick("hub/library/alpine"), Some("hub/library"));
        assert_eq!(pick("hub/grafana/grafana"), Some("hub"));
        assert_eq!(pick("other/x"), Some("ROOT"));
    }
}

//! Control-plane reads and writes the front ends make beside the image operations:
//! repository settings and resource tags, account-level documents, lifecycle
//! previews, scan results, the audit log, advisories and store health. Each is one
//! core method so that no front end reaches the stores (`docs/architecture.md`,
//! "Rooms").

use berth_oci::RepositoryName;
use berth_store::scans::{ScanRow, SCAN_JOB, VULNDB_VERSION};
use berth_store::{AccountSetting, RepoColumn, RepositoryRow};

use crate::mutability::{ExclusionFilter, TagMutability};
use crate::{Registry, RegistryError};

type Result<T> = std::result::Result<T, RegistryError>;

/// One audit-log record to append.
pub struct AuditRecord<'a> {
    pub account: &'a str,
    pub principal: &'a str,
    pub action: &'a str,
    pub resource: Option<&'a str>,
    pub source: &'a str,
    pub outcome: &'a str,
}

/// Whether each store answers (`Err` carries the store's own message).
pub struct StoreHealth {
    pub metadata: std::result::Result<(), String>,
    pub blobs: std::result::Result<(), String>,
}

/// What `berth vulndb status` reports.
pub struct VulndbStatus {
    pub version: Option<String>,
    pub advisories: i64,
    pub pending_scans: i64,
}

impl Registry {
    // ---- repositories --------------------------------------------------------------

    /// A repository if it exists (`Ok(None)` otherwise), for callers that authorize
    /// before reporting an unknown repository.
    pub async fn find_repository(
        &self,
        account: &str,
        name: &RepositoryName,
    ) -> Result<Option<RepositoryRow>> {
        Ok(self.meta.get_repository(account, name.as_str()).await?)
    }

    /// A page of an account's repositories in name order, after `after`.
    pub async fn list_repositories(
        &self,
        account: &str,
        after: Option<&str>,
        n: i64,
    ) -> Result<Vec<RepositoryRow>> {
        Ok(self.meta.list_repositories(account, after, n).await?)
    }

    pub async fn set_tag_mutability(
        &self,
        repo: &RepositoryRow,
        mode: TagMutability,
        exclusions: &[ExclusionFilter],
    ) -> Result<()> {
        let ex = serde_json::to_string(exclusions).unwrap_or_else(|_| "[]".into());
        Ok(self
            .meta
            .set_tag_mutability(repo.repo_id, mode.as_str(), &ex)
            .await?)
    }

    pub async fn set_scan_on_push(&self, repo: &RepositoryRow, on: bool) -> Result<()> {
        Ok(self.meta.set_scan_on_push(repo.repo_id, on).await?)
    }

    /// Sets (or with `None` removes) the repository policy; the caller validated it.
    pub async fn set_repository_policy(
        &self,
        repo: &RepositoryRow,
        text: Option<String>,
    ) -> Result<()> {
        Ok(self
            .meta
            .set_repository_field(repo.repo_id, RepoColumn::Policy, text)
            .await?)
    }

    /// Sets (or with `None` removes) the lifecycle policy; the caller validated it.
    pub async fn set_lifecycle_policy(
        &self,
        repo: &RepositoryRow,
        text: Option<String>,
    ) -> Result<()> {
        Ok(self
            .meta
            .set_repository_field(repo.repo_id, RepoColumn::LifecyclePolicy, text)
            .await?)
    }

    /// The repository's resource tags, in key order.
    pub async fn repository_tags(&self, repo: &RepositoryRow) -> Result<Vec<(String, String)>> {
        Ok(self.meta.repository_tags(repo.repo_id).await?)
    }

    /// Adds or replaces resource tags; false (and no change) when the repository
    /// would then carry more than `max` tags.
    pub async fn tag_repository(
        &self,
        repo: &RepositoryRow,
        tags: &[(String, String)],
        max: i64,
    ) -> Result<bool> {
        Ok(self
            .meta
            .put_repository_tags(repo.repo_id, tags, max)
            .await?)
    }

    pub async fn untag_repository(&self, repo: &RepositoryRow, keys: &[String]) -> Result<()> {
        Ok(self.meta.delete_repository_tags(repo.repo_id, keys).await?)
    }

    /// Every (tag, digest) of the repository.
    pub async fn all_tags(&self, repo: &RepositoryRow) -> Result<Vec<(String, String)>> {
        Ok(self.meta.all_tags(repo.repo_id).await?)
    }

    /// A keyset page of the repository's image ids (`ListImages`), in (digest, tag)
    /// order after `after`; one bounded query whatever the repository's size.
    pub async fn image_ids_page(
        &self,
        repo: &RepositoryRow,
        after: Option<(&str, &str)>,
        tag_status: &str,
        limit: i64,
    ) -> Result<Vec<berth_store::meta::ImageIdRow>> {
        Ok(self
            .meta
            .image_ids_page(repo.repo_id, after, tag_status, limit)
            .await?)
    }

    /// The tags pointing at `digest`.
    pub async fn tags_of(&self, repo: &RepositoryRow, digest: &str) -> Result<Vec<String>> {
        Ok(self.meta.tags_of(repo.repo_id, digest).await?)
    }

    /// Every manifest of the repository, metadata only (bodies stay sealed).
    pub async fn list_manifests(&self, repo: &RepositoryRow) -> Result<Vec<crate::ManifestRow>> {
        Ok(self.meta.list_manifests(repo.repo_id).await?)
    }

    /// Repositories that have a lifecycle policy.
    pub async fn repositories_with_lifecycle(&self) -> Result<Vec<RepositoryRow>> {
        Ok(self.meta.repositories_with_lifecycle().await?)
    }

    /// Stores (or clears) the repository's last lifecycle-policy preview.
    pub async fn save_lifecycle_preview(
        &self,
        repo: &RepositoryRow,
        preview: Option<String>,
    ) -> Result<()> {
        Ok(self
            .meta
            .set_lifecycle_preview(repo.repo_id, preview)
            .await?)
    }

    pub async fn saved_lifecycle_preview(&self, repo: &RepositoryRow) -> Result<Option<String>> {
        Ok(self.meta.lifecycle_preview(repo.repo_id).await?)
    }

    // ---- scans ---------------------------------------------------------------------

    /// The scan of one image, if it was ever scanned.
    pub async fn scan_of(&self, repo: &RepositoryRow, digest: &str) -> Result<Option<ScanRow>> {
        Ok(self.meta.get_scan(repo.repo_id, digest).await?)
    }

    pub async fn scans_in_repository(&self, repo: &RepositoryRow) -> Result<Vec<ScanRow>> {
        Ok(self.meta.scans_in_repository(repo.repo_id).await?)
    }

    /// Stores a batch of advisories (id, OSV JSON).
    pub async fn put_advisories(&self, records: &[(String, Vec<u8>)]) -> Result<u64> {
        Ok(self.meta.put_advisories(records, self.now()).await?)
    }

    /// Bumps the advisory database version and enqueues rescans of `rescan`, in one
    /// transaction; returns the new version.
    pub async fn bump_vulndb_version(&self, rescan: &[(i64, String)]) -> Result<i64> {
        Ok(self.meta.bump_vulndb_version(self.now(), rescan).await?)
    }

    pub async fn vulndb_status(&self) -> Result<VulndbStatus> {
        Ok(VulndbStatus {
            version: self.meta.setting(VULNDB_VERSION).await?,
            advisories: self.meta.count_advisories().await?,
            pending_scans: self.meta.pending_jobs(SCAN_JOB).await?,
        })
    }

    // ---- account-level documents ---------------------------------------------------

    /// One of the account's JSON documents (registry policy, scanning or replication
    /// configuration).
    pub async fn account_setting(
        &self,
        account: &str,
        s: AccountSetting,
    ) -> Result<Option<String>> {
        Ok(self.meta.account_setting(account, s).await?)
    }

    pub async fn set_account_setting(
        &self,
        account: &str,
        s: AccountSetting,
        value: Option<String>,
    ) -> Result<()> {
        Ok(self.meta.set_account_setting(account, s, value).await?)
    }

    // ---- audit, health -------------------------------------------------------------

    /// Appends one record to the audit log.
    pub async fn audit(&self, r: &AuditRecord<'_>) -> Result<()> {
        Ok(self
            .meta
            .append_audit(
                self.now(),
                r.account,
                r.principal,
                r.action,
                r.resource,
                r.source,
                r.outcome,
                None,
            )
            .await?)
    }

    /// The newest audit-log records.
    pub async fn recent_audit(&self, limit: i64) -> Result<Vec<berth_store::AuditRow>> {
        Ok(self.meta.recent_audit(limit).await?)
    }

    /// Collection candidates waiting in the metadata store.
    pub async fn gc_pending(&self) -> Result<i64> {
        Ok(self.meta.gc_pending().await?)
    }

    /// Whether the metadata store and the blob store answer.
    pub async fn check_stores(&self) -> StoreHealth {
        StoreHealth {
            metadata: self.meta.ping().await.map_err(|e| e.to_string()),
            blobs: self.blobs.check().await.map_err(|e| e.to_string()),
        }
    }
}

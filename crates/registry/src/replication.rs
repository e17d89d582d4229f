//! Replication (`docs/architecture.md`, "Replication"): a push into a repository a
//! rule of its account's replication configuration matches enqueues one job per
//! destination in the manifest's transaction; the [`ReplicationHandler`] copies the
//! image and records its status per destination.
//!
//! Destinations in this deployment's region (cross-account copies) are copied here,
//! through the core: blobs are linked (no bytes move), then each child manifest of an
//! index, then the manifest and its tag. Destinations in other regions are sent to
//! their peer deployment (`remote`). Referrers are pushes of their own and follow
//! their subject.

mod deletes;
mod remote;

pub use deletes::{
    delete_destinations, ReplicationDelete, ReplicationDeleteHandler, REPLICATION_DELETE_JOB,
};
pub use remote::{PeerConnector, PeerError, PeerResult, PeerSession, SentManifest};

use std::collections::BTreeSet;
use std::sync::Arc;

use berth_iam::arn::AccountId;
use berth_iam::policy::{
    evaluate, PolicyDocument, PolicyKind, PolicyRef, PolicySource, Principal, RequestContext,
};
use berth_oci::{Digest, ImageTag, Manifest, Reference, RepositoryName};
use berth_store::replication::{replication_job, ReplicationJob, REPLICATION_JOB};
use berth_store::{AccountSetting, ClaimedJob, Meta, NewJob, RepositoryRow, RetryPolicy};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::jobs::{Finished, Handler};
use crate::{Registry, RegistryError};

pub use berth_store::replication::ReplicationStatusRow;

type Result<T> = std::result::Result<T, RegistryError>;

/// Failure codes recorded on a FAILED (or tag-less COMPLETE) status.
pub const ACCESS_DENIED: &str = "ACCESS_DENIED";
pub const REPOSITORY_NOT_FOUND: &str = "REPOSITORY_NOT_FOUND";
pub const IMMUTABLE_TAG_CONFLICT: &str = "IMMUTABLE_TAG_CONFLICT";
pub const SOURCE_IMAGE_NOT_FOUND: &str = "SOURCE_IMAGE_NOT_FOUND";
pub const REPLICATION_FAILED: &str = "REPLICATION_FAILED";
/// The peer deployment refused the `[[peer]]` credentials (unknown access key,
/// wrong secret, or a registry token it does not accept): not retried.
pub const PEER_AUTHENTICATION_FAILED: &str = "PEER_AUTHENTICATION_FAILED";

/// Whether a rule's `PREFIX_MATCH` filters match `name` (no filter: every repository).
fn rule_matches(rule: &Value, name: &str) -> bool {
    match rule.get("repositoryFilters").and_then(Value::as_array) {
        None => true,
        Some(f) if f.is_empty() => true,
        Some(f) => f.iter().any(|f| {
            f.get("filter")
                .and_then(Value::as_str)
                .is_some_and(|p| name.starts_with(p))
        }),
    }
}

/// The destinations (region, registry id) of `config`'s rules that match `name`, once
/// each, in first-seen order.
pub fn destinations(config: &str, name: &str) -> Vec<(String, String)> {
    let cfg: Value = serde_json::from_str(config).unwrap_or(Value::Null);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for rule in cfg
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !rule_matches(rule, name) {
            continue;
        }
        for d in rule
            .get("destinations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(r), Some(a)) = (
                d.get("region").and_then(Value::as_str),
                d.get("registryId").and_then(Value::as_str),
            ) else {
                continue;
            };
            if seen.insert((r.to_string(), a.to_string())) {
                out.push((r.to_string(), a.to_string()));
            }
        }
    }
    out
}

/// See [`Registry::replication_metrics`].
#[derive(Debug, Clone)]
pub struct ReplicationMetrics {
    pub jobs: Vec<(String, i64)>,
    pub statuses: Vec<(String, i64)>,
    pub lag_seconds: f64,
}

/// How one copy ended without an error worth retrying.
enum Copied {
    Complete,
    /// Copied, but without its tag (an immutable tag with another digest there).
    WithoutTag,
    Failed(&'static str),
}

impl Registry {
    /// The replication jobs a new manifest `digest` (pushed under `tag`) in `repo`
    /// causes under the account's replication configuration `cfg`, read before
    /// ([`Registry::push_context`]: a configuration that cannot be read fails the
    /// push, so an acknowledged push always replicates).
    pub(crate) fn replication_jobs_for(
        cfg: Option<&str>,
        repo: &RepositoryRow,
        digest: &str,
        tag: Option<&str>,
    ) -> Result<Vec<NewJob>> {
        let Some(cfg) = cfg else {
            return Ok(Vec::new());
        };
        let mut jobs = Vec::new();
        for (region, registry_id) in destinations(cfg, &repo.name) {
            jobs.push(replication_job(&ReplicationJob {
                repo_id: repo.repo_id,
                digest: digest.to_string(),
                tag: tag.map(str::to_string),
                region,
                registry_id,
            })?);
        }
        Ok(jobs)
    }

    /// The image's replication statuses, one per destination it was sent to.
    pub async fn replication_statuses(
        &self,
        repo: &RepositoryRow,
        digest: &str,
    ) -> Result<Vec<ReplicationStatusRow>> {
        Ok(self.meta.replication_statuses(repo.repo_id, digest).await?)
    }

    /// The replication figures `/metrics` shows: jobs by state, images by status,
    /// and the lag (seconds since the oldest status still IN_PROGRESS was set).
    pub async fn replication_metrics(&self) -> Result<ReplicationMetrics> {
        let (jobs, statuses, oldest) = self.meta.replication_metrics().await?;
        Ok(ReplicationMetrics {
            jobs,
            statuses,
            lag_seconds: oldest.map_or(0.0, |t| (self.now() - t).max(0) as f64 / 1000.0),
        })
    }

    /// The audit records of one replication: in the source account (by the registry's
    /// replication) and in the destination account (by the source account's root).
    async fn audit_replication(
        &self,
        src: &RepositoryRow,
        j: &ReplicationJob,
        status: &str,
        code: Option<&str>,
    ) -> Result<()> {
        let region = &self.config.region;
        let outcome = |dir: &str, r: &str, a: &str| match code {
            Some(c) => format!("{status} {c} {dir} {r}/{a}"),
            None => format!("{status} {dir} {r}/{a}"),
        };
        let src_arn = format!(
            "arn:aws:ecr:{region}:{}:repository/{}@{}",
            src.account_id, src.name, j.digest
        );
        self.audit(&crate::AuditRecord {
            account: &src.account_id,
            principal: "berth:replication",
            action: "ecr:ReplicateImage",
            resource: Some(&src_arn),
            source: "berth:replication",
            outcome: &outcome("to", &j.region, &j.registry_id),
        })
        .await?;
        // A peer region's deployment writes its own record when the copy arrives.
        if j.region != *region {
            return Ok(());
        }
        let dst_arn = format!(
            "arn:aws:ecr:{}:{}:repository/{}@{}",
            j.region, j.registry_id, src.name, j.digest
        );
        self.audit(&crate::AuditRecord {
            account: &j.registry_id,
            principal: &format!("arn:aws:iam::{}:root", src.account_id),
            action: "ecr:ReplicateImage",
            resource: Some(&dst_arn),
            source: "berth:replication",
            outcome: &outcome("from", region, &src.account_id),
        })
        .await
    }

    /// Stores a manifest that arrives by replication from a peer deployment
    /// (`origin`: its region and account): like a push, but it causes no replication
    /// (no transitive fan-out); audited as `ecr:ReplicateImage` by `principal`.
    pub async fn put_manifest_replicated(
        &self,
        repo: &RepositoryRow,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
        principal: &str,
        origin: &str,
    ) -> Result<crate::ManifestPut> {
        let put = self
            .put_manifest_from(repo, reference, content_type, body, true)
            .await?;
        let arn = format!(
            "arn:aws:ecr:{}:{}:repository/{}@{}",
            self.config.region, repo.account_id, repo.name, put.digest
        );
        self.audit(&crate::AuditRecord {
            account: &repo.account_id,
            principal,
            action: "ecr:ReplicateImage",
            resource: Some(&arn),
            source: "berth:replication",
            outcome: &format!("COMPLETE from {origin}"),
        })
        .await?;
        Ok(put)
    }

    /// Repeats a deletion that a peer deployment's replication sends (`origin`: its
    /// region and account): like a delete, but not replicated again; audited as
    /// `ecr:ReplicateImage` by `principal`.
    pub async fn delete_manifest_replicated(
        &self,
        repo: &RepositoryRow,
        reference: &Reference,
        principal: &str,
        origin: &str,
    ) -> Result<Vec<String>> {
        let tags = self.delete_manifest_from(repo, reference, true).await?;
        let arn = format!(
            "arn:aws:ecr:{}:{}:repository/{}:{reference}",
            self.config.region, repo.account_id, repo.name
        );
        self.audit(&crate::AuditRecord {
            account: &repo.account_id,
            principal,
            action: "ecr:ReplicateImage",
            resource: Some(&arn),
            source: "berth:replication",
            outcome: &format!("DELETE COMPLETE from {origin}"),
        })
        .await?;
        Ok(tags)
    }

    /// Whether `repo`'s account accepts replication from `src_account`: its own
    /// account always; another only when the registry policy allows that account's
    /// root `ecr:ReplicateImage` (as for same-region copies). Checked by the front end
    /// when a peer deployment pushes a replicated image.
    pub async fn replication_allowed_from(
        &self,
        src_account: &str,
        repo: &RepositoryRow,
    ) -> Result<bool> {
        self.registry_policy_allows(
            src_account,
            &repo.account_id,
            "ecr:ReplicateImage",
            &repo.name,
        )
        .await
    }

    /// Whether `dst_account`'s registry policy allows `src_account` `action`
    /// (`ecr:ReplicateImage`, `ecr:CreateRepository`) on its repository `name` (its
    /// own account: always). Checked by the front end before a peer deployment's
    /// replication creates a repository, so a refused copy creates nothing.
    pub async fn replication_allowed_into(
        &self,
        src_account: &str,
        dst_account: &str,
        name: &str,
        action: &str,
    ) -> Result<bool> {
        self.registry_policy_allows(src_account, dst_account, action, name)
            .await
    }

    /// The job's tag, if the source's tag still names the job's image: a tag removed
    /// or moved since the push is not sent (the image still is, by digest), so a
    /// late job cannot put an old image back under a tag that moved on.
    pub(crate) async fn tag_to_send(
        &self,
        src: &RepositoryRow,
        j: &ReplicationJob,
    ) -> Result<Option<String>> {
        let Some(tag) = &j.tag else {
            return Ok(None);
        };
        let t = ImageTag::parse(tag).map_err(|_| RegistryError::TagInvalid)?;
        match self.find_manifest(src, &Reference::Tag(t)).await {
            Ok(m) if m.digest == j.digest => Ok(Some(tag.clone())),
            Ok(_) | Err(RegistryError::ManifestUnknown) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a repository on behalf of the registry itself (replication into this
    /// registry) with the account's `REPLICATION` creation template, if one matches
    /// (`crate::templates`), else ECR's defaults: mutable tags, AES256, no policies.
    /// Another creator winning the race is not an error.
    pub async fn create_repository_for_registry(
        &self,
        account: &str,
        name: &RepositoryName,
    ) -> Result<RepositoryRow> {
        self.create_repository_on_behalf(
            account,
            name,
            crate::templates::CreationPurpose::Replication,
        )
        .await
    }

    /// Whether `dst_account`'s registry policy allows `src_account` `action` on the
    /// repository `name` (same account: always).
    async fn registry_policy_allows(
        &self,
        src_account: &str,
        dst_account: &str,
        action: &str,
        name: &str,
    ) -> Result<bool> {
        if src_account == dst_account {
            return Ok(true);
        }
        let Some(text) = self
            .meta
            .account_setting(dst_account, AccountSetting::RegistryPolicy)
            .await?
        else {
            return Ok(false);
        };
        // An unparsable stored policy allows nothing (fail closed).
        let Ok(doc) = PolicyDocument::parse(&text, PolicyKind::EcrRegistry) else {
            return Ok(false);
        };
        let Ok(src) = AccountId::parse(src_account) else {
            return Ok(false);
        };
        let arn = format!(
            "arn:aws:ecr:{}:{dst_account}:repository/{name}",
            self.config.region
        );
        let ctx = RequestContext::new(Principal::root(&src), action, arn);
        let refs = [PolicyRef {
            name: "registry policy",
            source: PolicySource::Resource,
            document: &doc,
        }];
        Ok(evaluate(&ctx, &refs).is_allowed())
    }

    /// Copies one image from `src` into the same-named repository of `dst_account`
    /// in this deployment.
    async fn replicate_local(&self, src: &RepositoryRow, j: &ReplicationJob) -> Result<Copied> {
        let dst_account = &j.registry_id;
        let name = RepositoryName::parse(&src.name).map_err(|_| RegistryError::NameInvalid)?;
        if !self
            .registry_policy_allows(
                &src.account_id,
                dst_account,
                "ecr:ReplicateImage",
                &src.name,
            )
            .await?
        {
            return Ok(Copied::Failed(ACCESS_DENIED));
        }
        let dst = match self.repository(dst_account, &name).await {
            Ok(r) => r,
            Err(RegistryError::NameUnknown { .. }) => {
                if !self
                    .registry_policy_allows(
                        &src.account_id,
                        dst_account,
                        "ecr:CreateRepository",
                        &src.name,
                    )
                    .await?
                {
                    return Ok(Copied::Failed(REPOSITORY_NOT_FOUND));
                }
                self.create_repository_for_registry(dst_account, &name)
                    .await?
            }
            Err(e) => return Err(e),
        };
        let Some(row) = self.manifest_plain(src, &j.digest).await? else {
            return Ok(Copied::Failed(SOURCE_IMAGE_NOT_FOUND));
        };
        // Children (and their blobs) first, then the blobs, then the manifest.
        self.copy_manifest_content(src, &dst, &row.body, Some(&row.media_type))
            .await?;
        let body = Bytes::from(row.body);
        let digest =
            Digest::parse(&j.digest).map_err(|e| RegistryError::DigestInvalid(e.to_string()))?;
        let by_digest = Reference::Digest(digest);
        let tag = self.tag_to_send(src, j).await?;
        let Some(tag) = &tag else {
            self.put_manifest_from(&dst, &by_digest, Some(&row.media_type), body, true)
                .await?;
            return Ok(Copied::Complete);
        };
        let tag = ImageTag::parse(tag).map_err(|_| RegistryError::TagInvalid)?;
        match self
            .put_manifest_from(
                &dst,
                &Reference::Tag(tag),
                Some(&row.media_type),
                body.clone(),
                true,
            )
            .await
        {
            Ok(_) => Ok(Copied::Complete),
            Err(RegistryError::TagImmutable { .. }) => {
                self.put_manifest_from(&dst, &by_digest, Some(&row.media_type), body, true)
                    .await?;
                Ok(Copied::WithoutTag)
            }
            Err(e) => Err(e),
        }
    }

    /// Makes everything `body` references present in `dst`: each child manifest of
    /// an index (stored by digest, after its own content), then each blob (linked).
    fn copy_manifest_content<'a>(
        &'a self,
        src: &'a RepositoryRow,
        dst: &'a RepositoryRow,
        body: &'a [u8],
        media_type: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let m = Manifest::parse(body, media_type)
                .map_err(|e| RegistryError::ManifestInvalid(e.to_string()))?;
            for child in &m.manifests {
                let d = child.digest.as_str();
                if self.meta.get_manifest(dst.repo_id, d).await?.is_some() {
                    continue;
                }
                let Some(c) = self.manifest_plain(src, d).await? else {
                    return Err(RegistryError::ManifestChildUnknown(vec![d.to_string()]));
                };
                self.copy_manifest_content(src, dst, &c.body, Some(&c.media_type))
                    .await?;
                self.put_manifest_from(
                    dst,
                    &Reference::Digest(child.digest.clone()),
                    Some(&c.media_type),
                    Bytes::from(c.body),
                    true,
                )
                .await?;
            }
            for b in m.required_blobs() {
                let d = b.digest.as_str();
                if self.meta.linked_blob_size(dst.repo_id, d).await?.is_some() {
                    continue;
                }
                let repo_key = self.keys.repo_key(dst).await?;
                let mut tx = self.meta.begin_digest_tx(d, false).await?;
                let Some((_, Some(blob_key))) = Meta::blob_key(&mut tx, d).await? else {
                    return Err(RegistryError::ManifestBlobUnknown(vec![d.to_string()]));
                };
                self.link_stored_blob(&mut tx, dst, &repo_key, d, &blob_key)
                    .await?;
                tx.commit().await?;
            }
            Ok(())
        })
    }
}

/// The "ECR Replication Action" of a finished replication (`action-type`
/// REPLICATE, `result` SUCCESS or FAILURE), recorded in the source repository's
/// stream: ECR's fields, plus berth's `destination-account`, `destination-region`
/// and, on a failure or a copy without its tag, `failure-code`.
fn replication_event(
    src: &RepositoryRow,
    j: &ReplicationJob,
    region: &str,
    status: &str,
    code: Option<&str>,
) -> berth_store::events::NewEvent {
    let mut d = serde_json::json!({
        "result": if status == "COMPLETE" { "SUCCESS" } else { "FAILURE" },
        "repository-name": src.name,
        "image-digest": j.digest,
        "action-type": "REPLICATE",
        "source-account": src.account_id,
        "source-region": region,
        "destination-account": j.registry_id,
        "destination-region": j.region,
    });
    if let Some(t) = &j.tag {
        d["image-tag"] = Value::from(t.as_str());
    }
    if let Some(c) = code {
        d["failure-code"] = Value::from(c);
    }
    berth_store::events::NewEvent {
        detail_type: berth_store::events::REPLICATION_ACTION,
        detail: d,
    }
}

/// Runs replication jobs: same-region destinations through the core, other regions
/// through `peers` (none: such jobs fail, are retried, and end FAILED when parked).
pub struct ReplicationHandler {
    pub peers: Option<Arc<dyn PeerConnector>>,
}

impl ReplicationHandler {
    /// A peer may be down for a while (a restart, a network cut): retried with
    /// backoff for about a quarter of an hour before the job is parked.
    pub const RETRY: RetryPolicy = RetryPolicy {
        max_attempts: 20,
        base_delay_ms: 500,
        max_delay_ms: 60_000,
    };

    fn job(job: &ClaimedJob) -> std::result::Result<ReplicationJob, String> {
        serde_json::from_str(&job.payload).map_err(|e| format!("bad replication job: {e}"))
    }
}

impl Handler for ReplicationHandler {
    fn kind(&self) -> &'static str {
        REPLICATION_JOB
    }

    fn retry_policy(&self) -> RetryPolicy {
        Self::RETRY
    }

    fn run<'a>(
        &'a self,
        reg: &'a Registry,
        job: &'a ClaimedJob,
    ) -> BoxFuture<'a, std::result::Result<Finished, String>> {
        Box::pin(async move {
            let j = Self::job(job)?;
            let now = reg.now();
            let src = reg
                .repository_by_id(j.repo_id)
                .await
                .map_err(|e| e.to_string())?;
            let src_row = src.clone();
            let outcome = match src {
                None => Copied::Failed(SOURCE_IMAGE_NOT_FOUND),
                Some(src) if j.region == reg.config.region => reg
                    .replicate_local(&src, &j)
                    .await
                    .map_err(|e| e.to_string())?,
                Some(src) => {
                    let Some(peers) = &self.peers else {
                        return Err(format!("no peer serves region {}", j.region));
                    };
                    match reg.replicate_remote(&src, &j, peers).await {
                        Ok(c) => c,
                        Err(PeerError::Refused(code)) => Copied::Failed(code),
                        Err(PeerError::Retry(e)) => {
                            return Err(format!("replicating to {}: {e}", j.region))
                        }
                    }
                }
            };
            let (status, code) = match outcome {
                Copied::Complete => ("COMPLETE", None),
                Copied::WithoutTag => ("COMPLETE", Some(IMMUTABLE_TAG_CONFLICT)),
                Copied::Failed(c) => ("FAILED", Some(c)),
            };
            reg.meta
                .set_replication_status(&j, job.job_id, status, code, now)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(src) = &src_row {
                reg.audit_replication(src, &j, status, code)
                    .await
                    .map_err(|e| e.to_string())?;
                let ev = replication_event(src, &j, &reg.config.region, status, code);
                reg.record_events(&src.account_id, &src.name, &[ev])
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(Finished::done())
        })
    }

    fn parked<'a>(
        &'a self,
        reg: &'a Registry,
        job: &'a ClaimedJob,
        _error: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let Ok(j) = Self::job(job) else {
                return Ok(());
            };
            reg.meta
                .set_replication_status(
                    &j,
                    job.job_id,
                    "FAILED",
                    Some(REPLICATION_FAILED),
                    reg.now(),
                )
                .await?;
            if let Some(src) = reg.repository_by_id(j.repo_id).await? {
                let ev = replication_event(
                    &src,
                    &j,
                    &reg.config.region,
                    "FAILED",
                    Some(REPLICATION_FAILED),
                );
                reg.record_events(&src.account_id, &src.name, &[ev]).await?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::destinations;

    fn d(r: &str, a: &str) -> (String, String) {
        (r.to_string(), a.to_string())
    }

    #[test]
    fn rules_match_by_prefix_and_destinations_come_once_in_order() {
        let cfg = r#"{"rules":[
            {"destinations":[{"region":"us-west-2","registryId":"111111111111"}],
             "repositoryFilters":[{"filter":"prod","filterType":"PREFIX_MATCH"}]},
            {"destinations":[{"region":"us-east-1","registryId":"222222222222"},
                             {"region":"us-west-2","registryId":"111111111111"}]},
            {"destinations":[{"region":"eu-west-1","registryId":"333333333333"}],
             "repositoryFilters":[{"filter":"team-a/","filterType":"PREFIX_MATCH"},
                                  {"filter":"prod/x","filterType":"PREFIX_MATCH"}]}
        ]}"#;
        assert_eq!(
            destinations(cfg, "prod/app"),
            vec![
                d("us-west-2", "111111111111"),
                d("us-east-1", "222222222222")
            ]
        );
        assert_eq!(
            destinations(cfg, "prod/x1"),
            vec![
                d("us-west-2", "111111111111"),
                d("us-east-1", "222222222222"),
                d("eu-west-1", "333333333333")
            ]
        );
        // No filter: every repository; a prefix is not a substring match.
        assert_eq!(
            destinations(cfg, "dev/prod"),
            vec![
                d("us-east-1", "222222222222"),
                d("us-west-2", "111111111111")
            ]
        );
        assert_eq!(
            destinations(cfg, "team-a/web"),
            vec![
                d("us-east-1", "222222222222"),
                d("us-west-2", "111111111111"),
                d("eu-west-1", "333333333333")
            ]
        );
        assert!(destinations(r#"{"rules":[]}"#, "prod").is_empty());
    }
}

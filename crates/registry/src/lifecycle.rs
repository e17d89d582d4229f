//! Running lifecycle policies (ECR user guide, "Lifecycle policies": evaluation and
//! expiry). `berth-lifecycle` decides; this module gathers a repository's images,
//! applies the decision, and keeps the bookkeeping (`lastEvaluatedAt`, audit).
//!
//! OCI referrers (signatures, SBOMs) are not images of their own here: they are
//! left out of evaluation and deleted with their subject, as ECR does.

use std::collections::{HashMap, HashSet};

use berth_lifecycle::{evaluate, preview, LifecycleImage, LifecyclePolicy, LifecyclePolicyPreview};
use berth_oci::Digest;
use berth_store::{DeleteManifestOutcome, RepositoryRow};

use crate::{Registry, RegistryError};

type Result<T> = std::result::Result<T, RegistryError>;

/// Expired images deleted per write transaction.
const LIFECYCLE_BATCH: usize = 64;

/// One expired image.
#[derive(Debug, Clone)]
pub struct ExpiredImage {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: i64,
    pub rule_priority: u32,
    /// Referrers deleted with it.
    pub referrers: Vec<String>,
}

impl Registry {
    /// The repository's images as lifecycle evaluation sees them.
    async fn lifecycle_images(
        &self,
        repo: &RepositoryRow,
    ) -> Result<(Vec<LifecycleImage>, HashMap<String, Vec<String>>)> {
        let manifests = self.meta.list_manifests(repo.repo_id).await?;
        let mut tags: HashMap<String, Vec<String>> = HashMap::new();
        for (t, d) in self.meta.all_tags(repo.repo_id).await? {
            tags.entry(d).or_default().push(t);
        }
        let children: HashSet<String> = self
            .meta
            .index_children(repo.repo_id)
            .await?
            .into_iter()
            .collect();
        let mut referrers: HashMap<String, Vec<String>> = HashMap::new();
        for (subject, r) in self.meta.all_referrers(repo.repo_id).await? {
            referrers.entry(subject).or_default().push(r);
        }
        let present: HashSet<&str> = manifests.iter().map(|m| m.digest.as_str()).collect();
        let images = manifests
            .iter()
            .enumerate()
            // A referrer whose subject is here goes with its subject.
            .filter(|(_, m)| !m.subject.as_deref().is_some_and(|s| present.contains(s)))
            .map(|(i, m)| {
                let mut img = LifecycleImage::new(
                    m.digest.clone(),
                    tags.get(&m.digest).cloned().unwrap_or_default(),
                    m.pushed_at,
                )
                .with_index(i as u64);
                if let Some(p) = m.last_pulled_at {
                    img = img.pulled_at(p);
                }
                if children.contains(&m.digest) {
                    img = img.referenced_by_manifest_list();
                }
                img
            })
            .collect();
        Ok((images, referrers))
    }

    /// What `policy_text` would expire in `repo` now, without deleting anything.
    pub async fn lifecycle_preview(
        &self,
        repo: &RepositoryRow,
        policy_text: &str,
    ) -> Result<LifecyclePolicyPreview> {
        let policy = LifecyclePolicy::parse(policy_text)
            .map_err(|e| RegistryError::PolicyInvalid(e.to_string()))?;
        let (images, _) = self.lifecycle_images(repo).await?;
        Ok(preview(&policy, &images, self.now()))
    }

    /// Applies the repository's lifecycle policy: expired images lose their tags and
    /// manifests (and their referrers). Records `lastEvaluatedAt`.
    pub async fn run_lifecycle(
        &self,
        repo: &RepositoryRow,
        dry_run: bool,
    ) -> Result<Vec<ExpiredImage>> {
        let Some(text) = &repo.lifecycle_policy else {
            return Ok(Vec::new());
        };
        let policy = LifecyclePolicy::parse(text)
            .map_err(|e| RegistryError::PolicyInvalid(e.to_string()))?;
        let now = self.now();
        let (images, referrers) = self.lifecycle_images(repo).await?;
        let mut out = Vec::new();
        let expired: Vec<ExpiredImage> = evaluate(&policy, &images, now)
            .into_iter()
            .filter_map(|e| {
                let img = images.get(e.position)?;
                Some(ExpiredImage {
                    digest: img.digest.clone(),
                    tags: img.tags.clone(),
                    pushed_at: img.pushed_at,
                    rule_priority: e.rule_priority,
                    referrers: Vec::new(),
                })
            })
            .collect();
        if dry_run {
            return Ok(expired);
        }
        // Deleted in batches, one write transaction each (`Meta::delete_manifests`):
        // on SQLite every write waits for the process's one writer, and a
        // transaction per image fell behind a busy registry's pushes.
        let replication = self.deletion_replication(repo, None).await?;
        let jobs = |digest: &str| match &replication {
            Some(r) => r.jobs(digest),
            None => Ok(Vec::new()),
        };
        for chunk in expired.chunks(LIFECYCLE_BATCH) {
            // Per image: its referrers first (recursively: a signature of an SBOM
            // goes too), then the image with its audit record.
            let mut items: Vec<(String, Option<berth_store::AuditRow>)> = Vec::new();
            let mut owner: Vec<(usize, bool)> = Vec::new();
            for (i, gone) in chunk.iter().enumerate() {
                let mut stack: Vec<String> =
                    referrers.get(&gone.digest).cloned().unwrap_or_default();
                while let Some(r) = stack.pop() {
                    stack.extend(referrers.get(&r).cloned().unwrap_or_default());
                    if Digest::parse(&r).is_ok() {
                        items.push((r, None));
                        owner.push((i, false));
                    }
                }
                if Digest::parse(&gone.digest).is_err() {
                    continue;
                }
                let detail = format!(
                    "expired by lifecycle rule {} (tags: {})",
                    gone.rule_priority,
                    if gone.tags.is_empty() {
                        "none".to_string()
                    } else {
                        gone.tags.join(",")
                    }
                );
                items.push((
                    gone.digest.clone(),
                    Some(berth_store::AuditRow {
                        ts: now,
                        account_id: Some(repo.account_id.clone()),
                        principal: Some("berth:lifecycle".into()),
                        action: "ecr:LifecycleExpireImage".into(),
                        resource: Some(format!("{}@{}", repo.name, gone.digest)),
                        source: Some("lifecycle".into()),
                        outcome: detail,
                        detail: None,
                    }),
                ));
                owner.push((i, true));
            }
            let outcomes = self
                .meta
                .delete_manifests(repo.repo_id, &items, now, &jobs)
                .await?;
            let mut done: Vec<ExpiredImage> = chunk.to_vec();
            let mut kept = vec![false; chunk.len()];
            for (((digest, _), (i, subject)), o) in items.iter().zip(&owner).zip(outcomes) {
                let deleted = matches!(o, DeleteManifestOutcome::Deleted { .. });
                if *subject {
                    // Pushed or deleted concurrently, or listed by an index:
                    // nothing to expire any more.
                    kept[*i] = deleted;
                } else if !matches!(o, DeleteManifestOutcome::ReferencedBy(_)) {
                    done[*i].referrers.push(digest.clone());
                }
            }
            out.extend(
                done.into_iter()
                    .zip(kept)
                    .filter_map(|(g, k)| k.then_some(g)),
            );
        }
        if !dry_run {
            self.meta
                .set_lifecycle_evaluated_at(repo.repo_id, now)
                .await?;
        }
        Ok(out)
    }

    /// Runs every repository's lifecycle policy; returns the number of expired images.
    pub async fn run_all_lifecycles(&self) -> Result<usize> {
        let mut n = 0;
        for repo in self.meta.repositories_with_lifecycle().await? {
            match self.run_lifecycle(&repo, false).await {
                Ok(v) => {
                    if !v.is_empty() {
                        tracing::info!(repository = %repo.name, account = %repo.account_id, expired = v.len(), "lifecycle policy expired images");
                    }
                    n += v.len();
                }
                Err(e) => {
                    tracing::warn!(repository = %repo.name, error = %e, "lifecycle run failed")
                }
            }
        }
        Ok(n)
    }
}

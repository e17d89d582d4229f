//! Running lifecycle policies (ECR user guide, "Lifecycle policies": evaluation and
//! expiry). `berth-lifecycle` decides; this module gathers a repository's images,
//! applies the decision, and keeps the bookkeeping (`lastEvaluatedAt`, audit).
//!
//! OCI referrers (signatures, SBOMs) are not images of their own here: they are
//! left out of evaluation and deleted with their subject, as ECR does.

use std::collections::{HashMap, HashSet};

use berth_lifecycle::{evaluate, preview, LifecycleImage, LifecyclePolicy, LifecyclePolicyPreview};
use berth_oci::{Digest, Reference};
use berth_store::RepositoryRow;

use crate::{Registry, RegistryError};

type Result<T> = std::result::Result<T, RegistryError>;

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
        for e in evaluate(&policy, &images, now) {
            let Some(img) = images.get(e.position) else {
                continue;
            };
            let mut gone = ExpiredImage {
                digest: img.digest.clone(),
                tags: img.tags.clone(),
                pushed_at: img.pushed_at,
                rule_priority: e.rule_priority,
                referrers: Vec::new(),
            };
            if !dry_run {
                // Referrers first (recursively: a signature of an SBOM goes too).
                let mut stack: Vec<String> =
                    referrers.get(&img.digest).cloned().unwrap_or_default();
                while let Some(r) = stack.pop() {
                    stack.extend(referrers.get(&r).cloned().unwrap_or_default());
                    if let Ok(d) = Digest::parse(&r) {
                        match self.delete_manifest(repo, &Reference::Digest(d)).await {
                            Ok(_) | Err(RegistryError::ManifestUnknown) => gone.referrers.push(r),
                            Err(RegistryError::ReferencedByIndex(_)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                let Ok(d) = Digest::parse(&img.digest) else {
                    continue;
                };
                match self.delete_manifest(repo, &Reference::Digest(d)).await {
                    Ok(_) => {}
                    // Pushed or deleted concurrently: nothing to expire any more.
                    Err(RegistryError::ManifestUnknown)
                    | Err(RegistryError::ReferencedByIndex(_)) => continue,
                    Err(e) => return Err(e),
                }
                let detail = format!(
                    "expired by lifecycle rule {} (tags: {})",
                    e.rule_priority,
                    if img.tags.is_empty() {
                        "none".to_string()
                    } else {
                        img.tags.join(",")
                    }
                );
                let resource = format!("{}@{}", repo.name, img.digest);
                if let Err(err) = self
                    .meta
                    .append_audit(
                        now,
                        &repo.account_id,
                        "berth:lifecycle",
                        "ecr:LifecycleExpireImage",
                        Some(&resource),
                        "lifecycle",
                        &detail,
                        None,
                    )
                    .await
                {
                    tracing::warn!(error = %err, "could not write the audit log");
                }
            }
            out.push(gone);
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

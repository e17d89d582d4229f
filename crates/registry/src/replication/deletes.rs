//! Deletion replication (`docs/architecture.md`, "Replication"): with
//! `deleteReplication` enabled on a rule that matches the repository, a tag removal,
//! an image delete or a lifecycle expiry in the source is repeated at each of the
//! rule's destinations. A removed tag is removed there only while it still names the
//! same image (a destination that kept its own immutable tag keeps it); a deleted
//! image is deleted there by digest. Nothing is created at the destination.

use std::sync::Arc;

use berth_oci::{Digest, ImageTag, Reference, RepositoryName};
use berth_store::{ClaimedJob, NewJob, RepositoryRow, RetryPolicy, StoreError};
use futures_util::future::BoxFuture;
use serde_json::Value;

use super::{rule_matches, PeerConnector, PeerError, ACCESS_DENIED, REPOSITORY_NOT_FOUND};
use crate::jobs::{Finished, Handler};
use crate::{Registry, RegistryError};

type Result<T> = std::result::Result<T, RegistryError>;

/// The job kind of one deletion's replication to one destination.
pub const REPLICATION_DELETE_JOB: &str = "replicate-delete";

/// What a deletion replication job names. The source repository is named (not by
/// id): it may be gone by the time the job runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplicationDelete {
    pub account: String,
    pub repository: String,
    /// The image the removed tag named, or the deleted image.
    pub digest: String,
    /// `Some`: only this tag was removed; `None`: the image was deleted.
    pub tag: Option<String>,
    pub region: String,
    pub registry_id: String,
}

/// The destinations of `config`'s rules that match `name` and replicate deletions,
/// once each, in first-seen order.
pub fn delete_destinations(config: &str, name: &str) -> Vec<(String, String)> {
    let cfg: Value = serde_json::from_str(config).unwrap_or(Value::Null);
    let mut out: Vec<(String, String)> = Vec::new();
    for rule in cfg
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let on = rule
            .pointer("/deleteReplication/enabled")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !on || !rule_matches(rule, name) {
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
            let dest = (r.to_string(), a.to_string());
            if !out.contains(&dest) {
                out.push(dest);
            }
        }
    }
    out
}

/// The outcome recorded when the destination's copy is still needed by an index.
pub const REFERENCED_BY_INDEX: &str = "REFERENCED_BY_INDEX";

/// How one deletion's replication ended.
enum Deleted {
    Done,
    /// Nothing to do there (no such repository, image or tag, or the tag names
    /// another image).
    Nothing,
    Refused(&'static str),
}

/// The replication jobs of one deletion in a repository: one per destination whose
/// rule replicates deletions, built once the deleted image's digest is known, inside
/// the deletion's transaction (`Meta::delete_tag`, `Meta::delete_manifest`).
pub(crate) struct DeletionReplication {
    account: String,
    repository: String,
    tag: Option<String>,
    destinations: Vec<(String, String)>,
}

impl DeletionReplication {
    /// The jobs replicating the deletion of `digest` (or of the tag that named it).
    pub(crate) fn jobs(&self, digest: &str) -> std::result::Result<Vec<NewJob>, StoreError> {
        self.destinations
            .iter()
            .map(|(region, registry_id)| {
                let j = ReplicationDelete {
                    account: self.account.clone(),
                    repository: self.repository.clone(),
                    digest: digest.to_string(),
                    tag: self.tag.clone(),
                    region: region.clone(),
                    registry_id: registry_id.clone(),
                };
                let payload =
                    serde_json::to_string(&j).map_err(|e| StoreError::Config(e.to_string()))?;
                Ok(NewJob::now(REPLICATION_DELETE_JOB, payload))
            })
            .collect()
    }
}

impl Registry {
    /// What a deletion in `repo` (of `tag`, or of an image when `None`) must
    /// replicate: `None` when no rule replicating deletions matches. A configuration
    /// that cannot be read fails the deletion, so an acknowledged deletion always
    /// carries its replication jobs.
    pub(crate) async fn deletion_replication(
        &self,
        repo: &RepositoryRow,
        tag: Option<&str>,
    ) -> Result<Option<DeletionReplication>> {
        let Some(cfg) = self
            .meta
            .account_setting(
                &repo.account_id,
                berth_store::AccountSetting::ReplicationConfiguration,
            )
            .await?
        else {
            return Ok(None);
        };
        let destinations = delete_destinations(&cfg, &repo.name);
        if destinations.is_empty() {
            return Ok(None);
        }
        Ok(Some(DeletionReplication {
            account: repo.account_id.clone(),
            repository: repo.name.clone(),
            tag: tag.map(str::to_string),
            destinations,
        }))
    }

    /// Repeats a deletion in `j.registry_id`'s repository of this deployment.
    async fn delete_local(&self, j: &ReplicationDelete) -> Result<Deleted> {
        let name = RepositoryName::parse(&j.repository).map_err(|_| RegistryError::NameInvalid)?;
        if !self
            .registry_policy_allows(
                &j.account,
                &j.registry_id,
                "ecr:ReplicateImage",
                &j.repository,
            )
            .await?
        {
            return Ok(Deleted::Refused(ACCESS_DENIED));
        }
        let dst = match self.repository(&j.registry_id, &name).await {
            Ok(r) => r,
            Err(RegistryError::NameUnknown { .. }) => return Ok(Deleted::Nothing),
            Err(e) => return Err(e),
        };
        let digest =
            Digest::parse(&j.digest).map_err(|e| RegistryError::DigestInvalid(e.to_string()))?;
        let reference = match &j.tag {
            Some(t) => {
                let t = ImageTag::parse(t).map_err(|_| RegistryError::TagInvalid)?;
                let r = Reference::Tag(t);
                match self.find_manifest(&dst, &r).await {
                    Ok(m) if m.digest == j.digest => r,
                    Ok(_) | Err(RegistryError::ManifestUnknown) => return Ok(Deleted::Nothing),
                    Err(e) => return Err(e),
                }
            }
            None => Reference::Digest(digest),
        };
        match self.delete_manifest_from(&dst, &reference, true).await {
            Ok(_) => Ok(Deleted::Done),
            Err(RegistryError::ManifestUnknown) => Ok(Deleted::Nothing),
            // An index there still needs it: kept, and the audit record says why.
            Err(RegistryError::ReferencedByIndex(_)) => Ok(Deleted::Refused(REFERENCED_BY_INDEX)),
            Err(e) => Err(e),
        }
    }

    /// Repeats a deletion in a peer region.
    async fn delete_remote(
        &self,
        j: &ReplicationDelete,
        peers: &Arc<dyn PeerConnector>,
    ) -> std::result::Result<Deleted, PeerError> {
        let session = match peers
            .open(&j.account, &j.region, &j.registry_id, &j.repository, false)
            .await
        {
            Ok(s) => s,
            Err(PeerError::Refused(REPOSITORY_NOT_FOUND)) => return Ok(Deleted::Nothing),
            Err(PeerError::Refused(c)) => return Ok(Deleted::Refused(c)),
            Err(e) => return Err(e),
        };
        let reference = match &j.tag {
            Some(t) => {
                if session.manifest_digest(t).await?.as_deref() != Some(j.digest.as_str()) {
                    return Ok(Deleted::Nothing);
                }
                t.as_str()
            }
            None => j.digest.as_str(),
        };
        Ok(if session.delete_manifest(reference).await? {
            Deleted::Done
        } else {
            Deleted::Nothing
        })
    }

    /// The audit record of a replicated deletion in the source account (and, in this
    /// region, the destination's).
    async fn audit_deletion(&self, j: &ReplicationDelete, outcome: &str) -> Result<()> {
        let what = match &j.tag {
            Some(t) => format!("{}:{t}", j.repository),
            None => format!("{}@{}", j.repository, j.digest),
        };
        let region = &self.config.region;
        let src_arn = format!("arn:aws:ecr:{region}:{}:repository/{what}", j.account);
        self.audit(&crate::AuditRecord {
            account: &j.account,
            principal: "berth:replication",
            action: "ecr:ReplicateImage",
            resource: Some(&src_arn),
            source: "berth:replication",
            outcome: &format!("DELETE {outcome} to {}/{}", j.region, j.registry_id),
        })
        .await?;
        if j.region != *region {
            return Ok(());
        }
        let dst_arn = format!("arn:aws:ecr:{region}:{}:repository/{what}", j.registry_id);
        self.audit(&crate::AuditRecord {
            account: &j.registry_id,
            principal: &format!("arn:aws:iam::{}:root", j.account),
            action: "ecr:ReplicateImage",
            resource: Some(&dst_arn),
            source: "berth:replication",
            outcome: &format!("DELETE {outcome} from {region}/{}", j.account),
        })
        .await
    }
}

/// Runs deletion replication jobs.
pub struct ReplicationDeleteHandler {
    pub peers: Option<Arc<dyn PeerConnector>>,
}

impl Handler for ReplicationDeleteHandler {
    fn kind(&self) -> &'static str {
        REPLICATION_DELETE_JOB
    }

    fn retry_policy(&self) -> RetryPolicy {
        super::ReplicationHandler::RETRY
    }

    fn run<'a>(
        &'a self,
        reg: &'a Registry,
        job: &'a ClaimedJob,
    ) -> BoxFuture<'a, std::result::Result<Finished, String>> {
        Box::pin(async move {
            let j: ReplicationDelete = serde_json::from_str(&job.payload)
                .map_err(|e| format!("bad deletion replication job: {e}"))?;
            let outcome = if j.region == reg.config.region {
                reg.delete_local(&j).await.map_err(|e| e.to_string())?
            } else {
                let Some(peers) = &self.peers else {
                    return Err(format!("no peer serves region {}", j.region));
                };
                match reg.delete_remote(&j, peers).await {
                    Ok(d) => d,
                    Err(PeerError::Refused(c)) => Deleted::Refused(c),
                    Err(PeerError::Retry(e)) => {
                        return Err(format!("replicating a deletion to {}: {e}", j.region))
                    }
                }
            };
            let outcome = match outcome {
                Deleted::Done => "COMPLETE".to_string(),
                Deleted::Nothing => "COMPLETE NOTHING_TO_DELETE".to_string(),
                Deleted::Refused(c) => format!("FAILED {c}"),
            };
            reg.audit_deletion(&j, &outcome)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Finished::done())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::delete_destinations;

    #[test]
    fn only_rules_with_delete_replication_enabled_count() {
        let cfg = r#"{"rules":[
            {"destinations":[{"region":"us-west-2","registryId":"111111111111"}]},
            {"destinations":[{"region":"us-east-1","registryId":"222222222222"}],
             "deleteReplication":{"enabled":true},
             "repositoryFilters":[{"filter":"prod","filterType":"PREFIX_MATCH"}]},
            {"destinations":[{"region":"eu-west-1","registryId":"333333333333"}],
             "deleteReplication":{"enabled":false}}
        ]}"#;
        assert_eq!(
            delete_destinations(cfg, "prod/app"),
            vec![("us-east-1".to_string(), "222222222222".to_string())]
        );
        assert!(delete_destinations(cfg, "dev/app").is_empty());
    }
}

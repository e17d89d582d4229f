//! Repository creation templates and the one way the registry creates a repository
//! by itself (`create_repository_on_behalf`): on a pull through the cache, on
//! replication into this registry, and on a push to a missing repository. The
//! template whose prefix matches the name most specifically (`ROOT` last) and whose
//! `appliedFor` names the purpose sets the new repository's tag mutability (with
//! exclusions), encryption, resource tags, repository policy and lifecycle policy;
//! without one, the defaults (mutable, AES256, no policies). Templates never touch
//! repositories that already exist or that `CreateRepository` makes.
//!
//! The front end validates a template before it reaches the core; the core stores
//! it as JSON.

use berth_oci::RepositoryName;
use berth_store::meta::{DocTable, TemplateRow};
use serde::{Deserialize, Serialize};

use crate::mutability::{ExclusionFilter, TagMutability};
use crate::registry::RepoSettings;
use crate::{Registry, RegistryError, RepositoryRow};

type Result<T> = std::result::Result<T, RegistryError>;

/// The prefix that matches every repository no other template matches.
pub const ROOT: &str = "ROOT";

/// Why the registry creates a repository by itself (a template's `appliedFor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreationPurpose {
    PullThroughCache,
    Replication,
    CreateOnPush,
}

impl CreationPurpose {
    pub const ALL: [CreationPurpose; 3] = [
        CreationPurpose::PullThroughCache,
        CreationPurpose::Replication,
        CreationPurpose::CreateOnPush,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CreationPurpose::PullThroughCache => "PULL_THROUGH_CACHE",
            CreationPurpose::Replication => "REPLICATION",
            CreationPurpose::CreateOnPush => "CREATE_ON_PUSH",
        }
    }

    pub fn parse(s: &str) -> Option<CreationPurpose> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A repository creation template (ECR `RepositoryCreationTemplate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreationTemplate {
    pub prefix: String,
    pub description: Option<String>,
    /// `AES256`, `KMS` or `KMS_DSSE`.
    pub encryption_type: String,
    /// The KMS key's ARN (resolved by the front end when the template was put).
    pub kms_key: Option<String>,
    pub resource_tags: Vec<(String, String)>,
    /// `MUTABLE`, `IMMUTABLE`, `IMMUTABLE_WITH_EXCLUSION`, `MUTABLE_WITH_EXCLUSION`.
    pub tag_mutability: String,
    pub exclusions: Vec<ExclusionFilter>,
    pub repository_policy: Option<String>,
    pub lifecycle_policy: Option<String>,
    /// Purposes, as `CreationPurpose::as_str`.
    pub applied_for: Vec<String>,
    pub custom_role_arn: Option<String>,
    /// Unix milliseconds; kept in the row, not the body.
    #[serde(skip)]
    pub created_at: i64,
    #[serde(skip)]
    pub updated_at: i64,
}

impl CreationTemplate {
    fn applies_to(&self, purpose: CreationPurpose) -> bool {
        self.applied_for.iter().any(|p| p == purpose.as_str())
    }

    /// How specifically this template's prefix covers `name`: `Some(len)` for a
    /// prefix `p` when the name lies under `p/`, `Some(0)` for `ROOT`.
    fn specificity(&self, name: &str) -> Option<usize> {
        if self.prefix == ROOT {
            return Some(0);
        }
        let p = self.prefix.trim_end_matches('/');
        let rest = name.strip_prefix(p)?;
        rest.starts_with('/').then_some(p.len())
    }

    fn settings(&self) -> RepoSettings {
        RepoSettings {
            tag_mutability: TagMutability::parse(&self.tag_mutability)
                .unwrap_or(TagMutability::Mutable),
            exclusions: self.exclusions.clone(),
            scan_on_push: false,
            encryption_type: self.encryption_type.clone(),
            kms_key: self.kms_key.clone(),
            tags: self.resource_tags.clone(),
        }
    }
}

fn from_row(r: TemplateRow) -> Result<CreationTemplate> {
    let mut t: CreationTemplate = serde_json::from_str(&r.body).map_err(|e| {
        RegistryError::Store(berth_store::StoreError::Conflict(format!(
            "stored creation template {} does not parse: {e}",
            r.prefix
        )))
    })?;
    t.prefix = r.prefix;
    t.created_at = r.created_at;
    t.updated_at = r.updated_at;
    Ok(t)
}

fn body(t: &CreationTemplate) -> String {
    serde_json::to_string(t).expect("a template serializes")
}

/// The template among `all` that applies to creating `name` for `purpose`.
pub fn matching_template<'a>(
    all: &'a [CreationTemplate],
    name: &str,
    purpose: CreationPurpose,
) -> Option<&'a CreationTemplate> {
    all.iter()
        .filter(|t| t.applies_to(purpose))
        .filter_map(|t| t.specificity(name).map(|s| (s, t)))
        .max_by_key(|(s, _)| *s)
        .map(|(_, t)| t)
}

impl Registry {
    /// Every creation template of `account`, in prefix order.
    pub async fn creation_templates(&self, account: &str) -> Result<Vec<CreationTemplate>> {
        self.meta
            .list_templates(DocTable::CreationTemplates, account)
            .await?
            .into_iter()
            .map(from_row)
            .collect()
    }

    /// Stores a new template; `None` when its prefix already has one.
    pub async fn create_creation_template(
        &self,
        account: &str,
        t: &CreationTemplate,
    ) -> Result<Option<CreationTemplate>> {
        let now = self.now();
        if !self
            .meta
            .insert_template(
                DocTable::CreationTemplates,
                account,
                &t.prefix,
                &body(t),
                now,
            )
            .await?
        {
            return Ok(None);
        }
        Ok(Some(CreationTemplate {
            created_at: now,
            updated_at: now,
            ..t.clone()
        }))
    }

    /// Replaces a template; `None` when its prefix has none.
    pub async fn update_creation_template(
        &self,
        account: &str,
        t: &CreationTemplate,
    ) -> Result<Option<CreationTemplate>> {
        let now = self.now();
        if !self
            .meta
            .update_template(
                DocTable::CreationTemplates,
                account,
                &t.prefix,
                &body(t),
                now,
            )
            .await?
        {
            return Ok(None);
        }
        Ok(Some(CreationTemplate {
            updated_at: now,
            ..t.clone()
        }))
    }

    /// Deletes a template and returns it; `None` when the prefix has none.
    pub async fn delete_creation_template(
        &self,
        account: &str,
        prefix: &str,
    ) -> Result<Option<CreationTemplate>> {
        self.meta
            .delete_template(DocTable::CreationTemplates, account, prefix)
            .await?
            .map(from_row)
            .transpose()
    }

    /// Whether a push to the missing repository `name` creates it: when `account`
    /// has any `CREATE_ON_PUSH` template, exactly when one of them matches (as on
    /// ECR); otherwise the deployment-wide default (`BERTH_CREATE_ON_PUSH`).
    pub async fn creates_on_push(&self, account: &str, name: &RepositoryName) -> Result<bool> {
        let all = self.creation_templates(account).await?;
        if !all
            .iter()
            .any(|t| t.applies_to(CreationPurpose::CreateOnPush))
        {
            return Ok(self.config.create_on_push);
        }
        Ok(matching_template(&all, name.as_str(), CreationPurpose::CreateOnPush).is_some())
    }

    /// Creates `name` in `account` on behalf of the registry for `purpose`, with the
    /// matching creation template's settings (or the defaults), and returns it. A
    /// repository that already exists (another node or request created it first) is
    /// returned as it is. The caller has authorized the creation.
    pub async fn create_repository_on_behalf(
        &self,
        account: &str,
        name: &RepositoryName,
        purpose: CreationPurpose,
    ) -> Result<RepositoryRow> {
        let all = self.creation_templates(account).await?;
        let template = matching_template(&all, name.as_str(), purpose);
        let settings = template.map(|t| t.settings()).unwrap_or_default();
        let repo = match self.create_repository(account, name, &settings).await {
            Ok(r) => r,
            Err(RegistryError::RepositoryAlreadyExists { .. }) => {
                return self.repository(account, name).await
            }
            Err(e) => return Err(e),
        };
        let Some(t) = template else {
            return Ok(repo);
        };
        if t.repository_policy.is_some() {
            self.set_repository_policy(&repo, t.repository_policy.clone())
                .await?;
        }
        if t.lifecycle_policy.is_some() {
            self.set_lifecycle_policy(&repo, t.lifecycle_policy.clone())
                .await?;
        }
        tracing::info!(
            account,
            repository = %name,
            purpose = purpose.as_str(),
            template = %t.prefix,
            "created a repository from a creation template"
        );
        self.repository(account, name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(prefix: &str, applied: &[&str]) -> CreationTemplate {
        CreationTemplate {
            prefix: prefix.into(),
            description: None,
            encryption_type: "AES256".into(),
            kms_key: None,
            resource_tags: Vec::new(),
            tag_mutability: "MUTABLE".into(),
            exclusions: Vec::new(),
            repository_policy: None,
            lifecycle_policy: None,
            applied_for: applied.iter().map(|s| s.to_string()).collect(),
            custom_role_arn: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn longest_prefix_then_root() {
        let all = vec![
            t("ROOT", &["PULL_THROUGH_CACHE", "CREATE_ON_PUSH"]),
            t("prod", &["PULL_THROUGH_CACHE"]),
            t("prod/team", &["PULL_THROUGH_CACHE"]),
            t("dev/", &["REPLICATION"]),
        ];
        let pick = |n: &str, p| matching_template(&all, n, p).map(|t| t.prefix.as_str());
        let ptc = CreationPurpose::PullThroughCache;
        assert_eq!(pick("prod/team/app", ptc), Some("prod/team"));
        assert_eq!(pick("prod/teamx/app", ptc), Some("prod"));
        assert_eq!(pick("prod/app", ptc), Some("prod"));
        // The prefix implies a '/': "prod" itself and "production/…" are not under it.
        assert_eq!(pick("prod", ptc), Some("ROOT"));
        assert_eq!(pick("production/app", ptc), Some("ROOT"));
        assert_eq!(pick("dev/app", CreationPurpose::Replication), Some("dev/"));
        assert_eq!(pick("dev/app", ptc), Some("ROOT"));
        assert_eq!(pick("other/app", CreationPurpose::Replication), None);
        assert_eq!(
            pick("prod/app", CreationPurpose::CreateOnPush),
            Some("ROOT")
        );
    }
}

//! Pull-through cache rules (ECR `PullThroughCacheRule`): which upstream registry a
//! repository prefix of this registry mirrors. The front end validates a rule before
//! it reaches the core; the core stores it as JSON and finds the rule for a name
//! (the longest matching prefix, `ROOT` last). Only the credential and the role of a
//! rule change after it is created.

use berth_store::meta::{DocTable, TemplateRow};
use serde::{Deserialize, Serialize};

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

//! Pull-time update exclusions (`Register|Deregister|ListPullTimeUpdateExclusions`):
//! principals whose pulls do not update an image's `lastRecordedPullTime`, so that
//! scanners or replicators reading every image do not keep old images "recently
//! pulled" for lifecycle rules (`sinceImagePulled`).

use berth_store::meta::DocTable;

use crate::{Registry, RegistryError};

type Result<T> = std::result::Result<T, RegistryError>;

/// ECR's quota of exclusions per registry.
pub const MAX_PULL_TIME_EXCLUSIONS: usize = 100;

impl Registry {
    /// Every excluded principal ARN of `account` and when it was registered.
    pub async fn pull_time_exclusions(&self, account: &str) -> Result<Vec<(String, i64)>> {
        Ok(self
            .meta
            .list_templates(DocTable::PullTimeExclusions, account)
            .await?
            .into_iter()
            .map(|r| (r.prefix, r.created_at))
            .collect())
    }

    /// Registers `arn`; `None` when it already was, else its creation time.
    pub async fn register_pull_time_exclusion(
        &self,
        account: &str,
        arn: &str,
    ) -> Result<Option<i64>> {
        let now = self.now();
        let inserted = self
            .meta
            .insert_template(DocTable::PullTimeExclusions, account, arn, "{}", now)
            .await?;
        Ok(inserted.then_some(now))
    }

    /// Deregisters `arn`; false when it was not registered.
    pub async fn deregister_pull_time_exclusion(&self, account: &str, arn: &str) -> Result<bool> {
        Ok(self
            .meta
            .delete_template(DocTable::PullTimeExclusions, account, arn)
            .await?
            .is_some())
    }

    /// [`Registry::records_pulls_of`] for a principal (its ARN not built).
    pub async fn records_pulls_by(
        &self,
        account: &str,
        p: &crate::identity::Principal,
    ) -> Result<bool> {
        Ok(!self
            .pull_time_exclusions_for_read(account)
            .await?
            .iter()
            .any(|(a, _)| p.has_arn(a)))
    }

    /// Whether a pull by `principal_arn` from `account`'s registry is recorded.
    pub async fn records_pulls_of(&self, account: &str, principal_arn: &str) -> Result<bool> {
        Ok(!self
            .pull_time_exclusions_for_read(account)
            .await?
            .iter()
            .any(|(a, _)| a == principal_arn))
    }
}

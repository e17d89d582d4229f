//! ECR's account settings (`BASIC_SCAN_TYPE_VERSION`, `REGISTRY_POLICY_SCOPE`,
//! `BLOB_MOUNTING`): plain (account, name) → value rows. The registry core owns the
//! names, their defaults and their validation.

use super::*;

impl Meta {
    /// The stored value of one account setting, if it was ever put.
    pub async fn account_flag(
        &self,
        account_id: &str,
        name: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT value FROM account_flags WHERE account_id = $1 AND name = $2",
        )
        .bind(account_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn put_account_flag(
        &self,
        account_id: &str,
        name: &str,
        value: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO account_flags (account_id, name, value, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (account_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(account_id)
        .bind(name)
        .bind(value)
        .bind(now)
        .execute(&mut *g.tx)
        .await?;
        g.commit().await
    }
}

/// The tables of keyed registry documents: one row per (account, key) whose body
/// is JSON owned by the registry core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocTable {
    /// Repository creation templates, keyed by prefix.
    CreationTemplates,
    /// Pull-through cache rules, keyed by ECR repository prefix.
    PullThroughRules,
    /// Principals whose pulls do not update `lastRecordedPullTime`, keyed by ARN.
    PullTimeExclusions,
}

impl DocTable {
    fn name(self) -> &'static str {
        match self {
            DocTable::CreationTemplates => "creation_templates",
            DocTable::PullThroughRules => "pull_through_rules",
            DocTable::PullTimeExclusions => "pull_time_exclusions",
        }
    }
}

/// One stored document: its key, its body and its times (unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRow {
    pub prefix: String,
    pub body: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Meta {
    /// Inserts a template; false (and no change) when the prefix already has one.
    pub async fn insert_template(
        &self,
        table: DocTable,
        account_id: &str,
        prefix: &str,
        body: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query(&format!(
            "INSERT INTO {} (account_id, prefix, body, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (account_id, prefix) DO NOTHING",
            table.name()
        ))
        .bind(account_id)
        .bind(prefix)
        .bind(body)
        .bind(now)
        .execute(&mut *g.tx)
        .await?
        .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// Replaces a template's body; false when the prefix has none.
    pub async fn update_template(
        &self,
        table: DocTable,
        account_id: &str,
        prefix: &str,
        body: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query(&format!(
            "UPDATE {} SET body = $1, updated_at = $2 WHERE account_id = $3 AND prefix = $4",
            table.name()
        ))
        .bind(body)
        .bind(now)
        .bind(account_id)
        .bind(prefix)
        .execute(&mut *g.tx)
        .await?
        .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// Deletes a template and returns it, if the prefix had one.
    pub async fn delete_template(
        &self,
        table: DocTable,
        account_id: &str,
        prefix: &str,
    ) -> Result<Option<TemplateRow>, StoreError> {
        let mut g = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "DELETE FROM {} WHERE account_id = $1 AND prefix = $2
             RETURNING prefix, body, created_at, updated_at",
            table.name()
        ))
        .bind(account_id)
        .bind(prefix)
        .fetch_optional(&mut *g.tx)
        .await?
        .map(|r| template_row(&r))
        .transpose()?;
        g.commit().await?;
        Ok(row)
    }

    /// Every template of an account, in prefix order.
    pub async fn list_templates(
        &self,
        table: DocTable,
        account_id: &str,
    ) -> Result<Vec<TemplateRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT prefix, body, created_at, updated_at FROM {}
             WHERE account_id = $1 ORDER BY prefix",
            table.name()
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(template_row).collect()
    }
}

fn template_row(r: &AnyRow) -> Result<TemplateRow, StoreError> {
    Ok(TemplateRow {
        prefix: r.try_get("prefix")?,
        body: r.try_get("body")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

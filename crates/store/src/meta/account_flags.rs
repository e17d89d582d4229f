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

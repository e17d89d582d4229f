//! Inputs of policy condition keys: principal tags of IAM users
//! (`aws:PrincipalTag/<key>`) and a repository's resource tags by name
//! (`aws:ResourceTag/<key>`).

use super::*;

impl Meta {
    /// The user's tags in key order.
    pub async fn user_tags(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT tag_key, tag_value FROM user_tags WHERE account_id = $1 AND user_name = $2 ORDER BY tag_key")
            .bind(account_id)
            .bind(user_name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Sets (adds or replaces) a user's tag.
    pub async fn put_user_tag(
        &self,
        account_id: &str,
        user_name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("INSERT INTO user_tags (account_id, user_name, tag_key, tag_value) VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, user_name, tag_key) DO UPDATE SET tag_value = excluded.tag_value")
            .bind(account_id)
            .bind(user_name)
            .bind(key)
            .bind(value)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    /// Removes a user's tag; false when it had none with that key.
    pub async fn delete_user_tag(
        &self,
        account_id: &str,
        user_name: &str,
        key: &str,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query(
            "DELETE FROM user_tags WHERE account_id = $1 AND user_name = $2 AND tag_key = $3",
        )
        .bind(account_id)
        .bind(user_name)
        .bind(key)
        .execute(&mut *g.tx)
        .await?
        .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// The resource tags of `account`'s repository `name` (none when it does not
    /// exist), in one query.
    pub async fn repository_tags_by_name(
        &self,
        account_id: &str,
        name: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT t.tag_key, t.tag_value FROM repository_tags t JOIN repositories r ON r.repo_id = t.repo_id WHERE r.account_id = $1 AND r.name = $2 ORDER BY t.tag_key")
            .bind(account_id)
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Open upload sessions started by `principal` (an ARN).
    pub async fn count_uploads_of(&self, principal: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM uploads WHERE principal = $1")
            .bind(principal)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Records who opened an upload session.
    pub async fn set_upload_principal(
        &self,
        upload_id: &str,
        principal: &str,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("UPDATE uploads SET principal = $1 WHERE upload_id = $2")
            .bind(principal)
            .bind(upload_id)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }
}

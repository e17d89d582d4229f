//! When each tag of a pull-through cache repository was last checked upstream, so
//! every node re-checks a cached tag at most once per refresh interval.

use super::*;

impl Meta {
    /// When `tag` of repository `repo_id` was last checked upstream, if ever.
    pub async fn pull_through_checked(
        &self,
        repo_id: i64,
        tag: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT checked_at FROM pull_through_checks WHERE repo_id = $1 AND tag = $2",
        )
        .bind(repo_id)
        .bind(tag)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn set_pull_through_checked(
        &self,
        repo_id: i64,
        tag: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO pull_through_checks (repo_id, tag, checked_at) VALUES ($1, $2, $3)
             ON CONFLICT (repo_id, tag) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind(repo_id)
        .bind(tag)
        .bind(now)
        .execute(&mut *g.tx)
        .await?;
        g.commit().await
    }
}

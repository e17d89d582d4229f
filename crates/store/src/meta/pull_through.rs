//! When each tag of a pull-through cache repository was last checked upstream, so
//! every node re-checks a cached tag at most once per refresh interval; and leases,
//! so that one node at a time fetches a given image into the cache.

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

    /// Takes the lease `name` for `holder` until `until` when nobody holds it or
    /// its holder's lease ran out before `now`; false when another holds it.
    pub async fn take_pull_through_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write_short_lived().await?;
        let n = sqlx::query(
            "INSERT INTO pull_through_leases (name, holder, until) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
             WHERE pull_through_leases.until < $4 OR pull_through_leases.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(now)
        .execute(&mut *g.tx)
        .await?
        .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// Whether somebody holds the lease `name` at `now`.
    pub async fn pull_through_lease_held(&self, name: &str, now: i64) -> Result<bool, StoreError> {
        let until: Option<i64> =
            sqlx::query_scalar("SELECT until FROM pull_through_leases WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(until.is_some_and(|u| u >= now))
    }

    /// Gives the lease back (if `holder` still holds it).
    pub async fn release_pull_through_lease(
        &self,
        name: &str,
        holder: &str,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write_short_lived().await?;
        sqlx::query("DELETE FROM pull_through_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    /// Records the manifest tree (encoded by the caller) fetched under the import
    /// lease `name` at `now`, and forgets trees fetched before `forget_before`.
    pub async fn put_pull_through_fetched(
        &self,
        name: &str,
        now: i64,
        tree: &str,
        forget_before: i64,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write_short_lived().await?;
        sqlx::query("DELETE FROM pull_through_fetched WHERE fetched_at < $1")
            .bind(forget_before)
            .execute(&mut *g.tx)
            .await?;
        sqlx::query(
            "INSERT INTO pull_through_fetched (name, fetched_at, tree) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET fetched_at = excluded.fetched_at, tree = excluded.tree",
        )
        .bind(name)
        .bind(now)
        .bind(tree)
        .execute(&mut *g.tx)
        .await?;
        g.commit().await
    }

    /// The tree recorded under `name` at or after `since`, if any.
    pub async fn pull_through_fetched(
        &self,
        name: &str,
        since: i64,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT tree FROM pull_through_fetched WHERE name = $1 AND fetched_at >= $2",
        )
        .bind(name)
        .bind(since)
        .fetch_optional(&self.pool)
        .await?)
    }
}

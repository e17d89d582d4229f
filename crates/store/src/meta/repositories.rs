//! Repositories, their resource tags and settings, and per-repository listings.

use super::*;

impl Meta {
    pub async fn get_repository(
        &self,
        account_id: &str,
        name: &str,
    ) -> Result<Option<RepositoryRow>, StoreError> {
        let sql =
            format!("SELECT {REPO_COLS} FROM repositories WHERE account_id = $1 AND name = $2");
        let row = sqlx::query(&sql)
            .bind(account_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(repo_from_row).transpose()?)
    }

    pub async fn get_repository_by_id(
        &self,
        repo_id: i64,
    ) -> Result<Option<RepositoryRow>, StoreError> {
        let sql = format!("SELECT {REPO_COLS} FROM repositories WHERE repo_id = $1");
        let row = sqlx::query(&sql)
            .bind(repo_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(repo_from_row).transpose()?)
    }

    /// Creates a repository; `Ok(None)` when the name is taken.
    pub async fn create_repository(
        &self,
        new: &NewRepository,
    ) -> Result<Option<RepositoryRow>, StoreError> {
        let mut g = self.begin_write().await?;
        let sql = format!(
            "INSERT INTO repositories (account_id, name, created_at, tag_mutability, mutability_exclusions, scan_on_push, encryption_type, kms_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (account_id, name) DO NOTHING RETURNING {REPO_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(&new.account_id)
            .bind(&new.name)
            .bind(new.created_at)
            .bind(&new.tag_mutability)
            .bind(&new.mutability_exclusions)
            .bind(new.scan_on_push as i64)
            .bind(&new.encryption_type)
            .bind(new.kms_key.clone())
            .fetch_optional(&mut *g.tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let repo = repo_from_row(&row)?;
        for (k, v) in &new.tags {
            sqlx::query("INSERT INTO repository_tags (repo_id, tag_key, tag_value) VALUES ($1, $2, $3) ON CONFLICT (repo_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value")
                .bind(repo.repo_id)
                .bind(k)
                .bind(v)
                .execute(&mut *g.tx)
                .await?;
        }
        g.commit().await?;
        Ok(Some(repo))
    }

    /// Repositories of an account in name order, after `after`, at most `limit`.
    pub async fn list_repositories(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RepositoryRow>, StoreError> {
        let sql = format!(
            "SELECT {REPO_COLS} FROM repositories WHERE account_id = $1 AND name > $2 ORDER BY name LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(account_id)
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(repo_from_row).collect::<Result<_, _>>()?)
    }

    /// Deletes a repository and everything in it. Blobs stay for the collector,
    /// which is told about each of them.
    pub async fn delete_repository(&self, repo_id: i64, now: i64) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("INSERT INTO gc_candidates (repo_id, digest, since) SELECT 0, digest, $2 FROM repo_blobs WHERE repo_id = $1 ON CONFLICT (repo_id, digest) DO UPDATE SET since = excluded.since")
            .bind(repo_id)
            .bind(now)
            .execute(&mut *g.tx)
            .await?;
        for table in [
            "gc_candidates",
            "tags",
            "manifest_refs",
            "manifests",
            "repo_blobs",
            "repository_tags",
            "uploads",
            "replication_status",
            "repositories",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE repo_id = $1"))
                .bind(repo_id)
                .execute(&mut *g.tx)
                .await?;
        }
        g.commit().await
    }

    pub async fn count_images(&self, repo_id: i64) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM manifests WHERE repo_id = $1")
                .bind(repo_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Updates one text/int column of a repository (the caller names a fixed column).
    pub async fn set_repository_field(
        &self,
        repo_id: i64,
        column: RepoColumn,
        value: Option<String>,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query(&format!(
            "UPDATE repositories SET {} = $1 WHERE repo_id = $2",
            column.name()
        ))
        .bind(value)
        .bind(repo_id)
        .execute(&mut *g.tx)
        .await?;
        g.commit().await
    }

    /// Resource tags of a repository, by key.
    pub async fn repository_tags(&self, repo_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT tag_key, tag_value FROM repository_tags WHERE repo_id = $1 ORDER BY tag_key",
        )
        .bind(repo_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Adds or overwrites tags, refusing (without change) when the result would
    /// exceed `max` tags. Returns false in that case.
    pub async fn put_repository_tags(
        &self,
        repo_id: i64,
        tags: &[(String, String)],
        max: i64,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        for (k, v) in tags {
            sqlx::query("INSERT INTO repository_tags (repo_id, tag_key, tag_value) VALUES ($1, $2, $3) ON CONFLICT (repo_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value")
                .bind(repo_id)
                .bind(k)
                .bind(v)
                .execute(&mut *g.tx)
                .await?;
        }
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM repository_tags WHERE repo_id = $1")
            .bind(repo_id)
            .fetch_one(&mut *g.tx)
            .await?;
        if n > max {
            return Ok(false);
        }
        g.commit().await?;
        Ok(true)
    }

    pub async fn delete_repository_tags(
        &self,
        repo_id: i64,
        keys: &[String],
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        for k in keys {
            sqlx::query("DELETE FROM repository_tags WHERE repo_id = $1 AND tag_key = $2")
                .bind(repo_id)
                .bind(k)
                .execute(&mut *g.tx)
                .await?;
        }
        g.commit().await
    }

    /// Sets tag mutability and its exclusion filters together.
    pub async fn set_tag_mutability(
        &self,
        repo_id: i64,
        mode: &str,
        exclusions: &str,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("UPDATE repositories SET tag_mutability = $1, mutability_exclusions = $2 WHERE repo_id = $3")
            .bind(mode)
            .bind(exclusions)
            .bind(repo_id)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    /// Every image of a repository (without bodies), newest first.
    pub async fn list_manifests(&self, repo_id: i64) -> Result<Vec<ManifestRow>, StoreError> {
        let sql = format!("SELECT {MANIFEST_COLS} FROM manifests WHERE repo_id = $1 ORDER BY pushed_at DESC, digest");
        let rows = sqlx::query(&sql)
            .bind(repo_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| manifest_from_row(r, false))
            .collect::<Result<_, _>>()?)
    }

    /// Every (tag, digest) of a repository.
    pub async fn all_tags(&self, repo_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT tag, digest FROM tags WHERE repo_id = $1 ORDER BY tag")
            .bind(repo_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Digests of manifests listed by an index in the repository.
    pub async fn index_children(&self, repo_id: i64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT child FROM manifest_refs WHERE repo_id = $1 AND kind = 'manifest'",
        )
        .bind(repo_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Repositories (of every account) that have a lifecycle policy.
    pub async fn repositories_with_lifecycle(&self) -> Result<Vec<RepositoryRow>, StoreError> {
        let sql = format!("SELECT {REPO_COLS} FROM repositories WHERE lifecycle_policy IS NOT NULL ORDER BY repo_id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(repo_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn set_lifecycle_evaluated_at(
        &self,
        repo_id: i64,
        at: i64,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("UPDATE repositories SET lifecycle_evaluated_at = $1 WHERE repo_id = $2")
            .bind(at)
            .bind(repo_id)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    pub async fn lifecycle_preview(&self, repo_id: i64) -> Result<Option<String>, StoreError> {
        let v: Option<Option<String>> =
            sqlx::query_scalar("SELECT lifecycle_preview FROM repositories WHERE repo_id = $1")
                .bind(repo_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(v.flatten())
    }

    pub async fn set_lifecycle_preview(
        &self,
        repo_id: i64,
        v: Option<String>,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("UPDATE repositories SET lifecycle_preview = $1 WHERE repo_id = $2")
            .bind(v)
            .bind(repo_id)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    /// (subject digest, referrer digest) pairs of a repository.
    pub async fn all_referrers(&self, repo_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT subject, digest FROM manifests WHERE repo_id = $1 AND subject IS NOT NULL",
        )
        .bind(repo_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    pub async fn set_scan_on_push(&self, repo_id: i64, on: bool) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("UPDATE repositories SET scan_on_push = $1 WHERE repo_id = $2")
            .bind(on as i64)
            .bind(repo_id)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }
}

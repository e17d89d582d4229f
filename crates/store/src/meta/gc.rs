//! Garbage-collection candidates and the checks the collector makes under a digest's lock.

use super::*;

impl Meta {
    /// Candidates older than `before`: link-level (`repo_id != 0`) or blob-level.
    pub async fn gc_candidates(
        &self,
        blob_level: bool,
        before: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let sql = if blob_level {
            "SELECT repo_id, digest FROM gc_candidates WHERE repo_id = 0 AND since < $1 ORDER BY since LIMIT $2"
        } else {
            "SELECT repo_id, digest FROM gc_candidates WHERE repo_id <> 0 AND since < $1 ORDER BY since LIMIT $2"
        };
        let rows = sqlx::query(sql)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Number of pending candidates (for metrics and progress).
    pub async fn gc_pending(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM gc_candidates")
            .fetch_one(&self.pool)
            .await?)
    }

    /// In a digest-locked transaction: whether a manifest of the repository still
    /// references the blob.
    pub async fn gc_link_referenced(
        tx: &mut WriteTx<'_>,
        repo_id: i64,
        digest: &str,
    ) -> Result<bool, StoreError> {
        let r: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM manifest_refs WHERE repo_id = $1 AND child = $2 LIMIT 1",
        )
        .bind(repo_id)
        .bind(digest)
        .fetch_optional(&mut *tx.tx)
        .await?;
        Ok(r.is_some())
    }

    /// In a digest-locked transaction: removes an unreferenced link and makes the
    /// blob a blob-level candidate.
    pub async fn gc_unlink(
        tx: &mut WriteTx<'_>,
        repo_id: i64,
        digest: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM repo_blobs WHERE repo_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(digest)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        if n > 0 {
            candidate(&mut tx.tx, 0, digest, now).await?;
        }
        Ok(n > 0)
    }

    pub async fn gc_drop_candidate(
        tx: &mut WriteTx<'_>,
        repo_id: i64,
        digest: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM gc_candidates WHERE repo_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(digest)
            .execute(&mut *tx.tx)
            .await?;
        Ok(())
    }

    /// In a digest-locked transaction: `(linked anywhere, size if the blob row exists)`.
    pub async fn gc_blob_state(
        tx: &mut WriteTx<'_>,
        digest: &str,
    ) -> Result<(bool, Option<i64>), StoreError> {
        let linked: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM repo_blobs WHERE digest = $1 LIMIT 1")
                .bind(digest)
                .fetch_optional(&mut *tx.tx)
                .await?;
        let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&mut *tx.tx)
            .await?;
        Ok((linked.is_some(), size))
    }

    pub async fn gc_delete_blob_row(tx: &mut WriteTx<'_>, digest: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM blobs WHERE digest = $1")
            .bind(digest)
            .execute(&mut *tx.tx)
            .await?;
        Ok(())
    }
}

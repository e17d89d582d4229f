//! Upload sessions.

use super::*;

impl Meta {
    /// Records a new upload session with its staged object's key and the blob
    /// pipeline's staging state.
    pub async fn create_upload(
        &self,
        upload_id: &str,
        repo_id: i64,
        now: i64,
        data_key: &[u8],
        object_key: &str,
        staging: &str,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("INSERT INTO uploads (upload_id, repo_id, size, created_at, updated_at, data_key, object_key, staging) VALUES ($1, $2, 0, $3, $3, $4, $5, $6)")
            .bind(upload_id)
            .bind(repo_id)
            .bind(now)
            .bind(data_key.to_vec())
            .bind(object_key)
            .bind(staging)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    pub async fn get_upload(&self, upload_id: &str) -> Result<Option<UploadRow>, StoreError> {
        let row = sqlx::query("SELECT upload_id, repo_id, size, created_at, updated_at, data_key, object_key, staging FROM uploads WHERE upload_id = $1")
            .bind(upload_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(upload_from_row).transpose()?)
    }

    /// Moves an upload from `from` bytes to `to` bytes, with the staging state that
    /// holds them (None keeps the recorded one); false if another writer moved it.
    pub async fn advance_upload(
        &self,
        upload_id: &str,
        from: i64,
        to: i64,
        now: i64,
        staging: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE uploads SET size = $1, updated_at = $2, staging = COALESCE($5, staging) WHERE upload_id = $3 AND size = $4",
        )
        .bind(to)
        .bind(now)
        .bind(upload_id)
        .bind(from)
        .bind(staging)
        .execute(&mut *g.tx)
        .await?
        .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    pub async fn delete_upload(&self, upload_id: &str) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM uploads WHERE upload_id = $1")
            .bind(upload_id)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        g.commit().await?;
        Ok(n > 0)
    }

    /// Takes (or extends) the upload's write lease for `owner` until `until` when no
    /// other owner holds one that is still valid at `now`; false if another does
    /// (or the upload is gone). A compare-and-set in the database: object stores
    /// are not trusted with conditional writes.
    pub async fn lease_upload(
        &self,
        upload_id: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE uploads SET lease_owner = $1, lease_until = $2 WHERE upload_id = $3 AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until IS NULL OR lease_until < $4)",
        )
        .bind(owner)
        .bind(until)
        .bind(upload_id)
        .bind(now)
        .execute(&mut *g.tx)
        .await?
        .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// Gives the write lease back if `owner` still holds it.
    pub async fn release_upload_lease(
        &self,
        upload_id: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query(
            "UPDATE uploads SET lease_owner = NULL, lease_until = NULL WHERE upload_id = $1 AND lease_owner = $2",
        )
        .bind(upload_id)
        .bind(owner)
        .execute(&mut *g.tx)
        .await?;
        g.commit().await
    }

    /// Upload sessions untouched since `before`.
    pub async fn stale_uploads(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<UploadRow>, StoreError> {
        let rows = sqlx::query("SELECT upload_id, repo_id, size, created_at, updated_at, data_key, object_key, staging FROM uploads WHERE updated_at < $1 ORDER BY updated_at LIMIT $2")
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(upload_from_row).collect::<Result<_, _>>()?)
    }
}

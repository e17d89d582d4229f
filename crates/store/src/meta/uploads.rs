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
    /// In the same statement, gives back the write lease `lease_owner` holds and,
    /// for an ECR layer part (`part_min`: ECR's minimum part size), notes the part
    /// (`to - from` bytes): a part following one shorter than the minimum marks
    /// the upload ([`Self::layer_part_too_small`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn advance_upload(
        &self,
        upload_id: &str,
        from: i64,
        to: i64,
        now: i64,
        staging: Option<&str>,
        lease_owner: &str,
        part_min: Option<i64>,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE uploads SET size = $1, updated_at = $2, staging = COALESCE($5, staging), \
             lease_until = CASE WHEN lease_owner = $6 THEN NULL ELSE lease_until END, \
             lease_owner = CASE WHEN lease_owner = $6 THEN NULL ELSE lease_owner END, \
             part_too_small = CASE WHEN $7 > 0 AND part_last IS NOT NULL AND part_last < $7 THEN 1 ELSE part_too_small END, \
             part_last = CASE WHEN $7 > 0 THEN $8 ELSE part_last END \
             WHERE upload_id = $3 AND size = $4",
        )
        .bind(to)
        .bind(now)
        .bind(upload_id)
        .bind(from)
        .bind(staging)
        .bind(lease_owner)
        .bind(part_min.unwrap_or(0))
        .bind(to - from)
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
    /// other owner holds one that is still valid at `now`, and returns the row as
    /// it stands under the lease; None if another owner holds it (or the upload is
    /// gone). A compare-and-set in the database: object stores are not trusted
    /// with conditional writes.
    pub async fn lease_upload(
        &self,
        upload_id: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<UploadRow>, StoreError> {
        let mut g = self.begin_write_short_lived().await?;
        let row = sqlx::query(
            "UPDATE uploads SET lease_owner = $1, lease_until = $2 WHERE upload_id = $3 AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until IS NULL OR lease_until < $4) RETURNING upload_id, repo_id, size, created_at, updated_at, data_key, object_key, staging",
        )
        .bind(owner)
        .bind(until)
        .bind(upload_id)
        .bind(now)
        .fetch_optional(&mut *g.tx)
        .await?;
        let row = row.as_ref().map(upload_from_row).transpose()?;
        g.commit().await?;
        Ok(row)
    }

    /// Gives the write lease back if `owner` still holds it.
    pub async fn release_upload_lease(
        &self,
        upload_id: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write_short_lived().await?;
        sqlx::query(
            "UPDATE uploads SET lease_owner = NULL, lease_until = NULL WHERE upload_id = $1 AND lease_owner = $2",
        )
        .bind(upload_id)
        .bind(owner)
        .execute(&mut *g.tx)
        .await?;
        g.commit().await
    }

    /// Whether a layer part shorter than the minimum was followed by another
    /// (see [`Self::advance_upload`]); None if the upload is gone.
    pub async fn layer_part_too_small(&self, upload_id: &str) -> Result<Option<bool>, StoreError> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT part_too_small FROM uploads WHERE upload_id = $1")
                .bind(upload_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(v.map(|v| v != 0))
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

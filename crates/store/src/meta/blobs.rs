//! Blob rows and repository links.

use super::*;

impl Meta {
    /// Size of a blob linked into the repository.
    pub async fn linked_blob_size(
        &self,
        repo_id: i64,
        digest: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT b.size FROM repo_blobs l JOIN blobs b ON b.digest = l.digest WHERE l.repo_id = $1 AND l.digest = $2",
        )
        .bind(repo_id)
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Size, wrapped data key and object key of a blob linked into the repository.
    pub async fn linked_blob_object(
        &self,
        repo_id: i64,
        digest: &str,
    ) -> Result<Option<(i64, Option<Vec<u8>>, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT b.size, l.data_key, b.object_key FROM repo_blobs l JOIN blobs b ON b.digest = l.digest WHERE l.repo_id = $1 AND l.digest = $2",
        )
        .bind(repo_id)
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| {
                let key: Option<String> = r.try_get(2)?;
                Ok::<_, sqlx::Error>((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    key.unwrap_or_else(|| legacy_object_key(digest)),
                ))
            })
            .transpose()?)
    }

    /// Size and wrapped data key of a blob linked into the repository.
    pub async fn linked_blob(
        &self,
        repo_id: i64,
        digest: &str,
    ) -> Result<Option<(i64, Option<Vec<u8>>)>, StoreError> {
        let row = sqlx::query(
            "SELECT b.size, l.data_key FROM repo_blobs l JOIN blobs b ON b.digest = l.digest WHERE l.repo_id = $1 AND l.digest = $2",
        )
        .bind(repo_id)
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?)))
            .transpose()?)
    }

    /// In a digest-locked transaction: the blob's size and its data key wrapped
    /// by the registry key, if the blob exists.
    pub async fn blob_key(
        tx: &mut WriteTx<'_>,
        digest: &str,
    ) -> Result<Option<(i64, Option<Vec<u8>>)>, StoreError> {
        let row = sqlx::query("SELECT size, data_key FROM blobs WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&mut *tx.tx)
            .await?;
        Ok(row
            .map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?)))
            .transpose()?)
    }

    /// In a digest-locked transaction: links an existing blob into a repository with
    /// the data key wrapped for that repository.
    pub async fn link_in(
        tx: &mut WriteTx<'_>,
        repo_id: i64,
        digest: &str,
        now: i64,
        link_key: &[u8],
    ) -> Result<(), StoreError> {
        link(&mut tx.tx, repo_id, digest, now, link_key).await
    }

    /// Size of a blob anywhere in the store.
    pub async fn blob_size(&self, digest: &str) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT size FROM blobs WHERE digest = $1")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Begins a write transaction holding the lock of `digest`: exclusive for the
    /// collector, shared for writers that publish or link the blob. On PostgreSQL
    /// this is a transaction-scoped advisory lock; on SQLite the write transaction
    /// itself is the (global) lock, taken at once with a no-op write so that even a
    /// second process (`berth admin gc`) waits for it.
    pub async fn begin_digest_tx(
        &self,
        digest: &str,
        exclusive: bool,
    ) -> Result<WriteTx<'_>, StoreError> {
        let mut g = self.begin_write().await?;
        lock_digest(self.dialect, &mut g.tx, digest, exclusive).await?;
        Ok(g)
    }

    /// Inside a [`Self::begin_digest_tx`] transaction: also takes the exclusive
    /// lock of `digest`, for a collector deciding several digests in one
    /// transaction.
    pub async fn lock_digest_in(
        tx: &mut WriteTx<'_>,
        dialect: Dialect,
        digest: &str,
    ) -> Result<(), StoreError> {
        lock_digest(dialect, &mut tx.tx, digest, true).await
    }

    /// [`Self::lock_digest_in`] without waiting: false when another transaction
    /// holds the digest's lock (PostgreSQL), and the caller commits what it holds
    /// before it waits for that lock in a transaction of its own. A collector that
    /// only ever waits while it holds no other digest lock cannot deadlock
    /// against writers, whatever order they lock digests in. On SQLite the
    /// transaction's write lock (taken by [`Self::begin_digest_tx`]) already
    /// excludes every other writer: nothing to take.
    pub async fn try_lock_digest_in(
        tx: &mut WriteTx<'_>,
        dialect: Dialect,
        digest: &str,
    ) -> Result<bool, StoreError> {
        match dialect {
            Dialect::Sqlite => Ok(true),
            Dialect::Postgres => Ok(sqlx::query_scalar::<_, bool>(
                "SELECT pg_try_advisory_xact_lock($1)",
            )
            .bind(digest_lock_key(digest))
            .fetch_one(&mut *tx.tx)
            .await?),
        }
    }

    /// Inside a [`Self::begin_digest_tx`] transaction: records a committed blob
    /// stored under the digest-derived key (`blobs/<alg>/<2 hex>/<hex>`), links it
    /// into the repository, and marks the link as a collection candidate (in case
    /// no manifest ever references it).
    pub async fn record_blob(
        tx: &mut WriteTx<'_>,
        repo_id: i64,
        digest: &str,
        size: i64,
        now: i64,
        blob_key: &[u8],
        link_key: &[u8],
    ) -> Result<(), StoreError> {
        let object_key = legacy_object_key(digest);
        Self::record_blob_object(
            tx,
            repo_id,
            digest,
            size,
            now,
            blob_key,
            link_key,
            &object_key,
        )
        .await
    }

    /// [`Self::record_blob`] for a blob stored under `object_key`.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_blob_object(
        tx: &mut WriteTx<'_>,
        repo_id: i64,
        digest: &str,
        size: i64,
        now: i64,
        blob_key: &[u8],
        link_key: &[u8],
        object_key: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO blobs (digest, size, created_at, data_key, object_key) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (digest) DO NOTHING")
            .bind(digest)
            .bind(size)
            .bind(now)
            .bind(blob_key.to_vec())
            .bind(object_key)
            .execute(&mut *tx.tx)
            .await?;
        link(&mut tx.tx, repo_id, digest, now, link_key).await
    }

    /// In a digest-locked transaction: the key of the blob's object, if the blob
    /// row exists.
    pub async fn blob_object_key(
        tx: &mut WriteTx<'_>,
        digest: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT object_key FROM blobs WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&mut *tx.tx)
            .await?;
        Ok(row
            .map(|r| {
                let key: Option<String> = r.try_get(0)?;
                Ok::<_, sqlx::Error>(key.unwrap_or_else(|| legacy_object_key(digest)))
            })
            .transpose()?)
    }

    /// Whether a blob row or an upload session names `object_key` (one statement,
    /// so a blob committed from an upload is seen as one or the other).
    pub async fn object_key_in_use(&self, object_key: &str) -> Result<bool, StoreError> {
        let r: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM blobs WHERE object_key = $1 UNION ALL SELECT 1 FROM uploads WHERE object_key = $1 LIMIT 1",
        )
        .bind(object_key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.is_some())
    }

    /// Removes a blob link; false when there was none.
    pub async fn unlink_blob(
        &self,
        repo_id: i64,
        digest: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM repo_blobs WHERE repo_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(digest)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        if n > 0 {
            candidate(&mut g.tx, 0, digest, now).await?;
        }
        g.commit().await?;
        Ok(n > 0)
    }
}

/// The object key of a blob stored in the digest-derived layout,
/// `blobs/<alg>/<2 hex>/<hex>` (every blob written before object keys were recorded,
/// and the filesystem fast path's published blobs).
pub fn legacy_object_key(digest: &str) -> String {
    let (alg, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    format!("blobs/{alg}/{}/{hex}", hex.get(..2).unwrap_or(hex))
}

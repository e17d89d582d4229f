//! The cache epoch (schema v20): a counter that triggers increment in every
//! transaction changing an input the registry core caches, and this process's count
//! of finished write transactions, which tells the core when to read the counter
//! again (`crates/registry/src/cache.rs`).

use std::sync::atomic::Ordering;

use super::*;

impl Meta {
    /// The stored cache epoch.
    pub async fn cache_epoch(&self) -> Result<i64, StoreError> {
        if let Some(n) = self.epoch_reader.as_ref().and_then(|r| r.read()) {
            return Ok(n);
        }
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT n FROM cache_epoch WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// How many write transactions this process has finished (committed, or whose
    /// commit failed), across every clone of this store.
    pub fn local_writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change to a cached input moves the epoch in its own transaction; a pull
    /// time does not; every write transaction is counted.
    #[tokio::test]
    async fn changes_move_the_epoch_and_writes_are_counted() {
        let dir = std::env::temp_dir().join(format!("berth-epoch-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let meta = Meta::connect(&format!("sqlite://{}?mode=rwc", dir.join("m.db").display()))
            .await
            .unwrap();
        let (e0, w0) = (meta.cache_epoch().await.unwrap(), meta.local_writes());
        meta.ensure_account("123456789012", 0).await.unwrap();
        let e1 = meta.cache_epoch().await.unwrap();
        assert!(e1 > e0, "{e0} → {e1}");
        assert_eq!(meta.local_writes(), w0 + 1);
        meta.put_user_tag("123456789012", "dev", "team", "a")
            .await
            .unwrap();
        let e2 = meta.cache_epoch().await.unwrap();
        assert!(e2 > e1, "{e1} → {e2}");
        // Recording pull times (an UPDATE of `last_pulled_at`) leaves it alone.
        meta.record_pulls(&[(1, "sha256:00".into(), 5)])
            .await
            .unwrap();
        assert_eq!(meta.cache_epoch().await.unwrap(), e2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! The nodes of one deployment: every running `berth serve` renews its row every
//! few seconds, so each node can count the live ones (the throttle divides an
//! account's rates among them, `crates/api/src/throttle.rs`). A node that stops
//! removes its row; one that dies is forgotten once its row is older than the
//! liveness window, and the row itself is deleted an hour later.

use super::*;

/// Rows older than this are deleted by the next heartbeat of any node.
const FORGET_MS: i64 = 3600 * 1000;

impl Meta {
    /// Records that `node_id` is alive at `now` and returns how many nodes (itself
    /// included) were seen at or after `live_since`.
    pub async fn node_heartbeat(
        &self,
        node_id: &str,
        now: i64,
        live_since: i64,
    ) -> Result<i64, StoreError> {
        // A heartbeat lost to an OS crash only makes the others count one node
        // fewer until the next one: no fsync needed.
        let mut g = self.begin_write_short_lived().await?;
        sqlx::query(
            "INSERT INTO nodes (node_id, seen_at) VALUES ($1, $2)
             ON CONFLICT (node_id) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(node_id)
        .bind(now)
        .execute(&mut *g.tx)
        .await?;
        sqlx::query("DELETE FROM nodes WHERE seen_at < $1")
            .bind(now - FORGET_MS)
            .execute(&mut *g.tx)
            .await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM nodes WHERE seen_at >= $1")
            .bind(live_since)
            .fetch_one(&mut *g.tx)
            .await?;
        g.commit().await?;
        Ok(n.max(1))
    }

    /// Removes `node_id` (it is stopping).
    pub async fn node_leave(&self, node_id: &str) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("DELETE FROM nodes WHERE node_id = $1")
            .bind(node_id)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }
}

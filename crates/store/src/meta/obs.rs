//! What `/metrics` reads from the metadata store at scrape time
//! (`docs/observability.md`): the job queue by kind and state, open upload
//! sessions, and the connection pool. Two aggregate queries over small tables
//! (finished one-off jobs are deleted; uploads end or expire), no per-row work.

use super::*;

/// Jobs of one kind in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobQueueStat {
    pub kind: String,
    pub state: String,
    pub count: i64,
    /// For `queued`: the earliest `run_after` already passed (unix ms), i.e. how
    /// long the longest-waiting runnable job has waited; `None` when none is due.
    pub oldest_due: Option<i64>,
}

/// The connection pool as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Open connections, in use or idle.
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

impl Meta {
    /// Jobs by kind and state, with the oldest due `queued` job of each kind.
    pub async fn job_queue_stats(&self, now_ms: i64) -> Result<Vec<JobQueueStat>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, state, COUNT(*), \
                    MIN(CASE WHEN state = 'queued' AND run_after <= $1 THEN run_after END) \
             FROM jobs GROUP BY kind, state ORDER BY kind, state",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(JobQueueStat {
                    kind: r.try_get(0)?,
                    state: r.try_get(1)?,
                    count: r.try_get(2)?,
                    oldest_due: r.try_get(3)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Upload sessions not yet completed, cancelled or expired.
    pub async fn open_upload_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM uploads")
            .fetch_one(&self.pool)
            .await?)
    }

    /// The connection pool's size, idle connections and bound.
    pub fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: self.pool.num_idle() as u32,
            max: self.pool.options().get_max_connections(),
        }
    }
}

//! Replication statuses and jobs. A replication job (kind [`REPLICATION_JOB`]) copies
//! one pushed image to one destination registry; it is enqueued in the manifest's
//! transaction together with the image's `IN_PROGRESS` status for that destination
//! (`docs/architecture.md`, "Replication").
//!
//! Rows, not rules: which pushes replicate where is decided by the registry core.

use sqlx::{Any, Row, Transaction};

use crate::meta::jobs::NewJob;
use crate::meta::Meta;
use crate::StoreError;

/// The job kind of one image's copy to one destination; its payload is a
/// [`ReplicationJob`].
pub const REPLICATION_JOB: &str = "replicate";

/// What a replication job names: a manifest pushed into a repository (under a tag or
/// by digest) and the destination registry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplicationJob {
    pub repo_id: i64,
    pub digest: String,
    pub tag: Option<String>,
    pub region: String,
    pub registry_id: String,
}

/// One image's replication to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationStatusRow {
    pub region: String,
    pub registry_id: String,
    /// `IN_PROGRESS`, `COMPLETE` or `FAILED`.
    pub status: String,
    pub failure_code: Option<String>,
    pub updated_at: i64,
}

/// The job that copies `j`'s image, runnable at once.
pub fn replication_job(j: &ReplicationJob) -> Result<NewJob, StoreError> {
    let payload = serde_json::to_string(j).map_err(|e| StoreError::Config(e.to_string()))?;
    Ok(NewJob::now(REPLICATION_JOB, payload))
}

/// Marks the image's replication to the job's destination IN_PROGRESS and enqueues
/// the job, inside `tx`.
pub(crate) async fn enqueue_replication_tx(
    tx: &mut Transaction<'_, Any>,
    job: &NewJob,
    now: i64,
) -> Result<(), StoreError> {
    let j: ReplicationJob =
        serde_json::from_str(&job.payload).map_err(|e| StoreError::Config(e.to_string()))?;
    sqlx::query(
        "INSERT INTO replication_status (repo_id, digest, region, registry_id, status, failure_code, updated_at) \
         VALUES ($1, $2, $3, $4, 'IN_PROGRESS', NULL, $5) \
         ON CONFLICT (repo_id, digest, region, registry_id) DO UPDATE SET status = 'IN_PROGRESS', failure_code = NULL, updated_at = excluded.updated_at",
    )
    .bind(j.repo_id)
    .bind(&j.digest)
    .bind(&j.region)
    .bind(&j.registry_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    crate::meta::jobs::enqueue_tx(tx, job).await?;
    Ok(())
}

impl Meta {
    /// Records how the image's replication to one destination ended (or moved on).
    pub async fn set_replication_status(
        &self,
        j: &ReplicationJob,
        status: &str,
        failure_code: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO replication_status (repo_id, digest, region, registry_id, status, failure_code, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (repo_id, digest, region, registry_id) DO UPDATE SET status = excluded.status, failure_code = excluded.failure_code, updated_at = excluded.updated_at",
        )
        .bind(j.repo_id)
        .bind(&j.digest)
        .bind(&j.region)
        .bind(&j.registry_id)
        .bind(status)
        .bind(failure_code.map(str::to_string))
        .bind(now)
        .execute(&mut *g.tx)
        .await?;
        g.commit().await?;
        Ok(())
    }

    /// The image's replication statuses, one per destination. A destination that
    /// still has a replication job of the image to run (another push of it, under
    /// another tag, whose copy is not done) is `IN_PROGRESS`, whatever an earlier
    /// job recorded: the status is the image's, and a finished job does not speak
    /// for the others.
    pub async fn replication_statuses(
        &self,
        repo_id: i64,
        digest: &str,
    ) -> Result<Vec<ReplicationStatusRow>, StoreError> {
        let mut rows = self.recorded_replication_statuses(repo_id, digest).await?;
        if rows.iter().all(|r| r.status == "IN_PROGRESS") {
            return Ok(rows);
        }
        // The payload filter only narrows the scan (a digest holds no LIKE
        // wildcard); the parsed payload decides.
        let pending: Vec<String> = sqlx::query_scalar(
            "SELECT payload FROM jobs WHERE kind = $1 AND state IN ('queued', 'running') AND payload LIKE $2",
        )
        .bind(REPLICATION_JOB)
        .bind(format!("%\"digest\":\"{digest}\"%"))
        .fetch_all(self.pool())
        .await?;
        let pending: Vec<ReplicationJob> = pending
            .iter()
            .filter_map(|p| serde_json::from_str::<ReplicationJob>(p).ok())
            .filter(|j| j.repo_id == repo_id && j.digest == digest)
            .collect();
        for r in rows.iter_mut() {
            if pending
                .iter()
                .any(|j| j.region == r.region && j.registry_id == r.registry_id)
            {
                r.status = "IN_PROGRESS".to_string();
                r.failure_code = None;
            }
        }
        Ok(rows)
    }

    /// The statuses as the jobs recorded them.
    async fn recorded_replication_statuses(
        &self,
        repo_id: i64,
        digest: &str,
    ) -> Result<Vec<ReplicationStatusRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT region, registry_id, status, failure_code, updated_at FROM replication_status \
             WHERE repo_id = $1 AND digest = $2 ORDER BY region, registry_id",
        )
        .bind(repo_id)
        .bind(digest)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReplicationStatusRow {
                    region: r.try_get(0)?,
                    registry_id: r.try_get(1)?,
                    status: r.try_get(2)?,
                    failure_code: r.try_get(3)?,
                    updated_at: r.try_get(4)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// For `/metrics`: replication jobs by state (`queued`, `running`, `parked`),
    /// images by replication status, and when the oldest status still IN_PROGRESS
    /// was set (unix ms).
    pub async fn replication_metrics(
        &self,
    ) -> Result<(Vec<(String, i64)>, Vec<(String, i64)>, Option<i64>), StoreError> {
        let by_state = |rows: Vec<sqlx::any::AnyRow>| {
            rows.iter()
                .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
        };
        let jobs = sqlx::query("SELECT state, COUNT(*) FROM jobs WHERE kind = $1 GROUP BY state")
            .bind(REPLICATION_JOB)
            .fetch_all(self.pool())
            .await?;
        let statuses =
            sqlx::query("SELECT status, COUNT(*) FROM replication_status GROUP BY status")
                .fetch_all(self.pool())
                .await?;
        let oldest: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(updated_at) FROM replication_status WHERE status = 'IN_PROGRESS'",
        )
        .fetch_one(self.pool())
        .await?;
        Ok((by_state(jobs)?, by_state(statuses)?, oldest))
    }
}

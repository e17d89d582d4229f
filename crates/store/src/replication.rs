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

/// The replication jobs still to run (queued or running) of the image `digest` in
/// `repo_id`. The payload filter only narrows the scan (a digest holds no LIKE
/// wildcard); the parsed payload decides.
async fn pending_copies<'e, E>(
    ex: E,
    repo_id: i64,
    digest: &str,
) -> Result<Vec<ReplicationJob>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let pending: Vec<String> = sqlx::query_scalar(
        "SELECT payload FROM jobs WHERE kind = $1 AND state IN ('queued', 'running') AND payload LIKE $2",
    )
    .bind(REPLICATION_JOB)
    .bind(format!("%\"digest\":\"{digest}\"%"))
    .fetch_all(ex)
    .await?;
    Ok(pending
        .iter()
        .filter_map(|p| serde_json::from_str::<ReplicationJob>(p).ok())
        .filter(|j| j.repo_id == repo_id && j.digest == digest)
        .collect())
}

impl Meta {
    /// Records how one copy (the job `job_id`) of the image to one destination ended,
    /// and the image's status there that follows from it. Each push of the image
    /// (a tag, or the digest alone) is a copy with its own job; job ids follow the
    /// order of the pushes. The outcome is kept per copy, an older job never
    /// overwrites a newer one's outcome of the same copy, and the image's status is
    /// the outcome of the latest push whose copy has finished: an older copy
    /// finishing late never turns a newer copy's `FAILED` into `COMPLETE` (nor the
    /// reverse). It reads `IN_PROGRESS` while any copy there is still to run.
    pub async fn set_replication_status(
        &self,
        j: &ReplicationJob,
        job_id: i64,
        status: &str,
        failure_code: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO replication_copies (repo_id, digest, region, registry_id, tag, job_id, status, failure_code, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (repo_id, digest, region, registry_id, tag) DO UPDATE SET job_id = excluded.job_id, status = excluded.status, failure_code = excluded.failure_code, updated_at = excluded.updated_at \
             WHERE replication_copies.job_id <= excluded.job_id",
        )
        .bind(j.repo_id)
        .bind(&j.digest)
        .bind(&j.region)
        .bind(&j.registry_id)
        .bind(j.tag.as_deref().unwrap_or(""))
        .bind(job_id)
        .bind(status)
        .bind(failure_code.map(str::to_string))
        .bind(now)
        .execute(&mut *g.tx)
        .await?;
        let latest = sqlx::query(
            "SELECT status, failure_code FROM replication_copies \
             WHERE repo_id = $1 AND digest = $2 AND region = $3 AND registry_id = $4 \
             ORDER BY job_id DESC LIMIT 1",
        )
        .bind(j.repo_id)
        .bind(&j.digest)
        .bind(&j.region)
        .bind(&j.registry_id)
        .fetch_optional(&mut *g.tx)
        .await?;
        // Recorded without regard to the copies still to run: two jobs finishing
        // at once would each see the other running. Readers add those
        // (`replication_statuses`, `replication_metrics`).
        let (status, code): (String, Option<String>) = match latest {
            Some(r) => (r.try_get(0)?, r.try_get(1)?),
            None => (status.to_string(), failure_code.map(str::to_string)),
        };
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
        .bind(code)
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
    /// for the others. `/metrics` counts by the same rule
    /// ([`Meta::replication_metrics`]).
    pub async fn replication_statuses(
        &self,
        repo_id: i64,
        digest: &str,
    ) -> Result<Vec<ReplicationStatusRow>, StoreError> {
        let mut rows = self.recorded_replication_statuses(repo_id, digest).await?;
        if rows.iter().all(|r| r.status == "IN_PROGRESS") {
            return Ok(rows);
        }
        let pending = pending_copies(self.pool(), repo_id, digest).await?;
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
    /// images by replication status by the rule of [`Meta::replication_statuses`]
    /// (a destination with a copy of the image still to run is `IN_PROGRESS`,
    /// whatever was recorded), and since when the oldest replication has been in
    /// progress (unix ms: a status recorded `IN_PROGRESS` or a copy still to run).
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
        let mut statuses = by_state(
            sqlx::query("SELECT status, COUNT(*) FROM replication_status GROUP BY status")
                .fetch_all(self.pool())
                .await?,
        )?;
        let mut oldest: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(updated_at) FROM replication_status WHERE status = 'IN_PROGRESS'",
        )
        .fetch_one(self.pool())
        .await?;
        // The copies still to run: each destination of an image they name counts
        // as IN_PROGRESS, moved from the status it recorded.
        let pending = sqlx::query(
            "SELECT payload, created_at FROM jobs WHERE kind = $1 AND state IN ('queued', 'running')",
        )
        .bind(REPLICATION_JOB)
        .fetch_all(self.pool())
        .await?;
        let mut seen = std::collections::HashSet::new();
        for r in &pending {
            let payload: String = r.try_get(0)?;
            let created_at: i64 = r.try_get(1)?;
            let Ok(j) = serde_json::from_str::<ReplicationJob>(&payload) else {
                continue;
            };
            oldest = Some(oldest.map_or(created_at, |o| o.min(created_at)));
            if !seen.insert((
                j.repo_id,
                j.digest.clone(),
                j.region.clone(),
                j.registry_id.clone(),
            )) {
                continue;
            }
            let recorded: Option<String> = sqlx::query_scalar(
                "SELECT status FROM replication_status WHERE repo_id = $1 AND digest = $2 AND region = $3 AND registry_id = $4",
            )
            .bind(j.repo_id)
            .bind(&j.digest)
            .bind(&j.region)
            .bind(&j.registry_id)
            .fetch_optional(self.pool())
            .await?;
            match recorded {
                Some(s) if s != "IN_PROGRESS" => {
                    if let Some(c) = statuses.iter_mut().find(|(st, _)| *st == s) {
                        c.1 -= 1;
                    }
                    match statuses.iter_mut().find(|(st, _)| st == "IN_PROGRESS") {
                        Some(c) => c.1 += 1,
                        None => statuses.push(("IN_PROGRESS".to_string(), 1)),
                    }
                }
                _ => {}
            }
        }
        Ok((by_state(jobs)?, statuses, oldest))
    }
}

//! Durable jobs (`docs/architecture.md`, "Deferred work: durable jobs"): work that
//! must happen later is a row in `jobs`, written in the same transaction as its
//! cause ([`enqueue_tx`]), so it exists exactly when the cause committed.
//!
//! A worker claims a row with a lease ([`Meta::claim_job`]): on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, on SQLite with one conditional `UPDATE` (its single
//! writer serialises claims). Each claim increments `attempts`; the triple
//! (job id, worker, attempts) is the claim's fence, so a worker whose lease expired
//! and was taken over can no longer complete, fail or release the row.
//!
//! States: `queued` (runs once `run_after` has passed), `running` (claimed until
//! `claimed_until`; an expired lease makes it claimable again), `parked` (gave up
//! after its attempts, `last_error` kept, rerun only by `berth admin jobs retry`).
//! A finished one-off job is deleted; a periodic job (one row per `unique_key`) is
//! rescheduled in the transaction that completes it.

use super::*;

/// A queued job, runnable (and listed) as `queued`.
pub const STATE_QUEUED: &str = "queued";
/// Claimed by a worker until its lease ends.
pub const STATE_RUNNING: &str = "running";
/// Attempts used up; kept with its last error until retried by an operator.
pub const STATE_PARKED: &str = "parked";

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub kind: String,
    /// Kind-specific, usually JSON.
    pub payload: String,
    /// Wall-clock unix ms before which it is not claimed.
    pub run_after: i64,
    /// At most one row per key: enqueueing a second one is a no-op.
    pub unique_key: Option<String>,
}

impl NewJob {
    /// A job of `kind` runnable at once.
    pub fn now(kind: &str, payload: String) -> NewJob {
        NewJob {
            kind: kind.to_string(),
            payload,
            run_after: crate::now_millis(),
            unique_key: None,
        }
    }
}

/// A job as claimed by one worker. Completing, failing or releasing it acts only
/// while this claim is still the job's current one.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub job_id: i64,
    pub kind: String,
    pub payload: String,
    /// Claims so far, this one included.
    pub attempts: i64,
    /// When it was due (a periodic job's schedule is derived from it).
    pub run_after: i64,
    /// The error of the previous attempt, if it failed.
    pub last_error: Option<String>,
    pub claimed_by: String,
}

/// A job as listed (`berth admin jobs list`).
#[derive(Debug, Clone)]
pub struct JobRow {
    pub job_id: i64,
    pub kind: String,
    pub payload: String,
    pub state: String,
    pub attempts: i64,
    pub run_after: i64,
    pub claimed_by: Option<String>,
    pub claimed_until: i64,
    pub last_error: Option<String>,
    pub unique_key: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const JOB_COLS: &str = "job_id, kind, payload, state, attempts, run_after, claimed_by, claimed_until, last_error, unique_key, created_at, updated_at";

fn job_from_row(r: &AnyRow) -> Result<JobRow, sqlx::Error> {
    Ok(JobRow {
        job_id: r.try_get(0)?,
        kind: r.try_get(1)?,
        payload: r.try_get(2)?,
        state: r.try_get(3)?,
        attempts: r.try_get(4)?,
        run_after: r.try_get(5)?,
        claimed_by: r.try_get(6)?,
        claimed_until: r.try_get(7)?,
        last_error: r.try_get(8)?,
        unique_key: r.try_get(9)?,
        created_at: r.try_get(10)?,
        updated_at: r.try_get(11)?,
    })
}

/// How a failed attempt is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts (claims) before the job is parked.
    pub max_attempts: i64,
    /// Delay after the first failure; doubled after each further one.
    pub base_delay_ms: i64,
    /// Longest delay between attempts.
    pub max_delay_ms: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay_ms: 1000,
            max_delay_ms: 5 * 60 * 1000,
        }
    }
}

impl RetryPolicy {
    /// The delay before the attempt after `attempts` failed ones.
    pub fn delay_ms(&self, attempts: i64) -> i64 {
        let doublings = (attempts.max(1) - 1).min(40) as u32;
        self.base_delay_ms
            .saturating_mul(1i64 << doublings)
            .min(self.max_delay_ms)
    }
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Queued again, runnable at this time (unix ms).
    Retry { at: i64 },
    /// Attempts used up: parked with the error.
    Parked,
    /// The claim was no longer current (its lease expired and another took it).
    LostClaim,
}

/// How a completed job ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// A one-off job: the row is deleted.
    Done,
    /// A periodic job: queued again to run at `run_after` (attempts reset),
    /// keeping `error` as its last error when this pass failed.
    Reschedule {
        run_after: i64,
        error: Option<String>,
    },
}

/// A record of a finished pass, written to the audit log in the transaction that
/// completes the job (so there is exactly one per completed pass).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// e.g. `berth:GarbageCollection`.
    pub action: String,
    /// `ok` or `failed`.
    pub outcome: String,
    pub detail: String,
}

/// Enqueues `job` inside `tx`, the transaction that causes it. Returns false when
/// a job with the same unique key already exists.
pub async fn enqueue_tx(tx: &mut Transaction<'_, Any>, job: &NewJob) -> Result<bool, StoreError> {
    let now = crate::now_millis();
    let n = sqlx::query(
        "INSERT INTO jobs (kind, payload, run_after, claimed_until, attempts, created_at, state, updated_at, unique_key) \
         VALUES ($1, $2, $3, 0, 0, $4, 'queued', $4, $5) ON CONFLICT (unique_key) DO NOTHING",
    )
    .bind(&job.kind)
    .bind(&job.payload)
    .bind(job.run_after)
    .bind(now)
    .bind(job.unique_key.clone())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// The fence of a claim: only the current claim may change the row.
const FENCE: &str = "job_id = $1 AND claimed_by = $2 AND attempts = $3 AND state = 'running'";

impl Meta {
    /// Enqueues one job in a transaction of its own.
    pub async fn enqueue_job(&self, job: &NewJob) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let added = enqueue_tx(&mut g.tx, job).await?;
        g.commit().await?;
        Ok(added)
    }

    /// Makes sure the periodic job `unique_key` exists and is due no later than
    /// `due_by` (a node configured with a shorter interval pulls it in). A new row
    /// is due at `due_by`.
    pub async fn ensure_periodic_job(
        &self,
        kind: &str,
        unique_key: &str,
        due_by: i64,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        let added = enqueue_tx(
            &mut g.tx,
            &NewJob {
                kind: kind.to_string(),
                payload: "{}".to_string(),
                run_after: due_by,
                unique_key: Some(unique_key.to_string()),
            },
        )
        .await?;
        if !added {
            sqlx::query(
                "UPDATE jobs SET run_after = $1, updated_at = $2 WHERE unique_key = $3 AND state = 'queued' AND run_after > $1",
            )
            .bind(due_by)
            .bind(crate::now_millis())
            .bind(unique_key)
            .execute(&mut *g.tx)
            .await?;
        }
        g.commit().await
    }

    /// Claims the runnable job of one of `kinds` that has waited longest, for
    /// `lease_ms` (wall clock): a queued job whose time has come, or a running one
    /// whose lease expired (its worker died).
    pub async fn claim_job(
        &self,
        kinds: &[&str],
        worker: &str,
        lease_ms: i64,
    ) -> Result<Option<ClaimedJob>, StoreError> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let now = crate::now_millis();
        let list = (0..kinds.len())
            .map(|i| format!("${}", i + 4))
            .collect::<Vec<_>>()
            .join(", ");
        // PostgreSQL: concurrent claimers skip each other's locked rows. SQLite: the
        // single statement runs under the database's one writer, and the outer
        // condition re-checks the row.
        let lock = match self.dialect() {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let runnable = "((state = 'queued' AND run_after <= $3) OR (state = 'running' AND claimed_until <= $3))";
        let sql = format!(
            "UPDATE jobs SET state = 'running', claimed_by = $1, claimed_until = $2, attempts = attempts + 1, updated_at = $3 \
             WHERE job_id = (SELECT job_id FROM jobs WHERE kind IN ({list}) AND {runnable} ORDER BY run_after, job_id LIMIT 1{lock}) \
             AND {runnable} \
             RETURNING job_id, kind, payload, attempts, run_after, last_error"
        );
        // Idle workers poll: look first without taking the writer (on SQLite the
        // one writer is shared with pushes).
        let probe_list = (0..kinds.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let probe = format!(
            "SELECT job_id FROM jobs WHERE kind IN ({probe_list}) AND {} LIMIT 1",
            runnable.replace("$3", "$1")
        );
        let mut p = sqlx::query_scalar::<_, i64>(&probe).bind(now);
        for k in kinds {
            p = p.bind(*k);
        }
        if p.fetch_optional(self.pool()).await?.is_none() {
            return Ok(None);
        }
        let mut q = sqlx::query(&sql)
            .bind(worker)
            .bind(now + lease_ms)
            .bind(now);
        for k in kinds {
            q = q.bind(*k);
        }
        let mut g = self.begin_write_short_lived().await?;
        let row = q.fetch_optional(&mut *g.tx).await?;
        g.commit().await?;
        Ok(row
            .map(|r| -> Result<ClaimedJob, sqlx::Error> {
                Ok(ClaimedJob {
                    job_id: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    payload: r.try_get(2)?,
                    attempts: r.try_get(3)?,
                    run_after: r.try_get(4)?,
                    last_error: r.try_get(5)?,
                    claimed_by: worker.to_string(),
                })
            })
            .transpose()?)
    }

    /// Extends a claim's lease (a worker heartbeat). False when the claim is lost.
    pub async fn extend_claim(&self, job: &ClaimedJob, lease_ms: i64) -> Result<bool, StoreError> {
        let now = crate::now_millis();
        let mut g = self.begin_write_short_lived().await?;
        let n = sqlx::query(&format!(
            "UPDATE jobs SET claimed_until = $4, updated_at = $5 WHERE {FENCE}"
        ))
        .bind(job.job_id)
        .bind(&job.claimed_by)
        .bind(job.attempts)
        .bind(now + lease_ms)
        .bind(now)
        .execute(&mut *g.tx)
        .await?
        .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// Completes a claimed job (and writes `record` to the audit log in the same
    /// transaction). False, and nothing written, when the claim is lost.
    pub async fn complete_job(
        &self,
        job: &ClaimedJob,
        completion: &Completion,
        record: Option<&JobRecord>,
    ) -> Result<bool, StoreError> {
        let now = crate::now_millis();
        let mut g = self.begin_write().await?;
        let n = match completion {
            Completion::Done => sqlx::query(&format!("DELETE FROM jobs WHERE {FENCE}"))
                .bind(job.job_id)
                .bind(&job.claimed_by)
                .bind(job.attempts)
                .execute(&mut *g.tx)
                .await?
                .rows_affected(),
            Completion::Reschedule { run_after, error } => sqlx::query(&format!(
                "UPDATE jobs SET state = 'queued', run_after = $4, attempts = 0, claimed_by = NULL, claimed_until = 0, \
                 last_error = $5, updated_at = $6 WHERE {FENCE}"
            ))
            .bind(job.job_id)
            .bind(&job.claimed_by)
            .bind(job.attempts)
            .bind(*run_after)
            .bind(error.clone())
            .bind(now)
            .execute(&mut *g.tx)
            .await?
            .rows_affected(),
        };
        if n != 1 {
            return Ok(false);
        }
        if let Some(r) = record {
            super::audit_chain::insert_audit_tx(
                &mut g.tx,
                &super::AuditRow {
                    ts: now,
                    account_id: None,
                    principal: Some("berth:jobs".into()),
                    action: r.action.clone(),
                    resource: Some(format!("job/{}", job.job_id)),
                    source: Some(job.claimed_by.clone()),
                    outcome: r.outcome.clone(),
                    detail: Some(r.detail.clone()),
                },
            )
            .await?;
        }
        g.commit().await?;
        Ok(true)
    }

    /// Records a failed attempt: queued again after the policy's backoff, or parked
    /// with `error` once its attempts are used up.
    pub async fn fail_job(
        &self,
        job: &ClaimedJob,
        error: &str,
        policy: &RetryPolicy,
    ) -> Result<FailOutcome, StoreError> {
        let now = crate::now_millis();
        let (state, at, outcome) = if job.attempts >= policy.max_attempts {
            (STATE_PARKED, job.run_after, FailOutcome::Parked)
        } else {
            let at = now + policy.delay_ms(job.attempts);
            (STATE_QUEUED, at, FailOutcome::Retry { at })
        };
        let mut g = self.begin_write().await?;
        let n = sqlx::query(&format!(
            "UPDATE jobs SET state = $4, run_after = $5, last_error = $6, claimed_by = NULL, claimed_until = 0, updated_at = $7 \
             WHERE {FENCE}"
        ))
        .bind(job.job_id)
        .bind(&job.claimed_by)
        .bind(job.attempts)
        .bind(state)
        .bind(at)
        .bind(error)
        .bind(now)
        .execute(&mut *g.tx)
        .await?
        .rows_affected();
        g.commit().await?;
        Ok(if n == 1 {
            outcome
        } else {
            FailOutcome::LostClaim
        })
    }

    /// Gives a claim back unfinished (a worker stopping): the job is runnable by any
    /// worker at once, and this claim does not count as an attempt.
    pub async fn release_job(&self, job: &ClaimedJob) -> Result<bool, StoreError> {
        let mut g = self.begin_write_short_lived().await?;
        let n = sqlx::query(&format!(
            "UPDATE jobs SET state = 'queued', claimed_by = NULL, claimed_until = 0, attempts = attempts - 1, updated_at = $4 \
             WHERE {FENCE}"
        ))
        .bind(job.job_id)
        .bind(&job.claimed_by)
        .bind(job.attempts)
        .bind(crate::now_millis())
        .execute(&mut *g.tx)
        .await?
        .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// Queues a parked job again with fresh attempts (its last error stays visible
    /// until it runs). False when there is no parked job `job_id`.
    pub async fn retry_parked_job(&self, job_id: i64) -> Result<bool, StoreError> {
        let now = crate::now_millis();
        let mut g = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_after = $1, updated_at = $1 WHERE job_id = $2 AND state = 'parked'",
        )
        .bind(now)
        .bind(job_id)
        .execute(&mut *g.tx)
        .await?
        .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// Jobs, oldest first, optionally of one state and/or kind.
    pub async fn list_jobs(
        &self,
        state: Option<&str>,
        kind: Option<&str>,
        limit: i64,
    ) -> Result<Vec<JobRow>, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLS} FROM jobs WHERE ($1 = '' OR state = $1) AND ($2 = '' OR kind = $2) ORDER BY job_id LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(state.unwrap_or(""))
            .bind(kind.unwrap_or(""))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(job_from_row).collect::<Result<_, _>>()?)
    }

    /// One job by id.
    pub async fn get_job(&self, job_id: i64) -> Result<Option<JobRow>, StoreError> {
        let sql = format!("SELECT {JOB_COLS} FROM jobs WHERE job_id = $1");
        let row = sqlx::query(&sql)
            .bind(job_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(job_from_row).transpose()?)
    }

    /// Jobs of `kind` not yet finished (parked ones excluded).
    pub async fn pending_jobs(&self, kind: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = $1 AND state <> 'parked'")
                .bind(kind)
                .fetch_one(self.pool())
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store written by migration 5 keeps its jobs: claimed ones stay claimed
    /// until their lease ends, the others are queued.
    #[tokio::test]
    async fn migration_6_keeps_jobs_written_before_it() {
        let dir = std::env::temp_dir().join(format!("berth-mig6-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/meta.db?mode=rwc", dir.display());
        sqlx::any::install_default_drivers();
        {
            use sqlx::Connection;
            let mut c = sqlx::AnyConnection::connect(&url).await.unwrap();
            c.execute(
                "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .await
            .unwrap();
            for (v, sql) in schema::SQLITE.iter().filter(|(v, _)| *v <= 5) {
                for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                    c.execute(stmt).await.unwrap();
                }
                sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)")
                    .bind(*v)
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            let now = crate::now_millis();
            for (payload, claimed_until, attempts) in
                [("free", 0, 0), ("held", now + 300, 1), ("retrying", 0, 2)]
            {
                sqlx::query(
                    "INSERT INTO jobs (kind, payload, run_after, claimed_until, attempts, created_at) VALUES ('scan', $1, $2, $3, $4, $2)",
                )
                .bind(payload)
                .bind(now - 1000)
                .bind(claimed_until)
                .bind(attempts)
                .execute(&mut c)
                .await
                .unwrap();
            }
        }
        let m = Meta::connect(&url).await.unwrap();
        let rows = m.list_jobs(None, None, 10).await.unwrap();
        let states: Vec<(&str, &str, i64)> = rows
            .iter()
            .map(|r| (r.payload.as_str(), r.state.as_str(), r.attempts))
            .collect();
        assert_eq!(
            states,
            vec![
                ("free", "queued", 0),
                ("held", "running", 1),
                ("retrying", "queued", 2)
            ]
        );
        assert!(rows.iter().all(|r| r.updated_at == r.created_at));
        let a = m.claim_job(&["scan"], "w", 60_000).await.unwrap().unwrap();
        let b = m.claim_job(&["scan"], "w", 60_000).await.unwrap().unwrap();
        assert_eq!(
            (a.payload.as_str(), b.payload.as_str()),
            ("free", "retrying")
        );
        assert_eq!(b.attempts, 3);
        assert!(m.claim_job(&["scan"], "w", 60_000).await.unwrap().is_none());
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let c = m.claim_job(&["scan"], "w", 60_000).await.unwrap().unwrap();
        assert_eq!((c.payload.as_str(), c.attempts), ("held", 2));
    }
}

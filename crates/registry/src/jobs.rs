//! The job runner (`docs/architecture.md`, "Deferred work: durable jobs").
//!
//! A [`Worker`] claims jobs of the kinds it has [`Handler`]s for from the metadata
//! store (`crates/store/src/meta/jobs.rs`), runs them while renewing its lease, and
//! completes them, or fails them (retried with backoff, parked after the handler's
//! attempts). On shutdown it claims nothing more; the job in hand gets a bounded
//! time to finish, after which its claim is released so that another process takes
//! it at once instead of waiting for the lease to expire.
//!
//! Periodic garbage collection and lifecycle runs are jobs too ([`Periodic`]): one
//! row per kind, rescheduled `interval` later by whichever process completed it,
//! in the transaction that records the pass, so several processes on one database
//! run one pass per interval between them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use berth_store::{ClaimedJob, Completion, FailOutcome, JobRecord, JobRow, NewJob, RetryPolicy};
use tokio::sync::watch;

use crate::{Registry, RegistryError};

type Result<T> = std::result::Result<T, RegistryError>;

/// A boxed, sendable future (handlers are trait objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The kind of the periodic garbage-collection job.
pub const GC_JOB: &str = "gc";
/// The kind of the periodic lifecycle-policy job.
pub const LIFECYCLE_JOB: &str = "lifecycle";

/// How a handler's run ended well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub completion: Completion,
    /// Written to the audit log in the completing transaction.
    pub record: Option<JobRecord>,
}

impl Finished {
    /// A one-off job is done (its row goes).
    pub fn done() -> Finished {
        Finished {
            completion: Completion::Done,
            record: None,
        }
    }
}

/// What runs the jobs of one kind.
pub trait Handler: Send + Sync {
    fn kind(&self) -> &'static str;

    /// Attempts, and the backoff between them, before a job is parked.
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }

    /// Runs one claimed job. An `Err` is a failed attempt, kept as the job's last
    /// error.
    fn run<'a>(
        &'a self,
        reg: &'a Registry,
        job: &'a ClaimedJob,
    ) -> BoxFuture<'a, std::result::Result<Finished, String>>;

    /// Called once a job of this kind was parked, to record the failure where its
    /// users look (an image's scan status, …).
    fn parked<'a>(
        &'a self,
        _reg: &'a Registry,
        _job: &'a ClaimedJob,
        _error: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// A worker's timing.
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    /// The lease of a claim; renewed every third of it while the job runs.
    pub lease: Duration,
    /// Sleep between claims when nothing was runnable.
    pub idle: Duration,
    /// On shutdown, how long the job in hand may still run before its claim is
    /// released.
    pub shutdown_grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            lease: Duration::from_secs(60),
            idle: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Claims and runs jobs of its handlers' kinds until told to stop.
pub struct Worker {
    reg: Arc<Registry>,
    id: String,
    handlers: Vec<Arc<dyn Handler>>,
    config: WorkerConfig,
}

/// What [`Worker::run_one`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// Nothing was runnable.
    Idle,
    /// A job ran to an end (completed, retried or parked).
    Job,
    /// Stopping: the job in hand was released unfinished.
    Released,
}

/// How the run of a claimed job ended in [`Worker::run_one`].
enum Ended {
    Ran(std::result::Result<Finished, String>),
    /// Another worker holds the claim now.
    Lost,
    /// Shutting down and the grace period is over.
    Stopping,
}

impl Worker {
    /// A worker named `id` (shown as the claim holder in `berth admin jobs list`).
    pub fn new(
        reg: Arc<Registry>,
        id: impl Into<String>,
        handlers: Vec<Arc<dyn Handler>>,
        config: WorkerConfig,
    ) -> Worker {
        Worker {
            reg,
            id: id.into(),
            handlers,
            config,
        }
    }

    /// Runs until `stop` turns true (or its sender goes away).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let pause = match self.run_one(&mut stop).await {
                Ok(Ran::Job) => continue,
                Ok(Ran::Released) => return,
                Ok(Ran::Idle) => self.config.idle,
                Err(e) => {
                    tracing::warn!(worker = %self.id, error = %e, "job worker error");
                    Duration::from_secs(2)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Claims and runs one job. `stop` turning true while it runs starts the
    /// shutdown grace period.
    pub async fn run_one(&self, stop: &mut watch::Receiver<bool>) -> Result<Ran> {
        let kinds: Vec<&str> = self.handlers.iter().map(|h| h.kind()).collect();
        let lease_ms = self.config.lease.as_millis() as i64;
        let Some(job) = self.reg.meta.claim_job(&kinds, &self.id, lease_ms).await? else {
            return Ok(Ran::Idle);
        };
        let Some(handler) = self.handlers.iter().find(|h| h.kind() == job.kind) else {
            // Unreachable: only our kinds are claimed. Give it back.
            self.reg.meta.release_job(&job).await?;
            return Ok(Ran::Idle);
        };
        let policy = handler.retry_policy();
        if job.attempts > policy.max_attempts {
            // Its earlier workers stopped without an outcome (a crash each time).
            let error = format!(
                "abandoned: no worker finished it in {} attempts{}",
                policy.max_attempts,
                job.last_error
                    .as_deref()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            );
            self.failed(handler.as_ref(), &job, &error, &policy).await?;
            return Ok(Ran::Job);
        }
        // The run and the lease's renewal are polled side by side, each as a future
        // of its own: a renewal must never be awaited while the run is suspended,
        // because the run may hold the metadata store's write transaction (on
        // SQLite, the process's one write lock, `Meta::begin_write`) and the
        // renewal needs that lock too — awaiting one inside the other's `select!`
        // arm deadlocks every writer of the process.
        let mut run = handler.run(&self.reg, &job);
        let mut renew: BoxFuture<'_, ()> = Box::pin(self.renew_claim(&job, lease_ms));
        let mut stopping = *stop.borrow();
        let grace = tokio::time::sleep(self.config.shutdown_grace);
        tokio::pin!(grace);
        let ended = loop {
            tokio::select! {
                r = &mut run => break Ended::Ran(r),
                () = &mut renew => break Ended::Lost,
                changed = stop.changed(), if !stopping => {
                    if changed.is_err() || *stop.borrow() {
                        stopping = true;
                        grace.as_mut().reset(tokio::time::Instant::now() + self.config.shutdown_grace);
                    }
                }
                _ = &mut grace, if stopping => break Ended::Stopping,
            }
        };
        // Whatever either still holds (a transaction, the write lock) goes before
        // the claim is touched again.
        drop(renew);
        drop(run);
        let result = match ended {
            Ended::Ran(r) => r,
            Ended::Lost => {
                tracing::warn!(job = job.job_id, kind = %job.kind, "lost the claim of a running job; abandoning it");
                return Ok(Ran::Job);
            }
            Ended::Stopping => {
                tracing::info!(job = job.job_id, kind = %job.kind, "stopping: releasing the job in hand");
                self.reg.meta.release_job(&job).await?;
                return Ok(Ran::Released);
            }
        };
        match result {
            Ok(f) => {
                if !self
                    .reg
                    .meta
                    .complete_job(&job, &f.completion, f.record.as_ref())
                    .await?
                {
                    tracing::warn!(job = job.job_id, kind = %job.kind, "finished a job whose claim was lost");
                }
            }
            Err(e) => self.failed(handler.as_ref(), &job, &e, &policy).await?,
        }
        Ok(Ran::Job)
    }

    /// Renews `job`'s claim every third of the lease; ends only when the claim
    /// was lost (another worker took the job over).
    async fn renew_claim(&self, job: &ClaimedJob, lease_ms: i64) {
        let mut beat = tokio::time::interval(self.config.lease / 3);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        beat.tick().await;
        loop {
            beat.tick().await;
            match self.reg.meta.extend_claim(job, lease_ms).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(job = job.job_id, error = %e, "could not renew a job's lease")
                }
            }
        }
    }

    async fn failed(
        &self,
        handler: &dyn Handler,
        job: &ClaimedJob,
        error: &str,
        policy: &RetryPolicy,
    ) -> Result<()> {
        match self.reg.meta.fail_job(job, error, policy).await? {
            FailOutcome::Retry { at } => {
                let in_ms = at - berth_store::now_millis();
                tracing::warn!(job = job.job_id, kind = %job.kind, attempt = job.attempts, error, retry_in_ms = in_ms, "job failed; will retry");
            }
            FailOutcome::Parked => {
                tracing::warn!(job = job.job_id, kind = %job.kind, attempts = job.attempts, error, "job failed; parked");
                handler.parked(&self.reg, job, error).await?;
            }
            FailOutcome::LostClaim => {
                tracing::warn!(job = job.job_id, kind = %job.kind, "a failed job's claim was lost")
            }
        }
        Ok(())
    }
}

/// A periodic pass.
#[derive(Debug, Clone, Copy)]
pub enum Pass {
    /// Online garbage collection with this grace period.
    Gc { grace_ms: i64 },
    /// Every repository's lifecycle policy.
    Lifecycle,
}

impl Pass {
    pub fn kind(&self) -> &'static str {
        match self {
            Pass::Gc { .. } => GC_JOB,
            Pass::Lifecycle => LIFECYCLE_JOB,
        }
    }

    /// The audit-log action recorded for each pass.
    pub fn action(&self) -> &'static str {
        match self {
            Pass::Gc { .. } => "berth:GarbageCollection",
            Pass::Lifecycle => "berth:LifecycleRun",
        }
    }

    /// The unique key of its one job row.
    pub fn unique_key(&self) -> String {
        format!("periodic:{}", self.kind())
    }
}

/// The handler of a periodic job: runs the pass, records it, and reschedules the
/// row `interval` after it was due. A failed pass is recorded and tried again at
/// the next interval, as a periodic pass always is; it is never parked.
pub struct Periodic {
    pub pass: Pass,
    pub interval: Duration,
}

impl Periodic {
    /// Ensures this pass's row exists, due within one interval from now.
    pub async fn schedule(&self, reg: &Registry) -> Result<()> {
        let due = berth_store::now_millis() + self.interval.as_millis() as i64;
        reg.meta
            .ensure_periodic_job(self.pass.kind(), &self.pass.unique_key(), due)
            .await?;
        Ok(())
    }

    async fn run_pass(&self, reg: &Registry) -> Result<String> {
        match self.pass {
            Pass::Gc { grace_ms } => {
                let rep = reg.collect_garbage(grace_ms, false, |_, _| {}).await?;
                if rep.blobs_deleted + rep.links_removed > 0 {
                    tracing::info!(
                        blobs = rep.blobs_deleted,
                        links = rep.links_removed,
                        bytes = rep.bytes_reclaimed,
                        "garbage collected"
                    );
                }
                Ok(format!(
                    "reclaimed {} blob(s), {} byte(s); {} unreferenced link(s); {} candidate(s) examined",
                    rep.blobs_deleted, rep.bytes_reclaimed, rep.links_removed, rep.candidates_seen
                ))
            }
            Pass::Lifecycle => {
                let n = reg.run_all_lifecycles().await?;
                Ok(format!("{n} image(s) expired"))
            }
        }
    }
}

impl Handler for Periodic {
    fn kind(&self) -> &'static str {
        self.pass.kind()
    }

    fn retry_policy(&self) -> RetryPolicy {
        // A pass abandoned by a crashed process is simply run again.
        RetryPolicy {
            max_attempts: i64::MAX,
            ..RetryPolicy::default()
        }
    }

    fn run<'a>(
        &'a self,
        reg: &'a Registry,
        job: &'a ClaimedJob,
    ) -> BoxFuture<'a, std::result::Result<Finished, String>> {
        Box::pin(async move {
            let outcome = self.run_pass(reg).await;
            let now = berth_store::now_millis();
            let interval = self.interval.as_millis() as i64;
            // Keep the schedule: due one interval after it was due, unless that has
            // passed already (a long pass, or no process ran it for a while).
            let mut next = job.run_after.saturating_add(interval);
            if next <= now {
                next = now + interval;
            }
            let (error, outcome, detail) = match outcome {
                Ok(detail) => (None, "ok", detail),
                Err(e) => {
                    tracing::warn!(kind = self.kind(), error = %e, "periodic pass failed");
                    (Some(e.to_string()), "failed", e.to_string())
                }
            };
            Ok(Finished {
                completion: Completion::Reschedule {
                    run_after: next,
                    error,
                },
                record: Some(JobRecord {
                    action: self.pass.action().to_string(),
                    outcome: outcome.to_string(),
                    detail,
                }),
            })
        })
    }
}

impl Registry {
    /// Jobs as `berth admin jobs list` shows them.
    pub async fn list_jobs(
        &self,
        state: Option<&str>,
        kind: Option<&str>,
        limit: i64,
    ) -> Result<Vec<JobRow>> {
        Ok(self.meta.list_jobs(state, kind, limit).await?)
    }

    /// Queues a job outside any other change (work that has no causing row, such
    /// as an on-demand run). False when a job with the same unique key is queued.
    pub async fn enqueue_job(&self, job: &NewJob) -> Result<bool> {
        Ok(self.meta.enqueue_job(job).await?)
    }

    /// Closes the metadata store's connections (a process or test that is done).
    pub async fn close(&self) {
        self.meta.pool().close().await;
    }

    /// Queues a parked job again (`berth admin jobs retry`). False when `job_id`
    /// is not a parked job.
    pub async fn retry_parked_job(&self, job_id: i64) -> Result<bool> {
        Ok(self.meta.retry_parked_job(job_id).await?)
    }
}

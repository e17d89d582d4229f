//! The job runner (`crates/registry/src/jobs.rs`) on a real metadata store (SQLite,
//! and PostgreSQL when `BERTH_TEST_POSTGRES_URL` is set): a stopping worker finishes
//! the job in hand within its bound or releases it for another worker at once; a
//! failing handler is retried, then parked and told so; two workers share one
//! periodic row and run one pass per interval between them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_registry::jobs::{
    BoxFuture, Finished, Handler, Pass, Periodic, Ran, Worker, WorkerConfig,
};
use berth_registry::{Clock, Registry, RegistryConfig, RegistryError};
use berth_store::{BlobStore, ClaimedJob, Meta, NewJob, RetryPolicy};
use sqlx::Connection;
use tokio::sync::{watch, Notify};

/// The registries a test runs on, and the PostgreSQL database to drop after it.
struct Stores {
    list: Vec<Arc<Registry>>,
    /// Each registry's metadata store (a clone: the same pool and write lock).
    metas: Vec<Meta>,
    pg: Option<(String, String)>,
}

impl Stores {
    /// Closes the stores and drops the test's PostgreSQL database (kept when the
    /// test failed before getting here).
    async fn done(self) {
        for r in &self.list {
            r.close().await;
        }
        if let Some((admin, db)) = self.pg {
            let mut c = sqlx::AnyConnection::connect(&admin).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
}

async fn registries() -> Stores {
    let dir = std::env::temp_dir().join(format!("berth-runner-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut urls = vec![format!("sqlite://{}/meta.db?mode=rwc", dir.display())];
    let mut pg = None;
    if let Ok(url) = std::env::var("BERTH_TEST_POSTGRES_URL") {
        if !url.is_empty() {
            sqlx::any::install_default_drivers();
            let mut admin = sqlx::AnyConnection::connect(&url).await.unwrap();
            let db = format!("berth_runner_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut admin)
                .await
                .unwrap();
            let base = url.rsplit_once('/').map(|(b, _)| b).unwrap();
            urls.push(format!("{base}/{db}"));
            pg = Some((url, db));
        }
    }
    let mut list = Vec::new();
    let mut metas = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let meta = Meta::connect(url).await.unwrap();
        metas.push(meta.clone());
        let blobs = BlobStore::open(&dir.join(format!("blobs-{i}"))).unwrap();
        list.push(Arc::new(Registry::new(
            meta,
            Arc::new(blobs),
            Clock::with_offset(0),
            RegistryConfig::default(),
            [7u8; 32],
        )));
    }
    Stores { list, metas, pg }
}

fn config(grace_ms: u64) -> WorkerConfig {
    WorkerConfig {
        lease: Duration::from_secs(600),
        idle: Duration::from_millis(20),
        shutdown_grace: Duration::from_millis(grace_ms),
    }
}

/// Runs until told to finish (or for `sleep`), counting its runs.
struct Slow {
    kind: &'static str,
    sleep: Option<Duration>,
    started: Notify,
    finish: Notify,
    runs: AtomicUsize,
}

impl Slow {
    fn new(kind: &'static str, sleep: Option<Duration>) -> Arc<Slow> {
        Arc::new(Slow {
            kind,
            sleep,
            started: Notify::new(),
            finish: Notify::new(),
            runs: AtomicUsize::new(0),
        })
    }
}

impl Handler for Slow {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn run<'a>(
        &'a self,
        _reg: &'a Registry,
        _job: &'a ClaimedJob,
    ) -> BoxFuture<'a, Result<Finished, String>> {
        Box::pin(async move {
            self.runs.fetch_add(1, Ordering::SeqCst);
            self.started.notify_one();
            match self.sleep {
                Some(d) => tokio::time::sleep(d).await,
                None => self.finish.notified().await,
            }
            Ok(Finished::done())
        })
    }
}

#[tokio::test]
async fn a_stopping_worker_releases_the_job_in_hand_and_another_takes_it() {
    let stores = registries().await;
    for reg in stores.list.clone() {
        reg.enqueue_job(&NewJob::now("slow", "{}".into()))
            .await
            .unwrap();
        let h = Slow::new("slow", None);
        let (stop, stopping) = watch::channel(false);
        let a = Worker::new(
            reg.clone(),
            "a",
            vec![h.clone() as Arc<dyn Handler>],
            config(50),
        );
        let task = tokio::spawn(a.run(stopping));
        h.started.notified().await;
        let rows = reg.list_jobs(Some("running"), None, 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].claimed_by.as_deref(), Some("a"));

        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the worker stops within its bound")
            .unwrap();
        let rows = reg.list_jobs(None, Some("slow"), 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, "queued");
        assert_eq!(rows[0].claimed_by, None);
        assert_eq!(rows[0].attempts, 0);

        // Another worker takes it at once, though the lease was ten minutes.
        let quick = Slow::new("slow", Some(Duration::ZERO));
        let b = Worker::new(
            reg.clone(),
            "b",
            vec![quick.clone() as Arc<dyn Handler>],
            config(50),
        );
        let (_keep, mut never) = watch::channel(false);
        assert_eq!(b.run_one(&mut never).await.unwrap(), Ran::Job);
        assert_eq!(quick.runs.load(Ordering::SeqCst), 1);
        assert!(reg
            .list_jobs(None, Some("slow"), 10)
            .await
            .unwrap()
            .is_empty());
    }
    stores.done().await;
}

#[tokio::test]
async fn a_stopping_worker_finishes_a_job_that_ends_within_the_bound() {
    let stores = registries().await;
    for reg in stores.list.clone() {
        reg.enqueue_job(&NewJob::now("short", "{}".into()))
            .await
            .unwrap();
        let h = Slow::new("short", Some(Duration::from_millis(300)));
        let (stop, mut stopping) = watch::channel(false);
        let w = Worker::new(
            reg.clone(),
            "a",
            vec![h.clone() as Arc<dyn Handler>],
            config(5_000),
        );
        let reg2 = reg.clone();
        let run = tokio::spawn(async move { w.run_one(&mut stopping).await });
        h.started.notified().await;
        stop.send(true).unwrap();
        assert_eq!(run.await.unwrap().unwrap(), Ran::Job);
        assert!(reg2
            .list_jobs(None, Some("short"), 10)
            .await
            .unwrap()
            .is_empty());
    }
    stores.done().await;
}

/// Holds a write transaction of the metadata store across awaits — as a garbage
/// collection or lifecycle pass does — for `hold`, or until dropped when `hold` is
/// `None`.
struct Writing {
    meta: Meta,
    hold: Option<Duration>,
    started: Notify,
}

impl Handler for Writing {
    fn kind(&self) -> &'static str {
        "writing"
    }

    fn run<'a>(
        &'a self,
        _reg: &'a Registry,
        _job: &'a ClaimedJob,
    ) -> BoxFuture<'a, Result<Finished, String>> {
        Box::pin(async move {
            let mut tx = self.meta.begin_write().await.map_err(|e| e.to_string())?;
            self.started.notify_one();
            let until = tokio::time::Instant::now() + self.hold.unwrap_or(Duration::MAX / 4);
            // Several short awaits inside the transaction, each a chance for the
            // worker to renew its lease meanwhile.
            while tokio::time::Instant::now() < until {
                sqlx::query("SELECT 1")
                    .execute(&mut *tx.tx)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tx.commit().await.map_err(|e| e.to_string())?;
            Ok(Finished::done())
        })
    }
}

/// The worker renews its lease while the job runs; the run may be inside a write
/// transaction then (on SQLite the process's one write lock). Renewing must not
/// stop the run from finishing its transaction: awaiting the renewal while the run
/// was suspended deadlocked every writer of the process (a GC pass beside pushes).
#[tokio::test]
async fn renewing_the_lease_while_the_job_holds_a_write_transaction() {
    let stores = registries().await;
    for (reg, meta) in stores.list.clone().into_iter().zip(stores.metas.clone()) {
        reg.enqueue_job(&NewJob::now("writing", "{}".into()))
            .await
            .unwrap();
        let h = Arc::new(Writing {
            meta,
            hold: Some(Duration::from_millis(800)),
            started: Notify::new(),
        });
        // Renewed every 100 ms: several renewals fall inside the transaction.
        let w = Worker::new(
            reg.clone(),
            "a",
            vec![h.clone() as Arc<dyn Handler>],
            WorkerConfig {
                lease: Duration::from_millis(300),
                ..config(50)
            },
        );
        let (_keep, mut never) = watch::channel(false);
        let ran = tokio::time::timeout(Duration::from_secs(20), w.run_one(&mut never))
            .await
            .expect("the job and the renewals of its lease finish (no deadlock)")
            .unwrap();
        assert_eq!(ran, Ran::Job);
        assert!(reg
            .list_jobs(None, Some("writing"), 10)
            .await
            .unwrap()
            .is_empty());
        // And the store still takes writes.
        tokio::time::timeout(
            Duration::from_secs(5),
            reg.enqueue_job(&NewJob::now("other", "{}".into())),
        )
        .await
        .expect("a write after the job")
        .unwrap();
    }
    stores.done().await;
}

/// A stopping worker whose job never leaves its write transaction still releases
/// the claim within its bound: the run is dropped (its transaction rolled back)
/// before the claim is written.
#[tokio::test]
async fn a_stopping_worker_releases_a_job_stuck_in_a_write_transaction() {
    let stores = registries().await;
    for (reg, meta) in stores.list.clone().into_iter().zip(stores.metas.clone()) {
        reg.enqueue_job(&NewJob::now("writing", "{}".into()))
            .await
            .unwrap();
        let h = Arc::new(Writing {
            meta,
            hold: None,
            started: Notify::new(),
        });
        let w = Worker::new(
            reg.clone(),
            "a",
            vec![h.clone() as Arc<dyn Handler>],
            config(100),
        );
        let (stop, stopping) = watch::channel(false);
        let task = tokio::spawn(w.run(stopping));
        h.started.notified().await;
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the worker stops within its bound")
            .unwrap();
        let rows = reg.list_jobs(None, Some("writing"), 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, "queued");
        assert_eq!(rows[0].claimed_by, None);
    }
    stores.done().await;
}

/// Always fails; remembers what it was told when parked.
struct Failing {
    parked: Mutex<Vec<String>>,
}

impl Handler for Failing {
    fn kind(&self) -> &'static str {
        "failing"
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base_delay_ms: 50,
            max_delay_ms: 100,
        }
    }

    fn run<'a>(
        &'a self,
        _reg: &'a Registry,
        job: &'a ClaimedJob,
    ) -> BoxFuture<'a, Result<Finished, String>> {
        Box::pin(async move { Err(format!("attempt {} failed", job.attempts)) })
    }

    fn parked<'a>(
        &'a self,
        _reg: &'a Registry,
        _job: &'a ClaimedJob,
        error: &'a str,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            self.parked.lock().unwrap().push(error.to_string());
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_failing_job_is_retried_then_parked() {
    let stores = registries().await;
    for reg in stores.list.clone() {
        reg.enqueue_job(&NewJob::now("failing", "{}".into()))
            .await
            .unwrap();
        let h = Arc::new(Failing {
            parked: Mutex::new(Vec::new()),
        });
        let w = Worker::new(
            reg.clone(),
            "a",
            vec![h.clone() as Arc<dyn Handler>],
            config(50),
        );
        let (_keep, mut stop) = watch::channel(false);
        let mut ran = 0;
        for _ in 0..200 {
            if h.parked.lock().unwrap().len() == 1 {
                break;
            }
            if w.run_one(&mut stop).await.unwrap() == Ran::Job {
                ran += 1;
            } else {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        assert_eq!(ran, 3);
        assert_eq!(
            *h.parked.lock().unwrap(),
            vec!["attempt 3 failed".to_string()]
        );
        let parked = reg.list_jobs(Some("parked"), None, 10).await.unwrap();
        assert_eq!(parked.len(), 1);
        assert_eq!(parked[0].last_error.as_deref(), Some("attempt 3 failed"));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(w.run_one(&mut stop).await.unwrap(), Ran::Idle);

        // Retried by an operator: it runs again.
        assert!(reg.retry_parked_job(parked[0].job_id).await.unwrap());
        assert_eq!(w.run_one(&mut stop).await.unwrap(), Ran::Job);
        let rows = reg.list_jobs(None, Some("failing"), 10).await.unwrap();
        assert_eq!((rows[0].state.as_str(), rows[0].attempts), ("queued", 1));
    }
    stores.done().await;
}

#[tokio::test]
async fn two_workers_run_one_periodic_pass_per_interval() {
    let stores = registries().await;
    for reg in stores.list.clone() {
        let interval = Duration::from_millis(400);
        let (stop, stopping) = watch::channel(false);
        let mut tasks = Vec::new();
        let started = std::time::Instant::now();
        for name in ["node-a", "node-b"] {
            let p = Periodic {
                pass: Pass::Lifecycle,
                interval,
            };
            p.schedule(&reg).await.unwrap();
            let w = Worker::new(
                reg.clone(),
                name,
                vec![Arc::new(p) as Arc<dyn Handler>],
                config(50),
            );
            tasks.push(tokio::spawn(w.run(stopping.clone())));
        }
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        stop.send(true).unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = started.elapsed().as_millis() as f64;
        let audit = reg.recent_audit(1000).await.unwrap();
        let passes: Vec<_> = audit
            .iter()
            .filter(|a| a.action == "berth:LifecycleRun")
            .collect();
        let expected = elapsed / interval.as_millis() as f64;
        let n = passes.len() as f64;
        assert!(
            n <= expected + 0.01 && n >= expected - 2.5,
            "{n} passes in {elapsed} ms, interval {interval:?}"
        );
        assert!(passes.iter().all(|p| p.outcome == "ok"
            && p.detail.as_deref() == Some("0 image(s) expired")
            && matches!(p.source.as_deref(), Some("node-a") | Some("node-b"))));
        let rows = reg.list_jobs(None, Some("lifecycle"), 10).await.unwrap();
        assert_eq!(rows.len(), 1, "one row for the pass");
    }
    stores.done().await;
}

//! Durable jobs (`crates/store/src/meta/jobs.rs`) against a real SQLite file and,
//! when `BERTH_TEST_POSTGRES_URL` names a server this test may create databases on,
//! a fresh PostgreSQL database: claiming, fencing, backoff, parking, release,
//! periodic rows and concurrent claimers.

use std::collections::HashSet;
use std::time::Duration;

use berth_store::{Completion, FailOutcome, JobRecord, Meta, NewJob, RetryPolicy};
use sqlx::Connection;

/// The stores a test runs on, and the PostgreSQL database to drop after it.
struct Stores {
    list: Vec<Meta>,
    pg: Option<(String, String)>,
}

impl Stores {
    /// Closes the stores and drops the test's PostgreSQL database (kept when the
    /// test failed before getting here).
    async fn done(self) {
        for m in &self.list {
            m.pool().close().await;
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

async fn backends() -> Stores {
    let dir = std::env::temp_dir().join(format!("berth-jobs-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut list = vec![
        Meta::connect(&format!("sqlite://{}/meta.db?mode=rwc", dir.display()))
            .await
            .unwrap(),
    ];
    let mut pg = None;
    if let Ok(url) = std::env::var("BERTH_TEST_POSTGRES_URL") {
        if !url.is_empty() {
            sqlx::any::install_default_drivers();
            let mut admin = sqlx::AnyConnection::connect(&url).await.unwrap();
            let db = format!("berth_jobs_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut admin)
                .await
                .unwrap();
            let base = url.rsplit_once('/').map(|(b, _)| b).unwrap();
            list.push(Meta::connect(&format!("{base}/{db}")).await.unwrap());
            pg = Some((url, db));
        }
    }
    Stores { list, pg }
}

fn job(kind: &str, payload: &str) -> NewJob {
    NewJob::now(kind, payload.to_string())
}

const QUICK: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base_delay_ms: 200,
    max_delay_ms: 300,
};

#[tokio::test]
async fn claim_complete_and_kinds() {
    let stores = backends().await;
    for m in stores.list.clone() {
        assert!(m.enqueue_job(&job("a", "1")).await.unwrap());
        assert!(m.enqueue_job(&job("b", "2")).await.unwrap());
        assert!(m.enqueue_job(&job("a", "3")).await.unwrap());
        // Not yet due.
        let mut later = job("a", "future");
        later.run_after = berth_store::now_millis() + 3_600_000;
        m.enqueue_job(&later).await.unwrap();

        assert!(m.claim_job(&[], "w1", 60_000).await.unwrap().is_none());
        let j1 = m.claim_job(&["a"], "w1", 60_000).await.unwrap().unwrap();
        assert_eq!((j1.kind.as_str(), j1.payload.as_str()), ("a", "1"));
        assert_eq!(j1.attempts, 1);
        assert_eq!(j1.claimed_by, "w1");
        let j3 = m.claim_job(&["a"], "w2", 60_000).await.unwrap().unwrap();
        assert_eq!(j3.payload, "3", "a claimed job is not claimed twice");
        assert!(m.claim_job(&["a"], "w2", 60_000).await.unwrap().is_none());
        let jb = m
            .claim_job(&["a", "b"], "w2", 60_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(jb.payload, "2");

        let running = m.list_jobs(Some("running"), None, 100).await.unwrap();
        assert_eq!(running.len(), 3);
        assert!(running
            .iter()
            .any(|r| r.job_id == j1.job_id && r.claimed_by.as_deref() == Some("w1")));
        assert_eq!(m.list_jobs(None, Some("a"), 100).await.unwrap().len(), 3);
        assert_eq!(m.pending_jobs("a").await.unwrap(), 3);

        assert!(m.complete_job(&j1, &Completion::Done, None).await.unwrap());
        assert!(m.get_job(j1.job_id).await.unwrap().is_none());
        // Completing twice is refused: the claim is gone with the row.
        assert!(!m.complete_job(&j1, &Completion::Done, None).await.unwrap());
        assert_eq!(m.pending_jobs("a").await.unwrap(), 2);
    }
    stores.done().await;
}

#[tokio::test]
async fn enqueue_commits_with_its_cause() {
    let stores = backends().await;
    for m in stores.list.clone() {
        let mut g = m.begin_write().await.unwrap();
        berth_store::meta::jobs::enqueue_tx(&mut g.tx, &job("c", "rolled back"))
            .await
            .unwrap();
        drop(g); // rolled back
        let mut g = m.begin_write().await.unwrap();
        berth_store::meta::jobs::enqueue_tx(&mut g.tx, &job("c", "kept"))
            .await
            .unwrap();
        g.commit().await.unwrap();
        let rows = m.list_jobs(None, Some("c"), 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].payload, "kept");
        assert_eq!(rows[0].state, "queued");
    }
    stores.done().await;
}

#[tokio::test]
async fn failures_back_off_then_park_with_the_last_error() {
    assert_eq!(RetryPolicy::default().delay_ms(1), 1000);
    assert_eq!(RetryPolicy::default().delay_ms(3), 4000);
    assert_eq!(RetryPolicy::default().delay_ms(60), 300_000);
    let stores = backends().await;
    for m in stores.list.clone() {
        m.enqueue_job(&job("f", "x")).await.unwrap();
        // When the previous attempt was reported failed (its backoff starts then).
        let mut failed_at = 0;
        for attempt in 1..=QUICK.max_attempts {
            let start = berth_store::now_millis();
            let j = loop {
                if let Some(j) = m.claim_job(&["f"], "w", 60_000).await.unwrap() {
                    break j;
                }
                assert!(
                    berth_store::now_millis() - start < 5_000,
                    "the retry never became runnable"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            assert_eq!(j.attempts, attempt);
            if attempt > 1 {
                assert_eq!(
                    j.last_error.as_deref(),
                    Some(format!("boom {}", attempt - 1).as_str())
                );
                // Backed off: not runnable before the policy's delay after the
                // failure was reported.
                let waited = berth_store::now_millis() - failed_at;
                assert!(
                    waited >= QUICK.delay_ms(attempt - 1) - 50,
                    "retried after {waited} ms"
                );
            }
            failed_at = berth_store::now_millis();
            let out = m
                .fail_job(&j, &format!("boom {attempt}"), &QUICK)
                .await
                .unwrap();
            if attempt < QUICK.max_attempts {
                let FailOutcome::Retry { at } = out else {
                    panic!("attempt {attempt}: {out:?}")
                };
                assert!(at >= berth_store::now_millis() + QUICK.delay_ms(attempt) - 100);
                assert!(m.claim_job(&["f"], "w", 60_000).await.unwrap().is_none());
            } else {
                assert_eq!(out, FailOutcome::Parked);
            }
        }
        // Parked: never claimed again, error kept.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(m.claim_job(&["f"], "w", 60_000).await.unwrap().is_none());
        let parked = m.list_jobs(Some("parked"), Some("f"), 10).await.unwrap();
        assert_eq!(parked.len(), 1);
        assert_eq!(parked[0].last_error.as_deref(), Some("boom 3"));
        assert_eq!(parked[0].attempts, 3);
        assert!(parked[0].claimed_by.is_none());
        assert_eq!(m.pending_jobs("f").await.unwrap(), 0);

        // An operator retries it: fresh attempts, runnable at once.
        assert!(!m.retry_parked_job(parked[0].job_id + 1000).await.unwrap());
        assert!(m.retry_parked_job(parked[0].job_id).await.unwrap());
        assert!(!m.retry_parked_job(parked[0].job_id).await.unwrap());
        let j = m.claim_job(&["f"], "w", 60_000).await.unwrap().unwrap();
        assert_eq!(j.attempts, 1);
        assert_eq!(j.last_error.as_deref(), Some("boom 3"));
        assert!(m.complete_job(&j, &Completion::Done, None).await.unwrap());
    }
    stores.done().await;
}

#[tokio::test]
async fn release_hands_the_job_over_at_once_and_leases_fence_claims() {
    let stores = backends().await;
    for m in stores.list.clone() {
        m.enqueue_job(&job("r", "x")).await.unwrap();
        let a = m.claim_job(&["r"], "a", 3_600_000).await.unwrap().unwrap();
        assert!(m.claim_job(&["r"], "b", 60_000).await.unwrap().is_none());
        assert!(m.extend_claim(&a, 3_600_000).await.unwrap());
        assert!(m.release_job(&a).await.unwrap());
        // Released: no lease to wait for, and the release is not an attempt.
        let b = m.claim_job(&["r"], "b", 50).await.unwrap().unwrap();
        assert_eq!(b.attempts, 1);
        assert_eq!(b.claimed_by, "b");
        // a's claim is stale now.
        assert!(!m.release_job(&a).await.unwrap());
        assert!(!m.extend_claim(&a, 60_000).await.unwrap());
        assert_eq!(
            m.fail_job(&a, "late", &QUICK).await.unwrap(),
            FailOutcome::LostClaim
        );

        // b's lease runs out (a crashed worker): c takes the job over, and b can
        // no longer finish it.
        tokio::time::sleep(Duration::from_millis(120)).await;
        let c = m.claim_job(&["r"], "c", 60_000).await.unwrap().unwrap();
        assert_eq!(c.attempts, 2);
        assert!(!m.complete_job(&b, &Completion::Done, None).await.unwrap());
        assert!(m.get_job(c.job_id).await.unwrap().is_some());
        assert!(m.complete_job(&c, &Completion::Done, None).await.unwrap());
        assert!(m.get_job(c.job_id).await.unwrap().is_none());
    }
    stores.done().await;
}

#[tokio::test]
async fn periodic_rows_are_unique_and_rescheduled_with_a_record() {
    let stores = backends().await;
    for m in stores.list.clone() {
        let now = berth_store::now_millis();
        m.ensure_periodic_job("gc", "periodic:gc", now + 3_600_000)
            .await
            .unwrap();
        m.ensure_periodic_job("gc", "periodic:gc", now + 7_200_000)
            .await
            .unwrap();
        let rows = m.list_jobs(None, Some("gc"), 10).await.unwrap();
        assert_eq!(rows.len(), 1, "one row per unique key");
        assert_eq!(
            rows[0].run_after,
            now + 3_600_000,
            "a later due time does not postpone it"
        );
        assert!(m.claim_job(&["gc"], "w", 60_000).await.unwrap().is_none());
        // A node with a shorter interval pulls it in.
        m.ensure_periodic_job("gc", "periodic:gc", now)
            .await
            .unwrap();
        let j = m.claim_job(&["gc"], "w", 60_000).await.unwrap().unwrap();
        // While it runs, ensuring it changes nothing.
        m.ensure_periodic_job("gc", "periodic:gc", now)
            .await
            .unwrap();
        assert!(m.claim_job(&["gc"], "w2", 60_000).await.unwrap().is_none());

        let record = JobRecord {
            action: "berth:GarbageCollection".into(),
            outcome: "ok".into(),
            detail: "reclaimed 0 blob(s)".into(),
        };
        let next = berth_store::now_millis() + 200;
        assert!(m
            .complete_job(
                &j,
                &Completion::Reschedule {
                    run_after: next,
                    error: None
                },
                Some(&record)
            )
            .await
            .unwrap());
        let rows = m.list_jobs(None, Some("gc"), 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].state.as_str(), rows[0].run_after, rows[0].attempts),
            ("queued", next, 0)
        );
        let audit = m.recent_audit(10).await.unwrap();
        let passes: Vec<_> = audit
            .iter()
            .filter(|a| a.action == "berth:GarbageCollection")
            .collect();
        assert_eq!(passes.len(), 1);
        assert_eq!(passes[0].source.as_deref(), Some("w"));
        assert_eq!(passes[0].outcome, "ok");
        assert_eq!(passes[0].detail.as_deref(), Some("reclaimed 0 blob(s)"));

        // A stale claim neither reschedules nor records.
        assert!(!m
            .complete_job(
                &j,
                &Completion::Reschedule {
                    run_after: next,
                    error: None
                },
                Some(&record)
            )
            .await
            .unwrap());
        assert_eq!(
            m.recent_audit(10)
                .await
                .unwrap()
                .iter()
                .filter(|a| a.action == "berth:GarbageCollection")
                .count(),
            1
        );
        assert!(m.claim_job(&["gc"], "w", 60_000).await.unwrap().is_none());
        tokio::time::sleep(Duration::from_millis(250)).await;
        let j = m.claim_job(&["gc"], "w2", 60_000).await.unwrap().unwrap();
        assert_eq!(j.run_after, next);
        assert!(m
            .complete_job(
                &j,
                &Completion::Reschedule {
                    run_after: next + 60_000,
                    error: Some("disk on fire".into())
                },
                None
            )
            .await
            .unwrap());
        let rows = m.list_jobs(Some("queued"), Some("gc"), 10).await.unwrap();
        assert_eq!(rows[0].last_error.as_deref(), Some("disk on fire"));
    }
    stores.done().await;
}

#[tokio::test]
async fn concurrent_claimers_take_each_job_once() {
    let stores = backends().await;
    for m in stores.list.clone() {
        const JOBS: usize = 40;
        let mut g = m.begin_write().await.unwrap();
        for i in 0..JOBS {
            berth_store::meta::jobs::enqueue_tx(&mut g.tx, &job("cc", &i.to_string()))
                .await
                .unwrap();
        }
        g.commit().await.unwrap();
        let mut tasks = Vec::new();
        for w in 0..6 {
            let m = m.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                let worker = format!("w{w}");
                while let Some(j) = m.claim_job(&["cc"], &worker, 60_000).await.unwrap() {
                    got.push(j.payload.clone());
                    assert!(m.complete_job(&j, &Completion::Done, None).await.unwrap());
                }
                got
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let distinct: HashSet<_> = all.iter().cloned().collect();
        assert_eq!(all.len(), JOBS, "every job claimed exactly once: {all:?}");
        assert_eq!(distinct.len(), JOBS);
        assert!(m.list_jobs(None, Some("cc"), 100).await.unwrap().is_empty());
    }
    stores.done().await;
}

//! Replication in the metadata store. The jobs a deletion causes (its replication
//! to other registries) are enqueued in the deletion's own transaction
//! (`Meta::delete_tag`, `Meta::delete_manifest`): a deletion that rolls back leaves
//! no job, and one that commits always has its jobs. An image's replication status
//! stays `IN_PROGRESS` while any of its copies to that destination is still to run,
//! then is the outcome of the latest push whose copy finished (an older copy
//! finishing late never hides a newer one's failure), and `/metrics` counts alike.
//! Against a real SQLite file and, when `BERTH_TEST_POSTGRES_URL` names a server
//! this test may create databases on, a fresh PostgreSQL database.

use std::sync::atomic::{AtomicUsize, Ordering};

use berth_store::meta::no_jobs;
use berth_store::replication::{replication_job, ReplicationJob, REPLICATION_JOB};
use berth_store::{
    Completion, DeleteManifestOutcome, ManifestWrite, Meta, NewJob, NewRepository,
    PutManifestOutcome, StoreError,
};
use sqlx::Connection;

/// The stores a test runs on, and the PostgreSQL database to drop after it.
struct Stores {
    list: Vec<Meta>,
    pg: Option<(String, String)>,
}

impl Stores {
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
    let dir = std::env::temp_dir().join(format!("berth-deljobs-{}", uuid::Uuid::new_v4()));
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
            let db = format!("berth_deljobs_{}", uuid::Uuid::new_v4().simple());
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

const KIND: &str = "replicate-delete";

/// The payloads of the queued deletion jobs.
async fn jobs(m: &Meta) -> Vec<String> {
    m.list_jobs(None, Some(KIND), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.payload)
        .collect()
}

fn job(what: &str, digest: &str) -> Result<Vec<NewJob>, StoreError> {
    Ok(vec![NewJob::now(KIND, format!("{what} {digest}"))])
}

fn refuse(_: &str) -> Result<Vec<NewJob>, StoreError> {
    Err(StoreError::Config("cannot build the job".into()))
}

#[tokio::test]
async fn a_deletion_and_its_jobs_commit_or_roll_back_together() {
    let stores = backends().await;
    for m in &stores.list {
        let r = m
            .create_repository(&NewRepository {
                account_id: "123456789012".into(),
                name: "team/app".into(),
                created_at: 1,
                tag_mutability: "MUTABLE".into(),
                mutability_exclusions: "[]".into(),
                scan_on_push: false,
                encryption_type: "AES256".into(),
                kms_key: None,
                tags: vec![],
            })
            .await
            .unwrap()
            .unwrap();
        let mut tx = m.begin_digest_tx("sha256:aa", false).await.unwrap();
        Meta::record_blob(&mut tx, r.repo_id, "sha256:aa", 10, 5, b"k", b"k")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let put = |digest: &str, tag: &str| ManifestWrite {
            repo_id: r.repo_id,
            digest: digest.into(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            artifact_type: None,
            subject: None,
            config_digest: Some("sha256:aa".into()),
            image_size: 10,
            body: b"{}".to_vec(),
            pushed_at: 7,
            blobs: vec!["sha256:aa".into()],
            children: vec![],
            tag: Some((tag.into(), false)),
            jobs: vec![],
            events: vec![],
        };
        for (d, t) in [("sha256:m1", "v1"), ("sha256:m1", "v2"), ("sha256:m2", "w")] {
            assert!(matches!(
                m.put_manifest(&put(d, t)).await.unwrap(),
                PutManifestOutcome::Stored { .. }
            ));
        }

        // A tag removal whose jobs cannot be built rolls back: the tag stays, no job.
        assert!(m.delete_tag(r.repo_id, "v1", &refuse).await.is_err());
        assert_eq!(
            m.get_manifest_by_tag(r.repo_id, "v1")
                .await
                .unwrap()
                .map(|x| x.digest),
            Some("sha256:m1".to_string())
        );
        assert!(jobs(m).await.is_empty());
        // Committed: the tag is gone and its job, built from the digest the tag
        // named, is queued.
        let removed = m
            .delete_tag(r.repo_id, "v1", &|d: &str| job("tag v1", d))
            .await
            .unwrap();
        assert_eq!(removed.as_deref(), Some("sha256:m1"));
        assert!(m
            .get_manifest_by_tag(r.repo_id, "v1")
            .await
            .unwrap()
            .is_none());
        assert_eq!(jobs(m).await, vec!["tag v1 sha256:m1".to_string()]);
        // Nothing removed: no job is built.
        let calls = AtomicUsize::new(0);
        let counting = |d: &str| {
            calls.fetch_add(1, Ordering::SeqCst);
            job("never", d)
        };
        assert!(m
            .delete_tag(r.repo_id, "missing", &counting)
            .await
            .unwrap()
            .is_none());
        assert!(matches!(
            m.delete_manifest(r.repo_id, "sha256:none", 8, &counting)
                .await
                .unwrap(),
            DeleteManifestOutcome::NotFound
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        // An image delete whose jobs cannot be built rolls back: the manifest and
        // its remaining tag stay, no new job.
        assert!(m
            .delete_manifest(r.repo_id, "sha256:m1", 8, &refuse)
            .await
            .is_err());
        assert!(m
            .get_manifest(r.repo_id, "sha256:m1")
            .await
            .unwrap()
            .is_some());
        assert_eq!(
            m.list_tags(r.repo_id, None, 10).await.unwrap(),
            vec!["v2", "w"]
        );
        assert_eq!(jobs(m).await.len(), 1);
        // Committed: manifest, tags and job together.
        let out = m
            .delete_manifest(r.repo_id, "sha256:m1", 8, &|d: &str| job("image", d))
            .await
            .unwrap();
        assert!(
            matches!(&out, DeleteManifestOutcome::Deleted { tags } if tags == &vec!["v2".to_string()]),
            "{out:?}"
        );
        assert!(m
            .get_manifest(r.repo_id, "sha256:m1")
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            jobs(m).await,
            vec![
                "tag v1 sha256:m1".to_string(),
                "image sha256:m1".to_string()
            ]
        );
        // A manifest an index needs is refused, and stays, without a job.
        let mut index = put("sha256:ix", "ix");
        index.blobs = vec![];
        index.children = vec!["sha256:m2".into()];
        assert!(matches!(
            m.put_manifest(&index).await.unwrap(),
            PutManifestOutcome::Stored { .. }
        ));
        assert_eq!(
            m.delete_manifest(r.repo_id, "sha256:m2", 9, &|d: &str| job("never", d))
                .await
                .unwrap(),
            DeleteManifestOutcome::ReferencedBy("sha256:ix".into())
        );
        assert!(m
            .get_manifest(r.repo_id, "sha256:m2")
            .await
            .unwrap()
            .is_some());
        assert_eq!(jobs(m).await.len(), 2);
        // A deletion that causes no jobs still deletes.
        assert!(m
            .delete_tag(r.repo_id, "w", &no_jobs)
            .await
            .unwrap()
            .is_some());
        assert_eq!(jobs(m).await.len(), 2);
    }
    stores.done().await;
}

#[tokio::test]
async fn an_image_is_in_progress_while_any_of_its_copies_is_to_run() {
    let stores = backends().await;
    for m in &stores.list {
        let r = m
            .create_repository(&NewRepository {
                account_id: "123456789012".into(),
                name: "app".into(),
                created_at: 1,
                tag_mutability: "MUTABLE".into(),
                mutability_exclusions: "[]".into(),
                scan_on_push: false,
                encryption_type: "AES256".into(),
                kms_key: None,
                tags: vec![],
            })
            .await
            .unwrap()
            .unwrap();
        let mut tx = m.begin_digest_tx("sha256:aa", false).await.unwrap();
        Meta::record_blob(&mut tx, r.repo_id, "sha256:aa", 10, 5, b"k", b"k")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let job = |tag: &str, region: &str| ReplicationJob {
            repo_id: r.repo_id,
            digest: "sha256:m1".into(),
            tag: Some(tag.into()),
            region: region.into(),
            registry_id: "210987654321".into(),
        };
        // The image pushed under two tags: two copies to us-west-2; one to
        // eu-west-1.
        for (tag, regions) in [
            ("a", vec!["us-west-2", "eu-west-1"]),
            ("b", vec!["us-west-2"]),
        ] {
            let w = ManifestWrite {
                repo_id: r.repo_id,
                digest: "sha256:m1".into(),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                artifact_type: None,
                subject: None,
                config_digest: Some("sha256:aa".into()),
                image_size: 10,
                body: b"{}".to_vec(),
                pushed_at: 7,
                blobs: vec!["sha256:aa".into()],
                children: vec![],
                tag: Some((tag.into(), false)),
                jobs: regions
                    .iter()
                    .map(|g| replication_job(&job(tag, g)).unwrap())
                    .collect(),
                events: vec![],
            };
            assert!(matches!(
                m.put_manifest(&w).await.unwrap(),
                PutManifestOutcome::Stored { .. }
            ));
        }
        let statuses = |m: &Meta| {
            let m = m.clone();
            let repo_id = r.repo_id;
            async move {
                m.replication_statuses(repo_id, "sha256:m1")
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|s| (s.region, s.status, s.failure_code))
                    .collect::<Vec<_>>()
            }
        };
        let st = |region: &str, status: &str, code: Option<&str>| {
            (
                region.to_string(),
                status.to_string(),
                code.map(str::to_string),
            )
        };
        assert_eq!(
            statuses(m).await,
            vec![
                st("eu-west-1", "IN_PROGRESS", None),
                st("us-west-2", "IN_PROGRESS", None)
            ]
        );
        // Run the jobs one at a time, in order: the first copy to us-west-2 is
        // done, the second still queued, so us-west-2 is still in progress.
        let mut done = 0;
        while let Some(claimed) = m.claim_job(&[REPLICATION_JOB], "w", 60_000).await.unwrap() {
            let j: ReplicationJob = serde_json::from_str(&claimed.payload).unwrap();
            let code = (j.region == "eu-west-1").then_some("ACCESS_DENIED");
            let status = if code.is_some() { "FAILED" } else { "COMPLETE" };
            m.set_replication_status(&j, claimed.job_id, status, code, 8)
                .await
                .unwrap();
            assert!(m
                .complete_job(&claimed, &Completion::Done, None)
                .await
                .unwrap());
            done += 1;
            let now = statuses(m).await;
            match done {
                1 => assert_eq!(
                    now,
                    vec![
                        st("eu-west-1", "IN_PROGRESS", None),
                        st("us-west-2", "IN_PROGRESS", None)
                    ]
                ),
                2 => assert_eq!(
                    now,
                    vec![
                        st("eu-west-1", "FAILED", Some("ACCESS_DENIED")),
                        st("us-west-2", "IN_PROGRESS", None)
                    ]
                ),
                _ => assert_eq!(
                    now,
                    vec![
                        st("eu-west-1", "FAILED", Some("ACCESS_DENIED")),
                        st("us-west-2", "COMPLETE", None)
                    ]
                ),
            }
        }
        assert_eq!(done, 3);
        // Deleting the image deletes its statuses: none is left to count in
        // `/metrics` or to speak for a later push of the same digest.
        assert!(matches!(
            m.delete_manifest(r.repo_id, "sha256:m1", 9, &no_jobs)
                .await
                .unwrap(),
            DeleteManifestOutcome::Deleted { .. }
        ));
        assert_eq!(
            statuses_and_counts(m, r.repo_id, "sha256:m1").await,
            (vec![], vec![])
        );
    }
    stores.done().await;
}

/// The image's statuses (region, status, code) and `/metrics`' counts of images by
/// status, which must agree.
async fn statuses_and_counts(
    m: &Meta,
    repo_id: i64,
    digest: &str,
) -> (Vec<(String, String, Option<String>)>, Vec<(String, i64)>) {
    let st: Vec<_> = m
        .replication_statuses(repo_id, digest)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.region, s.status, s.failure_code))
        .collect();
    let (_, mut counts, _) = m.replication_metrics().await.unwrap();
    counts.retain(|(_, n)| *n > 0);
    counts.sort();
    let mut expect: Vec<(String, i64)> = Vec::new();
    for (_, s, _) in &st {
        match expect.iter_mut().find(|(x, _)| x == s) {
            Some(c) => c.1 += 1,
            None => expect.push((s.clone(), 1)),
        }
    }
    expect.sort();
    assert_eq!(
        counts, expect,
        "/metrics disagrees with the statuses {st:?}"
    );
    (st, counts)
}

#[tokio::test]
async fn a_later_failure_is_never_overwritten_by_an_earlier_copy() {
    use berth_store::meta::jobs::RetryPolicy;
    let stores = backends().await;
    for m in &stores.list {
        let r = m
            .create_repository(&NewRepository {
                account_id: "123456789012".into(),
                name: "app".into(),
                created_at: 1,
                tag_mutability: "MUTABLE".into(),
                mutability_exclusions: "[]".into(),
                scan_on_push: false,
                encryption_type: "AES256".into(),
                kms_key: None,
                tags: vec![],
            })
            .await
            .unwrap()
            .unwrap();
        let mut tx = m.begin_digest_tx("sha256:aa", false).await.unwrap();
        Meta::record_blob(&mut tx, r.repo_id, "sha256:aa", 10, 5, b"k", b"k")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let push = |tag: &str| ManifestWrite {
            repo_id: r.repo_id,
            digest: "sha256:m1".into(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            artifact_type: None,
            subject: None,
            config_digest: Some("sha256:aa".into()),
            image_size: 10,
            body: b"{}".to_vec(),
            pushed_at: 7,
            blobs: vec!["sha256:aa".into()],
            children: vec![],
            tag: Some((tag.into(), false)),
            jobs: vec![replication_job(&ReplicationJob {
                repo_id: r.repo_id,
                digest: "sha256:m1".into(),
                tag: Some(tag.into()),
                region: "us-west-2".into(),
                registry_id: "210987654321".into(),
            })
            .unwrap()],
            events: vec![],
        };
        let st = |status: &str, code: Option<&str>| {
            vec![(
                "us-west-2".to_string(),
                status.to_string(),
                code.map(str::to_string),
            )]
        };
        let claim = || async {
            let c = m
                .claim_job(&[REPLICATION_JOB], "w", 60_000)
                .await
                .unwrap()
                .unwrap();
            let j: ReplicationJob = serde_json::from_str(&c.payload).unwrap();
            (c, j)
        };
        let once = RetryPolicy {
            max_attempts: 1,
            base_delay_ms: 1,
            max_delay_ms: 1,
        };
        // Tags a then b: two copies of the image to one destination, both running.
        for t in ["a", "b"] {
            m.put_manifest(&push(t)).await.unwrap();
        }
        let (ca, ja) = claim().await;
        let (cb, jb) = claim().await;
        assert_eq!(
            (ja.tag.as_deref(), jb.tag.as_deref()),
            (Some("a"), Some("b"))
        );
        let (s, _) = statuses_and_counts(m, r.repo_id, "sha256:m1").await;
        assert_eq!(s, st("IN_PROGRESS", None));
        // The newer copy (b) fails for good and is parked while a still runs.
        assert!(matches!(
            m.fail_job(&cb, "peer down", &once).await.unwrap(),
            berth_store::meta::jobs::FailOutcome::Parked
        ));
        m.set_replication_status(&jb, cb.job_id, "FAILED", Some("REPLICATION_FAILED"), 9)
            .await
            .unwrap();
        let (s, _) = statuses_and_counts(m, r.repo_id, "sha256:m1").await;
        assert_eq!(s, st("IN_PROGRESS", None));
        // The older copy (a) finishing later does not make it COMPLETE.
        m.set_replication_status(&ja, ca.job_id, "COMPLETE", None, 10)
            .await
            .unwrap();
        assert!(m.complete_job(&ca, &Completion::Done, None).await.unwrap());
        let (s, _) = statuses_and_counts(m, r.repo_id, "sha256:m1").await;
        assert_eq!(s, st("FAILED", Some("REPLICATION_FAILED")));

        // b moved to another image and back, twice: two more copies of the image
        // under b; while they are queued the image is IN_PROGRESS again (and
        // /metrics says so too).
        for _ in 0..2 {
            let mut other = push("b");
            other.digest = "sha256:m2".into();
            other.jobs.clear();
            assert!(matches!(
                m.put_manifest(&other).await.unwrap(),
                PutManifestOutcome::Stored { .. }
            ));
            assert!(matches!(
                m.put_manifest(&push("b")).await.unwrap(),
                PutManifestOutcome::Stored {
                    manifest_existed: true,
                    ..
                }
            ));
        }
        let (s, _) = statuses_and_counts(m, r.repo_id, "sha256:m1").await;
        assert_eq!(s, st("IN_PROGRESS", None));
        let (c1, j1) = claim().await;
        let (c2, j2) = claim().await;
        assert!(c1.job_id < c2.job_id);
        // The newer of the two fails for good first; the older then completes:
        // the copy of b keeps the newer outcome, FAILED.
        assert!(matches!(
            m.fail_job(&c2, "peer down", &once).await.unwrap(),
            berth_store::meta::jobs::FailOutcome::Parked
        ));
        m.set_replication_status(&j2, c2.job_id, "FAILED", Some("REPLICATION_FAILED"), 11)
            .await
            .unwrap();
        m.set_replication_status(&j1, c1.job_id, "COMPLETE", None, 12)
            .await
            .unwrap();
        assert!(m.complete_job(&c1, &Completion::Done, None).await.unwrap());
        let (s, _) = statuses_and_counts(m, r.repo_id, "sha256:m1").await;
        assert_eq!(s, st("FAILED", Some("REPLICATION_FAILED")));

        // The parked copy retried (`berth admin jobs retry`) and now done replaces
        // b's failure: every copy's latest outcome is COMPLETE, so the image is.
        assert!(m.retry_parked_job(c2.job_id).await.unwrap());
        let (s, _) = statuses_and_counts(m, r.repo_id, "sha256:m1").await;
        assert_eq!(s, st("IN_PROGRESS", None));
        let (c3, j3) = claim().await;
        assert_eq!(c3.job_id, c2.job_id);
        m.set_replication_status(&j3, c3.job_id, "COMPLETE", None, 13)
            .await
            .unwrap();
        assert!(m.complete_job(&c3, &Completion::Done, None).await.unwrap());
        let (s, counts) = statuses_and_counts(m, r.repo_id, "sha256:m1").await;
        assert_eq!(s, st("COMPLETE", None));
        assert_eq!(counts, vec![("COMPLETE".to_string(), 1)]);

        // Two copies (new tags c and d) finishing at once, each recording its
        // outcome while the other still runs: COMPLETE once both are done.
        for t in ["c", "d"] {
            m.put_manifest(&push(t)).await.unwrap();
        }
        let (cc, jc) = claim().await;
        let (cd, jd) = claim().await;
        m.set_replication_status(&jc, cc.job_id, "COMPLETE", None, 14)
            .await
            .unwrap();
        m.set_replication_status(&jd, cd.job_id, "COMPLETE", None, 14)
            .await
            .unwrap();
        let (s, _) = statuses_and_counts(m, r.repo_id, "sha256:m1").await;
        assert_eq!(s, st("IN_PROGRESS", None));
        assert!(m.complete_job(&cc, &Completion::Done, None).await.unwrap());
        assert!(m.complete_job(&cd, &Completion::Done, None).await.unwrap());
        let (s, _) = statuses_and_counts(m, r.repo_id, "sha256:m1").await;
        assert_eq!(s, st("COMPLETE", None));
        // Deleting the repository deletes its images' statuses.
        m.delete_repository(r.repo_id, 15).await.unwrap();
        assert_eq!(
            statuses_and_counts(m, r.repo_id, "sha256:m1").await,
            (vec![], vec![])
        );
    }
    stores.done().await;
}

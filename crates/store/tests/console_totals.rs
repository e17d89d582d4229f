//! The console's Overview figures come from running totals kept by triggers
//! (schema v16). After every kind of change — push, pull, scan start and
//! completion, image delete, re-push, repository delete — they must equal the
//! full aggregates over `manifests` and `image_scans` they replace. On SQLite
//! and, when `BERTH_TEST_POSTGRES_URL` is set, PostgreSQL (the database is
//! dropped at the end).

use berth_store::{ManifestWrite, Meta, NewRepository, PutManifestOutcome};
use sqlx::Row;

const DAY: i64 = 86_400_000;

async fn reference(
    m: &Meta,
    account: &str,
) -> (Vec<(String, i64)>, Vec<(i64, i64, i64)>, [i64; 6]) {
    let storage = sqlx::query("SELECT r.name, CAST(SUM(m.image_size) AS BIGINT) FROM manifests m JOIN repositories r ON r.repo_id = m.repo_id WHERE r.account_id = $1 GROUP BY r.name ORDER BY 2 DESC, r.name LIMIT 10")
        .bind(account)
        .fetch_all(m.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
        .collect();
    let mut days: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
    for (col, push) in [("pushed_at", true), ("last_pulled_at", false)] {
        let rows = sqlx::query(&format!("SELECT m.{col} / 86400000, COUNT(*) FROM manifests m JOIN repositories r ON r.repo_id = m.repo_id WHERE r.account_id = $1 AND m.{col} >= 0 GROUP BY m.{col} / 86400000"))
            .bind(account)
            .fetch_all(m.pool())
            .await
            .unwrap();
        for r in rows {
            let e = days.entry(r.get::<i64, _>(0)).or_default();
            if push {
                e.0 = r.get(1);
            } else {
                e.1 = r.get(1);
            }
        }
    }
    let r = sqlx::query(
        "SELECT CAST(COALESCE(SUM(s.sev_critical), 0) AS BIGINT), CAST(COALESCE(SUM(s.sev_high), 0) AS BIGINT), \
         CAST(COALESCE(SUM(s.sev_medium), 0) AS BIGINT), CAST(COALESCE(SUM(s.sev_low), 0) AS BIGINT), \
         CAST(COALESCE(SUM(s.sev_informational), 0) AS BIGINT), CAST(COALESCE(SUM(s.sev_undefined), 0) AS BIGINT) \
         FROM image_scans s JOIN repositories r ON r.repo_id = s.repo_id \
         JOIN manifests m ON m.repo_id = s.repo_id AND m.digest = s.digest \
         WHERE r.account_id = $1 AND s.status = 'COMPLETE'",
    )
    .bind(account)
    .fetch_one(m.pool())
    .await
    .unwrap();
    let mut sev = [0i64; 6];
    for (i, v) in sev.iter_mut().enumerate() {
        *v = r.get(i);
    }
    (
        storage,
        days.into_iter().map(|(d, (a, b))| (d, a, b)).collect(),
        sev,
    )
}

async fn check(m: &Meta, step: &str) {
    for account in ["111111111111", "222222222222"] {
        let (storage, activity, sev) = reference(m, account).await;
        assert_eq!(
            m.storage_by_repository(account, 10).await.unwrap(),
            storage,
            "{step}: storage of {account}"
        );
        assert_eq!(
            m.activity_by_day(account, 0).await.unwrap(),
            activity,
            "{step}: activity of {account}"
        );
        assert_eq!(
            m.findings_by_severity(account).await.unwrap(),
            sev,
            "{step}: findings of {account}"
        );
    }
}

fn repo(account: &str, name: &str) -> NewRepository {
    NewRepository {
        account_id: account.into(),
        name: name.into(),
        created_at: 1,
        tag_mutability: "MUTABLE".into(),
        mutability_exclusions: "[]".into(),
        scan_on_push: false,
        encryption_type: "AES256".into(),
        kms_key: None,
        tags: vec![],
    }
}

async fn put(m: &Meta, repo_id: i64, digest: &str, size: i64, pushed_at: i64) {
    let w = ManifestWrite {
        repo_id,
        digest: digest.into(),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        artifact_type: None,
        subject: None,
        config_digest: None,
        image_size: size,
        body: b"{}".to_vec(),
        pushed_at,
        blobs: vec![],
        children: vec![],
        tag: None,
        jobs: vec![],
        events: vec![],
    };
    assert!(matches!(
        m.put_manifest(&w).await.unwrap(),
        PutManifestOutcome::Stored { .. }
    ));
}

async fn scan(m: &Meta, repo_id: i64, digest: &str, at: i64, counts: &str) {
    assert!(m
        .start_scan_with_quota(repo_id, digest, at, 0)
        .await
        .unwrap());
    let findings = format!("{{\"findings\":[],\"findingSeverityCounts\":{counts}}}");
    m.complete_scan(
        repo_id,
        digest,
        at,
        "COMPLETE",
        None,
        Some(&findings),
        at + 1,
    )
    .await
    .unwrap();
}

async fn run(m: Meta) {
    let (x, y) = ("111111111111", "222222222222");
    let a = m
        .create_repository(&repo(x, "team/a"))
        .await
        .unwrap()
        .unwrap()
        .repo_id;
    let b = m
        .create_repository(&repo(x, "team/b"))
        .await
        .unwrap()
        .unwrap()
        .repo_id;
    let c = m
        .create_repository(&repo(y, "other/c"))
        .await
        .unwrap()
        .unwrap()
        .repo_id;
    check(&m, "empty").await;
    put(&m, a, "sha256:m1", 10, DAY + 5).await;
    put(&m, a, "sha256:m2", 20, 2 * DAY + 5).await;
    put(&m, b, "sha256:m3", 5, 2 * DAY + 7).await;
    put(&m, c, "sha256:m4", 1000, 2 * DAY + 7).await;
    check(&m, "pushes").await;
    scan(&m, a, "sha256:m1", 3 * DAY, r#"{"HIGH":2,"LOW":1}"#).await;
    scan(&m, a, "sha256:m2", 3 * DAY, r#"{"CRITICAL":1}"#).await;
    scan(&m, c, "sha256:m4", 3 * DAY, r#"{"MEDIUM":9}"#).await;
    check(&m, "scans").await;
    m.record_pulls(&[
        (a, "sha256:m1".into(), 2 * DAY + 1),
        (b, "sha256:m3".into(), 3 * DAY),
    ])
    .await
    .unwrap();
    check(&m, "first pulls").await;
    m.record_pulls(&[(a, "sha256:m1".into(), 2 * DAY + 9)])
        .await
        .unwrap();
    m.record_pulls(&[(a, "sha256:m1".into(), 4 * DAY)])
        .await
        .unwrap();
    check(&m, "pulls on later days").await;
    // A rescan in progress does not count; its completion replaces the counts.
    assert!(m
        .start_scan_with_quota(a, "sha256:m1", 5 * DAY, 0)
        .await
        .unwrap());
    check(&m, "rescan in progress").await;
    m.complete_scan(
        a,
        "sha256:m1",
        5 * DAY,
        "COMPLETE",
        None,
        Some(r#"{"findings":[],"findingSeverityCounts":{"INFORMATIONAL":4,"UNDEFINED":3}}"#),
        5 * DAY + 1,
    )
    .await
    .unwrap();
    check(&m, "rescan complete").await;
    m.delete_manifest(a, "sha256:m2", 6 * DAY, &|_: &str| Ok(Vec::new()))
        .await
        .unwrap();
    check(&m, "image deleted").await;
    m.delete_manifest(a, "sha256:m1", 6 * DAY, &|_: &str| Ok(Vec::new()))
        .await
        .unwrap();
    check(&m, "scanned and pulled image deleted").await;
    // Re-pushed: its last complete scan counts again, as before.
    put(&m, a, "sha256:m1", 11, 7 * DAY).await;
    check(&m, "re-pushed").await;
    assert_eq!(m.findings_by_severity(x).await.unwrap(), [0, 0, 0, 0, 4, 3]);
    m.delete_repository(b, 8 * DAY).await.unwrap();
    check(&m, "repository deleted").await;
    assert_eq!(
        m.storage_by_repository(x, 10).await.unwrap(),
        vec![("team/a".to_string(), 11)]
    );
    m.delete_repository(a, 8 * DAY).await.unwrap();
    check(&m, "all deleted").await;
    assert!(m.storage_by_repository(x, 10).await.unwrap().is_empty());
    assert!(m.activity_by_day(x, 0).await.unwrap().is_empty());
    assert_eq!(m.findings_by_severity(y).await.unwrap(), [0, 0, 9, 0, 0, 0]);
}

/// The v16 objects, as a database from before v16 lacks them.
async fn drop_v16(m: &Meta, postgres: bool) {
    let names = [
        "totals_manifest_insert",
        "totals_manifest_delete",
        "totals_manifest_pull",
        "totals_manifest_resize",
        "totals_manifest_update",
        "totals_scan_insert",
        "totals_scan_update",
        "totals_scan_delete",
        "totals_repository_delete",
    ];
    let mut stmts = vec![
        "DROP TABLE repo_totals".to_string(),
        "DROP TABLE activity_days".to_string(),
        "DELETE FROM schema_migrations WHERE version = 16".to_string(),
    ];
    for n in names {
        stmts.push(if postgres {
            format!("DROP FUNCTION IF EXISTS {n}() CASCADE")
        } else {
            format!("DROP TRIGGER IF EXISTS {n}")
        });
    }
    for s in stmts {
        sqlx::query(&s).execute(m.pool()).await.unwrap();
    }
}

/// A database from before v16 with images, scans and pulls: migrating backfills
/// the totals from what is stored.
async fn upgrade(url: &str, postgres: bool) {
    let m = Meta::connect(url).await.unwrap();
    let x = "111111111111";
    let a = m
        .create_repository(&repo(x, "up/a"))
        .await
        .unwrap()
        .unwrap()
        .repo_id;
    let b = m
        .create_repository(&repo(x, "up/b"))
        .await
        .unwrap()
        .unwrap()
        .repo_id;
    drop_v16(&m, postgres).await;
    put(&m, a, "sha256:u1", 10, DAY).await;
    put(&m, a, "sha256:u2", 20, 2 * DAY).await;
    put(&m, b, "sha256:u3", 30, 2 * DAY).await;
    scan(&m, a, "sha256:u1", 3 * DAY, r#"{"HIGH":2,"LOW":1}"#).await;
    scan(&m, b, "sha256:u3", 3 * DAY, r#"{"CRITICAL":1}"#).await;
    assert!(m
        .start_scan_with_quota(a, "sha256:u2", 3 * DAY, 0)
        .await
        .unwrap());
    m.record_pulls(&[
        (a, "sha256:u1".into(), 4 * DAY),
        (b, "sha256:u3".into(), 4 * DAY),
    ])
    .await
    .unwrap();
    m.pool().close().await;
    let m = Meta::connect(url).await.unwrap();
    check(&m, "backfilled").await;
    assert_eq!(m.findings_by_severity(x).await.unwrap(), [1, 2, 0, 1, 0, 0]);
    assert_eq!(
        m.storage_by_repository(x, 10).await.unwrap(),
        vec![("up/a".to_string(), 30), ("up/b".to_string(), 30)]
    );
    // And the triggers are back.
    put(&m, b, "sha256:u4", 5, 5 * DAY).await;
    check(&m, "after the upgrade").await;
    m.pool().close().await;
}

#[tokio::test]
async fn overview_totals_are_backfilled_on_upgrade() {
    let dir = std::env::temp_dir().join(format!("berth-totals-up-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    upgrade(
        &format!("sqlite://{}/meta.db?mode=rwc", dir.display()),
        false,
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Ok(url) = std::env::var("BERTH_TEST_POSTGRES_URL") {
        sqlx::any::install_default_drivers();
        let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        let db = format!("berth_totals_up_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let base = url.rsplit_once('/').map(|(b, _)| b).unwrap().to_string();
        let target = format!("{base}/{db}");
        let outcome = tokio::spawn(async move { upgrade(&target, true).await }).await;
        sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
        outcome.unwrap();
    }
}

#[tokio::test]
async fn overview_totals_follow_every_change() {
    let dir = std::env::temp_dir().join(format!("berth-totals-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    run(
        Meta::connect(&format!("sqlite://{}/meta.db?mode=rwc", dir.display()))
            .await
            .unwrap(),
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Ok(url) = std::env::var("BERTH_TEST_POSTGRES_URL") {
        sqlx::any::install_default_drivers();
        let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        let db = format!("berth_totals_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let base = url.rsplit_once('/').map(|(b, _)| b).unwrap();
        let m = Meta::connect(&format!("{base}/{db}")).await.unwrap();
        let outcome = tokio::spawn(run(m.clone())).await;
        m.pool().close().await;
        sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
        outcome.unwrap();
    }
}

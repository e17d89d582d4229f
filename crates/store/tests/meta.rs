//! The metadata store against a real SQLite file (and PostgreSQL when
//! `BERTH_TEST_POSTGRES_URL` names a server this test may create databases on).

use berth_store::{ManifestWrite, Meta, NewRepository, PutManifestOutcome};

async fn backends() -> Vec<Meta> {
    let dir = std::env::temp_dir().join(format!("berth-meta-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut v = vec![
        Meta::connect(&format!("sqlite://{}/meta.db?mode=rwc", dir.display()))
            .await
            .unwrap(),
    ];
    if let Ok(url) = std::env::var("BERTH_TEST_POSTGRES_URL") {
        // A plain connection: the admin database itself is never migrated.
        sqlx::any::install_default_drivers();
        let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        let db = format!("berth_meta_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let base = url.rsplit_once('/').map(|(b, _)| b).unwrap();
        v.push(Meta::connect(&format!("{base}/{db}")).await.unwrap());
    }
    v
}

fn repo(name: &str) -> NewRepository {
    NewRepository {
        account_id: "123456789012".into(),
        name: name.into(),
        created_at: 1,
        tag_mutability: "MUTABLE".into(),
        mutability_exclusions: "[]".into(),
        scan_on_push: false,
        encryption_type: "AES256".into(),
        kms_key: None,
        tags: vec![("k".into(), "v".into())],
    }
}

#[tokio::test]
async fn repositories_blobs_manifests_tags() {
    for m in backends().await {
        let r = m
            .create_repository(&repo("team/app"))
            .await
            .unwrap()
            .unwrap();
        assert!(m
            .create_repository(&repo("team/app"))
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            m.get_repository("123456789012", "team/app")
                .await
                .unwrap()
                .unwrap()
                .repo_id,
            r.repo_id
        );
        assert_eq!(
            m.list_repositories("123456789012", None, 10)
                .await
                .unwrap()
                .len(),
            1
        );

        let mut tx = m.begin_digest_tx("sha256:aa", false).await.unwrap();
        Meta::record_blob(&mut tx, r.repo_id, "sha256:aa", 10, 5, b"k", b"k")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            m.linked_blob_size(r.repo_id, "sha256:aa").await.unwrap(),
            Some(10)
        );
        let mut w = ManifestWrite {
            repo_id: r.repo_id,
            digest: "sha256:m1".into(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            artifact_type: None,
            subject: None,
            config_digest: Some("sha256:aa".into()),
            image_size: 10,
            body: b"{}".to_vec(),
            pushed_at: 7,
            blobs: vec!["sha256:aa".into(), "sha256:bb".into()],
            children: vec![],
            tag: Some(("v1".into(), true)),
            jobs: vec![],
            events: vec![],
        };
        assert_eq!(
            m.put_manifest(&w).await.unwrap(),
            PutManifestOutcome::MissingBlobs(vec!["sha256:bb".into()])
        );
        w.blobs.pop();
        assert!(matches!(
            m.put_manifest(&w).await.unwrap(),
            PutManifestOutcome::Stored { .. }
        ));
        assert_eq!(
            m.put_manifest(&w).await.unwrap(),
            PutManifestOutcome::Unchanged
        );
        let mut w2 = w.clone();
        w2.digest = "sha256:m2".into();
        assert_eq!(
            m.put_manifest(&w2).await.unwrap(),
            PutManifestOutcome::TagImmutable {
                existing: "sha256:m1".into()
            }
        );
        let got = m
            .get_manifest_by_tag(r.repo_id, "v1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.digest, "sha256:m1");
        assert_eq!(got.body, b"{}");
        assert_eq!(m.list_tags(r.repo_id, None, 10).await.unwrap(), vec!["v1"]);
        m.record_pulls(&[(r.repo_id, "sha256:m1".into(), 99)])
            .await
            .unwrap();
        assert_eq!(
            m.get_manifest(r.repo_id, "sha256:m1")
                .await
                .unwrap()
                .unwrap()
                .last_pulled_at,
            Some(99)
        );
        m.delete_repository(r.repo_id, 100).await.unwrap();
        assert!(m
            .get_repository("123456789012", "team/app")
            .await
            .unwrap()
            .is_none());
    }
}

/// Two processes on one SQLite file (two `Meta`s, each with its own in-process
/// write lock): a write transaction that reads before it writes is not failed by
/// the other process's commit in between — the other writer waits for it instead,
/// and both commit.
#[tokio::test]
async fn a_write_transaction_that_reads_first_is_not_failed_by_another_process() {
    let dir = std::env::temp_dir().join(format!("berth-meta-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/meta.db?mode=rwc", dir.display());
    let a = Meta::connect(&url).await.unwrap();
    let b = Meta::connect(&url).await.unwrap();
    let mut g = a.begin_write().await.unwrap();
    let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM repositories")
        .fetch_one(&mut *g.tx)
        .await
        .unwrap();
    let other = tokio::spawn(async move { b.create_repository(&repo("other")).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !other.is_finished(),
        "the other process's write waits for the open write transaction"
    );
    sqlx::query(
        "INSERT INTO repositories (account_id, name, created_at, tag_mutability, mutability_exclusions, scan_on_push, encryption_type) \
         VALUES ('123456789012', 'first', 1, 'MUTABLE', '[]', 0, 'AES256')",
    )
    .execute(&mut *g.tx)
    .await
    .expect("the write after a read succeeds");
    g.commit().await.unwrap();
    other.await.unwrap().unwrap().unwrap();
    let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM repositories")
        .fetch_one(a.pool())
        .await
        .unwrap();
    assert_eq!(after, before + 2);
    let _ = std::fs::remove_dir_all(&dir);
}

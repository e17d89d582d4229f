//! SBOM referrers in the core (`crates/registry/src/sbom.rs`) on a real SQLite
//! store: the same inventory pushes once, a changed one replaces berth's earlier
//! SBOM of the image and leaves other referrers alone.

use std::sync::Arc;

use berth_oci::{media, Digest, Reference, RepositoryName};
use berth_registry::sbom::{is_berth_sbom, SbomPush, CYCLONEDX_JSON};
use berth_registry::{Clock, Registry, RegistryConfig, RepoSettings, RepositoryRow};
use berth_scan::{Inventory, Package, PackageKind};
use berth_store::{BlobStore, Meta};
use bytes::Bytes;

async fn registry() -> (Registry, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("berth-sbom-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let meta = Meta::connect(&format!("sqlite://{}/meta.db?mode=rwc", dir.display()))
        .await
        .unwrap();
    let blobs = BlobStore::open(&dir.join("blobs")).unwrap();
    let reg = Registry::new(
        meta,
        Arc::new(blobs),
        Clock::with_offset(0),
        RegistryConfig::default(),
        [9u8; 32],
    );
    (reg, dir)
}

async fn blob(reg: &Registry, repo: &RepositoryRow, bytes: &[u8]) -> Digest {
    let d = Digest::sha256_of(bytes);
    let up = reg.start_upload(repo).await.unwrap();
    let s = futures_util::stream::iter([Ok::<Bytes, String>(Bytes::copy_from_slice(bytes))]);
    reg.append_upload(repo, &up.id, Some(0), Some(bytes.len() as u64), s)
        .await
        .unwrap();
    reg.complete_upload(repo, &up.id, &d).await.unwrap();
    d
}

fn inventory(version: &str) -> Inventory {
    Inventory {
        os: None,
        packages: vec![Package {
            kind: PackageKind::Npm,
            ecosystem: Some("npm".into()),
            name: "lodash".into(),
            version: version.into(),
            source_name: None,
            source_version: None,
            arch: None,
            path: "app/package-lock.json".into(),
        }],
        warnings: Vec::new(),
    }
}

#[tokio::test]
async fn rescans_replace_only_berths_own_sbom() {
    let (reg, dir) = registry().await;
    let name = RepositoryName::parse("team/app").unwrap();
    let repo = reg
        .create_repository("123456789012", &name, &RepoSettings::default())
        .await
        .unwrap();
    let config_bytes: &[u8] =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config = blob(&reg, &repo, config_bytes).await;
    let layer = blob(&reg, &repo, b"not really a layer").await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config.to_string(), "size": config_bytes.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": 18}],
    }))
    .unwrap();
    let tag = Reference::parse("v1").unwrap();
    let put = reg
        .put_manifest(
            &repo,
            &tag,
            Some(media::OCI_MANIFEST),
            Bytes::from(manifest),
        )
        .await
        .unwrap();
    let image = reg.find_manifest(&repo, &tag).await.unwrap();
    let ours = |rows: &[berth_registry::ManifestRow]| -> Vec<String> {
        rows.iter()
            .filter(|r| is_berth_sbom(&r.body))
            .map(|r| r.digest.clone())
            .collect()
    };

    // First scan: pushed.
    let SbomPush::Pushed {
        digest: first,
        replaced: 0,
    } = reg
        .push_sbom_referrer(&repo, &image, &inventory("4.17.20"))
        .await
        .unwrap()
    else {
        panic!("not pushed")
    };
    let rows = reg.referrer_rows(&repo, put.digest.as_str()).await.unwrap();
    assert_eq!(ours(&rows), vec![first.clone()]);
    assert_eq!(rows[0].artifact_type.as_deref(), Some(CYCLONEDX_JSON));

    // Someone else's SBOM of the same image (e.g. from syft through oras).
    let empty = blob(&reg, &repo, b"{}").await;
    let theirs_bytes: &[u8] = br#"{"bomFormat":"CycloneDX"}"#;
    let theirs_layer = blob(&reg, &repo, theirs_bytes).await;
    let theirs = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": CYCLONEDX_JSON,
        "config": {"mediaType": media::OCI_EMPTY, "digest": empty.to_string(), "size": 2},
        "layers": [{"mediaType": CYCLONEDX_JSON, "digest": theirs_layer.to_string(), "size": theirs_bytes.len()}],
        "subject": {"mediaType": media::OCI_MANIFEST, "digest": image.digest, "size": image.body.len()},
    }))
    .unwrap();
    let theirs_digest = Digest::sha256_of(&theirs);
    reg.put_manifest(
        &repo,
        &Reference::Digest(theirs_digest.clone()),
        Some(media::OCI_MANIFEST),
        Bytes::from(theirs),
    )
    .await
    .unwrap();

    // Same packages: nothing pushed.
    assert_eq!(
        reg.push_sbom_referrer(&repo, &image, &inventory("4.17.20"))
            .await
            .unwrap(),
        SbomPush::Unchanged {
            digest: first.clone()
        }
    );
    // Different packages: the new SBOM replaces berth's old one, not theirs.
    let SbomPush::Pushed {
        digest: second,
        replaced: 1,
    } = reg
        .push_sbom_referrer(&repo, &image, &inventory("4.17.21"))
        .await
        .unwrap()
    else {
        panic!("not replaced")
    };
    assert_ne!(first, second);
    let rows = reg.referrer_rows(&repo, put.digest.as_str()).await.unwrap();
    assert_eq!(ours(&rows), vec![second.clone()]);
    let mut all: Vec<String> = rows.iter().map(|r| r.digest.clone()).collect();
    all.sort();
    let mut want = vec![second, theirs_digest.to_string()];
    want.sort();
    assert_eq!(all, want);
    let first: Digest = first.parse().unwrap();
    assert!(reg
        .find_manifest(&repo, &Reference::Digest(first))
        .await
        .is_err());

    reg.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

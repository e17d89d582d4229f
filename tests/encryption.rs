//! Encryption at rest: no plaintext anywhere in the data directory, tampering is
//! detected, KMS keys gate their repositories (disable/enable/rotate), and two
//! repositories with different keys still share one ciphertext.

use std::path::Path;

use berth_testsupport::layout::{image, sha256_digest, Blob};
use berth_testsupport::{all_backends, Berth, Image};
use serde_json::json;

const MARKER: &str = "berth-plaintext-marker-7f3c9e1d";

/// An uncompressed tar layer, so the marker would be visible in a plaintext store;
/// the manifest carries the marker in an annotation.
fn marked_image(tag_seed: &str) -> Image {
    let mut img = unannotated(tag_seed);
    let mut m: serde_json::Value =
        serde_json::from_slice(&img.manifest.bytes).expect("manifest json");
    m["annotations"] = json!({ "org.example.secret": format!("{MARKER}-manifest") });
    img.manifest = Blob::new(
        &img.manifest.media_type,
        serde_json::to_vec(&m).expect("json"),
    );
    img
}

fn unannotated(tag_seed: &str) -> Image {
    let mut tar = tar::Builder::new(Vec::new());
    let body = format!("{MARKER} {tag_seed}\n").repeat(2000);
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(body.len() as u64);
    h.set_mtime(1_700_000_000);
    tar.append_data(&mut h, "secret/marker.txt", body.as_bytes())
        .expect("tar");
    let raw = tar.into_inner().expect("tar");
    let diff_id = sha256_digest(&raw);
    let layer = Blob::new("application/vnd.oci.image.layer.v1.tar", raw);
    image(vec![(layer, diff_id)], "amd64", false)
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    hits
}

fn blob_files(berth: &Berth) -> usize {
    if berth.backend().blobs_in_s3() {
        return berth.s3_keys("blobs/").len();
    }
    count_files(&berth.data_dir().join("blobs"))
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

all_backends! {
    fn no_plaintext_at_rest_and_shared_ciphertext(backend) {
        let berth = Berth::start(backend);
        berth.ecr("CreateRepository", &json!({"repositoryName": "plain-aes"})).expect_status(200);
        let r = berth.ecr("CreateRepository", &json!({"repositoryName": "with-kms", "encryptionConfiguration": {"encryptionType": "KMS"}}));
        r.expect_status(200);
        let kms_arn = r.json()["repository"]["encryptionConfiguration"]["kmsKey"].as_str().unwrap_or("").to_string();
        assert!(kms_arn.starts_with("arn:aws:kms:us-east-1:123456789012:key/"), "{kms_arn}");
        let http = berth.http();
        let img = marked_image("a");
        img.push(&http, "plain-aes", "v1").expect_status(201);
        let before = blob_files(&berth);
        img.push(&http, "with-kms", "v1").expect_status(201);
        assert_eq!(blob_files(&berth), before, "the second repository shares the ciphertext");
        for repo in ["plain-aes", "with-kms"] {
            let r = http.get(&format!("/v2/{repo}/manifests/v1"));
            r.expect_status(200);
            assert_eq!(r.body, img.manifest.bytes);
            for b in img.blobs() {
                let r = http.get(&format!("/v2/{repo}/blobs/{}", b.digest));
                r.expect_status(200);
                assert_eq!(r.body, b.bytes);
            }
            // Ranges decrypt only what they need.
            let layer = &img.layers[0];
            let r = http.send("GET", &format!("/v2/{repo}/blobs/{}", layer.digest), &[("Range", "bytes=60000-60099")], Vec::new());
            r.expect_status(206);
            assert_eq!(r.body, &layer.bytes[60000..60100]);
        }
        // Nothing in the data directory (blobs, staging, the SQLite database and its
        // WAL) holds the plaintext: not the layer, not the manifest.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let hits = files_containing(&berth.data_dir(), MARKER.as_bytes());
        assert!(hits.is_empty(), "plaintext found in {hits:?}");
        if backend.blobs_in_s3() {
            // Nor anything in the bucket.
            let copy = berth_testsupport::TempDir::new("berth-s3-at-rest");
            berth.s3_download(copy.path());
            assert!(count_files(copy.path()) >= before, "the bucket copy is incomplete");
            let hits = files_containing(copy.path(), MARKER.as_bytes());
            assert!(hits.is_empty(), "plaintext found in the bucket: {hits:?}");
        }
        assert!(String::from_utf8_lossy(&img.manifest.bytes).contains(&format!("{MARKER}-manifest")));
    }
}

#[test]
fn tampering_is_detected() {
    let berth = Berth::start(berth_testsupport::Backend::Sqlite);
    let http = berth.http();
    let img = marked_image("t");
    img.push(&http, "tamper", "v1").expect_status(201);
    let layer = &img.layers[0];
    let hex = layer.digest.trim_start_matches("sha256:");
    let path = berth
        .data_dir()
        .join("blobs/sha256")
        .join(&hex[..2])
        .join(hex);
    let mut bytes = std::fs::read(&path).expect("blob file");
    // Flip a byte in the last segment (past the first 64 KiB).
    let pos = bytes.len() - 100;
    bytes[pos] ^= 0x01;
    std::fs::write(&path, &bytes).expect("tamper");
    match http.try_send(
        "GET",
        &format!("/v2/tamper/blobs/{}", layer.digest),
        &[],
        berth_testsupport::Body::Empty,
    ) {
        Err(_) => {}
        Ok(r) => {
            // The stream is cut at the bad segment: never the altered bytes in full.
            assert!(
                r.body.len() < layer.bytes.len(),
                "a tampered blob was served whole"
            );
            assert_eq!(
                r.body[..],
                layer.bytes[..r.body.len()],
                "altered bytes were served"
            );
        }
    }
    // A range before the damaged segment still reads correctly.
    let r = http.send(
        "GET",
        &format!("/v2/tamper/blobs/{}", layer.digest),
        &[("Range", "bytes=0-99")],
        Vec::new(),
    );
    r.expect_status(206);
    assert_eq!(r.body, &layer.bytes[..100]);
}

all_backends! {
    fn kms_keys_gate_their_repositories(backend) {
        let berth = Berth::start(backend);
        let arn = berth.admin(&["kms", "create", "--alias", "team", "--description", "team key"]).trim().to_string();
        assert!(arn.starts_with("arn:aws:kms:"), "{arn}");
        let r = berth.ecr("CreateRepository", &json!({"repositoryName": "team/app", "encryptionConfiguration": {"encryptionType": "KMS", "kmsKey": "alias/team"}}));
        r.expect_status(200);
        assert_eq!(r.json()["repository"]["encryptionConfiguration"]["kmsKey"], arn.as_str());
        let r = berth.ecr("CreateRepository", &json!({"repositoryName": "nokey", "encryptionConfiguration": {"encryptionType": "KMS", "kmsKey": "alias/missing"}}));
        assert_eq!(r.json()["__type"], "KmsException");
        let http = berth.http();
        let img = marked_image("k");
        img.push(&http, "team/app", "v1").expect_status(201);
        http.get("/v2/team/app/manifests/v1").expect_status(200);

        berth.admin(&["kms", "disable", "alias/team"]);
        let r = http.get("/v2/team/app/manifests/v1");
        r.expect_oci_error(403, "DENIED");
        assert!(r.text().contains("disabled"), "{}", r.text());
        let r = http.get(&format!("/v2/team/app/blobs/{}", img.layers[0].digest));
        r.expect_status(403);
        let r = http.send("POST", "/v2/team/app/blobs/uploads/", &[], Vec::new());
        r.expect_status(403);
        let r = berth.ecr("BatchGetImage", &json!({"repositoryName": "team/app", "imageIds": [{"imageTag": "v1"}]}));
        r.expect_status(400);
        assert_eq!(r.json()["__type"], "KmsException");

        berth.admin(&["kms", "enable", "alias/team"]);
        http.get("/v2/team/app/manifests/v1").expect_status(200);

        // Rotation re-wraps data keys and manifests; everything still reads.
        let out = berth.admin(&["kms", "rotate", "alias/team"]);
        assert!(out.contains("rotated to version 2"), "{out}");
        assert!(out.contains("re-wrapped"), "{out}");
        let r = http.get("/v2/team/app/manifests/v1");
        r.expect_status(200);
        assert_eq!(r.body, img.manifest.bytes);
        for b in img.blobs() {
            let r = http.get(&format!("/v2/team/app/blobs/{}", b.digest));
            r.expect_status(200);
            assert_eq!(r.body, b.bytes);
        }
        marked_image("after rotation").push(&http, "team/app", "v2").expect_status(201);
        let list = berth.admin(&["kms", "list"]);
        assert!(list.contains("version 2"), "{list}");

        // Scheduled deletion makes the key unusable at once.
        berth.admin(&["kms", "schedule-deletion", "alias/team", "--days", "7"]);
        http.get("/v2/team/app/manifests/v1").expect_status(403);
    }
}

all_backends! {
    fn concurrent_uploads_of_one_blob_share_a_readable_ciphertext(backend) {
        // Each upload seals its staged copy with its own data key; racing commits of
        // the same digest must leave one ciphertext that every link can decrypt.
        let berth = Berth::start(backend);
        let img = marked_image("race");
        let layer = img.layers[0].clone();
        std::thread::scope(|s| {
            for i in 0..8 {
                let berth = &berth;
                let layer = &layer;
                s.spawn(move || {
                    let http = berth.http();
                    berth_testsupport::layout::push_blob(&http, &format!("race/r{i}"), layer);
                });
            }
        });
        let http = berth.http();
        for i in 0..8 {
            let r = http.get(&format!("/v2/race/r{i}/blobs/{}", layer.digest));
            r.expect_status(200);
            assert_eq!(r.body, layer.bytes, "repository r{i} reads back other bytes");
        }
    }
}

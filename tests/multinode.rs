//! One registry, two nodes: two `berth serve` processes on one PostgreSQL database
//! and one S3 bucket (Garage on loopback, `eval "$(scripts/garage-start)"`), the
//! configuration of docs/architecture.md "Several nodes". An upload moves between
//! nodes from one request to the next; a node killed with SIGKILL in the middle of
//! a push loses nothing acknowledged and the client finishes on the other node; the
//! collector runs on one node while the other pushes; a change made on one node is
//! seen by the other at once (nothing a node caches outlives a change made
//! elsewhere); dead uploads' multipart uploads and tail objects are reclaimed.

use std::time::{Duration, Instant};

use base64::Engine;
use berth_testsupport::layout::{image, pseudo_random, push_blob, tar_gz_layer, OCI_LAYER_GZIP};
use berth_testsupport::{sha256_digest, Backend, Berth, Blob, Http, Image};
use serde_json::json;

const MIB: usize = 1024 * 1024;

/// A node on PostgreSQL + S3 and a second node on the same database, bucket prefix
/// and master key; None when PostgreSQL or S3 tests are skipped.
fn two_nodes(a_env: &[(&str, &str)], b_env: &[(&str, &str)]) -> Option<(Berth, Berth)> {
    if !Backend::postgres_s3_available() {
        return None;
    }
    let a = Berth::start_with(Backend::PostgresS3, a_env);
    let mut o = a.peer();
    for (k, v) in b_env {
        o = o.env(k, v);
    }
    let b = o.start();
    Some((a, b))
}

fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

#[track_caller]
fn patch(http: &Http, loc: &str, start: usize, body: &[u8]) -> String {
    let range = format!("{start}-{}", start + body.len() - 1);
    let r = http.send(
        "PATCH",
        loc,
        &[
            ("Content-Range", range.as_str()),
            ("Content-Type", "application/octet-stream"),
        ],
        body.to_vec(),
    );
    r.expect_status(202);
    assert_eq!(
        r.header("range"),
        Some(format!("0-{}", start + body.len() - 1).as_str())
    );
    r.location()
}

/// The whole blob and a range in its middle, byte for byte.
#[track_caller]
fn assert_blob(http: &Http, repo: &str, bytes: &[u8]) {
    let d = sha256_digest(bytes);
    let r = http.get(&format!("/v2/{repo}/blobs/{d}"));
    r.expect_status(200);
    assert!(r.body == bytes, "blob {d} content differs");
    let (a, b) = (
        bytes.len() / 3,
        bytes.len() / 3 + (bytes.len() / 3).min(70_000),
    );
    let r = http.send(
        "GET",
        &format!("/v2/{repo}/blobs/{d}"),
        &[("Range", &format!("bytes={a}-{}", b - 1))],
        "",
    );
    r.expect_status(206);
    assert!(r.body == bytes[a..b], "range {a}-{b} of {d} differs");
}

#[track_caller]
fn assert_image(http: &Http, repo: &str, img: &Image) {
    let r = http.get(&format!("/v2/{repo}/manifests/{}", img.digest()));
    r.expect_status(200);
    assert_eq!(r.body, img.manifest.bytes);
    for b in img.blobs() {
        let r = http.get(&format!("/v2/{repo}/blobs/{}", b.digest));
        assert_eq!(r.status, 200, "blob {} of {repo} was lost", b.digest);
        assert_eq!(sha256_digest(&r.body), b.digest);
    }
}

fn layer(seed: &str) -> (Blob, String) {
    tar_gz_layer(
        OCI_LAYER_GZIP,
        &[("data/file.txt", 0o644, seed.as_bytes().to_vec())],
    )
}

fn ecr_error(r: &berth_testsupport::Response) -> String {
    r.json()["__type"].as_str().unwrap_or("").to_string()
}

fn part(node: &Berth, repo: &str, id: &str, first: usize, bytes: &[u8]) {
    let r = node.ecr(
        "UploadLayerPart",
        &json!({
            "repositoryName": repo,
            "uploadId": id,
            "partFirstByte": first,
            "partLastByte": first + bytes.len() - 1,
            "layerPartBlob": base64::engine::general_purpose::STANDARD.encode(bytes),
        }),
    );
    r.expect_status(200);
    assert_eq!(
        r.json()["lastByteReceived"].as_i64(),
        Some((first + bytes.len() - 1) as i64)
    );
}

#[test]
fn one_upload_alternates_between_nodes() {
    let Some((a, b)) = two_nodes(&[], &[]) else {
        return;
    };
    let (ha, hb) = (a.http(), b.http());

    // OCI: chunks of every size (under a segment, across the 8 MiB part size, a
    // byte) on alternating nodes; the status and the final PUT on the node that did
    // not write the last chunk.
    let data = pseudo_random(81, 21 * MIB + 4321);
    let d = sha256_digest(&data);
    let r = ha.send("POST", "/v2/multi/alt/blobs/uploads/", &[], "");
    r.expect_status(202);
    let mut loc = r.location();
    let cuts = [MIB + 3, 8 * MIB, 8 * MIB + 100, 8 * MIB + 101, 17 * MIB];
    let mut start = 0;
    for (i, &end) in cuts.iter().chain([data.len()].iter()).enumerate() {
        let node = if i % 2 == 0 { &ha } else { &hb };
        loc = patch(node, &loc, start, &data[start..end]);
        let other = if i % 2 == 0 { &hb } else { &ha };
        let r = other.get(&loc);
        r.expect_status(204);
        assert_eq!(r.header("range"), Some(format!("0-{}", end - 1).as_str()));
        start = end;
    }
    ha.send("PUT", &with_digest(&loc, &d), &[], "")
        .expect_status(201);
    assert_blob(&hb, "multi/alt", &data);
    assert_blob(&ha, "multi/alt", &data);
    // Nothing of the upload is left staged in the bucket.
    assert!(
        b.s3_keys("uploads/").is_empty(),
        "{:?}",
        b.s3_keys("uploads/")
    );
    assert!(
        b.s3_open_multipart_uploads().is_empty(),
        "{:?}",
        b.s3_open_multipart_uploads()
    );

    // ECR: the layer-part bookkeeping follows the upload from node to node. A small
    // part on B followed by another on A is refused at completion on B...
    a.ecr(
        "CreateRepository",
        &json!({ "repositoryName": "multi/ecr" }),
    )
    .expect_status(200);
    let small = pseudo_random(82, 3000);
    let r = a.ecr(
        "InitiateLayerUpload",
        &json!({ "repositoryName": "multi/ecr" }),
    );
    r.expect_status(200);
    let id = r.json()["uploadId"].as_str().unwrap().to_string();
    part(&b, "multi/ecr", &id, 0, &small[..1000]);
    part(&a, "multi/ecr", &id, 1000, &small[1000..]);
    let r = b.ecr(
        "CompleteLayerUpload",
        &json!({ "repositoryName": "multi/ecr", "uploadId": id, "layerDigests": [sha256_digest(&small)] }),
    );
    assert_eq!(r.status, 400, "{}", r.describe());
    assert_eq!(ecr_error(&r), "LayerPartTooSmallException");
    // ...and a 5 MiB part on A then a small last part on B completes on A.
    let big = pseudo_random(83, 5 * MIB + 777);
    let r = b.ecr(
        "InitiateLayerUpload",
        &json!({ "repositoryName": "multi/ecr" }),
    );
    let id = r.json()["uploadId"].as_str().unwrap().to_string();
    part(&a, "multi/ecr", &id, 0, &big[..5 * MIB]);
    part(&b, "multi/ecr", &id, 5 * MIB, &big[5 * MIB..]);
    let r = a.ecr(
        "CompleteLayerUpload",
        &json!({ "repositoryName": "multi/ecr", "uploadId": id, "layerDigests": [sha256_digest(&big)] }),
    );
    r.expect_status(200);
    let r = b.ecr(
        "BatchCheckLayerAvailability",
        &json!({ "repositoryName": "multi/ecr", "layerDigests": [sha256_digest(&big)] }),
    );
    r.expect_status(200);
    assert_eq!(
        r.json()["layers"][0]["layerAvailability"].as_str(),
        Some("AVAILABLE"),
        "{}",
        r.describe()
    );
    assert_blob(&hb, "multi/ecr", &big);
}

/// `berth_object_bytes_read_total` of a node: bytes it received in S3 `GET` bodies.
fn object_bytes_read(http: &Http) -> u64 {
    http.get("/metrics")
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("berth_object_bytes_read_total "))
        .and_then(|n| n.trim().parse().ok())
        .expect("berth_object_bytes_read_total on /metrics")
}

/// The running hash is stored with the upload after each append: a commit on
/// another node than the one that appended last, or after a restart, verifies
/// the digest from it and does not read the upload back from S3 (it reads only
/// the staged pieces not yet in a part, at most one part's worth).
#[test]
fn a_commit_elsewhere_or_after_a_restart_does_not_read_the_upload_back() {
    let Some((mut a, b)) = two_nodes(&[], &[]) else {
        return;
    };
    let (ha, hb) = (a.http(), b.http());
    let data = pseudo_random(84, 21 * MIB + 4321);
    let d = sha256_digest(&data);
    let r = ha.send("POST", "/v2/multi/hash/blobs/uploads/", &[], "");
    r.expect_status(202);
    let mut loc = r.location();
    let cuts = [MIB + 3, 8 * MIB + 100, 17 * MIB, data.len()];
    let mut start = 0;
    for (i, &end) in cuts.iter().enumerate() {
        let node = if i % 2 == 0 { &ha } else { &hb };
        loc = patch(node, &loc, start, &data[start..end]);
        start = end;
    }
    // B appended last: A completes it.
    let before = object_bytes_read(&ha);
    ha.send("PUT", &with_digest(&loc, &d), &[], "")
        .expect_status(201);
    let read = object_bytes_read(&ha) - before;
    eprintln!(
        "commit on the other node read {read} bytes of a {}-byte upload",
        data.len()
    );
    assert!(
        read < 9 * MIB as u64,
        "the commit read {read} bytes: the upload was read back"
    );
    // The counter counts: a pull of the blob on A reads all of it.
    let before = object_bytes_read(&ha);
    assert_blob(&ha, "multi/hash", &data);
    assert!(object_bytes_read(&ha) - before >= data.len() as u64);

    // After a restart the node has no memory of the upload, nor copies of its
    // pieces: the commit reads the pieces only.
    let data = pseudo_random(85, 19 * MIB + 17);
    let d = sha256_digest(&data);
    let r = ha.send("POST", "/v2/multi/hash/blobs/uploads/", &[], "");
    r.expect_status(202);
    let loc = patch(&ha, &r.location(), 0, &data[..10 * MIB]);
    a.kill9();
    a.restart();
    let ha = a.http();
    let loc = patch(&ha, &loc, 10 * MIB, &data[10 * MIB..]);
    a.kill9();
    a.restart();
    let ha = a.http();
    let before = object_bytes_read(&ha);
    ha.send("PUT", &with_digest(&loc, &d), &[], "")
        .expect_status(201);
    let read = object_bytes_read(&ha) - before;
    eprintln!(
        "commit after a restart read {read} bytes of a {}-byte upload",
        data.len()
    );
    assert!(
        read < 9 * MIB as u64,
        "the commit read {read} bytes: the upload was read back"
    );
    assert_blob(&hb, "multi/hash", &data);
    assert_blob(&ha, "multi/hash", &data);
}

#[test]
fn a_node_killed_mid_push_loses_nothing_and_the_client_finishes_on_the_other() {
    let Some((mut a, b)) = two_nodes(&[], &[]) else {
        return;
    };
    let (ha, hb) = (a.http(), b.http());

    // Acknowledged on A before the crash: an image and the first chunk of an upload.
    let img = image(vec![layer("acked")], "amd64", false);
    img.push(&ha, "crash/app", "v1");
    let pulled = Blob::new("application/octet-stream", pseudo_random(93, 24 * MIB));
    push_blob(&ha, "crash/app", &pulled);
    let data = pseudo_random(91, 20 * MIB + 11);
    let d = sha256_digest(&data);
    let r = ha.send("POST", "/v2/crash/app/blobs/uploads/", &[], "");
    r.expect_status(202);
    let acked = 3 * MIB + 5;
    let loc = patch(&ha, &r.location(), 0, &data[..acked]);

    // A dies in the middle of the next chunk (parts of it already sent to S3).
    let range = format!("{acked}-{}", data.len() - 1);
    let mut inflight = ha
        .begin(
            "PATCH",
            &loc,
            &[
                ("Content-Range", range.as_str()),
                ("Content-Type", "application/octet-stream"),
            ],
            Some((data.len() - acked) as u64),
        )
        .expect("connect");
    inflight
        .write(&data[acked..acked + 10 * MIB])
        .expect("first half of the chunk");
    // ...and in the middle of pulls: whatever a pull on A got before the crash is
    // either all of the blob or an error, never other bytes.
    let pulls: Vec<_> = (0..2)
        .map(|_| {
            let (ha, path) = (ha.clone(), format!("/v2/crash/app/blobs/{}", pulled.digest));
            std::thread::spawn(move || {
                ha.try_send("GET", &path, &[], berth_testsupport::Body::Empty)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    a.kill9();
    drop(inflight);
    for p in pulls {
        if let Ok(r) = p.join().expect("pull thread") {
            if r.status == 200 {
                assert!(
                    r.body == pulled.bytes,
                    "a pull cut by the crash returned other bytes"
                );
            }
        }
    }
    // The client retries its pull on B.
    let r = hb.get(&format!("/v2/crash/app/blobs/{}", pulled.digest));
    r.expect_status(200);
    assert!(r.body == pulled.bytes);

    // The client turns to B: the acknowledged image is there, the upload stands at
    // the acknowledged size.
    assert_image(&hb, "crash/app", &img);
    let r = hb.get(&loc);
    r.expect_status(204);
    assert_eq!(r.header("range"), Some(format!("0-{}", acked - 1).as_str()));
    // The dead node's write lease holds the upload until it expires (30 s); until
    // then B answers the error a client retries.
    let t0 = Instant::now();
    let loc = loop {
        let r = hb.send(
            "PATCH",
            &loc,
            &[
                ("Content-Range", range.as_str()),
                ("Content-Type", "application/octet-stream"),
            ],
            data[acked..].to_vec(),
        );
        if r.status == 202 {
            break r.location();
        }
        r.expect_oci_error(400, "BLOB_UPLOAD_INVALID");
        assert!(
            t0.elapsed() < Duration::from_secs(45),
            "the dead node's lease never expired"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    hb.send("PUT", &with_digest(&loc, &d), &[], "")
        .expect_status(201);
    assert_blob(&hb, "crash/app", &data);
    // A client that starts over on B instead (a new upload) succeeds too.
    let again = Blob::new("application/octet-stream", pseudo_random(92, 2 * MIB));
    push_blob(&hb, "crash/app", &again);

    // A comes back and serves everything, nothing corrupt.
    a.restart();
    let ha = a.http();
    assert_image(&ha, "crash/app", &img);
    assert_blob(&ha, "crash/app", &data);
    assert_blob(&ha, "crash/app", &again.bytes);
}

#[test]
fn the_collector_on_one_node_is_safe_against_pushes_on_the_other() {
    // The collector runs on A only (every second, grace 1 s); B pushes and churns.
    let Some((a, b)) = two_nodes(
        &[
            ("BERTH_GC_INTERVAL_SECS", "1"),
            ("BERTH_GC_GRACE_SECS", "1"),
        ],
        &[("BERTH_GC_INTERVAL_SECS", "0")],
    ) else {
        return;
    };
    let shared: Vec<(Blob, String)> = (0..3).map(|i| layer(&format!("shared {i}"))).collect();
    let kept = std::sync::Mutex::new(Vec::new());
    let uploaded = std::sync::atomic::AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_secs(12);
    std::thread::scope(|s| {
        for w in 0..4 {
            let (b, shared, kept, uploaded) = (&b, &shared, &kept, &uploaded);
            s.spawn(move || {
                let http = b.http();
                let repo = format!("race/r{}", w % 2);
                let mut prev: Option<Image> = None;
                let mut i = 0;
                while Instant::now() < deadline {
                    let img = image(
                        vec![shared[i % 3].clone(), layer(&format!("w{w} i{i}"))],
                        "amd64",
                        false,
                    );
                    let mut ok = true;
                    for bl in img.blobs() {
                        if http.head(&format!("/v2/{repo}/blobs/{}", bl.digest)).status == 200 {
                            continue;
                        }
                        let r = http.send(
                            "POST",
                            &format!("/v2/{repo}/blobs/uploads/?digest={}", bl.digest),
                            &[("Content-Type", "application/octet-stream")],
                            bl.bytes.clone(),
                        );
                        if r.status == 201 {
                            uploaded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        } else {
                            ok = false;
                        }
                    }
                    let r = http.send(
                        "PUT",
                        &format!("/v2/{repo}/manifests/w{w}-{i}"),
                        &[("Content-Type", img.manifest.media_type.as_str())],
                        img.manifest.bytes.clone(),
                    );
                    if ok && r.status == 201 {
                        if let Some(p) = prev.take() {
                            if i % 2 == 0 {
                                http.delete(&format!("/v2/{repo}/manifests/{}", p.digest()))
                                    .expect_status(202);
                            } else {
                                kept.lock().unwrap().push((repo.clone(), p));
                            }
                        }
                        prev = Some(img);
                    }
                    i += 1;
                }
                if let Some(p) = prev {
                    kept.lock().unwrap().push((repo, p));
                }
            });
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    let kept = kept.into_inner().unwrap();
    assert!(kept.len() > 10, "only {} images were pushed", kept.len());
    for (repo, img) in &kept {
        assert_image(&a.http(), repo, img);
        assert_image(&b.http(), repo, img);
    }
    let text = a.http().get("/metrics").text();
    let metric = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(metric("berth_gc_runs_total ") >= 5, "{text}");
    let reclaimed = metric("berth_gc_reclaimed_blobs_total ");
    assert!(reclaimed > 0, "the collector reclaimed nothing:\n{text}");
    // The reclaimed blobs' objects are gone from the bucket: each blob upload made
    // at most one object, each reclaimed blob had one.
    let uploaded = uploaded.into_inner();
    let objects = a.s3_keys("blobs/").len();
    assert!(
        objects + reclaimed as usize <= uploaded,
        "{objects} blob objects in the bucket after {uploaded} blob uploads and {reclaimed} reclaimed blobs"
    );
}

#[test]
fn a_change_on_one_node_is_seen_on_the_other_at_once() {
    let Some((a, b)) = two_nodes(&[], &[]) else {
        return;
    };
    let (ha, hb) = (a.http(), b.http());
    let v1 = image(vec![layer("tag v1")], "amd64", false);
    let v2 = image(vec![layer("tag v2")], "amd64", false);
    v1.push(&ha, "moving/app", "live");
    // B reads the tag (and anything it might keep), then A moves it.
    for _ in 0..3 {
        let r = hb.get("/v2/moving/app/manifests/live");
        r.expect_status(200);
        assert_eq!(r.header("docker-content-digest"), Some(v1.digest()));
    }
    v2.push(&ha, "moving/app", "live");
    let r = hb.get("/v2/moving/app/manifests/live");
    r.expect_status(200);
    assert_eq!(r.header("docker-content-digest"), Some(v2.digest()));
    let r = hb.head("/v2/moving/app/manifests/live");
    assert_eq!(r.header("docker-content-digest"), Some(v2.digest()));

    // Tag immutability set through A is enforced by B on its next push.
    a.ecr(
        "PutImageTagMutability",
        &json!({ "repositoryName": "moving/app", "imageTagMutability": "IMMUTABLE" }),
    )
    .expect_status(200);
    let r = hb.send(
        "PUT",
        "/v2/moving/app/manifests/live",
        &[("Content-Type", v1.manifest.media_type.as_str())],
        v1.manifest.bytes.clone(),
    );
    assert!(
        r.status >= 400,
        "B moved an immutable tag: {}",
        r.describe()
    );

    // A repository policy set through A that denies pulls applies on B at once.
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{ "Sid": "nopull", "Effect": "Deny", "Principal": "*", "Action": "ecr:BatchGetImage" }]
    });
    a.ecr(
        "SetRepositoryPolicy",
        &json!({ "repositoryName": "moving/app", "policyText": policy.to_string() }),
    )
    .expect_status(200);
    hb.get("/v2/moving/app/manifests/live")
        .expect_oci_error(403, "DENIED");
    a.ecr(
        "DeleteRepositoryPolicy",
        &json!({ "repositoryName": "moving/app" }),
    )
    .expect_status(200);
    hb.get("/v2/moving/app/manifests/live").expect_status(200);

    // A KMS key disabled through A (its admin command) gates B's next request;
    // enabled and rotated through A, B reads with the new key version at once.
    let arn = a
        .admin(&["kms", "create", "--alias", "multi"])
        .trim()
        .to_string();
    assert!(arn.starts_with("arn:aws:kms:"), "{arn}");
    a.ecr(
        "CreateRepository",
        &json!({"repositoryName": "moving/kms", "encryptionConfiguration": {"encryptionType": "KMS", "kmsKey": "alias/multi"}}),
    )
    .expect_status(200);
    let k = image(vec![layer("kms across nodes")], "amd64", false);
    k.push(&hb, "moving/kms", "v1");
    assert_image(&hb, "moving/kms", &k);
    a.admin(&["kms", "disable", "alias/multi"]);
    hb.get("/v2/moving/kms/manifests/v1")
        .expect_oci_error(403, "DENIED");
    a.admin(&["kms", "enable", "alias/multi"]);
    let out = a.admin(&["kms", "rotate", "alias/multi"]);
    assert!(out.contains("rotated to version 2"), "{out}");
    assert_image(&hb, "moving/kms", &k);

    // A repository deleted through A is gone on B.
    a.ecr(
        "DeleteRepository",
        &json!({ "repositoryName": "moving/app", "force": true }),
    )
    .expect_status(200);
    hb.get("/v2/moving/app/manifests/live")
        .expect_oci_error(404, "NAME_UNKNOWN");
}

#[test]
fn a_dead_nodes_uploads_are_swept_from_the_bucket() {
    // Uploads expire after 8 s of silence (time for the checks below); B sweeps
    // what A left when it died.
    let Some((mut a, b)) = two_nodes(
        &[("BERTH_UPLOAD_TTL_SECS", "3600")],
        &[("BERTH_UPLOAD_TTL_SECS", "8")],
    ) else {
        return;
    };
    let ha = a.http();
    let r = ha.send("POST", "/v2/sweep/app/blobs/uploads/", &[], "");
    r.expect_status(202);
    // Over one part (8 MiB) staged: a multipart upload and a tail object.
    let loc = patch(&ha, &r.location(), 0, &pseudo_random(95, 9 * MIB));
    assert!(!b.s3_open_multipart_uploads().is_empty());
    assert!(!b.s3_keys("uploads/").is_empty(), "{:?}", b.s3_keys(""));
    a.kill9();

    let hb = b.http();
    let t0 = Instant::now();
    loop {
        let r = hb.get(&loc);
        if r.status == 404 {
            r.expect_oci_error(404, "BLOB_UPLOAD_UNKNOWN");
            break;
        }
        r.expect_status(204);
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the upload never expired"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        b.s3_open_multipart_uploads().is_empty(),
        "multipart uploads left open: {:?}",
        b.s3_open_multipart_uploads()
    );
    assert!(
        b.s3_keys("uploads/").is_empty(),
        "{:?}",
        b.s3_keys("uploads/")
    );
}

#[test]
fn the_full_sweep_lists_the_bucket_for_leftovers() {
    let Some((a, b)) = two_nodes(&[], &[]) else {
        return;
    };
    let img = image(vec![layer("kept in s3")], "amd64", false);
    img.push(&a.http(), "keep/s3", "v1");
    // An object a crash left between the upload and its commit, under blobs/.
    a.s3_put("blobs/objects/never-committed", b"ghost bytes");
    let before = b.s3_keys("blobs/");
    assert!(before.iter().any(|k| k == "blobs/objects/never-committed"));
    let dry = b.admin(&["gc", "--full", "--dry-run", "--grace-secs", "0"]);
    assert!(dry.contains("would remove 1 orphan blob file(s)"), "{dry}");
    assert_eq!(b.s3_keys("blobs/"), before);
    let out = b.admin(&["gc", "--full", "--grace-secs", "0"]);
    assert!(out.contains("removed 1 orphan blob file(s)"), "{out}");
    let after = b.s3_keys("blobs/");
    assert_eq!(after.len(), before.len() - 1, "{after:?}");
    assert!(!after.iter().any(|k| k == "blobs/objects/never-committed"));
    assert_image(&a.http(), "keep/s3", &img);
}

/// Every file under `dir`, sorted.
fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// A gzip layer holding every file under `root`, below `prefix`.
fn dir_layer(root: &std::path::Path, prefix: &str) -> (Blob, String) {
    let mut files = Vec::new();
    walk(root, &mut files);
    let owned: Vec<(String, u32, Vec<u8>)> = files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(root).unwrap_or(f);
            (
                format!("{prefix}{}", rel.display()),
                0o644,
                std::fs::read(f).unwrap_or_default(),
            )
        })
        .collect();
    let list: Vec<(&str, u32, Vec<u8>)> = owned
        .iter()
        .map(|(p, m, d)| (p.as_str(), *m, d.clone()))
        .collect();
    tar_gz_layer(OCI_LAYER_GZIP, &list)
}

#[test]
fn advisories_imported_elsewhere_reach_a_running_nodes_scanner() {
    // B has loaded its (empty) advisory index; A goes away; the advisories are
    // imported by another process on the shared database; B's next scan uses
    // them (the index's version is checked before every scan).
    let Some((mut a, b)) = two_nodes(&[], &[]) else {
        return;
    };
    std::thread::sleep(Duration::from_secs(4));
    a.stop_gracefully();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vuln");
    let out = b.command(
        &[],
        &[
            "vulndb",
            "import",
            &fixtures.join("advisories").display().to_string(),
        ],
    );
    assert!(out.contains("imported 62 advisories"), "{out}");
    b.ecr(
        "CreateRepository",
        &json!({"repositoryName": "scan/multi", "imageScanningConfiguration": {"scanOnPush": true}}),
    )
    .expect_status(200);
    let img = image(
        vec![
            dir_layer(&fixtures.join("debian-bookworm"), ""),
            dir_layer(&fixtures.join("python-site-packages"), ""),
            dir_layer(&fixtures.join("npm-app"), "app/"),
        ],
        "amd64",
        false,
    );
    img.push(&b.http(), "scan/multi", "v1");
    let deadline = Instant::now() + Duration::from_secs(60);
    let v = loop {
        let r = b.ecr(
            "DescribeImageScanFindings",
            &json!({"repositoryName": "scan/multi", "imageId": {"imageTag": "v1"}}),
        );
        r.expect_status(200);
        let v = r.json();
        if v["imageScanStatus"]["status"] != "IN_PROGRESS" {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "scan still IN_PROGRESS after 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(v["imageScanStatus"]["status"], "COMPLETE", "{v}");
    let findings = v["imageScanFindings"]["findings"]
        .as_array()
        .map_or(0, Vec::len);
    // The 26 findings of fixtures/vuln/EXPECTED.md: none with a stale index.
    assert_eq!(findings, 26, "{v}");
}

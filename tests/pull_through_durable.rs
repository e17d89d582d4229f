//! The pull-through cache beyond one process: an image served before it was
//! stored is completed by a durable job (any node, after a crash too); concurrent
//! first pulls on one node fetch the upstream manifest once; and two nodes on one
//! database and one blob store serve each other's cached images.

use std::time::{Duration, Instant};

use berth_testsupport::upstream::Upstream;
use berth_testsupport::{both_backends, sha256_digest, Backend, Berth, Layout, TempDir};
use serde_json::{json, Value};

#[track_caller]
fn ok(r: berth_testsupport::Response) -> Value {
    r.expect_status(200);
    r.json()
}

/// Waits until `name:tag` is stored in the cache (DescribeImages, which pulls
/// nothing).
#[track_caller]
fn wait_cached(berth: &Berth, name: &str, tag: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let r = berth.ecr(
            "DescribeImages",
            &json!({"repositoryName": name, "imageIds": [{"imageTag": tag}]}),
        );
        if r.status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}:{tag} never cached: {}\n{}",
            r.describe(),
            berth.stderr_tail(40)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Reads the amd64 platform of the index `name:v1` as a client would (the index,
/// the platform manifest, its config and layers), checking every byte.
#[track_caller]
fn pull_amd64(berth: &Berth, layout: &Layout, name: &str) {
    let http = berth.http();
    let r = http.get(&format!("/v2/{name}/manifests/v1"));
    r.expect_status(200);
    assert_eq!(sha256_digest(&r.body), layout.index.digest.as_str());
    let img = &layout.index_images[0];
    let r = http.get(&format!("/v2/{name}/manifests/{}", img.digest()));
    r.expect_status(200);
    assert_eq!(r.body, img.manifest.bytes);
    for b in img.blobs() {
        let r = http.get(&format!("/v2/{name}/blobs/{}", b.digest));
        r.expect_status(200);
        assert_eq!(r.body, b.bytes, "blob {}", b.digest);
    }
}

/// `skopeo copy --all` of `name:v1` from `berth`, checking every manifest and blob
/// of the index byte for byte.
#[track_caller]
fn pull_all(berth: &Berth, layout: &Layout, name: &str, dir: &std::path::Path) {
    let sk = berth.skopeo();
    sk.copy(
        &berth.docker_ref(&format!("{name}:v1")),
        &format!("oci:{}:v1", dir.display()),
        &["--all"],
    );
    assert_eq!(
        berth_testsupport::layout::layout_tag_digest(dir, "v1").as_deref(),
        Some(layout.index.digest.as_str())
    );
    for img in &layout.index_images {
        assert_eq!(
            berth_testsupport::layout::layout_blob(dir, img.digest()),
            img.manifest.bytes
        );
        for b in img.blobs() {
            assert_eq!(
                berth_testsupport::layout::layout_blob(dir, &b.digest),
                b.bytes,
                "blob {}",
                b.digest
            );
        }
    }
}

both_backends! {
    fn pull_through_completion_survives_a_crash(backend) {
        let tmp = TempDir::new("ptcjob");
        let layout = Layout::build(&tmp.join("layout"));
        let mut up = Upstream::start(None);
        up.push(&layout.oci_ref("multi"), "library/multi:v1");
        let mut berth = Berth::start(backend);
        ok(berth.ecr("CreatePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "anon", "upstreamRegistryUrl": up.url()})));

        // A first pull of one platform of a multi-arch image, and the node dies at
        // once: the other platform and the manifests are not stored yet.
        pull_amd64(&berth, &layout, "anon/library/multi");
        berth.kill9();
        // What is left to do is a job in the database, not work of the dead process.
        let jobs = berth.admin(&["jobs", "list"]);
        assert!(jobs.contains("pull-through-complete"), "no completion job queued:\n{jobs}");

        // Restarted, the node completes the image without another client pull.
        berth.restart();
        wait_cached(&berth, "anon/library/multi", "v1", Duration::from_secs(90));
        let jobs = berth.admin(&["jobs", "list"]);
        assert!(!jobs.contains("pull-through-complete"), "the job is done:\n{jobs}");
        // The other platform's own blobs were fetched once, by the job. (A blob the
        // client read may be fetched again: the crash can come before the node
        // finished storing what it streamed.)
        let (amd64, arm64) = (&layout.index_images[0], &layout.index_images[1]);
        for b in arm64.blobs().filter(|b| amd64.blobs().all(|a| a.digest != b.digest)) {
            assert_eq!(up.blob_gets("library/multi", &b.digest), 1, "blob {} fetched once", b.digest);
        }
        let v = ok(berth.ecr("DescribeImages", &json!({"repositoryName": "anon/library/multi", "imageIds": [{"imageDigest": arm64.digest()}]})));
        assert_eq!(v["imageDetails"][0]["imageDigest"], arm64.digest());

        // With the upstream gone, the whole image pulls from berth.
        up.stop();
        pull_all(&berth, &layout, "anon/library/multi", &tmp.join("pulled"));
    }
}

both_backends! {
    fn pull_through_concurrent_first_pulls_fetch_the_manifest_once(backend) {
        let tmp = TempDir::new("ptcflight");
        let layout = Layout::build(&tmp.join("layout"));
        let up = Upstream::start(None);
        up.push(&layout.oci_ref("single"), "library/app:v1");
        up.push(&layout.oci_ref("multi"), "library/multi:v1");
        let berth = Berth::start(backend);
        ok(berth.ecr("CreatePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "anon", "upstreamRegistryUrl": up.url()})));

        // Sixteen clients pull the same uncached image at once, manifest and blobs.
        let pulls = 16;
        let start = std::sync::Barrier::new(pulls);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..pulls)
                .map(|_| {
                    s.spawn(|| {
                        let http = berth.http();
                        start.wait();
                        let r = http.get("/v2/anon/library/app/manifests/v1");
                        r.expect_status(200);
                        assert_eq!(sha256_digest(&r.body), layout.image.digest());
                        for b in layout.image.blobs() {
                            let r = http.get(&format!("/v2/anon/library/app/blobs/{}", b.digest));
                            r.expect_status(200);
                            assert_eq!(r.body, b.bytes, "blob {}", b.digest);
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("a pull");
            }
        });
        assert_eq!(up.requests("GET", "/v2/library/app/manifests/v1"), 1, "the upstream manifest fetched once");
        for b in layout.image.blobs() {
            assert_eq!(up.blob_gets("library/app", &b.digest), 1, "blob {} fetched once", b.digest);
        }
        wait_cached(&berth, "anon/library/app", "v1", Duration::from_secs(60));
        assert_eq!(up.requests("GET", "/v2/library/app/manifests/v1"), 1);

        // The same with an index, through skopeo (four at once): the index and each
        // platform manifest once.
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let sk = berth.skopeo();
                    let src = berth.docker_ref("anon/library/multi:v1");
                    let dst = format!("oci:{}:v1", tmp.join(format!("m{i}")).display());
                    s.spawn(move || sk.try_copy(&src, &dst, &["--all"]))
                })
                .collect();
            for h in handles {
                let o = h.join().expect("a pull");
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            }
        });
        assert_eq!(up.requests("GET", "/v2/library/multi/manifests/v1"), 1, "the index fetched once");
        for img in &layout.index_images {
            assert_eq!(up.requests("GET", &format!("/v2/library/multi/manifests/{}", img.digest())), 1, "manifest {} fetched once", img.digest());
        }
    }
}

/// Two nodes on one PostgreSQL database and one S3 bucket: an image pulled through
/// node A is served whole by node B with the upstream stopped.
#[test]
fn pull_through_cached_image_is_served_by_another_node() {
    if !Backend::postgres_s3_available() {
        return;
    }
    let tmp = TempDir::new("ptcnodes");
    let layout = Layout::build(&tmp.join("layout"));
    let mut up = Upstream::start(None);
    up.push(&layout.oci_ref("multi"), "library/multi:v1");
    let a = Berth::start(Backend::PostgresS3);
    let b = a.peer().start();
    ok(a.ecr(
        "CreatePullThroughCacheRule",
        &json!({"ecrRepositoryPrefix": "anon", "upstreamRegistryUrl": up.url()}),
    ));
    // A first pull of one platform through A; the rest is completed by a job
    // (on either node).
    pull_amd64(&a, &layout, "anon/library/multi");
    wait_cached(&b, "anon/library/multi", "v1", Duration::from_secs(90));
    up.stop();
    // B serves every manifest and blob from the shared store.
    pull_all(&b, &layout, "anon/library/multi", &tmp.join("from-b"));
    for img in &layout.index_images {
        for blob in img.blobs() {
            assert_eq!(
                up.blob_gets("library/multi", &blob.digest),
                1,
                "blob {} fetched once",
                blob.digest
            );
        }
    }
    // And a node with a cold data directory serves it too.
    let c = a.peer().start();
    pull_all(&c, &layout, "anon/library/multi", &tmp.join("from-c"));
}

both_backends! {
    fn pull_through_store_that_falls_behind_is_completed_by_the_job(backend) {
        // No memory for a store behind its client: every blob a client reads is
        // streamed to it in full while its store gives up at the first chunk; the
        // image's completion job then fetches those blobs again and stores the
        // image. The client never waits for the store.
        let tmp = TempDir::new("ptcbehind");
        let layout = Layout::build(&tmp.join("layout"));
        let mut up = Upstream::start(None);
        up.push(&layout.oci_ref("multi"), "library/multi:v1");
        let berth = Berth::start_with(backend, &[("BERTH_PULL_THROUGH_STORE_BUFFER_MIB", "0")]);
        ok(berth.ecr("CreatePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "anon", "upstreamRegistryUrl": up.url()})));

        pull_amd64(&berth, &layout, "anon/library/multi");
        wait_cached(&berth, "anon/library/multi", "v1", Duration::from_secs(90));
        let (amd64, arm64) = (&layout.index_images[0], &layout.index_images[1]);
        for b in amd64.blobs() {
            assert_eq!(up.blob_gets("library/multi", &b.digest), 2, "blob {}: streamed to the client, then fetched by the job", b.digest);
        }
        for b in arm64.blobs().filter(|b| amd64.blobs().all(|a| a.digest != b.digest)) {
            assert_eq!(up.blob_gets("library/multi", &b.digest), 1, "blob {} fetched once, by the job", b.digest);
        }

        // Stored whole: with the upstream gone, the image pulls from berth.
        up.stop();
        pull_all(&berth, &layout, "anon/library/multi", &tmp.join("pulled"));
    }
}

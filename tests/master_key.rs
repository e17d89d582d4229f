//! Master-key rotation (`berth admin master-key rotate`,
//! `crates/registry/src/rotation.rs`): every stored secret and data-key wrap is
//! re-sealed under a new key while the server keeps serving a pulling client; the
//! server restarted with only the new key reads everything; the old key no longer
//! works.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use base64::Engine as _;
use berth_testsupport::ecr::{self, Credentials};
use berth_testsupport::layout::{image, pseudo_random, sha256_digest, Blob};
use berth_testsupport::{all_backends, both_backends, Berth, Http, Image, Response};
use serde_json::{json, Value};

fn small_image(seed: u64) -> Image {
    let raw = pseudo_random(seed, 150_000);
    let diff_id = sha256_digest(&raw);
    let layer = Blob::new("application/vnd.oci.image.layer.v1.tar", raw);
    image(vec![(layer, diff_id)], "amd64", false)
}

fn root() -> Credentials {
    Credentials {
        access_key_id: ecr::TEST_ACCESS_KEY_ID.into(),
        secret_access_key: ecr::TEST_SECRET_ACCESS_KEY.into(),
    }
}

fn call(berth: &Berth, creds: &Credentials, service: &str, target: &str, body: &Value) -> Response {
    ecr::call(
        &Http::new(berth.addr()),
        &berth.host(),
        creds,
        ecr::TEST_REGION,
        service,
        target,
        body,
    )
}

/// A registry token fetched now (`GetAuthorizationToken`), as a credential helper
/// would, and a client carrying it.
fn fresh_http(berth: &Berth) -> Http {
    let r = call(
        berth,
        &root(),
        "ecr",
        "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
        &json!({}),
    );
    r.expect_status(200);
    let token = r.json()["authorizationData"][0]["authorizationToken"]
        .as_str()
        .expect("a token")
        .to_string();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .expect("base64");
    let text = String::from_utf8(raw).expect("utf-8");
    let (u, p) = text.split_once(':').expect("user:password");
    Http::new(berth.addr()).basic_auth(u, p)
}

#[track_caller]
fn pulls_whole(http: &Http, repo: &str, img: &Image) {
    let r = http.get(&format!("/v2/{repo}/manifests/v1"));
    r.expect_status(200);
    assert_eq!(r.body, img.manifest.bytes, "{repo}: manifest");
    for b in img.blobs() {
        let r = http.get(&format!("/v2/{repo}/blobs/{}", b.digest));
        r.expect_status(200);
        assert_eq!(r.body, b.bytes, "{repo}: blob {}", b.digest);
    }
}

/// The count a rotation pass printed for one kind of value.
fn count(pass_line: &str, what: &str) -> usize {
    let (_, counts) = pass_line.split_once("re-sealed ").expect("a pass line");
    counts
        .split(", ")
        .find_map(|part| {
            let (n, rest) = part.split_once(' ')?;
            (rest == what).then(|| n.parse().ok()).flatten()
        })
        .unwrap_or_else(|| panic!("no {what:?} in {pass_line:?}"))
}

const SECRET_ID: &str = "ecr-pullthroughcache/hub";
const SECRET_VALUE: &str = r#"{"username":"puller","accessToken":"dckr_pat_rotation"}"#;

// Every backend, PostgreSQL with blobs in S3 (Garage) included: the blob data keys
// a rotation re-wraps live beside the objects, wherever those are.
all_backends! {
    fn master_key_rotates_without_downtime(backend) {
        let mut berth = Berth::start(backend);
        let old_key = std::fs::read_to_string(berth.data_dir().join("master.key"))
            .expect("the generated master key")
            .trim()
            .to_string();
        let old_id = status_id(&berth, &old_key);
        assert_eq!(old_id.len(), 16, "the old key's id");

        // Secrets of every kind: access keys (the root's and a user's), KMS key
        // material, a webhook secret, pull-through credentials in Secrets Manager.
        berth.admin(&["user", "create", "alice"]);
        let alice = berth.access_key(&["--user", "alice"]);
        berth.admin(&["policy", "attach", "--user", "alice", "ReadOnly"]);
        berth.admin(&["kms", "create", "--alias", "rot"]);
        berth.admin_with(
            &[("BERTH_WEBHOOK_SECRET", "webhook-secret-value")],
            &["webhook", "add", "--name", "hook", "--url", "http://127.0.0.1:9/hook"],
        );
        call(&berth, &root(), "secretsmanager", "secretsmanager.CreateSecret", &json!({
            "Name": SECRET_ID, "SecretString": SECRET_VALUE,
        }))
        .expect_status(200);

        // Encrypted images: one under the registry's key (AES256), one under the
        // KMS key.
        berth.ecr("CreateRepository", &json!({"repositoryName": "plain"})).expect_status(200);
        berth.ecr("CreateRepository", &json!({"repositoryName": "locked",
            "encryptionConfiguration": {"encryptionType": "KMS", "kmsKey": "alias/rot"}}))
            .expect_status(200);
        let http = berth.http();
        let a = small_image(1);
        let k = small_image(2);
        a.push(&http, "plain", "v1").expect_status(201);
        k.push(&http, "locked", "v1").expect_status(201);

        // An upload in flight across the rotation: half its bytes now.
        let late = Blob::new("application/octet-stream", pseudo_random(3, 100_000));
        let r = http.send("POST", "/v2/plain/blobs/uploads/", &[], Vec::new());
        r.expect_status(202);
        let upload = r.location();
        let r = http.send("PATCH", &upload, &[("Content-Type", "application/octet-stream"), ("Content-Range", "0-49999")], late.bytes[..50_000].to_vec());
        r.expect_status(202);
        let upload = r.location();

        // Rotate while a client keeps pulling (fetching a new token when its old
        // one stops working, as credential helpers do).
        let new_key_file = berth.scratch().join("new-master.key");
        let stop = AtomicBool::new(false);
        let pulls = AtomicUsize::new(0);
        let reauth = AtomicUsize::new(0);
        let out = std::thread::scope(|s| {
            let puller = s.spawn(|| {
                let mut client = berth.http();
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    for (repo, img) in [("plain", &a), ("locked", &k)] {
                        let r = client.get(&format!("/v2/{repo}/manifests/v1"));
                        if r.status == 401 {
                            reauth.fetch_add(1, Ordering::Relaxed);
                            client = fresh_http(&berth);
                            continue;
                        }
                        if r.status != 200 || r.body != img.manifest.bytes {
                            failures.push(format!("manifest {repo}: {}", r.describe()));
                            continue;
                        }
                        let layer = &img.layers[0];
                        let r = client.get(&format!("/v2/{repo}/blobs/{}", layer.digest));
                        if r.status == 401 {
                            reauth.fetch_add(1, Ordering::Relaxed);
                            client = fresh_http(&berth);
                            continue;
                        }
                        if r.status != 200 || r.body != layer.bytes {
                            failures.push(format!("blob {repo}: {}", r.status));
                        } else {
                            pulls.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                failures
            });
            let out = berth.admin(&[
                "master-key", "rotate", "--new-key-file",
                new_key_file.to_str().expect("utf-8 path"), "--settle-secs", "3",
            ]);
            // Keep pulling a little past the old key's retirement.
            std::thread::sleep(std::time::Duration::from_secs(3));
            stop.store(true, Ordering::Relaxed);
            let failures = puller.join().expect("the pulling thread");
            assert!(failures.is_empty(), "pulls failed during the rotation: {failures:?}\n{out}");
            out
        });
        eprintln!("{out}");
        let pulled = pulls.load(Ordering::Relaxed);
        assert!(pulled >= 10, "only {pulled} pulls during the rotation");
        // Tokens minted under the old key keep working after its retirement (until
        // they expire): the client never had to fetch a new one.
        assert_eq!(reauth.load(Ordering::Relaxed), 0, "the client had to re-authenticate");

        // The first pass re-sealed everything created above; the last found nothing.
        let passes: Vec<&str> = out.lines().filter(|l| l.starts_with("pass ")).collect();
        assert!(passes.len() >= 2, "{out}");
        let first = passes[0];
        assert!(count(first, "access keys") >= 2, "{first}");
        assert!(count(first, "KMS key material") >= 1, "{first}");
        assert_eq!(count(first, "webhook secrets"), 1, "{first}");
        assert_eq!(count(first, "upload data keys"), 1, "{first}");
        assert!(count(first, "blob data keys") >= 4, "{first}");
        // plain's links and manifest are under the registry key; locked's are under
        // its KMS key, whose material is what is re-sealed.
        assert!(count(first, "repository data keys") >= 2, "{first}");
        assert_eq!(count(first, "manifests"), 1, "{first}");
        assert_eq!(count(first, "Secrets Manager secret versions"), 1, "{first}");
        let last = passes.last().expect("a pass");
        let (_, counts) = last.split_once("re-sealed ").expect("a pass line");
        assert!(counts.split(", ").all(|p| p.starts_with("0 ")), "{last}");
        assert!(out.contains("rotation complete"), "{out}");
        let new_key = std::fs::read_to_string(&new_key_file).expect("the new key file").trim().to_string();
        assert_eq!(new_key.len(), 64);
        assert_ne!(new_key, old_key);
        let status = berth.admin_with(&[("BERTH_MASTER_KEY", &new_key)], &["master-key", "status"]);
        assert!(status.contains("phase\tsteady"), "{status}");
        assert!(!status.contains("other key"), "{status}");
        assert!(status.contains(&format!("retired key\t{old_id}\tverifies registry tokens")), "{status}");
        // Past the longest token lifetime the retired key is gone for good.
        let later = berth.admin_with(&[("BERTH_MASTER_KEY", &new_key), ("BERTH_CLOCK_OFFSET_SECS", "46800")], &["master-key", "status"]);
        assert!(!later.contains("retired key"), "{later}");

        // Each phase is in the audit log, and the hash chain holds.
        let audit = berth.admin_with(&[("BERTH_MASTER_KEY", &new_key)], &["audit", "--limit", "100000"]);
        let phases: Vec<&str> = audit.lines().filter(|l| l.contains("berth:RotateMasterKey")).collect();
        assert_eq!(phases.len(), 3, "{audit}");
        for phase in ["introduce", "switch", "retire"] {
            assert!(phases.iter().any(|l| l.contains(&format!("{phase}: old key {old_id}, new key"))), "{phase}: {phases:?}");
        }
        assert!(!audit.contains(&old_key) && !audit.contains(&new_key), "a key reached the audit log");
        let verify = berth.command_output(&[("BERTH_MASTER_KEY", &new_key)], &["admin", "audit", "verify"]);
        assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));

        // The running server seals with the new key only, but a token minted under
        // the old one still verifies until it expires; a fresh one works, and so
        // does everything sealed.
        pulls_whole(&http, "plain", &a);
        let old_token_http = http;
        let http = fresh_http(&berth);
        pulls_whole(&http, "plain", &a);
        pulls_whole(&http, "locked", &k);
        // The upload started under the old key finishes under the new one.
        let r = http.send("PATCH", &upload, &[("Content-Type", "application/octet-stream"), ("Content-Range", "50000-99999")], late.bytes[50_000..].to_vec());
        r.expect_status(202);
        let upload = r.location();
        let sep = if upload.contains('?') { '&' } else { '?' };
        http.send("PUT", &format!("{upload}{sep}digest={}", late.digest), &[], Vec::new()).expect_status(201);

        // Restart with only the new key.
        berth.stop_gracefully();
        std::fs::write(berth.data_dir().join("master.key"), format!("{new_key}\n")).expect("install the new key");
        berth.restart();
        // A restarted node learns the retired key for tokens from the shared state.
        pulls_whole(&old_token_http, "plain", &a);
        let http = fresh_http(&berth);
        pulls_whole(&http, "plain", &a);
        pulls_whole(&http, "locked", &k);
        let r = http.get(&format!("/v2/plain/blobs/{}", late.digest));
        r.expect_status(200);
        assert_eq!(r.body, late.bytes);
        // Both access keys still sign.
        call(&berth, &alice, "ecr", "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories", &json!({}))
            .expect_status(200);
        // The pull-through credentials and the webhook secret still open.
        let r = call(&berth, &root(), "secretsmanager", "secretsmanager.GetSecretValue", &json!({"SecretId": SECRET_ID}));
        r.expect_status(200);
        assert_eq!(r.json()["SecretString"], SECRET_VALUE);
        let hooks = berth.admin(&["webhook", "list"]);
        assert!(hooks.contains("\thook\t"), "{hooks}");
        // A KMS key rotation after the master-key rotation works on the re-sealed
        // material.
        berth.admin(&["kms", "rotate", "alias/rot"]);
        pulls_whole(&http, "locked", &k);

        // The old key no longer works: neither a process started with it…
        let out = berth.command_output(&[("BERTH_MASTER_KEY", &old_key)], &["admin", "master-key", "status"]);
        assert!(!out.status.success(), "a process with the retired key started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is not this registry's master key"), "{err}");
        // …nor a second node given it.
        let mut peer = berth.peer().env("BERTH_MASTER_KEY", &old_key);
        peer = peer.env("BERTH_LOG", "warn");
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| peer.start()));
        assert!(refused.is_err(), "a node with the retired key started");
        // Running the rotation again with the same file has nothing to do.
        let again = berth.admin(&["master-key", "rotate", "--new-key-file", new_key_file.to_str().expect("utf-8")]);
        assert!(again.contains("nothing to rotate"), "{again}");
    }
}

/// The id `master-key status` names for `key` (a process configured with it).
fn status_id(berth: &Berth, key: &str) -> String {
    let s = berth.admin_with(&[("BERTH_MASTER_KEY", key)], &["master-key", "status"]);
    s.lines()
        .find_map(|l| l.strip_prefix("sealing key\t"))
        .map(str::to_string)
        .unwrap_or_default()
}

fn status(berth: &Berth, key: &str) -> String {
    berth.admin_with(&[("BERTH_MASTER_KEY", key)], &["master-key", "status"])
}

both_backends! {
    fn a_crash_mid_rotation_leaves_everything_readable_and_a_rerun_finishes(backend) {
        let mut berth = Berth::start(backend);
        let old_key = std::fs::read_to_string(berth.data_dir().join("master.key"))
            .expect("the generated master key").trim().to_string();
        let alice = {
            berth.admin(&["user", "create", "alice"]);
            berth.admin(&["policy", "attach", "--user", "alice", "ReadOnly"]);
            berth.access_key(&["--user", "alice"])
        };
        let http = fresh_http(&berth);
        let a = small_image(11);
        a.push(&http, "plain", "v1").expect_status(201);

        // The rotation is killed once every node seals with the new key, before it
        // has re-sealed what is stored.
        let new_key_file = berth.scratch().join("new-master.key");
        let mut cmd = std::process::Command::new(berth_testsupport::server::berth_bin());
        cmd.args(["admin", "--data-dir"]).arg(berth.data_dir());
        if let Some(u) = berth.database_url() {
            cmd.arg("--database-url").arg(u);
        }
        for (k, _) in std::env::vars() {
            if k.starts_with("BERTH_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(["master-key", "rotate", "--settle-secs", "6", "--new-key-file"]).arg(&new_key_file);
        cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        let mut rotation = cmd.spawn().expect("start the rotation");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let s = status(&berth, &old_key);
            if s.contains("phase\tswitch") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the rotation did not switch: {s}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = rotation.kill();
        let _ = rotation.wait();
        let new_key = std::fs::read_to_string(&new_key_file).expect("the new key file").trim().to_string();

        // The server learns the switch and seals new data under the new key.
        std::thread::sleep(std::time::Duration::from_millis(2500));
        let b = small_image(12);
        b.push(&http, "plain", "v2").expect_status(201);
        let read_all = |http: &Http| {
            for (tag, img) in [("v1", &a), ("v2", &b)] {
                let r = http.get(&format!("/v2/plain/manifests/{tag}"));
                r.expect_status(200);
                assert_eq!(r.body, img.manifest.bytes);
                for blob in img.blobs() {
                    let r = http.get(&format!("/v2/plain/blobs/{}", blob.digest));
                    r.expect_status(200);
                    assert_eq!(r.body, blob.bytes);
                }
            }
        };
        read_all(&http);

        // Mid-rotation, a node restarted with either key reads both generations.
        for key in [&old_key, &new_key] {
            berth.stop_gracefully();
            std::fs::write(berth.data_dir().join("master.key"), format!("{key}\n")).expect("key file");
            berth.restart();
            read_all(&fresh_http(&berth));
            call(&berth, &alice, "ecr", "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories", &json!({}))
                .expect_status(200);
            let s = status(&berth, key);
            assert!(s.contains("phase\tswitch"), "{s}");
        }

        // Running it again (here with the new key configured) finishes the rotation.
        let out = berth.admin(&["master-key", "rotate", "--settle-secs", "2", "--new-key-file", new_key_file.to_str().expect("utf-8")]);
        assert!(out.contains("continuing the rotation"), "{out}");
        assert!(out.contains("rotation complete"), "{out}");
        let first = out.lines().find(|l| l.starts_with("pass 1:")).expect("a first pass");
        assert!(count(first, "access keys") >= 2, "{first}");
        assert!(count(first, "blob data keys") >= 2, "{first}");
        berth.stop_gracefully();
        berth.restart();
        read_all(&fresh_http(&berth));
        call(&berth, &alice, "ecr", "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories", &json!({}))
            .expect_status(200);
        let out = berth.command_output(&[("BERTH_MASTER_KEY", &old_key)], &["admin", "master-key", "status"]);
        assert!(!out.status.success(), "the retired key still opens the registry");
    }
}

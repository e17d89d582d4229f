//! Pull-through cache rules: the four stored operations with ECR's validation and
//! errors, Terraform's `aws_ecr_pull_through_cache_rule` (with the credential secret),
//! and the pull flow through a rule against a real upstream.

use std::path::Path;
use std::process::Command;

use berth_testsupport::ecr::{self, Credentials};
use berth_testsupport::tools::Terraform;
use berth_testsupport::upstream::Upstream;
use berth_testsupport::{both_backends, Berth, Http, Response, TempDir};
use serde_json::{json, Value};

#[track_caller]
fn aws_error(r: &Response, ty: &str) {
    r.expect_status(400);
    assert_eq!(r.json()["__type"], ty, "{}", r.describe());
}

#[track_caller]
fn ok(r: Response) -> Value {
    r.expect_status(200);
    r.json()
}

/// A Secrets Manager call (`secretsmanager.<op>`) as the account root.
fn secrets(berth: &Berth, op: &str, body: &Value) -> Response {
    ecr::call(
        &Http::new(berth.addr()),
        &berth.host(),
        &berth.root_credentials(),
        ecr::TEST_REGION,
        "secretsmanager",
        &format!("secretsmanager.{op}"),
        body,
    )
}

const HUB_SECRET: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/hub-AbCdEf";

both_backends! {
    fn pull_through_rules_crud_and_validation(backend) {
        let berth = Berth::start(backend);
        let create = |body: Value| berth.ecr("CreatePullThroughCacheRule", &body);
        let v = ok(create(json!({"ecrRepositoryPrefix": "hub", "upstreamRegistryUrl": "registry-1.docker.io", "credentialArn": HUB_SECRET})));
        assert_eq!(v["ecrRepositoryPrefix"], "hub");
        assert_eq!(v["upstreamRegistryUrl"], "registry-1.docker.io");
        assert_eq!(v["upstreamRegistry"], "docker-hub");
        // Left out when not given (Terraform's attribute is not computed).
        assert!(v.get("upstreamRepositoryPrefix").is_none(), "{v}");
        assert_eq!(v["credentialArn"], HUB_SECRET);
        assert_eq!(v["registryId"], "123456789012");
        assert!(v["createdAt"].is_number(), "{v}");
        let v = ok(create(json!({"ecrRepositoryPrefix": "local", "upstreamRegistryUrl": "http://127.0.0.1:5000", "upstreamRepositoryPrefix": "mirror"})));
        assert!(v.get("upstreamRegistry").is_none(), "{v}");
        assert_eq!(v["upstreamRepositoryPrefix"], "mirror");

        aws_error(&create(json!({"ecrRepositoryPrefix": "hub", "upstreamRegistryUrl": "quay.io"})), "PullThroughCacheRuleAlreadyExistsException");
        aws_error(&create(json!({"ecrRepositoryPrefix": "a", "upstreamRegistryUrl": "quay.io"})), "InvalidParameterException");
        aws_error(&create(json!({"ecrRepositoryPrefix": "Quay", "upstreamRegistryUrl": "quay.io"})), "InvalidParameterException");
        aws_error(&create(json!({"ecrRepositoryPrefix": "quay", "upstreamRegistryUrl": "quay.io/path"})), "InvalidParameterException");
        aws_error(&create(json!({"ecrRepositoryPrefix": "quay", "upstreamRegistryUrl": "http://quay.io"})), "InvalidParameterException");
        aws_error(&create(json!({"ecrRepositoryPrefix": "quay", "upstreamRegistryUrl": "quay.io", "upstreamRegistry": "dockerhub"})), "InvalidParameterException");
        aws_error(&create(json!({"ecrRepositoryPrefix": "quay", "upstreamRegistryUrl": "quay.io", "credentialArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:other/quay-abc"})), "InvalidParameterException");
        aws_error(&create(json!({"ecrRepositoryPrefix": "ROOT", "upstreamRegistryUrl": "quay.io", "upstreamRepositoryPrefix": "x1"})), "InvalidParameterException");
        ok(create(json!({"ecrRepositoryPrefix": "ROOT", "upstreamRegistryUrl": "quay.io"})));

        let v = ok(berth.ecr("DescribePullThroughCacheRules", &json!({})));
        let prefixes: Vec<&str> = v["pullThroughCacheRules"].as_array().expect("rules").iter().filter_map(|r| r["ecrRepositoryPrefix"].as_str()).collect();
        assert_eq!(prefixes, ["ROOT", "hub", "local"]);
        let v = ok(berth.ecr("DescribePullThroughCacheRules", &json!({"ecrRepositoryPrefixes": ["hub"]})));
        assert_eq!(v["pullThroughCacheRules"][0]["upstreamRegistry"], "docker-hub");
        // Terraform reads a rule by its prefix and takes NotFound as "gone".
        aws_error(&berth.ecr("DescribePullThroughCacheRules", &json!({"ecrRepositoryPrefixes": ["nope"]})), "PullThroughCacheRuleNotFoundException");
        let v = ok(berth.ecr("DescribePullThroughCacheRules", &json!({"maxResults": 2})));
        assert_eq!(v["pullThroughCacheRules"].as_array().map(Vec::len), Some(2));
        let v = ok(berth.ecr("DescribePullThroughCacheRules", &json!({"maxResults": 2, "nextToken": v["nextToken"]})));
        assert_eq!(v["pullThroughCacheRules"][0]["ecrRepositoryPrefix"], "local");

        // Only the credential and the role change.
        let v = ok(berth.ecr("UpdatePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "hub", "customRoleArn": "arn:aws:iam::123456789012:role/ptc"})));
        assert_eq!(v["customRoleArn"], "arn:aws:iam::123456789012:role/ptc");
        assert_eq!(v["credentialArn"], HUB_SECRET);
        assert!(v["updatedAt"].is_number(), "{v}");
        aws_error(&berth.ecr("UpdatePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "nope", "customRoleArn": "r"})), "PullThroughCacheRuleNotFoundException");

        let v = ok(berth.ecr("DeletePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "hub"})));
        assert_eq!(v["upstreamRegistryUrl"], "registry-1.docker.io");
        assert_eq!(v["customRoleArn"], "arn:aws:iam::123456789012:role/ptc");
        aws_error(&berth.ecr("DeletePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "hub"})), "PullThroughCacheRuleNotFoundException");
    }
}

both_backends! {
    fn terraform_pull_through_cache_rules(backend) {
        let berth = Berth::start(backend);
        let root = berth.root_credentials();
        let tmp = TempDir::new("tfptc");
        let dir = tmp.join("ptc");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/terraform-ptc");
        std::fs::copy(fixtures.join("main.tf"), dir.join("main.tf")).expect("copy");
        let tf = Terraform::new(&dir, &berth, &root);
        tf.init_apply(&berth);
        tf.assert_converged();
        let v = ok(berth.ecr("DescribePullThroughCacheRules", &json!({"ecrRepositoryPrefixes": ["hub"]})));
        let r = &v["pullThroughCacheRules"][0];
        assert_eq!(r["upstreamRegistry"], "docker-hub");
        assert_eq!(r["upstreamRepositoryPrefix"], "library");
        // The credential is the secret Terraform created through berth's Secrets
        // Manager, holding the value Terraform put.
        let arn = r["credentialArn"].as_str().expect("credentialArn").to_string();
        assert!(arn.starts_with("arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/hub-"), "{arn}");
        let v = ok(secrets(&berth, "GetSecretValue", &json!({"SecretId": arn})));
        assert_eq!(v["SecretString"], r#"{"accessToken":"tf-token-1","username":"puller"}"#);
        let v = ok(secrets(&berth, "DescribeSecret", &json!({"SecretId": "ecr-pullthroughcache/hub"})));
        assert_eq!(v["Tags"], json!([{"Key": "team", "Value": "platform"}]));
        tf.destroy();
        let v = ok(berth.ecr("DescribePullThroughCacheRules", &json!({})));
        assert_eq!(v["pullThroughCacheRules"], json!([]));
        // Destroyed with Terraform's default recovery window: marked for deletion.
        let v = ok(secrets(&berth, "DescribeSecret", &json!({"SecretId": "ecr-pullthroughcache/hub"})));
        assert!(v["DeletedDate"].is_number(), "{v}");
    }
}

// ---- the pull flow against a real upstream ---------------------------------------

/// Waits until `name:tag` is stored in the cache: a pull that only read the
/// manifest leaves the blobs to the cache's completer, which stores the image
/// moments later.
#[track_caller]
fn wait_cached(berth: &Berth, name: &str, tag: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let r = berth.ecr(
            "DescribeImages",
            &json!({"repositoryName": name, "imageIds": [{"imageTag": tag}]}),
        );
        if r.status == 200 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}:{tag} never cached: {}",
            r.describe()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn repo_tags(berth: &Berth, name: &str) -> Value {
    let v = ok(berth.ecr("DescribeRepositories", &json!({"repositoryNames": [name]})));
    let arn = v["repositories"][0]["repositoryArn"]
        .as_str()
        .expect("arn")
        .to_string();
    ok(berth.ecr("ListTagsForResource", &json!({"resourceArn": arn})))["tags"].clone()
}

both_backends! {
    fn pull_through_an_authenticated_upstream(backend) {
        use berth_testsupport::{sha256_digest, Layout};
        let tmp = TempDir::new("ptcflow");
        let layout = Layout::build(&tmp.join("layout"));
        let mut up = Upstream::start(Some(("puller", "upstream-pw-1")));
        up.push(&layout.oci_ref("single"), "library/app:v1");
        up.push(&layout.oci_ref("multi"), "library/multi:v1");

        // A webhook for the pull-through cache's sync events.
        let hook = berth_testsupport::webhook::EventSink::start();
        let cfg = tmp.join("berth.toml");
        std::fs::write(&cfg, format!(
            "[[webhook]]\nurl = \"{}\"\nsecret = \"s\"\ndetail_types = [\"ECR Pull Through Cache Action\"]\n",
            hook.url()
        )).unwrap();
        let berth = Berth::options(backend).env("BERTH_CONFIG", cfg.to_str().unwrap()).start();
        ok(secrets(&berth, "CreateSecret", &json!({"Name": "ecr-pullthroughcache/up", "SecretString": r#"{"username":"puller","accessToken":"upstream-pw-1"}"#})));
        let good = ok(secrets(&berth, "DescribeSecret", &json!({"SecretId": "ecr-pullthroughcache/up"})))["ARN"].as_str().expect("arn").to_string();
        ok(secrets(&berth, "CreateSecret", &json!({"Name": "ecr-pullthroughcache/wrong", "SecretString": r#"{"username":"puller","accessToken":"nope"}"#})));
        let wrong = ok(secrets(&berth, "DescribeSecret", &json!({"SecretId": "ecr-pullthroughcache/wrong"})))["ARN"].as_str().expect("arn").to_string();
        ok(berth.ecr("CreatePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "up", "upstreamRegistryUrl": up.url(), "credentialArn": good})));
        ok(berth.ecr("CreatePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "bad", "upstreamRegistryUrl": up.url(), "credentialArn": wrong})));
        ok(berth.ecr("CreatePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "anon", "upstreamRegistryUrl": up.url()})));
        ok(berth.ecr("CreateRepositoryCreationTemplate", &json!({
            "prefix": "up", "appliedFor": ["PULL_THROUGH_CACHE"],
            "resourceTags": [{"Key": "cache", "Value": "upstream"}],
        })));

        // ValidatePullThroughCacheRule really authenticates to the upstream.
        let v = ok(berth.ecr("ValidatePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "up"})));
        assert_eq!(v["isValid"], true, "{v}");
        for prefix in ["bad", "anon"] {
            let v = ok(berth.ecr("ValidatePullThroughCacheRule", &json!({"ecrRepositoryPrefix": prefix})));
            assert_eq!(v["isValid"], false, "{v}");
            assert!(v["failure"].as_str().is_some_and(|f| f.contains("credentials")), "{v}");
        }
        aws_error(&berth.ecr("ValidatePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "nope"})), "PullThroughCacheRuleNotFoundException");

        // First pull: the repository is created with the template, the image is
        // fetched, and what berth serves is byte-exact.
        let sk = berth.skopeo();
        let raw = sk.inspect_raw("up/library/app:v1");
        assert_eq!(sha256_digest(&raw), layout.image.digest());
        assert_eq!(repo_tags(&berth, "up/library/app"), json!([{"Key": "cache", "Value": "upstream"}]));
        let out = tmp.join("pulled");
        sk.copy(&berth.docker_ref("up/library/app:v1"), &format!("oci:{}:x", out.display()), &[]);
        for b in layout.image.blobs() {
            assert_eq!(berth_testsupport::layout::layout_blob(&out, &b.digest), b.bytes, "blob {}", b.digest.as_str());
        }
        // The sync is an "ECR Pull Through Cache Action" event.
        let events = hook.wait_for(|ev| {
            ev.iter().any(|e| e["detail"]["repository-name"] == "up/library/app" && e["detail"]["sync-status"] == "SUCCESS")
        });
        let e = events.iter().find(|e| e["detail"]["repository-name"] == "up/library/app").expect("event");
        assert_eq!(e["detail-type"], "ECR Pull Through Cache Action");
        assert_eq!(e["detail"]["ecr-repository-prefix"], "up", "{e}");
        assert_eq!(e["detail"]["image-tag"], "v1", "{e}");
        assert_eq!(e["detail"]["image-digest"], layout.image.digest(), "{e}");
        assert_eq!(e["detail"]["upstream-registry-url"], up.url(), "{e}");
        // A multi-arch index brings its platform manifests.
        let raw = sk.inspect_raw("up/library/multi:v1");
        assert_eq!(sha256_digest(&raw), layout.index.digest.as_str());
        sk.copy(&berth.docker_ref("up/library/multi:v1"), &format!("oci:{}:m", tmp.join("multi").display()), &["--all"]);
        for img in &layout.index_images {
            berth.http().get(&format!("/v2/up/library/multi/manifests/{}", img.digest())).expect_status(200);
        }
        // podman pulls through the cache too.
        let pm = berth.podman();
        pm.run("pull", &[&pm.image_ref("up/library/app:v1")]);

        // Wrong credentials fail the first pull, which leaves no repository behind.
        assert!(!sk.try_run("inspect", &["--raw", &berth.docker_ref("bad/library/app:v1")]).status.success());
        aws_error(&berth.ecr("DescribeRepositories", &json!({"repositoryNames": ["bad/library/app"]})), "RepositoryNotFoundException");
        // An unknown upstream tag is MANIFEST_UNKNOWN.
        let r = berth.http().get("/v2/up/library/app/manifests/nope");
        r.expect_status(404);
        assert!(r.text().contains("MANIFEST_UNKNOWN"), "{}", r.describe());
        let r = berth.http().get("/v2/up/library/missing/manifests/v1");
        r.expect_status(404);
        aws_error(&berth.ecr("DescribeRepositories", &json!({"repositoryNames": ["up/library/missing"]})), "RepositoryNotFoundException");

        // With the upstream down, the cache still serves.
        wait_cached(&berth, "up/library/app", "v1");
        up.stop();
        assert_eq!(sha256_digest(&sk.inspect_raw("up/library/app:v1")), layout.image.digest());
        sk.copy(&berth.docker_ref("up/library/app:v1"), &format!("oci:{}:y", tmp.join("down").display()), &[]);

        up.run();
        let (user, pass) = berth.registry_creds();
        // Two concurrent first pulls fetch each blob once. (This and the cross-node
        // pulls run before the node with a skewed clock below starts: leases and job
        // claims compare wall clocks, so the nodes of one registry must keep their
        // clocks in step — an hour ahead, that node would take over leases the
        // others still hold.)
        up.push(&layout.oci_ref("single"), "library/other:v1");
        let t = |n: &str| {
            let sk = berth.skopeo();
            let src = berth.docker_ref("up/library/other:v1");
            let dst = format!("oci:{}:c", tmp.join(n).display());
            move || sk.try_copy(&src, &dst, &[])
        };
        std::thread::scope(|s| {
            let a = s.spawn(t("c1"));
            let b = s.spawn(t("c2"));
            for h in [a, b] {
                let o = h.join().expect("thread");
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            }
        });
        for b in layout.image.blobs() {
            assert_eq!(up.blob_gets("library/other", b.digest.as_str()), 1, "blob {} fetched once", b.digest.as_str());
        }
        // Two concurrent first pulls on two nodes (same database) fetch each blob
        // once too: the nodes share a lease. (The manifest read is what fills the
        // cache; the blobs land in the filling node's blob store, which these test
        // nodes do not share, so only the manifests are read here.)
        up.push(&layout.oci_ref("single"), "library/cross:v1");
        let peer = berth.peer().start();
        let pull_from = |node: &Berth| {
            let src = node.docker_ref("up/library/cross:v1");
            let creds = format!("--creds={user}:{pass}");
            move || Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &creds, &src]).output().expect("skopeo")
        };
        std::thread::scope(|s| {
            let a = s.spawn(pull_from(&berth));
            let b = s.spawn(pull_from(&peer));
            for h in [a, b] {
                let o = h.join().expect("thread");
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                assert_eq!(sha256_digest(&o.stdout), layout.image.digest());
            }
        });
        wait_cached(&berth, "up/library/cross", "v1");
        for b in layout.image.blobs() {
            assert_eq!(up.blob_gets("library/cross", b.digest.as_str()), 1, "blob {} fetched once across nodes", b.digest);
        }
        // ... and the manifest once: the node that waited on the import lease
        // serves the tree the other one fetched and recorded.
        assert_eq!(up.requests("GET", "/v2/library/cross/manifests/v1"), 1, "manifest fetched once across nodes");
        // A HEAD on one node then a GET on the other, before the image is stored,
        // ask the upstream once too.
        up.push(&layout.oci_ref("single"), "library/seq2:v1");
        berth.http().head("/v2/up/library/seq2/manifests/v1").expect_status(200);
        let r = peer.http().get("/v2/up/library/seq2/manifests/v1");
        r.expect_status(200);
        assert_eq!(sha256_digest(&r.body), layout.image.digest());
        assert_eq!(up.requests("GET", "/v2/library/seq2/manifests/v1"), 1, "a GET on another node after a HEAD");
        // A HEAD and then a GET of a manifest not cached yet ask the upstream once.
        up.push(&layout.oci_ref("single"), "library/seq:v1");
        berth.http().head("/v2/up/library/seq/manifests/v1").expect_status(200);
        let r = berth.http().get("/v2/up/library/seq/manifests/v1");
        r.expect_status(200);
        assert_eq!(sha256_digest(&r.body), layout.image.digest());
        assert_eq!(up.requests("GET", "/v2/library/seq/manifests/v1"), 1);
        // A new upstream tag is seen once the refresh interval has passed: a second
        // node on the same database, whose clock is an hour ahead and whose refresh
        // interval is 30 minutes, re-checks it (the first node's token still holds
        // there, an hour on).
        up.push(&layout.oci_ref("multi"), "library/app:v1");
        assert_eq!(sha256_digest(&sk.inspect_raw("up/library/app:v1")), layout.image.digest(), "re-checked before the interval");
        let later = berth.peer().env("BERTH_CLOCK_OFFSET_SECS", "3600").env("BERTH_PULL_THROUGH_REFRESH_SECS", "1800").start();
        let inspect_later = |r: &str| {
            let out = Command::new("skopeo")
                .args(["inspect", "--raw", "--tls-verify=false", &format!("--creds={user}:{pass}"), &later.docker_ref(r)])
                .output()
                .expect("skopeo");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            out.stdout
        };
        assert_eq!(sha256_digest(&inspect_later("up/library/app:v1")), layout.index.digest.as_str());

        // The first pull fetched each blob once too, and later pulls none.
        for b in layout.image.blobs() {
            assert_eq!(up.blob_gets("library/app", b.digest.as_str()), 1, "blob {} fetched once", b.digest.as_str());
        }

        // A cached tag due for a check is served from the cache when the upstream
        // is down.
        up.stop();
        assert_eq!(sha256_digest(&inspect_later("up/library/multi:v1")), layout.index.digest.as_str());
    }
}

/// The data-plane credentials of `creds` (`GetAuthorizationToken`).
fn registry_login(berth: &Berth, creds: &Credentials) -> Http {
    use base64::Engine as _;
    let v = ok(berth.ecr_as(creds, "GetAuthorizationToken", &json!({})));
    let token = v["authorizationData"][0]["authorizationToken"]
        .as_str()
        .expect("token");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .expect("base64");
    let (u, p) = std::str::from_utf8(&raw)
        .expect("utf8")
        .split_once(':')
        .expect("user:pass")
        .to_owned();
    Http::new(berth.addr()).basic_auth(u, p)
}

both_backends! {
    fn pull_through_anonymous_upstream_another_berth_and_permissions(backend) {
        use berth_testsupport::{sha256_digest, Layout};
        let tmp = TempDir::new("ptcanon");
        let layout = Layout::build(&tmp.join("layout"));
        let up = Upstream::start(None);
        up.push(&layout.oci_ref("single"), "library/app:v1");
        up.push(&layout.oci_ref("single"), "library/app:v2");
        // Another berth as the upstream, with its registry token as the credential.
        let other = Berth::start(backend);
        other.skopeo().copy(&layout.oci_ref("multi"), &other.docker_ref("team/app:v1"), &["--all"]);
        let (ou, op) = other.registry_creds();

        let berth = Berth::start(backend);
        ok(berth.ecr("CreatePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "hub", "upstreamRegistryUrl": up.url()})));
        ok(secrets(&berth, "CreateSecret", &json!({"Name": "ecr-pullthroughcache/peer", "SecretString": json!({"username": ou, "accessToken": op}).to_string()})));
        let arn = ok(secrets(&berth, "DescribeSecret", &json!({"SecretId": "ecr-pullthroughcache/peer"})))["ARN"].as_str().expect("arn").to_string();
        ok(berth.ecr("CreatePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "peer", "upstreamRegistryUrl": other.url(), "credentialArn": arn, "upstreamRepositoryPrefix": "team"})));
        for prefix in ["hub", "peer"] {
            let v = ok(berth.ecr("ValidatePullThroughCacheRule", &json!({"ecrRepositoryPrefix": prefix})));
            assert_eq!(v["isValid"], true, "{v}");
        }

        // A reader may not create a cache repository (no ecr:CreateRepository, no
        // ecr:BatchImportUpstreamImage)...
        berth.admin(&["user", "create", "reader"]);
        berth.admin(&["policy", "attach", "--user", "reader", "ReadOnly"]);
        let reader = registry_login(&berth, &berth.access_key(&["--user", "reader"]));
        let r = reader.get("/v2/hub/library/app/manifests/v1");
        r.expect_status(403);
        assert!(r.text().contains("DENIED"), "{}", r.describe());
        aws_error(&berth.ecr("DescribeRepositories", &json!({"repositoryNames": ["hub/library/app"]})), "RepositoryNotFoundException");

        // ...but reads what the cache holds once an allowed caller filled it, and
        // cannot import a tag the cache lacks.
        let sk = berth.skopeo();
        assert_eq!(sha256_digest(&sk.inspect_raw("hub/library/app:v1")), layout.image.digest());
        wait_cached(&berth, "hub/library/app", "v1");
        let r = reader.get("/v2/hub/library/app/manifests/v1");
        r.expect_status(200);
        assert_eq!(sha256_digest(&r.body), layout.image.digest());
        reader.get("/v2/hub/library/app/manifests/v2").expect_status(403);
        // By digest, a cached manifest is served without asking the upstream.
        reader.get(&format!("/v2/hub/library/app/manifests/{}", layout.image.digest())).expect_status(200);

        // Through the other berth (Basic auth with its token), the index and its
        // platform manifests, digest-exact; the upstream prefix maps `peer/app` to
        // `team/app`.
        assert_eq!(sha256_digest(&sk.inspect_raw("peer/app:v1")), layout.index.digest.as_str());
        sk.copy(&berth.docker_ref("peer/app:v1"), &format!("oci:{}:m", tmp.join("multi").display()), &["--all"]);
        for img in &layout.index_images {
            berth.http().get(&format!("/v2/peer/app/manifests/{}", img.digest())).expect_status(200);
        }
    }
}

/// A hand-written upstream that serves one image, holding the second half of its
/// layer until the test lets it go, and a second image whose layer bytes do not
/// match their digest.
struct GatedUpstream {
    port: u16,
    release: std::sync::mpsc::Sender<()>,
}

fn start_gated_upstream(
    manifest: Vec<u8>,
    good: Vec<(String, Vec<u8>)>,
    bad: Vec<u8>,
    layer: String,
    layer_bytes: Vec<u8>,
) -> GatedUpstream {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let gate = std::sync::Arc::new(std::sync::Mutex::new(gate));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let (manifest, good, bad, layer, layer_bytes, gate) = (
                manifest.clone(),
                good.clone(),
                bad.clone(),
                layer.clone(),
                layer_bytes.clone(),
                gate.clone(),
            );
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().expect("clone"));
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    return;
                }
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let head = |len: usize, ct: &str| {
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: {ct}\r\nConnection: close\r\n\r\n")
                };
                if path == "/v2/" {
                    let _ = conn.write_all(head(2, "application/json").as_bytes());
                    let _ = conn.write_all(b"{}");
                } else if path.ends_with("/manifests/v1") {
                    let _ = conn.write_all(
                        head(manifest.len(), "application/vnd.oci.image.manifest.v1+json")
                            .as_bytes(),
                    );
                    let _ = conn.write_all(&manifest);
                } else if path.starts_with("/v2/bad/blobs/") {
                    let _ = conn.write_all(head(bad.len(), "application/octet-stream").as_bytes());
                    let _ = conn.write_all(&bad);
                } else if path.ends_with(&format!("/blobs/{layer}")) {
                    let half = layer_bytes.len() / 2;
                    let _ = conn
                        .write_all(head(layer_bytes.len(), "application/octet-stream").as_bytes());
                    let _ = conn.write_all(&layer_bytes[..half]);
                    let _ = conn.flush();
                    let _ = gate
                        .lock()
                        .expect("gate")
                        .recv_timeout(std::time::Duration::from_secs(60));
                    let _ = conn.write_all(&layer_bytes[half..]);
                } else if let Some((_, b)) = good
                    .iter()
                    .find(|(d, _)| path.ends_with(&format!("/blobs/{d}")))
                {
                    let _ = conn.write_all(head(b.len(), "application/octet-stream").as_bytes());
                    let _ = conn.write_all(b);
                } else {
                    let _ = conn.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            });
        }
    });
    GatedUpstream { port, release }
}

both_backends! {
    fn pull_through_streams_blobs_while_storing_them(backend) {
        use std::io::{Read, Write};
        use berth_testsupport::layout::pseudo_random as pseudo_random_bytes;
        use berth_testsupport::sha256_digest;
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
        let layer_bytes = pseudo_random_bytes(77, 4 << 20);
        let (config_d, layer_d) = (sha256_digest(&config), sha256_digest(&layer_bytes));
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_d, "size": layer_bytes.len()}],
        })).expect("json");
        let mut bad = layer_bytes.clone();
        bad[100] ^= 0xff;
        let up = start_gated_upstream(manifest.clone(), vec![(config_d.clone(), config.clone())], bad, layer_d.clone(), layer_bytes.clone());
        let berth = Berth::start(backend);
        ok(berth.ecr("CreatePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "slow", "upstreamRegistryUrl": format!("http://127.0.0.1:{}", up.port)})));

        let r = berth.http().get("/v2/slow/app/manifests/v1");
        r.expect_status(200);
        assert_eq!(sha256_digest(&r.body), sha256_digest(&manifest));

        // The client reads the first half of the layer while the upstream still
        // holds back the second: berth does not wait for the layer to be cached.
        let (user, pass) = berth.registry_creds();
        let get = |path: &str| {
            use base64::Engine as _;
            let mut s = std::net::TcpStream::connect(berth.addr()).expect("connect");
            s.set_read_timeout(Some(std::time::Duration::from_secs(20))).expect("timeout");
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            write!(s, "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n", berth.host()).expect("write");
            s
        };
        let mut s = get(&format!("/v2/slow/app/blobs/{layer_d}"));
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        let header_end = loop {
            let n = s.read(&mut buf).expect("the first bytes arrive while the upstream holds the rest");
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
            if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&got[..header_end]).to_string();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        while got.len() - header_end < layer_bytes.len() / 4 {
            let n = s.read(&mut buf).expect("a quarter of the layer arrives while the upstream holds the second half");
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
        up.release.send(()).expect("release");
        s.read_to_end(&mut got).expect("the rest");
        assert_eq!(&got[header_end..], &layer_bytes[..], "the layer, byte-exact");
        // The completer fetches the config nobody read and stores the image.
        wait_cached(&berth, "slow/app", "v1");
        berth.http().head(&format!("/v2/slow/app/blobs/{layer_d}")).expect_status(200);
        berth.http().head(&format!("/v2/slow/app/blobs/{config_d}")).expect_status(200);

        // Bytes that do not match the digest: the client's read fails before it
        // is complete, and nothing is stored.
        berth.http().get("/v2/slow/bad/manifests/v1").expect_status(200);
        let mut s = get(&format!("/v2/slow/bad/blobs/{layer_d}"));
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        let end = all.windows(4).position(|w| w == b"\r\n\r\n").expect("headers") + 4;
        assert!(all.len() - end < layer_bytes.len(), "a wrong blob reached the client whole");
        std::thread::sleep(std::time::Duration::from_millis(500));
        berth.http().head(&format!("/v2/slow/bad/blobs/{layer_d}")).expect_status(404);
    }
}

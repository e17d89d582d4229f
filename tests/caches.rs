//! The read path's caches stay correct (`docs/architecture.md`, "Caches"): two
//! `berth serve` nodes on one database (SQLite file or PostgreSQL) with warm caches;
//! every change made on one node — or by `berth admin`, a third process — is
//! honoured by the very next request on either node: tag moves, image deletes,
//! repository policies, resource tags (ABAC), identity policies, user deletion and
//! access-key disabling.

use base64::Engine;
use berth_testsupport::ecr::Credentials;
use berth_testsupport::http::Http;
use berth_testsupport::layout::{image, tar_gz_layer, OCI_LAYER_GZIP};
use berth_testsupport::{both_backends, Berth, Image};
use serde_json::json;

const REPO: &str = "cache/app";

fn img(seed: &str) -> Image {
    image(
        vec![tar_gz_layer(
            OCI_LAYER_GZIP,
            &[("seed.txt", 0o644, seed.as_bytes().to_vec())],
        )],
        "amd64",
        false,
    )
}

/// A registry client of `node` with a token `creds` got from `issuer`.
fn registry_as(issuer: &Berth, node: &Berth, creds: &Credentials) -> Http {
    let r = issuer.ecr_as(creds, "GetAuthorizationToken", &json!({}));
    r.expect_status(200);
    let t = r.json()["authorizationData"][0]["authorizationToken"]
        .as_str()
        .unwrap()
        .to_string();
    let raw = base64::engine::general_purpose::STANDARD.decode(t).unwrap();
    let (u, p) = std::str::from_utf8(&raw).unwrap().split_once(':').unwrap();
    Http::new(node.addr()).basic_auth(u, p)
}

/// GET and HEAD of `reference` answer `digest` (several times, so a cache is warm).
fn serves(h: &Http, reference: &str, digest: &str) {
    for _ in 0..3 {
        let r = h.get(&format!("/v2/{REPO}/manifests/{reference}"));
        r.expect_status(200);
        assert_eq!(
            r.header("docker-content-digest"),
            Some(digest),
            "GET {reference}"
        );
        let r = h.head(&format!("/v2/{REPO}/manifests/{reference}"));
        r.expect_status(200);
        assert_eq!(
            r.header("docker-content-digest"),
            Some(digest),
            "HEAD {reference}"
        );
    }
}

both_backends! {
    /// Content: a tag moved or an image deleted on one node is answered by the
    /// other node's next request, after both nodes had served (and cached) it.
    fn tag_moves_and_deletes_are_seen_at_once_on_both_nodes(backend) {
        let a = Berth::start(backend);
        let b = a.peer().start();
        let (ha, hb) = (a.http(), b.http());
        let (v1, v2, v3) = (img("one"), img("two"), img("three"));
        v1.push(&ha, REPO, "live").expect_status(201);
        for h in [&ha, &hb] {
            serves(h, "live", v1.digest());
            serves(h, v1.digest(), v1.digest());
        }
        // Moved on A: both nodes answer the new digest at once.
        v2.push(&ha, REPO, "live").expect_status(201);
        for h in [&ha, &hb] {
            serves(h, "live", v2.digest());
        }
        // Moved on B: the same on A.
        v3.push(&hb, REPO, "live").expect_status(201);
        for h in [&hb, &ha] {
            serves(h, "live", v3.digest());
        }
        // An image deleted on A (by digest) is gone by digest on both nodes.
        ha.delete(&format!("/v2/{REPO}/manifests/{}", v1.digest()))
            .expect_status(202);
        for h in [&ha, &hb] {
            h.get(&format!("/v2/{REPO}/manifests/{}", v1.digest()))
                .expect_oci_error(404, "MANIFEST_UNKNOWN");
            h.head(&format!("/v2/{REPO}/manifests/{}", v1.digest()))
                .expect_status(404);
        }
        // The tagged image deleted on B through the ECR API: its tag is gone on A.
        b.ecr(
            "BatchDeleteImage",
            &json!({"repositoryName": REPO, "imageIds": [{"imageTag": "live"}]}),
        )
        .expect_status(200);
        for h in [&ha, &hb] {
            h.get(&format!("/v2/{REPO}/manifests/live"))
                .expect_oci_error(404, "MANIFEST_UNKNOWN");
        }
        // A repository deleted on A is unknown on B.
        a.ecr("DeleteRepository", &json!({"repositoryName": REPO, "force": true}))
            .expect_status(200);
        hb.get(&format!("/v2/{REPO}/manifests/{}", v2.digest()))
            .expect_oci_error(404, "NAME_UNKNOWN");
    }
}

both_backends! {
    /// Authorization inputs: a repository policy, a repository's resource tags, a
    /// user's identity policy (changed by `berth admin`, another process), the user
    /// itself and its access key — each change applies to the next request on the
    /// other node, after that node had cached the previous state.
    fn policy_tag_user_and_key_changes_are_seen_at_once_on_both_nodes(backend) {
        let a = Berth::start(backend);
        let b = a.peer().start();
        let v1 = img("authz");
        a.ecr("CreateRepository", &json!({"repositoryName": REPO, "tags": [{"Key": "team", "Value": "a"}]}))
            .expect_status(200);
        v1.push(&a.http(), REPO, "v1").expect_status(201);
        let hb_root = b.http();
        serves(&hb_root, "v1", v1.digest());

        // A repository policy set on A that denies pulls applies on B at once.
        let deny = json!({
            "Version": "2012-10-17",
            "Statement": [{"Sid": "nopull", "Effect": "Deny", "Principal": "*", "Action": "ecr:BatchGetImage"}]
        });
        a.ecr("SetRepositoryPolicy", &json!({"repositoryName": REPO, "policyText": deny.to_string()}))
            .expect_status(200);
        for _ in 0..3 {
            hb_root.get(&format!("/v2/{REPO}/manifests/v1")).expect_oci_error(403, "DENIED");
        }
        a.ecr("DeleteRepositoryPolicy", &json!({"repositoryName": REPO})).expect_status(200);
        serves(&hb_root, "v1", v1.digest());

        // A user allowed to pull only repositories tagged team=a (ABAC).
        a.admin(&["user", "create", "dev"]);
        let dev = a.access_key(&["--user", "dev"]);
        a.attach_policy_doc("dev", "p", &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:DescribeRepositories"], "Resource": "*",
             "Condition": {"StringEquals": {"aws:ResourceTag/team": "a"}}}
        ]}));
        let hb = registry_as(&a, &b, &dev);
        serves(&hb, "v1", v1.digest());
        // The tag changed on A: B refuses at once; changed back: B allows at once.
        let arn = a.ecr("DescribeRepositories", &json!({"repositoryNames": [REPO]})).json()
            ["repositories"][0]["repositoryArn"].as_str().unwrap().to_string();
        a.ecr("TagResource", &json!({"resourceArn": arn, "tags": [{"Key": "team", "Value": "b"}]}))
            .expect_status(200);
        hb.get(&format!("/v2/{REPO}/manifests/v1")).expect_oci_error(403, "DENIED");
        a.ecr("TagResource", &json!({"resourceArn": arn, "tags": [{"Key": "team", "Value": "a"}]}))
            .expect_status(200);
        serves(&hb, "v1", v1.digest());

        // The identity policy replaced by `berth admin` (a third process): B
        // follows at once, both ways.
        a.attach_policy_doc("dev", "p", &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Effect": "Allow", "Action": "ecr:DescribeRepositories", "Resource": "*"}
        ]}));
        hb.get(&format!("/v2/{REPO}/manifests/v1")).expect_oci_error(403, "DENIED");
        a.attach_policy_doc("dev", "p", &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:DescribeRepositories"], "Resource": "*"}
        ]}));
        serves(&hb, "v1", v1.digest());

        // The access key disabled by `berth admin`: B refuses its signed calls at once.
        b.ecr_as(&dev, "DescribeRepositories", &json!({"repositoryNames": [REPO]}))
            .expect_status(200);
        a.admin(&["access-key", "disable", &dev.access_key_id]);
        let r = b.ecr_as(&dev, "DescribeRepositories", &json!({"repositoryNames": [REPO]}));
        assert!(r.status == 400 || r.status == 403, "a disabled key was accepted: {}", r.describe());
        a.admin(&["access-key", "enable", &dev.access_key_id]);
        b.ecr_as(&dev, "DescribeRepositories", &json!({"repositoryNames": [REPO]}))
            .expect_status(200);

        // The user deleted by `berth admin`: its token is refused on B at once.
        serves(&hb, "v1", v1.digest());
        a.admin(&["access-key", "delete", &dev.access_key_id]);
        a.admin(&["user", "delete", "dev"]);
        let r = hb.get(&format!("/v2/{REPO}/manifests/v1"));
        assert_eq!(r.status, 401, "a deleted user's token was accepted: {}", r.describe());
    }
}

both_backends! {
    /// The opened-manifest cache (`Registry::manifest_for_serving`): a manifest
    /// sealed under the registry's keys is served from memory with the same bytes
    /// and headers as the first, uncached answer, on GET and HEAD, by tag and by
    /// digest; a manifest under a KMS key is opened on every request, so disabling
    /// the key (`berth admin`, a third process) refuses the next pull on both nodes
    /// after both had served it, and enabling it serves it again.
    fn served_manifests_keep_bytes_headers_and_kms_state(backend) {
        let a = Berth::start(backend);
        let b = a.peer().start();
        let (ha, hb) = (a.http(), b.http());
        let v1 = img("served");
        v1.push(&ha, REPO, "v1").expect_status(201);
        for h in [&ha, &hb] {
            for reference in ["v1", v1.digest()] {
                let path = format!("/v2/{REPO}/manifests/{reference}");
                let first = h.get(&path);
                first.expect_status(200);
                let body = first.body.clone();
                assert_eq!(berth_testsupport::layout::sha256_digest(&body), v1.digest());
                for _ in 0..3 {
                    let r = h.get(&path);
                    r.expect_status(200);
                    assert_eq!(r.body, body, "GET {reference}: the cached bytes");
                    for name in ["content-type", "content-length", "docker-content-digest", "etag"] {
                        assert_eq!(r.header(name), first.header(name), "GET {reference}: {name}");
                    }
                    let r = h.head(&path);
                    r.expect_status(200);
                    assert!(r.body.is_empty(), "HEAD has no body");
                    for name in ["content-type", "content-length", "docker-content-digest", "etag"] {
                        assert_eq!(r.header(name), first.header(name), "HEAD {reference}: {name}");
                    }
                }
                assert_eq!(first.header("content-length"), Some(body.len().to_string().as_str()));
                assert_eq!(first.header("etag"), Some(format!("\"{}\"", v1.digest()).as_str()));
            }
        }

        // A repository under a KMS key.
        a.admin(&["kms", "create", "--alias", "served"]);
        a.ecr(
            "CreateRepository",
            &json!({"repositoryName": "cache/kms", "encryptionConfiguration": {"encryptionType": "KMS", "kmsKey": "alias/served"}}),
        )
        .expect_status(200);
        let k1 = img("kms");
        k1.push(&ha, "cache/kms", "v1").expect_status(201);
        let get = |h: &Http| h.get("/v2/cache/kms/manifests/v1");
        for h in [&ha, &hb] {
            for _ in 0..3 {
                get(h).expect_status(200);
                h.head("/v2/cache/kms/manifests/v1").expect_status(200);
            }
        }
        a.admin(&["kms", "disable", "alias/served"]);
        for h in [&ha, &hb] {
            let r = get(h);
            assert!(r.status >= 400, "a disabled key must refuse the pull: {}", r.describe());
            let r = h.head("/v2/cache/kms/manifests/v1");
            assert!(r.status >= 400, "a disabled key must refuse the HEAD: {}", r.describe());
        }
        a.admin(&["kms", "enable", "alias/served"]);
        for h in [&ha, &hb] {
            let r = get(h);
            r.expect_status(200);
            assert_eq!(berth_testsupport::layout::sha256_digest(&r.body), k1.digest());
        }
    }
}

//! Lifecycle policies with ECR's semantics, run for real: the seed's policy (keep
//! the newest 10 `prod` images, expire untagged images older than 7 days), previews
//! that match runs, and a moved clock instead of waiting a week.

use berth_testsupport::layout::{image, tar_gz_layer, Image, OCI_LAYER_GZIP};
use berth_testsupport::{both_backends, Berth};
use serde_json::{json, Value};

/// The policy exactly as Terraform's `jsonencode` sends the seed's `main.tf` policy.
const SEED_POLICY: &str = r#"{"rules":[{"action":{"type":"expire"},"description":"Keep last 10 'prod' images","rulePriority":1,"selection":{"countNumber":10,"countType":"imageCountMoreThan","tagPrefixList":["prod"],"tagStatus":"tagged"}},{"action":{"type":"expire"},"description":"Delete untagged images older than 7 days","rulePriority":2,"selection":{"countNumber":7,"countType":"sinceImagePushed","countUnit":"days","tagStatus":"untagged"}}]}"#;

fn distinct_image(seed: &str) -> Image {
    let layer = tar_gz_layer(
        OCI_LAYER_GZIP,
        &[("app/version.txt", 0o644, seed.as_bytes().to_vec())],
    );
    image(vec![layer], "amd64", false)
}

fn preview(berth: &Berth) -> Vec<String> {
    let r = berth.ecr(
        "StartLifecyclePolicyPreview",
        &json!({"repositoryName": "app"}),
    );
    r.expect_status(200);
    assert_eq!(r.json()["status"], "IN_PROGRESS");
    let r = berth.ecr(
        "GetLifecyclePolicyPreview",
        &json!({"repositoryName": "app"}),
    );
    r.expect_status(200);
    let v = r.json();
    assert_eq!(v["status"], "COMPLETE");
    let results = v["previewResults"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        v["summary"]["expiringImageTotalCount"].as_u64(),
        Some(results.len() as u64)
    );
    results
        .iter()
        .map(|r| r["imageDigest"].as_str().unwrap_or("").to_string())
        .collect()
}

fn images(berth: &Berth) -> Vec<Value> {
    let r = berth.ecr(
        "DescribeImages",
        &json!({"repositoryName": "app", "maxResults": 1000}),
    );
    r.expect_status(200);
    r.json()["imageDetails"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

both_backends! {
    fn seed_policy_keeps_ten_prod_and_expires_old_untagged(backend) {
        let berth = Berth::start(backend);
        berth.ecr("CreateRepository", &json!({"repositoryName": "app"})).expect_status(200);
        let r = berth.ecr("PutLifecyclePolicy", &json!({"repositoryName": "app", "lifecyclePolicyText": SEED_POLICY}));
        r.expect_status(200);
        let http = berth.http();
        let mut prod = Vec::new();
        for i in 0..15 {
            let img = distinct_image(&format!("prod {i}"));
            img.push(&http, "app", &format!("prod-{i}")).expect_status(201);
            prod.push(img.digest().to_string());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let dev = distinct_image("dev");
        dev.push(&http, "app", "dev-1").expect_status(201);
        let mut untagged = Vec::new();
        for i in 0..3 {
            let img = distinct_image(&format!("scratch {i}"));
            img.push(&http, "app", img.digest()).expect_status(201);
            untagged.push(img.digest().to_string());
        }
        assert_eq!(images(&berth).len(), 19);

        // Today: rule 1 expires the 5 oldest prod images; the untagged ones are young.
        let mut want: Vec<String> = prod[..5].to_vec();
        assert_eq!(preview(&berth), want, "preview lists the oldest prod images, oldest first");
        let out = berth.admin(&["lifecycle", "run", "--repository", "app"]);
        assert!(out.contains("5 image(s) expired"), "{out}");
        let left: Vec<String> = images(&berth).iter().map(|d| d["imageDigest"].as_str().unwrap_or("").to_string()).collect();
        assert_eq!(left.len(), 14);
        for d in &want {
            assert!(!left.contains(d), "{d} should have expired");
        }
        for d in prod[5..].iter().chain(untagged.iter()).chain([dev.digest().to_string()].iter()) {
            assert!(left.contains(d), "{d} should be kept");
        }
        http.get("/v2/app/manifests/prod-0").expect_oci_error(404, "MANIFEST_UNKNOWN");
        http.get("/v2/app/manifests/prod-14").expect_status(200);
        let r = berth.ecr("GetLifecyclePolicy", &json!({"repositoryName": "app"}));
        assert!(r.json()["lastEvaluatedAt"].is_number(), "lastEvaluatedAt after a run");

        // Seven days and a bit later: the untagged images go, prod stays at 10.
        let later = [("BERTH_CLOCK_OFFSET_SECS", "605000")];
        let dry = berth.admin_with(&later, &["lifecycle", "run", "--dry-run"]);
        assert!(dry.contains("3 image(s) would expire"), "{dry}");
        for d in &untagged {
            assert!(dry.contains(d.as_str()), "dry run lists {d}: {dry}");
        }
        assert_eq!(images(&berth).len(), 14, "a dry run deletes nothing");
        let out = berth.admin_with(&later, &["lifecycle", "run"]);
        assert!(out.contains("3 image(s) expired"), "{out}");
        let left = images(&berth);
        assert_eq!(left.len(), 11);
        let prod_left = left.iter().filter(|d| d["imageTags"].as_array().is_some_and(|t| t.iter().any(|t| t.as_str().is_some_and(|t| t.starts_with("prod"))))).count();
        assert_eq!(prod_left, 10);
        want.clear();
        assert_eq!(preview(&berth), want, "nothing more to expire today");

        // Each expiry is in the audit log with its rule.
        let audit = berth.admin(&["audit", "--limit", "100"]);
        assert_eq!(audit.matches("ecr:LifecycleExpireImage").count(), 8, "{audit}");
    }
}

both_backends! {
    fn preview_with_policy_text_and_errors(backend) {
        let berth = Berth::start(backend);
        berth.ecr("CreateRepository", &json!({"repositoryName": "app"})).expect_status(200);
        // No policy and no text: LifecyclePolicyNotFoundException; no preview yet.
        let r = berth.ecr("StartLifecyclePolicyPreview", &json!({"repositoryName": "app"}));
        r.expect_status(400);
        assert_eq!(r.json()["__type"], "LifecyclePolicyNotFoundException");
        let r = berth.ecr("GetLifecyclePolicyPreview", &json!({"repositoryName": "app"}));
        assert_eq!(r.json()["__type"], "LifecyclePolicyPreviewNotFoundException");
        // An invalid policy is refused with ECR's exception.
        let bad = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
        let r = berth.ecr("PutLifecyclePolicy", &json!({"repositoryName": "app", "lifecyclePolicyText": bad}));
        r.expect_status(400);
        assert_eq!(r.json()["__type"], "InvalidParameterException");
        // A preview of given text needs no stored policy and stores nothing.
        let http = berth.http();
        for i in 0..3 {
            distinct_image(&format!("v{i}")).push(&http, "app", &format!("v{i}")).expect_status(201);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let text = r#"{"rules":[{"rulePriority":1,"description":"keep one","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
        berth.ecr("StartLifecyclePolicyPreview", &json!({"repositoryName": "app", "lifecyclePolicyText": text})).expect_status(200);
        let r = berth.ecr("GetLifecyclePolicyPreview", &json!({"repositoryName": "app", "maxResults": 1}));
        let v = r.json();
        assert_eq!(v["previewResults"].as_array().map(Vec::len), Some(1));
        assert_eq!(v["summary"]["expiringImageTotalCount"], 2);
        assert_eq!(v["previewResults"][0]["imageTags"], json!(["v0"]));
        assert_eq!(v["previewResults"][0]["appliedRulePriority"], 1);
        let tok = v["nextToken"].as_str().expect("nextToken").to_string();
        let r = berth.ecr("GetLifecyclePolicyPreview", &json!({"repositoryName": "app", "maxResults": 1, "nextToken": tok}));
        assert_eq!(r.json()["previewResults"][0]["imageTags"], json!(["v1"]));
        assert!(r.json().get("nextToken").is_none());
        let r = berth.ecr("GetLifecyclePolicy", &json!({"repositoryName": "app"}));
        assert_eq!(r.json()["__type"], "LifecyclePolicyNotFoundException");
    }
}

both_backends! {
    fn expiry_in_batches_takes_referrers_and_keeps_what_an_index_lists(backend) {
        use berth_testsupport::layout::{artifact, put_manifest, Blob, OCI_INDEX, SBOM_ARTIFACT_TYPE};
        let berth = Berth::start(backend);
        berth.ecr("CreateRepository", &json!({"repositoryName": "app"})).expect_status(200);
        let policy = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
        berth
            .ecr("PutLifecyclePolicy", &json!({"repositoryName": "app", "lifecyclePolicyText": policy}))
            .expect_status(200);
        let http = berth.http();
        // More untagged images than one deletion batch holds (64).
        let imgs: Vec<Image> = (0..70).map(|i| distinct_image(&format!("old {i}"))).collect();
        for img in &imgs {
            img.push(&http, "app", img.digest()).expect_status(201);
        }
        // The oldest has a signature-like referrer; the next is listed by a tagged index.
        let sbom = artifact(SBOM_ARTIFACT_TYPE, b"sbom".to_vec(), &imgs[0].manifest);
        sbom.push(&http, "app", sbom.digest()).expect_status(201);
        let index = Blob::json(
            OCI_INDEX,
            &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [imgs[1].manifest.descriptor()]}),
        );
        put_manifest(&http, "app", "multi", &index).expect_status(201);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let newest = distinct_image("newest");
        newest.push(&http, "app", newest.digest()).expect_status(201);

        let out = berth.admin(&["lifecycle", "run", "--repository", "app"]);
        let expired: usize = out
            .split_whitespace()
            .zip(out.split_whitespace().skip(1))
            .find_map(|(n, w)| (w == "image(s)").then(|| n.parse().ok()).flatten())
            .unwrap_or_else(|| panic!("no count in {out:?}"));
        // Every untagged image but the newest and the one the index lists.
        assert_eq!(expired, 69, "{out}");
        let get = |d: &str| http.get(&format!("/v2/app/manifests/{d}")).status;
        assert_eq!(get(imgs[0].digest()), 404, "the oldest expired");
        assert_eq!(get(sbom.digest()), 404, "its referrer went with it");
        assert_eq!(get(imgs[1].digest()), 200, "an index still lists it");
        assert_eq!(get("multi"), 200);
        assert_eq!(get(newest.digest()), 200);
        for img in &imgs[2..] {
            assert_eq!(get(img.digest()), 404, "{} should have expired", img.digest());
        }
        // One audit record per expired image, chained like every record.
        let audit = berth.admin(&["audit", "--limit", "500"]);
        assert_eq!(audit.matches("ecr:LifecycleExpireImage").count(), 69, "{audit}");
        let verify = berth.admin(&["audit", "verify"]);
        assert!(verify.contains("OK"), "{verify}");
    }
}

//! Events and webhooks: a receiver started by the test checks every request's
//! `X-Berth-Signature`; pushes, deletes and tag deletes produce ECR "ECR Image
//! Action" events with the right digests; a receiver that is down gets every event
//! afterwards, in order per repository; a server killed right after acknowledged
//! pushes delivers every one of their events after its restart.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use berth_testsupport::layout::{image, tar_gz_layer, Image, OCI_LAYER_GZIP};
use berth_testsupport::webhook::{Received, Receiver};
use berth_testsupport::{both_backends, Backend, Berth, BerthOptions, Layout, TempDir};
use serde_json::Value;

const SECRET: &str = "s3cret-for-the-test";

/// A server whose config file has one `[[webhook]]` pointing at `url`.
fn with_webhook(backend: Backend, cfg_dir: &TempDir, extra: &str) -> BerthOptions {
    let path = cfg_dir.join("berth.toml");
    std::fs::write(&path, extra).unwrap();
    Berth::options(backend).env("BERTH_CONFIG", path.to_str().unwrap())
}

fn webhook_toml(url: &str, more: &str) -> String {
    format!("[[webhook]]\nname = \"ci\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n{more}\n")
}

fn small_image(seed: &str) -> Image {
    let layer = tar_gz_layer(
        OCI_LAYER_GZIP,
        &[("etc/marker", 0o644, seed.as_bytes().to_vec())],
    );
    image(vec![layer], "amd64", false)
}

fn image_actions(ev: &[Received]) -> Vec<&Value> {
    ev.iter()
        .map(|r| &r.body)
        .filter(|b| b["detail-type"] == "ECR Image Action")
        .collect()
}

both_backends! {
    fn push_and_delete_events(backend) {
        let mut rx = Receiver::signed(SECRET);
        let cfg = TempDir::new("events-cfg");
        let berth = with_webhook(backend, &cfg, &webhook_toml(&rx.url(), "")).start();
        let src = TempDir::new("layout");
        let layout = Layout::build(src.path());
        let sk = berth.skopeo();
        sk.copy(&layout.oci_ref("single"), &berth.docker_ref("team/app:v1"), &[]);
        sk.copy(&layout.oci_ref("single"), &berth.docker_ref("team/app:v2"), &[]);
        let digest = layout.image.digest().to_string();
        rx.wait_until("two PUSH events", Duration::from_secs(20), |ev| image_actions(ev).len() >= 2);
        let ev = rx.events();
        let pushes = image_actions(&ev);
        assert_eq!(pushes.len(), 2, "one PUSH event per tag: {pushes:?}");
        for (e, tag) in pushes.iter().zip(["v1", "v2"]) {
            assert_eq!(e["version"], "0");
            assert_eq!(e["source"], "aws.ecr");
            assert_eq!(e["account"], "123456789012");
            assert_eq!(e["region"], "us-east-1");
            assert!(e["time"].as_str().unwrap().ends_with('Z'));
            assert!(e["resources"].is_array());
            let d = &e["detail"];
            assert_eq!(d["action-type"], "PUSH");
            assert_eq!(d["result"], "SUCCESS");
            assert_eq!(d["repository-name"], "team/app");
            assert_eq!(d["image-digest"], digest.as_str());
            assert_eq!(d["image-tag"], tag);
        }
        // Every request carries the event id for de-duplication.
        for r in &ev {
            assert_eq!(
                r.headers.get("x-berth-event-id").map(String::as_str),
                r.body["id"].as_str()
            );
        }
        // A pushed-again identical tag is no change and no event.
        sk.copy(&layout.oci_ref("single"), &berth.docker_ref("team/app:v2"), &[]);

        // Deleting a tag, then the manifest by digest: DELETE events.
        let http = berth.http();
        http.delete("/v2/team/app/manifests/v2").expect_status(202);
        http.delete(&format!("/v2/team/app/manifests/{digest}")).expect_status(202);
        rx.wait_until("two DELETE events", Duration::from_secs(20), |ev| {
            image_actions(ev).iter().filter(|e| e["detail"]["action-type"] == "DELETE").count() >= 2
        });
        let ev = rx.events();
        let deletes: Vec<_> = image_actions(&ev)
            .into_iter()
            .filter(|e| e["detail"]["action-type"] == "DELETE")
            .map(|e| (e["detail"]["image-tag"].clone(), e["detail"]["image-digest"].clone()))
            .collect();
        assert_eq!(
            deletes,
            vec![
                (Value::from("v2"), Value::from(digest.as_str())),
                (Value::from("v1"), Value::from(digest.as_str())),
            ]
        );
        assert_eq!(image_actions(&ev).len(), 4, "no event for the unchanged push");
        rx.assert_signatures();
        let m = http.get("/metrics").text();
        assert!(m.contains("berth_webhook_delivered_total 4"), "{m}");
        rx.down();
    }
}

both_backends! {
    fn receiver_down_then_every_event_in_order(backend) {
        let mut rx = Receiver::signed(SECRET);
        let cfg = TempDir::new("events-cfg");
        let berth = with_webhook(backend, &cfg, &webhook_toml(&rx.url(), "")).start();
        let http = berth.http();
        rx.down();
        let down_at = Instant::now();
        let mut pushed: HashMap<&str, Vec<String>> = HashMap::new();
        for i in 0..6 {
            for repo in ["order/a", "order/b"] {
                let img = small_image(&format!("{repo}-{i}"));
                let tag = format!("t{i}");
                img.push(&http, repo, &tag).expect_status(201);
                pushed.entry(repo).or_default().push(tag);
            }
        }
        // Down for 10 s while deliveries fail and back off.
        std::thread::sleep(Duration::from_secs(10).saturating_sub(down_at.elapsed()));
        rx.resume();
        rx.wait_until("12 PUSH events", Duration::from_secs(60), |ev| image_actions(ev).len() >= 12);
        let ev = rx.events();
        for (repo, tags) in &pushed {
            let got: Vec<String> = image_actions(&ev)
                .iter()
                .filter(|e| e["detail"]["repository-name"] == *repo)
                .map(|e| e["detail"]["image-tag"].as_str().unwrap().to_string())
                .collect();
            // At least once: a retried batch may repeat an event (same id), never reorder.
            let mut dedup = got.clone();
            dedup.dedup();
            assert_eq!(&dedup, tags, "events of {repo} out of order: {got:?}");
        }
        rx.assert_signatures();
        let m = http.get("/metrics").text();
        let retried: u64 = m
            .lines()
            .find_map(|l| l.strip_prefix("berth_webhook_retried_total "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(retried > 0, "deliveries were retried while the receiver was down");
    }
}

both_backends! {
    fn killed_after_acknowledged_pushes_loses_no_event(backend) {
        let mut rx = Receiver::signed(SECRET);
        rx.down();
        let cfg = TempDir::new("events-cfg");
        let mut berth = with_webhook(backend, &cfg, &webhook_toml(&rx.url(), "")).start();
        let http = berth.http();
        let mut digests = Vec::new();
        for i in 0..8 {
            let img = small_image(&format!("crash-{i}"));
            img.push(&http, "crash/app", &format!("v{i}")).expect_status(201);
            digests.push(img.digest().to_string());
        }
        berth.kill9();
        rx.resume();
        berth.restart();
        rx.wait_until("8 PUSH events after the restart", Duration::from_secs(60), |ev| {
            let ids: std::collections::HashSet<_> =
                image_actions(ev).iter().map(|e| e["id"].clone()).collect();
            ids.len() >= 8
        });
        let ev = rx.events();
        let mut by_id: HashMap<String, Value> = HashMap::new();
        for e in image_actions(&ev) {
            let id = e["id"].as_str().unwrap().to_string();
            if let Some(prev) = by_id.get(&id) {
                assert_eq!(prev, e, "a duplicate carries the same event");
            }
            by_id.insert(id, e.clone());
        }
        let mut got: Vec<String> = by_id
            .values()
            .map(|e| e["detail"]["image-digest"].as_str().unwrap().to_string())
            .collect();
        got.sort();
        digests.sort();
        assert_eq!(got, digests);
        rx.assert_signatures();
    }
}

#[test]
fn admin_webhook_add_list_test_remove_and_cloudevents() {
    let rx = Receiver::signed(SECRET);
    let berth = Berth::start(Backend::Sqlite);
    berth.admin(&[
        "webhook",
        "add",
        "--name",
        "ce",
        "--url",
        &rx.url(),
        "--secret",
        SECRET,
        "--format",
        "cloudevents",
        "--detail-type",
        "ECR Image Action",
        "--repository-prefix",
        "prod/",
    ]);
    let list = berth.admin(&["webhook", "list"]);
    assert!(
        list.contains("ce\t") && list.contains("cloudevents"),
        "{list}"
    );
    assert!(!list.contains(SECRET), "the secret is never listed");
    let http = berth.http();
    small_image("dev")
        .push(&http, "dev/app", "v1")
        .expect_status(201);
    let img = small_image("prod");
    img.push(&http, "prod/app", "v1").expect_status(201);
    rx.wait_until("the prod push", Duration::from_secs(20), |ev| {
        !ev.is_empty()
    });
    std::thread::sleep(Duration::from_millis(800));
    let ev = rx.events();
    assert_eq!(ev.len(), 1, "only prod/ events: {ev:?}");
    let h = &ev[0].headers;
    assert_eq!(h.get("ce-specversion").map(String::as_str), Some("1.0"));
    assert_eq!(
        h.get("ce-type").map(String::as_str),
        Some("ECR Image Action")
    );
    assert!(h.get("ce-id").is_some());
    assert_eq!(ev[0].body["image-digest"], img.digest());
    berth.admin(&["webhook", "test", "ce"]);
    rx.wait_until("the test delivery", Duration::from_secs(10), |ev| {
        ev.len() == 2
    });
    rx.assert_signatures();
    berth.admin(&["webhook", "remove", "ce"]);
    assert!(!berth.admin(&["webhook", "list"]).contains("ce\t"));
}

both_backends! {
    fn cloudtrail_lookup_events_finds_a_delete_repository(backend) {
        let berth = Berth::start(backend);
        let root = berth.root_credentials();
        for name in ["gone/app", "kept/app"] {
            berth.aws_ok(&root, &["ecr", "create-repository", "--repository-name", name]);
        }
        berth.aws_ok(&root, &["ecr", "delete-repository", "--repository-name", "gone/app"]);
        let v = berth.aws_ok(&root, &[
            "cloudtrail", "lookup-events", "--lookup-attributes",
            "AttributeKey=ResourceName,AttributeValue=gone/app",
        ]);
        let names: Vec<&str> = v["Events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["EventName"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["DeleteRepository", "CreateRepository"], "{v}");
        let e = &v["Events"][0];
        assert_eq!(e["EventSource"], "ecr.amazonaws.com");
        assert_eq!(e["Username"], "root");
        assert_eq!(e["Resources"][0]["ResourceName"], "gone/app");
        let trail: Value = serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap();
        assert_eq!(trail["eventName"], "DeleteRepository");

        // By event name, and paginated one record a page.
        let v = berth.aws_ok(&root, &[
            "cloudtrail", "lookup-events", "--lookup-attributes",
            "AttributeKey=EventName,AttributeValue=CreateRepository",
            "--max-results", "1", "--no-paginate",
        ]);
        assert_eq!(v["Events"].as_array().unwrap().len(), 1);
        assert_eq!(v["Events"][0]["Resources"][0]["ResourceName"], "kept/app");
        let token = v["NextToken"].as_str().expect("a next page").to_string();
        let v = berth.aws_ok(&root, &[
            "cloudtrail", "lookup-events", "--lookup-attributes",
            "AttributeKey=EventName,AttributeValue=CreateRepository",
            "--max-results", "1", "--no-paginate", "--next-token", &token,
        ]);
        assert_eq!(v["Events"][0]["Resources"][0]["ResourceName"], "gone/app");
        assert!(v.get("NextToken").is_none(), "{v}");

        // A time range before any of it finds nothing.
        let v = berth.aws_ok(&root, &[
            "cloudtrail", "lookup-events", "--start-time", "2001-01-01T00:00:00Z",
            "--end-time", "2001-01-02T00:00:00Z",
        ]);
        assert_eq!(v["Events"].as_array().unwrap().len(), 0);
        berth.aws_err(&root, &[
            "cloudtrail", "lookup-events", "--lookup-attributes",
            "AttributeKey=EventId,AttributeValue=1",
        ], "InvalidLookupAttributesException");
    }
}

/// Every file under `dir`, sorted.
fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
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

/// The npm part of the scanning fixture (`fixtures/vuln/EXPECTED.md`; its
/// minimist finding is CRITICAL).
fn npm_fixture_image() -> Image {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vuln/npm-app");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let owned: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| {
            (
                format!("app/{}", f.strip_prefix(&root).unwrap().display()),
                std::fs::read(f).unwrap(),
            )
        })
        .collect();
    let list: Vec<(&str, u32, Vec<u8>)> = owned
        .iter()
        .map(|(p, d)| (p.as_str(), 0o644, d.clone()))
        .collect();
    image(vec![tar_gz_layer(OCI_LAYER_GZIP, &list)], "amd64", false)
}

both_backends! {
    fn scan_completion_event_carries_the_counts(backend) {
        let rx = Receiver::signed(SECRET);
        let cfg = TempDir::new("events-cfg");
        let berth = with_webhook(
            backend,
            &cfg,
            &webhook_toml(&rx.url(), "detail_types = [\"ECR Image Scan\", \"ECR Image Action\"]"),
        )
        .start();
        let adv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vuln/advisories");
        berth.command(&[], &["vulndb", "import", adv.to_str().unwrap()]);
        berth.ecr("CreateRepository", &serde_json::json!({
            "repositoryName": "scan/app",
            "imageScanningConfiguration": {"scanOnPush": true},
        })).expect_status(200);
        let img = npm_fixture_image();
        img.push(&berth.http(), "scan/app", "v1").expect_status(201);
        rx.wait_until("the scan event", Duration::from_secs(60), |ev| {
            ev.iter().any(|r| r.body["detail-type"] == "ECR Image Scan")
        });
        // The counts the API reports are the counts the event carries.
        let f = berth.ecr("DescribeImageScanFindings", &serde_json::json!({
            "repositoryName": "scan/app", "imageId": {"imageTag": "v1"},
        })).json();
        let want = f["imageScanFindings"]["findingSeverityCounts"].clone();
        assert!(want["CRITICAL"].as_u64().unwrap_or(0) >= 1, "{f}");
        let ev = rx.events();
        let scan = &ev.iter().find(|r| r.body["detail-type"] == "ECR Image Scan").unwrap().body;
        assert_eq!(scan["detail"]["scan-status"], "COMPLETE");
        assert_eq!(scan["detail"]["repository-name"], "scan/app");
        assert_eq!(scan["detail"]["image-digest"], img.digest());
        assert_eq!(scan["detail"]["image-tags"], serde_json::json!(["v1"]));
        assert_eq!(scan["detail"]["finding-severity-counts"], want);
        assert_eq!(
            scan["resources"],
            serde_json::json!(["arn:aws:ecr:us-east-1:123456789012:repository/scan/app"])
        );

        rx.assert_signatures();
    }
}

both_backends! {
    fn lifecycle_expiry_is_a_delete_event(backend) {
        let rx = Receiver::signed(SECRET);
        let cfg = TempDir::new("events-cfg");
        let berth = with_webhook(backend, &cfg, &webhook_toml(&rx.url(), "")).start();
        let http = berth.http();
        let old = small_image("old");
        old.push(&http, "life/app", "old").expect_status(201);
        std::thread::sleep(Duration::from_millis(1100));
        small_image("new").push(&http, "life/app", "new").expect_status(201);
        let policy = serde_json::json!({"rules": [{
            "rulePriority": 1,
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
            "action": {"type": "expire"},
        }]});
        berth.ecr("PutLifecyclePolicy", &serde_json::json!({
            "repositoryName": "life/app", "lifecyclePolicyText": policy.to_string(),
        })).expect_status(200);
        berth.admin(&["lifecycle", "run", "--repository", "life/app"]);
        rx.wait_until("the expiry's DELETE", Duration::from_secs(20), |ev| {
            image_actions(ev).iter().any(|e| e["detail"]["action-type"] == "DELETE")
        });
        let ev = rx.events();
        let deletes: Vec<_> = image_actions(&ev)
            .into_iter()
            .filter(|e| e["detail"]["action-type"] == "DELETE")
            .collect();
        assert_eq!(deletes.len(), 1, "{deletes:?}");
        assert_eq!(deletes[0]["detail"]["repository-name"], "life/app");
        assert_eq!(deletes[0]["detail"]["image-digest"], old.digest());
        assert_eq!(deletes[0]["detail"]["image-tag"], "old");
        rx.assert_signatures();
    }
}

#[test]
fn dead_letters_are_listed_and_redelivered_in_order() {
    let mut rx = Receiver::signed(SECRET);
    rx.down();
    let cfg = TempDir::new("events-cfg");
    let berth = with_webhook(Backend::Sqlite, &cfg, &webhook_toml(&rx.url(), ""))
        .env("BERTH_WEBHOOK_MAX_ATTEMPTS", "2")
        .start();
    let http = berth.http();
    for i in 0..3 {
        small_image(&format!("dead-{i}"))
            .push(&http, "dead/app", &format!("v{i}"))
            .expect_status(201);
    }
    // Two failed attempts park the stream: a dead letter.
    let start = Instant::now();
    let id = loop {
        let out = berth.admin(&["webhook", "failures"]);
        if let Some(line) = out.lines().find(|l| l.contains("dead/app")) {
            assert!(line.contains("\tci\t"), "{out}");
            assert!(
                line.contains("cannot connect") || line.contains("request failed"),
                "{out}"
            );
            break line.split('\t').next().unwrap().to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no dead letter: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    rx.resume();
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        rx.events().is_empty(),
        "a dead letter waits for its redelivery"
    );
    berth.admin(&["webhook", "redeliver", &id]);
    rx.wait_until("the three pushes", Duration::from_secs(20), |ev| {
        image_actions(ev).len() >= 3
    });
    let ev = rx.events();
    let tags: Vec<_> = image_actions(&ev)
        .iter()
        .map(|e| e["detail"]["image-tag"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tags, ["v0", "v1", "v2"]);
    assert!(!berth.admin(&["webhook", "failures"]).contains("dead/app"));
    let m = http.get("/metrics").text();
    assert!(m.contains("berth_webhook_dead_lettered_total 1"), "{m}");
    rx.assert_signatures();
}

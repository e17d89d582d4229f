//! `berth admin bench-fill` (the scale benchmark's filler, batched manifest
//! writes through the core: `crates/registry/src/bulk.rs`,
//! `crates/store/src/meta/bulk_put.rs`) leaves a registry that is consistent:
//! every image listed, paged and described with its tag (or none), pulled with
//! its blobs verified, one PUSH event per image, nothing for the collector until
//! images are deleted (then exactly their own layers), and a second identical
//! fill changes nothing and records no event.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use berth_testsupport::webhook::{Received, Receiver};
use berth_testsupport::{both_backends, Berth, TempDir};
use serde_json::{json, Value};

const SECRET: &str = "bulk-fill-webhook-secret";
const REPOS: usize = 4;
const IMAGES: usize = 130;
const BIG: usize = 40;
/// Manifests per transaction: several batches per repository.
const BATCH: &str = "16";
/// Every fifth image of a repository has a layer of its own.
const UNIQUE_EVERY: usize = 5;

fn sha256(b: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, b);
    let hex: String = d.as_ref().iter().map(|x| format!("{x:02x}")).collect();
    format!("sha256:{hex}")
}

fn pushes(ev: &[Received]) -> Vec<&Value> {
    ev.iter()
        .map(|r| &r.body)
        .filter(|b| b["detail-type"] == "ECR Image Action" && b["detail"]["action-type"] == "PUSH")
        .collect()
}

fn fill(berth: &Berth, ids: &std::path::Path) -> String {
    berth.admin(&[
        "bench-fill",
        "--repositories",
        &REPOS.to_string(),
        "--images",
        &IMAGES.to_string(),
        "--big-repository-images",
        &BIG.to_string(),
        "--batch",
        BATCH,
        "--unique-every",
        &UNIQUE_EVERY.to_string(),
        "--ids-out",
        ids.to_str().unwrap(),
    ])
}

/// Every image of `repo` as (digest, tag or ""), paging `ListImages` by 7.
fn list_images(berth: &Berth, repo: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({ "repositoryName": repo, "maxResults": 7 });
        if let Some(t) = &token {
            body["nextToken"] = json!(t);
        }
        let r = berth.ecr("ListImages", &body);
        r.expect_status(200);
        let v = r.json();
        for id in v["imageIds"].as_array().unwrap() {
            let fresh = out.insert((
                id["imageDigest"].as_str().unwrap().to_string(),
                id["imageTag"].as_str().unwrap_or_default().to_string(),
            ));
            assert!(fresh, "an entry twice: {id}");
        }
        match v["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => return out,
        }
    }
}

both_backends! {
    fn bench_fill_leaves_a_consistent_registry(backend) {
        let rx = Receiver::signed(SECRET);
        let cfg = TempDir::new("bulk-fill-cfg");
        let path = cfg.join("berth.toml");
        std::fs::write(
            &path,
            format!("[[webhook]]\nname = \"bulk\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n", rx.url()),
        )
        .unwrap();
        let berth = Berth::options(backend).env("BERTH_CONFIG", path.to_str().unwrap()).start();
        let ids = cfg.join("ids.tsv");
        let said = fill(&berth, &ids);
        assert!(said.contains(&format!("filled {IMAGES} images")), "{said}");

        // The layout bench-fill documents: bench/big, then bench/r00001… evenly.
        let mut expected: BTreeMap<String, usize> = BTreeMap::new();
        expected.insert("bench/big".into(), BIG);
        let others = REPOS - 1;
        let rest = IMAGES - BIG;
        for r in 1..=others {
            expected.insert(format!("bench/r{r:05}"), rest / others + usize::from(r - 1 < rest % others));
        }
        let mut all: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
        for (repo, n) in &expected {
            let images = list_images(&berth, repo);
            assert_eq!(images.len(), *n, "{repo}: {images:?}");
            let untagged = images.iter().filter(|(_, t)| t.is_empty()).count();
            assert_eq!(untagged, (0..*n).filter(|j| j % 4 == 3).count(), "{repo}");
            let tags: BTreeSet<String> =
                images.iter().filter(|(_, t)| !t.is_empty()).map(|(_, t)| t.clone()).collect();
            let want: BTreeSet<String> =
                (0..*n).filter(|j| j % 4 != 3).map(|j| format!("v{j}")).collect();
            assert_eq!(tags, want, "{repo}");
            all.insert(repo.clone(), images);
        }
        // DescribeRepositories and the catalog list exactly these repositories.
        let v = berth.ecr("DescribeRepositories", &json!({})).json();
        let names: BTreeSet<String> = v["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["repositoryName"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, expected.keys().cloned().collect::<BTreeSet<_>>());
        let http = berth.http();
        let cat = http.get("/v2/_catalog?n=2").expect_status(200).json();
        assert_eq!(cat["repositories"], json!(["bench/big", "bench/r00001"]));

        // DescribeImages: each image's size is its layers', its tag the listed one.
        let v = berth
            .ecr("DescribeImages", &json!({ "repositoryName": "bench/r00002", "imageIds": [{ "imageTag": "v5" }] }))
            .json();
        let d = &v["imageDetails"][0];
        assert_eq!(d["imageTags"], json!(["v5"]));
        assert!(d["imageSizeInBytes"].as_i64().unwrap() > 0, "{d}");

        // Pulls: a tagged image with a layer of its own and an untagged one,
        // every blob read back and checked against its digest.
        let untagged = all["bench/big"].iter().find(|(_, t)| t.is_empty()).unwrap().0.clone();
        for (repo, reference) in [("bench/big", "v0".to_string()), ("bench/big", untagged), ("bench/r00003", "v10".into())] {
            let m = http.get(&format!("/v2/{repo}/manifests/{reference}")).expect_status(200).clone();
            let digest = sha256(&m.body);
            assert_eq!(m.header("docker-content-digest"), Some(digest.as_str()));
            let m = m.json();
            let mut blobs = vec![m["config"]["digest"].as_str().unwrap().to_string()];
            for l in m["layers"].as_array().unwrap() {
                blobs.push(l["digest"].as_str().unwrap().to_string());
            }
            for b in blobs {
                let r = http.get(&format!("/v2/{repo}/blobs/{b}")).expect_status(200).clone();
                assert_eq!(sha256(&r.body), b);
            }
        }

        // One PUSH event per image, each naming a listed image.
        rx.wait_until("a PUSH event per image", Duration::from_secs(60), |ev| pushes(ev).len() >= IMAGES);
        let ev = rx.events();
        let ev = pushes(&ev);
        assert_eq!(ev.len(), IMAGES);
        for e in &ev {
            let d = &e["detail"];
            let repo = d["repository-name"].as_str().unwrap();
            let key = (
                d["image-digest"].as_str().unwrap().to_string(),
                d["image-tag"].as_str().unwrap_or_default().to_string(),
            );
            assert!(all[repo].contains(&key), "an event for an image not listed: {d}");
        }

        // Nothing to collect in a freshly filled registry.
        let out = berth.admin(&["gc", "--grace-secs", "0"]);
        assert!(out.contains("reclaimed 0 blob(s)"), "{out}");

        // Filled again with the same images: nothing changes, no event.
        let said = fill(&berth, &ids);
        assert!(said.contains(&format!("filled {IMAGES} images")), "{said}");
        for (repo, images) in &all {
            assert_eq!(&list_images(&berth, repo), images, "{repo}");
        }
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(pushes(&rx.events()).len(), IMAGES, "no event for an unchanged image");

        // Deleting the images with a layer of their own frees exactly those layers.
        let text = std::fs::read_to_string(&ids).unwrap();
        let mut by_repo: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for l in text.lines() {
            let (r, d) = l.split_once('\t').unwrap();
            by_repo.entry(r).or_default().push(d);
        }
        let own: usize = expected.values().map(|n| n.div_ceil(UNIQUE_EVERY)).sum();
        assert_eq!(by_repo.values().map(Vec::len).sum::<usize>(), own);
        for (repo, digests) in &by_repo {
            let r = berth.ecr(
                "BatchDeleteImage",
                &json!({ "repositoryName": repo, "imageIds": digests.iter().map(|d| json!({ "imageDigest": d })).collect::<Vec<_>>() }),
            );
            r.expect_status(200);
            assert_eq!(r.json()["failures"], json!([]), "{repo}");
        }
        let out = berth.admin(&["gc", "--grace-secs", "0"]);
        assert!(out.contains(&format!("reclaimed {own} blob(s)")), "{out}");
        let v = berth.ecr("DescribeImages", &json!({ "repositoryName": "bench/big", "imageIds": [{ "imageTag": "v1" }] }));
        v.expect_status(200);
        http.get("/v2/bench/big/manifests/v1").expect_status(200);
    }
}

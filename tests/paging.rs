//! Keyset pagination of every list a client pages through — `ListImages`,
//! `DescribeImages`, `DescribeRepositories`, `/v2/_catalog` and
//! `/v2/<name>/tags/list` — against a real `berth serve`, with images, tags and
//! repositories added and deleted between pages: no entry comes twice, every entry
//! that existed throughout comes once, and the order is the documented one
//! (digest then tag for the image lists, name for repositories, lexical tags).

use std::collections::{BTreeSet, HashSet};

use base64::Engine as _;
use berth_testsupport::ecr::{self, Credentials};
use berth_testsupport::layout::{push_blob, put_manifest, Blob};
use berth_testsupport::{both_backends, Berth, Http, Response};
use serde_json::{json, Value};

const ECR: &str = "AmazonEC2ContainerRegistry_V20150921";

fn root() -> Credentials {
    Credentials {
        access_key_id: ecr::TEST_ACCESS_KEY_ID.into(),
        secret_access_key: ecr::TEST_SECRET_ACCESS_KEY.into(),
    }
}

fn call(berth: &Berth, op: &str, body: &Value) -> Value {
    let r = ecr::call(
        &Http::new(berth.addr()),
        &berth.host(),
        &root(),
        ecr::TEST_REGION,
        "ecr",
        &format!("{ECR}.{op}"),
        body,
    );
    r.expect_status(200);
    r.json()
}

fn registry_http(berth: &Berth) -> Http {
    let v = call(berth, "GetAuthorizationToken", &json!({}));
    let token = v["authorizationData"][0]["authorizationToken"]
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

/// Pushes the shared config and layer every image of the test references.
fn shared_blobs(http: &Http, repo: &str) -> (Blob, Blob) {
    let config = Blob::json(
        "application/vnd.oci.image.config.v1+json",
        &json!({ "architecture": "amd64", "os": "linux", "rootfs": { "type": "layers", "diff_ids": [] } }),
    );
    let layer = Blob::new(
        "application/vnd.oci.image.layer.v1.tar",
        b"paging layer".to_vec(),
    );
    push_blob(http, repo, &config);
    push_blob(http, repo, &layer);
    (config, layer)
}

/// A distinct manifest over the shared blobs.
fn manifest(shared: &(Blob, Blob), seed: u32) -> Blob {
    Blob::json(
        "application/vnd.oci.image.manifest.v1+json",
        &json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": shared.0.descriptor(),
            "layers": [shared.1.descriptor()],
            "annotations": { "seed": seed.to_string() },
        }),
    )
}

/// An image id as a comparable (digest, tag) key; "" for an untagged image.
fn key(v: &Value) -> (String, String) {
    (
        v["imageDigest"].as_str().expect("digest").to_string(),
        v["imageTag"].as_str().unwrap_or("").to_string(),
    )
}

#[track_caller]
fn assert_paged(
    what: &str,
    seen: &[(String, String)],
    throughout: &BTreeSet<(String, String)>,
    ever: &BTreeSet<(String, String)>,
) {
    let unique: HashSet<&(String, String)> = seen.iter().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "{what}: an entry came twice: {seen:?}"
    );
    let mut sorted = seen.to_vec();
    sorted.sort();
    assert_eq!(sorted, seen, "{what}: not in (digest, tag) order");
    for k in throughout {
        assert!(
            unique.contains(k),
            "{what}: {k:?} existed throughout but was skipped"
        );
    }
    for k in seen {
        assert!(ever.contains(k), "{what}: {k:?} never existed");
    }
}

/// The (digest, tag) entries of the repository right now, by tag status.
fn snapshot(all: &[(String, String)], status: &str) -> BTreeSet<(String, String)> {
    let tagged: HashSet<&str> = all
        .iter()
        .filter(|(_, t)| !t.is_empty())
        .map(|(d, _)| d.as_str())
        .collect();
    all.iter()
        .filter(|(d, t)| match status {
            "TAGGED" => !t.is_empty(),
            "UNTAGGED" => t.is_empty() && !tagged.contains(d.as_str()),
            _ => !t.is_empty() || !tagged.contains(d.as_str()),
        })
        .cloned()
        .collect()
}

/// A repository of tagged, multiply tagged and untagged images.
struct Repo<'a> {
    http: &'a Http,
    name: String,
    shared: (Blob, Blob),
    seed: u32,
    /// (digest, tag) of each tag, and (digest, "") of each manifest.
    entries: Vec<(String, String)>,
}

impl Repo<'_> {
    fn push(&mut self, tags: &[&str]) -> String {
        self.seed += 1;
        let m = manifest(&self.shared, self.seed);
        put_manifest(self.http, &self.name, &m.digest, &m);
        self.entries.push((m.digest.clone(), String::new()));
        for t in tags {
            put_manifest(self.http, &self.name, t, &m);
            self.entries.retain(|(_, old)| old != t);
            self.entries.push((m.digest.clone(), t.to_string()));
        }
        m.digest
    }

    fn delete(&mut self, digest: &str) {
        self.http
            .delete(&format!("/v2/{}/manifests/{digest}", self.name))
            .expect_status(202);
        self.entries.retain(|(d, _)| d != digest);
    }

    fn now(&self, status: &str) -> BTreeSet<(String, String)> {
        snapshot(&self.entries, status)
    }
}

fn image_lists_page_through_changes(berth: &Berth, http: &Http, status: &str, op: &str) {
    let name = format!("paging/{}-{}", op.to_lowercase(), status.to_lowercase());
    call(
        berth,
        "CreateRepository",
        &json!({ "repositoryName": name }),
    );
    let shared = shared_blobs(http, &name);
    let mut repo = Repo {
        http,
        name: name.clone(),
        shared,
        seed: 0,
        entries: Vec::new(),
    };
    let mut digests = Vec::new();
    for i in 0..24 {
        let tags: Vec<String> = match i % 4 {
            0 => vec![],
            1 => vec![format!("t{i:02}")],
            2 => vec![format!("t{i:02}"), format!("u{i:02}"), format!("v{i:02}")],
            _ => vec![format!("w{i:02}")],
        };
        let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        digests.push(repo.push(&refs));
    }
    let mut ever: BTreeSet<(String, String)> = repo.now(status);
    let mut throughout = repo.now(status);
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let max = if status == "UNTAGGED" { 2 } else { 5 };
        let mut body = json!({ "repositoryName": name, "maxResults": max });
        if status != "ANY" {
            body["filter"] = json!({ "tagStatus": status });
        }
        if let Some(t) = &token {
            body["nextToken"] = json!(t);
        }
        let v = call(berth, op, &body);
        let page: Vec<(String, String)> = if op == "ListImages" {
            v["imageIds"]
                .as_array()
                .expect("imageIds")
                .iter()
                .map(key)
                .collect()
        } else {
            // DescribeImages: one entry per image, its tags listed; flatten to the
            // same keys (an untagged image is (digest, "")).
            let mut out = Vec::new();
            for d in v["imageDetails"].as_array().expect("imageDetails") {
                let digest = d["imageDigest"].as_str().unwrap().to_string();
                let tags = d["imageTags"].as_array().cloned().unwrap_or_default();
                if tags.is_empty() {
                    out.push((digest, String::new()));
                } else {
                    let mut ts: Vec<String> = tags
                        .iter()
                        .map(|t| t.as_str().unwrap().to_string())
                        .collect();
                    ts.sort();
                    out.extend(ts.into_iter().map(|t| (digest.clone(), t)));
                }
            }
            out
        };
        assert!(page.len() <= if op == "ListImages" { max } else { 3 * max });
        seen.extend(page);
        pages += 1;
        token = v["nextToken"].as_str().map(str::to_string);
        let Some(_) = token else { break };
        // Between pages: a new tagged image, a new untagged one, and one image
        // deleted (its entries stop counting as "existed throughout").
        let p = pages as usize;
        let t = format!("n{p:02}");
        repo.push(&[t.as_str()]);
        repo.push(&[]);
        let victim = digests[(p * 5) % digests.len()].clone();
        for k in repo.now("ANY") {
            if k.0 == victim {
                throughout.remove(&k);
            }
        }
        repo.delete(&victim);
        ever.extend(repo.now(status));
        // A TAGGED/UNTAGGED entry leaves or joins its set when tags change; keep
        // "throughout" to the entries present now too.
        let current = repo.now(status);
        throughout.retain(|k| current.contains(k));
        assert!(pages < 100, "{op} {status}: no end of pages");
    }
    assert!(
        pages > 2,
        "{op} {status}: expected several pages, got {pages}"
    );
    if op == "DescribeImages" {
        // DescribeImages pages by image: its tags are those of the moment the page
        // was read, so compare digests only.
        let digests_seen: Vec<(String, String)> = {
            let mut d: Vec<(String, String)> = Vec::new();
            for (dg, _) in &seen {
                if d.last().map(|x| &x.0) != Some(dg) {
                    d.push((dg.clone(), String::new()));
                }
            }
            d
        };
        let through: BTreeSet<(String, String)> = throughout
            .iter()
            .map(|(d, _)| (d.clone(), String::new()))
            .collect();
        let ev: BTreeSet<(String, String)> = ever
            .iter()
            .map(|(d, _)| (d.clone(), String::new()))
            .collect();
        assert_paged(&format!("{op} {status}"), &digests_seen, &through, &ev);
    } else {
        assert_paged(&format!("{op} {status}"), &seen, &throughout, &ever);
    }
}

fn link_next(r: &Response) -> Option<String> {
    let l = r.header("link")?;
    let start = l.find('<')? + 1;
    let end = l.find('>')?;
    Some(l[start..end].to_string())
}

both_backends! {
    fn list_and_describe_images_page_through_changes(backend) {
        let berth = Berth::start(backend);
        let http = registry_http(&berth);
        for status in ["ANY", "TAGGED", "UNTAGGED"] {
            image_lists_page_through_changes(&berth, &http, status, "ListImages");
        }
        image_lists_page_through_changes(&berth, &http, "ANY", "DescribeImages");
    }
}

both_backends! {
    fn repositories_and_tags_page_through_changes(backend) {
        let berth = Berth::start(backend);
        let http = registry_http(&berth);
        // Repositories: DescribeRepositories and /v2/_catalog.
        let mut names: BTreeSet<String> = BTreeSet::new();
        for i in 0..17 {
            let n = format!("cat/r{i:02}");
            call(&berth, "CreateRepository", &json!({ "repositoryName": n }));
            names.insert(n);
        }
        for api in ["DescribeRepositories", "catalog"] {
            let mut throughout = names.clone();
            let mut ever = names.clone();
            let mut seen: Vec<String> = Vec::new();
            let mut token: Option<String> = None;
            let mut next = Some("/v2/_catalog?n=4".to_string());
            let mut pages = 0;
            loop {
                let more = if api == "DescribeRepositories" {
                    let mut body = json!({ "maxResults": 4 });
                    if let Some(t) = &token {
                        body["nextToken"] = json!(t);
                    }
                    let v = call(&berth, "DescribeRepositories", &body);
                    let page = v["repositories"].as_array().expect("repositories");
                    assert!(page.len() <= 4);
                    seen.extend(page.iter().map(|r| r["repositoryName"].as_str().unwrap().to_string()));
                    token = v["nextToken"].as_str().map(str::to_string);
                    token.is_some()
                } else {
                    let r = http.get(next.as_deref().unwrap());
                    r.expect_status(200);
                    let page = r.json()["repositories"].as_array().expect("repositories").clone();
                    assert!(page.len() <= 4);
                    seen.extend(page.iter().map(|r| r.as_str().unwrap().to_string()));
                    next = link_next(&r);
                    next.is_some()
                };
                pages += 1;
                if !more {
                    break;
                }
                // Between pages: one repository created before the cursor, one after,
                // and one deleted.
                let api_lc = api.to_lowercase();
                for n in [format!("cat/a{api_lc}{pages}"), format!("cat/z{api_lc}{pages}")] {
                    call(&berth, "CreateRepository", &json!({ "repositoryName": n }));
                    names.insert(n.clone());
                    ever.insert(n);
                }
                let victim = names.iter().nth(pages * 3 % names.len()).unwrap().clone();
                call(&berth, "DeleteRepository", &json!({ "repositoryName": victim, "force": true }));
                names.remove(&victim);
                throughout.remove(&victim);
                assert!(pages < 100, "{api}: no end of pages");
            }
            assert!(pages > 2, "{api}: expected several pages, got {pages}");
            let unique: HashSet<&String> = seen.iter().collect();
            assert_eq!(unique.len(), seen.len(), "{api}: a repository came twice: {seen:?}");
            let mut sorted = seen.clone();
            sorted.sort();
            assert_eq!(sorted, seen, "{api}: not in name order");
            for n in &throughout {
                assert!(unique.contains(n), "{api}: {n} existed throughout but was skipped");
            }
            for n in &seen {
                assert!(ever.contains(n), "{api}: {n} never existed");
            }
        }

        // Tags: /v2/<name>/tags/list with n/last, tags added and deleted between pages.
        let name = "cat/tags";
        call(&berth, "CreateRepository", &json!({ "repositoryName": name }));
        let shared = shared_blobs(&http, name);
        let mut tags: BTreeSet<String> = BTreeSet::new();
        let mut digest_of = std::collections::HashMap::new();
        for i in 0..19u32 {
            let m = manifest(&shared, i);
            let t = format!("t{i:02}");
            put_manifest(&http, name, &t, &m);
            digest_of.insert(t.clone(), m.digest.clone());
            tags.insert(t);
        }
        let mut throughout = tags.clone();
        let mut ever = tags.clone();
        let mut seen: Vec<String> = Vec::new();
        let mut next = Some(format!("/v2/{name}/tags/list?n=5"));
        let mut pages = 0u32;
        while let Some(path) = next {
            let r = http.get(&path);
            r.expect_status(200);
            let page = r.json()["tags"].as_array().cloned().unwrap_or_default();
            assert!(page.len() <= 5);
            seen.extend(page.iter().map(|t| t.as_str().unwrap().to_string()));
            next = link_next(&r);
            pages += 1;
            if next.is_none() {
                break;
            }
            let m = manifest(&shared, 1000 + pages);
            for t in [format!("a{pages:02}"), format!("z{pages:02}")] {
                put_manifest(&http, name, &t, &m);
                ever.insert(t);
            }
            let victim = throughout.iter().nth((pages as usize * 4) % throughout.len()).unwrap().clone();
            http.delete(&format!("/v2/{name}/manifests/{}", digest_of[&victim]))
                .expect_status(202);
            throughout.remove(&victim);
            assert!(pages < 100, "tags/list: no end of pages");
        }
        assert!(pages > 2, "tags/list: expected several pages, got {pages}");
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "tags/list: a tag came twice: {seen:?}");
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(sorted, seen, "tags/list: not in lexical order");
        for t in &throughout {
            assert!(unique.contains(t), "tags/list: {t} existed throughout but was skipped");
        }
        for t in &seen {
            assert!(ever.contains(t), "tags/list: {t} never existed");
        }
    }
}

//! Hand-written HTTP for manifests, tags, the catalog and name rules (Distribution
//! Spec v1.1, "Pushing Manifests", "Pulling manifests", "Listing Tags", "Deleting
//! Manifests", "Error Codes"; the `_catalog` extension).

use berth_testsupport::layout::{
    self, image, put_manifest, tar_gz_layer, OCI_LAYER_GZIP, OCI_MANIFEST,
};
use berth_testsupport::{all_backends, sha256_digest, Berth, Blob, Http, Image, TempDir};
use serde_json::json;

fn small_image(seed: u64) -> Image {
    image(
        vec![tar_gz_layer(
            OCI_LAYER_GZIP,
            &[("f", 0o644, layout::pseudo_random(seed, 64))],
        )],
        "amd64",
        false,
    )
}

fn put(http: &Http, repo: &str, reference: &str, m: &Blob) -> berth_testsupport::Response {
    http.send(
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", m.media_type.as_str())],
        m.bytes.clone(),
    )
}

all_backends! {
    fn manifest_get_head_put_digests(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let img = small_image(1);
        let r = img.push(&http, "man/app", "v1");
        assert_eq!(r.header("docker-content-digest"), Some(img.digest()));
        assert_eq!(r.location(), format!("/v2/man/app/manifests/{}", img.digest()));

        for reference in ["v1", img.digest()] {
            let path = format!("/v2/man/app/manifests/{reference}");
            let r = http.send("GET", &path, &[("Accept", OCI_MANIFEST)], "");
            r.expect_status(200);
            assert_eq!(r.body, img.manifest.bytes);
            assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));
            assert_eq!(r.header("docker-content-digest"), Some(img.digest()));
            let r = http.send("HEAD", &path, &[("Accept", OCI_MANIFEST)], "");
            r.expect_status(200);
            assert!(r.body.is_empty());
            assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));
            assert_eq!(r.header("docker-content-digest"), Some(img.digest()));
            assert_eq!(
                r.header("content-length"),
                Some(img.manifest.size().to_string().as_str())
            );
        }
        // PUT by digest: the same bytes are accepted again (idempotent).
        let r = put(&http, "man/app", img.digest(), &img.manifest);
        r.expect_status(201);
        assert_eq!(r.header("docker-content-digest"), Some(img.digest()));

        // Unknown references.
        http.get("/v2/man/app/manifests/nope").expect_oci_error(404, "MANIFEST_UNKNOWN");
        http.head("/v2/man/app/manifests/nope").expect_status(404);
        http.get(&format!("/v2/man/app/manifests/{}", sha256_digest(b"x")))
            .expect_oci_error(404, "MANIFEST_UNKNOWN");
    }
}

all_backends! {
    fn manifest_byte_exact_whitespace(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let img = small_image(2);
        for b in img.blobs() {
            layout::push_blob(&http, "exact/app", b);
        }
        // Pretty-printed JSON with a trailing newline: the digest is over these bytes.
        let v: serde_json::Value = serde_json::from_slice(&img.manifest.bytes).unwrap();
        let mut pretty = serde_json::to_vec_pretty(&v).unwrap();
        pretty.extend_from_slice(b"\n");
        let m = Blob::new(OCI_MANIFEST, pretty);
        let r = put_manifest(&http, "exact/app", "pretty", &m);
        assert_eq!(r.header("docker-content-digest"), Some(m.digest.as_str()));
        let r = http.get(&format!("/v2/exact/app/manifests/{}", m.digest));
        r.expect_status(200);
        assert_eq!(r.body, m.bytes);
    }
}

all_backends! {
    fn manifest_put_errors(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let img = small_image(3);

        // Blobs not pushed: MANIFEST_BLOB_UNKNOWN.
        http.send("POST", "/v2/errs/app/blobs/uploads/", &[], "").expect_status(202);
        put(&http, "errs/app", "v1", &img.manifest).expect_oci_error(400, "MANIFEST_BLOB_UNKNOWN");
        // Only the config pushed: still unknown (the layer).
        layout::push_blob(&http, "errs/app", &img.config);
        put(&http, "errs/app", "v1", &img.manifest).expect_oci_error(400, "MANIFEST_BLOB_UNKNOWN");
        // A blob in another repository does not count.
        for b in img.blobs() {
            layout::push_blob(&http, "errs/other", b);
        }
        put(&http, "errs/app", "v1", &img.manifest).expect_oci_error(400, "MANIFEST_BLOB_UNKNOWN");
        http.get("/v2/errs/app/manifests/v1").expect_oci_error(404, "MANIFEST_UNKNOWN");

        // An index whose child manifest is missing.
        let index = Blob::json(
            layout::OCI_INDEX,
            &json!({"schemaVersion": 2, "mediaType": layout::OCI_INDEX,
                    "manifests": [img.manifest.descriptor()]}),
        );
        put(&http, "errs/app", "idx", &index).expect_oci_error(400, "MANIFEST_BLOB_UNKNOWN");

        // By digest with bytes that hash differently.
        for b in img.blobs() {
            layout::push_blob(&http, "errs/app", b);
        }
        let wrong = sha256_digest(b"other bytes");
        put(&http, "errs/app", &wrong, &img.manifest).expect_oci_error(400, "DIGEST_INVALID");
        http.get(&format!("/v2/errs/app/manifests/{wrong}")).expect_status(404);

        // Not JSON / not a manifest.
        http.send("PUT", "/v2/errs/app/manifests/bad", &[("Content-Type", OCI_MANIFEST)], "{not json")
            .expect_oci_error(400, "MANIFEST_INVALID");

        // Invalid tag.
        put(&http, "errs/app", "-bad", &img.manifest).expect_oci_error(400, "TAG_INVALID");
        put(&http, "errs/app", &"t".repeat(129), &img.manifest)
            .expect_oci_error(400, "TAG_INVALID");

        put(&http, "errs/app", "v1", &img.manifest).expect_status(201);
    }
}

all_backends! {
    fn manifest_over_4mib(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let img = small_image(4);
        for b in img.blobs() {
            layout::push_blob(&http, "big/app", b);
        }
        let mut v: serde_json::Value = serde_json::from_slice(&img.manifest.bytes).unwrap();
        v["annotations"] = json!({ "padding": "x".repeat(4 * 1024 * 1024) });
        let big = Blob::json(OCI_MANIFEST, &v);
        assert!(big.size() > 4 * 1024 * 1024);
        let r = put(&http, "big/app", "big", &big);
        assert_eq!(r.status, 413, "{}", r.describe());
        r.expect_oci_error(413, "SIZE_INVALID");
        // Without Content-Length (chunked): rejected too.
        let r = http
            .try_send(
                "PUT",
                "/v2/big/app/manifests/big2",
                &[("Content-Type", OCI_MANIFEST)],
                berth_testsupport::Body::Stream {
                    len: None,
                    reader: Box::new(std::io::Cursor::new(big.bytes.clone())),
                },
            )
            .unwrap();
        r.expect_oci_error(413, "SIZE_INVALID");
        http.get("/v2/big/app/manifests/big").expect_oci_error(404, "MANIFEST_UNKNOWN");
        http.get("/v2/big/app/manifests/big2").expect_oci_error(404, "MANIFEST_UNKNOWN");
        // Just under the limit is fine.
        v["annotations"] = json!({ "padding": "" });
        let base = serde_json::to_vec(&v).unwrap().len();
        v["annotations"] = json!({ "padding": "x".repeat(4 * 1024 * 1024 - base) });
        let max = Blob::json(OCI_MANIFEST, &v);
        assert_eq!(max.size(), 4 * 1024 * 1024);
        put(&http, "big/app", "max", &max).expect_status(201);
    }
}

all_backends! {
    fn manifest_delete(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let img = small_image(5);
        img.push(&http, "del/app", "v1");
        put(&http, "del/app", "v2", &img.manifest).expect_status(201);

        // DELETE by tag removes only the tag.
        http.delete("/v2/del/app/manifests/v1").expect_status(202);
        http.get("/v2/del/app/manifests/v1").expect_oci_error(404, "MANIFEST_UNKNOWN");
        http.get("/v2/del/app/manifests/v2").expect_status(200);
        http.get(&format!("/v2/del/app/manifests/{}", img.digest())).expect_status(200);
        let tags = http.get("/v2/del/app/tags/list").json();
        assert_eq!(tags["tags"], json!(["v2"]));
        http.delete("/v2/del/app/manifests/v1").expect_oci_error(404, "MANIFEST_UNKNOWN");

        // DELETE by digest removes the manifest and every tag on it.
        http.delete(&format!("/v2/del/app/manifests/{}", img.digest())).expect_status(202);
        http.get(&format!("/v2/del/app/manifests/{}", img.digest()))
            .expect_oci_error(404, "MANIFEST_UNKNOWN");
        http.head(&format!("/v2/del/app/manifests/{}", img.digest())).expect_status(404);
        http.get("/v2/del/app/manifests/v2").expect_oci_error(404, "MANIFEST_UNKNOWN");
        http.delete(&format!("/v2/del/app/manifests/{}", img.digest()))
            .expect_oci_error(404, "MANIFEST_UNKNOWN");
        // It can be pushed again.
        put(&http, "del/app", "v3", &img.manifest).expect_status(201);
    }
}

fn walk_links(http: &Http, first: &str, key: &str) -> (Vec<Vec<String>>, Vec<String>) {
    let mut pages = Vec::new();
    let mut links = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(p) = next.take() {
        let r = http.get(&p);
        r.expect_status(200);
        let items: Vec<String> = r.json()[key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key} array: {}", r.describe()))
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        pages.push(items);
        if let Some(l) = r.header("link") {
            links.push(l.to_string());
            let url = l
                .strip_prefix('<')
                .and_then(|l| l.split_once(">; rel=\"next\""))
                .map(|(u, _)| u.to_string())
                .unwrap_or_else(|| panic!("bad Link header {l:?}"));
            next = Some(url);
        }
        assert!(pages.len() < 50, "pagination does not end");
    }
    (pages, links)
}

all_backends! {
    fn tags_list_pagination(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let img = small_image(6);
        img.push(&http, "pages/app", "c");
        for t in ["a", "e", "b", "d"] {
            put(&http, "pages/app", t, &img.manifest).expect_status(201);
        }
        let r = http.get("/v2/pages/app/tags/list");
        r.expect_status(200);
        assert_eq!(r.header("link"), None);
        assert_eq!(r.json(), json!({"name": "pages/app", "tags": ["a", "b", "c", "d", "e"]}));

        // n=1: a walk through every tag, one Link per page except the last.
        let (pages, links) = walk_links(&http, "/v2/pages/app/tags/list?n=1", "tags");
        assert_eq!(pages, [["a"], ["b"], ["c"], ["d"], ["e"]]);
        assert_eq!(links.len(), 4);
        assert_eq!(links[0], "</v2/pages/app/tags/list?n=1&last=a>; rel=\"next\"");

        let (pages, _) = walk_links(&http, "/v2/pages/app/tags/list?n=2", "tags");
        assert_eq!(pages, [vec!["a", "b"], vec!["c", "d"], vec!["e"]]);
        // Exactly n left: no Link to an empty page.
        let (pages, links) = walk_links(&http, "/v2/pages/app/tags/list?n=5", "tags");
        assert_eq!(pages, [["a", "b", "c", "d", "e"]]);
        assert!(links.is_empty());

        let r = http.get("/v2/pages/app/tags/list?n=2&last=b");
        assert_eq!(r.json()["tags"], json!(["c", "d"]));
        assert_eq!(r.header("link"), Some("</v2/pages/app/tags/list?n=2&last=d>; rel=\"next\""));
        // `last` need not be an existing tag.
        let r = http.get("/v2/pages/app/tags/list?last=bb");
        assert_eq!(r.json()["tags"], json!(["c", "d", "e"]));
        // `last` beyond the end: an empty list, no Link.
        let r = http.get("/v2/pages/app/tags/list?last=zzz");
        r.expect_status(200);
        assert_eq!(r.json()["tags"], json!([]));
        assert_eq!(r.header("link"), None);
        // n=0: an empty list.
        let r = http.get("/v2/pages/app/tags/list?n=0");
        r.expect_status(200);
        assert_eq!(r.json()["tags"], json!([]));
        // A bad n.
        http.get("/v2/pages/app/tags/list?n=-1").expect_oci_error(400, "PAGINATION_NUMBER_INVALID");
        http.get("/v2/pages/app/tags/list?n=x").expect_oci_error(400, "PAGINATION_NUMBER_INVALID");
    }
}

all_backends! {
    fn catalog_pagination(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let r = http.get("/v2/_catalog");
        r.expect_status(200);
        assert_eq!(r.json(), json!({"repositories": []}));
        let b = Blob::new("application/octet-stream", b"catalog".to_vec());
        for repo in ["cat/b", "cat/a", "cat/c/nested", "dog"] {
            layout::push_blob(&http, repo, &b);
        }
        let r = http.get("/v2/_catalog");
        assert_eq!(r.json()["repositories"], json!(["cat/a", "cat/b", "cat/c/nested", "dog"]));
        assert_eq!(r.header("link"), None);
        let (pages, links) = walk_links(&http, "/v2/_catalog?n=1", "repositories");
        assert_eq!(pages, [["cat/a"], ["cat/b"], ["cat/c/nested"], ["dog"]]);
        assert_eq!(links[0], "</v2/_catalog?n=1&last=cat/a>; rel=\"next\"");
        let (pages, _) = walk_links(&http, "/v2/_catalog?n=3", "repositories");
        assert_eq!(pages, [vec!["cat/a", "cat/b", "cat/c/nested"], vec!["dog"]]);
        let r = http.get("/v2/_catalog?n=2&last=cat/b");
        assert_eq!(r.json()["repositories"], json!(["cat/c/nested", "dog"]));
        assert_eq!(r.header("link"), None);
        let r = http.get("/v2/_catalog?last=zzz");
        assert_eq!(r.json()["repositories"], json!([]));
    }
}

all_backends! {
    fn names_and_unknown_repositories(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let d = sha256_digest(b"x");
        for bad in ["UPPER/case", "a", "double//slash", "trailing-/x", "-lead", "a..b", "sp%20ace"] {
            http.get(&format!("/v2/{bad}/tags/list")).expect_oci_error(400, "NAME_INVALID");
            http.get(&format!("/v2/{bad}/manifests/latest")).expect_oci_error(400, "NAME_INVALID");
            http.send("POST", &format!("/v2/{bad}/blobs/uploads/"), &[], "")
                .expect_oci_error(400, "NAME_INVALID");
        }
        let long = format!("a/{}", "b".repeat(255));
        http.get(&format!("/v2/{long}/tags/list")).expect_oci_error(400, "NAME_INVALID");

        http.get("/v2/no/such/tags/list").expect_oci_error(404, "NAME_UNKNOWN");
        http.get("/v2/no/such/manifests/latest").expect_oci_error(404, "NAME_UNKNOWN");
        http.get(&format!("/v2/no/such/blobs/{d}")).expect_oci_error(404, "NAME_UNKNOWN");
        http.delete("/v2/no/such/manifests/latest").expect_oci_error(404, "NAME_UNKNOWN");
        http.get(&format!("/v2/no/such/referrers/{d}")).expect_oci_error(404, "NAME_UNKNOWN");

        // A bad digest in the path.
        http.send("POST", "/v2/ok/repo/blobs/uploads/", &[], "").expect_status(202);
        http.get("/v2/ok/repo/blobs/sha256:short").expect_oci_error(400, "DIGEST_INVALID");
        http.get("/v2/ok/repo/manifests/sha256:short").expect_oci_error(400, "DIGEST_INVALID");
        http.get("/v2/ok/repo/blobs/uploads/no-such-upload").expect_oci_error(404, "BLOB_UPLOAD_UNKNOWN");
    }
}

all_backends! {
    fn multi_arch_index_and_docker_schema2_by_hand(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let dir = TempDir::new("layout");
        let l = layout::Layout::build(dir.path());
        for img in &l.index_images {
            img.push(&http, "hand/multi", img.digest());
        }
        put_manifest(&http, "hand/multi", "v1", &l.index);
        let r = http.get("/v2/hand/multi/manifests/v1");
        assert_eq!(r.header("content-type"), Some(layout::OCI_INDEX));
        assert_eq!(r.body, l.index.bytes);
        let r = l.docker.push(&http, "hand/docker", "v1");
        assert_eq!(r.header("docker-content-digest"), Some(l.docker.digest()));
        let r = http.get("/v2/hand/docker/manifests/v1");
        assert_eq!(r.header("content-type"), Some(layout::DOCKER_MANIFEST));
        assert_eq!(r.body, l.docker.manifest.bytes);
    }
}

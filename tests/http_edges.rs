//! More protocol edges: sha512 digests, upload-session isolation, referrers
//! lifecycle (subject pushed later, referrer deleted), Docker manifest lists, chunk
//! length mismatches.

use berth_testsupport::layout::{self, pseudo_random, push_blob, put_manifest};
use berth_testsupport::{both_backends, sha256_digest, Berth, Blob, Layout, TempDir};
use serde_json::json;

fn sha512_digest(b: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA512, b);
    let hex: String = d.as_ref().iter().map(|x| format!("{x:02x}")).collect();
    format!("sha512:{hex}")
}

both_backends! {
    fn sha512_blob_digests(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let data = pseudo_random(51, 10_000);
        let d = sha512_digest(&data);
        let r = http.send("POST", &format!("/v2/sha512/app/blobs/uploads/?digest={d}"), &[], data.clone());
        r.expect_status(201);
        assert_eq!(r.header("docker-content-digest"), Some(d.as_str()));
        let r = http.get(&format!("/v2/sha512/app/blobs/{d}"));
        r.expect_status(200);
        assert!(r.body == data);
        // A sha512 digest over different bytes is rejected.
        let wrong = sha512_digest(b"other");
        http.send("POST", &format!("/v2/sha512/app/blobs/uploads/?digest={wrong}"), &[], data)
            .expect_oci_error(400, "DIGEST_INVALID");
        // Unknown algorithms are invalid digests.
        http.send("POST", "/v2/sha512/app/blobs/uploads/?digest=md5:d41d8cd98f00b204e9800998ecf8427e", &[], "x")
            .expect_oci_error(400, "DIGEST_INVALID");
    }
}

both_backends! {
    fn upload_sessions_belong_to_their_repository(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        push_blob(&http, "iso/other", &Blob::new("application/octet-stream", b"x".to_vec()));
        let r = http.send("POST", "/v2/iso/mine/blobs/uploads/", &[], "");
        r.expect_status(202);
        let loc = r.location();
        let id = loc.rsplit('/').next().unwrap().split('?').next().unwrap().to_string();
        let foreign = format!("/v2/iso/other/blobs/uploads/{id}");
        http.get(&foreign).expect_oci_error(404, "BLOB_UPLOAD_UNKNOWN");
        http.send("PATCH", &foreign, &[], "data").expect_oci_error(404, "BLOB_UPLOAD_UNKNOWN");
        http.send("PUT", &format!("{foreign}?digest={}", sha256_digest(b"data")), &[], "data")
            .expect_oci_error(404, "BLOB_UPLOAD_UNKNOWN");
        http.delete(&foreign).expect_oci_error(404, "BLOB_UPLOAD_UNKNOWN");
        // The session itself is untouched.
        let r = http.get(&loc);
        r.expect_status(204);
        assert_eq!(r.header("range"), Some("0-0"));
    }
}

both_backends! {
    fn chunk_length_must_match_content_range(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let r = http.send("POST", "/v2/len/app/blobs/uploads/", &[], "");
        let loc = r.location();
        // Content-Range says 10 bytes, the body has 5.
        let r = http.send("PATCH", &loc, &[("Content-Range", "0-9")], "12345");
        assert!(
            r.status == 416 || r.status == 400,
            "mismatched chunk accepted:\n{}",
            r.describe()
        );
        r.expect_oci_error(r.status, "BLOB_UPLOAD_INVALID");
        // Nothing was appended: the session restarts at 0.
        let r = http.send("PATCH", &loc, &[("Content-Range", "0-4")], "12345");
        r.expect_status(202);
        assert_eq!(r.header("range"), Some("0-4"));
    }
}

both_backends! {
    fn referrers_lifecycle(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let dir = TempDir::new("layout");
        let l = Layout::build(dir.path());
        // The referrer may be pushed before its subject exists.
        let r = l.artifact.push(&http, "refs/app", l.artifact.digest());
        assert_eq!(r.header("oci-subject"), Some(l.image.digest()));
        let path = format!("/v2/refs/app/referrers/{}", l.image.digest());
        let idx = http.get(&path).json();
        assert_eq!(idx["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(idx["manifests"][0]["artifactType"], layout::SBOM_ARTIFACT_TYPE);
        assert_eq!(idx["manifests"][0]["digest"], l.artifact.digest());

        l.image.push(&http, "refs/app", "v1");
        assert_eq!(http.get(&path).json()["manifests"].as_array().unwrap().len(), 1);

        // A second referrer whose artifact type comes from its config media type.
        let cfg = Blob::new("application/vnd.example.config.v1+json", b"{\"a\":1}".to_vec());
        let layer = Blob::new("text/plain", b"note".to_vec());
        push_blob(&http, "refs/app", &cfg);
        push_blob(&http, "refs/app", &layer);
        let m = Blob::json(
            layout::OCI_MANIFEST,
            &json!({"schemaVersion": 2, "mediaType": layout::OCI_MANIFEST,
                    "config": cfg.descriptor(), "layers": [layer.descriptor()],
                    "subject": l.image.manifest.descriptor()}),
        );
        put_manifest(&http, "refs/app", &m.digest, &m);
        let idx = http.get(&path).json();
        let mut types: Vec<&str> = idx["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["artifactType"].as_str().unwrap())
            .collect();
        types.sort();
        assert_eq!(types, ["application/vnd.example.config.v1+json", layout::SBOM_ARTIFACT_TYPE]);

        // Deleting a referrer removes it from the list.
        http.delete(&format!("/v2/refs/app/manifests/{}", l.artifact.digest())).expect_status(202);
        let idx = http.get(&path).json();
        assert_eq!(idx["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(idx["manifests"][0]["digest"], m.digest.as_str());
        // Referrers are per repository.
        l.image.push(&http, "refs/other", "v1");
        assert_eq!(
            http.get(&format!("/v2/refs/other/referrers/{}", l.image.digest())).json()["manifests"],
            json!([])
        );
    }
}

both_backends! {
    fn docker_manifest_list(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let dir = TempDir::new("layout");
        let l = Layout::build(dir.path());
        l.docker.push(&http, "dlist/app", l.docker.digest());
        let list_type = "application/vnd.docker.distribution.manifest.list.v2+json";
        let mut d = l.docker.manifest.descriptor();
        d["platform"] = json!({"architecture": "amd64", "os": "linux"});
        let list = Blob::json(list_type, &json!({"schemaVersion": 2, "mediaType": list_type, "manifests": [d]}));
        let r = put_manifest(&http, "dlist/app", "v1", &list);
        assert_eq!(r.header("docker-content-digest"), Some(list.digest.as_str()));
        let r = http.send("GET", "/v2/dlist/app/manifests/v1", &[("Accept", list_type)], "");
        r.expect_status(200);
        assert_eq!(r.header("content-type"), Some(list_type));
        assert_eq!(r.body, list.bytes);
        // skopeo understands it.
        let raw = berth.skopeo().inspect_raw("dlist/app:v1");
        assert_eq!(raw, list.bytes);
    }
}

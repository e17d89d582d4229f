//! Hand-written HTTP for the blob and upload endpoints (Distribution Spec v1.1,
//! "Pushing blobs", "Pulling blobs", "Mounting a blob from another repository",
//! "Deleting blobs"): the requests real clients rarely send.

use berth_testsupport::layout::{pseudo_random, push_blob};
use berth_testsupport::{all_backends, sha256_digest, Berth, Blob, Http};

fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

fn start_upload(http: &Http, repo: &str) -> String {
    let r = http.send("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], "");
    r.expect_status(202);
    assert_eq!(r.header("content-length"), Some("0"));
    let loc = r.location();
    assert!(
        loc.starts_with(&format!("/v2/{repo}/blobs/uploads/")),
        "upload location {loc}"
    );
    loc
}

#[track_caller]
fn assert_blob(http: &Http, repo: &str, bytes: &[u8]) {
    let d = sha256_digest(bytes);
    let r = http.head(&format!("/v2/{repo}/blobs/{d}"));
    r.expect_status(200);
    assert_eq!(
        r.header("content-length"),
        Some(bytes.len().to_string().as_str())
    );
    assert_eq!(r.header("docker-content-digest"), Some(d.as_str()));
    let r = http.get(&format!("/v2/{repo}/blobs/{d}"));
    r.expect_status(200);
    assert_eq!(r.header("docker-content-digest"), Some(d.as_str()));
    assert!(r.body == bytes, "blob {d} content differs");
}

all_backends! {
    fn base_endpoint(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        http.get("/v2/").expect_status(200);
        http.head("/v2/").expect_status(200);
        for p in ["/healthz", "/readyz"] {
            http.get(p).expect_status(200);
        }
        // An unknown /v2/ endpoint still answers in the OCI error shape.
        http.get("/v2/some/repo/nonsense/x").expect_oci_error(404, "NOT_FOUND");
    }
}

all_backends! {
    fn monolithic_post_with_digest(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let data = pseudo_random(11, 70_000);
        let d = sha256_digest(&data);
        let r = http.send(
            "POST",
            &format!("/v2/mono/app/blobs/uploads/?digest={d}"),
            &[("Content-Type", "application/octet-stream")],
            data.clone(),
        );
        r.expect_status(201);
        assert_eq!(r.location(), format!("/v2/mono/app/blobs/{d}"));
        assert_eq!(r.header("docker-content-digest"), Some(d.as_str()));
        assert_blob(&http, "mono/app", &data);

        // A wrong digest on the monolithic form is rejected and nothing is stored.
        let other = pseudo_random(12, 1000);
        let wrong = sha256_digest(b"not these bytes");
        http.send(
            "POST",
            &format!("/v2/mono/app/blobs/uploads/?digest={wrong}"),
            &[],
            other,
        )
        .expect_oci_error(400, "DIGEST_INVALID");
        http.head(&format!("/v2/mono/app/blobs/{wrong}")).expect_status(404);
    }
}

all_backends! {
    fn post_then_put_with_body(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let data = pseudo_random(13, 5000);
        let d = sha256_digest(&data);
        let loc = start_upload(&http, "two/step");
        let r = http.send("PUT", &with_digest(&loc, &d), &[], data.clone());
        r.expect_status(201);
        assert_eq!(r.location(), format!("/v2/two/step/blobs/{d}"));
        assert_eq!(r.header("docker-content-digest"), Some(d.as_str()));
        assert_blob(&http, "two/step", &data);
        // The session is gone once completed.
        http.get(&loc).expect_oci_error(404, "BLOB_UPLOAD_UNKNOWN");
    }
}

all_backends! {
    fn put_with_wrong_digest(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let data = pseudo_random(14, 4096);
        let wrong = sha256_digest(b"something else");
        let loc = start_upload(&http, "wrong/digest");
        http.send("PUT", &with_digest(&loc, &wrong), &[], data.clone())
            .expect_oci_error(400, "DIGEST_INVALID");
        http.head(&format!("/v2/wrong/digest/blobs/{wrong}")).expect_status(404);
        http.head(&format!("/v2/wrong/digest/blobs/{}", sha256_digest(&data)))
            .expect_status(404);
        // A malformed digest is DIGEST_INVALID too.
        let loc = start_upload(&http, "wrong/digest");
        http.send("PUT", &with_digest(&loc, "sha256:xyz"), &[], data)
            .expect_oci_error(400, "DIGEST_INVALID");
    }
}

all_backends! {
    fn chunked_patch_uploads(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let data = pseudo_random(15, 30);
        let d = sha256_digest(&data);
        let loc = start_upload(&http, "chunks/app");

        let patch = |loc: &str, range: &str, body: &[u8]| {
            http.send(
                "PATCH",
                loc,
                &[("Content-Range", range), ("Content-Type", "application/octet-stream")],
                body.to_vec(),
            )
        };
        let r = patch(&loc, "0-9", &data[0..10]);
        r.expect_status(202);
        assert_eq!(r.header("range"), Some("0-9"));
        let loc = r.location();
        let r = patch(&loc, "10-19", &data[10..20]);
        r.expect_status(202);
        assert_eq!(r.header("range"), Some("0-19"));
        let loc = r.location();

        // Out of order (a gap) and overlapping chunks: 416, and the session is intact.
        patch(&loc, "25-29", &data[25..30]).expect_oci_error(416, "BLOB_UPLOAD_INVALID");
        patch(&loc, "15-24", &data[15..25]).expect_oci_error(416, "BLOB_UPLOAD_INVALID");
        patch(&loc, "0-9", &data[0..10]).expect_oci_error(416, "BLOB_UPLOAD_INVALID");
        // A range whose length does not fit in 64 bits (found while moving the
        // parser under a fuzz target, docs/fuzzing.md) is malformed, not an overflow.
        patch(&loc, "0-18446744073709551615", &data[0..10])
            .expect_oci_error(416, "BLOB_UPLOAD_INVALID");

        // Upload status: 204 with the received range.
        let r = http.get(&loc);
        r.expect_status(204);
        assert_eq!(r.header("range"), Some("0-19"));
        assert!(r.location().starts_with("/v2/chunks/app/blobs/uploads/"));

        // The last chunk rides on the closing PUT.
        let r = http.send(
            "PUT",
            &with_digest(&loc, &d),
            &[("Content-Range", "20-29")],
            data[20..30].to_vec(),
        );
        r.expect_status(201);
        assert_blob(&http, "chunks/app", &data);

        // PATCH without Content-Range (streamed, chunked transfer) then an empty PUT.
        let big = pseudo_random(16, 3 * 1024 * 1024 + 17);
        let loc = start_upload(&http, "chunks/app");
        let reader = std::io::Cursor::new(big.clone());
        let r = http
            .try_send(
                "PATCH",
                &loc,
                &[],
                berth_testsupport::Body::Stream { len: None, reader: Box::new(reader) },
            )
            .unwrap();
        r.expect_status(202);
        assert_eq!(r.header("range"), Some(format!("0-{}", big.len() - 1).as_str()));
        let r = http.send("PUT", &with_digest(&r.location(), &sha256_digest(&big)), &[], "");
        r.expect_status(201);
        assert_blob(&http, "chunks/app", &big);
    }
}

all_backends! {
    fn cancel_upload(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let loc = start_upload(&http, "cancel/app");
        http.send("PATCH", &loc, &[("Content-Range", "0-3")], "abcd")
            .expect_status(202);
        http.delete(&loc).expect_status(204);
        http.get(&loc).expect_oci_error(404, "BLOB_UPLOAD_UNKNOWN");
        http.send("PATCH", &loc, &[], "efgh").expect_oci_error(404, "BLOB_UPLOAD_UNKNOWN");
        http.send("PUT", &with_digest(&loc, &sha256_digest(b"abcd")), &[], "")
            .expect_oci_error(404, "BLOB_UPLOAD_UNKNOWN");
        http.delete(&loc).expect_oci_error(404, "BLOB_UPLOAD_UNKNOWN");
        http.head(&format!("/v2/cancel/app/blobs/{}", sha256_digest(b"abcd")))
            .expect_status(404);
    }
}

all_backends! {
    fn blob_ranges(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let b = Blob::new("application/octet-stream", pseudo_random(17, 1000));
        push_blob(&http, "range/app", &b);
        let path = format!("/v2/range/app/blobs/{}", b.digest);
        let get = |range: &str| http.send("GET", &path, &[("Range", range)], "");

        let r = get("bytes=10-19");
        r.expect_status(206);
        assert_eq!(r.header("content-range"), Some("bytes 10-19/1000"));
        assert_eq!(r.header("content-length"), Some("10"));
        assert_eq!(r.body, &b.bytes[10..20]);

        let r = get("bytes=990-");
        r.expect_status(206);
        assert_eq!(r.header("content-range"), Some("bytes 990-999/1000"));
        assert_eq!(r.body, &b.bytes[990..]);

        let r = get("bytes=-5");
        r.expect_status(206);
        assert_eq!(r.body, &b.bytes[995..]);

        let r = get("bytes=1000-");
        r.expect_status(416);
        assert_eq!(r.header("content-range"), Some("bytes */1000"));
        get("bytes=2000-3000").expect_status(416);
    }
}

all_backends! {
    fn blob_of_another_repository(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let secret = Blob::new("application/octet-stream", pseudo_random(18, 2048));
        push_blob(&http, "tenant/a", &secret);
        push_blob(&http, "tenant/b", &Blob::new("application/octet-stream", b"b's own".to_vec()));
        // tenant/b exists but has no link to the blob: guessing the digest fails.
        http.head(&format!("/v2/tenant/b/blobs/{}", secret.digest)).expect_status(404);
        http.get(&format!("/v2/tenant/b/blobs/{}", secret.digest))
            .expect_oci_error(404, "BLOB_UNKNOWN");
        http.send("GET", &format!("/v2/tenant/b/blobs/{}", secret.digest), &[("Range", "bytes=0-1")], "")
            .expect_oci_error(404, "BLOB_UNKNOWN");
        // A repository that does not exist at all.
        http.get(&format!("/v2/tenant/none/blobs/{}", secret.digest))
            .expect_oci_error(404, "NAME_UNKNOWN");
        http.get(&format!("/v2/tenant/a/blobs/{}", secret.digest)).expect_status(200);
    }
}

all_backends! {
    fn cross_repository_mount(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let b = Blob::new("application/octet-stream", pseudo_random(19, 4000));
        push_blob(&http, "mount/src", &b);

        let r = http.send(
            "POST",
            &format!("/v2/mount/dst/blobs/uploads/?mount={}&from=mount/src", b.digest),
            &[],
            "",
        );
        r.expect_status(201);
        assert_eq!(r.location(), format!("/v2/mount/dst/blobs/{}", b.digest));
        assert_eq!(r.header("docker-content-digest"), Some(b.digest.as_str()));
        assert_blob(&http, "mount/dst", &b.bytes);

        // Source lacks the blob: a new upload session (202) that works.
        let other = Blob::new("application/octet-stream", pseudo_random(20, 100));
        let r = http.send(
            "POST",
            &format!("/v2/mount/dst2/blobs/uploads/?mount={}&from=mount/src", other.digest),
            &[],
            "",
        );
        r.expect_status(202);
        let loc = r.location();
        assert!(loc.starts_with("/v2/mount/dst2/blobs/uploads/"), "{loc}");
        http.send("PUT", &with_digest(&loc, &other.digest), &[], other.bytes.clone())
            .expect_status(201);
        assert_blob(&http, "mount/dst2", &other.bytes);

        // Source repository does not exist: 202 as well.
        let r = http.send(
            "POST",
            &format!("/v2/mount/dst3/blobs/uploads/?mount={}&from=mount/nowhere", b.digest),
            &[],
            "",
        );
        r.expect_status(202);
        assert!(r.location().starts_with("/v2/mount/dst3/blobs/uploads/"));
        // No `from` at all: also a fallback, never a blind mount by digest.
        let r = http.send(
            "POST",
            &format!("/v2/mount/dst4/blobs/uploads/?mount={}", b.digest),
            &[],
            "",
        );
        r.expect_status(202);
        http.head(&format!("/v2/mount/dst4/blobs/{}", b.digest)).expect_status(404);
    }
}

all_backends! {
    fn delete_blob(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let b = Blob::new("application/octet-stream", pseudo_random(21, 300));
        push_blob(&http, "del/blob", &b);
        push_blob(&http, "del/other", &b);
        http.delete(&format!("/v2/del/blob/blobs/{}", b.digest)).expect_status(202);
        http.head(&format!("/v2/del/blob/blobs/{}", b.digest)).expect_status(404);
        http.get(&format!("/v2/del/blob/blobs/{}", b.digest)).expect_oci_error(404, "BLOB_UNKNOWN");
        http.delete(&format!("/v2/del/blob/blobs/{}", b.digest))
            .expect_oci_error(404, "BLOB_UNKNOWN");
        // De-duplicated storage: the other repository's link still serves it.
        assert_blob(&http, "del/other", &b.bytes);
    }
}

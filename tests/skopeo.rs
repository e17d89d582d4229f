//! skopeo against berth: push (copy in), inspect, pull (copy out), multi-arch
//! `--all`, list-tags, delete, cross-repository copy and Docker schema 2 conversion.

use berth_testsupport::layout::{layout_blob, layout_tag_digest, DOCKER_MANIFEST};
use berth_testsupport::{both_backends, Berth, Layout, TempDir};

both_backends! {
    fn roundtrip_multi_layer_image(backend) {
        let berth = Berth::start(backend);
        let src = TempDir::new("layout");
        let layout = Layout::build(src.path());
        let sk = berth.skopeo();
        sk.copy(&layout.oci_ref("single"), &berth.docker_ref("team/app:v1"), &[]);

        // The manifest is stored byte-exact and addressed by its digest.
        let raw = sk.inspect_raw("team/app:v1");
        assert_eq!(raw, layout.image.manifest.bytes, "manifest bytes changed");
        let by_digest = sk.inspect_raw(&format!("team/app@{}", layout.image.digest()));
        assert_eq!(by_digest, layout.image.manifest.bytes);
        let r = berth.http().head("/v2/team/app/manifests/v1");
        r.expect_status(200);
        assert_eq!(r.header("docker-content-digest"), Some(layout.image.digest()));

        // Copy back out: every blob byte for byte.
        let out = TempDir::new("pulled");
        sk.copy(
            &berth.docker_ref("team/app:v1"),
            &format!("oci:{}:v1", out.path().display()),
            &[],
        );
        assert_eq!(
            layout_tag_digest(out.path(), "v1").as_deref(),
            Some(layout.image.digest())
        );
        assert_eq!(layout_blob(out.path(), layout.image.digest()), layout.image.manifest.bytes);
        for b in layout.image.blobs() {
            assert_eq!(layout_blob(out.path(), &b.digest), b.bytes, "blob {} differs", b.digest);
        }
    }
}

both_backends! {
    fn multi_arch_index_all(backend) {
        let berth = Berth::start(backend);
        let src = TempDir::new("layout");
        let layout = Layout::build(src.path());
        let sk = berth.skopeo();
        sk.copy(&layout.oci_ref("multi"), &berth.docker_ref("multi/arch:v1"), &["--all"]);
        assert_eq!(sk.inspect_raw("multi/arch:v1"), layout.index.bytes);
        for img in &layout.index_images {
            assert_eq!(
                sk.inspect_raw(&format!("multi/arch@{}", img.digest())),
                img.manifest.bytes
            );
        }
        let out = TempDir::new("pulled");
        sk.copy(
            &berth.docker_ref("multi/arch:v1"),
            &format!("oci:{}:v1", out.path().display()),
            &["--all"],
        );
        assert_eq!(
            layout_tag_digest(out.path(), "v1").as_deref(),
            Some(layout.index.digest.as_str()),
            "index digest not preserved"
        );
        for img in &layout.index_images {
            assert_eq!(layout_blob(out.path(), img.digest()), img.manifest.bytes);
            for b in img.blobs() {
                assert_eq!(layout_blob(out.path(), &b.digest), b.bytes);
            }
        }
    }
}

both_backends! {
    fn list_tags_and_delete(backend) {
        let berth = Berth::start(backend);
        let src = TempDir::new("layout");
        let layout = Layout::build(src.path());
        let sk = berth.skopeo();
        for t in ["v1", "v2", "latest"] {
            sk.copy(&layout.oci_ref("single"), &berth.docker_ref(&format!("tags/app:{t}")), &[]);
        }
        let tags: serde_json::Value =
            serde_json::from_slice(&sk.run("list-tags", &[&berth.docker_ref("tags/app")])).unwrap();
        assert_eq!(tags["Repository"], format!("{}/tags/app", berth.host()));
        let mut got: Vec<&str> = tags["Tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        got.sort();
        assert_eq!(got, ["latest", "v1", "v2"]);

        // skopeo delete resolves the tag and deletes the manifest by digest: every tag
        // pointing at it goes.
        sk.run("delete", &[&berth.docker_ref("tags/app:v1")]);
        let out = sk.try_run("inspect", &["--raw", &berth.docker_ref("tags/app:v2")]);
        assert!(!out.status.success(), "manifest still pullable after delete");
        berth
            .http()
            .get(&format!("/v2/tags/app/manifests/{}", layout.image.digest()))
            .expect_oci_error(404, "MANIFEST_UNKNOWN");
        let tags: serde_json::Value =
            serde_json::from_slice(&sk.run("list-tags", &[&berth.docker_ref("tags/app")])).unwrap();
        assert_eq!(tags["Tags"], serde_json::json!([]));
    }
}

both_backends! {
    fn copy_between_repositories(backend) {
        let berth = Berth::start(backend);
        let src = TempDir::new("layout");
        let layout = Layout::build(src.path());
        let sk = berth.skopeo();
        sk.copy(&layout.oci_ref("single"), &berth.docker_ref("src/app:v1"), &[]);
        // Registry to registry: skopeo tries a cross-repository mount per blob.
        sk.copy(&berth.docker_ref("src/app:v1"), &berth.docker_ref("dst/app:v1"), &[]);
        assert_eq!(sk.inspect_raw("dst/app:v1"), layout.image.manifest.bytes);
        let http = berth.http();
        for b in layout.image.blobs() {
            let r = http.get(&format!("/v2/dst/app/blobs/{}", b.digest));
            r.expect_status(200);
            assert_eq!(r.body, b.bytes);
        }
    }
}

both_backends! {
    fn push_docker_schema2(backend) {
        let berth = Berth::start(backend);
        let src = TempDir::new("layout");
        let layout = Layout::build(src.path());
        let sk = berth.skopeo();
        sk.copy(&layout.oci_ref("single"), &berth.docker_ref("docker/app:v1"), &["--format", "v2s2"]);
        let raw = sk.inspect_raw("docker/app:v1");
        let m: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(m["mediaType"], DOCKER_MANIFEST);
        let r = berth.http().get("/v2/docker/app/manifests/v1");
        r.expect_status(200);
        assert_eq!(r.header("content-type"), Some(DOCKER_MANIFEST));
        assert_eq!(r.body, raw);
        assert_eq!(
            r.header("docker-content-digest"),
            Some(berth_testsupport::sha256_digest(&raw).as_str())
        );
        // Layers are the same bytes under Docker media types.
        assert_eq!(m["layers"].as_array().unwrap().len(), layout.image.layers.len());
        for (d, b) in m["layers"].as_array().unwrap().iter().zip(&layout.image.layers) {
            assert_eq!(d["digest"], b.digest.as_str());
        }
    }
}

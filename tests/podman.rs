//! podman (as root, vfs storage, private root) against berth: pull what skopeo
//! pushed, tag, push to another repository, pull back into a fresh store.

use berth_testsupport::{both_backends, Berth, Layout, TempDir};

both_backends! {
    fn pull_tag_push_pull(backend) {
        let berth = Berth::start(backend);
        let src = TempDir::new("layout");
        let layout = Layout::build(src.path());
        berth
            .skopeo()
            .copy(&layout.oci_ref("single"), &berth.docker_ref("podman/src:v1"), &[]);

        let pm = berth.podman();
        let src_ref = pm.image_ref("podman/src:v1");
        pm.run("pull", &["-q", &src_ref]);
        // The image id is the config digest: podman got the config byte-exact.
        let id = pm.run("image", &["inspect", "--format", "{{.Id}}", &src_ref]);
        let config_hex = layout.image.config.digest.strip_prefix("sha256:").unwrap();
        assert_eq!(id.trim(), config_hex);

        let dst_ref = pm.image_ref("podman/dst:v2");
        pm.run("tag", &[&src_ref, &dst_ref]);
        pm.run("push", &[&dst_ref]);

        // The pushed manifest references the same layers (podman reuses the
        // compressed blobs it pulled) and everything it names is served.
        let raw = berth.skopeo().inspect_raw("podman/dst:v2");
        let m: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(m["config"]["digest"], layout.image.config.digest.as_str());
        let http = berth.http();
        for d in m["layers"].as_array().unwrap() {
            let digest = d["digest"].as_str().unwrap();
            let r = http.head(&format!("/v2/podman/dst/blobs/{digest}"));
            r.expect_status(200);
            assert_eq!(r.header("content-length"), Some(d["size"].to_string().as_str()));
        }

        // Pull back into a fresh store.
        let fresh = berth.podman();
        fresh.run("pull", &["-q", &dst_ref]);
        let id = fresh.run("image", &["inspect", "--format", "{{.Id}}", &dst_ref]);
        assert_eq!(id.trim(), config_hex);
    }
}

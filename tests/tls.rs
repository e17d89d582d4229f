//! `berth serve --tls-cert/--tls-key` (rustls): skopeo pushes and pulls over HTTPS,
//! verifying the self-signed certificate through `--dest-cert-dir`/`--src-cert-dir`,
//! and refuses the connection without it.

use berth_testsupport::layout::layout_blob;
use berth_testsupport::tools::self_signed_cert;
use berth_testsupport::{both_backends, Berth, Layout, TempDir};

both_backends! {
    fn skopeo_over_tls(backend) {
        let certs = TempDir::new("certs");
        let (cert, key, ca_dir) = self_signed_cert(certs.path());
        let berth = Berth::options(backend).tls(&cert, &key).start();
        assert!(berth.url().starts_with("https://"));
        let src = TempDir::new("layout");
        let layout = Layout::build(src.path());

        let sk = berth.skopeo().cert_dir(&ca_dir);
        sk.copy(&layout.oci_ref("single"), &berth.docker_ref("tls/app:v1"), &[]);
        assert_eq!(sk.inspect_raw("tls/app:v1"), layout.image.manifest.bytes);
        let out = TempDir::new("pulled");
        sk.copy(&berth.docker_ref("tls/app:v1"), &format!("oci:{}:v1", out.path().display()), &[]);
        for b in layout.image.blobs() {
            assert_eq!(layout_blob(out.path(), &b.digest), b.bytes);
        }

        // Without the CA, verification fails (the server really speaks TLS with this cert).
        let empty = TempDir::new("noca");
        let strict = berth.skopeo().cert_dir(empty.path());
        let out = strict.try_run("inspect", &["--raw", &berth.docker_ref("tls/app:v1")]);
        assert!(!out.status.success(), "skopeo trusted an unknown self-signed certificate");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("certificate"), "unexpected error: {err}");
        // --tls-verify=false works too.
        let insecure = berth.skopeo();
        assert_eq!(insecure.inspect_raw("tls/app:v1"), layout.image.manifest.bytes);
    }
}

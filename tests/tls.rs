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

/// The SHA-256 fingerprint of the certificate `berth` presents to a new
/// connection (openssl s_client).
fn served_fingerprint(berth: &Berth) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
            berth.host()
        ))
        .output()
        .expect("run openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn file_fingerprint(cert: &std::path::Path) -> String {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .expect("run openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A renewed certificate takes effect on SIGHUP without a restart; a broken one
/// is refused and the one in use stays; TLS 1.1 is refused (TLS 1.2 minimum).
#[test]
fn sighup_reloads_the_certificate_and_tls_1_2_is_the_minimum() {
    let first = TempDir::new("certs-a");
    let (cert, key, _) = self_signed_cert(first.path());
    let live = TempDir::new("certs-live");
    let (live_cert, live_key) = (live.join("cert.pem"), live.join("key.pem"));
    std::fs::copy(&cert, &live_cert).unwrap();
    std::fs::copy(&key, &live_key).unwrap();
    let berth = Berth::options(berth_testsupport::Backend::Sqlite)
        .tls(&live_cert, &live_key)
        .start();
    let a = file_fingerprint(&cert);
    assert!(
        a.contains('='),
        "no fingerprint for the first certificate: {a:?}"
    );
    assert_eq!(served_fingerprint(&berth), a);

    // Renewed on disk: still the old one until SIGHUP, the new one after.
    let second = TempDir::new("certs-b");
    let (cert_b, key_b, _) = self_signed_cert(second.path());
    std::fs::copy(&cert_b, &live_cert).unwrap();
    std::fs::copy(&key_b, &live_key).unwrap();
    let b = file_fingerprint(&cert_b);
    assert_ne!(a, b);
    assert_eq!(served_fingerprint(&berth), a, "reloaded without SIGHUP");
    berth.signal(1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while served_fingerprint(&berth) != b {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload the certificate"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // A broken file: the certificate in use stays, and the server keeps serving.
    std::fs::write(&live_cert, "not a certificate").unwrap();
    berth.signal(1);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(served_fingerprint(&berth), b);
    assert!(
        berth.stderr_tail(20).contains("did not load"),
        "{}",
        berth.stderr_tail(20)
    );

    // TLS 1.1 is refused; TLS 1.2 is accepted.
    let handshake = |flag: &str| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl s_client {flag} -connect {} </dev/null >/dev/null 2>&1",
                berth.host()
            ))
            .status()
            .expect("run openssl")
            .success()
    };
    assert!(handshake("-tls1_2"), "a TLS 1.2 handshake failed");
    // The client must be willing (OpenSSL 3 refuses TLS 1.1 itself at its default
    // security level), so that only the server can make this fail.
    assert!(
        !handshake("-tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'"),
        "a TLS 1.1 handshake succeeded"
    );
}

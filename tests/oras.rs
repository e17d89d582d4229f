//! oras-py against berth: file artifacts round-trip, and artifacts with a `subject`
//! show up in the referrers API with `artifactType` filtering.

use berth_testsupport::layout::SBOM_ARTIFACT_TYPE;
use berth_testsupport::{both_backends, layout, sha256_digest, Berth, Layout, TempDir};

both_backends! {
    fn push_pull_file_artifact(backend) {
        let berth = Berth::start(backend);
        let work = TempDir::new("oras");
        let payload = layout::pseudo_random(7, 100_000);
        std::fs::write(work.join("artifact.bin"), &payload).unwrap();
        std::fs::write(work.join("notes.txt"), b"hello from oras\n").unwrap();
        let target = format!("{}/oras/files:v1", berth.host());
        berth.oras_py(
            work.path(),
            "r = client.push(target=args[0], files=['artifact.bin', 'notes.txt:text/plain'])\n\
             assert r.status_code == 201, r.status_code",
            &[&target],
        );
        let out = berth.oras_py(
            work.path(),
            "m = client.get_manifest(args[0])\n\
             print(json.dumps(m))\n\
             client.pull(target=args[0], outdir='out')",
            &[&target],
        );
        let m: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0]["digest"], sha256_digest(&payload).as_str());
        assert_eq!(layers[1]["mediaType"], "text/plain");
        assert_eq!(std::fs::read(work.join("out/artifact.bin")).unwrap(), payload);
        assert_eq!(
            std::fs::read(work.join("out/notes.txt")).unwrap(),
            b"hello from oras\n"
        );
    }
}

both_backends! {
    fn referrers_of_subject(backend) {
        let berth = Berth::start(backend);
        let src = TempDir::new("layout");
        let layout = Layout::build(src.path());
        berth
            .skopeo()
            .copy(&layout.oci_ref("single"), &berth.docker_ref("oras/app:v1"), &[]);
        let subject = &layout.image.manifest;

        // 1. oras-py pushes a signature-like artifact: its config media type is the
        //    artifact type (the manifest has no artifactType field).
        let work = TempDir::new("oras");
        std::fs::write(work.join("sig.txt"), b"signature\n").unwrap();
        std::fs::write(work.join("config.json"), b"{}").unwrap();
        let sig_type = "application/vnd.example.signature.v1+json";
        let out = berth.oras_py(
            work.path(),
            "s = oras.oci.Subject(mediaType=args[1], digest=args[2], size=int(args[3]))\n\
             r = client.push(target=args[0], files=['sig.txt'], subject=s,\n\
                             manifest_config='config.json:' + args[4])\n\
             assert r.status_code == 201, r.status_code\n\
             print(r.headers.get('OCI-Subject'))\n\
             print(r.headers.get('Docker-Content-Digest'))",
            &[
                &format!("{}/oras/app:sig", berth.host()),
                &subject.media_type,
                &subject.digest,
                &subject.size().to_string(),
                sig_type,
            ],
        );
        let mut lines = out.lines().rev();
        let sig_digest = lines.next().unwrap().to_string();
        assert_eq!(lines.next(), Some(subject.digest.as_str()), "OCI-Subject header");

        // 2. An artifact manifest with artifactType and the empty config.
        let http = berth.http();
        let put = layout.artifact.push(&http, "oras/app", "sbom");
        assert_eq!(put.header("oci-subject"), Some(subject.digest.as_str()));

        let r = http.get(&format!("/v2/oras/app/referrers/{}", subject.digest));
        r.expect_status(200);
        assert_eq!(r.header("content-type"), Some(layout::OCI_INDEX));
        assert_eq!(r.header("oci-filters-applied"), None);
        let idx = r.json();
        assert_eq!(idx["schemaVersion"], 2);
        assert_eq!(idx["mediaType"], layout::OCI_INDEX);
        let mut found: Vec<(String, String)> = idx["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["digest"].as_str().unwrap().to_string(),
                    d["artifactType"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        found.sort();
        let mut want = vec![
            (sig_digest.clone(), sig_type.to_string()),
            (layout.artifact.digest().to_string(), SBOM_ARTIFACT_TYPE.to_string()),
        ];
        want.sort();
        assert_eq!(found, want);
        let sbom = idx["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["digest"] == layout.artifact.digest())
            .unwrap();
        assert_eq!(sbom["mediaType"], layout::OCI_MANIFEST);
        assert_eq!(sbom["size"], layout.artifact.manifest.size());
        assert_eq!(
            sbom["annotations"]["org.opencontainers.image.created"],
            "2024-01-01T00:00:00Z"
        );

        // Filtering by artifactType.
        let r = http.get(&format!(
            "/v2/oras/app/referrers/{}?artifactType={}",
            subject.digest,
            SBOM_ARTIFACT_TYPE.replace('+', "%2B")
        ));
        r.expect_status(200);
        assert_eq!(r.header("oci-filters-applied"), Some("artifactType"));
        let m = r.json()["manifests"].clone();
        assert_eq!(m.as_array().unwrap().len(), 1, "{m}");
        assert_eq!(m[0]["digest"], layout.artifact.digest());

        let r = http.get(&format!(
            "/v2/oras/app/referrers/{}?artifactType=application/none",
            subject.digest
        ));
        r.expect_status(200);
        assert_eq!(r.header("oci-filters-applied"), Some("artifactType"));
        assert_eq!(r.json()["manifests"], serde_json::json!([]));

        // A subject that does not exist (yet) has an empty referrers list.
        let missing = sha256_digest(b"no such manifest");
        let r = http.get(&format!("/v2/oras/app/referrers/{missing}"));
        r.expect_status(200);
        assert_eq!(r.json()["manifests"], serde_json::json!([]));
    }
}

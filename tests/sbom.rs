//! SBOMs of scanned images end to end: a repository asks for them with its
//! `berth:sbom-referrer` resource tag, a scan pushes the image's CycloneDX SBOM as an
//! OCI referrer (seen through the referrers API, pulled with oras-py and validated
//! against the vendored CycloneDX 1.6 schema), the SBOM is not scanned itself, and
//! `berth sbom` prints the same document (or SPDX 2.3, validated too).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_testsupport::layout::{image, tar_gz_layer, Blob, Image, OCI_LAYER_GZIP};
use berth_testsupport::{both_backends, Berth, TempDir};
use serde_json::{json, Value};

const CYCLONEDX: &str = "application/vnd.cyclonedx+json";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vuln")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// A gzip layer holding every file under `root`, stored below `prefix`.
pub fn dir_layer(root: &Path, prefix: &str) -> (Blob, String) {
    let mut files = Vec::new();
    walk(root, &mut files);
    let list: Vec<(String, u32, Vec<u8>)> = files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(root).unwrap_or(f);
            (
                format!("{prefix}{}", rel.display()),
                0o644,
                std::fs::read(f).unwrap_or_default(),
            )
        })
        .collect();
    let list: Vec<(&str, u32, Vec<u8>)> = list
        .iter()
        .map(|(p, m, d)| (p.as_str(), *m, d.clone()))
        .collect();
    tar_gz_layer(OCI_LAYER_GZIP, &list)
}

/// Debian 12 base, Python site-packages and an npm app.
fn fixture_image() -> Image {
    let f = fixtures();
    image(
        vec![
            dir_layer(&f.join("debian-bookworm"), ""),
            dir_layer(&f.join("python-site-packages"), ""),
            dir_layer(&f.join("npm-app"), "app/"),
        ],
        "amd64",
        false,
    )
}

/// Validates against the schemas vendored in `crates/scan/tests/schemas`
/// (`SOURCES.md` there), with format assertions on.
pub fn validate(doc: &Value, cyclonedx: bool) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/scan/tests/schemas");
    let mut c = boon::Compiler::new();
    c.enable_format_assertions();
    for (url, file) in [
        (
            "http://cyclonedx.org/schema/bom-1.6.schema.json",
            "bom-1.6.schema.json",
        ),
        (
            "http://cyclonedx.org/schema/spdx.schema.json",
            "spdx.schema.json",
        ),
        (
            "http://cyclonedx.org/schema/jsf-0.82.schema.json",
            "jsf-0.82.schema.json",
        ),
        ("http://spdx.org/rdf/terms/2.3", "spdx-2.3.schema.json"),
    ] {
        let text = std::fs::read(dir.join(file)).expect("schema");
        let v: Value = serde_json::from_slice(&text).expect("schema json");
        c.add_resource(url, v).expect("schema resource");
    }
    let mut schemas = boon::Schemas::new();
    let url = if cyclonedx {
        "http://cyclonedx.org/schema/bom-1.6.schema.json"
    } else {
        "http://spdx.org/rdf/terms/2.3"
    };
    let idx = c.compile(url, &mut schemas).expect("compile schema");
    if let Err(e) = schemas.validate(doc, idx) {
        panic!("not valid against {url}: {e:#}");
    }
}

/// The berth-made CycloneDX referrers of `subject` (from the referrers API).
pub fn sbom_referrers(berth: &Berth, repo: &str, subject: &str) -> Vec<Value> {
    let r = berth.http().get(&format!(
        "/v2/{repo}/referrers/{subject}?artifactType={}",
        CYCLONEDX.replace('+', "%2B")
    ));
    r.expect_status(200);
    r.json()["manifests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[track_caller]
fn wait_scan(berth: &Berth, repo: &str, id: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = berth.ecr(
            "DescribeImageScanFindings",
            &json!({"repositoryName": repo, "imageId": id}),
        );
        r.expect_status(200);
        let v = r.json();
        if v["imageScanStatus"]["status"] != "IN_PROGRESS" {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "scan still IN_PROGRESS after 60 s:\n{}",
            berth.stderr_tail(30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn purls(doc: &Value) -> Vec<String> {
    doc["components"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c["purl"].as_str().map(str::to_string))
        .collect()
}

both_backends! {
    fn scans_push_their_sbom_as_a_referrer_when_the_repository_asks(backend) {
        let berth = Berth::start(backend);
        let path = fixtures().join("advisories");
        berth.command(&[], &["vulndb", "import", &path.to_string_lossy()]);
        for (name, tags) in [
            ("sbom/on", json!([{"Key": "berth:sbom-referrer", "Value": "true"}])),
            ("sbom/off", json!([])),
        ] {
            berth.ecr("CreateRepository", &json!({
                "repositoryName": name,
                "imageScanningConfiguration": {"scanOnPush": true},
                "tags": tags,
            })).expect_status(200);
        }
        let img = fixture_image();
        let http = berth.http();
        img.push(&http, "sbom/on", "v1").expect_status(201);
        img.push(&http, "sbom/off", "v1").expect_status(201);
        let v = wait_scan(&berth, "sbom/on", &json!({"imageTag": "v1"}));
        assert_eq!(v["imageScanStatus"]["status"], "COMPLETE", "{v}");
        let v = wait_scan(&berth, "sbom/off", &json!({"imageTag": "v1"}));
        assert_eq!(v["imageScanStatus"]["status"], "COMPLETE", "{v}");

        // Not asked for: no referrer.
        assert_eq!(sbom_referrers(&berth, "sbom/off", img.digest()), Vec::<Value>::new());

        // Asked for: exactly one CycloneDX referrer, marked as berth's.
        let refs = sbom_referrers(&berth, "sbom/on", img.digest());
        assert_eq!(refs.len(), 1, "{refs:?}");
        let sbom_digest = refs[0]["digest"].as_str().unwrap().to_string();
        assert_eq!(refs[0]["artifactType"], CYCLONEDX);
        assert_eq!(refs[0]["annotations"]["dev.berth.sbom.generator"], "berth-scan");

        // The manifest is an OCI 1.1 artifact: empty config, one layer, the image as subject.
        let r = http.get(&format!("/v2/sbom/on/manifests/{sbom_digest}"));
        r.expect_status(200);
        let m = r.json();
        assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(m["config"]["mediaType"], "application/vnd.oci.empty.v1+json");
        assert_eq!(m["config"]["size"], 2);
        assert_eq!(m["subject"]["digest"], img.digest());
        assert_eq!(m["layers"].as_array().unwrap().len(), 1);
        assert_eq!(m["layers"][0]["mediaType"], CYCLONEDX);

        // oras pulls it like any artifact; it is a valid CycloneDX 1.6 document
        // describing the image, with a purl for each package found.
        let work = TempDir::new("sbom");
        berth.oras_py(
            work.path(),
            "client.pull(target=args[0], outdir='out')",
            &[&format!("{}/sbom/on@{sbom_digest}", berth.host())],
        );
        let bytes = std::fs::read(work.join("out/sbom.cdx.json")).expect("pulled SBOM");
        let doc: Value = serde_json::from_slice(&bytes).expect("SBOM JSON");
        validate(&doc, true);
        assert_eq!(doc["bomFormat"], "CycloneDX");
        assert_eq!(doc["specVersion"], "1.6");
        let p = purls(&doc);
        for want in ["pkg:deb/debian/openssl@", "pkg:pypi/urllib3@", "pkg:npm/minimist@1.2.5"] {
            assert!(p.iter().any(|x| x.starts_with(want)), "{want} not in {p:?}");
        }
        assert!(doc["metadata"]["component"]["purl"].as_str().is_some_and(|s| s.starts_with("pkg:oci/")), "{}", doc["metadata"]);

        // The SBOM is not scanned, and does not get an SBOM of its own.
        let r = berth.ecr("DescribeImageScanFindings", &json!({"repositoryName": "sbom/on", "imageId": {"imageDigest": sbom_digest}}));
        assert_eq!(r.json()["__type"], "ScanNotFoundException", "{}", r.describe());
        assert_eq!(sbom_referrers(&berth, "sbom/on", &sbom_digest), Vec::<Value>::new());

        // `berth sbom` prints the same document by digest, the tag named by tag,
        // and SPDX 2.3 on request.
        let by_digest: Value = serde_json::from_str(&berth.command(&[], &["sbom", &format!("sbom/on@{}", img.digest())])).expect("sbom json");
        assert_eq!(by_digest, doc);
        let by_tag: Value = serde_json::from_str(&berth.command(&[], &["sbom", "sbom/on:v1"])).expect("sbom json");
        validate(&by_tag, true);
        assert_eq!(purls(&by_tag), p);
        assert!(by_tag["metadata"]["component"]["purl"].as_str().is_some_and(|s| s.contains("tag=v1")), "{}", by_tag["metadata"]);
        let spdx: Value = serde_json::from_str(&berth.command(&[], &["sbom", "sbom/off:v1", "--format", "spdx"])).expect("spdx json");
        validate(&spdx, false);
        assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
        assert!(spdx["packages"].as_array().is_some_and(|a| a.len() > p.len()), "{spdx}");
        // Unknown images and artifacts are errors, not empty documents.
        let o = berth.command_output(&[], &["sbom", "sbom/on:nope"]);
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("no image"), "{o:?}");
        let o = berth.command_output(&[], &["sbom", &format!("sbom/on@{sbom_digest}")]);
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("not a container image"), "{o:?}");
    }
}

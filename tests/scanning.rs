//! Image scanning end to end: advisories imported with `berth vulndb import` while
//! the server runs, images built from the fixture inventories of
//! `fixtures/vuln/EXPECTED.md` pushed into scan-on-push repositories, and the
//! findings read back with DescribeImageScanFindings (and the real AWS CLI).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_testsupport::layout::{artifact, image, tar_gz_layer, Blob, Image, OCI_LAYER_GZIP};
use berth_testsupport::tools::require;
use berth_testsupport::{both_backends, Berth};
use serde_json::{json, Value};

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
fn dir_layer(root: &Path, prefix: &str) -> (Blob, String) {
    let mut files = Vec::new();
    walk(root, &mut files);
    let owned: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(root).unwrap_or(f);
            (
                format!("{prefix}{}", rel.display()),
                std::fs::read(f).unwrap_or_default(),
            )
        })
        .collect();
    let list: Vec<(&str, u32, Vec<u8>)> = owned
        .iter()
        .map(|(p, d)| (p.as_str(), 0o644, d.clone()))
        .collect();
    tar_gz_layer(OCI_LAYER_GZIP, &list)
}

/// Debian 12 base, Python site-packages and an npm app: the 26 expected findings.
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

/// (advisory id, package name, severity) of the 26 findings of EXPECTED.md.
fn expected() -> BTreeSet<(String, String, String)> {
    [
        ("DEBIAN-CVE-2011-3374", "apt", "INFORMATIONAL"),
        ("DEBIAN-CVE-2011-3374", "libapt-pkg6.0", "INFORMATIONAL"),
        ("DEBIAN-CVE-2026-109518", "apt", "MEDIUM"),
        ("DEBIAN-CVE-2026-109518", "libapt-pkg6.0", "MEDIUM"),
        ("DEBIAN-CVE-2026-24515", "libexpat1", "HIGH"),
        ("DEBIAN-CVE-2026-56132", "libexpat1", "MEDIUM"),
        ("DEBIAN-CVE-2026-103111", "libpcre2-8-0", "HIGH"),
        ("DEBIAN-CVE-2026-42767", "libssl3", "MEDIUM"),
        ("DEBIAN-CVE-2026-84782", "libssl3", "HIGH"),
        ("DEBIAN-CVE-2026-42767", "openssl", "MEDIUM"),
        ("DEBIAN-CVE-2026-84782", "openssl", "HIGH"),
        ("DEBIAN-CVE-2026-7017", "perl-base", "HIGH"),
        ("PYSEC-2021-66", "Jinja2", "UNDEFINED"),
        ("PYSEC-2021-142", "PyYAML", "UNDEFINED"),
        ("PYSEC-2023-221", "Werkzeug", "HIGH"),
        ("PYSEC-2023-135", "certifi", "UNDEFINED"),
        ("PYSEC-2024-60", "idna", "HIGH"),
        ("PYSEC-2023-74", "requests", "UNDEFINED"),
        ("PYSEC-2022-43012", "setuptools", "UNDEFINED"),
        ("PYSEC-2023-192", "urllib3", "HIGH"),
        ("PYSEC-2023-212", "urllib3", "MEDIUM"),
        ("GHSA-cph5-m8f7-6c5x", "axios", "HIGH"),
        ("GHSA-35jh-r3h4-6jhm", "lodash", "HIGH"),
        ("GHSA-xvch-5gv4-984h", "minimist", "CRITICAL"),
        ("GHSA-r683-j2x4-v87g", "node-fetch", "HIGH"),
        ("GHSA-c2qf-rxjj-qqgw", "semver", "MEDIUM"),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect()
}

fn attr<'a>(f: &'a Value, key: &str) -> Option<&'a str> {
    f["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .and_then(|a| a["value"].as_str())
}

fn triples(findings: &[Value]) -> BTreeSet<(String, String, String)> {
    findings
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap_or("").to_string(),
                attr(f, "package_name").unwrap_or("").to_string(),
                f["severity"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn import(berth: &Berth, dir: &Path) -> String {
    let path = dir.to_string_lossy().into_owned();
    berth.command(&[], &["vulndb", "import", &path])
}

fn findings_call(berth: &Berth, repo: &str, id: &Value) -> berth_testsupport::Response {
    berth.ecr(
        "DescribeImageScanFindings",
        &json!({"repositoryName": repo, "imageId": id}),
    )
}

/// Polls DescribeImageScanFindings until the scan leaves IN_PROGRESS.
#[track_caller]
fn wait_scan(berth: &Berth, repo: &str, id: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = findings_call(berth, repo, id);
        r.expect_status(200);
        let v = r.json();
        if v["imageScanStatus"]["status"] != "IN_PROGRESS" {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "scan of {id} still IN_PROGRESS after 60 s:\n{}",
            berth.stderr_tail(30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every finding, following nextToken.
fn all_findings(berth: &Berth, repo: &str, id: &Value, page: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"repositoryName": repo, "imageId": id, "maxResults": page});
        if let Some(t) = &token {
            body["nextToken"] = json!(t);
        }
        let r = berth.ecr("DescribeImageScanFindings", &body);
        r.expect_status(200);
        let v = r.json();
        let f = v["imageScanFindings"]["findings"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(f.len() <= page as usize);
        out.extend(f);
        match v["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => return out,
        }
    }
}

fn error_type(r: &berth_testsupport::Response) -> String {
    r.json()["__type"].as_str().unwrap_or("").to_string()
}

both_backends! {
    fn scan_on_push_yields_the_expected_findings(backend) {
        let berth = Berth::start(backend);
        let out = import(&berth, &fixtures().join("advisories"));
        assert!(out.contains("imported 62 advisories"), "{out}");
        berth.ecr("CreateRepository", &json!({
            "repositoryName": "scan/app",
            "imageScanningConfiguration": {"scanOnPush": true},
        })).expect_status(200);

        let img = fixture_image();
        img.push(&berth.http(), "scan/app", "v1").expect_status(201);
        let id = json!({"imageTag": "v1"});
        let v = wait_scan(&berth, "scan/app", &id);
        assert_eq!(v["imageScanStatus"]["status"], "COMPLETE", "{v}");
        assert_eq!(v["imageId"]["imageDigest"], img.digest());
        let findings = v["imageScanFindings"]["findings"].as_array().cloned().unwrap_or_default();
        assert_eq!(findings.len(), 26, "{v}");
        assert_eq!(triples(&findings), expected());
        let counts = &v["imageScanFindings"]["findingSeverityCounts"];
        assert_eq!(counts, &json!({"CRITICAL": 1, "HIGH": 11, "MEDIUM": 7, "UNDEFINED": 5, "INFORMATIONAL": 2}));
        assert!(v["imageScanFindings"]["imageScanCompletedAt"].is_number());
        assert!(v["imageScanFindings"]["vulnerabilitySourceUpdatedAt"].is_number());
        // Attributes: package version, fixed version, CVSS where the advisory has one.
        let minimist = findings.iter().find(|f| f["name"] == "GHSA-xvch-5gv4-984h").cloned().unwrap_or_default();
        assert_eq!(attr(&minimist, "package_version"), Some("1.2.5"));
        assert_eq!(attr(&minimist, "fixed_in_version"), Some("1.2.6"));
        assert_eq!(attr(&minimist, "CVSS3_VECTOR"), Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"));
        assert!(minimist["uri"].as_str().is_some_and(|u| u.starts_with("http")), "{minimist}");
        let apt = findings.iter().find(|f| f["name"] == "DEBIAN-CVE-2011-3374").cloned().unwrap_or_default();
        assert_eq!(attr(&apt, "fixed_in_version"), None);

        // Paging: 26 findings in pages of 10.
        let paged = all_findings(&berth, "scan/app", &id, 10);
        assert_eq!(paged.len(), 26);
        assert_eq!(triples(&paged), expected());

        // DescribeImages carries the status and the summary.
        let r = berth.ecr("DescribeImages", &json!({"repositoryName": "scan/app"}));
        r.expect_status(200);
        let d = &r.json()["imageDetails"][0];
        assert_eq!(d["imageScanStatus"]["status"], "COMPLETE");
        assert_eq!(d["imageScanFindingsSummary"]["findingSeverityCounts"]["CRITICAL"], 1);

        // The push already used today's scan.
        let r = berth.ecr("StartImageScan", &json!({"repositoryName": "scan/app", "imageId": id}));
        assert_eq!(error_type(&r), "LimitExceededException", "{}", r.describe());
        assert!(r.json()["message"].as_str().is_some_and(|m| m.contains("scan quota per image")));
    }
}

both_backends! {
    fn hostile_layers_fail_and_artifacts_are_unsupported(backend) {
        let berth = Berth::start(backend);
        import(&berth, &fixtures().join("advisories"));
        berth.ecr("CreateRepository", &json!({
            "repositoryName": "hostile",
            "imageScanningConfiguration": {"scanOnPush": true},
        })).expect_status(200);
        let http = berth.http();

        // A decompression bomb: 200 MiB of zeros declared as the dpkg database
        // (a ~200 KiB blob), beyond the scanner's per-file limit.
        let bomb = image(vec![bomb_layer(200 << 20)], "amd64", false);
        bomb.push(&http, "hostile", "bomb").expect_status(201);
        let v = wait_scan(&berth, "hostile", &json!({"imageTag": "bomb"}));
        assert_eq!(v["imageScanStatus"]["status"], "FAILED", "{v}");
        let why = v["imageScanStatus"]["description"].as_str().unwrap_or("");
        assert!(why.contains("limit"), "{why}");
        assert!(v.get("imageScanFindings").is_none(), "{v}");

        // Not a tar at all behind a gzip header.
        let junk = image(vec![(Blob::new(OCI_LAYER_GZIP, gzip(&[0x5a; 4096])), String::new())], "amd64", false);
        junk.push(&http, "hostile", "junk").expect_status(201);
        let v = wait_scan(&berth, "hostile", &json!({"imageTag": "junk"}));
        assert_eq!(v["imageScanStatus"]["status"], "FAILED", "{v}");
        assert!(v["imageScanStatus"]["description"].as_str().is_some_and(|d| !d.is_empty()));

        // An artifact (an SBOM referring to the bomb image) is not an image.
        let sbom = artifact("application/spdx+json", b"{\"spdxVersion\":\"SPDX-2.3\"}".to_vec(), &bomb.manifest);
        sbom.push(&http, "hostile", sbom.digest()).expect_status(201);
        let v = wait_scan(&berth, "hostile", &json!({"imageDigest": sbom.digest()}));
        assert_eq!(v["imageScanStatus"]["status"], "UNSUPPORTED_IMAGE", "{v}");
        assert!(v["imageScanStatus"]["description"].as_str().is_some_and(|d| d.contains("not a container image")), "{v}");
        // A manual scan of an artifact is refused up front, as ECR does.
        let r = berth.ecr("StartImageScan", &json!({"repositoryName": "hostile", "imageId": {"imageDigest": sbom.digest()}}));
        r.expect_status(400);
        assert_eq!(r.json()["__type"], "UnsupportedImageTypeException");

        // An image with no OS and no packages.
        let empty = image(vec![tar_gz_layer(OCI_LAYER_GZIP, &[("srv/index.html", 0o644, b"<p>hi</p>".to_vec())])], "amd64", false);
        empty.push(&http, "hostile", "static").expect_status(201);
        let v = wait_scan(&berth, "hostile", &json!({"imageTag": "static"}));
        assert_eq!(v["imageScanStatus"]["status"], "UNSUPPORTED_IMAGE", "{v}");

        // The server is still well.
        berth.http().get("/v2/").expect_status(200);
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// A gzip tar whose `var/lib/dpkg/status` is `size` zero bytes, streamed so the
/// test never holds the inflated form.
fn bomb_layer(size: u64) -> (Blob, String) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut h = tar::Header::new_ustar();
    h.set_path("var/lib/dpkg/status").expect("path");
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    gz.write_all(h.as_bytes()).expect("gzip");
    let zeros = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        gz.write_all(&zeros[..n]).expect("gzip");
        left -= n as u64;
    }
    gz.write_all(&[0u8; 1024]).expect("gzip");
    (
        Blob::new(OCI_LAYER_GZIP, gz.finish().expect("gzip")),
        String::new(),
    )
}

both_backends! {
    fn manual_scans_quota_and_scanning_configuration(backend) {
        let berth = Berth::start(backend);
        import(&berth, &fixtures().join("advisories"));
        berth.ecr("CreateRepository", &json!({"repositoryName": "manual"})).expect_status(200);
        let f = fixtures();
        let img = image(vec![dir_layer(&f.join("npm-app"), "app/")], "amd64", false);
        img.push(&berth.http(), "manual", "v1").expect_status(201);
        let id = json!({"imageTag": "v1"});
        // Not scanned on push.
        let r = findings_call(&berth, "manual", &id);
        assert_eq!(error_type(&r), "ScanNotFoundException", "{}", r.describe());
        let r = findings_call(&berth, "manual", &json!({"imageTag": "nope"}));
        assert_eq!(error_type(&r), "ImageNotFoundException", "{}", r.describe());
        let r = berth.ecr("StartImageScan", &json!({"repositoryName": "manual", "imageId": {"imageTag": "nope"}}));
        assert_eq!(error_type(&r), "ImageNotFoundException", "{}", r.describe());

        let r = berth.ecr("StartImageScan", &json!({"repositoryName": "manual", "imageId": id}));
        r.expect_status(200);
        assert_eq!(r.json()["imageScanStatus"]["status"], "IN_PROGRESS");
        assert_eq!(r.json()["imageId"]["imageDigest"], img.digest());
        let v = wait_scan(&berth, "manual", &id);
        assert_eq!(v["imageScanStatus"]["status"], "COMPLETE", "{v}");
        assert_eq!(v["imageScanFindings"]["findings"].as_array().map(Vec::len), Some(5));
        let r = berth.ecr("StartImageScan", &json!({"repositoryName": "manual", "imageId": id}));
        assert_eq!(error_type(&r), "LimitExceededException", "{}", r.describe());

        // Effective configuration: the repository flag, until registry rules exist.
        berth.ecr("CreateRepository", &json!({
            "repositoryName": "team/prod-api",
            "imageScanningConfiguration": {"scanOnPush": true},
        })).expect_status(200);
        let r = berth.ecr("BatchGetRepositoryScanningConfiguration", &json!({
            "repositoryNames": ["manual", "team/prod-api", "missing"],
        }));
        r.expect_status(200);
        let v = r.json();
        assert_eq!(v["scanningConfigurations"][0]["scanFrequency"], "MANUAL");
        assert_eq!(v["scanningConfigurations"][0]["scanOnPush"], false);
        assert_eq!(v["scanningConfigurations"][1]["scanFrequency"], "SCAN_ON_PUSH");
        assert_eq!(v["scanningConfigurations"][1]["scanOnPush"], true);
        assert!(v["scanningConfigurations"][1]["repositoryArn"].as_str().is_some_and(|a| a.ends_with(":repository/team/prod-api")));
        assert_eq!(v["failures"][0]["repositoryName"], "missing");
        assert_eq!(v["failures"][0]["failureCode"], "REPOSITORY_NOT_FOUND");

        berth.ecr("PutRegistryScanningConfiguration", &json!({
            "scanType": "BASIC",
            "rules": [{"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [{"filter": "manu*", "filterType": "WILDCARD"}]}],
        })).expect_status(200);
        let r = berth.ecr("BatchGetRepositoryScanningConfiguration", &json!({
            "repositoryNames": ["manual", "team/prod-api"],
        }));
        let v = r.json();
        assert_eq!(v["scanningConfigurations"][0]["scanFrequency"], "SCAN_ON_PUSH");
        assert_eq!(v["scanningConfigurations"][0]["appliedScanFilters"], json!([{"filter": "manu*", "filterType": "WILDCARD"}]));
        // Rules override the repository's own flag.
        assert_eq!(v["scanningConfigurations"][1]["scanFrequency"], "MANUAL");

        // A later push into `manual` is now scanned on push; `team/prod-api` is not.
        let img2 = image(vec![dir_layer(&f.join("python-site-packages"), "")], "amd64", false);
        img2.push(&berth.http(), "manual", "v2").expect_status(201);
        let v = wait_scan(&berth, "manual", &json!({"imageTag": "v2"}));
        assert_eq!(v["imageScanFindings"]["findings"].as_array().map(Vec::len), Some(9), "{v}");
        img2.push(&berth.http(), "team/prod-api", "v2").expect_status(201);
        let r = findings_call(&berth, "team/prod-api", &json!({"imageTag": "v2"}));
        assert_eq!(error_type(&r), "ScanNotFoundException", "{}", r.describe());

        let r = berth.ecr("BatchGetRepositoryScanningConfiguration", &json!({"repositoryNames": []}));
        assert_eq!(error_type(&r), "InvalidParameterException");
    }
}

both_backends! {
    fn continuous_scan_rescans_when_advisories_change(backend) {
        let berth = Berth::start(backend);
        berth.ecr("PutRegistryScanningConfiguration", &json!({
            "scanType": "ENHANCED",
            "rules": [{"scanFrequency": "CONTINUOUS_SCAN", "repositoryFilters": [{"filter": "cont", "filterType": "WILDCARD"}]}],
        })).expect_status(200);
        berth.ecr("CreateRepository", &json!({"repositoryName": "cont/app"})).expect_status(200);
        let f = fixtures();
        // Only the PyPI advisories at first.
        import(&berth, &f.join("advisories/pypi"));
        let img = image(
            vec![dir_layer(&f.join("python-site-packages"), ""), dir_layer(&f.join("npm-app"), "app/")],
            "amd64",
            false,
        );
        img.push(&berth.http(), "cont/app", "v1").expect_status(201);
        let id = json!({"imageTag": "v1"});
        let v = wait_scan(&berth, "cont/app", &id);
        assert_eq!(v["imageScanStatus"]["status"], "COMPLETE", "{v}");
        let before = v["imageScanFindings"]["findings"].as_array().cloned().unwrap_or_default();
        assert_eq!(before.len(), 9);
        assert!(!before.iter().any(|f| f["name"] == "GHSA-xvch-5gv4-984h"));

        // New advisories: the image is rescanned without anyone asking.
        let out = import(&berth, &f.join("advisories/npm"));
        assert!(out.contains("1 image(s) queued for rescanning"), "{out}");
        let v = wait_scan(&berth, "cont/app", &id);
        assert_eq!(v["imageScanStatus"]["status"], "COMPLETE", "{v}");
        let after = v["imageScanFindings"]["findings"].as_array().cloned().unwrap_or_default();
        assert_eq!(after.len(), 14, "{v}");
        assert!(after.iter().any(|f| f["name"] == "GHSA-xvch-5gv4-984h" && attr(f, "package_name") == Some("minimist")));
    }
}

/// The acceptance check through the real AWS CLI (v1), as a user would run it.
#[test]
fn aws_cli_describe_image_scan_findings() {
    require("aws", "pip install awscli");
    let berth = Berth::start(berth_testsupport::Backend::Sqlite);
    import(&berth, &fixtures().join("advisories"));
    berth
        .ecr(
            "CreateRepository",
            &json!({
                "repositoryName": "scan/cli",
                "imageScanningConfiguration": {"scanOnPush": true},
            }),
        )
        .expect_status(200);
    fixture_image()
        .push(&berth.http(), "scan/cli", "v1")
        .expect_status(201);
    let creds = berth.root_credentials();
    let aws = |args: &[&str]| berth.aws_ok(&creds, args);
    // The CLI's own waiter (ImageScanComplete) polls until COMPLETE.
    aws(&[
        "ecr",
        "wait",
        "image-scan-complete",
        "--repository-name",
        "scan/cli",
        "--image-id",
        "imageTag=v1",
    ]);
    // Pages of 7 put the CLI's pagination (nextToken) to work.
    let v = aws(&[
        "ecr",
        "describe-image-scan-findings",
        "--repository-name",
        "scan/cli",
        "--image-id",
        "imageTag=v1",
        "--page-size",
        "7",
    ]);
    assert_eq!(v["imageScanStatus"]["status"], "COMPLETE", "{v}");
    let findings = v["imageScanFindings"]["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(findings.len(), 26, "{v}");
    assert_eq!(triples(&findings), expected());
    let v = aws(&[
        "ecr",
        "batch-get-repository-scanning-configuration",
        "--repository-names",
        "scan/cli",
    ]);
    assert_eq!(
        v["scanningConfigurations"][0]["scanFrequency"], "SCAN_ON_PUSH",
        "{v}"
    );
}

/// Benchmark (not a timed test): a ~100 MB image (the Debian fixture plus 100 MB of
/// incompressible data) pushed with scan-on-push; prints the time from the manifest
/// PUT to COMPLETE and the server's peak RSS. Run with a release server:
/// `cargo build --release -p berth && BERTH_BIN=target/release/berth cargo test -p
/// berth-e2e --test scanning -- --ignored --nocapture bench`.
#[test]
#[ignore]
fn bench_scan_100mb_image() {
    let berth = Berth::start(berth_testsupport::Backend::Sqlite);
    import(&berth, &fixtures().join("advisories"));
    berth
        .ecr(
            "CreateRepository",
            &json!({"repositoryName": "bench", "imageScanningConfiguration": {"scanOnPush": true}}),
        )
        .expect_status(200);
    let big = tar_gz_layer(
        OCI_LAYER_GZIP,
        &[(
            "opt/data.bin",
            0o644,
            berth_testsupport::layout::pseudo_random(7, 100 << 20),
        )],
    );
    let img = image(
        vec![dir_layer(&fixtures().join("debian-bookworm"), ""), big],
        "amd64",
        false,
    );
    let size: usize = img.layers.iter().map(Blob::size).sum();
    let rss_before = berth.proc_status_kib("VmRSS");
    let t = Instant::now();
    img.push(&berth.http(), "bench", "v1").expect_status(201);
    let pushed = t.elapsed();
    let t = Instant::now();
    let v = wait_scan(&berth, "bench", &json!({"imageTag": "v1"}));
    let scanned = t.elapsed();
    assert_eq!(v["imageScanStatus"]["status"], "COMPLETE", "{v}");
    println!(
        "image {:.1} MB: push {:.2} s, scan (push → COMPLETE, 200 ms polling) {:.2} s; server RSS {} MiB before, peak {} MiB",
        size as f64 / 1e6,
        pushed.as_secs_f64(),
        scanned.as_secs_f64(),
        rss_before / 1024,
        berth.proc_status_kib("VmHWM") / 1024
    );
    println!("{}", berth.stderr_tail(3));
}

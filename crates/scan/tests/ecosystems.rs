//! Acceptance for the ecosystems of `fixtures/ecosystems/EXPECTED.md`:
//! Java archives (nested too), Ruby gems, Composer, .NET, Ubuntu, the
//! Red Hat family, Wolfi and Chainguard. Each fixture image is packed into
//! a tar layer and scanned against `fixtures/ecosystems/advisories`; the
//! findings must be exactly the expected ones (negative controls included).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use berth_scan::{scan_image, AdvisoryIndex, Layer, Limits, PackageKind, ScanReport, Severity};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ecosystems")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        panic!("cannot read {}", dir.display())
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A tar of every file under `fixtures/ecosystems/<image>/image`, plus
/// `extra` files (path, contents) that replace or add to them.
fn layer(image: &str, extra: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let root = fixtures().join(image).join("image");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut b = tar::Builder::new(Vec::new());
    let mut append = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        if let Err(e) = b.append_data(&mut h, path, data) {
            panic!("tar {path}: {e}");
        }
    };
    for f in files {
        let rel = f.strip_prefix(&root).unwrap_or(&f).display().to_string();
        if extra.iter().any(|(p, _)| *p == rel) {
            continue;
        }
        append(&rel, &read(&f));
    }
    for (p, d) in extra {
        append(p, d);
    }
    b.into_inner().unwrap_or_default()
}

fn index() -> AdvisoryIndex {
    match AdvisoryIndex::load_dir(&fixtures().join("advisories")) {
        Ok((idx, report)) => {
            assert!(report.rejected.is_empty(), "{:?}", report.rejected);
            assert_eq!(report.loaded, 37);
            idx
        }
        Err(e) => panic!("loading advisories: {e}"),
    }
}

fn scan(tar: &[u8]) -> ScanReport {
    match scan_image(
        [Layer::new("application/vnd.oci.image.layer.v1.tar", tar)],
        &index(),
        &Limits::default(),
    ) {
        Ok(r) => r,
        Err(e) => panic!("scan: {e}"),
    }
}

type Row = (String, String, String, Option<String>, Severity);

fn findings(r: &ScanReport) -> BTreeSet<Row> {
    r.findings
        .iter()
        .map(|f| {
            (
                f.package_name.clone(),
                f.package_version.clone(),
                f.name.clone(),
                f.fixed_in.clone(),
                f.severity,
            )
        })
        .collect()
}

fn rows(list: &[(&str, &str, &str, &str, Severity)]) -> BTreeSet<Row> {
    list.iter()
        .map(|(p, v, id, fixed, s)| {
            (
                p.to_string(),
                v.to_string(),
                id.to_string(),
                (!fixed.is_empty()).then(|| fixed.to_string()),
                *s,
            )
        })
        .collect()
}

fn packages(r: &ScanReport, kind: PackageKind) -> BTreeSet<(String, String, String)> {
    r.packages
        .iter()
        .filter(|p| p.kind == kind)
        .map(|p| (p.name.clone(), p.version.clone(), p.path.clone()))
        .collect()
}

#[test]
fn java_archives_nested_and_manifest_only() {
    use Severity::*;
    let r = scan(&layer("java", &[]));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let l4j = "org.apache.logging.log4j:log4j-core";
    let jd = "com.fasterxml.jackson.core:jackson-databind";
    let want: BTreeSet<(String, String, String)> = [
        (
            "org.apache.logging.log4j:log4j-api",
            "2.19.0",
            "usr/share/java/log4j-api.jar",
        ),
        (l4j, "2.19.0", "usr/share/java/log4j-core.jar"),
        (jd, "2.14.0", "usr/share/java/jackson-databind.jar"),
        ("com.example:shop", "1.4.0", "opt/shop/shop.war"),
        (
            l4j,
            "2.14.1",
            "opt/shop/shop.war!/WEB-INF/lib/log4j-core-2.14.1.jar",
        ),
        ("com.example:svc", "0.9.1", "opt/svc/svc.jar"),
        (
            jd,
            "2.13.2",
            "opt/svc/svc.jar!/BOOT-INF/lib/jackson-databind-2.13.2.jar",
        ),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(packages(&r, PackageKind::Java), want);
    assert_eq!(
        findings(&r),
        rows(&[
            (l4j, "2.14.1", "GHSA-jfh8-c2jp-5v3q", "2.15.0", Critical),
            (l4j, "2.14.1", "GHSA-p6xc-xr62-6r2g", "2.16.0", Critical),
            (l4j, "2.14.1", "GHSA-7rjr-3q55-vv33", "2.17.0", Medium),
            (l4j, "2.14.1", "GHSA-8489-44mv-ggj8", "2.17.1", Medium),
            (jd, "2.13.2", "GHSA-57j2-w4cx-62h2", "2.13.2.1", High),
            (jd, "2.13.2", "GHSA-jjjh-jjxp-wpff", "2.13.4.2", High),
        ])
    );
    let nested = r
        .findings
        .iter()
        .find(|f| f.name == "GHSA-jfh8-c2jp-5v3q")
        .map(|f| f.attributes());
    assert!(nested.is_some_and(|a| a.contains(&(
        "file_path",
        "/opt/shop/shop.war!/WEB-INF/lib/log4j-core-2.14.1.jar".to_string()
    ))));
}

#[test]
fn ruby_gemspecs_and_gemfile_lock() {
    use Severity::*;
    let r = scan(&layer("ruby", &[]));
    let gems = packages(&r, PackageKind::Gem);
    assert_eq!(gems.len(), 19, "{gems:?}");
    assert!(gems.iter().any(|(n, v, p)| n == "rack"
        && v == "2.2.22"
        && p.ends_with("specifications/rack-2.2.22.gemspec")));
    assert_eq!(
        findings(&r),
        rows(&[
            ("rack", "2.2.3", "GHSA-wq4h-7r42-5hrr", "2.2.3.1", Critical),
            ("rack", "2.2.3", "GHSA-hxqx-xwvh-44m2", "2.2.3.1", High),
            (
                "rails-html-sanitizer",
                "1.4.3",
                "GHSA-pg8v-g4xq-hww9",
                "1.4.4",
                High
            ),
            (
                "actionpack",
                "6.1.7",
                "GHSA-8xww-x3g3-6jcv",
                "6.1.7.1",
                High
            ),
            ("loofah", "2.19.0", "GHSA-3x8r-x6xp-q4vm", "2.19.1", High),
        ])
    );
}

#[test]
fn composer_lock_and_installed_json() {
    use Severity::*;
    let r = scan(&layer("php", &[]));
    // composer.lock and installed.json list the same packages once each
    // (phpunit only in the lockfile's packages-dev).
    assert_eq!(packages(&r, PackageKind::Composer).len(), 6);
    assert_eq!(
        findings(&r),
        rows(&[
            (
                "guzzlehttp/psr7",
                "1.8.1",
                "GHSA-q7rv-6hp3-vh96",
                "1.8.4",
                High
            ),
            (
                "guzzlehttp/psr7",
                "1.8.1",
                "GHSA-wxmh-65f7-jcvw",
                "1.9.1",
                Medium
            ),
            (
                "guzzlehttp/guzzle",
                "7.4.0",
                "GHSA-f2wf-25xc-69c9",
                "7.4.3",
                High
            ),
            (
                "symfony/http-kernel",
                "v5.4.0",
                "GHSA-h7vf-5wrv-9fhv",
                "5.4.20",
                Medium
            ),
            ("twig/twig", "v3.3.7", "GHSA-52m2-vc4m-jj33", "3.4.3", High),
        ])
    );
}

#[test]
fn dotnet_deps_json() {
    use Severity::*;
    let r = scan(&layer("dotnet", &[]));
    assert_eq!(packages(&r, PackageKind::NuGet).len(), 5);
    assert_eq!(
        findings(&r),
        rows(&[
            (
                "Newtonsoft.Json",
                "12.0.3",
                "GHSA-5crp-9r3c-p9vr",
                "13.0.1",
                High
            ),
            (
                "System.Text.Encodings.Web",
                "4.7.1",
                "GHSA-ghhp-997w-qr28",
                "4.7.2",
                Critical
            ),
            (
                "System.Net.Http",
                "4.3.0",
                "GHSA-7jgj-8wvc-jh57",
                "4.3.4",
                High
            ),
            (
                "System.Text.RegularExpressions",
                "4.3.0",
                "GHSA-cmhx-cq75-c4mj",
                "4.3.1",
                High
            ),
        ])
    );
}

#[test]
fn ubuntu_lts_and_pro_records() {
    use Severity::*;
    let r = scan(&layer("ubuntu", &[]));
    assert_eq!(
        r.os.as_ref()
            .and_then(|o| o.ecosystem.as_ref())
            .map(|e| e.to_string()),
        Some("Ubuntu:22.04".to_string())
    );
    let v = "3.0.2-0ubuntu1.10";
    let c = "7.81.0-1ubuntu1.13";
    assert_eq!(
        findings(&r),
        rows(&[
            (
                "libssl3",
                v,
                "UBUNTU-CVE-2023-5678",
                "3.0.2-0ubuntu1.12",
                Low
            ),
            (
                "openssl",
                v,
                "UBUNTU-CVE-2023-5678",
                "3.0.2-0ubuntu1.12",
                Low
            ),
            (
                "libc6",
                "2.35-0ubuntu3.1",
                "UBUNTU-CVE-2023-4911",
                "2.35-0ubuntu3.4",
                High
            ),
            (
                "curl",
                c,
                "UBUNTU-CVE-2023-38546",
                "7.81.0-1ubuntu1.14",
                Low
            ),
            (
                "libcurl4",
                c,
                "UBUNTU-CVE-2023-38546",
                "7.81.0-1ubuntu1.14",
                Low
            ),
            (
                "tar",
                "1.34+dfsg-1ubuntu0.1.22.04.1",
                "UBUNTU-CVE-2023-39804",
                "1.34+dfsg-1ubuntu0.1.22.04.2",
                Medium
            ),
        ])
    );
}

fn rpmdb() -> Vec<u8> {
    let gz = read(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rpm/rpm418-rpmdb.sqlite.gz"),
    );
    let mut out = Vec::new();
    if let Err(e) = flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut out) {
        panic!("gunzip: {e}");
    }
    out
}

#[test]
fn red_hat_family_each_with_its_own_records() {
    use Severity::*;
    let o = "1:3.0.7-24.el9";
    let fixed = "1:3.0.7-25.el9_3";
    let db = ("var/lib/rpm/rpmdb.sqlite", rpmdb());
    let rhel = scan(&layer("rhel", std::slice::from_ref(&db)));
    assert_eq!(
        rhel.os
            .as_ref()
            .and_then(|o| o.ecosystem.as_ref())
            .map(|e| e.to_string()),
        Some("Red Hat:9".to_string())
    );
    assert_eq!(
        findings(&rhel),
        rows(&[
            ("openssl", o, "RHSA-2024:0310", fixed, Medium),
            ("openssl-libs", o, "RHSA-2024:0310", fixed, Medium),
            (
                "python3-urllib3",
                "1.26.5-3.el9",
                "RHSA-2023:7877",
                "1.26.5-3.el9_3.1",
                Medium
            ),
        ])
    );
    for (id, advisory) in [("rocky", "RLSA-2024:0310"), ("almalinux", "ALSA-2024:0310")] {
        let os = read(&fixtures().join(format!("rhel/os-release.{id}")));
        let r = scan(&layer("rhel", &[db.clone(), ("etc/os-release", os)]));
        assert_eq!(r.os.as_ref().map(|o| o.id.as_str()), Some(id));
        assert_eq!(
            findings(&r),
            rows(&[
                ("openssl", o, advisory, fixed, Medium),
                ("openssl-libs", o, advisory, fixed, Medium),
            ]),
            "{id}"
        );
    }
}

#[test]
fn wolfi_and_chainguard() {
    use Severity::*;
    let r = scan(&layer("wolfi", &[]));
    let v = "3.1.4-r0";
    assert_eq!(
        findings(&r),
        rows(&[
            ("libcrypto3", v, "CGA-2q7x-5xqp-q8x6", "3.1.4-r1", Medium),
            ("libssl3", v, "CGA-2q7x-5xqp-q8x6", "3.1.4-r1", Medium),
            ("openssl", v, "CGA-2q7x-5xqp-q8x6", "3.1.4-r1", Medium),
        ])
    );
    let os = read(&fixtures().join("wolfi/os-release.chainguard"));
    let r = scan(&layer("wolfi", &[("etc/os-release", os)]));
    assert_eq!(
        findings(&r),
        rows(&[("glibc", "2.38-r5", "CGA-9w6m-2c3v-h7mq", "2.38-r6", High)])
    );
}

/// Hostile or broken Java archives never fail the scan: what is skipped is
/// reported as a warning.
#[test]
fn java_archive_limits_are_warnings() {
    let war = read(&fixtures().join("java/image/opt/shop/shop.war"));
    let tar = layer(
        "java",
        &[("opt/broken/broken.jar", b"PK\x03\x04 truncated".to_vec())],
    );
    let limits = Limits {
        max_archive_bytes: (war.len() - 1) as u64,
        max_archive_depth: 0,
        ..Limits::default()
    };
    let r = match scan_image(
        [Layer::new(
            "application/vnd.oci.image.layer.v1.tar",
            &tar[..],
        )],
        &index(),
        &limits,
    ) {
        Ok(r) => r,
        Err(e) => panic!("scan: {e}"),
    };
    let warned = |path: &str, what: &str| {
        r.warnings
            .iter()
            .any(|w| w.starts_with(&format!("/{path}")) && w.contains(what))
    };
    assert!(warned("opt/shop/shop.war", "exceeds"), "{:?}", r.warnings);
    assert!(
        warned("opt/svc/svc.jar", "nested deeper"),
        "{:?}",
        r.warnings
    );
    assert!(warned("opt/broken/broken.jar", "zip"), "{:?}", r.warnings);
    let java = packages(&r, PackageKind::Java);
    // The top-level svc.jar is still read; its nested JAR and the WAR are not.
    assert!(java.iter().any(|(n, _, _)| n == "com.example:svc"));
    assert!(!java.iter().any(|(_, _, p)| p.contains("!/")));
    assert!(!java.iter().any(|(n, _, _)| n == "com.example:shop"));
}

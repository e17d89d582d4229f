//! Acceptance: the fixture inventories of `fixtures/EXPECTED.md` (copied from
//! the project's shared fixtures), packed into gzip, plain and zstd tar
//! layers, scanned against the fixture advisories, yield exactly the 26
//! expected findings and none of the negative controls.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use berth_scan::{scan_image, AdvisoryIndex, Layer, Limits, ScanStatus, Severity};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
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

/// A tar of every file under `root`, stored below `prefix`.
fn tar_dir(root: &Path, prefix: &str) -> Vec<u8> {
    let mut files = Vec::new();
    walk(root, &mut files);
    let mut b = tar::Builder::new(Vec::new());
    for f in files {
        let rel = f.strip_prefix(root).unwrap_or(&f);
        let data = std::fs::read(&f).unwrap_or_default();
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let path = format!("{prefix}{}", rel.display());
        if let Err(e) = b.append_data(&mut h, &path, &data[..]) {
            panic!("tar {path}: {e}");
        }
    }
    b.into_inner().unwrap_or_default()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

fn index() -> AdvisoryIndex {
    match AdvisoryIndex::load_dir(&fixtures().join("advisories")) {
        Ok((idx, report)) => {
            assert!(report.rejected.is_empty(), "{:?}", report.rejected);
            assert_eq!(report.loaded, 62);
            idx
        }
        Err(e) => panic!("loading advisories: {e}"),
    }
}

type Row = (String, String, String, Option<String>, Severity);

fn row(pkg: &str, ver: &str, id: &str, fixed: Option<&str>, sev: Severity) -> Row {
    (
        pkg.into(),
        ver.into(),
        id.into(),
        fixed.map(str::to_string),
        sev,
    )
}

fn expected() -> BTreeSet<Row> {
    use Severity::*;
    [
        // Debian 12 (source-package matching).
        row("apt", "2.6.1", "DEBIAN-CVE-2011-3374", None, Informational),
        row(
            "libapt-pkg6.0",
            "2.6.1",
            "DEBIAN-CVE-2011-3374",
            None,
            Informational,
        ),
        row(
            "apt",
            "2.6.1",
            "DEBIAN-CVE-2026-109518",
            Some("2.6.2"),
            Medium,
        ),
        row(
            "libapt-pkg6.0",
            "2.6.1",
            "DEBIAN-CVE-2026-109518",
            Some("2.6.2"),
            Medium,
        ),
        row(
            "libexpat1",
            "2.5.0-1+deb12u2",
            "DEBIAN-CVE-2026-24515",
            Some("2.5.0-1+deb12u4"),
            High,
        ),
        row(
            "libexpat1",
            "2.5.0-1+deb12u2",
            "DEBIAN-CVE-2026-56132",
            Some("2.5.0-1+deb12u5"),
            Medium,
        ),
        row(
            "libpcre2-8-0",
            "10.42-1",
            "DEBIAN-CVE-2026-103111",
            Some("10.42-1+deb12u2"),
            High,
        ),
        row(
            "libssl3",
            "3.0.20-1~deb12u2",
            "DEBIAN-CVE-2026-42767",
            Some("3.0.22-1~deb12u1"),
            Medium,
        ),
        row(
            "libssl3",
            "3.0.20-1~deb12u2",
            "DEBIAN-CVE-2026-84782",
            Some("3.0.22-1~deb12u2"),
            High,
        ),
        row(
            "openssl",
            "3.0.20-1~deb12u2",
            "DEBIAN-CVE-2026-42767",
            Some("3.0.22-1~deb12u1"),
            Medium,
        ),
        row(
            "openssl",
            "3.0.20-1~deb12u2",
            "DEBIAN-CVE-2026-84782",
            Some("3.0.22-1~deb12u2"),
            High,
        ),
        row(
            "perl-base",
            "5.36.0-7+deb12u3",
            "DEBIAN-CVE-2026-7017",
            Some("5.36.0-7+deb12u4"),
            High,
        ),
        // PyPI.
        row(
            "Jinja2",
            "2.11.2",
            "PYSEC-2021-66",
            Some("2.11.3"),
            Undefined,
        ),
        row("PyYAML", "5.3.1", "PYSEC-2021-142", Some("5.4"), Undefined),
        row("Werkzeug", "2.2.3", "PYSEC-2023-221", Some("2.3.8"), High),
        row(
            "certifi",
            "2022.12.7",
            "PYSEC-2023-135",
            Some("2023.7.22"),
            Undefined,
        ),
        row("idna", "3.4", "PYSEC-2024-60", Some("3.7"), High),
        row(
            "requests",
            "2.28.1",
            "PYSEC-2023-74",
            Some("2.31.0"),
            Undefined,
        ),
        row(
            "setuptools",
            "65.5.0",
            "PYSEC-2022-43012",
            Some("65.5.1"),
            Undefined,
        ),
        row(
            "urllib3",
            "1.26.15",
            "PYSEC-2023-192",
            Some("1.26.17"),
            High,
        ),
        row(
            "urllib3",
            "1.26.15",
            "PYSEC-2023-212",
            Some("1.26.18"),
            Medium,
        ),
        // npm.
        row(
            "axios",
            "0.21.1",
            "GHSA-cph5-m8f7-6c5x",
            Some("0.21.2"),
            High,
        ),
        row(
            "lodash",
            "4.17.20",
            "GHSA-35jh-r3h4-6jhm",
            Some("4.17.21"),
            High,
        ),
        row(
            "minimist",
            "1.2.5",
            "GHSA-xvch-5gv4-984h",
            Some("1.2.6"),
            Critical,
        ),
        row(
            "node-fetch",
            "2.6.6",
            "GHSA-r683-j2x4-v87g",
            Some("2.6.7"),
            High,
        ),
        row(
            "semver",
            "7.5.1",
            "GHSA-c2qf-rxjj-qqgw",
            Some("7.5.2"),
            Medium,
        ),
    ]
    .into_iter()
    .collect()
}

#[test]
fn fixture_image_yields_exactly_the_expected_findings() {
    let f = fixtures();
    let layers = [
        Layer::new(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            gzip(&tar_dir(&f.join("debian-bookworm"), "")),
        ),
        Layer::new(
            "application/vnd.oci.image.layer.v1.tar",
            tar_dir(&f.join("python-site-packages"), ""),
        ),
        Layer::new(
            "application/vnd.oci.image.layer.v1.tar+zstd",
            zstd(&tar_dir(&f.join("npm-app"), "app/")),
        ),
    ];
    let idx = index();
    let report = match scan_image(
        layers
            .iter()
            .map(|l| Layer::new(l.media_type.clone(), &l.blob[..])),
        &idx,
        &Limits::default(),
    ) {
        Ok(r) => r,
        Err(e) => panic!("scan failed: {e}"),
    };
    assert_eq!(report.status, ScanStatus::Complete);
    let os = report
        .os
        .as_ref()
        .map(|o| (o.id.as_str(), o.version_id.as_deref()));
    assert_eq!(os, Some(("debian", Some("12"))));
    assert_eq!(
        report
            .packages
            .iter()
            .filter(|p| p.kind == berth_scan::PackageKind::Deb)
            .count(),
        95
    );
    let ecosystems: BTreeSet<Option<&str>> = report
        .packages
        .iter()
        .map(|p| p.ecosystem.as_deref())
        .collect();
    assert_eq!(
        ecosystems,
        [Some("Debian:12"), Some("PyPI"), Some("npm")]
            .into_iter()
            .collect()
    );
    let got: BTreeSet<Row> = report
        .findings
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
        .collect();
    assert_eq!(got.len(), report.findings.len(), "duplicate findings");
    let want = expected();
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing: {missing:#?}\nunexpected: {extra:#?}"
    );
    assert_eq!(report.findings.len(), 26);
    // Negative controls, spelled out.
    for id in [
        "DSA-5514-1",
        "DEBIAN-CVE-2024-2961",
        "DSA-5650-1",
        "DEBIAN-CVE-2025-40909",
        "DEBIAN-CVE-2026-34743",
        "DEBIAN-CVE-2026-33947",
        "DEBIAN-CVE-2026-4878",
        "DEBIAN-CVE-2023-4641",
        "DEBIAN-CVE-2026-46675",
        "PYSEC-2020-96",
        "PYSEC-2020-176",
        "PYSEC-2023-57",
        "PYSEC-2023-58",
        "PYSEC-2022-42986",
        "PYSEC-2023-62",
        "PYSEC-2021-59",
        "PYSEC-2021-108",
    ] {
        assert!(
            !report.findings.iter().any(|f| f.name == id),
            "{id} reported"
        );
    }
    // CVSS data is carried when the advisory has a vector.
    let minimist = report
        .findings
        .iter()
        .find(|f| f.package_name == "minimist");
    assert_eq!(
        minimist
            .and_then(|f| f.cvss.as_ref())
            .map(|c| (c.version, c.score)),
        Some((3, 9.8))
    );
    let attrs = minimist.map(|f| f.attributes()).unwrap_or_default();
    assert!(attrs.contains(&("CVSS3_SCORE", "9.8".to_string())));
    assert!(attrs.contains(&("fixed_in_version", "1.2.6".to_string())));
    let counts: u32 = report.severity_counts.values().sum();
    assert_eq!(counts, 26);
    let werkzeug = report.findings.iter().find(|f| f.name == "PYSEC-2023-221");
    assert!(werkzeug.is_some_and(|f| f.uri.is_some() && !f.description.is_empty()));
}

#[test]
fn whiteouts_across_layers_remove_findings() {
    let f = fixtures();
    let mut b = tar::Builder::new(Vec::new());
    // Delete urllib3's metadata and make the npm app directory opaque.
    for path in [
        "usr/local/lib/python3.11/site-packages/.wh.urllib3-1.26.15.dist-info",
        "app/.wh..wh..opq",
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        let _ = b.append_data(&mut h, path, &[][..]);
    }
    let top = b.into_inner().unwrap_or_default();
    let layers = [
        gzip(&tar_dir(&f.join("debian-bookworm"), "")),
        tar_dir(&f.join("python-site-packages"), ""),
        zstd(&tar_dir(&f.join("npm-app"), "app/")),
        top,
    ];
    let idx = index();
    let report = scan_image(
        layers
            .iter()
            .map(|l| Layer::new("application/vnd.oci.image.layer.v1.tar", &l[..])),
        &idx,
        &Limits::default(),
    );
    let Ok(report) = report else {
        panic!("scan failed")
    };
    assert!(!report.findings.iter().any(|f| f.package_name == "urllib3"));
    assert!(!report
        .findings
        .iter()
        .any(|f| f.package_kind == berth_scan::PackageKind::Npm));
    assert_eq!(report.findings.len(), 26 - 2 - 5);
}

#[test]
fn stored_inventory_rescans_to_the_same_findings() {
    let f = fixtures();
    let layers = [
        gzip(&tar_dir(&f.join("debian-bookworm"), "")),
        tar_dir(&f.join("python-site-packages"), ""),
        zstd(&tar_dir(&f.join("npm-app"), "app/")),
    ];
    let limits = Limits::default();
    let fs = berth_scan::ImageFs::from_layers(
        layers
            .iter()
            .map(|l| Layer::new("application/vnd.oci.image.layer.v1.tar", &l[..])),
        &limits,
    );
    let Ok(fs) = fs else { panic!("layers") };
    let Ok(inv) = berth_scan::inventory::collect(&fs, &limits) else {
        panic!("inventory")
    };
    let json = serde_json::to_vec(&inv).unwrap_or_default();
    let Ok(stored) = serde_json::from_slice::<berth_scan::Inventory>(&json) else {
        panic!("inventory does not round-trip")
    };
    let idx = index();
    let a = berth_scan::scan::report(inv, &idx);
    let b = berth_scan::scan::report(stored.clone(), &idx);
    assert_eq!(a.findings, b.findings);
    assert_eq!(b.findings.len(), 26);
    // The same stored inventory against another database.
    assert!(berth_scan::scan::report(stored, &AdvisoryIndex::new())
        .findings
        .is_empty());
}

#[test]
fn empty_image_is_unsupported() {
    let idx = index();
    let empty = tar::Builder::new(Vec::new())
        .into_inner()
        .unwrap_or_default();
    let report = scan_image(
        [Layer::new(
            "application/vnd.oci.image.layer.v1.tar",
            &empty[..],
        )],
        &idx,
        &Limits::default(),
    );
    assert!(matches!(report, Ok(r) if r.status == ScanStatus::UnsupportedImage));
}

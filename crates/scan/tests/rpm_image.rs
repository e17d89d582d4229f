//! An rpm-based image: the SQLite rpmdb fixture (built by
//! `fixtures/rpm/make_rpmdb.py` with Python's sqlite3, so interior and
//! overflow pages are real SQLite output) read through a `/var/lib/rpm`
//! symlink, matched against a Rocky Linux advisory.

use std::path::Path;

use berth_scan::{scan_image, AdvisoryIndex, Layer, Limits, PackageKind};

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rpm")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn tar_layer(files: &[(&str, &[u8])], links: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        let _ = b.append_data(&mut h, path, *data);
    }
    for (path, target) in links {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        let _ = b.append_link(&mut h, path, target);
    }
    b.into_inner().unwrap_or_default()
}

const ADVISORY: &str = r#"{
  "id": "RLSA-2024:0001",
  "summary": "openssl security update",
  "affected": [
    {"package": {"ecosystem": "Rocky Linux:9", "name": "openssl"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:3.0.7-25.el9_3"}]}]},
    {"package": {"ecosystem": "Rocky Linux:8", "name": "bash"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "9.9-1.el8"}]}]}
  ],
  "database_specific": {"severity": "Important"},
  "references": [{"type": "ADVISORY", "url": "https://errata.rockylinux.org/RLSA-2024:0001"}]
}"#;

#[test]
fn rpmdb_sqlite_packages_and_findings() {
    let db = fixture("rpmdb.sqlite");
    let expected = String::from_utf8(fixture("expected.txt")).unwrap_or_default();
    let layer = tar_layer(
        &[
            ("etc/os-release", b"ID=\"rocky\"\nVERSION_ID=\"9.3\"\n"),
            ("usr/lib/sysimage/rpm/rpmdb.sqlite", &db),
        ],
        &[("var/lib/rpm", "../../usr/lib/sysimage/rpm")],
    );
    let mut idx = AdvisoryIndex::new();
    assert!(idx.add_json("inline", ADVISORY.as_bytes()).is_ok());
    let report = scan_image(
        [Layer::new(
            "application/vnd.oci.image.layer.v1.tar",
            &layer[..],
        )],
        &idx,
        &Limits::default(),
    );
    let report = match report {
        Ok(r) => r,
        Err(e) => panic!("scan: {e}"),
    };
    let mut got: Vec<String> = report
        .packages
        .iter()
        .filter(|p| p.kind == PackageKind::Rpm)
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    let mut want: Vec<String> = expected.lines().map(str::to_string).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let findings: Vec<(&str, &str, Option<&str>)> = report
        .findings
        .iter()
        .map(|f| {
            (
                f.package_name.as_str(),
                f.name.as_str(),
                f.fixed_in.as_deref(),
            )
        })
        .collect();
    // Both binary packages of the openssl source rpm; bash's advisory is for EL8.
    assert_eq!(
        findings,
        vec![
            ("openssl", "RLSA-2024:0001", Some("1:3.0.7-25.el9_3")),
            ("openssl-libs", "RLSA-2024:0001", Some("1:3.0.7-25.el9_3")),
        ]
    );
    assert!(report
        .findings
        .iter()
        .all(|f| f.severity == berth_scan::Severity::High));
}

#[test]
fn corrupted_rpmdb_fails_with_a_reason() {
    let mut db = fixture("rpmdb.sqlite");
    // Point every cell pointer of every page at garbage.
    for (i, b) in db.iter_mut().enumerate().skip(100) {
        if i % 7 == 0 {
            *b = 0xff;
        }
    }
    let layer = tar_layer(
        &[
            ("etc/os-release", b"ID=rocky\nVERSION_ID=9.3\n"),
            ("var/lib/rpm/rpmdb.sqlite", &db),
        ],
        &[],
    );
    let r = scan_image(
        [Layer::new(
            "application/vnd.oci.image.layer.v1.tar",
            &layer[..],
        )],
        &AdvisoryIndex::new(),
        &Limits::default(),
    );
    match r {
        Err(berth_scan::ScanError::MalformedDatabase { what, .. }) => {
            assert_eq!(what, "rpm database")
        }
        other => panic!("expected a malformed-database error, got {other:?}"),
    }
}

#[test]
fn berkeleydb_rpmdb_of_el8_images() {
    let db = fixture("Packages");
    let expected = String::from_utf8(fixture("expected-bdb.txt")).unwrap_or_default();
    let layer = tar_layer(
        &[
            ("etc/os-release", b"ID=\"rocky\"\nVERSION_ID=\"8.9\"\n"),
            ("var/lib/rpm/Packages", &db),
        ],
        &[],
    );
    let mut idx = AdvisoryIndex::new();
    let adv = br#"{"id": "RLSA-2023:1234", "affected": [
        {"package": {"ecosystem": "Rocky Linux:8", "name": "openssl"},
         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:1.1.1k-12.el8_9"}]}]}]}"#;
    assert!(idx.add_json("inline", adv).is_ok());
    let report = match scan_image(
        [Layer::new(
            "application/vnd.oci.image.layer.v1.tar",
            &layer[..],
        )],
        &idx,
        &Limits::default(),
    ) {
        Ok(r) => r,
        Err(e) => panic!("scan: {e}"),
    };
    let mut got: Vec<String> = report
        .packages
        .iter()
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    let mut want: Vec<String> = expected.lines().map(str::to_string).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let findings: Vec<(&str, Option<&str>)> = report
        .findings
        .iter()
        .map(|f| (f.package_name.as_str(), f.fixed_in.as_deref()))
        .collect();
    assert_eq!(findings, vec![("openssl-libs", Some("1:1.1.1k-12.el8_9"))]);
}

#[test]
fn real_rpm_418_database() {
    use std::io::Read;
    let gz = fixture("rpm418-rpmdb.sqlite.gz");
    let mut db = Vec::new();
    if let Err(e) = flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut db) {
        panic!("gunzip: {e}");
    }
    let layer = tar_layer(
        &[
            ("etc/os-release", b"ID=\"rhel\"\nVERSION_ID=\"9.3\"\n"),
            ("var/lib/rpm/rpmdb.sqlite", &db),
        ],
        &[],
    );
    let mut idx = AdvisoryIndex::new();
    let adv = br#"{"id": "RHSA-2024:0001", "affected": [
        {"package": {"ecosystem": "Red Hat:enterprise_linux:9::baseos", "name": "openssl"},
         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:3.0.7-25.el9_3"}]}]},
        {"package": {"ecosystem": "Red Hat:enterprise_linux:9::appstream", "name": "python3-urllib3"},
         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.26.5-3.el9_3.1"}]}]}]}"#;
    assert!(idx.add_json("inline", adv).is_ok());
    let report = match scan_image(
        [Layer::new(
            "application/vnd.oci.image.layer.v1.tar",
            &layer[..],
        )],
        &idx,
        &Limits::default(),
    ) {
        Ok(r) => r,
        Err(e) => panic!("scan: {e}"),
    };
    let mut got: Vec<(String, String, Option<String>)> = report
        .packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone(), p.source_name.clone()))
        .collect();
    got.sort();
    let s = |a: &str| a.to_string();
    assert_eq!(
        got,
        vec![
            (s("bash"), s("5.1.8-6.el9_1"), Some(s("bash"))),
            (s("openssl"), s("1:3.0.7-24.el9"), Some(s("openssl"))),
            (s("openssl-libs"), s("1:3.0.7-24.el9"), Some(s("openssl"))),
            (
                s("python3-urllib3"),
                s("1.26.5-3.el9"),
                Some(s("python-urllib3"))
            ),
        ]
    );
    let mut found: Vec<(&str, Option<&str>)> = report
        .findings
        .iter()
        .map(|f| (f.package_name.as_str(), f.fixed_in.as_deref()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("openssl", Some("1:3.0.7-25.el9_3")),
            ("openssl-libs", Some("1:3.0.7-25.el9_3")),
            ("python3-urllib3", Some("1.26.5-3.el9_3.1")),
        ]
    );
}

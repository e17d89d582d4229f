//! A real Go binary's build info (trimmed fixture, see fixtures/go/README.md)
//! found while streaming a layer, matched against a Go advisory.

use std::io::Read;
use std::path::Path;

use berth_scan::{scan_image, AdvisoryIndex, Layer, Limits, PackageKind};

#[test]
fn go_build_info_from_a_real_binary() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/go/app.trimmed.gz");
    let gz = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut bin = Vec::new();
    if let Err(e) = flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut bin) {
        panic!("gunzip: {e}");
    }
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(bin.len() as u64);
    h.set_mode(0o755);
    let _ = b.append_data(&mut h, "usr/local/bin/app", &bin[..]);
    let layer = b.into_inner().unwrap_or_default();

    let mut idx = AdvisoryIndex::new();
    let adv = br#"{"id": "GO-2099-0001", "affected": [
        {"package": {"ecosystem": "Go", "name": "example.com/new"},
         "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.1.1"}]}]},
        {"package": {"ecosystem": "Go", "name": "example.com/old"},
         "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "9.0.0"}]}]},
        {"package": {"ecosystem": "Go", "name": "stdlib"},
         "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.19.0"}, {"fixed": "1.19.9"}]}]}]}"#;
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
    let mut pkgs: Vec<(String, String)> = report
        .packages
        .iter()
        .filter(|p| p.kind == PackageKind::Go)
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect();
    pkgs.sort();
    assert_eq!(
        pkgs,
        vec![
            ("example.com/dep".to_string(), "v1.2.3".to_string()),
            ("example.com/new".to_string(), "v1.1.0".to_string()),
            ("stdlib".to_string(), "1.19.8".to_string()),
        ]
    );
    // The replaced module is what was compiled in: example.com/old is not
    // reported, example.com/new and the toolchain's stdlib are.
    let mut found: Vec<(&str, Option<&str>)> = report
        .findings
        .iter()
        .map(|f| (f.package_name.as_str(), f.fixed_in.as_deref()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("example.com/new", Some("1.1.1")),
            ("stdlib", Some("1.19.9"))
        ]
    );
    assert_eq!(report.status, berth_scan::ScanStatus::Complete);
    assert!(report.os.is_none());
}

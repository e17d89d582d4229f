//! SBOMs of the fixture images validate against the official JSON schemas
//! (`tests/schemas/`: CycloneDX 1.6 with its SPDX-licence and JSF
//! sub-schemas, and SPDX 2.3; see `tests/schemas/SOURCES.md`), with format
//! assertions on, and carry a package URL for every package found.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use berth_scan::inventory::{self, Inventory};
use berth_scan::sbom::{self, ImageInfo};
use berth_scan::{ImageFs, Layer, Limits};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn json(p: &Path) -> Value {
    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

struct Validator {
    schemas: boon::Schemas,
    cyclonedx: boon::SchemaIndex,
    spdx: boon::SchemaIndex,
}

fn validator() -> Validator {
    let dir = root().join("schemas");
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
        if let Err(e) = c.add_resource(url, json(&dir.join(file))) {
            panic!("{file}: {e}");
        }
    }
    let mut schemas = boon::Schemas::new();
    let mut compile = |url: &str| match c.compile(url, &mut schemas) {
        Ok(i) => i,
        Err(e) => panic!("compiling {url}: {e:#}"),
    };
    let cyclonedx = compile("http://cyclonedx.org/schema/bom-1.6.schema.json");
    let spdx = compile("http://spdx.org/rdf/terms/2.3");
    Validator {
        schemas,
        cyclonedx,
        spdx,
    }
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

/// The inventory of one tar layer holding every file under `dirs`.
fn inventory_of(dirs: &[&str]) -> Inventory {
    let mut b = tar::Builder::new(Vec::new());
    for d in dirs {
        let base = root().join("fixtures").join(d);
        let mut files = Vec::new();
        walk(&base, &mut files);
        for f in files {
            let rel = f.strip_prefix(&base).unwrap_or(&f).display().to_string();
            let data = std::fs::read(&f).unwrap_or_default();
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if let Err(e) = b.append_data(&mut h, &rel, &data[..]) {
                panic!("{rel}: {e}");
            }
        }
    }
    let tar = b.into_inner().unwrap_or_default();
    let limits = Limits::default();
    let fs = ImageFs::from_layers(
        [Layer::new(
            "application/vnd.oci.image.layer.v1.tar",
            &tar[..],
        )],
        &limits,
    )
    .unwrap_or_else(|e| panic!("{dirs:?}: {e}"));
    inventory::collect(&fs, &limits).unwrap_or_else(|e| panic!("{dirs:?}: {e}"))
}

fn image() -> ImageInfo {
    ImageInfo {
        name: "registry.example.com/team/app".into(),
        tag: Some("1.0".into()),
        digest: "sha256:6d3b1cfd2d3e7a6ec4c9f4b8b3f5a9f84c7e9e9b1e9a3c1c0b5a0f2e1d4c3b2a".into(),
        created: "2026-12-07T05:00:00Z".into(),
    }
}

fn check(v: &Validator, dirs: &[&str]) {
    let inv = inventory_of(dirs);
    assert!(!inv.packages.is_empty(), "{dirs:?}: no packages");
    let img = image();

    let cdx = sbom::cyclonedx(&inv, &img);
    if let Err(e) = v.schemas.validate(&cdx, v.cyclonedx) {
        panic!("{dirs:?}: CycloneDX invalid: {e:#}");
    }
    let comps = cdx["components"].as_array().cloned().unwrap_or_default();
    let libs: Vec<&Value> = comps.iter().filter(|c| c["type"] == "library").collect();
    assert_eq!(libs.len(), inv.packages.len(), "{dirs:?}");
    assert!(libs
        .iter()
        .all(|c| c["purl"].as_str().is_some_and(|p| p.starts_with("pkg:"))));
    assert_eq!(
        comps.iter().any(|c| c["type"] == "operating-system"),
        inv.os.is_some()
    );
    let refs: BTreeSet<&str> = comps.iter().filter_map(|c| c["bom-ref"].as_str()).collect();
    assert_eq!(refs.len(), comps.len(), "{dirs:?}: bom-refs are unique");

    let doc = sbom::spdx(&inv, &img);
    if let Err(e) = v.schemas.validate(&doc, v.spdx) {
        panic!("{dirs:?}: SPDX invalid: {e:#}");
    }
    let pkgs = doc["packages"].as_array().cloned().unwrap_or_default();
    let with_purl = pkgs
        .iter()
        .filter(|p| {
            p["externalRefs"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["referenceType"] == "purl"))
        })
        .count();
    // Every package and the image itself.
    assert_eq!(with_purl, inv.packages.len() + 1, "{dirs:?}");
    let contains = doc["relationships"].as_array().map_or(0, |r| {
        r.iter()
            .filter(|r| r["relationshipType"] == "CONTAINS")
            .count()
    });
    assert_eq!(contains, pkgs.len() - 1, "{dirs:?}");
    // Deterministic.
    assert_eq!(doc, sbom::spdx(&inv, &img));
    assert_eq!(cdx, sbom::cyclonedx(&inv, &img));
}

#[test]
fn sboms_validate_against_the_official_schemas() {
    let v = validator();
    for dirs in [
        &["debian-bookworm", "python-site-packages", "npm-app"][..],
        &["ecosystems/java/image"],
        &[
            "ecosystems/ruby/image",
            "ecosystems/php/image",
            "ecosystems/dotnet/image",
        ],
        &["ecosystems/ubuntu/image"],
        &["ecosystems/wolfi/image"],
    ] {
        check(&v, dirs);
    }
}

#[test]
fn invalid_documents_are_rejected() {
    // The validator is not vacuous: broken documents fail.
    let v = validator();
    let inv = inventory_of(&["ecosystems/ruby/image"]);
    let mut cdx = sbom::cyclonedx(&inv, &image());
    cdx["components"][0]["type"] = Value::from("gem");
    assert!(v.schemas.validate(&cdx, v.cyclonedx).is_err());
    let mut cdx = sbom::cyclonedx(&inv, &image());
    cdx["serialNumber"] = Value::from("not-a-uuid");
    assert!(v.schemas.validate(&cdx, v.cyclonedx).is_err());
    let mut doc = sbom::spdx(&inv, &image());
    doc["relationships"][0]["relationshipType"] = Value::from("OWNS");
    assert!(v.schemas.validate(&doc, v.spdx).is_err());
    let mut doc = sbom::spdx(&inv, &image());
    if let Some(p) = doc["packages"][1].as_object_mut() {
        p.remove("downloadLocation");
    }
    assert!(v.schemas.validate(&doc, v.spdx).is_err());
    let mut doc = sbom::spdx(&inv, &image());
    if let Some(o) = doc.as_object_mut() {
        o.remove("creationInfo");
    }
    assert!(v.schemas.validate(&doc, v.spdx).is_err());
}

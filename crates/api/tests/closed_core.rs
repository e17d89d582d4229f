//! The core is closed (`docs/architecture.md`, "Rooms"): the front ends reach the
//! stores only through `berth-registry`. The compiler enforces it once neither
//! crate depends on `berth-store` (the registry's store handles are private);
//! this test keeps that dependency from coming back.

use std::path::Path;

/// The `[dependencies]`-like sections of a manifest that a build of the crate
/// links (dev-dependencies are left out: tests may damage a store on purpose).
fn linked_dependencies(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut linked = false;
    for line in manifest.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            linked = matches!(t, "[dependencies]" | "[build-dependencies]")
                || t.starts_with("[target.") && !t.ends_with("dev-dependencies]");
            continue;
        }
        if linked {
            if let Some((name, _)) = t.split_once('=') {
                out.push(name.trim().to_string());
            }
        }
    }
    out
}

#[test]
fn front_ends_do_not_depend_on_the_stores() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for front_end in ["api", "berth"] {
        let path = crates.join(front_end).join("Cargo.toml");
        let manifest = std::fs::read_to_string(&path).expect("read the manifest");
        let deps = linked_dependencies(&manifest);
        assert!(
            deps.iter().any(|d| d == "berth-registry"),
            "{}: expected to go through berth-registry",
            path.display()
        );
        assert!(
            !deps.iter().any(|d| d == "berth-store"),
            "{} depends on berth-store: front ends call the registry core instead",
            path.display()
        );
    }
}

#[test]
fn only_linked_sections_count() {
    let m = "[package]\nname = \"x\"\n[dependencies]\na = 1\n[dev-dependencies]\nb = 1\n";
    assert_eq!(linked_dependencies(m), vec!["a".to_string()]);
}

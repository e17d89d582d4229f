//! Software bills of materials from a scan's inventory: CycloneDX 1.6 JSON
//! (ECMA-424 / cyclonedx.org "CycloneDX v1.6 JSON Reference") and SPDX 2.3
//! JSON (spdx.github.io/spdx-spec/v2.3), each component carrying a package
//! URL (package-url/purl-spec, "PURL-SPECIFICATION" and "PURL-TYPES").
//!
//! Both are pure functions of an [`Inventory`] and an [`ImageInfo`]: no
//! clock, no randomness. The document's serial number / namespace is
//! derived from the image digest and the format, so the same image always
//! yields the same document.
//!
//! purl types used: `deb` (namespace `debian`/`ubuntu`), `apk` (`alpine`,
//! `wolfi`, `chainguard`), `rpm` (`redhat`, `rocky`, `almalinux`, …; the
//! epoch moves to the `epoch` qualifier), with `arch` and `distro`
//! qualifiers; `pypi` (PEP 503 name), `npm`, `cargo`, `golang`, `maven`,
//! `gem`, `composer`, `nuget`; and `oci` for the image itself.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::ecosystem::Family;
use crate::inventory::{Inventory, OsInfo, Package, PackageKind};

/// The scanned image, as the SBOM describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Repository name, with its registry host when known
    /// (`registry.example.com/team/app`).
    pub name: String,
    /// Tag the image was pushed or requested with, if any.
    pub tag: Option<String>,
    /// Manifest digest (`sha256:…`).
    pub digest: String,
    /// Creation time of the document, RFC 3339 UTC with a `Z`
    /// (`2026-01-02T03:04:05Z`): the caller's clock, not this crate's.
    pub created: String,
}

/// Percent-encodes a purl component: everything but unreserved characters
/// (RFC 3986 §2.3) and, where `keep` allows, `:` and `/`.
fn enc(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Builds `pkg:type/namespace/name@version?qualifiers` (namespace segments
/// split on `/`, qualifiers sorted by key, empty values dropped).
fn purl_of(
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    version: &str,
    qualifiers: &[(&str, Option<String>)],
) -> String {
    let mut s = format!("pkg:{kind}/");
    if let Some(ns) = namespace.filter(|n| !n.is_empty()) {
        for seg in ns.split('/').filter(|s| !s.is_empty()) {
            s.push_str(&enc(seg, b":"));
            s.push('/');
        }
    }
    s.push_str(&enc(name, b":"));
    if !version.is_empty() {
        s.push('@');
        s.push_str(&enc(version, b":"));
    }
    let mut q: Vec<(&str, &String)> = qualifiers
        .iter()
        .filter_map(|(k, v)| v.as_ref().filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    q.sort();
    for (i, (k, v)) in q.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        s.push_str(&enc(v, b":/"));
    }
    s
}

/// The purl namespace of a distribution's packages.
fn distro_namespace(os: Option<&OsInfo>, default: &str) -> String {
    match os.map(|o| o.id.to_ascii_lowercase()) {
        Some(id) if id == "rhel" => "redhat".to_string(),
        Some(id) if !id.is_empty() => id,
        _ => default.to_string(),
    }
}

fn distro_qualifier(os: Option<&OsInfo>) -> Option<String> {
    let os = os?;
    Some(match &os.version_id {
        Some(v) => format!("{}-{v}", os.id),
        None => os.id.clone(),
    })
}

/// The package URL of an inventoried package.
pub fn purl(pkg: &Package, os: Option<&OsInfo>) -> String {
    let v = pkg.version.as_str();
    match pkg.kind {
        PackageKind::Deb | PackageKind::Apk => {
            let (kind, default) = if pkg.kind == PackageKind::Deb {
                ("deb", "debian")
            } else {
                ("apk", "alpine")
            };
            purl_of(
                kind,
                Some(&distro_namespace(os, default)),
                &pkg.name,
                v,
                &[
                    ("arch", pkg.arch.clone()),
                    ("distro", distro_qualifier(os)),
                    (
                        "upstream",
                        pkg.source_name.clone().filter(|s| *s != pkg.name),
                    ),
                ],
            )
        }
        PackageKind::Rpm => {
            let (epoch, rest) = match v.split_once(':') {
                Some((e, r)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => {
                    (Some(e.to_string()), r)
                }
                _ => (None, v),
            };
            purl_of(
                "rpm",
                Some(&distro_namespace(os, "redhat")),
                &pkg.name,
                rest,
                &[
                    ("arch", pkg.arch.clone()),
                    ("epoch", epoch),
                    ("distro", distro_qualifier(os)),
                ],
            )
        }
        PackageKind::Python => purl_of(
            "pypi",
            None,
            &Family::PyPI.normalize_name(&pkg.name),
            v,
            &[],
        ),
        PackageKind::Npm => match pkg.name.split_once('/') {
            Some((scope, name)) if scope.starts_with('@') => {
                purl_of("npm", Some(scope), name, v, &[])
            }
            _ => purl_of("npm", None, &pkg.name, v, &[]),
        },
        PackageKind::Cargo => purl_of("cargo", None, &pkg.name, v, &[]),
        PackageKind::Go => match pkg.name.rsplit_once('/') {
            Some((ns, name)) => purl_of("golang", Some(ns), name, v, &[]),
            None => purl_of("golang", None, &pkg.name, v, &[]),
        },
        PackageKind::Java => match pkg.name.split_once(':') {
            Some((group, artifact)) => purl_of("maven", Some(group), artifact, v, &[]),
            None => purl_of("maven", None, &pkg.name, v, &[]),
        },
        PackageKind::Gem => purl_of("gem", None, &pkg.name, v, &[]),
        PackageKind::Composer => match pkg.name.split_once('/') {
            Some((vendor, name)) => purl_of("composer", Some(vendor), name, v, &[]),
            None => purl_of("composer", None, &pkg.name, v, &[]),
        },
        PackageKind::NuGet => purl_of("nuget", None, &pkg.name, v, &[]),
    }
}

/// The image's own purl (`pkg:oci/<name>@<digest>?repository_url=…&tag=…`).
pub fn image_purl(image: &ImageInfo) -> String {
    let last = image.name.rsplit('/').next().unwrap_or(&image.name);
    purl_of(
        "oci",
        None,
        &last.to_ascii_lowercase(),
        &image.digest,
        &[
            ("repository_url", Some(image.name.clone())),
            ("tag", image.tag.clone()),
        ],
    )
}

/// A stable UUID (RFC 9562 layout, version nibble 5: name-based) for a
/// document about `image` in `format`, from two FNV-1a hashes of them.
fn stable_uuid(image: &ImageInfo, format: &str) -> String {
    let fnv = |seed: u64| {
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
        for b in format
            .bytes()
            .chain([0])
            .chain(image.name.bytes())
            .chain([0])
            .chain(image.digest.bytes())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    };
    let (hi, lo) = (fnv(0), fnv(0x9e37_79b9_7f4a_7c15));
    let hi = (hi & !0xf000) | 0x5000; // version 5
    let lo = (lo & !(0xc << 60)) | (0x8 << 60); // RFC variant
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

fn kind_name(kind: PackageKind) -> &'static str {
    match kind {
        PackageKind::Deb => "deb",
        PackageKind::Apk => "apk",
        PackageKind::Rpm => "rpm",
        PackageKind::Python => "python",
        PackageKind::Npm => "npm",
        PackageKind::Cargo => "cargo",
        PackageKind::Go => "go",
        PackageKind::Java => "java",
        PackageKind::Gem => "gem",
        PackageKind::Composer => "composer",
        PackageKind::NuGet => "nuget",
    }
}

/// One component per package, with a unique reference (the purl, suffixed
/// when two packages would share one).
fn components(inv: &Inventory) -> Vec<(String, String, &Package)> {
    let os = inv.os.as_ref();
    let mut seen = HashSet::new();
    inv.packages
        .iter()
        .map(|p| {
            let purl = purl(p, os);
            let mut r = purl.clone();
            let mut n = 1;
            while !seen.insert(r.clone()) {
                n += 1;
                r = format!("{purl}#{n}");
            }
            (r, purl, p)
        })
        .collect()
}

const TOOL: &str = "berth";
const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A CycloneDX 1.6 JSON BOM of the image: the image as the BOM's subject
/// (`metadata.component`, type `container`), its operating system and one
/// `library` component per package, each with its purl and where it was
/// found (`berth:path` property); the image depends on all of them.
pub fn cyclonedx(inv: &Inventory, image: &ImageInfo) -> Value {
    let image_ref = image_purl(image);
    let mut comps = Vec::new();
    let mut refs = Vec::new();
    if let Some(os) = &inv.os {
        let r = format!("os:{}", distro_qualifier(Some(os)).unwrap_or_default());
        let mut c = json!({
            "type": "operating-system",
            "bom-ref": r,
            "name": os.id,
        });
        if let Some(v) = &os.version_id {
            c["version"] = json!(v);
        }
        if let Some(d) = &os.pretty_name {
            c["description"] = json!(d);
        }
        comps.push(c);
        refs.push(r);
    }
    for (r, purl, p) in components(inv) {
        let mut props = vec![
            json!({"name": "berth:package:kind", "value": kind_name(p.kind)}),
            json!({"name": "berth:path", "value": format!("/{}", p.path)}),
        ];
        if let Some(e) = &p.ecosystem {
            props.push(json!({"name": "berth:osv:ecosystem", "value": e}));
        }
        if let Some(s) = &p.source_name {
            props.push(json!({"name": "berth:package:source_name", "value": s}));
        }
        if let Some(s) = &p.source_version {
            props.push(json!({"name": "berth:package:source_version", "value": s}));
        }
        let (group, name) = match (p.kind, p.name.split_once(':'), p.name.split_once('/')) {
            (PackageKind::Java, Some((g, a)), _) => (Some(g), a),
            (PackageKind::Composer, _, Some((v, n))) => (Some(v), n),
            (PackageKind::Npm, _, Some((s, n))) if s.starts_with('@') => (Some(s), n),
            _ => (None, p.name.as_str()),
        };
        let mut c = json!({
            "type": "library",
            "bom-ref": r,
            "name": name,
            "version": p.version,
            "purl": purl,
            "properties": props,
        });
        if let Some(g) = group {
            c["group"] = json!(g);
        }
        comps.push(c);
        refs.push(r);
    }
    let mut subject = json!({
        "type": "container",
        "bom-ref": image_ref,
        "name": image.name,
        "version": image.digest,
        "purl": image_ref,
    });
    if let Some(t) = &image.tag {
        subject["properties"] = json!([{"name": "berth:image:tag", "value": t}]);
    }
    let mut deps = vec![json!({"ref": image_ref, "dependsOn": refs})];
    deps.extend(refs.iter().map(|r| json!({"ref": r})));
    json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", stable_uuid(image, "cyclonedx-1.6")),
        "version": 1,
        "metadata": {
            "timestamp": image.created,
            "tools": {"components": [{
                "type": "application",
                "name": TOOL,
                "version": TOOL_VERSION,
            }]},
            "component": subject,
        },
        "components": comps,
        "dependencies": deps,
    })
}

/// An SPDX 2.3 JSON document: the image as the described package
/// (`primaryPackagePurpose: CONTAINER`), which `CONTAINS` one package per
/// inventoried package (and its operating system), each with a `purl`
/// external reference.
pub fn spdx(inv: &Inventory, image: &ImageInfo) -> Value {
    let image_id = "SPDXRef-Image";
    let mut packages = vec![json!({
        "SPDXID": image_id,
        "name": image.name,
        "versionInfo": image.digest,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": image_purl(image),
        }],
    })];
    let mut rels = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": image_id,
    })];
    let mut contain = |id: &str| {
        rels.push(json!({
            "spdxElementId": image_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    };
    if let Some(os) = &inv.os {
        let id = "SPDXRef-OperatingSystem";
        let mut p = json!({
            "SPDXID": id,
            "name": os.id,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "OPERATING_SYSTEM",
        });
        if let Some(v) = &os.version_id {
            p["versionInfo"] = json!(v);
        }
        if let Some(d) = &os.pretty_name {
            p["description"] = json!(d);
        }
        packages.push(p);
        contain(id);
    }
    for (i, (_, purl, p)) in components(inv).into_iter().enumerate() {
        let id = format!("SPDXRef-Package-{}-{i}", kind_name(p.kind));
        let mut pkg = json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "sourceInfo": format!("{} package found in /{}", kind_name(p.kind), p.path),
            "primaryPackagePurpose": if p.kind == PackageKind::Java && p.path.ends_with(".war") {
                "APPLICATION"
            } else {
                "LIBRARY"
            },
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl,
            }],
        });
        if let Some(s) = &p.source_name {
            pkg["comment"] = json!(format!(
                "source package {s} {}",
                p.source_version.as_deref().unwrap_or("")
            )
            .trim_end()
            .to_string());
        }
        packages.push(pkg);
        contain(&id);
    }
    let slug: String = image
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}@{}", image.name, image.digest),
        "documentNamespace": format!(
            "https://spdx.org/spdxdocs/berth/{slug}-{}",
            stable_uuid(image, "spdx-2.3")
        ),
        "creationInfo": {
            "created": image.created,
            "creators": [format!("Tool: {TOOL}-{TOOL_VERSION}")],
        },
        "packages": packages,
        "relationships": rels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(kind: PackageKind, name: &str, version: &str) -> Package {
        Package {
            kind,
            ecosystem: None,
            name: name.into(),
            version: version.into(),
            source_name: None,
            source_version: None,
            arch: None,
            path: "x".into(),
        }
    }

    fn os(id: &str, v: &str) -> OsInfo {
        OsInfo {
            id: id.into(),
            version_id: Some(v.into()),
            pretty_name: None,
            ecosystem: None,
        }
    }

    #[test]
    fn purls() {
        let deb = Package {
            arch: Some("amd64".into()),
            source_name: Some("openssl".into()),
            ..pkg(PackageKind::Deb, "libssl3", "3.0.11-1~deb12u2")
        };
        assert_eq!(
            purl(&deb, Some(&os("debian", "12"))),
            "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl"
        );
        let rpm = Package {
            arch: Some("x86_64".into()),
            ..pkg(PackageKind::Rpm, "openssl-libs", "1:3.0.7-24.el9")
        };
        assert_eq!(
            purl(&rpm, Some(&os("rhel", "9.3"))),
            "pkg:rpm/redhat/openssl-libs@3.0.7-24.el9?arch=x86_64&distro=rhel-9.3&epoch=1"
        );
        let apk = pkg(PackageKind::Apk, "busybox", "1.36.1-r2");
        assert_eq!(
            purl(&apk, Some(&os("wolfi", "20230201"))),
            "pkg:apk/wolfi/busybox@1.36.1-r2?distro=wolfi-20230201"
        );
        for (p, want) in [
            (
                pkg(PackageKind::Python, "Jinja2", "2.11.2"),
                "pkg:pypi/jinja2@2.11.2",
            ),
            (
                pkg(PackageKind::Npm, "@types/node", "20.1.0"),
                "pkg:npm/%40types/node@20.1.0",
            ),
            (
                pkg(PackageKind::Npm, "lodash", "4.17.20"),
                "pkg:npm/lodash@4.17.20",
            ),
            (
                pkg(PackageKind::Cargo, "serde", "1.0.0"),
                "pkg:cargo/serde@1.0.0",
            ),
            (
                pkg(PackageKind::Go, "github.com/gin-gonic/gin", "v1.9.0"),
                "pkg:golang/github.com/gin-gonic/gin@v1.9.0",
            ),
            (
                pkg(
                    PackageKind::Java,
                    "org.apache.logging.log4j:log4j-core",
                    "2.14.1",
                ),
                "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
            ),
            (pkg(PackageKind::Gem, "rack", "2.2.3"), "pkg:gem/rack@2.2.3"),
            (
                pkg(PackageKind::Composer, "symfony/http-kernel", "v5.4.0"),
                "pkg:composer/symfony/http-kernel@v5.4.0",
            ),
            (
                pkg(PackageKind::NuGet, "Newtonsoft.Json", "12.0.3"),
                "pkg:nuget/Newtonsoft.Json@12.0.3",
            ),
            (
                pkg(PackageKind::Deb, "a+b", "1.0+dfsg"),
                "pkg:deb/debian/a%2Bb@1.0%2Bdfsg",
            ),
        ] {
            assert_eq!(purl(&p, None), want);
        }
        let img = ImageInfo {
            name: "registry.example.com/team/App".into(),
            tag: Some("v1".into()),
            digest: "sha256:abc".into(),
            created: "2026-01-01T00:00:00Z".into(),
        };
        assert_eq!(
            image_purl(&img),
            "pkg:oci/app@sha256:abc?repository_url=registry.example.com/team/App&tag=v1"
        );
    }

    #[test]
    fn stable_and_distinct_ids() {
        let img = |d: &str| ImageInfo {
            name: "r/app".into(),
            tag: None,
            digest: d.into(),
            created: "2026-01-01T00:00:00Z".into(),
        };
        let a = stable_uuid(&img("sha256:1"), "cyclonedx-1.6");
        assert_eq!(a, stable_uuid(&img("sha256:1"), "cyclonedx-1.6"));
        assert_ne!(a, stable_uuid(&img("sha256:2"), "cyclonedx-1.6"));
        assert_ne!(a, stable_uuid(&img("sha256:1"), "spdx-2.3"));
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'5');
        assert!(matches!(a.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
        // Two packages with one purl still get distinct references.
        let inv = Inventory {
            os: None,
            packages: vec![
                pkg(PackageKind::Gem, "rack", "1"),
                pkg(PackageKind::Gem, "rack", "1"),
            ],
            warnings: Vec::new(),
        };
        let refs: Vec<String> = components(&inv).into_iter().map(|(r, _, _)| r).collect();
        assert_eq!(refs, vec!["pkg:gem/rack@1", "pkg:gem/rack@1#2"]);
    }
}

//! The scan itself: layers → image view → inventory → advisory matches →
//! findings shaped like ECR's `ImageScanFinding` (name, description, uri,
//! severity, attributes).
//!
//! Status choice: an image in which neither an OS nor any package was found
//! is `UNSUPPORTED_IMAGE` (ECR reports that for images whose OS it cannot
//! scan); an image with an OS berth has no advisories for but with language
//! packages is scanned for those and is `COMPLETE`; an image with a detected
//! OS and no packages at all is `COMPLETE` with no findings. Any
//! [`ScanError`] is the server's `FAILED` with the error's text as reason.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::error::ScanError;
use crate::index::AdvisoryIndex;
use crate::inventory::{self, Inventory, OsInfo, Package, PackageKind};
use crate::layers::{ImageFs, Layer, Limits};
use crate::severity::{assess, Cvss, Severity};

/// Outcome status of a successful scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScanStatus {
    /// Scanned.
    Complete,
    /// Nothing scannable was found (no OS, no packages).
    UnsupportedImage,
}

impl ScanStatus {
    /// The ECR wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Complete => "COMPLETE",
            ScanStatus::UnsupportedImage => "UNSUPPORTED_IMAGE",
        }
    }
}

/// One vulnerability finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Advisory id (ECR `name`).
    pub name: String,
    /// Other ids of the advisory (CVE, GHSA).
    pub aliases: Vec<String>,
    /// Advisory details, else its summary.
    pub description: String,
    /// One-line summary, when the advisory has one.
    pub summary: Option<String>,
    /// Reference URL.
    pub uri: Option<String>,
    /// ECR severity.
    pub severity: Severity,
    /// Affected package name (binary package for OS packages).
    pub package_name: String,
    /// Installed version.
    pub package_version: String,
    /// Source package, when it differs from the binary package.
    pub source_name: Option<String>,
    /// Source version used for matching, when it differs.
    pub source_version: Option<String>,
    /// Where the package was found.
    pub package_kind: PackageKind,
    /// Path of the database or manifest it was read from.
    pub file_path: String,
    /// Lowest version that fixes it, when known.
    pub fixed_in: Option<String>,
    /// The CVSS vector the severity came from, with its base score.
    pub cvss: Option<Cvss>,
}

impl Finding {
    /// ECR `attributes` key/value pairs.
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        let mut a = vec![
            ("package_name", self.package_name.clone()),
            ("package_version", self.package_version.clone()),
        ];
        if let Some(s) = &self.source_name {
            a.push(("source_package_name", s.clone()));
        }
        if let Some(f) = &self.fixed_in {
            a.push(("fixed_in_version", f.clone()));
        }
        if let Some(c) = &self.cvss {
            let (score, vector) = match c.version {
                2 => ("CVSS2_SCORE", "CVSS2_VECTOR"),
                4 => ("CVSS4_SCORE", "CVSS4_VECTOR"),
                _ => ("CVSS3_SCORE", "CVSS3_VECTOR"),
            };
            a.push((score, format!("{:.1}", c.score)));
            a.push((vector, c.vector.clone()));
        }
        a.push(("file_path", format!("/{}", self.file_path)));
        a
    }
}

/// Result of scanning one image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanReport {
    /// COMPLETE or UNSUPPORTED_IMAGE.
    pub status: ScanStatus,
    /// Detected OS.
    pub os: Option<OsInfo>,
    /// Installed packages.
    pub packages: Vec<Package>,
    /// Findings, ordered by severity (highest first), then name and package.
    pub findings: Vec<Finding>,
    /// Count of findings per severity.
    pub severity_counts: BTreeMap<Severity, u32>,
    /// Manifests skipped during inventory.
    pub warnings: Vec<String>,
}

impl ScanReport {
    /// The inventory the report was built from (OS, packages, warnings),
    /// e.g. for [`crate::sbom::cyclonedx`] or to re-match later.
    pub fn inventory(&self) -> Inventory {
        Inventory {
            os: self.os.clone(),
            packages: self.packages.clone(),
            warnings: self.warnings.clone(),
        }
    }
}

/// Matches an inventory against the advisories.
pub fn match_inventory(inv: &Inventory, index: &AdvisoryIndex) -> Vec<Finding> {
    let os_eco = inv.os.as_ref().and_then(|o| o.ecosystem.as_ref());
    let mut findings = Vec::new();
    for pkg in &inv.packages {
        let Some((eco, names, version)) = pkg.match_key(os_eco) else {
            continue;
        };
        for m in index.matches(&eco, &names, version) {
            let v = m.vulnerability;
            let (severity, cvss) = assess(v, &m.affected);
            let description = v
                .details
                .clone()
                .filter(|d| !d.trim().is_empty())
                .or_else(|| v.summary.clone())
                .unwrap_or_default();
            let source_name = pkg.source_name.clone().filter(|s| *s != pkg.name);
            let source_version = pkg.source_version.clone().filter(|s| *s != pkg.version);
            findings.push(Finding {
                name: v.id.clone(),
                aliases: v.aliases.iter().chain(&v.upstream).cloned().collect(),
                description,
                summary: v.summary.clone(),
                uri: v.primary_url().map(str::to_string),
                severity,
                package_name: pkg.name.clone(),
                package_version: pkg.version.clone(),
                source_name,
                source_version,
                package_kind: pkg.kind,
                file_path: pkg.path.clone(),
                fixed_in: m.fixed,
                cvss,
            });
        }
    }
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.package_name.cmp(&b.package_name))
            .then_with(|| a.package_version.cmp(&b.package_version))
    });
    findings
}

/// Builds a report from an inventory. The inventory serialises (serde), so
/// a server can keep it and call this again when the advisory database
/// changes (`CONTINUOUS_SCAN`) without reading the layers a second time.
pub fn report(mut inv: Inventory, index: &AdvisoryIndex) -> ScanReport {
    let findings = match_inventory(&inv, index);
    let os_eco = inv.os.as_ref().and_then(|o| o.ecosystem.as_ref());
    let unmatched = inv
        .packages
        .iter()
        .filter(|p| {
            matches!(
                p.kind,
                PackageKind::Deb | PackageKind::Apk | PackageKind::Rpm
            )
        })
        .filter(|p| p.match_key(os_eco).is_none())
        .count();
    if unmatched > 0 {
        let os = inv.os.as_ref().map_or_else(
            || "an undetected OS".to_string(),
            |o| format!("{} {}", o.id, o.version_id.as_deref().unwrap_or("")),
        );
        inv.warnings.push(format!(
            "{unmatched} OS packages not matched: no advisory ecosystem for {}",
            os.trim()
        ));
    }
    let mut severity_counts = BTreeMap::new();
    for f in &findings {
        *severity_counts.entry(f.severity).or_insert(0) += 1;
    }
    let status = if inv.os.is_none() && inv.packages.is_empty() {
        ScanStatus::UnsupportedImage
    } else {
        ScanStatus::Complete
    };
    ScanReport {
        status,
        os: inv.os,
        packages: inv.packages,
        findings,
        severity_counts,
        warnings: inv.warnings,
    }
}

/// Scans an image given its layers, base layer first.
pub fn scan_image<R, I>(
    layers: I,
    index: &AdvisoryIndex,
    limits: &Limits,
) -> Result<ScanReport, ScanError>
where
    R: Read,
    I: IntoIterator<Item = Layer<R>>,
{
    let fs = ImageFs::from_layers(layers, limits)?;
    let inv = inventory::collect(&fs, limits)?;
    Ok(report(inv, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(kind: PackageKind, name: &str) -> Package {
        Package {
            kind,
            ecosystem: None,
            name: name.into(),
            version: "1.0".into(),
            source_name: None,
            source_version: None,
            arch: None,
            path: "x".into(),
        }
    }

    #[test]
    fn statuses_and_unmatched_os_warning() {
        let idx = AdvisoryIndex::new();
        let r = report(Inventory::default(), &idx);
        assert_eq!(r.status, ScanStatus::UnsupportedImage);
        let inv = Inventory {
            os: Some(OsInfo {
                id: "amzn".into(),
                version_id: Some("2023".into()),
                pretty_name: None,
                ecosystem: None,
            }),
            packages: vec![
                pkg(PackageKind::Rpm, "bash"),
                pkg(PackageKind::Npm, "lodash"),
            ],
            warnings: Vec::new(),
        };
        let r = report(inv, &idx);
        assert_eq!(r.status, ScanStatus::Complete);
        assert_eq!(
            r.warnings,
            vec!["1 OS packages not matched: no advisory ecosystem for amzn 2023".to_string()]
        );
    }
}

#[cfg(test)]
mod thread_safety {
    fn send_sync<T: Send + Sync + 'static>() {}

    /// The server shares one index across blocking scan threads and moves
    /// reports and errors between tasks.
    #[test]
    fn shared_types_are_send_and_sync() {
        send_sync::<crate::AdvisoryIndex>();
        send_sync::<crate::ScanReport>();
        send_sync::<crate::ScanError>();
        send_sync::<crate::Inventory>();
        send_sync::<crate::Limits>();
    }
}

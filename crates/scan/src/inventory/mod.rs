//! Package inventory from the final image view: the OS (os-release(5), with
//! `/etc/alpine-release`, `/etc/debian_version` and `/etc/redhat-release`
//! fallbacks) and installed packages from OS databases and language
//! manifests. Each submodule cites the format it reads.
//!
//! Malformed OS package databases (dpkg status, apk installed, rpmdb) fail
//! the scan: findings computed from half a database would be silently
//! wrong. Language manifests are many and individually less important; a
//! malformed one is skipped and reported in [`Inventory::warnings`].

pub mod apk;
pub mod bdb;
pub mod cargo;
pub mod dotnet;
pub mod dpkg;
pub mod gobin;
pub mod java;
pub mod npm;
pub mod php;
pub mod python;
pub mod rpm;
pub mod ruby;
pub mod sqlite;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::ecosystem::{Ecosystem, Family};
use crate::error::ScanError;
use crate::layers::{FileData, ImageFs, Limits};

/// Where a package came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PackageKind {
    /// dpkg database.
    Deb,
    /// apk database.
    Apk,
    /// rpm database.
    Rpm,
    /// Python distribution metadata.
    Python,
    /// npm lockfile or installed manifest.
    Npm,
    /// Cargo.lock.
    Cargo,
    /// Go binary build info.
    Go,
    /// Java archive (`pom.properties` or manifest).
    Java,
    /// Installed gem specification or `Gemfile.lock`.
    Gem,
    /// Composer lockfile or installed list.
    Composer,
    /// .NET `*.deps.json`.
    NuGet,
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// Where it was found.
    pub kind: PackageKind,
    /// The OSV ecosystem it is matched in (`Debian:12`, `PyPI`, …); `None`
    /// for OS packages of a distribution without advisories.
    #[serde(default)]
    pub ecosystem: Option<String>,
    /// Package name (binary package for OS packages).
    pub name: String,
    /// Installed version (for rpm `[epoch:]version-release`).
    pub version: String,
    /// Source package name, when the database records one.
    pub source_name: Option<String>,
    /// Source package version.
    pub source_version: Option<String>,
    /// Architecture, when recorded.
    pub arch: Option<String>,
    /// Path of the file it was read from (no leading `/`).
    pub path: String,
}

impl Package {
    /// The ecosystem, names and version to look up in the advisory index.
    /// OS packages need the OS's ecosystem; `None` when it is unknown.
    pub fn match_key<'a>(
        &'a self,
        os: Option<&Ecosystem>,
    ) -> Option<(Ecosystem, Vec<&'a str>, &'a str)> {
        let os_scheme = |f: Family| os.filter(|e| e.family.scheme() == f.scheme()).cloned();
        match self.kind {
            PackageKind::Deb => {
                let eco = os_scheme(Family::Debian)?;
                let name = self.source_name.as_deref().unwrap_or(&self.name);
                let version = self.source_version.as_deref().unwrap_or(&self.version);
                Some((eco, vec![name], version))
            }
            PackageKind::Apk => {
                let eco = os_scheme(Family::Alpine)?;
                let name = self.source_name.as_deref().unwrap_or(&self.name);
                Some((eco, vec![name], &self.version))
            }
            PackageKind::Rpm => {
                let eco = os_scheme(Family::RedHat)?;
                let mut names = vec![self.name.as_str()];
                names.extend(self.source_name.as_deref());
                Some((eco, names, &self.version))
            }
            PackageKind::Python => Some((
                Ecosystem::language(Family::PyPI),
                vec![&self.name],
                &self.version,
            )),
            PackageKind::Npm => Some((
                Ecosystem::language(Family::Npm),
                vec![&self.name],
                &self.version,
            )),
            PackageKind::Cargo => Some((
                Ecosystem::language(Family::CratesIo),
                vec![&self.name],
                &self.version,
            )),
            PackageKind::Go => Some((
                Ecosystem::language(Family::Go),
                vec![&self.name],
                &self.version,
            )),
            PackageKind::Java => Some((
                Ecosystem::language(Family::Maven),
                vec![&self.name],
                &self.version,
            )),
            PackageKind::Gem => Some((
                Ecosystem::language(Family::RubyGems),
                vec![&self.name],
                &self.version,
            )),
            PackageKind::Composer => Some((
                Ecosystem::language(Family::Packagist),
                vec![&self.name],
                &self.version,
            )),
            PackageKind::NuGet => Some((
                Ecosystem::language(Family::NuGet),
                vec![&self.name],
                &self.version,
            )),
        }
    }
}

/// The detected operating system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsInfo {
    /// os-release `ID` (`debian`, `alpine`, `rhel`, …).
    pub id: String,
    /// os-release `VERSION_ID`.
    pub version_id: Option<String>,
    /// os-release `PRETTY_NAME`.
    pub pretty_name: Option<String>,
    /// The OSV ecosystem of its packages, when berth has advisories for it.
    pub ecosystem: Option<Ecosystem>,
}

/// Everything found in an image.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Inventory {
    /// The OS, if detected.
    pub os: Option<OsInfo>,
    /// Installed packages.
    pub packages: Vec<Package>,
    /// Manifests that were skipped, with the reason.
    pub warnings: Vec<String>,
}

/// Parses os-release(5) `KEY=value` lines (shell-style quoting).
pub fn parse_os_release(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.replace("\\\"", "\"")))
        })
        .collect()
}

fn os_info(id: &str, version_id: Option<String>, pretty: Option<String>) -> OsInfo {
    OsInfo {
        id: id.to_string(),
        ecosystem: Ecosystem::for_os(id, version_id.as_deref()),
        version_id,
        pretty_name: pretty,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Detects the OS.
pub fn detect_os(fs: &ImageFs, limits: &Limits) -> Result<Option<OsInfo>, ScanError> {
    let hops = limits.max_symlink_hops;
    for path in ["etc/os-release", "usr/lib/os-release"] {
        if let Some(b) = fs.read(path, hops)? {
            let kv = parse_os_release(&text(b));
            let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
            if let Some(id) = get("ID").filter(|s| !s.is_empty()) {
                let mut version_id = get("VERSION_ID");
                // Debian testing/sid have no VERSION_ID; debian_version may.
                if version_id.is_none() && id == "debian" {
                    version_id = fs
                        .read("etc/debian_version", hops)?
                        .map(|b| text(b).trim().to_string())
                        .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()));
                }
                return Ok(Some(os_info(&id, version_id, get("PRETTY_NAME"))));
            }
        }
    }
    if let Some(b) = fs.read("etc/alpine-release", hops)? {
        let v = text(b).trim().to_string();
        return Ok(Some(os_info("alpine", Some(v), None)));
    }
    if let Some(b) = fs.read("etc/debian_version", hops)? {
        let v = text(b).trim().to_string();
        let v = v.starts_with(|c: char| c.is_ascii_digit()).then_some(v);
        return Ok(Some(os_info("debian", v, None)));
    }
    for path in ["etc/redhat-release", "etc/system-release"] {
        if let Some(b) = fs.read(path, hops)? {
            let t = text(b);
            let line = t.lines().next().unwrap_or("").trim().to_string();
            let lower = line.to_ascii_lowercase();
            let id = if lower.starts_with("red hat") {
                "rhel"
            } else if lower.starts_with("rocky") {
                "rocky"
            } else if lower.starts_with("almalinux") {
                "almalinux"
            } else if lower.starts_with("centos") {
                "centos"
            } else if lower.starts_with("fedora") {
                "fedora"
            } else {
                continue;
            };
            let ver = line
                .split_whitespace()
                .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
                .map(str::to_string);
            return Ok(Some(os_info(id, ver, Some(line))));
        }
    }
    Ok(None)
}

fn malformed(path: &str, what: &'static str, reason: String) -> ScanError {
    ScanError::MalformedDatabase {
        path: path.to_string(),
        what,
        reason,
    }
}

/// Builds the inventory of an image view.
pub fn collect(fs: &ImageFs, limits: &Limits) -> Result<Inventory, ScanError> {
    let mut inv = Inventory {
        os: detect_os(fs, limits)?,
        ..Inventory::default()
    };
    let hops = limits.max_symlink_hops;
    // OS databases, through symlinks (e.g. /var/lib/rpm -> /usr/lib/sysimage/rpm).
    if let Some(b) = fs.read("var/lib/dpkg/status", hops)? {
        let path = "var/lib/dpkg/status";
        let t = text(b);
        inv.packages
            .extend(dpkg::parse(&t, path, true).map_err(|r| malformed(path, "dpkg status", r))?);
    }
    if let Some(b) = fs.read("lib/apk/db/installed", hops)? {
        let path = "lib/apk/db/installed";
        let t = text(b);
        inv.packages
            .extend(apk::parse(&t, path).map_err(|r| malformed(path, "apk database", r))?);
    }
    let mut rpm_seen = false;
    for path in [
        "var/lib/rpm/rpmdb.sqlite",
        "usr/lib/sysimage/rpm/rpmdb.sqlite",
        "var/lib/rpm/Packages",
    ] {
        if rpm_seen {
            break;
        }
        if let Some(b) = fs.read(path, hops)? {
            rpm_seen = true;
            inv.packages
                .extend(rpm::packages(b, path).map_err(|r| malformed(path, "rpm database", r))?);
        }
    }
    // Everything else by walking the retained files.
    for (path, data) in fs.files() {
        if inv.packages.len() > limits.max_packages {
            break;
        }
        let (dir, base) = path.rsplit_once('/').unwrap_or(("", path));
        match data {
            FileData::GoBinary(info) => {
                for m in gobin::modules(info) {
                    inv.packages.push(Package {
                        kind: PackageKind::Go,
                        ecosystem: None,
                        name: m.path,
                        version: m.version,
                        source_name: None,
                        source_version: None,
                        arch: None,
                        path: path.to_string(),
                    });
                }
            }
            FileData::Java(archive) => {
                for j in &archive.packages {
                    inv.packages.push(Package {
                        kind: PackageKind::Java,
                        ecosystem: None,
                        name: j.name(),
                        version: j.version.clone(),
                        source_name: None,
                        source_version: None,
                        arch: None,
                        path: if j.inner_path.is_empty() {
                            path.to_string()
                        } else {
                            format!("{path}!/{}", j.inner_path)
                        },
                    });
                }
                inv.warnings
                    .extend(archive.warnings.iter().map(|w| format!("/{path}: {w}")));
            }
            FileData::Content(bytes) => {
                let lang = |kind, name: String, version: String| Package {
                    kind,
                    ecosystem: None,
                    name,
                    version,
                    source_name: None,
                    source_version: None,
                    arch: None,
                    path: path.to_string(),
                };
                if dir == "var/lib/dpkg/status.d" {
                    if base.ends_with(".md5sums") {
                        continue;
                    }
                    // Descriptions may hold non-UTF-8 bytes; the fields
                    // read are ASCII, so decode lossily rather than fail.
                    let t = text(bytes);
                    inv.packages.extend(
                        dpkg::parse(&t, path, false)
                            .map_err(|r| malformed(path, "dpkg status.d entry", r))?,
                    );
                } else if base == "METADATA" || base == "PKG-INFO" || base.ends_with(".egg-info") {
                    match python::parse_metadata(&text(bytes)) {
                        Some((n, v)) => inv.packages.push(lang(PackageKind::Python, n, v)),
                        None => inv.warnings.push(format!("/{path}: no Name/Version")),
                    }
                } else if base == "package-lock.json" || base == ".package-lock.json" {
                    match npm::parse_lock(bytes) {
                        Ok(list) => inv
                            .packages
                            .extend(list.into_iter().map(|(n, v)| lang(PackageKind::Npm, n, v))),
                        Err(e) => inv.warnings.push(format!("/{path}: {e}")),
                    }
                } else if base == "package.json" {
                    match npm::parse_manifest(bytes) {
                        Ok(Some((n, v))) => inv.packages.push(lang(PackageKind::Npm, n, v)),
                        Ok(None) => {}
                        Err(e) => inv.warnings.push(format!("/{path}: {e}")),
                    }
                } else if base == "Cargo.lock" {
                    inv.packages.extend(
                        cargo::parse_lock(&text(bytes))
                            .into_iter()
                            .map(|(n, v)| lang(PackageKind::Cargo, n, v)),
                    );
                } else if base.ends_with(".gemspec") {
                    match ruby::parse_gemspec(&text(bytes)) {
                        Some((n, v)) => inv.packages.push(lang(PackageKind::Gem, n, v)),
                        None => inv.warnings.push(format!("/{path}: no name/version")),
                    }
                } else if base == "Gemfile.lock" {
                    inv.packages.extend(
                        ruby::parse_gemfile_lock(&text(bytes))
                            .into_iter()
                            .map(|(n, v)| lang(PackageKind::Gem, n, v)),
                    );
                } else if base == "composer.lock" || base == "installed.json" {
                    match php::parse(bytes) {
                        Ok(list) => inv.packages.extend(
                            list.into_iter()
                                .map(|(n, v)| lang(PackageKind::Composer, n, v)),
                        ),
                        Err(e) => inv.warnings.push(format!("/{path}: {e}")),
                    }
                } else if base.ends_with(".deps.json") {
                    match dotnet::parse(bytes) {
                        Ok(list) => inv.packages.extend(
                            list.into_iter()
                                .map(|(n, v)| lang(PackageKind::NuGet, n, v)),
                        ),
                        Err(e) => inv.warnings.push(format!("/{path}: {e}")),
                    }
                }
            }
        }
    }
    if inv.packages.len() > limits.max_packages {
        return Err(ScanError::TooManyPackages {
            limit: limits.max_packages,
        });
    }
    dedup(&mut inv.packages);
    let os_eco = inv.os.as_ref().and_then(|o| o.ecosystem.clone());
    for p in &mut inv.packages {
        p.ecosystem = p.match_key(os_eco.as_ref()).map(|(e, _, _)| e.to_string());
    }
    Ok(inv)
}

/// Language packages found in several manifests (a lockfile and the
/// installed `package.json`) are one package; OS packages are unique per
/// (name, arch) already.
fn dedup(pkgs: &mut Vec<Package>) {
    let mut seen = HashSet::new();
    pkgs.retain(|p| {
        let key = match p.kind {
            PackageKind::Deb | PackageKind::Apk | PackageKind::Rpm => (
                p.kind,
                p.name.clone(),
                p.version.clone(),
                p.arch.clone().unwrap_or_default(),
            ),
            PackageKind::Python => (
                p.kind,
                Family::PyPI.normalize_name(&p.name),
                p.version.clone(),
                String::new(),
            ),
            PackageKind::Composer | PackageKind::NuGet => (
                p.kind,
                p.name.to_lowercase(),
                p.version.clone(),
                String::new(),
            ),
            _ => (p.kind, p.name.clone(), p.version.clone(), String::new()),
        };
        seen.insert(key)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Node;

    fn file(p: &str, c: &str) -> (String, Node) {
        (
            p.to_string(),
            Node::File(FileData::Content(c.as_bytes().to_vec())),
        )
    }

    #[test]
    fn os_release_through_symlink() {
        let fs = ImageFs::from_nodes([
            (
                "etc/os-release".to_string(),
                Node::Symlink("../usr/lib/os-release".into()),
            ),
            file(
                "usr/lib/os-release",
                "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
            ),
        ]);
        let os = detect_os(&fs, &Limits::default()).ok().flatten();
        let Some(os) = os else { panic!("no os") };
        assert_eq!(os.id, "debian");
        assert_eq!(os.ecosystem, Ecosystem::for_os("debian", Some("12")));
    }

    #[test]
    fn os_fallbacks() {
        let l = Limits::default();
        let fs = ImageFs::from_nodes([file("etc/alpine-release", "3.19.1\n")]);
        let os = detect_os(&fs, &l).ok().flatten();
        assert_eq!(
            os.and_then(|o| o.ecosystem),
            Ecosystem::for_os("alpine", Some("3.19"))
        );
        let fs = ImageFs::from_nodes([file("etc/debian_version", "12.15\n")]);
        let os = detect_os(&fs, &l).ok().flatten();
        assert_eq!(
            os.and_then(|o| o.ecosystem),
            Ecosystem::for_os("debian", Some("12"))
        );
        let fs = ImageFs::from_nodes([file(
            "etc/redhat-release",
            "Rocky Linux release 9.3 (Blue Onyx)\n",
        )]);
        let os = detect_os(&fs, &l).ok().flatten();
        assert_eq!(
            os.and_then(|o| o.ecosystem),
            Ecosystem::for_os("rocky", Some("9"))
        );
        let fs = ImageFs::from_nodes([file("etc/hostname", "x")]);
        assert_eq!(detect_os(&fs, &l).ok().flatten(), None);
    }

    #[test]
    fn collects_and_dedups_language_packages() {
        let fs = ImageFs::from_nodes([
            file(
                "app/package-lock.json",
                r#"{"lockfileVersion":3,"packages":{"node_modules/lodash":{"version":"4.17.20"}}}"#,
            ),
            file(
                "app/node_modules/lodash/package.json",
                r#"{"name":"lodash","version":"4.17.20"}"#,
            ),
            file("app/node_modules/bad/package.json", "{"),
            file(
                "usr/lib/python3/site-packages/Jinja2-2.11.2.dist-info/METADATA",
                "Name: Jinja2\nVersion: 2.11.2\n",
            ),
            file(
                "var/lib/dpkg/status.d/base",
                "Package: base-files\nVersion: 12.4\n",
            ),
            file("var/lib/dpkg/status.d/base.md5sums", "abc  etc/x\n"),
        ]);
        let inv = collect(&fs, &Limits::default());
        let Ok(inv) = inv else {
            panic!("collect failed")
        };
        let names: Vec<_> = inv.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names.iter().filter(|n| **n == "lodash").count(), 1);
        assert!(names.contains(&"Jinja2"));
        assert!(names.contains(&"base-files"));
        assert_eq!(inv.warnings.len(), 1);
    }

    #[test]
    fn non_utf8_descriptions_do_not_fail_dpkg() {
        let mut status =
            b"Package: a\nStatus: install ok installed\nVersion: 1.0\nMaintainer: J\xf6rg\n"
                .to_vec();
        status.extend_from_slice(b"Description: x\n");
        let fs = ImageFs::from_nodes([(
            "var/lib/dpkg/status".to_string(),
            Node::File(FileData::Content(status)),
        )]);
        let inv = collect(&fs, &Limits::default());
        assert_eq!(inv.map(|i| i.packages.len()).ok(), Some(1));
    }

    #[test]
    fn package_count_is_capped() {
        let mut status = String::new();
        for i in 0..50 {
            status.push_str(&format!(
                "Package: p{i}\nStatus: install ok installed\nVersion: 1\n\n"
            ));
        }
        let fs = ImageFs::from_nodes([file("var/lib/dpkg/status", &status)]);
        let limits = Limits {
            max_packages: 10,
            ..Limits::default()
        };
        assert!(matches!(
            collect(&fs, &limits),
            Err(ScanError::TooManyPackages { limit: 10 })
        ));
    }

    #[test]
    fn malformed_os_database_fails() {
        let fs = ImageFs::from_nodes([file("var/lib/dpkg/status", "this is not deb822\n")]);
        assert!(matches!(
            collect(&fs, &Limits::default()),
            Err(ScanError::MalformedDatabase { .. })
        ));
    }
}

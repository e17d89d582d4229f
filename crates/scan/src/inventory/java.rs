//! Java archives (JAR, WAR, EAR and Jenkins plugins, all ZIP files: the JAR
//! File Specification, "JAR Manifest"), including archives nested in them
//! (`WEB-INF/lib/*.jar` in a WAR, `lib/*.jar` in an EAR, `BOOT-INF/lib/*.jar`
//! in a Spring Boot JAR).
//!
//! Identification, in order:
//! 1. every `META-INF/maven/<groupId>/<artifactId>/pom.properties` (Maven
//!    Archiver writes one per artifact; a shaded JAR carries one for each
//!    artifact it bundles): `groupId`, `artifactId`, `version`;
//! 2. else the main section of `META-INF/MANIFEST.MF`: the version from
//!    `Implementation-Version`, `Bundle-Version` or `Specification-Version`,
//!    the artifact from the file name (`name-1.2.3.jar`) or
//!    `Implementation-Title`, the group from `Implementation-Vendor-Id` or
//!    the OSGi `Bundle-SymbolicName` without its last component.
//!
//! Archives are hostile: nesting depth, the size of each nested archive and
//! the bytes inflated per top-level archive are capped (a nested archive
//! stored uncompressed is read in place, without a copy). What is skipped is
//! reported as a warning, never silently.

use crate::zip::{self, ZipEntry};

/// Bounds for reading one top-level archive.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveLimits {
    /// Deepest nesting followed (the top-level archive is depth 0).
    pub max_depth: usize,
    /// Largest nested archive read.
    pub max_nested_bytes: u64,
    /// Most bytes inflated for one top-level archive, all levels together.
    pub max_inflated_bytes: u64,
    /// Most ZIP entries examined for one top-level archive, all levels
    /// together (entries of different nested archives may share their
    /// data, so sizes alone do not bound the work).
    pub max_entries: u64,
}

/// A Maven artifact found in an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JavaPackage {
    /// `groupId`, when known.
    pub group: Option<String>,
    /// `artifactId`.
    pub artifact: String,
    /// Version.
    pub version: String,
    /// Path of the (nested) archive inside the top-level one, `!/`-joined
    /// (empty for the top-level archive itself).
    pub inner_path: String,
}

impl JavaPackage {
    /// The OSV `Maven` package name: `groupId:artifactId`, or the artifact
    /// alone when the group is unknown.
    pub fn name(&self) -> String {
        match &self.group {
            Some(g) => format!("{g}:{}", self.artifact),
            None => self.artifact.clone(),
        }
    }
}

/// What one top-level archive held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JavaArchive {
    /// Artifacts found, at every nesting level.
    pub packages: Vec<JavaPackage>,
    /// Parts that were skipped, with the reason.
    pub warnings: Vec<String>,
}

impl JavaArchive {
    /// Bytes this summary keeps in memory.
    pub fn retained_len(&self) -> u64 {
        let p: usize = self
            .packages
            .iter()
            .map(|p| {
                p.group.as_ref().map_or(0, String::len)
                    + p.artifact.len()
                    + p.version.len()
                    + p.inner_path.len()
            })
            .sum();
        let w: usize = self.warnings.iter().map(String::len).sum();
        (p + w) as u64
    }
}

/// Whether a file name is a Java archive by its extension.
pub fn is_archive_name(base: &str) -> bool {
    let lower = base.to_ascii_lowercase();
    [".jar", ".war", ".ear", ".jpi", ".hpi"]
        .iter()
        .any(|ext| lower.len() > ext.len() && lower.ends_with(ext))
}

const MAX_METADATA_BYTES: u64 = 1 << 20;

/// Reads the archive `bytes`, named `file_name` (its base name).
pub fn scan_archive(bytes: &[u8], file_name: &str, limits: &ArchiveLimits) -> JavaArchive {
    let mut w = Walk {
        limits,
        inflate_left: limits.max_inflated_bytes,
        entries_left: limits.max_entries,
        entries_exhausted: false,
        out: JavaArchive::default(),
    };
    w.walk(bytes, file_name, "", 0);
    if w.out.warnings.len() > MAX_WARNINGS {
        let more = w.out.warnings.len() - MAX_WARNINGS;
        w.out.warnings.truncate(MAX_WARNINGS);
        w.out
            .warnings
            .push(format!("{more} more warnings for this archive"));
    }
    w.out
}

/// Warnings kept per top-level archive.
const MAX_WARNINGS: usize = 20;

struct Walk<'l> {
    limits: &'l ArchiveLimits,
    inflate_left: u64,
    entries_left: u64,
    entries_exhausted: bool,
    out: JavaArchive,
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}!/{name}")
    }
}

fn read_budgeted<'a>(
    e: &ZipEntry<'a>,
    max: u64,
    budget: &mut u64,
) -> Result<std::borrow::Cow<'a, [u8]>, String> {
    // Stored entries are borrowed from the archive: only inflation spends
    // the budget.
    let cap = if e.is_stored() { max } else { max.min(*budget) };
    match e.read(cap) {
        Ok(d) => {
            if let std::borrow::Cow::Owned(v) = &d {
                *budget = budget.saturating_sub(v.len() as u64);
            }
            Ok(d)
        }
        Err(zip::ZipError::TooLarge { .. }) if cap < max => {
            Err("inflation budget for this archive exhausted".to_string())
        }
        Err(err) => Err(err.to_string()),
    }
}

impl Walk<'_> {
    fn walk(&mut self, bytes: &[u8], file_name: &str, inner: &str, depth: usize) {
        let limits = self.limits;
        if self.entries_exhausted {
            return;
        }
        let here = if inner.is_empty() { "archive" } else { inner };
        let entries = match zip::entries(bytes) {
            Ok(e) => e,
            Err(e) => {
                self.out.warnings.push(format!("{here}: {e}"));
                return;
            }
        };
        if entries.len() as u64 > self.entries_left {
            self.entries_exhausted = true;
            self.out.warnings.push(format!(
                "{here}: more than {} entries in this archive and those nested in it, rest not read",
                limits.max_entries
            ));
            return;
        }
        self.entries_left -= entries.len() as u64;
        let budget = &mut self.inflate_left;
        let out = &mut self.out;
        let mut found = false;
        let mut manifest = None;
        for e in &entries {
            if e.is_dir() {
                continue;
            }
            let name = e.name.as_str();
            if is_pom_properties(name) {
                match read_budgeted(e, MAX_METADATA_BYTES, budget) {
                    Ok(d) => {
                        let props = parse_properties(&String::from_utf8_lossy(&d));
                        let get = |k: &str| {
                            props
                                .iter()
                                .find(|(key, _)| key == k)
                                .map(|(_, v)| v.clone())
                                .filter(|v| !v.is_empty())
                        };
                        if let (Some(g), Some(a), Some(v)) =
                            (get("groupId"), get("artifactId"), get("version"))
                        {
                            found = true;
                            out.packages.push(JavaPackage {
                                group: Some(g),
                                artifact: a,
                                version: v,
                                inner_path: inner.to_string(),
                            });
                        }
                    }
                    Err(err) => out.warnings.push(format!("{}: {err}", join(inner, name))),
                }
            } else if name.eq_ignore_ascii_case("META-INF/MANIFEST.MF") {
                manifest = Some(e);
            }
        }
        if !found {
            if let Some(e) = manifest {
                match read_budgeted(e, MAX_METADATA_BYTES, budget) {
                    Ok(d) => {
                        if let Some(p) = from_manifest(&String::from_utf8_lossy(&d), file_name) {
                            out.packages.push(JavaPackage {
                                inner_path: inner.to_string(),
                                ..p
                            });
                        }
                    }
                    Err(err) => out
                        .warnings
                        .push(format!("{}: {err}", join(inner, &e.name))),
                }
            }
        }
        for e in &entries {
            if e.is_dir() {
                continue;
            }
            let base = e.name.rsplit('/').next().unwrap_or(&e.name);
            if !is_archive_name(base) {
                continue;
            }
            let path = join(inner, &e.name);
            if depth + 1 > limits.max_depth {
                self.out.warnings.push(format!(
                    "{path}: nested deeper than {} archives, not read",
                    limits.max_depth
                ));
                continue;
            }
            match read_budgeted(e, limits.max_nested_bytes, &mut self.inflate_left) {
                Ok(d) => self.walk(&d, base, &path, depth + 1),
                Err(err) => self.out.warnings.push(format!("{path}: {err}")),
            }
        }
    }
}

/// `META-INF/maven/<groupId>/<artifactId>/pom.properties`.
fn is_pom_properties(name: &str) -> bool {
    let mut it = name.split('/');
    matches!(
        (it.next(), it.next(), it.next(), it.next(), it.next(), it.next()),
        (Some("META-INF"), Some("maven"), Some(g), Some(a), Some("pom.properties"), None)
            if !g.is_empty() && !a.is_empty()
    )
}

/// `java.util.Properties` text: `key=value` or `key: value` lines, `#` and
/// `!` comments, trailing-backslash continuations.
pub fn parse_properties(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut logical = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            logical.push_str(cont);
            continue;
        }
        logical.push_str(line);
        let l = std::mem::take(&mut logical);
        let sep = l.find(['=', ':']).unwrap_or(l.len());
        let key = l[..sep].trim().to_string();
        let value = l.get(sep + 1..).unwrap_or("").trim().to_string();
        out.push((key, value));
    }
    out
}

/// The main section of a manifest (up to the first blank line), with
/// continuation lines (starting with one space) joined.
pub fn parse_manifest(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        if let Some(cont) = line.strip_prefix(' ') {
            if let Some((_, v)) = out.last_mut() {
                v.push_str(cont);
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// `name-1.2.3.jar` → (`name`, `1.2.3`): the version starts at the last
/// `-` followed by a digit.
pub fn split_file_name(base: &str) -> (String, Option<String>) {
    let stem = base.rsplit_once('.').map_or(base, |(s, _)| s);
    let cut = stem
        .char_indices()
        .filter(|&(i, c)| c == '-' && stem[i + 1..].starts_with(|d: char| d.is_ascii_digit()))
        .map(|(i, _)| i)
        .next_back();
    match cut {
        Some(i) if i > 0 => (stem[..i].to_string(), Some(stem[i + 1..].to_string())),
        _ => (stem.to_string(), None),
    }
}

fn from_manifest(text: &str, file_name: &str) -> Option<JavaPackage> {
    let m = parse_manifest(text);
    let get = |k: &str| {
        m.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let (file_artifact, file_version) = split_file_name(file_name);
    let version = get("Implementation-Version")
        .or_else(|| get("Bundle-Version"))
        .or_else(|| get("Specification-Version"))
        .or(file_version)?;
    let artifact = if file_artifact.is_empty() {
        get("Implementation-Title").filter(|t| !t.contains(char::is_whitespace))?
    } else {
        file_artifact
    };
    // `Bundle-SymbolicName: org.example.lib;singleton:=true`.
    let symbolic = get("Bundle-SymbolicName")
        .map(|s| s.split(';').next().unwrap_or_default().trim().to_string());
    let group = get("Implementation-Vendor-Id").or_else(|| {
        let s = symbolic?;
        let (g, _) = s.rsplit_once('.')?;
        Some(g.to_string())
    });
    Some(JavaPackage {
        group,
        artifact,
        version,
        inner_path: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ArchiveLimits = ArchiveLimits {
        max_depth: 3,
        max_nested_bytes: 1 << 20,
        max_inflated_bytes: 4 << 20,
        max_entries: 10_000,
    };

    fn pom(g: &str, a: &str, v: &str) -> (String, Vec<u8>) {
        (
            format!("META-INF/maven/{g}/{a}/pom.properties"),
            format!("#Generated by Maven\ngroupId={g}\nartifactId={a}\nversion={v}\n").into_bytes(),
        )
    }

    fn jar(files: &[(String, Vec<u8>)], deflate: bool) -> Vec<u8> {
        let entries: Vec<(&str, &[u8], bool)> = files
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice(), deflate))
            .collect();
        zip::build(&entries)
    }

    #[test]
    fn pom_properties_and_nested() {
        let inner = jar(
            &[pom("org.apache.logging.log4j", "log4j-core", "2.14.1")],
            true,
        );
        let war = jar(
            &[
                pom("com.example", "shop", "1.0.0"),
                ("WEB-INF/lib/log4j-core-2.14.1.jar".to_string(), inner),
            ],
            false,
        );
        let a = scan_archive(&war, "shop.war", &LIMITS);
        assert!(a.warnings.is_empty(), "{:?}", a.warnings);
        let got: Vec<(String, String, String)> = a
            .packages
            .iter()
            .map(|p| (p.name(), p.version.clone(), p.inner_path.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("com.example:shop".into(), "1.0.0".into(), String::new()),
                (
                    "org.apache.logging.log4j:log4j-core".into(),
                    "2.14.1".into(),
                    "WEB-INF/lib/log4j-core-2.14.1.jar".into()
                ),
            ]
        );
    }

    #[test]
    fn manifest_fallback() {
        let mf = "Manifest-Version: 1.0\r\nBundle-SymbolicName: org.apache.commons.lang3\r\nImplementation-Version: 3.11\r\nImplementation-Title: Apache Commons Lang\r\nImplementation-Vendor-Id: org.apache.comm\r\n ons\r\n\r\nName: x\r\nImplementation-Version: 9\r\n";
        let j = jar(
            &[("META-INF/MANIFEST.MF".into(), mf.as_bytes().to_vec())],
            true,
        );
        let a = scan_archive(&j, "commons-lang3-3.11.jar", &LIMITS);
        assert_eq!(a.packages.len(), 1);
        assert_eq!(a.packages[0].name(), "org.apache.commons:commons-lang3");
        assert_eq!(a.packages[0].version, "3.11");
        // Without a vendor id, the group comes from the bundle name.
        let mf = "Manifest-Version: 1.0\nBundle-SymbolicName: com.google.guava;singleton:=true\nBundle-Version: 31.1.0.jre\n";
        let j = jar(
            &[("META-INF/MANIFEST.MF".into(), mf.as_bytes().to_vec())],
            false,
        );
        let a = scan_archive(&j, "guava.jar", &LIMITS);
        assert_eq!(a.packages[0].name(), "com.google:guava");
        assert_eq!(a.packages[0].version, "31.1.0.jre");
        // A manifest with no version and a file name without one: nothing.
        let j = jar(
            &[(
                "META-INF/MANIFEST.MF".into(),
                b"Manifest-Version: 1.0\n".to_vec(),
            )],
            false,
        );
        assert!(scan_archive(&j, "app.jar", &LIMITS).packages.is_empty());
    }

    #[test]
    fn file_names() {
        assert_eq!(
            split_file_name("log4j-core-2.14.1.jar"),
            ("log4j-core".into(), Some("2.14.1".into()))
        );
        assert_eq!(
            split_file_name("jackson-databind-2.9.10.7.jar"),
            ("jackson-databind".into(), Some("2.9.10.7".into()))
        );
        assert_eq!(split_file_name("app.jar"), ("app".into(), None));
        assert!(is_archive_name("X.JAR") && is_archive_name("a.war") && !is_archive_name(".jar"));
    }

    #[test]
    fn nesting_depth_is_bounded() {
        // A JAR in a JAR in a JAR … five levels deep, each with a pom.
        let mut cur = jar(&[pom("g", "level5", "1")], false);
        for level in (0..5).rev() {
            cur = jar(
                &[
                    pom("g", &format!("level{level}"), "1"),
                    (format!("lib/l{}.jar", level + 1), cur),
                ],
                level % 2 == 0,
            );
        }
        let a = scan_archive(&cur, "top.jar", &LIMITS);
        let names: Vec<String> = a.packages.iter().map(|p| p.artifact.clone()).collect();
        assert_eq!(names, vec!["level0", "level1", "level2", "level3"]);
        assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
        assert!(a.warnings[0].contains("nested deeper"));
    }

    #[test]
    fn inflation_budget_is_bounded() {
        // Many deflated copies of a large nested archive: the budget stops
        // inflating them long before memory or time matter.
        let big = jar(
            &[pom("g", "big", "1"), ("pad".into(), vec![0u8; 900 << 10])],
            false,
        );
        let files: Vec<(String, Vec<u8>)> = (0..20)
            .map(|i| (format!("lib/b{i}.jar"), big.clone()))
            .collect();
        let outer = jar(&files, true);
        let a = scan_archive(&outer, "bomb.jar", &LIMITS);
        assert!(a.packages.len() < 20);
        assert!(
            a.warnings.iter().any(|w| w.contains("budget")),
            "{:?}",
            a.warnings
        );
        // Entries sharing one stored nested archive: the entry budget
        // stops the walk (12^4 archives otherwise).
        let mut cur = jar(&[pom("g", "leaf", "1")], false);
        for _ in 0..4 {
            let files: Vec<(String, Vec<u8>)> = (0..12)
                .map(|i| (format!("lib/{i}.jar"), cur.clone()))
                .collect();
            cur = jar(&files, false);
        }
        let deep = ArchiveLimits {
            max_depth: 8,
            ..LIMITS
        };
        let a = scan_archive(&cur, "fan.jar", &deep);
        assert!(
            a.warnings.len() <= MAX_WARNINGS + 1,
            "{} {:?}",
            a.packages.len(),
            a.warnings
        );
        assert!(
            a.warnings.iter().any(|w| w.contains("entries")),
            "{} {:?}",
            a.packages.len(),
            a.warnings.first()
        );
        // Garbage is a warning, not a failure.
        let a = scan_archive(b"PK\x03\x04 not really", "x.jar", &LIMITS);
        assert!(a.packages.is_empty() && a.warnings.len() == 1);
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// A mutated WAR with a nested JAR never panics and never
            /// reports more than its two artifacts.
            #[test]
            fn mutated_archive_never_panics(pos in 0usize..4096, byte in any::<u8>(), deflate in any::<bool>()) {
                let inner = jar(&[pom("g", "inner", "1.0")], deflate);
                let mut war = jar(
                    &[pom("g", "outer", "2.0"), ("WEB-INF/lib/inner-1.0.jar".to_string(), inner)],
                    !deflate,
                );
                let p = pos % war.len();
                war[p] = byte;
                let a = scan_archive(&war, "x.war", &LIMITS);
                prop_assert!(a.packages.len() <= 2);
            }

            #[test]
            fn metadata_parsers_never_panic(text in "[ -~\n\r\t]{0,300}") {
                let _ = parse_properties(&text);
                let _ = parse_manifest(&text);
                let _ = from_manifest(&text, &text);
                let _ = split_file_name(&text);
            }
        }
    }
}

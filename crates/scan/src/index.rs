//! The advisory index and OSV range evaluation (`ossf/osv-schema`,
//! docs/schema.md "Evaluation" of `affected[].ranges[].events`).
//!
//! Records are indexed by (ecosystem family, normalised package name). A
//! package is affected by an `affected[]` entry when its ecosystem release is
//! covered and either its version is listed in `versions[]` or it lies in an
//! `ECOSYSTEM`/`SEMVER` range. Events are sorted by version before
//! evaluation (`introduced: "0"` first): `introduced` opens, `fixed` closes
//! (exclusive), `last_affected` closes after its version (inclusive), a
//! `limit` caps the range. `GIT` ranges are ignored. Several hits for one
//! record collapse into one match, whose `fixed` is the lowest `fixed` event
//! greater than the installed version among the ranges that hit.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::ecosystem::{Ecosystem, Family};
use crate::osv::{Affected, Event, RangeType, Vulnerability};
use crate::version::{insertion_sort_by, VersionScheme};

/// Why advisory data could not be loaded.
#[derive(Debug, Error)]
pub enum AdvisoryError {
    /// A document is not valid OSV JSON.
    #[error("invalid OSV record {origin}: {source}")]
    Json {
        /// Where the document came from.
        origin: String,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// The advisory archive is not a readable ZIP.
    #[error("reading advisory archive: {0}")]
    Zip(String),
    /// Reading the advisory directory failed.
    #[error("reading advisories at {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    vuln: usize,
    affected: usize,
    ecosystem: Ecosystem,
}

/// What [`AdvisoryIndex::load_dir`] read.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Records added.
    pub loaded: usize,
    /// Records skipped because an earlier record had the same id.
    pub duplicates: usize,
    /// Withdrawn records skipped.
    pub withdrawn: usize,
    /// Records skipped because none of their ecosystems is scanned.
    pub unsupported: usize,
    /// Files that were not valid OSV, with the reason.
    pub rejected: Vec<(PathBuf, String)>,
}

impl LoadReport {
    fn count(&mut self, results: &[Inserted]) {
        for r in results {
            match r {
                Inserted::Added => self.loaded += 1,
                Inserted::Duplicate => self.duplicates += 1,
                Inserted::Withdrawn => self.withdrawn += 1,
                Inserted::Unsupported => self.unsupported += 1,
            }
        }
    }
}

/// In-memory OSV advisory index.
#[derive(Debug, Default)]
pub struct AdvisoryIndex {
    vulns: Vec<Vulnerability>,
    ids: HashSet<String>,
    by_package: HashMap<(Family, String), Vec<Entry>>,
}

/// One advisory that affects a queried package.
#[derive(Debug, Clone)]
pub struct AdvisoryMatch<'a> {
    /// The record.
    pub vulnerability: &'a Vulnerability,
    /// Its `affected[]` entries that matched.
    pub affected: Vec<&'a Affected>,
    /// Lowest fixed version above the installed one, when known.
    pub fixed: Option<String>,
}

/// Outcome of adding one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Added to the index.
    Added,
    /// An earlier record with the same id is kept.
    Duplicate,
    /// The record is withdrawn.
    Withdrawn,
    /// No `affected[]` entry is in an ecosystem berth scans.
    Unsupported,
}

impl AdvisoryIndex {
    /// An empty index.
    pub fn new() -> AdvisoryIndex {
        AdvisoryIndex::default()
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.vulns.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.vulns.is_empty()
    }

    /// Adds one record. The first record with a given id wins.
    pub fn insert(&mut self, vuln: Vulnerability) -> Inserted {
        if vuln.withdrawn.is_some() {
            return Inserted::Withdrawn;
        }
        if self.ids.contains(&vuln.id) {
            return Inserted::Duplicate;
        }
        let vi = self.vulns.len();
        let mut entries = Vec::new();
        for (ai, aff) in vuln.affected.iter().enumerate() {
            let Some(pkg) = &aff.package else { continue };
            let Some(eco) = Ecosystem::parse_osv(&pkg.ecosystem) else {
                continue;
            };
            let key = (eco.family, eco.family.normalize_name(&pkg.name));
            entries.push((
                key,
                Entry {
                    vuln: vi,
                    affected: ai,
                    ecosystem: eco,
                },
            ));
        }
        if entries.is_empty() {
            // Only ecosystems berth cannot inventory (Android, Hex, …):
            // keeping the record would cost memory and never match.
            return Inserted::Unsupported;
        }
        for (key, entry) in entries {
            self.by_package.entry(key).or_default().push(entry);
        }
        self.ids.insert(vuln.id.clone());
        self.vulns.push(vuln);
        Inserted::Added
    }

    /// Parses one OSV JSON document (a record, or an array of records) and
    /// adds it. `origin` names it in errors.
    pub fn add_json(&mut self, origin: &str, bytes: &[u8]) -> Result<Vec<Inserted>, AdvisoryError> {
        let err = |source| AdvisoryError::Json {
            origin: origin.to_string(),
            source,
        };
        let trimmed = bytes.iter().position(|b| !b.is_ascii_whitespace());
        let records: Vec<Vulnerability> = if trimmed.map(|i| bytes[i]) == Some(b'[') {
            serde_json::from_slice(bytes).map_err(err)?
        } else {
            vec![serde_json::from_slice(bytes).map_err(err)?]
        };
        Ok(records.into_iter().map(|v| self.insert(v)).collect())
    }

    /// Loads every `*.json` file under `dir` (recursively, symlinks not
    /// followed). Files that are not OSV are reported, not fatal.
    pub fn load_dir(dir: &Path) -> Result<(AdvisoryIndex, LoadReport), AdvisoryError> {
        let mut index = AdvisoryIndex::new();
        let mut report = LoadReport::default();
        let mut stack = vec![dir.to_path_buf()];
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AdvisoryError::Io { path, source }
        };
        while let Some(d) = stack.pop() {
            let mut names = Vec::new();
            for ent in std::fs::read_dir(&d).map_err(io(&d))? {
                let ent = ent.map_err(io(&d))?;
                names.push(ent.path());
            }
            names.sort();
            for p in names {
                let meta = std::fs::symlink_metadata(&p).map_err(io(&p))?;
                if meta.is_dir() {
                    stack.push(p);
                } else if meta.is_file() && p.extension().is_some_and(|e| e == "json") {
                    let bytes = std::fs::read(&p).map_err(io(&p))?;
                    match index.add_json(&p.display().to_string(), &bytes) {
                        Ok(results) => report.count(&results),
                        Err(e) => report.rejected.push((p.clone(), e.to_string())),
                    }
                }
            }
        }
        Ok((index, report))
    }

    /// Loads every `*.json` entry of a ZIP archive of OSV records (the form
    /// osv.dev publishes: `<ecosystem>/all.zip`). Entries that are not OSV
    /// are reported, not fatal; a broken archive is an error.
    pub fn add_zip(
        &mut self,
        zip: &[u8],
        max_entry_bytes: u64,
    ) -> Result<LoadReport, AdvisoryError> {
        let mut report = LoadReport::default();
        crate::zip::for_each_entry(zip, max_entry_bytes, &mut |name, data| {
            if !name.ends_with(".json") {
                return;
            }
            match self.add_json(name, data) {
                Ok(results) => report.count(&results),
                Err(e) => report.rejected.push((PathBuf::from(name), e.to_string())),
            }
        })
        .map_err(|e| AdvisoryError::Zip(e.to_string()))?;
        Ok(report)
    }

    /// All records held, in insertion order.
    pub fn records(&self) -> &[Vulnerability] {
        &self.vulns
    }

    /// Advisories affecting a package installed in `ecosystem` under any of
    /// `names` (e.g. binary and source name) at `version`, one per record,
    /// ordered by record id.
    pub fn matches<'a>(
        &'a self,
        ecosystem: &Ecosystem,
        names: &[&str],
        version: &str,
    ) -> Vec<AdvisoryMatch<'a>> {
        let family = ecosystem.family;
        let scheme = family.scheme();
        let mut seen_names = HashSet::new();
        let mut out: BTreeMap<&str, AdvisoryMatch<'a>> = BTreeMap::new();
        for name in names {
            let key = (family, family.normalize_name(name));
            if !seen_names.insert(key.1.clone()) {
                continue;
            }
            let Some(entries) = self.by_package.get(&key) else {
                continue;
            };
            for e in entries {
                if !e.ecosystem.covers(ecosystem) {
                    continue;
                }
                let vuln = &self.vulns[e.vuln];
                let aff = &vuln.affected[e.affected];
                let Some(hit) = evaluate(aff, scheme, version) else {
                    continue;
                };
                let m = out
                    .entry(vuln.id.as_str())
                    .or_insert_with(|| AdvisoryMatch {
                        vulnerability: vuln,
                        affected: Vec::new(),
                        fixed: None,
                    });
                if !m.affected.iter().any(|a| std::ptr::eq(*a, aff)) {
                    m.affected.push(aff);
                }
                if let Some(f) = hit.fixed {
                    let lower = match &m.fixed {
                        None => true,
                        Some(cur) => scheme.compare(&f, cur) == Ordering::Less,
                    };
                    if lower {
                        m.fixed = Some(f);
                    }
                }
            }
        }
        out.into_values().collect()
    }
}

/// A hit of one `affected[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Lowest fixed version above the installed one in the ranges that hit.
    pub fixed: Option<String>,
}

enum Ev<'a> {
    Introduced(&'a str),
    Fixed(&'a str),
    LastAffected(&'a str),
    Limit(&'a str),
}

impl<'a> Ev<'a> {
    fn from_event(e: &'a Event) -> Vec<Ev<'a>> {
        let mut v = Vec::new();
        if let Some(x) = &e.introduced {
            v.push(Ev::Introduced(x));
        }
        if let Some(x) = &e.fixed {
            v.push(Ev::Fixed(x));
        }
        if let Some(x) = &e.last_affected {
            v.push(Ev::LastAffected(x));
        }
        if let Some(x) = &e.limit {
            v.push(Ev::Limit(x));
        }
        v
    }
    fn version(&self) -> &'a str {
        match self {
            Ev::Introduced(v) | Ev::Fixed(v) | Ev::LastAffected(v) | Ev::Limit(v) => v,
        }
    }
    fn is_zero(&self) -> bool {
        matches!(self, Ev::Introduced(v) if v.trim() == "0")
    }
}

/// Evaluates one `affected[]` entry for `version` under `scheme`.
pub fn evaluate(aff: &Affected, scheme: VersionScheme, version: &str) -> Option<Hit> {
    let mut hit = aff
        .versions
        .iter()
        .any(|v| v == version || scheme.compare(v, version) == Ordering::Equal);
    let mut fixed: Option<String> = None;
    for range in &aff.ranges {
        let scheme = match range.kind {
            RangeType::Ecosystem => scheme,
            RangeType::Semver => VersionScheme::Semver,
            RangeType::Git | RangeType::Unknown => continue,
        };
        let mut events: Vec<Ev<'_>> = range.events.iter().flat_map(Ev::from_event).collect();
        insertion_sort_by(&mut events, |a, b| match (a.is_zero(), b.is_zero()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => scheme.compare(a.version(), b.version()),
        });
        let cmp = |v: &str| scheme.compare(version, v);
        let mut affected = false;
        let mut limited = false;
        for ev in &events {
            match ev {
                Ev::Introduced(v) => {
                    if ev.is_zero() || cmp(v) != Ordering::Less {
                        affected = true;
                    }
                }
                Ev::Fixed(v) => {
                    if cmp(v) != Ordering::Less {
                        affected = false;
                    }
                }
                Ev::LastAffected(v) => {
                    if cmp(v) == Ordering::Greater {
                        affected = false;
                    }
                }
                Ev::Limit(v) => {
                    if cmp(v) != Ordering::Less {
                        limited = true;
                    }
                }
            }
        }
        if affected && !limited {
            hit = true;
            for ev in &events {
                if let Ev::Fixed(f) = ev {
                    if cmp(f) == Ordering::Less {
                        let lower = match &fixed {
                            None => true,
                            Some(cur) => scheme.compare(f, cur) == Ordering::Less,
                        };
                        if lower {
                            fixed = Some(f.to_string());
                        }
                    }
                }
            }
        }
    }
    hit.then_some(Hit { fixed })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aff(json: &str) -> Affected {
        serde_json::from_str(json).unwrap_or_default()
    }

    #[test]
    fn unsorted_events() {
        // urllib3 / PYSEC-2023-192: events out of order.
        let a = aff(
            r#"{"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"2.0.0"},{"fixed":"2.0.6"},{"introduced":"0"},{"fixed":"1.26.17"}]}]}"#,
        );
        let s = VersionScheme::Pep440;
        assert_eq!(
            evaluate(&a, s, "1.26.15").and_then(|h| h.fixed),
            Some("1.26.17".into())
        );
        assert_eq!(
            evaluate(&a, s, "2.0.3").and_then(|h| h.fixed),
            Some("2.0.6".into())
        );
        assert!(evaluate(&a, s, "1.26.17").is_none());
        assert!(evaluate(&a, s, "1.26.20").is_none());
        assert!(evaluate(&a, s, "2.0.6").is_none());
    }

    #[test]
    fn bounds() {
        let a = aff(
            r#"{"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"1.0"},{"last_affected":"1.5"}]}]}"#,
        );
        let s = VersionScheme::Pep440;
        assert!(evaluate(&a, s, "0.9").is_none());
        assert!(evaluate(&a, s, "1.0").is_some());
        assert_eq!(evaluate(&a, s, "1.5"), Some(Hit { fixed: None }));
        assert!(evaluate(&a, s, "1.5.1").is_none());
        let a = aff(r#"{"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"}]}]}"#);
        assert!(evaluate(&a, VersionScheme::Dpkg, "2.6.1").is_some());
        let a = aff(
            r#"{"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"limit":"2.0"}]}]}"#,
        );
        assert!(evaluate(&a, s, "1.0").is_some());
        assert!(evaluate(&a, s, "2.0").is_none());
    }

    #[test]
    fn versions_list_and_git() {
        let a = aff(
            r#"{"versions":["1.0.1","1.0.2"],"ranges":[{"type":"GIT","repo":"x","events":[{"introduced":"0"},{"fixed":"abc"}]}]}"#,
        );
        assert!(evaluate(&a, VersionScheme::Semver, "1.0.2").is_some());
        assert!(evaluate(&a, VersionScheme::Semver, "1.0.3").is_none());
    }

    #[test]
    fn semver_range_coerces_short_versions() {
        let a = aff(
            r#"{"ranges":[{"type":"SEMVER","events":[{"introduced":"1.0"},{"fixed":"3.1.1"}]}]}"#,
        );
        assert!(evaluate(&a, VersionScheme::Semver, "2.6.6").is_some());
        assert!(evaluate(&a, VersionScheme::Semver, "0.9.0").is_none());
    }

    #[test]
    fn one_match_per_record_with_lowest_fixed() {
        let mut idx = AdvisoryIndex::new();
        let doc = br#"{"id":"GHSA-x","affected":[
            {"package":{"ecosystem":"npm","name":"node-fetch"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"1.0"},{"fixed":"3.1.1"}]}]},
            {"package":{"ecosystem":"npm","name":"node-fetch"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.6.7"}]}]}]}"#;
        assert!(idx.add_json("t", doc).is_ok());
        assert_eq!(idx.add_json("t", doc).ok(), Some(vec![Inserted::Duplicate]));
        let m = idx.matches(&Ecosystem::language(Family::Npm), &["node-fetch"], "2.6.6");
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].fixed.as_deref(), Some("2.6.7"));
        assert_eq!(m[0].affected.len(), 2);
        assert!(idx
            .matches(&Ecosystem::language(Family::Npm), &["node-fetch"], "3.1.1")
            .is_empty());
    }

    #[test]
    fn release_filter() {
        let mut idx = AdvisoryIndex::new();
        let doc = br#"{"id":"DSA-1","affected":[
            {"package":{"ecosystem":"Debian:12","name":"glibc"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.36-9+deb12u3"}]}]},
            {"package":{"ecosystem":"Debian:11","name":"glibc"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.31-13+deb11u7"}]}]}]}"#;
        assert!(idx.add_json("t", doc).is_ok());
        let deb12 = Ecosystem::for_os("debian", Some("12"));
        let deb11 = Ecosystem::for_os("debian", Some("11"));
        let (Some(deb12), Some(deb11)) = (deb12, deb11) else {
            panic!("ecosystems")
        };
        assert!(idx
            .matches(&deb12, &["glibc"], "2.36-9+deb12u14")
            .is_empty());
        assert_eq!(idx.matches(&deb12, &["glibc"], "2.36-9+deb12u2").len(), 1);
        assert_eq!(
            idx.matches(&deb11, &["glibc"], "2.31-13+deb11u5")[0]
                .fixed
                .as_deref(),
            Some("2.31-13+deb11u7")
        );
    }

    #[test]
    fn loads_zip_archives() {
        let z = crate::zip::build(&[
            ("PYSEC-1.json", br#"{"id":"PYSEC-1","affected":[{"package":{"ecosystem":"PyPI","name":"Foo_Bar"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.0"}]}]}]}"#, true),
            ("README.txt", b"hello", false),
            ("broken.json", b"{", false),
        ]);
        let mut idx = AdvisoryIndex::new();
        let r = idx.add_zip(&z, 1 << 20);
        let Ok(r) = r else { panic!("zip") };
        assert_eq!(r.loaded, 1);
        assert_eq!(r.rejected.len(), 1);
        let m = idx.matches(&Ecosystem::language(Family::PyPI), &["foo.bar"], "1.9");
        assert_eq!(m.len(), 1);
        assert!(idx.add_zip(b"junk", 1 << 20).is_err());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn range_json(bounds: &[(u32, Option<u32>)], order: &[usize]) -> String {
            let mut events = Vec::new();
            for (lo, hi) in bounds {
                events.push(format!(r#"{{"introduced":"{lo}.0.0"}}"#));
                if let Some(hi) = hi {
                    events.push(format!(r#"{{"fixed":"{hi}.0.0"}}"#));
                }
            }
            let shuffled: Vec<String> = order
                .iter()
                .filter_map(|&i| events.get(i % events.len().max(1)).cloned())
                .collect();
            let mut seen = std::collections::HashSet::new();
            let mut evs: Vec<String> = shuffled
                .into_iter()
                .filter(|e| seen.insert(e.clone()))
                .collect();
            for e in events {
                if seen.insert(e.clone()) {
                    evs.push(e);
                }
            }
            format!(
                r#"{{"ranges":[{{"type":"SEMVER","events":[{}]}}]}}"#,
                evs.join(",")
            )
        }

        proptest! {
            /// Disjoint [introduced, fixed) intervals in any event order:
            /// a version is affected exactly when an interval contains it,
            /// and the reported fix is that interval's end.
            #[test]
            fn intervals_in_any_order(
                cuts in proptest::collection::btree_set(1u32..60, 1..8),
                open_end in any::<bool>(),
                order in proptest::collection::vec(0usize..16, 0..16),
                v in 0u32..70,
            ) {
                let cuts: Vec<u32> = cuts.into_iter().collect();
                let mut bounds = Vec::new();
                for pair in cuts.chunks(2) {
                    match pair {
                        [lo, hi] => bounds.push((*lo, Some(*hi))),
                        [lo] => bounds.push((*lo, if open_end { None } else { Some(lo + 1) })),
                        _ => {}
                    }
                }
                let a: Affected = serde_json::from_str(&range_json(&bounds, &order)).unwrap_or_default();
                let want = bounds.iter().find(|(lo, hi)| v >= *lo && hi.is_none_or(|h| v < h));
                let got = evaluate(&a, VersionScheme::Semver, &format!("{v}.0.0"));
                prop_assert_eq!(got.is_some(), want.is_some());
                if let (Some(hit), Some((_, hi))) = (got, want) {
                    prop_assert_eq!(hit.fixed, hi.map(|h| format!("{h}.0.0")));
                }
            }

            #[test]
            fn arbitrary_events_never_panic(
                evs in proptest::collection::vec((0u8..4, "[0-9a-z.~+-]{0,6}"), 0..10),
                v in "[0-9a-z.~+-]{0,6}",
            ) {
                let events: Vec<String> = evs.iter().map(|(k, s)| {
                    let key = ["introduced", "fixed", "last_affected", "limit"][usize::from(*k)];
                    format!(r#"{{"{key}":{}}}"#, serde_json::Value::String(s.clone()))
                }).collect();
                for kind in ["ECOSYSTEM", "SEMVER"] {
                    let a: Affected = serde_json::from_str(&format!(
                        r#"{{"ranges":[{{"type":"{kind}","events":[{}]}}]}}"#, events.join(",")
                    )).unwrap_or_default();
                    for scheme in [VersionScheme::Dpkg, VersionScheme::Apk, VersionScheme::Rpm,
                                   VersionScheme::Pep440, VersionScheme::Semver] {
                        let _ = evaluate(&a, scheme, &v);
                    }
                }
            }
        }
    }

    #[test]
    fn bad_json_is_an_error() {
        let mut idx = AdvisoryIndex::new();
        assert!(idx.add_json("t", b"{not json").is_err());
        let two = br#"[{"id":"a","affected":[{"package":{"ecosystem":"npm","name":"x"}}]},
                       {"id":"b","affected":[{"package":{"ecosystem":"PyPI","name":"y"}}]},
                       {"id":"c","affected":[{"package":{"ecosystem":"Hex","name":"plug"}}]}]"#;
        assert_eq!(
            idx.add_json("t", two).ok(),
            Some(vec![
                Inserted::Added,
                Inserted::Added,
                Inserted::Unsupported
            ])
        );
        assert_eq!(idx.len(), 2);
    }
}

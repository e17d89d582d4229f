//! OSV ecosystem names (`ossf/osv-schema`, "Defined ecosystems") and how an
//! installed package's ecosystem is derived from the image.
//!
//! An OSV ecosystem is a family plus, for distributions, a release
//! (`Debian:12`, `Alpine:v3.19`, `Ubuntu:22.04:LTS`, `Rocky Linux:9`,
//! `Red Hat:enterprise_linux:9::appstream`). Releases are normalised per
//! family so that the image's `VERSION_ID` compares equal: Debian, Red Hat,
//! Rocky and Alma by major version, Alpine by `major.minor`, Ubuntu by
//! `YY.MM`. Records for other releases never match.

use serde::{Deserialize, Serialize};

use crate::version::VersionScheme;

/// An ecosystem family the scanner can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Family {
    /// Debian (`Debian:N`), dpkg source packages.
    Debian,
    /// Ubuntu (`Ubuntu:YY.MM[:LTS]`), dpkg source packages.
    Ubuntu,
    /// Alpine (`Alpine:vX.Y`), apk origin packages.
    Alpine,
    /// Wolfi, apk.
    Wolfi,
    /// Chainguard, apk.
    Chainguard,
    /// Red Hat Enterprise Linux, rpm.
    RedHat,
    /// Rocky Linux, rpm.
    Rocky,
    /// AlmaLinux, rpm.
    Alma,
    /// Python packages.
    PyPI,
    /// npm packages.
    Npm,
    /// Rust crates.
    CratesIo,
    /// Go modules (and `stdlib`).
    Go,
    /// Java packages (`groupId:artifactId`).
    Maven,
    /// Ruby gems.
    RubyGems,
    /// PHP Composer packages (`vendor/package`).
    Packagist,
    /// .NET packages.
    NuGet,
}

impl Family {
    /// The version order used for `ECOSYSTEM` ranges of this family.
    pub fn scheme(self) -> VersionScheme {
        match self {
            Family::Debian | Family::Ubuntu => VersionScheme::Dpkg,
            Family::Alpine | Family::Wolfi | Family::Chainguard => VersionScheme::Apk,
            Family::RedHat | Family::Rocky | Family::Alma => VersionScheme::Rpm,
            Family::PyPI => VersionScheme::Pep440,
            Family::Npm | Family::CratesIo => VersionScheme::Semver,
            Family::Go => VersionScheme::Go,
            Family::Maven => VersionScheme::Maven,
            Family::RubyGems => VersionScheme::Gem,
            Family::Packagist => VersionScheme::Packagist,
            Family::NuGet => VersionScheme::NuGet,
        }
    }

    /// The OSV spelling of the family (without release).
    pub fn osv_name(self) -> &'static str {
        match self {
            Family::Debian => "Debian",
            Family::Ubuntu => "Ubuntu",
            Family::Alpine => "Alpine",
            Family::Wolfi => "Wolfi",
            Family::Chainguard => "Chainguard",
            Family::RedHat => "Red Hat",
            Family::Rocky => "Rocky Linux",
            Family::Alma => "AlmaLinux",
            Family::PyPI => "PyPI",
            Family::Npm => "npm",
            Family::CratesIo => "crates.io",
            Family::Go => "Go",
            Family::Maven => "Maven",
            Family::RubyGems => "RubyGems",
            Family::Packagist => "Packagist",
            Family::NuGet => "NuGet",
        }
    }

    /// Canonical form of a package name for index lookups. PyPI names follow
    /// PEP 503 (lowercase, runs of `-_.` become `-`); Composer and NuGet
    /// names are case-insensitive (lowercased); other ecosystems compare
    /// names exactly.
    pub fn normalize_name(self, name: &str) -> String {
        match self {
            Family::PyPI => {
                let mut out = String::with_capacity(name.len());
                let mut in_sep = false;
                for c in name.trim().chars() {
                    if matches!(c, '-' | '_' | '.') {
                        if !in_sep {
                            out.push('-');
                        }
                        in_sep = true;
                    } else {
                        out.extend(c.to_lowercase());
                        in_sep = false;
                    }
                }
                out
            }
            Family::Packagist | Family::NuGet => name.trim().to_lowercase(),
            _ => name.trim().to_string(),
        }
    }

    /// Brings a release string into the form compared for this family.
    fn normalize_release(self, raw: &str) -> Option<String> {
        let raw = raw.trim().trim_start_matches(['v', 'V']);
        let digits_prefix = |s: &str| -> Option<String> {
            let d: String = s.chars().take_while(char::is_ascii_digit).collect();
            (!d.is_empty()).then_some(d)
        };
        match self {
            Family::Debian | Family::RedHat | Family::Rocky | Family::Alma => digits_prefix(raw),
            Family::Alpine | Family::Ubuntu => {
                let mut it = raw.split('.');
                let major = it.next().and_then(digits_prefix)?;
                let minor = it.next().and_then(digits_prefix)?;
                Some(format!("{major}.{minor}"))
            }
            _ => None,
        }
    }
}

/// A family plus an optional, normalised release.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ecosystem {
    /// The family.
    pub family: Family,
    /// Release, normalised for the family (`"12"`, `"3.19"`, `"22.04"`).
    pub release: Option<String>,
}

impl Ecosystem {
    /// A language ecosystem (no release).
    pub fn language(family: Family) -> Ecosystem {
        Ecosystem {
            family,
            release: None,
        }
    }

    /// Parses an OSV `affected[].package.ecosystem` string. Unknown
    /// ecosystems give `None` (their records are not indexed).
    pub fn parse_osv(s: &str) -> Option<Ecosystem> {
        let mut parts = s.split(':');
        let head = parts.next()?.trim();
        let rest: Vec<&str> = parts.collect();
        let family = match head {
            "Debian" => Family::Debian,
            "Ubuntu" => Family::Ubuntu,
            "Alpine" => Family::Alpine,
            "Wolfi" => Family::Wolfi,
            "Chainguard" => Family::Chainguard,
            "Red Hat" => Family::RedHat,
            "Rocky Linux" => Family::Rocky,
            "AlmaLinux" => Family::Alma,
            "PyPI" => Family::PyPI,
            "npm" => Family::Npm,
            "crates.io" => Family::CratesIo,
            "Go" => Family::Go,
            "Maven" => Family::Maven,
            "RubyGems" => Family::RubyGems,
            "Packagist" => Family::Packagist,
            "NuGet" => Family::NuGet,
            _ => return None,
        };
        // The release is the first component that starts with a digit (after
        // an optional `v`): this skips `Pro` in `Ubuntu:Pro:22.04:LTS` and
        // `enterprise_linux` in Red Hat's CPE-like names.
        let release = rest
            .iter()
            .map(|p| p.trim())
            .find(|p| {
                p.trim_start_matches(['v', 'V'])
                    .starts_with(|c: char| c.is_ascii_digit())
            })
            .and_then(|p| family.normalize_release(p));
        if !rest.is_empty() && release.is_none() && family.is_os() {
            // A release we cannot read must not silently match every release.
            return Some(Ecosystem {
                family,
                release: Some(format!("?{}", rest.join(":"))),
            });
        }
        Some(Ecosystem { family, release })
    }

    /// The ecosystem of packages installed on an OS (`ID`, `VERSION_ID` from
    /// os-release). `None` for distributions without OSV data.
    pub fn for_os(id: &str, version_id: Option<&str>) -> Option<Ecosystem> {
        let family = match id.trim().to_ascii_lowercase().as_str() {
            "debian" => Family::Debian,
            "ubuntu" => Family::Ubuntu,
            "alpine" => Family::Alpine,
            "wolfi" => Family::Wolfi,
            "chainguard" => Family::Chainguard,
            "rhel" => Family::RedHat,
            "rocky" => Family::Rocky,
            "almalinux" => Family::Alma,
            _ => return None,
        };
        let release = version_id.and_then(|v| family.normalize_release(v));
        Some(Ecosystem { family, release })
    }

    /// Whether an advisory for `self` applies to a package installed in
    /// `installed`. An advisory without a release applies to every release.
    pub fn covers(&self, installed: &Ecosystem) -> bool {
        self.family == installed.family
            && match &self.release {
                None => true,
                Some(r) => installed.release.as_deref() == Some(r.as_str()),
            }
    }
}

impl std::fmt::Display for Ecosystem {
    /// The OSV spelling: `Debian:12`, `Alpine:v3.19`, `Ubuntu:22.04`,
    /// `Rocky Linux:9`, `PyPI`, …
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.release, self.family) {
            (None, fam) => f.write_str(fam.osv_name()),
            (Some(r), Family::Alpine) => write!(f, "Alpine:v{r}"),
            (Some(r), fam) => write!(f, "{}:{r}", fam.osv_name()),
        }
    }
}

impl Family {
    /// Whether this is a distribution (its packages come from the OS DB).
    pub fn is_os(self) -> bool {
        !matches!(
            self,
            Family::PyPI
                | Family::Npm
                | Family::CratesIo
                | Family::Go
                | Family::Maven
                | Family::RubyGems
                | Family::Packagist
                | Family::NuGet
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eco(f: Family, r: Option<&str>) -> Ecosystem {
        Ecosystem {
            family: f,
            release: r.map(str::to_string),
        }
    }

    #[test]
    fn parses_osv_ecosystems() {
        let cases = [
            ("Debian:12", eco(Family::Debian, Some("12"))),
            ("Debian:11", eco(Family::Debian, Some("11"))),
            ("Alpine:v3.19", eco(Family::Alpine, Some("3.19"))),
            ("Ubuntu:22.04:LTS", eco(Family::Ubuntu, Some("22.04"))),
            ("Ubuntu:Pro:18.04:LTS", eco(Family::Ubuntu, Some("18.04"))),
            (
                "Red Hat:enterprise_linux:9::appstream",
                eco(Family::RedHat, Some("9")),
            ),
            ("Rocky Linux:9", eco(Family::Rocky, Some("9"))),
            ("AlmaLinux:8", eco(Family::Alma, Some("8"))),
            ("PyPI", eco(Family::PyPI, None)),
            ("npm", eco(Family::Npm, None)),
            ("crates.io", eco(Family::CratesIo, None)),
            ("Go", eco(Family::Go, None)),
            ("Debian", eco(Family::Debian, None)),
        ];
        for (s, want) in cases {
            assert_eq!(Ecosystem::parse_osv(s), Some(want), "{s}");
        }
        for (s, f) in [
            ("Maven", Family::Maven),
            ("RubyGems", Family::RubyGems),
            ("Packagist", Family::Packagist),
            ("NuGet", Family::NuGet),
        ] {
            assert_eq!(Ecosystem::parse_osv(s), Some(eco(f, None)), "{s}");
        }
        assert_eq!(Ecosystem::parse_osv("Android"), None);
        assert_eq!(Ecosystem::parse_osv("Hex"), None);
    }

    #[test]
    fn os_release_matching() {
        let installed = Ecosystem::for_os("debian", Some("12")).unwrap_or(eco(Family::Go, None));
        assert!(eco(Family::Debian, Some("12")).covers(&installed));
        assert!(!eco(Family::Debian, Some("11")).covers(&installed));
        assert!(eco(Family::Debian, None).covers(&installed));
        let alpine = Ecosystem::for_os("alpine", Some("3.19.1"));
        assert_eq!(alpine, Some(eco(Family::Alpine, Some("3.19"))));
        let rocky = Ecosystem::for_os("rocky", Some("9.3"));
        assert_eq!(rocky, Some(eco(Family::Rocky, Some("9"))));
        assert_eq!(Ecosystem::for_os("arch", None), None);
        // An unreadable release never matches.
        let odd = Ecosystem::parse_osv("Debian:bookworm");
        assert!(odd.is_some_and(|e| !e.covers(&installed)));
    }

    #[test]
    fn display() {
        for s in [
            "Debian:12",
            "Alpine:v3.19",
            "Ubuntu:22.04",
            "Rocky Linux:9",
            "PyPI",
            "crates.io",
        ] {
            assert_eq!(
                Ecosystem::parse_osv(s).map(|e| e.to_string()).as_deref(),
                Some(s)
            );
        }
    }

    #[test]
    fn pep503() {
        let n = |s| Family::PyPI.normalize_name(s);
        assert_eq!(n("Jinja2"), "jinja2");
        assert_eq!(n("PyYAML"), "pyyaml");
        assert_eq!(n("zope.interface"), "zope-interface");
        assert_eq!(n("Foo__Bar-.baz"), "foo-bar-baz");
        assert_eq!(Family::Npm.normalize_name("@types/node"), "@types/node");
    }
}

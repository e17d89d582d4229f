//! Version ordering for every ecosystem the scanner matches.
//!
//! Each submodule implements one ecosystem's published ordering rules (the
//! spec is cited at the top of each). All comparators are *total* over
//! arbitrary strings: input that does not parse under a scheme still compares
//! deterministically (it sorts below every well-formed version and is ordered
//! among its peers by [`generic::compare`]), because advisory data and image
//! contents are untrusted and a comparator must never panic or be
//! inconsistent in a way that matters to range evaluation.

pub mod apk;
pub mod dpkg;
pub mod gem;
pub mod generic;
pub mod maven;
pub mod nuget;
pub mod packagist;
pub mod pep440;
pub mod rpm;
pub mod semver;

use std::cmp::Ordering;

/// Which ordering rules apply to a version string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum VersionScheme {
    /// Debian/Ubuntu package versions (deb-version(7)).
    Dpkg,
    /// Alpine/Wolfi package versions (apk-tools).
    Apk,
    /// RPM `[epoch:]version[-release]` (rpmvercmp).
    Rpm,
    /// Python PEP 440.
    Pep440,
    /// SemVer 2.0 (npm, crates.io); a leading `v` is tolerated.
    Semver,
    /// Go module versions: SemVer with a `v` prefix, pseudo-versions and
    /// `+incompatible`.
    Go,
    /// Maven `ComparableVersion`.
    Maven,
    /// RubyGems `Gem::Version`.
    Gem,
    /// Composer / PHP `version_compare`.
    Packagist,
    /// NuGet (SemVer 2.0 with up to four numeric parts).
    NuGet,
    /// Fallback for ecosystems without a dedicated scheme.
    Generic,
}

impl VersionScheme {
    /// Compares two versions under this scheme.
    pub fn compare(self, a: &str, b: &str) -> Ordering {
        match self {
            VersionScheme::Dpkg => dpkg::compare(a, b),
            VersionScheme::Apk => apk::compare(a, b),
            VersionScheme::Rpm => rpm::compare(a, b),
            VersionScheme::Pep440 => pep440::compare(a, b),
            VersionScheme::Semver | VersionScheme::Go => semver::compare(a, b),
            VersionScheme::Maven => maven::compare(a, b),
            VersionScheme::Gem => gem::compare(a, b),
            VersionScheme::Packagist => packagist::compare(a, b),
            VersionScheme::NuGet => nuget::compare(a, b),
            VersionScheme::Generic => generic::compare(a, b),
        }
    }
}

/// Compares two runs of ASCII digits numerically without overflowing:
/// leading zeros are dropped, then the longer run is larger, then bytewise.
pub(crate) fn cmp_digits(a: &[u8], b: &[u8]) -> Ordering {
    let a = strip_zeros(a);
    let b = strip_zeros(b);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn strip_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b'0').count();
    &s[n..]
}

/// Sorts `items` with a comparator that may not be a strict total order on
/// hostile input. `slice::sort_by` may panic when it detects an inconsistent
/// comparator; an insertion sort never does, and the slices sorted here (the
/// events of one OSV range) are tiny.
pub(crate) fn insertion_sort_by<T>(items: &mut [T], mut cmp: impl FnMut(&T, &T) -> Ordering) {
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && cmp(&items[j - 1], &items[j]) == Ordering::Greater {
            items.swap(j - 1, j);
            j -= 1;
        }
    }
}

#[cfg(test)]
pub(crate) mod proptest_support {
    use proptest::prelude::*;
    use std::cmp::Ordering;

    /// Asserts antisymmetry and transitivity of `cmp` over three samples.
    pub fn check_order(cmp: fn(&str, &str) -> Ordering, a: &str, b: &str, c: &str) {
        assert_eq!(cmp(a, b), cmp(b, a).reverse(), "antisymmetry {a:?} {b:?}");
        assert_eq!(cmp(a, a), Ordering::Equal, "reflexivity {a:?}");
        let ab = cmp(a, b);
        let bc = cmp(b, c);
        if ab != Ordering::Greater && bc != Ordering::Greater {
            assert_ne!(
                cmp(a, c),
                Ordering::Greater,
                "transitivity {a:?} <= {b:?} <= {c:?}"
            );
        }
        if ab == Ordering::Equal && bc == Ordering::Equal {
            assert_eq!(cmp(a, c), Ordering::Equal, "transitivity of equality");
        }
    }

    pub fn any_version(alphabet: &'static str) -> impl Strategy<Value = String> {
        proptest::string::string_regex(alphabet).unwrap_or_else(|_| panic!("bad regex"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_compare_numerically() {
        assert_eq!(cmp_digits(b"14", b"3"), Ordering::Greater);
        assert_eq!(cmp_digits(b"0003", b"3"), Ordering::Equal);
        assert_eq!(cmp_digits(b"", b"0"), Ordering::Equal);
        assert_eq!(
            cmp_digits(b"123456789012345678901234567890", b"99"),
            Ordering::Greater
        );
    }

    #[test]
    fn insertion_sort_sorts() {
        let mut v = vec![3, 1, 2, 5, 4];
        insertion_sort_by(&mut v, |a, b| a.cmp(b));
        assert_eq!(v, vec![1, 2, 3, 4, 5]);
        // An inconsistent comparator must not panic.
        let mut w = vec![1, 2, 3, 4];
        insertion_sort_by(&mut w, |_, _| Ordering::Greater);
    }
}

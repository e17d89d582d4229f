//! Semantic Versioning 2.0.0 precedence (semver.org §11), as used by npm,
//! crates.io and Go modules.
//!
//! Tolerances for real advisory data: a leading `v`/`=` is ignored, missing
//! minor/patch components are zero (`"1.0"` → `1.0.0`, as OSV records from
//! GitHub sometimes say), and build metadata (`+incompatible` for Go) is
//! ignored. Go pseudo-versions (`v0.0.0-20191109021931-daa7c04131f5`) are
//! ordinary pre-releases and need nothing special. Strings that still do not
//! parse sort before all valid versions.

use std::cmp::Ordering;

use super::{cmp_digits, generic};

/// A parsed version: numeric core and pre-release identifiers (as slices of
/// the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Semver<'a> {
    core: [&'a str; 3],
    pre: Vec<&'a str>,
}

fn is_num(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

/// Parses a (leniently written) SemVer version.
pub fn parse(s: &str) -> Option<Semver<'_>> {
    let s = s.trim();
    let s = s.strip_prefix('=').unwrap_or(s).trim_start();
    let s = s
        .strip_prefix('v')
        .or_else(|| s.strip_prefix('V'))
        .unwrap_or(s);
    let s = s.split_once('+').map_or(s, |(v, _build)| v);
    let (core, pre) = match s.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (s, None),
    };
    let mut parts = core.split('.');
    let mut out = ["0"; 3];
    for (k, slot) in out.iter_mut().enumerate() {
        match parts.next() {
            Some(p) if is_num(p) => *slot = p,
            None if k > 0 => break,
            _ => return None,
        }
    }
    if parts.next().is_some() {
        return None;
    }
    let pre = match pre {
        Some(p) => {
            let ids: Vec<&str> = p.split('.').collect();
            if ids.iter().any(|id| {
                id.is_empty() || !id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
            }) {
                return None;
            }
            ids
        }
        None => Vec::new(),
    };
    Some(Semver { core: out, pre })
}

fn cmp_parsed(a: &Semver<'_>, b: &Semver<'_>) -> Ordering {
    for k in 0..3 {
        let o = cmp_digits(a.core[k].as_bytes(), b.core[k].as_bytes());
        if o != Ordering::Equal {
            return o;
        }
    }
    match (a.pre.is_empty(), b.pre.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    for (x, y) in a.pre.iter().zip(&b.pre) {
        let o = match (is_num(x), is_num(y)) {
            (true, true) => cmp_digits(x.as_bytes(), y.as_bytes()),
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.pre.len().cmp(&b.pre.len())
}

/// Compares two SemVer (or Go module) versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => cmp_parsed(&x, &y),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (None, None) => generic::compare(a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::proptest_support::*;
    use proptest::prelude::*;
    use Ordering::*;

    #[test]
    fn spec_example_ordering() {
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "2.0.0",
            "2.1.0",
            "2.1.1",
        ];
        for (i, a) in ordered.iter().enumerate() {
            for b in &ordered[i + 1..] {
                assert_eq!(compare(a, b), Less, "{a} < {b}");
                assert_eq!(compare(b, a), Greater, "{b} > {a}");
            }
        }
    }

    #[test]
    fn lenient_and_go() {
        assert_eq!(compare("1.0", "1.0.0"), Equal);
        assert_eq!(compare("v1.2.3", "1.2.3"), Equal);
        assert_eq!(compare("1.0.0+build.5", "1.0.0"), Equal);
        assert_eq!(compare("2.6.6", "2.6.7"), Less);
        assert_eq!(compare("4.17.20", "4.17.21"), Less);
        assert_eq!(compare("0.21.1", "0.21.2"), Less);
        assert_eq!(compare("1.2.5", "1.2.6"), Less);
        // Go pseudo-versions.
        assert_eq!(
            compare(
                "v0.0.0-20191109021931-daa7c04131f5",
                "v0.0.0-20200101000000-aaaaaaaaaaaa"
            ),
            Less
        );
        assert_eq!(
            compare("v0.0.0-20191109021931-daa7c04131f5", "v0.0.1"),
            Less
        );
        assert_eq!(
            compare("v1.2.4-0.20191109021931-daa7c04131f5", "v1.2.3"),
            Greater
        );
        assert_eq!(
            compare("v1.2.4-0.20191109021931-daa7c04131f5", "v1.2.4"),
            Less
        );
        assert_eq!(compare("v2.0.0+incompatible", "v2.0.0"), Equal);
        assert_eq!(compare("1.2.3.4", "0.0.1"), Less); // invalid sorts first
    }

    proptest! {
        #[test]
        fn total_order(a in any_version("v?[0-9]{1,2}(\\.[0-9]{1,2}){0,2}(-[a-z0-9]{1,3}(\\.[a-z0-9]{1,2})?)?"),
                       b in any_version("v?[0-9]{1,2}(\\.[0-9]{1,2}){0,2}(-[a-z0-9]{1,3}(\\.[a-z0-9]{1,2})?)?"),
                       c in any_version("v?[0-9]{1,2}(\\.[0-9]{1,2}){0,2}(-[a-z0-9]{1,3}(\\.[a-z0-9]{1,2})?)?")) {
            check_order(compare, &a, &b, &c);
        }
    }
}

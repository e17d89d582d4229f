//! NuGet version order (NuGet docs, "Package versioning": "Version basics",
//! "Pre-release versions", "Semantic Versioning 2.0.0" and "Normalized
//! version numbers"), which OSV's `NuGet` ecosystem uses.
//!
//! `Major.Minor[.Patch[.Revision]][-prerelease][+metadata]`: one to four
//! numeric parts, missing ones counting as zero (`1.0` = `1.0.0.0`); a
//! release sorts above its prereleases; prerelease labels compare as in
//! SemVer 2.0 §11 except that alphanumeric labels compare case-insensitively;
//! build metadata is ignored. A leading `v` is tolerated.

use std::cmp::Ordering;

use super::{cmp_digits, generic};

struct Parsed<'a> {
    parts: [&'a str; 4],
    pre: Vec<&'a str>,
}

fn numeric(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

fn parse(v: &str) -> Option<Parsed<'_>> {
    let v = v.trim();
    let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
    let v = v.split_once('+').map_or(v, |(core, _)| core);
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (v, None),
    };
    let mut parts = ["0"; 4];
    for (n, p) in core.split('.').enumerate() {
        if n == 4 || !numeric(p) {
            return None;
        }
        parts[n] = p;
    }
    let pre = match pre {
        None => Vec::new(),
        Some(p) => {
            let labels: Vec<&str> = p.split('.').collect();
            if labels
                .iter()
                .any(|l| l.is_empty() || !l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
            {
                return None;
            }
            labels
        }
    };
    Some(Parsed { parts, pre })
}

fn cmp_label(a: &str, b: &str) -> Ordering {
    match (numeric(a), numeric(b)) {
        (true, true) => cmp_digits(a.as_bytes(), b.as_bytes()),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase()),
    }
}

/// Compares two NuGet versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (x, y) = match (parse(a), parse(b)) {
        (Some(x), Some(y)) => (x, y),
        (Some(_), None) => return Ordering::Greater,
        (None, Some(_)) => return Ordering::Less,
        (None, None) => return generic::compare(a, b),
    };
    for i in 0..4 {
        let o = cmp_digits(x.parts[i].as_bytes(), y.parts[i].as_bytes());
        if o.is_ne() {
            return o;
        }
    }
    match (x.pre.is_empty(), y.pre.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    for (l, r) in x.pre.iter().zip(&y.pre) {
        let o = cmp_label(l, r);
        if o.is_ne() {
            return o;
        }
    }
    x.pre.len().cmp(&y.pre.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::proptest_support::*;
    use proptest::prelude::*;

    #[test]
    fn nuget_cases() {
        use Ordering::*;
        for (a, b, want) in [
            ("1.0", "1.0.0.0", Equal),
            ("1.0.0", "1.0.0.1", Less),
            ("4.3.0", "4.3.0.0", Equal),
            ("1.0.0-beta", "1.0.0", Less),
            ("1.0.0-alpha", "1.0.0-beta", Less),
            ("1.0.0-Beta", "1.0.0-beta", Equal),
            ("1.0.0-beta.2", "1.0.0-beta.11", Less),
            ("1.0.0-beta", "1.0.0-beta.1", Less),
            ("1.0.0-1", "1.0.0-alpha", Less),
            ("1.0.0+build.1", "1.0.0+build.2", Equal),
            ("12.0.3", "13.0.1", Less),
            ("13.0.1", "v13.0.1", Equal),
            ("6.0.0-preview.7.21377.19", "6.0.0-rc.1.21451.13", Less),
            ("6.0.0-rc.1.21451.13", "6.0.0", Less),
            ("2.1.1.10", "2.1.1.9", Greater),
        ] {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
        assert_eq!(compare("1.2.3.4.5", "0.1"), Ordering::Less);
    }

    proptest! {
        #[test]
        fn total_order(a in any_version("[0-9aB.+-]{0,8}"), b in any_version("[0-9aB.+-]{0,8}"), c in any_version("[0-9aB.+-]{0,8}")) {
            check_order(compare, &a, &b, &c);
        }
    }
}

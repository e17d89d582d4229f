//! RubyGems version order (`Gem::Version`, rubygems `lib/rubygems/version.rb`,
//! as documented on guides.rubygems.org "Patterns", "Semantic versioning"
//! and "Prerelease gems"), which OSV's `RubyGems` ecosystem uses.
//!
//! A version is `N(.X)*` with an optional `-suffix` (read as `.pre.suffix`).
//! It splits into runs of digits and runs of letters; a version containing
//! a letter is a prerelease. Trailing zeros are dropped from the numeric
//! part and from the part after the first letter run, so `1.0` = `1` and
//! `1.0.a` = `1.a`. Segments compare pairwise, a missing one counting as
//! `0`: numbers numerically, strings bytewise, and a string sorts below a
//! number (`1.0.a` < `1.0`).

use std::cmp::Ordering;

use super::{cmp_digits, generic};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg<'a> {
    Num(&'a str),
    Str(&'a str),
}

fn zero(s: &Seg<'_>) -> bool {
    matches!(s, Seg::Num(d) if d.bytes().all(|c| c == b'0'))
}

/// Checks `Gem::Version::ANCHORED_VERSION_PATTERN`:
/// `[0-9]+(\.[0-9a-zA-Z]+)*(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?`.
fn well_formed(v: &str) -> bool {
    let (main, pre) = match v.split_once('-') {
        Some((m, p)) => (m, Some(p)),
        None => (v, None),
    };
    let mut parts = main.split('.');
    let first_ok = parts
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    let rest_ok = parts.all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric()));
    let pre_ok = pre.is_none_or(|p| {
        p.split('.')
            .all(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
    });
    first_ok && rest_ok && pre_ok
}

fn canonical(v: &str) -> Vec<Seg<'_>> {
    let b = v.as_bytes();
    let mut segs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        if b[i].is_ascii_digit() {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            segs.push(Seg::Num(&v[start..i]));
        } else if b[i].is_ascii_alphabetic() {
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            segs.push(Seg::Str(&v[start..i]));
        } else {
            // `-` is `.pre.`: a string segment `pre` in its place.
            if b[i] == b'-' {
                segs.push(Seg::Str("pre"));
            }
            i += 1;
        }
    }
    let split = segs
        .iter()
        .position(|s| matches!(s, Seg::Str(_)))
        .unwrap_or(segs.len());
    let mut strings = segs.split_off(split);
    while segs.last().is_some_and(zero) {
        segs.pop();
    }
    while strings.last().is_some_and(zero) {
        strings.pop();
    }
    segs.extend(strings);
    segs
}

/// Compares two RubyGems versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim(), b.trim());
    // An empty version is `0`.
    let a = if a.is_empty() { "0" } else { a };
    let b = if b.is_empty() { "0" } else { b };
    match (well_formed(a), well_formed(b)) {
        (true, true) => {}
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => return generic::compare(a, b),
    }
    let (x, y) = (canonical(a), canonical(b));
    let zero = Seg::Num("0");
    for i in 0..x.len().max(y.len()) {
        let l = x.get(i).unwrap_or(&zero);
        let r = y.get(i).unwrap_or(&zero);
        let o = match (l, r) {
            (Seg::Num(p), Seg::Num(q)) => cmp_digits(p.as_bytes(), q.as_bytes()),
            (Seg::Str(p), Seg::Str(q)) => p.cmp(q),
            (Seg::Str(_), Seg::Num(_)) => Ordering::Less,
            (Seg::Num(_), Seg::Str(_)) => Ordering::Greater,
        };
        if o.is_ne() {
            return o;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::proptest_support::*;
    use proptest::prelude::*;

    /// Cases from rubygems' own `test_gem_version.rb` (`test_spaceship`,
    /// `test_eql_eh`, prerelease ordering) and real advisory bounds.
    #[test]
    fn rubygems_cases() {
        use Ordering::*;
        for (a, b, want) in [
            ("1.0", "1.0.0", Equal),
            ("1", "1.0.0.0", Equal),
            ("1.0", "1.0.a", Greater),
            ("1.8.2", "0.0.0", Greater),
            ("1.8.2", "1.8.2.a", Greater),
            ("1.8.2.b", "1.8.2.a", Greater),
            ("1.8.2.a", "1.8.2", Less),
            ("1.8.2.a10", "1.8.2.a9", Greater),
            ("", "0", Equal),
            ("0.beta.1", "0.0.beta.1", Equal),
            ("0.0.beta", "0.0.beta.1", Less),
            ("0.0.beta", "0.beta.1", Less),
            ("5.a", "5.0.0.rc2", Less),
            ("5.x", "5.0.0.rc2", Greater),
            ("1.0.0-alpha", "1.0.0.pre.alpha", Equal),
            ("1.0.0-1", "1.0.0", Less),
            ("1.9.3", "1.9.3.1", Less),
            ("1.0.0.rc1", "1.0.0.beta2", Greater),
            ("2.2.3", "2.2.3.1", Less),
            ("2.2.3.1", "2.2.4", Less),
            ("6.1.7.3", "6.1.7.10", Less),
            ("1.13.10", "1.14.3", Less),
            ("3.0.0.beta2", "3.0.0", Less),
            ("10.0", "9.9", Greater),
        ] {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn malformed_sorts_below() {
        assert_eq!(compare("junk", "0"), Ordering::Less);
        assert_eq!(compare("1..2", "0.1"), Ordering::Less);
    }

    proptest! {
        #[test]
        fn total_order(a in any_version("[0-9ab.-]{0,8}"), b in any_version("[0-9ab.-]{0,8}"), c in any_version("[0-9ab.-]{0,8}")) {
            check_order(compare, &a, &b, &c);
        }
    }
}

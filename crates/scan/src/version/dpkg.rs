//! Debian package version ordering: Debian Policy §5.6.12 and deb-version(7),
//! as implemented by dpkg's `lib/dpkg/version.c` (`verrevcmp`).
//!
//! A version is `[epoch:]upstream[-revision]`. Epochs compare numerically;
//! upstream and revision compare by alternating non-digit runs (where `~`
//! sorts before everything, even the end of the string, and letters sort
//! before other characters) and digit runs (compared numerically).

use std::cmp::Ordering;

use super::cmp_digits;

/// The three parts of a Debian version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpkgVersion<'a> {
    /// Epoch digits (`"0"` when absent).
    pub epoch: &'a str,
    /// Upstream version.
    pub upstream: &'a str,
    /// Debian revision (`""` when absent).
    pub revision: &'a str,
}

/// Splits a version into epoch, upstream version and revision.
pub fn parse(s: &str) -> DpkgVersion<'_> {
    let s = s.trim();
    let (epoch, rest) = match s.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => (e, r),
        _ => ("0", s),
    };
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((u, r)) => (u, r),
        None => (rest, ""),
    };
    DpkgVersion {
        epoch,
        upstream,
        revision,
    }
}

/// Compares two Debian versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let va = parse(a);
    let vb = parse(b);
    cmp_digits(va.epoch.as_bytes(), vb.epoch.as_bytes())
        .then_with(|| verrevcmp(va.upstream.as_bytes(), vb.upstream.as_bytes()))
        .then_with(|| verrevcmp(va.revision.as_bytes(), vb.revision.as_bytes()))
}

/// Weight of one character in a non-digit run; `None` is the end of string.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0usize, 0usize);
    let digit_at = |s: &[u8], k: usize| s.get(k).is_some_and(|c| c.is_ascii_digit());
    while i < a.len() || j < b.len() {
        // Non-digit prefix, character by character.
        while (i < a.len() && !digit_at(a, i)) || (j < b.len() && !digit_at(b, j)) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            // Equal weights here mean both are the same non-digit character.
            i += 1;
            j += 1;
        }
        // Digit run, numerically.
        let si = i;
        while digit_at(a, i) {
            i += 1;
        }
        let sj = j;
        while digit_at(b, j) {
            j += 1;
        }
        let o = cmp_digits(&a[si..i], &b[sj..j]);
        if o != Ordering::Equal {
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
    use Ordering::*;

    #[test]
    fn vectors() {
        let cases = [
            ("2.36-9+deb12u14", "2.36-9+deb12u3", Greater),
            ("2.36-9+deb12u14", "2.36-9+deb12u6", Greater),
            ("2.6.1", "2.6.2", Less),
            ("10.42-1", "10.42-1+deb12u2", Less),
            ("2.5.0-1+deb12u2", "2.5.0-1+deb12u4", Less),
            ("3.0.20-1~deb12u2", "3.0.22-1~deb12u1", Less),
            ("5.36.0-7+deb12u3", "5.36.0-7+deb12u3", Equal),
            ("1:2.66-4+deb12u3+b1", "1:2.66-4+deb12u3", Greater),
            ("1:2.38.1-5+deb12u3", "2.38.1-5+deb12u3", Greater),
            ("1:4.13+dfsg1-1+deb12u2", "1:4.13+dfsg1-1+deb12u1", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0+b1", Less),
            ("1.0a", "1.0+", Less), // letters before non-letters
            ("1.0", "1.0a", Less),
            ("1.0-0", "1.0", Equal),
            ("0:1.0", "1.0", Equal),
            ("1.2.3", "1.2.3-1", Less),
            ("1.001", "1.1", Equal),
            ("7.6p2-4", "7.6-0", Greater),
            ("1.18.36:5.4", "1.18.36:5.5", Less), // colon in upstream when epoch is not numeric
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn parses_parts() {
        let v = parse("1:2.66-4+deb12u3+b1");
        assert_eq!(
            (v.epoch, v.upstream, v.revision),
            ("1", "2.66", "4+deb12u3+b1")
        );
        let v = parse("1.0-2-3");
        assert_eq!((v.upstream, v.revision), ("1.0-2", "3"));
    }

    proptest! {
        #[test]
        fn total_order(a in any_version("([0-9]:)?[0-9a-z.~+]{0,6}(-[0-9a-z.~+]{0,4})?"),
                       b in any_version("([0-9]:)?[0-9a-z.~+]{0,6}(-[0-9a-z.~+]{0,4})?"),
                       c in any_version("([0-9]:)?[0-9a-z.~+]{0,6}(-[0-9a-z.~+]{0,4})?")) {
            check_order(compare, &a, &b, &c);
        }
    }
}

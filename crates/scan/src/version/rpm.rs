//! RPM version ordering: rpm's `rpmvercmp` (rpmio/rpmvercmp.c, rpm ≥ 4.15
//! with `~` and `^`) applied to epoch, version and release.
//!
//! Segments are maximal runs of digits or of letters; other characters only
//! separate. Numeric segments compare numerically and beat alphabetic ones;
//! `~` sorts before anything (even the end), `^` sorts after the end of the
//! string but before anything else. An absent epoch is 0.

use std::cmp::Ordering;

use super::cmp_digits;

/// The parts of an RPM EVR string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evr<'a> {
    /// Epoch digits (`"0"` when absent).
    pub epoch: &'a str,
    /// Version.
    pub version: &'a str,
    /// Release (`""` when absent).
    pub release: &'a str,
}

/// Splits `[epoch:]version[-release]`.
pub fn parse(s: &str) -> Evr<'_> {
    let s = s.trim();
    let (epoch, rest) = match s.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => (e, r),
        _ => ("0", s),
    };
    let (version, release) = rest.rsplit_once('-').unwrap_or((rest, ""));
    Evr {
        epoch,
        version,
        release,
    }
}

/// Compares two `[epoch:]version[-release]` strings.
pub fn compare(a: &str, b: &str) -> Ordering {
    let ea = parse(a);
    let eb = parse(b);
    cmp_digits(ea.epoch.as_bytes(), eb.epoch.as_bytes())
        .then_with(|| rpmvercmp(ea.version, eb.version))
        .then_with(|| rpmvercmp(ea.release, eb.release))
}

/// rpm's segment comparison of one version or release field.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0usize, 0usize);
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while i < a.len() && sep(a[i]) {
            i += 1;
        }
        while j < b.len() && sep(b[j]) {
            j += 1;
        }
        let ca = a.get(i).copied();
        let cb = b.get(j).copied();
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca == Some(b'^') || cb == Some(b'^') {
            if ca.is_none() {
                return Ordering::Less;
            }
            if cb.is_none() {
                return Ordering::Greater;
            }
            if ca != Some(b'^') {
                return Ordering::Greater;
            }
            if cb != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(ca), Some(_)) = (ca, cb) else {
            break;
        };
        let numeric = ca.is_ascii_digit();
        let class = |c: &u8| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let si = i;
        while a.get(i).is_some_and(class) {
            i += 1;
        }
        let sj = j;
        while b.get(j).is_some_and(class) {
            j += 1;
        }
        if sj == j {
            // Segments of different kinds: numeric beats alphabetic.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let o = if numeric {
            cmp_digits(&a[si..i], &b[sj..j])
        } else {
            a[si..i].cmp(&b[sj..j])
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (false, _) => Ordering::Greater,
        (true, false) => Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::proptest_support::*;
    use proptest::prelude::*;
    use Ordering::*;

    #[test]
    fn rpmvercmp_vectors() {
        // A selection of rpm's own tests/rpmvercmp.at expectations.
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("2.0.1", "2.0.1a", Less),
            ("5.5p1", "5.5p2", Less),
            ("5.5p10", "5.5p1", Greater),
            ("10xyz", "10.1xyz", Less),
            ("xyz10", "xyz10.1", Less),
            ("xyz.4", "8", Less),
            ("5.5p1", "5.5.p1", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0~rc1~git123", "1.0~rc1", Less),
            ("1.0^", "1.0", Greater),
            ("1.0^git1", "1.0", Greater),
            ("1.0^git1", "1.01", Less),
            ("1.0^git1", "1.0^git2", Less),
            ("1.0^git1~pre", "1.0^git1", Less),
            ("1.0~rc1^git1", "1.0~rc1", Greater),
            ("a", "1", Less),
            ("20101121", "20101121.0", Less),
            ("2_0", "2.0", Equal),
            ("1.002", "1.2", Equal),
        ];
        for (a, b, want) in cases {
            assert_eq!(rpmvercmp(a, b), want, "{a} vs {b}");
            assert_eq!(rpmvercmp(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn evr() {
        assert_eq!(compare("1:1.0-1", "2.0-1"), Greater);
        assert_eq!(compare("0:1.0-1", "1.0-1"), Equal);
        assert_eq!(compare("3.0.7-24.el9", "3.0.7-27.el9"), Less);
        assert_eq!(compare("3.0.7-24.el9", "1:3.0.7-24.el9"), Less);
        assert_eq!(compare("1.0-1.el9_2", "1.0-1.el9"), Greater);
    }

    proptest! {
        #[test]
        fn total_order(a in any_version("[0-9a-z.~^]{0,7}(-[0-9a-z.]{1,3})?"),
                       b in any_version("[0-9a-z.~^]{0,7}(-[0-9a-z.]{1,3})?"),
                       c in any_version("[0-9a-z.~^]{0,7}(-[0-9a-z.]{1,3})?")) {
            check_order(compare, &a, &b, &c);
        }
    }
}

//! Packagist (Composer) version order: PHP's `version_compare()` (PHP
//! manual, "version_compare"), which Composer applies to normalised
//! versions and OSV's `Packagist` ecosystem uses, after dropping the `v`
//! prefix Composer tags commonly carry (`v5.4.0` = `5.4.0`).
//!
//! The version is canonicalised: `-`, `_` and `+` become `.`, and a `.` is
//! inserted wherever digits and non-digits meet (`1.0rc1` → `1.0.rc.1`).
//! Parts then compare pairwise: numbers numerically, a number above any
//! word, words by their special form: `dev` < `alpha` = `a` < `beta` = `b`
//! < `RC` = `rc` < (a number) < `pl` = `p`, any other word below `dev`
//! (PHP matches forms by prefix, so `patch` counts as `p`). When one
//! version has more parts, a further number makes it greater (`1.0.1` >
//! `1.0`) and a further word is compared with a number (`1.0rc1` < `1.0`,
//! `1.0pl1` > `1.0`).

use std::cmp::Ordering;

fn canonical(v: &str) -> Vec<String> {
    let v = v.trim();
    let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut prev_digit: Option<bool> = None;
    for c in v.chars() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                parts.push(std::mem::take(&mut cur));
            }
            prev_digit = None;
            continue;
        }
        let d = c.is_ascii_digit();
        if prev_digit.is_some_and(|p| p != d) && !cur.is_empty() {
            parts.push(std::mem::take(&mut cur));
        }
        cur.push(c);
        prev_digit = Some(d);
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    parts
}

/// Rank of a word (PHP's special forms, matched by prefix); a number is 4.
fn form(word: &str) -> i8 {
    const FORMS: [(&str, i8); 10] = [
        ("dev", 0),
        ("alpha", 1),
        ("a", 1),
        ("beta", 2),
        ("b", 2),
        ("RC", 3),
        ("rc", 3),
        ("#", 4),
        ("pl", 5),
        ("p", 5),
    ];
    FORMS
        .iter()
        .find(|(name, _)| word.starts_with(name))
        .map_or(-6, |(_, r)| *r)
}

fn is_num(s: &str) -> bool {
    s.bytes().all(|c| c.is_ascii_digit())
}

fn cmp_part(a: &str, b: &str) -> Ordering {
    match (is_num(a), is_num(b)) {
        (true, true) => super::cmp_digits(a.as_bytes(), b.as_bytes()),
        (true, false) => form("#").cmp(&form(b)),
        (false, true) => form(a).cmp(&form("#")),
        (false, false) => form(a).cmp(&form(b)),
    }
}

/// Compares two Packagist versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (x, y) = (canonical(a), canonical(b));
    for (l, r) in x.iter().zip(&y) {
        let o = cmp_part(l, r);
        if o.is_ne() {
            return o;
        }
    }
    let extra = |rest: &[String]| -> Ordering {
        match rest.first() {
            None => Ordering::Equal,
            Some(p) if is_num(p) => Ordering::Greater,
            Some(p) => form(p).cmp(&form("#")),
        }
    };
    match x.len().cmp(&y.len()) {
        Ordering::Equal => Ordering::Equal,
        Ordering::Greater => extra(&x[y.len()..]),
        Ordering::Less => extra(&y[x.len()..]).reverse(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results of PHP's `version_compare()` (PHP manual examples and the
    /// php-src `version_compare` tests).
    #[test]
    fn php_cases() {
        use Ordering::*;
        for (a, b, want) in [
            ("5.2", "5.2.0", Less),
            ("1.0", "1.0.0", Less),
            ("1.0rc1", "1.0", Less),
            ("1.0pl1", "1.0", Greater),
            ("1.0-dev", "1.0-alpha", Less),
            ("1.0-alpha", "1.0-beta", Less),
            ("1.0-beta", "1.0-RC1", Less),
            ("1.0-RC1", "1.0", Less),
            ("1.0", "1.0-patch1", Less),
            ("1.0.0-beta2", "1.0.0-beta10", Less),
            ("v5.4.0", "5.4.0", Equal),
            ("v5.4.20", "5.4.21", Less),
            ("2.11.0", "2.9.9", Greater),
            ("1.0.0-a1", "1.0.0-alpha1", Equal),
            ("1_0", "1.0", Equal),
            ("7.4.0", "7.4.0+security", Greater),
        ] {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    mod fuzz {
        use super::*;
        use crate::version::proptest_support::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn total_order(a in any_version("[0-9ab.-]{0,8}"), b in any_version("[0-9ab.-]{0,8}"), c in any_version("[0-9ab.-]{0,8}")) {
                check_order(compare, &a, &b, &c);
            }
        }
    }
}

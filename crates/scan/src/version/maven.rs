//! Maven version order: the rules of Maven's `ComparableVersion`
//! (maven-artifact; documented on the Maven wiki page "Versioning" and in
//! the POM reference, "Version Order Specification"), which OSV's `Maven`
//! ecosystem uses.
//!
//! A version is lower-cased and split into items at `.`, at `-` and at every
//! transition between digits and letters. Numbers compare numerically;
//! strings are qualifiers, ordered `alpha` < `beta` < `milestone` < `rc` =
//! `cr` < `snapshot` < `""` = `ga` = `final` = `release` < `sp` < any other
//! string (those lexically); a single `a`, `b` or `m` directly followed by a
//! digit means alpha, beta, milestone. A `-` (and a letter/digit transition)
//! opens a nested list, which sorts below a number at the same position and
//! above a qualifier. Trailing "null" items (`0`, `""`, empty lists) are
//! dropped, so `1` = `1.0` = `1-0` = `1.0.0`.

use std::cmp::Ordering;

use super::{cmp_digits, generic};

/// Versions beyond these sizes are not parsed (each `-` nests a list and
/// comparison recurses into it): they compare generically, below every
/// parsed version.
const MAX_LEN: usize = 256;
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// Digits, leading zeros stripped (empty for zero).
    Num(String),
    /// A qualifier, aliases applied.
    Str(String),
    List(Vec<Item>),
}

fn num(digits: &str) -> Item {
    Item::Num(digits.trim_start_matches('0').to_string())
}

fn qualifier(s: &str, followed_by_digit: bool) -> Item {
    let s = match (s, followed_by_digit) {
        ("a", true) => "alpha",
        ("b", true) => "beta",
        ("m", true) => "milestone",
        ("ga" | "final" | "release", _) => "",
        ("cr", _) => "rc",
        (s, _) => s,
    };
    Item::Str(s.to_string())
}

/// Rank of a qualifier: known ones by position, unknown ones after them.
fn rank(q: &str) -> (usize, &str) {
    const KNOWN: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];
    match KNOWN.iter().position(|k| *k == q) {
        Some(i) => (i, ""),
        None => (KNOWN.len(), q),
    }
}

const RELEASE: (usize, &str) = (5, "");

impl Item {
    fn is_null(&self) -> bool {
        match self {
            Item::Num(d) => d.is_empty(),
            Item::Str(s) => rank(s) == RELEASE,
            Item::List(l) => l.is_empty(),
        }
    }

    fn cmp_to(&self, other: Option<&Item>) -> Ordering {
        use Item::*;
        match (self, other) {
            (Num(d), None) => {
                if d.is_empty() {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            (Num(a), Some(Num(b))) => cmp_digits(a.as_bytes(), b.as_bytes()),
            (Num(_), Some(_)) => Ordering::Greater,
            (Str(s), None) => rank(s).cmp(&RELEASE),
            (Str(_), Some(Num(_) | List(_))) => Ordering::Less,
            (Str(a), Some(Str(b))) => rank(a).cmp(&rank(b)),
            (List(l), None) => l
                .iter()
                .map(|i| i.cmp_to(None))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal),
            (List(_), Some(Num(_))) => Ordering::Less,
            (List(_), Some(Str(_))) => Ordering::Greater,
            (List(a), Some(List(b))) => {
                for i in 0..a.len().max(b.len()) {
                    let o = match (a.get(i), b.get(i)) {
                        (Some(l), r) => l.cmp_to(r),
                        (None, Some(r)) => r.cmp_to(None).reverse(),
                        (None, None) => Ordering::Equal,
                    };
                    if o.is_ne() {
                        return o;
                    }
                }
                Ordering::Equal
            }
        }
    }
}

/// Drops trailing null items, looking through trailing non-null lists.
fn normalize(list: &mut Vec<Item>) {
    let mut i = list.len();
    while i > 0 {
        i -= 1;
        if list[i].is_null() {
            list.remove(i);
        } else if !matches!(list[i], Item::List(_)) {
            break;
        }
    }
}

/// Parses a version into its item list; `None` past the size limits.
fn parse(version: &str) -> Option<Item> {
    if version.len() > MAX_LEN {
        return None;
    }
    let v = version.to_lowercase();
    // Lists only ever nest at the end of their parent, so the structure is a
    // chain of levels, folded together at the end.
    let mut levels: Vec<Vec<Item>> = vec![Vec::new()];
    let mut is_digit = false;
    let mut start = 0usize;
    let push = |levels: &mut Vec<Vec<Item>>, item: Item| {
        if let Some(l) = levels.last_mut() {
            l.push(item);
        }
    };
    let word = |is_digit: bool, s: &str| {
        if is_digit {
            num(s)
        } else {
            qualifier(s, false)
        }
    };
    for (i, c) in v.char_indices() {
        if c == '.' || c == '-' {
            let item = if i == start {
                Item::Num(String::new())
            } else {
                word(is_digit, &v[start..i])
            };
            push(&mut levels, item);
            start = i + 1;
            if c == '-' {
                levels.push(Vec::new());
            }
        } else if c.is_ascii_digit() {
            if !is_digit && i > start {
                // `1.0.X1` < `1.0-X2`: a qualifier after a dot is treated
                // as after a hyphen.
                if levels.last().is_some_and(|l| !l.is_empty()) {
                    levels.push(Vec::new());
                }
                push(&mut levels, qualifier(&v[start..i], true));
                start = i;
                levels.push(Vec::new());
            }
            is_digit = true;
        } else {
            if is_digit && i > start {
                push(&mut levels, num(&v[start..i]));
                start = i;
                levels.push(Vec::new());
            }
            is_digit = false;
        }
        if levels.len() > MAX_DEPTH {
            return None;
        }
    }
    if v.len() > start {
        if !is_digit && levels.last().is_some_and(|l| !l.is_empty()) {
            levels.push(Vec::new());
        }
        push(&mut levels, word(is_digit, &v[start..]));
    }
    let mut acc: Option<Vec<Item>> = None;
    while let Some(mut level) = levels.pop() {
        if let Some(child) = acc.take() {
            level.push(Item::List(child));
        }
        normalize(&mut level);
        acc = Some(level);
    }
    Some(Item::List(acc.unwrap_or_default()))
}

/// Compares two Maven versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (parse(a.trim()), parse(b.trim())) {
        (Some(x), Some(y)) => x.cmp_to(Some(&y)),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => generic::compare(a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::proptest_support::*;
    use proptest::prelude::*;

    fn ascending(list: &[&str]) {
        for (i, lo) in list.iter().enumerate() {
            for hi in &list[i + 1..] {
                assert_eq!(compare(lo, hi), Ordering::Less, "{lo} < {hi}");
                assert_eq!(compare(hi, lo), Ordering::Greater, "{hi} > {lo}");
            }
        }
    }

    /// The orderings Maven's own ComparableVersion test suite asserts.
    #[test]
    fn maven_qualifier_order() {
        ascending(&[
            "1-alpha2snapshot",
            "1-alpha2",
            "1-alpha-123",
            "1-beta-2",
            "1-beta123",
            "1-m2",
            "1-m11",
            "1-rc",
            "1-cr2",
            "1-rc123",
            "1-SNAPSHOT",
            "1",
            "1-sp",
            "1-sp2",
            "1-sp123",
            "1-abc",
            "1-def",
            "1-pom-1",
            "1-1-snapshot",
            "1-1",
            "1-2",
            "1-123",
        ]);
    }

    #[test]
    fn maven_number_order() {
        ascending(&[
            "2.0", "2.0.a", "2-1", "2.0.2", "2.0.123", "2.1.0", "2.1-a", "2.1b", "2.1-c", "2.1-1",
            "2.1.0.1", "2.2", "2.123", "11.a2", "11.a11", "11.b2", "11.b11", "11.m2", "11.m11",
            "11", "11.a", "11b", "11c", "11m",
        ]);
    }

    #[test]
    fn maven_equalities() {
        for (a, b) in [
            ("1", "1.0"),
            ("1", "1.0.0"),
            ("1", "1-0"),
            ("1", "1.0-0"),
            ("1a", "1-a"),
            ("1a", "1.0.0-a"),
            ("1.0.0x", "1-x"),
            ("1ga", "1"),
            ("1release", "1"),
            ("1final", "1"),
            ("1cr", "1rc"),
            ("1a1", "1-alpha-1"),
            ("1b2", "1-beta-2"),
            ("1m3", "1-milestone-3"),
            ("1X", "1x"),
            ("1RELeaSE", "1"),
            ("1m3", "1MILESTONE3"),
            ("0000000000000000001", "1"),
            ("0000000000000000000", "0"),
        ] {
            assert_eq!(compare(a, b), Ordering::Equal, "{a} == {b}");
        }
    }

    #[test]
    fn maven_pairs() {
        for (a, b) in [
            ("1.0-alpha-1", "1.0"),
            ("1.0-beta-1", "1.0-SNAPSHOT"),
            ("1.0-SNAPSHOT", "1.0"),
            ("1.0-alpha-1-SNAPSHOT", "1.0-alpha-1"),
            ("1.0", "1.0-1"),
            ("1.0.0", "1.0-1"),
            ("2.0-1", "2.0.1"),
            ("2.0.1-klm", "2.0.1-lmn"),
            ("2.0.1", "2.0.1-xyz"),
            ("2.0.1-xyz", "2.0.1-123"),
            ("6.1.0rc3", "6.1.0"),
            ("6.1.0rc3", "6.1H.5-beta"),
            ("6.1.0", "6.1H.5-beta"),
            ("20190126.230843", "1234567890.12345"),
            (
                "123456789012345.1H.5-beta",
                "12345678901234567890.1H.5-beta",
            ),
            ("1-0.alpha", "1"),
            ("1-0.alpha", "1-0.beta"),
            // Real advisory bounds.
            ("2.14.1", "2.15.0"),
            ("2.15.0-rc1", "2.15.0"),
            ("2.9.10.7", "2.9.10.8"),
            ("5.3.17", "5.3.18"),
            ("1.2.17", "2.0-beta9"),
            ("2.0-beta9", "2.0-rc1"),
        ] {
            assert_eq!(compare(a, b), Ordering::Less, "{a} < {b}");
            assert_eq!(compare(b, a), Ordering::Greater, "{b} > {a}");
        }
    }

    /// `1.0.0.X1` < `1.0.0-X2` and `2-X` = `2.0.X` = `2.0.0.X` for any
    /// qualifier X (Maven's MNG-7644 rule).
    #[test]
    fn dot_qualifier_is_hyphen_qualifier() {
        for x in [
            "abc",
            "alpha",
            "a",
            "beta",
            "b",
            "def",
            "milestone",
            "m",
            "RC",
        ] {
            let (lo, hi) = (format!("1.0.0.{x}1"), format!("1.0.0-{x}2"));
            assert_eq!(compare(&lo, &hi), Ordering::Less, "{lo} < {hi}");
            for (a, b) in [("2-", "2.0."), ("2-", "2.0.0."), ("2.0.", "2.0.0.")] {
                let (a, b) = (format!("{a}{x}"), format!("{b}{x}"));
                assert_eq!(compare(&a, &b), Ordering::Equal, "{a} == {b}");
            }
        }
    }

    #[test]
    fn hostile_input_is_bounded() {
        let deep = "1-".repeat(10_000);
        assert_eq!(compare(&deep, "1"), Ordering::Less);
        assert_eq!(compare(&deep, &deep), Ordering::Equal);
    }

    proptest! {
        #[test]
        fn total_order(a in any_version("[1-9][0-9a-c.-]{0,7}"), b in any_version("[1-9][0-9a-c.-]{0,7}"), c in any_version("[1-9][0-9a-c.-]{0,7}")) {
            check_order(compare, &a, &b, &c);
        }
    }
}

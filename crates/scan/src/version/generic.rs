//! Fallback ordering for versions no ecosystem grammar accepts.
//!
//! Alternating digit and non-digit runs: digit runs compare numerically,
//! other runs bytewise, and a digit run sorts after a non-digit run. This is
//! a total order (it is a lexicographic order over a well-ordered token
//! alphabet), which is all the matcher needs from it.

use std::cmp::Ordering;

use super::cmp_digits;

#[derive(PartialEq, Eq)]
enum Tok<'a> {
    Text(&'a [u8]),
    Num(&'a [u8]),
}

fn tokens(s: &str) -> impl Iterator<Item = Tok<'_>> {
    let b = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        if i >= b.len() {
            return None;
        }
        let start = i;
        let digit = b[i].is_ascii_digit();
        while i < b.len() && b[i].is_ascii_digit() == digit {
            i += 1;
        }
        let run = &b[start..i];
        Some(if digit { Tok::Num(run) } else { Tok::Text(run) })
    })
}

/// Compares two arbitrary strings as versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let mut ta = tokens(a);
    let mut tb = tokens(b);
    loop {
        match (ta.next(), tb.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = match (x, y) {
                    (Tok::Num(x), Tok::Num(y)) => cmp_digits(x, y),
                    (Tok::Text(x), Tok::Text(y)) => x.cmp(y),
                    (Tok::Num(_), Tok::Text(_)) => Ordering::Greater,
                    (Tok::Text(_), Tok::Num(_)) => Ordering::Less,
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::proptest_support::*;
    use proptest::prelude::*;

    #[test]
    fn basics() {
        assert_eq!(compare("1.10", "1.9"), Ordering::Greater);
        assert_eq!(compare("1.0", "1.0.1"), Ordering::Less);
        assert_eq!(compare("01", "1"), Ordering::Less); // tie broken bytewise
    }

    proptest! {
        #[test]
        fn total_order(a in any_version("[0-9a-z.~+-]{0,8}"), b in any_version("[0-9a-z.~+-]{0,8}"), c in any_version("[0-9a-z.~+-]{0,8}")) {
            check_order(compare, &a, &b, &c);
        }
    }
}

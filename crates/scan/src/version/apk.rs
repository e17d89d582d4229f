//! Alpine package version ordering, following apk-tools `src/version.c`.
//!
//! Grammar: `digit{.digit}...{letter}{_suffix{#}}...{~hash}{-r#}`. Tokens are
//! compared pairwise while both sides have the same token kind; a digit
//! component with a leading zero compares as a string (as in Gentoo); the
//! suffixes `_alpha < _beta < _pre < _rc < (none) < _cvs < _svn < _git < _hg
//! < _p`. When one side runs out first, it is greater unless the longer side
//! continues with a pre-release suffix; an invalid tail sorts lowest.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    CommitHash,
    RevisionNo,
    End,
    Invalid,
}

/// Suffix ranks; `NONE` (3 here) separates pre- from post-release suffixes.
const SUFFIX_NONE: u8 = 4;

fn suffix_value(s: &[u8]) -> Option<u8> {
    Some(match s {
        b"alpha" => 0,
        b"beta" => 1,
        b"pre" => 2,
        b"rc" => 3,
        b"cvs" => 5,
        b"svn" => 6,
        b"git" => 7,
        b"hg" => 8,
        b"p" => 9,
        _ => return None,
    })
}

struct Tokens<'a> {
    s: &'a [u8],
    pos: usize,
    kind: Kind,
    value: &'a [u8],
    number: u64,
    suffix: u8,
}

impl<'a> Tokens<'a> {
    fn new(s: &'a str) -> Self {
        let mut t = Tokens {
            s: s.trim().as_bytes(),
            pos: 0,
            kind: Kind::InitialDigit,
            value: &[],
            number: 0,
            suffix: 0,
        };
        t.digits();
        t
    }

    fn digits(&mut self) {
        let start = self.pos;
        let mut n: u64 = 0;
        while let Some(c) = self.s.get(self.pos).filter(|c| c.is_ascii_digit()) {
            n = n.saturating_mul(10).saturating_add(u64::from(c - b'0'));
            self.pos += 1;
        }
        self.number = n;
        self.value = &self.s[start..self.pos];
        if self.value.is_empty() {
            self.kind = Kind::Invalid;
        }
    }

    fn span(&mut self, pred: fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(|&c| pred(c)) {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    fn next(&mut self) {
        let Some(&c) = self.s.get(self.pos) else {
            self.kind = Kind::End;
            return;
        };
        match c {
            b'a'..=b'z' => {
                if self.kind > Kind::Digit {
                    self.kind = Kind::Invalid;
                    return;
                }
                self.value = &self.s[self.pos..self.pos + 1];
                self.pos += 1;
                self.kind = Kind::Letter;
            }
            b'.' | b'0'..=b'9' => {
                if c == b'.' {
                    if self.kind > Kind::Digit {
                        self.kind = Kind::Invalid;
                        return;
                    }
                    self.pos += 1;
                }
                self.kind = match self.kind {
                    Kind::InitialDigit | Kind::Digit => Kind::Digit,
                    Kind::Suffix => Kind::SuffixNo,
                    _ => {
                        self.kind = Kind::Invalid;
                        return;
                    }
                };
                self.digits();
            }
            b'_' => {
                if self.kind > Kind::SuffixNo {
                    self.kind = Kind::Invalid;
                    return;
                }
                self.pos += 1;
                self.value = self.span(|c| c.is_ascii_lowercase());
                match suffix_value(self.value) {
                    Some(v) => {
                        self.suffix = v;
                        self.kind = Kind::Suffix;
                    }
                    None => self.kind = Kind::Invalid,
                }
            }
            b'~' => {
                if self.kind >= Kind::CommitHash {
                    self.kind = Kind::Invalid;
                    return;
                }
                self.pos += 1;
                self.value = self.span(|c| c.is_ascii_hexdigit());
                self.kind = if self.value.is_empty() {
                    Kind::Invalid
                } else {
                    Kind::CommitHash
                };
            }
            b'-' => {
                if self.kind >= Kind::RevisionNo || self.s.get(self.pos + 1) != Some(&b'r') {
                    self.kind = Kind::Invalid;
                    return;
                }
                self.pos += 2;
                self.kind = Kind::RevisionNo;
                self.digits();
            }
            _ => self.kind = Kind::Invalid,
        }
    }
}

fn token_cmp(a: &Tokens<'_>, b: &Tokens<'_>) -> Ordering {
    match a.kind {
        Kind::Digit if a.value.first() == Some(&b'0') || b.value.first() == Some(&b'0') => {
            a.value.cmp(b.value)
        }
        Kind::Digit | Kind::InitialDigit | Kind::SuffixNo | Kind::RevisionNo => {
            a.number.cmp(&b.number)
        }
        Kind::Letter => a.value.cmp(b.value),
        Kind::Suffix => a.suffix.cmp(&b.suffix),
        _ => a.value.cmp(b.value),
    }
}

/// Compares two apk versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let mut ta = Tokens::new(a);
    let mut tb = Tokens::new(b);
    while ta.kind == tb.kind && ta.kind < Kind::End {
        let r = token_cmp(&ta, &tb);
        if r != Ordering::Equal {
            return r;
        }
        ta.next();
        tb.next();
    }
    if ta.kind == tb.kind {
        return Ordering::Equal;
    }
    if ta.kind == Kind::Suffix && ta.suffix < SUFFIX_NONE {
        return Ordering::Less;
    }
    if tb.kind == Kind::Suffix && tb.suffix < SUFFIX_NONE {
        return Ordering::Greater;
    }
    // A later token kind (ultimately End, then Invalid) is the smaller version.
    tb.kind.cmp(&ta.kind)
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
            ("1.2.3", "1.2.3", Equal),
            ("1.2.3-r1", "1.2.3-r0", Greater),
            ("1.2.3", "1.2.3-r0", Less),
            ("1.2.3_rc1", "1.2.3", Less),
            ("1.2.3_alpha", "1.2.3_beta", Less),
            ("1.2.3_beta2", "1.2.3_beta10", Less),
            ("1.2.3_pre1", "1.2.3_rc1", Less),
            ("1.2.3_p1", "1.2.3", Greater),
            ("1.2.3_p1", "1.2.4", Less),
            ("1.2.3a", "1.2.3", Greater),
            ("1.2.3a", "1.2.3b", Less),
            ("1.2.10", "1.2.9", Greater),
            ("1.2", "1.2.0", Less),
            ("3.0.13-r0", "3.0.12-r2", Greater),
            ("1.36.1-r15", "1.36.1-r2", Greater),
            ("1.01", "1.1", Less), // leading zero: string compare
            ("1.2_git20200101", "1.2", Greater),
            ("1.2~abc123", "1.2", Greater),
            ("1.2-r1", "1.2~ab-r1", Less),
            ("garbage", "1.0", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    proptest! {
        #[test]
        fn total_order(a in any_version("[1-9](\\.[1-9][0-9]?){0,3}[a-c]?(_(alpha|beta|rc|p)[1-9]?)?(-r[0-9])?"),
                       b in any_version("[1-9](\\.[1-9][0-9]?){0,3}[a-c]?(_(alpha|beta|rc|p)[1-9]?)?(-r[0-9])?"),
                       c in any_version("[1-9](\\.[1-9][0-9]?){0,3}[a-c]?(_(alpha|beta|rc|p)[1-9]?)?(-r[0-9])?")) {
            check_order(compare, &a, &b, &c);
        }
    }
}

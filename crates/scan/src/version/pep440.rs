//! Python version ordering: PEP 440 ("Version Identification and Dependency
//! Specification"), including its normalisation rules, ordered like
//! `packaging.version.Version`.
//!
//! `[N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]`, case-insensitive, with the
//! spelling variants PEP 440 normalises (`alpha`, `c`, `pre`, `preview`,
//! `rev`, `r`, implicit numbers, `-N` as an implicit post release, `-`/`_`/`.`
//! separators, a leading `v`). Strings that are not PEP 440 sort before every
//! valid version (as `LegacyVersion` did) and among themselves generically.

use std::cmp::Ordering;

use super::generic;

/// A sort position that may be below or above every value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Bound<T> {
    NegInf,
    Val(T),
    PosInf,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum LocalSeg {
    // Strings sort before numbers.
    Str(String),
    Num(u64),
}

/// A parsed PEP 440 version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pep440 {
    epoch: u64,
    release: Vec<u64>,
    pre: Option<(u8, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    local: Option<Vec<LocalSeg>>,
}

type Key<'a> = (
    u64,
    &'a [u64],
    Bound<(u8, u64)>,
    Bound<u64>,
    Bound<u64>,
    Bound<&'a [LocalSeg]>,
);

impl Pep440 {
    fn key(&self) -> Key<'_> {
        let mut rel: &[u64] = &self.release;
        while let [head @ .., 0] = rel {
            rel = head;
        }
        let pre = match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => Bound::NegInf,
            (None, _, _) => Bound::PosInf,
            (Some(p), _, _) => Bound::Val(p),
        };
        let post = self.post.map_or(Bound::NegInf, Bound::Val);
        let dev = self.dev.map_or(Bound::PosInf, Bound::Val);
        let local = self.local.as_deref().map_or(Bound::NegInf, Bound::Val);
        (self.epoch, rel, pre, post, dev, local)
    }
}

struct Cur<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }
    fn sep(&mut self) -> bool {
        if matches!(self.peek(), Some(b'-' | b'_' | b'.')) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn num(&mut self) -> Option<u64> {
        let start = self.i;
        let mut n: u64 = 0;
        while let Some(c) = self.peek().filter(u8::is_ascii_digit) {
            n = n.saturating_mul(10).saturating_add(u64::from(c - b'0'));
            self.i += 1;
        }
        (self.i > start).then_some(n)
    }
    /// An optional separator followed by an optional number (implicit 0).
    fn implicit_num(&mut self) -> u64 {
        let save = self.i;
        self.sep();
        match self.num() {
            Some(n) => n,
            None => {
                self.i = save;
                0
            }
        }
    }
}

/// Parses a PEP 440 version, or `None` when it is not one.
pub fn parse(s: &str) -> Option<Pep440> {
    let lower = s.trim().to_ascii_lowercase();
    let mut c = Cur {
        s: lower.as_bytes(),
        i: 0,
    };
    c.eat("v");
    let first = c.num()?;
    let (epoch, mut release) = if c.eat("!") {
        (first, vec![c.num()?])
    } else {
        (0, vec![first])
    };
    loop {
        let save = c.i;
        if c.eat(".") {
            if let Some(n) = c.num() {
                release.push(n);
                continue;
            }
        }
        c.i = save;
        break;
    }
    // Pre-release.
    let mut pre = None;
    {
        let save = c.i;
        c.sep();
        let kind = if c.eat("alpha") || c.eat("a") {
            Some(0)
        } else if c.eat("beta") || c.eat("b") {
            Some(1)
        } else if c.eat("preview") || c.eat("pre") || c.eat("rc") || c.eat("c") {
            Some(2)
        } else {
            None
        };
        match kind {
            Some(k) => pre = Some((k, c.implicit_num())),
            None => c.i = save,
        }
    }
    // Post-release.
    let mut post = None;
    {
        let save = c.i;
        if c.eat("-") {
            if let Some(n) = c.num() {
                post = Some(n);
            } else {
                c.i = save;
            }
        }
        if post.is_none() {
            c.sep();
            if c.eat("post") || c.eat("rev") || c.eat("r") {
                post = Some(c.implicit_num());
            } else {
                c.i = save;
            }
        }
    }
    // Development release.
    let mut dev = None;
    {
        let save = c.i;
        c.sep();
        if c.eat("dev") {
            dev = Some(c.implicit_num());
        } else {
            c.i = save;
        }
    }
    // Local version label.
    let mut local = None;
    if c.eat("+") {
        let rest = std::str::from_utf8(&c.s[c.i..]).ok()?;
        let mut segs = Vec::new();
        for part in rest.split(['-', '_', '.']) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return None;
            }
            segs.push(if part.bytes().all(|b| b.is_ascii_digit()) {
                LocalSeg::Num(part.parse().unwrap_or(u64::MAX))
            } else {
                LocalSeg::Str(part.to_string())
            });
        }
        c.i = c.s.len();
        local = Some(segs);
    }
    if c.i != c.s.len() {
        return None;
    }
    Some(Pep440 {
        epoch,
        release,
        pre,
        post,
        dev,
        local,
    })
}

/// Compares two Python versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x.key().cmp(&y.key()),
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
    fn ordering_from_pep440() {
        // The example ordering given in PEP 440's "Summary of permitted suffixes".
        let ordered = [
            "1.dev0",
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
        ];
        for w in ordered.windows(2) {
            assert_eq!(compare(w[0], w[1]), Less, "{} < {}", w[0], w[1]);
            assert_eq!(compare(w[1], w[0]), Greater);
        }
        for (i, a) in ordered.iter().enumerate() {
            for b in &ordered[i + 1..] {
                assert_eq!(compare(a, b), Less, "{a} < {b}");
            }
        }
    }

    #[test]
    fn normalisation() {
        let eq = [
            ("1.0", "1.0.0"),
            ("1.0", "v1.0"),
            ("1.0a1", "1.0alpha1"),
            ("1.0a1", "1.0-a1"),
            ("1.0a", "1.0a0"),
            ("1.0c1", "1.0rc1"),
            ("1.0pre1", "1.0rc1"),
            ("1.0preview1", "1.0rc1"),
            ("1.0-1", "1.0.post1"),
            ("1.0.rev1", "1.0.post1"),
            ("1.0r", "1.0.post0"),
            ("1.0.dev", "1.0.dev0"),
            ("1.0-dev-1", "1.0.dev1"),
            ("1.0+ubuntu-1", "1.0+ubuntu.1"),
            ("0!1.0", "1.0"),
            ("1.0RC1", "1.0rc1"),
        ];
        for (a, b) in eq {
            assert_eq!(compare(a, b), Equal, "{a} == {b}");
        }
    }

    #[test]
    fn fixture_vectors() {
        assert_eq!(compare("5.2b1", "5.3.1"), Less);
        assert_eq!(compare("5.3.1", "5.4"), Less);
        assert_eq!(compare("1.26.15", "1.26.17"), Less);
        assert_eq!(compare("2022.12.7", "2023.7.22"), Less);
        assert_eq!(compare("2022.12.7", "2022.12.07"), Equal);
        assert_eq!(compare("1!0.1", "2.0"), Greater);
        assert_eq!(compare("0", "0.0.1"), Less);
        assert_eq!(compare("not a version", "0"), Less);
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "abc", "1.0+", "1.0+a..b", "1..0", "1.0 beta"] {
            assert!(parse(s).is_none(), "{s}");
        }
    }

    proptest! {
        #[test]
        fn total_order(a in any_version("([0-9]!)?[0-9](\\.[0-9]){0,2}((a|b|rc)[0-9])?(\\.post[0-9])?(\\.dev[0-9])?(\\+[a-z0-9]{1,2})?"),
                       b in any_version("([0-9]!)?[0-9](\\.[0-9]){0,2}((a|b|rc)[0-9])?(\\.post[0-9])?(\\.dev[0-9])?(\\+[a-z0-9]{1,2})?"),
                       c in any_version("([0-9]!)?[0-9](\\.[0-9]){0,2}((a|b|rc)[0-9])?(\\.post[0-9])?(\\.dev[0-9])?(\\+[a-z0-9]{1,2})?")) {
            check_order(compare, &a, &b, &c);
        }
        #[test]
        fn never_panics(s in ".{0,16}") {
            let _ = compare(&s, "1.0");
        }
    }
}

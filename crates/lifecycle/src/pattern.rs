//! Tag matching for `tagPrefixList` and `tagPatternList`.
//!
//! ECR User Guide, "Lifecycle policy evaluation rules" (LifecyclePolicies):
//! - "When using `tagPatternList`, an image is successfully matched if it matches the
//!   wildcard filter. For example, if a filter of `prod*` is applied, it would match
//!   image-tags whose name begins with `prod` such as `prod`, `prod1`, or
//!   `production-team1`. Similarly, if a filter of `*prod*` is applied, it would match
//!   image-tags whose name contains `prod`." — so `*` matches any run of characters,
//!   including the empty one, and a pattern without `*` must equal the whole tag.
//! - "There is a maximum limit of four wildcards (`*`) per string." (also in
//!   lifecycle_policy_parameters, "Tag pattern list").
//! - "An image is successfully matched if all of the tags in the `tagPatternList` or
//!   `tagPrefixList` value are matched against any of the image's tags." — every entry of
//!   the list must be matched by at least one of the image's tags (AND across the list,
//!   ANY across the image's tags; lifecycle_policy_examples, "Filtering on multiple tags in
//!   a single rule", Example A: `["alpha*", "beta*"]` selects only images carrying both an
//!   `alpha…` and a `beta…` tag).

use crate::error::Violation;

/// Most `*` wildcards ECR accepts in one `tagPatternList` entry.
pub const MAX_WILDCARDS_PER_PATTERN: usize = 4;

/// One `tagPatternList` entry: a glob where `*` matches any (possibly empty) run of
/// characters and every other character matches itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPattern {
    text: String,
    /// `text` split at each `*`: `"a*b*"` → `["a", "b", ""]`.
    segments: Vec<String>,
}

impl TagPattern {
    /// Parses a pattern, refusing more than [`MAX_WILDCARDS_PER_PATTERN`] wildcards.
    /// `at` is the JSON pointer reported in the error.
    pub fn new(text: &str, at: &str) -> Result<Self, Violation> {
        let wildcards = text.matches('*').count();
        if wildcards > MAX_WILDCARDS_PER_PATTERN {
            return Err(Violation::TooManyWildcards {
                at: at.to_owned(),
                pattern: text.to_owned(),
                wildcards,
            });
        }
        Ok(Self {
            text: text.to_owned(),
            segments: text.split('*').map(str::to_owned).collect(),
        })
    }

    /// The pattern as written in the policy.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `tag` matches the whole pattern.
    pub fn matches(&self, tag: &str) -> bool {
        let (first, rest) = match self.segments.split_first() {
            Some(split) => split,
            None => return tag.is_empty(),
        };
        let (last, middle) = match rest.split_last() {
            Some(split) => split,
            // No wildcard: exact match.
            None => return tag == first,
        };
        if tag.len() < first.len() + last.len() || !tag.starts_with(first.as_str()) {
            return false;
        }
        if !tag.ends_with(last.as_str()) {
            return false;
        }
        // Both boundaries are char boundaries: starts_with/ends_with matched whole strings
        // there, and the length check keeps them from crossing.
        let Some(mut window) = tag.get(first.len()..tag.len() - last.len()) else {
            return false;
        };
        // With only `*` wildcards, taking each middle segment at its leftmost occurrence
        // never loses a match, so a single left-to-right scan decides it.
        for segment in middle {
            if segment.is_empty() {
                continue;
            }
            match window.find(segment.as_str()) {
                Some(pos) => window = &window[pos + segment.len()..],
                None => return false,
            }
        }
        true
    }
}

/// `tagPrefixList` semantics: every prefix is the start of at least one tag.
pub(crate) fn all_prefixes_match(prefixes: &[String], tags: &[String]) -> bool {
    prefixes
        .iter()
        .all(|p| tags.iter().any(|t| t.starts_with(p.as_str())))
}

/// `tagPatternList` semantics: every pattern matches at least one tag.
pub(crate) fn all_patterns_match(patterns: &[TagPattern], tags: &[String]) -> bool {
    patterns.iter().all(|p| tags.iter().any(|t| p.matches(t)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pat(s: &str) -> TagPattern {
        match TagPattern::new(s, "/") {
            Ok(p) => p,
            Err(e) => panic!("pattern {s:?} refused: {e}"),
        }
    }

    #[test]
    fn guide_examples_for_wildcards() {
        // LifecyclePolicies: `prod*` matches prod, prod1, production-team1.
        for tag in ["prod", "prod1", "production-team1"] {
            assert!(pat("prod*").matches(tag), "{tag}");
        }
        assert!(!pat("prod*").matches("repo-production"));
        // `*prod*` matches tags containing prod.
        for tag in ["repo-production", "prod-team", "prod"] {
            assert!(pat("*prod*").matches(tag), "{tag}");
        }
        assert!(!pat("*prod*").matches("pro-d"));
    }

    #[test]
    fn without_wildcard_is_exact() {
        assert!(pat("latest").matches("latest"));
        assert!(!pat("latest").matches("latest1"));
        assert!(!pat("latest").matches("xlatest"));
        assert!(!pat("").matches("x"));
    }

    #[test]
    fn wildcard_limit_is_four() {
        // lifecycle_policy_parameters: ["*test*1*2*3", "test*1*2*3*"] valid,
        // ["test*1*2*3*4*5*6"] invalid.
        assert!(TagPattern::new("*test*1*2*3", "/").is_ok());
        assert!(TagPattern::new("test*1*2*3*", "/").is_ok());
        let err = TagPattern::new("test*1*2*3*4*5*6", "/rules/0/selection/tagPatternList/0");
        assert_eq!(
            err,
            Err(Violation::TooManyWildcards {
                at: "/rules/0/selection/tagPatternList/0".into(),
                pattern: "test*1*2*3*4*5*6".into(),
                wildcards: 6,
            })
        );
    }

    #[test]
    fn prefix_and_suffix_must_not_overlap() {
        assert!(!pat("ab*ba").matches("aba"));
        assert!(pat("ab*ba").matches("abba"));
        assert!(pat("a*a").matches("aa"));
        assert!(!pat("a*a").matches("a"));
    }

    #[test]
    fn multibyte_tags_do_not_panic() {
        assert!(!pat("é*").matches("e"));
        assert!(pat("*é").matches("café"));
        assert!(!pat("a*é*b").matches("aéé"));
        assert!(pat("a*é*b").matches("axébb"));
    }

    #[test]
    fn list_semantics_are_all_of_list_any_of_tags() {
        let tags = vec!["alpha-2".to_owned(), "beta-2".to_owned()];
        assert!(all_prefixes_match(&["alpha".into(), "beta".into()], &tags));
        assert!(!all_prefixes_match(
            &["alpha".into(), "gamma".into()],
            &tags
        ));
        assert!(all_patterns_match(&[pat("alpha*"), pat("*-2")], &tags));
        assert!(!all_patterns_match(&[pat("alpha*"), pat("gamma*")], &tags));
        assert!(!all_prefixes_match(&["alpha".into()], &[]));
    }

    /// Reference glob matcher: plain recursion, obviously correct, exponential.
    fn naive(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| naive(rest, &t[i..])),
            Some((c, rest)) => t.first() == Some(c) && naive(rest, &t[1..]),
        }
    }

    proptest! {
        #[test]
        fn matches_agrees_with_reference(p in "[ab*]{0,8}", t in "[ab]{0,10}") {
            prop_assume!(p.matches('*').count() <= MAX_WILDCARDS_PER_PATTERN);
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            prop_assert_eq!(pat(&p).matches(&t), naive(&pc, &tc));
        }

        #[test]
        fn never_panics_on_any_input(p in "\\PC{0,12}", t in "\\PC{0,12}") {
            if let Ok(pattern) = TagPattern::new(&p, "/") {
                let _ = pattern.matches(&t);
            }
        }
    }
}

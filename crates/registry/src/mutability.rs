//! Tag immutability (ECR `imageTagMutability`): MUTABLE, IMMUTABLE, and the
//! `*_WITH_EXCLUSION` modes whose wildcard filters name the tags that behave the
//! other way (ECR API `ImageTagMutabilityExclusionFilter`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagMutability {
    Mutable,
    Immutable,
    ImmutableWithExclusion,
    MutableWithExclusion,
}

impl TagMutability {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "MUTABLE" => TagMutability::Mutable,
            "IMMUTABLE" => TagMutability::Immutable,
            "IMMUTABLE_WITH_EXCLUSION" => TagMutability::ImmutableWithExclusion,
            "MUTABLE_WITH_EXCLUSION" => TagMutability::MutableWithExclusion,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TagMutability::Mutable => "MUTABLE",
            TagMutability::Immutable => "IMMUTABLE",
            TagMutability::ImmutableWithExclusion => "IMMUTABLE_WITH_EXCLUSION",
            TagMutability::MutableWithExclusion => "MUTABLE_WITH_EXCLUSION",
        }
    }

    pub fn has_exclusions(self) -> bool {
        matches!(
            self,
            TagMutability::ImmutableWithExclusion | TagMutability::MutableWithExclusion
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExclusionFilter {
    #[serde(rename = "filterType")]
    pub filter_type: String,
    pub filter: String,
}

/// `*` matches any run of characters; everything else matches itself.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// Whether pushing `tag` may not move it once it exists.
pub fn tag_is_immutable(mode: TagMutability, exclusions: &[ExclusionFilter], tag: &str) -> bool {
    let excluded = || exclusions.iter().any(|f| wildcard_match(&f.filter, tag));
    match mode {
        TagMutability::Mutable => false,
        TagMutability::Immutable => true,
        TagMutability::ImmutableWithExclusion => !excluded(),
        TagMutability::MutableWithExclusion => excluded(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("latest", "latest"));
        assert!(!wildcard_match("latest", "latest2"));
        assert!(wildcard_match("dev-*", "dev-1"));
        assert!(wildcard_match("*-rc*", "v1-rc2"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("a*b", "ac"));
    }

    #[test]
    fn modes() {
        let ex = vec![ExclusionFilter {
            filter_type: "WILDCARD".into(),
            filter: "latest".into(),
        }];
        assert!(!tag_is_immutable(TagMutability::Mutable, &ex, "latest"));
        assert!(tag_is_immutable(TagMutability::Immutable, &ex, "latest"));
        assert!(!tag_is_immutable(
            TagMutability::ImmutableWithExclusion,
            &ex,
            "latest"
        ));
        assert!(tag_is_immutable(
            TagMutability::ImmutableWithExclusion,
            &ex,
            "v1"
        ));
        assert!(tag_is_immutable(
            TagMutability::MutableWithExclusion,
            &ex,
            "latest"
        ));
        assert!(!tag_is_immutable(
            TagMutability::MutableWithExclusion,
            &ex,
            "v1"
        ));
    }
}

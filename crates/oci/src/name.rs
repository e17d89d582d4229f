//! Repository names and tags.
//!
//! Names follow ECR's grammar (botocore ECR model, `RepositoryName`):
//! `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`,
//! 2–256 characters (the same component grammar as OCI Distribution).
//! Tags follow OCI Distribution's `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.

use std::fmt;

use crate::digest::Digest;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("invalid repository name")]
    InvalidName,
    #[error("invalid tag")]
    InvalidTag,
    #[error("invalid reference")]
    InvalidReference,
}

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run between two alphanumeric runs.
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

impl RepositoryName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.len() < 2 || s.len() > 256 || !s.split('/').all(valid_component) {
            return Err(NameError::InvalidName);
        }
        Ok(RepositoryName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepositoryName({})", self.0)
    }
}

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageTag(String);

impl ImageTag {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b[1..]
                .iter()
                .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'));
        if ok {
            Ok(ImageTag(s.to_string()))
        } else {
            Err(NameError::InvalidTag)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ImageTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageTag({})", self.0)
    }
}

/// A manifest reference: a tag or a digest.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Reference {
    Tag(ImageTag),
    Digest(Digest),
}

impl Reference {
    /// A reference containing `:` is a digest, anything else a tag.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.contains(':') {
            Digest::parse(s)
                .map(Reference::Digest)
                .map_err(|_| NameError::InvalidReference)
        } else {
            ImageTag::parse(s).map(Reference::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        for ok in [
            "ab",
            "my-web-app-repo",
            "team/app",
            "a/b/c",
            "a.b_c-d/e",
            "x1/y2",
            "a__b",
            "a---b",
        ] {
            assert!(RepositoryName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "A/b", "-ab", "ab-", "a//b", "/ab", "ab/", "a___b", "a..b", "a_-b", "a b",
            "ab:c", "äb",
        ] {
            assert!(RepositoryName::parse(bad).is_err(), "{bad}");
        }
        assert!(RepositoryName::parse(&"a".repeat(256)).is_ok());
        assert!(RepositoryName::parse(&"a".repeat(257)).is_err());
    }

    #[test]
    fn tags() {
        for ok in ["latest", "v1.0", "_x", "A-b.c_d", &"a".repeat(128)] {
            assert!(ImageTag::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".a", "-a", "a/b", "a:b", &"a".repeat(129)] {
            assert!(ImageTag::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn references() {
        assert!(matches!(Reference::parse("v1"), Ok(Reference::Tag(_))));
        let d = Digest::sha256_of(b"x");
        assert!(matches!(
            Reference::parse(d.as_str()),
            Ok(Reference::Digest(_))
        ));
        assert!(Reference::parse("sha256:zz").is_err());
    }
}

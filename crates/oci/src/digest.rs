//! Content digests (OCI Image Spec `descriptor.md`, "Digests"): `sha256:<64 hex>` and
//! `sha512:<128 hex>`, lowercase hex only.

use std::fmt;
use std::str::FromStr;

use crate::sha256_state::Sha256State;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    fn ring(self) -> &'static ring::digest::Algorithm {
        match self {
            Algorithm::Sha256 => &ring::digest::SHA256,
            Algorithm::Sha512 => &ring::digest::SHA512,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
    #[error("invalid digest format")]
    Invalid,
}

/// A validated digest. Stored as its canonical string form so it can be used as a key
/// and written out without allocation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    text: String,
    algorithm: Algorithm,
}

impl Digest {
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let (alg, hex) = s.split_once(':').ok_or(DigestError::Invalid)?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            // The grammar allows other registered and unregistered algorithms; we
            // cannot verify them, so they are refused as unsupported.
            a if !a.is_empty()
                && a.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b)
                }) =>
            {
                return Err(DigestError::UnsupportedAlgorithm)
            }
            _ => return Err(DigestError::Invalid),
        };
        if hex.len() != algorithm.hex_len()
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::Invalid);
        }
        Ok(Digest {
            text: s.to_string(),
            algorithm,
        })
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(bytes);
        h.finish()
    }

    /// The digest of `bytes` with this digest's algorithm.
    pub fn verify(&self, bytes: &[u8]) -> bool {
        let mut h = Hasher::new(self.algorithm);
        h.update(bytes);
        h.finish() == *self
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The hex part after `algorithm:`.
    pub fn hex(&self) -> &str {
        &self.text[self.algorithm.as_str().len() + 1..]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.text)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Incremental hasher. Cloneable, so an upload can snapshot its state; a SHA-256
/// state can also be saved as text and resumed elsewhere ([`Hasher::export_state`],
/// [`Hasher::resume`]).
#[derive(Clone)]
pub struct Hasher {
    ctx: Ctx,
    algorithm: Algorithm,
}

#[derive(Clone)]
enum Ctx {
    Sha256(Sha256State),
    Ring(ring::digest::Context),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        let ctx = match algorithm {
            Algorithm::Sha256 => Ctx::Sha256(Sha256State::new()),
            Algorithm::Sha512 => Ctx::Ring(ring::digest::Context::new(algorithm.ring())),
        };
        Hasher { ctx, algorithm }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.ctx {
            Ctx::Sha256(s) => s.update(bytes),
            Ctx::Ring(c) => c.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        let hex = match self.ctx {
            Ctx::Sha256(s) => hex::encode(s.finish()),
            Ctx::Ring(c) => hex::encode(c.finish().as_ref()),
        };
        Digest {
            text: format!("{}:{}", self.algorithm.as_str(), hex),
            algorithm: self.algorithm,
        }
    }

    /// The state as text, for [`Hasher::resume`] in another process (SHA-256
    /// only; None for SHA-512).
    pub fn export_state(&self) -> Option<String> {
        match &self.ctx {
            Ctx::Sha256(s) => Some(s.export()),
            Ctx::Ring(_) => None,
        }
    }

    /// A hasher resumed from [`Hasher::export_state`]'s text, and how many bytes
    /// it has hashed; None when the text is not a state.
    pub fn resume(state: &str) -> Option<(Hasher, u64)> {
        let s = Sha256State::import(state)?;
        let len = s.len();
        Some((
            Hasher {
                ctx: Ctx::Sha256(s),
                algorithm: Algorithm::Sha256,
            },
            len,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let d = Digest::sha256_of(b"");
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
        assert_eq!(d.hex().len(), 64);
        assert_eq!(Digest::parse("sha256:abc"), Err(DigestError::Invalid));
        assert_eq!(
            Digest::parse(&d.as_str().to_uppercase()),
            Err(DigestError::Invalid)
        );
        assert_eq!(
            Digest::parse("md5:d41d8cd98f00b204e9800998ecf8427e"),
            Err(DigestError::UnsupportedAlgorithm)
        );
        assert_eq!(Digest::parse("nocolon"), Err(DigestError::Invalid));
        assert_eq!(Digest::parse(":abc"), Err(DigestError::Invalid));
        let mut h = Hasher::new(Algorithm::Sha512);
        h.update(b"abc");
        let d5 = h.finish();
        assert!(d5.as_str().starts_with("sha512:ddaf35a1"));
        assert!(Digest::parse(d5.as_str()).is_ok());
        assert!(d5.verify(b"abc"));
        assert!(!d5.verify(b"abd"));
    }
}

//! The master keyring: every key berth derives from the master key, for the key in
//! use and — during a rotation — the other one (`docs/architecture.md`, "Master-key
//! rotation").
//!
//! Each value sealed under a master-derived key names the key that sealed it: values
//! sealed with the master key itself (access keys, webhook and Secrets Manager
//! secrets) and under the registry wrap and KMS-material keys start with
//! `BK1:` and the key's 8-byte id; values sealed for an AES256 repository carry the
//! id's first four bytes in their version field. Values written before ids were
//! recorded name none and are opened by trying each key of the ring (AES-GCM
//! authenticates, so a wrong key fails). A rotation re-seals every value that does
//! not name the new key (`crates/registry/src/rotation.rs`).

use std::sync::{Arc, RwLock};

use crate::secrets::{MasterKey, SecretError};

/// Prefix of a sealed value that names its key.
const TAG: &[u8; 4] = b"BK1:";
const HEADER: usize = TAG.len() + 8;

fn derive(master: &[u8; 32], purpose: &str) -> [u8; 32] {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, master);
    let tag = ring::hmac::sign(&k, purpose.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// A master key's public id: 8 bytes of a MAC under it (reveals nothing of it).
pub fn key_id(raw: &[u8; 32]) -> [u8; 8] {
    let d = derive(raw, "berth master key id v1");
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    id
}

/// One master key and the keys derived from it.
pub struct Generation {
    pub(crate) id: [u8; 8],
    pub(crate) raw: [u8; 32],
    pub(crate) master: MasterKey,
    /// Wraps data keys in upload and blob rows.
    pub(crate) registry_wrap: [u8; 32],
    /// The AES256 repositories' key.
    pub(crate) aes256: [u8; 32],
    /// Seals KMS key material.
    pub(crate) kms_seal: [u8; 32],
    /// MACs registry tokens.
    pub(crate) token_key: [u8; 32],
}

impl Generation {
    pub fn new(raw: [u8; 32]) -> Generation {
        Generation {
            id: key_id(&raw),
            raw,
            master: MasterKey::new(raw),
            registry_wrap: derive(&raw, "berth data-key wrap v1"),
            aes256: derive(&raw, "berth aes256 repository key v1"),
            kms_seal: derive(&raw, "berth kms key material v1"),
            token_key: derive(&raw, "berth registry token key v1"),
        }
    }

    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    /// The version field of values sealed for AES256 repositories under this key.
    pub(crate) fn repo_tag(&self) -> u32 {
        u32::from_be_bytes([self.id[0], self.id[1], self.id[2], self.id[3]])
    }
}

/// The keys in use: the one that seals, and others that still open.
#[derive(Clone)]
pub struct RingKeys {
    pub primary: Arc<Generation>,
    pub others: Vec<Arc<Generation>>,
    /// A retired key kept only to verify the registry tokens it minted until the
    /// longest of them has expired (`crate::rotation`, "token grace"); it opens
    /// and seals nothing.
    pub token_only: Vec<Arc<Generation>>,
}

impl RingKeys {
    /// The primary first.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Generation>> {
        std::iter::once(&self.primary).chain(self.others.iter())
    }
}

pub struct MasterRing {
    configured: Arc<Generation>,
    keys: RwLock<RingKeys>,
    rng: ring::rand::SystemRandom,
}

/// `TAG || id || rest`.
fn with_header(id: &[u8; 8], rest: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + rest.len());
    out.extend_from_slice(TAG);
    out.extend_from_slice(id);
    out.extend_from_slice(&rest);
    out
}

/// The id a sealed value names, and the sealed bytes after the header.
fn split_header(sealed: &[u8]) -> Option<([u8; 8], &[u8])> {
    if sealed.len() >= HEADER && &sealed[..TAG.len()] == TAG {
        let mut id = [0u8; 8];
        id.copy_from_slice(&sealed[TAG.len()..HEADER]);
        Some((id, &sealed[HEADER..]))
    } else {
        None
    }
}

impl MasterRing {
    /// A ring of the configured key alone (a rotation in progress adds the other
    /// key when the shared state is applied, `rotation.rs`).
    pub fn new(raw: [u8; 32]) -> MasterRing {
        let g = Arc::new(Generation::new(raw));
        MasterRing {
            keys: RwLock::new(RingKeys {
                primary: g.clone(),
                others: Vec::new(),
                token_only: Vec::new(),
            }),
            configured: g,
            rng: ring::rand::SystemRandom::new(),
        }
    }

    /// The key this process was started with.
    pub fn configured(&self) -> &Arc<Generation> {
        &self.configured
    }

    pub fn keys(&self) -> RingKeys {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set_keys(&self, k: RingKeys) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = k;
    }

    pub fn primary(&self) -> Arc<Generation> {
        self.keys().primary
    }

    /// Fresh random bytes.
    pub fn random(&self, out: &mut [u8]) -> Result<(), SecretError> {
        ring::rand::SecureRandom::fill(&self.rng, out).map_err(|_| SecretError::Rng)
    }

    /// Seals `plain` bound to `context` with the primary master key.
    pub fn seal(&self, context: &str, plain: &[u8]) -> Result<Vec<u8>, SecretError> {
        let p = self.primary();
        Ok(with_header(&p.id, p.master.seal(context, plain)?))
    }

    /// Opens a value sealed by [`Self::seal`] (or, without a header, by any key of
    /// the ring before ids were recorded).
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        self.open_with(sealed, |g, body| g.master.open(context, body).ok())
            .ok_or(SecretError::Open)
    }

    /// Seals with a derived key of the primary (`pick` chooses which), naming it.
    pub(crate) fn seal_derived<E>(
        &self,
        pick: fn(&Generation) -> &[u8; 32],
        seal: impl FnOnce(&[u8; 32]) -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, E> {
        let p = self.primary();
        Ok(with_header(&p.id, seal(pick(&p))?))
    }

    /// Opens a value: by the key its header names, else (no header, or a header
    /// that happened to be the start of an old value) by trying every key.
    pub(crate) fn open_with<T>(
        &self,
        sealed: &[u8],
        f: impl Fn(&Generation, &[u8]) -> Option<T>,
    ) -> Option<T> {
        let keys = self.keys();
        if let Some((id, body)) = split_header(sealed) {
            if let Some(g) = keys.all().find(|g| g.id == id) {
                if let Some(v) = f(g, body) {
                    return Some(v);
                }
            }
        }
        let found = keys.all().find_map(|g| f(g, sealed));
        found
    }

    /// Whether `sealed` names the primary key.
    pub fn sealed_by_primary(&self, sealed: &[u8]) -> bool {
        split_header(sealed).is_some_and(|(id, _)| id == self.primary().id)
    }

    /// The registry-token keys: the primary first (minting), all (verifying).
    pub fn token_keys(&self) -> Vec<[u8; 32]> {
        let keys = self.keys();
        keys.all()
            .chain(keys.token_only.iter())
            .map(|g| g.token_key)
            .collect()
    }

    /// A purpose key of the primary, and of every key (for verifying MACs made by
    /// a node that had switched keys first).
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        derive(&self.primary().raw, purpose)
    }

    pub fn derive_all(&self, purpose: &str) -> Vec<[u8; 32]> {
        self.keys().all().map(|g| derive(&g.raw, purpose)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_name_their_key_and_open_under_either_during_a_rotation() {
        let ring = MasterRing::new([1u8; 32]);
        let old = ring.seal("ctx", b"secret").unwrap();
        assert!(ring.sealed_by_primary(&old));
        // A value from before ids were recorded.
        let legacy = MasterKey::new([1u8; 32]).seal("ctx", b"legacy").unwrap();
        assert!(!ring.sealed_by_primary(&legacy));
        assert_eq!(ring.open("ctx", &legacy).unwrap(), b"legacy");

        let new = Arc::new(Generation::new([2u8; 32]));
        ring.set_keys(RingKeys {
            primary: new.clone(),
            others: vec![ring.configured().clone()],
            token_only: Vec::new(),
        });
        assert!(!ring.sealed_by_primary(&old));
        assert_eq!(ring.open("ctx", &old).unwrap(), b"secret");
        let again = ring.seal("ctx", b"secret").unwrap();
        assert!(ring.sealed_by_primary(&again));
        assert!(ring.open("other", &again).is_err());

        // The old key retired: what it sealed no longer opens.
        ring.set_keys(RingKeys {
            primary: new,
            others: vec![],
            token_only: Vec::new(),
        });
        assert_eq!(ring.open("ctx", &again).unwrap(), b"secret");
        assert!(ring.open("ctx", &old).is_err());
        assert!(ring.open("ctx", &legacy).is_err());
        assert_ne!(key_id(&[1u8; 32]), key_id(&[2u8; 32]));
    }
}

//! Sealing of stored secrets with the registry master key (AES-256-GCM), and the keys
//! derived from it (the data-plane token MAC key).
//!
//! The master key never leaves memory; sealed values are `nonce || ciphertext+tag`.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

pub struct MasterKey {
    key: LessSafeKey,
    raw: [u8; 32],
    rng: SystemRandom,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("sealed secret is corrupt or was sealed with another master key")]
    Open,
    #[error("random number generator failed")]
    Rng,
}

impl MasterKey {
    pub fn new(raw: [u8; 32]) -> Self {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &raw).unwrap_or_else(|_| {
            // AES-256-GCM accepts every 32-byte key.
            unreachable!("32-byte AES key")
        }));
        MasterKey {
            key,
            raw,
            rng: SystemRandom::new(),
        }
    }

    /// Fresh random bytes.
    pub fn random(&self, out: &mut [u8]) -> Result<(), SecretError> {
        self.rng.fill(out).map_err(|_| SecretError::Rng)
    }

    /// Seals `plain` bound to `context` (e.g. the access key id), so a sealed value
    /// cannot be moved to another row.
    pub fn seal(&self, context: &str, plain: &[u8]) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random(&mut nonce)?;
        let mut buf = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SecretError::Open)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SecretError::Open);
        }
        let (n, c) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(n).map_err(|_| SecretError::Open)?;
        let mut buf = c.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| SecretError::Open)?;
        Ok(plain.to_vec())
    }

    /// A sub-key for one purpose, so the master key itself is used only for sealing.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.raw);
        let tag = ring::hmac::sign(&k, purpose.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open() {
        let k = MasterKey::new([7u8; 32]);
        let s = k.seal("AKID", b"secret").unwrap();
        assert_eq!(k.open("AKID", &s).unwrap(), b"secret");
        assert!(k.open("OTHER", &s).is_err());
        let mut t = s.clone();
        let last = t.len() - 1;
        t[last] ^= 1;
        assert!(k.open("AKID", &t).is_err());
        assert!(MasterKey::new([8u8; 32]).open("AKID", &s).is_err());
        assert_ne!(k.derive("a"), k.derive("b"));
    }
}

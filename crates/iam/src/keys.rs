//! Formats of IAM identifiers berth hands out: access key ids (`AKIA…`), secret
//! access keys, and unique ids of users (`AIDA…`). Randomness is the caller's
//! (this crate does no I/O): pass bytes from a CSPRNG such as
//! `ring::rand::SystemRandom`.
//!
//! IAM User Guide, "IAM identifiers" (unique-id prefixes) and the IAM API
//! reference `AccessKey` shape (`AccessKeyId`: 16–128 word characters; secrets
//! are 40 characters).

use base64::Engine as _;

/// RFC 4648 base32 alphabet, as AWS ids use (uppercase letters and 2–7).
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

/// A long-term access key id: `AKIA` + 16 base32 characters (20 in all, like AWS).
pub fn access_key_id(random: &[u8; 10]) -> String {
    format!("AKIA{}", base32(random))
}

/// A user's unique id: `AIDA` + 17 base32 characters (21 in all, like AWS).
pub fn user_id(random: &[u8; 11]) -> String {
    let mut id = base32(random);
    id.truncate(17);
    format!("AIDA{id}")
}

/// A secret access key: 40 characters of standard base64 (30 random bytes).
pub fn secret_access_key(random: &[u8; 30]) -> String {
    base64::engine::general_purpose::STANDARD.encode(random)
}

/// Whether `s` can be an access key id (AWS: 16–128 characters of `[A-Za-z0-9_]`).
/// Checked before a key is looked up, so junk never reaches the store.
pub fn is_access_key_id(s: &str) -> bool {
    (16..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(access_key_id(&[0; 10]), "AKIAAAAAAAAAAAAAAAAA");
        assert_eq!(access_key_id(&[0xff; 10]), "AKIA7777777777777777");
        assert_eq!(access_key_id(&[1; 10]).len(), 20);
        assert_eq!(user_id(&[0x42; 11]).len(), 21);
        assert!(user_id(&[7; 11]).starts_with("AIDA"));
        let s = secret_access_key(&[0xAB; 30]);
        assert_eq!(s.len(), 40);
        assert!(!s.contains('='));
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }

    #[test]
    fn access_key_id_syntax() {
        assert!(is_access_key_id("AKIAIOSFODNN7EXAMPLE"));
        assert!(is_access_key_id(&access_key_id(&[9; 10])));
        assert!(!is_access_key_id("AKIA"));
        assert!(!is_access_key_id("AKIAIOSFODNN7EXAMPL/"));
        assert!(!is_access_key_id("AKIAIOSFODNN7EXAMPLE "));
        assert!(!is_access_key_id(&"A".repeat(129)));
    }
}

//! Self-verifying registry auth tokens: what `GetAuthorizationToken` hands out
//! and what `/v2/` accepts as the Basic-auth password of user `AWS`.
//!
//! A token is `base64url-nopad(payload ‖ HMAC-SHA256(key, domain ‖ payload))`
//! where the payload is
//!
//! ```text
//! u8 version (1) | i64 issued_at | i64 expires_at | 12 ASCII digits account | u16 len | principal (UTF-8)
//! ```
//!
//! big-endian. Any node holding the key verifies it without shared state (design
//! rule 5); several keys may be accepted at once so the key can be rotated. The
//! URL-safe alphabet has no `:`, which matters because the AWS CLI and Terraform
//! split the decoded `AWS:<token>` on every `:` (ECR API reference,
//! `AuthorizationData`; awscli `customizations/ecr.py`).

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use ring::hmac;
use thiserror::Error;

use crate::arn::AccountId;

/// ECR tokens are valid for 12 hours.
pub const DEFAULT_TOKEN_TTL_SECS: i64 = 12 * 3600;
/// Tolerated clock difference between the node that minted and the one verifying.
pub const ISSUE_SKEW_SECS: i64 = 5 * 60;
/// The Basic-auth user name registry clients send.
pub const REGISTRY_USER: &str = "AWS";

const VERSION: u8 = 1;
const DOMAIN: &[u8] = b"berth registry token v1\0";
const MAC_LEN: usize = 32;
const HEADER_LEN: usize = 1 + 8 + 8 + 12 + 2;
const MAX_PRINCIPAL_LEN: usize = 2048;
/// Longest token text accepted before decoding (bounds work on hostile input).
const MAX_TOKEN_LEN: usize = 4096;

/// Standard base64, padding optional on input (what `docker login` sends is padded).
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What a token asserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// The registry (account) the token was issued for.
    pub account_id: AccountId,
    /// The caller's principal ARN (or another stable principal id).
    pub principal: String,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds; the token is refused from this instant on.
    pub expires_at: i64,
}

impl TokenClaims {
    /// Claims for `principal` of `account_id`, valid [`DEFAULT_TOKEN_TTL_SECS`] from `now`.
    pub fn new(account_id: AccountId, principal: impl Into<String>, now: i64) -> Self {
        TokenClaims {
            account_id,
            principal: principal.into(),
            issued_at: now,
            expires_at: now.saturating_add(DEFAULT_TOKEN_TTL_SECS),
        }
    }
}

/// Why a token or Basic credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    /// Not a token this module minted (bad encoding, length or version).
    #[error("malformed authorization token")]
    Malformed,
    /// The MAC matches none of the keys: forged, corrupted, or from a retired key.
    #[error("authorization token signature is invalid")]
    BadSignature,
    /// Past its expiry.
    #[error("authorization token expired at {expires_at}")]
    Expired {
        /// Unix seconds.
        expires_at: i64,
    },
    /// Issued in the future beyond the tolerated skew.
    #[error("authorization token is not valid yet")]
    NotYetValid,
    /// Claims that cannot be minted (empty or oversized principal, expiry not after issue).
    #[error("invalid token claims: {0}")]
    InvalidClaims(&'static str),
    /// No verification keys were configured.
    #[error("no token keys configured")]
    NoKeys,
    /// The `Authorization` header is not `Basic <base64(user:password)>`.
    #[error("malformed Basic authorization header")]
    BadBasicAuth,
    /// Basic auth with a user other than `AWS`.
    #[error("unexpected registry user name")]
    WrongUser,
}

fn mac_key(key: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, key)
}

fn mac_input(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(DOMAIN.len() + payload.len());
    v.extend_from_slice(DOMAIN);
    v.extend_from_slice(payload);
    v
}

/// Mints a token for `claims`, MACed with `key`.
pub fn mint(key: &[u8], claims: &TokenClaims) -> Result<String, TokenError> {
    if claims.principal.is_empty() {
        return Err(TokenError::InvalidClaims("principal is empty"));
    }
    if claims.principal.len() > MAX_PRINCIPAL_LEN {
        return Err(TokenError::InvalidClaims(
            "principal is longer than 2048 bytes",
        ));
    }
    if claims.expires_at <= claims.issued_at {
        return Err(TokenError::InvalidClaims(
            "expires_at is not after issued_at",
        ));
    }
    if key.is_empty() {
        return Err(TokenError::NoKeys);
    }
    let mut payload = Vec::with_capacity(HEADER_LEN + claims.principal.len() + MAC_LEN);
    payload.push(VERSION);
    payload.extend_from_slice(&claims.issued_at.to_be_bytes());
    payload.extend_from_slice(&claims.expires_at.to_be_bytes());
    payload.extend_from_slice(claims.account_id.as_str().as_bytes());
    // Bounded by MAX_PRINCIPAL_LEN above, so the cast cannot truncate.
    payload.extend_from_slice(&(claims.principal.len() as u16).to_be_bytes());
    payload.extend_from_slice(claims.principal.as_bytes());
    let tag = hmac::sign(&mac_key(key), &mac_input(&payload));
    payload.extend_from_slice(tag.as_ref());
    Ok(URL_SAFE_NO_PAD.encode(payload))
}

/// Verifies a token against any of `keys` (current key first, then retired
/// ones still accepted) at time `now`, returning its claims.
///
/// The MAC is checked, in constant time, before any claim is believed.
pub fn verify<K: AsRef<[u8]>>(
    keys: &[K],
    token: &str,
    now: i64,
) -> Result<TokenClaims, TokenError> {
    if keys.is_empty() {
        return Err(TokenError::NoKeys);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .map_err(|_| TokenError::Malformed)?;
    if raw.len() < HEADER_LEN + MAC_LEN {
        return Err(TokenError::Malformed);
    }
    let (payload, tag) = raw.split_at(raw.len() - MAC_LEN);
    let input = mac_input(payload);
    let authentic = keys
        .iter()
        .filter(|k| !k.as_ref().is_empty())
        .any(|k| hmac::verify(&mac_key(k.as_ref()), &input, tag).is_ok());
    if !authentic {
        return Err(TokenError::BadSignature);
    }
    let claims = decode_payload(payload)?;
    if claims.issued_at > now.saturating_add(ISSUE_SKEW_SECS) {
        return Err(TokenError::NotYetValid);
    }
    if now >= claims.expires_at {
        return Err(TokenError::Expired {
            expires_at: claims.expires_at,
        });
    }
    Ok(claims)
}

fn decode_payload(p: &[u8]) -> Result<TokenClaims, TokenError> {
    let m = || TokenError::Malformed;
    if p.first() != Some(&VERSION) {
        return Err(m());
    }
    let i64_at = |at: usize| -> Result<i64, TokenError> {
        let b: [u8; 8] = p
            .get(at..at + 8)
            .ok_or_else(m)?
            .try_into()
            .map_err(|_| m())?;
        Ok(i64::from_be_bytes(b))
    };
    let issued_at = i64_at(1)?;
    let expires_at = i64_at(9)?;
    let account = std::str::from_utf8(p.get(17..29).ok_or_else(m)?).map_err(|_| m())?;
    let account_id = AccountId::parse(account).map_err(|_| m())?;
    let len_bytes: [u8; 2] = p.get(29..31).ok_or_else(m)?.try_into().map_err(|_| m())?;
    let len = usize::from(u16::from_be_bytes(len_bytes));
    let principal_bytes = p.get(31..).ok_or_else(m)?;
    if principal_bytes.len() != len || len == 0 {
        return Err(m());
    }
    let principal = std::str::from_utf8(principal_bytes)
        .map_err(|_| m())?
        .to_owned();
    Ok(TokenClaims {
        account_id,
        principal,
        issued_at,
        expires_at,
    })
}

/// The `authorizationToken` field of ECR `AuthorizationData`: standard base64 of
/// `AWS:<token>`.
pub fn authorization_token(token: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{REGISTRY_USER}:{token}"))
}

/// Splits a Basic `Authorization` header value into `(user, password)`
/// (RFC 7617; scheme name case-insensitive, password may contain `:`).
pub fn parse_basic_auth(header_value: &str) -> Result<(String, String), TokenError> {
    let v = header_value.trim();
    let (scheme, rest) = v.split_once(' ').ok_or(TokenError::BadBasicAuth)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(TokenError::BadBasicAuth);
    }
    let rest = rest.trim();
    if rest.is_empty() || rest.len() > MAX_TOKEN_LEN * 2 {
        return Err(TokenError::BadBasicAuth);
    }
    let decoded = STANDARD_LENIENT
        .decode(rest.as_bytes())
        .map_err(|_| TokenError::BadBasicAuth)?;
    let text = String::from_utf8(decoded).map_err(|_| TokenError::BadBasicAuth)?;
    let (user, password) = text.split_once(':').ok_or(TokenError::BadBasicAuth)?;
    Ok((user.to_owned(), password.to_owned()))
}

/// Checks a `/v2/` request's `Authorization` header: Basic, user `AWS`, and a
/// password that [`verify`]s.
pub fn verify_basic<K: AsRef<[u8]>>(
    keys: &[K],
    header_value: &str,
    now: i64,
) -> Result<TokenClaims, TokenError> {
    let (user, password) = parse_basic_auth(header_value)?;
    if user != REGISTRY_USER {
        return Err(TokenError::WrongUser);
    }
    verify(keys, &password, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const OLD_KEY: &[u8] = b"an older key that is being retired";
    const NOW: i64 = 1_795_704_300;

    fn claims() -> TokenClaims {
        TokenClaims::new(
            AccountId::parse("123456789012").unwrap(),
            "arn:aws:iam::123456789012:user/ci/pusher",
            NOW,
        )
    }

    #[test]
    fn mint_and_verify() {
        let t = mint(KEY, &claims()).unwrap();
        assert_eq!(verify(&[KEY], &t, NOW), Ok(claims()));
        assert_eq!(
            verify(&[KEY], &t, NOW + DEFAULT_TOKEN_TTL_SECS - 1),
            Ok(claims())
        );
        assert_eq!(claims().expires_at - claims().issued_at, 12 * 3600);
    }

    #[test]
    fn token_alphabet_has_no_colon_or_padding() {
        let mut c = claims();
        for len in 1..200 {
            c.principal = "x".repeat(len);
            let t = mint(KEY, &c).unwrap();
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{t}"
            );
        }
    }

    #[test]
    fn expiry_and_future_issue() {
        let t = mint(KEY, &claims()).unwrap();
        let exp = NOW + DEFAULT_TOKEN_TTL_SECS;
        assert_eq!(
            verify(&[KEY], &t, exp),
            Err(TokenError::Expired { expires_at: exp })
        );
        assert_eq!(verify(&[KEY], &t, NOW - ISSUE_SKEW_SECS), Ok(claims()));
        assert_eq!(
            verify(&[KEY], &t, NOW - ISSUE_SKEW_SECS - 1),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn key_rotation() {
        let old = mint(OLD_KEY, &claims()).unwrap();
        let new = mint(KEY, &claims()).unwrap();
        assert_eq!(verify(&[KEY, OLD_KEY], &old, NOW), Ok(claims()));
        assert_eq!(verify(&[KEY, OLD_KEY], &new, NOW), Ok(claims()));
        assert_eq!(verify(&[KEY], &old, NOW), Err(TokenError::BadSignature));
        let none: [&[u8]; 0] = [];
        assert_eq!(verify(&none, &new, NOW), Err(TokenError::NoKeys));
        assert_eq!(
            verify(&[b"".as_slice()], &new, NOW),
            Err(TokenError::BadSignature)
        );
        assert_eq!(mint(b"", &claims()), Err(TokenError::NoKeys));
        // Owned keys work too.
        assert!(verify(&[KEY.to_vec()], &new, NOW).is_ok());
    }

    #[test]
    fn forged_tokens_are_refused() {
        let t = mint(KEY, &claims()).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        // Flip every bit of every byte in turn: never accepted.
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut r = raw.clone();
                r[i] ^= 1 << bit;
                let forged = URL_SAFE_NO_PAD.encode(&r);
                assert!(verify(&[KEY], &forged, NOW).is_err(), "byte {i} bit {bit}");
            }
        }
        // Re-signing changed claims needs the key.
        let mut other = claims();
        other.principal = "arn:aws:iam::123456789012:root".into();
        let forged = mint(b"guessed key", &other).unwrap();
        assert_eq!(verify(&[KEY], &forged, NOW), Err(TokenError::BadSignature));
        // Truncation and extension.
        assert!(verify(&[KEY], &t[..t.len() - 1], NOW).is_err());
        assert!(verify(&[KEY], &format!("{t}A"), NOW).is_err());
    }

    #[test]
    fn malformed_tokens() {
        for bad in ["", "AWS", "a:b", "====", "!!!!", "QUJD", &"A".repeat(5000)] {
            assert!(
                matches!(verify(&[KEY], bad, NOW), Err(TokenError::Malformed)),
                "{bad:?}"
            );
        }
        // Authentic MAC over a payload we would never mint is still malformed.
        let key = mac_key(KEY);
        for payload in [
            vec![2u8; HEADER_LEN + 1],
            {
                let mut p = vec![VERSION];
                p.extend_from_slice(&NOW.to_be_bytes());
                p.extend_from_slice(&(NOW + 1).to_be_bytes());
                p.extend_from_slice(b"12345678901x");
                p.extend_from_slice(&1u16.to_be_bytes());
                p.push(b'p');
                p
            },
            {
                let mut p = vec![VERSION];
                p.extend_from_slice(&NOW.to_be_bytes());
                p.extend_from_slice(&(NOW + 1).to_be_bytes());
                p.extend_from_slice(b"123456789012");
                p.extend_from_slice(&5u16.to_be_bytes());
                p.push(b'p');
                p
            },
            {
                let mut p = vec![VERSION];
                p.extend_from_slice(&NOW.to_be_bytes());
                p.extend_from_slice(&(NOW + 1).to_be_bytes());
                p.extend_from_slice(b"123456789012");
                p.extend_from_slice(&2u16.to_be_bytes());
                p.extend_from_slice(&[0xff, 0xfe]);
                p
            },
        ] {
            let mut raw = payload.clone();
            raw.extend_from_slice(hmac::sign(&key, &mac_input(&payload)).as_ref());
            let t = URL_SAFE_NO_PAD.encode(raw);
            assert_eq!(verify(&[KEY], &t, NOW), Err(TokenError::Malformed));
        }
    }

    #[test]
    fn invalid_claims_are_not_minted() {
        let mut c = claims();
        c.principal.clear();
        assert!(matches!(mint(KEY, &c), Err(TokenError::InvalidClaims(_))));
        c.principal = "p".repeat(MAX_PRINCIPAL_LEN + 1);
        assert!(matches!(mint(KEY, &c), Err(TokenError::InvalidClaims(_))));
        c.principal = "p".repeat(MAX_PRINCIPAL_LEN);
        assert!(verify(&[KEY], &mint(KEY, &c).unwrap(), NOW).is_ok());
        let mut c = claims();
        c.expires_at = c.issued_at;
        assert!(matches!(mint(KEY, &c), Err(TokenError::InvalidClaims(_))));
    }

    #[test]
    fn authorization_token_round_trips_through_basic_auth() {
        let t = mint(KEY, &claims()).unwrap();
        let auth = authorization_token(&t);
        // What the AWS CLI does: base64-decode, split on ':' into exactly two parts.
        let decoded = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(&auth)
                .unwrap(),
        )
        .unwrap();
        let parts: Vec<&str> = decoded.split(':').collect();
        assert_eq!(parts, ["AWS", t.as_str()]);
        // What docker sends back.
        let header = format!("Basic {auth}");
        assert_eq!(parse_basic_auth(&header), Ok(("AWS".into(), t.clone())));
        assert_eq!(verify_basic(&[KEY], &header, NOW), Ok(claims()));
        assert_eq!(
            verify_basic(
                &[KEY],
                &format!("basic   {}  ", auth.trim_end_matches('=')),
                NOW
            ),
            Ok(claims())
        );
    }

    #[test]
    fn basic_auth_parsing() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            parse_basic_auth(&format!("Basic {}", b64("user:pa:ss"))),
            Ok(("user".into(), "pa:ss".into()))
        );
        assert_eq!(
            parse_basic_auth(&format!("BASIC {}", b64(":"))),
            Ok((String::new(), String::new()))
        );
        for bad in [
            String::new(),
            "Basic".into(),
            "Basic ".into(),
            format!("Bearer {}", b64("AWS:x")),
            format!("Basic {}", b64("no-colon")),
            "Basic !!!".into(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode([0xff, b':', 0xfe])
            ),
        ] {
            assert_eq!(
                parse_basic_auth(&bad),
                Err(TokenError::BadBasicAuth),
                "{bad:?}"
            );
        }
        let t = mint(KEY, &claims()).unwrap();
        assert_eq!(
            verify_basic(&[KEY], &format!("Basic {}", b64(&format!("aws:{t}"))), NOW),
            Err(TokenError::WrongUser)
        );
    }
}

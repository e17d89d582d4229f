//! AWS Signature Version 4, server side: verify header-signed and presigned
//! (query-string) requests, and sign our own.
//!
//! Implements the "Signature Version 4 signing process" of the AWS General
//! Reference / IAM User Guide ("Create a signed AWS API request"): canonical
//! request, string to sign, derived signing key, HMAC-SHA256 signature; and the
//! query-string form ("Authenticating requests: using query parameters").
//!
//! Canonical URI: every service but S3 normalises the path (dot segments and
//! repeated slashes removed) and URI-encodes the already-encoded path a second
//! time — `%` becomes `%25` ([`Flavor::Standard`]); S3 decodes and encodes each
//! segment once ([`Flavor::S3`]). Both match botocore, which the AWS CLI uses.
//!
//! Verification order: parse (missing or malformed auth) → clock check → scope
//! check → secret lookup (unknown key) → signature, compared in constant time
//! (`ring::hmac::verify`).

use std::fmt;

use ring::hmac;
use thiserror::Error;

use crate::time::{format_amz_date, parse_amz_date, parse_date_stamp, parse_http_date};

/// The only algorithm SigV4 defines.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The payload hash a client declares when it did not hash the body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Hex SHA-256 of the empty string.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// AWS accepts requests whose time is within 15 minutes of the server's.
pub const DEFAULT_MAX_SKEW_SECS: i64 = 15 * 60;
/// The longest `X-Amz-Expires` a presigned request may carry (seven days).
pub const MAX_PRESIGNED_EXPIRES_SECS: i64 = 7 * 24 * 3600;

const TERMINATOR: &str = "aws4_request";

/// An HTTP request as the wire delivered it, borrowed from the server's types.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The raw (still percent-encoded) path, e.g. `/v2/a%20b/blobs/x`.
    pub path: &'a str,
    /// The raw query string without the leading `?`; empty when there is none.
    pub query: &'a str,
    /// Every header as received, any case, repeated names kept in order.
    pub headers: &'a [(&'a str, &'a str)],
}

impl<'a> Request<'a> {
    /// Values of every header named `name` (ASCII case-insensitive), in order.
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    fn single_header(&self, name: &str) -> Result<Option<&'a str>, SigV4Error> {
        let mut values = self.header_values(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(SigV4Error::Incomplete(format!(
                "Only one '{name}' header may be sent."
            )));
        }
        Ok(first)
    }
}

/// How the path is canonicalised; see the module documentation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Flavor {
    /// Every service but S3 (ECR, STS, IAM): normalise, then encode the raw path again.
    #[default]
    Standard,
    /// S3: no normalisation, each segment decoded and encoded once; presigned
    /// requests always use `UNSIGNED-PAYLOAD`.
    S3,
}

/// What the server knows about the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Lowercase hex SHA-256 of the body as received ([`EMPTY_SHA256`] for none).
    Sha256Hex(&'a str),
    /// The body was not hashed (streamed). The request must then declare its
    /// payload hash in `x-amz-content-sha256`; if that is a hash rather than
    /// `UNSIGNED-PAYLOAD`, [`Verified::body_sha256_to_check`] tells the caller to
    /// compare it with the body it reads.
    Unsigned,
}

/// `AKID/20261126/us-east-1/ecr/aws4_request`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialScope {
    /// The access key id that signed.
    pub access_key_id: String,
    /// `YYYYMMDD`.
    pub date: String,
    /// e.g. `us-east-1`.
    pub region: String,
    /// e.g. `ecr`, `sts`, `iam`.
    pub service: String,
}

impl CredentialScope {
    /// `date/region/service/aws4_request`, as in the string to sign.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/{TERMINATOR}",
            self.date, self.region, self.service
        )
    }
}

impl fmt::Display for CredentialScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.access_key_id, self.scope())
    }
}

/// Why a request failed authentication. `Display` is the message AWS sends;
/// [`aws_code`](Self::aws_code) and [`http_status`](Self::http_status) give the
/// error name and status for the wire.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SigV4Error {
    /// Neither an `Authorization` header nor `X-Amz-Algorithm` query parameters.
    #[error("Missing Authentication Token")]
    MissingAuthentication,
    /// Authentication is present but malformed or incomplete.
    #[error("{0}")]
    Incomplete(String),
    /// No secret is known for the access key id.
    #[error("The security token included in the request is invalid.")]
    UnknownAccessKey,
    /// The signature does not match the one computed here.
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")]
    SignatureMismatch,
    /// The request time is more than the allowed skew before now.
    #[error("Signature expired: {request_time} is now earlier than {limit} ({now} - {skew_minutes} min.)")]
    SignatureExpired {
        /// The request's `X-Amz-Date`.
        request_time: String,
        /// now − skew.
        limit: String,
        /// Server time.
        now: String,
        /// The allowed skew in minutes.
        skew_minutes: i64,
    },
    /// The request time is more than the allowed skew after now.
    #[error("Signature not yet current: {request_time} is still later than {limit} ({now} + {skew_minutes} min.)")]
    SignatureNotYetCurrent {
        /// The request's `X-Amz-Date`.
        request_time: String,
        /// now + skew.
        limit: String,
        /// Server time.
        now: String,
        /// The allowed skew in minutes.
        skew_minutes: i64,
    },
    /// A presigned request used after `X-Amz-Date + X-Amz-Expires`.
    #[error("Request has expired: {expired_at} is now earlier than {now}")]
    PresignedExpired {
        /// When it stopped being valid.
        expired_at: String,
        /// Server time.
        now: String,
    },
    /// The credential scope names another date, region or service, or `host`
    /// is not signed.
    #[error("{0}")]
    BadScope(String),
    /// `x-amz-content-sha256` declares a hash the body does not have.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    PayloadHashMismatch,
}

impl SigV4Error {
    /// The AWS error code (`__type` in JSON protocols, `Code` in query protocols).
    pub fn aws_code(&self) -> &'static str {
        match self {
            SigV4Error::MissingAuthentication => "MissingAuthenticationTokenException",
            SigV4Error::Incomplete(_) => "IncompleteSignatureException",
            SigV4Error::UnknownAccessKey => "UnrecognizedClientException",
            SigV4Error::SignatureMismatch
            | SigV4Error::SignatureExpired { .. }
            | SigV4Error::SignatureNotYetCurrent { .. }
            | SigV4Error::PresignedExpired { .. }
            | SigV4Error::BadScope(_) => "InvalidSignatureException",
            SigV4Error::PayloadHashMismatch => "XAmzContentSHA256Mismatch",
        }
    }

    /// The HTTP status AWS answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            SigV4Error::Incomplete(_) | SigV4Error::PayloadHashMismatch => 400,
            _ => 403,
        }
    }
}

/// How the request carried its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthLocation {
    /// `Authorization: AWS4-HMAC-SHA256 …`.
    Header,
    /// `X-Amz-*` query parameters; valid until `expires_at` (Unix seconds).
    Query {
        /// `X-Amz-Date + X-Amz-Expires`.
        expires_at: i64,
    },
}

/// The authentication a request claims, parsed but not yet verified.
///
/// Split from verification so an async caller can look the secret up between
/// [`parse`] and [`ParsedAuth::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuth {
    scope: CredentialScope,
    signed_headers: Vec<String>,
    signature: String,
    amz_date: String,
    request_time: i64,
    location: AuthLocation,
}

/// A request whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who signed, for which date, region and service.
    pub scope: CredentialScope,
    /// The request time (Unix seconds).
    pub request_time: i64,
    /// The signed header names, lowercase.
    pub signed_headers: Vec<String>,
    /// Header or query signature.
    pub location: AuthLocation,
    /// Set when the body was not hashed ([`Payload::Unsigned`]) but the client
    /// declared its SHA-256: the caller must compare it with the body and fail
    /// with [`SigV4Error::PayloadHashMismatch`] if it differs.
    pub body_sha256_to_check: Option<String>,
}

/// Parses the authentication of a request: the `Authorization` header, or the
/// presigned `X-Amz-*` query parameters.
pub fn parse(req: &Request<'_>) -> Result<ParsedAuth, SigV4Error> {
    let header = req.single_header("authorization")?;
    let query_auth = query_param(req.query, "X-Amz-Algorithm")?.is_some();
    match (header, query_auth) {
        (Some(_), true) => Err(SigV4Error::Incomplete(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified".into(),
        )),
        (Some(h), false) => parse_header_auth(req, h),
        (None, true) => parse_query_auth(req),
        (None, false) => Err(SigV4Error::MissingAuthentication),
    }
}

fn parse_header_auth(req: &Request<'_>, header: &str) -> Result<ParsedAuth, SigV4Error> {
    let header = header.trim();
    let (algorithm, rest) = header.split_once(' ').unwrap_or((header, ""));
    if algorithm != ALGORITHM {
        return Err(SigV4Error::Incomplete(format!(
            "Unsupported AWS 'algorithm': '{}'. Use {ALGORITHM}.",
            truncate(algorithm, 64)
        )));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            return Err(SigV4Error::Incomplete(format!(
                "Authorization header requires each component to be of the form key=value; got '{}'.",
                truncate(part, 64)
            )));
        };
        let slot = match k.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(v.trim()).is_some() {
            return Err(SigV4Error::Incomplete(format!(
                "Authorization header has the '{}' parameter more than once.",
                k.trim()
            )));
        }
    }
    let mut missing = Vec::new();
    if credential.is_none() {
        missing.push("Authorization header requires 'Credential' parameter.");
    }
    if signature.is_none() {
        missing.push("Authorization header requires 'Signature' parameter.");
    }
    if signed_headers.is_none() {
        missing.push("Authorization header requires 'SignedHeaders' parameter.");
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        let date_missing =
            req.single_header("x-amz-date")?.is_none() && req.single_header("date")?.is_none();
        let mut msg = missing.join(" ");
        if date_missing {
            msg.push_str(
                " Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            );
        }
        msg.push_str(&format!(" Authorization={}", truncate(header, 128)));
        return Err(SigV4Error::Incomplete(msg));
    };

    let (amz_date, request_time) = if let Some(d) = req.single_header("x-amz-date")? {
        let t = parse_amz_date(d.trim()).map_err(|_| {
            SigV4Error::Incomplete(format!(
                "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"; got '{}'.",
                truncate(d, 64)
            ))
        })?;
        (d.trim().to_owned(), t)
    } else if let Some(d) = req.single_header("date")? {
        let t = parse_http_date(d.trim()).map_err(|_| {
            SigV4Error::Incomplete(format!(
                "Date header must be an HTTP date such as 'Thu, 26 Nov 2026 14:45:00 GMT'; got '{}'.",
                truncate(d, 64)
            ))
        })?;
        (format_amz_date(t), t)
    } else {
        return Err(SigV4Error::Incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                .into(),
        ));
    };

    finish_parse(
        credential,
        signed_headers,
        signature,
        amz_date,
        request_time,
        AuthLocation::Header,
    )
}

fn parse_query_auth(req: &Request<'_>) -> Result<ParsedAuth, SigV4Error> {
    let get = |name| query_param(req.query, name);
    let (
        Some(algorithm),
        Some(credential),
        Some(signature),
        Some(date),
        Some(signed),
        Some(expires),
    ) = (
        get("X-Amz-Algorithm")?,
        get("X-Amz-Credential")?,
        get("X-Amz-Signature")?,
        get("X-Amz-Date")?,
        get("X-Amz-SignedHeaders")?,
        get("X-Amz-Expires")?,
    )
    else {
        return Err(SigV4Error::Incomplete(
            "AWS query-string parameters must include 'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-SignedHeaders', and 'X-Amz-Expires'. Re-examine the query-string parameters.".into(),
        ));
    };
    if algorithm != ALGORITHM {
        return Err(SigV4Error::Incomplete(format!(
            "X-Amz-Algorithm only supports \"{ALGORITHM}\"; got '{}'.",
            truncate(&algorithm, 64)
        )));
    }
    let request_time = parse_amz_date(&date).map_err(|_| {
        SigV4Error::Incomplete(format!(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"; got '{}'.",
            truncate(&date, 64)
        ))
    })?;
    let expires: i64 = match expires.parse::<i64>() {
        Ok(n) if (1..=MAX_PRESIGNED_EXPIRES_SECS).contains(&n) && !expires.starts_with('+') => n,
        _ => {
            return Err(SigV4Error::Incomplete(format!(
                "X-Amz-Expires must be a whole number of seconds from 1 to {MAX_PRESIGNED_EXPIRES_SECS}; got '{}'.",
                truncate(&expires, 64)
            )))
        }
    };
    finish_parse(
        &credential,
        &signed,
        &signature,
        date,
        request_time,
        AuthLocation::Query {
            expires_at: request_time + expires,
        },
    )
}

fn finish_parse(
    credential: &str,
    signed_headers: &str,
    signature: &str,
    amz_date: String,
    request_time: i64,
    location: AuthLocation,
) -> Result<ParsedAuth, SigV4Error> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, terminator] = parts[..] else {
        return Err(SigV4Error::Incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term; got '{}'.",
            truncate(credential, 128)
        )));
    };
    if terminator != TERMINATOR {
        return Err(SigV4Error::Incomplete(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{}'.",
            truncate(terminator, 64)
        )));
    }
    if akid.is_empty() || region.is_empty() || service.is_empty() {
        return Err(SigV4Error::Incomplete(format!(
            "Credential has an empty element: '{}'.",
            truncate(credential, 128)
        )));
    }
    if parse_date_stamp(date).is_err() {
        return Err(SigV4Error::Incomplete(format!(
            "Credential date must be in the form yyyyMMdd; got '{}'.",
            truncate(date, 64)
        )));
    }
    if !amz_date.starts_with(date) {
        return Err(SigV4Error::BadScope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{date}' != '{}', from '{amz_date}'.",
            &amz_date[..8.min(amz_date.len())]
        )));
    }
    let names: Vec<String> = signed_headers.split(';').map(str::to_owned).collect();
    if names.iter().any(|n| {
        n.is_empty()
            || !n
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase() && b != b':')
    }) {
        return Err(SigV4Error::Incomplete(format!(
            "SignedHeaders must be a semicolon-separated list of lowercase header names; got '{}'.",
            truncate(signed_headers, 128)
        )));
    }
    if !names.iter().any(|n| n == "host") {
        return Err(SigV4Error::BadScope(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    Ok(ParsedAuth {
        scope: CredentialScope {
            access_key_id: akid.to_owned(),
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
        },
        signed_headers: names,
        signature: signature.to_owned(),
        amz_date,
        request_time,
        location,
    })
}

impl ParsedAuth {
    /// The access key id to look the secret up by.
    pub fn access_key_id(&self) -> &str {
        &self.scope.access_key_id
    }

    /// The credential scope the client signed with.
    pub fn scope(&self) -> &CredentialScope {
        &self.scope
    }

    /// The request time (Unix seconds).
    pub fn request_time(&self) -> i64 {
        self.request_time
    }

    /// Header or query signature.
    pub fn location(&self) -> AuthLocation {
        self.location
    }

    /// Checks the request time against `now` (Unix seconds): within
    /// `max_skew_secs` either way for header signatures; for presigned requests
    /// not in the future beyond the skew and not past `X-Amz-Expires`.
    pub fn check_time(&self, now: i64, max_skew_secs: i64) -> Result<(), SigV4Error> {
        let skew_minutes = max_skew_secs / 60;
        if self.request_time > now.saturating_add(max_skew_secs) {
            return Err(SigV4Error::SignatureNotYetCurrent {
                request_time: self.amz_date.clone(),
                limit: format_amz_date(now.saturating_add(max_skew_secs)),
                now: format_amz_date(now),
                skew_minutes,
            });
        }
        match self.location {
            AuthLocation::Header if self.request_time < now.saturating_sub(max_skew_secs) => {
                Err(SigV4Error::SignatureExpired {
                    request_time: self.amz_date.clone(),
                    limit: format_amz_date(now.saturating_sub(max_skew_secs)),
                    now: format_amz_date(now),
                    skew_minutes,
                })
            }
            AuthLocation::Query { expires_at } if now > expires_at => {
                Err(SigV4Error::PresignedExpired {
                    expired_at: format_amz_date(expires_at),
                    now: format_amz_date(now),
                })
            }
            _ => Ok(()),
        }
    }

    /// Checks the scope names this server's region and one of the services it
    /// answers for (e.g. `ecr`, `sts`, `iam` on one endpoint).
    pub fn check_scope(&self, region: &str, services: &[&str]) -> Result<(), SigV4Error> {
        if self.scope.region != region {
            return Err(SigV4Error::BadScope(format!(
                "Credential should be scoped to a valid region, not '{}'. ",
                truncate(&self.scope.region, 64)
            )));
        }
        if !services.iter().any(|s| *s == self.scope.service) {
            let expected = services.first().copied().unwrap_or_default();
            return Err(SigV4Error::BadScope(format!(
                "Credential should be scoped to correct service: '{expected}'. "
            )));
        }
        Ok(())
    }

    /// Recomputes the signature with `secret_access_key` and compares it with
    /// the one sent, in constant time. Does not check the clock: call
    /// [`check_time`](Self::check_time) too (or use [`verify`]).
    pub fn verify(
        &self,
        req: &Request<'_>,
        payload: Payload<'_>,
        secret_access_key: &[u8],
        flavor: Flavor,
    ) -> Result<Verified, SigV4Error> {
        let (payload_hash, body_sha256_to_check) = self.payload_hash(req, payload, flavor)?;
        let canonical = canonical_request(
            req,
            &self.signed_headers,
            &payload_hash,
            flavor,
            matches!(self.location, AuthLocation::Query { .. }),
        )
        .ok_or(SigV4Error::SignatureMismatch)?;
        let sts = string_to_sign(&self.amz_date, &self.scope.scope(), &canonical);
        let key = signing_key(
            secret_access_key,
            &self.scope.date,
            &self.scope.region,
            &self.scope.service,
        );
        let sent = decode_hex_32(&self.signature).ok_or(SigV4Error::SignatureMismatch)?;
        hmac::verify(&key, sts.as_bytes(), &sent).map_err(|_| SigV4Error::SignatureMismatch)?;
        Ok(Verified {
            scope: self.scope.clone(),
            request_time: self.request_time,
            signed_headers: self.signed_headers.clone(),
            location: self.location,
            body_sha256_to_check,
        })
    }

    /// The payload hash line of the canonical request, and a declared body hash
    /// the caller still has to check.
    fn payload_hash(
        &self,
        req: &Request<'_>,
        payload: Payload<'_>,
        flavor: Flavor,
    ) -> Result<(String, Option<String>), SigV4Error> {
        if let AuthLocation::Query { .. } = self.location {
            return Ok(match (flavor, payload) {
                (Flavor::S3, _) | (Flavor::Standard, Payload::Unsigned) => {
                    (UNSIGNED_PAYLOAD.to_owned(), None)
                }
                (Flavor::Standard, Payload::Sha256Hex(h)) => (h.to_ascii_lowercase(), None),
            });
        }
        let declared = req.single_header("x-amz-content-sha256")?.map(str::trim);
        Ok(match (declared, payload) {
            (Some(d), _) if !is_hex_sha256(d) => (d.to_owned(), None),
            (Some(d), Payload::Sha256Hex(h)) => {
                if !d.eq_ignore_ascii_case(h) {
                    return Err(SigV4Error::PayloadHashMismatch);
                }
                (d.to_owned(), None)
            }
            (Some(d), Payload::Unsigned) => (d.to_owned(), Some(d.to_ascii_lowercase())),
            (None, Payload::Sha256Hex(h)) => (h.to_ascii_lowercase(), None),
            (None, Payload::Unsigned) => (UNSIGNED_PAYLOAD.to_owned(), None),
        })
    }
}

/// Server-side settings for [`verify`].
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions<'a> {
    /// Server time, Unix seconds.
    pub now: i64,
    /// Allowed clock skew; [`DEFAULT_MAX_SKEW_SECS`] in AWS.
    pub max_skew_secs: i64,
    /// When set, the credential scope must name this region.
    pub region: Option<&'a str>,
    /// When non-empty, the credential scope must name one of these services.
    pub services: &'a [&'a str],
    /// Path canonicalisation.
    pub flavor: Flavor,
}

impl<'a> VerifyOptions<'a> {
    /// Standard flavour, 15-minute skew, any region and service.
    pub fn new(now: i64) -> Self {
        VerifyOptions {
            now,
            max_skew_secs: DEFAULT_MAX_SKEW_SECS,
            region: None,
            services: &[],
            flavor: Flavor::Standard,
        }
    }
}

/// Parses and verifies a request in one go, looking the secret up with
/// `lookup(access_key_id)`.
pub fn verify<S: AsRef<[u8]>>(
    req: &Request<'_>,
    payload: Payload<'_>,
    opts: &VerifyOptions<'_>,
    lookup: impl FnOnce(&str) -> Option<S>,
) -> Result<Verified, SigV4Error> {
    let parsed = parse(req)?;
    parsed.check_time(opts.now, opts.max_skew_secs)?;
    if opts.region.is_some() || !opts.services.is_empty() {
        let own_service = [parsed.scope.service.as_str()];
        let services = if opts.services.is_empty() {
            &own_service[..]
        } else {
            opts.services
        };
        let region = opts.region.unwrap_or(&parsed.scope.region);
        parsed.check_scope(region, services)?;
    }
    let secret = lookup(parsed.access_key_id()).ok_or(SigV4Error::UnknownAccessKey)?;
    parsed.verify(req, payload, secret.as_ref(), opts.flavor)
}

// ---------------------------------------------------------------------------
// Canonicalisation

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// SigV4 `UriEncode`: every byte but `A-Za-z0-9-._~` as `%XX` (uppercase hex);
/// `/` too unless `keep_slash`.
pub fn uri_encode(bytes: &[u8], keep_slash: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays literal,
/// and `+` stays `+` (RFC 3986, not form encoding).
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex_val),
                b.get(i + 2).copied().and_then(hex_val),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// RFC 3986 §5.2.4 dot-segment removal with repeated slashes collapsed, as
/// botocore does for every service but S3.
fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let first = if path.starts_with('/') { "/" } else { "" };
    let last = if path.ends_with('/') && !out.is_empty() {
        "/"
    } else {
        ""
    };
    format!("{first}{}{last}", out.join("/"))
}

/// The canonical URI of a raw request path.
pub fn canonical_uri(raw_path: &str, flavor: Flavor) -> String {
    match flavor {
        Flavor::Standard => uri_encode(normalize_path(raw_path).as_bytes(), true),
        Flavor::S3 => {
            if raw_path.is_empty() {
                return "/".into();
            }
            raw_path
                .split('/')
                .map(|seg| uri_encode(&percent_decode(seg), false))
                .collect::<Vec<_>>()
                .join("/")
        }
    }
}

/// Decoded `(name, value)` pairs of a raw query string; empty pieces skipped.
fn query_pairs(raw: &str) -> impl Iterator<Item = (&str, &str)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// The decoded value of query parameter `name`; an error if it appears twice.
fn query_param(raw: &str, name: &str) -> Result<Option<String>, SigV4Error> {
    let mut found = None;
    for (k, v) in query_pairs(raw) {
        if percent_decode(k) == name.as_bytes() {
            if found.is_some() {
                return Err(SigV4Error::Incomplete(format!(
                    "The query parameter '{name}' may appear only once."
                )));
            }
            found = Some(String::from_utf8_lossy(&percent_decode(v)).into_owned());
        }
    }
    Ok(found)
}

/// The canonical query string: every parameter decoded and re-encoded with
/// [`uri_encode`], sorted by name then value; `X-Amz-Signature` left out when
/// `presigned`.
pub fn canonical_query_string(raw_query: &str, presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = query_pairs(raw_query)
        .map(|(k, v)| {
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .filter(|(k, _)| !(presigned && k == "X-Amz-Signature"))
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// `Trimall`: leading and trailing whitespace removed, inner runs collapsed to one space.
fn trim_all(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical request, or `None` when a signed header is absent.
pub fn canonical_request(
    req: &Request<'_>,
    signed_headers: &[String],
    payload_hash: &str,
    flavor: Flavor,
    presigned: bool,
) -> Option<String> {
    let mut out = String::with_capacity(256);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_uri(req.path, flavor));
    out.push('\n');
    out.push_str(&canonical_query_string(req.query, presigned));
    out.push('\n');
    for name in signed_headers {
        let values: Vec<String> = req.header_values(name).map(trim_all).collect();
        if values.is_empty() {
            return None;
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    Some(out)
}

/// `AWS4-HMAC-SHA256\n<amz-date>\n<scope>\n<hex sha256(canonical request)>`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical_request.as_bytes());
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(digest.as_ref())
    )
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret_access_key: &[u8], date: &str, region: &str, service: &str) -> hmac::Key {
    let mut k = Vec::with_capacity(4 + secret_access_key.len());
    k.extend_from_slice(b"AWS4");
    k.extend_from_slice(secret_access_key);
    let mut key = hmac::Key::new(hmac::HMAC_SHA256, &k);
    for part in [date, region, service, TERMINATOR] {
        let tag = hmac::sign(&key, part.as_bytes());
        key = hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref());
    }
    key
}

/// Lowercase hex HMAC-SHA256 of `string_to_sign` under `key`.
pub fn signature(key: &hmac::Key, string_to_sign: &str) -> String {
    hex::encode(hmac::sign(key, string_to_sign.as_bytes()).as_ref())
}

fn is_hex_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn decode_hex_32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

// ---------------------------------------------------------------------------
// Signing

/// Credentials and scope for signing a request.
#[derive(Clone, Copy)]
pub struct SigningParams<'a> {
    /// Access key id.
    pub access_key_id: &'a str,
    /// Secret access key.
    pub secret_access_key: &'a str,
    /// Region of the scope.
    pub region: &'a str,
    /// Service of the scope.
    pub service: &'a str,
    /// Signing time, Unix seconds.
    pub time: i64,
    /// Path canonicalisation.
    pub flavor: Flavor,
}

impl fmt::Debug for SigningParams<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningParams")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("region", &self.region)
            .field("service", &self.service)
            .field("time", &self.time)
            .field("flavor", &self.flavor)
            .finish()
    }
}

/// Headers to add to a request signed with [`sign_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// The `Authorization` header value.
    pub authorization: String,
    /// The `X-Amz-Date` header value (already used in the signature).
    pub amz_date: String,
}

/// Headers a client may change in transit, which signers leave out.
const UNSIGNABLE: [&str; 5] = [
    "authorization",
    "user-agent",
    "expect",
    "x-amzn-trace-id",
    "transfer-encoding",
];

/// Signs `req` in the header form, over all its headers (plus `x-amz-date`, which
/// must not already be present) except `Authorization`, `User-Agent`, `Expect`,
/// `Transfer-Encoding` and `X-Amzn-Trace-Id`. `req` must carry a `host` header.
pub fn sign_request(
    req: &Request<'_>,
    payload_hash: &str,
    params: &SigningParams<'_>,
) -> Result<SignedHeaders, SigV4Error> {
    let amz_date = format_amz_date(params.time);
    let mut headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("x-amz-date"))
        .copied()
        .collect();
    headers.push(("x-amz-date", &amz_date));
    let mut names: Vec<String> = headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .filter(|n| !UNSIGNABLE.contains(&n.as_str()))
        .collect();
    names.sort();
    names.dedup();
    if !names.iter().any(|n| n == "host") {
        return Err(SigV4Error::BadScope(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    let with_date = Request {
        headers: &headers,
        ..*req
    };
    let canonical = canonical_request(&with_date, &names, payload_hash, params.flavor, false)
        .ok_or(SigV4Error::SignatureMismatch)?;
    let scope = CredentialScope {
        access_key_id: params.access_key_id.to_owned(),
        date: amz_date[..8].to_owned(),
        region: params.region.to_owned(),
        service: params.service.to_owned(),
    };
    let sts = string_to_sign(&amz_date, &scope.scope(), &canonical);
    let key = signing_key(
        params.secret_access_key.as_bytes(),
        &scope.date,
        &scope.region,
        &scope.service,
    );
    Ok(SignedHeaders {
        authorization: format!(
            "{ALGORITHM} Credential={scope}, SignedHeaders={}, Signature={}",
            names.join(";"),
            signature(&key, &sts)
        ),
        amz_date,
    })
}

/// Presigns a request to `host` + `path` valid for `expires_secs`, signing only
/// the `host` header. Returns the whole query string to use: `query` (raw, may
/// be empty) followed by the `X-Amz-*` parameters and `X-Amz-Signature`.
///
/// The payload is [`EMPTY_SHA256`] in the standard flavour (a GET without body,
/// as botocore presigns) and `UNSIGNED-PAYLOAD` for S3; verify with
/// `Payload::Sha256Hex(EMPTY_SHA256)` accordingly.
pub fn presign(
    method: &str,
    host: &str,
    path: &str,
    query: &str,
    expires_secs: i64,
    params: &SigningParams<'_>,
) -> Result<String, SigV4Error> {
    if !(1..=MAX_PRESIGNED_EXPIRES_SECS).contains(&expires_secs) {
        return Err(SigV4Error::Incomplete(format!(
            "X-Amz-Expires must be a whole number of seconds from 1 to {MAX_PRESIGNED_EXPIRES_SECS}; got '{expires_secs}'."
        )));
    }
    let amz_date = format_amz_date(params.time);
    let scope = CredentialScope {
        access_key_id: params.access_key_id.to_owned(),
        date: amz_date[..8].to_owned(),
        region: params.region.to_owned(),
        service: params.service.to_owned(),
    };
    let mut full = String::from(query.trim_start_matches('?'));
    if !full.is_empty() && !full.ends_with('&') {
        full.push('&');
    }
    full.push_str(&format!(
        "X-Amz-Algorithm={ALGORITHM}&X-Amz-Credential={}&X-Amz-Date={amz_date}&X-Amz-Expires={expires_secs}&X-Amz-SignedHeaders=host",
        uri_encode(scope.to_string().as_bytes(), false)
    ));
    let payload = match params.flavor {
        Flavor::Standard => EMPTY_SHA256,
        Flavor::S3 => UNSIGNED_PAYLOAD,
    };
    let headers = [("host", host)];
    let req = Request {
        method,
        path,
        query: &full,
        headers: &headers,
    };
    let canonical = canonical_request(&req, &["host".to_owned()], payload, params.flavor, true)
        .ok_or(SigV4Error::SignatureMismatch)?;
    let sts = string_to_sign(&amz_date, &scope.scope(), &canonical);
    let key = signing_key(
        params.secret_access_key.as_bytes(),
        &scope.date,
        &scope.region,
        &scope.service,
    );
    full.push_str("&X-Amz-Signature=");
    full.push_str(&signature(&key, &sts));
    Ok(full)
}

#[cfg(test)]
mod tests;

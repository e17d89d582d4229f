//! Typed access to an AWS JSON 1.1 request body with the server-side checks
//! botocore leaves to the service (maximum lengths, patterns, enums, ranges), and
//! the validators of the documents those bodies carry. Pure: the ECR front end
//! (`crates/api/src/ecr`) maps an [`InputError`] to its exception, and the fuzz
//! targets (`crates/fuzzing`) call the same functions on arbitrary bytes.

pub mod filters;
pub mod kms;
pub mod pull_through;
pub mod registry_config;
pub mod secrets;
pub mod tags;
pub mod templates;

use berth_oci::{Digest, RepositoryName};
use serde_json::{Map, Value};

/// Which exception an [`InputError`] is answered with (the front end's
/// `EcrException` of the same name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputErrorKind {
    InvalidParameter,
    Validation,
    Serialization,
    InvalidTagParameter,
    TooManyTags,
    /// KMS's `TagException`.
    Tag,
}

/// A request member that fails its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub kind: InputErrorKind,
    pub message: String,
}

impl InputError {
    pub fn new(kind: InputErrorKind, message: impl Into<String>) -> Self {
        InputError {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(InputErrorKind::InvalidParameter, message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(InputErrorKind::Validation, message)
    }
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InputError {}

/// A request body: a JSON object (the front end refuses anything else).
pub struct Input(Value);

fn wrong_type(name: &str, want: &str) -> InputError {
    InputError::new(
        InputErrorKind::Serialization,
        format!("Member '{name}' must be {want}"),
    )
}

impl Input {
    pub fn new(v: Value) -> Self {
        Input(v)
    }

    /// The body as the front end reads it: empty is `{}`, anything but a JSON
    /// object is refused.
    pub fn from_body(body: &[u8]) -> Result<Self, InputError> {
        if body.is_empty() {
            return Ok(Input(Value::Object(Default::default())));
        }
        match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => Ok(Input(v)),
            _ => Err(InputError::new(
                InputErrorKind::Serialization,
                "the request body is not a JSON object",
            )),
        }
    }

    pub fn raw(&self) -> &Value {
        &self.0
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, InputError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(wrong_type(name, "a string")),
        }
    }

    pub fn req_str(&self, name: &str) -> Result<&str, InputError> {
        self.opt_str(name)?
            .ok_or_else(|| InputError::invalid(format!("Missing required parameter '{name}'")))
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, InputError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(wrong_type(name, "a boolean")),
        }
    }

    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, InputError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| wrong_type(name, "an integer")),
        }
    }

    pub fn opt_array(&self, name: &str) -> Result<Option<&Vec<Value>>, InputError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(wrong_type(name, "a list")),
        }
    }

    pub fn opt_object(&self, name: &str) -> Result<Option<&Map<String, Value>>, InputError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o)),
            Some(_) => Err(wrong_type(name, "a structure")),
        }
    }

    /// `repositoryName`, validated against the model's length and pattern.
    pub fn repository_name(&self) -> Result<RepositoryName, InputError> {
        let s = self.req_str("repositoryName")?;
        parse_repository_name(s, "repositoryName")
    }

    /// A string whose length must be within `min..=max`.
    pub fn opt_len(&self, name: &str, min: usize, max: usize) -> Result<Option<&str>, InputError> {
        let v = self.opt_str(name)?;
        if let Some(s) = v {
            check_len(name, s, min, max)?;
        }
        Ok(v)
    }

    /// `maxResults` within `1..=max` (default `default`).
    pub fn max_results(&self, max: i64, default: i64) -> Result<i64, InputError> {
        match self.opt_i64("maxResults")? {
            None => Ok(default),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(n) => Err(InputError::invalid(format!(
                "Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value between 1 and {max}' (got {n})"
            ))),
        }
    }
}

pub fn check_len(name: &str, s: &str, min: usize, max: usize) -> Result<(), InputError> {
    let n = s.chars().count();
    if n < min {
        return Err(InputError::invalid(format!(
            "Invalid parameter at '{name}' failed to satisfy constraint: 'Member must have length greater than or equal to {min}'"
        )));
    }
    if n > max {
        return Err(InputError::invalid(format!(
            "Invalid parameter at '{name}' failed to satisfy constraint: 'Member must have length less than or equal to {max}'"
        )));
    }
    Ok(())
}

pub fn parse_repository_name(s: &str, field: &str) -> Result<RepositoryName, InputError> {
    check_len(field, s, 2, 256)?;
    RepositoryName::parse(s).map_err(|_| {
        InputError::invalid(format!(
            "Invalid parameter at '{field}' failed to satisfy constraint: 'must satisfy regular expression '[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*''"
        ))
    })
}

pub fn parse_digest(s: &str, field: &str) -> Result<Digest, InputError> {
    Digest::parse(s).map_err(|_| {
        InputError::invalid(format!(
            "Invalid parameter at '{field}' failed to satisfy constraint: 'must be a valid image digest' (got '{s}')"
        ))
    })
}

/// Opaque pagination tokens: the last key of the previous page, base64url-encoded.
pub fn encode_token(last: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last.as_bytes())
}

pub fn decode_token(tok: &str) -> Result<String, InputError> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| InputError::invalid("Invalid parameter at 'nextToken' failed to satisfy constraint: 'the token is not valid'"))
}

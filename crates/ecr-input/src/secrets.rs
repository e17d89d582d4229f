//! Secrets Manager inputs: names, ids, client tokens, values, tags and filters.

use base64::Engine as _;
use serde_json::Value;

use crate::{Input, InputError, InputErrorKind};

/// A secret's value as the request carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretValueIn {
    Text(String),
    Binary(Vec<u8>),
}

pub fn invalid(msg: impl Into<String>) -> InputError {
    InputError::new(InputErrorKind::InvalidParameter, msg)
}

pub fn validation(field: &str, constraint: &str) -> InputError {
    InputError::validation(format!(
        "1 validation error detected: Value at '{field}' failed to satisfy constraint: {constraint}"
    ))
}

pub fn secret_name(input: &Input, field: &str) -> Result<String, InputError> {
    let n = input.req_str(field)?;
    if n.is_empty() || n.chars().count() > 512 {
        return Err(validation(
            field,
            "Member must have length between 1 and 512",
        ));
    }
    if !n
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
    {
        return Err(invalid(
            "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!",
        ));
    }
    Ok(n.to_string())
}

pub fn secret_id(input: &Input) -> Result<&str, InputError> {
    let id = input.req_str("SecretId")?;
    if id.is_empty() || id.chars().count() > 2048 {
        return Err(validation(
            "secretId",
            "Member must have length between 1 and 2048",
        ));
    }
    Ok(id)
}

/// `ClientRequestToken` (32–64 characters), if given (the front end makes a fresh
/// version id otherwise).
pub fn client_token(input: &Input) -> Result<Option<String>, InputError> {
    match input.opt_str("ClientRequestToken")? {
        Some(t) if (32..=64).contains(&t.chars().count()) => Ok(Some(t.to_string())),
        Some(_) => Err(validation(
            "clientRequestToken",
            "Member must have length between 32 and 64",
        )),
        None => Ok(None),
    }
}

/// `SecretString` or `SecretBinary` (base64 on the wire), at most one, ≤ 64 KiB.
pub fn value_in(input: &Input) -> Result<Option<SecretValueIn>, InputError> {
    let text = input.opt_str("SecretString")?;
    let binary = input.opt_str("SecretBinary")?;
    let v = match (text, binary) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "You can't specify both a binary secret value and a string secret value in the same secret.",
            ))
        }
        (Some(t), None) => SecretValueIn::Text(t.to_string()),
        (None, Some(b)) => SecretValueIn::Binary(
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|_| invalid("SecretBinary is not valid base64"))?,
        ),
        (None, None) => return Ok(None),
    };
    let len = match &v {
        SecretValueIn::Text(t) => t.len(),
        SecretValueIn::Binary(b) => b.len(),
    };
    if len > 65536 {
        return Err(validation(
            "secretString",
            "Member must have length less than or equal to 65536",
        ));
    }
    Ok(Some(v))
}

pub fn tags_in(list: &[Value]) -> Result<Vec<(String, String)>, InputError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for t in list {
        let k = t.get("Key").and_then(Value::as_str).unwrap_or("");
        let v = t.get("Value").and_then(Value::as_str).unwrap_or("");
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(validation(
                "tags",
                "tag keys must have 1-128 characters and values 0-256",
            ));
        }
        if k.starts_with("aws:") {
            return Err(invalid("Tag keys may not start with aws:"));
        }
        out.retain(|(x, _)| x != k);
        out.push((k.to_string(), v.to_string()));
    }
    if out.len() > 50 {
        return Err(invalid("A secret can have at most 50 tags"));
    }
    Ok(out)
}

pub fn filters_in(input: &Input) -> Result<Vec<(String, Vec<String>)>, InputError> {
    let mut out = Vec::new();
    for f in input.opt_array("Filters")?.cloned().unwrap_or_default() {
        let key = f.get("Key").and_then(Value::as_str).unwrap_or("");
        if !["description", "name", "tag-key", "tag-value", "all"].contains(&key) {
            return Err(validation(
                "filters.member.key",
                "Member must satisfy enum value set: [description, name, tag-key, tag-value, primary-region, owning-service, all]",
            ));
        }
        let values: Vec<String> = f
            .get("Values")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        out.push((key.to_string(), values));
    }
    Ok(out)
}

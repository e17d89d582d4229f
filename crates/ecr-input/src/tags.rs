//! Repository tags (`CreateRepository`, `TagResource`, creation templates).

use serde_json::Value;

use crate::{InputError, InputErrorKind};

/// ECR's limit: "The maximum number of tags that can be applied to a repository is 50."
pub const MAX_TAGS: usize = 50;

pub fn parse_tags(v: Option<&Vec<Value>>) -> Result<Vec<(String, String)>, InputError> {
    let Some(list) = v else {
        return Ok(Vec::new());
    };
    if list.len() > MAX_TAGS {
        return Err(InputError::new(
            InputErrorKind::TooManyTags,
            format!("A repository can have at most {MAX_TAGS} tags"),
        ));
    }
    let mut out: Vec<(String, String)> = Vec::with_capacity(list.len());
    for t in list {
        let key = t.get("Key").and_then(Value::as_str);
        let value = t.get("Value").and_then(Value::as_str).unwrap_or("");
        let Some(key) = key else {
            return Err(InputError::new(
                InputErrorKind::InvalidTagParameter,
                "Each tag needs a Key",
            ));
        };
        if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
            return Err(InputError::new(
                InputErrorKind::InvalidTagParameter,
                "Tag keys must be 1-128 characters and values at most 256 characters",
            ));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(InputError::new(
                InputErrorKind::InvalidTagParameter,
                "Tag keys starting with 'aws:' are reserved for AWS use",
            ));
        }
        out.retain(|(k, _)| k != key);
        out.push((key.to_string(), value.to_string()));
    }
    Ok(out)
}

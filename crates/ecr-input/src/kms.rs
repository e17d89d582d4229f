//! KMS inputs: tags and alias names.

use serde_json::Value;

use crate::{Input, InputError, InputErrorKind};

pub fn tags_in(input: &Input) -> Result<Vec<(String, String)>, InputError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for t in input.opt_array("Tags")?.cloned().unwrap_or_default() {
        let k = t.get("TagKey").and_then(Value::as_str).unwrap_or("");
        let v = t.get("TagValue").and_then(Value::as_str).unwrap_or("");
        if k.is_empty() || k.len() > 128 || v.len() > 256 {
            return Err(InputError::new(
                InputErrorKind::Tag,
                "Tag keys must be 1-128 and values 0-256 characters",
            ));
        }
        out.retain(|(x, _)| x != k);
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

pub fn alias_name(input: &Input) -> Result<String, InputError> {
    let a = input.req_str("AliasName")?;
    let ok = a.starts_with("alias/")
        && !a.starts_with("alias/aws/")
        && (7..=256).contains(&a.len())
        && a[6..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b));
    if !ok {
        return Err(InputError::validation(format!(
            "1 validation error detected: Value '{a}' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^alias/[a-zA-Z0-9/_-]+$ (and must not begin with alias/aws/)"
        )));
    }
    Ok(a.to_string())
}

//! Repository creation templates: the prefix (also a pull-through cache rule's)
//! and the two policies a template carries.

use berth_iam::policy::{PolicyDocument, PolicyKind};
use berth_lifecycle::{check_policy_text_length, LifecyclePolicy};

use crate::{check_len, Input, InputError};

/// The prefix of the template that applies to every repository.
pub const TEMPLATE_ROOT: &str = "ROOT";

/// ECR's repository-name component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_lowercase() && !b[0].is_ascii_digit() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: '.', '_', '__' or a run of '-', followed by an alphanumeric.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

/// A template (or pull-through cache) prefix: `ROOT`, or repository-name
/// components separated by '/', optionally ending in '/'.
pub fn valid_prefix(p: &str) -> bool {
    if p == TEMPLATE_ROOT {
        return true;
    }
    let body = p.strip_suffix('/').unwrap_or(p);
    !body.is_empty() && body.split('/').all(valid_component)
}

pub fn prefix(input: &Input) -> Result<String, InputError> {
    let p = input.req_str("prefix")?;
    check_len("prefix", p, 1, 256)?;
    if !valid_prefix(p) {
        return Err(InputError::invalid(format!(
            "Invalid parameter at 'prefix' failed to satisfy constraint: 'must satisfy regular expression '^([a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*\\/?|ROOT)$'' (got '{p}')"
        )));
    }
    Ok(p.to_string())
}

pub fn repository_policy(input: &Input) -> Result<Option<Option<String>>, InputError> {
    let Some(text) = input.opt_str("repositoryPolicy")? else {
        return Ok(None);
    };
    check_len("repositoryPolicy", text, 0, 10240)?;
    if text.is_empty() {
        return Ok(Some(None));
    }
    PolicyDocument::parse(text, PolicyKind::EcrRepository).map_err(|e| {
        InputError::invalid(format!(
            "Invalid parameter at 'repositoryPolicy' failed to satisfy constraint: 'Invalid repository policy provided': {e}"
        ))
    })?;
    Ok(Some(Some(text.to_string())))
}

pub fn lifecycle_policy(input: &Input) -> Result<Option<Option<String>>, InputError> {
    let Some(text) = input.opt_str("lifecyclePolicy")? else {
        return Ok(None);
    };
    check_len("lifecyclePolicy", text, 0, 30720)?;
    if text.is_empty() {
        return Ok(Some(None));
    }
    check_policy_text_length(text)
        .and_then(|_| LifecyclePolicy::parse(text))
        .map_err(|e| InputError::invalid(e.to_string()))?;
    Ok(Some(Some(text.to_string())))
}

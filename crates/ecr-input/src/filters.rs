//! Repository filters of replication rules (`PREFIX_MATCH`) and registry scanning
//! rules (`WILDCARD`).

use serde_json::{json, Value};

use crate::{check_len, InputError, InputErrorKind};

/// The filters of a rule, each checked against its type's length and pattern.
pub fn repository_filters(
    v: Option<&Value>,
    allowed_type: &str,
    max: usize,
    min: usize,
) -> Result<Vec<Value>, InputError> {
    let list = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            return Err(InputError::new(
                InputErrorKind::Serialization,
                "repositoryFilters must be a list",
            ))
        }
    };
    if list.len() < min || list.len() > max {
        return Err(InputError::invalid(format!(
            "repositoryFilters must have between {min} and {max} entries"
        )));
    }
    let mut out = Vec::with_capacity(list.len());
    for f in list {
        let filter = f.get("filter").and_then(Value::as_str).unwrap_or("");
        let ft = f.get("filterType").and_then(Value::as_str).unwrap_or("");
        if ft != allowed_type {
            return Err(InputError::invalid(format!(
                "Invalid parameter at 'filterType' failed to satisfy constraint: 'Member must satisfy enum value set: [{allowed_type}]'"
            )));
        }
        // RepositoryFilterValue (replication) and ScanningRepositoryFilterValue
        // (scanning) differ in length and pattern.
        let (min, max, ok, pattern) = if allowed_type == "PREFIX_MATCH" {
            (
                2,
                256,
                is_prefix_filter(filter),
                "^(?:[a-z0-9]+(?:[._-][a-z0-9]*)*/)*[a-z0-9]*(?:[._-][a-z0-9]*)*$",
            )
        } else {
            (
                1,
                255,
                is_wildcard_filter(filter),
                "^[a-z0-9*](?:[._\\-/a-z0-9*]?[a-z0-9*]+)*$",
            )
        };
        check_len("filter", filter, min, max)?;
        if !ok {
            return Err(InputError::invalid(format!(
                "Invalid parameter at 'filter' failed to satisfy constraint: 'must satisfy regular expression '{pattern}'' (got '{filter}')"
            )));
        }
        out.push(json!({ "filter": filter, "filterType": ft }));
    }
    Ok(out)
}

fn filter_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `^(?:[a-z0-9]+(?:[._-][a-z0-9]*)*/)*[a-z0-9]*(?:[._-][a-z0-9]*)*$`: `/`-separated
/// segments of `[a-z0-9._-]`, each but the last non-empty and starting alphanumeric.
pub fn is_prefix_filter(s: &str) -> bool {
    let segments: Vec<&str> = s.split('/').collect();
    let (last, init) = segments.split_last().expect("split yields one segment");
    let chars_ok = |seg: &str| seg.bytes().all(|b| filter_char(b) || b"._-".contains(&b));
    init.iter()
        .all(|seg| seg.bytes().next().is_some_and(filter_char) && chars_ok(seg))
        && chars_ok(last)
}

/// `^[a-z0-9*](?:[._\-/a-z0-9*]?[a-z0-9*]+)*$`: starts and ends with `[a-z0-9*]`, no two
/// separators (`._-/`) in a row.
pub fn is_wildcard_filter(s: &str) -> bool {
    let word = |b: u8| filter_char(b) || b == b'*';
    let b = s.as_bytes();
    !b.is_empty()
        && word(b[0])
        && word(b[b.len() - 1])
        && b.iter().all(|&c| word(c) || b"._-/".contains(&c))
        && b.windows(2).all(|w| word(w[0]) || word(w[1]))
}

#[cfg(test)]
mod tests {
    use super::{is_prefix_filter, is_wildcard_filter};

    #[test]
    fn repository_filter_patterns() {
        for ok in ["prod", "prod/", "team-a/app", "a.b_c-d", "", "x/y/"] {
            assert!(is_prefix_filter(ok), "{ok}");
        }
        for bad in ["prod*", "/x", "Prod", "a//b", "-a/b", "a b"] {
            assert!(!is_prefix_filter(bad), "{bad}");
        }
        for ok in ["*", "prod-*", "a/b", "a.b*c", "**"] {
            assert!(is_wildcard_filter(ok), "{ok}");
        }
        for bad in ["", "prod-", "-a", "a..b", "a/-b", "A", "a b"] {
            assert!(!is_wildcard_filter(bad), "{bad}");
        }
    }
}

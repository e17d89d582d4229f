//! `PutRegistryScanningConfiguration` and `PutReplicationConfiguration` documents.

use serde_json::{json, Value};

use crate::filters::repository_filters;
use crate::{Input, InputError, InputErrorKind};

/// ECR's limit on unique destinations over all rules of a replication configuration.
pub const MAX_REPLICATION_DESTINATIONS: usize = 25;

/// The scanning configuration to store: `{"scanType", "rules"}`.
pub fn scanning_configuration(input: &Input) -> Result<Value, InputError> {
    let scan_type = input.opt_str("scanType")?.unwrap_or("BASIC");
    if !matches!(scan_type, "BASIC" | "ENHANCED") {
        return Err(InputError::invalid(format!(
            "Invalid parameter at 'scanType' failed to satisfy constraint: 'Member must satisfy enum value set: [BASIC, ENHANCED]' (got '{scan_type}')"
        )));
    }
    let rules = input.opt_array("rules")?.cloned().unwrap_or_default();
    if rules.len() > 2 {
        return Err(InputError::invalid(
            "A registry scanning configuration has at most 2 rules",
        ));
    }
    let mut out = Vec::with_capacity(rules.len());
    for r in &rules {
        let freq = r.get("scanFrequency").and_then(Value::as_str).unwrap_or("");
        let ok = match scan_type {
            "BASIC" => matches!(freq, "SCAN_ON_PUSH" | "MANUAL"),
            _ => matches!(freq, "SCAN_ON_PUSH" | "CONTINUOUS_SCAN" | "MANUAL"),
        };
        if !ok {
            return Err(InputError::invalid(format!(
                "Invalid parameter at 'scanFrequency' failed to satisfy constraint: '{freq}' is not valid for scan type {scan_type}"
            )));
        }
        let f = repository_filters(r.get("repositoryFilters"), "WILDCARD", 100, 1)?;
        out.push(json!({ "scanFrequency": freq, "repositoryFilters": f }));
    }
    Ok(json!({ "scanType": scan_type, "rules": out }))
}

/// The replication configuration to store: `{"rules"}`. `destination` checks each
/// well-formed destination (region, registry id) against the deployment (not the
/// source registry, a known region) in document order.
pub fn replication_configuration(
    input: &Input,
    mut destination: impl FnMut(&str, &str) -> Result<(), InputError>,
) -> Result<Value, InputError> {
    let cfg = input
        .opt_object("replicationConfiguration")?
        .ok_or_else(|| {
            InputError::invalid("Missing required parameter 'replicationConfiguration'")
        })?;
    let rules = match cfg.get("rules") {
        Some(Value::Array(a)) => a.clone(),
        _ => {
            return Err(InputError::invalid(
                "replicationConfiguration.rules must be a list",
            ))
        }
    };
    if rules.len() > 10 {
        return Err(InputError::invalid(
            "A replication configuration has at most 10 rules",
        ));
    }
    let mut unique = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(rules.len());
    for r in &rules {
        let dests = match r.get("destinations") {
            Some(Value::Array(a)) if !a.is_empty() && a.len() <= 100 => a,
            _ => {
                return Err(InputError::invalid(
                    "Each replication rule needs 1 to 100 destinations",
                ))
            }
        };
        let mut d_out = Vec::new();
        for d in dests {
            let region = d.get("region").and_then(Value::as_str).unwrap_or("");
            let reg = d.get("registryId").and_then(Value::as_str).unwrap_or("");
            let region_ok = (2..=25).contains(&region.len())
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !region_ok || !berth_iam::arn::is_account_id(reg) {
                return Err(InputError::invalid(format!(
                    "Invalid replication destination (region '{region}', registryId '{reg}')"
                )));
            }
            destination(region, reg)?;
            unique.insert((region.to_string(), reg.to_string()));
            d_out.push(json!({ "region": region, "registryId": reg }));
        }
        let f = repository_filters(r.get("repositoryFilters"), "PREFIX_MATCH", 100, 0)?;
        let mut rule = json!({ "destinations": d_out });
        if !f.is_empty() {
            rule["repositoryFilters"] = json!(f);
        }
        match r.get("deleteReplication") {
            None | Some(Value::Null) => {}
            Some(v) => match v.get("enabled") {
                Some(Value::Bool(on)) => rule["deleteReplication"] = json!({ "enabled": on }),
                _ => {
                    return Err(InputError::new(
                        InputErrorKind::Serialization,
                        "deleteReplication must be an object with a boolean 'enabled'",
                    ))
                }
            },
        }
        out.push(rule);
    }
    if unique.len() > MAX_REPLICATION_DESTINATIONS {
        return Err(InputError::validation(format!(
            "A replication configuration has at most {MAX_REPLICATION_DESTINATIONS} unique destinations over all rules (got {})",
            unique.len()
        )));
    }
    Ok(json!({ "rules": out }))
}

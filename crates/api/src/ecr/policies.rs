//! Policy and configuration documents: repository and registry policies, lifecycle
//! policies (validated here, evaluated by the lifecycle worker), the registry
//! scanning configuration and the replication configuration (botocore ECR model).

use berth_iam::policy::{PolicyDocument, PolicyKind};
use berth_lifecycle::{check_policy_text_length, LifecyclePolicy};
use berth_registry::{AccountSetting, RepositoryRow};
use serde_json::{json, Value};

use super::input::check_len;
use super::repos::repo_for;
use super::{epoch_secs, Ctx, EcrError, EcrException, Input};

fn policy_text<'a>(input: &'a Input, kind: PolicyKind, what: &str) -> Result<&'a str, EcrError> {
    let text = input.req_str("policyText")?;
    check_len("policyText", text, 0, 10240)?;
    PolicyDocument::parse(text, kind).map_err(|e| {
        EcrError::invalid(format!(
            "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid {what} policy provided': {e}"
        ))
    })?;
    Ok(text)
}

pub async fn set_repository_policy(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let text = policy_text(input, PolicyKind::EcrRepository, "repository")?;
    ctx.app
        .registry
        .set_repository_policy(&repo, Some(text.to_string()))
        .await?;
    Ok(json!({ "registryId": repo.account_id, "repositoryName": repo.name, "policyText": text }))
}

fn no_repo_policy(ctx: &Ctx, name: &str, account: &str) -> EcrError {
    let _ = ctx;
    EcrError::new(
        EcrException::RepositoryPolicyNotFound,
        format!("Repository policy does not exist for the repository with name '{name}' in the registry with id '{account}'"),
    )
}

pub async fn get_repository_policy(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let text = repo
        .policy
        .clone()
        .ok_or_else(|| no_repo_policy(ctx, &repo.name, &repo.account_id))?;
    Ok(json!({ "registryId": repo.account_id, "repositoryName": repo.name, "policyText": text }))
}

pub async fn delete_repository_policy(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let text = repo
        .policy
        .clone()
        .ok_or_else(|| no_repo_policy(ctx, &repo.name, &repo.account_id))?;
    ctx.app.registry.set_repository_policy(&repo, None).await?;
    Ok(json!({ "registryId": repo.account_id, "repositoryName": repo.name, "policyText": text }))
}

/// Authorizes the operation's action on the caller's registry and reads one of its
/// documents.
async fn registry_setting(
    ctx: &Ctx,
    s: AccountSetting,
) -> Result<(String, Option<String>), EcrError> {
    let account = ctx.caller.account_id.clone();
    ctx.app
        .authorize(&ctx.caller, &ctx.action, &account, None, None)
        .await?;
    let v = ctx.app.registry.account_setting(&account, s).await?;
    Ok((account, v))
}

async fn set_registry_setting(
    ctx: &Ctx,
    account: &str,
    s: AccountSetting,
    v: Option<String>,
) -> Result<(), EcrError> {
    ctx.app.registry.set_account_setting(account, s, v).await?;
    Ok(())
}

/// The actions ECR accepts in a registry policy (`ecr:*` is tolerated too).
const REGISTRY_POLICY_ACTIONS: [&str; 3] = [
    "ecr:ReplicateImage",
    "ecr:BatchImportUpstreamImage",
    "ecr:CreateRepository",
];

/// The actions a registry policy may name. Under `REGISTRY_POLICY_SCOPE=V1` it
/// grants only replication and pull-through-cache imports: every `Action` must be
/// one of [`REGISTRY_POLICY_ACTIONS`] or `ecr:*`, and `NotAction` (which would
/// name every other action) is refused. Under `V2` (the default) it covers every
/// ECR action, so any `ecr:` action or pattern is accepted, and nothing else.
fn check_registry_policy_actions(text: &str, v1: bool) -> Result<(), EcrError> {
    let doc = PolicyDocument::parse(text, PolicyKind::EcrRegistry)
        .map_err(|e| EcrError::invalid(format!("Invalid registry policy provided: {e}")))?;
    if !v1 {
        for st in &doc.statements {
            for a in &st.action.patterns {
                let ecr = a.len() > 4 && a[..4].eq_ignore_ascii_case("ecr:");
                if !ecr {
                    return Err(EcrError::invalid(format!(
                        "Invalid registry policy provided: action '{a}' is not an ECR action"
                    )));
                }
            }
        }
        return Ok(());
    }
    for st in &doc.statements {
        if st.action.negated {
            return Err(EcrError::invalid(
                "Invalid registry policy provided: NotAction is not allowed in a registry policy",
            ));
        }
        for a in &st.action.patterns {
            let ok = a.eq_ignore_ascii_case("ecr:*")
                || REGISTRY_POLICY_ACTIONS
                    .iter()
                    .any(|allowed| a.eq_ignore_ascii_case(allowed));
            if !ok {
                return Err(EcrError::invalid(format!(
                    "Invalid registry policy provided: action '{a}' is not allowed in a registry policy (allowed: {})",
                    REGISTRY_POLICY_ACTIONS.join(", ")
                )));
            }
        }
    }
    Ok(())
}

pub async fn put_registry_policy(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let (account, _) = registry_setting(ctx, AccountSetting::RegistryPolicy).await?;
    let text = policy_text(input, PolicyKind::EcrRegistry, "registry")?;
    let scope = ctx
        .app
        .registry
        .account_flag(&account, berth_registry::AccountFlag::RegistryPolicyScope)
        .await?;
    check_registry_policy_actions(text, scope == "V1")?;
    set_registry_setting(
        ctx,
        &account,
        AccountSetting::RegistryPolicy,
        Some(text.to_string()),
    )
    .await?;
    Ok(json!({ "registryId": account, "policyText": text }))
}

fn no_registry_policy(account: &str) -> EcrError {
    EcrError::new(
        EcrException::RegistryPolicyNotFound,
        format!("Registry policy does not exist in the registry with id '{account}'"),
    )
}

pub async fn get_registry_policy(ctx: &Ctx, _input: &Input) -> Result<Value, EcrError> {
    let (account, v) = registry_setting(ctx, AccountSetting::RegistryPolicy).await?;
    let text = v.ok_or_else(|| no_registry_policy(&account))?;
    Ok(json!({ "registryId": account, "policyText": text }))
}

pub async fn delete_registry_policy(ctx: &Ctx, _input: &Input) -> Result<Value, EcrError> {
    let (account, v) = registry_setting(ctx, AccountSetting::RegistryPolicy).await?;
    let text = v.ok_or_else(|| no_registry_policy(&account))?;
    set_registry_setting(ctx, &account, AccountSetting::RegistryPolicy, None).await?;
    Ok(json!({ "registryId": account, "policyText": text }))
}

// ---- lifecycle policies ---------------------------------------------------------

pub async fn put_lifecycle_policy(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let text = input.req_str("lifecyclePolicyText")?;
    check_policy_text_length(text)
        .and_then(|_| LifecyclePolicy::parse(text))
        .map_err(|e| EcrError::invalid(e.to_string()))?;
    ctx.app
        .registry
        .set_lifecycle_policy(&repo, Some(text.to_string()))
        .await?;
    Ok(
        json!({ "registryId": repo.account_id, "repositoryName": repo.name, "lifecyclePolicyText": text }),
    )
}

fn no_lifecycle_policy(name: &str, account: &str) -> EcrError {
    EcrError::new(
        EcrException::LifecyclePolicyNotFound,
        format!("Lifecycle policy does not exist for the repository with name '{name}' in the registry with id '{account}'"),
    )
}

fn lifecycle_json(repo: &RepositoryRow, text: &str) -> Value {
    let mut v = json!({ "registryId": repo.account_id, "repositoryName": repo.name, "lifecyclePolicyText": text });
    if let Some(t) = repo.lifecycle_evaluated_at {
        v["lastEvaluatedAt"] = epoch_secs(t);
    }
    v
}

pub async fn get_lifecycle_policy(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let text = repo
        .lifecycle_policy
        .clone()
        .ok_or_else(|| no_lifecycle_policy(&repo.name, &repo.account_id))?;
    Ok(lifecycle_json(&repo, &text))
}

pub async fn delete_lifecycle_policy(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let text = repo
        .lifecycle_policy
        .clone()
        .ok_or_else(|| no_lifecycle_policy(&repo.name, &repo.account_id))?;
    ctx.app.registry.set_lifecycle_policy(&repo, None).await?;
    Ok(lifecycle_json(&repo, &text))
}

// ---- registry scanning and replication configuration ----------------------------

fn filters(
    v: Option<&Value>,
    allowed_type: &str,
    max: usize,
    min: usize,
) -> Result<Vec<Value>, EcrError> {
    let list = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            return Err(EcrError::new(
                EcrException::Serialization,
                "repositoryFilters must be a list",
            ))
        }
    };
    if list.len() < min || list.len() > max {
        return Err(EcrError::invalid(format!(
            "repositoryFilters must have between {min} and {max} entries"
        )));
    }
    let mut out = Vec::with_capacity(list.len());
    for f in list {
        let filter = f.get("filter").and_then(Value::as_str).unwrap_or("");
        let ft = f.get("filterType").and_then(Value::as_str).unwrap_or("");
        if ft != allowed_type {
            return Err(EcrError::invalid(format!(
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
            return Err(EcrError::invalid(format!(
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
fn is_prefix_filter(s: &str) -> bool {
    let segments: Vec<&str> = s.split('/').collect();
    let (last, init) = segments.split_last().expect("split yields one segment");
    let chars_ok = |seg: &str| seg.bytes().all(|b| filter_char(b) || b"._-".contains(&b));
    init.iter()
        .all(|seg| seg.bytes().next().is_some_and(filter_char) && chars_ok(seg))
        && chars_ok(last)
}

/// `^[a-z0-9*](?:[._\-/a-z0-9*]?[a-z0-9*]+)*$`: starts and ends with `[a-z0-9*]`, no two
/// separators (`._-/`) in a row.
fn is_wildcard_filter(s: &str) -> bool {
    let word = |b: u8| filter_char(b) || b == b'*';
    let b = s.as_bytes();
    !b.is_empty()
        && word(b[0])
        && word(b[b.len() - 1])
        && b.iter().all(|&c| word(c) || b"._-/".contains(&c))
        && b.windows(2).all(|w| word(w[0]) || word(w[1]))
}

fn default_scanning() -> Value {
    json!({ "scanType": "BASIC", "rules": [] })
}

pub async fn get_registry_scanning_configuration(
    ctx: &Ctx,
    _input: &Input,
) -> Result<Value, EcrError> {
    let (account, v) = registry_setting(ctx, AccountSetting::ScanningConfiguration).await?;
    let cfg = v
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(default_scanning);
    Ok(json!({ "registryId": account, "scanningConfiguration": cfg }))
}

pub async fn put_registry_scanning_configuration(
    ctx: &Ctx,
    input: &Input,
) -> Result<Value, EcrError> {
    let (account, _) = registry_setting(ctx, AccountSetting::ScanningConfiguration).await?;
    let scan_type = input.opt_str("scanType")?.unwrap_or("BASIC");
    if !matches!(scan_type, "BASIC" | "ENHANCED") {
        return Err(EcrError::invalid(format!(
            "Invalid parameter at 'scanType' failed to satisfy constraint: 'Member must satisfy enum value set: [BASIC, ENHANCED]' (got '{scan_type}')"
        )));
    }
    let rules = input.opt_array("rules")?.cloned().unwrap_or_default();
    if rules.len() > 2 {
        return Err(EcrError::invalid(
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
            return Err(EcrError::invalid(format!(
                "Invalid parameter at 'scanFrequency' failed to satisfy constraint: '{freq}' is not valid for scan type {scan_type}"
            )));
        }
        let f = filters(r.get("repositoryFilters"), "WILDCARD", 100, 1)?;
        out.push(json!({ "scanFrequency": freq, "repositoryFilters": f }));
    }
    let cfg = json!({ "scanType": scan_type, "rules": out });
    set_registry_setting(
        ctx,
        &account,
        AccountSetting::ScanningConfiguration,
        Some(cfg.to_string()),
    )
    .await?;
    Ok(json!({ "registryScanningConfiguration": cfg }))
}

/// ECR's limit on unique destinations over all rules of a replication configuration.
const MAX_REPLICATION_DESTINATIONS: usize = 25;

pub async fn put_replication_configuration(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let (account, _) = registry_setting(ctx, AccountSetting::ReplicationConfiguration).await?;
    let cfg = input
        .opt_object("replicationConfiguration")?
        .ok_or_else(|| {
            EcrError::invalid("Missing required parameter 'replicationConfiguration'")
        })?;
    let rules = match cfg.get("rules") {
        Some(Value::Array(a)) => a.clone(),
        _ => {
            return Err(EcrError::invalid(
                "replicationConfiguration.rules must be a list",
            ))
        }
    };
    if rules.len() > 10 {
        return Err(EcrError::invalid(
            "A replication configuration has at most 10 rules",
        ));
    }
    let config = &ctx.app.config;
    let mut unique = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(rules.len());
    for r in &rules {
        let dests = match r.get("destinations") {
            Some(Value::Array(a)) if !a.is_empty() && a.len() <= 100 => a,
            _ => {
                return Err(EcrError::invalid(
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
                return Err(EcrError::invalid(format!(
                    "Invalid replication destination (region '{region}', registryId '{reg}')"
                )));
            }
            if region == config.region && reg == account {
                return Err(EcrError::invalid(
                    "Replication destination cannot be the same as the source registry",
                ));
            }
            // A region is a berth deployment: this one, or a configured `[[peer]]`.
            if region != config.region && !config.peer_regions.iter().any(|p| p == region) {
                return Err(EcrError::validation(format!(
                    "Replication destination region '{region}' is not a known region: it is neither this registry's region ('{}') nor a configured peer",
                    config.region
                )));
            }
            unique.insert((region.to_string(), reg.to_string()));
            d_out.push(json!({ "region": region, "registryId": reg }));
        }
        let f = filters(r.get("repositoryFilters"), "PREFIX_MATCH", 100, 0)?;
        let mut rule = json!({ "destinations": d_out });
        if !f.is_empty() {
            rule["repositoryFilters"] = json!(f);
        }
        match r.get("deleteReplication") {
            None | Some(Value::Null) => {}
            Some(v) => match v.get("enabled") {
                Some(Value::Bool(on)) => rule["deleteReplication"] = json!({ "enabled": on }),
                _ => {
                    return Err(EcrError::new(
                        EcrException::Serialization,
                        "deleteReplication must be an object with a boolean 'enabled'",
                    ))
                }
            },
        }
        out.push(rule);
    }
    if unique.len() > MAX_REPLICATION_DESTINATIONS {
        return Err(EcrError::validation(format!(
            "A replication configuration has at most {MAX_REPLICATION_DESTINATIONS} unique destinations over all rules (got {})",
            unique.len()
        )));
    }
    let cfg = json!({ "rules": out });
    set_registry_setting(
        ctx,
        &account,
        AccountSetting::ReplicationConfiguration,
        Some(cfg.to_string()),
    )
    .await?;
    Ok(json!({ "replicationConfiguration": cfg }))
}

pub async fn describe_registry(ctx: &Ctx, _input: &Input) -> Result<Value, EcrError> {
    let (account, v) = registry_setting(ctx, AccountSetting::ReplicationConfiguration).await?;
    let cfg = v
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| json!({ "rules": [] }));
    Ok(json!({ "registryId": account, "replicationConfiguration": cfg }))
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

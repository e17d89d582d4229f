//! Pull-through cache rules: `Create|Describe|Update|DeletePullThroughCacheRule`
//! (botocore ECR model, Terraform's `aws_ecr_pull_through_cache_rule`). The front
//! end validates a rule — prefixes, the upstream URL (`host[:port]` over HTTPS, or
//! an explicit `http://host:port`), the upstream kind (inferred from the URL when not
//! given), the credential's ARN — and the core stores it
//! (`crates/registry/src/pull_through.rs`).

use berth_registry::{PullThroughRule, TEMPLATE_ROOT};
use serde_json::{json, Value};

use super::input::{check_len, page_after};
use super::{epoch_secs, Ctx, EcrError, EcrException, Input};
use berth_ecr_input::pull_through::{
    credential_arn, ecr_prefix, infer_kind, prefix_field, role_arn, valid_url, UPSTREAM_KINDS,
};

/// ECR's quota of rules per registry.
const MAX_RULES: usize = 50;

async fn authorize(ctx: &Ctx, input: &Input) -> Result<String, EcrError> {
    let account = ctx.registry_id(input)?;
    ctx.app
        .authorize(&ctx.caller, &ctx.action, &account, None, None)
        .await?;
    Ok(account)
}

fn not_found(prefix: &str, account: &str) -> EcrError {
    EcrError::new(
        EcrException::PullThroughCacheRuleNotFound,
        format!("The pull-through cache rule with prefix '{prefix}' does not exist in the registry with id '{account}'"),
    )
}

fn rule_json(account: &str, r: &PullThroughRule) -> Value {
    let mut v = json!({
        "ecrRepositoryPrefix": r.ecr_prefix,
        "upstreamRegistryUrl": r.upstream_url,
        "createdAt": epoch_secs(r.created_at),
        "updatedAt": epoch_secs(r.updated_at),
        "registryId": account,
    });
    if let Some(p) = &r.upstream_prefix {
        v["upstreamRepositoryPrefix"] = json!(p);
    }
    if !r.upstream_registry.is_empty() {
        v["upstreamRegistry"] = json!(r.upstream_registry);
    }
    if let Some(c) = &r.credential_arn {
        v["credentialArn"] = json!(c);
    }
    if let Some(c) = &r.custom_role_arn {
        v["customRoleArn"] = json!(c);
    }
    v
}

pub async fn create_pull_through_cache_rule(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let account = authorize(ctx, input).await?;
    let prefix = ecr_prefix(input)?;
    let url = input.req_str("upstreamRegistryUrl")?;
    check_len("upstreamRegistryUrl", url, 1, 512)?;
    if !valid_url(url) {
        return Err(EcrError::invalid(format!(
            "Invalid parameter at 'upstreamRegistryUrl' failed to satisfy constraint: 'must be host[:port], or http://host:port for an upstream without TLS' (got '{url}')"
        )));
    }
    let kind = match input.opt_str("upstreamRegistry")? {
        Some(k) if UPSTREAM_KINDS.contains(&k) => k.to_string(),
        Some(k) => {
            return Err(EcrError::invalid(format!(
                "Invalid parameter at 'upstreamRegistry' failed to satisfy constraint: 'Member must satisfy enum value set: [{}]' (got '{k}')",
                UPSTREAM_KINDS.join(", ")
            )))
        }
        None => infer_kind(url).unwrap_or("").to_string(),
    };
    let upstream_prefix = prefix_field(input, "upstreamRepositoryPrefix")?;
    if prefix == TEMPLATE_ROOT
        && upstream_prefix
            .as_deref()
            .is_some_and(|p| p != TEMPLATE_ROOT)
    {
        return Err(EcrError::invalid(
            "Invalid parameter: 'upstreamRepositoryPrefix' can only be set when 'ecrRepositoryPrefix' is not ROOT",
        ));
    }
    let rule = PullThroughRule {
        ecr_prefix: prefix.clone(),
        upstream_url: url.to_string(),
        upstream_registry: kind,
        credential_arn: credential_arn(input)?,
        custom_role_arn: role_arn(input)?,
        upstream_prefix,
        created_at: 0,
        updated_at: 0,
    };
    if ctx.app.registry.pull_through_rules(&account).await?.len() >= MAX_RULES {
        return Err(EcrError::new(
            EcrException::LimitExceeded,
            format!("A registry can have at most {MAX_RULES} pull-through cache rules"),
        ));
    }
    let created = ctx
        .app
        .registry
        .create_pull_through_rule(&account, &rule)
        .await?
        .ok_or_else(|| {
            EcrError::new(
                EcrException::PullThroughCacheRuleAlreadyExists,
                format!("A pull-through cache rule with prefix '{prefix}' already exists in the registry with id '{account}'"),
            )
        })?;
    let mut v = rule_json(&account, &created);
    if let Some(o) = v.as_object_mut() {
        o.remove("updatedAt");
    }
    Ok(v)
}

pub async fn describe_pull_through_cache_rules(
    ctx: &Ctx,
    input: &Input,
) -> Result<Value, EcrError> {
    let account = authorize(ctx, input).await?;
    let all = ctx.app.registry.pull_through_rules(&account).await?;
    let wanted: Option<Vec<String>> = match input.opt_array("ecrRepositoryPrefixes")? {
        None => None,
        Some(list) => {
            if list.is_empty() || list.len() > 100 {
                return Err(EcrError::invalid(
                    "Invalid parameter at 'ecrRepositoryPrefixes' failed to satisfy constraint: 'Member must have between 1 and 100 items'",
                ));
            }
            let mut out = Vec::with_capacity(list.len());
            for v in list {
                let p = v.as_str().unwrap_or("");
                if !all.iter().any(|r| r.ecr_prefix == p) {
                    return Err(not_found(p, &account));
                }
                out.push(p.to_string());
            }
            Some(out)
        }
    };
    let (page, next) = page_after(
        input,
        &all,
        |r: &PullThroughRule| &r.ecr_prefix,
        |r| wanted.as_ref().is_none_or(|w| w.contains(&r.ecr_prefix)),
        1000,
        100,
    )?;
    let mut v = json!({
        "pullThroughCacheRules": page.iter().map(|r| rule_json(&account, r)).collect::<Vec<_>>(),
    });
    if let Some(n) = next {
        v["nextToken"] = json!(n);
    }
    Ok(v)
}

pub async fn update_pull_through_cache_rule(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let account = authorize(ctx, input).await?;
    let prefix = ecr_prefix(input)?;
    let credential = credential_arn(input)?;
    let role = role_arn(input)?;
    let all = ctx.app.registry.pull_through_rules(&account).await?;
    let mut rule = all
        .into_iter()
        .find(|r| r.ecr_prefix == prefix)
        .ok_or_else(|| not_found(&prefix, &account))?;
    if input.get("credentialArn").is_some() {
        rule.credential_arn = credential;
    }
    if input.get("customRoleArn").is_some() {
        rule.custom_role_arn = role;
    }
    let r = ctx
        .app
        .registry
        .update_pull_through_rule(&account, &rule)
        .await?
        .ok_or_else(|| not_found(&prefix, &account))?;
    let mut v = json!({
        "ecrRepositoryPrefix": r.ecr_prefix,
        "registryId": account,
        "updatedAt": epoch_secs(r.updated_at),
    });
    if let Some(p) = &r.upstream_prefix {
        v["upstreamRepositoryPrefix"] = json!(p);
    }
    if let Some(c) = &r.credential_arn {
        v["credentialArn"] = json!(c);
    }
    if let Some(c) = &r.custom_role_arn {
        v["customRoleArn"] = json!(c);
    }
    Ok(v)
}

pub async fn delete_pull_through_cache_rule(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let account = authorize(ctx, input).await?;
    let prefix = ecr_prefix(input)?;
    let r = ctx
        .app
        .registry
        .delete_pull_through_rule(&account, &prefix)
        .await?
        .ok_or_else(|| not_found(&prefix, &account))?;
    // The model's DeletePullThroughCacheRuleResponse has neither `updatedAt` nor
    // `upstreamRegistry`.
    let mut v = rule_json(&account, &r);
    if let Some(o) = v.as_object_mut() {
        o.remove("updatedAt");
        o.remove("upstreamRegistry");
    }
    Ok(v)
}

/// Reads the rule's credential and authenticates to its upstream (`GET /v2/`).
pub async fn validate_pull_through_cache_rule(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let account = authorize(ctx, input).await?;
    let prefix = ecr_prefix(input)?;
    let rule = ctx
        .app
        .registry
        .pull_through_rules(&account)
        .await?
        .into_iter()
        .find(|r| r.ecr_prefix == prefix)
        .ok_or_else(|| not_found(&prefix, &account))?;
    let failure = ctx
        .app
        .registry
        .validate_pull_through_rule(&account, &rule)
        .await;
    let mut v = json!({
        "ecrRepositoryPrefix": rule.ecr_prefix,
        "registryId": account,
        "upstreamRegistryUrl": rule.upstream_url,
        "isValid": failure.is_none(),
    });
    if let Some(p) = &rule.upstream_prefix {
        v["upstreamRepositoryPrefix"] = json!(p);
    }
    if let Some(c) = &rule.credential_arn {
        v["credentialArn"] = json!(c);
    }
    if let Some(c) = &rule.custom_role_arn {
        v["customRoleArn"] = json!(c);
    }
    if let Some(f) = failure {
        v["failure"] = json!(f);
    }
    Ok(v)
}

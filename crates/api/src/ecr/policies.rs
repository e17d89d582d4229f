//! Policy and configuration documents: repository and registry policies, lifecycle
//! policies (validated here, evaluated by the lifecycle worker), the registry
//! scanning configuration and the replication configuration (botocore ECR model).

use berth_iam::policy::{PolicyDocument, PolicyKind};
use berth_lifecycle::{check_policy_text_length, LifecyclePolicy};
use berth_registry::{AccountSetting, RepositoryRow};
use serde_json::{json, Value};

use super::input::{check_len, InputError};
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
    let cfg = berth_ecr_input::registry_config::scanning_configuration(input)?;
    set_registry_setting(
        ctx,
        &account,
        AccountSetting::ScanningConfiguration,
        Some(cfg.to_string()),
    )
    .await?;
    Ok(json!({ "registryScanningConfiguration": cfg }))
}

pub async fn put_replication_configuration(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let (account, _) = registry_setting(ctx, AccountSetting::ReplicationConfiguration).await?;
    let config = &ctx.app.config;
    let cfg = berth_ecr_input::registry_config::replication_configuration(input, |region, reg| {
        if region == config.region && reg == account {
            return Err(InputError::invalid(
                "Replication destination cannot be the same as the source registry",
            ));
        }
        // A region is a berth deployment: this one, or a configured `[[peer]]`.
        if region != config.region && !config.peer_regions.iter().any(|p| p == region) {
            return Err(InputError::validation(format!(
                "Replication destination region '{region}' is not a known region: it is neither this registry's region ('{}') nor a configured peer",
                config.region
            )));
        }
        Ok(())
    })?;
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

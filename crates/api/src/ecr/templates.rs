//! Repository creation templates: `Create|Describe|Update|DeleteRepositoryCreationTemplate`
//! (botocore ECR model). The front end validates a template (prefix, `appliedFor`,
//! encryption — resolving a KMS key to its ARN —, tags, mutability, both policies)
//! and the core stores and applies it (`crates/registry/src/templates.rs`).

use berth_registry::{CreationPurpose, CreationTemplate, TagMutability};
use serde_json::{json, Value};

use super::input::{check_len, page_after};
use super::repos::parse_mutability;
use super::{epoch_secs, Ctx, EcrError, EcrException, Input};
use berth_ecr_input::tags::parse_tags;
use berth_ecr_input::templates::{lifecycle_policy, prefix, repository_policy, valid_prefix};

fn applied_for(input: &Input) -> Result<Option<Vec<String>>, EcrError> {
    let Some(list) = input.opt_array("appliedFor")? else {
        return Ok(None);
    };
    let mut out: Vec<String> = Vec::new();
    for v in list {
        let s = v.as_str().unwrap_or("");
        let p = CreationPurpose::parse(s).ok_or_else(|| {
            EcrError::invalid(format!(
                "Invalid parameter at 'appliedFor' failed to satisfy constraint: 'Member must satisfy enum value set: [REPLICATION, PULL_THROUGH_CACHE, CREATE_ON_PUSH]' (got '{s}')"
            ))
        })?;
        if !out.iter().any(|o| o == p.as_str()) {
            out.push(p.as_str().to_string());
        }
    }
    if out.is_empty() {
        return Err(EcrError::invalid(
            "Invalid parameter at 'appliedFor' failed to satisfy constraint: 'Member must have at least 1 item'",
        ));
    }
    Ok(Some(out))
}

/// `encryptionConfiguration`, with a KMS key resolved to its ARN (the account's
/// `aws/ecr` key when none is named), as `CreateRepository` does.
async fn encryption(
    ctx: &Ctx,
    account: &str,
    input: &Input,
) -> Result<Option<(String, Option<String>)>, EcrError> {
    let Some(o) = input.opt_object("encryptionConfiguration")? else {
        return Ok(None);
    };
    let t = o
        .get("encryptionType")
        .and_then(Value::as_str)
        .unwrap_or("");
    let key = o
        .get("kmsKey")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty());
    match t {
        "AES256" => {
            if key.is_some() {
                return Err(EcrError::invalid(
                    "Invalid parameter at 'encryptionConfiguration' failed to satisfy constraint: 'kmsKey can only be specified when encryptionType is KMS or KMS_DSSE'",
                ));
            }
            Ok(Some(("AES256".into(), None)))
        }
        "KMS" | "KMS_DSSE" => {
            if let Some(k) = key {
                check_len("kmsKey", k, 1, 2048)?;
            }
            let wanted = key.unwrap_or(berth_registry::kms::ECR_DEFAULT_ALIAS);
            let found = ctx.app.registry.resolve_kms_key(account, wanted).await?;
            let k = found
                .ok_or_else(|| EcrError::kms(format!("KMS key {wanted} was not found")))?;
            let arn = berth_registry::kms::key_arn(&ctx.app.config.region, &k);
            Ok(Some((t.to_string(), Some(arn))))
        }
        other => Err(EcrError::invalid(format!(
            "Invalid parameter at 'encryptionType' failed to satisfy constraint: 'Member must satisfy enum value set: [AES256, KMS, KMS_DSSE]' (got '{other}')"
        ))),
    }
}

/// Applies every field `input` carries to `t`.
async fn apply_input(
    ctx: &Ctx,
    account: &str,
    input: &Input,
    t: &mut CreationTemplate,
) -> Result<(), EcrError> {
    if let Some(d) = input.opt_len("description", 0, 256)? {
        t.description = (!d.is_empty()).then(|| d.to_string());
    }
    if let Some(a) = applied_for(input)? {
        t.applied_for = a;
    }
    if let Some((ty, key)) = encryption(ctx, account, input).await? {
        t.encryption_type = ty;
        t.kms_key = key;
    }
    if input.get("resourceTags").is_some() {
        t.resource_tags = parse_tags(input.opt_array("resourceTags")?)?;
    }
    if let Some((mode, ex)) = parse_mutability(input)? {
        t.tag_mutability = mode.as_str().to_string();
        t.exclusions = ex;
    }
    if let Some(p) = repository_policy(input)? {
        t.repository_policy = p;
    }
    if let Some(p) = lifecycle_policy(input)? {
        t.lifecycle_policy = p;
    }
    if let Some(r) = input.opt_len("customRoleArn", 0, 2048)? {
        t.custom_role_arn = (!r.is_empty()).then(|| r.to_string());
    }
    Ok(())
}

fn template_json(t: &CreationTemplate) -> Value {
    let mut enc = json!({ "encryptionType": t.encryption_type });
    if let Some(k) = &t.kms_key {
        enc["kmsKey"] = json!(k);
    }
    let mut v = json!({
        "prefix": t.prefix,
        "encryptionConfiguration": enc,
        "resourceTags": t.resource_tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>(),
        "imageTagMutability": t.tag_mutability,
        "appliedFor": t.applied_for,
        "createdAt": epoch_secs(t.created_at),
        "updatedAt": epoch_secs(t.updated_at),
    });
    if !t.exclusions.is_empty() {
        v["imageTagMutabilityExclusionFilters"] = json!(t.exclusions);
    }
    for (name, field) in [
        ("description", &t.description),
        ("repositoryPolicy", &t.repository_policy),
        ("lifecyclePolicy", &t.lifecycle_policy),
        ("customRoleArn", &t.custom_role_arn),
    ] {
        if let Some(s) = field {
            v[name] = json!(s);
        }
    }
    v
}

async fn authorize(ctx: &Ctx) -> Result<String, EcrError> {
    let account = ctx.caller.account_id.clone();
    ctx.app
        .authorize(&ctx.caller, &ctx.action, &account, None, None)
        .await?;
    Ok(account)
}

fn not_found(prefix: &str, account: &str) -> EcrError {
    EcrError::new(
        EcrException::TemplateNotFound,
        format!("The repository creation template with prefix '{prefix}' does not exist in the registry with id '{account}'"),
    )
}

pub async fn create_repository_creation_template(
    ctx: &Ctx,
    input: &Input,
) -> Result<Value, EcrError> {
    let account = authorize(ctx).await?;
    let prefix = prefix(input)?;
    if input.get("appliedFor").is_none() {
        return Err(EcrError::invalid(
            "Invalid parameter at 'appliedFor' failed to satisfy constraint: 'Member must not be null'",
        ));
    }
    let mut t = CreationTemplate {
        prefix: prefix.clone(),
        description: None,
        encryption_type: "AES256".into(),
        kms_key: None,
        resource_tags: Vec::new(),
        tag_mutability: TagMutability::Mutable.as_str().into(),
        exclusions: Vec::new(),
        repository_policy: None,
        lifecycle_policy: None,
        applied_for: Vec::new(),
        custom_role_arn: None,
        created_at: 0,
        updated_at: 0,
    };
    apply_input(ctx, &account, input, &mut t).await?;
    let created = ctx
        .app
        .registry
        .create_creation_template(&account, &t)
        .await?
        .ok_or_else(|| {
            EcrError::new(
                EcrException::TemplateAlreadyExists,
                format!("The repository creation template with prefix '{prefix}' already exists in the registry with id '{account}'"),
            )
        })?;
    Ok(json!({ "registryId": account, "repositoryCreationTemplate": template_json(&created) }))
}

pub async fn update_repository_creation_template(
    ctx: &Ctx,
    input: &Input,
) -> Result<Value, EcrError> {
    let account = authorize(ctx).await?;
    let prefix = prefix(input)?;
    let all = ctx.app.registry.creation_templates(&account).await?;
    let mut t = all
        .into_iter()
        .find(|t| t.prefix == prefix)
        .ok_or_else(|| not_found(&prefix, &account))?;
    apply_input(ctx, &account, input, &mut t).await?;
    let updated = ctx
        .app
        .registry
        .update_creation_template(&account, &t)
        .await?
        .ok_or_else(|| not_found(&prefix, &account))?;
    Ok(json!({ "registryId": account, "repositoryCreationTemplate": template_json(&updated) }))
}

pub async fn delete_repository_creation_template(
    ctx: &Ctx,
    input: &Input,
) -> Result<Value, EcrError> {
    let account = authorize(ctx).await?;
    let prefix = prefix(input)?;
    let t = ctx
        .app
        .registry
        .delete_creation_template(&account, &prefix)
        .await?
        .ok_or_else(|| not_found(&prefix, &account))?;
    Ok(json!({ "registryId": account, "repositoryCreationTemplate": template_json(&t) }))
}

/// Describe: every template, or those named by `prefixes` (a prefix without a
/// template is left out, as for ECR's other filtered lists), in prefix order,
/// paginated by `maxResults` / `nextToken`.
pub async fn describe_repository_creation_templates(
    ctx: &Ctx,
    input: &Input,
) -> Result<Value, EcrError> {
    let account = authorize(ctx).await?;
    let wanted: Option<Vec<String>> = match input.opt_array("prefixes")? {
        None => None,
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for v in list {
                let p = v.as_str().unwrap_or("");
                if p.is_empty() || p.len() > 256 || !valid_prefix(p) {
                    return Err(EcrError::invalid(format!(
                        "Invalid parameter at 'prefixes' failed to satisfy constraint: 'invalid prefix' (got '{p}')"
                    )));
                }
                out.push(p.to_string());
            }
            Some(out)
        }
    };
    let all = ctx.app.registry.creation_templates(&account).await?;
    let (page, next) = page_after(
        input,
        &all,
        |t: &CreationTemplate| &t.prefix,
        |t| wanted.as_ref().is_none_or(|w| w.contains(&t.prefix)),
        1000,
        1000,
    )?;
    let mut v = json!({
        "registryId": account,
        "repositoryCreationTemplates": page.iter().map(|t| template_json(t)).collect::<Vec<_>>(),
    });
    if let Some(n) = next {
        v["nextToken"] = json!(n);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::valid_prefix;

    #[test]
    fn prefixes() {
        for ok in [
            "ROOT",
            "prod",
            "prod/",
            "prod/team-a",
            "a.b/c__d",
            "x--y/z_1",
        ] {
            assert!(valid_prefix(ok), "{ok}");
        }
        for bad in [
            "", "/", "Prod", "prod//x", "-a", "a-", "a___b", "a/.b", "ROOT/",
        ] {
            assert!(!valid_prefix(bad), "{bad}");
        }
    }
}

#[cfg(test)]
mod root_tests {
    #[test]
    fn the_pure_template_root_is_the_cores() {
        assert_eq!(
            berth_ecr_input::templates::TEMPLATE_ROOT,
            berth_registry::TEMPLATE_ROOT
        );
    }
}

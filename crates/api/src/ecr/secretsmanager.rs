//! The subset of AWS Secrets Manager (`secretsmanager.<Op>`, AWS JSON 1.1, SigV4
//! service `secretsmanager`) that pull-through cache credentials, the AWS CLI and
//! Terraform's `aws_secretsmanager_secret` / `aws_secretsmanager_secret_version`
//! use: CreateSecret, DescribeSecret, ListSecrets, GetSecretValue, PutSecretValue,
//! UpdateSecret, DeleteSecret (with a recovery window), RestoreSecret,
//! TagResource, UntagResource and GetResourcePolicy (berth keeps no resource
//! policies on secrets, so it never has one to return). Every call is authorized as
//! `secretsmanager:<Op>` on the secret's ARN. The core keeps the secrets
//! (`crates/registry/src/secrets_manager.rs`); values never reach a log.

use base64::Engine as _;
use berth_registry::secrets_manager::{NewSecret, Secret, SecretValue, SecretsError};
use serde_json::{json, Map, Value};

use super::{epoch_secs, Ctx, EcrError, EcrException, Input};
use berth_ecr_input::secrets::{
    self as input_checks, filters_in, secret_id, secret_name, SecretValueIn,
};

fn invalid(msg: impl Into<String>) -> EcrError {
    input_checks::invalid(msg).into()
}

fn validation(field: &str, constraint: &str) -> EcrError {
    input_checks::validation(field, constraint).into()
}

/// `ClientRequestToken` (32–64 characters), or a fresh version id.
fn version_token(input: &Input) -> Result<String, EcrError> {
    Ok(input_checks::client_token(input)?.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()))
}

/// `SecretString` or `SecretBinary` (base64 on the wire), at most one, ≤ 64 KiB.
fn value_in(input: &Input) -> Result<Option<SecretValue>, EcrError> {
    Ok(input_checks::value_in(input)?.map(|v| match v {
        SecretValueIn::Text(t) => SecretValue::Text(t),
        SecretValueIn::Binary(b) => SecretValue::Binary(b),
    }))
}

fn tags_in(list: &[Value]) -> Result<Vec<(String, String)>, EcrError> {
    Ok(input_checks::tags_in(list)?)
}

impl From<SecretsError> for EcrError {
    fn from(e: SecretsError) -> Self {
        use EcrException as X;
        let msg = e.to_string();
        match e {
            SecretsError::NotFound | SecretsError::ValueNotFound(_) => {
                EcrError::new(X::ResourceNotFound, msg)
            }
            SecretsError::Exists(_) => EcrError::new(X::ResourceExists, msg),
            SecretsError::InvalidRequest(_) => EcrError::new(X::InvalidRequest, msg),
            SecretsError::InvalidParameter(_) => EcrError::new(X::InvalidParameter, msg),
            SecretsError::Decryption => EcrError::new(X::DecryptionFailure, msg),
            SecretsError::Registry(r) => r.into(),
        }
    }
}

fn tags_json(tags: &[(String, String)]) -> Value {
    json!(tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect::<Vec<_>>())
}

fn stages_map(s: &Secret) -> Value {
    let mut m = Map::new();
    for v in &s.versions {
        m.insert(v.id.clone(), json!(v.stages));
    }
    Value::Object(m)
}

fn describe(s: &Secret) -> Value {
    let mut v = json!({
        "ARN": s.arn,
        "Name": s.name,
        "CreatedDate": epoch_secs(s.created_at),
        "LastChangedDate": epoch_secs(s.changed_at),
        "Tags": tags_json(&s.tags),
        "VersionIdsToStages": stages_map(s),
    });
    if let Some(d) = &s.description {
        v["Description"] = json!(d);
    }
    if let Some(k) = &s.kms_key_id {
        v["KmsKeyId"] = json!(k);
    }
    if let Some(d) = s.deletion_date {
        v["DeletedDate"] = epoch_secs(d);
    }
    v
}

/// Authorizes `secretsmanager:<Op>` on `resource` for the caller's account.
async fn authorize(ctx: &Ctx, resource: &str) -> Result<(), EcrError> {
    crate::policy::authorize(
        &ctx.app,
        &ctx.caller,
        &ctx.action,
        &ctx.caller.account_id,
        resource,
        None,
    )
    .await?;
    Ok(())
}

fn pattern_arn(ctx: &Ctx, name: &str) -> String {
    format!(
        "arn:aws:secretsmanager:{}:{}:secret:{name}",
        ctx.app.config.region, ctx.caller.account_id
    )
}

/// The secret `SecretId` names, after authorizing the call on it (on its ARN when
/// it exists, so a caller learns nothing about secrets it may not touch).
async fn target(ctx: &Ctx, input: &Input) -> Result<Secret, EcrError> {
    let id = secret_id(input)?;
    let found = ctx.app.registry.secret(&ctx.caller.account_id, id).await?;
    let resource = match &found {
        Some(s) => s.arn.clone(),
        None if id.starts_with("arn:") => id.to_string(),
        None => pattern_arn(ctx, id),
    };
    authorize(ctx, &resource).await?;
    found.ok_or_else(|| SecretsError::NotFound.into())
}

fn filters_match(s: &Secret, filters: &[(String, Vec<String>)]) -> bool {
    filters.iter().all(|(key, values)| {
        values.iter().any(|raw| {
            let (negate, want) = match raw.strip_prefix('!') {
                Some(w) => (true, w),
                None => (false, raw.as_str()),
            };
            let hit = |field: &str| field.starts_with(want);
            let m = match key.as_str() {
                "name" => hit(&s.name),
                "description" => s.description.as_deref().is_some_and(hit),
                "tag-key" => s.tags.iter().any(|(k, _)| hit(k)),
                "tag-value" => s.tags.iter().any(|(_, v)| hit(v)),
                _ => {
                    hit(&s.name)
                        || s.description.as_deref().is_some_and(hit)
                        || s.tags.iter().any(|(k, v)| hit(k) || hit(v))
                }
            };
            m != negate
        })
    })
}

/// Serves the Secrets Manager operation `ctx.op` (every row of the operation table
/// for this service, and unknown operations, which are authorized and refused).
pub async fn serve(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let account = ctx.caller.account_id.clone();
    let reg = &ctx.app.registry;
    match ctx.op.as_str() {
        "CreateSecret" => {
            let name = secret_name(input, "Name")?;
            authorize(ctx, &pattern_arn(ctx, &name)).await?;
            if input
                .opt_array("AddReplicaRegions")?
                .is_some_and(|a| !a.is_empty())
            {
                return Err(EcrError::new(
                    EcrException::InvalidRequest,
                    "berth keeps secrets in one region; AddReplicaRegions is not supported",
                ));
            }
            let value = value_in(input)?;
            let version = version_token(input)?;
            let new = NewSecret {
                name,
                description: input
                    .opt_len("Description", 0, 2048)?
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
                kms_key_id: input
                    .opt_len("KmsKeyId", 0, 2048)?
                    .filter(|k| !k.is_empty())
                    .map(str::to_string),
                tags: tags_in(input.opt_array("Tags")?.map(Vec::as_slice).unwrap_or(&[]))?,
                value: value.map(|v| (version.clone(), v)),
            };
            let has_value = new.value.is_some();
            let s = reg
                .create_secret(&account, &ctx.app.config.region, new)
                .await?;
            let mut v = json!({"ARN": s.arn, "Name": s.name});
            if has_value {
                v["VersionId"] = json!(version);
            }
            Ok(v)
        }
        "DescribeSecret" => Ok(describe(&target(ctx, input).await?)),
        "GetResourcePolicy" => {
            let s = target(ctx, input).await?;
            Ok(json!({"ARN": s.arn, "Name": s.name}))
        }
        "ListSecrets" => {
            authorize(ctx, &pattern_arn(ctx, "*")).await?;
            let max = match input.opt_i64("MaxResults")? {
                None => 100,
                Some(n) if (1..=100).contains(&n) => n as usize,
                Some(_) => {
                    return Err(validation(
                        "maxResults",
                        "Member must have value between 1 and 100",
                    ))
                }
            };
            let include_deleted = input.opt_bool("IncludePlannedDeletion")?.unwrap_or(false);
            let filters = filters_in(input)?;
            let after = match input.opt_str("NextToken")? {
                Some(t) => Some(super::input::decode_token(t)?),
                None => None,
            };
            let mut all: Vec<Secret> = reg
                .secrets(&account)
                .await?
                .into_iter()
                .filter(|s| include_deleted || s.deletion_date.is_none())
                .filter(|s| filters_match(s, &filters))
                .filter(|s| after.as_ref().is_none_or(|a| s.name.as_str() > a.as_str()))
                .collect();
            if input.opt_str("SortOrder")? == Some("desc") {
                all.reverse();
            }
            let next = (all.len() > max).then(|| {
                all.truncate(max);
                super::input::encode_token(&all[max - 1].name)
            });
            let list: Vec<Value> = all
                .iter()
                .map(|s| {
                    let mut d = describe(s);
                    if let (Some(o), m) = (d.as_object_mut(), stages_map(s)) {
                        o.remove("VersionIdsToStages");
                        o.insert("SecretVersionsToStages".into(), m);
                    }
                    d
                })
                .collect();
            let mut v = json!({ "SecretList": list });
            if let Some(n) = next {
                v["NextToken"] = json!(n);
            }
            Ok(v)
        }
        "GetSecretValue" => {
            let s = target(ctx, input).await?;
            let version_id = input.opt_len("VersionId", 32, 64)?;
            let stage = input.opt_len("VersionStage", 1, 256)?;
            let (s, v, value) = reg
                .secret_value(&account, &s.arn, version_id, stage)
                .await?;
            let mut out = json!({
                "ARN": s.arn,
                "Name": s.name,
                "VersionId": v.id,
                "VersionStages": v.stages,
                "CreatedDate": epoch_secs(v.created_at),
            });
            match value {
                SecretValue::Text(t) => out["SecretString"] = json!(t),
                SecretValue::Binary(b) => {
                    out["SecretBinary"] = json!(base64::engine::general_purpose::STANDARD.encode(b))
                }
            }
            Ok(out)
        }
        "PutSecretValue" => {
            let s = target(ctx, input).await?;
            let value = value_in(input)?
                .ok_or_else(|| invalid("You must provide either SecretString or SecretBinary."))?;
            let version = version_token(input)?;
            let stages = match input.opt_array("VersionStages")? {
                None => None,
                Some(a) if a.is_empty() || a.len() > 20 => {
                    return Err(validation(
                        "versionStages",
                        "Member must have length between 1 and 20",
                    ))
                }
                Some(a) => Some(
                    a.iter()
                        .map(|x| {
                            x.as_str()
                                .filter(|x| (1..=256).contains(&x.len()))
                                .map(str::to_string)
                                .ok_or_else(|| invalid("Invalid staging label"))
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            let (s, stages) = reg
                .put_secret_value(&account, &s.arn, &version, &value, stages)
                .await?;
            Ok(json!({
                "ARN": s.arn,
                "Name": s.name,
                "VersionId": version,
                "VersionStages": stages,
            }))
        }
        "UpdateSecret" => {
            let s = target(ctx, input).await?;
            let description = input.opt_len("Description", 0, 2048)?.map(str::to_string);
            let kms = input.opt_len("KmsKeyId", 0, 2048)?.map(str::to_string);
            let value = value_in(input)?;
            let now = ctx.now();
            let (s, ()) = reg
                .update_secret(&account, &s.arn, |s| {
                    if s.deletion_date.is_some() {
                        return Err(berth_registry::secrets_manager::marked_for_deletion());
                    }
                    if let Some(d) = &description {
                        s.description = Some(d.clone()).filter(|d| !d.is_empty());
                    }
                    if let Some(k) = &kms {
                        s.kms_key_id = Some(k.clone()).filter(|k| !k.is_empty());
                    }
                    s.changed_at = now;
                    Ok(())
                })
                .await?;
            let mut out = json!({"ARN": s.arn, "Name": s.name});
            if let Some(value) = value {
                let version = version_token(input)?;
                reg.put_secret_value(&account, &s.arn, &version, &value, None)
                    .await?;
                out["VersionId"] = json!(version);
            }
            Ok(out)
        }
        "DeleteSecret" => {
            let s = target(ctx, input).await?;
            let force = input
                .opt_bool("ForceDeleteWithoutRecovery")?
                .unwrap_or(false);
            let days = input.opt_i64("RecoveryWindowInDays")?;
            let days = match (force, days) {
                (true, Some(_)) => {
                    return Err(invalid(
                        "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
                    ))
                }
                (true, None) => None,
                (false, None) => Some(30),
                (false, Some(d)) if (7..=30).contains(&d) => Some(d),
                (false, Some(_)) => {
                    return Err(invalid(
                        "The recovery window must be between 7 and 30 days.",
                    ))
                }
            };
            let (s, date) = reg.delete_secret(&account, &s.arn, days).await?;
            Ok(json!({"ARN": s.arn, "Name": s.name, "DeletionDate": epoch_secs(date)}))
        }
        "RestoreSecret" => {
            let s = target(ctx, input).await?;
            let s = reg.restore_secret(&account, &s.arn).await?;
            Ok(json!({"ARN": s.arn, "Name": s.name}))
        }
        "TagResource" => {
            let s = target(ctx, input).await?;
            let list = input
                .opt_array("Tags")?
                .ok_or_else(|| invalid("Missing required parameter 'Tags'"))?;
            let add = tags_in(list)?;
            reg.update_secret(&account, &s.arn, |s| {
                for (k, v) in &add {
                    s.tags.retain(|(x, _)| x != k);
                    s.tags.push((k.clone(), v.clone()));
                }
                if s.tags.len() > 50 {
                    return Err(SecretsError::InvalidParameter(
                        "A secret can have at most 50 tags".into(),
                    ));
                }
                Ok(())
            })
            .await?;
            Ok(json!({}))
        }
        "UntagResource" => {
            let s = target(ctx, input).await?;
            let keys: Vec<String> = input
                .opt_array("TagKeys")?
                .ok_or_else(|| invalid("Missing required parameter 'TagKeys'"))?
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            reg.update_secret(&account, &s.arn, |s| {
                s.tags.retain(|(k, _)| !keys.contains(k));
                Ok(())
            })
            .await?;
            Ok(json!({}))
        }
        other => {
            authorize(ctx, &pattern_arn(ctx, "*")).await?;
            Err(EcrError::new(
                EcrException::InvalidRequest,
                format!("The Secrets Manager operation {other} is not supported by this registry."),
            ))
        }
    }
}

//! The subset of the AWS KMS API (`TrentService`, AWS JSON 1.1) that the AWS CLI and
//! Terraform's `aws_kms_key` / `aws_kms_alias` use, over berth-managed keys:
//! CreateKey, DescribeKey, ListKeys, Enable/DisableKey, Schedule/CancelKeyDeletion,
//! Enable/Disable/GetKeyRotationStatus, RotateKeyOnDemand, Get/PutKeyPolicy,
//! ListResourceTags, Tag/UntagResource, UpdateKeyDescription, and aliases
//! (Create/Update/Delete/ListAliases). Keys encrypt ECR repositories; the
//! cryptographic data-plane calls (Encrypt, Decrypt, GenerateDataKey) are not served.

use berth_registry::kms::key_arn;
use berth_registry::KmsKeyRow;
use serde_json::{json, Value};

use super::{epoch_secs, Ctx, EcrError, EcrException, Input};
use berth_ecr_input::kms::{alias_name, tags_in};

fn not_found(id: &str) -> EcrError {
    EcrError::new(EcrException::NotFound, format!("Key '{id}' does not exist"))
}

fn default_policy(account: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": { "AWS": format!("arn:aws:iam::{account}:root") },
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
    .to_string()
}

fn metadata(ctx: &Ctx, k: &KmsKeyRow) -> Value {
    let mut v = json!({
        "AWSAccountId": k.account_id,
        "KeyId": k.key_id,
        "Arn": key_arn(&ctx.app.config.region, k),
        "CreationDate": epoch_secs(k.created_at),
        "Enabled": k.key_state == "Enabled",
        "Description": k.description,
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeyState": k.key_state,
        "Origin": "AWS_KMS",
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "KeySpec": "SYMMETRIC_DEFAULT",
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "MultiRegion": false,
    });
    if let Some(d) = k.deletion_date {
        v["DeletionDate"] = epoch_secs(d);
    }
    v
}

/// Authorizes the operation's action (`kms:<Op>`, from the operation table) on the
/// caller's keys.
async fn authorize(ctx: &Ctx) -> Result<String, EcrError> {
    let account = ctx.caller.account_id.clone();
    let resource = format!("arn:aws:kms:{}:{account}:key/*", ctx.app.config.region);
    crate::policy::authorize(
        &ctx.app,
        &ctx.caller,
        &ctx.action,
        &account,
        &resource,
        None,
    )
    .await?;
    Ok(account)
}

async fn key(ctx: &Ctx, account: &str, input: &Input) -> Result<KmsKeyRow, EcrError> {
    let id = input.req_str("KeyId")?;
    ctx.app
        .registry
        .resolve_kms_key(account, id)
        .await?
        .ok_or_else(|| not_found(id))
}

fn tags_json(tags: &[(String, String)]) -> String {
    json!(tags
        .iter()
        .map(|(k, v)| json!({"TagKey": k, "TagValue": v}))
        .collect::<Vec<_>>())
    .to_string()
}

fn stored_tags(k: &KmsKeyRow) -> Vec<(String, String)> {
    serde_json::from_str::<Vec<Value>>(&k.tags)
        .unwrap_or_default()
        .iter()
        .filter_map(|t| {
            Some((
                t.get("TagKey")?.as_str()?.to_string(),
                t.get("TagValue")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Serves the KMS operation `ctx.op` (every KMS row of the operation table, and
/// unknown KMS operations, which are authorized and then refused).
pub async fn serve(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let account = authorize(ctx).await?;
    let reg = &ctx.app.registry;
    let op = ctx.op.as_str();
    match op {
        "CreateKey" => {
            let usage = input.opt_str("KeyUsage")?.unwrap_or("ENCRYPT_DECRYPT");
            let spec = input
                .opt_str("KeySpec")?
                .or(input.opt_str("CustomerMasterKeySpec")?)
                .unwrap_or("SYMMETRIC_DEFAULT");
            if usage != "ENCRYPT_DECRYPT" || spec != "SYMMETRIC_DEFAULT" {
                return Err(EcrError::new(
                    EcrException::UnsupportedOperation,
                    "berth manages symmetric ENCRYPT_DECRYPT keys only",
                ));
            }
            if input.opt_bool("MultiRegion")?.unwrap_or(false) {
                return Err(EcrError::new(
                    EcrException::UnsupportedOperation,
                    "multi-Region keys are not supported",
                ));
            }
            let description = input.opt_len("Description", 0, 8192)?.unwrap_or("");
            let policy = match input.opt_len("Policy", 1, 32768)? {
                Some(p) => {
                    serde_json::from_str::<Value>(p).map_err(|_| {
                        EcrError::new(
                            EcrException::MalformedPolicyDocument,
                            "The key policy is not valid JSON",
                        )
                    })?;
                    p.to_string()
                }
                None => default_policy(&account),
            };
            let tags = tags_in(input)?;
            let k = reg
                .create_kms_key(&account, description, Some(&policy), &tags_json(&tags))
                .await?;
            Ok(json!({ "KeyMetadata": metadata(ctx, &k) }))
        }
        "DescribeKey" => {
            Ok(json!({ "KeyMetadata": metadata(ctx, &key(ctx, &account, input).await?) }))
        }
        "ListKeys" => {
            let keys = reg.list_kms_keys(&account).await?;
            Ok(json!({
                "Keys": keys.iter().map(|k| json!({"KeyId": k.key_id, "KeyArn": key_arn(&ctx.app.config.region, k)})).collect::<Vec<_>>(),
                "Truncated": false,
            }))
        }
        "EnableKey" | "DisableKey" => {
            let k = key(ctx, &account, input).await?;
            if k.key_state == "PendingDeletion" {
                return Err(EcrError::new(
                    EcrException::KmsInvalidState,
                    format!(
                        "{} is pending deletion.",
                        key_arn(&ctx.app.config.region, &k)
                    ),
                ));
            }
            let state = if op == "EnableKey" {
                "Enabled"
            } else {
                "Disabled"
            };
            reg.set_kms_key_state(&k, state, None).await?;
            Ok(json!({}))
        }
        "ScheduleKeyDeletion" => {
            let k = key(ctx, &account, input).await?;
            let days = input.opt_i64("PendingWindowInDays")?.unwrap_or(30);
            if !(7..=30).contains(&days) {
                return Err(EcrError::validation(
                    "1 validation error detected: Value at 'pendingWindowInDays' failed to satisfy constraint: Member must have value between 7 and 30",
                ));
            }
            let when = reg.now() + days * 86_400_000;
            reg.set_kms_key_state(&k, "PendingDeletion", Some(when))
                .await?;
            Ok(json!({
                "KeyId": key_arn(&ctx.app.config.region, &k),
                "DeletionDate": epoch_secs(when),
                "KeyState": "PendingDeletion",
                "PendingWindowInDays": days,
            }))
        }
        "CancelKeyDeletion" => {
            let k = key(ctx, &account, input).await?;
            if k.key_state != "PendingDeletion" {
                return Err(EcrError::new(
                    EcrException::KmsInvalidState,
                    "The key is not pending deletion.",
                ));
            }
            reg.set_kms_key_state(&k, "Disabled", None).await?;
            Ok(json!({ "KeyId": key_arn(&ctx.app.config.region, &k) }))
        }
        "EnableKeyRotation" | "DisableKeyRotation" => {
            let k = key(ctx, &account, input).await?;
            reg.set_kms_rotation(&k, op == "EnableKeyRotation").await?;
            Ok(json!({}))
        }
        "GetKeyRotationStatus" => {
            let k = key(ctx, &account, input).await?;
            let mut v = json!({
                "KeyRotationEnabled": k.rotation_enabled,
                "KeyId": key_arn(&ctx.app.config.region, &k),
            });
            if k.rotation_enabled {
                v["RotationPeriodInDays"] = json!(365);
            }
            Ok(v)
        }
        "RotateKeyOnDemand" => {
            let k = key(ctx, &account, input).await?;
            if k.key_state != "Enabled" {
                return Err(EcrError::new(
                    EcrException::Disabled,
                    format!("{} is disabled.", key_arn(&ctx.app.config.region, &k)),
                ));
            }
            reg.rotate_kms_key(&k, &ctx.app.config.region).await?;
            Ok(json!({ "KeyId": key_arn(&ctx.app.config.region, &k) }))
        }
        "GetKeyPolicy" => {
            let k = key(ctx, &account, input).await?;
            Ok(json!({
                "Policy": k.policy.clone().unwrap_or_else(|| default_policy(&account)),
                "PolicyName": "default",
            }))
        }
        "PutKeyPolicy" => {
            let k = key(ctx, &account, input).await?;
            let p = input.req_str("Policy")?;
            serde_json::from_str::<Value>(p).map_err(|_| {
                EcrError::new(
                    EcrException::MalformedPolicyDocument,
                    "The key policy is not valid JSON",
                )
            })?;
            reg.update_kms_key(&k, None, Some(p), None).await?;
            Ok(json!({}))
        }
        "UpdateKeyDescription" => {
            let k = key(ctx, &account, input).await?;
            let d = input.opt_len("Description", 0, 8192)?.unwrap_or("");
            reg.update_kms_key(&k, Some(d), None, None).await?;
            Ok(json!({}))
        }
        "ListResourceTags" => {
            let k = key(ctx, &account, input).await?;
            let tags = stored_tags(&k);
            Ok(json!({
                "Tags": tags.iter().map(|(k, v)| json!({"TagKey": k, "TagValue": v})).collect::<Vec<_>>(),
                "Truncated": false,
            }))
        }
        "TagResource" => {
            let k = key(ctx, &account, input).await?;
            let mut tags = stored_tags(&k);
            for (nk, nv) in tags_in(input)? {
                tags.retain(|(x, _)| *x != nk);
                tags.push((nk, nv));
            }
            if tags.len() > 50 {
                return Err(EcrError::new(
                    EcrException::Tag,
                    "A key can have at most 50 tags",
                ));
            }
            reg.update_kms_key(&k, None, None, Some(&tags_json(&tags)))
                .await?;
            Ok(json!({}))
        }
        "UntagResource" => {
            let k = key(ctx, &account, input).await?;
            let remove: Vec<String> = input
                .opt_array("TagKeys")?
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            let tags: Vec<(String, String)> = stored_tags(&k)
                .into_iter()
                .filter(|(x, _)| !remove.contains(x))
                .collect();
            reg.update_kms_key(&k, None, None, Some(&tags_json(&tags)))
                .await?;
            Ok(json!({}))
        }
        "CreateAlias" => {
            let name = alias_name(input)?;
            let target = input.req_str("TargetKeyId")?;
            let k = reg
                .resolve_kms_key(&account, target)
                .await?
                .ok_or_else(|| not_found(target))?;
            if !reg.create_kms_alias(&account, &name, &k).await? {
                return Err(EcrError::new(
                    EcrException::AlreadyExists,
                    format!(
                        "An alias with the name arn:aws:kms:{}:{account}:{name} already exists",
                        ctx.app.config.region
                    ),
                ));
            }
            Ok(json!({}))
        }
        "UpdateAlias" => {
            let name = alias_name(input)?;
            let target = input.req_str("TargetKeyId")?;
            let k = reg
                .resolve_kms_key(&account, target)
                .await?
                .ok_or_else(|| not_found(target))?;
            if !reg.update_kms_alias(&account, &name, &k).await? {
                return Err(EcrError::new(
                    EcrException::NotFound,
                    format!("Alias {name} is not found."),
                ));
            }
            Ok(json!({}))
        }
        "DeleteAlias" => {
            let name = alias_name(input)?;
            if !reg.delete_kms_alias(&account, &name).await? {
                return Err(EcrError::new(
                    EcrException::NotFound,
                    format!("Alias {name} is not found."),
                ));
            }
            Ok(json!({}))
        }
        "ListAliases" => {
            let filter = match input.opt_str("KeyId")? {
                Some(id) => Some(
                    reg.resolve_kms_key(&account, id)
                        .await?
                        .ok_or_else(|| not_found(id))?
                        .key_id,
                ),
                None => None,
            };
            let region = &ctx.app.config.region;
            let aliases: Vec<Value> = reg
                .list_kms_aliases(&account)
                .await?
                .into_iter()
                .filter(|(_, k, _)| filter.as_ref().is_none_or(|f| f == k))
                .map(|(name, k, created)| {
                    json!({
                        "AliasName": name,
                        "AliasArn": format!("arn:aws:kms:{region}:{account}:{name}"),
                        "TargetKeyId": k,
                        "CreationDate": epoch_secs(created),
                        "LastUpdatedDate": epoch_secs(created),
                    })
                })
                .collect();
            Ok(json!({ "Aliases": aliases, "Truncated": false }))
        }
        other => Err(EcrError::new(
            EcrException::UnsupportedOperation,
            format!("The KMS operation {other} is not supported by this registry."),
        )),
    }
}

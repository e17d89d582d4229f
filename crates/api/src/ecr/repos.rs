//! Repository operations: CreateRepository, DescribeRepositories, DeleteRepository,
//! PutImageTagMutability, PutImageScanningConfiguration, resource tags, and
//! GetAuthorizationToken (botocore ECR model).

use berth_registry::{
    AuthzError, ExclusionFilter, RegistryError, RepoSettings, RepositoryRow, TagMutability,
};
use serde_json::{json, Value};

use crate::policy::RequestKeys;

use super::input::{check_len, decode_token, encode_token, parse_repository_name};
use super::{epoch_secs, Ctx, EcrError, EcrException, Input};
use berth_ecr_input::tags::{parse_tags, MAX_TAGS};

/// The `Repository` shape.
pub fn repository_json(ctx: &Ctx, r: &RepositoryRow) -> Value {
    let app = &ctx.app;
    let mut v = json!({
        "repositoryArn": app.repository_arn(&r.account_id, &r.name),
        "registryId": r.account_id,
        "repositoryName": r.name,
        "repositoryUri": format!("{}/{}", app.registry_host(&r.account_id), r.name),
        "createdAt": epoch_secs(r.created_at),
        "imageTagMutability": r.tag_mutability,
        "imageScanningConfiguration": { "scanOnPush": r.scan_on_push },
        "encryptionConfiguration": { "encryptionType": r.encryption_type },
    });
    if let Some(k) = &r.kms_key {
        v["encryptionConfiguration"]["kmsKey"] = json!(k);
    }
    if let Ok(ex) = serde_json::from_str::<Vec<ExclusionFilter>>(&r.mutability_exclusions) {
        if !ex.is_empty() {
            v["imageTagMutabilityExclusionFilters"] = json!(ex);
        }
    }
    v
}

/// Looks a repository up for an operation after authorizing the operation's action
/// on it.
pub async fn repo_for(ctx: &Ctx, input: &Input) -> Result<RepositoryRow, EcrError> {
    let account = ctx.registry_id(input)?;
    let name = input.repository_name()?;
    authorized_repo(ctx, &account, &name).await
}

/// Looks `name` up in `account` and authorizes the operation's action on it (with
/// the repository policy when the repository exists); RepositoryNotFoundException
/// otherwise.
async fn authorized_repo(
    ctx: &Ctx,
    account: &str,
    name: &berth_oci::RepositoryName,
) -> Result<RepositoryRow, EcrError> {
    authorized_repo_with(ctx, account, name, &RequestKeys::default()).await
}

/// [`authorized_repo`] with the request's own condition keys.
async fn authorized_repo_with(
    ctx: &Ctx,
    account: &str,
    name: &berth_oci::RepositoryName,
    keys: &RequestKeys<'_>,
) -> Result<RepositoryRow, EcrError> {
    let found = ctx.app.registry.find_repository(account, name).await?;
    ctx.app
        .authorize_with_keys(
            &ctx.caller,
            &ctx.action,
            account,
            name.as_str(),
            found.as_ref().and_then(|r| r.policy.as_deref()),
            keys,
        )
        .await?;
    found.ok_or_else(|| {
        RegistryError::NameUnknown {
            account: account.to_string(),
            name: name.to_string(),
        }
        .into()
    })
}

pub(super) fn parse_mutability(
    input: &Input,
) -> Result<Option<(TagMutability, Vec<ExclusionFilter>)>, EcrError> {
    let Some(m) = input.opt_str("imageTagMutability")? else {
        if input.get("imageTagMutabilityExclusionFilters").is_some() {
            return Err(EcrError::invalid(
                "imageTagMutabilityExclusionFilters requires imageTagMutability IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION",
            ));
        }
        return Ok(None);
    };
    let mode = TagMutability::parse(m).ok_or_else(|| {
        EcrError::invalid(format!(
            "Invalid parameter at 'imageTagMutability' failed to satisfy constraint: 'Member must satisfy enum value set: [MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION]' (got '{m}')"
        ))
    })?;
    let filters = input.opt_array("imageTagMutabilityExclusionFilters")?;
    let mut ex = Vec::new();
    if let Some(list) = filters {
        if list.is_empty() || list.len() > 5 {
            return Err(EcrError::invalid(
                "imageTagMutabilityExclusionFilters must have between 1 and 5 filters",
            ));
        }
        for f in list {
            let ft = f.get("filterType").and_then(Value::as_str).unwrap_or("");
            let filter = f.get("filter").and_then(Value::as_str).unwrap_or("");
            if ft != "WILDCARD" {
                return Err(EcrError::invalid("filterType must be WILDCARD"));
            }
            check_len("filter", filter, 1, 128)?;
            let ok = filter
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._*-".contains(&b));
            if !ok || filter.matches('*').count() > 2 {
                return Err(EcrError::invalid(format!(
                    "Invalid exclusion filter '{filter}': use letters, digits, '.', '_', '-' and at most two '*' wildcards"
                )));
            }
            ex.push(ExclusionFilter {
                filter_type: ft.to_string(),
                filter: filter.to_string(),
            });
        }
    }
    match (mode.has_exclusions(), ex.is_empty()) {
        (true, true) => Err(EcrError::invalid(format!(
            "imageTagMutability {} requires imageTagMutabilityExclusionFilters",
            mode.as_str()
        ))),
        (false, false) => Err(EcrError::invalid(format!(
            "imageTagMutabilityExclusionFilters are not allowed with imageTagMutability {}",
            mode.as_str()
        ))),
        _ => Ok(Some((mode, ex))),
    }
}

pub async fn create_repository(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let account = ctx.registry_id(input)?;
    let name = input.repository_name()?;
    if let Some(origin) = &ctx.replicated_from {
        return create_replicated_repository(ctx, &account, &name, origin).await;
    }
    let tags = parse_tags(input.opt_array("tags")?)?;
    // Tags in the request are authorized as `aws:RequestTag/<key>` and
    // `aws:TagKeys` on the same action, as ECR does.
    ctx.app
        .authorize_with_keys(
            &ctx.caller,
            &ctx.action,
            &account,
            name.as_str(),
            None,
            &RequestKeys {
                request_tags: &tags,
                tag_keys: (!tags.is_empty()).then(|| tags.iter().map(|(k, _)| k.clone()).collect()),
                ..Default::default()
            },
        )
        .await?;
    let (mode, exclusions) =
        parse_mutability(input)?.unwrap_or((TagMutability::Mutable, Vec::new()));
    let scan_on_push = match input.opt_object("imageScanningConfiguration")? {
        Some(o) => match o.get("scanOnPush") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(EcrError::new(
                    EcrException::Serialization,
                    "scanOnPush must be a boolean",
                ))
            }
        },
        None => false,
    };
    let (encryption_type, kms_key) = match input.opt_object("encryptionConfiguration")? {
        None => ("AES256".to_string(), None),
        Some(o) => {
            let t = o
                .get("encryptionType")
                .and_then(Value::as_str)
                .unwrap_or("");
            let key = o.get("kmsKey").and_then(Value::as_str);
            match t {
                "AES256" => {
                    if key.is_some() {
                        return Err(EcrError::invalid(
                            "Invalid parameter at 'encryptionConfiguration' failed to satisfy constraint: 'kmsKey can only be specified when encryptionType is KMS or KMS_DSSE'",
                        ));
                    }
                    ("AES256".to_string(), None)
                }
                "KMS" | "KMS_DSSE" => {
                    if let Some(k) = key {
                        check_len("kmsKey", k, 1, 2048)?;
                    }
                    // Resolve to the key's ARN (as ECR reports it); without a key,
                    // the account's aws/ecr key, created on first use.
                    let wanted = key.unwrap_or(berth_registry::kms::ECR_DEFAULT_ALIAS);
                    let found = ctx.app.registry.resolve_kms_key(&account, wanted).await?;
                    let k = found.ok_or_else(|| EcrError::kms(format!("KMS key {wanted} was not found")))?;
                    if k.key_state != "Enabled" {
                        return Err(EcrError::kms(format!(
                            "KMS key {wanted} is {} and cannot be used",
                            k.key_state
                        )));
                    }
                    let arn = berth_registry::kms::key_arn(&ctx.app.config.region, &k);
                    if key.is_some() {
                        // ECR uses a customer key on the caller's behalf: as in
                        // AWS, the caller needs kms:DescribeKey and kms:CreateGrant
                        // on it, evaluated with kms:ViaService naming ECR.
                        let keys = RequestKeys {
                            via_service: Some(format!(
                                "ecr.{}.amazonaws.com",
                                ctx.app.config.region
                            )),
                            ..Default::default()
                        };
                        for action in ["kms:DescribeKey", "kms:CreateGrant"] {
                            crate::policy::authorize_with(
                                &ctx.app,
                                &ctx.caller,
                                action,
                                &account,
                                &arn,
                                None,
                                &keys,
                            )
                            .await?;
                        }
                    }
                    (t.to_string(), Some(arn))
                }
                other => {
                    return Err(EcrError::invalid(format!(
                        "Invalid parameter at 'encryptionType' failed to satisfy constraint: 'Member must satisfy enum value set: [AES256, KMS, KMS_DSSE]' (got '{other}')"
                    )))
                }
            }
        }
    };
    let settings = RepoSettings {
        tag_mutability: mode,
        exclusions,
        scan_on_push,
        encryption_type,
        kms_key,
        tags,
    };
    let repo = ctx
        .app
        .registry
        .create_repository(&account, &name, &settings)
        .await?;
    Ok(json!({ "repository": repository_json(ctx, &repo) }))
}

pub async fn describe_repositories(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let account = ctx.registry_id(input)?;
    let names = input.opt_array("repositoryNames")?;
    let token = input.opt_str("nextToken")?;
    if let Some(names) = names {
        if input.get("maxResults").is_some() || token.is_some() {
            return Err(EcrError::invalid(
                "maxResults and nextToken cannot be used together with repositoryNames",
            ));
        }
        if names.is_empty() || names.len() > 100 {
            return Err(EcrError::invalid(
                "Invalid parameter at 'repositoryNames' failed to satisfy constraint: 'Member must have length between 1 and 100'",
            ));
        }
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let n = n.as_str().ok_or_else(|| {
                EcrError::new(
                    EcrException::Serialization,
                    "repositoryNames must be strings",
                )
            })?;
            let name = parse_repository_name(n, "repositoryNames")?;
            let r = authorized_repo(ctx, &account, &name).await?;
            out.push(repository_json(ctx, &r));
        }
        return Ok(json!({ "repositories": out }));
    }
    let max = input.max_results(1000, 100)? as usize;
    let after = token.map(decode_token).transpose()?;
    // Without names, the answer holds the repositories the caller may describe:
    // each is authorized on its own ARN with its policy and tags, so a policy
    // conditioned on `aws:ResourceTag/…` shows exactly the matching repositories.
    const PAGE: i64 = 200;
    let mut out: Vec<RepositoryRow> = Vec::new();
    let mut cursor = after;
    let mut more = false;
    'scan: loop {
        let rows = ctx
            .app
            .registry
            .list_repositories(&account, cursor.as_deref(), PAGE)
            .await?;
        let n = rows.len() as i64;
        for r in rows {
            if out.len() == max {
                more = true;
                break 'scan;
            }
            cursor = Some(r.name.clone());
            match ctx
                .app
                .authorize(
                    &ctx.caller,
                    &ctx.action,
                    &account,
                    Some(&r.name),
                    r.policy.as_deref(),
                )
                .await
            {
                Ok(()) => out.push(r),
                Err(berth_registry::AuthzError::Denied(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if n < PAGE {
            break;
        }
    }
    if out.is_empty() {
        // Nothing visible: a caller with no grant at all is refused, as before.
        ctx.app
            .authorize(&ctx.caller, &ctx.action, &account, None, None)
            .await?;
    }
    let mut v =
        json!({ "repositories": out.iter().map(|r| repository_json(ctx, r)).collect::<Vec<_>>() });
    if more {
        if let Some(last) = out.last() {
            v["nextToken"] = json!(encode_token(&last.name));
        }
    }
    Ok(v)
}

pub async fn delete_repository(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let force = input.opt_bool("force")?.unwrap_or(false);
    let out = repository_json(ctx, &repo);
    ctx.app.registry.delete_repository(&repo, force).await?;
    Ok(json!({ "repository": out }))
}

pub async fn put_image_tag_mutability(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    input.req_str("imageTagMutability")?;
    let (mode, ex) = parse_mutability(input)?.unwrap_or((TagMutability::Mutable, Vec::new()));
    ctx.app
        .registry
        .set_tag_mutability(&repo, mode, &ex)
        .await?;
    let mut v = json!({
        "registryId": repo.account_id,
        "repositoryName": repo.name,
        "imageTagMutability": mode.as_str(),
    });
    if !ex.is_empty() {
        v["imageTagMutabilityExclusionFilters"] = json!(ex);
    }
    Ok(v)
}

pub async fn put_image_scanning_configuration(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let cfg = input
        .opt_object("imageScanningConfiguration")?
        .ok_or_else(|| {
            EcrError::invalid("Missing required parameter 'imageScanningConfiguration'")
        })?;
    let on = match cfg.get("scanOnPush") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(EcrError::new(
                EcrException::Serialization,
                "scanOnPush must be a boolean",
            ))
        }
    };
    ctx.app.registry.set_scan_on_push(&repo, on).await?;
    Ok(json!({
        "registryId": repo.account_id,
        "repositoryName": repo.name,
        "imageScanningConfiguration": { "scanOnPush": on },
    }))
}

/// Resolves `resourceArn` to a repository, authorizing the operation's action.
async fn repo_by_arn(ctx: &Ctx, input: &Input) -> Result<RepositoryRow, EcrError> {
    repo_by_arn_with(ctx, input, &RequestKeys::default()).await
}

/// [`repo_by_arn`] with the request's own condition keys.
async fn repo_by_arn_with(
    ctx: &Ctx,
    input: &Input,
    keys: &RequestKeys<'_>,
) -> Result<RepositoryRow, EcrError> {
    let arn = input.req_str("resourceArn")?;
    let bad = || {
        EcrError::invalid(format!("Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN' (got '{arn}')"))
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "ecr" {
        return Err(bad());
    }
    let account = parts[4];
    let name = parts[5].strip_prefix("repository/").ok_or_else(bad)?;
    let name = parse_repository_name(name, "resourceArn")?;
    if !berth_iam::arn::is_account_id(account) {
        return Err(bad());
    }
    authorized_repo_with(ctx, account, &name, keys).await
}

pub async fn tag_resource(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let tags =
        parse_tags(Some(input.opt_array("tags")?.ok_or_else(|| {
            EcrError::invalid("Missing required parameter 'tags'")
        })?))?;
    let keys = RequestKeys {
        request_tags: &tags,
        tag_keys: Some(tags.iter().map(|(k, _)| k.clone()).collect()),
        ..Default::default()
    };
    let repo = repo_by_arn_with(ctx, input, &keys).await?;
    if !ctx
        .app
        .registry
        .tag_repository(&repo, &tags, MAX_TAGS as i64)
        .await?
    {
        return Err(EcrError::new(
            EcrException::TooManyTags,
            format!("A repository can have at most {MAX_TAGS} tags"),
        ));
    }
    Ok(json!({}))
}

pub async fn untag_resource(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let keys = input
        .opt_array("tagKeys")?
        .ok_or_else(|| EcrError::invalid("Missing required parameter 'tagKeys'"))?;
    let mut list = Vec::with_capacity(keys.len());
    for k in keys {
        let k = k.as_str().ok_or_else(|| {
            EcrError::new(
                EcrException::InvalidTagParameter,
                "tag keys must be strings",
            )
        })?;
        if k.is_empty() || k.chars().count() > 128 {
            return Err(EcrError::new(
                EcrException::InvalidTagParameter,
                "Tag keys must be 1-128 characters",
            ));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(EcrError::new(
                EcrException::InvalidTagParameter,
                "Tag keys starting with 'aws:' are reserved for AWS use",
            ));
        }
        list.push(k.to_string());
    }
    let keys = RequestKeys {
        request_tags: &[],
        tag_keys: Some(list.clone()),
        ..Default::default()
    };
    let repo = repo_by_arn_with(ctx, input, &keys).await?;
    ctx.app.registry.untag_repository(&repo, &list).await?;
    Ok(json!({}))
}

pub async fn list_tags_for_resource(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_by_arn(ctx, input).await?;
    let tags = ctx.app.registry.repository_tags(&repo).await?;
    Ok(json!({
        "tags": tags.into_iter().map(|(k, v)| json!({ "Key": k, "Value": v })).collect::<Vec<_>>()
    }))
}

pub async fn get_authorization_token(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let ids: Vec<String> = match input.opt_array("registryIds")? {
        None => vec![ctx.caller.account_id.clone()],
        Some(list) => {
            if list.is_empty() || list.len() > 10 {
                return Err(EcrError::invalid(
                    "Invalid parameter at 'registryIds' failed to satisfy constraint: 'Member must have length between 1 and 10'",
                ));
            }
            let mut v = Vec::new();
            for r in list {
                match r.as_str() {
                    Some(s) if berth_iam::arn::is_account_id(s) => v.push(s.to_string()),
                    _ => {
                        return Err(EcrError::invalid(
                            "registryIds must be 12-digit account ids",
                        ))
                    }
                }
            }
            v
        }
    };
    ctx.app
        .authorize(&ctx.caller, &ctx.action, &ctx.caller.account_id, None, None)
        .await?;
    let now = ctx.now() / 1000;
    let (token, expires) = ctx
        .app
        .registry
        .identity()
        .mint_token(&ctx.caller, now)
        .map_err(|e| EcrError::server(e.to_string()))?;
    let auth = berth_iam::token::authorization_token(&token);
    let scheme = ctx.app.config.scheme;
    let data: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({
                "authorizationToken": auth,
                "expiresAt": expires,
                "proxyEndpoint": format!("{scheme}://{}", ctx.app.registry_host(id)),
            })
        })
        .collect();
    Ok(json!({ "authorizationData": data }))
}

/// CreateRepository as part of a peer deployment's replication from `origin`
/// (`<region>/<account>`): as ECR does for replication, with the account's
/// REPLICATION creation template (or the defaults), not with settings of the
/// request. Everything is checked before anything is created, so a refused copy
/// leaves no empty repository: the caller and — for another source account — the
/// registry policy must allow `ecr:ReplicateImage` (else AccessDenied), and
/// `ecr:CreateRepository` (else RepositoryNotFound: replication may only fill a
/// repository that exists, the failure code the source records).
async fn create_replicated_repository(
    ctx: &Ctx,
    account: &str,
    name: &berth_oci::RepositoryName,
    origin: &str,
) -> Result<Value, EcrError> {
    let source = origin.split_once('/').map_or("", |(_, a)| a);
    let app = &ctx.app;
    app.authorize(
        &ctx.caller,
        "ecr:ReplicateImage",
        account,
        Some(name.as_str()),
        None,
    )
    .await?;
    let policy = |action: &'static str| async move {
        app.registry
            .replication_allowed_into(source, account, name.as_str(), action)
            .await
            .map_err(EcrError::from)
    };
    if !policy("ecr:ReplicateImage").await? {
        return Err(EcrError::new(
            EcrException::AccessDenied,
            format!("the registry policy of {account} does not allow account {source} ecr:ReplicateImage"),
        ));
    }
    let may_create = match app
        .authorize(&ctx.caller, &ctx.action, account, Some(name.as_str()), None)
        .await
    {
        Ok(()) => policy("ecr:CreateRepository").await?,
        Err(AuthzError::Denied(_)) => false,
        Err(e) => return Err(e.into()),
    };
    if !may_create {
        return Err(EcrError::new(
            EcrException::RepositoryNotFound,
            format!(
                "the repository with name '{name}' does not exist in the registry with id '{account}', and replication from account {source} may not create it"
            ),
        ));
    }
    let repo = app
        .registry
        .create_repository_for_registry(account, name)
        .await?;
    Ok(json!({ "repository": repository_json(ctx, &repo) }))
}

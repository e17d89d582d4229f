//! Image scanning operations: StartImageScan, DescribeImageScanFindings and
//! BatchGetRepositoryScanningConfiguration (botocore ECR model; ECR user guide,
//! "Basic scanning"), plus the scan fields of DescribeImages' `imageDetail`.

use berth_oci::{Digest, ImageTag, Reference};
use berth_registry::{ManifestRow, RegistryError, RepositoryRow, ScanRow};
use serde_json::{json, Value};

use super::input::{decode_token, encode_token, parse_repository_name};
use super::repos::repo_for;
use super::{epoch_secs, Ctx, EcrError, EcrException, Input};

/// Resolves `imageId` to a stored manifest, or ImageNotFoundException.
pub(super) async fn image_for(
    ctx: &Ctx,
    repo: &RepositoryRow,
    input: &Input,
) -> Result<(ManifestRow, Option<String>), EcrError> {
    let id = input
        .opt_object("imageId")?
        .ok_or_else(|| EcrError::invalid("Missing required parameter 'imageId'"))?;
    let digest = id.get("imageDigest").and_then(Value::as_str);
    let tag = id.get("imageTag").and_then(Value::as_str);
    let not_found = || {
        EcrError::new(
            EcrException::ImageNotFound,
            format!(
                "The image with imageId {} does not exist within the repository with name '{}' in the registry with id '{}'",
                Value::Object(id.clone()),
                repo.name,
                repo.account_id
            ),
        )
    };
    let reference = match (digest, tag) {
        (None, None) => {
            return Err(EcrError::invalid(
                "Invalid parameter at 'imageId': both tag and digest cannot be null",
            ))
        }
        (_, Some(t)) => Reference::Tag(ImageTag::parse(t).map_err(|_| {
            EcrError::invalid(format!(
                "Invalid parameter at 'imageTag' failed to satisfy constraint: 'must be a valid image tag' (got '{t}')"
            ))
        })?),
        (Some(d), None) => Reference::Digest(Digest::parse(d).map_err(|_| {
            EcrError::invalid(format!(
                "Invalid parameter at 'imageDigest' failed to satisfy constraint: 'must be a valid image digest' (got '{d}')"
            ))
        })?),
    };
    let m = match ctx.app.registry.find_manifest(repo, &reference).await {
        Ok(m) => m,
        Err(RegistryError::ManifestUnknown) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    if let (Some(d), Some(_)) = (digest, tag) {
        if m.digest != d {
            return Err(not_found());
        }
    }
    Ok((m, tag.map(str::to_string)))
}

pub(super) fn image_id(m: &ManifestRow, tag: &Option<String>) -> Value {
    let mut v = json!({ "imageDigest": m.digest });
    if let Some(t) = tag {
        v["imageTag"] = json!(t);
    }
    v
}

fn status_json(s: &ScanRow) -> Value {
    let mut v = json!({ "status": s.status });
    if let Some(d) = &s.description {
        v["description"] = json!(d);
    }
    v
}

/// The stored result document of a scan, when it has findings to show.
fn stored_result(s: &ScanRow) -> Option<Value> {
    if !matches!(s.status.as_str(), "COMPLETE" | "IN_PROGRESS") {
        return None;
    }
    s.findings
        .as_deref()
        .and_then(|f| serde_json::from_str::<Value>(f).ok())
}

/// `imageScanStatus` and `imageScanFindingsSummary` for DescribeImages.
pub fn detail_fields(s: &ScanRow) -> Vec<(&'static str, Value)> {
    let mut out = vec![("imageScanStatus", status_json(s))];
    if let Some(r) = stored_result(s) {
        let mut summary = json!({
            "findingSeverityCounts": r.get("findingSeverityCounts").cloned().unwrap_or_else(|| json!({})),
        });
        if let Some(t) = s.completed_at {
            summary["imageScanCompletedAt"] = epoch_secs(t);
        }
        if let Some(t) = r
            .get("vulnerabilitySourceUpdatedAt")
            .and_then(Value::as_i64)
        {
            summary["vulnerabilitySourceUpdatedAt"] = epoch_secs(t);
        }
        out.push(("imageScanFindingsSummary", summary));
    }
    out
}

pub async fn start_image_scan(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let (m, tag) = image_for(ctx, &repo, input).await?;
    // Artifacts (signatures, SBOMs, Helm charts…) are not container images: ECR
    // refuses to scan them up front.
    let is_index = berth_oci::media::is_index(&m.media_type);
    let is_image = matches!(
        m.artifact_type.as_deref(),
        Some(berth_oci::media::OCI_CONFIG) | Some(berth_oci::media::DOCKER_CONFIG)
    );
    if !is_index && !is_image {
        return Err(EcrError::new(
            EcrException::UnsupportedImageType,
            format!(
                "The image with digest '{}' is not a supported image type for scanning (artifact type {}).",
                m.digest,
                m.artifact_type.as_deref().unwrap_or("unknown")
            ),
        ));
    }
    if !ctx.app.registry.start_image_scan(&repo, &m.digest).await? {
        return Err(EcrError::new(
            EcrException::LimitExceeded,
            "The scan quota per image has been exceeded. Wait and try again.",
        ));
    }
    Ok(json!({
        "registryId": repo.account_id,
        "repositoryName": repo.name,
        "imageId": image_id(&m, &tag),
        "imageScanStatus": { "status": "IN_PROGRESS", "description": "The scan is in progress." },
    }))
}

pub async fn describe_image_scan_findings(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let (m, tag) = image_for(ctx, &repo, input).await?;
    let max = input.max_results(1000, 100)? as usize;
    let start = match input.opt_str("nextToken")? {
        None => 0,
        Some(t) => decode_token(t)?
            .parse::<usize>()
            .map_err(|_| EcrError::invalid("Invalid parameter at 'nextToken' failed to satisfy constraint: 'the token is not valid'"))?,
    };
    let Some(scan) = ctx.app.registry.scan_of(&repo, &m.digest).await? else {
        let id = image_id(&m, &tag);
        return Err(EcrError::new(
            EcrException::ScanNotFound,
            format!(
                "Image scan does not exist for the image with '{{imageDigest:{}, imageTag:{}}}' in the repository with name '{}' in the registry with id '{}'",
                m.digest,
                id.get("imageTag").and_then(Value::as_str).unwrap_or("null"),
                repo.name,
                repo.account_id
            ),
        ));
    };
    let mut v = json!({
        "registryId": repo.account_id,
        "repositoryName": repo.name,
        "imageId": image_id(&m, &tag),
        "imageScanStatus": status_json(&scan),
    });
    if let Some(r) = stored_result(&scan) {
        let all = r
            .get("findings")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let page: Vec<Value> = all.iter().skip(start).take(max).cloned().collect();
        let mut f = json!({
            "findingSeverityCounts": r.get("findingSeverityCounts").cloned().unwrap_or_else(|| json!({})),
            "findings": page,
        });
        if let Some(t) = scan.completed_at {
            f["imageScanCompletedAt"] = epoch_secs(t);
        }
        if let Some(t) = r
            .get("vulnerabilitySourceUpdatedAt")
            .and_then(Value::as_i64)
        {
            f["vulnerabilitySourceUpdatedAt"] = epoch_secs(t);
        }
        v["imageScanFindings"] = f;
        if start + max < all.len() {
            v["nextToken"] = json!(encode_token(&(start + max).to_string()));
        }
    }
    Ok(v)
}

pub async fn batch_get_repository_scanning_configuration(
    ctx: &Ctx,
    input: &Input,
) -> Result<Value, EcrError> {
    let account = ctx.registry_id(input)?;
    let names = input
        .opt_array("repositoryNames")?
        .ok_or_else(|| EcrError::invalid("Missing required parameter 'repositoryNames'"))?;
    if names.is_empty() || names.len() > 25 {
        return Err(EcrError::invalid(
            "Invalid parameter at 'repositoryNames' failed to satisfy constraint: 'Member must have length between 1 and 25'",
        ));
    }
    let reg = &ctx.app.registry;
    let mut configs = Vec::new();
    let mut failures = Vec::new();
    for n in names {
        let s = n.as_str().ok_or_else(|| {
            EcrError::new(
                EcrException::Serialization,
                "repositoryNames must be strings",
            )
        })?;
        let name = parse_repository_name(s, "repositoryNames")?;
        let found = reg.find_repository(&account, &name).await?;
        ctx.app
            .authorize(
                &ctx.caller,
                &ctx.action,
                &account,
                Some(name.as_str()),
                found.as_ref().and_then(|r| r.policy.as_deref()),
            )
            .await?;
        let Some(repo) = found else {
            failures.push(json!({
                "repositoryName": s,
                "failureCode": "REPOSITORY_NOT_FOUND",
                "failureReason": "REPOSITORY_NOT_FOUND",
            }));
            continue;
        };
        let eff = reg.effective_scanning(&repo).await?;
        configs.push(json!({
            "repositoryArn": ctx.app.repository_arn(&repo.account_id, &repo.name),
            "repositoryName": repo.name,
            "scanOnPush": eff.scan_on_push(),
            "scanFrequency": eff.frequency,
            "appliedScanFilters": eff.applied_filters,
        }));
    }
    Ok(json!({ "scanningConfigurations": configs, "failures": failures }))
}

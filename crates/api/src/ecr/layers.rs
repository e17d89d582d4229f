//! Layer operations, the ECR mirror of the data plane's blob uploads:
//! BatchCheckLayerAvailability, InitiateLayerUpload, UploadLayerPart,
//! CompleteLayerUpload and GetDownloadUrlForLayer (botocore ECR model).

use base64::Engine;
use berth_oci::Digest;
use berth_registry::RegistryError;
use bytes::Bytes;
use serde_json::{json, Value};

use super::input::parse_digest;
use super::repos::repo_for;
use super::{Ctx, EcrError, EcrException, Input};

/// ECR's minimum size of every layer part but the last.
const MIN_PART: usize = 5 * 1024 * 1024;

/// ECR's recommended part size for UploadLayerPart.
const PART_SIZE: i64 = 10 * 1024 * 1024;

fn layer_digests(input: &Input) -> Result<&Vec<Value>, EcrError> {
    let list = input
        .opt_array("layerDigests")?
        .ok_or_else(|| EcrError::invalid("Missing required parameter 'layerDigests'"))?;
    if list.is_empty() || list.len() > 100 {
        return Err(EcrError::invalid(
            "layerDigests must have between 1 and 100 entries",
        ));
    }
    Ok(list)
}

pub async fn batch_check_layer_availability(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let mut layers = Vec::new();
    let mut failures = Vec::new();
    for v in layer_digests(input)? {
        let s = v.as_str().unwrap_or("");
        let Ok(d) = Digest::parse(s) else {
            failures.push(json!({ "layerDigest": s, "failureCode": "InvalidLayerDigest", "failureReason": "Invalid layer digest" }));
            continue;
        };
        match ctx.app.registry.stat_blob(&repo, &d).await {
            Ok(size) => layers.push(json!({ "layerDigest": s, "layerAvailability": "AVAILABLE", "layerSize": size })),
            Err(RegistryError::BlobUnknown) => failures.push(json!({ "layerDigest": s, "failureCode": "MissingLayerDigest", "failureReason": "Could not find layer" })),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(json!({ "layers": layers, "failures": failures }))
}

pub async fn initiate_layer_upload(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let max = ctx.app.hardening().max_uploads_per_principal;
    let Some(u) = ctx
        .app
        .registry
        .start_upload_as(&repo, &ctx.caller, max)
        .await?
    else {
        return Err(EcrError::new(
            EcrException::LimitExceeded,
            format!("The caller has too many open layer uploads (at most {max})"),
        ));
    };
    Ok(json!({ "uploadId": u.id, "partSize": PART_SIZE }))
}

fn upload_id(input: &Input) -> Result<&str, EcrError> {
    let id = input.req_str("uploadId")?;
    let ok = id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if !ok {
        return Err(EcrError::invalid(format!(
            "Invalid parameter at 'uploadId' failed to satisfy constraint: 'must be a UUID' (got '{id}')"
        )));
    }
    Ok(id)
}

pub async fn upload_layer_part(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let id = upload_id(input)?;
    let first = input
        .opt_i64("partFirstByte")?
        .ok_or_else(|| EcrError::invalid("Missing required parameter 'partFirstByte'"))?;
    let last = input
        .opt_i64("partLastByte")?
        .ok_or_else(|| EcrError::invalid("Missing required parameter 'partLastByte'"))?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(input.req_str("layerPartBlob")?)
        .map_err(|_| {
            EcrError::new(
                EcrException::Serialization,
                "layerPartBlob is not valid base64",
            )
        })?;
    if first < 0 || last < first || (last - first + 1) as usize != blob.len() {
        return Err(EcrError::new(
            EcrException::InvalidLayerPart,
            format!(
                "The part's byte range {first}-{last} does not match its {} bytes",
                blob.len()
            ),
        ));
    }
    if blob.len() > 20 * 1024 * 1024 {
        return Err(EcrError::new(
            EcrException::InvalidLayerPart,
            "a layer part is at most 20 MiB",
        ));
    }
    let body = futures_util::stream::iter([Ok::<_, String>(Bytes::from(blob))]);
    // ECR's parts are at least 5 MiB except the last: a small part followed by
    // another one is noted with the upload and refused at CompleteLayerUpload.
    let u = ctx
        .app
        .registry
        .append_layer_part(&repo, id, first as u64, body, MIN_PART as u64)
        .await
        .map_err(|e| match e {
            RegistryError::RangeInvalid { size } => EcrError::new(
                EcrException::InvalidLayerPart,
                format!("The part must start at byte {size}"),
            ),
            e => e.into(),
        })?;
    Ok(json!({
        "registryId": repo.account_id,
        "repositoryName": repo.name,
        "uploadId": id,
        "lastByteReceived": u.size as i64 - 1,
    }))
}

pub async fn complete_layer_upload(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let id = upload_id(input)?;
    let digests = layer_digests(input)?;
    let d = parse_digest(digests[0].as_str().unwrap_or(""), "layerDigests")?;
    let reg = &ctx.app.registry;
    let status = reg.upload_status(&repo, id).await?;
    if reg.layer_part_too_small(&repo, id).await? {
        return Err(EcrError::new(
            EcrException::LayerPartTooSmall,
            format!("Layer part size is too small for upload '{id}': every part but the last must be at least 5 MiB"),
        ));
    }
    if status.size == 0 {
        return Err(EcrError::new(
            EcrException::EmptyUpload,
            format!("The upload with id '{id}' is empty"),
        ));
    }
    if reg.stat_blob(&repo, &d).await.is_ok() {
        let _ = reg.cancel_upload(&repo, id).await;
        return Err(EcrError::new(
            EcrException::LayerAlreadyExists,
            format!("The layer with digest '{d}' already exists in the repository with name '{}' in registry with id '{}'", repo.name, repo.account_id),
        ));
    }
    reg.complete_upload(&repo, id, &d)
        .await
        .map_err(|e| match e {
            RegistryError::DigestMismatch => EcrError::new(
                EcrException::InvalidLayer,
                format!(
                    "The calculated digest of the layer does not match the provided digest '{d}'"
                ),
            ),
            e => e.into(),
        })?;
    Ok(json!({
        "registryId": repo.account_id,
        "repositoryName": repo.name,
        "uploadId": id,
        "layerDigest": d.as_str(),
    }))
}

pub async fn get_download_url_for_layer(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let d = parse_digest(input.req_str("layerDigest")?, "layerDigest")?;
    match ctx.app.registry.stat_blob(&repo, &d).await {
        Ok(_) => {}
        Err(RegistryError::BlobUnknown) => {
            return Err(EcrError::new(
                EcrException::LayersNotFound,
                format!(
                    "The layer with digest '{d}' does not exist in the repository with name '{}'",
                    repo.name
                ),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    let url = ctx.app.signed_layer_url(&repo.account_id, &repo.name, &d);
    Ok(json!({ "downloadUrl": url, "layerDigest": d.as_str() }))
}

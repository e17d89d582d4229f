//! Image operations: DescribeImages, ListImages, BatchGetImage, BatchDeleteImage,
//! PutImage and ListImageReferrers (botocore ECR model). The layer operations are
//! in `layers.rs`.

use std::collections::HashMap;

use berth_oci::{Digest, ImageTag, Reference};
use berth_registry::{ImageOutcome, ManifestRow, Registry, RegistryError, RepositoryRow, ScanRow};
use bytes::Bytes;
use serde_json::{json, Value};

use super::input::{check_len, decode_token, encode_token, parse_digest};
use super::repos::repo_for;
use super::{epoch_secs, Ctx, EcrError, EcrException, Input};

enum Id {
    Ok {
        digest: Option<Digest>,
        tag: Option<ImageTag>,
        raw: Value,
    },
    Failed(Value),
}

fn failure(raw: &Value, code: &str, reason: &str) -> Value {
    json!({ "imageId": raw, "failureCode": code, "failureReason": reason })
}

fn parse_ids(input: &Input, max: usize) -> Result<Vec<Id>, EcrError> {
    let list = input
        .opt_array("imageIds")?
        .ok_or_else(|| EcrError::invalid("Missing required parameter 'imageIds'"))?;
    if list.is_empty() || list.len() > max {
        return Err(EcrError::invalid(format!(
            "Invalid parameter at 'imageIds' failed to satisfy constraint: 'Member must have length between 1 and {max}'"
        )));
    }
    Ok(list.iter().map(parse_id).collect())
}

fn parse_id(v: &Value) -> Id {
    let raw = v.clone();
    let digest = v.get("imageDigest").and_then(Value::as_str);
    let tag = v.get("imageTag").and_then(Value::as_str);
    if digest.is_none() && tag.is_none() {
        return Id::Failed(failure(
            &raw,
            "MissingDigestAndTag",
            "Invalid request parameters: both tag and digest cannot be null",
        ));
    }
    let digest = match digest.map(Digest::parse) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => return Id::Failed(failure(&raw, "InvalidImageDigest", "Invalid request parameters: image digest should satisfy the regex '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'")),
    };
    let tag = match tag.map(ImageTag::parse) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => {
            return Id::Failed(failure(
                &raw,
                "InvalidImageTag",
                "Invalid request parameters: image tag is not valid",
            ))
        }
    };
    Id::Ok { digest, tag, raw }
}

/// Resolves an id to a stored manifest, or the failure ECR reports.
async fn resolve(
    reg: &Registry,
    repo: &RepositoryRow,
    digest: &Option<Digest>,
    tag: &Option<ImageTag>,
    raw: &Value,
) -> Result<Result<ManifestRow, Value>, EcrError> {
    let by_tag = match tag {
        Some(t) => match reg.find_manifest(repo, &Reference::Tag(t.clone())).await {
            Ok(m) => Some(m),
            Err(RegistryError::ManifestUnknown) => {
                return Ok(Err(failure(
                    raw,
                    "ImageNotFound",
                    "Requested image not found",
                )))
            }
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    match (digest, by_tag) {
        (Some(d), Some(m)) => {
            if m.digest == d.as_str() {
                Ok(Ok(m))
            } else {
                Ok(Err(failure(
                    raw,
                    "ImageTagDoesNotMatchDigest",
                    "Invalid request parameters: given tag does not map to the given digest",
                )))
            }
        }
        (None, Some(m)) => Ok(Ok(m)),
        (Some(d), None) => match reg.find_manifest(repo, &Reference::Digest(d.clone())).await {
            Ok(m) => Ok(Ok(m)),
            Err(RegistryError::ManifestUnknown) => Ok(Err(failure(
                raw,
                "ImageNotFound",
                "Requested image not found",
            ))),
            Err(e) => Err(e.into()),
        },
        (None, None) => Ok(Err(failure(
            raw,
            "MissingDigestAndTag",
            "Invalid request parameters: both tag and digest cannot be null",
        ))),
    }
}

/// `filter.imageStatus` (ACTIVE, ARCHIVED, ACTIVATING, ANY): berth has no archive
/// tier, so only ACTIVE and ANY select anything. Returns whether images are selected.
fn image_status_selects(input: &Input, field: &str, key: &str) -> Result<bool, EcrError> {
    let s = input
        .opt_object(field)?
        .and_then(|f| f.get(key))
        .and_then(Value::as_str)
        .unwrap_or("ACTIVE");
    match s {
        "ACTIVE" | "ANY" => Ok(true),
        "ARCHIVED" | "ACTIVATING" => Ok(false),
        other => Err(EcrError::invalid(format!(
            "Invalid parameter at '{key}' failed to satisfy constraint: 'Member must satisfy enum value set: [ACTIVE, ARCHIVED, ACTIVATING, ANY]' (got '{other}')"
        ))),
    }
}

fn tag_status(input: &Input) -> Result<&str, EcrError> {
    let s = input
        .opt_object("filter")?
        .and_then(|f| f.get("tagStatus"))
        .and_then(Value::as_str)
        .unwrap_or("ANY");
    if !matches!(s, "TAGGED" | "UNTAGGED" | "ANY") {
        return Err(EcrError::invalid(format!(
            "Invalid parameter at 'tagStatus' failed to satisfy constraint: 'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]' (got '{s}')"
        )));
    }
    Ok(s)
}

fn detail(repo: &RepositoryRow, m: &ManifestRow, tags: &[String], scan: Option<&ScanRow>) -> Value {
    let mut v = json!({
        "registryId": repo.account_id,
        "repositoryName": repo.name,
        "imageDigest": m.digest,
        "imageSizeInBytes": m.image_size,
        "imagePushedAt": epoch_secs(m.pushed_at),
        "imageManifestMediaType": m.media_type,
        "imageStatus": "ACTIVE",
    });
    if !tags.is_empty() {
        v["imageTags"] = json!(tags);
    }
    if let Some(a) = &m.artifact_type {
        v["artifactMediaType"] = json!(a);
    }
    if let Some(s) = &m.subject {
        v["subjectManifestDigest"] = json!(s);
    }
    if let Some(t) = m.last_pulled_at {
        v["lastRecordedPullTime"] = epoch_secs(t);
    }
    for (k, f) in scan.map(super::scanning::detail_fields).unwrap_or_default() {
        v[k] = f;
    }
    v
}

pub async fn describe_images(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let reg = &ctx.app.registry;
    if input.get("imageIds").is_some() {
        if input.get("maxResults").is_some() || input.get("nextToken").is_some() {
            return Err(EcrError::invalid(
                "maxResults and nextToken cannot be used with imageIds",
            ));
        }
        // Tags and scans of the named images only (not the whole repository's).
        let mut out = Vec::new();
        for id in parse_ids(input, 100)? {
            match id {
                Id::Failed(f) => {
                    return Err(EcrError::invalid(f["failureReason"].as_str().unwrap_or("invalid image id").to_string()))
                }
                Id::Ok { digest, tag, raw } => match resolve(reg, &repo, &digest, &tag, &raw).await? {
                    Ok(m) => {
                        let t = reg.tags_of(&repo, &m.digest).await?;
                        let scan = reg.scan_of(&repo, &m.digest).await?;
                        let d = detail(&repo, &m, &t, scan.as_ref());
                        if !out.contains(&d) {
                            out.push(d);
                        }
                    }
                    Err(_) => {
                        return Err(EcrError::new(
                            EcrException::ImageNotFound,
                            format!(
                                "The image with imageId {{imageDigest:'{}', imageTag:'{}'}} does not exist within the repository with name '{}' in the registry with id '{}'",
                                raw["imageDigest"].as_str().unwrap_or("null"),
                                raw["imageTag"].as_str().unwrap_or("null"),
                                repo.name, repo.account_id
                            ),
                        ))
                    }
                },
            }
        }
        return Ok(json!({ "imageDetails": out }));
    }
    let status = tag_status(input)?;
    if !image_status_selects(input, "filter", "imageStatus")? {
        return Ok(json!({ "imageDetails": [] }));
    }
    let max = input.max_results(1000, 100)?;
    let after = input.opt_str("nextToken")?.map(decode_token).transpose()?;
    // A keyset page from the store (digest order), with its tags and scans only.
    let (selected, tag_rows, scan_rows) = reg
        .manifests_page(&repo, after.as_deref(), status, max + 1)
        .await?;
    let mut tags: HashMap<String, Vec<String>> = HashMap::new();
    for (t, d) in tag_rows {
        tags.entry(d).or_default().push(t);
    }
    let scans: HashMap<String, ScanRow> = scan_rows
        .into_iter()
        .map(|s| (s.digest.clone(), s))
        .collect();
    let more = selected.len() as i64 > max;
    let page = &selected[..selected.len().min(max as usize)];
    let mut v = json!({
        "imageDetails": page.iter().map(|m| detail(&repo, m, tags.get(&m.digest).map(Vec::as_slice).unwrap_or(&[]), scans.get(&m.digest))).collect::<Vec<_>>()
    });
    if more {
        if let Some(last) = page.last() {
            v["nextToken"] = json!(encode_token(&last.digest));
        }
    }
    Ok(v)
}

pub async fn list_images(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let status = tag_status(input)?;
    if !image_status_selects(input, "filter", "imageStatus")? {
        return Ok(json!({ "imageIds": [] }));
    }
    let max = input.max_results(1000, 100)?;
    let after = input.opt_str("nextToken")?.map(decode_token).transpose()?;
    // A keyset page in (digest, tag) order; the token is the last entry's key,
    // "digest\0tag" (or the digest of an untagged image), as before.
    let cursor = after
        .as_deref()
        .map(|k| k.split_once('\u{0}').unwrap_or((k, "")));
    let rows = ctx
        .app
        .registry
        .image_ids_page(&repo, cursor, status, max + 1)
        .await?;
    let more = rows.len() as i64 > max;
    let page = &rows[..rows.len().min(max as usize)];
    let ids: Vec<Value> = page
        .iter()
        .map(|r| match &r.tag {
            Some(t) => json!({ "imageDigest": r.digest, "imageTag": t }),
            None => json!({ "imageDigest": r.digest }),
        })
        .collect();
    let mut v = json!({ "imageIds": ids });
    if more {
        if let Some(r) = page.last() {
            let key = match &r.tag {
                Some(t) => format!("{}\u{0}{t}", r.digest),
                None => r.digest.clone(),
            };
            v["nextToken"] = json!(encode_token(&key));
        }
    }
    Ok(v)
}

pub async fn batch_get_image(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    // ECR answers the stored manifest when it cannot convert it to an accepted
    // type; berth never converts, so the list is only validated.
    if let Some(l) = input.opt_array("acceptedMediaTypes")? {
        if l.is_empty() || l.len() > 100 {
            return Err(EcrError::invalid(
                "acceptedMediaTypes must have between 1 and 100 entries",
            ));
        }
    }
    let mut images = Vec::new();
    let mut failures = Vec::new();
    for id in parse_ids(input, 100)? {
        match id {
            Id::Failed(f) => failures.push(f),
            Id::Ok { digest, tag, raw } => {
                match resolve(&ctx.app.registry, &repo, &digest, &tag, &raw).await? {
                    Err(f) => failures.push(f),
                    Ok(m) => {
                        let mut image_id = json!({ "imageDigest": m.digest });
                        if let Some(t) = &tag {
                            image_id["imageTag"] = json!(t.as_str());
                        }
                        let manifest = String::from_utf8_lossy(&m.body).into_owned();
                        images.push(json!({
                            "registryId": repo.account_id,
                            "repositoryName": repo.name,
                            "imageId": image_id,
                            "imageManifest": manifest,
                            "imageManifestMediaType": m.media_type,
                        }));
                    }
                }
            }
        }
    }
    Ok(json!({ "images": images, "failures": failures }))
}

pub async fn batch_delete_image(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let reg = &ctx.app.registry;
    let mut deleted = Vec::new();
    let mut failures = Vec::new();
    // Whole-image deletions in a row are made in one transaction
    // (`Registry::delete_images`), in the order given; an untagging in between
    // runs after the deletions before it.
    let mut pending: Vec<(Digest, Value)> = Vec::new();
    for id in parse_ids(input, 100)? {
        let (digest, tag, raw) = match id {
            Id::Failed(f) => {
                failures.push(f);
                continue;
            }
            Id::Ok { digest, tag, raw } => (digest, tag, raw),
        };
        let m = match resolve(reg, &repo, &digest, &tag, &raw).await? {
            Ok(m) => m,
            Err(f) => {
                failures.push(f);
                continue;
            }
        };
        let d =
            Digest::parse(&m.digest).map_err(|_| EcrError::server("stored digest is invalid"))?;
        match &tag {
            // Untagging; removing the last tag deletes the image, as in ECR.
            Some(t) if digest.is_none() && reg.tags_of(&repo, &m.digest).await?.len() > 1 => {
                delete_pending(reg, &repo, &mut pending, &mut deleted, &mut failures).await?;
                match reg.delete_manifest(&repo, &Reference::Tag(t.clone())).await {
                    Ok(_) => {
                        deleted.push(json!({ "imageDigest": m.digest, "imageTag": t.as_str() }))
                    }
                    // Its image deleted by an earlier id of this request.
                    Err(RegistryError::ManifestUnknown) => {
                        failures.push(failure(&raw, "ImageNotFound", "Requested image not found"))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            _ => pending.push((d, raw)),
        }
    }
    delete_pending(reg, &repo, &mut pending, &mut deleted, &mut failures).await?;
    Ok(json!({ "imageIds": deleted, "failures": failures }))
}

/// Deletes the images of `pending` (by digest, in one transaction) and reports
/// each as `BatchDeleteImage` does: its tags (or its digest alone), or why not.
async fn delete_pending(
    reg: &Registry,
    repo: &RepositoryRow,
    pending: &mut Vec<(Digest, Value)>,
    deleted: &mut Vec<Value>,
    failures: &mut Vec<Value>,
) -> Result<(), EcrError> {
    if pending.is_empty() {
        return Ok(());
    }
    let batch = std::mem::take(pending);
    let digests: Vec<Digest> = batch.iter().map(|(d, _)| d.clone()).collect();
    let outcomes = reg.delete_images(repo, &digests).await?;
    for ((d, raw), o) in batch.iter().zip(outcomes) {
        match o {
            Ok(tags) => {
                if tags.is_empty() {
                    deleted.push(json!({ "imageDigest": d.as_str() }));
                }
                for t in tags {
                    deleted.push(json!({ "imageDigest": d.as_str(), "imageTag": t }));
                }
            }
            Err(RegistryError::ReferencedByIndex(p)) => failures.push(failure(
                raw,
                "ImageReferencedByManifestList",
                &format!("Requested image referenced by manifest list: [{p}]"),
            )),
            Err(RegistryError::ManifestUnknown) => {
                failures.push(failure(raw, "ImageNotFound", "Requested image not found"))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

pub async fn put_image(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let manifest = input.req_str("imageManifest")?;
    check_len("imageManifest", manifest, 1, 4 * 1024 * 1024)?;
    let media_type = input.opt_len("imageManifestMediaType", 0, 255)?;
    let tag = match input.opt_str("imageTag")? {
        None => None,
        Some(t) => {
            check_len("imageTag", t, 1, 300)?;
            Some(ImageTag::parse(t).map_err(|_| EcrError::invalid(format!("Invalid parameter at 'imageTag' failed to satisfy constraint: 'must be a valid image tag' (got '{t}')")))?)
        }
    };
    let body = Bytes::copy_from_slice(manifest.as_bytes());
    let digest = match input.opt_str("imageDigest")? {
        Some(d) => {
            let d = parse_digest(d, "imageDigest")?;
            if !d.verify(&body) {
                return Err(EcrError::new(
                    EcrException::ImageDigestDoesNotMatch,
                    format!("Invalid parameter at 'imageDigest' failed to satisfy constraint: 'The provided digest {d} does not match the digest of the manifest'"),
                ));
            }
            Some(d)
        }
        None => None,
    };
    let reference = match (&tag, &digest) {
        (Some(t), _) => Reference::Tag(t.clone()),
        (None, Some(d)) => Reference::Digest(d.clone()),
        (None, None) => Reference::Digest(Digest::sha256_of(&body)),
    };
    let put = ctx
        .app
        .registry
        .put_manifest(&repo, &reference, media_type, body)
        .await
        .map_err(|e| match e {
            RegistryError::ManifestBlobUnknown(list) => EcrError::new(
                EcrException::LayersNotFound,
                format!("Layers with digests '{}' required for pushing image into repository with name '{}' in the registry with id '{}' do not exist", list.join(", "), repo.name, repo.account_id),
            ),
            e => e.into(),
        })?;
    if put.outcome == ImageOutcome::Unchanged {
        return Err(EcrError::new(
            EcrException::ImageAlreadyExists,
            format!(
                "Image with digest '{}'{} already exists in the repository with name '{}' in registry with id '{}'",
                put.digest,
                tag.as_ref().map(|t| format!(" and tag '{t}'")).unwrap_or_default(),
                repo.name,
                repo.account_id
            ),
        ));
    }
    let mut image_id = json!({ "imageDigest": put.digest.as_str() });
    if let Some(t) = &tag {
        image_id["imageTag"] = json!(t.as_str());
    }
    Ok(json!({
        "image": {
            "registryId": repo.account_id,
            "repositoryName": repo.name,
            "imageId": image_id,
            "imageManifest": manifest,
            "imageManifestMediaType": put.media_type,
        }
    }))
}

pub async fn list_image_referrers(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let subject = input
        .opt_object("subjectId")?
        .and_then(|o| o.get("imageDigest"))
        .and_then(Value::as_str)
        .ok_or_else(|| EcrError::invalid("Missing required parameter 'subjectId.imageDigest'"))?;
    let subject = parse_digest(subject, "subjectId.imageDigest")?;
    let types: Option<Vec<String>> = input
        .opt_object("filter")?
        .and_then(|f| f.get("artifactTypes"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        });
    if types.as_ref().is_some_and(|t| t.len() > 5) {
        return Err(EcrError::invalid(
            "Invalid parameter at 'artifactTypes' failed to satisfy constraint: 'Member must have length less than or equal to 5'",
        ));
    }
    let selects = image_status_selects(input, "filter", "artifactStatus")?;
    let max = input.max_results(50, 20)?;
    let after = input.opt_str("nextToken")?.map(decode_token).transpose()?;
    let rows = if selects {
        ctx.app
            .registry
            .referrer_rows(&repo, subject.as_str())
            .await?
    } else {
        Vec::new()
    };
    let list: Vec<&ManifestRow> = rows
        .iter()
        .filter(|r| match &types {
            None => true,
            Some(t) => r.artifact_type.as_ref().is_some_and(|a| t.contains(a)),
        })
        .filter(|r| after.as_deref().is_none_or(|a| r.digest.as_str() > a))
        .take(max as usize + 1)
        .collect();
    let more = list.len() as i64 > max;
    let page = &list[..list.len().min(max as usize)];
    let refs: Vec<Value> = page
        .iter()
        .map(|r| {
            let mut v =
                json!({ "digest": r.digest, "mediaType": r.media_type, "size": r.body.len() });
            if let Some(a) = &r.artifact_type {
                v["artifactType"] = json!(a);
            }
            if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(&r.body) {
                if let Some(a) = o.get("annotations") {
                    v["annotations"] = a.clone();
                }
            }
            v
        })
        .collect();
    let mut v = json!({ "referrers": refs });
    if more {
        if let Some(last) = page.last() {
            v["nextToken"] = json!(encode_token(&last.digest));
        }
    }
    Ok(v)
}

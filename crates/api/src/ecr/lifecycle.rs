//! Lifecycle policy previews: StartLifecyclePolicyPreview computes exactly what a run
//! would expire now (with the given or the stored policy) and stores the result with
//! the repository, so any node answers GetLifecyclePolicyPreview.

use berth_lifecycle::{check_policy_text_length, LifecyclePolicy, TagStatus};
use serde_json::{json, Value};

use super::input::{decode_token, encode_token};
use super::repos::repo_for;
use super::{Ctx, EcrError, EcrException, Input};

pub async fn start_lifecycle_policy_preview(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let text = match input.opt_str("lifecyclePolicyText")? {
        Some(t) => {
            check_policy_text_length(t)
                .and_then(|_| LifecyclePolicy::parse(t))
                .map_err(|e| EcrError::invalid(e.to_string()))?;
            t.to_string()
        }
        None => repo.lifecycle_policy.clone().ok_or_else(|| {
            EcrError::new(
                EcrException::LifecyclePolicyNotFound,
                format!(
                    "Lifecycle policy does not exist for the repository with name '{}' in the registry with id '{}'",
                    repo.name, repo.account_id
                ),
            )
        })?,
    };
    let preview = ctx.app.registry.lifecycle_preview(&repo, &text).await?;
    let stored = json!({
        "lifecyclePolicyText": text,
        "status": "COMPLETE",
        "previewResults": preview.preview_results,
        "summary": preview.summary,
    });
    ctx.app
        .registry
        .save_lifecycle_preview(&repo, Some(stored.to_string()))
        .await?;
    Ok(json!({
        "registryId": repo.account_id,
        "repositoryName": repo.name,
        "lifecyclePolicyText": text,
        "status": "IN_PROGRESS",
    }))
}

pub async fn get_lifecycle_policy_preview(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let stored = ctx.app.registry.saved_lifecycle_preview(&repo).await?;
    let Some(stored) = stored.and_then(|s| serde_json::from_str::<Value>(&s).ok()) else {
        return Err(EcrError::new(
            EcrException::LifecyclePolicyPreviewNotFound,
            format!(
                "There is no dry run for the repository with name '{}' in the registry with id '{}'",
                repo.name, repo.account_id
            ),
        ));
    };
    let status = match input
        .opt_object("filter")?
        .and_then(|f| f.get("tagStatus"))
        .and_then(Value::as_str)
    {
        None => None,
        Some("TAGGED") => Some(TagStatus::Tagged),
        Some("UNTAGGED") => Some(TagStatus::Untagged),
        Some("ANY") => Some(TagStatus::Any),
        Some(other) => {
            return Err(EcrError::invalid(format!(
                "Invalid parameter at 'tagStatus' failed to satisfy constraint: 'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]' (got '{other}')"
            )))
        }
    };
    let ids: Option<Vec<(Option<String>, Option<String>)>> =
        input.opt_array("imageIds")?.map(|l| {
            l.iter()
                .map(|i| {
                    (
                        i.get("imageDigest")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        i.get("imageTag")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    )
                })
                .collect()
        });
    if ids.is_some() && (input.get("maxResults").is_some() || input.get("nextToken").is_some()) {
        return Err(EcrError::invalid(
            "maxResults and nextToken cannot be used with imageIds",
        ));
    }
    let max = input.max_results(100, 100)?;
    let after = input.opt_str("nextToken")?.map(decode_token).transpose()?;
    let results: Vec<Value> = stored["previewResults"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let keep = |r: &Value| -> bool {
        let tags: Vec<String> = r["imageTags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(s) = status {
            if !s.matches_tags(&tags) {
                return false;
            }
        }
        if let Some(ids) = &ids {
            let d = r["imageDigest"].as_str().unwrap_or("");
            return ids.iter().any(|(id, tag)| {
                id.as_deref().is_none_or(|x| x == d)
                    && tag.as_ref().is_none_or(|t| tags.contains(t))
            });
        }
        true
    };
    // Results keep the run's order (oldest push first); the token is an offset.
    let offset: usize = match after {
        None => 0,
        Some(a) => a.parse().map_err(|_| {
            EcrError::invalid("Invalid parameter at 'nextToken': the token is not valid")
        })?,
    };
    let selected: Vec<&Value> = results
        .iter()
        .filter(|r| keep(r))
        .skip(offset)
        .take(max as usize + 1)
        .collect();
    let more = selected.len() as i64 > max;
    let page: Vec<Value> = selected
        .iter()
        .take(max as usize)
        .map(|v| (*v).clone())
        .collect();
    let mut v = json!({
        "registryId": repo.account_id,
        "repositoryName": repo.name,
        "lifecyclePolicyText": stored["lifecyclePolicyText"],
        "status": stored["status"],
        "previewResults": page,
        "summary": stored["summary"],
    });
    if more {
        v["nextToken"] = json!(encode_token(&(offset + page.len()).to_string()));
    }
    Ok(v)
}

//! `DescribeImageReplicationStatus`: one status per destination an image was sent
//! to (`docs/architecture.md`, "Replication").

use serde_json::{json, Value};

use super::repos::repo_for;
use super::scanning::{image_for, image_id};
use super::{Ctx, EcrError, Input};

pub async fn describe_image_replication_status(
    ctx: &Ctx,
    input: &Input,
) -> Result<Value, EcrError> {
    let repo = repo_for(ctx, input).await?;
    let (m, tag) = image_for(ctx, &repo, input).await?;
    let statuses: Vec<Value> = ctx
        .app
        .registry
        .replication_statuses(&repo, &m.digest)
        .await?
        .into_iter()
        .map(|s| {
            let mut v = json!({
                "region": s.region,
                "registryId": s.registry_id,
                "status": s.status,
            });
            if let Some(c) = s.failure_code {
                v["failureCode"] = json!(c);
            }
            v
        })
        .collect();
    Ok(json!({
        "repositoryName": repo.name,
        "imageId": image_id(&m, &tag),
        "replicationStatuses": statuses,
    }))
}

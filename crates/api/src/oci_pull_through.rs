//! The pull-through cache on `/v2/`: before a manifest is read, a repository name
//! covered by a pull-through cache rule is filled from the rule's upstream —
//! created on first pull (the caller needs `ecr:CreateRepository` and
//! `ecr:BatchImportUpstreamImage`, as on ECR) with the matching creation template,
//! then the image imported (`crates/registry/src/pull_through.rs`). A cached tag is
//! checked upstream again once the refresh interval has passed; when the upstream
//! cannot be reached, the cached image is served.

use std::sync::Arc;

use axum::http::StatusCode;
use berth_oci::{Reference, RepositoryName};
use berth_registry::identity::Principal;
use berth_registry::upstream::UpstreamError;
use berth_registry::{matching_rule, CreationPurpose, PullThroughError, RegistryError};

use crate::oci_error::OciError;
use crate::App;

const IMPORT: &str = "ecr:BatchImportUpstreamImage";

fn upstream_error(e: PullThroughError) -> OciError {
    match e {
        PullThroughError::Upstream(UpstreamError::NotFound(what)) => OciError::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("the upstream registry has no {what}"),
        ),
        PullThroughError::Registry(e) => e.into(),
        e => OciError::new(StatusCode::BAD_GATEWAY, "UNKNOWN", e.to_string()),
    }
}

/// Fills `name`'s cache for a read of `reference`, when a rule covers `name`.
pub async fn fill(
    app: &Arc<App>,
    caller: &Principal,
    account: &str,
    name: &RepositoryName,
    reference: &Reference,
) -> Result<(), OciError> {
    let rules = app.registry.pull_through_rules(account).await?;
    let Some(rule) = matching_rule(&rules, name.as_str()) else {
        return Ok(());
    };
    let Some(upstream_name) = rule.upstream_name(name.as_str()) else {
        return Ok(());
    };
    let (repo, created) = match app.registry.repository(account, name).await {
        Ok(r) => (r, false),
        Err(RegistryError::NameUnknown { .. }) => {
            for action in ["ecr:BatchGetImage", "ecr:CreateRepository", IMPORT] {
                app.authorize(caller, action, account, Some(name.as_str()), None)
                    .await?;
            }
            let r = app
                .registry
                .create_repository_on_behalf(account, name, CreationPurpose::PullThroughCache)
                .await?;
            (r, true)
        }
        Err(e) => return Err(e.into()),
    };
    let cached = app.registry.find_manifest(&repo, reference).await.is_ok();
    let due = match reference {
        Reference::Digest(_) => !cached,
        Reference::Tag(t) => !cached || app.registry.pull_through_due(&repo, t.as_str()).await?,
    };
    if !due {
        return Ok(());
    }
    if let Err(e) = app
        .authorize(
            caller,
            IMPORT,
            account,
            Some(name.as_str()),
            repo.policy.as_deref(),
        )
        .await
    {
        // Without the import permission a caller still reads what is cached.
        return if cached { Ok(()) } else { Err(e.into()) };
    }
    match app
        .registry
        .import_upstream_image(account, rule, &repo, &upstream_name, reference)
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if cached => {
            tracing::warn!(repository = %name, reference = %reference, error = %e, "pull-through cache: the upstream check failed; serving the cached image");
            Ok(())
        }
        Err(e) => {
            // A first pull of something the upstream does not give leaves no
            // empty repository behind (unless another pull filled it meanwhile).
            if created {
                if let Err(d) = app.registry.delete_repository(&repo, false).await {
                    tracing::debug!(repository = %name, error = %d, "kept the cache repository");
                }
            }
            Err(upstream_error(e))
        }
    }
}

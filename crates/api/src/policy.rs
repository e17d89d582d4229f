//! Authorization: gathers the policies that apply to a request (the caller's identity
//! policies, the repository policy, the registry policy) and lets `berth-iam`
//! evaluate them with AWS semantics.

use berth_iam::policy::{
    self as iam_policy, evaluate, PolicyDocument, PolicyKind, PolicyRef, PolicySource,
    RequestContext,
};
use berth_store::AccountSetting;

use crate::access::Denied;
use crate::identity::Principal;
use crate::App;

/// The identity policies of a principal: (name, parsed document).
async fn identity_policies(
    app: &App,
    p: &Principal,
) -> Result<Vec<(String, PolicyDocument)>, Denied> {
    let Some(user) = &p.user_name else {
        return Ok(Vec::new());
    };
    let rows = app
        .registry
        .meta
        .user_policies(&p.account_id, user)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot load identity policies");
            Denied("authorization could not be evaluated".into())
        })?;
    let mut out = Vec::with_capacity(rows.len());
    for (name, doc) in rows {
        let parsed = match doc {
            Some(text) => PolicyDocument::parse(&text, PolicyKind::Identity),
            None => match iam_policy::managed_policy(&name) {
                Some(m) => m.parse(),
                None => continue,
            },
        };
        match parsed {
            Ok(d) => out.push((name, d)),
            Err(e) => {
                tracing::warn!(policy = %name, error = %e, "ignoring an unparsable identity policy")
            }
        }
    }
    Ok(out)
}

pub async fn authorize(
    app: &App,
    p: &Principal,
    action: &str,
    account: &str,
    resource: &str,
    repo_policy: Option<&str>,
) -> Result<(), Denied> {
    let Some(principal) = iam_policy::Principal::from_arn(&p.arn()) else {
        return Err(Denied(format!("unknown principal {}", p.arn())));
    };
    let ctx = RequestContext::new(principal, action, resource)
        .with_resource_account(account)
        .with_time(app.registry.now() / 1000);
    let identity = identity_policies(app, p).await?;
    let repo_doc =
        repo_policy.and_then(|t| PolicyDocument::parse(t, PolicyKind::EcrRepository).ok());
    let registry_text = if p.account_id != account || repo_doc.is_none() {
        app.registry
            .meta
            .account_setting(account, AccountSetting::RegistryPolicy)
            .await
            .ok()
            .flatten()
    } else {
        None
    };
    let registry_doc =
        registry_text.and_then(|t| PolicyDocument::parse(&t, PolicyKind::EcrRegistry).ok());
    let mut refs: Vec<PolicyRef<'_>> = identity
        .iter()
        .map(|(n, d)| PolicyRef {
            name: n,
            source: PolicySource::Identity,
            document: d,
        })
        .collect();
    if let Some(d) = &repo_doc {
        refs.push(PolicyRef {
            name: "repository policy",
            source: PolicySource::Resource,
            document: d,
        });
    }
    if let Some(d) = &registry_doc {
        refs.push(PolicyRef {
            name: "registry policy",
            source: PolicySource::Resource,
            document: d,
        });
    }
    let eval = evaluate(&ctx, &refs);
    if eval.is_allowed() {
        Ok(())
    } else {
        Err(Denied(eval.denial_message(&ctx)))
    }
}

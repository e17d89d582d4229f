//! Authorization: evaluates the policies that apply to a request (gathered by the
//! core, which fails closed when it cannot read them) with `berth-iam`'s AWS
//! semantics (`docs/architecture.md`, "The request path").

use berth_iam::policy::{
    evaluate, needs_condition_keys, PolicyRef, PolicySource, PrincipalKind, RequestContext,
};
use berth_registry::identity::Principal;
use berth_registry::{AuthzError, Denied};

use crate::App;

/// Condition keys a request carries beyond those every request has: the tags it
/// sets (`aws:RequestTag/<key>`) and the keys it names (`aws:TagKeys`), for
/// CreateRepository with tags, TagResource and UntagResource.
#[derive(Debug, Default, Clone)]
pub struct RequestKeys<'a> {
    pub request_tags: &'a [(String, String)],
    /// `aws:TagKeys`; set (possibly empty) only for the tagging operations.
    pub tag_keys: Option<Vec<String>>,
    /// `kms:ViaService`: the service using a KMS key on the caller's behalf
    /// (`ecr.<region>.amazonaws.com` when ECR does).
    pub via_service: Option<String>,
}

pub async fn authorize(
    app: &App,
    p: &Principal,
    action: &str,
    account: &str,
    resource: &str,
    repo_policy: Option<&str>,
) -> Result<(), AuthzError> {
    authorize_with(
        app,
        p,
        action,
        account,
        resource,
        repo_policy,
        &RequestKeys::default(),
    )
    .await
}

/// The repository an ECR resource ARN names (`…:repository/<name>`, not `*`).
fn repository_of(resource: &str) -> Option<&str> {
    let rest = resource.strip_prefix("arn:aws:ecr:")?;
    let name = rest.split_once(":repository/")?.1;
    (!name.is_empty() && !name.contains('*')).then_some(name)
}

/// Builds the request context with every condition key AWS would populate
/// (`docs/architecture.md`, "Attribute-based access control"). Tags are read
/// from the stores, failing closed.
async fn context(
    app: &App,
    p: &Principal,
    principal: berth_iam::policy::Principal,
    action: &str,
    account: &str,
    resource: &str,
    keys: &RequestKeys<'_>,
) -> Result<RequestContext, AuthzError> {
    let mut ctx = RequestContext::new(principal, action, resource)
        .with_resource_account(account)
        .with_time(app.registry.now() / 1000)
        .with_key("aws:RequestedRegion", app.config.region.clone())
        .with_key("aws:userid", p.user_id());
    if let Some(a) = crate::request_attrs::current() {
        ctx = ctx
            .with_key("aws:SourceIp", a.source_ip.to_string())
            .with_secure_transport(a.secure_transport);
        if let Some(ua) = a.user_agent.as_ref().and_then(|v| v.to_str().ok()) {
            ctx = ctx.with_key("aws:UserAgent", ua);
        }
    }
    let attrs = app
        .registry
        .attribute_inputs(p, account, repository_of(resource))
        .await?;
    for (k, v) in &attrs.principal_tags {
        ctx.set(&format!("aws:PrincipalTag/{k}"), vec![v.clone()]);
    }
    for (k, v) in &attrs.resource_tags {
        ctx.set(&format!("aws:ResourceTag/{k}"), vec![v.clone()]);
        ctx.set(&format!("ecr:ResourceTag/{k}"), vec![v.clone()]);
    }
    for (k, v) in keys.request_tags {
        ctx.set(&format!("aws:RequestTag/{k}"), vec![v.clone()]);
    }
    if let Some(t) = &keys.tag_keys {
        ctx.set("aws:TagKeys", t.clone());
    }
    if let Some(v) = &keys.via_service {
        ctx.set("kms:ViaService", vec![v.clone()]);
    }
    Ok(ctx)
}

/// [`authorize`] with the request's own condition keys.
pub async fn authorize_with(
    app: &App,
    p: &Principal,
    action: &str,
    account: &str,
    resource: &str,
    repo_policy: Option<&str>,
    keys: &RequestKeys<'_>,
) -> Result<(), AuthzError> {
    // The caller as `berth-iam` sees it, built from its parts (the ARN is not
    // parsed back on every request).
    if !berth_iam::arn::is_account_id(&p.account_id) {
        return Err(Denied(format!("unknown principal {}", p.arn())).into());
    }
    let principal = berth_iam::policy::Principal {
        arn: p.arn(),
        account: p.account_id.clone(),
        kind: match p.user_name {
            None => PrincipalKind::Root,
            Some(_) => PrincipalKind::User,
        },
    };
    let inputs = app.registry.policy_inputs(p, account, repo_policy).await?;
    let mut refs: Vec<PolicyRef<'_>> = inputs
        .identity
        .iter()
        .map(|(n, d)| PolicyRef {
            name: n,
            source: PolicySource::Identity,
            document: d,
        })
        .collect();
    if let Some(d) = &inputs.repository {
        refs.push(PolicyRef {
            name: "repository policy",
            source: PolicySource::Resource,
            document: d,
        });
    }
    // REGISTRY_POLICY_SCOPE=V1 limits the registry policy to the replication and
    // pull-through-cache actions; reading the setting fails closed like the policy.
    let registry_applies = match &inputs.registry {
        None => false,
        Some(_) => match app.registry.registry_policy_covers(account, action).await {
            Ok(b) => b,
            Err(e) => {
                return Err(app
                    .registry
                    .unreadable("registry policy scope", &e.to_string())
                    .await)
            }
        },
    };
    if let (true, Some(d)) = (registry_applies, &inputs.registry) {
        refs.push(PolicyRef {
            name: "registry policy",
            source: PolicySource::Resource,
            document: d,
        });
    }
    // The condition keys (the time, the caller's keys and tags, the resource's
    // tags, the request's own keys) are computed — and the tags read, failing
    // closed — only when a policy that applies can consult them; otherwise the
    // decision cannot depend on them and the context carries none.
    let ctx = if needs_condition_keys(&refs) {
        context(app, p, principal, action, account, resource, keys).await?
    } else {
        RequestContext::without_keys(principal, action, resource, account)
    };
    let eval = evaluate(&ctx, &refs);
    if eval.is_allowed() {
        Ok(())
    } else {
        Err(Denied(eval.denial_message(&ctx)).into())
    }
}

#[cfg(test)]
mod tests {
    //! Authorization fails closed (`docs/architecture.md`, "The request path"): a
    //! store error or an unparsable stored document while gathering the policies
    //! denies the request, while the rest of the store keeps working.

    use std::sync::Arc;

    use berth_registry::{AccountSetting, Clock, Registry, RegistryConfig, StoreSettings, Stores};
    use sqlx::sqlite::SqlitePool;

    use super::*;
    use crate::ApiConfig;

    const ACCOUNT: &str = "123456789012";

    struct Fixture {
        app: App,
        /// A second connection to the same database, to damage it.
        raw: SqlitePool,
        dir: std::path::PathBuf,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    async fn fixture() -> Fixture {
        let dir = std::env::temp_dir().join(format!("berth-policy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("meta.db").display());
        let stores = Stores::open(&StoreSettings {
            database_url: url.clone(),
            data_dir: dir.clone(),
            blob_store: None,
            plaintext_blobs: false,
            database_timeout: None,
        })
        .await
        .unwrap();
        stores.ensure_account(ACCOUNT, 0).await.unwrap();
        let registry = Registry::open(
            stores,
            Clock::with_offset(0),
            RegistryConfig::default(),
            [9u8; 32],
        );
        let app = App::new(
            Arc::new(registry),
            ApiConfig {
                default_account: ACCOUNT.into(),
                region: "us-east-1".into(),
                public_host: "localhost".into(),
                scheme: "http",
                peer_regions: Vec::new(),
            },
        );
        let raw = SqlitePool::connect(&url).await.unwrap();
        Fixture { app, raw, dir }
    }

    async fn pull(app: &App, p: &Principal, repo_policy: Option<&str>) -> Result<(), AuthzError> {
        app.authorize(
            p,
            "ecr:BatchGetImage",
            ACCOUNT,
            Some("team/app"),
            repo_policy,
        )
        .await
    }

    /// A user whose identity policy allows everything ECR.
    async fn power_user(app: &App) -> Principal {
        let id = app.registry.identity();
        let p = id.create_user(ACCOUNT, "alice", 0).await.unwrap().unwrap();
        id.put_user_policy(
            ACCOUNT,
            "alice",
            "AmazonEC2ContainerRegistryFullAccess",
            None,
        )
        .await
        .unwrap();
        p
    }

    #[tokio::test]
    async fn a_registry_policy_that_cannot_be_read_denies() {
        let f = fixture().await;
        let alice = power_user(&f.app).await;
        let root = Principal::root(ACCOUNT);
        assert_eq!(pull(&f.app, &alice, None).await, Ok(()));
        assert_eq!(pull(&f.app, &root, None).await, Ok(()));
        // The registry policy's value becomes unreadable (a BLOB where text is
        // stored): its Deny statements, if any, cannot be known.
        sqlx::query("UPDATE accounts SET registry_policy = X'FF00FE' WHERE account_id = ?")
            .bind(ACCOUNT)
            .execute(&f.raw)
            .await
            .unwrap();
        assert!(
            f.app
                .registry
                .account_setting(ACCOUNT, AccountSetting::RegistryPolicy)
                .await
                .is_err(),
            "the injected fault must make the read fail"
        );
        for p in [&alice, &root] {
            let err = pull(&f.app, p, None).await.unwrap_err();
            assert_eq!(
                err,
                AuthzError::Denied(Denied(berth_registry::NOT_EVALUATED.into()))
            );
        }
        // The store is not down: identity still answers.
        assert!(f
            .app
            .registry
            .identity()
            .user(ACCOUNT, "alice")
            .await
            .unwrap()
            .is_some());
        // A repository policy of the same account grants without the registry
        // policy, as in ECR, so no read is needed there.
        let grant = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"ecr:*"}]}"#;
        assert_eq!(pull(&f.app, &alice, Some(grant)).await, Ok(()));
    }

    #[tokio::test]
    async fn an_unparsable_stored_policy_denies() {
        let f = fixture().await;
        let alice = power_user(&f.app).await;
        assert_eq!(pull(&f.app, &alice, None).await, Ok(()));
        sqlx::query("UPDATE accounts SET registry_policy = 'not a policy' WHERE account_id = ?")
            .bind(ACCOUNT)
            .execute(&f.raw)
            .await
            .unwrap();
        assert!(pull(&f.app, &alice, None).await.is_err());
        // The same for a repository policy and an inline identity policy.
        let f = fixture().await;
        let alice = power_user(&f.app).await;
        assert!(pull(&f.app, &alice, Some("{\"Statement\": 7}"))
            .await
            .is_err());
        sqlx::query("UPDATE user_policies SET document = '[' WHERE user_name = 'alice'")
            .execute(&f.raw)
            .await
            .unwrap();
        assert!(pull(&f.app, &alice, None).await.is_err());
    }

    #[tokio::test]
    async fn identity_policies_that_cannot_be_read_deny() {
        let f = fixture().await;
        let alice = power_user(&f.app).await;
        assert_eq!(pull(&f.app, &alice, None).await, Ok(()));
        sqlx::query("ALTER TABLE user_policies RENAME TO user_policies_lost")
            .execute(&f.raw)
            .await
            .unwrap();
        assert!(pull(&f.app, &alice, None).await.is_err());
    }

    /// The principal of a data-plane token is an authorization input too: a lookup
    /// that fails while the store answers refuses the request (403, not 500).
    #[tokio::test]
    async fn a_principal_that_cannot_be_looked_up_is_refused() {
        let f = fixture().await;
        let alice = power_user(&f.app).await;
        let now = f.app.registry.now() / 1000;
        let (token, _) = f.app.registry.identity().mint_token(&alice, now).unwrap();
        let mut headers = axum::http::HeaderMap::new();
        let basic = format!("Basic {}", berth_iam::token::authorization_token(&token));
        headers.insert("authorization", basic.parse().unwrap());
        assert_eq!(
            f.app.authenticate_data_plane(&headers).await.ok(),
            Some(alice)
        );
        sqlx::query("ALTER TABLE users RENAME TO users_lost")
            .execute(&f.raw)
            .await
            .unwrap();
        let err = f.app.authenticate_data_plane(&headers).await.unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::FORBIDDEN);
        assert_eq!(err.code, "DENIED");
    }
}

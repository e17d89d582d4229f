//! Authorization inputs: the policies that apply to a request — the caller's
//! identity policies, the repository policy, the registry policy — gathered from the
//! stores and parsed, for the front end to evaluate with `berth-iam`.
//!
//! Gathering fails closed (`docs/architecture.md`, "The request path"): a store
//! error while reading any of them, or a stored document that no longer parses,
//! refuses the request. Skipping it instead could drop an explicit Deny. Only when
//! the metadata store answers nothing at all is the failure reported as the
//! server's ([`AuthzError::Unavailable`]).

use berth_iam::policy::{self as iam_policy, PolicyDocument, PolicyKind};
use std::sync::Arc;

use berth_store::AccountSetting;

use crate::identity::Principal;
use crate::Registry;

/// A refused authorization, with the message AWS would give. Each wire format maps
/// it once (`From<Denied>` beside its error type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a decision could not be made in the caller's favour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthzError {
    /// Refused: by the policies, or because an input could not be read or parsed.
    Denied(Denied),
    /// The metadata store does not answer at all, so nothing can be decided.
    Unavailable(String),
}

impl From<Denied> for AuthzError {
    fn from(d: Denied) -> Self {
        AuthzError::Denied(d)
    }
}

impl std::fmt::Display for AuthzError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthzError::Denied(d) => d.fmt(f),
            AuthzError::Unavailable(e) => write!(f, "the metadata store is unavailable: {e}"),
        }
    }
}

/// The message of a refusal whose inputs could not be gathered.
pub const NOT_EVALUATED: &str = "authorization could not be evaluated";

fn not_evaluated(what: &str, error: &dyn std::fmt::Display) -> Denied {
    tracing::error!(input = what, error = %error, "cannot load an authorization input; denying");
    Denied(NOT_EVALUATED.into())
}

/// The parsed policies that apply to one request.
#[derive(Debug, Default)]
pub struct PolicyInputs {
    /// The caller's identity policies: (name, document).
    pub identity: crate::cache::IdentityPolicies,
    pub repository: Option<Arc<PolicyDocument>>,
    pub registry: Option<Arc<PolicyDocument>>,
}

impl Registry {
    /// Gathers what deciding whether `p` may act on `account`'s registry needs.
    /// `repo_policy` is the stored policy of the target repository, if any. The
    /// registry policy is read when the call crosses accounts or the repository has
    /// no policy (the same-account rule of ECR: either grants).
    pub async fn policy_inputs(
        &self,
        p: &Principal,
        account: &str,
        repo_policy: Option<&str>,
    ) -> Result<PolicyInputs, AuthzError> {
        let epoch = self.cache_epoch().await;
        let identity = self.identity_policies(p, epoch).await?;
        let repository = match repo_policy {
            None => None,
            Some(t) => Some(self.parsed_repository_policy(t)?),
        };
        let registry = if p.account_id != account || repository.is_none() {
            self.registry_policy(account, epoch).await?
        } else {
            None
        };
        Ok(PolicyInputs {
            identity,
            repository,
            registry,
        })
    }

    /// A stored repository policy, parsed (cached by its text).
    fn parsed_repository_policy(&self, text: &str) -> Result<Arc<PolicyDocument>, AuthzError> {
        // The parse is a function of the text alone: any epoch will do.
        if let Some(d) = self.cache.parsed_repository_policies.get(text, 0) {
            return Ok(d);
        }
        let d = Arc::new(
            PolicyDocument::parse(text, PolicyKind::EcrRepository)
                .map_err(|e| not_evaluated("stored repository policy", &e))?,
        );
        self.cache
            .parsed_repository_policies
            .put(text.to_string(), 0, d.clone());
        Ok(d)
    }

    /// The account's registry policy, parsed (cached under `epoch`).
    async fn registry_policy(
        &self,
        account: &str,
        epoch: Option<i64>,
    ) -> Result<Option<Arc<PolicyDocument>>, AuthzError> {
        if let Some(d) = epoch.and_then(|e| self.cache.registry_policies.get(account, e)) {
            return Ok(d);
        }
        let text = match self
            .meta
            .account_setting(account, AccountSetting::RegistryPolicy)
            .await
        {
            Ok(t) => t,
            Err(e) => return Err(self.unreadable("registry policy", &e).await),
        };
        let d = match text {
            None => None,
            Some(t) => Some(Arc::new(
                PolicyDocument::parse(&t, PolicyKind::EcrRegistry)
                    .map_err(|e| not_evaluated("stored registry policy", &e))?,
            )),
        };
        if let Some(e) = epoch {
            self.cache
                .registry_policies
                .put(account.to_string(), e, d.clone());
        }
        Ok(d)
    }

    /// The identity policies of a principal (none for an account root), cached
    /// under `epoch`.
    async fn identity_policies(
        &self,
        p: &Principal,
        epoch: Option<i64>,
    ) -> Result<crate::cache::IdentityPolicies, AuthzError> {
        let Some(user) = &p.user_name else {
            return Ok(Arc::default());
        };
        let lookup: &dyn crate::cache::StrPair = &(p.account_id.as_str(), user.as_str());
        if let Some(v) = epoch.and_then(|e| self.cache.identity_policies.get(lookup, e)) {
            return Ok(v);
        }
        let key = (p.account_id.clone(), user.clone());
        let rows = match self.meta.user_policies(&p.account_id, user).await {
            Ok(rows) => rows,
            Err(e) => return Err(self.unreadable("identity policies", &e).await),
        };
        let mut out = Vec::with_capacity(rows.len());
        for (name, doc) in rows {
            let parsed = match doc {
                Some(text) => PolicyDocument::parse(&text, PolicyKind::Identity),
                // A managed policy berth does not know grants nothing.
                None => match iam_policy::managed_policy(&name) {
                    Some(m) => m.parse(),
                    None => continue,
                },
            };
            let d = parsed.map_err(|e| not_evaluated(&format!("identity policy {name}"), &e))?;
            out.push((name, d));
        }
        let out = Arc::new(out);
        if let Some(e) = epoch {
            self.cache.identity_policies.put(key, e, out.clone());
        }
        Ok(out)
    }

    /// An authorization input could not be read: a refusal, unless the metadata
    /// store answers nothing at all.
    pub async fn unreadable(
        &self,
        what: &str,
        error: &(dyn std::fmt::Display + Send + Sync),
    ) -> AuthzError {
        match self.meta.ping().await {
            Err(down) => {
                tracing::error!(input = what, error = %error, "the metadata store is unavailable");
                AuthzError::Unavailable(down.to_string())
            }
            Ok(()) => AuthzError::Denied(not_evaluated(what, error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Clock, RegistryConfig, StoreSettings, Stores};

    const ACCOUNT: &str = "123456789012";

    async fn registry(dir: &std::path::Path) -> Registry {
        let stores = Stores::open(&StoreSettings {
            database_url: format!("sqlite://{}?mode=rwc", dir.join("meta.db").display()),
            data_dir: dir.to_path_buf(),
            blob_store: None,
            plaintext_blobs: false,
            database_timeout: None,
        })
        .await
        .unwrap();
        stores.ensure_account(ACCOUNT, 0).await.unwrap();
        Registry::open(
            stores,
            Clock::with_offset(0),
            RegistryConfig::default(),
            [3u8; 32],
        )
    }

    /// With the metadata store down for everything, nothing can be decided: the
    /// failure is the server's, not a refusal of the caller.
    #[tokio::test]
    async fn a_store_that_answers_nothing_is_unavailable() {
        let dir = std::env::temp_dir().join(format!("berth-authz-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let reg = registry(&dir).await;
        let alice = reg
            .identity()
            .create_user(ACCOUNT, "alice", 0)
            .await
            .unwrap()
            .unwrap();
        assert!(reg.policy_inputs(&alice, ACCOUNT, None).await.is_ok());
        reg.meta.pool().close().await;
        let got = reg.policy_inputs(&alice, ACCOUNT, None).await;
        assert!(matches!(got, Err(AuthzError::Unavailable(_))), "{got:?}");
        let root = Principal::root(ACCOUNT);
        let got = reg.policy_inputs(&root, ACCOUNT, None).await;
        assert!(matches!(got, Err(AuthzError::Unavailable(_))), "{got:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

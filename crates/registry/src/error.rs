//! Core errors. Each front end maps them once to its wire format (OCI error codes,
//! ECR `__type` names).

use berth_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid repository name")]
    NameInvalid,
    #[error(
        "The repository with name '{name}' does not exist in the registry with id '{account}'"
    )]
    NameUnknown { account: String, name: String },
    #[error(
        "The repository with name '{name}' already exists in the registry with id '{account}'"
    )]
    RepositoryAlreadyExists { account: String, name: String },
    #[error("The repository with name '{name}' in registry with id '{account}' cannot be deleted because it still contains images")]
    RepositoryNotEmpty { account: String, name: String },
    #[error("blob unknown to registry")]
    BlobUnknown,
    #[error("blob upload unknown to registry")]
    UploadUnknown,
    #[error("blob upload invalid: {0}")]
    UploadInvalid(String),
    #[error("requested range not satisfiable; upload holds {size} bytes")]
    RangeInvalid { size: u64 },
    #[error("provided digest did not match uploaded content")]
    DigestMismatch,
    #[error("invalid digest: {0}")]
    DigestInvalid(String),
    #[error("invalid tag")]
    TagInvalid,
    #[error("manifest unknown")]
    ManifestUnknown,
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    #[error("unsupported manifest media type: {0}")]
    ManifestUnsupported(String),
    #[error("manifest exceeds the 4 MiB limit")]
    ManifestTooLarge,
    #[error("manifest references blobs that are not in the repository: {}", .0.join(", "))]
    ManifestBlobUnknown(Vec<String>),
    #[error("manifest references images that are not in the repository: {}", .0.join(", "))]
    ManifestChildUnknown(Vec<String>),
    #[error("The image tag '{tag}' already exists in the '{repository}' repository and cannot be overwritten because the repository is immutable.")]
    TagImmutable { tag: String, repository: String },
    #[error("the manifest is referenced by the index {0}")]
    ReferencedByIndex(String),
    #[error("{0}")]
    PolicyInvalid(String),
    #[error("{0}")]
    Kms(String),
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
}

//! The registry core: repositories, blobs, uploads, manifests, tags and referrers,
//! with the rules that make them a registry (names, references, immutability, limits).
//!
//! Every front end — the OCI `/v2/` API, the ECR JSON API, `berth admin`, the
//! console — calls these functions and nothing below them: the stores are private
//! to this crate (`docs/architecture.md`, "Rooms"). The core also owns identity
//! (accounts, users, access keys, the master key, registry tokens; `identity.rs`)
//! and gathers the inputs of an authorization decision, failing closed
//! (`authz.rs`); the front ends evaluate them. This room never sees HTTP. It talks
//! to storage only through `berth-store`.

mod abac;
mod account_flags;
pub mod audit_verify;
mod authz;
mod bulk;
mod cache;
mod clock;
pub mod console;
mod control;
mod error;
pub mod events;
pub mod feeds;
mod gc;
pub mod identity;
pub mod jobs;
pub mod keys;
pub mod kms;
mod lease;
mod lifecycle;
pub mod master_ring;
mod mutability;
pub mod nodes;
pub mod obs;
mod open;
mod pull_through;
pub mod pull_through_jobs;
mod pull_time;
mod registry;
pub mod replication;
pub mod rotation;
pub mod sbom;
pub mod scan;
pub mod secrets;
pub mod secrets_manager;
mod templates;
pub mod upstream;

pub use abac::{AttributeInputs, MAX_USER_TAGS};
pub use account_flags::{AccountFlag, V1_REGISTRY_POLICY_ACTIONS};
pub use authz::{AuthzError, Denied, PolicyInputs, NOT_EVALUATED};
pub use cache::{in_request, ServedManifest};
pub use clock::Clock;
pub use control::{AuditRecord, StoreHealth, VulndbStatus};
pub use error::RegistryError;
pub use gc::{GcReport, GcStats};
pub use lifecycle::ExpiredImage;
pub use mutability::{tag_is_immutable, ExclusionFilter, TagMutability};
pub use open::{object_bytes_read, object_bytes_written, object_requests, upload_rehashed_bytes};
pub use open::{BlobLocation, OpenError, S3Config, StoreSettings, Stores, PLAINTEXT_BLOBS_ENV};
pub use pull_through::{
    matching_rule, FetchedManifest, PullThroughError, PullThroughRule,
    LEASE_RENEW_MS as PULL_THROUGH_LEASE_RENEW_MS,
};
pub use pull_time::MAX_PULL_TIME_EXCLUSIONS;
pub use registry::{
    BlobRead, Completed, ImageOutcome, ManifestPut, MountOutcome, Registry, RegistryConfig,
    RepoSettings, UploadState,
};
pub use templates::{matching_template, CreationPurpose, CreationTemplate, ROOT as TEMPLATE_ROOT};

// The rows the core hands to front ends: plain data, no store access.
pub use berth_store::kms::KmsKeyRow;
pub use berth_store::scans::ScanRow;
pub use berth_store::{AccountSetting, AuditRow, ManifestRow, RepositoryRow, UserRow};

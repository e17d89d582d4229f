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

mod authz;
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
mod lifecycle;
mod mutability;
mod open;
mod registry;
pub mod sbom;
pub mod scan;
pub mod secrets;

pub use authz::{AuthzError, Denied, PolicyInputs, NOT_EVALUATED};
pub use clock::Clock;
pub use control::{AuditRecord, StoreHealth, VulndbStatus};
pub use error::RegistryError;
pub use gc::{GcReport, GcStats};
pub use lifecycle::ExpiredImage;
pub use mutability::{tag_is_immutable, ExclusionFilter, TagMutability};
pub use open::{OpenError, StoreSettings, Stores, PLAINTEXT_BLOBS_ENV};
pub use registry::{
    BlobRead, Completed, ImageOutcome, ManifestPut, MountOutcome, Registry, RegistryConfig,
    RepoSettings, UploadState,
};

// The rows the core hands to front ends: plain data, no store access.
pub use berth_store::kms::KmsKeyRow;
pub use berth_store::scans::ScanRow;
pub use berth_store::{AccountSetting, AuditRow, ManifestRow, RepositoryRow, UserRow};

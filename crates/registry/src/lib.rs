//! The registry core: repositories, blobs, uploads, manifests, tags and referrers,
//! with the rules that make them a registry (names, references, immutability, limits).
//!
//! Every front end — the OCI `/v2/` API, the ECR JSON API, the console — calls these
//! functions after authorizing the caller; this room never sees HTTP and never
//! decides who may do what. It talks to storage only through `berth-store`.

mod clock;
mod error;
mod gc;
pub mod jobs;
pub mod keys;
pub mod kms;
mod lifecycle;
mod mutability;
mod registry;
pub mod scan;

pub use clock::Clock;
pub use error::RegistryError;
pub use gc::{GcReport, GcStats};
pub use lifecycle::ExpiredImage;
pub use mutability::{tag_is_immutable, ExclusionFilter, TagMutability};
pub use registry::{
    BlobRead, Completed, ImageOutcome, ManifestPut, MountOutcome, Registry, RegistryConfig,
    RepoSettings, UploadState,
};

//! OCI vocabulary as plain data: digests, repository names, tags, references, media
//! types, and manifest parsing/validation.
//!
//! This room is pure: no I/O, no async, no storage. Everything a client sends is
//! validated here on construction, so an invalid name, tag or digest cannot exist
//! past the HTTP edge.
//!
//! Specs: OCI Distribution Spec v1.1 (`spec.md`, "Pulling manifests", "Pushing
//! manifests"), OCI Image Spec (`manifest.md`, `image-index.md`, `descriptor.md`),
//! and ECR's repository-name and tag grammar (botocore ECR model).

pub mod digest;
pub mod manifest;
pub mod media;
pub mod name;
pub mod range;
pub mod sha256_state;

pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use manifest::{Descriptor, Manifest, ManifestError, ManifestKind};
pub use name::{ImageTag, NameError, Reference, RepositoryName};

//! Storage: the metadata store (SQL: SQLite by default, PostgreSQL for many nodes)
//! and the blob store (one pipeline over an object backend; the local filesystem by
//! default, see `docs/architecture.md`, "Storage").
//!
//! This room knows rows and bytes, not registry rules: it never decides whether a
//! push is allowed or a name is valid — the registry core does — but it makes every
//! multi-row change atomic and every acknowledged byte durable.

pub mod blob;
pub mod crypt;
pub mod events;
pub mod kms;
pub mod meta;
pub mod object;
pub mod replication;
pub mod s3;
pub mod scans;
mod schema;

pub use blob::{Appended, BlobRef, BlobStore, ByteStream, Chunk, Staging};
pub use meta::jobs::{ClaimedJob, Completion, FailOutcome, JobRecord, JobRow, NewJob, RetryPolicy};
pub use meta::{
    AccessKeyRow, AccountSetting, AuditFilter, AuditRow, DeleteManifestOutcome, Dialect,
    ManifestRow, ManifestWrite, Meta, NewRepository, PutManifestOutcome, RepoColumn, RepositoryRow,
    UploadRow, UserRow,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("configuration error: {0}")]
    Config(String),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("content does not match the digest")]
    DigestMismatch,
    #[error("the request body was aborted")]
    Aborted,
    #[error("stored data failed authentication: {0}")]
    Tampered(String),
    #[error("KMS key unusable: {0}")]
    Kms(String),
}

/// Wall-clock unix milliseconds.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

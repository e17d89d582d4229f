//! Storage: the metadata store (SQL: SQLite by default, PostgreSQL for many nodes)
//! and the blob store (one pipeline over an object backend; the local filesystem by
//! default, see `docs/architecture.md`, "Storage").
//!
//! This room knows rows and bytes, not registry rules: it never decides whether a
//! push is allowed or a name is valid — the registry core does — but it makes every
//! multi-row change atomic and every acknowledged byte durable.

pub mod blob;
pub mod counting;
pub mod crypt;
pub mod events;
pub mod kms;
pub mod meta;
pub mod object;
pub mod obs;
pub mod ranged;
pub mod replication;
pub mod s3;
pub mod scans;
mod schema;
mod tail_cache;

pub use blob::{Appended, BlobRef, BlobStore, ByteStream, Chunk, Staging};
pub use meta::jobs::{ClaimedJob, Completion, FailOutcome, JobRecord, JobRow, NewJob, RetryPolicy};
pub use meta::{
    AccessKeyRow, AccountSetting, AuditFilter, AuditRow, DeleteManifestOutcome, Dialect,
    ManifestRow, ManifestWrite, Meta, NewRepository, PutManifestOutcome, RepoColumn, RepositoryRow,
    UploadRow, UserRow, DEFAULT_DATABASE_TIMEOUT,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[source] sqlx::Error),
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
    /// The object store failed after its own retries (timeouts, connection
    /// errors, 5xx): the request may succeed later.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
}

impl From<sqlx::Error> for StoreError {
    /// Every database error a store method returns passes here and is counted by
    /// class for `/metrics` ([`obs::db_errors`]).
    fn from(e: sqlx::Error) -> Self {
        obs::count_db_error(&e);
        StoreError::Db(e)
    }
}

impl StoreError {
    /// Whether the store is unreachable or overloaded for now, so the request may
    /// succeed if retried later: the database cannot be reached (connection
    /// refused or lost, the pool timed out waiting for a connection, PostgreSQL
    /// shutting down or out of connections) or SQLite stayed locked past its busy
    /// timeout. Front ends answer these with 503 and `Retry-After`.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Db(e) => db_unavailable(e),
            StoreError::Unavailable(_) => true,
            _ => false,
        }
    }

    /// Whether a write failed because the file system is full (`ENOSPC`, or the
    /// quota `EDQUOT`), or SQLite reported a full database.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::Io(e) => io_full(e),
            StoreError::Db(sqlx::Error::Io(e)) => io_full(e),
            StoreError::Db(sqlx::Error::Database(d)) => {
                // SQLITE_FULL (13): "database or disk is full".
                d.code().as_deref() == Some("13")
            }
            _ => false,
        }
    }
}

fn io_full(e: &std::io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    e.kind() == std::io::ErrorKind::StorageFull
        || matches!(e.raw_os_error(), Some(ENOSPC) | Some(EDQUOT))
}

fn db_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Io(io) => !io_full(io),
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(d) => {
            let code = d.code().unwrap_or_default();
            // PostgreSQL: class 08 (connection exception), admin/crash shutdown,
            // cannot connect now, too many connections. SQLite: BUSY (5), LOCKED (6).
            code.starts_with("08")
                || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300" | "5" | "6")
        }
        _ => false,
    }
}

/// Wall-clock unix milliseconds.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

//! Opening the stores the core runs on. The binary configures them here and hands
//! them to [`Registry::open`]; no front end holds a store (`docs/architecture.md`,
//! "Rooms").

use std::path::PathBuf;
use std::sync::Arc;

use berth_store::blob::BlobMode;
use berth_store::s3::S3Backend;
use berth_store::{BlobStore, Meta};

pub use berth_store::s3::S3Config;

/// Requests this process made to an S3 blob store so far, per operation (one round
/// trip each; `crates/store/src/counting.rs`).
pub fn object_requests() -> Vec<(&'static str, u64)> {
    berth_store::counting::object_requests()
}

/// Bytes this process sent to an S3 blob store in object and part bodies
/// (`crates/store/src/counting.rs`).
pub fn object_bytes_written() -> u64 {
    berth_store::counting::object_bytes_written()
}

/// Bytes this process received from an S3 blob store in `GET` bodies.
pub fn object_bytes_read() -> u64 {
    berth_store::counting::object_bytes_read()
}

/// Bytes this process read back and hashed to verify finished uploads that no
/// running hash covered (`crates/store/src/blob.rs`).
pub fn upload_rehashed_bytes() -> u64 {
    berth_store::blob::upload_rehashed_bytes()
}

use crate::{Clock, Registry, RegistryConfig, RegistryError};

/// BENCHMARK ONLY: with this environment variable set to `1`, blobs are stored as
/// plaintext so the benchmark harness can measure what sealing costs.
pub const PLAINTEXT_BLOBS_ENV: &str = berth_store::blob::PLAINTEXT_BLOBS_ENV;

/// Where the stores live.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// The data directory; the filesystem blob store lives under it.
    pub data_dir: PathBuf,
    /// Where blob bytes live; `None` is the filesystem store under `data_dir`.
    pub blob_store: Option<BlobLocation>,
    /// Benchmark only (see [`PLAINTEXT_BLOBS_ENV`]).
    pub plaintext_blobs: bool,
    /// How long a request waits for a database connection before it fails as
    /// unavailable (`berth_store::DEFAULT_DATABASE_TIMEOUT` when `None`).
    pub database_timeout: Option<std::time::Duration>,
}

/// A blob store location: `file://<dir>` or `s3://<bucket>[/<prefix>]`.
#[derive(Debug, Clone)]
pub enum BlobLocation {
    /// The filesystem store rooted at this directory (objects under `<dir>/blobs`,
    /// staged uploads under `<dir>/uploads`), with the file fast path for uploads.
    File(PathBuf),
    /// An S3-compatible bucket; uploads are staged as multipart parts plus a tail
    /// object, their state in the upload row, so any node can continue them.
    S3(S3Config),
}

impl BlobLocation {
    /// Whether this location can be shared by several nodes.
    pub fn is_shared(&self) -> bool {
        matches!(self, BlobLocation::S3(_))
    }
}

/// The opened stores, before the master key is known.
pub struct Stores {
    meta: Meta,
    blobs: Arc<BlobStore>,
}

/// Which store failed to open, with its message.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("metadata store: {0}")]
    Metadata(String),
    #[error("blob store: {0}")]
    Blobs(String),
}

impl Stores {
    /// Connects the metadata store (applying migrations) and opens the blob store.
    pub async fn open(s: &StoreSettings) -> Result<Stores, OpenError> {
        let timeout = s
            .database_timeout
            .unwrap_or(berth_store::DEFAULT_DATABASE_TIMEOUT);
        let meta = Meta::connect_with_timeout(&s.database_url, timeout)
            .await
            .map_err(|e| OpenError::Metadata(e.to_string()))?;
        let mode = if s.plaintext_blobs {
            BlobMode::PlaintextForBenchmarks
        } else {
            BlobMode::Encrypted
        };
        let blobs = match &s.blob_store {
            None => BlobStore::open_with_mode(&s.data_dir, mode),
            Some(BlobLocation::File(dir)) => BlobStore::open_with_mode(dir, mode),
            Some(BlobLocation::S3(cfg)) => S3Backend::new(cfg).map(|b| {
                if mode == BlobMode::PlaintextForBenchmarks {
                    tracing::warn!(
                        bucket = %cfg.bucket,
                        "!!! {PLAINTEXT_BLOBS_ENV}=1: BLOBS ARE STORED UNENCRYPTED. This mode \
                         exists only to benchmark the cost of encryption. !!!"
                    );
                }
                BlobStore::over(
                    Arc::new(berth_store::counting::Counting(berth_store::obs::Timed(b))),
                    mode,
                )
            }),
        }
        .map_err(|e| OpenError::Blobs(e.to_string()))?;
        Ok(Stores {
            meta,
            blobs: Arc::new(blobs),
        })
    }

    /// Whether the metadata store holds secrets sealed with some master key (so a
    /// missing key must not be replaced by a fresh one).
    pub async fn has_sealed_secrets(&self) -> Result<bool, RegistryError> {
        Ok(self.meta.has_sealed_secrets().await?)
    }

    /// Creates the account if it does not exist yet.
    pub async fn ensure_account(&self, account: &str, now: i64) -> Result<(), RegistryError> {
        Ok(self.meta.ensure_account(account, now).await?)
    }
}

impl Registry {
    /// The core over opened stores; `master` is the registry master key.
    pub fn open(stores: Stores, clock: Clock, config: RegistryConfig, master: [u8; 32]) -> Self {
        Registry::new(stores.meta, stores.blobs, clock, config, master)
    }
}

//! The metadata store: repositories, blob links, manifests, tags, upload sessions.
//!
//! One implementation serves both backends through sqlx's `Any` driver, which
//! dispatches to the real SQLite and PostgreSQL drivers; query texts are written to
//! be valid on both (`$n` placeholders, BIGINT everywhere, `ON CONFLICT`,
//! `RETURNING`) and the few dialect differences branch on [`Dialect`]. Every
//! compare-and-swap the registry relies on (tag ownership, blob existence) happens
//! inside a transaction here, never in the blob store.

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};

use crate::schema;
use crate::StoreError;

mod account_flags;
pub use account_flags::{DocTable, TemplateRow};
mod accounts;
mod blobs;
mod bulk_put;
mod cache_epoch;
mod epoch_reader;
pub use accounts::AuditFilter;
pub use blobs::legacy_object_key;
mod console;
mod gc;
mod identity;
pub mod jobs;
mod manifests;
pub use manifests::{no_jobs, DeletionJobs};
mod paging;
pub use paging::ImageIdRow;
mod pull_through;
mod repositories;
pub use console::{AuditSearch, SessionRow};
mod sm_secrets;
pub use sm_secrets::SmSecretRow;
mod abac;
pub mod audit_chain;
mod rekey;
pub use rekey::{KeyPart, MasterKeyState, SealedColumn, SealedRow};
mod nodes;
mod obs;
pub use obs::{JobQueueStat, PoolStats};
mod uploads;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Meta {
    pool: AnyPool,
    dialect: Dialect,
    /// SQLite has one writer; serialising write transactions in-process avoids
    /// SQLITE_BUSY upgrade deadlocks between deferred transactions.
    write_lock: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Write transactions this process has finished (`cache_epoch.rs`).
    writes: Arc<std::sync::atomic::AtomicU64>,
    /// SQLite: one connection with `synchronous=NORMAL`, for the writes of
    /// short-lived rows ([`Meta::begin_write_short_lived`]).
    short_lived: Option<AnyPool>,
    /// SQLite file databases: the cache epoch read on the caller's thread
    /// (`epoch_reader.rs`).
    epoch_reader: Option<Arc<epoch_reader::EpochReader>>,
}

pub struct WriteTx<'a> {
    pub tx: Transaction<'a, Any>,
    _guard: Option<tokio::sync::MutexGuard<'a, ()>>,
    writes: &'a std::sync::atomic::AtomicU64,
}

impl WriteTx<'_> {
    pub async fn commit(self) -> Result<(), StoreError> {
        let r = self.tx.commit().await;
        // Counted whatever the outcome: a commit whose answer was lost may still
        // have happened, and a count too many only costs a cache check.
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        r?;
        Ok(())
    }
}

/// A repository row.
#[derive(Debug, Clone)]
pub struct RepositoryRow {
    pub repo_id: i64,
    pub account_id: String,
    pub name: String,
    pub created_at: i64,
    pub tag_mutability: String,
    pub mutability_exclusions: String,
    pub scan_on_push: bool,
    pub encryption_type: String,
    pub kms_key: Option<String>,
    pub policy: Option<String>,
    pub lifecycle_policy: Option<String>,
    pub lifecycle_evaluated_at: Option<i64>,
}

const REPO_COLS: &str = "repo_id, account_id, name, created_at, tag_mutability, mutability_exclusions, scan_on_push, encryption_type, kms_key, policy, lifecycle_policy, lifecycle_evaluated_at";

fn repo_from_row(r: &AnyRow) -> Result<RepositoryRow, sqlx::Error> {
    Ok(RepositoryRow {
        repo_id: r.try_get(0)?,
        account_id: r.try_get(1)?,
        name: r.try_get(2)?,
        created_at: r.try_get(3)?,
        tag_mutability: r.try_get(4)?,
        mutability_exclusions: r.try_get(5)?,
        scan_on_push: r.try_get::<i64, _>(6)? != 0,
        encryption_type: r.try_get(7)?,
        kms_key: r.try_get(8)?,
        policy: r.try_get(9)?,
        lifecycle_policy: r.try_get(10)?,
        lifecycle_evaluated_at: r.try_get(11)?,
    })
}

/// What a new repository is created with.
#[derive(Debug, Clone)]
pub struct NewRepository {
    pub account_id: String,
    pub name: String,
    pub created_at: i64,
    pub tag_mutability: String,
    pub mutability_exclusions: String,
    pub scan_on_push: bool,
    pub encryption_type: String,
    pub kms_key: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// A stored manifest.
#[derive(Debug, Clone)]
pub struct ManifestRow {
    pub digest: String,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub subject: Option<String>,
    pub config_digest: Option<String>,
    pub image_size: i64,
    pub pushed_at: i64,
    pub last_pulled_at: Option<i64>,
    /// Empty when the query did not ask for the body.
    pub body: Vec<u8>,
}

const MANIFEST_COLS: &str =
    "digest, media_type, artifact_type, subject, config_digest, image_size, pushed_at, last_pulled_at";

fn manifest_from_row(r: &AnyRow, with_body: bool) -> Result<ManifestRow, sqlx::Error> {
    Ok(ManifestRow {
        digest: r.try_get(0)?,
        media_type: r.try_get(1)?,
        artifact_type: r.try_get(2)?,
        subject: r.try_get(3)?,
        config_digest: r.try_get(4)?,
        image_size: r.try_get(5)?,
        pushed_at: r.try_get(6)?,
        last_pulled_at: r.try_get(7)?,
        body: if with_body { r.try_get(8)? } else { Vec::new() },
    })
}

/// A manifest to store, with everything it references.
#[derive(Debug, Clone)]
pub struct ManifestWrite {
    pub repo_id: i64,
    pub digest: String,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub subject: Option<String>,
    pub config_digest: Option<String>,
    pub image_size: i64,
    pub body: Vec<u8>,
    pub pushed_at: i64,
    /// Blob digests that must be linked in the repository.
    pub blobs: Vec<String>,
    /// Child manifest digests that must exist in the repository.
    pub children: Vec<String>,
    /// The tag to point at this manifest, and whether that tag is immutable.
    pub tag: Option<(String, bool)>,
    /// Jobs to enqueue in the same transaction when the manifest is new (a scan on
    /// push, …), so a crash cannot lose them.
    pub jobs: Vec<jobs::NewJob>,
    /// Events written in the same transaction when the write is stored
    /// (`crate::events`).
    pub events: Vec<crate::events::NewEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutManifestOutcome {
    /// Stored (new manifest, or a new tag for an existing one).
    Stored {
        manifest_existed: bool,
        previous_tag_digest: Option<String>,
    },
    /// The same manifest was already there with the same tag (or untagged).
    Unchanged,
    /// References that are not in the repository.
    MissingBlobs(Vec<String>),
    MissingManifests(Vec<String>),
    /// The tag is immutable and points at another digest.
    TagImmutable {
        existing: String,
    },
}

#[derive(Debug, Clone)]
pub struct UploadRow {
    pub upload_id: String,
    pub repo_id: i64,
    pub size: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The upload's data key, wrapped by the registry key.
    pub data_key: Option<Vec<u8>>,
    /// The key of the upload's staged object (`uploads/<id>` for uploads staged
    /// before the object key was recorded).
    pub object_key: Option<String>,
    /// The blob pipeline's staging state (JSON), if any.
    pub staging: Option<String>,
}

/// How long a request waits for a database connection by default
/// (`BERTH_DATABASE_TIMEOUT_SECS`).
pub const DEFAULT_DATABASE_TIMEOUT: Duration = Duration::from_secs(10);

impl Meta {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and applies migrations,
    /// with [`DEFAULT_DATABASE_TIMEOUT`].
    pub async fn connect(url: &str) -> Result<Meta, StoreError> {
        Self::connect_with_timeout(url, DEFAULT_DATABASE_TIMEOUT).await
    }

    /// As [`Meta::connect`]; a request waits at most `timeout` for a connection
    /// (while the database is down, the pool keeps trying to reconnect for that
    /// long, then the request fails as unavailable: never a longer hang).
    pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Meta, StoreError> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            return Err(StoreError::Config(format!(
                "unsupported database URL scheme (want sqlite:// or postgres://): {}",
                redact_url(url)
            )));
        };
        let opts = AnyPoolOptions::new().acquire_timeout(timeout);
        // Writes of short-lived rows go through their own connection, whose
        // commits do not wait for an fsync (`Meta::begin_write_short_lived`). An
        // in-memory database would be another database on another connection.
        let short_lived = (dialect == Dialect::Sqlite
            && !url.contains(":memory:")
            && !url.contains("mode=memory"))
        .then(|| {
            AnyPoolOptions::new()
                .acquire_timeout(timeout)
                .max_connections(1)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(
                            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                             PRAGMA busy_timeout=10000; PRAGMA foreign_keys=OFF;",
                        )
                        .await?;
                        Ok(())
                    })
                })
                .connect_lazy(url)
        })
        .transpose()?;
        let pool = match dialect {
            Dialect::Sqlite => {
                opts.max_connections(8)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL lets readers run beside the writer; FULL makes every
                            // acknowledged commit durable across power loss.
                            conn.execute(
                                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
                                 PRAGMA busy_timeout=10000; PRAGMA foreign_keys=OFF;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Dialect::Postgres => opts.max_connections(16).connect(url).await?,
        };
        let meta = Meta {
            pool,
            dialect,
            write_lock: (dialect == Dialect::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(()))),
            writes: Arc::default(),
            short_lived,
            epoch_reader: None,
        };
        meta.migrate().await?;
        // After the migration: the reader's statement needs the `cache_epoch` table.
        let epoch_reader = match dialect {
            Dialect::Sqlite => epoch_reader::EpochReader::for_url(url).map(Arc::new),
            Dialect::Postgres => None,
        };
        Ok(Meta {
            epoch_reader,
            ..meta
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        g.tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await?;
        if self.dialect == Dialect::Postgres {
            // Several nodes may start at once: one migrates, the others wait.
            g.tx.execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
                .await?;
        }
        // Every listed version not yet recorded is applied, in list order: branches
        // that each add a migration may land in any order.
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(&mut *g.tx)
            .await?;
        let list = match self.dialect {
            Dialect::Sqlite => schema::SQLITE,
            Dialect::Postgres => schema::POSTGRES,
        };
        for (version, sql) in list.iter().filter(|(v, _)| !applied.contains(v)) {
            for stmt in schema::statements(sql) {
                g.tx.execute(stmt.as_str()).await?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(crate::now_millis())
                .execute(&mut *g.tx)
                .await?;
        }
        g.commit().await
    }

    /// Begins a write transaction (serialised per process on SQLite).
    pub async fn begin_write(&self) -> Result<WriteTx<'_>, StoreError> {
        self.begin_write_on(&self.pool).await
    }

    /// A write transaction on `pool`, after this process's write lock (SQLite).
    async fn begin_write_on<'a>(&'a self, pool: &'a AnyPool) -> Result<WriteTx<'a>, StoreError> {
        let waited = std::time::Instant::now();
        let guard = match &self.write_lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        // On SQLite the write lock is taken at BEGIN (waiting up to the busy
        // timeout for another process's writer). A deferred transaction that reads
        // first would take a read snapshot and fail at its first write, at once
        // and without waiting ("database is locked"), whenever another process —
        // `berth admin`, a second node on the same file — committed in between.
        let tx = match self.dialect {
            Dialect::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
            _ => pool.begin().await?,
        };
        crate::obs::DB_WRITE_WAIT.observe(waited.elapsed());
        Ok(WriteTx {
            tx,
            _guard: guard,
            writes: &self.writes,
        })
    }

    /// Begins a write transaction of rows that live for seconds and that nothing
    /// depends on surviving an operating-system crash: leases (whose loss only
    /// lets another holder in early, after a crash that ended every holder) and
    /// records that are re-derived when missing (docs/architecture.md, "What is
    /// durable when a client gets its answer"). On SQLite the commit does not
    /// wait for an fsync (`synchronous=NORMAL` under WAL): it is durable against
    /// a crash of the process, and the next ordinary commit makes it durable
    /// against power loss too (the WAL is written in order), but an OS crash or
    /// power loss before that may lose it. On PostgreSQL it is
    /// [`Meta::begin_write`].
    pub async fn begin_write_short_lived(&self) -> Result<WriteTx<'_>, StoreError> {
        self.begin_write_on(self.short_lived.as_ref().unwrap_or(&self.pool))
            .await
    }

    /// Cheap liveness query for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub ts: i64,
    pub account_id: Option<String>,
    pub principal: Option<String>,
    pub action: String,
    pub resource: Option<String>,
    pub source: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
}

/// An audit record from a row that selects `audit_log`'s columns by name.
pub(crate) fn audit_from_row(r: &AnyRow) -> Result<AuditRow, sqlx::Error> {
    Ok(AuditRow {
        ts: r.try_get("ts")?,
        account_id: r.try_get("account_id")?,
        principal: r.try_get("principal")?,
        action: r.try_get("action")?,
        resource: r.try_get("resource")?,
        source: r.try_get("source")?,
        outcome: r.try_get("outcome")?,
        detail: r.try_get("detail")?,
    })
}

#[derive(Debug, Clone)]
pub struct UserRow {
    pub account_id: String,
    pub user_name: String,
    pub user_id: String,
    pub created_at: i64,
}

fn user_from_row(r: &AnyRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        account_id: r.try_get(0)?,
        user_name: r.try_get(1)?,
        user_id: r.try_get(2)?,
        created_at: r.try_get(3)?,
    })
}

/// An access key; `secret` is stored sealed by the caller, never in plaintext.
#[derive(Clone)]
pub struct AccessKeyRow {
    pub access_key_id: String,
    pub account_id: String,
    pub user_name: Option<String>,
    pub secret: Vec<u8>,
    pub status: String,
    pub created_at: i64,
}

impl std::fmt::Debug for AccessKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeyRow")
            .field("access_key_id", &self.access_key_id)
            .field("account_id", &self.account_id)
            .field("user_name", &self.user_name)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

fn key_from_row(r: &AnyRow) -> Result<AccessKeyRow, sqlx::Error> {
    Ok(AccessKeyRow {
        access_key_id: r.try_get(0)?,
        account_id: r.try_get(1)?,
        user_name: r.try_get(2)?,
        secret: r.try_get(3)?,
        status: r.try_get(4)?,
        created_at: r.try_get(5)?,
    })
}

/// Account-level JSON documents.
#[derive(Debug, Clone, Copy)]
pub enum AccountSetting {
    RegistryPolicy,
    ScanningConfiguration,
    ReplicationConfiguration,
}

impl AccountSetting {
    fn column(self) -> &'static str {
        match self {
            AccountSetting::RegistryPolicy => "registry_policy",
            AccountSetting::ScanningConfiguration => "scanning_configuration",
            AccountSetting::ReplicationConfiguration => "replication_configuration",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteManifestOutcome {
    Deleted {
        tags: Vec<String>,
    },
    NotFound,
    /// An index in the repository lists this manifest.
    ReferencedBy(String),
}

/// Repository columns that may be updated on their own.
#[derive(Debug, Clone, Copy)]
pub enum RepoColumn {
    TagMutability,
    MutabilityExclusions,
    Policy,
    LifecyclePolicy,
}

impl RepoColumn {
    fn name(self) -> &'static str {
        match self {
            RepoColumn::TagMutability => "tag_mutability",
            RepoColumn::MutabilityExclusions => "mutability_exclusions",
            RepoColumn::Policy => "policy",
            RepoColumn::LifecyclePolicy => "lifecycle_policy",
        }
    }
}

/// Takes the lock of `digest` inside `tx` (see [`Meta::begin_digest_tx`]).
async fn lock_digest(
    dialect: Dialect,
    tx: &mut Transaction<'_, Any>,
    digest: &str,
    exclusive: bool,
) -> Result<(), StoreError> {
    match dialect {
        Dialect::Postgres => {
            let sql = if exclusive {
                "SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS l"
            } else {
                "SELECT 1 FROM (SELECT pg_advisory_xact_lock_shared($1)) AS l"
            };
            sqlx::query(sql)
                .bind(digest_lock_key(digest))
                .execute(&mut **tx)
                .await?;
        }
        Dialect::Sqlite => {
            sqlx::query("UPDATE gc_candidates SET since = since WHERE 1 = 0")
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// The advisory-lock key of a digest: 63 bits of its hex.
pub fn digest_lock_key(digest: &str) -> i64 {
    let hex = digest.split_once(':').map(|(_, h)| h).unwrap_or(digest);
    let n = u64::from_str_radix(hex.get(..16).unwrap_or("0"), 16).unwrap_or(0);
    (n >> 1) as i64
}

async fn candidate(
    tx: &mut Transaction<'_, Any>,
    repo_id: i64,
    digest: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO gc_candidates (repo_id, digest, since) VALUES ($1, $2, $3) ON CONFLICT (repo_id, digest) DO UPDATE SET since = excluded.since")
        .bind(repo_id)
        .bind(digest)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn link(
    tx: &mut Transaction<'_, Any>,
    repo_id: i64,
    digest: &str,
    now: i64,
    link_key: &[u8],
) -> Result<(), StoreError> {
    candidate(tx, repo_id, digest, now).await?;
    // An existing link keeps its key: it wraps the same data key.
    sqlx::query("INSERT INTO repo_blobs (repo_id, digest, created_at, data_key) VALUES ($1, $2, $3, $4) ON CONFLICT (repo_id, digest) DO NOTHING")
        .bind(repo_id)
        .bind(digest)
        .bind(now)
        .bind(link_key.to_vec())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn upload_from_row(r: &AnyRow) -> Result<UploadRow, sqlx::Error> {
    Ok(UploadRow {
        upload_id: r.try_get(0)?,
        repo_id: r.try_get(1)?,
        size: r.try_get(2)?,
        created_at: r.try_get(3)?,
        updated_at: r.try_get(4)?,
        data_key: r.try_get(5)?,
        object_key: r.try_get(6)?,
        staging: r.try_get(7)?,
    })
}

/// A database URL with any password removed, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

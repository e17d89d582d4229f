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
}

pub struct WriteTx<'a> {
    pub tx: Transaction<'a, Any>,
    _guard: Option<tokio::sync::MutexGuard<'a, ()>>,
}

impl WriteTx<'_> {
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
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
    /// Enqueue a scan job in the same transaction when the manifest is new
    /// (scan on push), so a crash cannot lose it.
    pub scan: bool,
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
}

impl Meta {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and applies migrations.
    pub async fn connect(url: &str) -> Result<Meta, StoreError> {
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
        let opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
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
        };
        meta.migrate().await?;
        Ok(meta)
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
        let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
            .fetch_one(&mut *g.tx)
            .await?;
        let applied = applied.unwrap_or(0);
        let list = match self.dialect {
            Dialect::Sqlite => schema::SQLITE,
            Dialect::Postgres => schema::POSTGRES,
        };
        for (version, sql) in list.iter().filter(|(v, _)| *v > applied) {
            for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                g.tx.execute(stmt).await?;
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
        let guard = match &self.write_lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let tx = self.pool.begin().await?;
        Ok(WriteTx { tx, _guard: guard })
    }

    /// Cheap liveness query for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    // ---- accounts -------------------------------------------------------------

    pub async fn ensure_account(&self, account_id: &str, now: i64) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("INSERT INTO accounts (account_id, created_at) VALUES ($1, $2) ON CONFLICT (account_id) DO NOTHING")
            .bind(account_id)
            .bind(now)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    pub async fn account_exists(&self, account_id: &str) -> Result<bool, StoreError> {
        let r: Option<String> =
            sqlx::query_scalar("SELECT account_id FROM accounts WHERE account_id = $1")
                .bind(account_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(r.is_some())
    }

    pub async fn list_accounts(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT account_id FROM accounts ORDER BY account_id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Reads one of the account-level JSON documents.
    pub async fn account_setting(
        &self,
        account_id: &str,
        s: AccountSetting,
    ) -> Result<Option<String>, StoreError> {
        let v: Option<Option<String>> = sqlx::query_scalar(&format!(
            "SELECT {} FROM accounts WHERE account_id = $1",
            s.column()
        ))
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(v.flatten())
    }

    pub async fn set_account_setting(
        &self,
        account_id: &str,
        s: AccountSetting,
        value: Option<String>,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query(&format!(
            "UPDATE accounts SET {} = $1 WHERE account_id = $2",
            s.column()
        ))
        .bind(value)
        .bind(account_id)
        .execute(&mut *g.tx)
        .await?;
        g.commit().await
    }

    /// Appends one audit record.
    #[allow(clippy::too_many_arguments)]
    pub async fn append_audit(
        &self,
        ts: i64,
        account_id: &str,
        principal: &str,
        action: &str,
        resource: Option<&str>,
        source: &str,
        outcome: &str,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("INSERT INTO audit_log (ts, account_id, principal, action, resource, source, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(ts)
            .bind(account_id)
            .bind(principal)
            .bind(action)
            .bind(resource.map(str::to_string))
            .bind(source)
            .bind(outcome)
            .bind(detail.map(str::to_string))
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    /// The newest audit records, newest first.
    pub async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query("SELECT ts, account_id, principal, action, resource, source, outcome, detail FROM audit_log ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    ts: r.try_get(0)?,
                    account_id: r.try_get(1)?,
                    principal: r.try_get(2)?,
                    action: r.try_get(3)?,
                    resource: r.try_get(4)?,
                    source: r.try_get(5)?,
                    outcome: r.try_get(6)?,
                    detail: r.try_get(7)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Whether any secret sealed with a master key is stored.
    pub async fn has_sealed_secrets(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM access_keys")
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    // ---- garbage collection ---------------------------------------------------------

    /// Candidates older than `before`: link-level (`repo_id != 0`) or blob-level.
    pub async fn gc_candidates(
        &self,
        blob_level: bool,
        before: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let sql = if blob_level {
            "SELECT repo_id, digest FROM gc_candidates WHERE repo_id = 0 AND since < $1 ORDER BY since LIMIT $2"
        } else {
            "SELECT repo_id, digest FROM gc_candidates WHERE repo_id <> 0 AND since < $1 ORDER BY since LIMIT $2"
        };
        let rows = sqlx::query(sql)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Number of pending candidates (for metrics and progress).
    pub async fn gc_pending(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM gc_candidates")
            .fetch_one(&self.pool)
            .await?)
    }

    /// In a digest-locked transaction: whether a manifest of the repository still
    /// references the blob.
    pub async fn gc_link_referenced(
        tx: &mut WriteTx<'_>,
        repo_id: i64,
        digest: &str,
    ) -> Result<bool, StoreError> {
        let r: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM manifest_refs WHERE repo_id = $1 AND child = $2 LIMIT 1",
        )
        .bind(repo_id)
        .bind(digest)
        .fetch_optional(&mut *tx.tx)
        .await?;
        Ok(r.is_some())
    }

    /// In a digest-locked transaction: removes an unreferenced link and makes the
    /// blob a blob-level candidate.
    pub async fn gc_unlink(
        tx: &mut WriteTx<'_>,
        repo_id: i64,
        digest: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM repo_blobs WHERE repo_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(digest)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        if n > 0 {
            candidate(&mut tx.tx, 0, digest, now).await?;
        }
        Ok(n > 0)
    }

    pub async fn gc_drop_candidate(
        tx: &mut WriteTx<'_>,
        repo_id: i64,
        digest: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM gc_candidates WHERE repo_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(digest)
            .execute(&mut *tx.tx)
            .await?;
        Ok(())
    }

    /// In a digest-locked transaction: `(linked anywhere, size if the blob row exists)`.
    pub async fn gc_blob_state(
        tx: &mut WriteTx<'_>,
        digest: &str,
    ) -> Result<(bool, Option<i64>), StoreError> {
        let linked: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM repo_blobs WHERE digest = $1 LIMIT 1")
                .bind(digest)
                .fetch_optional(&mut *tx.tx)
                .await?;
        let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&mut *tx.tx)
            .await?;
        Ok((linked.is_some(), size))
    }

    pub async fn gc_delete_blob_row(tx: &mut WriteTx<'_>, digest: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM blobs WHERE digest = $1")
            .bind(digest)
            .execute(&mut *tx.tx)
            .await?;
        Ok(())
    }

    // ---- users and access keys ---------------------------------------------------

    pub async fn create_user(
        &self,
        account_id: &str,
        user_name: &str,
        user_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query("INSERT INTO users (account_id, user_name, user_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, user_name) DO NOTHING")
            .bind(account_id)
            .bind(user_name)
            .bind(user_id)
            .bind(now)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    pub async fn get_user(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query("SELECT account_id, user_name, user_id, created_at FROM users WHERE account_id = $1 AND user_name = $2")
            .bind(account_id)
            .bind(user_name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    pub async fn list_users(&self, account_id: &str) -> Result<Vec<UserRow>, StoreError> {
        let rows = sqlx::query("SELECT account_id, user_name, user_id, created_at FROM users WHERE account_id = $1 ORDER BY user_name")
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(user_from_row).collect::<Result<_, _>>()?)
    }

    /// Deletes a user with its keys and policies.
    pub async fn delete_user(&self, account_id: &str, user_name: &str) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("DELETE FROM access_keys WHERE account_id = $1 AND user_name = $2")
            .bind(account_id)
            .bind(user_name)
            .execute(&mut *g.tx)
            .await?;
        sqlx::query("DELETE FROM user_policies WHERE account_id = $1 AND user_name = $2")
            .bind(account_id)
            .bind(user_name)
            .execute(&mut *g.tx)
            .await?;
        let n = sqlx::query("DELETE FROM users WHERE account_id = $1 AND user_name = $2")
            .bind(account_id)
            .bind(user_name)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// Stores an access key; `user_name` None means the account root.
    pub async fn insert_access_key(&self, k: &AccessKeyRow) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query("INSERT INTO access_keys (access_key_id, account_id, user_name, secret, status, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (access_key_id) DO NOTHING")
            .bind(&k.access_key_id)
            .bind(&k.account_id)
            .bind(k.user_name.clone())
            .bind(k.secret.clone())
            .bind(&k.status)
            .bind(k.created_at)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    pub async fn get_access_key(
        &self,
        access_key_id: &str,
    ) -> Result<Option<AccessKeyRow>, StoreError> {
        let row = sqlx::query("SELECT access_key_id, account_id, user_name, secret, status, created_at FROM access_keys WHERE access_key_id = $1")
            .bind(access_key_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(key_from_row).transpose()?)
    }

    pub async fn list_access_keys(
        &self,
        account_id: &str,
    ) -> Result<Vec<AccessKeyRow>, StoreError> {
        let rows = sqlx::query("SELECT access_key_id, account_id, user_name, secret, status, created_at FROM access_keys WHERE account_id = $1 ORDER BY created_at")
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(key_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn set_access_key_status(
        &self,
        access_key_id: &str,
        status: &str,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query("UPDATE access_keys SET status = $1 WHERE access_key_id = $2")
            .bind(status)
            .bind(access_key_id)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    pub async fn delete_access_key(&self, access_key_id: &str) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM access_keys WHERE access_key_id = $1")
            .bind(access_key_id)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// Attaches a policy to a user: `document` None names a managed policy.
    pub async fn put_user_policy(
        &self,
        account_id: &str,
        user_name: &str,
        policy_name: &str,
        document: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("INSERT INTO user_policies (account_id, user_name, policy_name, document) VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, user_name, policy_name) DO UPDATE SET document = excluded.document")
            .bind(account_id)
            .bind(user_name)
            .bind(policy_name)
            .bind(document.map(str::to_string))
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    pub async fn delete_user_policy(
        &self,
        account_id: &str,
        user_name: &str,
        policy_name: &str,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM user_policies WHERE account_id = $1 AND user_name = $2 AND policy_name = $3")
            .bind(account_id)
            .bind(user_name)
            .bind(policy_name)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// (policy name, inline document or None for a managed policy).
    pub async fn user_policies(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let rows = sqlx::query("SELECT policy_name, document FROM user_policies WHERE account_id = $1 AND user_name = $2 ORDER BY policy_name")
            .bind(account_id)
            .bind(user_name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    // ---- repositories ---------------------------------------------------------

    pub async fn get_repository(
        &self,
        account_id: &str,
        name: &str,
    ) -> Result<Option<RepositoryRow>, StoreError> {
        let sql =
            format!("SELECT {REPO_COLS} FROM repositories WHERE account_id = $1 AND name = $2");
        let row = sqlx::query(&sql)
            .bind(account_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(repo_from_row).transpose()?)
    }

    pub async fn get_repository_by_id(
        &self,
        repo_id: i64,
    ) -> Result<Option<RepositoryRow>, StoreError> {
        let sql = format!("SELECT {REPO_COLS} FROM repositories WHERE repo_id = $1");
        let row = sqlx::query(&sql)
            .bind(repo_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(repo_from_row).transpose()?)
    }

    /// Creates a repository; `Ok(None)` when the name is taken.
    pub async fn create_repository(
        &self,
        new: &NewRepository,
    ) -> Result<Option<RepositoryRow>, StoreError> {
        let mut g = self.begin_write().await?;
        let sql = format!(
            "INSERT INTO repositories (account_id, name, created_at, tag_mutability, mutability_exclusions, scan_on_push, encryption_type, kms_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (account_id, name) DO NOTHING RETURNING {REPO_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(&new.account_id)
            .bind(&new.name)
            .bind(new.created_at)
            .bind(&new.tag_mutability)
            .bind(&new.mutability_exclusions)
            .bind(new.scan_on_push as i64)
            .bind(&new.encryption_type)
            .bind(new.kms_key.clone())
            .fetch_optional(&mut *g.tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let repo = repo_from_row(&row)?;
        for (k, v) in &new.tags {
            sqlx::query("INSERT INTO repository_tags (repo_id, tag_key, tag_value) VALUES ($1, $2, $3) ON CONFLICT (repo_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value")
                .bind(repo.repo_id)
                .bind(k)
                .bind(v)
                .execute(&mut *g.tx)
                .await?;
        }
        g.commit().await?;
        Ok(Some(repo))
    }

    /// Repositories of an account in name order, after `after`, at most `limit`.
    pub async fn list_repositories(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RepositoryRow>, StoreError> {
        let sql = format!(
            "SELECT {REPO_COLS} FROM repositories WHERE account_id = $1 AND name > $2 ORDER BY name LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(account_id)
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(repo_from_row).collect::<Result<_, _>>()?)
    }

    /// Deletes a repository and everything in it. Blobs stay for the collector,
    /// which is told about each of them.
    pub async fn delete_repository(&self, repo_id: i64, now: i64) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("INSERT INTO gc_candidates (repo_id, digest, since) SELECT 0, digest, $2 FROM repo_blobs WHERE repo_id = $1 ON CONFLICT (repo_id, digest) DO UPDATE SET since = excluded.since")
            .bind(repo_id)
            .bind(now)
            .execute(&mut *g.tx)
            .await?;
        for table in [
            "gc_candidates",
            "tags",
            "manifest_refs",
            "manifests",
            "repo_blobs",
            "repository_tags",
            "uploads",
            "repositories",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE repo_id = $1"))
                .bind(repo_id)
                .execute(&mut *g.tx)
                .await?;
        }
        g.commit().await
    }

    pub async fn count_images(&self, repo_id: i64) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM manifests WHERE repo_id = $1")
                .bind(repo_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Updates one text/int column of a repository (the caller names a fixed column).
    pub async fn set_repository_field(
        &self,
        repo_id: i64,
        column: RepoColumn,
        value: Option<String>,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query(&format!(
            "UPDATE repositories SET {} = $1 WHERE repo_id = $2",
            column.name()
        ))
        .bind(value)
        .bind(repo_id)
        .execute(&mut *g.tx)
        .await?;
        g.commit().await
    }

    /// Resource tags of a repository, by key.
    pub async fn repository_tags(&self, repo_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT tag_key, tag_value FROM repository_tags WHERE repo_id = $1 ORDER BY tag_key",
        )
        .bind(repo_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Adds or overwrites tags, refusing (without change) when the result would
    /// exceed `max` tags. Returns false in that case.
    pub async fn put_repository_tags(
        &self,
        repo_id: i64,
        tags: &[(String, String)],
        max: i64,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        for (k, v) in tags {
            sqlx::query("INSERT INTO repository_tags (repo_id, tag_key, tag_value) VALUES ($1, $2, $3) ON CONFLICT (repo_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value")
                .bind(repo_id)
                .bind(k)
                .bind(v)
                .execute(&mut *g.tx)
                .await?;
        }
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM repository_tags WHERE repo_id = $1")
            .bind(repo_id)
            .fetch_one(&mut *g.tx)
            .await?;
        if n > max {
            return Ok(false);
        }
        g.commit().await?;
        Ok(true)
    }

    pub async fn delete_repository_tags(
        &self,
        repo_id: i64,
        keys: &[String],
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        for k in keys {
            sqlx::query("DELETE FROM repository_tags WHERE repo_id = $1 AND tag_key = $2")
                .bind(repo_id)
                .bind(k)
                .execute(&mut *g.tx)
                .await?;
        }
        g.commit().await
    }

    /// Sets tag mutability and its exclusion filters together.
    pub async fn set_tag_mutability(
        &self,
        repo_id: i64,
        mode: &str,
        exclusions: &str,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("UPDATE repositories SET tag_mutability = $1, mutability_exclusions = $2 WHERE repo_id = $3")
            .bind(mode)
            .bind(exclusions)
            .bind(repo_id)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    /// Every image of a repository (without bodies), newest first.
    pub async fn list_manifests(&self, repo_id: i64) -> Result<Vec<ManifestRow>, StoreError> {
        let sql = format!("SELECT {MANIFEST_COLS} FROM manifests WHERE repo_id = $1 ORDER BY pushed_at DESC, digest");
        let rows = sqlx::query(&sql)
            .bind(repo_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| manifest_from_row(r, false))
            .collect::<Result<_, _>>()?)
    }

    /// Every (tag, digest) of a repository.
    pub async fn all_tags(&self, repo_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT tag, digest FROM tags WHERE repo_id = $1 ORDER BY tag")
            .bind(repo_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Digests of manifests listed by an index in the repository.
    pub async fn index_children(&self, repo_id: i64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT child FROM manifest_refs WHERE repo_id = $1 AND kind = 'manifest'",
        )
        .bind(repo_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Repositories (of every account) that have a lifecycle policy.
    pub async fn repositories_with_lifecycle(&self) -> Result<Vec<RepositoryRow>, StoreError> {
        let sql = format!("SELECT {REPO_COLS} FROM repositories WHERE lifecycle_policy IS NOT NULL ORDER BY repo_id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(repo_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn set_lifecycle_evaluated_at(
        &self,
        repo_id: i64,
        at: i64,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("UPDATE repositories SET lifecycle_evaluated_at = $1 WHERE repo_id = $2")
            .bind(at)
            .bind(repo_id)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    pub async fn lifecycle_preview(&self, repo_id: i64) -> Result<Option<String>, StoreError> {
        let v: Option<Option<String>> =
            sqlx::query_scalar("SELECT lifecycle_preview FROM repositories WHERE repo_id = $1")
                .bind(repo_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(v.flatten())
    }

    pub async fn set_lifecycle_preview(
        &self,
        repo_id: i64,
        v: Option<String>,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("UPDATE repositories SET lifecycle_preview = $1 WHERE repo_id = $2")
            .bind(v)
            .bind(repo_id)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    /// (subject digest, referrer digest) pairs of a repository.
    pub async fn all_referrers(&self, repo_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT subject, digest FROM manifests WHERE repo_id = $1 AND subject IS NOT NULL",
        )
        .bind(repo_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    pub async fn set_scan_on_push(&self, repo_id: i64, on: bool) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("UPDATE repositories SET scan_on_push = $1 WHERE repo_id = $2")
            .bind(on as i64)
            .bind(repo_id)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    // ---- blobs ------------------------------------------------------------------

    /// Size of a blob linked into the repository.
    pub async fn linked_blob_size(
        &self,
        repo_id: i64,
        digest: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT b.size FROM repo_blobs l JOIN blobs b ON b.digest = l.digest WHERE l.repo_id = $1 AND l.digest = $2",
        )
        .bind(repo_id)
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Size and wrapped data key of a blob linked into the repository.
    pub async fn linked_blob(
        &self,
        repo_id: i64,
        digest: &str,
    ) -> Result<Option<(i64, Option<Vec<u8>>)>, StoreError> {
        let row = sqlx::query(
            "SELECT b.size, l.data_key FROM repo_blobs l JOIN blobs b ON b.digest = l.digest WHERE l.repo_id = $1 AND l.digest = $2",
        )
        .bind(repo_id)
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?)))
            .transpose()?)
    }

    /// In a digest-locked transaction: the blob's size and its data key wrapped
    /// by the registry key, if the blob exists.
    pub async fn blob_key(
        tx: &mut WriteTx<'_>,
        digest: &str,
    ) -> Result<Option<(i64, Option<Vec<u8>>)>, StoreError> {
        let row = sqlx::query("SELECT size, data_key FROM blobs WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&mut *tx.tx)
            .await?;
        Ok(row
            .map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?)))
            .transpose()?)
    }

    /// In a digest-locked transaction: links an existing blob into a repository with
    /// the data key wrapped for that repository.
    pub async fn link_in(
        tx: &mut WriteTx<'_>,
        repo_id: i64,
        digest: &str,
        now: i64,
        link_key: &[u8],
    ) -> Result<(), StoreError> {
        link(&mut tx.tx, repo_id, digest, now, link_key).await
    }

    /// Size of a blob anywhere in the store.
    pub async fn blob_size(&self, digest: &str) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT size FROM blobs WHERE digest = $1")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Begins a write transaction holding the lock of `digest`: exclusive for the
    /// collector, shared for writers that publish or link the blob. On PostgreSQL
    /// this is a transaction-scoped advisory lock; on SQLite the write transaction
    /// itself is the (global) lock, taken at once with a no-op write so that even a
    /// second process (`berth admin gc`) waits for it.
    pub async fn begin_digest_tx(
        &self,
        digest: &str,
        exclusive: bool,
    ) -> Result<WriteTx<'_>, StoreError> {
        let mut g = self.begin_write().await?;
        lock_digest(self.dialect, &mut g.tx, digest, exclusive).await?;
        Ok(g)
    }

    /// Inside a [`Self::begin_digest_tx`] transaction: records a committed blob,
    /// links it into the repository, and marks the link as a collection candidate
    /// (in case no manifest ever references it).
    pub async fn record_blob(
        tx: &mut WriteTx<'_>,
        repo_id: i64,
        digest: &str,
        size: i64,
        now: i64,
        blob_key: &[u8],
        link_key: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO blobs (digest, size, created_at, data_key) VALUES ($1, $2, $3, $4) ON CONFLICT (digest) DO NOTHING")
            .bind(digest)
            .bind(size)
            .bind(now)
            .bind(blob_key.to_vec())
            .execute(&mut *tx.tx)
            .await?;
        link(&mut tx.tx, repo_id, digest, now, link_key).await
    }

    /// Removes a blob link; false when there was none.
    pub async fn unlink_blob(
        &self,
        repo_id: i64,
        digest: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM repo_blobs WHERE repo_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(digest)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        if n > 0 {
            candidate(&mut g.tx, 0, digest, now).await?;
        }
        g.commit().await?;
        Ok(n > 0)
    }

    // ---- uploads -----------------------------------------------------------------

    pub async fn create_upload(
        &self,
        upload_id: &str,
        repo_id: i64,
        now: i64,
        data_key: &[u8],
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("INSERT INTO uploads (upload_id, repo_id, size, created_at, updated_at, data_key) VALUES ($1, $2, 0, $3, $3, $4)")
            .bind(upload_id)
            .bind(repo_id)
            .bind(now)
            .bind(data_key.to_vec())
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    pub async fn get_upload(&self, upload_id: &str) -> Result<Option<UploadRow>, StoreError> {
        let row = sqlx::query("SELECT upload_id, repo_id, size, created_at, updated_at, data_key FROM uploads WHERE upload_id = $1")
            .bind(upload_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(upload_from_row).transpose()?)
    }

    /// Moves an upload from `from` bytes to `to` bytes; false if another writer moved it.
    pub async fn advance_upload(
        &self,
        upload_id: &str,
        from: i64,
        to: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE uploads SET size = $1, updated_at = $2 WHERE upload_id = $3 AND size = $4",
        )
        .bind(to)
        .bind(now)
        .bind(upload_id)
        .bind(from)
        .execute(&mut *g.tx)
        .await?
        .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    pub async fn delete_upload(&self, upload_id: &str) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM uploads WHERE upload_id = $1")
            .bind(upload_id)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        g.commit().await?;
        Ok(n > 0)
    }

    /// Upload sessions untouched since `before`.
    pub async fn stale_uploads(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<UploadRow>, StoreError> {
        let rows = sqlx::query("SELECT upload_id, repo_id, size, created_at, updated_at, data_key FROM uploads WHERE updated_at < $1 ORDER BY updated_at LIMIT $2")
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(upload_from_row).collect::<Result<_, _>>()?)
    }

    // ---- manifests and tags ------------------------------------------------------

    /// Stores a manifest and moves its tag, atomically, checking every reference and
    /// the tag's immutability inside the transaction.
    pub async fn put_manifest(&self, w: &ManifestWrite) -> Result<PutManifestOutcome, StoreError> {
        let mut g = self.begin_write().await?;
        // Hold the blobs' locks (shared) so the collector cannot unlink one between
        // the check below and the commit.
        let mut sorted: Vec<&String> = w.blobs.iter().collect();
        sorted.sort();
        sorted.dedup();
        for b in sorted {
            lock_digest(self.dialect, &mut g.tx, b, false).await?;
        }
        let tx = &mut g.tx;
        let mut missing = Vec::new();
        for b in &w.blobs {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM repo_blobs WHERE repo_id = $1 AND digest = $2")
                    .bind(w.repo_id)
                    .bind(b)
                    .fetch_optional(&mut **tx)
                    .await?;
            if found.is_none() {
                missing.push(b.clone());
            }
        }
        if !missing.is_empty() {
            return Ok(PutManifestOutcome::MissingBlobs(missing));
        }
        for c in &w.children {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM manifests WHERE repo_id = $1 AND digest = $2")
                    .bind(w.repo_id)
                    .bind(c)
                    .fetch_optional(&mut **tx)
                    .await?;
            if found.is_none() {
                missing.push(c.clone());
            }
        }
        if !missing.is_empty() {
            return Ok(PutManifestOutcome::MissingManifests(missing));
        }
        let inserted = sqlx::query(
            "INSERT INTO manifests (repo_id, digest, media_type, artifact_type, subject, config_digest, image_size, body, pushed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (repo_id, digest) DO NOTHING",
        )
        .bind(w.repo_id)
        .bind(&w.digest)
        .bind(&w.media_type)
        .bind(w.artifact_type.clone())
        .bind(w.subject.clone())
        .bind(w.config_digest.clone())
        .bind(w.image_size)
        .bind(w.body.clone())
        .bind(w.pushed_at)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            if w.scan {
                crate::scans::enqueue_scan_tx(tx, w.repo_id, &w.digest, w.pushed_at).await?;
            }
            for (child, kind) in w
                .blobs
                .iter()
                .map(|b| (b, "blob"))
                .chain(w.children.iter().map(|c| (c, "manifest")))
            {
                sqlx::query("INSERT INTO manifest_refs (repo_id, digest, child, kind) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                    .bind(w.repo_id)
                    .bind(&w.digest)
                    .bind(child)
                    .bind(kind)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        let mut previous = None;
        if let Some((tag, immutable)) = &w.tag {
            let existing: Option<String> =
                sqlx::query_scalar("SELECT digest FROM tags WHERE repo_id = $1 AND tag = $2")
                    .bind(w.repo_id)
                    .bind(tag)
                    .fetch_optional(&mut **tx)
                    .await?;
            match existing {
                Some(d) if d == w.digest => {
                    if !inserted {
                        return Ok(PutManifestOutcome::Unchanged);
                    }
                }
                Some(d) if *immutable => {
                    return Ok(PutManifestOutcome::TagImmutable { existing: d })
                }
                _ => {
                    // A conditional upsert: on PostgreSQL two racing writers of an
                    // immutable tag serialise on the primary key and the loser
                    // updates nothing.
                    let sql = if *immutable {
                        "INSERT INTO tags (repo_id, tag, digest, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (repo_id, tag) DO NOTHING"
                    } else {
                        "INSERT INTO tags (repo_id, tag, digest, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (repo_id, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at"
                    };
                    let n = sqlx::query(sql)
                        .bind(w.repo_id)
                        .bind(tag)
                        .bind(&w.digest)
                        .bind(w.pushed_at)
                        .execute(&mut **tx)
                        .await?
                        .rows_affected();
                    if n == 0 {
                        let now_there: Option<String> = sqlx::query_scalar(
                            "SELECT digest FROM tags WHERE repo_id = $1 AND tag = $2",
                        )
                        .bind(w.repo_id)
                        .bind(tag)
                        .fetch_optional(&mut **tx)
                        .await?;
                        return Ok(PutManifestOutcome::TagImmutable {
                            existing: now_there.unwrap_or_default(),
                        });
                    }
                    previous = existing;
                }
            }
        } else if !inserted {
            return Ok(PutManifestOutcome::Unchanged);
        }
        g.commit().await?;
        Ok(PutManifestOutcome::Stored {
            manifest_existed: !inserted,
            previous_tag_digest: previous,
        })
    }

    pub async fn get_manifest(
        &self,
        repo_id: i64,
        digest: &str,
    ) -> Result<Option<ManifestRow>, StoreError> {
        let sql = format!(
            "SELECT {MANIFEST_COLS}, body FROM manifests WHERE repo_id = $1 AND digest = $2"
        );
        let row = sqlx::query(&sql)
            .bind(repo_id)
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| manifest_from_row(&r, true)).transpose()?)
    }

    pub async fn get_manifest_by_tag(
        &self,
        repo_id: i64,
        tag: &str,
    ) -> Result<Option<ManifestRow>, StoreError> {
        let sql = format!(
            "SELECT m.{}, m.body FROM tags t JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest WHERE t.repo_id = $1 AND t.tag = $2",
            MANIFEST_COLS.replace(", ", ", m.")
        );
        let row = sqlx::query(&sql)
            .bind(repo_id)
            .bind(tag)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| manifest_from_row(&r, true)).transpose()?)
    }

    /// Deletes a manifest and its tags. Returns false if absent.
    pub async fn delete_manifest(
        &self,
        repo_id: i64,
        digest: &str,
        now: i64,
    ) -> Result<DeleteManifestOutcome, StoreError> {
        let mut g = self.begin_write().await?;
        let parent: Option<String> = sqlx::query_scalar(
            "SELECT r.digest FROM manifest_refs r WHERE r.repo_id = $1 AND r.child = $2 AND r.kind = 'manifest' LIMIT 1",
        )
        .bind(repo_id)
        .bind(digest)
        .fetch_optional(&mut *g.tx)
        .await?;
        if let Some(parent) = parent {
            return Ok(DeleteManifestOutcome::ReferencedBy(parent));
        }
        let n = sqlx::query("DELETE FROM manifests WHERE repo_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(digest)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(DeleteManifestOutcome::NotFound);
        }
        let tags: Vec<String> =
            sqlx::query_scalar("DELETE FROM tags WHERE repo_id = $1 AND digest = $2 RETURNING tag")
                .bind(repo_id)
                .bind(digest)
                .fetch_all(&mut *g.tx)
                .await?;
        // Its blobs may now be unreferenced in this repository.
        sqlx::query("INSERT INTO gc_candidates (repo_id, digest, since) SELECT repo_id, child, $3 FROM manifest_refs WHERE repo_id = $1 AND digest = $2 AND kind = 'blob' ON CONFLICT (repo_id, digest) DO UPDATE SET since = excluded.since")
            .bind(repo_id)
            .bind(digest)
            .bind(now)
            .execute(&mut *g.tx)
            .await?;
        sqlx::query("DELETE FROM manifest_refs WHERE repo_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(digest)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await?;
        Ok(DeleteManifestOutcome::Deleted { tags })
    }

    /// Removes a tag; returns the digest it pointed at.
    pub async fn delete_tag(&self, repo_id: i64, tag: &str) -> Result<Option<String>, StoreError> {
        let mut g = self.begin_write().await?;
        let d: Option<String> =
            sqlx::query_scalar("DELETE FROM tags WHERE repo_id = $1 AND tag = $2 RETURNING digest")
                .bind(repo_id)
                .bind(tag)
                .fetch_optional(&mut *g.tx)
                .await?;
        g.commit().await?;
        Ok(d)
    }

    /// Tags in lexical order after `last`, at most `limit`.
    pub async fn list_tags(
        &self,
        repo_id: i64,
        last: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT tag FROM tags WHERE repo_id = $1 AND tag > $2 ORDER BY tag LIMIT $3",
        )
        .bind(repo_id)
        .bind(last.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Tags pointing at a manifest.
    pub async fn tags_of(&self, repo_id: i64, digest: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT tag FROM tags WHERE repo_id = $1 AND digest = $2 ORDER BY tag",
        )
        .bind(repo_id)
        .bind(digest)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Manifests whose subject is `subject` (bodies included, for annotations).
    pub async fn referrers(
        &self,
        repo_id: i64,
        subject: &str,
    ) -> Result<Vec<ManifestRow>, StoreError> {
        let sql = format!("SELECT {MANIFEST_COLS}, body FROM manifests WHERE repo_id = $1 AND subject = $2 ORDER BY digest");
        let rows = sqlx::query(&sql)
            .bind(repo_id)
            .bind(subject)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| manifest_from_row(r, true))
            .collect::<Result<_, _>>()?)
    }

    /// Records pulls in one write (the caller batches them).
    pub async fn record_pulls(&self, pulls: &[(i64, String, i64)]) -> Result<(), StoreError> {
        if pulls.is_empty() {
            return Ok(());
        }
        let mut g = self.begin_write().await?;
        for (repo_id, digest, at) in pulls {
            sqlx::query("UPDATE manifests SET last_pulled_at = $1 WHERE repo_id = $2 AND digest = $3 AND (last_pulled_at IS NULL OR last_pulled_at < $1)")
                .bind(*at)
                .bind(*repo_id)
                .bind(digest)
                .execute(&mut *g.tx)
                .await?;
        }
        g.commit().await
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
    })
}

/// A database URL with any password removed, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

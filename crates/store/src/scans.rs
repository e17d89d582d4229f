//! Image scans and the advisory database. A scan is a durable job
//! (`crates/store/src/meta/jobs.rs`) of kind [`SCAN_JOB`], enqueued in the same
//! transaction as its cause together with the image's `IN_PROGRESS` status.
//!
//! Rows, not rules: which images get scanned and what a scan finds is decided by
//! the registry core and the scanner; this module only makes the writes atomic.

use futures_util::StreamExt;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::meta::jobs::NewJob;
use crate::meta::{Dialect, Meta};
use crate::StoreError;

/// The job kind of an image scan; its payload is a [`ScanJob`].
pub const SCAN_JOB: &str = "scan";
/// `settings` row holding the advisory database version (an integer).
pub const VULNDB_VERSION: &str = "vulndb.version";
/// `settings` row holding when the advisory database last changed (unix ms).
pub const VULNDB_UPDATED_AT: &str = "vulndb.updated_at";

/// What a scan job names: one manifest in one repository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanJob {
    pub repo_id: i64,
    pub digest: String,
}

/// The last scan of an image.
#[derive(Debug, Clone)]
pub struct ScanRow {
    pub repo_id: i64,
    pub digest: String,
    pub status: String,
    pub description: Option<String>,
    /// The scanner's result document (JSON), once complete.
    pub findings: Option<String>,
    pub started_at: i64,
    pub completed_at: Option<i64>,
}

pub(crate) const SCAN_COLS: &str =
    "repo_id, digest, status, description, findings, started_at, completed_at";

pub(crate) fn scan_from_row(r: &AnyRow) -> Result<ScanRow, sqlx::Error> {
    Ok(ScanRow {
        repo_id: r.try_get(0)?,
        digest: r.try_get(1)?,
        status: r.try_get(2)?,
        description: r.try_get(3)?,
        findings: r.try_get(4)?,
        started_at: r.try_get(5)?,
        completed_at: r.try_get(6)?,
    })
}

/// Marks an image's scan IN_PROGRESS and enqueues its job, inside `tx`. The previous
/// findings stay until the new scan replaces them.
pub(crate) async fn enqueue_scan_tx(
    tx: &mut Transaction<'_, Any>,
    repo_id: i64,
    digest: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO image_scans (repo_id, digest, status, description, started_at) VALUES ($1, $2, 'IN_PROGRESS', NULL, $3) \
         ON CONFLICT (repo_id, digest) DO UPDATE SET status = 'IN_PROGRESS', description = NULL, started_at = excluded.started_at",
    )
    .bind(repo_id)
    .bind(digest)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    crate::meta::jobs::enqueue_tx(tx, &scan_job(repo_id, digest)?).await?;
    Ok(())
}

/// The job that scans `digest` in `repo_id`, runnable at once. Jobs are timed by
/// the real clock (claims must expire for real), scans by the registry clock.
pub fn scan_job(repo_id: i64, digest: &str) -> Result<NewJob, StoreError> {
    let payload = serde_json::to_string(&ScanJob {
        repo_id,
        digest: digest.to_string(),
    })
    .map_err(|e| StoreError::Config(e.to_string()))?;
    Ok(NewJob::now(SCAN_JOB, payload))
}

/// Enqueues `job` inside `tx`; a scan job also marks its image's scan
/// IN_PROGRESS, so the status and the job commit together.
pub(crate) async fn enqueue_caused_tx(
    tx: &mut Transaction<'_, Any>,
    job: &NewJob,
    now: i64,
) -> Result<(), StoreError> {
    if job.kind == SCAN_JOB {
        let s: ScanJob =
            serde_json::from_str(&job.payload).map_err(|e| StoreError::Config(e.to_string()))?;
        return enqueue_scan_tx(tx, s.repo_id, &s.digest, now).await;
    }
    if job.kind == crate::replication::REPLICATION_JOB {
        return crate::replication::enqueue_replication_tx(tx, job, now).await;
    }
    crate::meta::jobs::enqueue_tx(tx, job).await?;
    Ok(())
}

impl Meta {
    /// Enqueues scans of `images` (repo id, digest), one transaction.
    pub async fn enqueue_scans(
        &self,
        images: &[(i64, String)],
        now: i64,
    ) -> Result<(), StoreError> {
        for chunk in images.chunks(500) {
            let mut g = self.begin_write().await?;
            for (repo_id, digest) in chunk {
                enqueue_scan_tx(&mut g.tx, *repo_id, digest, now).await?;
            }
            g.commit().await?;
        }
        Ok(())
    }

    /// Starts a manual scan unless one started within `window_ms` before `now`
    /// (ECR basic scanning: one scan per image per 24 h). Returns false when the
    /// quota is used up.
    pub async fn start_scan_with_quota(
        &self,
        repo_id: i64,
        digest: &str,
        now: i64,
        window_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let sql = match self.dialect() {
            Dialect::Postgres => {
                "SELECT started_at FROM image_scans WHERE repo_id = $1 AND digest = $2 FOR UPDATE"
            }
            Dialect::Sqlite => {
                "SELECT started_at FROM image_scans WHERE repo_id = $1 AND digest = $2"
            }
        };
        let last: Option<i64> = sqlx::query_scalar(sql)
            .bind(repo_id)
            .bind(digest)
            .fetch_optional(&mut *g.tx)
            .await?;
        if last.is_some_and(|t| now - t < window_ms) {
            return Ok(false);
        }
        enqueue_scan_tx(&mut g.tx, repo_id, digest, now).await?;
        g.commit().await?;
        Ok(true)
    }

    /// The last scan of an image.
    pub async fn get_scan(
        &self,
        repo_id: i64,
        digest: &str,
    ) -> Result<Option<ScanRow>, StoreError> {
        let sql = format!("SELECT {SCAN_COLS} FROM image_scans WHERE repo_id = $1 AND digest = $2");
        let row = sqlx::query(&sql)
            .bind(repo_id)
            .bind(digest)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(scan_from_row).transpose()?)
    }

    /// Every scan in a repository (DescribeImages).
    pub async fn scans_in_repository(&self, repo_id: i64) -> Result<Vec<ScanRow>, StoreError> {
        let sql = format!("SELECT {SCAN_COLS} FROM image_scans WHERE repo_id = $1");
        let rows = sqlx::query(&sql)
            .bind(repo_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(scan_from_row).collect::<Result<_, _>>()?)
    }

    /// Records the outcome of a scan. Only the request that started at `started_at`
    /// is completed, so an older run finishing late never overwrites a newer request.
    #[allow(clippy::too_many_arguments)]
    pub async fn complete_scan(
        &self,
        repo_id: i64,
        digest: &str,
        started_at: i64,
        status: &str,
        description: Option<&str>,
        findings: Option<&str>,
        completed_at: i64,
    ) -> Result<(), StoreError> {
        // The severity counts in columns too (the console's registry-wide chart).
        let sev: Option<serde_json::Value> = findings
            .and_then(|f| serde_json::from_str::<serde_json::Value>(f).ok())
            .map(|f| f["findingSeverityCounts"].clone());
        let count = |k: &str| sev.as_ref().map(|c| c[k].as_i64().unwrap_or(0));
        let mut g = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE image_scans SET status = $1, description = $2, findings = COALESCE($3, findings), completed_at = $4, \
             sev_critical = COALESCE($8, sev_critical), sev_high = COALESCE($9, sev_high), sev_medium = COALESCE($10, sev_medium), \
             sev_low = COALESCE($11, sev_low), sev_informational = COALESCE($12, sev_informational), sev_undefined = COALESCE($13, sev_undefined) \
             WHERE repo_id = $5 AND digest = $6 AND started_at = $7",
        )
        .bind(status)
        .bind(description.map(str::to_string))
        .bind(findings.map(str::to_string))
        .bind(completed_at)
        .bind(repo_id)
        .bind(digest)
        .bind(started_at)
        .bind(count("CRITICAL"))
        .bind(count("HIGH"))
        .bind(count("MEDIUM"))
        .bind(count("LOW"))
        .bind(count("INFORMATIONAL"))
        .bind(count("UNDEFINED"))
        .execute(&mut *g.tx)
        .await?;
        // A completed scan announces its severity counts ("ECR Image Scan") in the
        // transaction that records it.
        if status == "COMPLETE" && n.rows_affected() == 1 {
            let counts = findings
                .and_then(|f| serde_json::from_str::<serde_json::Value>(f).ok())
                .and_then(|f| f.get("findingSeverityCounts").cloned())
                .unwrap_or_else(|| serde_json::json!({}));
            let (_, name) = crate::events::stream_of_tx(&mut g.tx, repo_id).await?;
            let tags: Vec<String> = sqlx::query_scalar(
                "SELECT tag FROM tags WHERE repo_id = $1 AND digest = $2 ORDER BY tag",
            )
            .bind(repo_id)
            .bind(digest)
            .fetch_all(&mut *g.tx)
            .await?;
            let e = crate::events::NewEvent {
                detail_type: crate::events::IMAGE_SCAN,
                detail: crate::events::image_scan(&name, digest, &tags, &counts),
            };
            crate::events::record_tx(&mut g.tx, repo_id, &[e], completed_at).await?;
        }
        g.commit().await
    }

    /// Image manifests (repo id, digest) of the given repositories.
    pub async fn manifests_of(&self, repo_ids: &[i64]) -> Result<Vec<(i64, String)>, StoreError> {
        let mut out = Vec::new();
        for id in repo_ids {
            // CycloneDX referrers (the SBOMs a scan pushes) are documents, not images.
            let rows = sqlx::query(
                "SELECT repo_id, digest FROM manifests WHERE repo_id = $1 \
                 AND NOT (subject IS NOT NULL AND COALESCE(artifact_type, '') = $2) ORDER BY digest",
            )
            .bind(*id)
            .bind("application/vnd.cyclonedx+json")
            .fetch_all(self.pool())
            .await?;
            for r in rows {
                out.push((r.try_get(0)?, r.try_get(1)?));
            }
        }
        Ok(out)
    }

    // ---- advisory database ----------------------------------------------------------

    /// Stores advisories (id, OSV JSON) in one transaction, replacing records with
    /// the same id. Returns how many rows were written.
    pub async fn put_advisories(
        &self,
        records: &[(String, Vec<u8>)],
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut g = self.begin_write().await?;
        let mut n = 0;
        for (id, body) in records {
            n += sqlx::query(
                "INSERT INTO advisories (advisory_id, body, imported_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (advisory_id) DO UPDATE SET body = excluded.body, imported_at = excluded.imported_at",
            )
            .bind(id)
            .bind(body.clone())
            .bind(now)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        }
        g.commit().await?;
        Ok(n)
    }

    /// Stores one feed's advisories (id, OSV JSON) and its `settings` row (the
    /// feed's validators and counts) in one transaction: a reader sees the feed
    /// before or after, never half of it.
    pub async fn put_feed(
        &self,
        records: &[(String, Vec<u8>)],
        setting: (&str, &str),
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut g = self.begin_write().await?;
        let mut n = 0;
        for (id, body) in records {
            n += sqlx::query(
                "INSERT INTO advisories (advisory_id, body, imported_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (advisory_id) DO UPDATE SET body = excluded.body, imported_at = excluded.imported_at",
            )
            .bind(id)
            .bind(body.clone())
            .bind(now)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        }
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(setting.0)
        .bind(setting.1)
        .execute(&mut *g.tx)
        .await?;
        g.commit().await?;
        Ok(n)
    }

    /// Calls `f(id, body)` for every stored advisory, streaming (one row in memory).
    pub async fn for_each_advisory(
        &self,
        f: &mut (dyn FnMut(&str, &[u8]) + Send),
    ) -> Result<u64, StoreError> {
        let mut rows = sqlx::query("SELECT advisory_id, body FROM advisories ORDER BY advisory_id")
            .fetch(self.pool());
        let mut n = 0;
        while let Some(r) = rows.next().await {
            let r = r?;
            let id: String = r.try_get(0)?;
            let body: Vec<u8> = r.try_get(1)?;
            f(&id, &body);
            n += 1;
        }
        Ok(n)
    }

    /// Number of stored advisories.
    pub async fn count_advisories(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM advisories")
            .fetch_one(self.pool())
            .await?)
    }

    // ---- settings -----------------------------------------------------------------

    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&mut *g.tx)
        .await?;
        g.commit().await
    }

    /// Bumps the advisory database version and enqueues `rescan` in the same
    /// transaction, so every node sees the new version and the rescans together.
    /// Returns the new version.
    pub async fn bump_vulndb_version(
        &self,
        now: i64,
        rescan: &[(i64, String)],
    ) -> Result<i64, StoreError> {
        let mut g = self.begin_write().await?;
        let cur: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(VULNDB_VERSION)
            .fetch_optional(&mut *g.tx)
            .await?;
        let next = cur.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0) + 1;
        for (name, value) in [
            (VULNDB_VERSION, next.to_string()),
            (VULNDB_UPDATED_AT, now.to_string()),
        ] {
            sqlx::query(
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .bind(name)
            .bind(value)
            .execute(&mut *g.tx)
            .await?;
        }
        for (repo_id, digest) in rescan {
            enqueue_scan_tx(&mut g.tx, *repo_id, digest, now).await?;
        }
        g.commit().await?;
        Ok(next)
    }
}

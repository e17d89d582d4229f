//! The console's queries. Sessions (schema version 12): a session row lives only while the access
//! key it was opened with is active: [`Meta::console_session`] joins the key, so a
//! disabled or deleted key ends every session opened with it, on every node.

use super::*;

/// A console session, looked up by the SHA-256 of its id.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub access_key_id: String,
    pub account_id: String,
    pub user_name: Option<String>,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Meta {
    pub async fn insert_console_session(
        &self,
        session_hash: &str,
        s: &SessionRow,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        // Expired rows go when new ones come, so the table does not grow.
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(s.created_at)
            .execute(&mut *g.tx)
            .await?;
        sqlx::query("INSERT INTO console_sessions (session_hash, access_key_id, account_id, user_name, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(session_hash)
            .bind(&s.access_key_id)
            .bind(&s.account_id)
            .bind(s.user_name.clone())
            .bind(&s.csrf_token)
            .bind(s.created_at)
            .bind(s.expires_at)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    /// The unexpired session whose access key is still active, if any.
    pub async fn console_session(
        &self,
        session_hash: &str,
        now: i64,
    ) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query("SELECT s.access_key_id, s.account_id, s.user_name, s.csrf_token, s.created_at, s.expires_at FROM console_sessions s JOIN access_keys k ON k.access_key_id = s.access_key_id WHERE s.session_hash = $1 AND s.expires_at > $2 AND k.status = 'Active'")
            .bind(session_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(SessionRow {
            access_key_id: r.try_get(0)?,
            account_id: r.try_get(1)?,
            user_name: r.try_get(2)?,
            csrf_token: r.try_get(3)?,
            created_at: r.try_get(4)?,
            expires_at: r.try_get(5)?,
        }))
    }

    pub async fn delete_console_session(&self, session_hash: &str) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM console_sessions WHERE session_hash = $1")
            .bind(session_hash)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }
}

impl Meta {
    /// A keyset page of an account's repositories whose name contains `contains`,
    /// in name order (descending with `desc`), after `after`.
    pub async fn search_repositories(
        &self,
        account_id: &str,
        contains: &str,
        desc: bool,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RepositoryRow>, StoreError> {
        let pattern = format!(
            "%{}%",
            contains
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let (cmp, order) = if desc { ("<", "DESC") } else { (">", "ASC") };
        let keyset = match after {
            Some(_) => format!("AND name {cmp} $4"),
            None => String::new(),
        };
        let sql = format!(
            "SELECT {REPO_COLS} FROM repositories WHERE account_id = $1 AND name LIKE $2 ESCAPE '\\' {keyset} ORDER BY name {order} LIMIT $3"
        );
        let mut q = sqlx::query(&sql).bind(account_id).bind(pattern).bind(limit);
        if let Some(a) = after {
            q = q.bind(a);
        }
        let rows = q.fetch_all(&self.pool).await?;
        Ok(rows.iter().map(repo_from_row).collect::<Result<_, _>>()?)
    }
}

/// Filters of the console's Audit log page (exact matches; `None` matches all).
#[derive(Debug, Default, Clone)]
pub struct AuditSearch {
    pub principal: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
}

impl Meta {
    /// A keyset page of an account's audit records, newest first, older than the
    /// record `before` (its id) when given. Returns (id, record) pairs.
    pub async fn search_audit(
        &self,
        account_id: &str,
        f: &AuditSearch,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(i64, AuditRow)>, StoreError> {
        let mut sql = String::from("SELECT id, ts, account_id, principal, action, resource, source, outcome, detail FROM audit_log WHERE account_id = $1");
        let mut binds: Vec<String> = Vec::new();
        for (col, v) in [
            ("principal", &f.principal),
            ("action", &f.action),
            ("resource", &f.resource),
        ] {
            if let Some(v) = v {
                binds.push(v.clone());
                sql.push_str(&format!(" AND {col} = ${}", binds.len() + 1));
            }
        }
        let n = binds.len();
        if before.is_some() {
            sql.push_str(&format!(" AND id < ${}", n + 2));
        }
        sql.push_str(&format!(
            " ORDER BY id DESC LIMIT ${}",
            n + if before.is_some() { 3 } else { 2 }
        ));
        let mut q = sqlx::query(&sql).bind(account_id);
        for b in binds {
            q = q.bind(b);
        }
        if let Some(b) = before {
            q = q.bind(b);
        }
        let rows = q.bind(limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, super::audit_from_row(r)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}

impl Meta {
    /// The `limit` repositories of an account storing the most bytes of images
    /// (the sum of their manifests' image sizes), largest first. Read from the
    /// running totals (schema v16), one row per repository.
    pub async fn storage_by_repository(
        &self,
        account_id: &str,
        limit: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT r.name, t.bytes FROM repo_totals t JOIN repositories r ON r.repo_id = t.repo_id WHERE r.account_id = $1 AND t.images > 0 ORDER BY 2 DESC, r.name LIMIT $2")
            .bind(account_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Images pushed and images last pulled per UTC day since `since` (unix ms,
    /// a day's start): (day number since the epoch, pushes, pulls). Read from the
    /// running totals (schema v16), one row per repository and day.
    pub async fn activity_by_day(
        &self,
        account_id: &str,
        since: i64,
    ) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        let rows = sqlx::query("SELECT a.day, CAST(SUM(a.pushes) AS BIGINT), CAST(SUM(a.pulls) AS BIGINT) FROM activity_days a JOIN repositories r ON r.repo_id = a.repo_id WHERE r.account_id = $1 AND a.day >= $2 GROUP BY a.day ORDER BY a.day")
            .bind(account_id)
            .bind(since.div_euclid(86_400_000))
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let (day, pushes, pulls): (i64, i64, i64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            if pushes != 0 || pulls != 0 {
                out.push((day, pushes, pulls));
            }
        }
        Ok(out)
    }

    /// Findings by severity across an account's images (the last complete scan
    /// of each image still stored): [CRITICAL, HIGH, MEDIUM, LOW,
    /// INFORMATIONAL, UNDEFINED]. Read from the running totals (schema v16).
    pub async fn findings_by_severity(&self, account_id: &str) -> Result<[i64; 6], StoreError> {
        let r = sqlx::query(
            "SELECT CAST(COALESCE(SUM(t.sev_critical), 0) AS BIGINT), CAST(COALESCE(SUM(t.sev_high), 0) AS BIGINT), \
             CAST(COALESCE(SUM(t.sev_medium), 0) AS BIGINT), CAST(COALESCE(SUM(t.sev_low), 0) AS BIGINT), \
             CAST(COALESCE(SUM(t.sev_informational), 0) AS BIGINT), CAST(COALESCE(SUM(t.sev_undefined), 0) AS BIGINT) \
             FROM repo_totals t JOIN repositories r ON r.repo_id = t.repo_id WHERE r.account_id = $1",
        )
        .bind(account_id)
        .fetch_one(&self.pool)
        .await?;
        let mut out = [0i64; 6];
        for (i, v) in out.iter_mut().enumerate() {
            *v = r.try_get(i)?;
        }
        Ok(out)
    }

    /// A keyset page of a repository's manifests in digest order (DescribeImages):
    /// digests after `after`, tagged or untagged only when `tag_status` says so
    /// (`TAGGED`, `UNTAGGED`, anything else for both), at most `limit`.
    pub async fn manifests_page(
        &self,
        repo_id: i64,
        after: Option<&str>,
        tag_status: &str,
        limit: i64,
    ) -> Result<Vec<ManifestRow>, StoreError> {
        let tagged =
            "EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)";
        let filter = match tag_status {
            "TAGGED" => format!(" AND {tagged}"),
            "UNTAGGED" => format!(" AND NOT {tagged}"),
            _ => String::new(),
        };
        let cols = MANIFEST_COLS
            .split(", ")
            .map(|c| format!("m.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {cols} FROM manifests m WHERE m.repo_id = $1 AND m.digest > $2{filter} ORDER BY m.digest LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(repo_id)
            .bind(after.unwrap_or("").to_string())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| manifest_from_row(r, false))
            .collect::<Result<_, _>>()?)
    }

    /// The (tag, digest) pairs of a repository whose digest is in `[first, last]`
    /// (the tags of one page of [`Meta::manifests_page`]).
    pub async fn tags_in_digest_range(
        &self,
        repo_id: i64,
        first: &str,
        last: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT tag, digest FROM tags WHERE repo_id = $1 AND digest >= $2 AND digest <= $3 ORDER BY tag",
        )
        .bind(repo_id)
        .bind(first)
        .bind(last)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The scans of a repository's images whose digest is in `[first, last]`.
    pub async fn scans_in_digest_range(
        &self,
        repo_id: i64,
        first: &str,
        last: &str,
    ) -> Result<Vec<crate::scans::ScanRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM image_scans WHERE repo_id = $1 AND digest >= $2 AND digest <= $3",
            crate::scans::SCAN_COLS
        );
        let rows = sqlx::query(&sql)
            .bind(repo_id)
            .bind(first)
            .bind(last)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(crate::scans::scan_from_row)
            .collect::<Result<_, _>>()?)
    }
}

//! Accounts, account settings, the audit log.

use super::*;

impl Meta {
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
        super::audit_chain::insert_audit_tx(
            &mut g.tx,
            &AuditRow {
                ts,
                account_id: Some(account_id.to_string()),
                principal: Some(principal.to_string()),
                action: action.to_string(),
                resource: resource.map(str::to_string),
                source: Some(source.to_string()),
                outcome: outcome.to_string(),
                detail: detail.map(str::to_string),
            },
        )
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
            .map(super::audit_from_row)
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

    /// Audit records of `account`, newest first, for CloudTrail `LookupEvents`:
    /// optionally one attribute (`action` suffix, principal suffix or resource),
    /// a time range (ms, inclusive), before record id `before` (the page token).
    /// Returns (id, record) pairs.
    pub async fn lookup_audit(
        &self,
        account: &str,
        filter: &AuditFilter,
        limit: i64,
    ) -> Result<Vec<(i64, AuditRow)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, ts, account_id, principal, action, resource, source, outcome, detail FROM audit_log \
             WHERE account_id = $1 AND ts >= $2 AND ts <= $3 AND id < $4 \
             AND ($5 = '' OR action LIKE $5) AND ($6 = '' OR principal LIKE $6 OR principal = $7) AND ($8 = '' OR resource = $8) \
             ORDER BY id DESC LIMIT $9",
        )
        .bind(account)
        .bind(filter.start_ms)
        .bind(filter.end_ms)
        .bind(filter.before_id)
        .bind(filter.action_like.clone())
        .bind(filter.principal_like.clone())
        .bind(filter.principal_exact.clone())
        .bind(filter.resource.clone())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    AuditRow {
                        ts: r.try_get(1)?,
                        account_id: r.try_get(2)?,
                        principal: r.try_get(3)?,
                        action: r.try_get(4)?,
                        resource: r.try_get(5)?,
                        source: r.try_get(6)?,
                        outcome: r.try_get(7)?,
                        detail: r.try_get(8)?,
                    },
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}

/// What [`Meta::lookup_audit`] selects; empty strings match everything.
#[derive(Debug, Clone)]
pub struct AuditFilter {
    pub start_ms: i64,
    pub end_ms: i64,
    pub before_id: i64,
    /// SQL LIKE pattern on the action (`%:DeleteRepository`).
    pub action_like: String,
    /// SQL LIKE pattern on the principal ARN (`%/alice`).
    pub principal_like: String,
    /// An exact principal ARN (the root user's).
    pub principal_exact: String,
    pub resource: String,
}

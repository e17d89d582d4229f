//! Events (`docs/architecture.md`, "Events"): one row per event, in ECR's
//! EventBridge shapes, written by [`record_tx`] inside the transaction of the change
//! that caused it, so an acknowledged change always has its event. Each repository
//! is a stream (`event_streams` keeps its last event); each webhook delivers each
//! stream in event order from its own cursor (`webhook_cursors`).
//!
//! The envelope (`version`, `id`, `detail-type`, `source`, `account`, `time`,
//! `region`, `resources`, `detail`) is completed at delivery time with the
//! region of the delivering process; the row keeps the event id, the time, the
//! account, the repository and the `detail`.

use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::meta::Meta;
use crate::StoreError;

/// "ECR Image Action": a push (per tag, or untagged) or a delete.
pub const IMAGE_ACTION: &str = "ECR Image Action";
/// "ECR Image Scan": a completed scan with its severity counts.
pub const IMAGE_SCAN: &str = "ECR Image Scan";
/// "ECR Referrer Action": a manifest with a subject was pushed.
pub const REFERRER_ACTION: &str = "ECR Referrer Action";
/// "ECR Replication Action".
pub const REPLICATION_ACTION: &str = "ECR Replication Action";
/// "ECR Pull Through Cache Action".
pub const PULL_THROUGH_CACHE_ACTION: &str = "ECR Pull Through Cache Action";

/// Every detail type berth emits.
pub const DETAIL_TYPES: &[&str] = &[
    IMAGE_ACTION,
    IMAGE_SCAN,
    REFERRER_ACTION,
    REPLICATION_ACTION,
    PULL_THROUGH_CACHE_ACTION,
];

/// An event to record: its type and `detail` (the repository is the stream).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub detail_type: &'static str,
    pub detail: Value,
}

/// `detail` of an "ECR Image Action" (`action-type` PUSH or DELETE).
pub fn image_action(
    action: &str,
    repository: &str,
    digest: &str,
    tag: Option<&str>,
    manifest_media_type: Option<&str>,
    artifact_media_type: Option<&str>,
) -> Value {
    let mut d = json!({
        "result": "SUCCESS",
        "repository-name": repository,
        "image-digest": digest,
        "action-type": action,
    });
    if let Some(t) = tag {
        d["image-tag"] = json!(t);
    }
    if let Some(m) = manifest_media_type {
        d["manifest-media-type"] = json!(m);
    }
    if let Some(a) = artifact_media_type {
        d["artifact-media-type"] = json!(a);
    }
    d
}

/// An "ECR Image Action" DELETE event.
pub fn image_delete(repository: &str, digest: &str, tag: Option<&str>) -> NewEvent {
    NewEvent {
        detail_type: IMAGE_ACTION,
        detail: image_action("DELETE", repository, digest, tag, None, None),
    }
}

/// The (account, name) of repository `repo_id`, read inside `tx`.
pub async fn stream_of_tx(
    tx: &mut Transaction<'_, Any>,
    repo_id: i64,
) -> Result<(String, String), StoreError> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT account_id, name FROM repositories WHERE repo_id = $1")
            .bind(repo_id)
            .fetch_optional(&mut **tx)
            .await?;
    row.ok_or(StoreError::NotFound)
}

/// `detail` of an "ECR Referrer Action" (a referrer of `subject` pushed).
pub fn referrer_action(
    repository: &str,
    subject: &str,
    referrer: &str,
    manifest_media_type: &str,
    artifact_media_type: Option<&str>,
) -> Value {
    let mut d = json!({
        "result": "SUCCESS",
        "action-type": "PUSH",
        "repository-name": repository,
        "image-digest": subject,
        "referrer-digest": referrer,
        "manifest-media-type": manifest_media_type,
    });
    if let Some(a) = artifact_media_type {
        d["artifact-media-type"] = json!(a);
    }
    d
}

/// `detail` of an "ECR Image Scan" (`finding-severity-counts` from the stored
/// findings' `findingSeverityCounts`).
pub fn image_scan(repository: &str, digest: &str, tags: &[String], counts: &Value) -> Value {
    json!({
        "scan-status": "COMPLETE",
        "repository-name": repository,
        "finding-severity-counts": counts,
        "image-digest": digest,
        "image-tags": tags,
    })
}

/// Records `events` of repository `repo_id` inside `tx`, the transaction of the
/// change that caused them.
///
/// Replication and pull-through caches call this (or
/// `Registry::record_events`) with [`REPLICATION_ACTION`] and
/// [`PULL_THROUGH_CACHE_ACTION`] details.
pub async fn record_tx(
    tx: &mut Transaction<'_, Any>,
    repo_id: i64,
    events: &[NewEvent],
    now: i64,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let (account, repository) = stream_of_tx(tx, repo_id).await?;
    record_named_tx(tx, &account, &repository, events, now).await
}

/// [`record_tx`] for a repository known by account and name (one that may be
/// gone, such as a deleted one).
pub async fn record_named_tx(
    tx: &mut Transaction<'_, Any>,
    account: &str,
    repository: &str,
    events: &[NewEvent],
    now: i64,
) -> Result<(), StoreError> {
    let mut last = 0i64;
    for e in events {
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO events (event_id, account_id, repository, detail_type, detail, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(account)
        .bind(repository)
        .bind(e.detail_type)
        .bind(e.detail.to_string())
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        last = last.max(seq);
    }
    set_stream_last_tx(tx, account, repository, last).await?;
    crate::events::PRODUCED.fetch_add(events.len() as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Moves a stream's last sequence number to `last` (the greatest just inserted).
pub(crate) async fn set_stream_last_tx(
    tx: &mut Transaction<'_, Any>,
    account: &str,
    repository: &str,
    last: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO event_streams (account_id, repository, last_seq) VALUES ($1, $2, $3) \
         ON CONFLICT (account_id, repository) DO UPDATE SET last_seq = excluded.last_seq",
    )
    .bind(account)
    .bind(repository)
    .bind(last)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Events recorded by this process (for `/metrics`); counted when written, so a
/// rolled-back transaction may count a few that never were.
pub static PRODUCED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A stored event.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub seq: i64,
    pub event_id: String,
    pub account_id: String,
    pub repository: String,
    pub detail_type: String,
    pub detail: String,
    pub created_at: i64,
}

const EVENT_COLS: &str = "seq, event_id, account_id, repository, detail_type, detail, created_at";

fn event_from_row(r: &AnyRow) -> Result<EventRow, sqlx::Error> {
    Ok(EventRow {
        seq: r.try_get(0)?,
        event_id: r.try_get(1)?,
        account_id: r.try_get(2)?,
        repository: r.try_get(3)?,
        detail_type: r.try_get(4)?,
        detail: r.try_get(5)?,
        created_at: r.try_get(6)?,
    })
}

/// A webhook as stored. `secret` is sealed by the registry core.
#[derive(Clone)]
pub struct WebhookRow {
    pub webhook_id: i64,
    pub name: String,
    pub url: String,
    pub secret: String,
    /// JSON array; empty means every detail type.
    pub detail_types: String,
    pub repository_prefix: String,
    /// JSON array; empty means every account.
    pub accounts: String,
    /// `eventbridge` (the event as the body) or `cloudevents` (binary mode).
    pub format: String,
    /// `config` (loaded from the TOML at start) or `admin`.
    pub origin: String,
    /// Events up to this one predate the webhook and are not delivered.
    pub start_seq: i64,
    pub created_at: i64,
}

impl std::fmt::Debug for WebhookRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRow")
            .field("webhook_id", &self.webhook_id)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

const WEBHOOK_COLS: &str = "webhook_id, name, url, secret, detail_types, repository_prefix, accounts, format, origin, start_seq, created_at";

fn webhook_from_row(r: &AnyRow) -> Result<WebhookRow, sqlx::Error> {
    Ok(WebhookRow {
        webhook_id: r.try_get(0)?,
        name: r.try_get(1)?,
        url: r.try_get(2)?,
        secret: r.try_get(3)?,
        detail_types: r.try_get(4)?,
        repository_prefix: r.try_get(5)?,
        accounts: r.try_get(6)?,
        format: r.try_get(7)?,
        origin: r.try_get(8)?,
        start_seq: r.try_get(9)?,
        created_at: r.try_get(10)?,
    })
}

impl Meta {
    /// Records events of one repository in a transaction of their own (for changes
    /// whose transaction lives elsewhere, e.g. a deleted repository).
    pub async fn record_events(
        &self,
        account: &str,
        repository: &str,
        events: &[NewEvent],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        record_named_tx(&mut g.tx, account, repository, events, now).await?;
        g.commit().await
    }

    /// Events of one repository after `after_seq`, in order.
    pub async fn stream_events(
        &self,
        account: &str,
        repository: &str,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE account_id = $1 AND repository = $2 AND seq > $3 ORDER BY seq LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(account)
            .bind(repository)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(event_from_row).collect::<Result<_, _>>()?)
    }

    /// The most recent events (newest first).
    pub async fn recent_events(&self, limit: i64) -> Result<Vec<EventRow>, StoreError> {
        let sql = format!("SELECT {EVENT_COLS} FROM events ORDER BY seq DESC LIMIT $1");
        let rows = sqlx::query(&sql).bind(limit).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(event_from_row).collect::<Result<_, _>>()?)
    }

    /// Adds a webhook, or (same name) updates its settings keeping its cursors and
    /// start. A new webhook starts after the last event recorded so far.
    pub async fn upsert_webhook(&self, w: &WebhookRow) -> Result<i64, StoreError> {
        let mut g = self.begin_write().await?;
        let start: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&mut *g.tx)
            .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhooks (name, url, secret, detail_types, repository_prefix, accounts, format, origin, start_seq, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (name) DO UPDATE SET url = excluded.url, secret = excluded.secret, detail_types = excluded.detail_types, \
             repository_prefix = excluded.repository_prefix, accounts = excluded.accounts, format = excluded.format, origin = excluded.origin \
             RETURNING webhook_id",
        )
        .bind(&w.name)
        .bind(&w.url)
        .bind(&w.secret)
        .bind(&w.detail_types)
        .bind(&w.repository_prefix)
        .bind(&w.accounts)
        .bind(&w.format)
        .bind(&w.origin)
        .bind(start)
        .bind(w.created_at)
        .fetch_one(&mut *g.tx)
        .await?;
        g.commit().await?;
        Ok(id)
    }

    pub async fn list_webhooks(&self) -> Result<Vec<WebhookRow>, StoreError> {
        let sql = format!("SELECT {WEBHOOK_COLS} FROM webhooks ORDER BY webhook_id");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        Ok(rows
            .iter()
            .map(webhook_from_row)
            .collect::<Result<_, _>>()?)
    }

    pub async fn get_webhook(&self, webhook_id: i64) -> Result<Option<WebhookRow>, StoreError> {
        let sql = format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE webhook_id = $1");
        let row = sqlx::query(&sql)
            .bind(webhook_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(webhook_from_row).transpose()?)
    }

    /// Removes a webhook by name, with its cursors. False if there was none.
    pub async fn delete_webhook(&self, name: &str) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let id: Option<i64> =
            sqlx::query_scalar("DELETE FROM webhooks WHERE name = $1 RETURNING webhook_id")
                .bind(name)
                .fetch_optional(&mut *g.tx)
                .await?;
        if let Some(id) = id {
            sqlx::query("DELETE FROM webhook_cursors WHERE webhook_id = $1")
                .bind(id)
                .execute(&mut *g.tx)
                .await?;
        }
        g.commit().await?;
        Ok(id.is_some())
    }

    /// (webhook, account, repository) streams with events the webhook has not yet
    /// delivered.
    pub async fn pending_webhook_streams(&self) -> Result<Vec<(i64, String, String)>, StoreError> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT w.webhook_id, s.account_id, s.repository FROM webhooks w CROSS JOIN event_streams s \
             LEFT JOIN webhook_cursors c ON c.webhook_id = w.webhook_id AND c.account_id = s.account_id AND c.repository = s.repository \
             WHERE s.last_seq > COALESCE(c.last_seq, w.start_seq)",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }

    /// Where a webhook stands in a stream: the last event delivered (or skipped).
    pub async fn webhook_cursor(
        &self,
        webhook_id: i64,
        account: &str,
        repository: &str,
    ) -> Result<i64, StoreError> {
        let c: Option<i64> = sqlx::query_scalar(
            "SELECT c.last_seq FROM webhook_cursors c WHERE c.webhook_id = $1 AND c.account_id = $2 AND c.repository = $3",
        )
        .bind(webhook_id)
        .bind(account)
        .bind(repository)
        .fetch_optional(self.pool())
        .await?;
        match c {
            Some(c) => Ok(c),
            None => Ok(
                sqlx::query_scalar("SELECT start_seq FROM webhooks WHERE webhook_id = $1")
                    .bind(webhook_id)
                    .fetch_optional(self.pool())
                    .await?
                    .unwrap_or(0),
            ),
        }
    }

    /// Moves a webhook's cursor forward in a stream (never back).
    pub async fn advance_webhook_cursor(
        &self,
        webhook_id: i64,
        account: &str,
        repository: &str,
        seq: i64,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO webhook_cursors (webhook_id, account_id, repository, last_seq) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (webhook_id, account_id, repository) DO UPDATE SET last_seq = excluded.last_seq \
             WHERE webhook_cursors.last_seq < excluded.last_seq",
        )
        .bind(webhook_id)
        .bind(account)
        .bind(repository)
        .bind(seq)
        .execute(&mut *g.tx)
        .await?;
        g.commit().await
    }
}

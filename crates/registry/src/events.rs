//! Events and webhooks, core side (`docs/architecture.md`, "Events").
//!
//! Events are written by the store in the transaction of the change that caused
//! them (`crates/store/src/events.rs`); this module builds the events of a push,
//! keeps webhooks (their secrets sealed with the master key) and gives the delivery
//! worker what it needs: the streams with undelivered events, their events in
//! order, and the cursors it advances. Other features record their events with
//! [`Registry::record_events`] (replication results, pull-through cache syncs).

use berth_oci::Reference;
use berth_store::events::{self as ev, EventRow, NewEvent, WebhookRow};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Registry, RegistryError, RepositoryRow};

pub use berth_store::events::{
    image_action, image_scan, referrer_action, DETAIL_TYPES, IMAGE_ACTION, IMAGE_SCAN,
    PULL_THROUGH_CACHE_ACTION, REFERRER_ACTION, REPLICATION_ACTION,
};
pub use berth_store::events::{EventRow as Event, NewEvent as EventToRecord};

/// The job types a delivery handler outside this crate needs.
pub use berth_store::{ClaimedJob, NewJob, RetryPolicy};

type Result<T> = std::result::Result<T, RegistryError>;

/// Webhook delivery counters of this process (`/metrics`).
#[derive(Debug, Default)]
pub struct DeliveryStats {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Sum of (acknowledged − recorded) over delivered events, in ms.
    pub latency_ms_sum: AtomicU64,
}

impl DeliveryStats {
    pub const fn new() -> Self {
        DeliveryStats {
            delivered: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            latency_ms_sum: AtomicU64::new(0),
        }
    }

    /// Records one delivered event `ms` after it was recorded.
    pub fn observe_latency(&self, ms: i64) {
        self.latency_ms_sum
            .fetch_add(ms.max(0) as u64, Ordering::Relaxed);
    }
}

/// This process's delivery counters.
pub static DELIVERY: DeliveryStats = DeliveryStats::new();

pub(crate) const SECRET_CONTEXT: &str = "berth webhook secret v1";

/// The events of a manifest push: one "ECR Image Action" PUSH (with the tag, or
/// untagged), and an "ECR Referrer Action" when the manifest has a subject.
pub(crate) fn push_events(
    repo: &RepositoryRow,
    digest: &str,
    reference: &Reference,
    media_type: &str,
    artifact_type: Option<&str>,
    subject: Option<&str>,
) -> Vec<NewEvent> {
    let tag = match reference {
        Reference::Tag(t) => Some(t.as_str()),
        Reference::Digest(_) => None,
    };
    let mut out = vec![NewEvent {
        detail_type: IMAGE_ACTION,
        detail: image_action(
            "PUSH",
            &repo.name,
            digest,
            tag,
            Some(media_type),
            artifact_type,
        ),
    }];
    if let Some(s) = subject {
        out.push(NewEvent {
            detail_type: REFERRER_ACTION,
            detail: referrer_action(&repo.name, s, digest, media_type, artifact_type),
        });
    }
    out
}

/// A webhook's settings, as configured (`[[webhook]]`) or added by
/// `berth admin webhook add`.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct WebhookSpec {
    pub name: String,
    pub url: String,
    pub secret: String,
    /// Empty: every detail type.
    pub detail_types: Vec<String>,
    pub repository_prefix: String,
    /// Empty: every account.
    pub accounts: Vec<String>,
    /// `eventbridge` (default) or `cloudevents`.
    pub format: String,
}

impl std::fmt::Debug for WebhookSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSpec")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("detail_types", &self.detail_types)
            .field("repository_prefix", &self.repository_prefix)
            .field("accounts", &self.accounts)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// A stored webhook with its secret opened (for the delivery worker only).
#[derive(Clone)]
pub struct Webhook {
    pub id: i64,
    pub spec: WebhookSpec,
    pub origin: String,
}

impl Webhook {
    /// Whether this webhook wants `e`.
    pub fn wants(&self, e: &EventRow) -> bool {
        (self.spec.detail_types.is_empty() || self.spec.detail_types.contains(&e.detail_type))
            && e.repository.starts_with(&self.spec.repository_prefix)
            && (self.spec.accounts.is_empty() || self.spec.accounts.contains(&e.account_id))
    }
}

impl WebhookSpec {
    /// Checks the settings a user gave.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.name.is_empty() {
            return Err("a webhook needs a name".into());
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!("webhook {}: url must be http(s)://", self.name));
        }
        if self.secret.is_empty() {
            return Err(format!("webhook {}: a secret is required", self.name));
        }
        for t in &self.detail_types {
            if !DETAIL_TYPES.contains(&t.as_str()) {
                return Err(format!(
                    "webhook {}: unknown detail type {t:?} (one of {DETAIL_TYPES:?})",
                    self.name
                ));
            }
        }
        match self.format.as_str() {
            "" | "eventbridge" | "cloudevents" => Ok(()),
            f => Err(format!(
                "webhook {}: format {f:?} is not \"eventbridge\" or \"cloudevents\"",
                self.name
            )),
        }
    }
}

impl Registry {
    /// Records events of a repository in a transaction of their own: for features
    /// whose change is not a manifest write (replication results, pull-through
    /// cache syncs). Inside a store transaction use
    /// `berth_store::events::record_tx` instead, so the event commits with its
    /// cause.
    pub async fn record_events(
        &self,
        account: &str,
        repository: &str,
        events: &[NewEvent],
    ) -> Result<()> {
        Ok(self
            .meta
            .record_events(account, repository, events, self.now())
            .await?)
    }

    /// Adds (or, by name, updates) a webhook; its secret is sealed with the master
    /// key. A new webhook receives the events recorded after it was added.
    pub async fn put_webhook(&self, spec: &WebhookSpec, origin: &str) -> Result<i64> {
        spec.validate().map_err(RegistryError::PolicyInvalid)?;
        let sealed = self
            .identity()
            .master()
            .seal(SECRET_CONTEXT, spec.secret.as_bytes())
            .map_err(|e| berth_store::StoreError::Tampered(e.to_string()))?;
        let row = WebhookRow {
            webhook_id: 0,
            name: spec.name.clone(),
            url: spec.url.clone(),
            secret: hex::encode(sealed),
            detail_types: serde_json::to_string(&spec.detail_types).unwrap_or_default(),
            repository_prefix: spec.repository_prefix.clone(),
            accounts: serde_json::to_string(&spec.accounts).unwrap_or_default(),
            format: if spec.format.is_empty() {
                "eventbridge".into()
            } else {
                spec.format.clone()
            },
            origin: origin.to_string(),
            start_seq: 0,
            created_at: self.now(),
        };
        Ok(self.meta.upsert_webhook(&row).await?)
    }

    fn open_webhook(&self, r: WebhookRow) -> Result<Webhook> {
        let sealed = hex::decode(&r.secret).map_err(|_| {
            berth_store::StoreError::Tampered("stored webhook secret is corrupt".into())
        })?;
        let secret = self
            .identity()
            .master()
            .open(SECRET_CONTEXT, &sealed)
            .map_err(|e| berth_store::StoreError::Tampered(e.to_string()))?;
        Ok(Webhook {
            id: r.webhook_id,
            origin: r.origin,
            spec: WebhookSpec {
                name: r.name,
                url: r.url,
                secret: String::from_utf8_lossy(&secret).into_owned(),
                detail_types: serde_json::from_str(&r.detail_types).unwrap_or_default(),
                repository_prefix: r.repository_prefix,
                accounts: serde_json::from_str(&r.accounts).unwrap_or_default(),
                format: r.format,
            },
        })
    }

    /// Every webhook, secrets opened.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>> {
        self.meta
            .list_webhooks()
            .await?
            .into_iter()
            .map(|r| self.open_webhook(r))
            .collect()
    }

    pub async fn webhook(&self, id: i64) -> Result<Option<Webhook>> {
        self.meta
            .get_webhook(id)
            .await?
            .map(|r| self.open_webhook(r))
            .transpose()
    }

    pub async fn remove_webhook(&self, name: &str) -> Result<bool> {
        Ok(self.meta.delete_webhook(name).await?)
    }

    /// (webhook id, account, repository) streams with undelivered events.
    pub async fn pending_webhook_streams(&self) -> Result<Vec<(i64, String, String)>> {
        Ok(self.meta.pending_webhook_streams().await?)
    }

    /// A webhook's next events in one repository, in order.
    pub async fn undelivered_events(
        &self,
        webhook_id: i64,
        account: &str,
        repository: &str,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        let after = self
            .meta
            .webhook_cursor(webhook_id, account, repository)
            .await?;
        Ok(self
            .meta
            .stream_events(account, repository, after, limit)
            .await?)
    }

    /// Marks a webhook's events up to `seq` of one repository delivered.
    pub async fn events_delivered(
        &self,
        webhook_id: i64,
        account: &str,
        repository: &str,
        seq: i64,
    ) -> Result<()> {
        Ok(self
            .meta
            .advance_webhook_cursor(webhook_id, account, repository, seq)
            .await?)
    }

    /// The most recent events, newest first.
    pub async fn recent_events(&self, limit: i64) -> Result<Vec<EventRow>> {
        Ok(self.meta.recent_events(limit).await?)
    }

    /// Events produced by this process since it started.
    pub fn events_produced(&self) -> u64 {
        ev::PRODUCED.load(Ordering::Relaxed)
    }
}

pub use berth_store::AuditFilter;

impl Registry {
    /// Audit records of `account`, newest first, with their ids (CloudTrail
    /// `LookupEvents` over the audit log).
    pub async fn lookup_audit(
        &self,
        account: &str,
        filter: &AuditFilter,
        limit: i64,
    ) -> Result<Vec<(i64, crate::AuditRow)>> {
        Ok(self.meta.lookup_audit(account, filter, limit).await?)
    }
}

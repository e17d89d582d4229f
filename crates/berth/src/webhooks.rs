//! Webhook delivery (`docs/architecture.md`, "Events").
//!
//! Each (webhook, repository) pair is a stream delivered by one durable job at a
//! time (unique key `webhook:<id>:<account>/<repository>`): the job sends the
//! stream's undelivered events in event order and advances the webhook's cursor
//! after each acknowledged one. A failed send fails the job, which the runner retries
//! with backoff from the same event, so a later event never overtakes an earlier
//! one; after `webhook_max_attempts` the job is parked — a dead letter, shown by
//! `berth admin webhook failures` and queued again by `berth admin webhook
//! redeliver`. A dispatcher pass makes sure every stream with undelivered events
//! has its job.
//!
//! Every request carries `X-Berth-Signature: sha256=<hex HMAC-SHA256 of the body
//! keyed by the webhook's secret>` and the event id (`X-Berth-Event-Id`, and
//! `ce-id` in CloudEvents mode), which receivers use to drop duplicates: delivery
//! is at least once.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use berth_registry::events::{
    ClaimedJob, Event, NewJob, RetryPolicy, Webhook, WebhookSpec, DELIVERY,
};
use berth_registry::jobs::{BoxFuture, Finished, Handler, Worker, WorkerConfig};
use berth_registry::{Registry, RegistryError};
use serde::{Deserialize, Serialize};

/// The job kind of a stream's delivery.
pub const WEBHOOK_JOB: &str = "webhook";

/// Events sent per claim of a stream's job.
const BATCH: i64 = 100;

#[derive(Debug, Serialize, Deserialize)]
pub struct StreamPayload {
    pub webhook_id: i64,
    pub account: String,
    pub repository: String,
}

/// The job of one (webhook, repository) stream.
pub fn stream_job(webhook_id: i64, account: &str, repository: &str) -> NewJob {
    let payload = StreamPayload {
        webhook_id,
        account: account.to_string(),
        repository: repository.to_string(),
    };
    let mut j = NewJob::now(
        WEBHOOK_JOB,
        serde_json::to_string(&payload).unwrap_or_default(),
    );
    j.unique_key = Some(format!("webhook:{webhook_id}:{account}/{repository}"));
    j
}

/// The event as ECR sends it to EventBridge.
pub fn envelope(e: &Event, region: &str) -> serde_json::Value {
    let detail: serde_json::Value =
        serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null);
    let resources = if e.detail_type == berth_registry::events::IMAGE_ACTION {
        Vec::new()
    } else {
        vec![format!(
            "arn:aws:ecr:{region}:{}:repository/{}",
            e.account_id, e.repository
        )]
    };
    serde_json::json!({
        "version": "0",
        "id": e.event_id,
        "detail-type": e.detail_type,
        "source": "aws.ecr",
        "account": e.account_id,
        "time": berth_iam::time::format_iso8601(e.created_at.div_euclid(1000)),
        "region": region,
        "resources": resources,
        "detail": detail,
    })
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, body).as_ref())
    )
}

/// Sends one event to a webhook. Err: the receiver did not acknowledge it (2xx).
pub async fn send(
    client: &reqwest::Client,
    hook: &Webhook,
    e: &Event,
    region: &str,
) -> Result<(), String> {
    let env = envelope(e, region);
    let mut req = client.post(&hook.spec.url);
    let body = if hook.spec.format == "cloudevents" {
        // CloudEvents 1.0, binary content mode: attributes in `ce-` headers, the
        // event's `detail` as the body.
        let body = serde_json::to_vec(&env["detail"]).unwrap_or_default();
        req = req
            .header("ce-specversion", "1.0")
            .header("ce-id", &e.event_id)
            .header("ce-source", format!("aws.ecr/{}", e.account_id))
            .header("ce-type", &e.detail_type)
            .header("ce-subject", &e.repository)
            .header(
                "ce-time",
                berth_iam::time::format_iso8601(e.created_at.div_euclid(1000)),
            );
        body
    } else {
        serde_json::to_vec(&env).unwrap_or_default()
    };
    let resp = req
        .header("content-type", "application/json")
        .header("x-berth-event-id", &e.event_id)
        .header("x-berth-signature", signature(&hook.spec.secret, &body))
        .body(body)
        .send()
        .await
        .map_err(|err| format!("event {}: {}", e.event_id, without_url(&err)))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "event {}: the receiver answered {}",
            e.event_id,
            resp.status()
        ))
    }
}

/// A reqwest error without its URL (a webhook URL may carry a token).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut src = std::error::Error::source(e);
    let mut last = String::new();
    while let Some(s) = src {
        last = s.to_string();
        src = s.source();
    }
    if last.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {last}")
    }
}

pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))
}

pub struct WebhookHandler {
    /// Built on the first delivery: a registry without webhooks never loads TLS
    /// roots or touches the HTTP client's code (idle memory, docs/benchmarks.md
    /// "Memory: idle and peak RSS").
    client: std::sync::OnceLock<reqwest::Client>,
    region: String,
    policy: RetryPolicy,
}

impl WebhookHandler {
    pub fn new(region: String, max_attempts: i64) -> Self {
        WebhookHandler {
            client: std::sync::OnceLock::new(),
            region,
            policy: RetryPolicy {
                max_attempts: max_attempts.max(1),
                base_delay_ms: 500,
                max_delay_ms: 60_000,
            },
        }
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let built = client()?;
        Ok(self.client.get_or_init(|| built))
    }

    async fn drain(&self, reg: &Registry, job: &ClaimedJob) -> Result<Finished, String> {
        let p: StreamPayload = serde_json::from_str(&job.payload)
            .map_err(|e| format!("invalid webhook job payload: {e}"))?;
        let Some(hook) = reg.webhook(p.webhook_id).await.map_err(|e| e.to_string())? else {
            // The webhook was removed: nothing more to deliver.
            return Ok(Finished::done());
        };
        if job.attempts > 1 {
            DELIVERY.retried.fetch_add(1, Ordering::Relaxed);
        }
        loop {
            let events = reg
                .undelivered_events(hook.id, &p.account, &p.repository, BATCH)
                .await
                .map_err(|e| e.to_string())?;
            if events.is_empty() {
                return Ok(Finished::done());
            }
            for e in &events {
                if hook.wants(e) {
                    send(self.client()?, &hook, e, &self.region).await?;
                    DELIVERY.delivered.fetch_add(1, Ordering::Relaxed);
                    DELIVERY.observe_latency(reg.now().saturating_sub(e.created_at));
                }
                reg.events_delivered(hook.id, &p.account, &p.repository, e.seq)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
    }
}

impl Handler for WebhookHandler {
    fn kind(&self) -> &'static str {
        WEBHOOK_JOB
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.policy
    }

    fn run<'a>(
        &'a self,
        reg: &'a Registry,
        job: &'a ClaimedJob,
    ) -> BoxFuture<'a, Result<Finished, String>> {
        Box::pin(self.drain(reg, job))
    }

    fn parked<'a>(
        &'a self,
        _reg: &'a Registry,
        job: &'a ClaimedJob,
        error: &'a str,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            DELIVERY.dead_lettered.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                job = job.job_id,
                error,
                "webhook delivery parked (dead letter)"
            );
            Ok(())
        })
    }
}

/// The `[[webhook]]` tables of the config, as webhook settings.
pub fn configured(cfg: &crate::config::Config) -> Result<Vec<WebhookSpec>, String> {
    let mut out = Vec::new();
    for w in &cfg.webhook {
        let spec = WebhookSpec {
            name: w.name.clone().unwrap_or_else(|| w.url.clone()),
            url: w.url.clone(),
            secret: w.secret.clone(),
            detail_types: w.detail_types.clone(),
            repository_prefix: w.repository_prefix.clone(),
            accounts: w.accounts.clone(),
            format: w.format.clone().unwrap_or_default(),
        };
        spec.validate()?;
        out.push(spec);
    }
    Ok(out)
}

/// Loads the configured webhooks and starts the dispatcher and the delivery worker.
pub async fn spawn(
    registry: Arc<Registry>,
    cfg: &crate::config::Config,
    config: WorkerConfig,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    for spec in configured(cfg)? {
        registry
            .put_webhook(&spec, "config")
            .await
            .map_err(|e| format!("cannot load webhook {}: {e}", spec.name))?;
    }
    let handler: Arc<dyn Handler> = Arc::new(WebhookHandler::new(
        cfg.region.clone(),
        cfg.webhook_max_attempts,
    ));
    let id = crate::serve::worker_id();
    let mut handles = Vec::new();
    for i in 0..2 {
        let w = Worker::new(
            registry.clone(),
            format!("{id}/webhook-{i}"),
            vec![handler.clone()],
            WorkerConfig {
                idle: Duration::from_millis(200),
                ..config
            },
        );
        handles.push(tokio::spawn(w.run(stop.clone())));
    }
    handles.push(tokio::spawn(dispatch(registry, stop)));
    Ok(handles)
}

/// Makes sure every stream with undelivered events has its delivery job.
async fn dispatch(registry: Arc<Registry>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match registry.pending_webhook_streams().await {
            Ok(streams) if !streams.is_empty() => {
                // Streams whose job exists need no write (a push shares SQLite's one
                // writer with this pass): look first, enqueue only the others.
                let queued: std::collections::HashSet<String> = registry
                    .list_jobs(None, Some(WEBHOOK_JOB), 100_000)
                    .await
                    .map(|jobs| jobs.into_iter().map(|j| j.payload).collect())
                    .unwrap_or_default();
                for (hook, account, repo) in streams {
                    let job = stream_job(hook, &account, &repo);
                    if queued.contains(&job.payload) {
                        continue;
                    }
                    if let Err(e) = registry.enqueue_job(&job).await {
                        tracing::warn!(error = %e, "cannot queue a webhook delivery");
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot look for undelivered events"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

#[derive(clap::Subcommand)]
pub enum WebhookCmd {
    /// Add a webhook (or update the one of that name).
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        url: String,
        /// HMAC key of X-Berth-Signature (or BERTH_WEBHOOK_SECRET).
        #[arg(long, env = "BERTH_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// A detail type to deliver (repeat; default: all).
        #[arg(long = "detail-type")]
        detail_types: Vec<String>,
        #[arg(long, default_value = "")]
        repository_prefix: String,
        /// An account to deliver events of (repeat; default: every account).
        #[arg(long = "account")]
        accounts: Vec<String>,
        /// eventbridge or cloudevents.
        #[arg(long, default_value = "eventbridge")]
        format: String,
    },
    /// List webhooks (secrets are not shown).
    List,
    /// Remove a webhook.
    Remove { name: String },
    /// Send the most recent event (or a sample push event) to a webhook now.
    Test { name: String },
    /// Dead letters: streams whose delivery was parked after its attempts.
    Failures,
    /// Queue a dead-lettered stream again (its undelivered events, in order).
    Redeliver { id: i64 },
}

pub async fn admin(
    cfg: &crate::config::Config,
    registry: &Registry,
    cmd: WebhookCmd,
) -> Result<(), String> {
    let by_name = |name: String| async move {
        registry
            .webhooks()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|w| w.spec.name == name)
            .ok_or_else(|| format!("no webhook named {name:?}"))
    };
    match cmd {
        WebhookCmd::Add {
            name,
            url,
            secret,
            detail_types,
            repository_prefix,
            accounts,
            format,
        } => {
            let spec = WebhookSpec {
                name,
                url,
                secret,
                detail_types,
                repository_prefix,
                accounts,
                format,
            };
            let id = registry
                .put_webhook(&spec, "admin")
                .await
                .map_err(|e| e.to_string())?;
            println!("webhook {} ({id}) added", spec.name);
        }
        WebhookCmd::List => {
            println!("ID\tNAME\tURL\tFORMAT\tDETAIL_TYPES\tREPOSITORY_PREFIX\tACCOUNTS\tORIGIN");
            for w in registry.webhooks().await.map_err(|e| e.to_string())? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    w.id,
                    w.spec.name,
                    w.spec.url,
                    w.spec.format,
                    if w.spec.detail_types.is_empty() {
                        "*".to_string()
                    } else {
                        w.spec.detail_types.join(",")
                    },
                    w.spec.repository_prefix,
                    if w.spec.accounts.is_empty() {
                        "*".to_string()
                    } else {
                        w.spec.accounts.join(",")
                    },
                    w.origin
                );
            }
        }
        WebhookCmd::Remove { name } => {
            if !registry
                .remove_webhook(&name)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("no webhook named {name:?}"));
            }
            println!("webhook {name} removed");
        }
        WebhookCmd::Test { name } => {
            let hook = by_name(name).await?;
            let e = match registry
                .recent_events(1)
                .await
                .map_err(|e| e.to_string())?
                .pop()
            {
                Some(e) => e,
                None => Event {
                    seq: 0,
                    event_id: format!("test-{}", registry.now()),
                    account_id: cfg.account_id.clone(),
                    repository: "berth/test".into(),
                    detail_type: berth_registry::events::IMAGE_ACTION.into(),
                    detail: berth_registry::events::image_action(
                        "PUSH",
                        "berth/test",
                        "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                        Some("test"),
                        None,
                        None,
                    )
                    .to_string(),
                    created_at: registry.now(),
                },
            };
            send(&client()?, &hook, &e, &cfg.region).await?;
            println!("event {} delivered to {}", e.event_id, hook.spec.name);
        }
        WebhookCmd::Failures => {
            let rows = registry
                .list_jobs(Some("parked"), Some(WEBHOOK_JOB), 1000)
                .await
                .map_err(|e| e.to_string())?;
            println!("ID\tWEBHOOK\tACCOUNT\tREPOSITORY\tATTEMPTS\tLAST_ERROR");
            for j in rows {
                let p: Option<StreamPayload> = serde_json::from_str(&j.payload).ok();
                let (hook, account, repo) = match p {
                    Some(p) => {
                        let name = registry
                            .webhook(p.webhook_id)
                            .await
                            .ok()
                            .flatten()
                            .map(|w| w.spec.name)
                            .unwrap_or_else(|| format!("#{}", p.webhook_id));
                        (name, p.account, p.repository)
                    }
                    None => ("?".into(), "?".into(), "?".into()),
                };
                println!(
                    "{}\t{hook}\t{account}\t{repo}\t{}\t{}",
                    j.job_id,
                    j.attempts,
                    j.last_error
                        .as_deref()
                        .map(|e| e.replace(['\t', '\n'], " "))
                        .unwrap_or_else(|| "-".to_string())
                );
            }
        }
        WebhookCmd::Redeliver { id } => {
            let is_webhook = registry
                .list_jobs(Some("parked"), Some(WEBHOOK_JOB), 100_000)
                .await
                .map_err(|e| e.to_string())?
                .iter()
                .any(|j| j.job_id == id);
            if !is_webhook
                || !registry
                    .retry_parked_job(id)
                    .await
                    .map_err(|e| e.to_string())?
            {
                return Err(format!("no dead-lettered webhook delivery {id}"));
            }
            println!("delivery {id} queued again");
        }
    }
    Ok(())
}

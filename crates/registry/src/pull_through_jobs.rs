//! Completing a pull-through cache image as a durable job (`docs/architecture.md`,
//! "Pull-through cache" and "Deferred work: durable jobs").
//!
//! A first pull serves the upstream's manifest before the image is stored: the
//! client then fetches the blobs it needs through berth (each one stored while it
//! is streamed), and the rest — the blobs of platforms the client did not pull,
//! the manifests themselves, which are stored only once their blobs are — is the
//! work of one `pull-through-complete` job, queued before the manifest is served.
//! The job carries the verified manifests (bytes and all), so any node completes
//! the image without asking the upstream for them again; it waits until no client
//! has been fetching the image's blobs for a moment, fetches what is still missing
//! (each blob under the lease that makes every node fetch it once), stores the
//! manifests, children first, and records the sync. It is idempotent: what is
//! stored already is skipped. A failed attempt is retried with backoff; a parked
//! job records the failed sync.

use std::time::Duration;

use base64::Engine as _;
use berth_oci::{Digest, Reference};
use berth_store::{ClaimedJob, NewJob, RetryPolicy};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::jobs::{BoxFuture, Finished, Handler};
use crate::pull_through::{FetchedManifest, PullThroughError, PullThroughRule};
use crate::{Registry, RegistryError};

/// The kind of the job that completes an image fetched through a pull-through
/// cache rule.
pub const PULL_THROUGH_JOB: &str = "pull-through-complete";

/// How long after the manifest was served the job becomes runnable: the client's
/// own blob reads, which are streamed to it while stored, go first.
const START_DELAY_MS: i64 = 1000;
/// How often the job looks whether clients are still fetching the image's blobs,
/// and how long it waits for them at most.
const QUIET_TICK: Duration = Duration::from_millis(500);
const PATIENCE: Duration = Duration::from_secs(600);

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    account: String,
    /// The rule's prefix; the rule (and its credential) is read when the job runs.
    rule: String,
    repo_id: i64,
    repository: String,
    upstream_name: String,
    /// Children first, the manifest asked for last.
    manifests: Vec<JobManifest>,
}

#[derive(Debug, Serialize, Deserialize)]
struct JobManifest {
    reference: String,
    digest: String,
    content_type: String,
    /// The manifest's bytes, base64.
    body: String,
    blobs: Vec<String>,
}

impl Job {
    fn tree(&self) -> std::result::Result<Vec<FetchedManifest>, String> {
        decode_manifests(&self.manifests)
    }
}

fn encode_manifests(tree: &[FetchedManifest]) -> Vec<JobManifest> {
    tree.iter()
        .map(|m| JobManifest {
            reference: m.reference.to_string(),
            digest: m.digest.to_string(),
            content_type: m.content_type.clone(),
            body: base64::engine::general_purpose::STANDARD.encode(&m.body),
            blobs: m.blobs.iter().map(|d| d.to_string()).collect(),
        })
        .collect()
}

fn decode_manifests(ms: &[JobManifest]) -> std::result::Result<Vec<FetchedManifest>, String> {
    let bad = |e: &dyn std::fmt::Display| format!("bad pull-through manifest tree: {e}");
    ms.iter()
        .map(|m| {
            Ok(FetchedManifest {
                reference: Reference::parse(&m.reference).map_err(|e| bad(&e))?,
                digest: Digest::parse(&m.digest).map_err(|e| bad(&e))?,
                content_type: m.content_type.clone(),
                body: Bytes::from(
                    base64::engine::general_purpose::STANDARD
                        .decode(&m.body)
                        .map_err(|e| bad(&e))?,
                ),
                blobs: m
                    .blobs
                    .iter()
                    .map(|d| Digest::parse(d).map_err(|e| bad(&e)))
                    .collect::<std::result::Result<_, _>>()?,
            })
        })
        .collect()
}

/// A fetched manifest tree as text (JSON, the bodies base64), for the
/// database; [`decode_tree`] reads it back.
pub(crate) fn encode_tree(tree: &[FetchedManifest]) -> String {
    serde_json::to_string(&encode_manifests(tree)).expect("a manifest tree serializes")
}

pub(crate) fn decode_tree(s: &str) -> std::result::Result<Vec<FetchedManifest>, String> {
    let ms: Vec<JobManifest> =
        serde_json::from_str(s).map_err(|e| format!("bad pull-through manifest tree: {e}"))?;
    decode_manifests(&ms)
}

impl Registry {
    /// Queues the job that completes `tree` (fetched from `rule`'s upstream as
    /// `upstream_name`) in `repo`.
    pub(crate) async fn enqueue_pull_through_completion(
        &self,
        account: &str,
        rule: &PullThroughRule,
        repo: &berth_store::RepositoryRow,
        upstream_name: &str,
        tree: &[FetchedManifest],
    ) -> Result<(), RegistryError> {
        let job = Job {
            account: account.to_string(),
            rule: rule.ecr_prefix.clone(),
            repo_id: repo.repo_id,
            repository: repo.name.clone(),
            upstream_name: upstream_name.to_string(),
            manifests: encode_manifests(tree),
        };
        let payload = serde_json::to_string(&job).expect("a job serializes");
        let mut new = NewJob::now(PULL_THROUGH_JOB, payload);
        new.run_after += START_DELAY_MS;
        self.meta.enqueue_job(&new).await?;
        Ok(())
    }

    /// Waits until no pull (on any node) has been fetching a blob of `tree` for
    /// two ticks, or [`PATIENCE`] has passed.
    async fn wait_for_quiet(&self, repo: &berth_store::RepositoryRow, tree: &[FetchedManifest]) {
        let deadline = std::time::Instant::now() + PATIENCE;
        let mut quiet = 0;
        while quiet < 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(QUIET_TICK).await;
            let mut busy = false;
            for d in tree.iter().flat_map(|m| &m.blobs) {
                if self.upstream_blob_in_flight(repo, d).await.unwrap_or(false) {
                    busy = true;
                    break;
                }
            }
            quiet = if busy { 0 } else { quiet + 1 };
        }
    }
}

/// Runs `pull-through-complete` jobs.
pub struct PullThroughHandler;

impl PullThroughHandler {
    /// An upstream restarting or briefly unreachable delays the completion by a few
    /// minutes at most before the job is parked (about five minutes in all).
    pub const RETRY: RetryPolicy = RetryPolicy {
        max_attempts: 8,
        base_delay_ms: 2000,
        max_delay_ms: 90_000,
    };

    fn job(job: &ClaimedJob) -> std::result::Result<Job, String> {
        serde_json::from_str(&job.payload).map_err(|e| format!("bad pull-through job: {e}"))
    }
}

impl Handler for PullThroughHandler {
    fn kind(&self) -> &'static str {
        PULL_THROUGH_JOB
    }

    fn retry_policy(&self) -> RetryPolicy {
        Self::RETRY
    }

    fn run<'a>(
        &'a self,
        reg: &'a Registry,
        job: &'a ClaimedJob,
    ) -> BoxFuture<'a, std::result::Result<Finished, String>> {
        Box::pin(async move {
            let j = Self::job(job)?;
            let tree = j.tree()?;
            let Some(top) = tree.last() else {
                return Ok(Finished::done());
            };
            // A repository deleted meanwhile (or deleted and created again) is not
            // filled.
            let repo = match reg.repository_by_id(j.repo_id).await {
                Ok(Some(r)) if r.name == j.repository && r.account_id == j.account => r,
                Ok(_) => return Ok(Finished::done()),
                Err(e) => return Err(e.to_string()),
            };
            let rules = reg
                .pull_through_rules(&j.account)
                .await
                .map_err(|e| e.to_string())?;
            let Some(rule) = rules.iter().find(|r| r.ecr_prefix == j.rule) else {
                // Nothing to retry: the rule's upstream and credential are gone.
                tracing::warn!(repository = %j.repository, rule = %j.rule, "pull-through cache: the rule was deleted before the image was completed");
                return Ok(Finished::done());
            };
            reg.wait_for_quiet(&repo, &tree).await;
            match reg
                .complete_upstream_image(&j.account, rule, &repo, &j.upstream_name, &tree)
                .await
            {
                Ok(()) => {
                    reg.sync_event(rule, &repo, &top.reference, Some(&top.digest), Ok(()))
                        .await;
                    Ok(Finished::done())
                }
                Err(PullThroughError::Registry(RegistryError::NameUnknown { .. })) => {
                    Ok(Finished::done())
                }
                Err(e) => Err(format!(
                    "completing {}:{}: {e}",
                    j.repository, top.reference
                )),
            }
        })
    }

    fn parked<'a>(
        &'a self,
        reg: &'a Registry,
        job: &'a ClaimedJob,
        error: &'a str,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let Ok(j) = Self::job(job) else {
                return Ok(());
            };
            let Ok(tree) = j.tree() else {
                return Ok(());
            };
            let Some(top) = tree.last() else {
                return Ok(());
            };
            let Some(repo) = reg.repository_by_id(j.repo_id).await? else {
                return Ok(());
            };
            let rules = reg.pull_through_rules(&j.account).await?;
            if let Some(rule) = rules.iter().find(|r| r.ecr_prefix == j.rule) {
                reg.sync_event(
                    rule,
                    &repo,
                    &top.reference,
                    Some(&top.digest),
                    Err(error.to_string()),
                )
                .await;
            }
            Ok(())
        })
    }
}

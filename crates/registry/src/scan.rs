//! Image scanning in the registry (ECR user guide, "Image scanning": basic scanning,
//! scan on push, registry scanning rules and their filters; `berth-scan` does the
//! scanning itself).
//!
//! Which images are scanned: a push of a new manifest into a repository whose
//! effective frequency is `SCAN_ON_PUSH` or `CONTINUOUS_SCAN` enqueues a durable scan
//! job; `StartImageScan` enqueues one on demand (once per image per 24 h); a change
//! of the advisory database enqueues rescans of every image in `CONTINUOUS_SCAN`
//! repositories. Scans run on the job runner (`crates/registry/src/jobs.rs`), so a
//! crashed worker's job is taken by another once its claim expires, a stopping one
//! releases it, and pushes never wait for a scan.
//!
//! Multi-architecture indexes: as in ECR, each platform image is scanned on its own
//! (it is a manifest of its own, pushed before the index); the index itself ends
//! `UNSUPPORTED_IMAGE` with a description that names where its findings are, and
//! scanning an index enqueues scans of those children that were never scanned.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use berth_oci::{media, Descriptor, Manifest, ManifestKind};
use berth_scan::{scan_image, AdvisoryIndex, Inventory, Layer, Limits, ScanReport, ScanStatus};
use berth_store::scans::{ScanJob, ScanRow, SCAN_JOB, VULNDB_UPDATED_AT, VULNDB_VERSION};
use berth_store::{
    AccountSetting, BlobRef, BlobStore, ClaimedJob, ManifestRow, RepositoryRow, RetryPolicy,
};
use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::jobs::{BoxFuture, Finished, Handler};
use crate::{Registry, RegistryError};

type Result<T> = std::result::Result<T, RegistryError>;

/// ECR basic scanning allows one scan per image per 24 hours.
pub const SCAN_QUOTA_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// Attempts at one scan before it is given up as FAILED (and its job parked).
const MAX_ATTEMPTS: i64 = 5;

/// A repository's effective scanning configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveScanning {
    /// `SCAN_ON_PUSH`, `CONTINUOUS_SCAN` or `MANUAL`.
    pub frequency: &'static str,
    /// The filters of the registry rule that decided it.
    pub applied_filters: Vec<Value>,
}

impl EffectiveScanning {
    /// Whether a push is scanned.
    pub fn scan_on_push(&self) -> bool {
        self.frequency != "MANUAL"
    }
}

/// ECR filter semantics: a filter without `*` matches names containing it; with
/// `*` it is a wildcard over the whole name.
pub fn filter_matches(filter: &str, name: &str) -> bool {
    if !filter.contains('*') {
        return name.contains(filter);
    }
    let parts: Vec<&str> = filter.split('*').collect();
    let (first, rest) = match parts.split_first() {
        Some(x) => x,
        None => return false,
    };
    let Some(mut s) = name.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return s.is_empty();
    };
    for p in middle {
        match s.find(p) {
            Some(i) => s = &s[i + p.len()..],
            None => return false,
        }
    }
    s.len() >= last.len() && s.ends_with(last)
}

/// The effective frequency of `repo_name` under the registry scanning configuration
/// `config` (JSON, as PutRegistryScanningConfiguration stores it). Registry rules,
/// when any exist, override the repository's own `scanOnPush`; among matching rules
/// `CONTINUOUS_SCAN` wins over `SCAN_ON_PUSH`, which wins over `MANUAL`.
pub fn effective_scanning(
    config: Option<&str>,
    repo_name: &str,
    repo_scan_on_push: bool,
) -> EffectiveScanning {
    let cfg: Value = config
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or(Value::Null);
    let rules = cfg
        .get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if rules.is_empty() {
        return EffectiveScanning {
            frequency: if repo_scan_on_push {
                "SCAN_ON_PUSH"
            } else {
                "MANUAL"
            },
            applied_filters: Vec::new(),
        };
    }
    let rank = |f: &str| match f {
        "CONTINUOUS_SCAN" => 3,
        "SCAN_ON_PUSH" => 2,
        "MANUAL" => 1,
        _ => 0,
    };
    let mut best = EffectiveScanning {
        frequency: "MANUAL",
        applied_filters: Vec::new(),
    };
    let mut best_rank = 0;
    for rule in &rules {
        let freq = match rule.get("scanFrequency").and_then(Value::as_str) {
            Some("CONTINUOUS_SCAN") => "CONTINUOUS_SCAN",
            Some("SCAN_ON_PUSH") => "SCAN_ON_PUSH",
            Some("MANUAL") => "MANUAL",
            _ => continue,
        };
        let filters = rule
            .get("repositoryFilters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let matched: Vec<Value> = filters
            .into_iter()
            .filter(|f| {
                f.get("filter")
                    .and_then(Value::as_str)
                    .is_some_and(|p| filter_matches(p, repo_name))
            })
            .collect();
        if !matched.is_empty() && rank(freq) > best_rank {
            best_rank = rank(freq);
            best = EffectiveScanning {
                frequency: freq,
                applied_filters: matched,
            };
        }
    }
    best
}

/// The advisory database as loaded on this node.
pub struct LoadedAdvisories {
    pub index: AdvisoryIndex,
    /// The `settings` version it was built from.
    pub version: Option<String>,
    /// When the database last changed (unix ms).
    pub updated_at: Option<i64>,
}

/// The node's scanner: the in-memory advisory index, rebuilt from the metadata
/// store when its version changes.
pub struct Scanner {
    loaded: RwLock<Arc<LoadedAdvisories>>,
    initialized: AtomicBool,
    reload: tokio::sync::Mutex<()>,
    pub limits: Limits,
    /// Older than this, the database is out of date and scan results say so
    /// (`crate::feeds::vulndb_warning`).
    pub max_age: std::time::Duration,
    /// Push each scanned image's SBOM as a referrer, unless the repository's
    /// resource tag says otherwise (`BERTH_SBOM_REFERRERS`, `crate::sbom`).
    pub sbom_referrers: bool,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner {
            loaded: RwLock::new(Arc::new(LoadedAdvisories {
                index: AdvisoryIndex::new(),
                version: None,
                updated_at: None,
            })),
            initialized: AtomicBool::new(false),
            reload: tokio::sync::Mutex::new(()),
            limits: Limits::default(),
            max_age: std::time::Duration::from_secs(crate::feeds::DEFAULT_MAX_AGE_SECS),
            sbom_referrers: false,
        }
    }

    pub fn current(&self) -> Arc<LoadedAdvisories> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reloads the index when the stored version differs from the loaded one.
    /// Returns true when it reloaded.
    pub async fn refresh(&self, reg: &Registry) -> Result<bool> {
        let version = reg.meta.setting(VULNDB_VERSION).await?;
        if self.initialized.load(Ordering::Acquire) && version == self.current().version {
            return Ok(false);
        }
        // One reload at a time; the others find it done.
        let _one = self.reload.lock().await;
        let version = reg.meta.setting(VULNDB_VERSION).await?;
        if self.initialized.load(Ordering::Acquire) && version == self.current().version {
            return Ok(false);
        }
        let updated_at = reg
            .meta
            .setting(VULNDB_UPDATED_AT)
            .await?
            .and_then(|v| v.parse().ok());
        let mut index = AdvisoryIndex::new();
        let mut rejected = 0u64;
        let n = reg
            .meta
            .for_each_advisory(&mut |id, body| {
                if index.add_json(id, body).is_err() {
                    rejected += 1;
                }
            })
            .await?;
        tracing::info!(
            records = n,
            indexed = index.len(),
            rejected,
            version = version.as_deref().unwrap_or("none"),
            "advisory database loaded"
        );
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(LoadedAdvisories {
            index,
            version,
            updated_at,
        });
        self.initialized.store(true, Ordering::Release);
        Ok(true)
    }
}

/// A blocking reader over an async byte stream, fed through a bounded channel.
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
    done: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.cur.is_empty() {
                let n = buf.len().min(self.cur.len());
                buf[..n].copy_from_slice(&self.cur[..n]);
                self.cur.advance(n);
                return Ok(n);
            }
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                None => self.done = true,
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
            }
        }
    }
}

/// Opens each layer only when the scanner reaches it, so one layer streams at a time.
pub(crate) struct LazyLayers {
    pub(crate) handle: tokio::runtime::Handle,
    pub(crate) blobs: Arc<BlobStore>,
    pub(crate) layers: VecDeque<(Descriptor, BlobRef)>,
}

impl Iterator for LazyLayers {
    type Item = Layer<ChannelReader>;

    fn next(&mut self) -> Option<Self::Item> {
        let (d, blob) = self.layers.pop_front()?;
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
        let blobs = self.blobs.clone();
        let digest = d.digest.clone();
        let size = d.size;
        self.handle.spawn(async move {
            match blobs.get(&blob, 0, size).await {
                Ok(mut s) => {
                    while let Some(item) = s.next().await {
                        let stop = item.is_err();
                        // The scanner dropped the reader (it finished or failed).
                        if tx.send(item).await.is_err() || stop {
                            break;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx
                        .send(Err(io::Error::other(format!(
                            "reading layer {digest}: {e}"
                        ))))
                        .await;
                }
            }
        });
        Some(Layer::new(
            d.media_type,
            ChannelReader {
                rx,
                cur: Bytes::new(),
                done: false,
            },
        ))
    }
}

/// The outcome a worker records.
struct Outcome {
    status: &'static str,
    description: Option<String>,
    findings: Option<Value>,
    /// A complete scan whose SBOM is to be pushed as a referrer.
    sbom: Option<(RepositoryRow, ManifestRow, Inventory)>,
}

fn report_json(report: &ScanReport, source_updated_at: Option<i64>) -> Value {
    let findings: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let attributes: Vec<Value> = f
                .attributes()
                .into_iter()
                .map(|(k, v)| json!({ "key": k, "value": clip(&v, 256) }))
                .collect();
            let mut v = json!({
                "name": f.name,
                "description": f.description,
                "severity": f.severity.as_str(),
                "attributes": attributes,
            });
            if let Some(u) = &f.uri {
                v["uri"] = json!(u);
            }
            v
        })
        .collect();
    let counts: BTreeMap<&str, u32> = report
        .severity_counts
        .iter()
        .map(|(s, n)| (s.as_str(), *n))
        .collect();
    json!({
        "findings": findings,
        "findingSeverityCounts": counts,
        "vulnerabilitySourceUpdatedAt": source_updated_at,
        "os": report.os.as_ref().map(|o| format!("{} {}", o.id, o.version_id.as_deref().unwrap_or("")).trim().to_string()),
        "packages": report.packages.len(),
        "warnings": report.warnings,
    })
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    s.chars().take(max - 1).chain(['…']).collect()
}

impl Registry {
    /// The effective scanning configuration of a repository.
    pub async fn effective_scanning(&self, repo: &RepositoryRow) -> Result<EffectiveScanning> {
        let cfg = self
            .meta
            .account_setting(&repo.account_id, AccountSetting::ScanningConfiguration)
            .await?;
        Ok(effective_scanning(
            cfg.as_deref(),
            &repo.name,
            repo.scan_on_push,
        ))
    }

    /// StartImageScan: false when the image was scanned in the last 24 hours.
    pub async fn start_image_scan(&self, repo: &RepositoryRow, digest: &str) -> Result<bool> {
        Ok(self
            .meta
            .start_scan_with_quota(repo.repo_id, digest, self.now(), SCAN_QUOTA_WINDOW_MS)
            .await?)
    }

    /// Images of every repository whose effective frequency is CONTINUOUS_SCAN.
    pub async fn continuous_scan_images(&self) -> Result<Vec<(i64, String)>> {
        let mut repos = Vec::new();
        for account in self.meta.list_accounts().await? {
            let cfg = self
                .meta
                .account_setting(&account, AccountSetting::ScanningConfiguration)
                .await?;
            let mut after = String::new();
            loop {
                let page = self
                    .meta
                    .list_repositories(&account, Some(&after), 500)
                    .await?;
                let Some(last) = page.last() else { break };
                after = last.name.clone();
                for r in &page {
                    if effective_scanning(cfg.as_deref(), &r.name, r.scan_on_push).frequency
                        == "CONTINUOUS_SCAN"
                    {
                        repos.push(r.repo_id);
                    }
                }
            }
        }
        Ok(self.meta.manifests_of(&repos).await?)
    }

    /// Scans one image now and returns what to record.
    async fn scan_manifest(&self, scanner: &Scanner, job: &ScanJob) -> Result<Outcome> {
        // Encrypted at rest: the body and the layers are read with the repository's keys.
        let repo = self.repository_by_id(job.repo_id).await?;
        let row = match &repo {
            Some(r) => self.manifest_plain(r, &job.digest).await?,
            None => None,
        };
        let (Some(repo), Some(row)) = (repo, row) else {
            return Ok(Outcome {
                status: "FAILED",
                description: Some("the image no longer exists".into()),
                findings: None,
                sbom: None,
            });
        };
        let m = match Manifest::parse(&row.body, Some(&row.media_type)) {
            Ok(m) => m,
            Err(e) => {
                return Ok(Outcome {
                    status: "UNSUPPORTED_IMAGE",
                    description: Some(format!("the manifest cannot be scanned: {e}")),
                    findings: None,
                    sbom: None,
                })
            }
        };
        if m.kind == ManifestKind::Index {
            let mut unscanned = Vec::new();
            for c in &m.manifests {
                if self
                    .meta
                    .get_scan(job.repo_id, c.digest.as_str())
                    .await?
                    .is_none()
                {
                    unscanned.push((job.repo_id, c.digest.to_string()));
                }
            }
            self.meta.enqueue_scans(&unscanned, self.now()).await?;
            return Ok(Outcome {
                status: "UNSUPPORTED_IMAGE",
                description: Some(format!(
                    "This is an image index (manifest list); each of its {} platform images is scanned separately: describe the findings of their digests",
                    m.manifests.len()
                )),
                findings: None,
                sbom: None,
            });
        }
        let config_type = m.config.as_ref().map(|c| c.media_type.as_str());
        let is_image = matches!(
            config_type,
            Some(media::OCI_CONFIG) | Some(media::DOCKER_CONFIG)
        ) && m.artifact_type.is_none();
        if !is_image {
            return Ok(Outcome {
                status: "UNSUPPORTED_IMAGE",
                description: Some(format!(
                    "The artifact is not a container image (artifact type {}); only container images are scanned",
                    m.effective_artifact_type()
                        .or(config_type)
                        .unwrap_or("unknown")
                )),
                findings: None,
                sbom: None,
            });
        }
        let loaded = scanner.current();
        let limits = scanner.limits.clone();
        let mut keyed = VecDeque::with_capacity(m.layers.len());
        for l in &m.layers {
            let blob = self.blob_ref(&repo, l.digest.as_str()).await?;
            keyed.push_back((l.clone(), blob));
        }
        let layers = LazyLayers {
            handle: tokio::runtime::Handle::current(),
            blobs: self.blobs.clone(),
            layers: keyed,
        };
        let idx = loaded.clone();
        let started = std::time::Instant::now();
        let res =
            tokio::task::spawn_blocking(move || scan_image(layers, &idx.index, &limits)).await;
        let elapsed = started.elapsed();
        Ok(match res {
            Err(e) => Outcome {
                status: "FAILED",
                description: Some(format!("the scanner stopped unexpectedly: {e}")),
                findings: None,
                sbom: None,
            },
            Ok(Err(e)) => Outcome {
                status: "FAILED",
                description: Some(e.to_string()),
                findings: None,
                sbom: None,
            },
            Ok(Ok(report)) => {
                tracing::info!(digest = %job.digest, status = report.status.as_str(), findings = report.findings.len(), packages = report.packages.len(), ms = elapsed.as_millis() as u64, "image scanned");
                match report.status {
                    ScanStatus::Complete => Outcome {
                        status: "COMPLETE",
                        // Never a silent clean bill of health: an empty or stale
                        // database is named in the status description.
                        description: Some(
                            match crate::feeds::vulndb_warning(
                                loaded.index.len() as i64,
                                loaded.updated_at,
                                self.now(),
                                scanner.max_age.as_millis() as i64,
                            ) {
                                None => "The scan was completed successfully.".into(),
                                Some(w) => format!("The scan was completed, but {w}."),
                            },
                        ),
                        findings: Some(report_json(&report, loaded.updated_at)),
                        sbom: Some((repo, row, report.inventory())),
                    },
                    ScanStatus::UnsupportedImage => Outcome {
                        status: "UNSUPPORTED_IMAGE",
                        description: Some(
                            "No operating system or package inventory was found in the image; it cannot be scanned."
                                .into(),
                        ),
                        findings: None,
                        sbom: None,
                    },
                }
            }
        })
    }
}

/// Runs scan jobs ([`SCAN_JOB`]) on a [`crate::jobs::Worker`]. A scan that fails
/// (a store error, a key that cannot be used) is retried with backoff; once its
/// attempts are used up the job is parked and the image's scan ends FAILED.
pub struct ScanHandler {
    scanner: Arc<Scanner>,
}

impl ScanHandler {
    pub fn new(scanner: Arc<Scanner>) -> ScanHandler {
        ScanHandler { scanner }
    }

    async fn scan(&self, reg: &Registry, job: &ClaimedJob) -> Result<()> {
        let Ok(payload) = serde_json::from_str::<ScanJob>(&job.payload) else {
            tracing::warn!(
                job = job.job_id,
                "dropping a scan job with an unreadable payload"
            );
            return Ok(());
        };
        let scan: Option<ScanRow> = reg.meta.get_scan(payload.repo_id, &payload.digest).await?;
        let Some(scan) = scan else {
            return Ok(());
        };
        if let Err(e) = self.scanner.refresh(reg).await {
            tracing::warn!(error = %e, "could not reload the advisory database");
        }
        let mut o = reg.scan_manifest(&self.scanner, &payload).await?;
        if let Some((repo, row, inv)) = o.sbom.take() {
            // The scan's own result stands whatever happens to its SBOM; a failed
            // push is named in the description and logged, and the next scan tries again.
            let pushed = match reg
                .sbom_referrers_enabled(&repo, self.scanner.sbom_referrers)
                .await
            {
                Ok(false) => Ok(None),
                Ok(true) => reg.push_sbom_referrer(&repo, &row, &inv).await.map(Some),
                Err(e) => Err(e),
            };
            match pushed {
                Ok(None) => {}
                Ok(Some(p)) => {
                    tracing::info!(repository = %repo.name, digest = %row.digest, outcome = ?p, "SBOM referrer")
                }
                Err(e) => {
                    tracing::warn!(repository = %repo.name, digest = %row.digest, error = %e, "could not push the SBOM referrer");
                    let d = o.description.get_or_insert_with(String::new);
                    d.push_str(&format!(" The SBOM referrer could not be pushed: {e}."));
                }
            }
        }
        let findings = o.findings.map(|f| f.to_string());
        reg.meta
            .complete_scan(
                payload.repo_id,
                &payload.digest,
                scan.started_at,
                o.status,
                o.description.as_deref(),
                findings.as_deref(),
                reg.now(),
            )
            .await?;
        Ok(())
    }
}

impl Handler for ScanHandler {
    fn kind(&self) -> &'static str {
        SCAN_JOB
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: MAX_ATTEMPTS,
            ..RetryPolicy::default()
        }
    }

    fn run<'a>(
        &'a self,
        reg: &'a Registry,
        job: &'a ClaimedJob,
    ) -> BoxFuture<'a, std::result::Result<Finished, String>> {
        Box::pin(async move {
            match self.scan(reg, job).await {
                Ok(()) => Ok(Finished::done()),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn parked<'a>(
        &'a self,
        reg: &'a Registry,
        job: &'a ClaimedJob,
        error: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let Ok(payload) = serde_json::from_str::<ScanJob>(&job.payload) else {
                return Ok(());
            };
            let Some(scan) = reg.meta.get_scan(payload.repo_id, &payload.digest).await? else {
                return Ok(());
            };
            reg.meta
                .complete_scan(
                    payload.repo_id,
                    &payload.digest,
                    scan.started_at,
                    "FAILED",
                    Some(&format!(
                        "the scan did not finish after {MAX_ATTEMPTS} attempts: {error}"
                    )),
                    None,
                    reg.now(),
                )
                .await?;
            Ok(())
        })
    }
}

/// Reloads the advisory database every few seconds when its version changes, so
/// the first scan after an import does not wait for it.
pub async fn run_advisory_refresh(
    reg: Arc<Registry>,
    scanner: Arc<Scanner>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = scanner.refresh(&reg) => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "could not reload the advisory database");
                }
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3)) => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert!(filter_matches("prod", "team/prod-api"));
        assert!(!filter_matches("prod", "team/dev"));
        assert!(filter_matches("*", "anything"));
        assert!(filter_matches("team/*", "team/app"));
        assert!(!filter_matches("team/*", "other/team/app"));
        assert!(filter_matches("*-api", "team/prod-api"));
        assert!(!filter_matches("*-api", "team/prod-api2"));
        assert!(filter_matches("a*b*c", "aXbYc"));
        assert!(!filter_matches("a*b*c", "aXcYb"));
        assert!(filter_matches("ab*b", "abb"));
        assert!(!filter_matches("ab*b", "ab"));
    }

    #[test]
    fn rules_override_the_repository_flag() {
        assert_eq!(
            effective_scanning(None, "app", true).frequency,
            "SCAN_ON_PUSH"
        );
        assert_eq!(effective_scanning(None, "app", false).frequency, "MANUAL");
        let cfg = r#"{"scanType":"ENHANCED","rules":[
            {"scanFrequency":"SCAN_ON_PUSH","repositoryFilters":[{"filter":"*","filterType":"WILDCARD"}]},
            {"scanFrequency":"CONTINUOUS_SCAN","repositoryFilters":[{"filter":"prod","filterType":"WILDCARD"}]}]}"#;
        let e = effective_scanning(Some(cfg), "team/prod", false);
        assert_eq!(e.frequency, "CONTINUOUS_SCAN");
        assert_eq!(e.applied_filters[0]["filter"], "prod");
        assert_eq!(
            effective_scanning(Some(cfg), "dev", false).frequency,
            "SCAN_ON_PUSH"
        );
        let cfg = r#"{"scanType":"BASIC","rules":[
            {"scanFrequency":"SCAN_ON_PUSH","repositoryFilters":[{"filter":"prod-*","filterType":"WILDCARD"}]}]}"#;
        let e = effective_scanning(Some(cfg), "dev", true);
        assert_eq!(e.frequency, "MANUAL");
        assert!(!e.scan_on_push());
        assert!(
            effective_scanning(Some(r#"{"scanType":"BASIC","rules":[]}"#), "dev", true)
                .scan_on_push()
        );
    }
}

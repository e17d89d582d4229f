//! Advisory feeds: `berth vulndb sync` and the periodic `vulndb-sync` job keep the
//! advisory database current from an OSV mirror laid out like osv.dev's bucket,
//! `<base>/<ecosystem>/all.zip` (`docs/scanning.md`, "Advisory feeds").
//!
//! Per ecosystem berth scans: a conditional GET (the `ETag` and `Last-Modified`
//! of the last download, kept in a `settings` row per ecosystem, sent back as
//! `If-None-Match` / `If-Modified-Since` when the source is the same); the body is
//! streamed to a temporary file, its length checked against `Content-Length`, the
//! whole archive read and every record parsed before anything is written; then the
//! records and the ecosystem's row are written in one transaction. A failed,
//! truncated or unreadable download changes nothing. When any ecosystem changed,
//! the database version is bumped and `CONTINUOUS_SCAN` images are queued for
//! rescanning in one transaction (`Registry::bump_vulndb_version`).

use std::time::Duration;

use berth_scan::osv::Vulnerability;
use berth_scan::Ecosystem;
use berth_store::{ClaimedJob, Completion, JobRecord, RetryPolicy};
use tokio::io::AsyncWriteExt;

use crate::jobs::{BoxFuture, Finished, Handler};
use crate::Registry;

/// osv.dev's public bucket.
pub const DEFAULT_FEED: &str = "https://osv-vulnerabilities.storage.googleapis.com";
/// The job kind of the periodic sync.
pub const VULNDB_SYNC_JOB: &str = "vulndb-sync";
/// `settings` rows `vulndb.feed.<ecosystem>` hold a [`FeedState`] as JSON.
pub const FEED_SETTING_PREFIX: &str = "vulndb.feed.";
/// The OSV ecosystem directories berth fetches: those the scanner matches.
pub const FEED_ECOSYSTEMS: &[&str] = &[
    "Debian",
    "Ubuntu",
    "Alpine",
    "Wolfi",
    "Chainguard",
    "Red Hat",
    "Rocky Linux",
    "AlmaLinux",
    "PyPI",
    "npm",
    "crates.io",
    "Go",
    "Maven",
    "RubyGems",
    "Packagist",
    "NuGet",
];
/// Largest archive accepted (osv.dev's biggest, npm and PyPI, are well under this).
const MAX_ZIP_BYTES: u64 = 4 << 30;
/// Largest advisory document accepted.
const MAX_DOCUMENT_BYTES: u64 = 16 * 1024 * 1024;

/// What berth remembers of one ecosystem's feed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeedState {
    /// The base URL it was downloaded from.
    pub source: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// When its records were last written (unix ms).
    pub synced_at: i64,
    /// When the mirror was last asked (unix ms), changed or not.
    pub checked_at: i64,
    /// Records of the last download.
    pub records: u64,
}

/// What a sync did to one ecosystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedOutcome {
    /// 304: the stored copy is current.
    NotModified,
    /// 404: the mirror does not carry this ecosystem.
    Absent,
    Updated {
        records: u64,
        bytes: u64,
    },
    /// Nothing changed; why.
    Failed(String),
}

/// Progress of a sync, for the CLI's progress line.
pub enum FeedEvent<'a> {
    /// Downloading `ecosystem`: bytes so far, of `total` when known.
    Downloading {
        ecosystem: &'a str,
        bytes: u64,
        total: Option<u64>,
    },
    Finished {
        ecosystem: &'a str,
        outcome: &'a FeedOutcome,
    },
}

#[derive(Debug)]
pub struct SyncReport {
    pub source: String,
    pub outcomes: Vec<(String, FeedOutcome)>,
    /// The new database version when anything changed.
    pub version: Option<i64>,
    pub rescans: usize,
}

impl SyncReport {
    pub fn failures(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|(_, o)| matches!(o, FeedOutcome::Failed(_)))
            .count()
    }

    pub fn summary(&self) -> String {
        let mut updated = 0;
        let mut records = 0;
        let mut bytes = 0;
        let mut unchanged = 0;
        let mut absent = 0;
        for (_, o) in &self.outcomes {
            match o {
                FeedOutcome::Updated {
                    records: r,
                    bytes: b,
                } => {
                    updated += 1;
                    records += r;
                    bytes += b;
                }
                FeedOutcome::NotModified => unchanged += 1,
                FeedOutcome::Absent => absent += 1,
                FeedOutcome::Failed(_) => {}
            }
        }
        let mut s = format!(
            "synced advisories from {}: {updated} ecosystem(s) updated ({records} records, {bytes} bytes), {unchanged} unchanged, {absent} not on the mirror, {} failed",
            self.source,
            self.failures()
        );
        if let Some(v) = self.version {
            s.push_str(&format!(
                "; advisory database version {v}; {} image(s) queued for rescanning",
                self.rescans
            ));
        }
        for (e, o) in &self.outcomes {
            if let FeedOutcome::Failed(why) = o {
                s.push_str(&format!("\n{e}: {why}"));
            }
        }
        s
    }
}

/// The base URL configured by `BERTH_VULNDB_URL`: `None` for `off`.
pub fn feed_base(configured: Option<&str>) -> Option<String> {
    match configured.map(str::trim) {
        None | Some("") => Some(DEFAULT_FEED.to_string()),
        Some(s) if s.eq_ignore_ascii_case("off") => None,
        Some(s) => Some(s.trim_end_matches('/').to_string()),
    }
}

/// `<base>/<ecosystem>/all.zip`, the ecosystem percent-encoded (`Red%20Hat`).
fn archive_url(base: &str, ecosystem: &str) -> String {
    let mut e = String::new();
    for b in ecosystem.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            e.push(b as char);
        } else {
            e.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{}/{e}/all.zip", base.trim_end_matches('/'))
}

/// Splits one OSV document into (id, JSON) records of ecosystems berth scans;
/// `Err` for a document that does not parse.
fn records_of(bytes: &[u8], out: &mut Vec<(String, Vec<u8>)>) -> Result<(), String> {
    let docs = match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Array(a)) => a,
        Ok(v) => vec![v],
        Err(e) => return Err(e.to_string()),
    };
    for doc in docs {
        let body = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
        let v = Vulnerability::from_json(&body).map_err(|e| e.to_string())?;
        if v.id.is_empty() {
            return Err("record without an id".into());
        }
        let scanned = v.affected.iter().any(|a| {
            a.package
                .as_ref()
                .is_some_and(|p| Ecosystem::parse_osv(&p.ecosystem).is_some())
        });
        if scanned {
            out.push((v.id, body));
        }
    }
    Ok(())
}

/// Reads a whole downloaded archive: every entry must inflate and every JSON
/// entry must be an OSV record, or nothing of it is used.
fn read_archive(path: &std::path::Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let zip = std::fs::read(path).map_err(|e| format!("reading the download: {e}"))?;
    let mut out = Vec::new();
    let mut bad: Option<String> = None;
    berth_scan::zip::for_each_entry(&zip, MAX_DOCUMENT_BYTES, &mut |name, data| {
        if bad.is_some() || !name.ends_with(".json") {
            return;
        }
        if let Err(e) = records_of(data, &mut out) {
            bad = Some(format!("{name}: {e}"));
        }
    })
    .map_err(|e| format!("not a readable zip archive: {e}"))?;
    match bad {
        Some(b) => Err(format!("invalid advisory {b}")),
        None => Ok(out),
    }
}

fn header(resp: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A temporary file removed when dropped.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Registry {
    async fn feed_state(&self, ecosystem: &str) -> Option<FeedState> {
        let raw = self
            .meta
            .setting(&format!("{FEED_SETTING_PREFIX}{ecosystem}"))
            .await
            .ok()??;
        serde_json::from_str(&raw).ok()
    }

    /// Every ecosystem's feed state (`berth vulndb status`).
    pub async fn feed_states(
        &self,
    ) -> std::result::Result<Vec<(String, Option<FeedState>)>, crate::RegistryError> {
        let mut out = Vec::new();
        for e in FEED_ECOSYSTEMS {
            let raw = self
                .meta
                .setting(&format!("{FEED_SETTING_PREFIX}{e}"))
                .await?;
            out.push((
                e.to_string(),
                raw.and_then(|r| serde_json::from_str(&r).ok()),
            ));
        }
        Ok(out)
    }

    /// Syncs every ecosystem berth scans from the mirror at `base`.
    pub async fn sync_advisories(
        &self,
        base: &str,
        progress: &mut (dyn FnMut(FeedEvent<'_>) + Send),
    ) -> Result<SyncReport, String> {
        let base = base.trim_end_matches('/').to_string();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let mut outcomes = Vec::new();
        for eco in FEED_ECOSYSTEMS {
            let outcome = match self.sync_one(&client, &base, eco, progress).await {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(ecosystem = eco, error = %e, "advisory feed sync failed");
                    FeedOutcome::Failed(e)
                }
            };
            progress(FeedEvent::Finished {
                ecosystem: eco,
                outcome: &outcome,
            });
            outcomes.push((eco.to_string(), outcome));
        }
        let changed = outcomes
            .iter()
            .any(|(_, o)| matches!(o, FeedOutcome::Updated { .. }));
        let (mut version, mut rescans) = (None, 0);
        if changed {
            let rescan = self
                .continuous_scan_images()
                .await
                .map_err(|e| format!("listing CONTINUOUS_SCAN images: {e}"))?;
            version = Some(
                self.bump_vulndb_version(&rescan)
                    .await
                    .map_err(|e| format!("updating the database version: {e}"))?,
            );
            rescans = rescan.len();
        }
        Ok(SyncReport {
            source: base,
            outcomes,
            version,
            rescans,
        })
    }

    async fn sync_one(
        &self,
        client: &reqwest::Client,
        base: &str,
        eco: &str,
        progress: &mut (dyn FnMut(FeedEvent<'_>) + Send),
    ) -> Result<FeedOutcome, String> {
        use reqwest::header::{
            CONTENT_LENGTH, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
        };
        let prev = self.feed_state(eco).await.filter(|s| s.source == base);
        let url = archive_url(base, eco);
        let mut req = client.get(&url);
        if let Some(p) = &prev {
            if let Some(e) = &p.etag {
                req = req.header(IF_NONE_MATCH, e);
            }
            if let Some(m) = &p.last_modified {
                req = req.header(IF_MODIFIED_SINCE, m);
            }
        }
        let mut resp = req.send().await.map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_MODIFIED && prev.is_some() {
            return Ok(FeedOutcome::NotModified);
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(FeedOutcome::Absent);
        }
        if !status.is_success() {
            return Err(format!("GET {url}: HTTP {}", status.as_u16()));
        }
        let etag = header(&resp, ETAG);
        let last_modified = header(&resp, LAST_MODIFIED);
        let total = header(&resp, CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
        if total.is_some_and(|t| t > MAX_ZIP_BYTES) {
            return Err(format!("{url} is larger than {MAX_ZIP_BYTES} bytes"));
        }
        let tmp = TempFile(
            std::env::temp_dir().join(format!("berth-feed-{}.zip", uuid::Uuid::new_v4().simple())),
        );
        let mut file = tokio::fs::File::create(&tmp.0)
            .await
            .map_err(|e| format!("cannot create {}: {e}", tmp.0.display()))?;
        let mut bytes = 0u64;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("downloading {url}: {e}"))?
        {
            bytes += chunk.len() as u64;
            if bytes > MAX_ZIP_BYTES {
                return Err(format!("{url} is larger than {MAX_ZIP_BYTES} bytes"));
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| format!("writing {}: {e}", tmp.0.display()))?;
            progress(FeedEvent::Downloading {
                ecosystem: eco,
                bytes,
                total,
            });
        }
        file.flush()
            .await
            .map_err(|e| format!("writing {}: {e}", tmp.0.display()))?;
        drop(file);
        if let Some(t) = total {
            if t != bytes {
                return Err(format!("truncated download of {url}: {bytes} of {t} bytes"));
            }
        }
        let path = tmp.0.clone();
        let records = tokio::task::spawn_blocking(move || read_archive(&path))
            .await
            .map_err(|e| format!("reading the archive: {e}"))??;
        let now = self.now();
        let state = FeedState {
            source: base.to_string(),
            etag,
            last_modified,
            synced_at: now,
            checked_at: now,
            records: records.len() as u64,
        };
        let value = serde_json::to_string(&state).map_err(|e| e.to_string())?;
        let name = format!("{FEED_SETTING_PREFIX}{eco}");
        // One transaction for the ecosystem's records and its row (see put_feed).
        self.meta
            .put_feed(&records, (&name, &value), now)
            .await
            .map_err(|e| format!("storing {eco} advisories: {e}"))?;
        Ok(FeedOutcome::Updated {
            records: records.len() as u64,
            bytes,
        })
    }
}

/// The periodic `vulndb-sync` job: one row for the registry, so one node syncs
/// per interval; a failed sync is recorded and tried again at the next interval.
pub struct FeedSync {
    pub base: String,
    pub interval: Duration,
}

impl FeedSync {
    /// Ensures the job's row exists, due within one interval from now.
    pub async fn schedule(&self, reg: &Registry) -> std::result::Result<(), crate::RegistryError> {
        let due = berth_store::now_millis() + self.interval.as_millis() as i64;
        reg.meta
            .ensure_periodic_job(VULNDB_SYNC_JOB, &format!("periodic:{VULNDB_SYNC_JOB}"), due)
            .await?;
        Ok(())
    }
}

impl Handler for FeedSync {
    fn kind(&self) -> &'static str {
        VULNDB_SYNC_JOB
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: i64::MAX,
            ..RetryPolicy::default()
        }
    }

    fn run<'a>(
        &'a self,
        reg: &'a Registry,
        job: &'a ClaimedJob,
    ) -> BoxFuture<'a, std::result::Result<Finished, String>> {
        Box::pin(async move {
            let report = reg.sync_advisories(&self.base, &mut |_| {}).await;
            let now = berth_store::now_millis();
            let interval = self.interval.as_millis() as i64;
            let mut next = job.run_after.saturating_add(interval);
            if next <= now {
                next = now + interval;
            }
            let (error, outcome, detail) = match report {
                Ok(r) if r.failures() == 0 => {
                    tracing::info!("{}", r.summary());
                    (None, "ok", r.summary())
                }
                Ok(r) => {
                    tracing::warn!("{}", r.summary());
                    (Some(r.summary()), "failed", r.summary())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "advisory feed sync failed");
                    (Some(e.clone()), "failed", e)
                }
            };
            Ok(Finished {
                completion: Completion::Reschedule {
                    run_after: next,
                    error,
                },
                record: Some(JobRecord {
                    action: "berth:VulnerabilityDatabaseSync".to_string(),
                    outcome: outcome.to_string(),
                    detail,
                }),
            })
        })
    }
}

/// Default age after which the advisory database counts as out of date (three
/// days: twelve missed syncs at the default interval).
pub const DEFAULT_MAX_AGE_SECS: u64 = 3 * 86400;

/// Why scan results cannot be trusted as a clean bill of health, if they cannot:
/// the database is empty, was never updated, or is older than `max_age_ms`.
pub fn vulndb_warning(
    advisories: i64,
    updated_at: Option<i64>,
    now: i64,
    max_age_ms: i64,
) -> Option<String> {
    if advisories <= 0 {
        return Some(
            "the vulnerability database is empty: no advisories were imported, so no findings does not mean no vulnerabilities (run `berth vulndb sync` or `berth vulndb import`)"
                .to_string(),
        );
    }
    match updated_at {
        None => Some("the vulnerability database has never been updated".to_string()),
        Some(t) if now - t > max_age_ms => Some(format!(
            "the vulnerability database is out of date: last updated {} hours ago (threshold {} hours)",
            (now - t) / 3_600_000,
            max_age_ms / 3_600_000
        )),
        Some(_) => None,
    }
}

/// How current the stored advisory database is.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    pub advisories: i64,
    /// When it last changed (unix ms).
    pub updated_at: Option<i64>,
    pub now: i64,
}

impl Freshness {
    /// Seconds since the last change; `None` when it never changed.
    pub fn age_secs(&self) -> Option<i64> {
        self.updated_at.map(|t| (self.now - t).max(0) / 1000)
    }

    pub fn warning(&self, max_age_ms: i64) -> Option<String> {
        vulndb_warning(self.advisories, self.updated_at, self.now, max_age_ms)
    }
}

impl Registry {
    /// The stored advisory count and when the database last changed.
    pub async fn vulndb_freshness(&self) -> std::result::Result<Freshness, crate::RegistryError> {
        Ok(Freshness {
            advisories: self.meta.count_advisories().await?,
            updated_at: self
                .meta
                .setting(berth_store::scans::VULNDB_UPDATED_AT)
                .await?
                .and_then(|v| v.parse().ok()),
            now: self.now(),
        })
    }
}

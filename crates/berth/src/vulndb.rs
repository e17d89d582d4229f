//! `berth vulndb …`: the advisory database the scanner matches against, and the
//! scan workers `berth serve` runs.
//!
//! Advisories (OSV JSON, `ossf/osv-schema`) are stored in the metadata store, so
//! every node shares them; importing bumps a version in `settings` that every
//! server polls, and enqueues rescans of images in `CONTINUOUS_SCAN` repositories in
//! the same transaction. Like `berth admin`, this takes the same configuration as
//! `berth serve` and works while the server runs.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_registry::feeds::{FeedEvent, FeedOutcome, FeedSync, VULNDB_SYNC_JOB};
use berth_registry::jobs::{Handler, Worker, WorkerConfig};
use berth_registry::scan::{run_advisory_refresh, ScanHandler, Scanner};
use berth_registry::Registry;
use berth_scan::osv::Vulnerability;
use berth_scan::Ecosystem;
use clap::{Args, Subcommand};

use crate::Common;

/// Largest advisory document accepted (one OSV record is a few KiB; the biggest
/// real ones are well under 1 MiB).
const MAX_DOCUMENT_BYTES: u64 = 16 * 1024 * 1024;
/// Records written per transaction.
const BATCH: usize = 500;

#[derive(Args)]
pub struct VulndbArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: VulndbCmd,
}

#[derive(Subcommand)]
enum VulndbCmd {
    /// Import OSV advisories from a directory (searched recursively for *.json) or
    /// a ZIP archive (such as osv.dev's `<ecosystem>/all.zip`).
    Import { path: PathBuf },
    /// Download the advisories of every ecosystem berth scans from an OSV mirror
    /// laid out like osv.dev's bucket (`<base>/<ecosystem>/all.zip`), with
    /// conditional GETs; a failed or partial download changes nothing.
    Sync {
        /// Base URL of the mirror; default `BERTH_VULNDB_URL`, else osv.dev's bucket.
        #[arg(long)]
        source: Option<String>,
    },
    /// Print the database version, how many advisories it holds, and each
    /// ecosystem feed's record count, source and age.
    Status,
}

/// What an import read.
#[derive(Default)]
struct Tally {
    files: u64,
    records: u64,
    unsupported: u64,
    rejected: Vec<String>,
}

struct Progress {
    on: bool,
    last: std::time::Instant,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            on: std::io::stderr().is_terminal(),
            last: std::time::Instant::now(),
        }
    }

    fn show(&mut self, t: &Tally, stored: u64, force: bool) {
        if !self.on || (!force && self.last.elapsed().as_millis() < 100) {
            return;
        }
        self.last = std::time::Instant::now();
        let mut e = std::io::stderr();
        let _ = write!(
            e,
            "\rimporting advisories: {} files read, {} records, {} stored",
            t.files, t.records, stored
        );
        let _ = e.flush();
    }

    fn done(&self) {
        if self.on {
            eprintln!();
        }
    }
}

/// Splits one document into records (id, JSON), counting what it skipped.
fn records_of(origin: &str, bytes: &[u8], t: &mut Tally, out: &mut Vec<(String, Vec<u8>)>) {
    t.files += 1;
    let docs: Vec<serde_json::Value> = match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Array(a)) => a,
        Ok(v) => vec![v],
        Err(e) => {
            t.rejected.push(format!("{origin}: {e}"));
            return;
        }
    };
    for doc in docs {
        let body = match serde_json::to_vec(&doc) {
            Ok(b) => b,
            Err(e) => {
                t.rejected.push(format!("{origin}: {e}"));
                continue;
            }
        };
        let v = match Vulnerability::from_json(&body) {
            Ok(v) if !v.id.is_empty() => v,
            Ok(_) => {
                t.rejected.push(format!("{origin}: record without an id"));
                continue;
            }
            Err(e) => {
                t.rejected.push(format!("{origin}: {e}"));
                continue;
            }
        };
        let scanned = v.affected.iter().any(|a| {
            a.package
                .as_ref()
                .is_some_and(|p| Ecosystem::parse_osv(&p.ecosystem).is_some())
        });
        if !scanned {
            // Maven, NuGet, …: berth never inventories these, so storing them only
            // costs space.
            t.unsupported += 1;
            continue;
        }
        t.records += 1;
        out.push((v.id, body));
    }
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| format!("cannot read {}: {e}", d.display()))?;
        let mut names = Vec::new();
        for ent in rd {
            names.push(
                ent.map_err(|e| format!("cannot read {}: {e}", d.display()))?
                    .path(),
            );
        }
        names.sort();
        for p in names {
            let meta = std::fs::symlink_metadata(&p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() && p.extension().is_some_and(|e| e == "json") {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(())
}

async fn store(
    reg: &Registry,
    batch: &mut Vec<(String, Vec<u8>)>,
    stored: &mut u64,
) -> Result<(), String> {
    if batch.is_empty() {
        return Ok(());
    }
    reg.put_advisories(batch)
        .await
        .map_err(|e| format!("storing advisories: {e}"))?;
    *stored += batch.len() as u64;
    batch.clear();
    Ok(())
}

async fn import(reg: &Registry, path: &Path) -> Result<String, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut t = Tally::default();
    let mut p = Progress::new();
    let mut stored = 0u64;
    let mut batch = Vec::new();
    if meta.is_dir() {
        let mut files = Vec::new();
        walk(path, &mut files)?;
        for f in files {
            let len = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
            if len > MAX_DOCUMENT_BYTES {
                t.rejected.push(format!(
                    "{}: larger than {MAX_DOCUMENT_BYTES} bytes",
                    f.display()
                ));
                continue;
            }
            let bytes =
                std::fs::read(&f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            records_of(&f.display().to_string(), &bytes, &mut t, &mut batch);
            if batch.len() >= BATCH {
                store(reg, &mut batch, &mut stored).await?;
            }
            p.show(&t, stored, false);
        }
    } else {
        let zip =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut all = Vec::new();
        berth_scan::zip::for_each_entry(&zip, MAX_DOCUMENT_BYTES, &mut |name, data| {
            if name.ends_with(".json") {
                records_of(name, data, &mut t, &mut all);
            }
        })
        .map_err(|e| format!("{}: {e}", path.display()))?;
        drop(zip);
        for chunk in all.chunks(BATCH) {
            batch.extend_from_slice(chunk);
            store(reg, &mut batch, &mut stored).await?;
            p.show(&t, stored, false);
        }
    }
    store(reg, &mut batch, &mut stored).await?;
    p.show(&t, stored, true);
    p.done();
    let rescan = reg
        .continuous_scan_images()
        .await
        .map_err(|e| format!("listing CONTINUOUS_SCAN images: {e}"))?;
    let version = reg
        .bump_vulndb_version(&rescan)
        .await
        .map_err(|e| format!("updating the database version: {e}"))?;
    for r in t.rejected.iter().take(20) {
        eprintln!("skipped {r}");
    }
    if t.rejected.len() > 20 {
        eprintln!("… and {} more", t.rejected.len() - 20);
    }
    Ok(format!(
        "imported {} advisories from {} files ({} rejected, {} in ecosystems berth does not scan); advisory database version {version}; {} image(s) queued for rescanning",
        stored,
        t.files,
        t.rejected.len(),
        t.unsupported,
        rescan.len()
    ))
}

pub async fn run(args: VulndbArgs) -> Result<(), String> {
    let cfg = args.common.load()?;
    let reg = crate::serve::open_registry(&cfg).await?;
    match args.command {
        VulndbCmd::Import { path } => {
            println!("{}", import(&reg, &path).await?);
        }
        VulndbCmd::Sync { source } => {
            let base = match source {
                Some(s) => s.trim_end_matches('/').to_string(),
                None => cfg.vulndb_url.clone().ok_or(
                    "BERTH_VULNDB_URL is off: pass --source URL, or use `berth vulndb import`",
                )?,
            };
            let mut line = SyncLine::new();
            let report = reg.sync_advisories(&base, &mut |ev| line.show(ev)).await?;
            line.done();
            println!("{}", report.summary());
            if report.failures() > 0 {
                return Err(format!(
                    "{} ecosystem(s) failed to sync; their advisories are unchanged",
                    report.failures()
                ));
            }
        }
        VulndbCmd::Status => {
            let s = reg.vulndb_status().await.map_err(|e| e.to_string())?;
            println!(
                "advisory database version {}: {} advisories; {} scan job(s) pending",
                s.version.as_deref().unwrap_or("none"),
                s.advisories,
                s.pending_scans
            );
            let f = reg.vulndb_freshness().await.map_err(|e| e.to_string())?;
            if let Some(w) = f.warning(cfg.vulndb_max_age_secs as i64 * 1000) {
                println!("WARNING: {w}");
            }
            println!(
                "source: {}",
                cfg.vulndb_url
                    .as_deref()
                    .unwrap_or("off (berth vulndb import only)")
            );
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            for (eco, st) in reg.feed_states().await.map_err(|e| e.to_string())? {
                match st {
                    Some(st) => println!(
                        "  {eco}: {} records from {}, synced {} ago (checked {} ago)",
                        st.records,
                        st.source,
                        age(now - st.synced_at),
                        age(now - st.checked_at)
                    ),
                    None => println!("  {eco}: never synced"),
                }
            }
        }
    }
    Ok(())
}

/// Starts `workers` scan workers sharing one advisory index (and the task that
/// keeps it loaded); they stop when `stop` turns true.
pub fn spawn_scanning(
    registry: Arc<Registry>,
    workers: usize,
    config: WorkerConfig,
    max_age: std::time::Duration,
    sbom_referrers: bool,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut scanner = Scanner::new();
    scanner.max_age = max_age;
    scanner.sbom_referrers = sbom_referrers;
    let scanner = Arc::new(scanner);
    let handler: Arc<dyn Handler> = Arc::new(ScanHandler::new(scanner.clone()));
    let id = crate::serve::worker_id();
    let mut handles = vec![tokio::spawn(run_advisory_refresh(
        registry.clone(),
        scanner,
        stop.clone(),
    ))];
    for i in 0..workers.max(1) {
        let w = Worker::new(
            registry.clone(),
            format!("{id}/scan-{i}"),
            vec![handler.clone()],
            config,
        );
        handles.push(tokio::spawn(w.run(stop.clone())));
    }
    handles
}

/// `3d 4h`, `5m`, `12s`.
fn age(ms: i64) -> String {
    let s = (ms.max(0) / 1000) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86399 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// The CLI's progress for `vulndb sync`, on stderr: on a terminal a bar per
/// ecosystem while it downloads, redrawn in place; otherwise (a pipe, a log) one
/// plain line per ecosystem when it is done.
struct SyncLine {
    on: bool,
    last: std::time::Instant,
}

/// `[=========>          ]  45%  1234 of 2742 KiB`, or the size alone when the
/// server did not say how big the archive is.
fn progress_bar(bytes: u64, total: Option<u64>) -> String {
    const WIDTH: u64 = 30;
    match total {
        Some(t) if t > 0 => {
            let done = bytes.min(t);
            let fill = done * WIDTH / t;
            let mut bar = "=".repeat(fill as usize);
            if fill < WIDTH {
                bar.push('>');
                bar.push_str(&" ".repeat((WIDTH - fill - 1) as usize));
            }
            format!(
                "[{bar}] {:>3}%  {} of {} KiB",
                done * 100 / t,
                done / 1024,
                t / 1024
            )
        }
        _ => format!("{} KiB", bytes / 1024),
    }
}

impl SyncLine {
    fn new() -> SyncLine {
        SyncLine {
            on: std::io::stderr().is_terminal(),
            last: std::time::Instant::now(),
        }
    }

    fn show(&mut self, ev: FeedEvent<'_>) {
        let mut e = std::io::stderr();
        match ev {
            FeedEvent::Downloading {
                ecosystem,
                bytes,
                total,
            } => {
                if !self.on || self.last.elapsed().as_millis() < 100 {
                    return;
                }
                self.last = std::time::Instant::now();
                let _ = write!(e, "\r\x1b[K{ecosystem:<12} {}", progress_bar(bytes, total));
            }
            FeedEvent::Finished { ecosystem, outcome } => {
                let what = match outcome {
                    FeedOutcome::NotModified => "unchanged".to_string(),
                    FeedOutcome::Absent => "not on the mirror".to_string(),
                    FeedOutcome::Updated { records, .. } => format!("{records} records"),
                    FeedOutcome::Failed(why) => format!("failed: {why}"),
                };
                let _ = if self.on {
                    write!(e, "\r\x1b[K{ecosystem}: {what}\n")
                } else {
                    writeln!(e, "{ecosystem}: {what}")
                };
            }
        }
        let _ = e.flush();
    }

    fn done(&self) {}
}

/// The periodic advisory sync (one node at a time: one job row), unless
/// `BERTH_VULNDB_URL` is `off` or the interval is 0.
pub async fn spawn_feed_sync(
    registry: Arc<Registry>,
    cfg: &crate::config::Config,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    // Never a silent clean bill of health: say so at start.
    match registry.vulndb_freshness().await {
        Ok(f) => {
            if let Some(w) = f.warning(cfg.vulndb_max_age_secs as i64 * 1000) {
                tracing::warn!("{w}; scan results will say so");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the advisory database state"),
    }
    let (Some(base), secs) = (cfg.vulndb_url.clone(), cfg.vulndb_sync_interval_secs) else {
        return Ok(Vec::new());
    };
    if secs == 0 {
        return Ok(Vec::new());
    }
    let job = FeedSync {
        base,
        interval: std::time::Duration::from_secs(secs),
    };
    job.schedule(&registry)
        .await
        .map_err(|e| format!("cannot schedule the {VULNDB_SYNC_JOB} job: {e}"))?;
    let handler: Arc<dyn Handler> = Arc::new(job);
    let w = Worker::new(
        registry.clone(),
        format!("{}/{VULNDB_SYNC_JOB}", crate::serve::worker_id()),
        vec![handler],
        WorkerConfig {
            idle: std::time::Duration::from_secs(1),
            ..crate::serve::worker_config(cfg)
        },
    );
    Ok(vec![tokio::spawn(w.run(stop.clone()))])
}

#[cfg(test)]
mod progress_tests {
    use super::progress_bar;

    #[test]
    fn the_bar_fills_with_the_download() {
        assert_eq!(
            progress_bar(0, Some(4096)),
            format!("[>{}]   0%  0 of 4 KiB", " ".repeat(29))
        );
        assert_eq!(
            progress_bar(2048, Some(4096)),
            format!("[{}>{}]  50%  2 of 4 KiB", "=".repeat(15), " ".repeat(14))
        );
        assert_eq!(
            progress_bar(4096, Some(4096)),
            format!("[{}] 100%  4 of 4 KiB", "=".repeat(30))
        );
        // More than announced never overflows the bar.
        assert_eq!(
            progress_bar(9000, Some(4096)),
            progress_bar(4096, Some(4096))
        );
        assert_eq!(progress_bar(5 * 1024, None), "5 KiB");
        assert_eq!(progress_bar(5 * 1024, Some(0)), "5 KiB");
    }
}

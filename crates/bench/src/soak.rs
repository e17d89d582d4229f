//! `--soak MINUTES`: a long mixed run against one berth with garbage collection
//! and lifecycle passes running (docs/benchmarks.md, "Soak").
//!
//! 32 clients loop over a mix of operations on four repositories, each with a
//! lifecycle policy keeping its 20 newest images: push a new image (a unique
//! 16 KiB layer, its config, a manifest under a new tag; 30 %), pull the base
//! image (manifest, then its 1 MiB layer, digest-verified; 40 %), list (the
//! repository's tags over `/v2/`, or ECR `ListImages`; 20 %), delete one of the
//! client's earlier images by digest (10 %). Lifecycle expiries and deletions make
//! garbage the collector (every 20 s, 5 s grace) reclaims.
//!
//! Every interval the harness samples berth's resident memory (`VmRSS`) and open
//! file descriptors (`/proc/<pid>/fd`), and takes the p99 latency of the
//! operations that finished in it. The verdict: no failed operation, and memory and
//! descriptors level off — a least-squares line through the second half's samples
//! would grow by less than 10 % of their mean (descriptors: or by fewer than 8)
//! over that half.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::client::{self, read_body, Conn, Error, Result, SliceBody};
use crate::limits::pseudo_random;
use crate::load::Blob;
use crate::servers::Server;
use crate::stats;

pub const CLIENTS: usize = 32;
const REPOS: usize = 4;
const KEEP_IMAGES: usize = 20;
const LAYER: usize = 16 * 1024;
const BASE_REPO: &str = "soak/base";
/// An operation not done within this is counted as failed.
const OP_TIMEOUT: Duration = Duration::from_secs(60);

/// One sampling interval.
pub struct Sample {
    pub at_s: f64,
    pub ops: usize,
    pub errors: u64,
    pub p99_ms: Option<f64>,
    pub rss_kib: u64,
    pub fds: u64,
}

pub struct Outcome {
    pub minutes: f64,
    pub gc: bool,
    pub lifecycle: bool,
    pub clients: usize,
    pub samples: Vec<Sample>,
    pub ops_by_kind: [u64; 4],
    pub errors: u64,
    pub first_error: Option<String>,
    pub rss_growth: Growth,
    pub fd_growth: Growth,
    pub gc_runs: Option<u64>,
    pub gc_reclaimed_blobs: Option<u64>,
}

/// A least-squares line through the second half of a series.
#[derive(Debug, Clone, Copy)]
pub struct Growth {
    /// Growth of the fitted line over the half.
    pub over_half: f64,
    pub mean: f64,
    pub levels_off: bool,
}

const KINDS: [&str; 4] = ["push", "pull", "list", "delete"];

/// Fits a line through the second half of `(t, y)` and judges it.
pub fn growth(points: &[(f64, f64)], abs_slack: f64) -> Growth {
    let half = &points[points.len() / 2..];
    let n = half.len() as f64;
    if half.len() < 2 {
        return Growth {
            over_half: 0.0,
            mean: half.first().map_or(0.0, |p| p.1),
            levels_off: true,
        };
    }
    let mt = half.iter().map(|p| p.0).sum::<f64>() / n;
    let my = half.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = half.iter().map(|p| (p.0 - mt).powi(2)).sum();
    let sxy: f64 = half.iter().map(|p| (p.0 - mt) * (p.1 - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let span = half.last().unwrap().0 - half[0].0;
    let over_half = slope * span;
    Growth {
        over_half,
        mean: my,
        levels_off: over_half < (0.10 * my).max(abs_slack),
    }
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.errors == 0 && self.rss_growth.levels_off && self.fd_growth.levels_off
    }

    pub fn markdown(&self) -> String {
        let mut md = format!(
            "## Soak\n\n{:.1} minutes, {} clients (push 30 %, pull 40 %, list 20 %, delete 10 %), lifecycle (keep {KEEP_IMAGES} per repository) {} and GC {}. {} operations ({}), **{} errors**{}; GC runs {}, blobs reclaimed {}.\n\n",
            self.minutes,
            self.clients,
            if self.lifecycle { "every 20 s" } else { "off" },
            if self.gc { "every 20 s" } else { "off" },
            self.ops_by_kind.iter().sum::<u64>(),
            KINDS
                .iter()
                .zip(self.ops_by_kind)
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.errors,
            self.first_error
                .as_ref()
                .map_or(String::new(), |e| format!(" (first: {e})")),
            self.gc_runs.map_or("?".into(), |n| n.to_string()),
            self.gc_reclaimed_blobs.map_or("?".into(), |n| n.to_string()),
        );
        let _ = writeln!(
            md,
            "Second half, least-squares growth: RSS {:+.1} MiB over a mean of {:.1} MiB ({}), open fds {:+.1} over a mean of {:.1} ({}).\n",
            self.rss_growth.over_half / 1024.0,
            self.rss_growth.mean / 1024.0,
            verdict(self.rss_growth.levels_off),
            self.fd_growth.over_half,
            self.fd_growth.mean,
            verdict(self.fd_growth.levels_off),
        );
        md.push_str("| t (s) | ops | errors | p99 ms | RSS MiB | open fds |\n|---:|---:|---:|---:|---:|---:|\n");
        for s in &self.samples {
            let _ = writeln!(
                md,
                "| {:.0} | {} | {} | {} | {:.1} | {} |",
                s.at_s,
                s.ops,
                s.errors,
                s.p99_ms.map_or("-".into(), |p| format!("{p:.1}")),
                s.rss_kib as f64 / 1024.0,
                s.fds
            );
        }
        md.push('\n');
        md.push_str(&self.plot());
        md
    }

    /// ASCII plots of RSS, open fds and p99 over time.
    fn plot(&self) -> String {
        let mut out = String::new();
        let series: [(&str, Vec<f64>); 3] = [
            (
                "RSS MiB",
                self.samples
                    .iter()
                    .map(|s| s.rss_kib as f64 / 1024.0)
                    .collect(),
            ),
            (
                "open fds",
                self.samples.iter().map(|s| s.fds as f64).collect(),
            ),
            (
                "p99 ms",
                self.samples
                    .iter()
                    .map(|s| s.p99_ms.unwrap_or(0.0))
                    .collect(),
            ),
        ];
        out.push_str("```\n");
        for (name, ys) in series {
            out.push_str(&ascii_plot(name, &ys, 8));
            out.push('\n');
        }
        let end = self.samples.last().map_or(0.0, |s| s.at_s);
        let _ = writeln!(out, "x: 0 … {end:.0} s, one column per sample\n```");
        out
    }

    pub fn json(&self) -> Value {
        json!({
            "minutes": self.minutes,
            "clients": self.clients,
            "gc": self.gc,
            "lifecycle": self.lifecycle,
            "errors": self.errors,
            "first_error": self.first_error,
            "ops": KINDS.iter().zip(self.ops_by_kind).map(|(k, n)| (k.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "rss_growth_kib_over_second_half": self.rss_growth.over_half,
            "rss_levels_off": self.rss_growth.levels_off,
            "fd_growth_over_second_half": self.fd_growth.over_half,
            "fds_level_off": self.fd_growth.levels_off,
            "gc_runs": self.gc_runs,
            "gc_reclaimed_blobs": self.gc_reclaimed_blobs,
            "samples": self.samples.iter().map(|s| json!({
                "t_s": s.at_s, "ops": s.ops, "errors": s.errors, "p99_ms": s.p99_ms,
                "rss_kib": s.rss_kib, "fds": s.fds,
            })).collect::<Vec<_>>(),
        })
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "levels off"
    } else {
        "GROWS"
    }
}

/// A plot `rows` high, one column per value, y from the minimum to the maximum.
pub fn ascii_plot(name: &str, ys: &[f64], rows: usize) -> String {
    let (lo, hi) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
            (a.min(*y), b.max(*y))
        });
    if ys.is_empty() || !lo.is_finite() {
        return format!("{name}: no samples\n");
    }
    let span = (hi - lo).max(1e-9);
    let mut out = String::new();
    for r in (0..rows).rev() {
        let level = lo + span * r as f64 / (rows - 1).max(1) as f64;
        let label = if r == rows - 1 {
            format!("{hi:>9.1}")
        } else if r == 0 {
            format!("{lo:>9.1}")
        } else {
            " ".repeat(9)
        };
        let line: String = ys
            .iter()
            .map(|y| {
                let cell = ((y - lo) / span * (rows - 1) as f64).round() as usize;
                if cell == r {
                    '*'
                } else if cell > r && level >= lo {
                    '|'
                } else {
                    ' '
                }
            })
            .collect();
        let _ = writeln!(out, "{label} ┤{line}");
    }
    let _ = writeln!(out, "{:>9}  {name}", "");
    out
}

fn fd_count(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

fn repo(i: usize) -> String {
    format!("soak/r{}", i % REPOS)
}

struct Shared {
    stop: AtomicBool,
    /// (interval index, kind, latency ns) of each finished operation.
    done: Mutex<Vec<(u32, u8, u64)>>,
    errors: Mutex<Vec<(u32, String)>>,
    interval: Duration,
    start: Instant,
    pushes: AtomicU64,
}

impl Shared {
    fn slot(&self) -> u32 {
        (self.start.elapsed().as_secs_f64() / self.interval.as_secs_f64()) as u32
    }
}

/// Runs the soak against a fresh berth in `work` for `minutes`.
/// `gc` and `lifecycle` say which passes run every 20 s (the others once a day);
/// `store_env` names another metadata store (`BERTH_DATABASE_URL`), if any.
pub async fn run(
    berth_bin: &Path,
    work: &Path,
    minutes: f64,
    gc: bool,
    lifecycle: bool,
    store_env: Vec<(String, String)>,
) -> Result<Outcome> {
    let every = |on: bool| if on { "20" } else { "86400" }.to_string();
    let mut env = store_env;
    env.extend([
        ("BERTH_GC_INTERVAL_SECS".to_string(), every(gc)),
        ("BERTH_GC_GRACE_SECS".to_string(), "5".to_string()),
        (
            "BERTH_LIFECYCLE_INTERVAL_SECS".to_string(),
            every(lifecycle),
        ),
    ]);
    let server = Arc::new(
        Server::start_berth_with(berth_bin, work.join("berth"), false, "berth", env).await?,
    );
    let pid = server
        .pid()
        .ok_or_else(|| Error("berth is not running".into()))?;
    let policy = json!({"rules": [{
        "rulePriority": 1,
        "description": "keep the newest",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": KEEP_IMAGES},
        "action": {"type": "expire"}
    }]})
    .to_string();
    for r in 0..REPOS {
        let name = repo(r);
        server
            .ecr("CreateRepository", &json!({"repositoryName": name}))
            .await?;
        server
            .ecr(
                "PutLifecyclePolicy",
                &json!({"repositoryName": name, "lifecyclePolicyText": policy}),
            )
            .await?;
    }
    // The image every pull reads.
    let base_layer = Blob::new(pseudo_random(1024 * 1024, 77));
    let base_config =
        Blob::new(client::image_config(std::slice::from_ref(&base_layer.digest), 77).to_vec());
    {
        let mut c = Conn::new(server.addr, server.auth.clone());
        for b in [&base_config, &base_layer] {
            client::push_monolithic(&mut c, BASE_REPO, b.data.clone(), &b.digest).await?;
        }
        let m = client::image_manifest(&base_config.desc(), &[base_layer.desc()]);
        client::put_manifest(&mut c, BASE_REPO, "v1", m).await?;
    }
    let total = Duration::from_secs_f64(minutes * 60.0);
    let interval = Duration::from_secs_f64((total.as_secs_f64() / 30.0).clamp(1.0, 60.0));
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        done: Mutex::new(Vec::new()),
        errors: Mutex::new(Vec::new()),
        interval,
        start: Instant::now(),
        pushes: AtomicU64::new(0),
    });
    let base = Arc::new((base_layer, base_config));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let (server, shared, base) = (server.clone(), shared.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            client_loop(i, server, shared, base).await
        }));
    }
    // Sample at the end of each interval.
    let mut marks = Vec::new();
    let mut n = 1u32;
    loop {
        let due = shared.start + interval * n;
        tokio::time::sleep_until(due.into()).await;
        let rss = crate::procfs::status_kib(pid, "VmRSS").unwrap_or(0);
        marks.push((shared.start.elapsed().as_secs_f64(), rss, fd_count(pid)));
        if interval * n >= total {
            break;
        }
        n += 1;
    }
    shared.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let (gc_runs, gc_reclaimed_blobs) = gc_counters(&server).await;
    let done = std::mem::take(&mut *shared.done.lock().unwrap_or_else(|e| e.into_inner()));
    let errors = std::mem::take(&mut *shared.errors.lock().unwrap_or_else(|e| e.into_inner()));
    let mut samples = Vec::new();
    for (slot, (at_s, rss_kib, fds)) in marks.iter().enumerate() {
        let mut lat: Vec<u64> = done
            .iter()
            .filter(|d| d.0 as usize == slot)
            .map(|d| d.2)
            .collect();
        samples.push(Sample {
            at_s: *at_s,
            ops: lat.len(),
            errors: errors.iter().filter(|e| e.0 as usize == slot).count() as u64,
            p99_ms: stats::summarize(&mut lat).map(|s| s.p99_ms),
            rss_kib: *rss_kib,
            fds: *fds,
        });
    }
    let mut ops_by_kind = [0u64; 4];
    for d in &done {
        ops_by_kind[d.1 as usize] += 1;
    }
    let rss: Vec<(f64, f64)> = samples.iter().map(|s| (s.at_s, s.rss_kib as f64)).collect();
    let fds: Vec<(f64, f64)> = samples.iter().map(|s| (s.at_s, s.fds as f64)).collect();
    Ok(Outcome {
        minutes,
        gc,
        lifecycle,
        clients: CLIENTS,
        rss_growth: growth(&rss, 0.0),
        fd_growth: growth(&fds, 8.0),
        samples,
        ops_by_kind,
        errors: errors.len() as u64,
        first_error: errors.first().map(|e| e.1.clone()),
        gc_runs,
        gc_reclaimed_blobs,
    })
}

async fn gc_counters(server: &Server) -> (Option<u64>, Option<u64>) {
    let mut c = Conn::new(server.addr, None);
    let Ok(r) = c
        .send(Method::GET, "/metrics", &[], SliceBody::empty())
        .await
    else {
        return (None, None);
    };
    let Ok(body) = read_body(r).await else {
        return (None, None);
    };
    let text = String::from_utf8_lossy(&body);
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    };
    (
        get("berth_gc_runs_total"),
        get("berth_gc_reclaimed_blobs_total"),
    )
}

async fn client_loop(i: usize, server: Arc<Server>, shared: Arc<Shared>, base: Arc<(Blob, Blob)>) {
    let mut c = Conn::new(server.addr, server.auth.clone());
    let repo = repo(i);
    let mut mine: Vec<String> = Vec::new();
    let mut k = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        k += 1;
        let roll = (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64) % 10;
        let kind: u8 = match roll {
            0..=2 => 0,
            3..=6 => 1,
            7..=8 => 2,
            _ => 3,
        };
        let t = Instant::now();
        let op = async {
            match kind {
                0 => push(&mut c, &repo, &shared, i, &mut mine).await,
                1 => pull(&mut c, &base).await,
                2 if k % 2 == 0 => list_ecr(&server, &repo).await,
                2 => list(&mut c, &repo).await,
                _ => delete(&mut c, &repo, &mut mine).await,
            }
        };
        // A hung operation is a failure, not a pause in the figures.
        let r = match tokio::time::timeout(OP_TIMEOUT, op).await {
            Ok(r) => r,
            Err(_) => {
                c = Conn::new(server.addr, server.auth.clone());
                Err(Error(format!(
                    "no answer within {} s",
                    OP_TIMEOUT.as_secs()
                )))
            }
        };
        let slot = shared.slot();
        match r {
            Ok(()) => shared.done.lock().unwrap_or_else(|e| e.into_inner()).push((
                slot,
                kind,
                stats::nanos(t.elapsed()),
            )),
            Err(e) => shared
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((slot, format!("{} by client {i}: {e}", KINDS[kind as usize]))),
        }
    }
}

async fn push(
    c: &mut Conn,
    repo: &str,
    shared: &Shared,
    i: usize,
    mine: &mut Vec<String>,
) -> Result<()> {
    let n = shared.pushes.fetch_add(1, Ordering::Relaxed);
    let layer = Blob::new(pseudo_random(LAYER, 0x50a6 ^ n << 8 ^ i as u64));
    let config = Blob::new(client::image_config(std::slice::from_ref(&layer.digest), n).to_vec());
    for b in [&layer, &config] {
        client::push_monolithic(c, repo, b.data.clone(), &b.digest).await?;
    }
    let m = client::image_manifest(&config.desc(), &[layer.desc()]);
    let digest = client::sha256_digest(&m);
    client::put_manifest(c, repo, &format!("c{i}-{n}"), m).await?;
    mine.push(digest);
    Ok(())
}

async fn pull(c: &mut Conn, base: &(Blob, Blob)) -> Result<()> {
    let m = client::get_manifest(c, BASE_REPO, "v1").await?;
    let v: Value = serde_json::from_slice(&m).map_err(|e| Error(format!("manifest: {e}")))?;
    if v["layers"][0]["digest"] != base.0.digest.as_str() {
        return Err(Error("the base manifest changed".into()));
    }
    client::get_blob_verified(c, BASE_REPO, &base.0.digest, base.0.data.len() as u64).await?;
    Ok(())
}

async fn list(c: &mut Conn, repo: &str) -> Result<()> {
    let r = c
        .send(
            Method::GET,
            &format!("/v2/{repo}/tags/list?n=1000"),
            &[],
            SliceBody::empty(),
        )
        .await?;
    let status = r.status();
    let body = read_body(r).await?;
    if status != StatusCode::OK {
        return Err(Error(format!("tags/list: {status}")));
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| Error(format!("tags/list: {e}")))?;
    if v["name"] != repo {
        return Err(Error(format!("tags/list answered for {}", v["name"])));
    }
    Ok(())
}

async fn list_ecr(server: &Server, repo: &str) -> Result<()> {
    let v = server
        .ecr(
            "ListImages",
            &json!({"repositoryName": repo, "maxResults": 1000}),
        )
        .await?;
    if !v["imageIds"].is_array() {
        return Err(Error(format!("ListImages: {v}")));
    }
    Ok(())
}

/// Deletes the client's oldest image still held; one the lifecycle expired
/// already answers 404, which is as good (the image is gone either way).
async fn delete(c: &mut Conn, repo: &str, mine: &mut Vec<String>) -> Result<()> {
    if mine.is_empty() {
        return list(c, repo).await;
    }
    let digest = mine.remove(0);
    let r = c
        .send(
            Method::DELETE,
            &format!("/v2/{repo}/manifests/{digest}"),
            &[],
            SliceBody::empty(),
        )
        .await?;
    let status = r.status();
    let _ = read_body(r).await?;
    match status {
        StatusCode::ACCEPTED | StatusCode::NOT_FOUND => Ok(()),
        s => Err(Error(format!("DELETE manifest: {s}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_series_levels_off_and_a_ramp_does_not() {
        let flat: Vec<(f64, f64)> = (0..20)
            .map(|t| (t as f64, 100.0 + (t % 3) as f64))
            .collect();
        assert!(growth(&flat, 0.0).levels_off);
        let ramp: Vec<(f64, f64)> = (0..20)
            .map(|t| (t as f64, 100.0 + 5.0 * t as f64))
            .collect();
        let g = growth(&ramp, 0.0);
        assert!(!g.levels_off, "{g:?}");
        assert!((g.over_half - 45.0).abs() < 1e-6, "{g:?}");
        // Descriptors: a few more is within the slack.
        let fds: Vec<(f64, f64)> = (0..20).map(|t| (t as f64, 20.0 + (t / 4) as f64)).collect();
        assert!(growth(&fds, 8.0).levels_off);
    }

    #[test]
    fn the_plot_marks_each_sample() {
        let p = ascii_plot("x", &[1.0, 2.0, 3.0], 3);
        assert_eq!(p.matches('*').count(), 3, "{p}");
    }
}

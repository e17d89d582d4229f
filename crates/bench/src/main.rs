//! berth-bench: measures berth against the CNCF reference registry on the same
//! machine in the same run (docs/benchmarks.md), with scenarios modelled on zot's `zb`.
//!
//! `--compare` runs the full suite (under 10 minutes on 2 cores); `--smoke` runs
//! every scenario tiny and exits non-zero on any failed request or digest mismatch.
//! It installs nothing; missing prerequisites are reported with the install step.

mod client;
mod console;
mod limits;
mod load;
mod procfs;
mod pull_through;
mod replication;
mod report;
mod scale;
mod servers;
mod sink;
mod soak;
mod stats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use serde_json::json;

use client::{Conn, Error, Result};
use load::{Blob, DataSet, Stop, Task};
use report::Row;
use servers::Server;

const MIB: usize = 1024 * 1024;

#[derive(Parser, Debug)]
#[command(
    name = "berth-bench",
    about = "Benchmark berth against the CNCF reference registry"
)]
struct Cli {
    /// Run the full side-by-side comparison.
    #[arg(long, conflicts_with = "smoke")]
    compare: bool,
    /// Run every scenario tiny (seconds); fail on any request error or digest mismatch.
    #[arg(long)]
    smoke: bool,
    /// berth binary [default: target/release/berth of this workspace]
    #[arg(long, env = "BERTH_BIN")]
    berth_bin: Option<PathBuf>,
    /// Where the Markdown and JSON results go [default: target/bench of this workspace]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Parent of the servers' fresh data directories (the disk measured) [default: system temp dir]
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the servers' data directories and logs after the run.
    #[arg(long)]
    keep: bool,
    /// Skip the extra reference instance without authentication.
    #[arg(long)]
    no_noauth_reference: bool,
    /// Skip the null server (`berth-null-server`: berth's HTTP stack answering
    /// manifests from memory, the request-rate limit of the manifest scenarios)
    #[arg(long)]
    no_null_server: bool,
    /// Skip the second berth with blob encryption off (the encrypted ÷ plaintext
    /// ratios in docs/benchmarks.md, "Encryption on/off").
    #[arg(long)]
    no_plaintext_berth: bool,
    /// Run only scenarios whose key contains one of these (comma-separated), e.g.
    /// `push-stream,cold-start` (for profiling; limits always run).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Also run berth on PostgreSQL (`BERTH_TEST_POSTGRES_URL`, the admin URL of a
    /// server where the harness creates fresh databases with `psql`).
    #[arg(long)]
    with_postgres: bool,
    /// Also run berth on PostgreSQL + S3 and the reference with its `s3` driver on
    /// the same bucket (`BERTH_TEST_S3_ENDPOINT`, `_REGION`, `_BUCKET`,
    /// `_ACCESS_KEY_ID`, `_SECRET_ACCESS_KEY`, as `scripts/garage-start` exports).
    /// Needs --with-postgres.
    #[arg(long, requires = "with_postgres")]
    with_s3: bool,
    /// Alternating rounds of berth against berth (plaintext) in the blob scenarios
    /// [default: 5 with --compare, 2 with --smoke]; 1 runs each once.
    #[arg(long)]
    ab_rounds: Option<usize>,
    /// Seconds to pause before each push measurement, after the harness has
    /// synced and dropped the page cache [default: 0].
    #[arg(long)]
    settle_secs: Option<f64>,
    /// Instead of the comparison: image pushes against berth without webhooks
    /// and berth with two webhooks, in alternating rounds (sizes from --compare or
    /// --smoke), then the time until every event was delivered.
    #[arg(long)]
    webhooks: bool,
    /// Run only the replication scenario: two berth deployments, replication A→B
    /// against `skopeo sync` A→B (100 images × 10 MiB; 4 × 1 MiB with --smoke).
    #[arg(long, conflicts_with = "compare")]
    replication: bool,
    /// Images in the replication scenario.
    #[arg(long)]
    replication_images: Option<usize>,
    /// Layer size in MiB in the replication scenario.
    #[arg(long)]
    replication_mib: Option<usize>,
    /// Run only the console scenario: page latencies (Overview, repository list,
    /// image list, image detail) over registries of a few sizes seeded through
    /// the API (10/1,000, 100/10,000 and 1,000/100,000 repositories/images; 5/50
    /// with --smoke).
    #[arg(long, conflicts_with_all = ["compare", "replication"])]
    console: bool,
    /// Sizes of the console scenario as `repositories/images`, comma-separated.
    #[arg(long, value_delimiter = ',')]
    console_sizes: Vec<String>,
    /// Run only the pull-through cache scenario: a first pull through berth against
    /// a direct pull from the upstream (the reference registry), and a cached pull
    /// through berth against a direct pull from berth (a 100 MiB image of 4 layers,
    /// 3 rounds; 2 × 1 MiB, 1 round with --smoke).
    #[arg(long, conflicts_with_all = ["compare", "replication", "console"])]
    pull_through: bool,
    /// Rounds of the pull-through cache scenario.
    #[arg(long)]
    pull_through_rounds: Option<usize>,
    /// Run only the soak: MINUTES of mixed push/pull/list/delete from 32 clients
    /// against one berth with GC and lifecycle running, sampling its memory, open
    /// file descriptors and p99 latency (`soak.rs`); fails on any error or when
    /// memory or descriptors keep growing.
    #[arg(long, value_name = "MINUTES", conflicts_with_all = ["compare", "replication", "console", "pull_through"])]
    soak: Option<f64>,
    /// The periodic passes the soak runs every 20 s (`gc`, `lifecycle`; `none`
    /// for neither) [default: both].
    #[arg(long, value_delimiter = ',', requires = "soak")]
    soak_passes: Vec<String>,
    /// Run only the scale scenario (`scale.rs`): registries of each size filled
    /// through the core (`berth admin bench-fill`), page latencies of the list
    /// APIs, manifest GET, lifecycle evaluation and GC after deleting a tenth of
    /// the images (sizes 1,000, 10,000, 100,000; 200 and 1,000 with --smoke).
    #[arg(long, conflicts_with_all = ["compare", "replication", "console", "pull_through", "soak"])]
    scale: bool,
    /// Image counts of the scale scenario, comma-separated (e.g. 1000,10000,100000,1000000).
    #[arg(long, value_delimiter = ',', requires = "scale")]
    scale_sizes: Vec<usize>,
}

impl Cli {
    fn selected(&self, key: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| key.contains(o.as_str()))
    }
}

/// Sizes of one run.
#[derive(Debug, Clone)]
struct Plan {
    name: &'static str,
    rate_time: Duration,
    manifest_conns: Vec<usize>,
    mono: (usize, usize, usize),    // count, size, concurrency
    chunked: (usize, usize, usize), // count, size, concurrency
    chunk: usize,
    stream: (usize, usize), // count, size (sequential)
    /// The parallel pulls: count, size, connections, pulls of each blob.
    par: (usize, usize, usize, usize),
    mixed_time: Duration,
    mixed_clients: usize,
    cold_starts: usize,
    idle_settle: Duration,
    hash_time: Duration,
    disk_bytes: usize,
    /// Alternating rounds of berth against berth (plaintext) in blob scenarios.
    ab_rounds: usize,
    /// Pause before each push measurement (after the sync and cache drop).
    push_settle: Duration,
}

impl Plan {
    fn compare() -> Self {
        Plan {
            name: "compare",
            rate_time: Duration::from_secs(4),
            manifest_conns: vec![1, 16, 64],
            mono: (200, MIB, 4),
            chunked: (20, 10 * MIB, 4),
            chunk: MIB,
            stream: (2, 256 * MIB),
            par: (8, 64 * MIB, 8, 4),
            mixed_time: Duration::from_secs(8),
            mixed_clients: 32,
            cold_starts: 5,
            idle_settle: Duration::from_secs(2),
            hash_time: Duration::from_secs(1),
            disk_bytes: 1024 * MIB,
            ab_rounds: 5,
            push_settle: Duration::ZERO,
        }
    }

    fn smoke() -> Self {
        Plan {
            name: "smoke",
            rate_time: Duration::from_millis(150),
            manifest_conns: vec![1, 16, 64],
            mono: (4, MIB, 2),
            chunked: (2, 3 * MIB, 2),
            chunk: MIB,
            stream: (1, 4 * MIB),
            par: (2, 4 * MIB, 2, 2),
            mixed_time: Duration::from_millis(400),
            mixed_clients: 32,
            cold_starts: 1,
            idle_settle: Duration::from_millis(200),
            hash_time: Duration::from_millis(50),
            disk_bytes: 16 * MIB,
            ab_rounds: 2,
            push_settle: Duration::ZERO,
        }
    }
}

fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A pseudo-random blob of `len` bytes, distinct per `seed` and `nonce`.
fn random_blob(len: usize, seed: u64, nonce: u64) -> Blob {
    Blob::new(limits::pseudo_random(len, seed ^ nonce))
}

/// The template the 1 MiB monolithic layers are made from.
fn mono_template(nonce: u64) -> Vec<u8> {
    limits::pseudo_random(MIB, 5 ^ nonce)
}

/// The blobs the push task `task` writes (empty for other tasks).
fn push_blobs(plan: &Plan, task: Task, template: &[u8], nonce: u64) -> Vec<Blob> {
    match task {
        Task::PushMono => (0..plan.mono.0)
            .map(|i| Blob::new(load::unique_layer(template, nonce, i)))
            .collect(),
        Task::PushChunked => (0..plan.chunked.0)
            .map(|i| random_blob(plan.chunked.1, 1000 + i as u64, nonce))
            .collect(),
        Task::PushStream => (0..plan.stream.0)
            .map(|i| random_blob(plan.stream.1, 2000 + i as u64, nonce))
            .collect(),
        Task::PushPar => (0..plan.par.0)
            .map(|i| random_blob(plan.par.1, 4000 + i as u64, nonce))
            .collect(),
        _ => Vec::new(),
    }
}

fn build_data(plan: &Plan, nonce: u64) -> DataSet {
    let blob = |len: usize, seed: u64| random_blob(len, seed, nonce);
    let pull_layers: Vec<Blob> = (0..8).map(|i| blob(4096, 100 + i)).collect();
    let digests: Vec<String> = pull_layers.iter().map(|b| b.digest.clone()).collect();
    let pull_config = Blob::new(client::image_config(&digests, nonce).to_vec());
    let template = mono_template(nonce);
    let mono = push_blobs(plan, Task::PushMono, &template, nonce);
    let chunked = push_blobs(plan, Task::PushChunked, &template, nonce);
    let stream = push_blobs(plan, Task::PushStream, &template, nonce);
    let par = push_blobs(plan, Task::PushPar, &template, nonce);
    let mixed_layer = blob(MIB, 3000);
    let mixed_config =
        Blob::new(client::image_config(std::slice::from_ref(&mixed_layer.digest), nonce).to_vec());
    DataSet {
        nonce,
        pull_config,
        pull_layers,
        mono,
        chunked,
        chunk_size: plan.chunk,
        stream,
        par,
        mixed_config,
        mixed_layer,
        mixed_template: bytes::Bytes::from(template),
    }
}

/// Untimed setup: the images the pull and mixed scenarios read (on the null
/// server, the manifest only: it serves nothing else).
async fn seed(server: &Server, d: &DataSet) -> Result<()> {
    let mut c = Conn::new(server.addr, server.auth.clone());
    if server.kind == servers::Kind::Null {
        let layers: Vec<(String, u64)> = d.pull_layers.iter().map(Blob::desc).collect();
        let m = client::image_manifest(&d.pull_config.desc(), &layers);
        return client::put_manifest(&mut c, load::REPO_PULL, "v1", m).await;
    }
    for b in std::iter::once(&d.pull_config).chain(&d.pull_layers) {
        client::push_monolithic(&mut c, load::REPO_PULL, b.data.clone(), &b.digest).await?;
    }
    let layers: Vec<(String, u64)> = d.pull_layers.iter().map(Blob::desc).collect();
    let m = client::image_manifest(&d.pull_config.desc(), &layers);
    client::put_manifest(&mut c, load::REPO_PULL, "v1", m).await?;
    for b in [&d.mixed_config, &d.mixed_layer] {
        client::push_monolithic(&mut c, load::REPO_MIXED, b.data.clone(), &b.digest).await?;
    }
    let m = client::image_manifest(&d.mixed_config.desc(), &[d.mixed_layer.desc()]);
    client::put_manifest(&mut c, load::REPO_MIXED, "base", m).await?;
    Ok(())
}

/// Untimed: manifests referencing pushed blobs, so they are part of an image.
async fn tag_pushed(server: &Server, repo: &str, blobs: &[Blob], d: &DataSet) -> Result<()> {
    if blobs.is_empty() {
        return Ok(());
    }
    let mut c = Conn::new(server.addr, server.auth.clone());
    let digests: Vec<String> = blobs.iter().map(|b| b.digest.clone()).collect();
    let config = Blob::new(client::image_config(&digests, d.nonce).to_vec());
    client::push_monolithic(&mut c, repo, config.data.clone(), &config.digest).await?;
    let layers: Vec<(String, u64)> = blobs.iter().map(Blob::desc).collect();
    client::put_manifest(
        &mut c,
        repo,
        "bench",
        client::image_manifest(&config.desc(), &layers),
    )
    .await
}

struct Scenario {
    key: String,
    title: String,
    conns: usize,
    task: Task,
    stop: Stop,
    unit: &'static str,
}

struct Run {
    rows: Vec<Row>,
    failures: Vec<String>,
    memory_method: &'static str,
}

impl Run {
    /// Records the median of several rounds of one scenario on one server, with
    /// every round's value and the errors of all of them (nothing for no rounds).
    fn record_median(&mut self, rows: Vec<(Row, Option<String>)>) {
        let values: Vec<f64> = rows.iter().map(|(r, _)| r.value).collect();
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let Some(&median) = sorted.get(sorted.len() / 2) else {
            return;
        };
        let errors: u64 = rows.iter().map(|(r, _)| r.errors).sum();
        let first_error = rows.iter().find_map(|(_, e)| e.clone());
        if let Some((mut row, _)) = rows.into_iter().find(|(r, _)| r.value == median) {
            row.errors = errors;
            row.rounds = values;
            self.record(row, first_error);
        }
    }

    fn record(&mut self, row: Row, first_error: Option<String>) {
        eprintln!(
            "  {:<34} {:<20} {:>10.2} {:<6} p99 {:>8} ms  rss {:>7} MiB  cpu {:>6} s  errors {}",
            row.title,
            row.server,
            row.value,
            row.unit,
            row.latency
                .map_or("-".into(), |l| format!("{:.2}", l.p99_ms)),
            row.peak_rss_kib
                .map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
            row.server_cpu_s.map_or("-".into(), |c| format!("{c:.2}")),
            row.errors
        );
        if row.errors > 0 {
            self.failures.push(format!(
                "{} on {}: {} failed ({})",
                row.title,
                row.server,
                row.errors,
                first_error.unwrap_or_default()
            ));
        }
        self.rows.push(row);
    }
}

async fn measure(run: &mut Run, server: &Server, s: &Scenario, data: &Arc<DataSet>, plan: &Plan) {
    match measure_row(server, s, data, plan.push_settle).await {
        Ok((row, first_error, method)) => {
            run.memory_method = method;
            run.record(row, first_error)
        }
        Err(e) => run.failures.push(e),
    }
}

/// Runs the scenario `rounds` times on each of `pair` (berth and berth with blob
/// encryption off), alternating which goes first, each push round on fresh blobs
/// (the last on `data`, which the pulls read); records each server's median round.
/// One pass each is too noisy on a small shared machine to bound a 10 % difference.
async fn measure_ab(
    run: &mut Run,
    pair: [&Server; 2],
    s: &Scenario,
    data: &Arc<DataSet>,
    plan: &Plan,
    rounds: usize,
) {
    let mut per: [Vec<(Row, Option<String>)>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        let d = if round + 1 == rounds {
            data.clone()
        } else {
            Arc::new(fresh_push_data(data, plan, s.task, round as u64 + 1))
        };
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            match measure_row(pair[i], s, &d, plan.push_settle).await {
                Ok((row, first_error, method)) => {
                    run.memory_method = method;
                    per[i].push((row, first_error));
                }
                Err(e) => run.failures.push(e),
            }
        }
    }
    for rows in per {
        run.record_median(rows);
    }
}

/// A copy of `data` whose blobs for `task` (a push) are new, so a repeated push
/// writes as much as the first instead of finding its blobs stored.
fn fresh_push_data(data: &DataSet, plan: &Plan, task: Task, round: u64) -> DataSet {
    let mut d = data.clone();
    let nonce = data.nonce ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let template = if task == Task::PushMono {
        mono_template(nonce)
    } else {
        Vec::new()
    };
    let fresh = push_blobs(plan, task, &template, nonce);
    match task {
        Task::PushMono => d.mono = fresh,
        Task::PushChunked => d.chunked = fresh,
        Task::PushStream => d.stream = fresh,
        Task::PushPar => d.par = fresh,
        // New layers and new tags come from the nonce.
        Task::PushImage => d.nonce = nonce,
        _ => {}
    }
    d
}

async fn measure_row(
    server: &Server,
    s: &Scenario,
    data: &Arc<DataSet>,
    settle: Duration,
) -> std::result::Result<(Row, Option<String>, &'static str), String> {
    let Some(pid) = server.pid() else {
        return Err(format!("{}: {} is not running", s.title, server.name));
    };
    if matches!(
        s.task,
        Task::PushMono | Task::PushChunked | Task::PushStream | Task::PushPar | Task::PushImage
    ) {
        // Untimed: write back every dirty page first, so no push pays for the
        // writeback of whatever ran before it (another server's push included),
        // and drop the clean page cache (when root may), so every push starts
        // with the same free memory. On this machine's VM, page cache grown past
        // ~2 GB needs guest memory the host has not backed, and writing into it
        // runs at ~330 MiB/s instead of ~1.6 GB/s: without the drop, whichever
        // server pushed later measured the host's page faults, not itself.
        let _ = tokio::task::spawn_blocking(|| {
            // SAFETY: sync(2) takes no arguments and cannot fail.
            unsafe { libc::sync() };
            let _ = std::fs::write("/proc/sys/vm/drop_caches", "1");
        })
        .await;
        tokio::time::sleep(settle).await;
    }
    let meter = procfs::PeakMeter::start(pid);
    let method = meter.method();
    let cpu0 = procfs::cpu_seconds(Some(pid)).ok();
    let self0 = procfs::cpu_seconds(None).ok();
    let mut out = load::run(
        server.addr,
        server.auth.clone(),
        s.conns,
        s.task,
        s.stop,
        data.clone(),
    )
    .await;
    let cpu1 = procfs::cpu_seconds(Some(pid)).ok();
    let self1 = procfs::cpu_seconds(None).ok();
    let secs = out.elapsed.as_secs_f64().max(1e-9);
    let value = match s.unit {
        "MiB/s" => out.bytes as f64 / MIB as f64 / secs,
        _ => out.ops as f64 / secs,
    };
    let mut row = Row::new(&s.key, &s.title, server.name, value, s.unit);
    row.ops = out.ops;
    row.errors = out.errors;
    row.seconds = secs;
    row.latency = stats::summarize(&mut out.latencies_ns);
    row.peak_rss_kib = meter.finish();
    row.server_cpu_s = cpu0.zip(cpu1).map(|(a, b)| b - a);
    row.harness_cpu_s = self0.zip(self1).map(|(a, b)| b - a);
    Ok((row, out.first_error, method))
}

/// The read limit of a pull scenario: `berth-sendfile-server` serving the same
/// blobs from the page cache to the same client, as many rounds as the A/B pairs
/// (median recorded).
async fn measure_read_limit(
    run: &mut Run,
    base: &Path,
    auth: &str,
    sc: &Scenario,
    data: &Arc<DataSet>,
    plan: &Plan,
) -> Result<()> {
    let bin = sibling_bin("berth-sendfile-server")?;
    let server =
        Server::start_sendfile(&bin, base.join("read-limit"), auth, data.par.clone()).await?;
    let mut rows = Vec::new();
    for _ in 0..plan.ab_rounds.max(1) {
        match measure_row(&server, sc, data, plan.push_settle).await {
            Ok((row, first_error, _)) => rows.push((row, first_error)),
            Err(e) => return Err(Error(e)),
        }
    }
    run.record_median(rows);
    Ok(())
}

/// Which extra servers a scenario also runs against.
#[derive(Debug, Clone, Copy)]
struct Also {
    /// The reference without auth (request-rate scenarios).
    noauth: bool,
    /// The null server (manifest GET and HEAD only: all it serves).
    null: bool,
    /// berth with blob encryption off (blob pushes and pulls: encryption's cost).
    plaintext: bool,
}

const MANIFEST: Also = Also {
    noauth: true,
    null: true,
    plaintext: false,
};
const RATE: Also = Also {
    noauth: true,
    null: false,
    plaintext: false,
};
const BLOB: Also = Also {
    noauth: false,
    null: false,
    plaintext: true,
};
/// The parallel pulls: also the reference without auth (the comparison asked for).
const PAR: Also = Also {
    noauth: true,
    null: false,
    plaintext: true,
};

fn scenarios(plan: &Plan) -> Vec<(Scenario, Also)> {
    let mut v = Vec::new();
    for (task, verb) in [(Task::HeadManifest, "HEAD"), (Task::GetManifest, "GET")] {
        for &c in &plan.manifest_conns {
            v.push((
                Scenario {
                    key: format!("manifest-{}-c{c}", verb.to_lowercase()),
                    title: format!("manifest {verb} by tag, {c} conns"),
                    conns: c,
                    task,
                    stop: Stop::For(plan.rate_time),
                    unit: "req/s",
                },
                MANIFEST,
            ));
        }
    }
    v.push((
        Scenario {
            key: "blob-head-c64".into(),
            title: "blob HEAD, 64 conns".into(),
            conns: 64,
            task: Task::HeadBlob,
            stop: Stop::For(plan.rate_time),
            unit: "req/s",
        },
        RATE,
    ));
    let size = |b: usize| format!("{} MiB", b / MIB);
    let pushes = [
        (
            Task::PushMono,
            Task::PullMono,
            "mono-1m",
            plan.mono.0,
            plan.mono.1,
            plan.mono.2,
            "monolithic",
        ),
        (
            Task::PushChunked,
            Task::PullChunked,
            "chunked-10m",
            plan.chunked.0,
            plan.chunked.1,
            plan.chunked.2,
            "chunked",
        ),
        (
            Task::PushStream,
            Task::PullStream,
            "stream-256m",
            plan.stream.0,
            plan.stream.1,
            1,
            "streamed",
        ),
    ];
    for (push, pull, key, n, sz, conc, how) in pushes {
        v.push((
            Scenario {
                key: format!("push-{key}"),
                title: format!("push {n}× {} {how}, {conc} conns", size(sz)),
                conns: conc,
                task: push,
                stop: Stop::Count(n),
                unit: "MiB/s",
            },
            BLOB,
        ));
        v.push((
            Scenario {
                key: format!("pull-{key}"),
                title: format!("pull {n}× {} verified, {conc} conns", size(sz)),
                conns: conc,
                task: pull,
                stop: Stop::Count(n),
                unit: "MiB/s",
            },
            BLOB,
        ));
    }
    // Parallel pulls of large blobs, digests verified on blocking threads: the
    // client is not the bottleneck; measured against the read limit (a sendfile
    // server, `sendfile_server.rs`) and the reference without auth.
    let (n, sz, conc, repeat) = plan.par;
    let key = format!("par-{}m", sz / MIB);
    v.push((
        Scenario {
            key: format!("push-{key}"),
            title: format!("push {n}× {} monolithic, {conc} conns", size(sz)),
            conns: conc,
            task: Task::PushPar,
            stop: Stop::Count(n),
            unit: "MiB/s",
        },
        PAR,
    ));
    v.push((
        Scenario {
            key: format!("pull-{key}"),
            title: format!(
                "pull {n}× {} ×{repeat} parallel, hashed off-thread, {conc} conns",
                size(sz)
            ),
            conns: conc,
            task: Task::PullPar,
            stop: Stop::Count(n * repeat),
            unit: "MiB/s",
        },
        PAR,
    ));
    v.push((
        Scenario {
            key: "mixed-80-20-c32".into(),
            title: format!("mixed 80% pull / 20% push, {} clients", plan.mixed_clients),
            conns: plan.mixed_clients,
            task: Task::Mixed,
            stop: Stop::For(plan.mixed_time),
            unit: "req/s",
        },
        RATE,
    ));
    v
}

/// The extra store configurations asked for (`--with-postgres`, `--with-s3`).
fn extra_stores(cli: &Cli, nonce: u64) -> Result<servers::ExtraStores> {
    let var = |k: &str| -> Result<String> {
        std::env::var(k)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error(format!("{k} is not set (see --help)")))
    };
    let postgres_url = if cli.with_postgres {
        Some(var("BERTH_TEST_POSTGRES_URL")?)
    } else {
        None
    };
    let s3 = if cli.with_s3 {
        Some(servers::S3Target {
            endpoint: var("BERTH_TEST_S3_ENDPOINT")?,
            region: var("BERTH_TEST_S3_REGION")?,
            bucket: var("BERTH_TEST_S3_BUCKET")?,
            access_key_id: var("BERTH_TEST_S3_ACCESS_KEY_ID")?,
            secret_access_key: var("BERTH_TEST_S3_SECRET_ACCESS_KEY")?,
            prefix: format!("bench-{nonce:x}"),
        })
    } else {
        None
    };
    Ok(servers::ExtraStores { postgres_url, s3 })
}

fn meta_line(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

fn reference_version() -> String {
    std::process::Command::new("docker-registry")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// `berth-null-server`, built beside this harness (`cargo build --release -p
/// berth-bench` builds both).
fn null_server_bin() -> Result<PathBuf> {
    sibling_bin("berth-null-server")
}

/// A binary built beside this harness (`cargo build --release -p berth-bench`).
fn sibling_bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Error(format!("own path: {e}")))?;
    let bin = exe.with_file_name(name);
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(Error(format!(
            "{} not found: build it with `cargo build --release -p berth-bench` (or pass --no-null-server)",
            bin.display()
        )))
    }
}

async fn bench(cli: &Cli, plan: &Plan) -> Result<(Run, serde_json::Value)> {
    let berth_bin = berth_bin_of(cli);
    let missing = servers::check_prerequisites(&berth_bin);
    if !missing.is_empty() {
        return Err(Error(format!(
            "missing prerequisites (berth-bench installs nothing):\n  - {}",
            missing.join("\n  - ")
        )));
    }
    let started = Instant::now();
    let self_cpu0 = procfs::cpu_seconds(None)?;
    let base = cli
        .work_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("berth-bench-{}-{}", std::process::id(), unix_now()));
    std::fs::create_dir_all(&base).map_err(|e| Error(format!("create {}: {e}", base.display())))?;
    let mut run = Run {
        rows: Vec::new(),
        failures: Vec::new(),
        memory_method: "",
    };

    eprintln!(
        "berth-bench {}: measuring physical limits in {}",
        plan.name,
        base.display()
    );
    let lim = limits::measure(&base, plan.hash_time, plan.disk_bytes)
        .map_err(|e| Error(format!("disk probe in {}: {e}", base.display())))?;
    for (key, title, v) in [
        ("limit-sha256", "SHA-256, 1 core (ring)", lim.sha256_mib_s),
        (
            "limit-disk-write",
            "disk write + fsync",
            lim.disk_write_mib_s,
        ),
        (
            "limit-disk-read",
            "disk read, cache dropped",
            lim.disk_read_mib_s,
        ),
    ] {
        run.record(Row::new(key, title, report::MACHINE, v, "MiB/s"), None);
    }

    eprintln!("generating test data");
    let nonce = unix_now() ^ u64::from(std::process::id()) << 32;
    let data = Arc::new(
        tokio::task::spawn_blocking({
            let plan = plan.clone();
            move || build_data(&plan, nonce)
        })
        .await
        .map_err(|e| Error(format!("data generation: {e}")))?,
    );

    eprintln!("starting servers");
    let berth = Server::start_berth(&berth_bin, base.join("berth"), false).await?;
    let auth = berth
        .auth
        .clone()
        .ok_or_else(|| Error("berth gave no token".into()))?;
    let mut servers = vec![berth];
    if !cli.no_plaintext_berth {
        servers.push(Server::start_berth(&berth_bin, base.join("berth-plaintext"), true).await?);
    }
    servers.push(Server::start_reference(base.join("reference"), Some(&auth)).await?);
    if !cli.no_noauth_reference {
        servers.push(Server::start_reference(base.join("reference-noauth"), None).await?);
    }
    if !cli.no_null_server {
        let null_bin = null_server_bin()?;
        servers.push(Server::start_null(&null_bin, base.join("null"), &auth).await?);
    }
    let extra = extra_stores(cli, nonce)?;
    let mut databases = servers::Databases::new(extra.postgres_url.as_deref().unwrap_or(""));
    if extra.postgres_url.is_some() {
        let db = format!("berth_bench_{}", nonce & 0xffff_ffff);
        let url = databases.create(&db)?;
        let env = vec![("BERTH_DATABASE_URL".to_string(), url)];
        servers.push(
            Server::start_berth_on(&berth_bin, base.join("berth-pg"), report::BERTH_PG, env)
                .await?,
        );
        if let Some(s3) = &extra.s3 {
            let db = format!("berth_bench_s3_{}", nonce & 0xffff_ffff);
            let url = databases.create(&db)?;
            let env = vec![
                ("BERTH_DATABASE_URL".to_string(), url),
                (
                    "BERTH_BLOB_STORE".to_string(),
                    format!("s3://{}/{}/berth", s3.bucket, s3.prefix),
                ),
                ("BERTH_S3_ENDPOINT".to_string(), s3.endpoint.clone()),
                ("BERTH_S3_REGION".to_string(), s3.region.clone()),
                (
                    "BERTH_S3_ACCESS_KEY_ID".to_string(),
                    s3.access_key_id.clone(),
                ),
                (
                    "BERTH_S3_SECRET_ACCESS_KEY".to_string(),
                    s3.secret_access_key.clone(),
                ),
            ];
            servers.push(
                Server::start_berth_on(
                    &berth_bin,
                    base.join("berth-pg-s3"),
                    report::BERTH_PG_S3,
                    env,
                )
                .await?,
            );
            servers.push(
                Server::start_reference_s3(
                    base.join("reference-s3"),
                    &auth,
                    s3,
                    report::REFERENCE_S3,
                )
                .await?,
            );
        }
    }

    eprintln!("scenario 6: cold start and idle memory");
    let cold = cli.selected("cold-start") || cli.selected("idle-memory");
    let plaintext = |s: &Server| matches!(s.kind, servers::Kind::Berth { plaintext: true });
    let null = |s: &Server| s.kind == servers::Kind::Null;
    for s in servers
        .iter_mut()
        .filter(|s| cold && !plaintext(s) && !null(s))
    {
        let mut ms = Vec::new();
        let mut samples = Vec::new();
        for _ in 0..plan.cold_starts {
            let d = s.restart().await?;
            ms.push(d.as_secs_f64() * 1e3);
            samples.push(stats::nanos(d));
        }
        let mut row = Row::new(
            "cold-start",
            "cold start → first served request",
            s.name,
            stats::median(&mut ms).unwrap_or(0.0),
            "ms",
        );
        row.ops = samples.len() as u64;
        row.latency = stats::summarize(&mut samples);
        run.record(row, None);
        tokio::time::sleep(plan.idle_settle).await;
        let pid = s
            .pid()
            .ok_or_else(|| Error(format!("{} not running", s.name)))?;
        let rss = procfs::status_kib(pid, "VmRSS")?;
        let mut row = Row::new(
            "idle-memory",
            "idle memory (VmRSS)",
            s.name,
            rss as f64 / 1024.0,
            "MiB",
        );
        row.peak_rss_kib = procfs::status_kib(pid, "VmHWM").ok();
        run.record(row, None);
    }

    for s in &servers {
        seed(s, &data)
            .await
            .map_err(|e| Error(format!("seeding {}: {e}", s.name)))?;
    }

    let mut conns_of = std::collections::HashMap::new();
    for (sc, also) in scenarios(plan) {
        conns_of.insert(sc.key.clone(), sc.conns);
        // A pull reads what its push wrote, so selecting a pull runs the push too.
        let pull_of_push = sc.key.replace("push-", "pull-");
        let wanted =
            cli.selected(&sc.key) || (sc.key.starts_with("push-") && cli.selected(&pull_of_push));
        if !wanted {
            continue;
        }
        eprintln!("scenario: {}", sc.title);
        let runs_on = |s: &Server| match s.kind {
            servers::Kind::Reference { auth: false } => also.noauth,
            servers::Kind::Null => also.null,
            servers::Kind::Berth { plaintext: true } => also.plaintext,
            _ => true,
        };
        let berths: Vec<&Server> = servers
            .iter()
            .filter(|s| matches!(s.kind, servers::Kind::Berth { .. }))
            .collect();
        if also.plaintext && plan.ab_rounds > 1 && berths.len() == 2 {
            measure_ab(
                &mut run,
                [berths[0], berths[1]],
                &sc,
                &data,
                plan,
                plan.ab_rounds,
            )
            .await;
            for s in servers
                .iter()
                .filter(|s| runs_on(s) && !matches!(s.kind, servers::Kind::Berth { .. }))
            {
                measure(&mut run, s, &sc, &data, plan).await;
            }
        } else {
            for s in servers.iter().filter(|s| runs_on(s)) {
                measure(&mut run, s, &sc, &data, plan).await;
            }
        }
        if sc.task == Task::PullPar {
            // The read limit in the same minutes: the same client and blobs
            // against a server that only sendfile()s them from the page cache.
            if let Err(e) = measure_read_limit(&mut run, &base, &auth, &sc, &data, plan).await {
                run.failures.push(format!("read limit: {e}"));
            }
        }
        for s in servers.iter().filter(|s| runs_on(s)) {
            let tagged = match sc.task {
                Task::PushMono => tag_pushed(s, load::REPO_MONO, &data.mono, &data).await,
                Task::PushChunked => tag_pushed(s, load::REPO_CHUNKED, &data.chunked, &data).await,
                Task::PushStream => tag_pushed(s, load::REPO_STREAM, &data.stream, &data).await,
                Task::PushPar => tag_pushed(s, load::REPO_PAR, &data.par, &data).await,
                _ => Ok(()),
            };
            if let Err(e) = tagged {
                if !matches!(s.kind, servers::Kind::Reference { auth: false }) {
                    run.failures
                        .push(format!("tagging pushed blobs on {}: {e}", s.name));
                }
            }
        }
    }

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let read_limits: std::collections::HashMap<String, f64> = run
        .rows
        .iter()
        .filter(|r| r.server == report::READ_LIMIT)
        .map(|r| (r.key.clone(), r.value))
        .collect();
    for r in run.rows.iter_mut() {
        if r.unit == "MiB/s" && r.server != report::MACHINE {
            let conns = conns_of.get(&r.key).copied().unwrap_or(1);
            let limit = if let Some(&l) = read_limits.get(&r.key) {
                l
            } else if r.key.starts_with("push-") {
                lim.push(conns, cpus)
            } else {
                lim.pull(conns, cpus)
            };
            r.limit_fraction = Some(r.value / limit);
        }
    }

    let server_cpu: f64 = run.rows.iter().filter_map(|r| r.server_cpu_s).sum();
    let harness_cpu: f64 = run.rows.iter().filter_map(|r| r.harness_cpu_s).sum();
    let meta = json!({
        "mode": plan.name,
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "date_unix": unix_now(),
        "date_utc": report::utc_timestamp(unix_now()),
        "cpu": meta_line("/proc/cpuinfo", "model name"),
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).ok(),
        "berth_bin": berth_bin.display().to_string(),
        "reference": reference_version(),
        "peak_memory_method": run.memory_method,
        "limits_mib_s": {
            "sha256": lim.sha256_mib_s, "disk_write_fsync": lim.disk_write_mib_s,
            "disk_read": lim.disk_read_mib_s, "page_cache_dropped": lim.cache_dropped,
            "push_limit_1_conn": lim.push(1, 1), "pull_limit_1_conn": lim.pull(1, 1),
        },
        "harness_cpu_s_in_scenarios": harness_cpu,
        "server_cpu_s_in_scenarios": server_cpu,
        "harness_cpu_share": if harness_cpu + server_cpu > 0.0 { harness_cpu / (harness_cpu + server_cpu) } else { 0.0 },
        "harness_cpu_s_total": procfs::cpu_seconds(None).map(|c| c - self_cpu0).ok(),
        "wall_s": started.elapsed().as_secs_f64(),
    });
    drop(servers);
    drop(databases);
    if !cli.keep {
        if let Some(s3) = &extra.s3 {
            s3.remove_prefix();
        }
        if let Err(e) = std::fs::remove_dir_all(&base) {
            eprintln!("warning: could not remove {}: {e}", base.display());
        }
    } else {
        eprintln!("kept server directories and logs in {}", base.display());
    }
    Ok((run, meta))
}

/// The webhook cost: the same image pushes (a new 1 MiB layer and a manifest
/// under a new tag, one "ECR Image Action" event each) against berth without
/// webhooks and berth with two webhooks to a local receiver that answers at once,
/// in alternating rounds; then, untimed, the wait until the receiver has every
/// event on both webhooks (delivery is asynchronous: the pushes do not wait).
async fn bench_webhooks(cli: &Cli, plan: &Plan) -> Result<(Run, serde_json::Value)> {
    let berth_bin = berth_bin_of(cli);
    if !berth_bin.is_file() {
        return Err(Error(format!(
            "berth binary {} not found: run `cargo build --release -p berth` (or pass --berth-bin / BERTH_BIN)",
            berth_bin.display()
        )));
    }
    let started = Instant::now();
    let base = cli
        .work_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("berth-bench-{}-{}", std::process::id(), unix_now()));
    std::fs::create_dir_all(&base).map_err(|e| Error(format!("create {}: {e}", base.display())))?;
    let mut run = Run {
        rows: Vec::new(),
        failures: Vec::new(),
        memory_method: "",
    };
    let sink = sink::Sink::start().await?;
    let config = base.join("webhooks.toml");
    let mut toml = String::new();
    for name in ["a", "b"] {
        toml.push_str(&format!(
            "[[webhook]]\nname = \"bench-{name}\"\nurl = \"http://{}/{name}\"\nsecret = \"bench-webhook-secret-{name}\"\n\n",
            sink.addr
        ));
    }
    std::fs::write(&config, toml)?;
    eprintln!("berth-bench {}: webhooks in {}", plan.name, base.display());
    let nonce = unix_now() ^ u64::from(std::process::id()) << 32;
    let data = Arc::new(
        tokio::task::spawn_blocking({
            let plan = plan.clone();
            move || build_data(&plan, nonce)
        })
        .await
        .map_err(|e| Error(format!("data generation: {e}")))?,
    );
    let plain = Server::start_berth(&berth_bin, base.join("berth"), false).await?;
    let hooked = Server::start_berth_with(
        &berth_bin,
        base.join("berth-webhooks"),
        false,
        report::BERTH_WEBHOOKS,
        vec![("BERTH_CONFIG".into(), config.display().to_string())],
    )
    .await?;
    for s in [&plain, &hooked] {
        seed(s, &data)
            .await
            .map_err(|e| Error(format!("seeding {}: {e}", s.name)))?;
    }
    let (n, conns) = (plan.mono.0, plan.mono.2);
    let sc = Scenario {
        key: format!("push-image-c{conns}"),
        title: format!("push {n}× image (1 MiB layer + manifest), {conns} conns"),
        conns,
        task: Task::PushImage,
        stop: Stop::Count(n),
        unit: "img/s",
    };
    eprintln!("scenario: {}", sc.title);
    measure_ab(
        &mut run,
        [&plain, &hooked],
        &sc,
        &data,
        plan,
        plan.ab_rounds,
    )
    .await;
    // Every push's event on both webhooks: the seed's tag and each measured push.
    let want = 1 + n * plan.ab_rounds;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(180);
    loop {
        let got = [sink.distinct("/a"), sink.distinct("/b")];
        if got.iter().all(|&g| g >= want) {
            let mut row = Row::new(
                "webhook-drain",
                "after the pushes, until both webhooks had every event",
                hooked.name,
                t0.elapsed().as_secs_f64(),
                "s",
            );
            row.ops = (2 * want) as u64;
            run.record(row, None);
            break;
        }
        if Instant::now() > deadline {
            run.failures.push(format!(
                "webhooks received {got:?} distinct events of {want} each within 180 s"
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let meta = json!({
        "mode": plan.name,
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "date_unix": unix_now(),
        "date_utc": report::utc_timestamp(unix_now()),
        "cpu": meta_line("/proc/cpuinfo", "model name"),
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "berth_bin": berth_bin.display().to_string(),
        "reference": "not measured in this mode",
        "peak_memory_method": run.memory_method,
        "harness_cpu_share": 0.0,
        "wall_s": started.elapsed().as_secs_f64(),
    });
    drop((plain, hooked));
    if !cli.keep {
        let _ = std::fs::remove_dir_all(&base);
    }
    Ok((run, meta))
}

fn write_outputs(
    cli: &Cli,
    plan: &Plan,
    run: &Run,
    meta: &serde_json::Value,
) -> Result<(PathBuf, PathBuf)> {
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/bench"));
    std::fs::create_dir_all(&out).map_err(|e| Error(format!("create {}: {e}", out.display())))?;
    let mut targets = report::evaluate_targets(&run.rows);
    if plan.name.starts_with("webhooks") {
        // Only the webhook scenario ran: the comparison's targets do not apply.
        targets.retain(|t| t.pass.is_some());
    }
    let header = format!(
        "Run `{}` on {} ({} CPUs, {}), {} UTC. Peak RSS: {}. Harness CPU share of (harness + server) CPU: {:.0}%.",
        plan.name,
        meta["cpu"].as_str().unwrap_or("?"),
        meta["cpus"],
        meta["reference"].as_str().unwrap_or("reference ?"),
        meta["date_utc"].as_str().unwrap_or("?"),
        meta["peak_memory_method"].as_str().unwrap_or("?"),
        meta["harness_cpu_share"].as_f64().unwrap_or(0.0) * 100.0,
    );
    let md = report::markdown(&run.rows, &targets, &header);
    let js = report::json(&run.rows, &targets, meta.clone());
    let md_path = out.join(format!("{}.md", plan.name));
    let js_path = out.join(format!("{}.json", plan.name));
    std::fs::write(&md_path, &md)
        .map_err(|e| Error(format!("write {}: {e}", md_path.display())))?;
    let text = serde_json::to_string_pretty(&js).map_err(|e| Error(format!("json: {e}")))?;
    std::fs::write(&js_path, text)
        .map_err(|e| Error(format!("write {}: {e}", js_path.display())))?;
    println!("{md}");
    Ok((md_path, js_path))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.replication {
        return replication_main(&cli).await;
    }
    if cli.console {
        return console_main(&cli).await;
    }
    if cli.scale {
        return scale_main(&cli).await;
    }
    if cli.pull_through {
        return pull_through_main(&cli).await;
    }
    if let Some(minutes) = cli.soak {
        return soak_main(&cli, minutes).await;
    }
    let mut plan = match (cli.compare, cli.smoke) {
        (true, _) => Plan::compare(),
        (_, true) => Plan::smoke(),
        _ => {
            eprintln!(
                "berth-bench: pass --compare (full run) or --smoke (tiny CI run); see --help"
            );
            return ExitCode::from(2);
        }
    };
    if let Some(n) = cli.ab_rounds {
        plan.ab_rounds = n.max(1);
    }
    if let Some(s) = cli.settle_secs {
        plan.push_settle = Duration::from_secs_f64(s.max(0.0));
    }
    let result = if cli.webhooks {
        plan.name = if cli.compare {
            "webhooks"
        } else {
            "webhooks-smoke"
        };
        bench_webhooks(&cli, &plan).await
    } else {
        bench(&cli, &plan).await
    };
    let (run, meta) = match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("berth-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match write_outputs(&cli, &plan, &run, &meta) {
        Ok((md, js)) => eprintln!("wrote {} and {}", md.display(), js.display()),
        Err(e) => {
            eprintln!("berth-bench: {e}");
            return ExitCode::FAILURE;
        }
    }
    if run.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("berth-bench: {} failure(s):", run.failures.len());
        for f in &run.failures {
            eprintln!("  - {f}");
        }
        ExitCode::FAILURE
    }
}

/// `--replication`: the scenario of `replication.rs`; writes `replication.md` and
/// `replication.json`, and (except with `--smoke`) fails when replication takes
/// more than [`replication::MAX_RATIO`] × `skopeo sync`.
async fn replication_main(cli: &Cli) -> ExitCode {
    let berth_bin = berth_bin_of(cli);
    if !berth_bin.is_file() {
        eprintln!(
            "berth-bench: berth binary {} not found: run `cargo build --release -p berth` (or pass --berth-bin / BERTH_BIN)",
            berth_bin.display()
        );
        return ExitCode::FAILURE;
    }
    let (images, mib) = if cli.smoke { (4, 1) } else { (100, 10) };
    let images = cli.replication_images.unwrap_or(images).max(1);
    let mib = cli.replication_mib.unwrap_or(mib).max(1);
    let work = scenario_work_dir(cli, "replication");
    eprintln!(
        "berth-bench: replication of {images} images × {mib} MiB in {}",
        work.display()
    );
    let outcome = replication::run(&berth_bin, &work, images, mib).await;
    let Some(outcome) = scenario_outcome(cli, &work, outcome) else {
        return ExitCode::FAILURE;
    };
    let Some(out) = write_scenario_report(
        cli,
        "replication",
        &berth_bin,
        &outcome.markdown(),
        outcome.json(),
    ) else {
        return ExitCode::FAILURE;
    };
    eprintln!(
        "seeding A took {:.2} s; wrote {}",
        outcome.seed_secs,
        out.join("replication.md").display()
    );
    if outcome.ratio() > replication::MAX_RATIO {
        eprintln!(
            "berth-bench: replication took {:.2} × skopeo sync (bound {})",
            outcome.ratio(),
            replication::MAX_RATIO
        );
        // The smoke run (CI) checks that the scenario works, never performance:
        // 4 tiny images time process and job start-up, not copying.
        if !cli.smoke {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// `--scale`: the scenario of `scale.rs`; writes `scale.md` and `scale.json`, and
/// (except with `--smoke`) fails when a page's p99 misses [`scale::PAGE_P99_MS`].
async fn scale_main(cli: &Cli) -> ExitCode {
    let berth_bin = berth_bin_of(cli);
    if !berth_bin.is_file() {
        eprintln!(
            "berth-bench: berth binary {} not found: run `cargo build --release -p berth` (or pass --berth-bin / BERTH_BIN)",
            berth_bin.display()
        );
        return ExitCode::FAILURE;
    }
    let sizes = if !cli.scale_sizes.is_empty() {
        cli.scale_sizes.clone()
    } else if cli.smoke {
        vec![200, 1_000]
    } else {
        vec![1_000, 10_000, 100_000]
    };
    let postgres = if cli.with_postgres {
        match std::env::var("BERTH_TEST_POSTGRES_URL") {
            Ok(u) if !u.is_empty() => Some(u),
            _ => {
                eprintln!("berth-bench: --with-postgres needs BERTH_TEST_POSTGRES_URL");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let samples = if cli.smoke { 5 } else { 100 };
    let work = scenario_work_dir(cli, "scale");
    let outcome = scale::run(&berth_bin, &work, &sizes, postgres.as_deref(), samples).await;
    let Some(outcome) = scenario_outcome(cli, &work, outcome) else {
        return ExitCode::FAILURE;
    };
    let md = outcome.markdown();
    let Some(out) = write_scenario_report(cli, "scale", &berth_bin, &md, outcome.json()) else {
        return ExitCode::FAILURE;
    };
    eprintln!("wrote {}", out.join("scale.md").display());
    targets_verdict(
        cli,
        &format!("scale pages over p99 {} ms", scale::PAGE_P99_MS),
        &outcome.misses(),
    )
}

/// The exit code of a scenario with targets: failure when `misses` is not empty,
/// except in a smoke run (CI, a debug build), which checks that the scenario
/// works, never performance.
fn targets_verdict<T: std::fmt::Debug>(cli: &Cli, what: &str, misses: &[T]) -> ExitCode {
    if misses.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!("berth-bench: {what}: {misses:?}");
    if cli.smoke {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `--console`: the scenario of `console.rs`; writes `console.md` and
/// `console.json`, and (except with `--smoke`) fails when a page's median misses
/// [`console::TARGET_MS`].
async fn console_main(cli: &Cli) -> ExitCode {
    let berth_bin = berth_bin_of(cli);
    if !berth_bin.is_file() {
        eprintln!(
            "berth-bench: berth binary {} not found: run `cargo build --release -p berth` (or pass --berth-bin / BERTH_BIN)",
            berth_bin.display()
        );
        return ExitCode::FAILURE;
    }
    let mut sizes = Vec::new();
    for s in &cli.console_sizes {
        match s
            .split_once('/')
            .map(|(r, i)| (r.trim().parse(), i.trim().parse()))
        {
            Some((Ok(r), Ok(i))) => sizes.push((r, i)),
            _ => {
                eprintln!("berth-bench: --console-sizes takes repositories/images, e.g. 100/10000 (got {s:?})");
                return ExitCode::from(2);
            }
        }
    }
    if sizes.is_empty() {
        sizes = if cli.smoke {
            vec![(5, 50)]
        } else {
            vec![(10, 1_000), (100, 10_000), (1_000, 100_000)]
        };
    }
    let fetches = if cli.smoke { 5 } else { 30 };
    let work = scenario_work_dir(cli, "console");
    let outcome = console::run(&berth_bin, &work, &sizes, fetches).await;
    let Some(outcome) = scenario_outcome(cli, &work, outcome) else {
        return ExitCode::FAILURE;
    };
    let Some(out) = write_scenario_report(
        cli,
        "console",
        &berth_bin,
        &outcome.markdown(),
        outcome.json(),
    ) else {
        return ExitCode::FAILURE;
    };
    eprintln!("wrote {}", out.join("console.md").display());
    targets_verdict(
        cli,
        &format!("console pages over {} ms", console::TARGET_MS),
        &outcome.misses(),
    )
}

/// `--pull-through`: the scenario of `pull_through.rs`; writes `pull-through.md`
/// and `pull-through.json`, and (except with `--smoke`) fails when a ratio is out
/// of its bound.
async fn pull_through_main(cli: &Cli) -> ExitCode {
    let berth_bin = berth_bin_of(cli);
    let missing = servers::check_prerequisites(&berth_bin);
    if !missing.is_empty() {
        for m in missing {
            eprintln!("berth-bench: {m}");
        }
        return ExitCode::FAILURE;
    }
    let (rounds, layers, mib) = if cli.smoke { (1, 2, 1) } else { (3, 4, 25) };
    let rounds = cli.pull_through_rounds.unwrap_or(rounds).max(1);
    let work = scenario_work_dir(cli, "pull-through");
    eprintln!(
        "berth-bench: pull-through cache, {rounds} round(s) of {layers} × {mib} MiB in {}",
        work.display()
    );
    let outcome = pull_through::run(&berth_bin, &work, rounds, layers, mib).await;
    let Some(outcome) = scenario_outcome(cli, &work, outcome) else {
        return ExitCode::FAILURE;
    };
    if write_scenario_report(
        cli,
        "pull-through",
        &berth_bin,
        &outcome.markdown(),
        outcome.json(),
    )
    .is_none()
    {
        return ExitCode::FAILURE;
    }
    if !outcome.within_bounds() {
        eprintln!(
            "berth-bench: pull-through ratios out of bounds: first {:.2} (≤ {}), cached {:.2} (≥ {})",
            outcome.first_ratio(),
            pull_through::MAX_FIRST_RATIO,
            outcome.cached_ratio(),
            pull_through::MIN_CACHED_RATIO
        );
        // The smoke run (CI) checks that the scenario works, never performance.
        if !cli.smoke {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// `--soak MINUTES`: the scenario of `soak.rs`; writes `soak.md` and `soak.json`,
/// and fails on any error, or (runs of a minute or more) when berth's memory or
/// open descriptors do not level off.
async fn soak_main(cli: &Cli, minutes: f64) -> ExitCode {
    let berth_bin = berth_bin_of(cli);
    let missing = servers::check_prerequisites(&berth_bin);
    if !missing.is_empty() {
        for m in missing {
            eprintln!("berth-bench: {m}");
        }
        return ExitCode::FAILURE;
    }
    // On SQLite, then (with --with-postgres) on a fresh PostgreSQL database.
    let mut backends = vec![("soak", "SQLite", Vec::new())];
    let mut databases = None;
    if cli.with_postgres {
        let admin = match extra_stores(cli, 0) {
            Ok(e) => e.postgres_url.unwrap_or_default(),
            Err(e) => {
                eprintln!("berth-bench: {e}");
                return ExitCode::FAILURE;
            }
        };
        let dbs = databases.insert(servers::Databases::new(&admin));
        let db = format!("berth_bench_soak_{}", std::process::id());
        match dbs.create(&db) {
            Ok(url) => backends.push((
                "soak-postgres",
                "PostgreSQL",
                vec![("BERTH_DATABASE_URL".to_string(), url)],
            )),
            Err(e) => {
                eprintln!("berth-bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut failed = false;
    for (name, backend, store_env) in backends {
        let work = scenario_work_dir(cli, name);
        eprintln!(
            "berth-bench: soak on {backend}, {minutes} minutes, {} clients, in {}",
            soak::CLIENTS,
            work.display()
        );
        let passes = &cli.soak_passes;
        let on = |p: &str| passes.is_empty() || passes.iter().any(|x| x == p);
        let outcome = soak::run(
            &berth_bin,
            &work,
            minutes.max(0.01),
            on("gc"),
            on("lifecycle"),
            store_env,
        )
        .await;
        let Some(outcome) = scenario_outcome(cli, &work, outcome) else {
            return ExitCode::FAILURE;
        };
        let markdown =
            outcome
                .markdown()
                .replacen("## Soak\n", &format!("## Soak ({backend})\n"), 1);
        if write_scenario_report(cli, name, &berth_bin, &markdown, outcome.json()).is_none() {
            return ExitCode::FAILURE;
        }
        if outcome.errors > 0 {
            eprintln!(
                "berth-bench: soak on {backend}: {} failed operations",
                outcome.errors
            );
            failed = true;
        }
        // Too short a run has no second half to judge.
        if minutes >= 1.0 && !outcome.passed() {
            eprintln!("berth-bench: soak on {backend}: memory or open descriptors keep growing");
            failed = true;
        }
    }
    drop(databases);
    if failed {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// A fresh directory for one run of a scenario (under `--work-dir`, or the
/// system temp dir).
fn scenario_work_dir(cli: &Cli, name: &str) -> PathBuf {
    cli.work_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!(
            "berth-bench-{name}-{}-{}",
            std::process::id(),
            unix_now()
        ))
}

/// A scenario's run is over: its work directory goes (unless `--keep`), and its
/// outcome is handed back, or None, having said why, when it failed.
fn scenario_outcome<T>(cli: &Cli, work: &Path, outcome: Result<T>) -> Option<T> {
    if !cli.keep {
        let _ = std::fs::remove_dir_all(work);
    }
    match outcome {
        Ok(o) => Some(o),
        Err(e) => {
            eprintln!("berth-bench: {e}");
            None
        }
    }
}

/// Writes a scenario's `<stem>.md` and `<stem>.json` (with the date and the berth
/// binary) under `--out` (default `target/bench`) and prints the Markdown. Returns
/// the directory, or None, having said why, when writing failed.
fn write_scenario_report(
    cli: &Cli,
    stem: &str,
    berth_bin: &Path,
    md: &str,
    mut js: serde_json::Value,
) -> Option<PathBuf> {
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/bench"));
    js["date_utc"] = serde_json::Value::from(unix_now());
    js["berth_bin"] = serde_json::Value::from(berth_bin.display().to_string());
    let written = std::fs::create_dir_all(&out)
        .and_then(|_| std::fs::write(out.join(format!("{stem}.md")), md))
        .and_then(|_| {
            std::fs::write(
                out.join(format!("{stem}.json")),
                serde_json::to_string_pretty(&js).unwrap_or_default(),
            )
        });
    if let Err(e) = written {
        eprintln!("berth-bench: write {}: {e}", out.display());
        return None;
    }
    println!("{md}");
    Some(out)
}

/// The berth binary under test: `--berth-bin` / `BERTH_BIN`, or this workspace's
/// `target/release/berth`.
fn berth_bin_of(cli: &Cli) -> PathBuf {
    cli.berth_bin
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/release/berth"))
}

//! `--pull-through`: berth's pull-through cache against direct pulls
//! (docs/benchmarks.md, "Pull-through cache").
//!
//! The upstream is the reference registry (`docker-registry`, no auth) on loopback;
//! berth has a pull-through cache rule `ptc` → that upstream. For each round the
//! harness seeds (untimed) a fresh image of L layers of M MiB into the upstream as
//! `bench/app<r>:v1`, and another of the same shape into berth by a normal push as
//! `direct/app<r>:v1`.
//! Then, timed, each a client's pull (the manifest, then every blob at once on its
//! own connection, each hashed and checked):
//! - (a) the first, uncached pull of `ptc/bench/app<r>:v1` through berth against a
//!   direct pull of `bench/app<r>:v1` from the upstream (bound: at most
//!   [`MAX_FIRST_RATIO`] × the direct pull's time);
//! - (b) once the cache has stored the image, a cached pull through berth against a
//!   direct pull of an image of the same shape pushed normally into berth (bound: at least
//!   [`MIN_CACHED_RATIO`] × the direct pull's throughput).
//!
//! The two pulls of each pair run in alternating order from round to round, so
//! neither always finds the other's page cache warm; the figures are medians.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

use crate::client::{self, bail, Conn, Error, Result};
use crate::load::Blob;
use crate::servers::Server;

/// The bound on a first pull through berth ÷ a direct pull from the upstream.
pub const MAX_FIRST_RATIO: f64 = 1.2;
/// The bound on a cached pull's throughput ÷ a direct pull's from berth.
pub const MIN_CACHED_RATIO: f64 = 0.9;

pub struct Outcome {
    pub rounds: usize,
    pub layers: usize,
    pub layer_mib: usize,
    pub upstream_secs: Vec<f64>,
    pub first_secs: Vec<f64>,
    pub cached_secs: Vec<f64>,
    pub direct_secs: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

impl Outcome {
    /// (a): first pull through berth ÷ direct pull from the upstream (time).
    pub fn first_ratio(&self) -> f64 {
        median(&self.first_secs) / median(&self.upstream_secs)
    }

    /// (b): cached pull through berth ÷ direct pull from berth (throughput).
    pub fn cached_ratio(&self) -> f64 {
        median(&self.direct_secs) / median(&self.cached_secs)
    }

    pub fn within_bounds(&self) -> bool {
        self.first_ratio() <= MAX_FIRST_RATIO && self.cached_ratio() >= MIN_CACHED_RATIO
    }

    fn mib(&self) -> usize {
        self.layers * self.layer_mib
    }

    pub fn json(&self) -> Value {
        json!({
            "rounds": self.rounds,
            "layers": self.layers,
            "layer_mib": self.layer_mib,
            "upstream_direct_secs": self.upstream_secs,
            "first_through_berth_secs": self.first_secs,
            "cached_through_berth_secs": self.cached_secs,
            "direct_from_berth_secs": self.direct_secs,
            "first_ratio": self.first_ratio(),
            "max_first_ratio": MAX_FIRST_RATIO,
            "cached_ratio": self.cached_ratio(),
            "min_cached_ratio": MIN_CACHED_RATIO,
        })
    }

    pub fn markdown(&self) -> String {
        let mib = self.mib() as f64;
        let row = |what: &str, secs: &[f64]| {
            let m = median(secs);
            format!("| {what} | {m:.3} s | {:.0} MiB/s |\n", mib / m)
        };
        format!(
            "Image: {} layers × {} MiB ({} MiB), {} round(s), medians.\n\n\
             | pull | time | throughput |\n|---|---|---|\n{}{}{}{}\n\
             | ratio | value | bound |\n|---|---|---|\n\
             | (a) first pull through berth ÷ direct from the upstream (time) | {:.2} | ≤ {MAX_FIRST_RATIO} |\n\
             | (b) cached pull through berth ÷ direct from berth (throughput) | {:.2} | ≥ {MIN_CACHED_RATIO} |\n",
            self.layers,
            self.layer_mib,
            self.mib(),
            self.rounds,
            row("direct from the upstream (reference registry)", &self.upstream_secs),
            row("first (uncached) through berth", &self.first_secs),
            row("cached through berth", &self.cached_secs),
            row("direct from berth (pushed normally)", &self.direct_secs),
            self.first_ratio(),
            self.cached_ratio(),
        )
    }
}

/// One image: its layers, config and manifest.
struct Image {
    layers: Vec<Blob>,
    config: Blob,
    manifest: Bytes,
}

impl Image {
    fn new(layers: usize, mib: usize, seed: u64) -> Image {
        let layers: Vec<Blob> = (0..layers)
            .map(|i| {
                Blob::new(crate::limits::pseudo_random(
                    mib * crate::MIB,
                    seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                ))
            })
            .collect();
        let digests: Vec<String> = layers.iter().map(|l| l.digest.clone()).collect();
        let config = Blob::new(client::image_config(&digests, seed).to_vec());
        let descs: Vec<(String, u64)> = layers.iter().map(Blob::desc).collect();
        let manifest = client::image_manifest(&config.desc(), &descs);
        Image {
            layers,
            config,
            manifest,
        }
    }

    async fn push(&self, s: &Server, repo: &str) -> Result<()> {
        let mut c = Conn::new(s.addr, s.auth.clone());
        for b in self.layers.iter().chain(std::iter::once(&self.config)) {
            client::push_monolithic(&mut c, repo, b.data.clone(), &b.digest).await?;
        }
        client::put_manifest(&mut c, repo, "v1", self.manifest.clone()).await
    }

    /// A client's pull of `repo:v1` from `s`: the manifest (checked byte for byte),
    /// then the config and every layer at once, each on its own connection, hashed.
    /// Returns the time it took, with when (from the start) the manifest and each
    /// blob (layers in order, then the config) were in.
    async fn pull(&self, s: &Server, repo: &str) -> Result<(f64, Vec<f64>)> {
        let t = Instant::now();
        let mut c = Conn::new(s.addr, s.auth.clone());
        let m = client::get_manifest(&mut c, repo, "v1").await?;
        if m != self.manifest {
            bail!("{repo}:v1 from {}: the manifest differs", s.name);
        }
        let mut parts = vec![t.elapsed().as_secs_f64()];
        let mut tasks = tokio::task::JoinSet::new();
        for (i, b) in self
            .layers
            .iter()
            .chain(std::iter::once(&self.config))
            .enumerate()
        {
            let (addr, auth, repo) = (s.addr, s.auth.clone(), repo.to_string());
            let (digest, len) = b.desc();
            tasks.spawn(async move {
                let mut c = Conn::new(addr, auth);
                client::get_blob_verified(&mut c, &repo, &digest, len).await?;
                Ok::<_, Error>((i, t.elapsed().as_secs_f64()))
            });
        }
        parts.resize(self.layers.len() + 2, 0.0);
        while let Some(r) = tasks.join_next().await {
            let (i, done) = r.map_err(|e| Error(format!("a blob pull task: {e}")))??;
            parts[i + 1] = done;
        }
        Ok((t.elapsed().as_secs_f64(), parts))
    }
}

/// CPU seconds of berth, the upstream and the harness (in that order) so far.
fn cpu(berth: &Server, upstream: &Server) -> [f64; 3] {
    let c = |pid: Option<u32>| crate::procfs::cpu_seconds(pid).unwrap_or(f64::NAN);
    [c(berth.pid()), c(upstream.pid()), c(None)]
}

/// `img`'s pull of `repo` from `from`, with the CPU seconds berth, the upstream
/// and the harness spent meanwhile.
async fn pull_cpu(
    img: &Image,
    from: &Server,
    repo: &str,
    berth: &Server,
    upstream: &Server,
) -> Result<(f64, Vec<f64>, [f64; 3])> {
    let before = cpu(berth, upstream);
    let (t, p) = img.pull(from, repo).await?;
    let after = cpu(berth, upstream);
    Ok((t, p, [0, 1, 2].map(|i| after[i] - before[i])))
}

fn cpus(c: &[f64; 3]) -> String {
    format!(
        "CPU berth {:.2} s, upstream {:.2} s, harness {:.2} s",
        c[0], c[1], c[2]
    )
}

/// When each part of a pull was in: "manifest 0.012, layers 0.20 0.21 …, config 0.03".
fn parts(p: &[f64]) -> String {
    let Some((config, rest)) = p.split_last() else {
        return String::new();
    };
    let layers: Vec<String> = rest[1..].iter().map(|x| format!("{x:.3}")).collect();
    format!(
        "manifest {:.3}, layers {}, config {config:.3}",
        rest[0],
        layers.join(" ")
    )
}

/// Runs the scenario in fresh directories under `work`.
pub async fn run(
    berth_bin: &Path,
    work: &Path,
    rounds: usize,
    layers: usize,
    mib: usize,
) -> Result<Outcome> {
    let upstream = Server::start_reference(work.join("upstream"), None).await?;
    let berth = Server::start_berth(berth_bin, work.join("berth"), false).await?;
    berth
        .ecr(
            "CreatePullThroughCacheRule",
            &json!({
                "ecrRepositoryPrefix": "ptc",
                "upstreamRegistryUrl": format!("http://{}", upstream.addr),
            }),
        )
        .await?;
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut out = Outcome {
        rounds,
        layers,
        layer_mib: mib,
        upstream_secs: Vec::new(),
        first_secs: Vec::new(),
        cached_secs: Vec::new(),
        direct_secs: Vec::new(),
    };
    for r in 0..rounds {
        // Seeded, untimed: a fresh image in the upstream, and another of the same
        // shape pushed into berth (other bytes, so that the two pulls of a pair
        // never read the same stored objects, nor each other's page cache).
        let img = Image::new(layers, mib, nonce.wrapping_add(r as u64 * 7919));
        let own = Image::new(layers, mib, !nonce.wrapping_add(r as u64 * 7919));
        let up_repo = format!("bench/app{r}");
        let ptc_repo = format!("ptc/{up_repo}");
        let direct_repo = format!("direct/app{r}");
        img.push(&upstream, &up_repo).await?;
        own.push(&berth, &direct_repo).await?;
        settle().await;

        // (a) The first pull through berth against a direct pull from the upstream.
        let pull_up = || pull_cpu(&img, &upstream, &up_repo, &berth, &upstream);
        let pull_first = || pull_cpu(&img, &berth, &ptc_repo, &berth, &upstream);
        let ((up, up_parts, up_cpu), (first, first_parts, first_cpu)) = if r % 2 == 0 {
            let up = pull_up().await?;
            (up, pull_first().await?)
        } else {
            let first = pull_first().await?;
            (pull_up().await?, first)
        };
        out.upstream_secs.push(up);
        out.first_secs.push(first);

        // (b) Once stored, the cached pull against a direct pull from berth.
        wait_cached(&berth, &ptc_repo).await?;
        settle().await;
        let ((cached, _), (direct, _)) = if r % 2 == 0 {
            let cached = img.pull(&berth, &ptc_repo).await?;
            (cached, own.pull(&berth, &direct_repo).await?)
        } else {
            let direct = own.pull(&berth, &direct_repo).await?;
            (img.pull(&berth, &ptc_repo).await?, direct)
        };
        out.cached_secs.push(cached);
        out.direct_secs.push(direct);
        eprintln!(
            "round {r}: upstream {up:.3} s, first through berth {first:.3} s, cached {cached:.3} s, direct from berth {direct:.3} s\n  upstream: {}; {}\n  first through berth: {}; {}",
            parts(&up_parts),
            cpus(&up_cpu),
            parts(&first_parts),
            cpus(&first_cpu)
        );
    }
    Ok(out)
}

/// Waits until berth has stored `repo:v1` (its completion job stores the manifest
/// once every blob is in).
async fn wait_cached(berth: &Server, repo: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let r = berth
            .ecr(
                "DescribeImages",
                &json!({"repositoryName": repo, "imageIds": [{"imageTag": "v1"}]}),
            )
            .await;
        if r.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{repo}:v1 was not cached within 10 min");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Before each timed pair, untimed: flush what was written and drop the clean page
/// cache when allowed (root), as the other scenarios do.
async fn settle() {
    let _ = tokio::task::spawn_blocking(|| {
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        let _ = std::fs::write("/proc/sys/vm/drop_caches", "1");
    })
    .await;
}

//! The load generator: N workers, each with its own keep-alive connection,
//! running one task for a fixed duration or a fixed count, recording per-operation
//! latency. Workers connect before the clock starts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Barrier;

use crate::client::{self, Conn, Result};
use crate::stats::nanos;

/// A blob with its digest.
#[derive(Clone)]
pub struct Blob {
    pub data: Bytes,
    pub digest: String,
}

impl Blob {
    pub fn new(data: Vec<u8>) -> Self {
        let digest = client::sha256_digest(&data);
        Blob {
            data: Bytes::from(data),
            digest,
        }
    }

    pub fn desc(&self) -> (String, u64) {
        (self.digest.clone(), self.data.len() as u64)
    }
}

/// Everything the tasks push and pull, generated before any clock starts.
#[derive(Clone)]
pub struct DataSet {
    pub nonce: u64,
    /// Small image for manifest/blob-HEAD scenarios: config then layers.
    pub pull_config: Blob,
    pub pull_layers: Vec<Blob>,
    pub mono: Vec<Blob>,
    pub chunked: Vec<Blob>,
    pub chunk_size: usize,
    pub stream: Vec<Blob>,
    /// The large blobs of the parallel-pull scenario.
    pub par: Vec<Blob>,
    /// Mixed workload: base image layer/config, and a template for new layers.
    pub mixed_config: Blob,
    pub mixed_layer: Blob,
    pub mixed_template: Bytes,
}

pub const REPO_PULL: &str = "bench/pull";
pub const REPO_MONO: &str = "bench/mono";
pub const REPO_CHUNKED: &str = "bench/chunked";
pub const REPO_STREAM: &str = "bench/stream";
pub const REPO_MIXED: &str = "bench/mixed";
pub const REPO_PAR: &str = "bench/par";

/// What each operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    HeadManifest,
    GetManifest,
    HeadBlob,
    PushMono,
    PushChunked,
    PushStream,
    PullMono,
    PullChunked,
    PullStream,
    /// Monolithic pushes of the parallel-pull blobs.
    PushPar,
    /// Pulls of large blobs on many connections, each digest verified on a
    /// blocking thread so that the client is not the bottleneck.
    PullPar,
    /// 80 % pull (manifest GET + 1 MiB layer GET, verified) / 20 % push (new
    /// 1 MiB layer + manifest).
    Mixed,
    /// An image push: a new 1 MiB layer, then a manifest under a new tag (each
    /// one an "ECR Image Action" event).
    PushImage,
}

/// When workers stop.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    For(Duration),
    /// Operation indexes `0..n`, shared among workers.
    Count(usize),
}

/// The outcome of one run.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ops: u64,
    pub errors: u64,
    pub bytes: u64,
    pub latencies_ns: Vec<u64>,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub connects: u64,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Whether the `i`-th mixed operation is a push (20 %), deterministic per run.
pub fn mixed_is_push(nonce: u64, i: usize) -> bool {
    splitmix(nonce ^ (i as u64).wrapping_mul(0x2545_F491)) % 100 < 20
}

/// A new layer for the mixed workload: the template with a unique first 16 bytes.
pub fn unique_layer(template: &[u8], nonce: u64, i: usize) -> Vec<u8> {
    let mut v = template.to_vec();
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(&nonce.to_le_bytes());
    head[8..].copy_from_slice(&(i as u64).to_le_bytes());
    let n = head.len().min(v.len());
    v[..n].copy_from_slice(&head[..n]);
    v
}

async fn execute(c: &mut Conn, task: Task, i: usize, d: &DataSet) -> Result<u64> {
    let pick = |v: &[Blob]| -> Result<Blob> {
        v.get(i % v.len().max(1))
            .cloned()
            .ok_or_else(|| client::Error("empty data set".into()))
    };
    match task {
        Task::HeadManifest => client::head_manifest(c, REPO_PULL, "v1").await,
        Task::GetManifest => Ok(client::get_manifest(c, REPO_PULL, "v1").await?.len() as u64),
        Task::HeadBlob => {
            let b = if i % (d.pull_layers.len() + 1) == 0 {
                d.pull_config.clone()
            } else {
                pick(&d.pull_layers)?
            };
            client::head_blob(c, REPO_PULL, &b.digest).await?;
            Ok(0)
        }
        Task::PushMono => {
            let b = pick(&d.mono)?;
            client::push_monolithic(c, REPO_MONO, b.data, &b.digest).await
        }
        Task::PushChunked => {
            let b = pick(&d.chunked)?;
            client::push_chunked(c, REPO_CHUNKED, b.data, &b.digest, d.chunk_size).await
        }
        Task::PushStream => {
            let b = pick(&d.stream)?;
            client::push_streamed(c, REPO_STREAM, b.data, &b.digest).await
        }
        Task::PushPar => {
            let b = pick(&d.par)?;
            client::push_monolithic(c, REPO_PAR, b.data, &b.digest).await
        }
        Task::PullPar => {
            let b = pick(&d.par)?;
            client::get_blob_verified_offloaded(c, REPO_PAR, &b.digest, b.data.len() as u64).await
        }
        Task::PullMono | Task::PullChunked | Task::PullStream => {
            let (repo, set) = match task {
                Task::PullMono => (REPO_MONO, &d.mono),
                Task::PullChunked => (REPO_CHUNKED, &d.chunked),
                _ => (REPO_STREAM, &d.stream),
            };
            let b = pick(set)?;
            client::get_blob_verified(c, repo, &b.digest, b.data.len() as u64).await
        }
        Task::PushImage => {
            let layer = Blob::new(unique_layer(&d.mixed_template, d.nonce, i));
            let n =
                client::push_monolithic(c, REPO_MIXED, layer.data.clone(), &layer.digest).await?;
            let m = client::image_manifest(&d.mixed_config.desc(), &[layer.desc()]);
            client::put_manifest(c, REPO_MIXED, &format!("w{:x}-{i}", d.nonce), m).await?;
            Ok(n)
        }
        Task::Mixed => {
            if mixed_is_push(d.nonce, i) {
                let layer = Blob::new(unique_layer(&d.mixed_template, d.nonce, i));
                let n = client::push_monolithic(c, REPO_MIXED, layer.data.clone(), &layer.digest)
                    .await?;
                let m = client::image_manifest(&d.mixed_config.desc(), &[layer.desc()]);
                client::put_manifest(c, REPO_MIXED, &format!("p{i}"), m).await?;
                Ok(n)
            } else {
                let m = client::get_manifest(c, REPO_MIXED, "base").await?;
                let l = &d.mixed_layer;
                let n = client::get_blob_verified(c, REPO_MIXED, &l.digest, l.data.len() as u64)
                    .await?;
                Ok(m.len() as u64 + n)
            }
        }
    }
}

/// Runs `task` on `conns` connections until `stop`.
pub async fn run(
    addr: SocketAddr,
    auth: Option<String>,
    conns: usize,
    task: Task,
    stop: Stop,
    data: Arc<DataSet>,
) -> Outcome {
    let conns = conns.max(1);
    let next = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(conns + 1));
    let mut handles = Vec::with_capacity(conns);
    for _ in 0..conns {
        let (next, barrier, data, auth) =
            (next.clone(), barrier.clone(), data.clone(), auth.clone());
        handles.push(tokio::spawn(async move {
            let mut out = Outcome::default();
            let mut c = Conn::new(addr, auth);
            let connected = c.connect().await;
            barrier.wait().await;
            if let Err(e) = connected {
                out.errors += 1;
                out.first_error = Some(e.0);
                return out;
            }
            let t_start = Instant::now();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                match stop {
                    Stop::Count(n) if i >= n => break,
                    Stop::For(d) if t_start.elapsed() >= d => break,
                    _ => {}
                }
                let t0 = Instant::now();
                match execute(&mut c, task, i, &data).await {
                    Ok(n) => {
                        out.ops += 1;
                        out.bytes += n;
                        out.latencies_ns.push(nanos(t0.elapsed()));
                    }
                    Err(e) => {
                        out.errors += 1;
                        if out.first_error.is_none() {
                            out.first_error = Some(e.0);
                        }
                    }
                }
            }
            out.connects = c.connects;
            out
        }));
    }
    barrier.wait().await;
    let t0 = Instant::now();
    let mut total = Outcome::default();
    for h in handles {
        match h.await {
            Ok(o) => {
                total.ops += o.ops;
                total.errors += o.errors;
                total.bytes += o.bytes;
                total.connects += o.connects;
                total.latencies_ns.extend(o.latencies_ns);
                if total.first_error.is_none() {
                    total.first_error = o.first_error;
                }
            }
            Err(e) => {
                total.errors += 1;
                total
                    .first_error
                    .get_or_insert(format!("worker panicked: {e}"));
            }
        }
    }
    total.elapsed = t0.elapsed();
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_split_is_about_80_20() {
        let pushes = (0..10_000).filter(|i| mixed_is_push(42, *i)).count();
        assert!((1_800..2_200).contains(&pushes), "{pushes}");
    }

    #[test]
    fn unique_layers_differ() {
        let t = vec![0xAA; 64];
        let a = unique_layer(&t, 1, 1);
        let b = unique_layer(&t, 1, 2);
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(a[16..], t[16..]);
        assert_eq!(unique_layer(&[1, 2], 9, 9).len(), 2);
    }
}

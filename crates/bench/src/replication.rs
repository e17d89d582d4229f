//! `--replication`: berth's cross-region replication against `skopeo sync` between
//! the same two berth deployments (docs/benchmarks.md, "Replication").
//!
//! Two berth processes on loopback: B serves `us-west-2`, A `us-east-1` with B as its
//! `[[peer]]`. The harness pushes N images of one M MiB layer each to A (not timed),
//! turns replication on for `bench/`, and re-tags every image (N small manifest PUTs:
//! a new tag on a stored image replicates it); replication is timed from the first
//! re-tag until A's `/metrics` count N images COMPLETE. Then `skopeo sync` copies the
//! same N tags from A to another repository of B, timed the same way. B already holds
//! the content by then (berth stores a digest once), which can only help skopeo.
//! Every replicated manifest is checked at B by digest, and every tenth layer is
//! read back and hashed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};

use crate::client::{self, bail, read_body, Conn, Error, Result, SliceBody};
use crate::load::Blob;
use crate::servers::{self, Server};

const REPO: &str = "bench/app";
const ACCOUNT: &str = "123456789012";
/// The bound: replication may take at most this many times `skopeo sync`.
pub const MAX_RATIO: f64 = 1.5;

pub struct Outcome {
    pub images: usize,
    pub mib: usize,
    pub seed_secs: f64,
    pub replication_secs: f64,
    pub skopeo_secs: f64,
}

impl Outcome {
    pub fn ratio(&self) -> f64 {
        self.replication_secs / self.skopeo_secs
    }

    pub fn json(&self) -> Value {
        json!({
            "images": self.images,
            "layer_mib": self.mib,
            "seed_push_secs": self.seed_secs,
            "replication_secs": self.replication_secs,
            "skopeo_sync_secs": self.skopeo_secs,
            "ratio": self.ratio(),
            "max_ratio": MAX_RATIO,
            "replication_mib_per_sec": (self.images * self.mib) as f64 / self.replication_secs,
            "skopeo_mib_per_sec": (self.images * self.mib) as f64 / self.skopeo_secs,
        })
    }

    pub fn markdown(&self) -> String {
        let total = self.images * self.mib;
        format!(
            "| images × layer | replication A→B | `skopeo sync` A→B | replication ÷ skopeo |\n\
             |---|---|---|---|\n\
             | {} × {} MiB ({total} MiB) | {:.2} s ({:.0} MiB/s) | {:.2} s ({:.0} MiB/s) | {:.2} (bound {MAX_RATIO}) |\n",
            self.images,
            self.mib,
            self.replication_secs,
            total as f64 / self.replication_secs,
            self.skopeo_secs,
            total as f64 / self.skopeo_secs,
            self.ratio(),
        )
    }
}

/// Runs the scenario in fresh directories under `work`.
pub async fn run(berth_bin: &Path, work: &Path, images: usize, mib: usize) -> Result<Outcome> {
    if which("skopeo").is_none() {
        bail!("`skopeo` not found: `apt-get install -y --no-install-recommends skopeo`");
    }
    let b = Server::start_berth_with(
        berth_bin,
        work.join("b"),
        false,
        crate::report::BERTH,
        vec![("BERTH_REGION".into(), "us-west-2".into())],
    )
    .await?;
    let config = work.join("a.toml");
    std::fs::write(
        &config,
        format!(
            "[[peer]]\nregion = \"us-west-2\"\nendpoint = \"http://{}\"\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            b.addr,
            servers::ACCESS_KEY_ID,
            servers::SECRET_ACCESS_KEY
        ),
    )?;
    let a = Server::start_berth_with(
        berth_bin,
        work.join("a"),
        false,
        crate::report::BERTH,
        vec![("BERTH_CONFIG".into(), config.to_string_lossy().into_owned())],
    )
    .await?;

    // Seed A (not timed): N images of one layer each.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let t = Instant::now();
    let mut manifests = Vec::with_capacity(images);
    let mut layers = Vec::with_capacity(images);
    let mut c = Conn::new(a.addr, a.auth.clone());
    for i in 0..images {
        let layer = Blob::new(crate::limits::pseudo_random(
            mib * crate::MIB,
            nonce ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9),
        ));
        let config = Blob::new(
            client::image_config(std::slice::from_ref(&layer.digest), nonce + i as u64).to_vec(),
        );
        client::push_monolithic(&mut c, REPO, layer.data.clone(), &layer.digest).await?;
        client::push_monolithic(&mut c, REPO, config.data.clone(), &config.digest).await?;
        let m = client::image_manifest(&config.desc(), &[layer.desc()]);
        client::put_manifest(&mut c, REPO, &format!("seed-{i}"), m.clone()).await?;
        layers.push(layer.desc());
        manifests.push(m);
    }
    let seed_secs = t.elapsed().as_secs_f64();

    // Replication: on for bench/, then a new tag on each image.
    a.ecr(
        "PutReplicationConfiguration",
        &json!({ "replicationConfiguration": { "rules": [{
            "destinations": [{ "region": "us-west-2", "registryId": ACCOUNT }],
            "repositoryFilters": [{ "filter": "bench/", "filterType": "PREFIX_MATCH" }]
        }] } }),
    )
    .await?;
    settle().await;
    let t = Instant::now();
    for (i, m) in manifests.iter().enumerate() {
        client::put_manifest(&mut c, REPO, &format!("v-{i}"), m.clone()).await?;
    }
    wait_complete(&a, images).await?;
    let replication_secs = t.elapsed().as_secs_f64();
    let mut cb = Conn::new(b.addr, b.auth.clone());
    verify(&mut cb, REPO, &manifests, &layers).await?;

    // skopeo sync of the same tags into another repository of B.
    let auth = work.join("auth.json");
    let b64 = |s: &Server| {
        s.auth
            .as_deref()
            .and_then(|h| h.strip_prefix("Basic "))
            .unwrap_or_default()
            .to_string()
    };
    std::fs::write(
        &auth,
        json!({ "auths": {
            a.addr.to_string(): { "auth": b64(&a) },
            b.addr.to_string(): { "auth": b64(&b) },
        } })
        .to_string(),
    )?;
    let tags: Vec<String> = (0..images).map(|i| format!("v-{i}")).collect();
    let yaml = work.join("sync.yaml");
    std::fs::write(
        &yaml,
        format!(
            "{}:\n  tls-verify: false\n  images:\n    {REPO}: [{}]\n",
            a.addr,
            tags.join(", ")
        ),
    )?;
    settle().await;
    let t = Instant::now();
    let out = Command::new("skopeo")
        .args([
            "sync",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--preserve-digests",
        ])
        .arg("--src-authfile")
        .arg(&auth)
        .arg("--dest-authfile")
        .arg(&auth)
        .args(["--dest-tls-verify=false"])
        .arg(&yaml)
        .arg(format!("{}/skopeo", b.addr))
        .output()
        .map_err(|e| Error(format!("run skopeo: {e}")))?;
    let skopeo_secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "skopeo sync failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Without --scoped, skopeo names the destination after the last path component.
    verify(&mut cb, "skopeo/app", &manifests, &layers).await?;
    let _ = std::fs::remove_file(&auth);
    Ok(Outcome {
        images,
        mib,
        seed_secs,
        replication_secs,
        skopeo_secs,
    })
}

/// Before each timed phase, untimed: flush what earlier phases wrote and drop the
/// clean page cache when allowed (root), as the push scenarios do (see main.rs),
/// so neither phase pays for the other's writeback.
async fn settle() {
    let _ = tokio::task::spawn_blocking(|| {
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        let _ = std::fs::write("/proc/sys/vm/drop_caches", "1");
    })
    .await;
}

fn which(cmd: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

/// A metric's value in a Prometheus text body.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Polls A's `/metrics` until `n` image replications are COMPLETE and none is in
/// progress; a FAILED one ends the run.
async fn wait_complete(a: &Server, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut c = Conn::new(a.addr, a.auth.clone());
    loop {
        let resp = c
            .send(Method::GET, "/metrics", &[], SliceBody::empty())
            .await?;
        let body = read_body(resp).await?;
        let text = String::from_utf8_lossy(&body);
        let get = |s: &str| {
            metric(
                &text,
                &format!("berth_replication_images{{status=\"{s}\"}}"),
            )
            .unwrap_or(0.0)
        };
        if get("FAILED") > 0.0 {
            bail!("a replication FAILED:\n{text}");
        }
        if get("COMPLETE") as usize >= n && get("IN_PROGRESS") == 0.0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("replication did not complete within 30 min:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each manifest is at `repo` by digest (byte-exact), and every tenth layer reads
/// back with its digest.
async fn verify(
    c: &mut Conn,
    repo: &str,
    manifests: &[Bytes],
    layers: &[(String, u64)],
) -> Result<()> {
    for (i, m) in manifests.iter().enumerate() {
        let d = client::sha256_digest(m);
        let got = client::get_manifest(c, repo, &d).await?;
        if got != *m {
            bail!("{repo}@{d}: the manifest differs at the destination");
        }
        if i % 10 == 0 {
            let (digest, len) = &layers[i];
            client::get_blob_verified(c, repo, digest, *len).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::metric;

    #[test]
    fn reads_a_labelled_metric() {
        let text = "berth_replication_images{status=\"COMPLETE\"} 12\nberth_replication_images{status=\"FAILED\"} 0\n";
        assert_eq!(
            metric(text, "berth_replication_images{status=\"COMPLETE\"}"),
            Some(12.0)
        );
        assert_eq!(metric(text, "berth_replication_lag_seconds"), None);
    }
}

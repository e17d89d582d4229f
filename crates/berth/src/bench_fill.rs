//! `berth admin bench-fill`: fills a registry with synthetic images for the scale
//! benchmark (`berth-bench --scale`, docs/benchmarks.md "Scale"), through the
//! core — repositories created, blobs uploaded or mounted, manifests checked,
//! sealed and stored with their tags, events and jobs as a push stores them
//! (`crates/registry/src/bulk.rs`) — only batched, many manifests per
//! transaction, instead of one request and one commit per image.
//!
//! Layout: `bench/big` holds `--big-repository-images` images (the lifecycle
//! evaluation's repository); the others are spread evenly over
//! `bench/r00001…`. Every image references the repository's shared config and
//! layer; every `--unique-every`-th image of a repository also references a tiny
//! layer of its own, so deleting those images leaves blobs for the collector.
//! Image `j` of a repository is tagged `v<j>`, except every fourth (`j % 4 == 3`),
//! which stays untagged. `--ids-out` lists the images with a layer of their own
//! (`repository<TAB>digest`), the ones the benchmark deletes.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures_util::StreamExt;

use berth_oci::{Reference, RepositoryName};
use berth_registry::{Registry, RepoSettings, RepositoryRow};
use bytes::Bytes;
use clap::Args;
use serde_json::json;

#[derive(Args, Debug)]
pub struct FillArgs {
    /// Repositories (including `bench/big`), in the configured account.
    #[arg(long, default_value_t = 10_000)]
    repositories: usize,
    /// Images in all.
    #[arg(long)]
    images: usize,
    /// Images in `bench/big` (counted in --images).
    #[arg(long, default_value_t = 0)]
    big_repository_images: usize,
    /// Every N-th image of a repository has a layer of its own.
    #[arg(long, default_value_t = 10)]
    unique_every: usize,
    /// Manifests per transaction.
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Repositories filled at once.
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// Write `repository<TAB>digest` of every image with a layer of its own here.
    #[arg(long)]
    ids_out: Option<std::path::PathBuf>,
}

/// Blob uploads of one repository in flight at once.
const BLOB_UPLOADS: usize = 8;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// What every repository's images reference.
struct Shared {
    layer: Bytes,
    layer_digest: berth_oci::Digest,
    config: Bytes,
    config_digest: berth_oci::Digest,
}

pub async fn run(registry: &Registry, account: &str, a: FillArgs) -> Result<(), String> {
    if a.repositories < 2 || a.images < a.big_repository_images {
        return Err("need --repositories >= 2 and --images >= --big-repository-images".into());
    }
    let t0 = Instant::now();
    let others = a.repositories - 1;
    let rest = a.images - a.big_repository_images;
    let (base, extra) = (rest / others, rest % others);
    // The shared config and layer, uploaded once and mounted everywhere else.
    let layer = Bytes::from_static(b"berth bench-fill shared layer");
    let layer_digest = berth_oci::Digest::sha256_of(&layer);
    let config = Bytes::from(
        serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": [layer_digest.to_string()] },
        }))
        .map_err(err)?,
    );
    let config_digest = berth_oci::Digest::sha256_of(&config);
    let shared = Shared {
        layer,
        layer_digest,
        config,
        config_digest,
    };
    let stored = AtomicUsize::new(0);
    let uniques = AtomicUsize::new(0);
    // `bench/big` first (the shared blobs' first home), then the others, several
    // repositories at a time (their waits on the store overlap).
    let (first, mut ids) = fill_repo(
        registry,
        account,
        &a,
        &shared,
        None,
        "bench/big".into(),
        a.big_repository_images,
        &stored,
        &uniques,
    )
    .await?;
    let mut last_report = Instant::now();
    let mut pending = futures_util::stream::iter(1..a.repositories)
        .map(|r| {
            fill_repo(
                registry,
                account,
                &a,
                &shared,
                Some(&first),
                format!("bench/r{r:05}"),
                base + usize::from(r - 1 < extra),
                &stored,
                &uniques,
            )
        })
        .buffer_unordered(a.jobs.max(1));
    while let Some(done) = pending.next().await {
        ids.extend(done?.1);
        if last_report.elapsed().as_secs() >= 10 {
            last_report = Instant::now();
            let n = stored.load(Ordering::Relaxed);
            eprintln!(
                "bench-fill: {n} images, {:.0} images/s",
                n as f64 / t0.elapsed().as_secs_f64()
            );
        }
    }
    if let Some(p) = &a.ids_out {
        let mut w = std::io::BufWriter::new(std::fs::File::create(p).map_err(err)?);
        for (name, digest) in &ids {
            writeln!(w, "{name}\t{digest}").map_err(err)?;
        }
        w.flush().map_err(err)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let stored = stored.load(Ordering::Relaxed);
    println!(
        "filled {stored} images ({} with a layer of their own) in {} repositories in {secs:.1} s: {:.0} images/s",
        uniques.load(Ordering::Relaxed),
        a.repositories,
        stored as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// Creates (or reuses) one repository and stores its `count` images; the
/// repository and the (name, digest) of its images with a layer of their own.
#[allow(clippy::too_many_arguments)]
async fn fill_repo(
    registry: &Registry,
    account: &str,
    a: &FillArgs,
    shared: &Shared,
    first: Option<&RepositoryRow>,
    name: String,
    count: usize,
    stored: &AtomicUsize,
    uniques: &AtomicUsize,
) -> Result<(RepositoryRow, Vec<(String, String)>), String> {
    let rn = RepositoryName::parse(&name).map_err(err)?;
    let repo = match registry
        .create_repository(account, &rn, &RepoSettings::default())
        .await
    {
        Ok(repo) => repo,
        Err(berth_registry::RegistryError::RepositoryAlreadyExists { .. }) => {
            registry.repository(account, &rn).await.map_err(err)?
        }
        Err(e) => return Err(err(e)),
    };
    for b in [&shared.layer, &shared.config] {
        registry
            .bulk_import_blob(&repo, b.clone(), first)
            .await
            .map_err(err)?;
    }
    let mut ids = Vec::new();
    let mut batch: Vec<(Reference, Bytes)> = Vec::with_capacity(a.batch.min(count));
    let mut blobs: Vec<Bytes> = Vec::new();
    for j in 0..count {
        let mut layers = vec![json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": shared.layer_digest.to_string(), "size": shared.layer.len(),
        })];
        let own = a.unique_every > 0 && j % a.unique_every == 0;
        if own {
            let b = Bytes::from(format!("berth bench-fill layer {name} {j}"));
            let d = berth_oci::Digest::sha256_of(&b);
            layers.push(json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": d.to_string(), "size": b.len(),
            }));
            blobs.push(b);
        }
        let body = Bytes::from(
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": shared.config_digest.to_string(), "size": shared.config.len(),
                },
                "layers": layers,
                "annotations": { "org.opencontainers.image.revision": format!("{name} {j}") },
            }))
            .map_err(err)?,
        );
        let digest = berth_oci::Digest::sha256_of(&body);
        if own {
            ids.push((name.clone(), digest.to_string()));
        }
        let reference = if j % 4 == 3 {
            Reference::Digest(digest)
        } else {
            Reference::parse(&format!("v{j}")).map_err(err)?
        };
        batch.push((reference, body));
        if batch.len() == a.batch || j + 1 == count {
            // The batch's own layers first, several uploads at once (each is its
            // own upload and transaction, as a client's would be).
            let mut uploads = futures_util::stream::iter(std::mem::take(&mut blobs))
                .map(|b| registry.bulk_import_blob(&repo, b, None))
                .buffer_unordered(BLOB_UPLOADS);
            while let Some(done) = uploads.next().await {
                done.map_err(err)?;
                uniques.fetch_add(1, Ordering::Relaxed);
            }
            let n = registry
                .bulk_import_manifests(&repo, std::mem::take(&mut batch))
                .await
                .map_err(err)?;
            stored.fetch_add(n, Ordering::Relaxed);
        }
    }
    Ok((repo, ids))
}

//! `--scale`: how berth's cost grows with the registry (docs/benchmarks.md,
//! "Scale"). For each size a fresh berth (SQLite; PostgreSQL too with
//! `--with-postgres`) is filled through its core by `berth admin bench-fill`
//! (`crates/berth/src/bench_fill.rs`: batched transactions, nothing written
//! behind the core's back) with `size` images over `min(10,000, size / 10)`
//! repositories, a tenth of them in `bench/big`. Then, over the wire as a client:
//! p50/p99 of one page (100 entries, the second page: a cursor, not the start) of
//! `ListImages`, `DescribeImages` and `DescribeRepositories`, of `/v2/_catalog`
//! and `/v2/bench/big/tags/list`, and of a manifest GET; the lifecycle
//! evaluation of `bench/big` (`berth admin lifecycle run --dry-run`, process
//! start included); and the deletion of the tenth of the images that have a
//! layer of their own (`BatchDeleteImage`, 100 per call, 4 calls at a time) followed by a garbage
//! collection (`berth admin gc --grace-secs 0`) that reclaims their layers.
//! ECR calls are signed and sent on a fresh connection each (as the AWS CLI
//! does); registry GETs reuse one keep-alive connection.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};

use crate::client::{self, bail, read_body, Conn, Error, Result, SliceBody};
use crate::servers::{Databases, Server};
use crate::stats::{self, Summary};

/// The page target of the issue: p99 of a page under this at every size.
pub const PAGE_P99_MS: f64 = 20.0;
/// Images per page in every paged call.
const PAGE: usize = 100;
/// `BatchDeleteImage` calls in flight at once.
const DELETERS: usize = 4;
/// Repositories at most (the issue's 10,000).
const MAX_REPOS: usize = 10_000;

pub struct SizeResult {
    pub backend: &'static str,
    pub images: usize,
    pub repositories: usize,
    pub big: usize,
    pub fill_secs: f64,
    pub ops: Vec<(&'static str, Summary)>,
    pub lifecycle_secs: f64,
    pub lifecycle_expired: usize,
    pub deleted: usize,
    pub delete_secs: f64,
    pub gc_secs: f64,
    pub gc_report: String,
}

pub struct Outcome {
    pub sizes: Vec<SizeResult>,
    pub samples: usize,
}

impl Outcome {
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "## Scale\n\n{} samples per page after one warm-up; page = {PAGE} entries after a cursor; target p99 < {PAGE_P99_MS} ms, flat against size.\n\n",
            self.samples
        );
        let names: Vec<&str> = self
            .sizes
            .first()
            .map(|s| s.ops.iter().map(|(n, _)| *n).collect())
            .unwrap_or_default();
        md.push_str("| backend | images | repositories | fill | ");
        for n in &names {
            md.push_str(&format!("{n} p50/p99 ms | "));
        }
        md.push_str("\n|---|---:|---:|---:|");
        for _ in &names {
            md.push_str("---:|");
        }
        md.push('\n');
        for s in &self.sizes {
            md.push_str(&format!(
                "| {} | {} | {} | {:.1} s ({:.0}/s) | ",
                s.backend,
                s.images,
                s.repositories,
                s.fill_secs,
                s.images as f64 / s.fill_secs.max(1e-9)
            ));
            for (_, sum) in &s.ops {
                md.push_str(&format!("{:.2} / {:.2} | ", sum.p50_ms, sum.p99_ms));
            }
            md.push('\n');
        }
        md.push_str(&self.plot());
        md.push_str("\n| backend | images | lifecycle: images in bench/big | evaluation (dry run, process start included) | expired | images deleted | delete | GC | GC says |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for s in &self.sizes {
            md.push_str(&format!(
                "| {} | {} | {} | {:.2} s | {} | {} | {:.1} s | {:.1} s | {} |\n",
                s.backend,
                s.images,
                s.big,
                s.lifecycle_secs,
                s.lifecycle_expired,
                s.deleted,
                s.delete_secs,
                s.gc_secs,
                s.gc_report.replace('|', "/")
            ));
        }
        md
    }

    /// p50 and p99 of each page against size, per backend, as text bars (`=` to
    /// the p50, `#` on to the p99, one character per ms up to the target's
    /// 20 ms, `>` beyond): a flat picture is the same bar at every size.
    fn plot(&self) -> String {
        let mut out = String::from(
            "\nLatency against size (p50 `=`, p99 `#`, 1 ms a character, `>` past 20 ms):\n\n```\n",
        );
        let mut backends: Vec<&str> = self.sizes.iter().map(|s| s.backend).collect();
        backends.dedup();
        backends.sort();
        backends.dedup();
        for b in backends {
            let rows: Vec<&SizeResult> = self.sizes.iter().filter(|s| s.backend == b).collect();
            let Some(first) = rows.first() else { continue };
            for (k, (name, _)) in first.ops.iter().enumerate() {
                out.push_str(&format!("{b} {name}\n"));
                for r in &rows {
                    let Some((_, sum)) = r.ops.get(k) else {
                        continue;
                    };
                    out.push_str(&format!(
                        "  {:>9} |{}  {:.1}/{:.1} ms\n",
                        r.images,
                        bar(sum.p50_ms, sum.p99_ms),
                        sum.p50_ms,
                        sum.p99_ms
                    ));
                }
            }
        }
        out.push_str("```\n");
        out
    }

    pub fn json(&self) -> Value {
        json!({
            "page_p99_target_ms": PAGE_P99_MS,
            "samples": self.samples,
            "sizes": self.sizes.iter().map(|s| json!({
                "backend": s.backend,
                "images": s.images,
                "repositories": s.repositories,
                "big_repository_images": s.big,
                "fill_secs": s.fill_secs,
                "ops": s.ops.iter().map(|(n, sum)| json!({
                    "op": n, "count": sum.count, "p50_ms": sum.p50_ms, "p90_ms": sum.p90_ms,
                    "p99_ms": sum.p99_ms, "max_ms": sum.max_ms,
                })).collect::<Vec<_>>(),
                "lifecycle_secs": s.lifecycle_secs,
                "lifecycle_expired": s.lifecycle_expired,
                "deleted": s.deleted,
                "delete_secs": s.delete_secs,
                "gc_secs": s.gc_secs,
                "gc_report": s.gc_report,
            })).collect::<Vec<_>>(),
        })
    }

    /// Pages whose p99 missed the target.
    pub fn misses(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.sizes {
            for (n, sum) in &s.ops {
                if sum.p99_ms > PAGE_P99_MS {
                    out.push(format!(
                        "{} {n} at {} images: p99 {:.1} ms",
                        s.backend, s.images, sum.p99_ms
                    ));
                }
            }
        }
        out
    }
}

/// Runs the scenario at each size on SQLite, and on PostgreSQL when `postgres`
/// (an admin URL) is given.
pub async fn run(
    berth_bin: &Path,
    work: &Path,
    sizes: &[usize],
    postgres: Option<&str>,
    samples: usize,
) -> Result<Outcome> {
    let mut out = Vec::new();
    let mut dbs = postgres.map(Databases::new);
    for (i, &size) in sizes.iter().enumerate() {
        for backend in ["sqlite", "postgres"] {
            let dir = work.join(format!("{backend}-{i}"));
            let server = match backend {
                "sqlite" => Server::start_berth(berth_bin, dir, false).await?,
                _ => {
                    let Some(dbs) = dbs.as_mut() else { continue };
                    let url =
                        dbs.create(&format!("berth_bench_scale_{}_{i}", std::process::id()))?;
                    Server::start_berth_on(
                        berth_bin,
                        dir,
                        "berth (PostgreSQL)",
                        vec![("BERTH_DATABASE_URL".into(), url)],
                    )
                    .await?
                }
            };
            let r = one_size(&server, backend, size, samples, work).await?;
            eprintln!(
                "berth-bench: scale: {backend} {size} images: filled in {:.1} s; {}",
                r.fill_secs,
                r.ops
                    .iter()
                    .map(|(n, s)| format!("{n} p99 {:.2} ms", s.p99_ms))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            out.push(r);
        }
    }
    Ok(Outcome {
        sizes: out,
        samples,
    })
}

async fn one_size(
    server: &Server,
    backend: &'static str,
    size: usize,
    samples: usize,
    work: &Path,
) -> Result<SizeResult> {
    let repositories = (size / 10).clamp(2, MAX_REPOS);
    let big = (size / 10).max(PAGE * 2 + 2);
    let ids = work.join(format!("{backend}-{size}.ids"));
    let t = Instant::now();
    let said = server
        .admin(&[
            "bench-fill",
            "--repositories",
            &repositories.to_string(),
            "--images",
            &size.max(big).to_string(),
            "--big-repository-images",
            &big.to_string(),
            "--ids-out",
            ids.to_str().unwrap_or_default(),
        ])
        .await?;
    let fill_secs = t.elapsed().as_secs_f64();
    eprintln!("berth-bench: scale: {backend}: {}", said.trim());

    // Cursors: the token (or last name) after the first page of each list.
    let first = server
        .ecr(
            "ListImages",
            &json!({ "repositoryName": "bench/big", "maxResults": PAGE }),
        )
        .await?;
    let li_token = token(&first, "ListImages")?;
    let first = server
        .ecr(
            "DescribeImages",
            &json!({ "repositoryName": "bench/big", "maxResults": PAGE }),
        )
        .await?;
    let di_token = token(&first, "DescribeImages")?;
    let first = server
        .ecr(
            "DescribeRepositories",
            &json!({ "maxResults": PAGE.min(repositories - 1) }),
        )
        .await?;
    let dr_token = token(&first, "DescribeRepositories")?;
    let mut conn = Conn::new(server.addr, server.auth.clone());
    let mid_repo = format!("bench/r{:05}", (repositories / 2).max(1));
    let catalog = format!("/v2/_catalog?n={PAGE}&last={}", enc(&mid_repo));
    let tags = format!("/v2/bench/big/tags/list?n={PAGE}&last=v{}", big / 2);

    let mut ops = Vec::new();
    ops.push((
        "ListImages",
        sample(samples, || async {
            let v = server
                .ecr(
                    "ListImages",
                    &json!({ "repositoryName": "bench/big", "maxResults": PAGE, "nextToken": li_token }),
                )
                .await?;
            expect_len(&v["imageIds"], PAGE, "ListImages")
        })
        .await?,
    ));
    ops.push((
        "DescribeImages",
        sample(samples, || async {
            let v = server
                .ecr(
                    "DescribeImages",
                    &json!({ "repositoryName": "bench/big", "maxResults": PAGE, "nextToken": di_token }),
                )
                .await?;
            expect_len(&v["imageDetails"], PAGE, "DescribeImages")
        })
        .await?,
    ));
    ops.push((
        "DescribeRepositories",
        sample(samples, || async {
            let v = server
                .ecr(
                    "DescribeRepositories",
                    &json!({ "maxResults": PAGE.min(repositories - 1), "nextToken": dr_token }),
                )
                .await?;
            let n = v["repositories"].as_array().map_or(0, Vec::len);
            if n == 0 {
                bail!("DescribeRepositories: an empty page");
            }
            Ok(())
        })
        .await?,
    ));
    let mut get_ns = Vec::new();
    for (name, path) in [("_catalog", catalog.as_str()), ("tags/list", tags.as_str())] {
        get_ns.clear();
        for k in 0..=samples {
            let t = Instant::now();
            let body = get(&mut conn, path).await?;
            let v: Value =
                serde_json::from_slice(&body).map_err(|e| Error(format!("{name}: {e}")))?;
            let key = if name == "_catalog" {
                "repositories"
            } else {
                "tags"
            };
            if v[key].as_array().map_or(0, Vec::len) == 0 {
                bail!("{name}: an empty page");
            }
            if k > 0 {
                get_ns.push(stats::nanos(t.elapsed()));
            }
        }
        ops.push((name, summary(&mut get_ns)?));
    }
    get_ns.clear();
    for k in 0..=samples {
        let t = Instant::now();
        // A tagged image (`j % 4 != 3`) spread over the repository.
        client::get_manifest(
            &mut conn,
            "bench/big",
            &format!("v{}", (k * 8) % big / 4 * 4),
        )
        .await?;
        if k > 0 {
            get_ns.push(stats::nanos(t.elapsed()));
        }
    }
    ops.push(("manifest GET", summary(&mut get_ns)?));

    // Lifecycle: keep one image of bench/big, evaluate without deleting.
    server
        .ecr(
            "PutLifecyclePolicy",
            &json!({
                "repositoryName": "bench/big",
                "lifecyclePolicyText": json!({ "rules": [{
                    "rulePriority": 1,
                    "selection": { "tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1 },
                    "action": { "type": "expire" },
                }] }).to_string(),
            }),
        )
        .await?;
    let t = Instant::now();
    let said = server
        .admin(&["lifecycle", "run", "--repository", "bench/big", "--dry-run"])
        .await?;
    let lifecycle_secs = t.elapsed().as_secs_f64();
    let lifecycle_expired = said
        .lines()
        .filter(|l| l.starts_with("would expire"))
        .count();

    // Delete the images with a layer of their own, then collect.
    let text = std::fs::read_to_string(&ids)?;
    let mut by_repo: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for l in text.lines() {
        if let Some((r, d)) = l.split_once('\t') {
            by_repo.entry(r).or_default().push(d);
        }
    }
    // `BatchDeleteImage` takes one repository's ids (at most 100): with 10,000
    // repositories that is one call per repository or more, so the calls go
    // [`DELETERS`] at a time, as a cleanup script would send them.
    let calls: Vec<(&str, &[&str])> = by_repo
        .iter()
        .flat_map(|(r, ds)| ds.chunks(100).map(move |c| (*r, c)))
        .collect();
    let shard = |k: usize| {
        let calls = &calls;
        async move {
            let mut n = 0;
            for (repo, chunk) in calls.iter().skip(k).step_by(DELETERS) {
                let v = server
                    .ecr(
                        "BatchDeleteImage",
                        &json!({
                            "repositoryName": repo,
                            "imageIds": chunk.iter().map(|d| json!({ "imageDigest": d })).collect::<Vec<_>>(),
                        }),
                    )
                    .await?;
                if v["failures"].as_array().is_some_and(|f| !f.is_empty()) {
                    bail!("BatchDeleteImage in {repo}: {}", v["failures"]);
                }
                n += chunk.len();
            }
            Ok::<usize, Error>(n)
        }
    };
    let t = Instant::now();
    let (a, b, c, d) = tokio::join!(shard(0), shard(1), shard(2), shard(3));
    let deleted = a? + b? + c? + d?;
    let delete_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let said = server.admin(&["gc", "--grace-secs", "0"]).await?;
    let gc_secs = t.elapsed().as_secs_f64();
    let gc_report = said.lines().last().unwrap_or_default().trim().to_string();
    Ok(SizeResult {
        backend,
        images: size.max(big),
        repositories,
        big,
        fill_secs,
        ops,
        lifecycle_secs,
        lifecycle_expired,
        deleted,
        delete_secs,
        gc_secs,
        gc_report,
    })
}

/// `=` up to `p50`, `#` up to `p99`, one per ms, at most [`PAGE_P99_MS`] wide
/// (then `>`); padded to that width.
fn bar(p50: f64, p99: f64) -> String {
    let width = PAGE_P99_MS as usize;
    let cells = |ms: f64| (ms.round().max(1.0) as usize).min(width);
    let (a, b) = (cells(p50), cells(p99.max(p50)));
    let mut s = "=".repeat(a) + &"#".repeat(b - a);
    s.push_str(&" ".repeat(width - b));
    s.push(if p99 > PAGE_P99_MS { '>' } else { ' ' });
    s
}

fn token(v: &Value, op: &str) -> Result<String> {
    v["nextToken"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error(format!("{op}: no nextToken after the first page")))
}

fn expect_len(v: &Value, n: usize, op: &str) -> Result<()> {
    let got = v.as_array().map_or(0, Vec::len);
    if got != n {
        bail!("{op}: a page of {got} entries, expected {n}");
    }
    Ok(())
}

/// `samples` timed calls after one warm-up.
async fn sample<F, Fut>(samples: usize, mut f: F) -> Result<Summary>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut ns = Vec::with_capacity(samples);
    for k in 0..=samples {
        let t = Instant::now();
        f().await?;
        if k > 0 {
            ns.push(stats::nanos(t.elapsed()));
        }
    }
    summary(&mut ns)
}

fn summary(ns: &mut [u64]) -> Result<Summary> {
    stats::summarize(ns).ok_or_else(|| Error("no samples".into()))
}

async fn get(conn: &mut Conn, path: &str) -> Result<bytes::Bytes> {
    let resp = conn
        .send(hyper::Method::GET, path, &[], SliceBody::empty())
        .await?;
    let status = resp.status();
    let body = read_body(resp).await?;
    if !status.is_success() {
        bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(body)
}

fn enc(s: &str) -> String {
    s.replace('/', "%2F")
}

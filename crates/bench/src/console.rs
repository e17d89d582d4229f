//! `--console`: the web console's page latencies over registries of a few sizes
//! (docs/benchmarks.md, "Console pages").
//!
//! For each size a fresh berth is seeded through its own core over the wire — ECR
//! `CreateRepository`, one config and layer per repository, then one manifest PUT
//! per image (each manifest made unique by an annotation, tagged `v<n>`) from
//! several connections; nothing is written behind the server's back. The harness
//! then signs in to the console as the account root (the sign-in form, its CSRF
//! token and cookies, as a browser does) and fetches Overview, the repository
//! list, one repository's image list and one image's detail, each a number of
//! times on one keep-alive connection, checking every answer (status 200 and the
//! page's heading); times are the loopback round trip, an upper bound on server
//! time.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::client::{self, bail, read_body, Conn, Error, Result, SliceBody};
use crate::servers::{self, Server};
use crate::stats::{self, Summary};

/// The page target of the issue: every page under this much server time.
pub const TARGET_MS: f64 = 100.0;
/// Connections that seed manifests at once.
const SEEDERS: usize = 8;

pub struct SizeResult {
    pub repos: usize,
    pub images: usize,
    pub seed_secs: f64,
    pub pages: Vec<(&'static str, String, Summary)>,
}

pub struct Outcome {
    pub sizes: Vec<SizeResult>,
    pub fetches: usize,
}

impl Outcome {
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "## Console pages\n\nRound trip of each page over loopback (an upper bound on server time), {} fetches per page after one warm-up; target {TARGET_MS} ms.\n\n| repositories | images | seeded in | page | p50 ms | p90 ms | max ms |\n|---:|---:|---:|---|---:|---:|---:|\n",
            self.fetches
        );
        for s in &self.sizes {
            for (name, _, sum) in &s.pages {
                md.push_str(&format!(
                    "| {} | {} | {:.1} s | {name} | {:.1} | {:.1} | {:.1} |\n",
                    s.repos, s.images, s.seed_secs, sum.p50_ms, sum.p90_ms, sum.max_ms
                ));
            }
        }
        md
    }

    pub fn json(&self) -> Value {
        json!({
            "target_ms": TARGET_MS,
            "fetches_per_page": self.fetches,
            "sizes": self.sizes.iter().map(|s| json!({
                "repositories": s.repos,
                "images": s.images,
                "seed_secs": s.seed_secs,
                "pages": s.pages.iter().map(|(name, path, sum)| json!({
                    "page": name, "path": path, "count": sum.count,
                    "p50_ms": sum.p50_ms, "p90_ms": sum.p90_ms, "p99_ms": sum.p99_ms, "max_ms": sum.max_ms,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    /// Pages whose median missed the target.
    pub fn misses(&self) -> Vec<String> {
        self.sizes
            .iter()
            .flat_map(|s| {
                s.pages
                    .iter()
                    .filter(|(_, _, sum)| sum.p50_ms > TARGET_MS)
                    .map(move |(name, _, sum)| {
                        format!("{name} at {} images: p50 {:.1} ms", s.images, sum.p50_ms)
                    })
            })
            .collect()
    }
}

fn repo_name(r: usize) -> String {
    format!("bench/r{r:04}")
}

/// Seeds `repos` repositories holding `images` images in all, through the API.
async fn seed(server: &Server, repos: usize, images: usize) -> Result<Vec<String>> {
    let layer = Bytes::from(vec![7u8; 4096]);
    let layer_digest = client::sha256_digest(&layer);
    let config = client::image_config(std::slice::from_ref(&layer_digest), 1);
    let config_digest = client::sha256_digest(&config);
    let mut conn = Conn::new(server.addr, server.auth.clone());
    for r in 0..repos {
        let name = repo_name(r);
        server
            .ecr("CreateRepository", &json!({ "repositoryName": name }))
            .await?;
        client::push_monolithic(&mut conn, &name, layer.clone(), &layer_digest).await?;
        client::push_monolithic(&mut conn, &name, config.clone(), &config_digest).await?;
    }
    let base = client::image_manifest(
        &(config_digest, config.len() as u64),
        &[(layer_digest, layer.len() as u64)],
    );
    let base: Value = serde_json::from_slice(&base).map_err(|e| Error(e.to_string()))?;
    let mut tasks = Vec::new();
    for w in 0..SEEDERS {
        let addr = server.addr;
        let auth = server.auth.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(addr, auth);
            let mut first = Vec::new();
            for i in (w..images).step_by(SEEDERS) {
                let mut m = base.clone();
                m["annotations"] = json!({ "berth.bench.image": i.to_string() });
                let body = Bytes::from(m.to_string());
                let r = i % repos;
                if i < repos {
                    first.push((r, client::sha256_digest(&body)));
                }
                client::put_manifest(&mut conn, &repo_name(r), &format!("v{i}"), body).await?;
            }
            Ok::<_, Error>(first)
        }));
    }
    let mut digests = vec![String::new(); repos];
    for t in tasks {
        for (r, d) in t.await.map_err(|e| Error(format!("seeder: {e}")))?? {
            digests[r] = d;
        }
    }
    Ok(digests)
}

fn set_cookie(resp: &hyper::Response<hyper::body::Incoming>, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .and_then(|kv| kv.strip_prefix(&format!("{name}=")))
                .map(str::to_string)
        })
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Signs in to the console as the account root; the session cookie header.
async fn sign_in(conn: &mut Conn) -> Result<String> {
    let resp = conn
        .send(Method::GET, "/console/sign-in", &[], SliceBody::empty())
        .await?;
    let pre = set_cookie(&resp, "berth_console_signin")
        .ok_or_else(|| Error("console sign-in page: no sign-in cookie".into()))?;
    let html = String::from_utf8_lossy(&read_body(resp).await?).to_string();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .ok_or_else(|| Error("console sign-in page: no CSRF token".into()))?
        .to_string();
    let form = format!(
        "csrf={}&access_key_id={}&secret_access_key={}",
        enc(&csrf),
        enc(servers::ACCESS_KEY_ID),
        enc(servers::SECRET_ACCESS_KEY)
    );
    let len = form.len().to_string();
    let cookie = format!("berth_console_signin={pre}");
    let resp = conn
        .send(
            Method::POST,
            "/console/sign-in",
            &[
                ("cookie", &cookie),
                ("content-type", "application/x-www-form-urlencoded"),
                ("content-length", &len),
            ],
            SliceBody::sized(Bytes::from(form)),
        )
        .await?;
    if resp.status() != StatusCode::SEE_OTHER {
        bail!("console sign-in: {}", resp.status());
    }
    let session = set_cookie(&resp, "berth_console")
        .ok_or_else(|| Error("console sign-in: no session cookie".into()))?;
    read_body(resp).await?;
    Ok(format!("berth_console={session}"))
}

/// Fetches `path` `fetches` times after a warm-up; every answer must be 200 and
/// hold `marker`.
async fn time_page(
    conn: &mut Conn,
    cookie: &str,
    path: &str,
    marker: &str,
    fetches: usize,
) -> Result<Summary> {
    let mut samples = Vec::with_capacity(fetches);
    for i in 0..=fetches {
        let t = Instant::now();
        let resp = conn
            .send(Method::GET, path, &[("cookie", cookie)], SliceBody::empty())
            .await?;
        let status = resp.status();
        let body = read_body(resp).await?;
        let elapsed = t.elapsed();
        let text = String::from_utf8_lossy(&body);
        if status != StatusCode::OK || !text.contains(marker) {
            bail!(
                "{path}: {status}, want 200 with {marker:?}: {}",
                text.chars().take(300).collect::<String>()
            );
        }
        if i > 0 {
            samples.push(stats::nanos(elapsed));
        }
    }
    stats::summarize(&mut samples).ok_or_else(|| Error(format!("{path}: no samples")))
}

/// Runs the scenario at each `(repositories, images)` size.
pub async fn run(
    berth_bin: &Path,
    work: &Path,
    sizes: &[(usize, usize)],
    fetches: usize,
) -> Result<Outcome> {
    let mut out = Vec::new();
    for (n, &(repos, images)) in sizes.iter().enumerate() {
        let repos = repos.max(1);
        let images = images.max(repos);
        let server = Server::start_berth(berth_bin, work.join(format!("size-{n}")), false).await?;
        let t = Instant::now();
        let digests = seed(&server, repos, images).await?;
        let seed_secs = t.elapsed().as_secs_f64();
        eprintln!("berth-bench: console: {repos} repositories, {images} images seeded in {seed_secs:.1} s");
        let mut conn = Conn::new(server.addr, None);
        let cookie = sign_in(&mut conn).await?;
        let repo = repo_name(0);
        let pages: [(&'static str, String, &str); 4] = [
            ("Overview", "/console/overview".into(), "<h1>Overview</h1>"),
            (
                "Repositories",
                "/console/repositories".into(),
                "Private repositories",
            ),
            (
                "Images",
                format!("/console/images?name={}", enc(&repo)),
                &digests[0],
            ),
            (
                "Image detail",
                format!(
                    "/console/image?name={}&digest={}",
                    enc(&repo),
                    enc(&digests[0])
                ),
                "<h2>Layers</h2>",
            ),
        ];
        let mut results = Vec::new();
        for (name, path, marker) in pages {
            let sum = time_page(&mut conn, &cookie, &path, marker, fetches).await?;
            results.push((name, path, sum));
        }
        drop(server);
        out.push(SizeResult {
            repos,
            images,
            seed_secs,
            pages: results,
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Outcome {
        sizes: out,
        fetches,
    })
}

//! Faults a registry must ride out: the database going away for a while (requests
//! get `503` with `Retry-After` within a bound, never a hang; `/readyz` turns false;
//! the pool reconnects by itself; nothing acknowledged is lost) and a full disk (a
//! push that hits `ENOSPC` fails with a clear error in the protocol's shape, leaves
//! nothing half-visible, reads keep working, and pushes work again once space is
//! freed, without a restart); an object store that goes away (503 too, then
//! recovery); kill -9 at arbitrary instants under concurrent pushes on every
//! backend (nothing acknowledged is lost).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use berth_testsupport::layout::{image, pseudo_random, tar_gz_layer, Image, OCI_LAYER_GZIP};
use berth_testsupport::server::workspace_root;
use berth_testsupport::{Backend, Berth, Blob, Http, Response, TempDir};

fn small_image(seed: &str) -> Image {
    let layer = tar_gz_layer(
        OCI_LAYER_GZIP,
        &[("etc/marker", 0o644, seed.as_bytes().to_vec())],
    );
    image(vec![layer], "amd64", false)
}

/// A PostgreSQL server of the test's own (`scripts/pg-start DIR PORT`), so that
/// stopping it disturbs no other test.
struct PrivatePostgres {
    dir: TempDir,
    port: u16,
}

impl PrivatePostgres {
    fn start() -> PrivatePostgres {
        let dir = TempDir::short("berth-pgf");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = PrivatePostgres { dir, port };
        p.run_start_script();
        p
    }

    fn run_start_script(&self) {
        let out = Command::new("bash")
            .arg(workspace_root().join("scripts/pg-start"))
            .arg(self.cluster())
            .arg(self.port.to_string())
            .output()
            .expect("run scripts/pg-start");
        assert!(
            out.status.success(),
            "scripts/pg-start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn cluster(&self) -> PathBuf {
        self.dir.join("pg")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin/pg_ctl"))
            .filter(|p| p.is_file())
            .max()
            .expect("pg_ctl");
        let data = self.cluster().join("data");
        let log = self.cluster().join("pg.log");
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "berthpg", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let out = cmd
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(args)
            .output()
            .expect("run pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&self) {
        self.pg_ctl(&["-w", "-m", "fast", "stop"]);
    }

    /// Starts the stopped server again on its data (the start script would make
    /// a fresh cluster).
    fn start_again(&self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=on",
            self.port,
            self.cluster().display()
        );
        self.pg_ctl(&["-w", "-o", &opts, "start"]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| self.stop());
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Sends until `ok` holds for the response, for at most `within`.
#[track_caller]
fn eventually(
    what: &str,
    within: Duration,
    mut send: impl FnMut() -> Response,
    ok: impl Fn(&Response) -> bool,
) -> Response {
    let start = Instant::now();
    loop {
        let r = send();
        if ok(&r) {
            return r;
        }
        if start.elapsed() > within {
            panic!("{what}: still {} after {within:?}", r.describe());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn database_outage_answers_503_then_recovers_without_a_restart() {
    if !Backend::postgres_available() {
        return;
    }
    let pg = PrivatePostgres::start();
    let berth = Berth::options(Backend::Sqlite)
        .env("BERTH_DATABASE_URL", &pg.url())
        .env("BERTH_DATABASE_TIMEOUT_SECS", "3")
        .start();
    let http = berth.http();
    let img = small_image("before the outage");
    img.push(&http, "outage/app", "v1").expect_status(201);

    pg.stop();
    // Every kind of request: a read, a write, the ECR API, readiness. Each answers
    // within the bound (no hang) with 503 and Retry-After.
    let t = Instant::now();
    let r = http.get("/v2/outage/app/manifests/v1");
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "a read took {:?}",
        t.elapsed()
    );
    r.expect_oci_error(503, "UNAVAILABLE");
    assert!(r.header("retry-after").is_some(), "{}", r.describe());
    let r = http.send("POST", "/v2/outage/app/blobs/uploads/", &[], "");
    r.expect_oci_error(503, "UNAVAILABLE");
    assert!(r.header("retry-after").is_some(), "{}", r.describe());
    let r = berth.ecr("DescribeRepositories", &serde_json::json!({}));
    assert_eq!(r.status, 503, "{}", r.describe());
    assert!(r.header("retry-after").is_some(), "{}", r.describe());
    Http::new(berth.addr()).get("/readyz").expect_status(503);

    pg.start_again();
    // The pool reconnects by itself: no restart of berth.
    eventually(
        "readiness after the outage",
        Duration::from_secs(30),
        || Http::new(berth.addr()).get("/readyz"),
        |r| r.status == 200,
    );
    let r = eventually(
        "the manifest after the outage",
        Duration::from_secs(30),
        || http.get("/v2/outage/app/manifests/v1"),
        |r| r.status == 200,
    );
    assert_eq!(
        r.body, img.manifest.bytes,
        "the acknowledged manifest is intact"
    );
    for b in img.blobs() {
        let r = http.get(&format!("/v2/outage/app/blobs/{}", b.digest));
        r.expect_status(200);
        assert!(r.body == b.bytes);
    }
    let after = small_image("after the outage");
    after.push(&http, "outage/app", "v2").expect_status(201);
    berth
        .ecr("DescribeRepositories", &serde_json::json!({}))
        .expect_status(200);
}

/// A small tmpfs mounted for the test (root only), unmounted on drop.
struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    /// None when this is not root (outside CI, where the test then skips).
    fn mount(mib: u32) -> Option<SmallDisk> {
        let dir = TempDir::new("berth-fulldisk");
        let ok = is_root()
            && Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
        if ok {
            return Some(SmallDisk { dir });
        }
        if std::env::var("CI").is_ok_and(|v| !v.is_empty()) {
            panic!("cannot mount a {mib} MiB tmpfs for the full-disk test: CI runs as root");
        }
        eprintln!("skipping the full-disk test: mounting a tmpfs needs root");
        None
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn full_disk_fails_the_push_cleanly_and_recovers_once_space_is_freed() {
    let Some(disk) = SmallDisk::mount(24) else {
        return;
    };
    let blobs = disk.path().join("store");
    let berth = Berth::options(Backend::Sqlite)
        .env("BERTH_BLOB_STORE", &format!("file://{}", blobs.display()))
        .start();
    let http = berth.http();
    let img = small_image("stored before the disk filled up");
    img.push(&http, "full/app", "v1").expect_status(201);

    // Fill the disk but for ~1 MiB.
    let filler = disk.path().join("filler");
    let avail = {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(disk.path())
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse::<usize>().ok())
            .expect("df's available bytes")
    };
    std::fs::write(&filler, vec![0u8; avail.saturating_sub(1024 * 1024)])
        .expect("write the filler");

    // A monolithic push of 4 MiB: a clear OCI error, nothing visible.
    let big = Blob::new(
        "application/octet-stream",
        pseudo_random(5, 4 * 1024 * 1024),
    );
    let r = http.send(
        "POST",
        &format!("/v2/full/app/blobs/uploads/?digest={}", big.digest),
        &[("Content-Type", "application/octet-stream")],
        big.bytes.clone(),
    );
    r.expect_oci_error(507, "UNKNOWN");
    assert!(r.text().contains("storage is full"), "{}", r.describe());
    http.head(&format!("/v2/full/app/blobs/{}", big.digest))
        .expect_status(404);

    // A chunked push: the PATCH that does not fit fails the same way.
    let r = http.send("POST", "/v2/full/app/blobs/uploads/", &[], "");
    r.expect_status(202);
    let loc = r.location();
    let r = http.send(
        "PATCH",
        &loc,
        &[("Content-Type", "application/octet-stream")],
        big.bytes.clone(),
    );
    r.expect_oci_error(507, "UNKNOWN");
    http.head(&format!("/v2/full/app/blobs/{}", big.digest))
        .expect_status(404);

    // The ECR API: UploadLayerPart answers an exception with the same message.
    let r = berth.ecr(
        "InitiateLayerUpload",
        &serde_json::json!({"repositoryName": "full/app"}),
    );
    r.expect_status(200);
    let id = r.json()["uploadId"].as_str().unwrap().to_string();
    let r = berth.ecr(
        "UploadLayerPart",
        &serde_json::json!({
            "repositoryName": "full/app",
            "uploadId": id,
            "partFirstByte": 0,
            "partLastByte": big.bytes.len() - 1,
            "layerPartBlob": base64::engine::general_purpose::STANDARD.encode(&big.bytes),
        }),
    );
    assert_eq!(r.status, 500, "{}", r.describe());
    assert_eq!(r.json()["__type"], "ServerException", "{}", r.describe());
    assert!(r.text().contains("storage is full"), "{}", r.describe());

    // Reads keep working.
    let r = http.get("/v2/full/app/manifests/v1");
    r.expect_status(200);
    assert_eq!(r.body, img.manifest.bytes);
    for b in img.blobs() {
        let r = http.get(&format!("/v2/full/app/blobs/{}", b.digest));
        r.expect_status(200);
        assert!(r.body == b.bytes);
    }

    // Space freed: the same push works, without a restart, and reads back whole.
    std::fs::remove_file(&filler).unwrap();
    let r = http.send(
        "POST",
        &format!("/v2/full/app/blobs/uploads/?digest={}", big.digest),
        &[("Content-Type", "application/octet-stream")],
        big.bytes.clone(),
    );
    r.expect_status(201);
    let r = http.get(&format!("/v2/full/app/blobs/{}", big.digest));
    r.expect_status(200);
    assert!(
        r.body == big.bytes,
        "the blob pushed after the disk was freed differs"
    );
    let again = small_image("stored after space was freed");
    again.push(&http, "full/app", "v2").expect_status(201);
}

/// A TCP proxy in front of the S3 test endpoint that can be taken down: while down
/// it drops every open connection and closes new ones at once, as an object store
/// that went away does.
struct FlakyProxy {
    addr: std::net::SocketAddr,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl FlakyProxy {
    fn start(upstream: &str) -> FlakyProxy {
        use std::sync::atomic::Ordering;
        let upstream: std::net::SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("BERTH_TEST_S3_ENDPOINT is http://host:port");
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let generation = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (d, g) = (down.clone(), generation.clone());
        std::thread::spawn(move || {
            for client in l.incoming().flatten() {
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(upstream) else {
                    continue;
                };
                let born = g.load(Ordering::SeqCst);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let (d, g) = (d.clone(), g.clone());
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        from.set_read_timeout(Some(Duration::from_millis(200)))
                            .unwrap();
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            if d.load(Ordering::SeqCst) || g.load(Ordering::SeqCst) != born {
                                let _ = from.shutdown(std::net::Shutdown::Both);
                                let _ = to.shutdown(std::net::Shutdown::Both);
                                return;
                            }
                            match from.read(&mut buf) {
                                Ok(0) => {
                                    let _ = to.shutdown(std::net::Shutdown::Write);
                                    return;
                                }
                                Ok(n) => {
                                    // Bytes read now were sent after any take-down
                                    // that happened while this read waited: look
                                    // again before passing them on.
                                    if d.load(Ordering::SeqCst) || g.load(Ordering::SeqCst) != born
                                    {
                                        let _ = from.shutdown(std::net::Shutdown::Both);
                                        let _ = to.shutdown(std::net::Shutdown::Both);
                                        return;
                                    }
                                    if to.write_all(&buf[..n]).is_err() {
                                        return;
                                    }
                                }
                                Err(e)
                                    if e.kind() == std::io::ErrorKind::WouldBlock
                                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                                Err(_) => return,
                            }
                        }
                    });
                }
            }
        });
        FlakyProxy {
            addr,
            down,
            generation,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_down(&self, down: bool) {
        use std::sync::atomic::Ordering;
        self.down.store(down, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn object_store_outage_answers_503_then_recovers() {
    if !Backend::postgres_s3_available() {
        return;
    }
    let endpoint = std::env::var("BERTH_TEST_S3_ENDPOINT").unwrap();
    let proxy = FlakyProxy::start(&endpoint);
    let berth = Berth::options(Backend::PostgresS3)
        .env("BERTH_S3_ENDPOINT", &proxy.url())
        .start();
    let http = berth.http();
    let img = small_image("in the bucket before the outage");
    img.push(&http, "s3down/app", "v1").expect_status(201);
    let layer = img.blobs().last().unwrap().clone();

    proxy.set_down(true);
    // Blob bytes live in the object store: after the client's retries, a clear 503.
    let t = Instant::now();
    let r = http.get(&format!("/v2/s3down/app/blobs/{}", layer.digest));
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "a blob read took {:?}",
        t.elapsed()
    );
    r.expect_oci_error(503, "UNAVAILABLE");
    assert!(r.header("retry-after").is_some(), "{}", r.describe());
    let fresh = Blob::new("application/octet-stream", pseudo_random(9, 300_000));
    let r = http.send(
        "POST",
        &format!("/v2/s3down/app/blobs/uploads/?digest={}", fresh.digest),
        &[("Content-Type", "application/octet-stream")],
        fresh.bytes.clone(),
    );
    r.expect_oci_error(503, "UNAVAILABLE");
    http.head(&format!("/v2/s3down/app/blobs/{}", fresh.digest))
        .expect_status(404);
    // What the database answers alone keeps working.
    let r = http.get("/v2/s3down/app/manifests/v1");
    r.expect_status(200);
    assert_eq!(r.body, img.manifest.bytes);
    Http::new(berth.addr()).get("/readyz").expect_status(503);

    proxy.set_down(false);
    eventually(
        "readiness after the outage",
        Duration::from_secs(30),
        || Http::new(berth.addr()).get("/readyz"),
        |r| r.status == 200,
    );
    let r = http.get(&format!("/v2/s3down/app/blobs/{}", layer.digest));
    r.expect_status(200);
    assert!(r.body == layer.bytes, "the acknowledged blob is intact");
    let r = http.send(
        "POST",
        &format!("/v2/s3down/app/blobs/uploads/?digest={}", fresh.digest),
        &[("Content-Type", "application/octet-stream")],
        fresh.bytes.clone(),
    );
    r.expect_status(201);
}

/// Pushes images (two layers each, the manifest last) until a request fails;
/// returns the images whose manifest `PUT` was acknowledged with 201, and their tag.
fn push_until_failure(http: Http, repo: String, seed: u64) -> Vec<(String, Image)> {
    let mut done = Vec::new();
    for i in 0.. {
        let layers = (0..2)
            .map(|l| {
                let bytes =
                    pseudo_random(seed * 1000 + i * 2 + l, 200_000 + (l as usize) * 300_000);
                tar_gz_layer(OCI_LAYER_GZIP, &[("data/blob", 0o644, bytes)])
            })
            .collect();
        let img = image(layers, "amd64", false);
        let tag = format!("t{i}");
        for b in img.blobs() {
            let ok = http
                .try_send(
                    "POST",
                    &format!("/v2/{repo}/blobs/uploads/?digest={}", b.digest),
                    &[("Content-Type", "application/octet-stream")],
                    b.bytes.clone().into(),
                )
                .is_ok_and(|r| r.status == 201);
            if !ok {
                return done;
            }
        }
        let acked = http
            .try_send(
                "PUT",
                &format!("/v2/{repo}/manifests/{tag}"),
                &[("Content-Type", img.manifest.media_type.as_str())],
                img.manifest.bytes.clone().into(),
            )
            .is_ok_and(|r| r.status == 201);
        if !acked {
            return done;
        }
        done.push((tag, img));
    }
    done
}

berth_testsupport::all_backends! {
    /// kill -9 at arbitrary instants under concurrent pushes, three times over:
    /// every push acknowledged before a crash is whole after the restart.
    fn kill9_under_concurrent_pushes_loses_nothing_acknowledged(backend) {
        let mut berth = Berth::start(backend);
        let mut acknowledged: Vec<(String, String, Image)> = Vec::new();
        for round in 0..3u64 {
            let http = berth.http();
            let pushers: Vec<_> = (0..4u64)
                .map(|p| {
                    let http = http.clone();
                    let repo = format!("crash/r{round}-p{p}");
                    std::thread::spawn(move || {
                        let got = push_until_failure(http, repo.clone(), round * 10 + p);
                        got.into_iter().map(|(t, i)| (repo.clone(), t, i)).collect::<Vec<_>>()
                    })
                })
                .collect();
            // Somewhere in the middle of uploads and manifest writes.
            std::thread::sleep(Duration::from_millis(700 + 450 * round));
            berth.kill9();
            for p in pushers {
                acknowledged.extend(p.join().expect("pusher thread"));
            }
            eprintln!("round {round}: {} pushes acknowledged so far", acknowledged.len());
            berth.restart();
            let http = berth.http();
            for (repo, tag, img) in &acknowledged {
                let r = http.get(&format!("/v2/{repo}/manifests/{tag}"));
                assert_eq!(r.status, 200, "round {round}: acknowledged {repo}:{tag} was lost: {}", r.describe());
                assert_eq!(r.body, img.manifest.bytes, "round {round}: {repo}:{tag} changed");
                for b in img.blobs() {
                    let r = http.get(&format!("/v2/{repo}/blobs/{}", b.digest));
                    assert_eq!(r.status, 200, "round {round}: blob {} of {repo}:{tag} was lost", b.digest);
                    assert!(r.body == b.bytes, "round {round}: blob {} of {repo}:{tag} is corrupt", b.digest);
                }
            }
        }
        assert!(
            acknowledged.len() >= 3,
            "too few pushes were acknowledged before the crashes to test anything: {}",
            acknowledged.len()
        );
        // A full collection after the crashes keeps every acknowledged image.
        berth.admin(&["gc", "--grace-secs", "0"]);
        let http = berth.http();
        for (repo, tag, img) in &acknowledged {
            http.get(&format!("/v2/{repo}/manifests/{tag}")).expect_status(200);
            for b in img.blobs() {
                http.head(&format!("/v2/{repo}/blobs/{}", b.digest)).expect_status(200);
            }
        }
    }
}

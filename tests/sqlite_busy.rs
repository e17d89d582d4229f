//! SQLite locked by another process (`docs/architecture.md`, "When a store fails"):
//! while a foreign connection holds the write lock (`BEGIN IMMEDIATE`, from Python's
//! sqlite3), writes wait for it and reads go on — no request answers 500; a lock
//! held past SQLite's busy timeout (10 s) is a 503 with `Retry-After` in each
//! protocol's shape, and writes work again once it is released.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_testsupport::layout::{image, pseudo_random, sha256_digest, Blob};
use berth_testsupport::tools::require;
use berth_testsupport::{Backend, Berth, Http, Image};
use serde_json::json;

fn small_image(seed: u64) -> Image {
    let raw = pseudo_random(seed, 200_000);
    let diff_id = sha256_digest(&raw);
    let layer = Blob::new("application/vnd.oci.image.layer.v1.tar", raw);
    image(vec![(layer, diff_id)], "amd64", false)
}

/// Holds the database's write lock from another process for `secs`; returns once
/// the lock is taken.
fn hold_write_lock(berth: &Berth, secs: f64) -> Child {
    require("python3", "apt-get install -y python3");
    let db = berth.data_dir().join("meta.db");
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n\
             c.execute('BEGIN IMMEDIATE')\n\
             print('locked', flush=True)\n\
             time.sleep(float(sys.argv[2]))\n\
             c.execute('ROLLBACK')\n",
        ])
        .arg(&db)
        .arg(secs.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the lock holder's output");
    assert_eq!(line.trim(), "locked");
    child
}

fn pull(http: &Http, repo: &str, img: &Image) -> Vec<u16> {
    let mut statuses = vec![http.get(&format!("/v2/{repo}/manifests/v1")).status];
    for b in img.blobs() {
        let r = http.get(&format!("/v2/{repo}/blobs/{}", b.digest));
        assert!(r.status != 200 || r.body == b.bytes);
        statuses.push(r.status);
    }
    statuses
}

#[test]
fn a_locked_sqlite_database_makes_writes_wait_never_fail_with_500() {
    let berth = Berth::start(Backend::Sqlite);
    let http = berth.http();
    let a = small_image(1);
    a.push(&http, "busy/app", "v1").expect_status(201);
    let b = small_image(2);

    // A lock shorter than the busy timeout: the push waits for it and succeeds;
    // pulls go on meanwhile.
    let mut holder = hold_write_lock(&berth, 3.0);
    let locked_at = Instant::now();
    let (push_status, push_took, pulls) = std::thread::scope(|s| {
        let pusher = s.spawn(|| {
            let t = Instant::now();
            let r = b.push(&http, "busy/app", "v2");
            (r.status, t.elapsed())
        });
        let mut pulls = Vec::new();
        while locked_at.elapsed() < Duration::from_secs(3) {
            pulls.extend(pull(&http, "busy/app", &a));
        }
        let (st, took) = pusher.join().expect("the pushing thread");
        (st, took, pulls)
    });
    holder.wait().expect("the lock holder");
    assert_eq!(push_status, 201, "a push under a short lock");
    assert!(
        push_took >= Duration::from_millis(2000),
        "the push did not wait for the lock ({push_took:?}): was the database locked?"
    );
    assert!(pulls.len() >= 6, "{pulls:?}");
    assert!(
        pulls.iter().all(|s| *s == 200),
        "pulls under the lock: {pulls:?}"
    );
    assert_eq!(pull(&http, "busy/app", &b), vec![200; 3]);

    // A lock past the busy timeout: writes answer 503 with Retry-After (OCI error
    // body on /v2/, ServiceUnavailableException on the ECR API), reads still 200.
    let c = small_image(3);
    for blob in c.blobs() {
        berth_testsupport::layout::push_blob(&http, "busy/app", blob);
    }
    // Pull times are buffered and written every 2 s: let the last ones be written
    // before the lock, so that no background write queues ahead of the requests.
    std::thread::sleep(Duration::from_millis(2500));
    let mut holder = hold_write_lock(&berth, 22.0);
    let t = Instant::now();
    let r = http.send(
        "PUT",
        "/v2/busy/app/manifests/v3",
        &[("Content-Type", c.manifest.media_type.as_str())],
        c.manifest.bytes.clone(),
    );
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    r.expect_oci_error(503, "UNAVAILABLE");
    assert!(r.header("retry-after").is_some(), "{}", r.describe());
    let r = berth.ecr("CreateRepository", &json!({"repositoryName": "busy/other"}));
    assert_eq!(r.status, 503, "{}", r.describe());
    assert_eq!(
        r.json()["__type"],
        "ServiceUnavailableException",
        "{}",
        r.describe()
    );
    assert!(r.header("retry-after").is_some(), "{}", r.describe());
    assert_eq!(pull(&http, "busy/app", &a), vec![200; 3]);
    holder.wait().expect("the lock holder");

    // Released: writes work again without a restart.
    c.push(&http, "busy/app", "v3").expect_status(201);
    berth
        .ecr("CreateRepository", &json!({"repositoryName": "busy/other"}))
        .expect_status(200);
    let log = berth.stderr_tail(400);
    assert!(!log.contains("status=500"), "a 500 was logged:\n{log}");
}

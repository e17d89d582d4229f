//! berth with its blobs in an S3-compatible store (Garage on loopback, started by
//! `scripts/garage-start`, which exports the `BERTH_TEST_S3_*` variables): the
//! `--blob-store` / `BERTH_BLOB_STORE` and `BERTH_S3_*` configuration, uploads
//! staged as multipart parts, and two nodes on one PostgreSQL database sharing the
//! bucket.

use std::path::Path;
use std::process::{Command, Stdio};

use berth_testsupport::layout::{pseudo_random, push_blob};
use berth_testsupport::server::berth_bin;
use berth_testsupport::{sha256_digest, Backend, Berth, Blob, Http, TempDir};

/// The server environment for a fresh prefix in the test bucket, or None when the
/// S3 tests are skipped (`BERTH_TEST_SKIP_S3=1`, never on CI).
fn s3_env() -> Option<Vec<(String, String)>> {
    berth_testsupport::s3_test_env()
}

fn start(backend: Backend, env: &[(String, String)], extra: &[(&str, &str)]) -> Berth {
    let mut o = Berth::options(backend);
    for (k, v) in env {
        o = o.env(k, v);
    }
    for (k, v) in extra {
        o = o.env(k, v);
    }
    o.start()
}

/// Regular files under `dir` (recursively).
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[track_caller]
fn assert_blob(http: &Http, repo: &str, bytes: &[u8]) {
    let d = sha256_digest(bytes);
    let r = http.get(&format!("/v2/{repo}/blobs/{d}"));
    r.expect_status(200);
    assert_eq!(r.header("docker-content-digest"), Some(d.as_str()));
    assert!(r.body == bytes, "blob {d} content differs");
    // A range read in the middle of the blob.
    let (a, b) = (
        bytes.len() / 3,
        bytes.len() / 3 + (bytes.len() / 3).min(100_000),
    );
    let r = http.send(
        "GET",
        &format!("/v2/{repo}/blobs/{d}"),
        &[("Range", &format!("bytes={a}-{}", b - 1))],
        "",
    );
    r.expect_status(206);
    assert!(r.body == bytes[a..b], "range {a}-{b} of {d} differs");
}

fn patch(http: &Http, loc: &str, start: usize, body: &[u8]) -> String {
    let range = format!("{start}-{}", start + body.len() - 1);
    let r = http.send(
        "PATCH",
        loc,
        &[
            ("Content-Range", range.as_str()),
            ("Content-Type", "application/octet-stream"),
        ],
        body.to_vec(),
    );
    r.expect_status(202);
    assert_eq!(
        r.header("range"),
        Some(format!("0-{}", start + body.len() - 1).as_str())
    );
    r.location()
}

fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

#[test]
fn s3_blob_store_on_sqlite_is_refused_without_single_node() {
    let dir = TempDir::new("berth-s3-refuse");
    let mut cmd = Command::new(berth_bin());
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--blob-store")
        .arg("s3://berth-refused/p");
    for (k, _) in std::env::vars() {
        if k.starts_with("BERTH_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("BERTH_S3_ENDPOINT", "http://127.0.0.1:9")
        .stdin(Stdio::null());
    let out = cmd.output().expect("run berth serve");
    assert!(!out.status.success(), "berth serve started on SQLite + S3");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PostgreSQL") && err.contains("--single-node"),
        "unclear refusal: {err}"
    );
    assert!(
        !dir.join("data").join("meta.db").exists(),
        "the refused server created its database"
    );

    // A blob store URL that is neither file:// nor s3:// is refused too.
    let mut cmd = Command::new(berth_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--blob-store", "ftp://x"])
        .stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("BERTH_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().expect("run berth serve");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("s3://<bucket>"));
}

#[test]
fn s3_single_node_on_sqlite_keeps_blobs_in_the_bucket() {
    let Some(env) = s3_env() else { return };
    let mut berth = start(Backend::Sqlite, &env, &[("BERTH_SINGLE_NODE", "true")]);
    let http = berth.http();

    // A chunked upload whose chunks straddle the 8 MiB part boundary.
    let data = pseudo_random(71, 12 * 1024 * 1024 + 12345);
    let d = sha256_digest(&data);
    let r = http.send("POST", "/v2/s3/app/blobs/uploads/", &[], "");
    r.expect_status(202);
    let loc = r.location();
    let cut1 = 3 * 1024 * 1024 + 7;
    let cut2 = 11 * 1024 * 1024 + 1;
    let loc = patch(&http, &loc, 0, &data[..cut1]);
    let loc = patch(&http, &loc, cut1, &data[cut1..cut2]);
    let loc = patch(&http, &loc, cut2, &data[cut2..]);
    http.send("PUT", &with_digest(&loc, &d), &[], "")
        .expect_status(201);
    assert_blob(&http, "s3/app", &data);

    // A monolithic push of a small blob.
    let small = Blob::new("application/octet-stream", pseudo_random(72, 4000));
    push_blob(&http, "s3/app", &small).expect_status(201);
    assert_blob(&http, "s3/app", &small.bytes);

    // Nothing of the blobs is in the data directory: the bytes are in the bucket.
    let local = files_under(&berth.data_dir().join("blobs"));
    assert!(local.is_empty(), "blob objects on local disk: {local:?}");
    let staged = files_under(&berth.data_dir().join("uploads"));
    assert!(
        staged.is_empty(),
        "staged uploads on local disk: {staged:?}"
    );

    berth.stop_gracefully();
    berth.restart();
    assert_blob(&berth.http(), "s3/app", &data);
}

#[test]
fn s3_postgres_two_nodes_share_uploads_and_blobs() {
    if !Backend::postgres_available() {
        return;
    }
    let Some(env) = s3_env() else { return };
    let a = start(Backend::Postgres, &env, &[]);
    let b = a.peer().start();
    let (ha, hb) = (a.http(), b.http());

    // One chunked upload: started on A, continued on B, finished on A.
    let data = pseudo_random(73, 10 * 1024 * 1024 + 999);
    let d = sha256_digest(&data);
    let r = ha.send("POST", "/v2/multi/app/blobs/uploads/", &[], "");
    r.expect_status(202);
    let loc = r.location();
    let cut1 = 2 * 1024 * 1024;
    let cut2 = 9 * 1024 * 1024 + 3;
    let loc = patch(&ha, &loc, 0, &data[..cut1]);
    let loc = patch(&hb, &loc, cut1, &data[cut1..cut2]);
    let r = hb.get(&loc);
    r.expect_status(204);
    assert_eq!(r.header("range"), Some(format!("0-{}", cut2 - 1).as_str()));
    let loc = patch(&ha, &loc, cut2, &data[cut2..]);
    ha.send("PUT", &with_digest(&loc, &d), &[], "")
        .expect_status(201);

    // Either node serves it; neither keeps it on local disk.
    assert_blob(&hb, "multi/app", &data);
    assert_blob(&ha, "multi/app", &data);
    for n in [&a, &b] {
        let local = files_under(&n.data_dir().join("blobs"));
        assert!(local.is_empty(), "blob objects on local disk: {local:?}");
    }

    // While a PATCH streams on A, B may not write the same upload: it gets the
    // error a client retries, and the upload is intact afterwards.
    let data = pseudo_random(75, 6 * 1024 * 1024);
    let d = sha256_digest(&data);
    let r = ha.send("POST", "/v2/multi/app/blobs/uploads/", &[], "");
    r.expect_status(202);
    let loc = r.location();
    let half = data.len() / 2;
    let range = format!("0-{}", half - 1);
    let mut inflight = ha
        .begin(
            "PATCH",
            &loc,
            &[
                ("Content-Range", range.as_str()),
                ("Content-Type", "application/octet-stream"),
            ],
            Some(half as u64),
        )
        .expect("connect");
    inflight.write(&data[..1024 * 1024]).expect("first bytes");
    std::thread::sleep(std::time::Duration::from_millis(500));
    hb.send(
        "PATCH",
        &loc,
        &[
            ("Content-Range", range.as_str()),
            ("Content-Type", "application/octet-stream"),
        ],
        data[..half].to_vec(),
    )
    .expect_oci_error(400, "BLOB_UPLOAD_INVALID");
    inflight.write(&data[1024 * 1024..half]).expect("rest");
    let r = inflight.finish().expect("response");
    r.expect_status(202);
    let loc = r.location();
    // The lease is given back with the response: B continues at once.
    let loc = patch(&hb, &loc, half, &data[half..]);
    hb.send("PUT", &with_digest(&loc, &d), &[], "")
        .expect_status(201);
    assert_blob(&ha, "multi/app", &data);

    // A blob pushed on B is served by A.
    let small = Blob::new("application/octet-stream", pseudo_random(74, 70_000));
    push_blob(&hb, "multi/app", &small).expect_status(201);
    let r = ha.get(&format!("/v2/multi/app/blobs/{}", small.digest));
    r.expect_status(200);
    assert!(r.body == small.bytes);
}

/// `berth_object_requests_total{op=…}` of a server, summed over operations.
fn object_requests(http: &Http) -> (u64, String) {
    let text = http.get("/metrics").text();
    let n = text
        .lines()
        .filter(|l| l.starts_with("berth_object_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    (n, text)
}

/// `berth_object_bytes_written_total` of a server.
fn object_bytes_written(http: &Http) -> u64 {
    http.get("/metrics")
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("berth_object_bytes_written_total "))
        .and_then(|n| n.trim().parse().ok())
        .expect("berth_object_bytes_written_total on /metrics")
}

/// The S3 round trips of a push and a pull (docs/benchmarks.md): counted by the
/// server (`berth_object_requests_total`), bounded here so a change that adds round
/// trips to the data path shows.
#[test]
fn s3_round_trips_per_push_and_pull() {
    if !Backend::postgres_s3_available() {
        return;
    }
    let berth = Berth::start(Backend::PostgresS3);
    let http = berth.http();
    let mut measured = Vec::new();
    let mut written = Vec::new();
    let mut step = |what: &str, f: &dyn Fn()| {
        let (before, _) = object_requests(&http);
        let bytes_before = object_bytes_written(&http);
        f();
        let (after, text) = object_requests(&http);
        written.push(object_bytes_written(&http) - bytes_before);
        measured.push((what.to_string(), after - before, text));
    };
    let small = Blob::new("application/octet-stream", pseudo_random(61, 1024 * 1024));
    let big = pseudo_random(62, 20 * 1024 * 1024);
    let big_d = sha256_digest(&big);
    step("monolithic push, 1 MiB", &|| {
        push_blob(&http, "rt/app", &small);
    });
    step("chunked push, 20 MiB in 4 PATCHes", &|| {
        let r = http.send("POST", "/v2/rt/app/blobs/uploads/", &[], "");
        r.expect_status(202);
        let mut loc = r.location();
        for i in 0..4 {
            let (a, b) = (i * 5 * 1024 * 1024, (i + 1) * 5 * 1024 * 1024);
            loc = patch(&http, &loc, a, &big[a..b]);
        }
        http.send("PUT", &with_digest(&loc, &big_d), &[], "")
            .expect_status(201);
    });
    let ten = pseudo_random(63, 10 * 1024 * 1024);
    let ten_d = sha256_digest(&ten);
    step("chunked push, 10 MiB in 10 PATCHes of 1 MiB", &|| {
        let r = http.send("POST", "/v2/rt/app/blobs/uploads/", &[], "");
        r.expect_status(202);
        let mut loc = r.location();
        for i in 0..10 {
            let (a, b) = (i * 1024 * 1024, (i + 1) * 1024 * 1024);
            loc = patch(&http, &loc, a, &ten[a..b]);
        }
        http.send("PUT", &with_digest(&loc, &ten_d), &[], "")
            .expect_status(201);
    });
    step("pull, 1 MiB", &|| {
        http.get(&format!("/v2/rt/app/blobs/{}", small.digest))
            .expect_status(200);
    });
    step("pull, 20 MiB", &|| {
        http.get(&format!("/v2/rt/app/blobs/{big_d}"))
            .expect_status(200);
    });
    step("HEAD of a blob", &|| {
        http.head(&format!("/v2/rt/app/blobs/{big_d}"))
            .expect_status(200);
    });
    let two = Blob::new("application/octet-stream", pseudo_random(64, 1024 * 1024));
    step(
        "monolithic push, POST then PUT with the body, 1 MiB",
        &|| {
            let r = http.send("POST", "/v2/rt/app/blobs/uploads/", &[], "");
            r.expect_status(202);
            http.send(
                "PUT",
                &with_digest(&r.location(), &two.digest),
                &[("Content-Type", "application/octet-stream")],
                two.bytes.clone(),
            )
            .expect_status(201);
        },
    );
    // 256 MiB: streamed in one PATCH then committed by an empty PUT (how the
    // benchmark's streamed push goes), in one request (`POST ?digest=`), and pulled.
    let mut huge = pseudo_random(65, 256 * 1024 * 1024);
    let huge_d = sha256_digest(&huge);
    step("chunked push, 256 MiB in one PATCH", &|| {
        let r = http.send("POST", "/v2/rt/app/blobs/uploads/", &[], "");
        r.expect_status(202);
        let loc = patch(&http, &r.location(), 0, &huge);
        http.send("PUT", &with_digest(&loc, &huge_d), &[], "")
            .expect_status(201);
    });
    step("pull, 256 MiB", &|| {
        let r = http.get(&format!("/v2/rt/app/blobs/{huge_d}"));
        r.expect_status(200);
        assert!(sha256_digest(&r.body) == huge_d, "pulled blob differs");
    });
    huge[0] ^= 1;
    let huge2_d = sha256_digest(&huge);
    step("monolithic push, 256 MiB", &|| {
        http.send(
            "POST",
            &format!("/v2/rt/app/blobs/uploads/?digest={huge2_d}"),
            &[],
            huge.clone(),
        )
        .expect_status(201);
    });
    drop(huge);
    for ((what, n, text), bytes) in measured.iter().zip(&written) {
        let ops: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("berth_object_requests_total{"))
            .collect();
        eprintln!("{what}: {n} S3 round trip(s), {bytes} bytes written (totals after: {ops:?})");
    }
    let n = |i: usize| measured[i].1;
    const MIB: u64 = 1024 * 1024;
    // Measured: a push in one request (`POST`, then `PUT ?digest=` with the body)
    // is one round trip, the object's put: its bytes are sealed straight into the
    // blob's object, written once (sealing adds 28 bytes per 64 KiB segment).
    for i in [0, 6] {
        assert_eq!(n(i), 1, "{}", measured[i].2);
        assert!(written[i] < MIB + MIB / 100, "{} bytes", written[i]);
    }
    // Each PATCH of a chunked push costs a piece put, plus per 8 MiB part a part
    // put and the deletes of the pieces it replaced (and one create); the commit
    // the last part, complete and the last piece's delete — 13 for 20 MiB in 4
    // PATCHes. No more than that.
    assert!(
        (4..=13).contains(&n(1)),
        "{} round trips:\n{}",
        n(1),
        measured[1].2
    );
    // Whatever the chunk size, a byte is written about twice (in a piece, then
    // in a part); one growing tail rewritten per PATCH wrote 10 MiB in 1 MiB
    // chunks as ~49 MiB.
    assert!(
        written[1] < 2 * 20 * MIB && written[2] < 2 * 10 * MIB + MIB,
        "{:?} bytes written",
        &written[1..3]
    );
    // A pull under two 8 MiB windows is one GET; a larger one one ranged GET per
    // window (20 MiB: 3, `crates/store/src/ranged.rs`); a HEAD needs none (the
    // size is in the database).
    assert_eq!(n(3), 1, "{}", measured[3].2);
    assert_eq!(n(4), 3, "{}", measured[4].2);
    assert_eq!(n(5), 0, "{}", measured[5].2);
    // 256 MiB in 8 MiB parts: a streamed PATCH is one create, 31 part puts and
    // its piece (the ~6 MiB past the last whole part); the commit the last
    // part, complete and the piece's delete — 36. In one request: create, 32
    // parts, complete — 34. The pull: one ranged GET per 8 MiB window, 32.
    assert_eq!(n(7), 36, "{}", measured[7].2);
    assert_eq!(n(8), 32, "{}", measured[8].2);
    assert_eq!(n(9), 34, "{}", measured[9].2);
    assert!(
        written[9] < 256 * MIB + 256 * MIB / 1000,
        "{} bytes",
        written[9]
    );
}

/// `GET` requests a server made to its S3 store so far.
fn object_gets(http: &Http) -> u64 {
    http.get("/metrics")
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("berth_object_requests_total{op=\"get\"} "))
        .and_then(|n| n.trim().parse().ok())
        .expect("berth_object_requests_total{op=\"get\"} on /metrics")
}

/// A large blob is pulled from S3 as concurrent ranged GETs of 8 MiB windows
/// (`crates/store/src/ranged.rs`), in order: the client gets the blob byte for
/// byte (digest checked), a range across windows too, each in one GET per
/// window it touches; a short range is one GET.
#[test]
fn large_blobs_are_pulled_from_s3_in_concurrent_windows() {
    if !Backend::postgres_s3_available() {
        return;
    }
    let berth = Berth::start(Backend::PostgresS3);
    let http = berth.http();
    const MIB: usize = 1024 * 1024;
    let data = pseudo_random(71, 40 * MIB);
    let d = sha256_digest(&data);
    let blob = Blob::new("application/octet-stream", data.clone());
    push_blob(&http, "big/pull", &blob);
    let before = object_gets(&http);
    let r = http.get(&format!("/v2/big/pull/blobs/{d}"));
    r.expect_status(200);
    assert_eq!(sha256_digest(&r.body), d);
    assert!(r.body == data);
    // 40 MiB: 640 segments of 64 KiB, 5 windows of 128.
    assert_eq!(object_gets(&http) - before, 5);
    // Bytes 10 MiB .. 30 MiB: segments 160..480, windows 1, 2 and 3.
    let (a, b) = (10 * MIB, 30 * MIB);
    let before = object_gets(&http);
    let r = http.send(
        "GET",
        &format!("/v2/big/pull/blobs/{d}"),
        &[("Range", &format!("bytes={a}-{}", b - 1))],
        "",
    );
    r.expect_status(206);
    assert!(r.body == data[a..b], "range {a}-{b} differs");
    assert_eq!(object_gets(&http) - before, 3);
    // A short range inside one window: one GET.
    let before = object_gets(&http);
    let r = http.send(
        "GET",
        &format!("/v2/big/pull/blobs/{d}"),
        &[("Range", &format!("bytes={}-{}", 17 * MIB - 5, 17 * MIB + 5))],
        "",
    );
    r.expect_status(206);
    assert!(r.body == data[17 * MIB - 5..17 * MIB + 6]);
    assert_eq!(object_gets(&http) - before, 1);
}

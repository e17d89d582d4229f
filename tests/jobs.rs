//! Durable jobs end to end (docs/architecture.md, "Deferred work: durable jobs"):
//! two `berth serve` processes on one PostgreSQL database run one garbage
//! collection and one lifecycle pass per interval between them, not one each; a
//! job whose handler keeps failing is retried with backoff, then parked with its
//! error visible in `berth admin jobs list`, and runs again after `berth admin jobs
//! retry`; SIGTERM releases the job in hand so that another process runs it at
//! once instead of waiting for its lease to expire.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_testsupport::layout::{artifact, image, tar_gz_layer, OCI_LAYER_GZIP};
use berth_testsupport::{both_backends, Backend, Berth};
use serde_json::{json, Value};

/// One row of `berth admin jobs list`.
#[derive(Debug)]
struct Job {
    id: String,
    kind: String,
    state: String,
    attempts: i64,
    claimed_by: String,
    last_error: String,
}

fn jobs(berth: &Berth, args: &[&str]) -> Vec<Job> {
    let mut all = vec!["jobs", "list"];
    all.extend_from_slice(args);
    let out = berth.admin(&all);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("ID\tKIND\tSTATE\tATTEMPTS\tDUE\tCLAIMED_BY\tPAYLOAD\tLAST_ERROR"),
        "{out}"
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 8, "{l}");
            Job {
                id: f[0].to_string(),
                kind: f[1].to_string(),
                state: f[2].to_string(),
                attempts: f[3].parse().expect("attempts"),
                claimed_by: f[5].to_string(),
                last_error: f[7].to_string(),
            }
        })
        .collect()
}

/// Audit-log records of periodic passes: (action, source = the worker that ran it).
fn passes(berth: &Berth) -> Vec<(String, String)> {
    berth
        .admin(&["audit", "--limit", "10000"])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 7 && f[3].starts_with("berth:") && f[2] == "berth:jobs")
                .then(|| (f[3].to_string(), f[5].to_string()))
        })
        .collect()
}

fn scan_status(berth: &Berth, repo: &str, tag: &str) -> Value {
    let r = berth.ecr(
        "DescribeImageScanFindings",
        &json!({"repositoryName": repo, "imageId": {"imageTag": tag}}),
    );
    r.expect_status(200);
    r.json()["imageScanStatus"].clone()
}

#[track_caller]
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_servers_run_one_pass_per_interval_between_them() {
    if !Backend::postgres_available() {
        return;
    }
    const INTERVAL: u64 = 2;
    let started = Instant::now();
    let a = Berth::options(Backend::Postgres)
        .env("BERTH_GC_INTERVAL_SECS", &INTERVAL.to_string())
        .env("BERTH_LIFECYCLE_INTERVAL_SECS", &INTERVAL.to_string())
        .env("BERTH_GC_GRACE_SECS", "0")
        .start();
    let b = a.peer().start();
    assert_ne!(a.pid(), b.pid());
    // Both nodes serve the same registry.
    a.ecr("CreateRepository", &json!({"repositoryName": "shared"}))
        .expect_status(200);
    b.ecr(
        "DescribeRepositories",
        &json!({"repositoryNames": ["shared"]}),
    )
    .expect_status(200);

    std::thread::sleep(Duration::from_secs(14));
    let all = passes(&a);
    let elapsed = started.elapsed().as_secs_f64();
    let expected = elapsed / INTERVAL as f64;
    for action in ["berth:GarbageCollection", "berth:LifecycleRun"] {
        let n = all.iter().filter(|(a, _)| a == action).count() as f64;
        // One pass per interval between the two nodes: at most ⌊elapsed/interval⌋
        // (the first is due one interval after start-up); two nodes each running
        // their own would make about twice as many.
        assert!(
            n <= expected + 0.01 && n >= expected - 2.5,
            "{n} {action} passes in {elapsed:.1} s with a {INTERVAL} s interval on two nodes (expected about {expected:.1}): {all:?}\n{}\n{}",
            a.stderr_tail(20),
            b.stderr_tail(20)
        );
    }
    // Each pass was run by one of the two nodes.
    let (pa, pb) = (format!(":{}/", a.pid()), format!(":{}/", b.pid()));
    assert!(
        all.iter()
            .all(|(_, src)| src.contains(&pa) || src.contains(&pb)),
        "{all:?}"
    );
    // One row per periodic kind, however many nodes scheduled it.
    let rows = jobs(&a, &[]);
    for kind in ["gc", "lifecycle"] {
        assert_eq!(
            rows.iter().filter(|j| j.kind == kind).count(),
            1,
            "{rows:?}"
        );
    }
}

both_backends! {
    fn a_failing_job_is_retried_then_parked_with_its_error(backend) {
        let berth = Berth::start(backend);
        berth.ecr("PutRegistryScanningConfiguration", &json!({
            "scanType": "ENHANCED",
            "rules": [{"scanFrequency": "CONTINUOUS_SCAN", "repositoryFilters": [{"filter": "locked", "filterType": "WILDCARD"}]}],
        })).expect_status(200);
        let arn = berth.admin(&["kms", "create", "--alias", "scan-key"]).trim().to_string();
        berth.ecr("CreateRepository", &json!({
            "repositoryName": "locked",
            "encryptionConfiguration": {"encryptionType": "KMS", "kmsKey": arn},
        })).expect_status(200);
        let img = image(
            vec![tar_gz_layer(OCI_LAYER_GZIP, &[("etc/hello.txt", 0o644, b"hello".to_vec())])],
            "amd64",
            false,
        );
        img.push(&berth.http(), "locked", "v1").expect_status(201);
        let st = wait_for("the scan on push", Duration::from_secs(60), || {
            let st = scan_status(&berth, "locked", "v1");
            (st["status"] != "IN_PROGRESS").then_some(st)
        });
        assert_eq!(st["status"], "UNSUPPORTED_IMAGE", "{st}");

        // The image's key is disabled, then new advisories queue a rescan: every
        // attempt at it fails.
        berth.admin(&["kms", "disable", "alias/scan-key"]);
        let advisories = berth_testsupport::server::workspace_root().join("tests/fixtures/vuln/advisories/pypi");
        let out = berth.command(&[], &["vulndb", "import", &advisories.to_string_lossy()]);
        assert!(out.contains("1 image(s) queued for rescanning"), "{out}");
        let started = Instant::now();
        let parked = wait_for("the scan job parked", Duration::from_secs(90), || {
            jobs(&berth, &["--state", "parked", "--kind", "scan"]).into_iter().next()
        });
        // Five attempts with 1, 2, 4 and 8 s between them.
        assert!(started.elapsed() >= Duration::from_secs(14), "parked after {:?}", started.elapsed());
        assert_eq!(parked.attempts, 5, "{parked:?}");
        assert_eq!(parked.claimed_by, "-");
        assert!(parked.last_error.contains("disabled"), "{parked:?}");
        assert!(jobs(&berth, &["--state", "queued", "--kind", "scan"]).is_empty());
        // Parked jobs stay parked.
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(jobs(&berth, &["--state", "parked"]).len(), 1);

        // The image's scan ended FAILED with the reason (readable once the key is
        // enabled again).
        berth.admin(&["kms", "enable", "alias/scan-key"]);
        let st = scan_status(&berth, "locked", "v1");
        assert_eq!(st["status"], "FAILED", "{st}");
        assert!(st["description"].as_str().is_some_and(|d| d.contains("5 attempts") && d.contains("disabled")), "{st}");

        // The operator retries the job now that its cause is fixed: the scan completes.
        let out = berth.admin(&["jobs", "retry", &parked.id]);
        assert!(out.contains(&format!("job {} queued again", parked.id)), "{out}");
        let st = wait_for("the retried scan", Duration::from_secs(60), || {
            let st = scan_status(&berth, "locked", "v1");
            (st["status"] != "FAILED" && st["status"] != "IN_PROGRESS").then_some(st)
        });
        assert_eq!(st["status"], "UNSUPPORTED_IMAGE", "{st}");
        wait_for("the finished job to go", Duration::from_secs(10), || {
            jobs(&berth, &["--kind", "scan"]).is_empty().then_some(())
        });
    }
}

/// A psql session holding a lock until dropped.
struct LockHolder(Child);

impl LockHolder {
    fn lock(url: &str, table: &str) -> LockHolder {
        let mut c = Command::new("psql")
            .args([url, "-q", "-v", "ON_ERROR_STOP=1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("run psql");
        writeln!(
            c.stdin.as_mut().expect("stdin"),
            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;"
        )
        .expect("write to psql");
        c.stdin.as_mut().expect("stdin").flush().expect("flush");
        let sql = format!(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON l.relation = c.oid \
             WHERE c.relname = '{table}' AND l.mode = 'AccessExclusiveLock' AND l.granted"
        );
        wait_for("the table lock", Duration::from_secs(20), || {
            let out = Command::new("psql")
                .args([url, "-tAc", &sql])
                .output()
                .expect("run psql");
            (String::from_utf8_lossy(&out.stdout).trim() == "1").then_some(())
        });
        LockHolder(c)
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigterm_releases_the_job_in_hand_to_another_process() {
    if !Backend::postgres_available() {
        return;
    }
    let mut a = Berth::options(Backend::Postgres)
        .env("BERTH_JOB_SHUTDOWN_SECS", "0")
        .start();
    let url = a.database_url().expect("a PostgreSQL database").to_string();
    a.ecr(
        "CreateRepository",
        &json!({
            "repositoryName": "busy",
            "imageScanningConfiguration": {"scanOnPush": true},
        }),
    )
    .expect_status(200);

    // The scan job is claimed and then blocks: its handler reads the advisory
    // database version, and a session holds that table locked.
    let lock = LockHolder::lock(&url, "settings");
    // An artifact: its scan reads only the manifest (the second node has a blob
    // directory of its own).
    let subject = image(
        vec![tar_gz_layer(
            OCI_LAYER_GZIP,
            &[("etc/hello.txt", 0o644, b"hi".to_vec())],
        )],
        "amd64",
        false,
    );
    let sbom = artifact("application/spdx+json", b"{}".to_vec(), &subject.manifest);
    sbom.push(&a.http(), "busy", "v1").expect_status(201);
    let pid = format!(":{}/", a.pid());
    let held = wait_for("a's claim", Duration::from_secs(20), || {
        jobs(&a, &["--kind", "scan"])
            .into_iter()
            .find(|j| j.state == "running" && j.claimed_by.contains(&pid))
    });
    assert_eq!(held.attempts, 1);

    // SIGTERM: a stops at once and gives the job back.
    let status = a.stop_gracefully();
    assert!(status.success(), "{status}");
    let after = jobs(&a, &["--kind", "scan"]);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].id, held.id);
    assert_eq!(
        after[0].state, "queued",
        "released, not left claimed: {after:?}"
    );
    assert_eq!(after[0].claimed_by, "-");
    assert_eq!(after[0].attempts, 0, "a release is not a failed attempt");
    drop(lock);

    // Another process runs it well within the lease a crash would have left.
    let b = a.peer().start();
    let released = Instant::now();
    let st = wait_for("b to scan the image", Duration::from_secs(30), || {
        let st = scan_status(&b, "busy", "v1");
        (st["status"] != "IN_PROGRESS").then_some(st)
    });
    assert_eq!(st["status"], "UNSUPPORTED_IMAGE", "{st}");
    assert!(
        st["description"]
            .as_str()
            .is_some_and(|d| d.contains("not a container image")),
        "{st}"
    );
    assert!(released.elapsed() < Duration::from_secs(30));
    assert!(jobs(&b, &["--kind", "scan"]).is_empty());
}

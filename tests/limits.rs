//! Throttling and request limits (`docs/architecture.md`, "Throttling and request
//! limits"), against real `berth serve` processes: ECR-style rate limits on the
//! JSON API (boto3's standard retry mode gets through them) and on `/v2/` (429
//! with `Retry-After`), the header size limit, the header time limit against a
//! slowloris client, and failed sign-ins slowed down and audited.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testsupport::ecr::Credentials;
use berth_testsupport::layout::{image, tar_gz_layer, OCI_LAYER_GZIP};
use berth_testsupport::tools::{require_python_module, run};
use berth_testsupport::{Backend, Berth};
use serde_json::json;

fn boto3(berth: &Berth, code: &str) -> std::process::Output {
    require_python_module("boto3", "pip install boto3");
    let c = berth.root_credentials();
    let script = format!(
        "import boto3, botocore, json, sys\n\
         from botocore.config import Config\n\
         def client(cfg):\n    return boto3.client('ecr', endpoint_url='{}', region_name='us-east-1',\n\
             aws_access_key_id='{}', aws_secret_access_key='{}', config=cfg)\n{code}",
        berth.url(),
        c.access_key_id,
        c.secret_access_key
    );
    run(Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE"))
}

#[test]
fn ecr_api_throttling_is_retried_by_boto3_standard_mode() {
    let berth = Berth::options(Backend::Sqlite)
        .env("BERTH_THROTTLE", "GetAuthorizationToken=2/2")
        .start();
    // The wire shape: HTTP 400, AWS JSON __type ThrottlingException.
    let mut shapes = Vec::new();
    for _ in 0..6 {
        let r = berth.ecr("GetAuthorizationToken", &json!({}));
        shapes.push((r.status, r.header("x-amzn-errortype").map(str::to_string)));
        if r.status != 200 {
            assert_eq!(
                r.json()["__type"],
                "ThrottlingException",
                "{}",
                r.describe()
            );
        }
    }
    assert!(
        shapes.contains(&(400, Some("ThrottlingException".into()))),
        "six calls at once against 2/s must be throttled: {shapes:?}"
    );
    // Operations without a rate are not throttled.
    for _ in 0..10 {
        berth
            .ecr("DescribeRepositories", &json!({}))
            .expect_status(200);
    }
    // Without retries boto3 sees the exception; in standard mode it backs off and
    // every call succeeds. Forty calls in a row stay throttled unless each one
    // takes longer than the refill interval (half a second), even on a loaded
    // machine where Python's signing is slow.
    let out = boto3(
        &berth,
        "c = client(Config(retries={'mode': 'standard', 'max_attempts': 1}))\n\
         codes = []\n\
         for _ in range(40):\n    try:\n        c.get_authorization_token(); codes.append('ok')\n    except botocore.exceptions.ClientError as e:\n        codes.append(e.response['Error']['Code'])\n\
         print(json.dumps(codes))\n\
         c = client(Config(retries={'mode': 'standard', 'max_attempts': 10}))\n\
         n = 0\n\
         for _ in range(8):\n    c.get_authorization_token(); n += 1\n\
         print(n)\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let codes: Vec<String> = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert!(
        codes.iter().any(|c| c == "ThrottlingException"),
        "{codes:?}"
    );
    assert!(
        codes
            .iter()
            .all(|c| c == "ok" || c == "ThrottlingException"),
        "{codes:?}"
    );
    assert_eq!(
        lines.next(),
        Some("8"),
        "standard mode retries through throttling"
    );
}

#[test]
fn v2_throttling_answers_429_with_retry_after() {
    let berth = Berth::options(Backend::Sqlite)
        .env("BERTH_THROTTLE", "BatchGetImage=1/2")
        .start();
    let img = image(
        vec![tar_gz_layer(OCI_LAYER_GZIP, &[("f", 0o644, b"x".to_vec())])],
        "amd64",
        false,
    );
    let http = berth.http();
    img.push(&http, "app", "v1").expect_status(201);
    let mut throttled = None;
    for _ in 0..5 {
        let r = http.get("/v2/app/manifests/v1");
        if r.status == 429 {
            throttled = Some(r);
            break;
        }
        r.expect_status(200);
    }
    let r = throttled.expect("five pulls at once against 1/s must be throttled");
    r.expect_oci_error(429, "TOOMANYREQUESTS");
    let wait: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    // Blob reads count as another operation (GetDownloadUrlForLayer): unthrottled.
    http.get(&format!("/v2/app/blobs/{}", img.config.digest))
        .expect_status(200);
    // Waiting as told is enough.
    std::thread::sleep(Duration::from_secs(wait));
    http.get("/v2/app/manifests/v1").expect_status(200);
    // A real client retries: skopeo copies through the limit.
    let dir = berth.scratch().join("out");
    berth.skopeo().copy(
        &berth.docker_ref("app:v1"),
        &format!("dir:{}", dir.display()),
        &[],
    );
}

#[test]
fn oversized_headers_are_refused_with_431() {
    let berth = Berth::options(Backend::Sqlite)
        .env("BERTH_MAX_HEADER_BYTES", "16384")
        .start();
    let http = berth.http();
    http.get("/v2/").expect_status(200);
    let big = "a".repeat(20_000);
    let r = http.send("GET", "/v2/", &[("X-Padding", big.as_str())], Vec::new());
    assert_eq!(r.status, 431, "{}", r.describe());
    let ok = "a".repeat(8_000);
    http.send("GET", "/v2/", &[("X-Padding", ok.as_str())], Vec::new())
        .expect_status(200);
}

#[test]
fn a_slowloris_client_is_cut_off_without_holding_the_server() {
    let berth = Berth::options(Backend::Sqlite)
        .env("BERTH_HEADER_TIMEOUT_SECS", "2")
        .start();
    // Many connections trickling a header, one byte every 300 ms.
    let mut slow: Vec<TcpStream> = (0..64)
        .map(|_| {
            let mut s = TcpStream::connect(berth.addr()).unwrap();
            s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    let start = Instant::now();
    let mut closed_at = vec![None; slow.len()];
    while start.elapsed() < Duration::from_secs(8) && closed_at.iter().any(Option::is_none) {
        for (i, s) in slow.iter_mut().enumerate() {
            if closed_at[i].is_some() {
                continue;
            }
            // A closed connection fails the write (or reads EOF / an error).
            let gone = s.write_all(b"a").is_err() || {
                s.set_nonblocking(true).unwrap();
                let mut b = [0u8; 512];
                let r = s.read(&mut b);
                s.set_nonblocking(false).unwrap();
                !matches!(r, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock)
            };
            if gone {
                closed_at[i] = Some(start.elapsed());
            }
        }
        // Meanwhile the server answers everyone else at once.
        let t = Instant::now();
        berth.http().get("/v2/").expect_status(200);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "a normal request waited {:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    for (i, c) in closed_at.iter().enumerate() {
        let c = c.unwrap_or_else(|| panic!("slow connection {i} still open after 8 s"));
        assert!(
            c >= Duration::from_millis(1500),
            "connection {i} closed too early: {c:?}"
        );
    }
}

#[test]
fn failed_sign_ins_are_slowed_down_and_audited() {
    let berth = Berth::start(Backend::Sqlite);
    let root = berth.root_credentials();
    let bad = Credentials {
        access_key_id: root.access_key_id.clone(),
        secret_access_key: "not-the-secret".repeat(3),
    };
    let mut times = Vec::new();
    for _ in 0..8 {
        let t = Instant::now();
        let r = berth.ecr_as(&bad, "DescribeRepositories", &json!({}));
        times.push(t.elapsed());
        assert_eq!(r.status, 403, "{}", r.describe());
        assert_eq!(r.json()["__type"], "InvalidSignatureException");
    }
    // Past five failures each attempt waits 100 ms, doubling.
    assert!(times[6] >= Duration::from_millis(100), "{times:?}");
    assert!(times[7] >= Duration::from_millis(200), "{times:?}");
    // A bad registry token counts too; the source is now waiting even when right.
    let t = Instant::now();
    let r = berth_testsupport::http::Http::new(berth.addr())
        .basic_auth("AWS", "bm90LWEtdG9rZW4=")
        .get("/v2/");
    assert_eq!(r.status, 401, "{}", r.describe());
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    berth
        .ecr("DescribeRepositories", &json!({}))
        .expect_status(200);
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    // The audit log holds each failure with its source, never the secret.
    let audit = berth.admin(&["audit", "--limit", "100"]);
    let failures: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("berth:SignInFailure"))
        .collect();
    assert_eq!(failures.len(), 9, "{audit}");
    assert_eq!(
        failures
            .iter()
            .filter(|l| l.contains("InvalidSignature"))
            .count(),
        8,
        "{audit}"
    );
    assert!(failures.iter().all(|l| l.contains("127.0.0.1")), "{audit}");
    assert!(
        failures.iter().any(|l| l.contains(&root.access_key_id)),
        "{audit}"
    );
    assert!(
        failures.iter().any(|l| l.contains("InvalidToken")),
        "{audit}"
    );
    assert!(!audit.contains("not-the-secret"), "{audit}");
}

#[test]
fn open_upload_sessions_per_principal_are_limited() {
    let berth = Berth::options(Backend::Sqlite)
        .env("BERTH_MAX_UPLOADS_PER_PRINCIPAL", "2")
        .start();
    let http = berth.http();
    berth
        .ecr("CreateRepository", &json!({"repositoryName": "app"}))
        .expect_status(200);
    let first = http.send("POST", "/v2/app/blobs/uploads/", &[], Vec::new());
    first.expect_status(202);
    http.send("POST", "/v2/app/blobs/uploads/", &[], Vec::new())
        .expect_status(202);
    let r = http.send("POST", "/v2/app/blobs/uploads/", &[], Vec::new());
    r.expect_oci_error(429, "TOOMANYREQUESTS");
    assert!(r.header("retry-after").is_some(), "{}", r.describe());
    // The ECR API counts the same sessions.
    let r = berth.ecr("InitiateLayerUpload", &json!({"repositoryName": "app"}));
    assert_eq!(r.status, 400, "{}", r.describe());
    assert_eq!(r.json()["__type"], "LimitExceededException");
    // Another principal has its own allowance.
    berth.admin(&["user", "create", "other"]);
    berth.admin(&["policy", "attach", "--user", "other", "PowerUser"]);
    let other = berth.access_key(&["--user", "other"]);
    let r = berth.ecr_as(
        &other,
        "InitiateLayerUpload",
        &json!({"repositoryName": "app"}),
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    // Cancelling one frees a place.
    http.delete(&first.location()).expect_status(204);
    http.send("POST", "/v2/app/blobs/uploads/", &[], Vec::new())
        .expect_status(202);
}

#[test]
fn an_idle_upload_session_expires_and_frees_its_place() {
    let berth = Berth::options(Backend::Sqlite)
        .env("BERTH_MAX_UPLOADS_PER_PRINCIPAL", "1")
        .env("BERTH_UPLOAD_TTL_SECS", "2")
        .start();
    let http = berth.http();
    http.send("POST", "/v2/idle/app/blobs/uploads/", &[], Vec::new())
        .expect_status(202);
    http.send("POST", "/v2/idle/app/blobs/uploads/", &[], Vec::new())
        .expect_oci_error(429, "TOOMANYREQUESTS");
    // Idle past its TTL, the session is swept and the principal may open another.
    let t0 = Instant::now();
    loop {
        let r = http.send("POST", "/v2/idle/app/blobs/uploads/", &[], Vec::new());
        if r.status == 202 {
            break;
        }
        r.expect_oci_error(429, "TOOMANYREQUESTS");
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the idle session never expired"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn json_api_bodies_are_limited_per_operation() {
    let berth = Berth::start(Backend::Sqlite);
    berth
        .ecr("CreateRepository", &json!({"repositoryName": "app"}))
        .expect_status(200);
    // 10 MiB is more than any operation but UploadLayerPart takes.
    let pad = "a".repeat(10 * 1024 * 1024);
    let r = berth.ecr("DescribeRepositories", &json!({"pad": pad}));
    assert_eq!(r.status, 400, "{}", r.describe());
    assert_eq!(r.json()["__type"], "SerializationException");
    // UploadLayerPart may carry it (here refused for its unknown upload, not size).
    let r = berth.ecr(
        "UploadLayerPart",
        &json!({"repositoryName": "app", "uploadId": "00000000-0000-0000-0000-000000000000",
                "partFirstByte": 0, "partLastByte": 0, "layerPartBlob": pad}),
    );
    assert_eq!(r.status, 400, "{}", r.describe());
    assert_ne!(
        r.json()["__type"],
        "SerializationException",
        "{}",
        r.describe()
    );
    // Ordinary calls are unaffected, unknown members included (the 400 above is
    // the size).
    berth
        .ecr(
            "DescribeRepositories",
            &json!({"pad": "a".repeat(1024 * 1024)}),
        )
        .expect_status(200);
}

/// The value of an unlabelled series in `/metrics` (read without credentials:
/// fetching a registry token would spend one of the throttled calls).
fn metric(berth: &Berth, name: &str) -> f64 {
    let text = berth_testsupport::http::Http::new(berth.addr())
        .get("/metrics")
        .text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
        .parse()
        .unwrap()
}

fn wait_for_nodes(berth: &Berth, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(berth, "berth_nodes_live") != n {
        assert!(Instant::now() < deadline, "never saw {n} live nodes");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Calls `op` `n` times and returns how many were not throttled.
fn accepted(berth: &Berth, op: &str, body: &serde_json::Value, n: usize) -> usize {
    (0..n)
        .filter(|_| {
            let r = berth.ecr(op, body);
            if r.status == 400 && r.json()["__type"] == "ThrottlingException" {
                return false;
            }
            assert!(r.status < 500, "{}", r.describe());
            true
        })
        .count()
}

/// Several nodes need PostgreSQL (on SQLite a node is alone: no heartbeats).
#[test]
fn several_nodes_share_an_accounts_rate() {
    if !Backend::postgres_available() {
        return;
    }
    {
        // 0.5/s with a burst of 6 for the whole deployment.
        let a = Berth::options(Backend::Postgres)
            .env(
                "BERTH_THROTTLE",
                "GetAuthorizationToken=0.5/6,BatchGetImage=0.5/6",
            )
            .start();
        let mut b = a.peer().start();
        wait_for_nodes(&a, 2.0);
        wait_for_nodes(&b, 2.0);
        // Each node allows its share of the burst: 3 + 3, not 6 + 6.
        let on_a = accepted(&a, "GetAuthorizationToken", &json!({}), 6);
        let on_b = accepted(&b, "GetAuthorizationToken", &json!({}), 6);
        assert_eq!((on_a, on_b), (3, 3), "each node's share of a burst of 6");

        // B stops: A counts one node again at its next heartbeat and allows the
        // whole rate (a bucket of its own for another operation, untouched so far).
        assert!(b.stop_gracefully().success());
        wait_for_nodes(&a, 1.0);
        let body = json!({"repositoryName": "none", "imageIds": [{"imageTag": "x"}]});
        assert_eq!(
            accepted(&a, "BatchGetImage", &body, 8),
            6,
            "one node, the whole burst"
        );
        // Killed without a word, a node stops counting once its heartbeats stop.
        let mut c = a.peer().start();
        wait_for_nodes(&a, 2.0);
        c.kill9();
        wait_for_nodes(&a, 1.0);
        drop(a);
    }
}

//! `/metrics` (`docs/observability.md`) against real `berth serve` processes:
//! pushes and pulls over `/v2/` (the test client and skopeo), ECR calls with boto3,
//! a throttled call, failed sign-ins and an open upload move the counters by
//! exactly what was done, and the exposition parses — with a strict parser here
//! and with `promtool check metrics` (installed by `scripts/test`).

use std::collections::{BTreeMap, HashMap};
use std::process::Command;

use berth_testsupport::layout::{image, tar_gz_layer, OCI_LAYER_GZIP};
use berth_testsupport::tools::{require_python_module, run};
use berth_testsupport::{Backend, Berth};
use serde_json::json;

/// One scrape: each series (`name{labels}` with labels sorted) and its value.
#[derive(Debug)]
struct Scrape {
    series: BTreeMap<String, f64>,
    types: HashMap<String, String>,
}

impl Scrape {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series.get(&key(name, labels)).copied()
    }

    /// The value, or 0 for a series not exposed yet (counters appear on first use).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }
}

fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    l.sort();
    format!("{name}{{{}}}", l.join(","))
}

fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

/// A strict parser of the text exposition format 0.0.4 as berth writes it: every
/// sample's family has a `# TYPE` (and `# HELP`) before it, names and labels are
/// well-formed, values are numbers, no series repeats, counters end in `_total`,
/// histogram buckets are cumulative and end with `+Inf` equal to `_count`.
fn parse(text: &str) -> Scrape {
    let mut series = BTreeMap::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut p = rest.splitn(3, ' ');
            let (kind, name, arg) = (p.next().unwrap(), p.next().unwrap_or(""), p.next());
            assert!(valid_name(name), "bad metric name, {}", at());
            match kind {
                "HELP" => {
                    assert!(arg.is_some_and(|h| !h.is_empty()), "empty HELP, {}", at());
                    assert!(
                        helps.insert(name.to_string(), ()).is_none(),
                        "HELP twice, {}",
                        at()
                    );
                }
                "TYPE" => {
                    let t = arg.unwrap_or("");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                        "bad TYPE, {}",
                        at()
                    );
                    assert!(
                        types.insert(name.to_string(), t.to_string()).is_none(),
                        "TYPE twice, {}",
                        at()
                    );
                    if t == "counter" {
                        assert!(name.ends_with("_total"), "counter without _total, {}", at());
                    }
                }
                _ => panic!("unknown comment, {}", at()),
            }
            continue;
        }
        let (head, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value, {}", at()));
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("bad value, {}", at())),
        };
        let (name, labels) = match head.split_once('{') {
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels, {}", at()));
                let mut labels = Vec::new();
                let mut s = body;
                while !s.is_empty() {
                    let (k, rest) = s
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("bad label, {}", at()));
                    assert!(
                        valid_name(k) && !k.starts_with("__"),
                        "bad label name, {}",
                        at()
                    );
                    // The value runs to the first unescaped quote.
                    let mut end = None;
                    let mut esc = false;
                    for (i, ch) in rest.char_indices() {
                        match (esc, ch) {
                            (true, _) => esc = false,
                            (false, '\\') => esc = true,
                            (false, '"') => {
                                end = Some(i);
                                break;
                            }
                            _ => {}
                        }
                    }
                    let end = end.unwrap_or_else(|| panic!("unterminated label value, {}", at()));
                    labels.push((k.to_string(), rest[..end].to_string()));
                    s = &rest[end + 1..];
                    s = s.strip_prefix(',').unwrap_or_else(|| {
                        assert!(s.is_empty(), "junk after a label, {}", at());
                        s
                    });
                }
                (name, labels)
            }
            None => (head, Vec::new()),
        };
        assert!(valid_name(name), "bad sample name, {}", at());
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s).filter(|f| {
                    matches!(
                        types.get(*f).map(String::as_str),
                        Some("histogram" | "summary")
                    )
                })
            })
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "sample before its TYPE, {}",
            at()
        );
        assert!(helps.contains_key(family), "sample without HELP, {}", at());
        let mut l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        l.sort();
        let k = format!("{name}{{{}}}", l.join(","));
        assert!(series.insert(k, v).is_none(), "series twice, {}", at());
    }
    let scrape = Scrape { series, types };
    check_histograms(&scrape);
    scrape
}

/// Buckets cumulative, `+Inf` present and equal to `_count`.
fn check_histograms(s: &Scrape) {
    let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (k, v) in &s.series {
        let Some((name, labels)) = k.split_once('{') else {
            continue;
        };
        let Some(family) = name.strip_suffix("_bucket") else {
            continue;
        };
        if s.types.get(family).map(String::as_str) != Some("histogram") {
            continue;
        }
        let labels = labels.trim_end_matches('}');
        let mut le = None;
        let rest: Vec<&str> = labels
            .split(',')
            .filter(|l| match l.strip_prefix("le=\"") {
                Some(b) => {
                    le = Some(b.trim_end_matches('"').to_string());
                    false
                }
                None => true,
            })
            .collect();
        let le = le.unwrap_or_else(|| panic!("bucket without le: {k}"));
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap()
        };
        groups
            .entry(format!("{family}{{{}}}", rest.join(",")))
            .or_default()
            .push((bound, *v));
    }
    assert!(!groups.is_empty(), "no histogram exposed");
    for (g, mut buckets) in groups {
        buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{g}: buckets not cumulative: {buckets:?}"
        );
        let (last, inf) = *buckets.last().unwrap();
        assert!(last.is_infinite(), "{g}: no +Inf bucket");
        let (family, labels) = g.split_once('{').unwrap();
        let count = s.series[&format!("{family}_count{{{labels}")];
        assert_eq!(count, inf, "{g}: _count differs from the +Inf bucket");
        assert!(
            s.series.contains_key(&format!("{family}_sum{{{labels}")),
            "{g}: no _sum"
        );
    }
}

fn scrape(berth: &Berth) -> (Scrape, String) {
    let r = berth.http().anonymous().get("/metrics");
    r.expect_status(200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{}",
        r.describe()
    );
    let text = r.text();
    (parse(&text), text)
}

fn promtool_check(berth: &Berth, text: &str) {
    let Ok(out) = Command::new("promtool").arg("--version").output() else {
        eprintln!("promtool not installed (scripts/test installs it): only the strict parser checked /metrics");
        return;
    };
    assert!(out.status.success());
    let path = berth.scratch().join("metrics.txt");
    std::fs::write(&path, text).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < {}", path.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn boto3(berth: &Berth, secret: Option<&str>, code: &str) -> String {
    require_python_module("boto3", "pip install boto3");
    let c = berth.root_credentials();
    let script = format!(
        "import boto3, botocore, json, sys\n\
         from botocore.config import Config\n\
         c = boto3.client('ecr', endpoint_url='{}', region_name='us-east-1',\n\
             aws_access_key_id='{}', aws_secret_access_key='{}',\n\
             config=Config(retries={{'mode': 'standard', 'max_attempts': 1}}))\n{code}",
        berth.url(),
        c.access_key_id,
        secret.unwrap_or(&c.secret_access_key)
    );
    let out = run(Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

const MANIFEST: &str = "/v2/<name>/manifests/<reference>";

berth_testsupport::all_backends! {
    fn metrics_count_what_clients_did(backend) {
        let berth = Berth::options(backend)
            .env("BERTH_THROTTLE", "GetAuthorizationToken=1/1")
            .start();
        let http = berth.http();
        let (m0, text) = scrape(&berth);
        promtool_check(&berth, &text);
        for family in ["berth_http_requests_total", "berth_http_request_duration_seconds", "berth_db_statement_duration_seconds", "berth_object_request_duration_seconds"] {
            assert!(m0.types.contains_key(family), "{family} missing:\n{text}");
        }
        assert!(m0.value("berth_db_pool_max_connections", &[]) >= 1.0);
        // Periodic passes are queued jobs, one row each.
        assert_eq!(m0.get("berth_jobs", &[("kind", "gc"), ("state", "queued")]), Some(1.0), "{text}");
        assert!(m0.get("berth_jobs_oldest_due_age_seconds", &[("kind", "gc")]).is_some(), "{text}");

        // A push (two monolithic blob uploads, one manifest) and three pulls.
        let img = image(
            vec![tar_gz_layer(OCI_LAYER_GZIP, &[("f", 0o644, vec![7u8; 100_000])])],
            "amd64",
            false,
        );
        img.push(&http, "metrics/app", "v1").expect_status(201);
        for _ in 0..3 {
            http.get("/v2/metrics/app/manifests/v1").expect_status(200);
        }
        http.get("/v2/metrics/app/manifests/missing").expect_status(404);
        // skopeo pulls it too (manifest GETs, blob GETs).
        let dir = berth.scratch().join("out");
        berth.skopeo().copy(
            &berth.docker_ref("metrics/app:v1"),
            &format!("dir:{}", dir.display()),
            &[],
        );
        // An upload left open.
        http.send("POST", "/v2/metrics/app/blobs/uploads/", &[], Vec::new())
            .expect_status(202);
        // Failed sign-ins: a bad registry token, a bad SigV4 secret (boto3).
        berth
            .http()
            .basic_auth("AWS", "not-a-token")
            .get("/v2/metrics/app/tags/list")
            .expect_status(401);
        let bad = boto3(
            &berth,
            Some("wrongwrongwrongwrongwrongwrongwrongwrong"),
            "try:\n    c.describe_repositories()\nexcept botocore.exceptions.ClientError as e:\n    print(e.response['Error']['Code'])\n",
        );
        assert_eq!(bad.trim(), "InvalidSignatureException");
        // ECR calls with boto3.
        let ok = boto3(
            &berth,
            None,
            "for _ in range(2):\n    c.describe_repositories(repositoryNames=['metrics/app'])\nprint('ok')\n",
        );
        assert_eq!(ok.trim(), "ok");
        // Throttled calls: count the refusals seen.
        let mut throttled = 0;
        for _ in 0..4 {
            let r = berth.ecr("GetAuthorizationToken", &json!({}));
            if r.status == 400 {
                assert_eq!(r.json()["__type"], "ThrottlingException", "{}", r.describe());
                throttled += 1;
            } else {
                r.expect_status(200);
            }
        }
        assert!(throttled >= 1, "four calls at once against 1/s");

        let (m1, text) = scrape(&berth);
        promtool_check(&berth, &text);
        let d = |name: &str, labels: &[(&str, &str)]| m1.value(name, labels) - m0.value(name, labels);
        let req = |route: &str, method: &str, code: &str| {
            d("berth_http_requests_total", &[("api", "v2"), ("route", route), ("method", method), ("code", code)])
        };
        assert_eq!(req("/v2/<name>/blobs/uploads/", "POST", "2xx"), 3.0, "two monolithic uploads and one open session\n{text}");
        assert_eq!(req(MANIFEST, "PUT", "2xx"), 1.0, "{text}");
        let skopeo_manifest_gets = req(MANIFEST, "GET", "2xx") - 3.0;
        assert!(skopeo_manifest_gets >= 1.0, "skopeo read the manifest\n{text}");
        assert_eq!(req(MANIFEST, "GET", "4xx"), 1.0, "{text}");
        assert_eq!(req("/v2/<name>/tags/list", "GET", "4xx"), 1.0, "{text}");
        assert!(req("/v2/<name>/blobs/<digest>", "GET", "2xx") >= 2.0, "skopeo read both blobs\n{text}");
        // Latency observations match the counts.
        let hist = |route: &str, method: &str| {
            d("berth_http_request_duration_seconds_count", &[("api", "v2"), ("route", route), ("method", method)])
        };
        assert_eq!(hist(MANIFEST, "GET"), req(MANIFEST, "GET", "2xx") + 1.0);
        assert_eq!(hist(MANIFEST, "PUT"), 1.0);
        // ECR operations by name: two described, the bad signature refused (4xx),
        // GetAuthorizationToken throttled as often as seen.
        let ecr = |op: &str, code: &str| {
            d("berth_http_requests_total", &[("api", "ecr"), ("route", op), ("method", "POST"), ("code", code)])
        };
        assert_eq!(ecr("DescribeRepositories", "2xx"), 2.0, "{text}");
        assert_eq!(ecr("DescribeRepositories", "4xx"), 1.0, "{text}");
        assert_eq!(ecr("GetAuthorizationToken", "4xx"), throttled as f64, "{text}");
        assert_eq!(ecr("GetAuthorizationToken", "2xx"), 4.0 - throttled as f64, "{text}");
        assert_eq!(
            d("berth_throttled_requests_total", &[("operation", "GetAuthorizationToken")]),
            throttled as f64
        );
        assert_eq!(d("berth_auth_failures_total", &[("kind", "InvalidToken")]), 1.0, "{text}");
        assert_eq!(d("berth_auth_failures_total", &[("kind", "InvalidSignature")]), 1.0, "{text}");
        // Bytes: at least the pushed blobs and manifest in, three manifests out.
        let pushed: usize = img.blobs().map(|b| b.bytes.len()).sum::<usize>() + img.manifest.bytes.len();
        assert!(d("berth_http_request_bytes_total", &[("api", "v2")]) >= pushed as f64, "{text}");
        assert!(d("berth_http_response_bytes_total", &[("api", "v2")]) >= (3 * img.manifest.bytes.len() + img.layers[0].bytes.len()) as f64, "{text}");
        assert!(d("berth_http_request_bytes_total", &[("api", "ecr")]) > 0.0, "{text}");
        assert_eq!(d("berth_upload_sessions_open", &[]), 1.0, "{text}");
        // The metadata store was used and timed; it had no errors worth a class
        // but the row-not-found and constraint ones the registry handles.
        assert!(d("berth_db_statement_duration_seconds_count", &[("statement", "select")]) > 0.0, "{text}");
        assert!(d("berth_db_statement_duration_seconds_count", &[("statement", "insert")]) > 0.0, "{text}");
        assert!(d("berth_db_write_wait_seconds_count", &[]) > 0.0, "{text}");
        assert_eq!(d("berth_db_errors_total", &[("class", "unavailable")]), 0.0, "{text}");
        // The S3 store: timed calls, no failures.
        if backend.blobs_in_s3() {
            for op in ["put", "get"] {
                assert!(d("berth_object_request_duration_seconds_count", &[("op", op)]) >= 1.0, "{op}\n{text}");
                assert_eq!(d("berth_object_errors_total", &[("op", op)]), 0.0, "{op}\n{text}");
            }
        } else {
            assert_eq!(d("berth_object_request_duration_seconds_count", &[("op", "get")]), 0.0, "{text}");
        }
        // No label carries a repository name or a principal.
        assert!(!text.contains("metrics/app"), "{text}");
        assert!(!text.contains(&berth.root_credentials().access_key_id), "{text}");
    }
}

/// A console sign-in with a wrong secret counts as a console failure.
#[test]
fn a_refused_console_sign_in_is_counted() {
    let berth = Berth::start(Backend::Sqlite);
    let (m0, _) = scrape(&berth);
    let http = berth.http().anonymous();
    let page = http.get("/console/sign-in");
    page.expect_status(200);
    let cookie = page
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("sign-in cookie")
        .to_string();
    let token = cookie.split_once('=').unwrap().1.to_string();
    let key = berth.root_credentials().access_key_id;
    let body = format!("csrf={token}&access_key_id={key}&secret_access_key=wrong");
    let r = http.send(
        "POST",
        "/console/sign-in",
        &[
            ("Cookie", cookie.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.into_bytes(),
    );
    r.expect_status(401);
    let (m1, text) = scrape(&berth);
    let k = [("kind", "ConsoleSignIn")];
    assert_eq!(
        m1.value("berth_auth_failures_total", &k) - m0.value("berth_auth_failures_total", &k),
        1.0,
        "{text}"
    );
    let route = [
        ("api", "console"),
        ("route", "/console/sign-in"),
        ("method", "POST"),
        ("code", "4xx"),
    ];
    assert_eq!(m1.value("berth_http_requests_total", &route), 1.0, "{text}");
}

/// The example alert rules and the Grafana dashboard in `docs/observability/`
/// parse (`promtool check rules`; each dashboard query as a recording rule) and
/// name only metric families a real berth exposes.
#[test]
fn the_dashboard_and_alert_rules_name_real_metrics() {
    let root = berth_testsupport::server::workspace_root();
    let alerts = std::fs::read_to_string(root.join("docs/observability/alerts.yml")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("docs/observability/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 16, "{exprs:?}");
    let berth = Berth::start(Backend::Sqlite);
    let (m, text) = scrape(&berth);
    let mut names = Vec::new();
    for src in exprs.iter().map(String::as_str).chain([alerts.as_str()]) {
        let mut rest = src;
        while let Some(i) = rest.find("berth_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.push(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    assert!(names.len() > 30, "{names:?}");
    for n in &names {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| n.strip_suffix(s).filter(|f| m.types.contains_key(*f)))
            .unwrap_or(n);
        assert!(
            m.types.contains_key(family),
            "{n} is not on /metrics:\n{text}"
        );
    }
    if Command::new("promtool").arg("--version").output().is_err() {
        eprintln!("promtool not installed (scripts/test installs it): rules not parsed");
        return;
    }
    let check = |path: &std::path::Path| {
        let out = Command::new("promtool")
            .args(["check", "rules"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    check(&root.join("docs/observability/alerts.yml"));
    // Grafana's variables replaced by what Prometheus accepts.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "5m")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: berth:dashboard_{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    let path = berth.scratch().join("dashboard-rules.yml");
    std::fs::write(&path, rules).unwrap();
    check(&path);
}

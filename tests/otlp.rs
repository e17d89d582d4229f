//! OpenTelemetry traces (`docs/observability.md`, "Traces") against real `berth
//! serve` processes: pushes and pulls (the test client and skopeo) and an ECR call
//! (the AWS CLI) produce request spans with the core's spans and the stores'
//! statements and object-store calls under them, a client's W3C `traceparent`
//! becomes the trace's parent, the bodies are valid `ExportTraceServiceRequest`s
//! for OpenTelemetry's own protobuf definitions (the `opentelemetry-proto` Python
//! package, installed by `scripts/test`), and nothing secret is exported.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use berth_testsupport::layout::{image, tar_gz_layer, OCI_LAYER_GZIP};
use berth_testsupport::tools::{require_python_module, run};
use berth_testsupport::webhook::Receiver;
use berth_testsupport::{Backend, Berth};
use serde_json::Value;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

#[derive(Debug, Clone)]
struct Span {
    trace: String,
    id: String,
    parent: Option<String>,
    name: String,
    kind: u64,
    start: u128,
    end: u128,
    attrs: HashMap<String, Value>,
}

impl Span {
    fn attr(&self, k: &str) -> Option<String> {
        let v = self.attrs.get(k)?;
        v.get("stringValue")
            .or_else(|| v.get("intValue"))
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
    }
}

fn spans(r: &Receiver) -> Vec<Span> {
    let mut out = Vec::new();
    for ev in r.events() {
        for rs in ev.body["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    let num = |k: &str| s[k].as_str().unwrap().parse::<u128>().unwrap();
                    out.push(Span {
                        trace: s["traceId"].as_str().unwrap().to_string(),
                        id: s["spanId"].as_str().unwrap().to_string(),
                        parent: s["parentSpanId"].as_str().map(str::to_string),
                        name: s["name"].as_str().unwrap().to_string(),
                        kind: s["kind"].as_u64().unwrap(),
                        start: num("startTimeUnixNano"),
                        end: num("endTimeUnixNano"),
                        attrs: s["attributes"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|a| (a["key"].as_str().unwrap().to_string(), a["value"].clone()))
                            .collect(),
                    });
                }
            }
        }
    }
    out
}

/// Waits until the exported spans satisfy `pred` (spans are sent every 100 ms).
fn wait_spans(r: &Receiver, what: &str, pred: impl Fn(&[Span]) -> bool) -> Vec<Span> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = spans(r);
        if pred(&s) {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not exported within 20 s; spans: {:#?}",
            s.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every span below `root` (its descendants).
fn under<'a>(all: &'a [Span], root: &Span) -> Vec<&'a Span> {
    let mut ids = vec![root.id.clone()];
    let mut out: Vec<&Span> = Vec::new();
    loop {
        let more: Vec<&Span> = all
            .iter()
            .filter(|s| {
                s.trace == root.trace
                    && s.parent.as_ref().is_some_and(|p| ids.contains(p))
                    && !out.iter().any(|o| o.id == s.id)
            })
            .collect();
        if more.is_empty() {
            return out;
        }
        ids.extend(more.iter().map(|s| s.id.clone()));
        out.extend(more);
    }
}

fn hex_len(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Every body parses as an `ExportTraceServiceRequest` of OpenTelemetry's own
/// protobuf definitions (OTLP/JSON: ids in hex, turned into protobuf JSON's base64
/// here), with no unknown field, and its ids have the right lengths.
fn check_with_opentelemetry_proto(berth: &Berth, r: &Receiver) {
    require_python_module("opentelemetry.proto", "pip install opentelemetry-proto");
    let path = berth.scratch().join("otlp-bodies.json");
    let bodies: Vec<Value> = r.events().into_iter().map(|e| e.body).collect();
    std::fs::write(&path, serde_json::to_vec(&bodies).unwrap()).unwrap();
    let script = r#"
import base64, json, sys
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
n = 0
for body in json.load(open(sys.argv[1])):
    for rs in body["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in s:
                        s[k] = base64.b64encode(bytes.fromhex(s[k])).decode()
    msg = json_format.Parse(json.dumps(body), ExportTraceServiceRequest(), ignore_unknown_fields=False)
    for rs in msg.resource_spans:
        for ss in rs.scope_spans:
            for s in ss.spans:
                assert len(s.trace_id) == 16 and len(s.span_id) == 8, s
                assert len(s.parent_span_id) in (0, 8), s
                assert s.start_time_unix_nano <= s.end_time_unix_nano, s
                assert s.kind in (1, 2, 3), s
                n += 1
print(n)
"#;
    let out = run(Command::new("python3").args(["-c", script, path.to_str().unwrap()]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n: usize = stdout.trim().parse().unwrap();
    assert!(n >= 10, "only {n} spans validated");
}

berth_testsupport::all_backends! {
    fn requests_core_and_stores_are_traced_over_otlp(backend) {
        let receiver = Receiver::start();
        let berth = Berth::options(backend)
            .env("BERTH_OTLP_ENDPOINT", &receiver.url())
            .env("BERTH_OTLP_FLUSH_MS", "100")
            .start();
        let http = berth.http();

        // A push, a pull with the client's traceparent, a pull by skopeo, an ECR call.
        let img = image(
            vec![tar_gz_layer(OCI_LAYER_GZIP, &[("f", 0o644, vec![5u8; 50_000])])],
            "amd64",
            false,
        );
        img.push(&http, "otel/app", "v1").expect_status(201);
        http.send(
            "GET",
            "/v2/otel/app/manifests/v1",
            &[("traceparent", &format!("00-{TRACE}-{PARENT}-01"))],
            Vec::new(),
        )
        .expect_status(200);
        let dir = berth.scratch().join("pulled");
        berth.skopeo().copy(
            &berth.docker_ref("otel/app:v1"),
            &format!("dir:{}", dir.display()),
            &[],
        );
        let creds = berth.root_credentials();
        berth.aws_ok(&creds, &["ecr", "describe-repositories", "--repository-names", "otel/app"]);

        let all = wait_spans(&receiver, "the traced requests", |s| {
            s.iter().any(|s| s.trace == TRACE)
                && s.iter().any(|s| s.name == "POST DescribeRepositories")
                && s.iter().any(|s| s.name.starts_with("PUT /v2/<name>/manifests"))
        });
        for s in &all {
            assert!(hex_len(&s.trace, 32) && hex_len(&s.id, 16), "{s:?}");
            assert!(s.parent.as_deref().is_none_or(|p| hex_len(p, 16)), "{s:?}");
            assert!(s.start <= s.end && s.start > 1_600_000_000_000_000_000, "{s:?}");
        }

        // The client's trace: the request span is the child of the client's span,
        // with the core and the database under it.
        let req = all
            .iter()
            .find(|s| s.trace == TRACE && s.kind == 2)
            .expect("the request span of the traced pull");
        assert_eq!(req.parent.as_deref(), Some(PARENT));
        assert_eq!(req.name, "GET /v2/<name>/manifests/<reference>");
        assert_eq!(req.attr("http.response.status_code").as_deref(), Some("200"));
        assert_eq!(req.attr("url.path").as_deref(), Some("/v2/otel/app/manifests/v1"));
        let below = under(&all, req);
        assert!(below.iter().any(|s| s.name == "core.pull_manifest" && s.kind == 1), "{below:#?}");
        assert!(below.iter().any(|s| s.name.starts_with("db ") && s.kind == 3), "{below:#?}");
        for s in &below {
            assert!(s.start >= req.start && s.end <= req.end + 1_000_000, "{s:?} outside {req:?}");
        }

        // The push: the manifest PUT wrote to the database; on S3 the blob
        // uploads called the object store.
        let put = all
            .iter()
            .find(|s| s.name.starts_with("PUT /v2/<name>/manifests"))
            .unwrap();
        assert_eq!(put.attr("http.response.status_code").as_deref(), Some("201"));
        assert!(put.parent.is_none(), "a trace of its own: {put:?}");
        let below = under(&all, put);
        assert!(below.iter().any(|s| s.name == "core.put_manifest"), "{below:#?}");
        assert!(below.iter().any(|s| s.name == "db INSERT" || s.name == "db UPDATE"), "{below:#?}");
        if backend.blobs_in_s3() {
            let object_calls: Vec<&Span> = all.iter().filter(|s| s.name.starts_with("object_store ")).collect();
            assert!(object_calls.iter().any(|s| s.name == "object_store put"), "{object_calls:#?}");
            for s in &object_calls {
                assert_eq!(s.kind, 3);
                assert!(s.parent.is_some(), "an object-store call outside any request: {s:?}");
            }
        }
        // skopeo's pull (a blob GET) and the ECR call.
        assert!(all.iter().any(|s| s.name == "GET /v2/<name>/blobs/<digest>"
            && s.attr("http.response.status_code").as_deref() == Some("200")));
        let ecr = all.iter().find(|s| s.name == "POST DescribeRepositories").unwrap();
        assert_eq!(ecr.attr("berth.api").as_deref(), Some("ecr"));
        assert!(!under(&all, ecr).is_empty(), "the ECR call reached the store");

        // Nothing secret left the process: no key, no header.
        let text: String = receiver.events().iter().map(|e| e.body.to_string()).collect();
        assert!(!text.contains(&creds.secret_access_key), "the secret key was exported");
        for leak in ["AWS4-HMAC-SHA256", "Basic ", "Bearer ", "Signature=", "X-Amz-Credential"] {
            assert!(!text.contains(leak), "{leak} was exported");
        }
        check_with_opentelemetry_proto(&berth, &receiver);

        let metrics = http.get("/metrics").text();
        let exported: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("berth_otlp_spans_exported_total "))
            .expect("the exporter's counter")
            .parse()
            .unwrap();
        assert!(exported >= all.len() as f64 - 1.0, "{exported} < {}", all.len());
    }
}

#[test]
fn sampling_follows_the_ratio_and_the_clients_flag_and_a_dead_collector_costs_nothing_and_is_retried(
) {
    let mut receiver = Receiver::start();
    let berth = Berth::options(Backend::Sqlite)
        .env(
            "BERTH_OTLP_ENDPOINT",
            &format!("{}/v1/traces", receiver.url()),
        )
        .env("BERTH_OTLP_FLUSH_MS", "100")
        .env("BERTH_OTLP_SAMPLE_RATIO", "0")
        .start();
    let http = berth.http();
    // Ratio 0: new traces are not recorded…
    for _ in 0..5 {
        http.get("/v2/_catalog").expect_status(200);
    }
    // …but a client's sampled trace is, and its unsampled one is not.
    let sampled = "11111111111111111111111111111111";
    let unsampled = "22222222222222222222222222222222";
    let traced = |trace: &str, flags: &str| {
        http.send(
            "GET",
            "/v2/_catalog",
            &[("traceparent", &format!("00-{trace}-{PARENT}-{flags}"))],
            Vec::new(),
        )
        .expect_status(200);
    };
    traced(unsampled, "00");
    traced(sampled, "01");
    let all = wait_spans(&receiver, "the sampled request", |s| {
        s.iter().any(|s| s.trace == sampled && s.kind == 2)
    });
    // Give stragglers a chance to show up before asserting they do not.
    std::thread::sleep(Duration::from_millis(500));
    let all = if spans(&receiver).len() > all.len() {
        spans(&receiver)
    } else {
        all
    };
    assert!(
        all.iter().all(|s| s.trace == sampled),
        "only the client's sampled trace is exported: {all:#?}"
    );

    // The collector goes away: requests are unaffected, failures are counted.
    receiver.down();
    let while_down = "33333333333333333333333333333333";
    traced(while_down, "01");
    for _ in 0..3 {
        traced(sampled, "01");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = http.get("/metrics").text();
        let failures: f64 = m
            .lines()
            .find_map(|l| l.strip_prefix("berth_otlp_export_failures_total "))
            .unwrap()
            .parse()
            .unwrap();
        if failures >= 1.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failure counted:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The collector comes back a second later, within the retries (a batch is
    // sent every 100 ms, so the request's spans have failed once by then): the
    // batch is sent again and arrives.
    std::thread::sleep(Duration::from_secs(1));
    receiver.resume();
    wait_spans(
        &receiver,
        "the request made while the collector was down",
        |s| s.iter().any(|s| s.trace == while_down && s.kind == 2),
    );
}

#[test]
fn traces_are_off_by_default() {
    let berth = Berth::start(Backend::Sqlite);
    let http = berth.http();
    http.get("/v2/_catalog").expect_status(200);
    let m = http.get("/metrics").text();
    assert!(!m.contains("berth_otlp_"), "{m}");
    // A bad endpoint is refused at start, with the reason.
    let out = berth.command_output(
        &[("BERTH_OTLP_ENDPOINT", "collector:4318")],
        &["serve", "--listen", "127.0.0.1:0"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("OTLP endpoint must be an http:// or https:// URL"),
        "{err}"
    );
}

//! Result rows, target evaluation and the Markdown/JSON writers. Pure: no I/O.

use serde_json::{json, Value};

use crate::stats::Summary;

/// Server names as they appear in the report.
pub const BERTH: &str = "berth";
/// The same berth binary with blob encryption off (benchmark-only mode, docs/benchmarks.md "Encryption on/off").
pub const BERTH_PLAINTEXT: &str = "berth (plaintext)";
/// The same berth binary with two webhooks (`berth-bench --webhooks`).
pub const BERTH_WEBHOOKS: &str = "berth (2 webhooks)";
pub const REFERENCE: &str = "reference";
pub const REFERENCE_NOAUTH: &str = "reference (no auth)";
pub const MACHINE: &str = "machine";
/// berth on PostgreSQL metadata (blobs on the filesystem), `--with-postgres`.
pub const BERTH_PG: &str = "berth (PostgreSQL)";
/// berth on PostgreSQL with its blobs in S3 (Garage), `--with-postgres --with-s3`:
/// the configuration of several nodes.
pub const BERTH_PG_S3: &str = "berth (PostgreSQL + S3)";
/// The reference registry with distribution's `s3` driver on the same bucket.
pub const REFERENCE_S3: &str = "reference (S3)";
/// `berth-null-server`: berth's HTTP stack answering manifests from memory.
pub const NULL_SERVER: &str = "null server";
/// `berth-sendfile-server`: the read limit of the parallel-pull scenario.
pub const READ_LIMIT: &str = "read limit (sendfile)";

/// One measurement: a scenario against one server (or a machine limit).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Stable scenario key, e.g. `manifest-get-c64`.
    pub key: String,
    /// Human title, e.g. `manifest GET by tag, 64 conns`.
    pub title: String,
    pub server: String,
    /// Completed operations (requests, blobs, pushes…).
    pub ops: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Throughput in `unit`; for `ms`/`MiB` rows this is the measured value itself.
    pub value: f64,
    pub unit: &'static str,
    pub latency: Option<Summary>,
    pub peak_rss_kib: Option<u64>,
    pub server_cpu_s: Option<f64>,
    pub harness_cpu_s: Option<f64>,
    /// `value` as a fraction of the machine's physical limit for this data path.
    pub limit_fraction: Option<f64>,
    /// Per-round results when the scenario ran in alternating A/B rounds (berth and
    /// berth (plaintext)); `value` is then their median.
    pub rounds: Vec<f64>,
}

impl Row {
    pub fn new(key: &str, title: &str, server: &str, value: f64, unit: &'static str) -> Self {
        Row {
            key: key.to_owned(),
            title: title.to_owned(),
            server: server.to_owned(),
            ops: 0,
            errors: 0,
            seconds: 0.0,
            value,
            unit,
            latency: None,
            peak_rss_kib: None,
            server_cpu_s: None,
            harness_cpu_s: None,
            limit_fraction: None,
            rounds: Vec::new(),
        }
    }
}

/// A performance target (docs/benchmarks.md) with its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub measured: String,
    /// `None` when it could not be evaluated (a server or row is missing).
    pub pass: Option<bool>,
}

fn find<'a>(rows: &'a [Row], key: &str, server: &str) -> Option<&'a Row> {
    rows.iter().find(|r| r.key == key && r.server == server)
}

/// berth ÷ other for `value`, p99 and peak RSS of one scenario.
pub fn ratios(rows: &[Row], key: &str, other: &str) -> Option<(f64, Option<f64>, Option<f64>)> {
    ratios_of(rows, key, BERTH, other)
}

/// `this` ÷ `other` for `value`, p99 and peak RSS of one scenario.
pub fn ratios_of(
    rows: &[Row],
    key: &str,
    this: &str,
    other: &str,
) -> Option<(f64, Option<f64>, Option<f64>)> {
    let b = find(rows, key, this)?;
    let o = find(rows, key, other)?;
    let div = |x: f64, y: f64| if y > 0.0 { Some(x / y) } else { None };
    let value = div(b.value, o.value)?;
    let p99 = match (b.latency, o.latency) {
        (Some(x), Some(y)) => div(x.p99_ms, y.p99_ms),
        _ => None,
    };
    let rss = match (b.peak_rss_kib, o.peak_rss_kib) {
        (Some(x), Some(y)) => div(x as f64, y as f64),
        _ => None,
    };
    Some((value, p99, rss))
}

/// Keys of the large-blob push and pull scenarios (targets compare these).
pub const LARGE_PUSH: &str = "push-stream-256m";
pub const LARGE_PULL: &str = "pull-stream-256m";

/// Key prefix of the parallel-pull scenario (`pull-par-<size>m`).
pub const PARALLEL_PULL_PREFIX: &str = "pull-par-";

/// Scenarios whose encrypted ÷ plaintext throughput must stay ≥ 0.9: every
/// blob push and pull.
pub const ENCRYPTION_KEYS: [&str; 6] = [
    "push-mono-1m",
    "pull-mono-1m",
    "push-chunked-10m",
    "pull-chunked-10m",
    LARGE_PUSH,
    LARGE_PULL,
];

/// Evaluates the performance targets against the rows.
pub fn evaluate_targets(rows: &[Row]) -> Vec<Target> {
    let mut out = Vec::new();
    for key in ["manifest-get-c64", "manifest-head-c64"] {
        let name = format!("{key}: ≥ 5× reference throughput, lower p99");
        out.push(match ratios(rows, key, REFERENCE) {
            Some((thr, Some(p99), _)) => Target {
                name,
                measured: format!("{thr:.2}× throughput, p99 {p99:.2}×"),
                pass: Some(thr >= 5.0 && p99 < 1.0),
            },
            _ => Target {
                name,
                measured: "n/a".into(),
                pass: None,
            },
        });
    }
    // The headline: against the reference without auth (bcrypt htpasswd above is
    // a setup nobody would choose for speed).
    for key in ["manifest-get-c64", "manifest-head-c64"] {
        let name = format!("{key}: ≥ 12× reference (no auth), lower p99");
        out.push(match ratios(rows, key, REFERENCE_NOAUTH) {
            Some((thr, Some(p99), _)) => Target {
                name,
                measured: format!("{thr:.2}× throughput, p99 {p99:.2}×"),
                pass: Some(thr >= 12.0 && p99 < 1.0),
            },
            _ => Target {
                name,
                measured: "n/a".into(),
                pass: None,
            },
        });
    }
    // The limit of this machine and HTTP stack: the null server.
    for verb in ["get", "head"] {
        for c in [1, 16, 64] {
            let key = format!("manifest-{verb}-c{c}");
            let name = format!("{key}: ≥ 50% of the null server");
            out.push(match ratios(rows, &key, NULL_SERVER) {
                Some((thr, _, _)) => Target {
                    name,
                    measured: format!("{:.0}% of the null server", thr * 100.0),
                    pass: Some(thr >= 0.5),
                },
                _ => Target {
                    name,
                    measured: "n/a".into(),
                    pass: None,
                },
            });
        }
    }
    for key in [LARGE_PUSH, LARGE_PULL] {
        let name = format!("{key}: ≥ 1.2× reference and ≥ 80% of physical limit");
        let frac = find(rows, key, BERTH).and_then(|r| r.limit_fraction);
        out.push(match (ratios(rows, key, REFERENCE), frac) {
            (Some((thr, _, _)), Some(f)) => Target {
                name,
                measured: format!("{thr:.2}× reference, {:.0}% of limit", f * 100.0),
                pass: Some(thr >= 1.2 && f >= 0.8),
            },
            _ => Target {
                name,
                measured: "n/a".into(),
                pass: None,
            },
        });
    }
    // Parallel pulls (client not the bottleneck): against the reference without
    // auth and the read limit measured in the same run (the sendfile server).
    let par: Vec<&Row> = rows
        .iter()
        .filter(|r| r.server == BERTH && r.key.starts_with(PARALLEL_PULL_PREFIX))
        .collect();
    for b in par {
        let name = format!(
            "{}: ≥ 1.2× reference (no auth) and ≥ 80% of the read limit",
            b.key
        );
        out.push(
            match (ratios(rows, &b.key, REFERENCE_NOAUTH), b.limit_fraction) {
                (Some((thr, _, _)), Some(f)) => Target {
                    name,
                    measured: format!(
                        "{thr:.2}× reference (no auth), {:.0}% of the read limit",
                        f * 100.0
                    ),
                    pass: Some(thr >= 1.2 && f >= 0.8),
                },
                _ => Target {
                    name,
                    measured: "n/a".into(),
                    pass: None,
                },
            },
        );
    }
    // Peak memory in every scenario both servers ran.
    let mut worst: Option<(f64, String)> = None;
    let mut short = Vec::new();
    let mut keys: Vec<&str> = rows
        .iter()
        .filter(|r| r.server == BERTH)
        .map(|r| r.key.as_str())
        .collect();
    keys.dedup();
    for key in keys {
        if let Some((_, _, Some(rss))) = ratios(rows, key, REFERENCE) {
            if rss > 0.5 {
                short.push(key.to_owned());
            }
            if worst.as_ref().is_none_or(|(w, _)| rss > *w) {
                worst = Some((rss, key.to_owned()));
            }
        }
    }
    out.push(Target {
        name: "peak RSS ≤ ½ reference in every scenario".into(),
        measured: match &worst {
            Some((w, k)) if short.is_empty() => format!("worst {w:.2}× ({k})"),
            Some((w, k)) => format!("worst {w:.2}× ({k}); short in {}", short.join(", ")),
            None => "n/a".into(),
        },
        pass: worst.as_ref().map(|_| short.is_empty()),
    });
    for key in ENCRYPTION_KEYS {
        let name = format!("{key}: encrypted within 10% of plaintext");
        out.push(
            match (find(rows, key, BERTH), find(rows, key, BERTH_PLAINTEXT)) {
                (Some(e), Some(p)) if p.value > 0.0 => {
                    let r = e.value / p.value;
                    let mut measured = format!(
                        "{r:.2}× ({} ÷ {} {})",
                        fmt_value(e.value),
                        fmt_value(p.value),
                        e.unit
                    );
                    let paired: Vec<f64> = e
                        .rounds
                        .iter()
                        .zip(&p.rounds)
                        .filter(|(_, p)| **p > 0.0)
                        .map(|(e, p)| e / p)
                        .collect();
                    if paired.len() > 1 {
                        let lo = paired.iter().copied().fold(f64::INFINITY, f64::min);
                        let hi = paired.iter().copied().fold(0.0, f64::max);
                        measured.push_str(&format!(
                            ", medians of {} alternating rounds; per round {lo:.2}–{hi:.2}×",
                            paired.len()
                        ));
                    }
                    Target {
                        name,
                        measured,
                        pass: Some(r >= 0.9),
                    }
                }
                _ => Target {
                    name,
                    measured: "n/a".into(),
                    pass: None,
                },
            },
        );
    }
    // `berth-bench --webhooks`: image pushes with two webhooks within 5% of none.
    let mut hooked: Vec<&Row> = rows
        .iter()
        .filter(|r| r.server == BERTH_WEBHOOKS && r.key.starts_with("push-image-"))
        .collect();
    hooked.dedup_by(|a, b| a.key == b.key);
    for w in hooked {
        let name = format!("{}: two webhooks within 5% of none", w.key);
        out.push(match find(rows, &w.key, BERTH) {
            Some(b) if b.value > 0.0 => {
                let r = w.value / b.value;
                Target {
                    name,
                    measured: format!(
                        "{r:.2}× ({} ÷ {} {}), medians of {} alternating rounds",
                        fmt_value(w.value),
                        fmt_value(b.value),
                        w.unit,
                        w.rounds.len().max(1)
                    ),
                    pass: Some(r >= 0.95),
                }
            }
            _ => Target {
                name,
                measured: "n/a".into(),
                pass: None,
            },
        });
    }
    // On S3 (only when the run had those servers): berth on PostgreSQL + S3 against
    // the reference on the same bucket.
    if rows.iter().any(|r| r.server == BERTH_PG_S3) {
        for (key, min) in [
            ("push-mono-1m", 2.0),
            (LARGE_PUSH, 2.0),
            ("manifest-get-c64", 2.0),
            ("pull-mono-1m", 1.0),
            (LARGE_PULL, 1.0),
        ] {
            let name = format!("S3: {key}: {BERTH_PG_S3} ≥ {min}× {REFERENCE_S3}");
            out.push(match ratios_of(rows, key, BERTH_PG_S3, REFERENCE_S3) {
                Some((thr, _, _)) => Target {
                    name,
                    measured: format!("{thr:.2}×"),
                    pass: Some(thr >= min),
                },
                None => Target {
                    name,
                    measured: "n/a".into(),
                    pass: None,
                },
            });
        }
    }
    let idle = find(rows, "idle-memory", BERTH).map(|r| r.value);
    out.push(Target {
        name: "idle memory < 12 MiB".into(),
        measured: idle.map_or("n/a".into(), |v| format!("{v:.1} MiB")),
        pass: idle.map(|v| v < 12.0),
    });
    let cold = find(rows, "cold-start", BERTH).map(|r| r.value);
    out.push(Target {
        name: "cold start < 100 ms".into(),
        measured: cold.map_or("n/a".into(), |v| format!("{v:.1} ms")),
        pass: cold.map(|v| v < 100.0),
    });
    out
}

fn mark(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "✅ pass",
        Some(false) => "❌ short",
        None => "– n/a",
    }
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "–".to_owned(), f)
}

/// The Markdown report: one row per scenario and server, then the targets.
pub fn markdown(rows: &[Row], targets: &[Target], header: &str) -> String {
    let mut s = String::new();
    s.push_str(header);
    s.push_str("\n\n| Scenario | Server | Result | p50 ms | p90 ms | p99 ms | Peak RSS MiB | Server CPU s | Harness CPU s | Errors | % of limit | berth ÷ this (result · p99 · RSS) |\n");
    s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for r in rows {
        let ratio = if r.server == BERTH || r.server == MACHINE {
            String::new()
        } else {
            match ratios(rows, &r.key, &r.server) {
                Some((v, p99, rss)) => format!(
                    "{:.2}× · {} · {}",
                    v,
                    opt(p99, |x| format!("{x:.2}×")),
                    opt(rss, |x| format!("{x:.2}×"))
                ),
                None => String::new(),
            }
        };
        s.push_str(&format!(
            "| {} | {} | {} {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.title,
            r.server,
            fmt_value(r.value),
            r.unit,
            opt(r.latency, |l| format!("{:.2}", l.p50_ms)),
            opt(r.latency, |l| format!("{:.2}", l.p90_ms)),
            opt(r.latency, |l| format!("{:.2}", l.p99_ms)),
            opt(r.peak_rss_kib, |k| format!("{:.1}", k as f64 / 1024.0)),
            opt(r.server_cpu_s, |c| format!("{c:.2}")),
            opt(r.harness_cpu_s, |c| format!("{c:.2}")),
            r.errors,
            opt(r.limit_fraction, |f| format!("{:.0}%", f * 100.0)),
            ratio,
        ));
    }
    let ab: Vec<&Row> = rows.iter().filter(|r| r.rounds.len() > 1).collect();
    if !ab.is_empty() {
        s.push_str("\nA/B rounds: these rows ran in alternating rounds, the two berths (encryption on ÷ off, or without ÷ with webhooks) taking turns to go first, each round on fresh blobs; Result above is the median round.\n\n| Scenario | Server | Rounds |\n|---|---|---|\n");
        for r in ab {
            let v: Vec<String> = r.rounds.iter().map(|x| fmt_value(*x)).collect();
            s.push_str(&format!(
                "| {} | {} | {} {} |\n",
                r.title,
                r.server,
                v.join(", "),
                r.unit
            ));
        }
    }
    s.push_str("\n| Target | Measured | Mark |\n|---|---|---|\n");
    for t in targets {
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            t.name,
            t.measured,
            mark(t.pass)
        ));
    }
    s
}

/// The JSON report.
pub fn json(all: &[Row], targets: &[Target], meta: Value) -> Value {
    let rows: Vec<Value> = all
        .iter()
        .map(|r| {
            json!({
                "scenario": r.key,
                "title": r.title,
                "server": r.server,
                "ops": r.ops,
                "errors": r.errors,
                "seconds": r.seconds,
                "value": r.value,
                "unit": r.unit,
                "latency_ms": r.latency.map(|l| json!({
                    "count": l.count, "p50": l.p50_ms, "p90": l.p90_ms, "p99": l.p99_ms, "max": l.max_ms,
                })),
                "peak_rss_kib": r.peak_rss_kib,
                "server_cpu_s": r.server_cpu_s,
                "harness_cpu_s": r.harness_cpu_s,
                "limit_fraction": r.limit_fraction,
                "rounds": r.rounds,
                "berth_ratio_vs_this": if r.server == BERTH || r.server == MACHINE { None } else {
                    ratios(all, &r.key, &r.server)
                        .map(|(v, p99, rss)| json!({"value": v, "p99": p99, "peak_rss": rss}))
                },
            })
        })
        .collect();
    let targets: Vec<Value> = targets
        .iter()
        .map(|t| json!({"target": t.name, "measured": t.measured, "pass": t.pass}))
        .collect();
    json!({"meta": meta, "results": rows, "targets": targets})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, server: &str, value: f64, unit: &'static str, p99: f64, rss: u64) -> Row {
        let mut r = Row::new(key, key, server, value, unit);
        r.latency = Some(Summary {
            count: 10,
            p50_ms: p99 / 2.0,
            p90_ms: p99 * 0.9,
            p99_ms: p99,
            max_ms: p99,
        });
        r.peak_rss_kib = Some(rss);
        r
    }

    fn sample() -> Vec<Row> {
        let mut push_b = row(LARGE_PUSH, BERTH, 300.0, "MiB/s", 800.0, 10_000);
        push_b.limit_fraction = Some(0.9);
        let mut pull_b = row(LARGE_PULL, BERTH, 300.0, "MiB/s", 800.0, 10_000);
        pull_b.limit_fraction = Some(0.5);
        vec![
            row("manifest-get-c64", BERTH, 60_000.0, "req/s", 2.0, 10_000),
            row(
                "manifest-get-c64",
                REFERENCE,
                10_000.0,
                "req/s",
                4.0,
                40_000,
            ),
            row("manifest-head-c64", BERTH, 40_000.0, "req/s", 2.0, 10_000),
            row(
                "manifest-head-c64",
                REFERENCE,
                10_000.0,
                "req/s",
                4.0,
                40_000,
            ),
            push_b,
            row(LARGE_PUSH, REFERENCE, 200.0, "MiB/s", 900.0, 15_000),
            pull_b,
            row(LARGE_PULL, REFERENCE, 200.0, "MiB/s", 900.0, 40_000),
            row("idle-memory", BERTH, 11.5, "MiB", 0.0, 11_800),
            row("cold-start", BERTH, 150.0, "ms", 0.0, 12_800),
            row(LARGE_PUSH, BERTH_PLAINTEXT, 320.0, "MiB/s", 700.0, 9_000),
            row(LARGE_PULL, BERTH_PLAINTEXT, 400.0, "MiB/s", 700.0, 9_000),
        ]
    }

    #[test]
    fn ratios_are_berth_over_other() {
        let rows = sample();
        let (v, p99, rss) = ratios(&rows, "manifest-get-c64", REFERENCE).expect("both rows");
        assert_eq!(v, 6.0);
        assert_eq!(p99, Some(0.5));
        assert_eq!(rss, Some(0.25));
        assert!(ratios(&rows, "manifest-get-c64", REFERENCE_NOAUTH).is_none());
    }

    #[test]
    fn parallel_pull_against_reference_noauth_and_read_limit() {
        let key = "pull-par-64m";
        let with = |berth: f64, frac: f64| {
            let mut b = row(key, BERTH, berth, "MiB/s", 100.0, 20_000);
            b.limit_fraction = Some(frac);
            let r = row(key, REFERENCE_NOAUTH, 1000.0, "MiB/s", 100.0, 50_000);
            let t = evaluate_targets(&[b, r]);
            t.into_iter()
                .find(|x| x.name.starts_with(key))
                .expect("parallel-pull target present")
                .pass
        };
        assert_eq!(with(1300.0, 0.85), Some(true));
        assert_eq!(with(1100.0, 0.85), Some(false)); // 1.1× the reference
        assert_eq!(with(1300.0, 0.75), Some(false)); // 75% of the read limit
        assert!(evaluate_targets(&sample())
            .iter()
            .all(|t| !t.name.starts_with(key)));
    }

    #[test]
    fn targets_pass_and_short() {
        let t = evaluate_targets(&sample());
        let by = |prefix: &str| {
            t.iter()
                .find(|x| x.name.starts_with(prefix))
                .expect("target present")
                .pass
        };
        assert_eq!(by("manifest-get-c64"), Some(true));
        assert_eq!(by("manifest-head-c64"), Some(false)); // 4×
        assert_eq!(by(LARGE_PUSH), Some(true));
        assert_eq!(by(LARGE_PULL), Some(false)); // 50% of limit
        assert_eq!(by("peak RSS"), Some(false)); // push: 10000/15000 > ½
        assert_eq!(by("idle memory"), Some(true));
        assert_eq!(by("cold start"), Some(false));
        let enc = |key: &str| {
            t.iter()
                .find(|x| x.name.starts_with(key) && x.name.contains("plaintext"))
                .expect("encryption target present")
                .pass
        };
        assert_eq!(enc(LARGE_PUSH), Some(true)); // 300 / 320 = 0.94
        assert_eq!(enc(LARGE_PULL), Some(false)); // 300 / 400 = 0.75
        assert_eq!(enc("push-mono-1m"), None);
    }

    #[test]
    fn webhook_target_compares_the_two_berths() {
        let w = |v_plain: f64, v_hooked: f64| {
            let rows = vec![
                row("push-image-c4", BERTH, v_plain, "img/s", 10.0, 1),
                row("push-image-c4", BERTH_WEBHOOKS, v_hooked, "img/s", 10.0, 1),
            ];
            evaluate_targets(&rows)
                .into_iter()
                .find(|t| t.name.contains("two webhooks"))
                .expect("webhook target")
                .pass
        };
        assert_eq!(w(100.0, 96.0), Some(true));
        assert_eq!(w(100.0, 94.0), Some(false));
        assert!(!evaluate_targets(&sample())
            .iter()
            .any(|t| t.name.contains("two webhooks")));
    }

    #[test]
    fn manifest_targets_against_the_reference_without_auth_and_the_null_server() {
        let mut rows = sample();
        rows.push(row(
            "manifest-get-c64",
            REFERENCE_NOAUTH,
            4_000.0,
            "req/s",
            3.0,
            1,
        ));
        rows.push(row(
            "manifest-head-c64",
            REFERENCE_NOAUTH,
            4_000.0,
            "req/s",
            1.0,
            1,
        ));
        rows.push(row(
            "manifest-get-c64",
            NULL_SERVER,
            100_000.0,
            "req/s",
            1.0,
            1,
        ));
        rows.push(row(
            "manifest-head-c64",
            NULL_SERVER,
            90_000.0,
            "req/s",
            1.0,
            1,
        ));
        let t = evaluate_targets(&rows);
        let by = |name: &str| t.iter().find(|x| x.name == name).expect(name).pass;
        // 60k ÷ 4k = 15×, p99 2 ms < 3 ms.
        assert_eq!(
            by("manifest-get-c64: ≥ 12× reference (no auth), lower p99"),
            Some(true)
        );
        // 40k ÷ 4k = 10×, and the p99 is higher.
        assert_eq!(
            by("manifest-head-c64: ≥ 12× reference (no auth), lower p99"),
            Some(false)
        );
        // 60 % and 44 % of the null server.
        assert_eq!(by("manifest-get-c64: ≥ 50% of the null server"), Some(true));
        assert_eq!(
            by("manifest-head-c64: ≥ 50% of the null server"),
            Some(false)
        );
        assert_eq!(by("manifest-get-c1: ≥ 50% of the null server"), None);
    }

    #[test]
    fn targets_missing_rows_are_na() {
        let t = evaluate_targets(&[]);
        assert!(t.iter().all(|x| x.pass.is_none()));
    }

    #[test]
    fn markdown_has_rows_ratios_and_marks() {
        let rows = sample();
        let md = markdown(&rows, &evaluate_targets(&rows), "## Results");
        assert!(md.starts_with("## Results\n\n| Scenario |"));
        // One table line per row plus header/separator, then the targets table.
        let lines: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(lines.len(), 2 + rows.len() + 2 + 13 + 2 + 6);
        let ref_line = lines
            .iter()
            .find(|l| l.contains("| manifest-get-c64 | reference |"))
            .expect("reference row");
        assert!(ref_line.contains("6.00× · 0.50× · 0.25×"), "{ref_line}");
        assert!(ref_line.contains("| 10000 req/s |"), "{ref_line}");
        assert!(md.contains("✅ pass") && md.contains("❌ short"));
    }

    #[test]
    fn json_shape() {
        let rows = sample();
        let v = json(&rows, &evaluate_targets(&rows), json!({"mode": "test"}));
        assert_eq!(v["results"].as_array().map(Vec::len), Some(rows.len()));
        assert_eq!(v["results"][1]["berth_ratio_vs_this"]["value"], 6.0);
        assert_eq!(v["results"][0]["berth_ratio_vs_this"], Value::Null);
        assert_eq!(v["targets"][0]["pass"], true);
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time.
pub fn utc_timestamp(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil-from-days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn timestamps() {
        assert_eq!(super::utc_timestamp(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc_timestamp(1_440_938_160), "2015-08-30 12:36:00");
        assert_eq!(super::utc_timestamp(951_782_400), "2000-02-29 00:00:00");
    }
}

//! ECR-style request throttling (`docs/architecture.md`, "Throttling and request
//! limits"): a token bucket per (account, operation), shared by every request this
//! node serves. ECR publishes per-account, per-region rates for the image API;
//! berth applies them, when enabled, to the ECR JSON operation and to the `/v2/`
//! request that ECR's own registry endpoint counts as that operation. A refusal
//! names how long until a token is available: `ThrottlingException` on the JSON
//! APIs (the SDKs back off and retry it), `429 TOOMANYREQUESTS` with `Retry-After`
//! on `/v2/`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// ECR's published default rates (requests per second per account and region,
/// the "Amazon ECR service quotas" page of the ECR User Guide).
pub const ECR_DEFAULT_RATES: &[(&str, f64)] = &[
    ("BatchCheckLayerAvailability", 1000.0),
    ("BatchGetImage", 2000.0),
    ("CompleteLayerUpload", 100.0),
    ("GetAuthorizationToken", 500.0),
    ("GetDownloadUrlForLayer", 3000.0),
    ("InitiateLayerUpload", 100.0),
    ("PutImage", 10.0),
    ("UploadLayerPart", 500.0),
];

/// A rate: tokens per second and the bucket's size (the burst allowed after a
/// quiet period).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: f64,
}

impl Rate {
    /// `N` (burst = N, one second's worth, at least 1) or `N/B`.
    pub fn parse(s: &str) -> Option<Rate> {
        let (r, b) = match s.split_once('/') {
            Some((r, b)) => (r.trim(), Some(b.trim())),
            None => (s.trim(), None),
        };
        let per_sec: f64 = r.parse().ok().filter(|v: &f64| v.is_finite() && *v > 0.0)?;
        let burst = match b {
            Some(b) => b
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 1.0)?,
            None => per_sec.max(1.0),
        };
        Some(Rate { per_sec, burst })
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The throttle of one node. With several nodes behind a load balancer, each
/// applies its share of every rate and burst (divided by the number of live
/// nodes, [`Throttle::set_nodes`]), so the deployment as a whole allows about the
/// configured rate whichever node a request reaches.
#[derive(Default)]
pub struct Throttle {
    rates: HashMap<String, Rate>,
    buckets: Mutex<HashMap<(String, &'static str), Bucket>>,
    /// Live nodes sharing the rates (0 is taken as 1).
    nodes: AtomicU64,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("rates", &self.rates)
            .finish()
    }
}

/// Bound on remembered buckets; idle full buckets are dropped past it.
const MAX_BUCKETS: usize = 100_000;

impl Throttle {
    /// A throttle with these rates by operation name (none: nothing is throttled).
    pub fn new(rates: HashMap<String, Rate>) -> Throttle {
        Throttle {
            rates,
            buckets: Mutex::new(HashMap::new()),
            nodes: AtomicU64::new(1),
        }
    }

    /// How many live nodes share the rates (from the nodes' heartbeats).
    pub fn set_nodes(&self, n: u64) {
        self.nodes.store(n.max(1), Relaxed);
    }

    /// The number of nodes the rates are divided among.
    pub fn nodes(&self) -> u64 {
        self.nodes.load(Relaxed).max(1)
    }

    pub fn is_enabled(&self) -> bool {
        !self.rates.is_empty()
    }

    /// Takes a token for `account`'s `op`; `Err(wait)` when none is left, with the
    /// time until one is.
    pub fn check(&self, account: &str, op: &str) -> Result<(), Duration> {
        self.check_at(account, op, Instant::now())
    }

    fn check_at(&self, account: &str, op: &str, now: Instant) -> Result<(), Duration> {
        let Some((name, rate)) = self.rates.get_key_value(op) else {
            return Ok(());
        };
        // This node's share; a burst of at least one request.
        let share = self.nodes() as f64;
        let rate = Rate {
            per_sec: rate.per_sec / share,
            burst: (rate.burst / share).max(1.0),
        };
        let Some(op_static) = ECR_DEFAULT_RATES
            .iter()
            .map(|(n, _)| *n)
            .find(|n| *n == name.as_str())
        else {
            return Ok(());
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|(_, o), b| {
                let r = self.rates.get(*o).map_or(1.0, |r| r.per_sec);
                b.tokens + now.duration_since(b.last).as_secs_f64() * r < 1.0
            });
        }
        let b = buckets
            .entry((account.to_string(), op_static))
            .or_insert(Bucket {
                tokens: rate.burst,
                last: now,
            });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate.per_sec).min(rate.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            if let Some(i) = ECR_DEFAULT_RATES.iter().position(|(n, _)| *n == op_static) {
                THROTTLED[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate.per_sec))
        }
    }
}

/// Refusals by operation, in [`ECR_DEFAULT_RATES`] order (`/metrics`).
static THROTTLED: [std::sync::atomic::AtomicU64; 8] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 8];

/// Requests this process refused for their rate, by operation.
pub fn throttled_counts() -> impl Iterator<Item = (&'static str, u64)> {
    ECR_DEFAULT_RATES
        .iter()
        .zip(THROTTLED.iter())
        .map(|((op, _), n)| (*op, n.load(std::sync::atomic::Ordering::Relaxed)))
}

/// Parses a throttle setting: `off`, `ecr` (ECR's defaults), and/or
/// comma-separated `Operation=N` or `Operation=N/BURST` overrides (`ecr,PutImage=2`).
/// Only the operations of [`ECR_DEFAULT_RATES`] are throttled.
pub fn parse_setting(s: &str) -> Result<HashMap<String, Rate>, String> {
    let mut rates = HashMap::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match item {
            "off" => rates.clear(),
            "ecr" => {
                for (op, r) in ECR_DEFAULT_RATES {
                    rates.insert(
                        op.to_string(),
                        Rate {
                            per_sec: *r,
                            burst: *r,
                        },
                    );
                }
            }
            _ => {
                let (op, r) = item
                    .split_once('=')
                    .ok_or_else(|| format!("{item:?} is not off, ecr or Operation=RATE"))?;
                let op = op.trim();
                if !ECR_DEFAULT_RATES.iter().any(|(n, _)| *n == op) {
                    return Err(format!(
                        "{op:?} is not a throttled operation (one of {})",
                        ECR_DEFAULT_RATES
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                let rate = Rate::parse(r)
                    .ok_or_else(|| format!("{r:?} is not a rate (N or N/BURST, N > 0)"))?;
                rates.insert(op.to_string(), rate);
            }
        }
    }
    Ok(rates)
}

/// Whole seconds a client should wait (`Retry-After`), at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse() {
        assert!(parse_setting("off").unwrap().is_empty());
        assert!(parse_setting("").unwrap().is_empty());
        let r = parse_setting("ecr").unwrap();
        assert_eq!(r.len(), ECR_DEFAULT_RATES.len());
        assert_eq!(r["PutImage"].per_sec, 10.0);
        assert_eq!(r["BatchGetImage"].per_sec, 2000.0);
        let r = parse_setting("ecr, PutImage=2/5").unwrap();
        assert_eq!(
            r["PutImage"],
            Rate {
                per_sec: 2.0,
                burst: 5.0
            }
        );
        let r = parse_setting("BatchGetImage=0.5").unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r["BatchGetImage"].burst, 1.0);
        assert!(parse_setting("DescribeImages=3").is_err());
        assert!(parse_setting("PutImage=0").is_err());
        assert!(parse_setting("PutImage=x").is_err());
        assert!(parse_setting("PutImage=1/0.5").is_err());
        assert!(parse_setting("nonsense").is_err());
    }

    #[test]
    fn a_bucket_per_account_and_operation_refills_at_its_rate() {
        let t = Throttle::new(parse_setting("PutImage=2/3").unwrap());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(t.check_at("a", "PutImage", t0).is_ok());
        }
        let wait = t.check_at("a", "PutImage", t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        assert_eq!(retry_after_secs(wait), 1);
        // Other accounts and operations have their own buckets.
        assert!(t.check_at("b", "PutImage", t0).is_ok());
        assert!(t.check_at("a", "BatchGetImage", t0).is_ok());
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert!(t.check_at("a", "PutImage", t1).is_ok());
        assert!(t.check_at("a", "PutImage", t1).is_err());
        // A long pause refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(t.check_at("a", "PutImage", t2).is_ok());
        }
        assert!(t.check_at("a", "PutImage", t2).is_err());
    }

    #[test]
    fn several_nodes_share_each_rate() {
        let t = Throttle::new(parse_setting("PutImage=4/8").unwrap());
        t.set_nodes(2);
        let t0 = Instant::now();
        // Half the burst here…
        for _ in 0..4 {
            assert!(t.check_at("a", "PutImage", t0).is_ok());
        }
        // …and half the rate: 2 per second, so the next token in 0.5 s.
        let wait = t.check_at("a", "PutImage", t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        // A burst never goes below one request, however many nodes.
        t.set_nodes(100);
        assert!(t.check_at("b", "PutImage", t0).is_ok());
        assert!(t.check_at("b", "PutImage", t0).is_err());
        // Back to one node: the whole rate again (the bucket refills to 8).
        t.set_nodes(0);
        assert_eq!(t.nodes(), 1);
        let t1 = t0 + Duration::from_secs(60);
        for _ in 0..8 {
            assert!(t.check_at("a", "PutImage", t1).is_ok());
        }
        assert!(t.check_at("a", "PutImage", t1).is_err());
    }
}

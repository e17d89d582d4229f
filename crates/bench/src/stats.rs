//! Latency percentiles (nearest-rank) and summaries. Pure: no I/O.

use std::time::Duration;

/// Nearest-rank percentile of an ascending-sorted slice: the smallest sample such
/// that at least `p` percent of samples are ≤ it. `None` for an empty slice.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = rank.saturating_sub(1).min(sorted.len() - 1);
    Some(sorted[idx])
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn ns_to_ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Summarises latency samples given in nanoseconds (sorts them in place).
pub fn summarize(samples_ns: &mut [u64]) -> Option<Summary> {
    samples_ns.sort_unstable();
    Some(Summary {
        count: samples_ns.len(),
        p50_ms: ns_to_ms(percentile(samples_ns, 50.0)?),
        p90_ms: ns_to_ms(percentile(samples_ns, 90.0)?),
        p99_ms: ns_to_ms(percentile(samples_ns, 99.0)?),
        max_ms: ns_to_ms(*samples_ns.last()?),
    })
}

/// Duration as whole nanoseconds, saturating.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Median of a small set of values (for repeated measurements such as cold start).
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 90.0), Some(90));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
    }

    #[test]
    fn percentile_small_and_empty() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[1, 2], 50.0), Some(1));
        assert_eq!(percentile(&[1, 2], 51.0), Some(2));
        assert_eq!(percentile(&[1, 2, 3], 150.0), Some(3));
    }

    #[test]
    fn summarize_sorts_and_converts() {
        let mut v = vec![3_000_000, 1_000_000, 2_000_000, 10_000_000];
        let s = summarize(&mut v).expect("non-empty");
        assert_eq!(s.count, 4);
        assert_eq!(s.p50_ms, 2.0);
        assert_eq!(s.p90_ms, 10.0);
        assert_eq!(s.p99_ms, 10.0);
        assert_eq!(s.max_ms, 10.0);
        assert!(summarize(&mut []).is_none());
    }

    #[test]
    fn median_odd_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}

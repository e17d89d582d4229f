//! Failed sign-ins (`docs/architecture.md`, "Throttling and request limits"): a bad
//! SigV4 signature, an unknown or disabled access key, an invalid or expired
//! registry token. Each is counted per source address on this node; past
//! [`FREE_FAILURES`] within [`WINDOW`], every request from that source that
//! presents credentials waits before it is even checked — 100 ms doubling per
//! further failure, at most [`MAX_DELAY`] — so guessing is slowed to a crawl while
//! the waiting costs no worker (an async sleep). Failures are written to the audit
//! log (action `berth:SignInFailure`): each of the first [`AUDITED_PER_WINDOW`] of a
//! window, then one record per window with the count, so a flood cannot flood the
//! log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures within a window before requests are slowed down.
pub const FREE_FAILURES: u32 = 5;
/// The counting window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The longest wait imposed.
pub const MAX_DELAY: Duration = Duration::from_secs(10);
/// Failures audited one by one per window.
pub const AUDITED_PER_WINDOW: u32 = 10;
/// Remembered sources; idle ones are dropped past it.
const MAX_SOURCES: usize = 100_000;

#[derive(Debug)]
struct Entry {
    failures: u32,
    window_start: Instant,
    /// Failures of the window not yet audited one by one.
    unaudited: u32,
}

/// What to audit about a failure just recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditNote {
    /// Audit this failure.
    This,
    /// Audit a summary: this many failures since the last record.
    Summary(u32),
    /// Nothing now (counted into the next summary).
    Nothing,
}

#[derive(Debug, Default)]
pub struct SignInGuard {
    sources: Mutex<HashMap<IpAddr, Entry>>,
}

fn delay_after(failures: u32) -> Duration {
    if failures <= FREE_FAILURES {
        return Duration::ZERO;
    }
    let exp = (failures - FREE_FAILURES - 1).min(16);
    (Duration::from_millis(100) * (1u32 << exp)).min(MAX_DELAY)
}

impl SignInGuard {
    /// How long a request from `ip` waits before its credentials are checked.
    pub fn delay(&self, ip: IpAddr) -> Duration {
        self.delay_at(ip, Instant::now())
    }

    fn delay_at(&self, ip: IpAddr, now: Instant) -> Duration {
        let map = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&ip) {
            Some(e) if now.duration_since(e.window_start) < WINDOW => delay_after(e.failures),
            _ => Duration::ZERO,
        }
    }

    /// Records a failed sign-in from `ip`.
    pub fn failed(&self, ip: IpAddr) -> AuditNote {
        self.failed_at(ip, Instant::now())
    }

    fn failed_at(&self, ip: IpAddr, now: Instant) -> AuditNote {
        let mut map = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_SOURCES {
            map.retain(|_, e| now.duration_since(e.window_start) < WINDOW);
        }
        let e = map.entry(ip).or_insert(Entry {
            failures: 0,
            window_start: now,
            unaudited: 0,
        });
        if now.duration_since(e.window_start) >= WINDOW {
            let pending = e.unaudited;
            *e = Entry {
                failures: 1,
                window_start: now,
                unaudited: 0,
            };
            // The previous window's unaudited failures go into this record.
            return if pending > 0 {
                AuditNote::Summary(pending + 1)
            } else {
                AuditNote::This
            };
        }
        e.failures += 1;
        if e.failures <= AUDITED_PER_WINDOW {
            AuditNote::This
        } else {
            e.unaudited += 1;
            // One summary per further AUDITED_PER_WINDOW failures.
            if e.unaudited >= AUDITED_PER_WINDOW {
                let n = e.unaudited;
                e.unaudited = 0;
                AuditNote::Summary(n)
            } else {
                AuditNote::Nothing
            }
        }
    }
}

impl crate::App {
    /// Waits as long as the current request's source must (see the module comment).
    pub(crate) async fn signin_wait(&self) {
        if let Some(a) = crate::request_attrs::current() {
            let d = self.hardening.signin.delay(a.source_ip);
            if !d.is_zero() {
                tokio::time::sleep(d).await;
            }
        }
    }

    /// Counts and audits a failed sign-in of the current request: `what` is the
    /// reason (never a secret), `key_id` the access key id presented, if any.
    pub(crate) async fn signin_failed(&self, what: &str, key_id: Option<&str>) {
        crate::metrics::auth_failed(what);
        let Some(a) = crate::request_attrs::current() else {
            return;
        };
        let outcome = match self.hardening.signin.failed(a.source_ip) {
            AuditNote::This => what.to_string(),
            AuditNote::Summary(n) => format!("{what} ({n} failures)"),
            AuditNote::Nothing => return,
        };
        tracing::info!(source = %a.source_ip, reason = what, "failed sign-in");
        let source = a.source_ip.to_string();
        let record = berth_registry::AuditRecord {
            account: &self.config.default_account,
            principal: "anonymous",
            action: "berth:SignInFailure",
            resource: key_id,
            source: &source,
            outcome: &outcome,
        };
        if let Err(e) = self.registry.audit(&record).await {
            tracing::warn!(error = %e, "could not write the audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_slow_a_source_down_and_are_audited_boundedly() {
        let g = SignInGuard::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(g.failed_at(ip, t0), AuditNote::This);
        }
        assert_eq!(g.delay_at(ip, t0), Duration::ZERO);
        g.failed_at(ip, t0);
        assert_eq!(g.delay_at(ip, t0), Duration::from_millis(100));
        g.failed_at(ip, t0);
        assert_eq!(g.delay_at(ip, t0), Duration::from_millis(200));
        assert_eq!(g.delay_at(other, t0), Duration::ZERO);
        let mut notes = Vec::new();
        for _ in 0..40 {
            notes.push(g.failed_at(ip, t0));
        }
        assert_eq!(g.delay_at(ip, t0), MAX_DELAY);
        // 10 audited one by one in all, then a summary every 10.
        let singles = notes.iter().filter(|n| **n == AuditNote::This).count();
        assert_eq!(singles, (AUDITED_PER_WINDOW - FREE_FAILURES - 2) as usize);
        let summaries: Vec<_> = notes
            .iter()
            .filter(|n| matches!(n, AuditNote::Summary(_)))
            .collect();
        assert_eq!(summaries.len(), 3);
        // A new window starts over.
        let t1 = t0 + WINDOW;
        assert_eq!(g.delay_at(ip, t1), Duration::ZERO);
        assert!(matches!(g.failed_at(ip, t1), AuditNote::Summary(_)));
        assert_eq!(g.delay_at(ip, t1), Duration::ZERO);
    }
}

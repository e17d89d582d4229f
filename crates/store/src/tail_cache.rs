//! The tails this process wrote lately, kept in memory so the next append or the
//! commit of the same upload on this node need not fetch them back from the object
//! store (one round trip saved per request; docs/benchmarks.md). A tail object is
//! written once under a fresh key and never changed, so a cached copy is always
//! that object's bytes; another node simply finds nothing here and reads the
//! object. Bounded: 24 MiB in all, oldest dropped first. The
//! bytes are sealed (ciphertext), like the objects.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;

/// The largest tail kept: a part (8 MiB) and a sealed segment.
const MAX_ENTRY: usize = 9 * 1024 * 1024;
/// All tails kept, at most.
const MAX_TOTAL: usize = 24 * 1024 * 1024;

#[derive(Default)]
pub(crate) struct TailCache(Mutex<Inner>);

#[derive(Default)]
struct Inner {
    map: HashMap<String, Bytes>,
    order: VecDeque<String>,
    total: usize,
}

impl TailCache {
    pub(crate) fn put(&self, key: &str, bytes: Bytes) {
        if bytes.len() > MAX_ENTRY {
            return;
        }
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.total += bytes.len();
        if let Some(old) = g.map.insert(key.to_string(), bytes) {
            g.total -= old.len();
        } else {
            g.order.push_back(key.to_string());
        }
        while g.total > MAX_TOTAL {
            let Some(k) = g.order.pop_front() else { break };
            if let Some(b) = g.map.remove(&k) {
                g.total -= b.len();
            }
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<Bytes> {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.map.get(key).cloned()
    }

    pub(crate) fn forget(&self, key: &str) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = g.map.remove(key) {
            g.total -= b.len();
            g.order.retain(|k| k != key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_exact() {
        let c = TailCache::default();
        c.put("a", Bytes::from(vec![1u8; 10]));
        assert_eq!(c.get("a").as_deref(), Some(&[1u8; 10][..]));
        c.put("big", Bytes::from(vec![0u8; MAX_ENTRY + 1]));
        assert!(c.get("big").is_none());
        for i in 0..10 {
            c.put(&format!("k{i}"), Bytes::from(vec![i as u8; MAX_ENTRY]));
        }
        let kept = (0..10)
            .filter(|i| c.get(&format!("k{i}")).is_some())
            .count();
        assert_eq!(kept, MAX_TOTAL / MAX_ENTRY);
        assert!(c.get("a").is_none(), "the oldest went first");
        assert!(c.get("k9").is_some());
        c.forget("k9");
        assert!(c.get("k9").is_none());
        assert!(c.0.lock().unwrap().total <= MAX_TOTAL);
    }
}

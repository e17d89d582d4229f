//! The registry's clock. Everything time-dependent (push times, lifecycle ages,
//! upload expiry, token lifetimes) reads it, so tests can move time forward.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// A clock running `offset_ms` ahead of the wall clock.
    pub fn with_offset(offset_ms: i64) -> Self {
        Clock {
            offset_ms: Arc::new(AtomicI64::new(offset_ms)),
        }
    }

    /// Unix milliseconds.
    pub fn now_millis(&self) -> i64 {
        berth_store::now_millis() + self.offset_ms.load(Ordering::Relaxed)
    }

    pub fn advance(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

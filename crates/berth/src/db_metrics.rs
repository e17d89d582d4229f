//! Metadata-store statement latencies for `/metrics` (`docs/observability.md`).
//!
//! sqlx times every statement it runs — on the pool and inside transactions, on
//! both dialects — and reports it as a `sqlx::query` tracing event carrying the
//! statement's first words (`summary`) and `elapsed_secs`. This layer, filtered to
//! that target alone, records the time by statement kind; the log output's own
//! filter (`BERTH_LOG`, `sqlx=warn` by default) still decides what is printed.

use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

pub const TARGET: &str = "sqlx::query";

pub struct DbStatements;

#[derive(Default)]
struct Fields {
    summary: Option<String>,
    secs: Option<f64>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "summary" {
            self.summary = Some(value.to_string());
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.secs = Some(value);
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl<S: Subscriber> Layer<S> for DbStatements {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        if let (Some(summary), Some(secs)) = (f.summary, f.secs) {
            if secs.is_finite() && secs >= 0.0 {
                berth_registry::obs::observe_statement(&summary, Duration::from_secs_f64(secs));
            }
        }
    }
}

/// The layer, seeing only sqlx's statement events.
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    DbStatements.with_filter(tracing_subscriber::filter::filter_fn(|m| {
        m.target() == TARGET
    }))
}

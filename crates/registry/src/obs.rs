//! What the core reads for `/metrics` at scrape time (`docs/observability.md`),
//! and the stores' process-wide measurements re-exported for the front end.

pub use berth_store::meta::{JobQueueStat, PoolStats};
pub use berth_store::obs::{
    db_errors, object_errors, object_latency, observe_statement, statement_latency, Histogram,
    DB_WRITE_WAIT, LATENCY_BUCKETS,
};

use crate::{Registry, RegistryError};

impl Registry {
    /// Jobs by kind and state, with each kind's oldest due queued job.
    pub async fn job_queue_stats(&self) -> Result<Vec<JobQueueStat>, RegistryError> {
        Ok(self.meta.job_queue_stats(self.now()).await?)
    }

    /// Upload sessions open in the metadata store (every node's).
    pub async fn open_upload_count(&self) -> Result<i64, RegistryError> {
        Ok(self.meta.open_upload_count().await?)
    }

    /// This node's metadata-store connection pool.
    pub fn db_pool_stats(&self) -> PoolStats {
        self.meta.pool_stats()
    }
}

//! The live nodes of a deployment (`berth_store`'s `nodes` table): `berth serve`
//! calls [`Registry::node_heartbeat`] every [`HEARTBEAT`] and learns how many nodes
//! share the registry; a node counts as live for [`LIVE`] after its last beat
//! (clocks in step, as for every lease: `docs/architecture.md`, "Several nodes").

use std::time::Duration;

use crate::{Registry, RegistryError};

/// How often a node renews its row.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long a node counts as live after its last heartbeat.
pub const LIVE: Duration = Duration::from_secs(15);

impl Registry {
    /// Renews this node's row; returns the number of live nodes, itself included.
    pub async fn node_heartbeat(&self, node_id: &str) -> Result<u64, RegistryError> {
        let now = self.now();
        let n = self
            .meta
            .node_heartbeat(node_id, now, now - LIVE.as_millis() as i64)
            .await?;
        Ok(n.max(1) as u64)
    }

    /// Removes this node's row (it is stopping), so the others stop counting it.
    pub async fn node_leave(&self, node_id: &str) -> Result<(), RegistryError> {
        Ok(self.meta.node_leave(node_id).await?)
    }
}

//! The write lease on an upload row. A request that appends to or finishes an
//! upload holds it, so two nodes (or two requests on one node) never write one
//! upload's staged bytes at the same time: with the parts staging path the staged
//! objects are shared by every node, and an S3 part written twice would replace
//! the first. The lease lives in the database (`uploads.lease_owner`,
//! `lease_until`) and is renewed while the request runs; a node that dies holding
//! one blocks the upload for at most [`LEASE_MS`], after which another takes it.

use std::time::Duration;

use berth_store::{Meta, UploadRow};

use crate::{Clock, RegistryError};

/// How long a lease holds without renewal.
pub const LEASE_MS: i64 = 30_000;
/// How often a held lease is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(10);

/// A held lease; renewed in the background, released on drop.
pub(crate) struct UploadLease {
    meta: Meta,
    upload_id: String,
    owner: String,
    renewer: tokio::task::JoinHandle<()>,
}

impl UploadLease {
    /// Takes the lease and returns the upload's row as it stands under it, or
    /// answers the error a client retries (the upload is being written by another
    /// request), or `UploadUnknown` when the upload is gone.
    pub(crate) async fn take(
        meta: &Meta,
        clock: &Clock,
        upload_id: &str,
    ) -> Result<(UploadLease, UploadRow), RegistryError> {
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let now = clock.now_millis();
        let Some(row) = meta
            .lease_upload(upload_id, &owner, now, now + LEASE_MS)
            .await?
        else {
            return Err(match meta.get_upload(upload_id).await? {
                None => RegistryError::UploadUnknown,
                Some(_) => {
                    RegistryError::UploadInvalid("another request is writing to this upload".into())
                }
            });
        };
        let renewer = {
            let (meta, clock, id, owner) = (
                meta.clone(),
                clock.clone(),
                upload_id.to_string(),
                owner.clone(),
            );
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    let now = clock.now_millis();
                    match meta.lease_upload(&id, &owner, now, now + LEASE_MS).await {
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            tracing::warn!(upload = %id, "lost an upload's write lease");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(upload = %id, error = %e, "could not renew an upload's write lease")
                        }
                    }
                }
            })
        };
        Ok((
            UploadLease {
                meta: meta.clone(),
                upload_id: upload_id.to_string(),
                owner,
                renewer,
            },
            row,
        ))
    }

    /// The owner token recorded in the row while the lease is held.
    pub(crate) fn owner(&self) -> &str {
        &self.owner
    }

    /// The lease was given back by the statement that recorded the append
    /// (`Meta::advance_upload`): stop renewing, write nothing more.
    pub(crate) fn given_back(mut self) {
        self.renewer.abort();
        self.owner.clear();
    }
}

impl UploadLease {
    /// Gives the lease back before the response goes out, so the client's next
    /// request (on any node) finds the upload free.
    pub(crate) async fn release(mut self) {
        self.renewer.abort();
        let owner = std::mem::take(&mut self.owner);
        if let Err(e) = self
            .meta
            .release_upload_lease(&self.upload_id, &owner)
            .await
        {
            tracing::warn!(upload = %self.upload_id, error = %e, "could not release an upload's write lease");
        }
    }
}

impl Drop for UploadLease {
    fn drop(&mut self) {
        self.renewer.abort();
        if self.owner.is_empty() {
            return;
        }
        let (meta, id, owner) = (
            self.meta.clone(),
            std::mem::take(&mut self.upload_id),
            std::mem::take(&mut self.owner),
        );
        // Released in the background; if this never runs the lease expires.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = meta.release_upload_lease(&id, &owner).await {
                    tracing::debug!(upload = %id, error = %e, "could not release an upload's write lease");
                }
            });
        }
    }
}

//! Bulk import: many manifests of one repository stored in one transaction, each
//! checked, sealed and recorded exactly as a push is (`Registry::manifest_write`:
//! references, tag immutability, scan-on-push and replication jobs, events), only
//! without one commit per image. And small blobs given in memory. Used by
//! `berth admin bench-fill`, which fills a registry for the scale benchmark
//! (`crates/bench/src/scale.rs`).

use berth_oci::{Digest, Reference};
use berth_store::PutManifestOutcome;
use bytes::Bytes;

use crate::registry::{MountOutcome, Registry};
use crate::{RegistryError, RepositoryRow};

type Result<T> = std::result::Result<T, RegistryError>;

impl Registry {
    /// Stores a small blob held in memory into `repo` (an upload finished in one
    /// request), or links it from `from` when it is already stored there.
    pub async fn bulk_import_blob(
        &self,
        repo: &RepositoryRow,
        bytes: Bytes,
        from: Option<&RepositoryRow>,
    ) -> Result<Digest> {
        let digest = Digest::sha256_of(&bytes);
        let upload = match self.mount_blob(repo, &digest, from).await? {
            MountOutcome::Mounted(_) => return Ok(digest),
            MountOutcome::Upload(u) => u,
        };
        let len = bytes.len() as u64;
        let body = futures_util::stream::iter([Ok::<Bytes, String>(bytes)]);
        self.append_and_complete(repo, &upload.id, Some(0), Some(len), body, &digest)
            .await?;
        Ok(digest)
    }

    /// Stores `manifests` (reference, body; the media type is the body's
    /// `mediaType`) in `repo` in one transaction: all or none. Returns how many.
    pub async fn bulk_import_manifests(
        &self,
        repo: &RepositoryRow,
        manifests: Vec<(Reference, Bytes)>,
    ) -> Result<usize> {
        let mut writes = Vec::with_capacity(manifests.len());
        let mut refs = Vec::with_capacity(manifests.len());
        for (reference, body) in manifests {
            let (w, _, _) = self
                .manifest_write(repo, &reference, None, body, false, true)
                .await?;
            writes.push(w);
            refs.push(reference);
        }
        match self.meta.put_manifests(&writes).await? {
            Ok(()) => Ok(writes.len()),
            Err((i, outcome)) => Err(match outcome {
                PutManifestOutcome::MissingBlobs(b) => RegistryError::ManifestBlobUnknown(b),
                PutManifestOutcome::MissingManifests(c) => RegistryError::ManifestChildUnknown(c),
                _ => RegistryError::TagImmutable {
                    tag: refs[i].to_string(),
                    repository: repo.name.clone(),
                },
            }),
        }
    }
}

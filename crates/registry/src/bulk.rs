//! Bulk import: many manifests of one repository stored in one transaction, each
//! checked, sealed and recorded exactly as a push is (`Registry::manifest_write`:
//! references, tag immutability, scan-on-push and replication jobs, events), only
//! without one commit per image. And small blobs given in memory. Used by
//! `berth admin bench-fill`, which fills a registry for the scale benchmark
//! (`crates/bench/src/scale.rs`). And many images deleted in one transaction
//! (`BatchDeleteImage`).

use berth_oci::{Digest, Reference};
use berth_store::{DeleteManifestOutcome, PutManifestOutcome};
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
        // The settings a push reads (scanning, replication, the key), once.
        let ctx = self.push_context(repo, false, true).await?;
        for (reference, body) in manifests {
            let (w, _, _) = self
                .manifest_write_in(&ctx, repo, &reference, None, body)
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

    /// Deletes images of `repo` by digest in one write transaction, each exactly
    /// as [`Registry::delete_manifest`] by digest does (its tags, the collection
    /// candidates of its blobs, its events and replication jobs; refused while an
    /// index lists it), in order: per digest, the tags it had or the reason it
    /// was not deleted. `BatchDeleteImage` uses it: on SQLite a transaction per
    /// image made each deletion wait its turn behind every other writer.
    pub async fn delete_images(
        &self,
        repo: &RepositoryRow,
        digests: &[Digest],
    ) -> Result<Vec<Result<Vec<String>>>> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let replication = self.deletion_replication(repo, None).await?;
        let jobs = |digest: &str| match &replication {
            Some(r) => r.jobs(digest),
            None => Ok(Vec::new()),
        };
        let items: Vec<(String, Option<berth_store::AuditRow>)> =
            digests.iter().map(|d| (d.to_string(), None)).collect();
        let outcomes = self
            .meta
            .delete_manifests(repo.repo_id, &items, self.now(), &jobs)
            .await?;
        Ok(outcomes
            .into_iter()
            .map(|o| match o {
                DeleteManifestOutcome::Deleted { tags } => Ok(tags),
                DeleteManifestOutcome::NotFound => Err(RegistryError::ManifestUnknown),
                DeleteManifestOutcome::ReferencedBy(p) => Err(RegistryError::ReferencedByIndex(p)),
            })
            .collect())
    }
}

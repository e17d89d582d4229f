//! Replication to another region: a peer deployment reached over the network
//! (`docs/architecture.md`, "Replication"). The core decides what is sent and in which
//! order — blobs the destination lacks first, then each child manifest of an index,
//! then the manifest and its tag — through a [`PeerConnector`] that the binary
//! provides (the core sees no HTTP).

use std::sync::Arc;

use berth_oci::{Digest, Manifest};
use berth_store::replication::ReplicationJob;
use berth_store::{ByteStream, RepositoryRow};
use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::{Copied, SOURCE_IMAGE_NOT_FOUND};
use crate::Registry;

/// Why a call to a peer did not succeed.
#[derive(Debug)]
pub enum PeerError {
    /// The peer refused for good (authorization): the copy ends FAILED with this
    /// failure code, without retrying.
    Refused(&'static str),
    /// Anything else (unreachable, a server error): the attempt fails and the job
    /// runner retries it with backoff.
    Retry(String),
}

pub type PeerResult<T> = std::result::Result<T, PeerError>;

/// What became of a manifest sent under a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentManifest {
    Stored,
    /// The destination keeps that tag immutable on another digest.
    TagImmutable,
}

/// Opens sessions to peer deployments.
pub trait PeerConnector: Send + Sync {
    /// A session for the repository `name` of `registry_id` in the peer serving
    /// `region`, the repository created there when missing (a refusal to create it
    /// is `Refused(REPOSITORY_NOT_FOUND)`); `source_account` is the account the
    /// image is replicated from, in this deployment's region. Without `create`, a
    /// missing repository is `Refused(REPOSITORY_NOT_FOUND)` at once.
    fn open<'a>(
        &'a self,
        source_account: &'a str,
        region: &'a str,
        registry_id: &'a str,
        name: &'a str,
        create: bool,
    ) -> BoxFuture<'a, PeerResult<Box<dyn PeerSession>>>;
}

/// One destination repository in a peer deployment.
pub trait PeerSession: Send + Sync {
    fn has_blob<'a>(&'a self, digest: &'a str) -> BoxFuture<'a, PeerResult<bool>>;
    /// Uploads a blob, streamed.
    fn put_blob<'a>(
        &'a self,
        digest: &'a str,
        size: u64,
        body: ByteStream,
    ) -> BoxFuture<'a, PeerResult<()>>;
    fn has_manifest<'a>(&'a self, digest: &'a str) -> BoxFuture<'a, PeerResult<bool>>;
    /// Stores a manifest byte-exact under `reference` (a tag or its digest), marked
    /// as arriving by replication so the peer does not replicate it again.
    fn put_manifest<'a>(
        &'a self,
        reference: &'a str,
        media_type: &'a str,
        body: Bytes,
    ) -> BoxFuture<'a, PeerResult<SentManifest>>;
    /// The digest `reference` names there, if any.
    fn manifest_digest<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, PeerResult<Option<String>>>;
    /// Deletes a manifest (by digest) or a tag there, marked as arriving by
    /// replication; `false` when there was nothing to delete.
    fn delete_manifest<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, PeerResult<bool>>;
}

fn retry(e: impl std::fmt::Display) -> PeerError {
    PeerError::Retry(e.to_string())
}

impl Registry {
    /// Copies one image from `src` to its destination in a peer region.
    pub(super) async fn replicate_remote(
        &self,
        src: &RepositoryRow,
        j: &ReplicationJob,
        peers: &Arc<dyn PeerConnector>,
    ) -> PeerResult<Copied> {
        let Some(row) = self.manifest_plain(src, &j.digest).await.map_err(retry)? else {
            return Ok(Copied::Failed(SOURCE_IMAGE_NOT_FOUND));
        };
        let session = peers
            .open(&src.account_id, &j.region, &j.registry_id, &src.name, true)
            .await?;
        let session = session.as_ref();
        self.send_manifest_content(src, session, &row.body, &row.media_type)
            .await?;
        let body = Bytes::from(row.body);
        let tag = self.tag_to_send(src, j).await.map_err(retry)?;
        let Some(tag) = &tag else {
            session
                .put_manifest(&j.digest, &row.media_type, body)
                .await?;
            return Ok(Copied::Complete);
        };
        match session
            .put_manifest(tag, &row.media_type, body.clone())
            .await?
        {
            SentManifest::Stored => Ok(Copied::Complete),
            SentManifest::TagImmutable => {
                session
                    .put_manifest(&j.digest, &row.media_type, body)
                    .await?;
                Ok(Copied::WithoutTag)
            }
        }
    }

    /// Sends what `body` references and the peer lacks: each child manifest of an
    /// index (after its own content), then each blob (HEAD first).
    fn send_manifest_content<'a>(
        &'a self,
        src: &'a RepositoryRow,
        session: &'a dyn PeerSession,
        body: &'a [u8],
        media_type: &'a str,
    ) -> BoxFuture<'a, PeerResult<()>> {
        Box::pin(async move {
            let m = Manifest::parse(body, Some(media_type)).map_err(retry)?;
            for child in &m.manifests {
                let d = child.digest.as_str();
                if session.has_manifest(d).await? {
                    continue;
                }
                let Some(c) = self.manifest_plain(src, d).await.map_err(retry)? else {
                    return Err(PeerError::Retry(format!(
                        "child manifest {d} is missing in the source"
                    )));
                };
                self.send_manifest_content(src, session, &c.body, &c.media_type)
                    .await?;
                session
                    .put_manifest(d, &c.media_type, Bytes::from(c.body))
                    .await?;
            }
            for b in m.required_blobs() {
                self.send_blob(src, session, &b.digest).await?;
            }
            Ok(())
        })
    }

    async fn send_blob(
        &self,
        src: &RepositoryRow,
        session: &dyn PeerSession,
        digest: &Digest,
    ) -> PeerResult<()> {
        if session.has_blob(digest.as_str()).await? {
            return Ok(());
        }
        let read = self.read_blob(src, digest, None).await.map_err(retry)?;
        session
            .put_blob(digest.as_str(), read.size, read.stream)
            .await
    }
}
